//! Collector and rendering budgets at 100 plugins (issues 4, 5 and 7), measured with plain
//! `Instant` and `getrusage` timing: `cargo bench --bench collector`.
//!
//! (a) one hour of history for 100 plugins, filled synthetically: heap bytes by
//!     `Series::heap_bytes`, cross-checked against this process's resident-memory growth;
//! (b) aggregates of one plugin over 720 samples;
//! (c) sampling 100 real processes per tick with `Sampler` (CPU time of the sampling thread);
//! (d) rendering every shared body of one snapshot of 100 plugins with a full hour each.
//!
//! Each figure is printed in a human line and a `BENCH key=value` line that
//! `scripts/bench.sh` collects. Figures are for the machine it runs on; nothing is asserted.
//! Name sections to run only those: `cargo bench --bench collector -- sampler rendering`.

use std::collections::VecDeque;
use std::hint::black_box;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::resource::{UsageWho, getrusage};
use rosey::dashboard::render::{self, RenderContext, Rendered};
use rosey::dashboard::view::Thresholds;
use rosey::metrics::history::{Sample, Series};
use rosey::metrics::sampler::{HostUsage, Sampler};
use rosey::metrics::{PluginSnapshot, Snapshot, SystemMetrics};
use rosey::plugins::PluginState;
use rosey::timefmt::unix_ms;

const PLUGINS: usize = 100;
/// One hour at the default 5 s poll interval.
const HOUR: usize = 720;
const POLL: Duration = Duration::from_secs(5);

fn main() {
    // `cargo bench --bench collector -- sampler` runs only the sections whose names match.
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let sections: [(&str, fn()); 4] =
        [("history", history_memory), ("aggregates", aggregates), ("sampler", sampler), ("rendering", rendering)];
    println!("rosey collector benchmark: {PLUGINS} plugins, {HOUR} samples (1 h at 5 s polls) each\n");
    for (name, section) in sections {
        if filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())) {
            section();
        }
    }
}

/// A history of `samples` made-up points in a series of `capacity`.
fn synthetic_series(capacity: usize, samples: usize) -> Series {
    let mut series = Series::new(capacity);
    for i in 0..samples as u64 {
        series.push(Sample {
            at_ms: i * 5000,
            events: i * 3,
            cpu_percent: (i % 7) as f32,
            memory_kib: 20_000 + (i % 13) as u32 * 100,
            state: PluginState::Running,
        });
    }
    series
}

/// Resident memory of this process in KiB.
fn vm_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// CPU time (user + system) of the calling thread.
fn thread_cpu() -> Duration {
    let usage = getrusage(UsageWho::RUSAGE_THREAD).expect("getrusage(RUSAGE_THREAD) works on Linux");
    let tv = |t: nix::sys::time::TimeVal| Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1000);
    tv(usage.user_time()) + tv(usage.system_time())
}

fn mib(bytes: f64) -> f64 {
    bytes / (1024.0 * 1024.0)
}

/// A deterministic, varied sample stream (a small LCG), so p95 selection does real work.
struct Samples {
    state: u64,
    at_ms: u64,
    events: u64,
}

impl Samples {
    fn starting(at: SystemTime) -> Samples {
        Samples { state: 0x2545_f491_4f6c_dd1d, at_ms: unix_ms(at), events: 0 }
    }

    fn next_sample(&mut self) -> Sample {
        self.state = self.state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let r = (self.state >> 33) as u32;
        self.at_ms += POLL.as_millis() as u64;
        self.events += u64::from(r % 4);
        Sample {
            at_ms: self.at_ms,
            events: self.events,
            cpu_percent: (r % 500) as f32 / 100.0,
            memory_kib: 20_000 + r % 30_000,
            state: PluginState::Running,
        }
    }
}

/// A series holding exactly the hour that ends now (and the samples pushed before it).
fn full_hour_series(pushes: usize) -> Series {
    let start = SystemTime::now() - POLL * pushes as u32;
    let mut samples = Samples::starting(start);
    let mut series = Series::new(HOUR);
    for _ in 0..pushes {
        series.push(samples.next_sample());
    }
    series
}

// (a) -----------------------------------------------------------------------------------------

fn history_memory() {
    println!("(a) one hour of history for {PLUGINS} plugins");
    println!("    one sample: {} bytes", std::mem::size_of::<Sample>());

    // Exactly one hour, with the crate's own helper.
    let rss_before = vm_rss_kib();
    let hour: Vec<Series> = (0..PLUGINS).map(|_| synthetic_series(HOUR, HOUR)).collect();
    let rss_after = vm_rss_kib();
    let heap: usize = hour.iter().map(Series::heap_bytes).sum();
    println!(
        "    after 1 h: heap_bytes {heap} B = {:.2} MiB ({:.1} KiB per plugin); process RSS grew {} KiB = {:.2} MiB",
        mib(heap as f64),
        heap as f64 / 1024.0 / PLUGINS as f64,
        rss_after.saturating_sub(rss_before),
        mib(rss_after.saturating_sub(rss_before) as f64 * 1024.0)
    );

    // Steady state: the window rolls (whole chunks are dropped), so the peak is what counts.
    let mut series: Vec<Series> = (0..PLUGINS).map(|_| Series::new(HOUR)).collect();
    let mut samples: Vec<Samples> = (0..PLUGINS).map(|_| Samples::starting(SystemTime::now())).collect();
    let mut peak = 0usize;
    for _ in 0..3 * HOUR {
        for (s, gen_) in series.iter_mut().zip(samples.iter_mut()) {
            s.push(gen_.next_sample());
        }
        peak = peak.max(series.iter().map(Series::heap_bytes).sum());
    }
    // What the current snapshot adds: one view per plugin (shared chunks + a copy of the open one).
    let rss_views_before = vm_rss_kib();
    let views: Vec<_> = series.iter().map(Series::view).collect();
    let rss_views_after = vm_rss_kib();
    println!(
        "    rolling for 3 h: peak heap_bytes {peak} B = {:.2} MiB; one snapshot's views add {} KiB RSS",
        mib(peak as f64),
        rss_views_after.saturating_sub(rss_views_before)
    );
    println!("    target < 8 MB: {}", if (peak.max(heap) as f64) < 8e6 { "met" } else { "MISSED" });
    println!(
        "BENCH history_bytes={heap} history_peak_bytes={peak} history_rss_delta_kib={} views_rss_delta_kib={}\n",
        rss_after.saturating_sub(rss_before),
        rss_views_after.saturating_sub(rss_views_before)
    );
    black_box((hour, views));
}

// (b) -----------------------------------------------------------------------------------------

fn aggregates() {
    println!("(b) aggregates of one plugin over {HOUR} samples");
    let series = full_hour_series(HOUR + 100);
    let view = series.view();
    assert_eq!(view.len(), HOUR, "the window holds one hour");
    let mut best = Duration::MAX;
    let mut total = Duration::ZERO;
    const ROUNDS: usize = 20;
    const CALLS: usize = 500;
    for _ in 0..ROUNDS {
        let started = Instant::now();
        for _ in 0..CALLS {
            black_box(black_box(&view).aggregates());
        }
        let per_call = started.elapsed() / CALLS as u32;
        best = best.min(per_call);
        total += per_call;
    }
    let mean = total / ROUNDS as u32;
    println!(
        "    aggregates(): mean {:.1} µs, best {:.1} µs per call (target well under 1 ms: {})",
        mean.as_secs_f64() * 1e6,
        best.as_secs_f64() * 1e6,
        if mean < Duration::from_micros(100) { "met" } else { "MISSED" }
    );
    println!(
        "BENCH aggregates_us={:.2} aggregates_best_us={:.2}\n",
        mean.as_secs_f64() * 1e6,
        best.as_secs_f64() * 1e6
    );
}

// (c) -----------------------------------------------------------------------------------------

/// Children killed and reaped on drop, even if the benchmark panics.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn sampler() {
    println!("(c) sampling {PLUGINS} real processes per tick (Sampler::sample)");
    let children = Children(
        (0..PLUGINS)
            .map(|_| {
                Command::new("sleep")
                    .arg("60")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .spawn()
                    .expect("`sleep` can be spawned")
            })
            .collect(),
    );
    let pids: Vec<u32> = children.0.iter().map(Child::id).collect();
    let mut sampler = Sampler::new().expect("sysinfo works on Linux");
    let (first, _) = sampler.sample(&pids); // the first reading: baselines, no CPU figure yet
    assert_eq!(first.len(), PLUGINS, "every child is found");

    const TICKS: usize = 20;
    let (mut cpu, mut wall, mut worst) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    for _ in 0..TICKS {
        // Far below the real 5 s, but above sysinfo's minimum CPU update interval.
        std::thread::sleep(Duration::from_millis(250));
        let (cpu0, wall0) = (thread_cpu(), Instant::now());
        let (usage, host) = sampler.sample(black_box(&pids));
        let (tick_cpu, tick_wall) = (thread_cpu() - cpu0, wall0.elapsed());
        assert_eq!(usage.len(), PLUGINS);
        black_box(host);
        cpu += tick_cpu;
        wall += tick_wall;
        worst = worst.max(tick_cpu);
    }
    drop(children);
    let cpu_ms = cpu.as_secs_f64() * 1000.0 / TICKS as f64;
    let wall_ms = wall.as_secs_f64() * 1000.0 / TICKS as f64;
    println!(
        "    per tick: {cpu_ms:.2} ms CPU (worst {:.2} ms), {wall_ms:.2} ms wall; at a 5 s interval {:.3} % of one core",
        worst.as_secs_f64() * 1000.0,
        cpu_ms / 5000.0 * 100.0
    );
    println!("    target < 5 ms CPU per tick: {}", if cpu_ms < 5.0 { "met" } else { "MISSED" });
    println!(
        "BENCH sampler_cpu_ms={cpu_ms:.3} sampler_worst_cpu_ms={:.3} sampler_wall_ms={wall_ms:.3}\n",
        worst.as_secs_f64() * 1000.0
    );
}

// (d) -----------------------------------------------------------------------------------------

fn snapshot_of_100() -> Snapshot {
    let now = SystemTime::now();
    let plugins: Vec<PluginSnapshot> = (0..PLUGINS)
        .map(|i| {
            let series = full_hour_series(HOUR + i % 32);
            let view = series.view();
            let last = *view.iter().next_back().expect("a full hour");
            PluginSnapshot {
                name: format!("plugin-{i:03}"),
                version: "1.0.0".into(),
                state: PluginState::Running,
                pid: Some(10_000 + i as u32),
                uptime: Duration::from_secs(3600),
                loaded_at: Some(now - Duration::from_secs(3600)),
                cpu_percent: f64::from(last.cpu_percent),
                memory_bytes: u64::from(last.memory_kib) * 1024,
                cpu_seconds: 12.5,
                processes: 1,
                events: last.events,
                crashes: 0,
                restarts: 0,
                restart_attempt: 0,
                next_restart_in: None,
                next_restart_at: None,
                protocol_errors: 0,
                dropped_commands: 0,
                commands: vec!["roll".into()],
                command_conflicts: Vec::new(),
                crash_log: Arc::new(VecDeque::new()),
                last_sampled_at: Some(now),
                history: view,
                operations: Default::default(),
            }
        })
        .collect();
    let system = SystemMetrics {
        bot_uptime: Duration::from_secs(3600),
        total_plugins: plugins.len(),
        plugins_running: plugins.len(),
        plugins_crashed: 0,
        total_events: plugins.iter().map(|p| p.events).sum(),
        total_memory_mb: plugins.iter().map(PluginSnapshot::memory_mb).sum(),
    };
    Snapshot {
        seq: 1,
        taken_at: now,
        poll_interval: POLL,
        plugins,
        system,
        host: HostUsage { resident_bytes: 12 << 20, ..HostUsage::default() },
    }
}

/// Mean and best wall time of `render` on a fresh `Rendered` (bodies are cached per snapshot,
/// so each round needs a new one), and the body size.
fn time_render(
    snapshot: &Arc<Snapshot>,
    context: &Arc<RenderContext>,
    rounds: usize,
    render: impl Fn(&Rendered) -> usize,
) -> (Duration, Duration, usize) {
    let (mut total, mut best, mut size) = (Duration::ZERO, Duration::MAX, 0);
    for _ in 0..rounds {
        let rendered = Rendered::new(snapshot.clone(), context.clone());
        let started = Instant::now();
        size = black_box(render(&rendered));
        let took = started.elapsed();
        total += took;
        best = best.min(took);
    }
    (total / rounds as u32, best, size)
}

fn rendering() {
    println!("(d) rendering one snapshot of {PLUGINS} plugins with a full hour each (ms per snapshot)");
    let snapshot = Arc::new(snapshot_of_100());
    let context = Arc::new(RenderContext {
        templates: render::templates().expect("the embedded templates parse"),
        thresholds: Thresholds { cpu_percent: 50.0, memory_mb: 100.0 },
        sse_clients: Arc::new(rosey::dashboard::sse::ClientCap::new(1024)),
    });
    const ROUNDS: usize = 30;
    type Render = fn(&Rendered) -> usize;
    // The gzip bodies are compressed from the plain ones, so their times include rendering
    // those; the per-snapshot total counts each body once.
    let bodies: [(&str, &str, bool, Render); 7] = [
        ("api_metrics", "/api/metrics JSON", true, |r| r.api_metrics().len()),
        ("prometheus", "/metrics text", false, |r| r.prometheus().len()),
        ("prometheus_gzip", "/metrics text, then gzip", true, |r| r.prometheus_gzip().len()),
        ("index_html", "/ HTML page", false, |r| r.index_html().map_or(0, |b| b.len())),
        ("index_html_gzip", "/ HTML page, then gzip", true, |r| r.index_html_gzip().map_or(0, |b| b.len())),
        ("sse_frame", "/events frame", true, |r| r.sse_frame().len()),
        ("api_plugin", "/api/plugin/{name} JSON, one plugin", false, |r| r.api_plugin(0).len()),
    ];
    let mut per_snapshot = Duration::ZERO;
    let mut keys = String::new();
    for (key, label, counted, render) in bodies {
        let (mean, best, size) = time_render(&snapshot, &context, ROUNDS, render);
        println!(
            "    {label:<38} {:>8.3} ms (best {:.3} ms), {:>7} bytes",
            mean.as_secs_f64() * 1000.0,
            best.as_secs_f64() * 1000.0,
            size
        );
        if counted {
            per_snapshot += mean;
        }
        keys.push_str(&format!(" render_{key}_ms={:.3} size_{key}={size}", mean.as_secs_f64() * 1000.0));
    }
    let (all_plugins, _, _) =
        time_render(&snapshot, &context, 5, |r| (0..PLUGINS).map(|i| r.api_plugin(i).len()).sum());
    println!("    {:<38} {:>8.3} ms", "all 100 /api/plugin/{name} bodies", all_plugins.as_secs_f64() * 1000.0);
    println!(
        "    one snapshot with page, API, Prometheus and SSE all in use: {:.2} ms; at a 5 s interval {:.3} % of one core",
        per_snapshot.as_secs_f64() * 1000.0,
        per_snapshot.as_secs_f64() / 5.0 * 100.0
    );
    println!(
        "BENCH{keys} render_all_plugins_ms={:.3} render_per_snapshot_ms={:.3}",
        all_plugins.as_secs_f64() * 1000.0,
        per_snapshot.as_secs_f64() * 1000.0
    );
}
