//! Chat text on IRC: commands read without colour and format codes, CTCP recognised, and
//! plugin replies made safe for the wire (no CR, LF, NUL or `\x01` reaches it as protocol)
//! and cut into lines that fit, at most so many per reply.

/// What a PRIVMSG's text is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Said<'a> {
    /// Ordinary text (formatting stripped).
    Text(String),
    /// A CTCP request: `\x01VERB args\x01`.
    Ctcp { verb: String, args: &'a str },
}

/// Read a PRIVMSG's text.
pub fn said(text: &str) -> Said<'_> {
    if let Some(inner) = text.strip_prefix('\u{1}') {
        let inner = inner.strip_suffix('\u{1}').unwrap_or(inner);
        let (verb, args) = inner.split_once(' ').unwrap_or((inner, ""));
        return Said::Ctcp { verb: verb.to_ascii_uppercase(), args };
    }
    Said::Text(strip_formatting(text))
}

/// Text without mIRC colour and format codes (bold, colour with its numbers, hex colour,
/// reset, monospace, reverse, italic, strike-through, underline).
pub fn strip_formatting(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{2}' | '\u{f}' | '\u{11}' | '\u{16}' | '\u{1d}' | '\u{1e}' | '\u{1f}' => {}
            '\u{3}' | '\u{4}' => {
                let (digits, is_digit): (usize, fn(&char) -> bool) =
                    if c == '\u{3}' { (2, |d| d.is_ascii_digit()) } else { (6, |d| d.is_ascii_hexdigit()) };
                let skip = |chars: &mut std::iter::Peekable<std::str::Chars>| {
                    let mut n = 0;
                    while n < digits && chars.peek().is_some_and(is_digit) {
                        chars.next();
                        n += 1;
                    }
                    n
                };
                if skip(&mut chars) > 0 && chars.peek() == Some(&',') {
                    let mut ahead = chars.clone();
                    ahead.next();
                    if ahead.peek().is_some_and(is_digit) {
                        chars.next();
                        skip(&mut chars);
                    }
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// A reply as lines to send: each line of `text` (CR, LF and their pairs end a line) after
/// `lead` (`alice: `), control characters other than tab and the format codes shown as `�`
/// (`\x01` would start a CTCP), cut on a char boundary (a space when one is near) so each
/// holds at most `max_bytes`, at most `max_lines` lines, the last of a cut reply ending `…`.
pub fn reply_lines(lead: &str, text: &str, max_bytes: usize, max_lines: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cut = false;
    'outer: for line in text.split(['\r', '\n']) {
        let clean: String = line.chars().map(|c| if is_unsafe(c) { '\u{fffd}' } else { c }).collect();
        let clean = clean.trim_end();
        if clean.is_empty() {
            continue;
        }
        let mut rest = clean;
        while !rest.is_empty() {
            if lines.len() == max_lines {
                cut = true;
                break 'outer;
            }
            let room = max_bytes.saturating_sub(lead.len()).max(16);
            let piece = split_at_most(rest, room);
            lines.push(format!("{lead}{}", piece.trim_end()));
            rest = rest[piece.len()..].trim_start();
        }
    }
    if cut && let Some(last) = lines.last_mut() {
        const MORE: &str = " …";
        let keep = split_at_most(last, max_bytes.saturating_sub(MORE.len())).len();
        last.truncate(keep);
        last.push_str(MORE);
    }
    lines
}

/// Characters that must not reach the wire inside a line: C0 controls but tab and the
/// formatting codes a plugin may mean (bold, colour, reset, italic, underline), and DEL.
fn is_unsafe(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\u{2}' | '\u{3}' | '\u{f}' | '\u{1d}' | '\u{1f}')
}

/// The longest start of `text` within `max` bytes, ending at a space when one is in its last
/// quarter, else at a char boundary; never empty when `text` is not.
fn split_at_most(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    if end == 0 {
        return text.chars().next().map_or("", |c| &text[..c.len_utf8()]);
    }
    match text[..end].rfind(' ') {
        Some(space) if space >= end * 3 / 4 => &text[..space],
        _ => &text[..end],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_read_without_colours_and_formatting() {
        assert_eq!(strip_formatting("\u{2}!roll\u{2} \u{3}04,12 2d6\u{f}"), "!roll  2d6");
        assert_eq!(strip_formatting("\u{3}4!roll\u{3} d6"), "!roll d6");
        assert_eq!(strip_formatting("\u{3}12,x"), ",x", "a comma not followed by a colour is text");
        assert_eq!(strip_formatting("\u{4}ff00ff,000000!8ball\u{1d}?"), "!8ball?");
        assert_eq!(said("\u{1f}!roll d6"), Said::Text("!roll d6".into()));
    }

    #[test]
    fn ctcp_requests_are_recognised() {
        assert_eq!(said("\u{1}VERSION\u{1}"), Said::Ctcp { verb: "VERSION".into(), args: "" });
        assert_eq!(said("\u{1}ping 123 456\u{1}"), Said::Ctcp { verb: "PING".into(), args: "123 456" });
        assert_eq!(said("\u{1}ACTION waves"), Said::Ctcp { verb: "ACTION".into(), args: "waves" });
    }

    #[test]
    fn replies_cannot_inject_protocol() {
        let lines = reply_lines("alice: ", "ok\r\nQUIT :bye\n\u{1}VERSION\u{1}\0x", 400, 10);
        assert_eq!(lines, ["alice: ok", "alice: QUIT :bye", "alice: \u{fffd}VERSION\u{fffd}\u{fffd}x"]);
        for line in &lines {
            assert!(!line.contains(['\r', '\n', '\0', '\u{1}']));
        }
    }

    #[test]
    fn long_replies_split_on_char_boundaries_and_are_cut_with_an_ellipsis() {
        let text = "é".repeat(1000); // 2,000 bytes
        let lines = reply_lines("bob: ", &text, 400, 100);
        assert!(lines.iter().all(|l| l.len() <= 400 && l.starts_with("bob: ")));
        assert_eq!(lines.iter().map(|l| l.len() - 5).sum::<usize>(), 2000, "nothing lost");
        let cut = reply_lines("bob: ", &text, 400, 2);
        assert_eq!(cut.len(), 2);
        assert!(cut[1].ends_with(" …") && cut[1].len() <= 400, "{}", cut[1]);
        let words = reply_lines("", &"word ".repeat(100), 42, 100);
        assert!(words.iter().all(|l| l.len() <= 42 && !l.starts_with(' ') && l.ends_with("word")), "{words:?}");
        assert_eq!(reply_lines("a: ", "\n \r\n", 400, 4), Vec::<String>::new());
    }
}
