//! Each plugin's story (issue 9): the crash log with exit code or signal and the stderr tail,
//! the restart countdown, freshness, availability, the whole process tree's memory, the detail
//! page (hostile stderr shown literally) and the Prometheus additions.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::common::json::{metric, parse_rfc3339};
use crate::common::*;

/// The crasher fixture's stderr lines, in order.
const CRASHER_STDERR: [&str; 3] = ["starting up", "<script>alert('stderr')</script> & \"quotes\"", "fatal: giving up"];

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs_f64()
}

fn rfc3339_of(v: &Value) -> f64 {
    let text = v.as_str().unwrap_or_else(|| panic!("not a string: {v}"));
    parse_rfc3339(text).unwrap_or_else(|| panic!("not RFC 3339: {text:?}"))
}

/// Undo HTML escaping (what a browser shows).
fn unescape_html(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&#x2F;", "/")
        .replace("&#47;", "/")
        .replace("&amp;", "&")
}

/// The texts of every shown (not `hidden`) `<pre class="stderr">` on a page, unescaped.
fn stderr_blocks(page: &str) -> Vec<String> {
    page.split("<pre class=\"stderr\"")
        .skip(1)
        .filter_map(|rest| rest.split_once('>'))
        .filter(|(attributes, _)| !attributes.split_whitespace().any(|a| a == "hidden"))
        .map(|(_, rest)| unescape_html(rest.split("</pre>").next().expect("pre closes")))
        .collect()
}

/// The text of `data-field="field"` inside the card of `name` on the page.
fn card_field(page: &str, name: &str, field: &str) -> String {
    let marker = format!("data-plugin=\"{name}\"");
    let start = page.find(&marker).unwrap_or_else(|| panic!("no card for {name}"));
    let card = &page[start..start + page[start..].find("</article>").expect("card closes")];
    let at = card.find(&format!("data-field=\"{field}\"")).unwrap_or_else(|| panic!("no {field} on the card"));
    let open_end = card[at..].find('>').unwrap() + at + 1;
    let close = card[open_end..].find('<').unwrap() + open_end;
    unescape_html(&card[open_end..close])
}

fn kill(pid: i32) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).expect("killed");
}

fn crasher(secs: &str, restart: Value) -> Value {
    let mut plugin = python_plugin("crasher", "crasher.py", &[secs]);
    plugin["restart"] = restart;
    plugin
}

// ---------------------------------------------------------------------------------------------

#[test]
fn crash_log_records_exit_code_and_stderr_newest_first() {
    let started = now();
    let rosey = RoseyBuilder::new()
        .plugins(json!([crasher("0.3", json!({ "initial_delay": 0.5, "max_delay": 1, "max_attempts": 100 }))]))
        .start();
    let p =
        rosey.wait_for_plugin("two crashes", "crasher", |p| p["crash_log"].as_array().is_some_and(|l| l.len() >= 2));
    let log = p["crash_log"].as_array().unwrap();
    for crash in log {
        assert_eq!(crash["exit_code"], 3, "{crash}");
        assert!(crash["signal"].is_null(), "{crash}");
        assert_eq!(crash["reason"], "exited with code 3");
        assert_eq!(crash["stderr_tail"], json!(CRASHER_STDERR), "the lines it printed before dying");
        let uptime = crash["uptime_seconds"].as_f64().expect("uptime_seconds is a number");
        assert!(uptime >= 0.3, "it ran at least its 0.3 s: {crash}");
        let at = rfc3339_of(&crash["time"]);
        assert!(at >= started - 1.0 && at <= now() + 1.0, "crash time {at} is during the test");
    }
    let times: Vec<f64> = log.iter().map(|c| rfc3339_of(&c["time"])).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");
    assert_eq!(p["last_crash_at"], log[0]["time"]);
    assert!(p["current"]["crash_count"].as_u64().unwrap() >= log.len() as u64);
}

#[test]
fn crash_log_keeps_the_last_ten_and_the_last_twenty_stderr_lines_cut_at_512_bytes() {
    let script = "import sys\n\
                  for i in range(1, 26): sys.stderr.write('line %d\\n' % i)\n\
                  sys.stderr.write('x' * 2000 + '\\n')\n\
                  sys.stderr.flush()\n\
                  sys.exit(3)\n";
    let rosey = RoseyBuilder::new()
        .plugins(json!([{
            "name": "noisy",
            "command": ["python3", "-c", script],
            "restart": { "initial_delay": 0, "max_delay": 0, "max_attempts": 11 }
        }]))
        .start();
    let p = rosey.wait_for_state("noisy", "FAILED");
    assert_eq!(p["current"]["crash_count"], 12, "11 restarts allowed, the 12th crash gives up");
    assert_eq!(p["restart_attempt"], 12);
    assert!(p["next_restart_in_seconds"].is_null(), "no restart pending once FAILED");
    let log = p["crash_log"].as_array().unwrap();
    assert_eq!(log.len(), 10, "the last 10 exits only");
    let tail: Vec<&str> = log[0]["stderr_tail"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    assert_eq!(tail.len(), 20, "{tail:?}");
    assert_eq!(tail[0], "line 7");
    assert_eq!(tail[18], "line 25");
    assert_eq!(tail[19], "x".repeat(512), "a long line is cut at 512 bytes");
}

#[test]
fn a_plugin_killed_by_a_signal_shows_the_signal_name() {
    let rosey = RoseyBuilder::new()
        .plugins(json!([{ "name": "dice-roller", "builtin": "dice-roller", "restart": { "initial_delay": 30 } }]))
        .start();
    rosey.wait_until_running();
    kill(rosey.pid_of("dice-roller"));
    let p = rosey.wait_for_state("dice-roller", "CRASHED");
    let crash = &p["crash_log"][0];
    assert_eq!(crash["signal"], "SIGKILL", "{crash}");
    assert!(crash["exit_code"].is_null(), "{crash}");
    assert_eq!(crash["reason"], "killed by SIGKILL");
    assert!(crash["stderr_tail"].is_array());
    assert_eq!(p["last_crash_at"], crash["time"]);

    // The card says it in words, and when the next attempt comes.
    let page = rosey.get("/").body;
    let last_exit = card_field(&page, "dice-roller", "last_exit");
    assert!(last_exit.starts_with("killed by SIGKILL after "), "{last_exit:?}");
    let next_retry = card_field(&page, "dice-roller", "next_retry");
    assert!(next_retry.starts_with("next retry in ") && next_retry.ends_with(" s"), "{next_retry:?}");
    assert_eq!(card_field(&page, "dice-roller", "badge"), "CRASHED");
}

#[test]
fn next_restart_countdown_counts_down_during_backoff() {
    let rosey =
        RoseyBuilder::new().plugins(json!([crasher("3", json!({ "initial_delay": 5, "max_delay": 60 }))])).start();
    let running = rosey.wait_for_state("crasher", "RUNNING");
    assert!(running["next_restart_in_seconds"].is_null(), "null while RUNNING: {running}");
    assert_eq!(running["restart_attempt"], 0);

    let crashed = rosey.wait_for_state("crasher", "CRASHED");
    let first = crashed["next_restart_in_seconds"].as_f64().expect("a countdown while CRASHED");
    assert!(first > 0.0 && first <= 5.0, "{first}");
    assert_eq!(crashed["restart_attempt"], 1);
    let later = rosey.wait_for_plugin("the countdown to go down", "crasher", |p| {
        p["state"] != "CRASHED" || p["next_restart_in_seconds"].as_f64().is_some_and(|n| n < first)
    });
    assert_eq!(later["state"], "CRASHED", "the countdown went down before the restart");
    let second = later["next_restart_in_seconds"].as_f64().unwrap();
    assert!(second < first && second <= 5.0, "{first} then {second}");
    let page = rosey.get("/").body;
    if card_field(&page, "crasher", "badge") == "CRASHED" {
        assert!(card_field(&page, "crasher", "next_retry").starts_with("next retry in "));
    }

    let restarted = rosey.wait_for_plugin("the restart", "crasher", |p| p["state"] == "RUNNING" && p["restarts"] == 1);
    assert!(restarted["next_restart_in_seconds"].is_null(), "null again once RUNNING: {restarted}");
    assert_eq!(restarted["restart_attempt"], 1, "the attempt count stays until the plugin proves stable");
    let page = wait_for("the page to show it running", DEADLINE, || {
        let page = rosey.get("/").body;
        (card_field(&page, "crasher", "badge") == "RUNNING").then_some(page)
    });
    assert_eq!(card_field(&page, "crasher", "next_retry"), "", "no countdown on a running card");
    let text = rosey.get("/metrics").body;
    assert!(metric(&text, r#"rosey_plugin_restarts_total{plugin="crasher"}"#) >= Some(1.0), "{text}");

    let again = rosey.wait_for_plugin("the second crash", "crasher", |p| p["restart_attempt"] == 2);
    if again["state"] == "CRASHED" {
        let n = again["next_restart_in_seconds"].as_f64().expect("a countdown");
        assert!(n > 0.0 && n <= 10.0, "the second backoff doubles: {n}");
    }
}

#[test]
fn memory_and_processes_count_the_whole_tree() {
    let rosey = RoseyBuilder::new().plugins(json!([python_plugin("tree", "memory_tree.py", &["80"])])).start();
    let p = rosey.wait_for_plugin("the tree's 80 MB", "tree", |p| {
        p["current"]["memory_mb"].as_f64() >= Some(80.0) && p["processes"].as_u64() >= Some(2)
    });
    let pid = p["pid"].as_u64().unwrap() as u32;
    assert!(!children_of(pid).is_empty(), "the plugin did start a child");

    let text = rosey.get("/metrics").body;
    assert!(metric(&text, r#"rosey_plugin_processes{plugin="tree"}"#) >= Some(2.0), "{text}");
    assert!(metric(&text, r#"rosey_plugin_memory_bytes{plugin="tree"}"#) >= Some(80.0 * 1024.0 * 1024.0));
    let metrics = rosey.get_json("/api/metrics");
    assert!(metrics["system"]["total_memory_mb"].as_f64() >= Some(80.0), "{}", metrics["system"]);
    let page = rosey.get("/").body;
    assert!(card_field(&page, "tree", "processes").parse::<u32>().unwrap() >= 2);
}

#[test]
fn detail_page_shows_charts_aggregates_and_hostile_stderr_literally() {
    let rosey = RoseyBuilder::new().plugin(crasher("0.2", json!({ "initial_delay": 60 }))).start();
    rosey.wait_for_plugin("a crash", "crasher", |p| p["crash_log"].as_array().is_some_and(|l| !l.is_empty()));
    rosey.wait_for_plugin("aggregates", "dice-roller", |p| p["aggregates_1h"].is_object());

    let resp = rosey.get("/plugin/crasher");
    assert_eq!(resp.status, 200);
    assert!(resp.content_type.starts_with("text/html"));
    let page = resp.body;
    assert!(!page.contains("<script>alert"), "stderr is markup on the page:\n{page}");
    assert!(page.contains("&lt;script&gt;alert("), "the hostile line is shown:\n{page}");
    let blocks = stderr_blocks(&page);
    assert_eq!(blocks, [CRASHER_STDERR.join("\n")], "shown literally, line for line");
    assert!(page.contains("exited with code 3 after"), "the reason in words");
    assert!(page.contains(r#"<noscript><meta http-equiv="refresh" content="5"></noscript>"#));
    assert!(page.contains(r#"data-plugin="crasher""#));

    let page = rosey.get("/plugin/dice-roller").body;
    for chart in ["cpu", "memory", "events"] {
        let at = page.find(&format!("data-chart=\"{chart}\"")).unwrap_or_else(|| panic!("no {chart} chart"));
        let figure = &page[at..at + page[at..].find("</figure>").unwrap()];
        assert!(figure.contains("<svg") && figure.contains("<polyline"), "{chart} chart is inline SVG");
        assert!(figure.contains(r#"<polyline data-chart-line"#), "live updates redraw it: {figure}");
    }
    assert!(page.contains("id=\"aggregates\""));
    for label in ["Samples", "CPU avg", "CPU p95", "Memory max"] {
        assert!(page.contains(&format!("<dt>{label}</dt>")), "aggregate {label}");
    }
    assert!(page.contains("id=\"crash-log\"") && page.contains("No crashes recorded"));

    let missing = rosey.get("/plugin/nope");
    assert_eq!(missing.status, 404);
}

#[test]
fn samples_are_fresh_and_availability_is_a_fraction() {
    let rosey = RoseyBuilder::new().plugin(failing_plugin("broken")).start();
    rosey.wait_until_running_except("broken");
    let first = rosey.wait_for_plugin("a sample", "dice-roller", |p| p["last_sampled_at"].is_string());
    let sampled = rfc3339_of(&first["last_sampled_at"]);
    assert!(sampled <= now() + 1.0 && sampled > now() - 10.0, "fresh: {sampled} vs {}", now());
    assert_eq!(first["stale"], false);
    // Availability exists once the history holds a point (one poll interval in).
    let later = rosey.wait_for_plugin("a newer sample in the history", "dice-roller", |p| {
        p["last_sampled_at"].as_str().and_then(parse_rfc3339).is_some_and(|t| t > sampled)
            && p["availability_1h"].is_number()
    });
    assert_eq!(later["stale"], false);
    let availability = later["availability_1h"].as_f64().expect("availability_1h is a number");
    assert!((0.0..=1.0).contains(&availability), "{availability}");
    assert!(later["last_crash_at"].is_null(), "never crashed");

    // Time spent FAILED counts against availability.
    let broken = rosey.wait_for_plugin("availability to drop while FAILED", "broken", |p| {
        p["state"] == "FAILED" && p["availability_1h"].as_f64().is_some_and(|a| a < 1.0)
    });
    let availability = broken["availability_1h"].as_f64().unwrap();
    assert!((0.0..1.0).contains(&availability), "{availability}");
    assert!(broken["last_crash_at"].is_string());
    assert_eq!(broken["last_crash_at"], broken["crash_log"][0]["time"]);
}

#[test]
fn prometheus_additions_exist_without_a_pid_label() {
    let rosey = RoseyBuilder::new().plugin(failing_plugin("broken")).start();
    rosey.wait_for_state("dice-roller", "RUNNING");
    rosey.wait_for_state("broken", "FAILED");
    let text = wait_for("a sampled exposition", DEADLINE, || {
        let text = rosey.get("/metrics").body;
        (metric(&text, r#"rosey_plugin_processes{plugin="dice-roller"}"#) >= Some(1.0)
            && metric(&text, "rosey_plugins_crashed") == Some(1.0))
        .then_some(text)
    });
    for (name, kind) in [
        ("rosey_plugin_cpu_seconds_total", "counter"),
        ("rosey_plugin_start_time_seconds", "gauge"),
        ("rosey_plugin_restarts_total", "counter"),
        ("rosey_plugin_processes", "gauge"),
        ("rosey_plugin_state", "gauge"),
        ("rosey_plugin_up", "gauge"),
        ("rosey_plugin_info", "gauge"),
        ("rosey_plugin_memory_bytes", "gauge"),
        ("rosey_plugins_crashed", "gauge"),
        ("process_cpu_seconds_total", "counter"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_start_time_seconds", "gauge"),
        ("process_open_fds", "gauge"),
        ("process_max_fds", "gauge"),
    ] {
        assert!(text.lines().any(|l| l.starts_with(&format!("# HELP {name} "))), "no HELP for {name}");
        assert!(text.lines().any(|l| l == format!("# TYPE {name} {kind}")), "no TYPE {kind} for {name}");
    }
    assert!(!text.contains("pid="), "no pid label (cardinality)");

    let value = |series: &str| metric(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"));
    assert_eq!(value(r#"rosey_plugin_up{plugin="dice-roller"}"#), 1.0);
    assert_eq!(value(r#"rosey_plugin_up{plugin="broken"}"#), 0.0);
    assert_eq!(value(r#"rosey_plugin_state{plugin="dice-roller",state="RUNNING"}"#), 1.0);
    assert_eq!(value(r#"rosey_plugin_state{plugin="dice-roller",state="CRASHED"}"#), 0.0);
    assert_eq!(value(r#"rosey_plugin_state{plugin="broken",state="FAILED"}"#), 1.0);
    assert_eq!(value(r#"rosey_plugin_info{plugin="dice-roller",version="0.1.0"}"#), 1.0);
    let started = value(r#"rosey_plugin_start_time_seconds{plugin="dice-roller"}"#);
    assert!(started > now() - 120.0 && started <= now() + 1.0, "start time is recent: {started}");
    assert!(value(r#"rosey_plugin_cpu_seconds_total{plugin="dice-roller"}"#) >= 0.0);
    assert!(value("process_resident_memory_bytes") > 0.0);
    assert!(value("process_open_fds") > 0.0);
    assert!(value("process_max_fds") >= value("process_open_fds"));
    let host_started = value("process_start_time_seconds");
    assert!(host_started > now() - 120.0 && host_started <= now() + 1.0, "{host_started}");
}

/// Waiting helpers this module needs beyond the shared harness.
trait WaitExt {
    fn wait_until_running_except(&self, skip: &str);
}

impl WaitExt for Rosey {
    fn wait_until_running_except(&self, skip: &str) {
        let names: Vec<String> = self.config["plugins"]
            .as_array()
            .map(|ps| ps.iter().filter_map(|p| p["name"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        for name in names.iter().filter(|n| *n != skip) {
            self.wait_for_state(name, "RUNNING");
        }
    }
}
