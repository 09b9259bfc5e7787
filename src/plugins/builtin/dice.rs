//! The dice roller's rolls: `NdM`, `NdM+K`, `NdM-K`, parsed with limits and rolled.

use rand::{Rng, RngExt};

/// The reply to `!roll ARGS`: the roll, or what was wrong with it and how to write one.
pub(super) fn answer<R: Rng + ?Sized>(args: &str, rng: &mut R) -> String {
    match parse_dice(args) {
        Ok(spec) => spec.roll(rng),
        Err(err) => err.reply(),
    }
}

const MAX_DICE: u32 = 100;
const MIN_SIDES: u32 = 2;
const MAX_SIDES: u32 = 1000;
const MAX_MODIFIER: i64 = 1_000_000;

/// How to write a roll, appended to every error reply.
const DICE_HELP: &str = "Write rolls as NdM, NdM+K or NdM-K, e.g. `2d6`, `d20`, `3d8+2`. \
     Limits: 1-100 dice, 2-1000 sides, modifier up to ±1000000.";

/// A parsed roll such as `2d6+3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DiceSpec {
    count: u32,
    sides: u32,
    modifier: i64,
}

/// Why a roll could not be understood.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DiceError {
    Empty,
    Malformed,
    DiceCount,
    Sides,
    Modifier,
}

impl DiceError {
    fn reply(&self) -> String {
        let problem = match self {
            DiceError::Empty => "Tell me what to roll!",
            DiceError::Malformed => "I couldn't read that roll.",
            DiceError::DiceCount => "I can roll between 1 and 100 dice at once.",
            DiceError::Sides => "Dice must have between 2 and 1000 sides.",
            DiceError::Modifier => "The modifier must be between -1000000 and +1000000.",
        };
        format!("🎲 {problem} {DICE_HELP}")
    }
}

/// Parse `NdM`, `NdM+K`, `NdM-K` or `dM` (whitespace anywhere, `d` or `D`).
fn parse_dice(args: &str) -> Result<DiceSpec, DiceError> {
    let compact: String = args.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase();
    if compact.is_empty() {
        return Err(DiceError::Empty);
    }
    let (count, rest) = compact.split_once('d').ok_or(DiceError::Malformed)?;
    let (sides, modifier) = match rest.find(['+', '-']) {
        Some(i) => (&rest[..i], Some((&rest[i..i + 1], &rest[i + 1..]))),
        None => (rest, None),
    };

    let count = if count.is_empty() { 1 } else { parse_bounded(count, 1, u64::from(MAX_DICE), DiceError::DiceCount)? };
    let sides = parse_bounded(sides, u64::from(MIN_SIDES), u64::from(MAX_SIDES), DiceError::Sides)?;
    let modifier = match modifier {
        None => 0,
        Some((sign, digits)) => {
            // `MAX_MODIFIER` fits in u64 and i64, so these conversions and the
            // negation cannot overflow.
            let magnitude = parse_bounded(digits, 0, MAX_MODIFIER as u64, DiceError::Modifier)?;
            let magnitude = i64::try_from(magnitude).map_err(|_| DiceError::Modifier)?;
            if sign == "-" { -magnitude } else { magnitude }
        }
    };
    Ok(DiceSpec {
        count: u32::try_from(count).map_err(|_| DiceError::DiceCount)?,
        sides: u32::try_from(sides).map_err(|_| DiceError::Sides)?,
        modifier,
    })
}

/// Parse a run of ASCII digits (no sign) within `min..=max`. A number too large
/// for `u64` is reported as `out_of_range`, not as malformed.
fn parse_bounded(digits: &str, min: u64, max: u64, out_of_range: DiceError) -> Result<u64, DiceError> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DiceError::Malformed);
    }
    match digits.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        // Only digits, so the only possible parse error is overflow.
        _ => Err(out_of_range),
    }
}

impl DiceSpec {
    /// Roll the dice and format the reply, e.g. `🎲 2d6+3: [4, 1] + 3 = 8`.
    fn roll<R: Rng + ?Sized>(self, rng: &mut R) -> String {
        let rolls: Vec<u32> = (0..self.count).map(|_| rng.random_range(1..=self.sides)).collect();
        // At most 100 * 1000 + 1_000_000 in magnitude: far from i64's limits.
        let total = rolls.iter().map(|&r| i64::from(r)).sum::<i64>() + self.modifier;
        let list = rolls.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
        let (label_mod, shown_mod) = match self.modifier {
            0 => (String::new(), String::new()),
            m if m > 0 => (format!("+{m}"), format!(" + {m}")),
            m => (format!("-{}", m.unsigned_abs()), format!(" - {}", m.unsigned_abs())),
        };
        format!("🎲 {}d{}{label_mod}: [{list}]{shown_mod} = {total}", self.count, self.sides)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn spec(count: u32, sides: u32, modifier: i64) -> DiceSpec {
        DiceSpec { count, sides, modifier }
    }

    /// Split a dice reply `🎲 label: [a, b] (+|-) k = total` into its parts.
    pub(in crate::plugins::builtin) fn parse_reply(reply: &str) -> (String, Vec<i64>, i64, i64) {
        let rest = reply.strip_prefix("🎲 ").expect("dice prefix");
        let (label, rest) = rest.split_once(": [").expect("label");
        let (list, rest) = rest.split_once(']').expect("list");
        let rolls: Vec<i64> = list.split(", ").map(|r| r.parse().unwrap()).collect();
        let (modifier, total) = rest.split_once("= ").expect("total");
        let modifier = match modifier.trim() {
            "" => 0,
            m if m.starts_with("+ ") => m[2..].parse().unwrap(),
            m if m.starts_with("- ") => -m[2..].parse::<i64>().unwrap(),
            m => panic!("bad modifier {m:?}"),
        };
        (label.to_owned(), rolls, modifier, total.parse().unwrap())
    }

    #[test]
    fn parses_valid_rolls() {
        assert_eq!(parse_dice("2d6"), Ok(spec(2, 6, 0)));
        assert_eq!(parse_dice("2d6+3"), Ok(spec(2, 6, 3)));
        assert_eq!(parse_dice("2d6-3"), Ok(spec(2, 6, -3)));
        assert_eq!(parse_dice("d20"), Ok(spec(1, 20, 0)));
        assert_eq!(parse_dice("D20"), Ok(spec(1, 20, 0)));
        assert_eq!(parse_dice("  3 D 8 +  2 "), Ok(spec(3, 8, 2)));
        assert_eq!(parse_dice("\t1d2\n"), Ok(spec(1, 2, 0)));
        assert_eq!(parse_dice("100d1000"), Ok(spec(100, 1000, 0)));
        assert_eq!(parse_dice("1d6+1000000"), Ok(spec(1, 6, 1_000_000)));
        assert_eq!(parse_dice("1d6-1000000"), Ok(spec(1, 6, -1_000_000)));
        assert_eq!(parse_dice("1d6+0"), Ok(spec(1, 6, 0)));
        assert_eq!(parse_dice("007d006"), Ok(spec(7, 6, 0)));
    }

    #[test]
    fn rejects_malformed_rolls() {
        for input in [
            "banana", "d", "2d", "2d6+", "2d6-", "2d6+-3", "2d6+3+4", "2d6x", "+2d6", "-2d6", "2d+6", "2dd6", "2.5d6",
            "2d6.0", "½d6", "２d6", "2d6d6", "6",
        ] {
            assert_eq!(parse_dice(input), Err(DiceError::Malformed), "{input:?}");
        }
        assert_eq!(parse_dice(""), Err(DiceError::Empty));
        assert_eq!(parse_dice("   \t "), Err(DiceError::Empty));
    }

    #[test]
    fn enforces_limits() {
        assert_eq!(parse_dice("0d6"), Err(DiceError::DiceCount));
        assert_eq!(parse_dice("101d6"), Err(DiceError::DiceCount));
        assert_eq!(parse_dice("99999999d999999999"), Err(DiceError::DiceCount));
        assert_eq!(parse_dice("99999999999999999999999999d6"), Err(DiceError::DiceCount));
        assert_eq!(parse_dice("1d0"), Err(DiceError::Sides));
        assert_eq!(parse_dice("1d1"), Err(DiceError::Sides));
        assert_eq!(parse_dice("1d1001"), Err(DiceError::Sides));
        assert_eq!(parse_dice("1d99999999999999999999999"), Err(DiceError::Sides));
        assert_eq!(parse_dice("1d6+1000001"), Err(DiceError::Modifier));
        assert_eq!(parse_dice("1d6-1000001"), Err(DiceError::Modifier));
        assert_eq!(parse_dice("1d6+99999999999999999999999"), Err(DiceError::Modifier));
    }

    #[test]
    fn reply_format_matches_the_examples() {
        let mut rng = StdRng::seed_from_u64(7);
        let reply = spec(2, 6, 3).roll(&mut rng);
        let (_, rolls, _, total) = parse_reply(&reply);
        assert_eq!(reply, format!("🎲 2d6+3: [{}, {}] + 3 = {total}", rolls[0], rolls[1]));

        let reply = spec(1, 20, 0).roll(&mut rng);
        let (_, rolls, _, total) = parse_reply(&reply);
        assert_eq!(reply, format!("🎲 1d20: [{}] = {total}", rolls[0]));
        assert_eq!(total, rolls[0]);

        let reply = spec(3, 4, -10).roll(&mut rng);
        let (label, rolls, modifier, total) = parse_reply(&reply);
        assert_eq!(label, "3d4-10");
        assert!(reply.contains("] - 10 = "), "{reply}");
        assert_eq!(modifier, -10);
        assert_eq!(total, rolls.iter().sum::<i64>() - 10);
        assert!(total < 3, "negative modifier applied: {reply}");
    }
}
