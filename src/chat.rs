//! Chat: messages in, commands routed to plugins, replies out.
//!
//! Until a chat-network connector exists, the console is the chat: each stdin line is a message
//! (`alice: !roll 2d6`, or a bare `!roll 2d6` from user `console`) and each reply is printed on
//! stdout. End of stdin is not a shutdown: the bot keeps serving its dashboard.

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::plugins::protocol::HostMessage;
use crate::plugins::{ChatReply, PluginList};

/// The user of a message that names none.
pub const CONSOLE_USER: &str = "console";
/// Lines read ahead of routing; a faster producer waits (backpressure on stdin).
const INPUT_QUEUE: usize = 1024;
/// At most one log line per this interval about dropped commands.
const DROP_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// A chat message that is a command: `!command args`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatCommand {
    pub user: String,
    pub command: String,
    pub args: String,
}

/// Parse `user: !command args` or `!command args`; anything else is not a command.
pub fn parse_message(line: &str) -> Option<ChatCommand> {
    let line = line.trim();
    let (user, text) = match line.split_once(": ") {
        Some((user, text)) if !user.is_empty() && !user.contains(char::is_whitespace) && !user.starts_with('!') => {
            (user, text.trim_start())
        }
        _ => (CONSOLE_USER, line),
    };
    let rest = text.strip_prefix('!')?;
    let (command, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    if command.is_empty() {
        return None;
    }
    Some(ChatCommand { user: user.to_owned(), command: command.to_owned(), args: args.trim().to_owned() })
}

/// Sends each command to the plugin that handles it, counting one event per routed command.
pub struct Router {
    /// The host's current plugins (they change on a config reload).
    plugins: watch::Receiver<PluginList>,
    next_id: u64,
    /// When a dropped command was last logged, and how many were dropped quietly since.
    drop_logged: Option<Instant>,
    drops_unlogged: u64,
}

impl Router {
    pub fn new(plugins: watch::Receiver<PluginList>) -> Router {
        Router { plugins, next_id: 1, drop_logged: None, drops_unlogged: 0 }
    }

    /// Route one chat line. Returns the plugin it went to, if any.
    pub fn route(&mut self, line: &str) -> Option<String> {
        let message = parse_message(line)?;
        let plugins: PluginList = self.plugins.borrow().clone();
        let Some(plugin) = plugins.iter().find(|p| p.handles(&message.command)) else {
            debug!(command = %message.command, "no plugin handles this command; ignored");
            return None;
        };
        let id = self.next_id;
        self.next_id += 1;
        let command = HostMessage::Command { id, command: message.command, args: message.args, user: message.user };
        if let Err(e) = plugin.send(command) {
            // Piped input (`yes '!roll 2d6' | rosey`) can drop thousands a second: log one a
            // second with a count, the counters have the exact figures.
            if self.drop_logged.is_none_or(|at| at.elapsed() >= DROP_LOG_INTERVAL) {
                let also = std::mem::take(&mut self.drops_unlogged);
                if also > 0 {
                    warn!(plugin = plugin.name(), "{e} ({also} more commands dropped since the last message)");
                } else {
                    warn!(plugin = plugin.name(), "{e}");
                }
                self.drop_logged = Some(Instant::now());
            } else {
                self.drops_unlogged += 1;
            }
        }
        Some(plugin.name().to_owned())
    }
}

/// Read chat from stdin until `stop`; print replies on stdout.
pub async fn run_console(
    plugins: watch::Receiver<PluginList>,
    mut replies: mpsc::Receiver<ChatReply>,
    stop: CancellationToken,
) {
    let mut lines = spawn_stdin_reader();
    let mut router = Router::new(plugins);
    let mut stdin_open = true;
    loop {
        tokio::select! {
            line = lines.recv(), if stdin_open => match line {
                Some(line) => { router.route(&line); }
                None => {
                    info!("end of console input; still running (stop with SIGINT or SIGTERM)");
                    stdin_open = false;
                }
            },
            Some(reply) = replies.recv() => print_reply(&reply),
            () = stop.cancelled() => return,
        }
    }
}

/// stdin is read on a plain thread: a blocking read cannot be cancelled, and must not keep
/// the async runtime from shutting down.
fn spawn_stdin_reader() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(INPUT_QUEUE);
    let spawned = std::thread::Builder::new().name("console-input".into()).spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    if let Err(e) = spawned {
        warn!("cannot read console input: {e}");
    }
    rx
}

fn print_reply(reply: &ChatReply) {
    let text = format_reply(reply);
    let mut out = std::io::stdout().lock();
    // A closed stdout (say, piped into `head`) must not bring the bot down.
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// `[plugin] @user text`, one such line per line of the reply. The text comes from an untrusted
/// plugin: a bare newline would let it print a line that looks like another plugin's reply, and
/// escape sequences would reach the operator's terminal, so control characters are shown escaped.
fn format_reply(reply: &ChatReply) -> String {
    let user = reply.user.as_deref().map(|u| format!("@{u} ")).unwrap_or_default();
    let mut out = String::with_capacity(reply.text.len() + 32);
    for line in reply.text.trim_end_matches(['\n', '\r']).split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        out.push('[');
        out.push_str(&reply.plugin);
        out.push_str("] ");
        out.push_str(&user);
        for c in line.chars() {
            if c.is_control() && c != '\t' {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        out.push('\n');
    }
    out
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

    fn reply(text: &str) -> ChatReply {
        ChatReply { plugin: "dice-roller".into(), user: Some("alice".into()), text: text.into() }
    }

    #[test]
    fn replies_are_prefixed_with_plugin_and_user() {
        assert_eq!(format_reply(&reply("🎲 1d6: [4] = 4")), "[dice-roller] @alice 🎲 1d6: [4] = 4\n");
        let anonymous = ChatReply { user: None, ..reply("hi") };
        assert_eq!(format_reply(&anonymous), "[dice-roller] hi\n");
    }

    #[test]
    fn a_plugin_cannot_forge_lines_or_send_terminal_escapes() {
        let forged = reply("ok\n[8ball] @bob It is certain.\r\n\u{1b}[2Jgone\u{7}");
        assert_eq!(
            format_reply(&forged),
            "[dice-roller] @alice ok\n[dice-roller] @alice [8ball] @bob It is certain.\n[dice-roller] @alice \\u{1b}[2Jgone\\u{7}\n"
        );
    }

    #[test]
    fn ignores_what_is_not_a_command() {
        assert_eq!(parse_message("hello there"), None);
        assert_eq!(parse_message("alice: hi: !roll"), None);
        assert_eq!(parse_message("!"), None);
        assert_eq!(parse_message(""), None);
    }
}
