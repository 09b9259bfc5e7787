//! Shared harness: start the real `rosey` binary on a free port with a temporary config, talk
//! to it over real HTTP, feed its stdin, read its stdout/stderr, and stop it.
//!
//! The default fixture is hostile on purpose: besides dice-roller and 8ball it runs a plugin
//! whose version holds quotes, `<`, `&` and emoji, so every page test also tests escaping.

#![allow(dead_code)] // each test module uses a different part of the harness

pub mod actions;
pub mod irc;
pub mod json;
pub mod pages;
pub mod raw;
pub mod sse;
pub mod webhook;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The version the hostile fixture plugin reports.
pub const HOSTILE_VERSION: &str = "<img src=x onerror=alert(1)>\"\\ & 🦀 '</script>";
/// How long to wait for anything before failing (generous: CI machines are small and shared).
pub const DEADLINE: Duration = Duration::from_secs(20);

pub fn rosey_exe() -> &'static str {
    env!("CARGO_BIN_EXE_rosey")
}

pub fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name).display().to_string()
}

/// A plugin config entry running a Python fixture.
pub fn python_plugin(name: &str, script: &str, args: &[&str]) -> Value {
    let mut command = vec!["python3".to_owned(), fixture(script)];
    command.extend(args.iter().map(|a| a.to_string()));
    json!({ "name": name, "command": command })
}

/// The crasher fixture's stderr lines, in order.
pub const CRASHER_STDERR: [&str; 3] =
    ["starting up", "<script>alert('stderr')</script> & \"quotes\"", "fatal: giving up"];

/// A plugin config entry "crasher" running the crasher fixture: it prints [`CRASHER_STDERR`],
/// exits with code 3 after `secs`, and is restarted as `restart` says.
pub fn crasher(secs: &str, restart: Value) -> Value {
    let mut plugin = python_plugin("crasher", "crasher.py", &[secs]);
    plugin["restart"] = restart;
    plugin
}

/// Write a Python plugin into `dir` and return its config entry (restarts off).
pub fn script_plugin(dir: &Path, name: &str, source: &str) -> Value {
    let path = dir.join(format!("{name}.py"));
    std::fs::write(&path, source).expect("the temporary directory is writable");
    json!({ "name": name, "command": ["python3", path.display().to_string()], "restart": { "enabled": false } })
}

/// Kill a plugin's process at once (SIGKILL), as a crash would.
pub fn sigkill(pid: i32) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL)
        .expect("the plugin can be killed");
}

/// A plugin config entry that exits with code 1 at once and is never restarted: it ends FAILED.
pub fn failing_plugin(name: &str) -> Value {
    json!({ "name": name, "command": ["python3", "-c", "import sys; sys.exit(1)"], "restart": { "enabled": false } })
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free loopback port")
}

/// Wait for a stdout line starting with `prefix` and return it.
pub fn wait_for_line(rosey: &Rosey, prefix: &str) -> String {
    wait_for(&format!("a line starting with {prefix:?}"), DEADLINE, || {
        rosey.stdout_lines().into_iter().find(|l| l.starts_with(prefix))
    })
}

/// Poll `check` until it returns Some, or panic with `what` after `deadline`.
pub fn wait_for<T>(what: &str, deadline: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(start.elapsed() < deadline, "timed out after {deadline:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Wait until `fetch` (an `/api/metrics` answer) returns a snapshot newer than `seen`, and return
/// it (or panic naming `what`): proof that the bot has published again since `seen` was taken.
pub fn next_snapshot(what: &str, seen: &Value, mut fetch: impl FnMut() -> Value) -> Value {
    wait_for(what, DEADLINE, || {
        let now = fetch();
        (now["timestamp"] != seen["timestamp"]).then_some(now)
    })
}

/// A bot spawned with its dashboard port taken by the listener returned beside it.
pub fn spawn_on_a_taken_port() -> (Rosey, TcpListener) {
    let taken = TcpListener::bind("127.0.0.1:0").expect("a loopback port to occupy");
    let port = taken.local_addr().expect("its address").port();
    let mut builder = RoseyBuilder::new();
    builder.config["dashboard"]["port"] = json!(port);
    (builder.spawn(), taken)
}

/// A plain HTTP response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// An HTTP client that follows up to `redirects` redirects.
fn agent(redirects: u32) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(redirects)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// Any method, any headers, against any URL (redirects followed, as ureq does by default).
pub fn request(method: &str, url: &str, headers: &[(&str, &str)]) -> Result<Reply, ureq::Error> {
    exchange(agent(10), method, url, headers)
}

/// As [`request`], but a redirect is the answer, not followed.
pub fn request_unfollowed(method: &str, url: &str, headers: &[(&str, &str)]) -> Result<Reply, ureq::Error> {
    exchange(agent(0), method, url, headers)
}

fn exchange(agent: ureq::Agent, method: &str, url: &str, headers: &[(&str, &str)]) -> Result<Reply, ureq::Error> {
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let request = builder.body(()).expect("a well-formed request");
    let mut response = agent.run(request)?;
    let status = response.status().as_u16();
    let headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    let content_type = headers.iter().find(|(k, _)| k == "content-type").map(|(_, v)| v.clone()).unwrap_or_default();
    let body = if method == "HEAD" { String::new() } else { response.body_mut().read_to_string()? };
    Ok(Reply { status, content_type, headers, body })
}

/// How to start a bot.
pub struct RoseyBuilder {
    pub config: Value,
    env: Vec<(String, String)>,
    open_files: Option<OpenFiles>,
}

/// The open-files limit (`RLIMIT_NOFILE`) rosey starts with.
#[derive(Clone, Copy)]
pub struct OpenFiles {
    pub soft: u64,
    pub hard: u64,
}

impl Default for RoseyBuilder {
    fn default() -> Self {
        RoseyBuilder::new()
    }
}

impl RoseyBuilder {
    /// dice-roller, 8ball and the hostile plugin; 1 s polls; dashboard on a free loopback port.
    pub fn new() -> Self {
        let config = json!({
            "dashboard": { "enabled": true, "host": "127.0.0.1", "port": free_port() },
            "metrics": { "poll_interval": 1, "history_duration": 120 },
            "plugins": [
                { "name": "dice-roller", "builtin": "dice-roller" },
                { "name": "8ball", "builtin": "8ball" },
                python_plugin("hostile", "hostile.py", &[]),
            ]
        });
        RoseyBuilder { config, env: Vec::new(), open_files: None }
    }

    /// Only these plugins.
    pub fn plugins(mut self, plugins: Value) -> Self {
        self.config["plugins"] = plugins;
        self
    }

    /// One more plugin.
    pub fn plugin(mut self, plugin: Value) -> Self {
        if let Some(list) = self.config["plugins"].as_array_mut() {
            list.push(plugin);
        }
        self
    }

    /// Start with this open-files limit instead of the test's own.
    pub fn open_files(mut self, limit: OpenFiles) -> Self {
        self.open_files = Some(limit);
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Start and wait until `/health` answers (or, with the dashboard disabled, until started).
    pub fn start(self) -> Rosey {
        let rosey = self.spawn();
        if rosey.dashboard_enabled() {
            wait_for("the dashboard to answer /health", DEADLINE, || {
                rosey.assert_alive();
                request("GET", &rosey.url("/health"), &[]).ok().filter(|r| r.status == 200)
            });
        }
        rosey
    }

    /// Start without waiting for anything.
    pub fn spawn(self) -> Rosey {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config_path = dir.path().join("rosey.json");
        std::fs::write(&config_path, serde_json::to_vec_pretty(&self.config).expect("JSON")).expect("config written");
        let mut command = Command::new(rosey_exe());
        without_rosey_env(&mut command);
        command
            .arg("--config")
            .arg(&config_path)
            .current_dir(dir.path())
            .env_remove("ROSEY_CONFIG")
            .env("ROSEY_LOG", "info")
            .env("NO_COLOR", "1")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(OpenFiles { soft, hard }) = self.open_files {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, soft, hard)
                        .map_err(std::io::Error::from)
                });
            }
        }
        let mut child = command.spawn().expect("rosey starts");
        let stdout = relay(child.stdout.take().expect("piped stdout"), "rosey stdout");
        let stderr = relay(child.stderr.take().expect("piped stderr"), "rosey stderr");
        let stdin = child.stdin.take();
        Rosey { child, stdin, stdout, stderr, config: self.config, config_path, _dir: dir }
    }
}

/// Collect a child's output lines, echoing them with a prefix so that failures are readable.
fn relay(pipe: impl std::io::Read + Send + 'static, prefix: &'static str) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            eprintln!("[{prefix}] {line}");
            sink.lock().expect("relay lock").push(line);
        }
    });
    lines
}

/// A running bot.
pub struct Rosey {
    pub child: Child,
    stdin: Option<ChildStdin>,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    pub config: Value,
    pub config_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Rosey {
    pub fn port(&self) -> u16 {
        self.config["dashboard"]["port"].as_u64().expect("port in config") as u16
    }

    fn dashboard_enabled(&self) -> bool {
        self.config["dashboard"]["enabled"].as_bool().unwrap_or(true)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port())
    }

    pub fn get(&self, path: &str) -> Reply {
        request("GET", &self.url(path), &[]).unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    pub fn get_json(&self, path: &str) -> Value {
        let reply = self.get(path);
        assert_eq!(reply.status, 200, "GET {path}: {}", reply.body);
        reply.json()
    }

    /// `/api/plugin/{name}`.
    pub fn plugin(&self, name: &str) -> Value {
        self.get_json(&format!("/api/plugin/{name}"))
    }

    /// Wait until the plugin reports `state` (and return its JSON).
    pub fn wait_for_state(&self, name: &str, state: &str) -> Value {
        self.wait_for_plugin(&format!("{name} to be {state}"), name, |p| p["state"] == state)
    }

    /// Wait until `/api/plugin/{name}` satisfies `check` (and return it).
    pub fn wait_for_plugin(&self, what: &str, name: &str, check: impl Fn(&Value) -> bool) -> Value {
        wait_for(what, DEADLINE, || {
            let plugin = self.plugin(name);
            check(&plugin).then_some(plugin)
        })
    }

    /// Wait until every configured plugin is RUNNING (a plugin's hello may still be on its way).
    pub fn wait_until_running(&self) {
        self.wait_until_running_except(None);
    }

    /// Wait until every configured plugin but `skip` is RUNNING.
    pub fn wait_until_running_except(&self, skip: Option<&str>) {
        let names: Vec<String> = self.config["plugins"]
            .as_array()
            .map(|ps| ps.iter().filter_map(|p| p["name"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        for name in names.iter().filter(|n| Some(n.as_str()) != skip) {
            self.wait_for_state(name, "RUNNING");
        }
    }

    pub fn pid_of(&self, name: &str) -> i32 {
        self.plugin(name)["pid"].as_i64().unwrap_or_else(|| panic!("{name} has a pid")) as i32
    }

    /// Send one chat line on the bot's stdin.
    pub fn say(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        writeln!(stdin, "{line}").and_then(|()| stdin.flush()).expect("rosey reads its stdin");
    }

    /// Send raw bytes on the bot's stdin (for input that is not UTF-8).
    pub fn say_bytes(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin.write_all(bytes).and_then(|()| stdin.flush()).expect("rosey reads its stdin");
    }

    /// Close the bot's stdin (end of console input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().expect("stdout lock").clone()
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().expect("stderr lock").join("\n")
    }

    pub fn assert_alive(&self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let alive = nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG))
            .map(|s| s == nix::sys::wait::WaitStatus::StillAlive)
            .unwrap_or(false);
        assert!(alive, "rosey exited early; its log:\n{}", self.stderr_text());
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), signal).expect("signal delivered");
    }

    /// Wait for the process to exit within `deadline`.
    pub fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        wait_for("rosey to exit", deadline, || self.child.try_wait().expect("try_wait works"))
    }
}

impl Drop for Rosey {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal(nix::sys::signal::Signal::SIGTERM);
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A clean slate: no `ROSEY_*` from the developer's shell or from CI (`ROSEY_E2E_REQUIRED` is
/// the tests' own switch, and the bot rightly refuses unknown `ROSEY_*` keys).
fn without_rosey_env(command: &mut Command) {
    for (key, _) in std::env::vars_os().filter(|(k, _)| k.to_string_lossy().starts_with("ROSEY_")) {
        command.env_remove(key);
    }
}

/// Run `rosey ARGS` to completion in `dir` with `env` (for one-shot commands and config errors).
pub fn run_rosey(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(rosey_exe());
    command.args(args).current_dir(dir).env_remove("ROSEY_CONFIG").stdin(Stdio::null());
    without_rosey_env(&mut command);
    command.envs(env.iter().copied());
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("rosey starts");
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().expect("output collected");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("rosey {args:?} did not exit within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What a finished `rosey` printed on stdout, as text.
pub fn stdout_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// What a finished `rosey` printed on stderr, as text.
pub fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// All pids whose parent is `pid` (for "no child outlives the host" checks).
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return out };
    for entry in entries.flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else { continue };
        // Fields after the parenthesised command name: state, ppid, ...
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { continue };
        let ppid = rest.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(child);
        }
    }
    out
}

pub fn process_exists(pid: u32) -> bool {
    // A zombie still has a /proc entry; it counts as gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, r)| r.trim_start().starts_with('Z')))
        .is_some_and(|zombie| !zombie)
}
