//! IRC lines: a pure parser and encoder (RFC 2812 framing plus IRCv3 message tags).
//!
//! Written here rather than taken from `irc-proto`: that crate parses `&str` only (a line
//! with a stray Latin-1 byte is an error, where a bot should read it lossily and go on), and
//! our needs are small: tags with their value escaping, an optional source, a command, and
//! parameters. Nothing here panics on any input; a line that cannot be a message is an
//! [`ParseError`], and the caller drops it and keeps the connection.
//!
//! Encoding refuses what would change the meaning of a line on the wire (CR, LF, NUL anywhere,
//! a space or a leading `:` in a middle parameter): text from plugins is made safe before it
//! gets here ([`super::text`]), and this is the last line of defence.

use std::fmt;

/// The most bytes of a line without its tags, CRLF included (RFC 2812 2.3).
pub const MAX_LINE: usize = 512;
/// The most bytes the tags of a line from the server may take (IRCv3 message-tags), `@` and
/// the space after them included.
pub const MAX_TAGS: usize = 8191;
/// A line longer than this is read and discarded, never kept whole.
pub const MAX_INCOMING: usize = MAX_TAGS + MAX_LINE;

/// One IRC message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// IRCv3 tags, values unescaped; a tag without a value has an empty one.
    pub tags: Vec<(String, String)>,
    /// Who sent it (`nick!user@host` or a server name), when the server said.
    pub source: Option<String>,
    /// Upper-cased (`privmsg` and `PRIVMSG` are the same command).
    pub command: String,
    pub params: Vec<String>,
}

/// Why a line is not a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("empty line")]
    Empty,
    #[error("no command")]
    NoCommand,
    #[error("invalid command {0:?}")]
    BadCommand(String),
}

/// Why a message cannot be written as one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("parameter {index} holds CR, LF or NUL")]
    LineBreak { index: usize },
    #[error("parameter {index} is empty, holds a space or starts with ':' but is not the last")]
    BadMiddle { index: usize },
    #[error("invalid command {0:?}")]
    BadCommand(String),
}

impl Message {
    /// A message with no tags and no source, as a client sends them.
    pub fn new<S: Into<String>>(command: &str, params: impl IntoIterator<Item = S>) -> Message {
        Message {
            tags: Vec::new(),
            source: None,
            command: command.to_ascii_uppercase(),
            params: params.into_iter().map(Into::into).collect(),
        }
    }

    /// Parse one line (CRLF or LF already removed, or not: trailing CR/LF are ignored).
    pub fn parse(line: &str) -> Result<Message, ParseError> {
        let mut rest = line.trim_end_matches(['\r', '\n']).trim_start_matches(' ');
        if rest.is_empty() {
            return Err(ParseError::Empty);
        }
        let mut message = Message::default();
        if let Some(tagged) = rest.strip_prefix('@') {
            let (tags, after) = tagged.split_once(' ').unwrap_or((tagged, ""));
            message.tags = parse_tags(tags);
            rest = after.trim_start_matches(' ');
        }
        if let Some(sourced) = rest.strip_prefix(':') {
            let (source, after) = sourced.split_once(' ').unwrap_or((sourced, ""));
            message.source = (!source.is_empty()).then(|| source.to_owned());
            rest = after.trim_start_matches(' ');
        }
        let (command, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
        if command.is_empty() {
            return Err(ParseError::NoCommand);
        }
        let numeric = command.len() == 3 && command.bytes().all(|b| b.is_ascii_digit());
        if !numeric && !command.bytes().all(|b| b.is_ascii_alphabetic()) {
            let shown: String = command.chars().take(32).collect();
            return Err(ParseError::BadCommand(shown));
        }
        message.command = command.to_ascii_uppercase();
        loop {
            rest = rest.trim_start_matches(' ');
            if rest.is_empty() {
                break;
            }
            if let Some(trailing) = rest.strip_prefix(':') {
                message.params.push(trailing.to_owned());
                break;
            }
            let (param, after) = rest.split_once(' ').unwrap_or((rest, ""));
            message.params.push(param.to_owned());
            rest = after;
        }
        Ok(message)
    }

    /// The value of tag `key` (an empty string for a tag without a value).
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The nick part of the source (`alice` of `alice!a@host`); None for a server or no source.
    pub fn nick(&self) -> Option<&str> {
        let source = self.source.as_deref()?;
        let nick = source.split(['!', '@']).next().unwrap_or(source);
        // A bare name with a dot is a server (`irc.local`); nicks cannot hold dots.
        let is_server = nick.contains('.') && !source.contains('!');
        (!nick.is_empty() && !is_server).then_some(nick)
    }

    /// Parameter `index`, or "" when absent (a PRIVMSG with no text has none).
    pub fn param(&self, index: usize) -> &str {
        self.params.get(index).map_or("", String::as_str)
    }

    /// The line to send, CRLF included. Outgoing lines carry no tags or source (the bot sends
    /// none of its own).
    pub fn encode(&self) -> Result<String, EncodeError> {
        let command_ok = !self.command.is_empty() && self.command.bytes().all(|b| b.is_ascii_alphanumeric());
        if !command_ok {
            return Err(EncodeError::BadCommand(self.command.clone()));
        }
        let mut line = self.command.clone();
        let last = self.params.len().saturating_sub(1);
        for (index, param) in self.params.iter().enumerate() {
            if param.contains(['\r', '\n', '\0']) {
                return Err(EncodeError::LineBreak { index });
            }
            line.push(' ');
            let needs_colon = param.is_empty() || param.contains(' ') || param.starts_with(':');
            if needs_colon {
                if index != last {
                    return Err(EncodeError::BadMiddle { index });
                }
                line.push(':');
            }
            line.push_str(param);
        }
        line.push_str("\r\n");
        Ok(line)
    }
}

impl fmt::Display for Message {
    /// For logs: the command and its parameters, escaped (never a password: see callers).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.command)?;
        for param in &self.params {
            write!(f, " {}", param.escape_debug())?;
        }
        Ok(())
    }
}

fn parse_tags(text: &str) -> Vec<(String, String)> {
    text.split(';')
        .filter(|tag| !tag.is_empty())
        .map(|tag| {
            let (key, value) = tag.split_once('=').unwrap_or((tag, ""));
            (key.to_owned(), unescape_tag(value))
        })
        .collect()
}

/// IRCv3 tag value escaping: `\:` `;`, `\s` space, `\\` `\`, `\r` CR, `\n` LF; any other
/// escaped character stands for itself, and a lone trailing `\` is dropped.
pub fn unescape_tag(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(':') => out.push(';'),
            Some('s') => out.push(' '),
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Message {
        Message::parse(line).expect("a message")
    }

    #[test]
    fn recorded_inspircd_lines_parse() {
        let m = parse(
            "@msgid=abc;inspircd.org/account-id=42;account=alice :alice!alice@127.0.0.1 PRIVMSG #test :!roll 2d6\r\n",
        );
        assert_eq!(m.tag("account"), Some("alice"));
        assert_eq!(m.tag("inspircd.org/account-id"), Some("42"));
        assert_eq!(m.nick(), Some("alice"));
        assert_eq!((m.command.as_str(), m.params.clone()), ("PRIVMSG", vec!["#test".into(), "!roll 2d6".into()]));

        let m = parse(":irc.local 001 rosey :Welcome to the Localnet IRC Network rosey!rosey@127.0.0.1");
        assert_eq!(m.command, "001");
        assert_eq!(m.nick(), None, "a server is not a nick");
        assert_eq!(parse("PING :irc.local").params, ["irc.local"]);
        let cap = parse(":irc.local CAP * LS :account-tag message-tags sasl=EXTERNAL,PLAIN server-time");
        assert_eq!(cap.params, ["*", "LS", "account-tag message-tags sasl=EXTERNAL,PLAIN server-time"]);
        assert_eq!(parse("ping x").command, "PING");
    }

    #[test]
    fn recorded_twitch_lines_parse() {
        let m = parse(
            "@badge-info=;display-name=Ronni\\sB;mod=0;user-id=1337;color= :ronni!ronni@ronni.tmi.twitch.tv PRIVMSG #dallas :!roll d20",
        );
        assert_eq!(m.tag("user-id"), Some("1337"));
        assert_eq!(m.tag("display-name"), Some("Ronni B"));
        assert_eq!(m.tag("color"), Some(""));
        assert_eq!(m.nick(), Some("ronni"));
    }

    #[test]
    fn tag_values_unescape() {
        assert_eq!(unescape_tag(r"a\:b\sc\\d\re\nf\xg\"), "a;b c\\d\re\nfxg");
        assert_eq!(
            parse("@k;j=;=v :s PING").tags,
            [("k".into(), "".into()), ("j".into(), "".into()), ("".into(), "v".into())]
        );
    }

    #[test]
    fn hostile_lines_are_errors_or_harmless_never_panics() {
        assert_eq!(Message::parse(""), Err(ParseError::Empty));
        assert_eq!(Message::parse("\r\n"), Err(ParseError::Empty));
        assert_eq!(Message::parse("@only-tags"), Err(ParseError::NoCommand));
        assert_eq!(Message::parse(":only.source"), Err(ParseError::NoCommand));
        assert_eq!(Message::parse(":src  "), Err(ParseError::NoCommand));
        assert!(matches!(Message::parse("\u{1}\u{2}garbage"), Err(ParseError::BadCommand(_))));
        assert!(matches!(Message::parse("12345 x"), Err(ParseError::BadCommand(_))));
        // A PRIVMSG with no text, and one with no target either.
        let m = parse(":bob!b@h PRIVMSG #c");
        assert_eq!((m.param(0), m.param(1)), ("#c", ""));
        assert_eq!(parse("PRIVMSG").params.len(), 0);
        // Missing source: still a message.
        assert_eq!(parse("PRIVMSG #c :hi").nick(), None);
        // A 64 KB line parses without trouble if it ever got here (the reader drops it first).
        let huge = format!(":a!b@c PRIVMSG #c :{}", "x".repeat(64 * 1024));
        assert_eq!(parse(&huge).param(1).len(), 64 * 1024);
        // Invalid UTF-8 arrives decoded lossily.
        let lossy = String::from_utf8_lossy(b":a!b@c PRIVMSG #c :caf\xe9 \xff");
        assert_eq!(parse(&lossy).param(1), "caf\u{fffd} \u{fffd}");
        for junk in ["@", "@;", ":", " : ", "@= :x", "@\\", ":!@ X", "x :", "x  :  "] {
            let _ = Message::parse(junk);
        }
    }

    #[test]
    fn encoding_puts_a_colon_only_where_needed() {
        assert_eq!(Message::new("nick", ["rosey"]).encode().as_deref(), Ok("NICK rosey\r\n"));
        assert_eq!(
            Message::new("PRIVMSG", ["#c", "alice: 4 (2+2)"]).encode().as_deref(),
            Ok("PRIVMSG #c :alice: 4 (2+2)\r\n")
        );
        assert_eq!(Message::new("PRIVMSG", ["#c", ":)"]).encode().as_deref(), Ok("PRIVMSG #c ::)\r\n"));
        assert_eq!(Message::new("USER", ["r", "0", "*", ""]).encode().as_deref(), Ok("USER r 0 * :\r\n"));
        let round = parse(&Message::new("PRIVMSG", ["#c", " a  b "]).encode().expect("valid"));
        assert_eq!(round.params, ["#c", " a  b "]);
    }

    #[test]
    fn encoding_refuses_what_would_inject_a_line() {
        let injected = Message::new("PRIVMSG", ["#c", "hi\r\nQUIT :bye"]);
        assert_eq!(injected.encode(), Err(EncodeError::LineBreak { index: 1 }));
        assert_eq!(Message::new("PRIVMSG", ["#c\0", "x"]).encode(), Err(EncodeError::LineBreak { index: 0 }));
        assert_eq!(Message::new("PRIVMSG", ["#a b", "x"]).encode(), Err(EncodeError::BadMiddle { index: 0 }));
        assert_eq!(Message::new("JOIN", [":x", "k"]).encode(), Err(EncodeError::BadMiddle { index: 0 }));
        assert!(Message::new("PRIV MSG", ["x"]).encode().is_err());
    }
}
