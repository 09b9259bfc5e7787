//! The JSON API and `/metrics` (routes `/api/metrics`, `/api/plugin/{name}`, `/metrics`,
//! `/health`): the seed's two tests kept exactly, the JSON shapes, the history window, gzip.

use std::io::Read;

use serde_json::json;

use crate::common::json::{
    Kind, STATS, assert_api_metrics_shape, assert_rfc3339, assert_shape, metric, parse_rfc3339, plugin_in, unix_now,
};
use crate::common::raw::{find, raw_exchange};
use crate::common::*;

/// The seed's `test_dashboard_endpoints`.
#[test]
fn test_dashboard_endpoints() {
    let rosey = RoseyBuilder::new().plugins(json!([{ "name": "dice-roller", "builtin": "dice-roller" }])).start();

    // GET /
    let resp = rosey.get("/");
    assert_eq!(resp.status, 200);
    assert!(resp.content_type.contains("text/html"), "{}", resp.content_type);
    assert!(resp.body.contains("Rosey Metrics Dashboard"));

    // GET /api/metrics
    let resp = rosey.get("/api/metrics");
    assert_eq!(resp.status, 200);
    let data = resp.json();
    assert!(data.get("plugins").is_some());
    assert!(data.get("system").is_some());
    assert!(!data["plugins"].as_array().expect("plugins is a list").is_empty());

    // GET /api/plugin/dice-roller
    let resp = rosey.get("/api/plugin/dice-roller");
    assert_eq!(resp.status, 200);
    let data = resp.json();
    assert_eq!(data["name"], "dice-roller");
    assert!(data.get("current").is_some());
    assert!(data.get("aggregates_1h").is_some());

    // GET /health
    let resp = rosey.get("/health");
    assert_eq!(resp.status, 200);
    let data = resp.json();
    assert_eq!(data["status"], "ok");
    assert_eq!(data, json!({ "status": "ok" }));
}

/// The seed's `test_prometheus_format`, plus the exact 0.0.4 content type.
#[test]
fn test_prometheus_format() {
    let rosey = RoseyBuilder::new()
        .plugins(json!([{ "name": "dice-roller", "builtin": "dice-roller" }, { "name": "8ball", "builtin": "8ball" }]))
        .start();
    // Let the collector poll once.
    rosey.wait_for_plugin("a first sample", "dice-roller", |p| p["last_sampled_at"].is_string());

    let resp = rosey.get("/metrics");
    assert_eq!(resp.status, 200);
    assert!(resp.content_type.contains("text/plain"));
    assert_eq!(resp.content_type, "text/plain; version=0.0.4; charset=utf-8");
    let text = resp.body;

    assert!(text.contains("# HELP rosey_plugin_cpu_percent"), "{text}");
    assert!(text.contains("# TYPE rosey_plugin_cpu_percent gauge"));
    assert!(text.contains(r#"rosey_plugin_cpu_percent{plugin="dice-roller"}"#));
    assert!(text.contains(r#"rosey_plugin_cpu_percent{plugin="8ball"}"#));
    assert!(text.contains(r#"rosey_plugin_memory_mb{plugin="dice-roller"}"#));
    assert!(text.contains("rosey_bot_uptime_seconds"));

    // The seed's HELP and TYPE lines, word for word.
    for line in [
        "# HELP rosey_plugin_cpu_percent Plugin CPU usage percent",
        "# TYPE rosey_plugin_cpu_percent gauge",
        "# HELP rosey_plugin_memory_mb Plugin memory usage MB",
        "# TYPE rosey_plugin_memory_mb gauge",
        "# HELP rosey_plugin_uptime_seconds Plugin uptime seconds",
        "# TYPE rosey_plugin_uptime_seconds gauge",
        "# HELP rosey_plugin_events_total Plugin events processed",
        "# TYPE rosey_plugin_events_total counter",
        "# HELP rosey_plugin_crashes_total Plugin crash count",
        "# TYPE rosey_plugin_crashes_total counter",
        "# HELP rosey_bot_uptime_seconds Bot uptime seconds",
        "# TYPE rosey_bot_uptime_seconds gauge",
        "# HELP rosey_total_plugins Total plugins loaded",
        "# TYPE rosey_total_plugins gauge",
        "# HELP rosey_plugins_running Plugins currently running",
        "# TYPE rosey_plugins_running gauge",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    assert_eq!(metric(&text, "rosey_total_plugins"), Some(2.0));
    assert_eq!(metric(&text, "rosey_plugins_running"), Some(2.0));
    assert!(metric(&text, r#"rosey_plugin_memory_mb{plugin="dice-roller"}"#).is_some_and(|mb| mb > 0.0), "{text}");
}

#[test]
fn every_json_route_has_the_seed_shape() {
    let rosey = RoseyBuilder::new().start();
    rosey.wait_until_running();
    let detail = rosey.wait_for_plugin("history and aggregates", "dice-roller", |p| {
        p["history"].as_array().is_some_and(|h| h.len() >= 2) && p["aggregates_1h"].is_object()
    });

    // /api/metrics
    let metrics = rosey.get("/api/metrics");
    assert_eq!(metrics.content_type, "application/json");
    let metrics = metrics.json();
    assert_api_metrics_shape(&metrics);
    let names: Vec<&str> = metrics["plugins"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["8ball", "dice-roller", "hostile"], "plugins sorted by name");
    assert_eq!(metrics["system"]["total_plugins"], 3);
    let summary = plugin_in(&metrics["plugins"], "dice-roller");
    assert_eq!(summary["state"], "RUNNING");
    assert_eq!(summary["pid"], detail["pid"]);
    assert_eq!(summary["version"], detail["version"]);

    // /api/plugin/{name}
    assert_shape(
        "/api/plugin/dice-roller",
        &detail,
        &[
            ("name", Kind::Str),
            ("version", Kind::Str),
            ("loaded_at", Kind::Str),
            ("state", Kind::Str),
            ("pid", Kind::UInt),
            ("current", Kind::Obj),
            ("aggregates_1h", Kind::Obj),
            ("history", Kind::Arr),
            // Additions (issue 9).
            ("last_sampled_at", Kind::StrOrNull),
            ("stale", Kind::Bool),
            ("processes", Kind::UInt),
            ("cpu_seconds_total", Kind::Num),
            ("restart_attempt", Kind::UInt),
            ("restarts", Kind::UInt),
            ("next_restart_in_seconds", Kind::NumOrNull),
            ("availability_1h", Kind::NumOrNull),
            ("last_crash_at", Kind::StrOrNull),
            ("crash_log", Kind::Arr),
        ],
    );
    assert_eq!(detail["name"], "dice-roller");
    assert_eq!(detail["state"], "RUNNING");
    assert_rfc3339("loaded_at", &detail["loaded_at"]);
    let pid = detail["pid"].as_u64().unwrap() as u32;
    assert!(process_exists(pid), "the reported pid {pid} is a live process");
    assert_shape(
        "current",
        &detail["current"],
        &[
            ("cpu_percent", Kind::Num),
            ("memory_mb", Kind::Num),
            ("uptime_seconds", Kind::Num),
            ("event_count", Kind::UInt),
            ("crash_count", Kind::UInt),
        ],
    );
    assert_eq!(detail["current"]["crash_count"], 0);

    let aggregates = &detail["aggregates_1h"];
    assert_shape(
        "aggregates_1h",
        aggregates,
        &[
            ("plugin_name", Kind::Str),
            ("sample_count", Kind::UInt),
            ("time_span_seconds", Kind::Num),
            ("cpu", Kind::Obj),
            ("memory_mb", Kind::Obj),
        ],
    );
    assert_eq!(aggregates["plugin_name"], "dice-roller");
    assert!(aggregates["sample_count"].as_u64().unwrap() >= 2);
    for key in ["cpu", "memory_mb"] {
        let stats = &aggregates[key];
        assert_shape(key, stats, STATS);
        let (min, avg, max, p95) = (
            stats["min"].as_f64().unwrap(),
            stats["avg"].as_f64().unwrap(),
            stats["max"].as_f64().unwrap(),
            stats["p95"].as_f64().unwrap(),
        );
        assert!(min <= avg && avg <= max && min <= p95 && p95 <= max, "{key}: {stats}");
    }
    assert!(aggregates["memory_mb"]["max"].as_f64().unwrap() > 0.0, "a running plugin uses memory: {aggregates}");

    let history = detail["history"].as_array().unwrap();
    assert!(history.len() <= 60);
    let mut previous = f64::MIN;
    for point in history {
        assert_shape(
            "a history point",
            point,
            &[
                ("timestamp", Kind::Str),
                ("cpu_percent", Kind::Num),
                ("memory_mb", Kind::Num),
                ("event_count", Kind::UInt),
            ],
        );
        let at = parse_rfc3339(point["timestamp"].as_str().unwrap()).expect("RFC 3339 timestamp");
        assert!(at > previous, "history is oldest first: {history:?}");
        previous = at;
    }

    // A crashed or failed plugin keeps the same shape, with nulls where nothing runs.
    let rosey = RoseyBuilder::new().plugins(json!([failing_plugin("broken")])).start();
    let broken = rosey.wait_for_state("broken", "FAILED");
    assert_shape(
        "a failed plugin",
        &broken,
        &[
            ("name", Kind::Str),
            ("version", Kind::Str),
            ("loaded_at", Kind::StrOrNull),
            ("state", Kind::Str),
            ("pid", Kind::UIntOrNull),
            ("current", Kind::Obj),
            ("history", Kind::Arr),
            ("crash_log", Kind::Arr),
        ],
    );
    assert!(broken["pid"].is_null(), "no process, no pid: {broken}");
    assert_eq!(broken["current"]["crash_count"], 1);
    assert!(broken.get("aggregates_1h").is_some(), "aggregates_1h is always present (maybe null)");
    assert_api_metrics_shape(&rosey.get_json("/api/metrics"));
}

/// The seed's "last 60 snapshots": with more samples than that, exactly the newest 60.
#[test]
fn plugin_history_is_the_newest_60_points() {
    let mut builder = RoseyBuilder::new().plugins(json!([{ "name": "dice-roller", "builtin": "dice-roller" }]));
    builder.config["metrics"] = json!({ "poll_interval": 0.25, "history_duration": 60 });
    let rosey = builder.start();
    let detail = rosey.wait_for_plugin("more than 60 samples", "dice-roller", |p| {
        p["aggregates_1h"]["sample_count"].as_u64().is_some_and(|n| n > 62)
    });
    let history = detail["history"].as_array().unwrap();
    assert_eq!(history.len(), 60, "{detail}");
    // The newest: the last point is no older than two polls before the response.
    let last = parse_rfc3339(history[59]["timestamp"].as_str().unwrap()).unwrap();
    let first = parse_rfc3339(history[0]["timestamp"].as_str().unwrap()).unwrap();
    let span = detail["aggregates_1h"]["time_span_seconds"].as_f64().unwrap();
    assert!(last - first < span, "history is the tail of the window ({first}..{last}, span {span})");
}

/// GET `path` with `Accept-Encoding: accept`; the response's headers (lower-cased) and body.
fn get_encoded(port: u16, path: &str, accept: &str) -> (String, Vec<u8>) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nAccept-Encoding: {accept}\r\nConnection: close\r\n\r\n");
    let answer = raw_exchange(port, &request);
    let split = find(&answer, b"\r\n\r\n").expect("a header block");
    (String::from_utf8_lossy(&answer[..split]).to_ascii_lowercase(), answer[split + 4..].to_vec())
}

#[test]
fn page_and_metrics_are_served_gzipped_to_clients_that_accept_it() {
    let rosey = RoseyBuilder::new().start();
    rosey.wait_until_running();
    rosey.wait_for_plugin("the hostile version", "hostile", |p| p["version"] == HOSTILE_VERSION);
    for (path, expected) in
        [("/", "&lt;img src=x onerror=alert(1)&gt;"), ("/metrics", "# TYPE rosey_plugin_cpu_percent gauge")]
    {
        let (headers, body) = get_encoded(rosey.port(), path, "br;q=1.0, gzip;q=0.8, *;q=0.1");
        assert!(headers.contains("content-encoding: gzip"), "{path}: {headers}");
        assert!(headers.contains("vary: accept-encoding"), "{path}: {headers}");
        let mut text = String::new();
        flate2::read::GzDecoder::new(body.as_slice()).read_to_string(&mut text).expect("a valid gzip body");
        assert!(text.contains(expected), "{path} decompressed lacks {expected}");

        // Refused or not offered: the plain body.
        for accept in ["gzip;q=0", "identity"] {
            let (headers, body) = get_encoded(rosey.port(), path, accept);
            assert!(!headers.contains("content-encoding"), "{path} with {accept}: {headers}");
            assert!(String::from_utf8_lossy(&body).contains(expected), "{path} with {accept}");
        }
    }
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
    assert!(started > unix_now() - 120.0 && started <= unix_now() + 1.0, "start time is recent: {started}");
    assert!(value(r#"rosey_plugin_cpu_seconds_total{plugin="dice-roller"}"#) >= 0.0);
    assert!(value("process_resident_memory_bytes") > 0.0);
    assert!(value("process_open_fds") > 0.0);
    assert!(value("process_max_fds") >= value("process_open_fds"));
    let host_started = value("process_start_time_seconds");
    assert!(host_started > unix_now() - 120.0 && host_started <= unix_now() + 1.0, "{host_started}");
}
