//! One IRC connection as a task: TCP or TLS (rustls; the system's roots, or the operator's
//! `tls_ca`; never any certificate), lines read bounded, the [`Session`] fed, replies paced
//! through the [`Bucket`], and on any failure a wait ([`Backoff`]) and a new connection. What
//! it is doing is published as a [`ConnectionStatus`]; the rest of the bot sees only
//! [`Incoming`] chat and sends [`Outgoing`] replies.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until, timeout};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::flood::{Backoff, Bucket};
use super::proto::{MAX_INCOMING, Message};
use super::session::{Event, Failure, Heard, Session};
use super::text::reply_lines;
use crate::config::{IrcSettings, TEXT_BYTES};
use crate::logging::LogBudget;
use crate::plugins::lines::{Line, LineSplitter};

/// How long a TCP connect and TLS handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long stopping waits to say QUIT.
const QUIT_TIMEOUT: Duration = Duration::from_secs(1);

/// Chat heard on connection `connection` (its index in `chat.irc`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub connection: usize,
    pub heard: Heard,
}

/// A reply to send: to a channel or a nick, each line led by `lead` (`alice: `, or nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub target: String,
    pub lead: String,
    pub text: String,
}

/// What a connection is doing.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LinkState {
    Connecting,
    /// Connected, logging in.
    Registering,
    /// Logged in; `channels` says which are joined.
    Registered,
    /// Waiting before the next attempt; `last_error` says why.
    Reconnecting {
        delay_seconds: f64,
        /// When the next attempt starts (Unix time, milliseconds).
        retry_at_unix_ms: u64,
    },
    Stopped,
}

/// One connection's state and counters, for the dashboard and Prometheus.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConnectionStatus {
    pub name: String,
    /// `host:port`.
    pub server: String,
    pub tls: bool,
    #[serde(flatten)]
    pub state: LinkState,
    pub nick: Option<String>,
    pub channels: Vec<String>,
    /// The last PING round trip.
    pub lag_seconds: Option<f64>,
    /// Lines read from the server (chat and protocol alike), over all connections made.
    pub messages_in: u64,
    /// Lines sent to the server, replies and protocol alike.
    pub messages_out: u64,
    /// Replies that could not be queued (queue full, or the connection gone).
    pub replies_dropped: u64,
    pub reconnects: u64,
    pub last_error: Option<String>,
}

impl ConnectionStatus {
    fn new(settings: &IrcSettings) -> ConnectionStatus {
        ConnectionStatus {
            name: settings.name.clone(),
            server: format!("{}:{}", settings.server, settings.port),
            tls: settings.tls,
            state: LinkState::Connecting,
            nick: None,
            channels: Vec::new(),
            lag_seconds: None,
            messages_in: 0,
            messages_out: 0,
            replies_dropped: 0,
            reconnects: 0,
            last_error: None,
        }
    }
}

/// The rest of the bot's side of one connection.
#[derive(Clone)]
pub struct IrcHandle {
    pub name: String,
    /// Twitch chat has no private messages over IRC: private answers go to the channel.
    pub twitch: bool,
    outgoing: mpsc::Sender<Outgoing>,
    status: Arc<watch::Sender<ConnectionStatus>>,
}

impl IrcHandle {
    /// Queue a reply; false (and counted) when the queue is full.
    pub fn send(&self, reply: Outgoing) -> bool {
        let sent = self.outgoing.try_send(reply).is_ok();
        if !sent {
            self.status.send_modify(|s| s.replies_dropped += 1);
        }
        sent
    }

    pub fn status(&self) -> watch::Receiver<ConnectionStatus> {
        self.status.subscribe()
    }
}

/// Start connection `index`; it runs until `stop`.
pub fn spawn(
    index: usize,
    settings: IrcSettings,
    incoming: mpsc::Sender<Incoming>,
    stop: CancellationToken,
) -> (IrcHandle, tokio::task::JoinHandle<()>) {
    let (outgoing_tx, outgoing_rx) = mpsc::channel(settings.queue);
    let status = Arc::new(watch::Sender::new(ConnectionStatus::new(&settings)));
    let handle = IrcHandle {
        name: settings.name.clone(),
        twitch: settings.twitch,
        outgoing: outgoing_tx,
        status: status.clone(),
    };
    let link = Link {
        index,
        settings: Arc::new(settings),
        incoming,
        outgoing: outgoing_rx,
        status,
        queue: VecDeque::new(),
        drop_log: LogBudget::new(1, Duration::from_secs(10)),
    };
    (handle, tokio::spawn(link.run(stop)))
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

struct Link {
    index: usize,
    settings: Arc<IrcSettings>,
    incoming: mpsc::Sender<Incoming>,
    outgoing: mpsc::Receiver<Outgoing>,
    status: Arc<watch::Sender<ConnectionStatus>>,
    /// Reply lines waiting for the bucket; kept across reconnects.
    queue: VecDeque<Message>,
    drop_log: LogBudget,
}

/// Why one connection attempt ended.
enum End {
    Stopped,
    Failed { error: String, needs_operator: bool, registered: bool },
}

impl Link {
    async fn run(mut self, stop: CancellationToken) {
        let s = self.settings.clone();
        let mut backoff = Backoff::new(s.reconnect_delay, s.reconnect_max_delay);
        loop {
            self.status.send_modify(|st| {
                st.state = LinkState::Connecting;
                st.channels.clear();
            });
            info!(connection = s.name, server = %s.server, port = s.port, tls = s.tls, "connecting");
            // Not raced against `stop`: on a live link, stopping sends QUIT first.
            let end = self.connect_and_serve(&stop).await;
            let End::Failed { error, needs_operator, registered } = end else { break };
            if registered {
                backoff.reset();
            }
            let delay = if needs_operator { backoff.give_up_for_now() } else { backoff.delay() };
            let retry_at = SystemTime::now() + delay;
            let retry_at_unix_ms = retry_at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
            if needs_operator {
                tracing::error!(connection = s.name, "{error}; retrying in {:.0} s", delay.as_secs_f64());
            } else {
                warn!(connection = s.name, "{error}; reconnecting in {:.1} s", delay.as_secs_f64());
            }
            self.status.send_modify(|st| {
                st.state = LinkState::Reconnecting { delay_seconds: delay.as_secs_f64(), retry_at_unix_ms };
                st.last_error = Some(error);
                st.channels.clear();
                st.nick = None;
                st.lag_seconds = None;
                st.reconnects += 1;
            });
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = stop.cancelled() => break,
            }
        }
        self.status.send_modify(|st| st.state = LinkState::Stopped);
    }

    async fn connect_and_serve(&mut self, stop: &CancellationToken) -> End {
        let opened = tokio::select! {
            opened = timeout(CONNECT_TIMEOUT, open(&self.settings)) => opened,
            () = stop.cancelled() => return End::Stopped,
        };
        let stream = match opened {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => return End::Failed { error, needs_operator: false, registered: false },
            Err(_) => {
                let error = format!("no connection within {} s", CONNECT_TIMEOUT.as_secs());
                return End::Failed { error, needs_operator: false, registered: false };
            }
        };
        self.serve(stream, stop).await
    }

    /// Log in and chat over `stream` until it fails or `stop`.
    async fn serve(&mut self, stream: Box<dyn Stream>, stop: &CancellationToken) -> End {
        self.status.send_modify(|st| st.state = LinkState::Registering);
        let (reader, mut writer) = tokio::io::split(stream);
        let mut reader = BufReader::new(reader);
        let mut lines = LineSplitter::new(MAX_INCOMING);
        let mut session = Session::new(self.settings.clone(), Instant::now());
        let mut bucket = Bucket::new(self.settings.flood, Instant::now());
        let mut registered = false;
        let fail =
            |error: String, needs_operator: bool, registered: bool| End::Failed { error, needs_operator, registered };
        let greeting = session.greet();
        bucket.charge(greeting.len(), Instant::now());
        if let Err(e) = self.write(&mut writer, &greeting).await {
            return fail(e, false, false);
        }
        loop {
            let pace_at = if registered && !self.queue.is_empty() {
                Some(bucket.take(Instant::now()).map_or_else(|at| at, |()| Instant::now()))
            } else {
                None
            };
            if let Some(at) = pace_at
                && at <= Instant::now()
            {
                let Some(line) = self.queue.pop_front() else { continue };
                if let Err(e) = self.write(&mut writer, &[line]).await {
                    return fail(e, false, registered);
                }
                continue;
            }
            tokio::select! {
                read = lines.next_line(&mut reader) => {
                    let text = match read {
                        Ok(Some(Line::Text(text))) => text,
                        Ok(Some(line @ Line::NotUtf8(_))) => line.lossy().into_owned(),
                        Ok(Some(Line::TooLong { len, .. })) => {
                            warn!(connection = self.settings.name, "a line of {len} bytes from the server is over {MAX_INCOMING}; ignored");
                            continue;
                        }
                        Ok(None) => return fail("the server closed the connection".into(), false, registered),
                        Err(e) => return fail(format!("reading from the server failed: {e}"), false, registered),
                    };
                    let message = match Message::parse(&text) {
                        Ok(message) => message,
                        Err(e) => {
                            debug!(connection = self.settings.name, "unreadable line from the server ({e}): {}", text.escape_debug());
                            continue;
                        }
                    };
                    self.status.send_modify(|st| st.messages_in += 1);
                    let step = match session.handle(&message, Instant::now()) {
                        Ok(step) => step,
                        Err(failure) => return self.failed(&failure, registered),
                    };
                    for event in step.events {
                        registered |= matches!(event, Event::Registered { .. });
                        self.on_event(event).await;
                    }
                    bucket.charge(step.urgent.len(), Instant::now());
                    if let Err(e) = self.write(&mut writer, &step.urgent).await {
                        return fail(e, false, registered);
                    }
                    self.enqueue(step.paced);
                }
                Some(reply) = self.outgoing.recv() => self.queue_reply(reply),
                () = sleep_until(session.next_tick()) => match session.tick(Instant::now()) {
                    Ok(out) => {
                        bucket.charge(out.len(), Instant::now());
                        if let Err(e) = self.write(&mut writer, &out).await {
                            return fail(e, false, registered);
                        }
                    }
                    Err(failure) => return self.failed(&failure, registered),
                },
                () = sleep_until(pace_at.unwrap_or_else(Instant::now)), if pace_at.is_some() => {}
                () = stop.cancelled() => {
                    // A server that does not take the line soon is not waited for.
                    let quit = [Message::new("QUIT", ["Rosey is stopping"])];
                    let _ = timeout(QUIT_TIMEOUT, self.write(&mut writer, &quit)).await;
                    return End::Stopped;
                }
            }
        }
    }

    fn failed(&self, failure: &Failure, registered: bool) -> End {
        End::Failed { error: failure.to_string(), needs_operator: failure.needs_operator(), registered }
    }

    async fn on_event(&mut self, event: Event) {
        let name = &self.settings.name;
        match event {
            Event::Registered { nick } => {
                info!(connection = name, nick = %nick.escape_debug(), "registered");
                self.status.send_modify(|st| {
                    st.state = LinkState::Registered;
                    st.nick = Some(nick);
                    st.last_error = None;
                });
            }
            Event::Joined(channel) => {
                info!(connection = name, channel = %channel.escape_debug(), "joined");
                self.status.send_modify(|st| {
                    if !st.channels.contains(&channel) {
                        st.channels.push(channel);
                    }
                });
            }
            Event::Left(channel) => {
                info!(connection = name, channel = %channel.escape_debug(), "left the channel");
                self.status.send_modify(|st| st.channels.retain(|c| *c != channel));
            }
            Event::Lag(lag) => self.status.send_modify(|st| st.lag_seconds = Some(lag.as_secs_f64())),
            Event::Chat(heard) => {
                // A full chat input waits here, which slows reading this server (backpressure),
                // and never drops what a user said.
                let _ = self.incoming.send(Incoming { connection: self.index, heard }).await;
            }
        }
    }

    fn queue_reply(&mut self, reply: Outgoing) {
        let lines = reply_lines(&reply.lead, &reply.text, TEXT_BYTES, self.settings.max_reply_lines);
        let messages = lines.into_iter().map(|line| Message::new("PRIVMSG", [reply.target.clone(), line])).collect();
        self.enqueue(messages);
    }

    /// Queue paced lines, all or none (half a reply would read as a different answer).
    fn enqueue(&mut self, messages: Vec<Message>) {
        if messages.is_empty() {
            return;
        }
        if self.queue.len() + messages.len() > self.settings.queue {
            self.status.send_modify(|st| st.replies_dropped += 1);
            if let Some(suppressed) = self.drop_log.admit() {
                warn!(
                    connection = self.settings.name,
                    "the reply queue is full ({} lines waiting for the flood limit); a reply was dropped{suppressed}",
                    self.queue.len()
                );
            }
            return;
        }
        self.queue.extend(messages);
    }

    async fn write(&self, writer: &mut WriteHalf<Box<dyn Stream>>, messages: &[Message]) -> Result<(), String> {
        if messages.is_empty() {
            return Ok(());
        }
        let mut bytes = String::new();
        for message in messages {
            match message.encode() {
                Ok(line) => bytes.push_str(&line),
                Err(e) => warn!(connection = self.settings.name, "not sent: {e}"),
            }
        }
        writer.write_all(bytes.as_bytes()).await.map_err(|e| format!("writing to the server failed: {e}"))?;
        writer.flush().await.map_err(|e| format!("writing to the server failed: {e}"))?;
        let sent = messages.len() as u64;
        self.status.send_modify(|st| st.messages_out += sent);
        Ok(())
    }
}

/// TCP, then TLS unless `tls: false`.
async fn open(settings: &IrcSettings) -> Result<Box<dyn Stream>, String> {
    let address = (settings.server.as_str(), settings.port);
    let tcp = TcpStream::connect(address)
        .await
        .map_err(|e| format!("cannot connect to {}:{}: {e}", settings.server, settings.port))?;
    let _ = tcp.set_nodelay(true);
    if !settings.tls {
        return Ok(Box::new(tcp));
    }
    let config = tls_config(settings)?;
    let name = rustls::pki_types::ServerName::try_from(settings.server.clone())
        .map_err(|e| format!("{:?} is not a valid TLS server name: {e}", settings.server))?;
    let tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS with {}:{} failed: {e}", settings.server, settings.port))?;
    Ok(Box::new(tls))
}

/// The roots to trust: the operator's `tls_ca` alone, or the system's.
fn tls_config(settings: &IrcSettings) -> Result<ClientConfig, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = RootCertStore::empty();
    match &settings.tls_ca {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("cannot read tls_ca {}: {e}", path.display()))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("tls_ca {}: {e}", path.display()))?;
                roots.add(cert).map_err(|e| format!("tls_ca {}: {e}", path.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            if let Some(e) = found.errors.first() {
                debug!("some system CA certificates could not be read: {e}");
            }
            roots.add_parsable_certificates(found.certs);
        }
    }
    if roots.is_empty() {
        return Err("no CA certificates to verify the server with (set tls_ca)".into());
    }
    Ok(ClientConfig::builder().with_root_certificates(roots).with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_reads_as_json_for_the_dashboard() {
        let mut status = ConnectionStatus::new(&crate::chat::irc::session::tests::settings());
        status.state = LinkState::Reconnecting { delay_seconds: 4.0, retry_at_unix_ms: 1 };
        status.last_error = Some("the server closed the connection".into());
        let json = serde_json::to_value(&status).expect("serialisable");
        assert_eq!(json["state"], "reconnecting");
        assert_eq!(json["delay_seconds"], 4.0);
        assert_eq!(json["server"], "irc.local:6667");
        assert_eq!(json["last_error"], "the server closed the connection");
    }

    /// A link with the test settings, no server yet, and the receiving end of what it hears.
    fn test_link(heard: usize) -> (mpsc::Receiver<Incoming>, Link) {
        let settings = crate::chat::irc::session::tests::settings();
        let (incoming, rx) = mpsc::channel(heard);
        let (_tx, outgoing) = mpsc::channel(1);
        let link = Link {
            index: 0,
            status: Arc::new(watch::Sender::new(ConnectionStatus::new(&settings))),
            settings: Arc::new(settings),
            incoming,
            outgoing,
            queue: VecDeque::new(),
            drop_log: LogBudget::new(1, Duration::from_secs(10)),
        };
        (rx, link)
    }

    #[tokio::test]
    async fn a_full_queue_drops_whole_replies_and_counts_them() {
        let (_rx, mut link) = test_link(1);
        let status = link.status.clone();
        let reply = |text: &str| Outgoing { target: "#a".into(), lead: "bob: ".into(), text: text.into() };
        link.queue_reply(reply("one\ntwo\nthree\nfour\nfive"));
        assert_eq!(link.queue.len(), 4, "max_reply_lines");
        assert!(link.queue[3].params[1].ends_with(" …"));
        link.queue_reply(reply("a\nb\nc\nd\ne"));
        assert_eq!(link.queue.len(), 8, "the queue holds 8 lines");
        link.queue_reply(reply("x"));
        link.queue_reply(reply("y"));
        assert_eq!(link.queue.len(), 8);
        assert_eq!(status.borrow().replies_dropped, 2);
    }

    /// A server that speaks garbage: each hostile line is dropped and the link goes on.
    #[tokio::test]
    async fn hostile_server_lines_do_not_end_the_connection() {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt as _};
        let (mut heard, mut link) = test_link(8);
        let status = link.status.clone();
        let (bot, server) = tokio::io::duplex(1 << 20);
        let stop = CancellationToken::new();
        let serving = {
            let stop = stop.clone();
            tokio::spawn(async move { matches!(link.serve(Box::new(bot), &stop).await, End::Stopped) })
        };
        let (server_read, mut server) = tokio::io::split(server);
        let mut from_bot = BufReader::new(server_read).lines();
        assert_eq!(from_bot.next_line().await.expect("read").as_deref(), Some("CAP LS 302"));
        let mut hostile: Vec<Vec<u8>> = vec![
            b":irc.local 001 rosey :Welcome".to_vec(),
            b"\x01\x02 garbage \xff\xfe".to_vec(),
            format!(":a!b@c PRIVMSG #a :{}", "x".repeat(64 * 1024)).into_bytes(),
            b":a!b@c PRIVMSG #a :caf\xe9 \xff".to_vec(),
            b":a!b@c PRIVMSG #a".to_vec(),
            b"@;;= :: :".to_vec(),
            b"".to_vec(),
        ];
        hostile.push(b"@account=alice :alice!a@h PRIVMSG #a :!roll 2d6".to_vec());
        for line in hostile {
            server.write_all(&line).await.expect("write");
            server.write_all(b"\r\n").await.expect("write");
        }
        let mut texts = Vec::new();
        while texts.last().map(String::as_str) != Some("!roll 2d6") {
            let got = timeout(Duration::from_secs(10), heard.recv()).await.expect("heard in time").expect("open");
            texts.push(got.heard.text);
        }
        assert_eq!(texts, ["caf\u{fffd} \u{fffd}", "", "!roll 2d6"], "the 64 KB line was dropped");
        assert_eq!(status.borrow().state, LinkState::Registered);
        stop.cancel();
        assert!(serving.await.expect("the task ends"), "stopped, not failed");
        let mut rest = Vec::new();
        while let Ok(Some(line)) = from_bot.next_line().await {
            rest.push(line);
        }
        assert_eq!(rest.last().map(String::as_str), Some("QUIT :Rosey is stopping"));
    }
}
