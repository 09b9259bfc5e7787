//! The crash log of each plugin: exit code or signal, the reason in words, the stderr tail
//! (the last ten crashes, newest first, the last twenty lines cut at 512 bytes, bytes that are
//! not UTF-8 replaced), on the card and on the plugin's page, where hostile stderr is shown
//! literally beside the charts and aggregates.

use serde_json::json;

use crate::common::json::{rfc3339_seconds, unix_now};
use crate::common::pages::{card_text, unescape_html};
use crate::common::*;

/// The texts of every shown (not `hidden`) `<pre class="stderr">` on a page, unescaped.
fn stderr_blocks(page: &str) -> Vec<String> {
    page.split("<pre class=\"stderr\"")
        .skip(1)
        .filter_map(|rest| rest.split_once('>'))
        .filter(|(attributes, _)| !attributes.split_whitespace().any(|a| a == "hidden"))
        .map(|(_, rest)| unescape_html(rest.split("</pre>").next().expect("pre closes")))
        .collect()
}

#[test]
fn crash_log_records_exit_code_and_stderr_newest_first() {
    let started = unix_now();
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
        let at = rfc3339_seconds(&crash["time"]);
        assert!(at >= started - 1.0 && at <= unix_now() + 1.0, "crash time {at} is during the test");
    }
    let times: Vec<f64> = log.iter().map(|c| rfc3339_seconds(&c["time"])).collect();
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
    sigkill(rosey.pid_of("dice-roller"));
    let p = rosey.wait_for_state("dice-roller", "CRASHED");
    let crash = &p["crash_log"][0];
    assert_eq!(crash["signal"], "SIGKILL", "{crash}");
    assert!(crash["exit_code"].is_null(), "{crash}");
    assert_eq!(crash["reason"], "killed by SIGKILL");
    assert!(crash["stderr_tail"].is_array());
    assert_eq!(p["last_crash_at"], crash["time"]);

    // The card says it in words, and when the next attempt comes.
    let page = rosey.get("/").body;
    let last_exit = card_text(&page, "dice-roller", "last_exit");
    assert!(last_exit.starts_with("killed by SIGKILL after "), "{last_exit:?}");
    let next_retry = card_text(&page, "dice-roller", "next_retry");
    assert!(next_retry.starts_with("next retry in ") && next_retry.ends_with(" s"), "{next_retry:?}");
    assert_eq!(card_text(&page, "dice-roller", "badge"), "CRASHED");
}

#[test]
fn stderr_that_is_not_utf8_reaches_the_crash_log() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let source =
        "import sys\nsys.stderr.buffer.write(b'caf\\xe9 is broken \\xff\\n')\nsys.stderr.flush()\nsys.exit(1)\n";
    let plugin = script_plugin(dir.path(), "latin1", source);
    let rosey = RoseyBuilder::new().plugins(json!([plugin])).start();
    let failed = rosey.wait_for_state("latin1", "FAILED");
    assert_eq!(failed["crash_log"][0]["stderr_tail"], json!(["caf\u{fffd} is broken \u{fffd}"]), "{failed}");
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
    for chart in ["cpu", "memory", "events", "response"] {
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
