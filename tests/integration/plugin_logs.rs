//! Each plugin's log: what a plugin writes to stderr, and the stdout lines that are not
//! protocol, appear in `/api/plugin/NAME/logs` in order with their stream and the process that
//! wrote them, across a crash and a reload; `tail`, `since` and the text format; the live
//! stream; log files rotated at their size; and a plugin that floods its stderr is never
//! blocked, its excess lines are counted, and the host keeps answering chat and `/health`.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::actions::{AUTH, bot_with_actions, get_json, post};
use crate::common::sse::Sse;
use crate::common::{DEADLINE, Rosey, RoseyBuilder, fixture, request, wait_for};

/// The chatty fixture as plugin `name`, reading its version from `dir/VERSION` (written as `version`).
fn chatty(dir: &Path, name: &str, version: &str) -> Value {
    let file = dir.join("VERSION");
    std::fs::write(&file, version).expect("the version file is writable");
    json!({
        "name": name,
        "command": ["python3", fixture("chatty.py"), file.display().to_string()],
        "restart": { "initial_delay": 0 },
    })
}

fn logs(rosey: &Rosey, query: &str) -> Value {
    let reply = request("GET", &rosey.url(&format!("/api/plugin/chatty/logs{query}")), &[("authorization", AUTH)])
        .expect("GET logs");
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

fn texts(page: &Value) -> Vec<String> {
    page["lines"].as_array().expect("lines").iter().map(|l| l["text"].as_str().unwrap_or("").to_owned()).collect()
}

/// Wait until the log holds a line `text`; the whole log then.
fn wait_for_text(rosey: &Rosey, text: &str) -> Value {
    wait_for(&format!("{text:?} in the plugin's log"), DEADLINE, || {
        let page = logs(rosey, "");
        texts(&page).iter().any(|t| t == text).then_some(page)
    })
}

/// `!log WORD`, and wait for both its lines (the two pipes are read side by side, so the
/// stdout line may be kept before the stderr line written just before it); the whole log then.
fn log_word(rosey: &mut Rosey, word: &str) -> Value {
    rosey.say(&format!("!log {word}"));
    wait_for_text(rosey, &format!("err {word}"));
    wait_for_text(rosey, &format!("out {word}"))
}

/// The texts of `page`'s lines, sorted: for lines whose relative order is not defined.
fn sorted(page: &Value) -> Vec<String> {
    let mut texts = texts(page);
    texts.sort();
    texts
}

fn pid(rosey: &Rosey) -> Option<i32> {
    Some(get_json(rosey, "/api/plugin/chatty")["pid"].as_i64()? as i32)
}

fn line<'a>(page: &'a Value, text: &str) -> &'a Value {
    page["lines"].as_array().and_then(|lines| lines.iter().find(|l| l["text"] == text)).expect("the line is there")
}

#[test]
fn stderr_and_stray_stdout_lines_appear_in_order_with_their_stream_across_a_crash_and_a_reload() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut rosey = bot_with_actions(json!([chatty(dir.path(), "chatty", "1")]));
    wait_for_text(&rosey, "stray stdout 1");
    // The pid as the snapshot shows it (it may come a poll after the first lines).
    let first = wait_for("the plugin's pid", DEADLINE, || pid(&rosey));
    log_word(&mut rosey, "one");

    rosey.say("!crash");
    let second = wait_for("a new process after the crash", DEADLINE, || {
        let pid = pid(&rosey)?;
        (pid != first && texts(&logs(&rosey, "")).iter().filter(|t| *t == "stray stdout 1").count() == 2).then_some(pid)
    });

    std::fs::write(dir.path().join("VERSION"), "2").expect("deployed");
    let reload = post(&rosey, "/api/plugin/chatty/reload");
    assert_eq!(reload.json()["outcome"], "reloaded", "{}", reload.body);
    // The pid as the next snapshot shows it.
    let third = wait_for("the new process's pid", DEADLINE, || pid(&rosey).filter(|&pid| pid != second));
    let page = log_word(&mut rosey, "two");

    let lines = page["lines"].as_array().expect("lines");
    let seqs: Vec<u64> = lines.iter().map(|l| l["seq"].as_u64().expect("a seq")).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "consecutive seqs, oldest first: {seqs:?}");
    let stream = |name: &str| -> Vec<(String, i64)> {
        lines
            .iter()
            .filter(|l| l["stream"] == name)
            .map(|l| (l["text"].as_str().unwrap_or("").to_owned(), l["pid"].as_i64().unwrap_or(0)))
            .collect()
    };
    let (first, second, third) = (i64::from(first), i64::from(second), i64::from(third));
    let own = |text: &str, pid| (text.to_owned(), pid);
    assert_eq!(
        stream("stderr"),
        [
            own("started 1", first),
            own("err one", first),
            own("dying", first),
            own("started 1", second),
            own("started 2", third),
            own("err two", third)
        ],
        "every stderr line, in order, with the process that wrote it"
    );
    assert_eq!(
        stream("stdout"),
        [
            own("stray stdout 1", first),
            own("out one", first),
            own("stray stdout 1", second),
            own("stray stdout 2", third),
            own("out two", third)
        ],
        "every stdout line that is not protocol (no hello, no reply), in order"
    );
    // The two pipes are read side by side; within a process, a line answered before the next
    // command is logged before it.
    let at = |text: &str, pid: i64| {
        lines.iter().position(|l| l["text"] == text && l["pid"] == pid).expect("the line is there")
    };
    assert!(at("out one", first) < at("dying", first) && at("dying", first) < at("started 1", second));
    assert!(at("started 1", second) < at("started 2", third) && at("started 2", third) < at("err two", third));
    assert_eq!(line(&page, "err one")["version"], "1", "marked with the version its hello gave");
    assert_eq!(line(&page, "err two")["version"], "2");
    assert_eq!((page["plugin"].as_str(), page["dropped"].as_u64()), (Some("chatty"), Some(0)));
    assert_eq!(page["next"], json!(seqs.last()));
    let time = line(&page, "err one")["time"].as_str().expect("a time");
    assert!(time.len() >= 20 && time.contains('T') && time.ends_with('Z'), "RFC 3339: {time}");
    // Still in the host's own log, as before.
    wait_for("the stderr line in the host's log", DEADLINE, || {
        rosey.stderr_text().contains("stderr: err two").then_some(())
    });
    rosey.close_stdin();
}

#[test]
fn tail_since_and_the_text_format_pick_and_print_lines() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut rosey = bot_with_actions(json!([chatty(dir.path(), "chatty", "1")]));
    for n in 1..=3 {
        log_word(&mut rosey, &format!("n{n}"));
    }
    let all = logs(&rosey, "");
    let next = all["next"].as_u64().expect("next");
    assert_eq!(sorted(&logs(&rosey, "?tail=2")), ["err n3", "out n3"]);
    let seq = |text: &str| line(&all, text)["seq"].as_u64().expect("a seq");
    let after = seq("out n2").max(seq("err n2"));
    assert_eq!(sorted(&logs(&rosey, &format!("?since={after}"))), ["err n3", "out n3"], "since is exclusive");
    assert_eq!(sorted(&logs(&rosey, &format!("?since={after}&tail=1"))).len(), 1);
    let nothing = logs(&rosey, &format!("?since={next}"));
    assert_eq!((texts(&nothing).len(), nothing["next"].as_u64()), (0, Some(next)), "nothing newer yet");
    log_word(&mut rosey, "n4");
    assert_eq!(sorted(&logs(&rosey, &format!("?since={next}"))), ["err n4", "out n4"], "only the newer lines");

    let url = rosey.url("/api/plugin/chatty/logs?tail=2&format=text");
    let text = request("GET", &url, &[("authorization", AUTH)]).expect("GET text");
    assert!(text.content_type.starts_with("text/plain"), "{}", text.content_type);
    let mut printed: Vec<&str> = text.body.lines().collect();
    printed.sort_by_key(|l| l.split(' ').nth(1).map(str::to_owned)); // stderr before stdout
    assert_eq!(printed.len(), 2, "one line per entry: {}", text.body);
    let pid = line(&logs(&rosey, "?tail=2"), "err n4")["pid"].clone();
    assert!(printed[0].ends_with(&format!(" stderr {pid} err n4")), "TIME STREAM PID TEXT: {}", text.body);
    assert!(printed[1].ends_with(&format!(" stdout {pid} out n4")), "{}", text.body);
    let url = rosey.url("/api/plugin/chatty/logs?tail=1");
    let accepted = request("GET", &url, &[("authorization", AUTH), ("accept", "text/plain")]).expect("GET");
    assert!(accepted.content_type.starts_with("text/plain"), "{}", accepted.content_type);
    assert_eq!(accepted.body.lines().count(), 1, "{}", accepted.body);

    let unknown = request("GET", &rosey.url("/api/plugin/nope/logs"), &[("authorization", AUTH)]).expect("GET");
    assert_eq!((unknown.status, unknown.json()), (404, json!({ "error": "Plugin nope not found" })));
    let anonymous = request("GET", &rosey.url("/api/plugin/chatty/logs"), &[]).expect("GET");
    assert_eq!(anonymous.status, 401, "the same credentials as every other route");
    rosey.close_stdin();
}

#[test]
fn the_live_stream_starts_with_the_tail_then_sends_only_new_lines() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut rosey = RoseyBuilder::new().plugins(json!([chatty(dir.path(), "chatty", "1")])).start();
    log_word(&mut rosey, "before");
    let mut live = Sse::open(rosey.port(), "/api/plugin/chatty/logs/live?tail=2", &[]);
    assert_eq!(live.status, 200);
    assert!(live.header("content-type").is_some_and(|t| t.starts_with("text/event-stream")));
    let read = |live: &mut Sse| -> Value {
        let frame = live.event(Instant::now() + DEADLINE);
        assert_eq!(frame.event.as_deref(), Some("lines"));
        serde_json::from_str(frame.data.as_deref().expect("data")).expect("JSON data")
    };
    let opening = read(&mut live);
    assert_eq!(sorted(&opening), ["err before", "out before"], "the last `tail` lines");
    assert_eq!(opening["plugin"], "chatty");
    rosey.say("!log after");
    let mut fresh = Vec::new();
    while fresh.len() < 2 {
        fresh.extend(texts(&read(&mut live)));
    }
    fresh.sort();
    assert_eq!(fresh, ["err after", "out after"], "only the new lines, once each");
    // The dashboard's own stream never carries a log line.
    let mut events = Sse::open(rosey.port(), "/events?plugin=chatty", &[]);
    let (_, data) = events.snapshot(Instant::now() + DEADLINE);
    assert!(!data.to_string().contains("err after"), "no log line in /events");
    let unknown = Sse::open(rosey.port(), "/api/plugin/nope/logs/live", &[]);
    assert_eq!(unknown.status, 404);
    rosey.close_stdin();
}

#[test]
fn the_plugin_page_shows_the_log_tail_without_javascript_hostile_lines_as_text() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut rosey = RoseyBuilder::new().plugins(json!([chatty(dir.path(), "chatty", "1")])).start();
    rosey.say("!hostile");
    wait_for("the hostile line in the log", DEADLINE, || {
        texts(&rosey.get_json("/api/plugin/chatty/logs")).iter().any(|t| t.contains("evil")).then_some(())
    });
    let page = rosey.get("/plugin/chatty").body;
    let panel = &page[page.find("id=\"log-panel\"").expect("the log panel")..];
    assert!(panel.contains(">started 1</span>"), "the tail is on the page: {panel}");
    assert!(panel.contains("&lt;b&gt;bold&lt;"), "markup as text: {panel}");
    assert!(!panel.contains("<b>") && !panel.contains("<script>alert"), "no markup from the plugin: {panel}");
    assert!(panel.contains(" red [U+202E]evil[U+202C] bad \u{fffd}\u{fffd} end"), "colours gone, bidi shown: {panel}");
    assert!(!page.contains('\u{1b}') && !page.contains('\u{202e}'), "no escape or bidi character on the page");
    assert!(page.contains("<script src=\"/static/plugin_log.js\" defer></script>"), "the panel's script");
    let script = rosey.get("/static/plugin_log.js");
    assert!(script.status == 200 && script.content_type.starts_with("text/javascript"), "{}", script.content_type);
    assert!(!script.body.contains("innerHTML"), "no innerHTML from data");
    let index = rosey.get("/").body;
    assert!(!index.contains("plugin_log.js"), "the log script is loaded on the plugin page only");
    rosey.close_stdin();
}

#[test]
fn log_files_rotate_at_their_size_and_keep_the_configured_number() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let logs_dir = dir.path().join("logs");
    std::fs::create_dir(&logs_dir).expect("the logs directory");
    let mut builder = RoseyBuilder::new().plugins(json!([chatty(dir.path(), "chatty", "1")]));
    builder.config["logs"] = json!({ "dir": logs_dir, "file_max_bytes": 4000, "file_backups": 2 });
    let mut rosey = builder.start();
    rosey.say("!flood 0.5");
    wait_for("the flood's end in the log", DEADLINE, || {
        let page = rosey.get_json("/api/plugin/chatty/logs?tail=5");
        texts(&page).iter().any(|t| t.starts_with("flood done")).then_some(())
    });
    let read = |name: &str| std::fs::read_to_string(logs_dir.join(name)).unwrap_or_default();
    let current = wait_for("the last line in the file", DEADLINE, || {
        let text = read("chatty.log");
        text.contains("flood done").then_some(text)
    });
    let mut names: Vec<String> = std::fs::read_dir(&logs_dir)
        .expect("listed")
        .map(|e| e.expect("an entry").file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["chatty.log", "chatty.log.1", "chatty.log.2"], "the file and 2 rotated ones, no more");
    for name in &names {
        let size = std::fs::metadata(logs_dir.join(name)).expect("a file").len();
        assert!(size <= 4000, "{name} is {size} bytes, over file_max_bytes");
    }
    let older = read("chatty.log.1");
    assert!(older.lines().all(|l| l.contains(" stderr ") && l.contains("flood line")), "whole lines: {older}");
    let last = current.lines().last().expect("a line");
    assert!(last.contains(" stderr ") && last.contains("flood done"), "the newest line is in NAME.log: {last}");
    rosey.close_stdin();
}

fn rolls(rosey: &Rosey) -> usize {
    rosey.stdout_lines().iter().filter(|l| l.starts_with("[dice-roller] @console")).count()
}

#[test]
fn a_plugin_flooding_its_stderr_is_never_blocked_and_the_host_keeps_answering() {
    const SECONDS: f64 = 3.0;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut rosey = RoseyBuilder::new()
        .plugins(json!([chatty(dir.path(), "chatty", "1"), { "name": "dice-roller", "builtin": "dice-roller" }]))
        .start();
    rosey.wait_until_running();
    rosey.say(&format!("!flood {SECONDS}"));
    let start = Instant::now();
    let mut answered = 0;
    while start.elapsed() < Duration::from_secs_f64(SECONDS) {
        let asked = Instant::now();
        let before = rolls(&rosey);
        rosey.say("!roll 1d6");
        wait_for("a dice roll answered during the flood", DEADLINE, || (rolls(&rosey) > before).then_some(()));
        let health = request("GET", &rosey.url("/health"), &[]).expect("GET /health");
        assert_eq!(health.status, 200);
        answered += 1;
        eprintln!("flood: a roll and /health answered in {:?}", asked.elapsed());
    }
    assert!(answered > 0);
    let page = wait_for("the flood's end in the log", DEADLINE, || {
        let page = rosey.get_json("/api/plugin/chatty/logs?tail=1");
        texts(&page).iter().any(|t| t.starts_with("flood done")).then_some(page)
    });
    let done = texts(&page).pop().expect("the last line");
    let written: u64 = done.split_whitespace().nth(2).and_then(|n| n.parse().ok()).expect("the count written");
    let (kept, dropped) = (page["next"].as_u64().expect("next"), page["dropped"].as_u64().expect("dropped"));
    eprintln!("flood: the plugin wrote {written} lines ({done}); {kept} kept, {dropped} dropped");
    assert!(dropped > 0, "over the budget, lines are dropped");
    // Every line the plugin wrote was read: kept or counted, none left waiting in the pipe.
    assert!(kept + dropped >= written, "{kept} kept + {dropped} dropped < {written} written");
    let metrics = wait_for("the drops in /metrics", DEADLINE, || {
        let text = rosey.get("/metrics").body;
        let line = text.lines().find(|l| l.starts_with("rosey_plugin_log_lines_dropped_total{plugin=\"chatty\"}"))?;
        let value: f64 = line.rsplit(' ').next()?.parse().ok()?;
        (value >= dropped as f64).then_some(value)
    });
    assert!(metrics > 0.0);
    rosey.close_stdin();
}
