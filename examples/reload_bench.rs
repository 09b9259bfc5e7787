//! Hot reload under chat load (issue 15's benchmark; figures in docs/performance.md).
//!
//! Starts the release `rosey` with one Python plugin (tests/fixtures/versioned.py), feeds it
//! `!ver N` commands on stdin at a steady rate, reloads the plugin through the API a number of
//! times (a new version "deployed" before each), then stops the load and counts the replies:
//! every command must be answered exactly once. Prints the reload times (median, worst) and the
//! commands lost.
//!
//! cargo run --release --example reload_bench -- RATE [RELOADS]
//! (`scripts/reload_bench.sh` runs it at 100 and 1,000 commands per second.)

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const AUTH: &str = "Basic YWRtaW46czNjcmV0"; // admin:s3cret
/// Pause between two reloads, so that each starts under a steady load.
const BETWEEN_RELOADS: Duration = Duration::from_millis(500);
/// How long the replies may take to arrive after the load stops.
const SETTLE: Duration = Duration::from_secs(30);

/// What the stdout reader saw, per command number.
#[derive(Default)]
struct Seen {
    /// Replies from the plugin (any version).
    by_plugin: HashMap<u64, u32>,
    /// Answers from the host instead (busy, not running).
    by_host: u64,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rate: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let reloads: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let version_file = dir.path().join("VERSION");
    std::fs::write(&version_file, "1").expect("version file");
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
    let config = json!({
        "dashboard": { "host": "127.0.0.1", "port": port, "auth": { "username": "admin", "password": "s3cret" } },
        "plugins": [{ "name": "versioned", "command": [
            "python3", root.join("tests/fixtures/versioned.py"), &version_file
        ] }],
    });
    let config_path = dir.path().join("rosey.json");
    std::fs::write(&config_path, config.to_string()).expect("config written");
    let mut rosey = start(&root, &config_path);
    let base = format!("http://127.0.0.1:{port}");
    wait_until("version 1 running", || plugin(&base).is_some_and(|p| p["state"] == "RUNNING"));

    let seen = Arc::new(Mutex::new(Seen::default()));
    let reader = read_replies(&mut rosey, seen.clone());
    let sent = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = feed(&mut rosey, rate, sent.clone(), stop.clone());

    std::thread::sleep(BETWEEN_RELOADS);
    let mut took = Vec::with_capacity(reloads);
    for i in 0..reloads {
        std::fs::write(&version_file, (i + 2).to_string()).expect("deploy");
        let report = post(&format!("{base}/api/plugin/versioned/reload"));
        assert_eq!(report["outcome"], "reloaded", "reload {i}: {report}");
        took.push(report["duration_seconds"].as_f64().expect("a duration"));
        std::thread::sleep(BETWEEN_RELOADS);
    }
    stop.store(true, Ordering::SeqCst);
    writer.join().expect("the writer");
    let sent = sent.load(Ordering::SeqCst);
    let settled = Instant::now();
    while settled.elapsed() < SETTLE {
        let seen = seen.lock().expect("seen");
        if seen.by_plugin.len() as u64 + seen.by_host >= sent {
            break;
        }
        drop(seen);
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = rosey.kill();
    let _ = rosey.wait();
    let _ = reader.join();

    let seen = seen.lock().expect("seen");
    let twice = seen.by_plugin.values().filter(|&&n| n > 1).count();
    let lost = sent.saturating_sub(seen.by_plugin.len() as u64 + seen.by_host);
    took.sort_by(f64::total_cmp);
    let median = (took[(took.len() - 1) / 2] + took[took.len() / 2]) / 2.0;
    let worst = took.last().copied().unwrap_or_default();
    println!(
        "rate {rate}/s: {reloads} reloads, median {median:.3} s, worst {worst:.3} s; {sent} commands, \
         answered by the plugin {}, by the host {}, twice {twice}, lost {lost}",
        seen.by_plugin.len(),
        seen.by_host
    );
}

fn start(root: &Path, config: &Path) -> Child {
    Command::new(root.join("target/release/rosey"))
        .arg("--config")
        .arg(config)
        .env("ROSEY_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("target/release/rosey runs (cargo build --release first)")
}

/// `!ver N` at `rate` a second, in 10 ms batches, until `stop`.
fn feed(rosey: &mut Child, rate: u64, sent: Arc<AtomicU64>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let mut stdin = rosey.stdin.take().expect("piped stdin");
    std::thread::spawn(move || {
        let start = Instant::now();
        let mut n = 0u64;
        while !stop.load(Ordering::SeqCst) {
            let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
            let mut batch = String::new();
            while n < due {
                batch.push_str(&format!("!ver {n}\n"));
                n += 1;
            }
            stdin.write_all(batch.as_bytes()).and_then(|()| stdin.flush()).expect("rosey reads its stdin");
            sent.store(n, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(10));
        }
    })
}

fn read_replies(rosey: &mut Child, seen: Arc<Mutex<Seen>>) -> std::thread::JoinHandle<()> {
    let stdout = rosey.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let mut seen = seen.lock().expect("seen");
            if let Some(n) = line.strip_prefix("[versioned] @console v").and_then(|r| r.split_once(' ')) {
                if let Ok(n) = n.1.parse::<u64>() {
                    *seen.by_plugin.entry(n).or_default() += 1;
                }
            } else if line.starts_with("[rosey] @console ") {
                seen.by_host += 1;
            }
        }
    })
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

fn plugin(base: &str) -> Option<Value> {
    let mut response = agent().get(format!("{base}/api/plugin/versioned")).header("authorization", AUTH).call().ok()?;
    serde_json::from_str(&response.body_mut().read_to_string().ok()?).ok()
}

fn post(url: &str) -> Value {
    let mut response = agent().post(url).header("authorization", AUTH).send_empty().expect("the bot answers");
    serde_json::from_str(&response.body_mut().read_to_string().expect("a body")).expect("JSON")
}

fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < Duration::from_secs(30), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
