//! IRC round trip through the bot (issue 22), run by `scripts/irc_bench.sh`: on the tests' real
//! network (InspIRCd + Anope, `tests/common/irc.rs`), a user sends `!roll 1d6` to the bot in a
//! private message and waits for the reply, one at a time, N times; the same user's private
//! message echoed back by a plain client gives the network's own share, and the dice-roller
//! driven directly over its pipes the plugin's. Prints p50/p99 of the three and what the bot
//! adds (through the bot minus the other two), and the CPU the bot and the plugin used per
//! 1,000 messages (utime + stime from `/proc/PID/stat`).
//!
//! Usage: `irc_bench ROSEY_BINARY [MESSAGES]` (default 1,000 messages).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

#[path = "../tests/common/irc.rs"]
#[allow(dead_code)] // the tests use more of the harness than the benchmark does
mod irc;

use irc::{Human, IrcNetwork};

/// What `tests/common/irc.rs` takes from its parent module in the tests.
const DEADLINE: Duration = Duration::from_secs(20);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn wait_for<T>(what: &str, deadline: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the process is alive");
    let rest = stat.rsplit_once(')').map(|(_, r)| r).expect("a stat line");
    // After the command name: state is field 3, utime field 14, stime field 15.
    let field = |n: usize| rest.split_whitespace().nth(n - 3).and_then(|v| v.parse::<f64>().ok()).expect("a number");
    // Linux reports clock ticks of 1/100 s (USER_HZ) on every platform it runs on.
    (field(14) + field(15)) / 100.0
}

fn get(url: &str) -> String {
    ureq::get(url).call().and_then(|mut r| r.body_mut().read_to_string()).unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// The dice-roller on its own: a command on its stdin to the reply on its stdout, `n` times
/// (what the plugin itself takes, pipes included).
fn plugin_alone(rosey_binary: &str, n: usize) -> Vec<Duration> {
    use std::io::{BufRead, BufReader, Write};
    let mut plugin = Command::new(rosey_binary)
        .args(["plugin", "dice-roller"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the dice-roller starts");
    let mut input = plugin.stdin.take().expect("piped stdin");
    let mut output = BufReader::new(plugin.stdout.take().expect("piped stdout"));
    let mut line = String::new();
    output.read_line(&mut line).expect("the plugin's hello");
    let mut times = Vec::with_capacity(n);
    for id in 0..n {
        let command = json!({ "type": "command", "id": id, "command": "roll", "args": "1d6", "user": "bench" });
        let start = Instant::now();
        writeln!(input, "{command}").and_then(|()| input.flush()).expect("the plugin reads");
        line.clear();
        output.read_line(&mut line).expect("the plugin replies");
        times.push(start.elapsed());
    }
    let _ = plugin.kill();
    let _ = plugin.wait();
    times.sort();
    times
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// Send `text` to `to` and time until `from` answers privately, `n` times.
fn round_trips(me: &mut Human, to: &str, text: &str, n: usize) -> Vec<Duration> {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        me.say(to, text);
        me.wait_for("the answer", |l| l.command == "PRIVMSG" && l.nick() == to);
        times.push(start.elapsed());
    }
    times.sort();
    times
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rosey_binary = args.next().expect("usage: irc_bench ROSEY_BINARY [MESSAGES]");
    let messages: usize = args.next().map_or(1000, |n| n.parse().expect("MESSAGES is a number"));
    let network = IrcNetwork::start("irc_bench").expect("inspircd and anope are installed");

    let mut echo = Human::connect(&network, "echo");
    std::thread::spawn(move || {
        // Until the network goes away at the end.
        while let Some(line) = echo.next_within(Duration::from_secs(3600), |l| l.command == "PRIVMSG") {
            echo.say(line.nick(), line.text());
        }
    });

    let dir = tempfile::tempdir().expect("a temporary directory");
    let port = free_port();
    // The bot uses the port without flood limits, with a pace that never holds a reply back:
    // this measures the bot, not its flood control.
    let config = json!({
        "dashboard": { "enabled": true, "host": "127.0.0.1", "port": port },
        "metrics": { "poll_interval": 1 },
        "plugins": [{ "name": "dice-roller", "builtin": "dice-roller" }],
        "chat": { "console": false, "irc": [{
            "name": "bench", "server": "127.0.0.1", "port": network.ports.humans, "tls": false,
            "nick": "rosey", "flood_burst": 1_000_000, "flood_interval": 0.01,
        }]},
    });
    let config_path = dir.path().join("rosey.json");
    std::fs::write(&config_path, config.to_string()).expect("config written");
    let log = std::fs::File::create(dir.path().join("rosey.log")).expect("log file");
    let mut command = Command::new(&rosey_binary);
    // The bot refuses ROSEY_* keys it does not know, such as the tests' own switch.
    for (key, _) in std::env::vars_os().filter(|(k, _)| k.to_string_lossy().starts_with("ROSEY_")) {
        command.env_remove(key);
    }
    let mut rosey = command
        .arg("--config")
        .arg(&config_path)
        .env("ROSEY_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log handle"))
        .stderr(log)
        .spawn()
        .expect("rosey starts");

    let mut me = Human::connect(&network, "bench");
    wait_for("the bot to answer", DEADLINE, || {
        me.say("rosey", "!roll 1d6");
        me.next_within(Duration::from_secs(1), |l| l.command == "PRIVMSG" && l.nick() == "rosey")
    });
    let base = format!("http://127.0.0.1:{port}");
    let plugin: serde_json::Value =
        serde_json::from_str(&get(&format!("{base}/api/plugin/dice-roller"))).expect("JSON");
    let plugin_pid = plugin["pid"].as_u64().expect("dice-roller has a pid") as u32;

    round_trips(&mut me, "echo", "warm-up", 50);
    round_trips(&mut me, "rosey", "!roll 1d6", 50);
    let network_only = round_trips(&mut me, "echo", "!roll 1d6", messages);
    let (bot0, plugin0) = (cpu_seconds(rosey.id()), cpu_seconds(plugin_pid));
    let through_bot = round_trips(&mut me, "rosey", "!roll 1d6", messages);
    let (bot1, plugin1) = (cpu_seconds(rosey.id()), cpu_seconds(plugin_pid));
    let plugin_only = plugin_alone(&rosey_binary, messages);

    let per_thousand = 1000.0 / messages as f64 * 1000.0;
    println!("{messages} messages, one at a time, private message to the bot and its private reply");
    let runs = [
        ("network only (echo client)", &network_only),
        ("dice-roller alone (pipes)", &plugin_only),
        ("through the bot", &through_bot),
    ];
    for (what, times) in runs {
        println!("  {what:<28} p50 {:6.3} ms  p99 {:6.3} ms", percentile(times, 0.5), percentile(times, 0.99));
    }
    let share = |p: f64| percentile(&through_bot, p) - percentile(&network_only, p) - percentile(&plugin_only, p);
    println!(
        "  the bot's own share          p50 {:6.3} ms  p99 {:6.3} ms (through the bot minus the other two)",
        share(0.5),
        share(0.99)
    );
    println!(
        "  CPU per 1,000 messages: rosey {:.1} ms, dice-roller {:.1} ms",
        (bot1 - bot0) * per_thousand,
        (plugin1 - plugin0) * per_thousand
    );
    let _ = rosey.kill();
    let _ = rosey.wait();
}
