//! Chat: messages in, commands routed to plugins, replies out.
//!
//! Until a chat-network connector exists, the console is the chat: each stdin line is a message
//! (`alice: !roll 2d6`, or a bare `!roll 2d6` from user `console`, [`parse`]) and each reply is
//! printed on stdout ([`console`]). [`admin`] looks at each message first (the operator's
//! `!admin` commands and their confirmations); [`router`] decides who answers the rest. End of
//! stdin is not a shutdown (the bot keeps serving its dashboard) unless the caller asks for one.

pub mod admin;
pub mod console;
pub mod irc;
pub mod parse;
pub mod router;

use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, trace, warn};

use crate::plugins::routing::HOST_NAME;
use crate::plugins::stream::Line;
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

/// What to do when console input ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtEndOfInput {
    /// Keep running (the bot is a service).
    KeepRunning,
    /// Print the replies to what was read, then return (scripts, load tests).
    Finish,
}

/// Read chat from stdin until `stop`; print replies on stdout; `desk` answers the operator's
/// `!admin` commands. With [`AtEndOfInput::Finish`], returns once input has ended and its
/// replies are printed (or have stopped coming).
pub async fn run_console(
    plugins: watch::Receiver<PluginList>,
    mut replies: mpsc::Receiver<ChatReply>,
    mut desk: AdminDesk,
    at_end: AtEndOfInput,
    stop: CancellationToken,
) {
    let mut lines = console::spawn_stdin_reader();
    let mut router = Router::new(plugins);
    let mut stdin_open = true;
    let mut answered = 0u64;
    let mut last_reply = Instant::now();
    let mut hold_check = tokio::time::interval(HOLD_CHECK);
    loop {
        if !stdin_open && at_end == AtEndOfInput::Finish && !router.is_holding() && !desk.is_busy() {
            let all_answered = answered >= router.delivered;
            if all_answered || last_reply.elapsed() >= DRAIN_QUIET {
                info!(answered, asked = router.delivered, "end of console input; stopping (--exit-at-eof)");
                return;
            }
        }
        tokio::select! {
            line = lines.recv(), if stdin_open => match line {
                Some(line) => {
                    for reply in handle_line(&mut router, &mut desk, line) {
                        print_reply(&reply);
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
            Some(reply) = replies.recv() => {
                trace!(?reply, "reply");
                answered += 1;
                last_reply = Instant::now();
                print_reply(&reply);
            }
            reply = desk.finished(), if desk.is_busy() => print_reply(&reply),
            _ = hold_check.tick(), if router.is_holding() || (!stdin_open && at_end == AtEndOfInput::Finish) => {
                for reply in router.release_held(Instant::now()) {
                    print_reply(&reply);
                }
            }
            () = stop.cancelled() => return,
        }
    }
}

fn handle_line(router: &mut Router, desk: &mut AdminDesk, line: Line) -> Vec<ChatReply> {
    trace!(?line, "console input");
    let text = match line {
        Line::Text(text) => text,
        // A stray byte must not cost the whole line (or, as once, all further input).
        Line::NotUtf8(_) => line.lossy().into_owned(),
        Line::TooLong { len, start } => {
            warn!("a chat line of {len} bytes is over the {MAX_CHAT_LINE}-byte limit; ignored");
            let Some(command) = parse_message(&String::from_utf8_lossy(&start)) else { return Vec::new() };
            let text = format!("your message of {len} bytes is over the {MAX_CHAT_LINE}-byte limit; ignored");
            return vec![ChatReply { plugin: HOST_NAME.to_owned(), user: Some(command.user), text }];
        }
    };
    let Some(message) = ChatMessage::split(&text) else { return Vec::new() };
    let now = Instant::now();
    let mut heard = desk.hear(message, now);
    if !heard.taken {
        heard.replies.extend(message.command().and_then(|command| router.route(command, now)));
    }
    heard.replies
}
