//! The console as chat: stdin lines in (bounded, decoded lossily), replies out on stdout with
//! whatever could reach the operator's terminal as a control sequence shown escaped.

use std::io::{BufRead, Write};

use tokio::sync::mpsc;
use tracing::warn;

use crate::plugins::ChatReply;

/// The longest chat line kept; the rest of a longer line is read and discarded, never buffered.
pub const MAX_CHAT_LINE: usize = 4096;
/// Lines read ahead of routing; a faster producer waits (backpressure on stdin).
const INPUT_QUEUE: usize = 1024;

/// One line of console input.
#[derive(Debug, PartialEq, Eq)]
pub enum InputLine {
    /// A line (bytes that are not UTF-8 shown as U+FFFD).
    Text(String),
    /// A line over [`MAX_CHAT_LINE`]: its length and the start that was kept.
    TooLong { len: usize, start: String },
}

/// Read the next line, keeping at most `max` bytes of it; None at end of input.
// The plugin pipes have an async twin of this in plugins/stream.rs; stdin is read on a plain
// thread, so this one blocks.
pub fn read_line<R: BufRead>(reader: &mut R, buf: &mut Vec<u8>, max: usize) -> std::io::Result<Option<InputLine>> {
    buf.clear();
    let mut len = 0usize;
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            // A last line without a newline still counts as a line.
            return Ok((len > 0).then(|| finish(buf, len, max)));
        }
        let (chunk, found_newline) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], true),
            None => (available, false),
        };
        let room = max.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        len += chunk.len();
        let consumed = chunk.len() + usize::from(found_newline);
        reader.consume(consumed);
        if found_newline {
            return Ok(Some(finish(buf, len, max)));
        }
    }
}

fn finish(buf: &mut Vec<u8>, len: usize, max: usize) -> InputLine {
    if buf.last() == Some(&b'\r') && len <= max {
        buf.pop();
    }
    let text = String::from_utf8_lossy(buf).into_owned();
    if len > max { InputLine::TooLong { len, start: text } } else { InputLine::Text(text) }
}

/// stdin is read on a plain thread: a blocking read cannot be cancelled, and must not keep
/// the async runtime from shutting down.
pub fn spawn_stdin_reader() -> mpsc::Receiver<InputLine> {
    let (tx, rx) = mpsc::channel(INPUT_QUEUE);
    let spawned = std::thread::Builder::new().name("console-input".into()).spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = Vec::new();
        loop {
            match read_line(&mut stdin, &mut buf, MAX_CHAT_LINE) {
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
fn is_unsafe_for_terminals(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(user: &str, text: &str) -> ChatReply {
        ChatReply { plugin: "dice-roller".into(), user: Some(user.into()), text: text.into() }
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

    fn lines(input: &[u8], max: usize) -> Vec<InputLine> {
        let mut reader = std::io::BufReader::with_capacity(4, input);
        let mut buf = Vec::new();
        std::iter::from_fn(|| read_line(&mut reader, &mut buf, max).expect("reading from memory cannot fail")).collect()
    }

    #[test]
    fn lines_are_split_and_invalid_utf8_is_replaced() {
        let got = lines(b"one\r\n\xff!roll\nlast", 16);
        let texts = ["one", "\u{fffd}!roll", "last"].map(|t| InputLine::Text(t.into()));
        assert_eq!(got, texts);
    }

    #[test]
    fn an_overlong_line_keeps_only_its_start_and_the_next_line_survives() {
        let mut input = vec![b'x'; 100];
        input.extend_from_slice(b"\nok\n");
        let got = lines(&input, 10);
        assert_eq!(got, [InputLine::TooLong { len: 100, start: "x".repeat(10) }, InputLine::Text("ok".into())]);
    }
}
