//! Reading a chat line as a command: `[USER:] !COMMAND [ARGS]`.
//!
//! The user is everything before the first `:` (spaces allowed: chat networks have display
//! names like `dave smith`); the space after the colon is optional (`carol:!roll d20`). A line
//! whose text after the prefix does not start with `!` is plain chat. A line that starts with
//! `!` has no user prefix and comes from [`CONSOLE_USER`], as does a line with no colon at all
//! (`yes`, the answer to an `!admin` confirmation).

/// The user of a message that names none.
pub const CONSOLE_USER: &str = "console";

/// A chat message that is a command: `!command args`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatCommand {
    pub user: String,
    /// As typed; routing ignores its ASCII case.
    pub command: String,
    pub args: String,
}

/// A chat line split into who said it and what: `alice: hi` is alice's `hi`; a line without a
/// prefix (`!roll d6`, `yes`) is the console's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatMessage<'a> {
    pub user: &'a str,
    pub text: &'a str,
}

impl<'a> ChatMessage<'a> {
    /// Who said `line`, and what; None for a blank line or an empty user prefix (`: hi`).
    pub fn split(line: &'a str) -> Option<ChatMessage<'a>> {
        let line = line.trim();
        let (user, text) = match line.split_once(':') {
            Some((user, text)) if !line.starts_with('!') => (user.trim(), text.trim()),
            _ => (CONSOLE_USER, line),
        };
        (!user.is_empty() && !text.is_empty()).then_some(ChatMessage { user, text })
    }

    /// The command in this message, or None for plain chat.
    pub fn command(&self) -> Option<ChatCommand> {
        let rest = self.text.strip_prefix('!')?;
        let (command, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        if command.is_empty() {
            return None;
        }
        Some(ChatCommand { user: self.user.to_owned(), command: command.to_owned(), args: args.trim().to_owned() })
    }
}

/// The command in `line`, or None for plain chat.
pub fn parse_message(line: &str) -> Option<ChatCommand> {
    ChatMessage::split(line)?.command()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(user: &str, command: &str, args: &str) -> Option<ChatCommand> {
        Some(ChatCommand { user: user.into(), command: command.into(), args: args.into() })
    }

    #[test]
    fn parses_user_prefixed_and_bare_commands() {
        assert_eq!(parse_message("alice: !roll 2d6"), cmd("alice", "roll", "2d6"));
        assert_eq!(parse_message("!roll 2d6+3"), cmd(CONSOLE_USER, "roll", "2d6+3"));
        assert_eq!(parse_message("  !8ball will it rain?  "), cmd(CONSOLE_USER, "8ball", "will it rain?"));
        assert_eq!(parse_message("bob: !8ball"), cmd("bob", "8ball", ""));
    }

    #[test]
    fn the_user_prefix_takes_spaces_and_needs_no_space_after_the_colon() {
        assert_eq!(parse_message("carol:!roll d20"), cmd("carol", "roll", "d20"));
        assert_eq!(parse_message("dave smith: !roll d4"), cmd("dave smith", "roll", "d4"));
        assert_eq!(parse_message("!ROLL 1d6"), cmd(CONSOLE_USER, "ROLL", "1d6"), "routing ignores case");
        assert_eq!(parse_message("!roll a: b"), cmd(CONSOLE_USER, "roll", "a: b"), "a colon in the args");
    }

    #[test]
    fn ignores_what_is_not_a_command() {
        assert_eq!(parse_message("hello there"), None);
        assert_eq!(parse_message("alice: hi: !roll"), None);
        assert_eq!(parse_message("alice: hi !roll"), None);
        assert_eq!(parse_message(": !roll"), None, "an empty user");
        assert_eq!(parse_message("!"), None);
        assert_eq!(parse_message("alice: !"), None);
        assert_eq!(parse_message(""), None);
    }

    #[test]
    fn plain_chat_has_a_user_too() {
        let said = |user, text| Some(ChatMessage { user, text });
        assert_eq!(ChatMessage::split("  yes "), said(CONSOLE_USER, "yes"));
        assert_eq!(ChatMessage::split("alice: yes"), said("alice", "yes"));
        assert_eq!(ChatMessage::split("console: yes"), said(CONSOLE_USER, "yes"));
        assert_eq!(ChatMessage::split("!admin stop a:b"), said(CONSOLE_USER, "!admin stop a:b"));
        assert_eq!(ChatMessage::split(" : yes"), None);
        assert_eq!(ChatMessage::split("  "), None, "a blank line says nothing (and cancels nothing)");
        assert_eq!(ChatMessage::split("alice:"), None);
    }
}
