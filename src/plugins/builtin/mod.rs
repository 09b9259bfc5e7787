//! The built-in plugins. They are ordinary plugins: the host runs each one as a
//! child process via `rosey plugin <name>`, and it speaks the same JSON-lines
//! protocol (see [`super::protocol`]) as any third-party plugin.

use std::io::{self, BufRead, Write};

use rand::Rng;

use super::lines::{Line, LineSplitter};
use super::protocol::{HostMessage, MAX_LINE_BYTES, PluginMessage};

mod dice;
mod eight_ball;

/// A plugin compiled into the `rosey` binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// `!roll 2d6+3`
    DiceRoller,
    /// `!8ball Will it rain?`
    EightBall,
}

impl Builtin {
    /// Every built-in plugin.
    pub const ALL: [Builtin; 2] = [Builtin::DiceRoller, Builtin::EightBall];

    /// The plugin name, as used in `rosey plugin <name>` and in the config.
    pub fn name(self) -> &'static str {
        match self {
            Builtin::DiceRoller => "dice-roller",
            Builtin::EightBall => "8ball",
        }
    }

    /// The built-in called `name`, if any (exact match).
    pub fn from_name(name: &str) -> Option<Builtin> {
        Builtin::ALL.into_iter().find(|b| b.name() == name)
    }

    /// The version reported in the plugin's hello (the crate version).
    pub fn version(self) -> &'static str {
        env!("CARGO_PKG_VERSION")
    }

    /// The chat commands this plugin answers.
    pub fn commands(self) -> &'static [&'static str] {
        match self {
            Builtin::DiceRoller => &["roll"],
            Builtin::EightBall => &["8ball"],
        }
    }

    /// Answer one command's argument text (pure, testable).
    pub fn answer(self, args: &str) -> String {
        self.answer_with(args, &mut rand::rng())
    }

    /// [`Builtin::answer`] with an explicit random source.
    fn answer_with<R: Rng + ?Sized>(self, args: &str, rng: &mut R) -> String {
        match self {
            Builtin::DiceRoller => dice::answer(args, rng),
            Builtin::EightBall => eight_ball::answer(args, rng),
        }
    }
}

/// Run the plugin loop on this process's stdin/stdout: write a Hello first, then answer each Command
/// with a Reply carrying its id; ignore lines that are not valid commands (write a note to stderr);
/// return Ok(()) at end of stdin. Flush after every line.
///
/// If the host closes our stdout (broken pipe) that is treated like end of
/// stdin: there is nobody left to answer, so this returns `Ok(())`.
pub fn run(builtin: Builtin) -> io::Result<()> {
    let stdin = io::stdin();
    let stdout = io::stdout();
    let stderr = io::stderr();
    match serve(builtin, stdin.lock(), stdout.lock(), stderr.lock()) {
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// The plugin loop over arbitrary streams (so it can be tested).
fn serve<I: BufRead, O: Write, E: Write>(builtin: Builtin, mut input: I, mut output: O, mut log: E) -> io::Result<()> {
    let name = builtin.name();
    let hello = PluginMessage::Hello {
        version: Some(builtin.version().to_owned()),
        commands: builtin.commands().iter().map(|c| (*c).to_owned()).collect(),
    };
    output.write_all(hello.to_line().as_bytes())?;
    output.flush()?;

    let mut lines = LineSplitter::new(MAX_LINE_BYTES);
    // Notes to stderr are best effort: failing to log must not stop the plugin.
    while let Some(line) = lines.next_line_blocking(&mut input)? {
        let line = match line {
            Line::Text(text) => text,
            Line::TooLong { .. } => {
                let _ = writeln!(log, "{name}: ignoring line longer than {MAX_LINE_BYTES} bytes");
                continue;
            }
            Line::NotUtf8(_) => {
                let _ = writeln!(log, "{name}: ignoring line that is not valid UTF-8");
                continue;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let (id, command, args) = match HostMessage::parse(&line) {
            Ok(HostMessage::Command { id, command, args, .. }) => (id, command, args),
            Err(err) => {
                let _ = writeln!(log, "{name}: ignoring line: {err}");
                continue;
            }
        };
        let text = if builtin.commands().contains(&command.as_str()) {
            builtin.answer(&args)
        } else {
            let _ = writeln!(log, "{name}: asked for unknown command {command:?}");
            format!(
                "Sorry, {name} does not know !{command}; try {}.",
                builtin.commands().iter().map(|c| format!("!{c}")).collect::<Vec<_>>().join(", ")
            )
        };
        output.write_all(PluginMessage::Reply { id, text }.to_line().as_bytes())?;
        output.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::dice::tests::parse_reply;
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn names_round_trip() {
        for b in Builtin::ALL {
            assert_eq!(Builtin::from_name(b.name()), Some(b));
            assert!(!b.version().is_empty());
        }
        assert_eq!(Builtin::DiceRoller.name(), "dice-roller");
        assert_eq!(Builtin::EightBall.name(), "8ball");
        assert_eq!(Builtin::DiceRoller.commands(), ["roll"]);
        assert_eq!(Builtin::EightBall.commands(), ["8ball"]);
        assert_eq!(Builtin::from_name("dice"), None);
        assert_eq!(Builtin::from_name("8BALL"), None);
        assert_eq!(Builtin::from_name(""), None);
    }

    #[test]
    fn error_replies_explain_format_and_limits() {
        for input in ["", "banana", "0d6", "99999999d999999999", "1d1", "1d6+9999999"] {
            let reply = Builtin::DiceRoller.answer(input);
            assert!(reply.starts_with("🎲 "), "{reply}");
            assert!(reply.contains("NdM"), "{input:?}: {reply}");
            assert!(reply.contains("1-100 dice"), "{input:?}: {reply}");
            assert!(reply.contains("2-1000 sides"), "{input:?}: {reply}");
        }
        assert!(Builtin::DiceRoller.answer("101d6").contains("between 1 and 100 dice"));
        assert!(Builtin::DiceRoller.answer("1d1").contains("between 2 and 1000 sides"));
    }

    #[test]
    fn two_d6_plus_3_totals_stay_in_range() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..2000 {
            let reply = Builtin::DiceRoller.answer_with("2d6+3", &mut rng);
            let (label, rolls, modifier, total) = parse_reply(&reply);
            assert_eq!(label, "2d6+3");
            assert_eq!(rolls.len(), 2);
            assert!(rolls.iter().all(|r| (1..=6).contains(r)), "{reply}");
            assert_eq!(modifier, 3);
            assert_eq!(total, rolls.iter().sum::<i64>() + 3, "{reply}");
            assert!((5..=15).contains(&total), "{reply}");
            seen.insert(total);
        }
        // With 2000 rolls every total should show up: the dice really are random.
        assert_eq!(seen, (5..=15).collect());
    }

    #[test]
    fn the_public_answer_uses_the_thread_rng() {
        for _ in 0..200 {
            let (_, rolls, _, total) = parse_reply(&Builtin::DiceRoller.answer("2d6+3"));
            assert_eq!(total, rolls.iter().sum::<i64>() + 3);
            assert!((5..=15).contains(&total));
        }
    }

    #[test]
    fn extreme_valid_roll_is_bounded() {
        let reply = Builtin::DiceRoller.answer("100d1000-1000000");
        let (_, rolls, _, total) = parse_reply(&reply);
        assert_eq!(rolls.len(), 100);
        assert!(rolls.iter().all(|r| (1..=1000).contains(r)));
        assert_eq!(total, rolls.iter().sum::<i64>() - 1_000_000);
        assert!(reply.len() < MAX_LINE_BYTES / 10);
    }

    fn run_session(builtin: Builtin, input: &[u8]) -> (Vec<PluginMessage>, String) {
        let mut out = Vec::new();
        let mut err = Vec::new();
        serve(builtin, input, &mut out, &mut err).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.is_empty() || out.ends_with('\n'));
        let messages = out.lines().map(|l| PluginMessage::parse(l).unwrap()).collect();
        (messages, String::from_utf8(err).unwrap())
    }

    fn command(id: u64, command: &str, args: &str) -> String {
        HostMessage::Command { id, command: command.into(), args: args.into(), user: "alice".into() }.to_line()
    }

    #[test]
    fn serve_says_hello_then_exits_at_eof() {
        let (messages, err) = run_session(Builtin::DiceRoller, b"");
        assert_eq!(
            messages,
            [PluginMessage::Hello { version: Some(env!("CARGO_PKG_VERSION").into()), commands: vec!["roll".into()] }]
        );
        assert!(err.is_empty());
    }

    #[test]
    fn serve_answers_commands_by_id_and_skips_junk() {
        let input = [
            command(41, "roll", "1d6+100"),
            "this is not json\n".into(),
            "\n".into(),
            r#"{"type":"ping"}"#.to_owned() + "\n",
            r#"{"type":"command","id":1}"#.to_owned() + "\n",
            command(42, "8ball", "Am I lucky?"),
            command(43, "roll", "banana"),
            // Last line without a trailing newline is still answered.
            command(44, "roll", "d2").trim_end().to_owned(),
        ]
        .concat();
        let (messages, err) = run_session(Builtin::DiceRoller, input.as_bytes());
        assert!(matches!(messages[0], PluginMessage::Hello { .. }));
        let replies: Vec<(u64, String)> = messages[1..]
            .iter()
            .map(|m| match m {
                PluginMessage::Reply { id, text } => (*id, text.clone()),
                other => panic!("expected reply, got {other:?}"),
            })
            .collect();
        let ids: Vec<u64> = replies.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, [41, 42, 43, 44]);
        let (_, rolls, _, total) = parse_reply(&replies[0].1);
        assert_eq!(total, rolls[0] + 100);
        assert!(replies[1].1.contains("does not know !8ball"), "{}", replies[1].1);
        assert!(replies[2].1.contains("NdM"));
        assert!(replies[3].1.starts_with("🎲 1d2: ["));
        // Three junk lines noted (the blank line is skipped silently), plus the unknown command.
        assert_eq!(err.lines().count(), 4, "{err}");
        assert!(err.lines().all(|l| l.starts_with("dice-roller: ")), "{err}");
        assert!(err.contains("ping"), "{err}");
    }

    #[test]
    fn serve_skips_oversized_and_non_utf8_lines() {
        let mut input = Vec::new();
        input.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES + 1));
        input.push(b'\n');
        input.extend_from_slice(b"\xff\xfe\n");
        input.extend_from_slice(command(5, "8ball", "ok?").as_bytes());
        let (messages, err) = run_session(Builtin::EightBall, &input);
        assert_eq!(messages.len(), 2);
        assert!(matches!(&messages[1], PluginMessage::Reply { id: 5, text } if text.starts_with("🎱 ")));
        assert!(err.contains("longer than"), "{err}");
        assert!(err.contains("UTF-8"), "{err}");
    }
}
