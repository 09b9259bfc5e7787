//! The console as chat: stdin lines in (bounded, decoded lossily), replies out on stdout with
//! whatever could reach the operator's terminal as a control sequence shown escaped.

use std::io::Write;

use tokio::sync::mpsc;
use tracing::warn;

use crate::plugins::ChatReply;
use crate::plugins::lines::{Line, LineSplitter};

/// The longest chat line kept; the rest of a longer line is read and discarded, never buffered.
pub const MAX_CHAT_LINE: usize = 4096;
/// Lines read ahead of routing; a faster producer waits (backpressure on stdin).
const INPUT_QUEUE: usize = 1024;

/// stdin is read on a plain thread: a blocking read cannot be cancelled, and must not keep
/// the async runtime from shutting down.
pub fn spawn_stdin_reader() -> mpsc::Receiver<Line> {
    let (tx, rx) = mpsc::channel(INPUT_QUEUE);
    let spawned = std::thread::Builder::new().name("console-input".into()).spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut lines = LineSplitter::new(MAX_CHAT_LINE);
        loop {
            match lines.next_line_blocking(&mut stdin) {
                Ok(Some(line)) => {
                    if tx.blocking_send(line).is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // A terminal that went away reads as EIO: that is end of input too.
                    warn!("console input failed: {e}; no more chat is read");
                    return;
                }
            }
        }
    });
    if let Err(e) = spawned {
        warn!("cannot read console input: {e}");
    }
    rx
}

pub fn print_reply(reply: &ChatReply) {
    let text = format_reply(reply);
    let mut out = std::io::stdout().lock();
    // A closed stdout (say, piped into `head`) must not bring the bot down.
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// `[plugin] @user text`, one such line per line of the reply. The text comes from an untrusted
/// plugin and the user name from whoever typed it: a bare newline would let either print a line
/// that looks like another plugin's reply, and escape sequences or bidirectional overrides would
/// reach (or rearrange) the operator's terminal, so those characters are shown escaped.
pub fn format_reply(reply: &ChatReply) -> String {
    let mut user = String::new();
    if let Some(name) = &reply.user {
        user.push('@');
        push_escaped(&mut user, name, Tabs::Escape);
        user.push(' ');
    }
    let mut out = String::with_capacity(reply.text.len() + 32);
    for line in reply.text.trim_end_matches(['\n', '\r']).split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        out.push('[');
        push_escaped(&mut out, &reply.plugin, Tabs::Escape);
        out.push_str("] ");
        out.push_str(&user);
        push_escaped(&mut out, line, Tabs::Keep);
        out.push('\n');
    }
    out
}

/// `text` as one line on a terminal: every control character (tabs and newlines too) and
/// bidirectional override shown escaped, as in a reply's user name. For the fields
/// `rosey status` and `rosey logs` print.
pub fn escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    push_escaped(&mut out, text, Tabs::Escape);
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tabs {
    Keep,
    Escape,
}

fn push_escaped(out: &mut String, text: &str, tabs: Tabs) {
    for c in text.chars() {
        if is_unsafe_for_terminals(c) && !(c == '\t' && tabs == Tabs::Keep) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
}

/// Control characters, and the Unicode bidirectional controls (which reorder what follows
/// them on screen: `U+202E` makes `txt.exe` look like `exe.txt`).
pub fn is_unsafe_for_terminals(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(user: &str, text: &str) -> ChatReply {
        ChatReply { plugin: "dice-roller".into(), user: Some(user.into()), text: text.into(), request: None }
    }

    #[test]
    fn replies_are_prefixed_with_plugin_and_user() {
        assert_eq!(format_reply(&reply("alice", "🎲 1d6: [4] = 4")), "[dice-roller] @alice 🎲 1d6: [4] = 4\n");
        let anonymous = ChatReply { user: None, ..reply("alice", "hi") };
        assert_eq!(format_reply(&anonymous), "[dice-roller] hi\n");
    }

    #[test]
    fn a_plugin_cannot_forge_lines_or_send_terminal_escapes() {
        let forged = reply("alice", "ok\n[8ball] @bob It is certain.\r\n\u{1b}[2Jgone\u{7}\tend");
        assert_eq!(
            format_reply(&forged),
            "[dice-roller] @alice ok\n[dice-roller] @alice [8ball] @bob It is certain.\n[dice-roller] @alice \\u{1b}[2Jgone\\u{7}\tend\n"
        );
    }

    #[test]
    fn user_names_and_bidi_overrides_are_escaped_too() {
        let hostile = reply("ev\u{1b}[2J\u{1b}]0;owned\u{7}il\t", "a\u{202e}b\u{2066}c");
        assert_eq!(
            format_reply(&hostile),
            "[dice-roller] @ev\\u{1b}[2J\\u{1b}]0;owned\\u{7}il\\t a\\u{202e}b\\u{2066}c\n"
        );
    }
}
