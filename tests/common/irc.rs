//! A real IRC network for the chat tests: Debian's InspIRCd linked with Debian's Anope services,
//! started on free loopback ports in a temporary directory with configs generated from
//! `tests/fixtures/irc/`, a TLS listener with its own CA, a flood-strict port, and [`Human`], a
//! plain IRC client that plays the people in the channel.
//!
//! The setup and its traps are those checked in the project's notes on this pair: both daemons
//! run as the `irc` user when the tests run as root (InspIRCd refuses root), both sides use the
//! ASCII case mapping (or the link is refused), Anope needs InspIRCd's `svshold` and `chgident`,
//! and InspIRCd with `ssl_gnutls` may segfault on SIGTERM — the harness stops daemons with
//! SIGKILL, so no exit status of theirs is ever judged.
//!
//! Without `inspircd` and `anope` installed a test is skipped with a notice, unless
//! `ROSEY_E2E_REQUIRED=1` (CI), which turns the skip into a failure.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use super::{DEADLINE, free_port, wait_for};

const INSPIRCD: &str = "/usr/sbin/inspircd";
const ANOPE: &str = "/usr/sbin/anope";
const ANOPE_MODULES: &str = "/usr/lib/anope";
const ANOPE_LOCALE: &str = "/usr/share/anope/locale";
/// The Debian packages that bring both daemons.
const PACKAGES: &str = "inspircd anope";
/// Set to 1 (CI does) to turn missing daemons into a failure instead of a skip.
const REQUIRED_VAR: &str = "ROSEY_E2E_REQUIRED";

/// The ports of one network, all on 127.0.0.1.
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    /// Plain text, fakelag on (a flooder is slowed, then cut off).
    pub plain: u16,
    /// TLS with the network's own CA ([`IrcNetwork::ca_file`]).
    pub tls: u16,
    /// Plain text, no fakelag: more than about nine lines at once is an Excess Flood kill.
    pub strict: u16,
    /// Plain text without flood limits, for the test's own clients.
    pub humans: u16,
    /// Where Anope links to InspIRCd.
    link: u16,
}

/// InspIRCd + Anope, running until dropped.
pub struct IrcNetwork {
    pub ports: Ports,
    dir: tempfile::TempDir,
    inspircd: Option<Child>,
    anope: Option<Child>,
}

impl IrcNetwork {
    /// Start a network and wait until the services have linked, or None (after a SKIPPED
    /// notice) when the daemons are not installed.
    pub fn start(test: &str) -> Option<IrcNetwork> {
        if !daemons_installed(test) {
            return None;
        }
        let dir = tempfile::tempdir().expect("a temporary directory");
        for sub in ["tls", "insp/data", "insp/logs", "anope/conf", "anope/db", "anope/logs"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("network directories");
        }
        let ports =
            Ports { plain: free_port(), tls: free_port(), strict: free_port(), humans: free_port(), link: free_port() };
        let fill = |template: &str| {
            let text =
                std::fs::read_to_string(super::fixture(&format!("irc/{template}"))).expect("IRC config template");
            text.replace("@DIR@", &dir.path().display().to_string())
                .replace("@PLAIN_PORT@", &ports.plain.to_string())
                .replace("@TLS_PORT@", &ports.tls.to_string())
                .replace("@STRICT_PORT@", &ports.strict.to_string())
                .replace("@HUMAN_PORT@", &ports.humans.to_string())
                .replace("@LINK_PORT@", &ports.link.to_string())
        };
        std::fs::write(dir.path().join("inspircd.conf"), fill("inspircd.conf")).expect("inspircd.conf written");
        std::fs::write(dir.path().join("anope/conf/services.conf"), fill("services.conf"))
            .expect("services.conf written");
        std::fs::write(dir.path().join("anope/conf/services.motd"), "Test services\n").expect("motd written");
        make_certificates(&dir.path().join("tls"));
        if running_as_root() {
            // The daemons run as `irc`: everything they read or write must be theirs.
            let dir_arg = dir.path().display().to_string();
            run("chown", &["-R", "irc:irc", &dir_arg]);
        }
        let mut network = IrcNetwork { ports, dir, inspircd: None, anope: None };
        network.start_server();
        network.anope = Some(network.spawn_anope());
        network.wait_linked();
        Some(network)
    }

    /// The CA certificate that signed the TLS listener's certificate (for the bot's `tls_ca`).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("tls/ca.pem")
    }

    /// A `chat.irc` entry for a bot on the plain port (edit the returned JSON for other cases).
    pub fn bot_connection(&self, nick: &str, channels: &[&str]) -> Value {
        json!({
            "name": "local",
            "server": "127.0.0.1",
            "port": self.ports.plain,
            "tls": false,
            "nick": nick,
            "channels": channels,
        })
    }

    /// Kill the IRC server at once (SIGKILL, as a crash would), leaving the services running.
    pub fn kill_server(&mut self) {
        if let Some(mut child) = self.inspircd.take() {
            kill(&mut child);
        }
    }

    /// Start the IRC server (again) and wait until it accepts connections and the services have
    /// linked back (Anope retries every 2 s).
    pub fn start_server(&mut self) {
        assert!(self.inspircd.is_none(), "the IRC server is already running");
        let config = self.dir.path().join("inspircd.conf").display().to_string();
        let child = self.spawn_daemon("inspircd", INSPIRCD, &["--nofork", "--nopid", "--config", &config]);
        self.inspircd = Some(child);
        wait_for("InspIRCd to accept connections", DEADLINE, || {
            self.assert_alive();
            TcpStream::connect(("127.0.0.1", self.ports.humans)).ok()
        });
        if self.anope.is_some() {
            self.wait_linked();
        }
    }

    fn spawn_anope(&self) -> Child {
        let d = self.dir.path().join("anope");
        let arg = |flag: &str, path: &Path| format!("--{flag}={}", path.display());
        let args = [
            "--nofork".to_owned(),
            arg("confdir", &d.join("conf")),
            arg("dbdir", &d.join("db")),
            arg("logdir", &d.join("logs")),
            arg("modulesdir", Path::new(ANOPE_MODULES)),
            arg("localedir", Path::new(ANOPE_LOCALE)),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.spawn_daemon("anope", ANOPE, &args)
    }

    /// Start a daemon in the network's directory, as `irc` when we are root; its output goes to
    /// `NAME.out` there.
    fn spawn_daemon(&self, name: &str, program: &str, args: &[&str]) -> Child {
        use std::os::unix::process::CommandExt;
        let mut command = if running_as_root() {
            // setpriv execs the daemon, so the child's pid is the daemon's own.
            let mut c = Command::new("setpriv");
            c.args(["--reuid=irc", "--regid=irc", "--init-groups", program]);
            c
        } else {
            Command::new(program)
        };
        let out = File::create(self.dir.path().join(format!("{name}.out"))).expect("daemon output file");
        let err = out.try_clone().expect("daemon output handle");
        command.args(args).current_dir(self.dir.path()).stdin(Stdio::null()).stdout(out).stderr(err).process_group(0);
        command.spawn().unwrap_or_else(|e| panic!("{name} starts: {e}"))
    }

    /// Wait until NickServ is on the network (Anope has linked and burst).
    fn wait_linked(&mut self) {
        let mut probe = Human::connect(self, "linkprobe");
        let start = Instant::now();
        loop {
            self.assert_alive();
            probe.send("ISON NickServ");
            let reply = probe.wait_for_within("an ISON reply", Duration::from_secs(5), |l| l.command == "303");
            if reply.text().split_whitespace().any(|n| n.eq_ignore_ascii_case("NickServ")) {
                break;
            }
            assert!(start.elapsed() < DEADLINE, "the services did not link within {DEADLINE:?}\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(100));
        }
        probe.quit();
    }

    /// Panic with both daemons' logs if either has exited.
    fn assert_alive(&mut self) {
        let exited = |child: &mut Option<Child>| child.as_mut().and_then(|c| c.try_wait().ok().flatten());
        let status = [("InspIRCd", exited(&mut self.inspircd)), ("Anope", exited(&mut self.anope))];
        if let Some((name, Some(status))) = status.into_iter().find(|(_, s)| s.is_some()) {
            panic!("{name} exited early ({status})\n{}", self.logs());
        }
    }

    /// Everything the daemons wrote (for failure messages).
    pub fn logs(&self) -> String {
        let read = |p: &str| std::fs::read_to_string(self.dir.path().join(p)).unwrap_or_default();
        format!(
            "--- inspircd output\n{}\n--- ircd.log\n{}\n--- anope output\n{}",
            read("inspircd.out"),
            read("insp/logs/ircd.log"),
            read("anope.out")
        )
    }

    /// How many clients have connected to `port` so far (from InspIRCd's log).
    pub fn connections_on(&self, port: u16) -> usize {
        let log = std::fs::read_to_string(self.dir.path().join("insp/logs/ircd.log")).unwrap_or_default();
        let needle = format!("connecting on port {port} ");
        log.lines().filter(|l| l.contains(&needle)).count()
    }

    /// Register account `nick` with `password` through NickServ and return the client that did
    /// it, logged in to that account.
    pub fn register(&self, nick: &str, password: &str) -> Human {
        let mut human = Human::connect(self, nick);
        human.send(&format!("PRIVMSG NickServ :REGISTER {password}"));
        let answer = human.wait_for("NickServ's answer to REGISTER", |l| {
            l.command == "NOTICE" && l.nick().eq_ignore_ascii_case("NickServ")
        });
        assert!(answer.text().contains("registered"), "NickServ did not register {nick}: {}", answer.raw);
        human
    }
}

impl Drop for IrcNetwork {
    fn drop(&mut self) {
        // SIGKILL: nothing of the daemons' state is needed after a test, and InspIRCd's SIGTERM
        // path may segfault and leave a core file.
        for child in [self.inspircd.take(), self.anope.take()].into_iter().flatten() {
            let mut child = child;
            kill(&mut child);
        }
    }
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the process's effective user.
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn daemons_installed(test: &str) -> bool {
    let missing: Vec<&str> = [INSPIRCD, ANOPE].into_iter().filter(|p| !Path::new(p).exists()).collect();
    if missing.is_empty() {
        return true;
    }
    let notice =
        format!("{test}: SKIPPED: {} not installed; install the Debian packages {PACKAGES}", missing.join(", "));
    if std::env::var(REQUIRED_VAR).is_ok_and(|v| v == "1") {
        panic!("{notice} ({REQUIRED_VAR}=1 makes this a failure)");
    }
    // Straight to the real stderr: the test harness captures `eprintln!` of passing tests.
    let _ = writeln!(std::io::stderr(), "{notice}");
    false
}

fn run(program: &str, args: &[&str]) {
    let output = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program} runs: {e}"));
    assert!(output.status.success(), "{program} {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
}

/// A CA (`ca.pem`) and a certificate it signed for `localhost` and 127.0.0.1 (`cert.pem`,
/// `key.pem`). A leaf under a CA rather than one self-signed certificate: rustls refuses a
/// certificate that is its own CA as the server's end-entity certificate.
fn make_certificates(tls: &Path) {
    let p = |name: &str| tls.join(name).display().to_string();
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    let (ca_key, ca_pem) = (p("ca-key.pem"), p("ca.pem"));
    ca.extend(["-keyout", &ca_key, "-out", &ca_pem, "-days", "2", "-subj", "/CN=Rosey test CA"]);
    run("openssl", &ca);
    let (key, csr, cert, ext) = (p("key.pem"), p("cert.csr"), p("cert.pem"), p("ext.cnf"));
    std::fs::write(&ext, "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n").expect("ext file");
    let mut req = vec!["req"];
    req.extend(ec);
    req.extend(["-keyout", &key, "-out", &csr, "-subj", "/CN=localhost"]);
    run("openssl", &req);
    run(
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &cert,
        ],
    );
}

/// One IRC protocol line as received.
#[derive(Clone, Debug)]
pub struct Line {
    pub raw: String,
    pub tags: Vec<(String, String)>,
    /// `nick!user@host` or a server name; empty when the line had none.
    pub source: String,
    pub command: String,
    pub params: Vec<String>,
    /// When the harness read it.
    pub at: Instant,
    /// Whether the bytes were valid UTF-8 (`raw` shows invalid ones as U+FFFD).
    pub utf8: bool,
}

impl Line {
    pub fn parse(raw: &str) -> Line {
        let mut rest = raw;
        let mut tags = Vec::new();
        if let Some(tagged) = rest.strip_prefix('@') {
            let (t, r) = tagged.split_once(' ').unwrap_or((tagged, ""));
            for tag in t.split(';') {
                let (k, v) = tag.split_once('=').unwrap_or((tag, ""));
                tags.push((k.to_owned(), v.to_owned()));
            }
            rest = r.trim_start();
        }
        let mut source = String::new();
        if let Some(prefixed) = rest.strip_prefix(':') {
            let (s, r) = prefixed.split_once(' ').unwrap_or((prefixed, ""));
            source = s.to_owned();
            rest = r.trim_start();
        }
        let (command, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
        let mut params = Vec::new();
        while !rest.is_empty() {
            if let Some(trailing) = rest.strip_prefix(':') {
                params.push(trailing.to_owned());
                break;
            }
            let (p, r) = rest.split_once(' ').unwrap_or((rest, ""));
            params.push(p.to_owned());
            rest = r.trim_start();
        }
        Line {
            raw: raw.to_owned(),
            tags,
            source,
            command: command.to_ascii_uppercase(),
            params,
            at: Instant::now(),
            utf8: true,
        }
    }

    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The sender's nick (the source up to `!`).
    pub fn nick(&self) -> &str {
        self.source.split('!').next().unwrap_or_default()
    }

    /// The last parameter (a message's text).
    pub fn text(&self) -> &str {
        self.params.last().map(String::as_str).unwrap_or_default()
    }

    /// A PRIVMSG to `target` from `nick`.
    pub fn is_privmsg(&self, from: &str, target: &str) -> bool {
        self.command == "PRIVMSG"
            && self.nick().eq_ignore_ascii_case(from)
            && self.params.first().is_some_and(|t| t.eq_ignore_ascii_case(target))
    }
}

/// How a [`Human`] logs in.
#[derive(Clone, Default)]
pub struct HumanOptions {
    /// Ask for `account-tag` and `message-tags`, to see who the server says sent a message.
    pub tags: bool,
    /// Log in with SASL PLAIN as (account, password) before registering.
    pub sasl: Option<(String, String)>,
    /// Connect to this port instead of the network's unlimited one.
    pub port: Option<u16>,
}

/// A person on the network: a plain IRC client driven line by line by the test. PINGs are
/// answered by its reader thread; every other line waits in a queue for the test to look at.
pub struct Human {
    pub nick: String,
    stream: TcpStream,
    incoming: Receiver<Line>,
    /// Lines read from the queue that no wait asked for (a later wait looks at them first).
    backlog: VecDeque<Line>,
}

impl Human {
    /// Connect with `nick` to the network's unlimited port, no capabilities, not logged in.
    pub fn connect(network: &IrcNetwork, nick: &str) -> Human {
        Human::connect_with(network, nick, HumanOptions::default())
    }

    /// Connect with `nick` and `options`; panics unless the server welcomes it (001).
    pub fn connect_with(network: &IrcNetwork, nick: &str, options: HumanOptions) -> Human {
        let port = options.port.unwrap_or(network.ports.humans);
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("{nick} connects: {e}"));
        let mut human = Human::over(stream, nick);
        let mut caps = Vec::new();
        if options.tags {
            caps.extend(["account-tag", "message-tags"]);
        }
        if options.sasl.is_some() {
            caps.push("sasl");
        }
        if !caps.is_empty() {
            human.send(&format!("CAP REQ :{}", caps.join(" ")));
        }
        human.send(&format!("NICK {nick}"));
        human.send(&format!("USER {nick} 0 * :{nick} the tester"));
        if !caps.is_empty() {
            let ack = human.wait_for("CAP ACK or NAK", |l| l.command == "CAP");
            assert_eq!(ack.params.get(1).map(String::as_str), Some("ACK"), "capabilities refused: {}", ack.raw);
        }
        if let Some((account, password)) = &options.sasl {
            human.send("AUTHENTICATE PLAIN");
            human.wait_for("AUTHENTICATE +", |l| l.command == "AUTHENTICATE");
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{account}\0{account}\0{password}"));
            human.send(&format!("AUTHENTICATE {token}"));
            let outcome = human.wait_for("SASL outcome", |l| matches!(l.command.as_str(), "903" | "904" | "905"));
            assert_eq!(outcome.command, "903", "SASL login as {account} failed: {}", outcome.raw);
        }
        if !caps.is_empty() {
            human.send("CAP END");
        }
        let welcome =
            human.wait_for("the welcome (001)", |l| matches!(l.command.as_str(), "001" | "433" | "432" | "ERROR"));
        assert_eq!(welcome.command, "001", "{nick} was not welcomed: {}", welcome.raw);
        human
    }

    /// Wrap a connected socket (any IRC-speaking peer).
    pub fn over(stream: TcpStream, nick: &str) -> Human {
        let (tx, incoming) = channel();
        let reader = stream.try_clone().expect("socket clone");
        let mut ponger = stream.try_clone().expect("socket clone");
        std::thread::spawn(move || {
            let mut reader = BufReader::new(reader);
            let mut buf = Vec::new();
            while reader.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
                let text = String::from_utf8_lossy(&buf);
                let mut line = Line::parse(text.trim_end_matches(['\r', '\n']));
                line.utf8 = std::str::from_utf8(&buf).is_ok();
                buf.clear();
                if line.command == "PING" {
                    let _ = ponger.write_all(format!("PONG :{}\r\n", line.text()).as_bytes());
                    continue;
                }
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Human { nick: nick.to_owned(), stream, incoming, backlog: VecDeque::new() }
    }

    /// Send one raw line (CR LF added).
    pub fn send(&mut self, line: &str) {
        self.send_bytes(format!("{line}\r\n").as_bytes());
    }

    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap_or_else(|e| panic!("{} sends: {e}", self.nick));
    }

    /// PRIVMSG to a channel or nick.
    pub fn say(&mut self, target: &str, text: &str) {
        self.send(&format!("PRIVMSG {target} :{text}"));
    }

    /// JOIN and wait until the server lists the channel's members; returns their nicks.
    pub fn join(&mut self, channel: &str) -> Vec<String> {
        self.send(&format!("JOIN {channel}"));
        let mut members = Vec::new();
        let is_channel = |p: Option<&String>| p.is_some_and(|c| c.eq_ignore_ascii_case(channel));
        self.wait_for(&format!("the end of {channel}'s names"), |l| {
            if l.command == "353" && is_channel(l.params.get(2)) {
                members.extend(
                    l.text().split_whitespace().map(|n| n.trim_start_matches(['@', '+', '%', '~', '&']).to_owned()),
                );
            }
            l.command == "366" && is_channel(l.params.get(1))
        });
        members
    }

    /// The next line (from the backlog first) matching `matches`, within [`DEADLINE`].
    pub fn wait_for(&mut self, what: &str, matches: impl FnMut(&Line) -> bool) -> Line {
        self.wait_for_within(what, DEADLINE, matches)
    }

    /// As [`Human::wait_for`], with its own deadline. Lines that do not match stay in the
    /// backlog for later waits.
    pub fn wait_for_within(&mut self, what: &str, deadline: Duration, matches: impl FnMut(&Line) -> bool) -> Line {
        self.next_within(deadline, matches).unwrap_or_else(|| {
            let seen: Vec<&str> = self.backlog.iter().map(|l| l.raw.as_str()).collect();
            panic!("{}: timed out after {deadline:?} waiting for {what}; lines seen:\n{}", self.nick, seen.join("\n"))
        })
    }

    /// The next line (from the backlog first) matching `matches` within `deadline`, or None.
    pub fn next_within(&mut self, deadline: Duration, mut matches: impl FnMut(&Line) -> bool) -> Option<Line> {
        if let Some(i) = self.backlog.iter().position(&mut matches) {
            return self.backlog.remove(i);
        }
        self.next_matching(deadline, matches)
    }

    /// Every line that arrives within `window` and matches (for "nothing else came" checks).
    pub fn collect_for(&mut self, window: Duration, mut matches: impl FnMut(&Line) -> bool) -> Vec<Line> {
        let mut out: Vec<Line> = Vec::new();
        let mut kept = VecDeque::new();
        for line in self.backlog.drain(..) {
            if matches(&line) { out.push(line) } else { kept.push_back(line) }
        }
        self.backlog = kept;
        let end = Instant::now() + window;
        while let Some(line) = self.next_matching(end.saturating_duration_since(Instant::now()), &mut matches) {
            out.push(line);
        }
        out
    }

    fn next_matching(&mut self, deadline: Duration, mut matches: impl FnMut(&Line) -> bool) -> Option<Line> {
        let end = Instant::now() + deadline;
        loop {
            match self.incoming.recv_timeout(end.saturating_duration_since(Instant::now())) {
                Ok(line) if matches(&line) => return Some(line),
                Ok(line) => self.backlog.push_back(line),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// QUIT, and wait until the server has closed the link (so the nick is free again).
    pub fn quit(mut self) {
        self.send("QUIT :done");
        self.wait_for("the server to close the link", |l| l.command == "ERROR");
    }
}

impl Drop for Human {
    fn drop(&mut self) {
        // Ends the reader thread too.
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}
