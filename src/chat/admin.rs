//! `!admin`: the operator's commands in chat. `status`, `list` and `metrics` answer from the
//! latest metrics snapshot; `reload`, `restart`, `stop`, `start` and `reload-config` ask the
//! running bot through [`ActionDoor`] (which writes the audit line) and answer when the action has
//! finished, without holding up the chat meanwhile. `stop` and `restart` take the plugin down,
//! so they wait for a `yes` from the same user within [`CONFIRM_WITHIN`]; anything else that
//! user says first cancels them.
//!
//! Who may use `!admin` is a property of the chat source, an [`Authority`]: on the console only
//! its own user (see [`Authority::console`]); on a chat network only the accounts the server
//! vouches for (IRCv3 `account` tag, Twitch `user-id`) that are in that network's `admins` or
//! the top-level `admins`/`owner`. A nick alone proves nothing: anyone can take it. Network
//! admins give at most one command per [`NETWORK_PACE`]; every command and refusal is kept in
//! the [`AuditLog`] (the last 100) and written to the `audit` log target.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::warn;

use super::parse::{CONSOLE_USER, ChatMessage};
use super::{Answer, Origin};
use crate::control::text::{ActionSummary, ConfigSummary};
use crate::control::{AUDIT_TARGET, Action, ActionDoor, ConfigReloadError, Trigger};
use crate::metrics::Snapshot;
use crate::plugins::ChatReply;
use crate::plugins::command_table::ADMIN_COMMAND;
use crate::plugins::command_table::HOST_NAME;

mod audit;
mod status;

pub use audit::{AuditEntry, AuditLog};

/// How long a `stop` or `restart` waits for its `yes`.
pub const CONFIRM_WITHIN: Duration = Duration::from_secs(30);
/// A chat network's admin gives at most one command per this long (Sortie 4).
pub const NETWORK_PACE: Duration = Duration::from_secs(5);
/// `!admin audit` shows this many of the latest entries.
const AUDIT_SHOWN: usize = 5;

/// Who may give `!admin` commands on one chat source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    admins: BTreeSet<String>,
}

impl Authority {
    /// The console is the operator's own terminal: a line without a `name:` prefix (or with the
    /// prefix `console`) is the operator's. Any other prefix stands for another chat user, so
    /// `alice: !admin stop dice` is alice asking, and refused.
    pub fn console() -> Authority {
        Authority::of([CONSOLE_USER])
    }

    /// Exactly these users (a chat network's configured admins).
    pub fn of<S: Into<String>>(admins: impl IntoIterator<Item = S>) -> Authority {
        Authority { admins: admins.into_iter().map(Into::into).collect() }
    }

    pub fn permits(&self, user: &str) -> bool {
        self.admins.contains(user)
    }
}

/// One `!admin` command, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminCommand {
    Help,
    /// Every plugin, or one.
    Status(Option<String>),
    List,
    Metrics,
    Act {
        action: Action,
        plugin: String,
    },
    ReloadConfig,
    /// The latest admin commands and refusals.
    Audit,
}

/// An `!admin` line that names no command, in words for its sender.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Usage {
    #[error("unknown !admin command {0:?}; !admin help lists them")]
    Unknown(String),
    #[error("!admin {0} needs a plugin name: !admin {0} NAME")]
    NoPlugin(Action),
    #[error("!admin {command} takes {takes}; {extra:?} is one word too many")]
    TooMany { command: String, takes: &'static str, extra: String },
}

impl AdminCommand {
    /// The command's name, as a metric label.
    pub fn label(&self) -> &'static str {
        match self {
            AdminCommand::Help => "help",
            AdminCommand::Status(_) => "status",
            AdminCommand::List => "list",
            AdminCommand::Metrics => "metrics",
            AdminCommand::Act { action: Action::Reload, .. } => "reload",
            AdminCommand::Act { action: Action::Restart, .. } => "restart",
            AdminCommand::Act { action: Action::Stop, .. } => "stop",
            AdminCommand::Act { action: Action::Start, .. } => "start",
            AdminCommand::ReloadConfig => "reload-config",
            AdminCommand::Audit => "audit",
        }
    }

    /// The words after `!admin`. Subcommands ignore ASCII case; plugin names do not.
    pub fn parse(args: &str) -> Result<AdminCommand, Usage> {
        let mut words = args.split_whitespace();
        let Some(first) = words.next() else { return Ok(AdminCommand::Help) };
        let sub = first.to_ascii_lowercase();
        let name = words.next().map(str::to_owned);
        let too_many = |takes, extra: Option<&str>| match extra {
            Some(extra) => Err(Usage::TooMany { command: sub.clone(), takes, extra: extra.to_owned() }),
            None => Ok(()),
        };
        let command = match (sub.as_str(), sub.parse::<Action>()) {
            (_, Ok(action)) => {
                let plugin = name.ok_or(Usage::NoPlugin(action))?;
                too_many("one plugin name", words.next())?;
                return Ok(AdminCommand::Act { action, plugin });
            }
            ("status", _) => {
                too_many("at most one plugin name", words.next())?;
                return Ok(AdminCommand::Status(name));
            }
            ("help", _) => AdminCommand::Help,
            ("list", _) => AdminCommand::List,
            ("metrics", _) => AdminCommand::Metrics,
            ("reload-config", _) => AdminCommand::ReloadConfig,
            ("audit", _) => AdminCommand::Audit,
            _ => return Err(Usage::Unknown(first.to_owned())),
        };
        too_many("no arguments", name.as_deref())?;
        Ok(command)
    }
}

/// A `stop` or `restart` waiting for its `yes`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pending {
    action: Action,
    plugin: String,
    expires_at: Instant,
}

/// What the admin desk made of one chat message.
#[derive(Debug, Default)]
pub struct Heard {
    /// Its answers, at once (an action's outcome comes later, from [`AdminDesk::finished`]).
    pub replies: Vec<Answer>,
    /// It was for the desk; otherwise it goes on to the plugins as usual.
    pub taken: bool,
}

/// One chat connection's name (`chat.irc[].name`) and the accounts obeyed there.
#[derive(Debug, Clone)]
pub struct NetworkAdmins {
    pub name: String,
    pub admins: Authority,
}

/// Who said a message: where, and the account the chat network vouches for (none on the
/// console, where the user name itself is the identity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Speaker {
    pub origin: Origin,
    pub account: Option<String>,
}

impl Speaker {
    pub fn console() -> Speaker {
        Speaker { origin: Origin::Console, account: None }
    }
}

/// What the desk needs to answer and act.
pub struct AdminDesk {
    authority: Authority,
    /// Each chat network's admins (accounts), by connection index.
    networks: Vec<NetworkAdmins>,
    controls: ActionDoor,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    /// Where the operator finds the dashboard; None when it is disabled.
    dashboard_url: Option<String>,
    /// By identity ([`AdminDesk::identity`]).
    pending: HashMap<String, Pending>,
    /// When each network admin last gave a command (one per [`NETWORK_PACE`]).
    last_command: HashMap<String, Instant>,
    audit: AuditLog,
    running: JoinSet<Answer>,
}

impl AdminDesk {
    pub fn new(
        authority: Authority,
        controls: ActionDoor,
        snapshots: watch::Receiver<Arc<Snapshot>>,
        dashboard_url: Option<String>,
    ) -> AdminDesk {
        AdminDesk {
            authority,
            networks: Vec::new(),
            controls,
            snapshots,
            dashboard_url,
            pending: HashMap::new(),
            last_command: HashMap::new(),
            audit: AuditLog::default(),
            running: JoinSet::new(),
        }
    }

    /// The admins of each chat network, by connection index.
    pub fn set_networks(&mut self, networks: Vec<NetworkAdmins>) {
        self.networks = networks;
    }

    /// The name of the chat connection `speaker` wrote on (empty on the console).
    fn network_name(&self, speaker: &Speaker) -> String {
        match &speaker.origin {
            Origin::Console => String::new(),
            Origin::Irc { connection, .. } => {
                self.networks.get(*connection).map(|n| n.name.clone()).unwrap_or_default()
            }
        }
    }

    /// The last admin commands and refusals (for `GET /api/audit`).
    pub fn audit_log(&self) -> AuditLog {
        self.audit.clone()
    }

    /// Who `speaker` is to the desk: the console's user name, or on a network its account
    /// (None: the network vouches for nobody, so nobody is obeyed).
    fn identity(speaker: &Speaker, user: &str) -> Option<String> {
        match &speaker.origin {
            Origin::Console => Some(user.to_owned()),
            Origin::Irc { connection, .. } => speaker.account.as_ref().map(|a| format!("{connection}/{a}")),
        }
    }

    /// Look at one chat message before it is routed: a `yes` to a pending confirmation, an
    /// `!admin` command, or (passed on) anything else, which cancels the sender's confirmation.
    pub fn hear(&mut self, message: ChatMessage<'_>, speaker: &Speaker, now: Instant) -> Heard {
        let user = message.user;
        let mut heard = Heard::default();
        let origin = &speaker.origin;
        let identity = Self::identity(speaker, user);
        if let Some(pending) = identity.as_ref().and_then(|id| self.pending.remove(id)) {
            let live = now < pending.expires_at;
            if message.text.eq_ignore_ascii_case("yes") {
                heard.taken = true;
                heard.replies.push(if live {
                    self.start(pending.action, pending.plugin, speaker, user)
                } else {
                    let secs = CONFIRM_WITHIN.as_secs();
                    let text = format!(
                        "{} {}: not confirmed within {secs} s; nothing was done",
                        pending.action, pending.plugin
                    );
                    Answer::new(origin.clone(), reply(user, text))
                });
                return heard;
            }
            if live {
                let text = format!("{} {} cancelled", pending.action, pending.plugin);
                heard.replies.push(Answer::new(origin.clone(), reply(user, text)));
            }
        }
        let Some(command) = message.command().filter(|c| c.command.eq_ignore_ascii_case(ADMIN_COMMAND)) else {
            return heard;
        };
        heard.taken = true;
        let refusal = self.refusal(speaker, user, identity.as_deref(), now);
        let who = who(speaker, user, &self.network_name(speaker));
        let parsed = AdminCommand::parse(&command.args);
        let label = parsed.as_ref().map_or("invalid", AdminCommand::label);
        if let Some(refusal) = refusal {
            self.audit.count(label, "refused");
            warn!(target: AUDIT_TARGET, who = %who, command = ?command.args, outcome = "refused", reason = %refusal, "audit: !admin refused");
            self.audit.record(&who, &command.args, &format!("refused: {refusal}"));
            heard.replies.push(Answer::new(origin.clone(), reply(user, refusal)));
            return heard;
        }
        self.audit.record(&who, &command.args, "accepted");
        let admin = speaker.account.as_deref().unwrap_or(user);
        self.audit.count(label, admin);
        let answer = match parsed {
            Err(usage) => Answer::new(origin.clone(), reply(user, usage.to_string())),
            Ok(command) => self.obey(command, speaker, identity.unwrap_or_default(), user, now),
        };
        heard.replies.push(answer);
        heard
    }

    /// Why `speaker` may not give an `!admin` command now, in words for them.
    fn refusal(&mut self, speaker: &Speaker, user: &str, identity: Option<&str>, now: Instant) -> Option<String> {
        let Origin::Irc { connection, .. } = &speaker.origin else {
            return (!self.authority.permits(user))
                .then(|| format!("!{ADMIN_COMMAND} is for the operator only; {user} may not use it"));
        };
        let Some(account) = speaker.account.as_deref() else {
            return Some(format!(
                "!{ADMIN_COMMAND} needs an account the server vouches for; {user} is not logged in (identify to services first)"
            ));
        };
        if !self.networks.get(*connection).is_some_and(|n| n.admins.permits(account)) {
            return Some(format!("!{ADMIN_COMMAND} is for the bot's admins; account {account} is not one"));
        }
        let identity = identity.unwrap_or_default().to_owned();
        if let Some(last) = self.last_command.get(&identity) {
            let wait = NETWORK_PACE.saturating_sub(now.saturating_duration_since(*last));
            if !wait.is_zero() {
                let secs = wait.as_secs_f64().ceil();
                return Some(format!(
                    "one !{ADMIN_COMMAND} command per {} s; try again in {secs} s",
                    NETWORK_PACE.as_secs()
                ));
            }
        }
        self.last_command.insert(identity, now);
        None
    }

    /// Are actions under way (their outcomes still to be answered)?
    pub fn is_busy(&self) -> bool {
        !self.running.is_empty()
    }

    /// The answer of the next action to finish; waits forever while none runs.
    pub async fn finished(&mut self) -> Answer {
        loop {
            match self.running.join_next().await {
                Some(Ok(answer)) => return answer,
                Some(Err(e)) => warn!("an !admin action's task ended without an answer: {e}"),
                None => std::future::pending::<()>().await,
            }
        }
    }

    fn obey(&mut self, command: AdminCommand, speaker: &Speaker, identity: String, user: &str, now: Instant) -> Answer {
        let snapshot = self.snapshots.borrow().clone();
        let origin = speaker.origin.clone();
        // Details the channel need not see go to the asker alone.
        let private = |text: String| Answer { private: true, ..Answer::new(origin.clone(), reply(user, text)) };
        let public = |text: String| Answer::new(origin.clone(), reply(user, text));
        match command {
            AdminCommand::Help => private(status::HELP.to_owned()),
            AdminCommand::Status(None) => private(status::overview(&snapshot)),
            AdminCommand::Status(Some(name)) => private(status::plugin(&snapshot, &name)),
            AdminCommand::List => private(status::list(&snapshot)),
            AdminCommand::Metrics => private(status::metrics(&snapshot, self.dashboard_url.as_deref())),
            AdminCommand::Audit => private(self.audit.summary(AUDIT_SHOWN)),
            AdminCommand::Act { action: action @ (Action::Stop | Action::Restart), plugin } => {
                let why = match action {
                    Action::Stop => "it stays STOPPED, its commands unanswered, until !admin start",
                    _ => "its commands get the \"not running\" reply while it restarts",
                };
                let secs = CONFIRM_WITHIN.as_secs();
                let text = format!("{action} {plugin}? {why}; type yes within {secs} s to confirm");
                self.pending.insert(identity, Pending { action, plugin, expires_at: now + CONFIRM_WITHIN });
                public(text)
            }
            AdminCommand::Act { action, plugin } => self.start(action, plugin, speaker, user),
            AdminCommand::ReloadConfig => {
                let (controls, trigger, asker) =
                    (self.controls.clone(), trigger(speaker, user, &self.network_name(speaker)), user.to_owned());
                let back = origin.clone();
                self.running.spawn(async move {
                    let text = match controls.reload_config(trigger).await {
                        Ok(report) => ConfigSummary::of(&report).lines().join("\n"),
                        Err(ConfigReloadError::Invalid(problems)) => {
                            format!("config reload refused, nothing was changed:\n{problems}")
                        }
                        Err(e) => format!("config reload refused: {e}"),
                    };
                    Answer::new(back, reply(&asker, text))
                });
                public("reloading the config…".to_owned())
            }
        }
    }

    /// Ask for `action` on `plugin`; its outcome is answered when it has finished.
    fn start(&mut self, action: Action, plugin: String, speaker: &Speaker, user: &str) -> Answer {
        let ack = format!("{} {plugin}…", under_way(action));
        let (controls, trigger, asker) =
            (self.controls.clone(), trigger(speaker, user, &self.network_name(speaker)), user.to_owned());
        let (back, audit, who) =
            (speaker.origin.clone(), self.audit.clone(), who(speaker, user, &self.network_name(speaker)));
        self.running.spawn(async move {
            let text = match controls.act(&plugin, action, trigger).await {
                Ok(report) => ActionSummary::of(&report).line(),
                Err(e) => format!("cannot {action} {plugin}: {e}"),
            };
            audit.record(&who, &format!("{action} {plugin}"), &text);
            Answer::new(back, reply(&asker, text))
        });
        Answer::new(speaker.origin.clone(), reply(user, ack))
    }
}

fn under_way(action: Action) -> &'static str {
    match action {
        Action::Reload => "reloading",
        Action::Restart => "restarting",
        Action::Stop => "stopping",
        Action::Start => "starting",
    }
}

/// Who asked, as actions and the audit log record it: the console user, or a network's nick
/// with the account the server vouched for. A nick without an account is not an admin and
/// asks for nothing, so it only ever reaches the audit log ([`who`]).
fn trigger(speaker: &Speaker, user: &str, network: &str) -> Trigger {
    match (&speaker.origin, &speaker.account) {
        (Origin::Irc { .. }, Some(account)) => {
            Trigger::Chat { network: network.to_owned(), nick: user.to_owned(), account: account.clone() }
        }
        _ => Trigger::Console { user: user.to_owned() },
    }
}

/// The audit log's name for a speaker (a nick without an account is shown as such: it
/// proves nothing).
fn who(speaker: &Speaker, user: &str, network: &str) -> String {
    match (&speaker.origin, &speaker.account) {
        (Origin::Irc { .. }, None) => format!("chat nick {user:?} (no account) on {network:?}"),
        _ => trigger(speaker, user, network).to_string(),
    }
}

fn reply(user: &str, text: String) -> ChatReply {
    ChatReply { plugin: HOST_NAME.to_owned(), user: Some(user.to_owned()), text, request: None }
}

#[cfg(test)]
mod tests {

    use tokio::sync::mpsc;

    use super::*;
    use crate::control::{ActionOutcome, ActionReport, ControlRequest};

    fn act(action: Action, plugin: &str) -> Result<AdminCommand, Usage> {
        Ok(AdminCommand::Act { action, plugin: plugin.into() })
    }

    #[test]
    fn admin_commands_parse_with_their_plugin_names() {
        assert_eq!(AdminCommand::parse(""), Ok(AdminCommand::Help));
        assert_eq!(AdminCommand::parse("help"), Ok(AdminCommand::Help));
        assert_eq!(AdminCommand::parse("status"), Ok(AdminCommand::Status(None)));
        assert_eq!(AdminCommand::parse(" status  dice-roller "), Ok(AdminCommand::Status(Some("dice-roller".into()))));
        assert_eq!(AdminCommand::parse("list"), Ok(AdminCommand::List));
        assert_eq!(AdminCommand::parse("metrics"), Ok(AdminCommand::Metrics));
        assert_eq!(AdminCommand::parse("reload-config"), Ok(AdminCommand::ReloadConfig));
        assert_eq!(AdminCommand::parse("reload Dice"), act(Action::Reload, "Dice"), "names keep their case");
        assert_eq!(AdminCommand::parse("STOP dice"), act(Action::Stop, "dice"), "subcommands ignore case");
        assert_eq!(AdminCommand::parse("restart dice"), act(Action::Restart, "dice"));
        assert_eq!(AdminCommand::parse("start dice"), act(Action::Start, "dice"));
    }

    #[test]
    fn a_wrong_admin_command_says_how_to_write_it() {
        assert_eq!(AdminCommand::parse("stop"), Err(Usage::NoPlugin(Action::Stop)));
        assert_eq!(Usage::NoPlugin(Action::Stop).to_string(), "!admin stop needs a plugin name: !admin stop NAME");
        assert_eq!(AdminCommand::parse("frob x"), Err(Usage::Unknown("frob".into())));
        let extra = AdminCommand::parse("stop a b").expect_err("two names");
        assert_eq!(extra.to_string(), "!admin stop takes one plugin name; \"b\" is one word too many");
        assert!(matches!(AdminCommand::parse("list all"), Err(Usage::TooMany { .. })));
        assert!(matches!(AdminCommand::parse("status a b"), Err(Usage::TooMany { .. })));
    }

    #[test]
    fn on_the_console_only_its_own_user_is_the_operator() {
        let console = Authority::console();
        assert!(console.permits(CONSOLE_USER));
        assert!(!console.permits("alice"));
        assert!(!console.permits("Console"));
        let network = Authority::of(["owner", "op"]);
        assert!(network.permits("op") && !network.permits(CONSOLE_USER));
    }

    fn empty_snapshot() -> Arc<Snapshot> {
        Snapshot::empty(1, Duration::from_secs(1), Duration::from_secs(75))
    }

    fn desk() -> (AdminDesk, mpsc::Receiver<ControlRequest>) {
        let (controls, requests) = ActionDoor::channel();
        let (_, snapshots) = watch::channel(empty_snapshot());
        let url = Some("http://127.0.0.1:8080/".to_owned());
        (AdminDesk::new(Authority::console(), controls, snapshots, url), requests)
    }

    fn say(desk: &mut AdminDesk, line: &str, now: Instant) -> (bool, Vec<String>) {
        let heard = desk.hear(ChatMessage::split(line).expect("a message"), &Speaker::console(), now);
        (
            heard.taken,
            heard
                .replies
                .into_iter()
                .map(|a| format!("@{} {}", a.reply.user.unwrap_or_default(), a.reply.text))
                .collect(),
        )
    }

    /// Answer the next action request as done; the action and who asked.
    async fn serve_one(requests: &mut mpsc::Receiver<ControlRequest>) -> (Action, String, Trigger) {
        let Some(ControlRequest::Act { plugin, action, trigger, reply }) = requests.recv().await else {
            panic!("expected an action request");
        };
        let report = ActionReport {
            plugin: plugin.clone(),
            action,
            outcome: ActionOutcome::Done,
            from_version: Some("1".into()),
            to_version: None,
            duration: Duration::from_millis(250),
            reason: None,
        };
        reply.send(Ok(report)).expect("the desk waits");
        (action, plugin, trigger)
    }

    #[tokio::test]
    async fn stop_waits_for_yes_then_asks_the_bot_and_answers_the_outcome() {
        let (mut desk, mut requests) = desk();
        let t0 = Instant::now();
        let (taken, replies) = say(&mut desk, "!admin stop dice", t0);
        assert!(taken);
        assert_eq!(
            replies,
            [
                "@console stop dice? it stays STOPPED, its commands unanswered, until !admin start; type yes within 30 s to confirm"
            ]
        );
        assert!(requests.try_recv().is_err(), "nothing is done before the yes");
        assert_eq!(say(&mut desk, "yes", t0 + Duration::from_secs(29)), (true, vec!["@console stopping dice…".into()]));
        let asked = serve_one(&mut requests).await;
        assert_eq!(asked, (Action::Stop, "dice".into(), Trigger::Console { user: CONSOLE_USER.into() }));
        let outcome = desk.finished().await;
        assert_eq!(outcome.reply.text, "stopped dice in 0.25 s; it stays STOPPED until started");
        assert!(!desk.is_busy());
    }

    #[tokio::test]
    async fn a_late_yes_does_nothing() {
        let (mut desk, mut requests) = desk();
        let t0 = Instant::now();
        say(&mut desk, "console: !admin restart dice", t0);
        let (taken, replies) = say(&mut desk, "YES", t0 + CONFIRM_WITHIN);
        assert!(taken);
        assert_eq!(replies, ["@console restart dice: not confirmed within 30 s; nothing was done"]);
        assert!(!desk.is_busy());
        assert!(requests.try_recv().is_err());
        assert_eq!(say(&mut desk, "yes", t0 + CONFIRM_WITHIN), (false, vec![]), "a yes with nothing pending is chat");
    }

    #[tokio::test]
    async fn anything_else_cancels_and_is_still_routed() {
        let (mut desk, mut requests) = desk();
        let t0 = Instant::now();
        say(&mut desk, "!admin stop dice", t0);
        let (taken, replies) = say(&mut desk, "!roll 1d6", t0);
        assert!(!taken, "the command goes on to its plugin");
        assert_eq!(replies, ["@console stop dice cancelled"]);
        assert_eq!(say(&mut desk, "yes", t0), (false, vec![]));
        assert!(requests.try_recv().is_err());
    }

    #[tokio::test]
    async fn reload_and_start_need_no_yes() {
        let (mut desk, mut requests) = desk();
        assert_eq!(say(&mut desk, "!ADMIN reload dice", Instant::now()).1, ["@console reloading dice…"]);
        assert_eq!(serve_one(&mut requests).await.0, Action::Reload);
        assert_eq!(say(&mut desk, "!admin start dice", Instant::now()).1, ["@console starting dice…"]);
        assert_eq!(serve_one(&mut requests).await.0, Action::Start);
    }

    #[tokio::test]
    async fn other_chat_users_are_refused_and_cannot_confirm() {
        let (mut desk, mut requests) = desk();
        let t0 = Instant::now();
        let (taken, replies) = say(&mut desk, "alice: !admin stop dice", t0);
        assert!(taken);
        assert_eq!(replies, ["@alice !admin is for the operator only; alice may not use it"]);
        say(&mut desk, "!admin stop dice", t0);
        assert_eq!(say(&mut desk, "alice: yes", t0), (false, vec![]), "alice's yes is not the operator's");
        assert!(requests.try_recv().is_err());
        assert_eq!(say(&mut desk, "yes", t0).1, ["@console stopping dice…"], "the operator's confirmation stands");
    }

    #[tokio::test]
    async fn status_list_and_metrics_answer_at_once() {
        let (mut desk, _requests) = desk();
        let now = Instant::now();
        assert_eq!(say(&mut desk, "!admin list", now).1, ["@console no plugins are configured"]);
        assert_eq!(
            say(&mut desk, "!admin status nope", now).1,
            ["@console no plugin named \"nope\"; !admin list shows them"]
        );
        let metrics = say(&mut desk, "!admin metrics", now).1.join("\n");
        assert!(metrics.starts_with("@console up 1m; 0/0 plugins running, 0 down; 0 events"), "{metrics}");
        assert!(metrics.contains("dashboard: http://127.0.0.1:8080/ "), "{metrics}");
        assert!(!desk.is_busy());
    }

    fn network_desk() -> (AdminDesk, mpsc::Receiver<ControlRequest>) {
        let (mut desk, requests) = desk();
        desk.set_networks(vec![NetworkAdmins { name: "libera".into(), admins: Authority::of(["alice", "owner"]) }]);
        (desk, requests)
    }

    fn on_irc(desk: &mut AdminDesk, nick: &str, account: Option<&str>, text: &str, now: Instant) -> Vec<Answer> {
        let origin = Origin::Irc { connection: 0, channel: Some("#rosey".into()), nick: nick.into() };
        let speaker = Speaker { origin, account: account.map(str::to_owned) };
        desk.hear(ChatMessage { user: nick, text }, &speaker, now).replies
    }

    #[tokio::test]
    async fn on_a_network_only_a_vouched_for_admin_account_is_obeyed_and_refusals_are_audited() {
        let (mut desk, mut requests) = network_desk();
        let t0 = Instant::now();
        let refused = on_irc(&mut desk, "alice", None, "!admin reload dice", t0);
        assert_eq!(
            refused[0].reply.text,
            "!admin needs an account the server vouches for; alice is not logged in (identify to services first)"
        );
        let stranger = on_irc(&mut desk, "alice", Some("mallory"), "!admin reload dice", t0);
        assert_eq!(stranger[0].reply.text, "!admin is for the bot's admins; account mallory is not one");
        assert!(requests.try_recv().is_err());
        let obeyed = on_irc(&mut desk, "al", Some("alice"), "!admin reload dice", t0);
        assert_eq!(obeyed[0].reply.text, "reloading dice…");
        assert_eq!(obeyed[0].origin, Origin::Irc { connection: 0, channel: Some("#rosey".into()), nick: "al".into() });
        let (action, _, trigger) = serve_one(&mut requests).await;
        assert_eq!(
            (action, trigger),
            (Action::Reload, Trigger::Chat { network: "libera".into(), nick: "al".into(), account: "alice".into() })
        );
        let audit = desk.audit_log().entries();
        assert_eq!(audit.len(), 3);
        assert!(audit[0].who.contains("(no account)") && audit[0].outcome.starts_with("refused"));
        assert!(audit[1].who.contains("account \"mallory\"") && audit[1].outcome.starts_with("refused"));
        assert_eq!(audit[2].outcome, "accepted");
        let counts = desk.audit_log().counts();
        assert_eq!(counts, [(("reload", "alice".to_owned()), 1), (("reload", "refused".to_owned()), 2)]);
    }

    #[tokio::test]
    async fn a_network_admin_gives_one_command_per_five_seconds_and_details_go_private() {
        let (mut desk, _requests) = network_desk();
        let t0 = Instant::now();
        let status = on_irc(&mut desk, "o", Some("owner"), "!admin list", t0);
        assert!(status[0].private, "details the channel need not see");
        let again = on_irc(&mut desk, "o", Some("owner"), "!admin list", t0 + Duration::from_secs(2));
        assert_eq!(again[0].reply.text, "one !admin command per 5 s; try again in 3 s");
        assert!(
            !on_irc(&mut desk, "o", Some("owner"), "!admin list", t0 + NETWORK_PACE)[0]
                .reply
                .text
                .contains("try again")
        );
        // A stop waits for the same account's yes; another account's yes is chat.
        let t1 = t0 + NETWORK_PACE * 2;
        let asked = on_irc(&mut desk, "o", Some("owner"), "!admin stop dice", t1);
        assert!(asked[0].reply.text.starts_with("stop dice? "), "{}", asked[0].reply.text);
        assert!(on_irc(&mut desk, "o", Some("alice"), "yes", t1).is_empty());
        assert_eq!(on_irc(&mut desk, "o", Some("owner"), "yes", t1)[0].reply.text, "stopping dice…");
    }
}
