//! Shared helpers for the end-to-end tests that drive real outside tools (Chromium through
//! chromedriver, the Prometheus server, promtool): find the tools or skip with a notice, run
//! daemons that die with the test, run one-shot tools with a deadline, poll with a deadline,
//! and pull metric names out of `/metrics` output and PromQL expressions.
//!
//! Included with `#[path]` by the integration tests' `main.rs`; used by `browser_*.rs`,
//! `prometheus_e2e.rs` and `ops.rs`. The browser harness is [`browser`].

#![allow(dead_code)] // each module uses a different part

pub mod browser;

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The Debian packages that bring every tool these tests need.
pub const PACKAGES: &str = "chromium chromium-driver prometheus libnss3-tools";
/// Set to 1 (CI does) to turn a missing tool into a failure instead of a skip.
pub const REQUIRED_VAR: &str = "ROSEY_E2E_REQUIRED";

/// The full paths of `names` found on PATH, or None after printing a SKIPPED notice.
///
/// With `ROSEY_E2E_REQUIRED=1` a missing tool fails the test instead.
pub fn tools(test: &str, names: &[&str]) -> Option<Vec<PathBuf>> {
    let found: Vec<Option<PathBuf>> = names.iter().map(|n| on_path(n)).collect();
    let missing: Vec<&str> = names.iter().zip(&found).filter(|(_, f)| f.is_none()).map(|(n, _)| *n).collect();
    if missing.is_empty() {
        return Some(found.into_iter().flatten().collect());
    }
    let notice =
        format!("{test}: SKIPPED: {} not found on PATH; install the Debian packages {PACKAGES}", missing.join(", "));
    if std::env::var(REQUIRED_VAR).is_ok_and(|v| v == "1") {
        panic!("{notice} ({REQUIRED_VAR}=1 makes this a failure)");
    }
    // Straight to the real stderr: the test harness captures `eprintln!` of passing tests, and
    // a skip must be seen.
    let _ = writeln!(std::io::stderr(), "{notice}");
    None
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A long-running helper process (chromedriver, prometheus) in its own process group, with its
/// output in a log file. Dropping it kills the whole group (chromedriver's browsers too).
pub struct Daemon {
    child: Child,
    name: String,
    log: PathBuf,
}

impl Daemon {
    /// Start `command`; its stdout and stderr go to `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Daemon {
        use std::os::unix::process::CommandExt;
        let out = File::create(log).expect("daemon log file");
        let err = out.try_clone().expect("daemon log file handle");
        command.stdin(Stdio::null()).stdout(out).stderr(err).process_group(0);
        let child = command.spawn().unwrap_or_else(|e| panic!("{name} starts: {e}"));
        Daemon { child, name: name.to_owned(), log: log.to_owned() }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panic with the daemon's log if it has exited.
    pub fn assert_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited early ({status}); its log:\n{}", self.name, self.log());
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // The group id is the daemon's own pid (process_group(0) above).
            let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// Poll `check` until it returns Ok, or panic after `deadline` with `what` and the last Err
/// (what was seen instead).
pub fn poll_until<T>(what: &str, deadline: Duration, mut check: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    loop {
        match check() {
            Ok(value) => return value,
            Err(seen) if start.elapsed() >= deadline => {
                panic!("timed out after {deadline:?} waiting for {what}; last seen: {seen}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// What a one-shot tool did.
#[derive(Debug)]
pub struct ToolRun {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl ToolRun {
    /// stdout and stderr, for failure messages.
    pub fn output(&self) -> String {
        format!("exit: {}\nstdout:\n{}\nstderr:\n{}", self.status, self.stdout, self.stderr)
    }

    /// Non-empty lines of stdout and stderr.
    pub fn lines(&self) -> Vec<String> {
        self.stdout
            .lines()
            .chain(self.stderr.lines())
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// Run `program args` in `dir`, feeding `stdin`, and wait at most `deadline` for it.
pub fn run_tool(program: &Path, args: &[&str], dir: &Path, stdin: &[u8], deadline: Duration) -> ToolRun {
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let out_path = scratch.path().join("stdout");
    let err_path = scratch.path().join("stderr");
    let mut child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(File::create(&out_path).expect("stdout file"))
        .stderr(File::create(&err_path).expect("stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("{} starts: {e}", program.display()));
    let mut pipe = child.stdin.take().expect("piped stdin");
    pipe.write_all(stdin).expect("tool reads its stdin");
    drop(pipe);
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait works") {
            break status;
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} {args:?} did not finish within {deadline:?}", program.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    ToolRun { status, stdout, stderr }
}

/// Metric names in Prometheus text-format output (sample lines and `# TYPE` lines).
pub fn exported_metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines().map(str::trim) {
        let name = if let Some(rest) = line.strip_prefix("# TYPE ") {
            rest.split_whitespace().next()
        } else if line.is_empty() || line.starts_with('#') {
            None
        } else {
            line.split(['{', ' ']).next()
        };
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            names.insert(name.to_owned());
        }
    }
    names
}

/// Identifiers in a PromQL expression that start with one of `prefixes`, outside quoted strings
/// (label values such as `state="FAILED"` are not names).
pub fn promql_names(expr: &str, prefixes: &[&str]) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut chars = expr.chars().peekable();
    let mut word = String::new();
    let mut flush = |word: &mut String| {
        if prefixes.iter().any(|p| word.starts_with(p)) {
            names.insert(std::mem::take(word));
        }
        word.clear();
    };
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                flush(&mut word);
                // Skip to the closing quote, honouring backslash escapes.
                while let Some(q) = chars.next() {
                    if q == '\\' {
                        chars.next();
                    } else if q == c {
                        break;
                    }
                }
            }
            c if c.is_ascii_alphanumeric() || c == '_' || c == ':' => word.push(c),
            _ => flush(&mut word),
        }
    }
    flush(&mut word);
    names
}

/// Percent-encode a URL query value.
pub fn query_escape(value: &str) -> String {
    let mut out = String::new();
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `target/screenshots/` (next to `target/tmp`), created if needed.
pub fn screenshot_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp.parent().unwrap_or(tmp).join("screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    dir
}
