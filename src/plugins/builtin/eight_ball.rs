//! The Magic 8-Ball's answers to `!8ball`.

use rand::{Rng, RngExt};

/// The 20 classic Magic 8-Ball answers.
const ANSWERS: [&str; 20] = [
    "It is certain.",
    "It is decidedly so.",
    "Without a doubt.",
    "Yes definitely.",
    "You may rely on it.",
    "As I see it, yes.",
    "Most likely.",
    "Outlook good.",
    "Yes.",
    "Signs point to yes.",
    "Reply hazy, try again.",
    "Ask again later.",
    "Better not tell you now.",
    "Cannot predict now.",
    "Concentrate and ask again.",
    "Don't count on it.",
    "My reply is no.",
    "My sources say no.",
    "Outlook not so good.",
    "Very doubtful.",
];

/// The reply to `!8ball QUESTION`: one of the answers at random, or a request for a question.
pub(super) fn answer<R: Rng + ?Sized>(question: &str, rng: &mut R) -> String {
    if question.trim().is_empty() {
        return "🎱 Ask me a yes/no question, e.g. `!8ball Will it rain tomorrow?`".to_owned();
    }
    let answer = ANSWERS[rng.random_range(0..ANSWERS.len())];
    format!("🎱 {answer}")
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::plugins::builtin::Builtin;

    #[test]
    fn eight_ball_answers_from_the_list() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..1000 {
            let reply = Builtin::EightBall.answer_with("Will it work?", &mut rng);
            let answer = reply.strip_prefix("🎱 ").expect("8ball prefix");
            assert!(ANSWERS.contains(&answer), "{reply}");
            seen.insert(answer.to_owned());
        }
        assert_eq!(seen.len(), 20, "all answers reachable");
        let reply = Builtin::EightBall.answer("Is it Monday?");
        assert!(ANSWERS.contains(&reply.strip_prefix("🎱 ").unwrap()));
    }

    #[test]
    fn eight_ball_answers_are_the_twenty_classics() {
        let unique: std::collections::BTreeSet<_> = ANSWERS.iter().collect();
        assert_eq!(unique.len(), 20);
        assert!(ANSWERS.contains(&"It is certain."));
        assert!(ANSWERS.contains(&"Very doubtful."));
    }

    #[test]
    fn eight_ball_empty_question_asks_for_one() {
        for q in ["", "   ", "\n"] {
            let reply = Builtin::EightBall.answer(q);
            assert!(reply.starts_with("🎱 "));
            assert!(reply.contains("yes/no question"), "{reply}");
            assert!(!ANSWERS.contains(&reply.strip_prefix("🎱 ").unwrap()));
        }
    }
}
