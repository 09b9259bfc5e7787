//! The timeline's costs (docs/performance.md, "Timeline"): recording an event (in memory, and
//! with `timeline.file`), answering `GET /api/events` over a full timeline, and the watcher
//! that compares each snapshot with the one before (thresholds, stale figures), which runs once
//! per snapshot whatever happens. Plain timing, no harness: `cargo bench --bench timeline`.

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use rosey::config::TimelineConfig;
use rosey::metrics::health::Thresholds;
use rosey::metrics::history::Series;
use rosey::metrics::sampler::HostUsage;
use rosey::metrics::{PluginSnapshot, Snapshot, SystemMetrics};
use rosey::timeline::watch::Watcher;
use rosey::timeline::{Filter, Kind, Note, Timeline};

const CAPACITY: usize = 10_000;
const EVENTS: usize = 100_000;

fn main() {
    println!("rosey timeline benchmark: {CAPACITY} events kept\n");
    record(Timeline::new(CAPACITY), "in memory");
    let dir = std::env::temp_dir().join(format!("rosey-timeline-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let file = TimelineConfig { capacity: CAPACITY, file: Some(dir.join("events.jsonl")) };
    record(Timeline::open(&file), "with timeline.file (queued to its writer thread)");
    queries();
    for plugins in [100, 1000] {
        watcher(plugins);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn note(i: usize) -> Note {
    let kind = [Kind::Started, Kind::Hello, Kind::Crashed, Kind::RestartScheduled][i % 4];
    Note::new(kind, format!("crashed: exited with code 3 after 1.2 s ({i})"))
        .plugin(format!("plugin-{:03}", i % 100))
        .details(serde_json::json!({ "exit_code": 3, "stderr_tail": ["fatal: giving up"], "attempt": i }))
}

fn record(timeline: Timeline, what: &str) {
    let notes: Vec<Note> = (0..EVENTS).map(note).collect();
    let start = Instant::now();
    for n in notes {
        black_box(timeline.record(n));
    }
    let per = start.elapsed().as_secs_f64() / EVENTS as f64;
    println!("(a) record one event, {what}: {:.2} µs", per * 1e6);
}

fn queries() {
    let timeline = Timeline::new(CAPACITY);
    for i in 0..CAPACITY {
        timeline.record(note(i));
    }
    let newest = timeline.newest(None, 1)[0].id;
    let cases = [
        (
            "since the newest 10 (a follower's poll)",
            Filter { since: Some(newest - 10), limit: 1000, ..Filter::default() },
        ),
        ("one plugin, newest 1000", Filter { plugin: Some("plugin-042".into()), limit: 1000, ..Filter::default() }),
        ("kind=crashed, newest 1000", Filter { kinds: vec![Kind::Crashed], limit: 1000, ..Filter::default() }),
    ];
    for (what, filter) in cases {
        let rounds = 2000;
        let start = Instant::now();
        for _ in 0..rounds {
            black_box(timeline.query(&filter));
        }
        println!("(b) query {what}: {:.1} µs", start.elapsed().as_secs_f64() / rounds as f64 * 1e6);
    }
}

fn watcher(plugins: usize) {
    let series = Series::new(1);
    let now = SystemTime::now();
    let list: Vec<PluginSnapshot> = (0..plugins)
        .map(|i| PluginSnapshot {
            pid: Some(10_000 + i as u32),
            cpu_percent: (i % 7) as f64,
            memory_bytes: 20 << 20,
            last_sampled_at: Some(now),
            ..PluginSnapshot::example(&format!("plugin-{i:04}"), series.view())
        })
        .collect();
    let system = SystemMetrics::of(&list, Duration::from_secs(3600));
    let snapshot = Snapshot {
        seq: 1,
        taken_at: now,
        poll_interval: Duration::from_secs(5),
        plugins: list,
        system,
        host: HostUsage::default(),
        chat: Default::default(),
    };
    let timeline = Timeline::new(CAPACITY);
    let mut watcher =
        Watcher::new(Thresholds { cpu_percent: 50.0, memory_mb: 100.0, response_ms: 1000.0 }, timeline.clone());
    watcher.observe(&snapshot);
    let rounds = 200;
    let start = Instant::now();
    for _ in 0..rounds {
        watcher.observe(black_box(&snapshot));
    }
    let per = start.elapsed().as_secs_f64() / rounds as f64;
    println!("(c) watcher, one snapshot of {plugins} plugins, nothing changed: {:.3} ms", per * 1e3);
    assert!(timeline.newest(None, 1).is_empty(), "a steady snapshot records nothing");
}
