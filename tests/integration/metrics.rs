//! The metrics collector (issue 4), seen through `/api/plugin/{name}` and `/api/metrics`:
//! CPU and memory of real processes, retention, history across restarts, system totals, fresh
//! samples and availability.

use serde_json::{Value, json};

use crate::common::json::{count, parse_rfc3339, rfc3339_seconds, unix_now};
use crate::common::*;

fn number(value: &Value) -> f64 {
    value.as_f64().unwrap_or_else(|| panic!("{value} is not a number"))
}

fn history(plugin: &Value) -> &[Value] {
    plugin["history"].as_array().map_or(&[], Vec::as_slice)
}

#[test]
fn timestamps_parse() {
    assert_eq!(rfc3339_seconds(&json!("1970-01-02T00:00:00Z")), 86_400.0);
    assert_eq!(rfc3339_seconds(&json!("2024-03-01T00:00:01.5Z")), 1_709_251_201.5);
}

/// Wait until the plugin has `n` history points from its current process (not counting the
/// first, which has no CPU figure yet), and return the plugin's JSON.
fn wait_for_samples(rosey: &Rosey, name: &str, n: usize) -> Value {
    rosey.wait_for_plugin(&format!("{n} samples of {name}"), name, |p| {
        let loaded = match &p["loaded_at"] {
            Value::Null => return false,
            at => rfc3339_seconds(at),
        };
        let fresh =
            history(p).iter().filter(|s| s["state"] == "RUNNING" && rfc3339_seconds(&s["timestamp"]) > loaded).count();
        fresh > n
    })
}

#[test]
fn a_busy_child_reads_one_core_and_an_idle_one_little() {
    let rosey = RoseyBuilder::new()
        .plugins(json!([{ "name": "dice-roller", "builtin": "dice-roller" }, python_plugin("busy", "busy.py", &[])]))
        .start();
    rosey.wait_until_running();
    // The machine is shared: busy.py may get less than a core for a while, never much more.
    rosey.wait_for_plugin("busy.py to read about 100 % CPU", "busy", |p| {
        (50.0..=150.0).contains(&number(&p["current"]["cpu_percent"]))
    });
    let busy = wait_for_samples(&rosey, "busy", 3);
    for s in history(&busy) {
        assert!(number(&s["cpu_percent"]) <= 150.0, "one spinning thread never reads above a core: {busy}");
    }
    let aggregates = &busy["aggregates_1h"];
    assert!(number(&aggregates["cpu"]["max"]) <= 150.0, "{aggregates}");
    assert!(number(&aggregates["cpu"]["max"]) >= 50.0, "{aggregates}");

    let idle = wait_for_samples(&rosey, "dice-roller", 3);
    assert!(number(&idle["current"]["cpu_percent"]) < 20.0, "an idle plugin reads little CPU: {idle}");
    for s in history(&idle) {
        assert!(number(&s["cpu_percent"]) < 20.0, "an idle plugin never reads a CPU spike: {idle}");
    }
    assert!(number(&idle["current"]["memory_mb"]) > 0.0, "{idle}");
}

#[test]
fn resident_memory_reads_in_megabytes_including_child_processes() {
    let rosey = RoseyBuilder::new()
        .plugins(json!([
            python_plugin("hold", "hold_memory.py", &["80"]),
            python_plugin("tree", "memory_tree.py", &["40"]),
        ]))
        .start();
    let hold = rosey.wait_for_plugin("hold_memory.py 80 to read about 80 MB", "hold", |p| {
        (75.0..=120.0).contains(&number(&p["current"]["memory_mb"]))
    });
    assert_eq!(hold["processes"], 1);
    // memory_tree.py's child holds the memory: the plugin's figure covers its whole tree.
    let tree = rosey.wait_for_plugin("memory_tree.py 40 to read its child's 40 MB", "tree", |p| {
        p["processes"] == 2 && (40.0..=80.0).contains(&number(&p["current"]["memory_mb"]))
    });
    let system = rosey.get_json("/api/metrics")["system"].clone();
    assert!(number(&system["total_memory_mb"]) >= 115.0, "the system total includes both: {system} {tree}");
}

#[test]
fn no_bogus_cpu_figure_after_a_restart() {
    let restart = json!({ "initial_delay": 0.3, "max_delay": 0.3, "max_attempts": 5, "reset_window": 60 });
    let mut busy = python_plugin("busy", "busy.py", &[]);
    busy["restart"] = restart.clone();
    let mut tree = python_plugin("tree", "memory_tree.py", &["10"]);
    tree["restart"] = restart.clone();
    let rosey = RoseyBuilder::new()
        .plugins(json!([{ "name": "dice-roller", "builtin": "dice-roller", "restart": restart }, busy, tree]))
        .start();
    rosey.wait_until_running();
    for name in ["dice-roller", "busy", "tree"] {
        wait_for_samples(&rosey, name, 1);
    }
    for round in 1..=2 {
        for name in ["dice-roller", "busy", "tree"] {
            let pid = rosey.pid_of(name);
            sigkill(pid);
            rosey.wait_for_plugin("a restart", name, |p| {
                p["state"] == "RUNNING" && p["pid"].is_i64() && p["pid"] != pid
            });
        }
        for name in ["dice-roller", "busy", "tree"] {
            let plugin = wait_for_samples(&rosey, name, 2);
            assert_eq!(plugin["current"]["crash_count"], round);
            for s in history(&plugin) {
                let cpu = number(&s["cpu_percent"]);
                assert!((0.0..=150.0).contains(&cpu), "{name}: a CPU figure of {cpu} is bogus: {plugin}");
            }
        }
    }
}

/// Every state change makes the collector refresh at once; that must not turn a tick's CPU
/// figure into a reading over a few milliseconds (which, at 10 ms clock ticks, is noise of
/// hundreds of percent). A crash-looping neighbour changes state many times a second.
#[test]
fn a_crash_looping_neighbour_does_not_distort_cpu_figures() {
    let crasher = json!({
        "name": "crasher",
        "command": ["python3", fixture("crasher.py"), "0.05"],
        "restart": { "initial_delay": 0.05, "max_delay": 0.05, "max_attempts": 100_000, "reset_window": 60 },
    });
    let rosey = RoseyBuilder::new()
        .plugins(json!([{ "name": "dice-roller", "builtin": "dice-roller" }, python_plugin("busy", "busy.py", &[]), crasher]))
        .start();
    rosey.wait_for_plugin("the crash loop to get going", "crasher", |p| count(&p["current"]["crash_count"]) >= 3);
    let until = std::time::Instant::now() + std::time::Duration::from_secs(8);
    // Snapshots published between ticks count too: poll the current figures all along.
    while std::time::Instant::now() < until {
        let metrics = rosey.get_json("/api/metrics");
        for p in metrics["plugins"].as_array().expect("plugins") {
            let cpu = number(&p["cpu_percent"]);
            assert!(cpu <= 150.0, "{} reads a bogus {cpu} % CPU: {metrics}", p["name"]);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let busy = wait_for_samples(&rosey, "busy", 4);
    let idle = wait_for_samples(&rosey, "dice-roller", 4);
    assert!(count(&rosey.plugin("crasher")["current"]["crash_count"]) >= 10, "the neighbour kept crashing");
    for s in history(&busy) {
        assert!(number(&s["cpu_percent"]) <= 150.0, "busy.py's history holds a bogus CPU figure: {busy}");
    }
    for s in history(&idle) {
        assert!(number(&s["cpu_percent"]) < 20.0, "an idle plugin's history holds a CPU spike: {idle}");
    }
}

#[test]
fn retention_keeps_the_configured_window() {
    let mut builder = RoseyBuilder::new().plugins(json!([{ "name": "dice-roller", "builtin": "dice-roller" }]));
    builder.config["metrics"] = json!({ "poll_interval": 1, "history_duration": 10 });
    let rosey = builder.start();
    let started = std::time::Instant::now();
    let mut full = 0;
    // Watch the window fill and then roll for a while; it must never grow past 10 samples.
    while started.elapsed().as_secs() < 16 || full < 3 {
        assert!(started.elapsed() < 2 * DEADLINE, "the window never filled up");
        let plugin = rosey.plugin("dice-roller");
        let points = history(&plugin);
        let count = plugin["aggregates_1h"]["sample_count"].as_u64().unwrap_or(0);
        assert!(count <= 10, "a 10 s window at 1 s polls holds at most 10 samples, not {count}");
        assert_eq!(points.len() as u64, count, "the history shows the whole window");
        if let (Some(oldest), Some(newest)) = (points.first(), points.last()) {
            let span = rfc3339_seconds(&newest["timestamp"]) - rfc3339_seconds(&oldest["timestamp"]);
            assert!(span <= 11.0, "the oldest sample is {span:.1}s older than the newest: {plugin}");
            assert!(number(&plugin["aggregates_1h"]["time_span_seconds"]) <= 11.0, "{plugin}");
        }
        if count == 10 {
            full += 1;
        }
        std::thread::sleep(std::time::Duration::from_millis(400));
    }
}

#[test]
fn history_survives_a_restart_and_shows_the_crash() {
    // The restart is quicker than a poll: the crash must still be visible in the history.
    let rosey = RoseyBuilder::new()
        .plugins(json!([{
            "name": "dice-roller", "builtin": "dice-roller",
            "restart": { "initial_delay": 0.1, "max_delay": 0.1, "max_attempts": 5, "reset_window": 60 },
        }]))
        .start();
    let before = wait_for_samples(&rosey, "dice-roller", 3);
    let first_point = history(&before)[0]["timestamp"].clone();
    let pid = rosey.pid_of("dice-roller");
    sigkill(pid);
    rosey.wait_for_plugin("a restart", "dice-roller", |p| p["state"] == "RUNNING" && p["pid"] != pid);
    let after = wait_for_samples(&rosey, "dice-roller", 2);

    let points = history(&after);
    assert_eq!(points[0]["timestamp"], first_point, "points from before the crash are kept: {after}");
    let crash_marked = points.iter().any(|s| s["state"] == "CRASHED");
    let gap =
        points.windows(2).any(|w| rfc3339_seconds(&w[1]["timestamp"]) - rfc3339_seconds(&w[0]["timestamp"]) > 1.5);
    assert!(crash_marked || gap, "the crash shows in the history as a CRASHED point or a gap: {after}");
    assert_eq!(after["current"]["crash_count"], 1);
    assert!(after["aggregates_1h"]["sample_count"].as_u64() >= Some(points.len() as u64));
}

#[test]
fn system_figures_add_up() {
    let crasher = json!({
        "name": "crasher",
        "command": ["python3", fixture("crasher.py"), "0.1"],
        "restart": { "enabled": false },
    });
    let mut rosey = RoseyBuilder::new()
        .plugins(json!([{ "name": "dice-roller", "builtin": "dice-roller" }, { "name": "8ball", "builtin": "8ball" }, crasher]))
        .start();
    rosey.wait_for_state("crasher", "FAILED");
    for line in ["!roll 1d6", "!roll 2d6", "!roll 3d6", "!8ball yes?", "!8ball no?"] {
        rosey.say(line);
    }
    let metrics = wait_for("5 events in /api/metrics", DEADLINE, || {
        let metrics = rosey.get_json("/api/metrics");
        (metrics["system"]["total_events"] == 5 && metrics["system"]["plugins_running"] == 2).then_some(metrics)
    });
    let system = &metrics["system"];
    assert_eq!(system["total_plugins"], 3);
    assert_eq!(system["plugins_running"], 2);
    assert_eq!(system["plugins_crashed"], 1, "FAILED counts as crashed");
    let plugins = metrics["plugins"].as_array().expect("plugins");
    assert_eq!(plugins.len(), 3);
    let events: u64 = plugins.iter().map(|p| p["event_count"].as_u64().expect("event_count")).sum();
    assert_eq!(events, 5);
    let memory: f64 = plugins.iter().map(|p| number(&p["memory_mb"])).sum();
    assert!((number(&system["total_memory_mb"]) - memory).abs() < 0.05, "total memory is the sum: {metrics}");
    assert!(memory > 0.0);
    let crasher = plugins.iter().find(|p| p["name"] == "crasher").expect("crasher listed");
    assert_eq!(crasher["memory_mb"], 0.0, "a plugin without a process uses nothing: {crasher}");
    assert_eq!(crasher["cpu_percent"], 0.0);
    assert_eq!(crasher["pid"], Value::Null);
    assert!(number(&system["bot_uptime_seconds"]) > 0.0);
}

#[test]
fn samples_are_fresh_and_availability_is_a_fraction() {
    let rosey = RoseyBuilder::new().plugin(failing_plugin("broken")).start();
    rosey.wait_until_running_except(Some("broken"));
    let first = rosey.wait_for_plugin("a sample", "dice-roller", |p| p["last_sampled_at"].is_string());
    let sampled = rfc3339_seconds(&first["last_sampled_at"]);
    assert!(sampled <= unix_now() + 1.0 && sampled > unix_now() - 10.0, "fresh: {sampled} vs {}", unix_now());
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
