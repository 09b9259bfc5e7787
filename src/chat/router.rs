//! Routing commands to plugins, and the host's own answers: `!help`, unknown commands, and
//! why a command could not be delivered. Every command gets an answer, from its plugin or from
//! the host.
//!
//! A command no plugin claims yet is held while some plugin may still announce it (its process
//! started within [`HELLO_WAIT`] and has not said hello), at most [`HELLO_WAIT`] itself, then
//! routed or answered as unknown: a command typed while a plugin (re)starts is not lost.
//!
//! Each command comes from an [`Origin`] (the console, an IRC channel or private chat), and
//! its answer goes back there: the host's answers on the spot carry it directly, and a reply
//! to a routed command (the plugin's, or the host's in its place) names the command's id
//! ([`Router::origin_of`]).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::{debug, warn};

use super::parse::ChatCommand;
use super::{Answer, Origin};
use crate::logging::LogBudget;
use crate::plugins::command_table::{CommandTable, HOST_NAME, Owner};
use crate::plugins::protocol::HostMessage;
use crate::plugins::{ChatReply, PluginHandle, PluginList, PluginState, SendError};

/// How long a new process may take to say hello before its silence means "no commands".
pub const HELLO_WAIT: Duration = Duration::from_secs(5);
/// Commands held at most; beyond this the oldest is answered at once.
const MAX_HELD: usize = 1024;
/// Piped input (`yes '!roll 2d6' | rosey`) can drop thousands of commands a second: log one a
/// second, with a count; the counters have the exact figures.
const DROP_LOG_LINES_PER_SECOND: u32 = 1;
/// An unknown command is echoed back at most this many characters long.
const ECHO_CHARS: usize = 32;

struct Held {
    command: ChatCommand,
    origin: Origin,
    since: Instant,
}

/// Sends each command to the plugin that handles it, counting one event per routed command.
pub struct Router {
    /// The host's current plugins (a config reload adds and removes some).
    registry: watch::Receiver<PluginList>,
    /// The list the table was built from.
    plugins: PluginList,
    table: CommandTable,
    held: VecDeque<Held>,
    next_id: u64,
    /// Commands handed to a plugin (their replies are still to come).
    pub delivered: u64,
    warned_conflicts: BTreeSet<(String, Vec<String>)>,
    drop_log: LogBudget,
    /// Where each routed command not answered yet came from, by its id. Every routed command
    /// gets exactly one answer (its plugin's, a timeout or the host's when the process ends),
    /// so this holds at most what the plugins' command slots hold.
    awaiting: HashMap<u64, Origin>,
}

impl Router {
    pub fn new(mut registry: watch::Receiver<PluginList>) -> Router {
        let plugins = registry.borrow_and_update().clone();
        let table = CommandTable::build(&plugins);
        let mut router = Router {
            registry,
            plugins,
            table,
            held: VecDeque::new(),
            next_id: 1,
            delivered: 0,
            warned_conflicts: BTreeSet::new(),
            drop_log: LogBudget::new(DROP_LOG_LINES_PER_SECOND, Duration::from_secs(1)),
            awaiting: HashMap::new(),
        };
        router.warn_new_conflicts();
        router
    }

    /// Route one command from `origin`; the host's answer, if it answers it.
    pub fn route(&mut self, command: ChatCommand, origin: Origin, now: Instant) -> Option<Answer> {
        self.refresh();
        match self.table.route(&command.command) {
            Some((owner, name)) => {
                let name = name.to_owned();
                self.deliver(owner, name, command, origin)
            }
            None if self.awaiting_hello(now) => {
                let reply = (self.held.len() >= MAX_HELD).then(|| self.held.pop_front()).flatten();
                debug!(command = %command.command.escape_debug(), "held until the plugins have said hello");
                self.held.push_back(Held { command, origin, since: now });
                reply.map(|old| Answer::new(old.origin, unknown(&old.command)))
            }
            None => Some(Answer::new(origin, unknown(&command))),
        }
    }

    /// Where a reply goes: the origin of the command it answers; the console for a reply
    /// to no known command.
    pub fn origin_of(&mut self, reply: &ChatReply) -> Origin {
        reply.request.and_then(|id| self.awaiting.remove(&id)).unwrap_or_default()
    }

    /// Are commands held, waiting for a hello?
    pub fn is_holding(&self) -> bool {
        !self.held.is_empty()
    }

    /// Route the held commands that a hello has since claimed, answer those that waited long
    /// enough; the host's answers.
    pub fn release_held(&mut self, now: Instant) -> Vec<Answer> {
        self.refresh();
        let waiting = self.awaiting_hello(now);
        let mut replies = Vec::new();
        let mut still = VecDeque::new();
        for held in std::mem::take(&mut self.held) {
            match self.table.route(&held.command.command) {
                Some((owner, name)) => {
                    let name = name.to_owned();
                    replies.extend(self.deliver(owner, name, held.command, held.origin));
                }
                None if waiting && now.duration_since(held.since) < HELLO_WAIT => still.push_back(held),
                None => replies.push(Answer::new(held.origin, unknown(&held.command))),
            }
        }
        self.held = still;
        replies
    }

    /// Might a plugin still announce more commands soon?
    fn awaiting_hello(&self, now: Instant) -> bool {
        self.plugins.iter().any(|plugin| {
            let status = plugin.status();
            !status.said_hello
                && match (status.state, status.process) {
                    (PluginState::Starting, _) => true,
                    (PluginState::Running, Some(process)) => now.duration_since(process.started) < HELLO_WAIT,
                    _ => false,
                }
        })
    }

    fn refresh(&mut self) {
        if self.registry.has_changed().unwrap_or(false) {
            self.plugins = self.registry.borrow_and_update().clone();
        }
        if self.table.refresh(&self.plugins) {
            self.warn_new_conflicts();
        }
    }

    fn warn_new_conflicts(&mut self) {
        for conflict in self.table.conflicts() {
            if self.warned_conflicts.insert((conflict.command.clone(), conflict.claimed_by.clone())) {
                warn!(
                    "command !{} is claimed by {}; it goes to {} (see /api/plugin/NAME command_conflicts)",
                    conflict.command,
                    conflict.claimed_by.join(", "),
                    conflict.routed_to
                );
            }
        }
    }

    fn deliver(&mut self, owner: Owner, name: String, command: ChatCommand, origin: Origin) -> Option<Answer> {
        let Owner::Plugin(index) = owner else {
            return Some(Answer::new(origin, host_reply(&command.user, self.help())));
        };
        let plugin = self.plugins[index].clone();
        let id = self.next_id;
        self.next_id += 1;
        let user = command.user.clone();
        let message = HostMessage::Command { id, command: name, args: command.args, user: command.user };
        match plugin.send(message) {
            Ok(()) => {
                debug!(plugin = plugin.name(), id, user = %user.escape_debug(), "command routed");
                self.delivered += 1;
                self.awaiting.insert(id, origin);
                None
            }
            Err(e) => {
                self.log_drop(&plugin, e);
                Some(Answer::new(origin, host_reply(&user, undelivered(&plugin, e))))
            }
        }
    }

    fn log_drop(&mut self, plugin: &PluginHandle, e: SendError) {
        if let Some(suppressed) = self.drop_log.admit() {
            warn!(plugin = plugin.name(), "{e}{suppressed}");
        }
    }

    /// `!help`: every command and who answers it.
    fn help(&self) -> String {
        let commands: Vec<String> = self
            .table
            .entries()
            .map(|(command, owner)| {
                let by = match owner {
                    Owner::Host => HOST_NAME,
                    Owner::Plugin(i) => self.plugins[i].name(),
                };
                format!("!{command} ({by})")
            })
            .collect();
        format!("commands: {}", commands.join(", "))
    }
}

fn host_reply(user: &str, text: String) -> ChatReply {
    ChatReply { plugin: HOST_NAME.to_owned(), user: Some(user.to_owned()), text, request: None }
}

fn unknown(command: &ChatCommand) -> ChatReply {
    debug!(command = %command.command.escape_debug(), "no plugin handles this command");
    let mut shown: String = command.command.chars().take(ECHO_CHARS).collect();
    if shown.len() < command.command.len() {
        shown.push('…');
    }
    host_reply(&command.user, format!("unknown command !{shown}; !help lists the commands"))
}

/// Why `plugin` did not get the command, in the words of a chat reply.
fn undelivered(plugin: &PluginHandle, e: SendError) -> String {
    let name = plugin.name();
    if e == SendError::QueueFull {
        return format!("{name} is busy; try again shortly");
    }
    let status = plugin.status();
    match (status.state, status.next_restart_at) {
        (PluginState::Crashed, Some(at)) => {
            let seconds = at.saturating_duration_since(Instant::now()).as_secs_f64().ceil();
            format!("{name} is restarting (next try in {seconds} s); try again shortly")
        }
        (PluginState::Crashed, None) => format!("{name} is restarting; try again shortly"),
        _ => format!("{name} is not running"),
    }
}
