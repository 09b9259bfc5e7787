//! One IRC connection's checked settings, built from `chat.irc[N]` (check.rs) and read by the
//! connector in `chat::irc`: they live here, below the chat, as the plugins' specs live in
//! `plugins::spec`.

use std::path::PathBuf;
use std::time::Duration;

use super::Secret;

/// Text bytes per PRIVMSG line. The server relays `:nick!user@host PRIVMSG #channel :text\r\n`
/// and cuts what passes 512 bytes; a nick, user name, host and channel of 30, 10, 63 and 50
/// bytes leave about 440, so 400 keeps a margin (tags travel outside the 512).
pub const TEXT_BYTES: usize = 400;

/// How fast the bot may send: a token bucket of `burst` lines, one more every `interval`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FloodLimit {
    pub burst: u32,
    pub interval: Duration,
}

impl FloodLimit {
    /// Safe on common networks (Libera.Chat, OFTC, InspIRCd's default class): 4 at once,
    /// then one every 2 s.
    pub const DEFAULT: FloodLimit = FloodLimit { burst: 4, interval: Duration::from_secs(2) };
    /// Twitch allows 20 messages per 30 s to a user who is not a moderator: at most
    /// 5 + 30 / 2 = 20 in any 30 s.
    pub const TWITCH: FloodLimit = FloodLimit { burst: 5, interval: Duration::from_secs(2) };
}

/// SASL PLAIN credentials.
#[derive(Debug, Clone, PartialEq)]
pub struct Sasl {
    pub account: String,
    pub password: Secret,
}

/// A checked `chat.irc[N]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct IrcSettings {
    pub name: String,
    pub server: String,
    pub port: u16,
    pub tls: bool,
    /// A PEM file of CA certificates trusted instead of the system's (a self-signed server).
    pub tls_ca: Option<PathBuf>,
    pub nick: String,
    pub alt_nicks: Vec<String>,
    pub user: String,
    pub realname: String,
    /// The server password (PASS); on Twitch the `oauth:` token.
    pub password: Option<Secret>,
    pub sasl: Option<Sasl>,
    pub channels: Vec<String>,
    /// Accounts (Twitch: user ids) allowed to use `!admin` on this connection.
    pub admins: Vec<String>,
    pub twitch: bool,
    pub max_reply_lines: usize,
    pub flood: FloodLimit,
    /// Replies waiting for the bucket; more are dropped and counted.
    pub queue: usize,
    /// Silence for this long → PING.
    pub idle_ping: Duration,
    /// No answer to that PING for this long → reconnect.
    pub ping_timeout: Duration,
    /// The first reconnect delay; doubled on each failure up to `reconnect_max_delay`.
    pub reconnect_delay: Duration,
    pub reconnect_max_delay: Duration,
}
