//! One IRC connection's state machine, pure: it is fed parsed messages and the time, and
//! answers with the lines to send and what happened. No I/O here, so every path (capability
//! negotiation, SASL, nick in use, pings, a silent link) is tested with a clock we control.
//!
//! Registration follows IRCv3 capability negotiation: `CAP LS 302`, then `PASS`, `NICK`,
//! `USER`; the server holds registration until `CAP END`, sent once the capabilities we asked
//! for are settled and SASL (when configured) has succeeded. Twitch takes `CAP REQ` for its own
//! capabilities and needs no `USER`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use tokio::time::Instant;

use super::proto::Message;
use super::text::{Said, said};
use crate::config::IrcSettings;

/// The capabilities asked for when offered (`sasl` only with SASL configured).
const WANTED_CAPS: [&str; 3] = ["message-tags", "account-tag", "server-time"];
const TWITCH_CAPS: &str = "twitch.tv/tags twitch.tv/commands";
/// AUTHENTICATE payloads are sent in pieces of this many bytes (IRCv3 SASL).
const SASL_CHUNK: usize = 400;
/// After the alternates, `nick1`..`nick9` are tried.
const NICK_SUFFIXES: usize = 9;
/// What CTCP VERSION answers.
const VERSION: &str = concat!("Rosey ", env!("CARGO_PKG_VERSION"), " (a chat-bot plugin host)");

/// Why a connection ended (the connection then waits and reconnects).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("SASL login as {account:?} failed ({code} {text}); check sasl.account and sasl.password")]
    SaslFailed { account: String, code: String, text: String },
    #[error("the server does not offer SASL, which sasl is configured for")]
    SaslUnavailable,
    #[error("the server refused the password ({0}); check password")]
    PasswordRefused(String),
    #[error("every nick is in use or refused (tried {0})")]
    NoNick(String),
    #[error("the server closed the link: {0}")]
    ServerError(String),
    #[error("no answer from the server for {0} s after a PING")]
    PingTimeout(u64),
}

impl Failure {
    /// Failures that retrying at once will not cure: the operator must look (waits longer).
    pub fn needs_operator(&self) -> bool {
        matches!(self, Failure::SaslFailed { .. } | Failure::SaslUnavailable | Failure::PasswordRefused(_))
    }
}

/// A chat message addressed to the bot or its channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heard {
    pub nick: String,
    /// The account the server vouches for (IRCv3 `account` tag; Twitch: `user-id`).
    pub account: Option<String>,
    /// The channel, or None for a private message.
    pub channel: Option<String>,
    /// Colour and format codes stripped.
    pub text: String,
}

/// What the session noticed, for the connection's status and for routing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Registered { nick: String },
    Joined(String),
    Left(String),
    Chat(Heard),
    Lag(Duration),
}

/// The answer to one message or tick.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Step {
    /// Protocol lines, sent at once (PONG, registration, JOIN).
    pub urgent: Vec<Message>,
    /// Lines a user caused (CTCP answers): through the flood bucket.
    pub paced: Vec<Message>,
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for CAP LS (or for the server to go on without it).
    Capabilities,
    /// CAP REQ sent.
    Requested,
    Authenticating,
    /// CAP END sent (or never needed): waiting for 001.
    Registering,
    Registered,
}

pub struct Session {
    settings: Arc<IrcSettings>,
    phase: Phase,
    /// The nick asked for (and, once registered, held).
    nick: String,
    nick_tries: usize,
    offered: Vec<String>,
    acked: BTreeSet<String>,
    channels: BTreeSet<String>,
    last_heard: Instant,
    ping: Option<(Instant, String)>,
    pings: u64,
}

impl Session {
    pub fn new(settings: Arc<IrcSettings>, now: Instant) -> Session {
        let nick = settings.nick.clone();
        Session {
            settings,
            phase: Phase::Capabilities,
            nick,
            nick_tries: 0,
            offered: Vec::new(),
            acked: BTreeSet::new(),
            channels: BTreeSet::new(),
            last_heard: now,
            ping: None,
            pings: 0,
        }
    }

    pub fn nick(&self) -> &str {
        &self.nick
    }

    pub fn is_registered(&self) -> bool {
        self.phase == Phase::Registered
    }

    /// The first lines on a new link.
    pub fn greet(&mut self) -> Vec<Message> {
        let s = &self.settings;
        let mut out = Vec::new();
        if s.twitch {
            out.push(Message::new("CAP", ["REQ", TWITCH_CAPS]));
            self.phase = Phase::Registering;
        } else {
            out.push(Message::new("CAP", ["LS", "302"]));
        }
        if let Some(password) = &s.password {
            out.push(Message::new("PASS", [password.expose()]));
        }
        out.push(Message::new("NICK", [self.nick.as_str()]));
        if !s.twitch {
            out.push(Message::new("USER", [s.user.as_str(), "0", "*", s.realname.as_str()]));
        }
        out
    }

    /// Take one message from the server.
    pub fn handle(&mut self, m: &Message, now: Instant) -> Result<Step, Failure> {
        self.last_heard = now;
        let mut step = Step::default();
        match m.command.as_str() {
            "PING" => step.urgent.push(Message::new("PONG", m.params.clone())),
            "PONG" => {
                if let Some((sent, token)) = &self.ping
                    && m.params.iter().any(|p| p == token)
                {
                    step.events.push(Event::Lag(now.saturating_duration_since(*sent)));
                    self.ping = None;
                }
            }
            "CAP" => self.capability(m, &mut step)?,
            "AUTHENTICATE" if m.param(0) == "+" => step.urgent.extend(self.sasl_payload()),
            "903" | "907" if self.phase == Phase::Authenticating => self.end_capabilities(&mut step),
            "902" | "904" | "905" | "906" => {
                let account = self.settings.sasl.as_ref().map(|s| s.account.clone()).unwrap_or_default();
                let text = m.params.last().cloned().unwrap_or_default();
                return Err(Failure::SaslFailed { account, code: m.command.clone(), text });
            }
            "464" => return Err(Failure::PasswordRefused(m.params.last().cloned().unwrap_or_default())),
            "432" | "433" | "436" | "437" if self.phase != Phase::Registered => {
                self.nick = self.next_nick()?;
                step.urgent.push(Message::new("NICK", [self.nick.as_str()]));
            }
            "001" => {
                self.phase = Phase::Registered;
                if let Some(nick) = m.params.first().filter(|n| !n.is_empty()) {
                    self.nick = nick.clone();
                }
                step.events.push(Event::Registered { nick: self.nick.clone() });
                step.urgent.extend(self.join_lines());
            }
            "NICK" if self.is_me(m) => self.nick = m.param(0).to_owned(),
            "JOIN" if self.is_me(m) => {
                let channel = m.param(0).to_owned();
                self.channels.insert(channel.clone());
                step.events.push(Event::Joined(channel));
            }
            "PART" if self.is_me(m) => self.left(m.param(0), &mut step),
            "KICK" if m.param(1).eq_ignore_ascii_case(&self.nick) => self.left(m.param(0), &mut step),
            "ERROR" => return Err(Failure::ServerError(m.params.last().cloned().unwrap_or_default())),
            // Twitch says a wrong token this way, before registration.
            "NOTICE" if self.phase != Phase::Registered && m.param(1).contains("authentication failed") => {
                return Err(Failure::PasswordRefused(m.param(1).to_owned()));
            }
            "PRIVMSG" if self.is_registered() => self.privmsg(m, &mut step),
            // NOTICEs are never answered (the rule that keeps bots from answering each other),
            // and everything else needs nothing from a bot.
            _ => {}
        }
        Ok(step)
    }

    /// Look at the clock: a PING after `idle_ping` of silence, a failure when it goes
    /// unanswered for `ping_timeout`.
    pub fn tick(&mut self, now: Instant) -> Result<Vec<Message>, Failure> {
        if let Some((sent, _)) = &self.ping {
            if self.last_heard < *sent && now.saturating_duration_since(*sent) >= self.settings.ping_timeout {
                return Err(Failure::PingTimeout(self.settings.ping_timeout.as_secs()));
            }
            return Ok(Vec::new());
        }
        if now.saturating_duration_since(self.last_heard) >= self.settings.idle_ping {
            self.pings += 1;
            let token = format!("rosey-{}", self.pings);
            self.ping = Some((now, token.clone()));
            return Ok(vec![Message::new("PING", [token])]);
        }
        Ok(Vec::new())
    }

    /// When [`Session::tick`] has something to do next.
    pub fn next_tick(&self) -> Instant {
        match &self.ping {
            Some((sent, _)) => *sent + self.settings.ping_timeout,
            None => self.last_heard + self.settings.idle_ping,
        }
    }

    fn is_me(&self, m: &Message) -> bool {
        m.nick().is_some_and(|n| n.eq_ignore_ascii_case(&self.nick))
    }

    fn left(&mut self, channel: &str, step: &mut Step) {
        if self.channels.remove(channel) {
            step.events.push(Event::Left(channel.to_owned()));
        }
    }

    fn capability(&mut self, m: &Message, step: &mut Step) -> Result<(), Failure> {
        match m.param(1).to_ascii_uppercase().as_str() {
            // `CAP * LS * :caps` continues on the next line; the last has no `*`.
            "LS" if self.phase == Phase::Capabilities => {
                let more = m.params.len() > 3 && m.param(2) == "*";
                self.offered.extend(m.params.last().into_iter().flat_map(|l| l.split(' ')).map(str::to_owned));
                if more {
                    return Ok(());
                }
                let offered: BTreeSet<&str> = self.offered.iter().map(|c| c.split('=').next().unwrap_or(c)).collect();
                let sasl = self.settings.sasl.is_some();
                if sasl && !offered.contains("sasl") {
                    return Err(Failure::SaslUnavailable);
                }
                let mut wanted: Vec<&str> = WANTED_CAPS.iter().copied().filter(|c| offered.contains(c)).collect();
                if sasl {
                    wanted.push("sasl");
                }
                if wanted.is_empty() {
                    self.end_capabilities(step);
                } else {
                    self.phase = Phase::Requested;
                    step.urgent.push(Message::new("CAP", ["REQ".to_owned(), wanted.join(" ")]));
                }
            }
            "ACK" => {
                self.acked.extend(m.params.last().into_iter().flat_map(|l| l.split(' ')).map(str::to_owned));
                if self.phase == Phase::Requested {
                    if self.settings.sasl.is_some() && self.acked.contains("sasl") {
                        self.phase = Phase::Authenticating;
                        step.urgent.push(Message::new("AUTHENTICATE", ["PLAIN"]));
                    } else {
                        self.end_capabilities(step);
                    }
                }
            }
            "NAK" if self.phase == Phase::Requested => {
                if self.settings.sasl.is_some() {
                    return Err(Failure::SaslUnavailable);
                }
                self.end_capabilities(step);
            }
            _ => {}
        }
        Ok(())
    }

    fn end_capabilities(&mut self, step: &mut Step) {
        self.phase = Phase::Registering;
        step.urgent.push(Message::new("CAP", ["END"]));
    }

    /// `AUTHENTICATE` lines carrying `account\0account\0password`, base64, in 400-byte pieces
    /// (a last piece of exactly 400 is followed by `+`).
    fn sasl_payload(&self) -> Vec<Message> {
        let Some(sasl) = &self.settings.sasl else { return Vec::new() };
        let plain = format!("{0}\0{0}\0{1}", sasl.account, sasl.password.expose());
        let encoded = base64::engine::general_purpose::STANDARD.encode(plain);
        let mut out: Vec<Message> = encoded
            .as_bytes()
            .chunks(SASL_CHUNK)
            .map(|chunk| Message::new("AUTHENTICATE", [String::from_utf8_lossy(chunk).into_owned()]))
            .collect();
        if encoded.len() % SASL_CHUNK == 0 {
            out.push(Message::new("AUTHENTICATE", ["+"]));
        }
        out
    }

    fn next_nick(&mut self) -> Result<String, Failure> {
        self.nick_tries += 1;
        let s = &self.settings;
        let n = self.nick_tries;
        if let Some(alt) = s.alt_nicks.get(n - 1) {
            return Ok(alt.clone());
        }
        let suffix = n - s.alt_nicks.len();
        if suffix <= NICK_SUFFIXES {
            return Ok(format!("{}{suffix}", s.nick));
        }
        let mut tried = vec![s.nick.clone()];
        tried.extend(s.alt_nicks.iter().cloned());
        tried.push(format!("{}1..{}{NICK_SUFFIXES}", s.nick, s.nick));
        Err(Failure::NoNick(tried.join(", ")))
    }

    /// `JOIN #a,#b,…`, as many lines as the channels need.
    fn join_lines(&self) -> Vec<Message> {
        let mut lines = Vec::new();
        let mut current = String::new();
        for channel in &self.settings.channels {
            if !current.is_empty() && current.len() + channel.len() + 1 > crate::config::TEXT_BYTES {
                lines.push(Message::new("JOIN", [std::mem::take(&mut current)]));
            }
            if !current.is_empty() {
                current.push(',');
            }
            current.push_str(channel);
        }
        if !current.is_empty() {
            lines.push(Message::new("JOIN", [current]));
        }
        lines
    }

    fn privmsg(&self, m: &Message, step: &mut Step) {
        let Some(nick) = m.nick() else { return };
        if nick.eq_ignore_ascii_case(&self.nick) {
            return;
        }
        let target = m.param(0);
        let channel = (!target.eq_ignore_ascii_case(&self.nick)).then(|| target.to_owned());
        match said(m.param(1)) {
            Said::Ctcp { verb, args } => {
                let answer = match verb.as_str() {
                    "VERSION" => VERSION.to_owned(),
                    "PING" => args.replace('\u{1}', ""),
                    _ => return,
                };
                let text = format!("\u{1}{verb} {answer}\u{1}");
                step.paced.push(Message::new("NOTICE", [nick.to_owned(), text]));
            }
            Said::Text(text) => {
                let account = if self.settings.twitch {
                    m.tag("user-id")
                } else {
                    // `*` is IRCv3's "not logged in".
                    m.tag("account").filter(|a| *a != "*")
                };
                // Twitch's display name is the login with the user's own capitals (`Ronni`
                // for `ronni`); one that differs more (a localized name) would not mention them.
                let shown = m
                    .tag("display-name")
                    .filter(|shown| self.settings.twitch && shown.eq_ignore_ascii_case(nick))
                    .unwrap_or(nick);
                step.events.push(Event::Chat(Heard {
                    nick: shown.to_owned(),
                    account: account.filter(|a| !a.is_empty()).map(str::to_owned),
                    channel,
                    text,
                }));
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::Secret;
    use crate::config::{FloodLimit, Sasl};

    pub(crate) fn settings() -> IrcSettings {
        IrcSettings {
            name: "test".into(),
            server: "irc.local".into(),
            port: 6667,
            tls: false,
            tls_ca: None,
            nick: "rosey".into(),
            alt_nicks: vec!["rosey_".into()],
            user: "rosey".into(),
            realname: "Rosey".into(),
            password: None,
            sasl: None,
            channels: vec!["#a".into(), "#b".into()],
            admins: Vec::new(),
            twitch: false,
            max_reply_lines: 4,
            flood: FloodLimit::DEFAULT,
            queue: 8,
            idle_ping: Duration::from_secs(120),
            ping_timeout: Duration::from_secs(60),
            reconnect_delay: Duration::from_secs(2),
            reconnect_max_delay: Duration::from_secs(300),
        }
    }

    fn lines(messages: &[Message]) -> Vec<String> {
        messages.iter().map(|m| m.encode().expect("valid").trim_end().to_owned()).collect()
    }

    fn feed(session: &mut Session, line: &str) -> Result<Step, Failure> {
        session.handle(&Message::parse(line).expect("a line"), Instant::now())
    }

    fn sasl_settings() -> IrcSettings {
        IrcSettings { sasl: Some(Sasl { account: "rosey".into(), password: Secret::new("pw") }), ..settings() }
    }

    #[tokio::test(start_paused = true)]
    async fn registers_with_sasl_then_joins_its_channels() {
        let mut s = Session::new(Arc::new(sasl_settings()), Instant::now());
        assert_eq!(lines(&s.greet()), ["CAP LS 302", "NICK rosey", "USER rosey 0 * Rosey"]);
        let step = feed(&mut s, ":irc.local CAP * LS * :account-tag batch").expect("ok");
        assert!(step.urgent.is_empty(), "waits for the last LS line");
        let step = feed(&mut s, ":irc.local CAP * LS :message-tags sasl=PLAIN,EXTERNAL").expect("ok");
        assert_eq!(lines(&step.urgent), ["CAP REQ :message-tags account-tag sasl"]);
        let step = feed(&mut s, ":irc.local CAP * ACK :message-tags account-tag sasl").expect("ok");
        assert_eq!(lines(&step.urgent), ["AUTHENTICATE PLAIN"]);
        let step = feed(&mut s, "AUTHENTICATE +").expect("ok");
        // base64("rosey\0rosey\0pw")
        assert_eq!(lines(&step.urgent), ["AUTHENTICATE cm9zZXkAcm9zZXkAcHc="]);
        let step = feed(&mut s, ":irc.local 903 * :SASL authentication successful").expect("ok");
        assert_eq!(lines(&step.urgent), ["CAP END"]);
        let step = feed(&mut s, ":irc.local 001 rosey :Welcome").expect("ok");
        assert_eq!(lines(&step.urgent), ["JOIN #a,#b"]);
        assert_eq!(step.events, [Event::Registered { nick: "rosey".into() }]);
        let step = feed(&mut s, ":rosey!rosey@h JOIN #a").expect("ok");
        assert_eq!(step.events, [Event::Joined("#a".into())]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wrong_sasl_password_is_a_clear_failure() {
        let mut s = Session::new(Arc::new(sasl_settings()), Instant::now());
        s.greet();
        feed(&mut s, "CAP * LS :sasl").expect("ok");
        feed(&mut s, "CAP * ACK :sasl").expect("ok");
        let failure = feed(&mut s, ":irc.local 904 * :SASL authentication failed").expect_err("fails");
        assert!(failure.needs_operator());
        assert_eq!(
            failure.to_string(),
            "SASL login as \"rosey\" failed (904 SASL authentication failed); check sasl.account and sasl.password"
        );
        let mut s = Session::new(Arc::new(sasl_settings()), Instant::now());
        assert_eq!(feed(&mut s, "CAP * LS :message-tags"), Err(Failure::SaslUnavailable));
    }

    #[tokio::test(start_paused = true)]
    async fn without_capabilities_or_sasl_registration_goes_on() {
        let mut s = Session::new(Arc::new(settings()), Instant::now());
        s.greet();
        assert_eq!(lines(&feed(&mut s, "CAP * LS :batch").expect("ok").urgent), ["CAP END"]);
        // A server without CAP at all goes straight to 001.
        let mut s = Session::new(Arc::new(settings()), Instant::now());
        s.greet();
        feed(&mut s, ":irc.local 421 * CAP :Unknown command").expect("ok");
        assert!(
            feed(&mut s, ":irc.local 001 rosey :hi")
                .expect("ok")
                .events
                .contains(&Event::Registered { nick: "rosey".into() })
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_nick_in_use_takes_the_alternates_then_numbers() {
        let mut s = Session::new(Arc::new(settings()), Instant::now());
        s.greet();
        let mut tried = Vec::new();
        loop {
            match feed(&mut s, ":irc.local 433 * x :Nickname is already in use") {
                Ok(step) => tried.extend(lines(&step.urgent)),
                Err(failure) => {
                    assert!(matches!(failure, Failure::NoNick(_)));
                    break;
                }
            }
        }
        assert_eq!(tried[..3], ["NICK rosey_", "NICK rosey1", "NICK rosey2"]);
        assert_eq!(tried.len(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn twitch_asks_for_its_capabilities_and_sends_its_token() {
        let twitch = IrcSettings { twitch: true, password: Some(Secret::new("oauth:abc")), ..settings() };
        let mut s = Session::new(Arc::new(twitch), Instant::now());
        assert_eq!(lines(&s.greet()), ["CAP REQ :twitch.tv/tags twitch.tv/commands", "PASS oauth:abc", "NICK rosey"]);
        let failure = feed(&mut s, ":tmi.twitch.tv NOTICE * :Login authentication failed").expect_err("fails");
        assert!(failure.needs_operator());
        let mut s = Session::new(Arc::new(IrcSettings { twitch: true, ..settings() }), Instant::now());
        s.greet();
        feed(&mut s, ":tmi.twitch.tv 001 rosey :Welcome, GLHF!").expect("ok");
        let step =
            feed(&mut s, "@user-id=1337;display-name=Al :al!al@al.tmi.twitch.tv PRIVMSG #a :!admin list").expect("ok");
        let Event::Chat(heard) = &step.events[0] else { panic!("chat") };
        assert_eq!((heard.account.as_deref(), heard.nick.as_str()), (Some("1337"), "Al"), "user names from tags");
        let step = feed(&mut s, "@display-name=アル :al!al@al.tmi.twitch.tv PRIVMSG #a :hi").expect("ok");
        let Event::Chat(heard) = &step.events[0] else { panic!("chat") };
        assert_eq!(heard.nick, "al", "a display name that is not the login is not used to mention");
    }

    fn registered() -> Session {
        let mut s = Session::new(Arc::new(settings()), Instant::now());
        s.greet();
        feed(&mut s, ":irc.local 001 rosey :hi").expect("ok");
        s
    }

    #[tokio::test(start_paused = true)]
    async fn chat_is_heard_with_the_account_the_server_vouches_for() {
        let mut s = registered();
        let step = feed(&mut s, "@account=alice :alice!a@h PRIVMSG #a :\u{2}!roll\u{2} 2d6").expect("ok");
        let alice = Heard {
            nick: "alice".into(),
            account: Some("alice".into()),
            channel: Some("#a".into()),
            text: "!roll 2d6".into(),
        };
        assert_eq!(step.events, [Event::Chat(alice)]);
        let step = feed(&mut s, ":alice!a@h PRIVMSG Rosey :!roll").expect("ok");
        let Event::Chat(heard) = &step.events[0] else { panic!("chat") };
        assert_eq!((heard.account.as_deref(), heard.channel.as_deref()), (None, None), "private, no account");
        assert_eq!(feed(&mut s, "@account=* :bob!b@h PRIVMSG #a :x").expect("ok").events.len(), 1);
        assert!(feed(&mut s, ":rosey!r@h PRIVMSG #a :!roll").expect("ok").events.is_empty(), "itself");
        assert!(feed(&mut s, ":bob!b@h NOTICE #a :!roll").expect("ok") == Step::default(), "a notice");
        assert!(feed(&mut s, ":irc.local PRIVMSG #a :!roll").expect("ok").events.is_empty(), "a server");
        let empty = feed(&mut s, ":bob!b@h PRIVMSG #a").expect("ok");
        assert_eq!(empty.events.len(), 1, "a PRIVMSG with no text is heard as empty text, harmlessly");
    }

    #[tokio::test(start_paused = true)]
    async fn ctcp_version_and_ping_are_answered_others_ignored() {
        let mut s = registered();
        let step = feed(&mut s, ":bob!b@h PRIVMSG rosey :\u{1}VERSION\u{1}").expect("ok");
        assert_eq!(step.paced[0].params[0], "bob");
        assert!(step.paced[0].params[1].starts_with("\u{1}VERSION Rosey "));
        let step = feed(&mut s, ":bob!b@h PRIVMSG rosey :\u{1}PING 42\u{1}").expect("ok");
        assert_eq!(lines(&step.paced), ["NOTICE bob :\u{1}PING 42\u{1}"]);
        assert_eq!(feed(&mut s, ":bob!b@h PRIVMSG #a :\u{1}ACTION waves\u{1}").expect("ok"), Step::default());
        assert_eq!(feed(&mut s, ":bob!b@h PRIVMSG #a :\u{1}DCC SEND x\u{1}").expect("ok"), Step::default());
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_link_is_pinged_then_given_up() {
        let mut s = registered();
        assert_eq!(lines(&feed(&mut s, "PING :irc.local").expect("ok").urgent), ["PONG irc.local"]);
        let start = Instant::now();
        assert_eq!(s.next_tick(), start + Duration::from_secs(120));
        tokio::time::advance(Duration::from_secs(119)).await;
        assert!(s.tick(Instant::now()).expect("ok").is_empty());
        tokio::time::advance(Duration::from_secs(1)).await;
        let ping = s.tick(Instant::now()).expect("ok");
        assert_eq!(ping[0].command, "PING");
        let token = ping[0].params[0].clone();
        tokio::time::advance(Duration::from_millis(250)).await;
        let pong = Message::parse(&format!(":irc.local PONG irc.local :{token}")).expect("line");
        assert_eq!(s.handle(&pong, Instant::now()).expect("ok").events, [Event::Lag(Duration::from_millis(250))]);
        // Silent again, and this time the PING goes unanswered.
        tokio::time::advance(Duration::from_secs(120)).await;
        assert_eq!(s.tick(Instant::now()).expect("ok").len(), 1);
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(s.tick(Instant::now()).expect("ok").is_empty());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(s.tick(Instant::now()), Err(Failure::PingTimeout(60)));
    }

    #[tokio::test(start_paused = true)]
    async fn server_errors_and_kicks_are_noticed() {
        let mut s = registered();
        feed(&mut s, ":rosey!r@h JOIN #a").expect("ok");
        assert_eq!(feed(&mut s, ":op!o@h KICK #a rosey :bye").expect("ok").events, [Event::Left("#a".into())]);
        let error = feed(&mut s, "ERROR :Closing link: (rosey@h) [Excess Flood]").expect_err("ends");
        assert_eq!(error.to_string(), "the server closed the link: Closing link: (rosey@h) [Excess Flood]");
        assert!(!error.needs_operator());
    }
}
