//! Chat: messages in, commands routed to plugins, replies out, back where they came from.
//!
//! Two kinds of chat source feed one loop ([`run`]): the console, where each stdin line is a
//! message (`alice: !roll 2d6`, or a bare `!roll 2d6` from user `console`, [`parse`]) and each
//! reply is printed on stdout ([`console`]); and IRC connections ([`irc`], Twitch chat too),
//! where a `!command` in a channel is answered in the channel (`nick: reply`) and a private
//! message privately. [`admin`] looks at each message first (`!admin` commands and their
//! confirmations); [`router`] decides who answers the rest. Every answer carries its
//! [`Origin`]. End of stdin is not a shutdown (the bot keeps serving its dashboard and its chat
//! networks) unless the caller asks for one; `chat.console: false` reads no stdin at all.

pub mod admin;
pub mod console;
pub mod irc;
pub mod parse;
pub mod router;

use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, trace, warn};

use crate::config::{ChatConfig, IrcSettings};
use crate::logging::LogBudget;
use admin::{Authority, NetworkAdmins, Speaker};
use irc::connection::{ConnectionStatus, Incoming, IrcHandle, Outgoing};

use crate::plugins::command_table::HOST_NAME;
use crate::plugins::lines::Line;
use crate::plugins::{ChatReply, PluginList};
use admin::AdminDesk;
use console::{MAX_CHAT_LINE, print_reply};
pub use parse::{CONSOLE_USER, ChatCommand, ChatMessage, parse_message};
use router::Router;

/// How often held commands are looked at again while a plugin's hello is awaited.
const HOLD_CHECK: Duration = Duration::from_millis(20);
/// After end of input (with `exit_at_eof`), how long without a reply before the replies still
/// missing are given up on.
const DRAIN_QUIET: Duration = Duration::from_secs(2);

/// IRC chat heard but not yet routed; a faster server waits (backpressure).
const INCOMING_QUEUE: usize = 256;

/// Where a chat message came from, and so where its answer goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Origin {
    /// The operator's terminal.
    #[default]
    Console,
    /// IRC connection `connection` (its index in `chat.irc`): a channel, or private chat
    /// with `nick` when `channel` is None.
    Irc { connection: usize, channel: Option<String>, nick: String },
}

/// A reply and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub origin: Origin,
    pub reply: ChatReply,
    /// For the asker only (in private on IRC, even when asked in a channel).
    pub private: bool,
}

impl Answer {
    pub fn new(origin: Origin, reply: ChatReply) -> Answer {
        Answer { origin, reply, private: false }
    }
}

/// The chat networks' state, one entry per connection, for the dashboard and Prometheus.
#[derive(Clone, Default)]
pub struct ChatStatus {
    connections: Vec<watch::Receiver<ConnectionStatus>>,
}

impl ChatStatus {
    /// Every connection's current state, in `chat.irc` order.
    pub fn snapshot(&self) -> Vec<ConnectionStatus> {
        self.connections.iter().map(|c| c.borrow().clone()).collect()
    }
}

/// The running chat networks: where replies go, and what they report.
struct Networks {
    handles: Vec<IrcHandle>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    stop: CancellationToken,
    drop_log: LogBudget,
}

impl Networks {
    /// Start every `chat.irc` connection; each reports its chat on `incoming`.
    fn start(config: &ChatConfig, incoming: mpsc::Sender<Incoming>, stop: CancellationToken) -> Networks {
        let mut handles = Vec::new();
        let mut tasks = Vec::new();
        for (index, settings) in config.irc.iter().enumerate() {
            let (handle, task) = irc::connection::spawn(index, settings.clone(), incoming.clone(), stop.clone());
            handles.push(handle);
            tasks.push(task);
        }
        Networks { handles, tasks, stop, drop_log: LogBudget::new(1, Duration::from_secs(10)) }
    }

    fn status(&self) -> ChatStatus {
        ChatStatus { connections: self.handles.iter().map(IrcHandle::status).collect() }
    }

    /// Send `answer` where it belongs; the console prints it.
    fn deliver(&mut self, answer: &Answer) {
        let Origin::Irc { connection, channel, nick } = &answer.origin else {
            print_reply(&answer.reply);
            return;
        };
        let Some(handle) = self.handles.get(*connection) else { return };
        let outgoing = match channel {
            Some(channel) if !answer.private || handle.twitch => {
                Outgoing { target: channel.clone(), lead: format!("{nick}: "), text: answer.reply.text.clone() }
            }
            _ => Outgoing { target: nick.clone(), lead: String::new(), text: answer.reply.text.clone() },
        };
        if !handle.send(outgoing)
            && let Some(suppressed) = self.drop_log.admit()
        {
            warn!(connection = handle.name, "the connection's reply queue is full; a reply was dropped{suppressed}");
        }
    }

    /// Stop every connection (each says QUIT) and wait for them.
    async fn stop(self) {
        self.stop.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Who may use `!admin` on each network: its own `admins` plus the top-level ones.
fn network_authorities(config: &ChatConfig) -> Vec<NetworkAdmins> {
    let admins = |irc: &IrcSettings| Authority::of(irc.admins.iter().chain(&config.admins).cloned());
    config.irc.iter().map(|irc| NetworkAdmins { name: irc.name.clone(), admins: admins(irc) }).collect()
}

/// What to do when console input ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtEndOfInput {
    /// Keep running (the bot is a service).
    KeepRunning,
    /// Print the replies to what was read, then return (scripts, load tests).
    Finish,
}

/// Run the chat until `stop`: the console (unless `chat.console` is false) and every IRC
/// connection in `config`; `status` receives their state once they are started. With
/// [`AtEndOfInput::Finish`], returns once console input has ended and its replies are printed
/// (or have stopped coming).
pub async fn run(
    plugins: watch::Receiver<PluginList>,
    mut replies: mpsc::Receiver<ChatReply>,
    mut desk: AdminDesk,
    at_end: AtEndOfInput,
    config: ChatConfig,
    status: watch::Sender<ChatStatus>,
    stop: CancellationToken,
) {
    let (incoming_tx, mut incoming) = mpsc::channel(INCOMING_QUEUE);
    let mut networks = Networks::start(&config, incoming_tx, stop.child_token());
    status.send_replace(networks.status());
    desk.set_networks(network_authorities(&config));
    let mut lines = if config.console {
        console::spawn_stdin_reader()
    } else {
        info!("console chat is off (chat.console = false)");
        mpsc::channel(1).1
    };
    let mut router = Router::new(plugins);
    let mut stdin_open = config.console;
    let mut answered = 0u64;
    let mut last_reply = Instant::now();
    let mut hold_check = tokio::time::interval(HOLD_CHECK);
    // Only console input ends; the networks run until `stop`.
    let finish_at_eof = config.console && at_end == AtEndOfInput::Finish;
    loop {
        if finish_at_eof && !stdin_open && !router.is_holding() && !desk.is_busy() {
            let all_answered = answered >= router.delivered;
            if all_answered || last_reply.elapsed() >= DRAIN_QUIET {
                info!(answered, asked = router.delivered, "end of console input; stopping (--exit-at-eof)");
                break;
            }
        }
        tokio::select! {
            line = lines.recv(), if stdin_open => match line {
                Some(line) => {
                    for answer in handle_line(&mut router, &mut desk, line) {
                        networks.deliver(&answer);
                    }
                }
                None => {
                    stdin_open = false;
                    last_reply = Instant::now();
                    if at_end == AtEndOfInput::KeepRunning {
                        info!("end of console input; still running (stop with SIGINT or SIGTERM)");
                    }
                }
            },
            Some(heard) = incoming.recv() => {
                for answer in handle_irc(&mut router, &mut desk, heard) {
                    networks.deliver(&answer);
                }
            }
            Some(reply) = replies.recv() => {
                trace!(?reply, "reply");
                answered += 1;
                last_reply = Instant::now();
                let origin = router.origin_of(&reply);
                networks.deliver(&Answer::new(origin, reply));
            }
            answer = desk.finished(), if desk.is_busy() => networks.deliver(&answer),
            _ = hold_check.tick(), if router.is_holding() || (finish_at_eof && !stdin_open) => {
                for answer in router.release_held(Instant::now()) {
                    networks.deliver(&answer);
                }
            }
            () = stop.cancelled() => break,
        }
    }
    networks.stop().await;
}

/// One message heard on IRC: `!admin` and confirmations to the desk, commands to the router.
fn handle_irc(router: &mut Router, desk: &mut AdminDesk, incoming: Incoming) -> Vec<Answer> {
    let heard = incoming.heard;
    let text = heard.text.trim();
    if text.is_empty() {
        return Vec::new();
    }
    let message = ChatMessage { user: &heard.nick, text };
    let origin =
        Origin::Irc { connection: incoming.connection, channel: heard.channel.clone(), nick: heard.nick.clone() };
    let speaker = Speaker { origin: origin.clone(), account: heard.account.clone() };
    let now = Instant::now();
    let mut heard_by_desk = desk.hear(message, &speaker, now);
    if !heard_by_desk.taken {
        heard_by_desk.replies.extend(message.command().and_then(|command| router.route(command, origin, now)));
    }
    heard_by_desk.replies
}

fn handle_line(router: &mut Router, desk: &mut AdminDesk, line: Line) -> Vec<Answer> {
    trace!(?line, "console input");
    let text = match line {
        Line::Text(text) => text,
        // A stray byte must not cost the whole line (or, as once, all further input).
        Line::NotUtf8(_) => line.lossy().into_owned(),
        Line::TooLong { len, start } => {
            warn!("a chat line of {len} bytes is over the {MAX_CHAT_LINE}-byte limit; ignored");
            let Some(command) = parse_message(&String::from_utf8_lossy(&start)) else { return Vec::new() };
            let text = format!("your message of {len} bytes is over the {MAX_CHAT_LINE}-byte limit; ignored");
            let reply = ChatReply { plugin: HOST_NAME.to_owned(), user: Some(command.user), text, request: None };
            return vec![Answer::new(Origin::Console, reply)];
        }
    };
    let Some(message) = ChatMessage::split(&text) else { return Vec::new() };
    let now = Instant::now();
    let mut heard = desk.hear(message, &Speaker::console(), now);
    if !heard.taken {
        heard.replies.extend(message.command().and_then(|command| router.route(command, Origin::Console, now)));
    }
    heard.replies
}
