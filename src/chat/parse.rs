//! Reading a chat line as a command: `[USER:] !COMMAND [ARGS]`.
//!
//! The user is everything before the first `:` (spaces allowed: chat networks have display
//! names like `dave smith`); the space after the colon is optional (`carol:!roll d20`). A line
//! whose text after the prefix does not start with `!` is plain chat. A line that starts with
//! `!` has no user prefix and comes from [`CONSOLE_USER`].

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

/// The command in `line`, or None for plain chat.
pub fn parse_message(line: &str) -> Option<ChatCommand> {
    let line = line.trim();
    let (user, text) = if line.starts_with('!') {
        (CONSOLE_USER, line)
    } else {
        let (user, text) = line.split_once(':')?;
        (user.trim(), text.trim_start())
    };
    if user.is_empty() {
        return None;
    }
    let rest = text.strip_prefix('!')?;
    let (command, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    if command.is_empty() {
        return None;
    }
    Some(ChatCommand { user: user.to_owned(), command: command.to_owned(), args: args.trim().to_owned() })
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
}
