//! Collector and rendering budgets at 100 and 1,000 plugins (issues 4, 5, 7 and 16), measured with plain
//! `Instant` and `getrusage` timing: `cargo bench --bench collector`.
//!
//! (a) one hour of history for 100 and 1,000 plugins, filled synthetically: heap bytes by
//!     `Series::heap_bytes`, cross-checked against this process's resident-memory growth;
//! (b) aggregates of one plugin over 720 samples;
//! (c) sampling 100 and 1,000 real processes per tick with `Sampler` (CPU time of the
//!     sampling thread);
//! (d) rendering every shared body of one snapshot of 100 and of 1,000 plugins with a full hour
//!     each, and the live-update delta from one snapshot to the next (its size is the bytes each
//!     `/events` client receives per snapshot), for plugins whose figures all change and for
//!     idle ones;
//! (e) one collector snapshot (`Collector::publish_snapshot`) of 100 and 1,000 plugins that
//!     each claim chat commands, half of them shared with a neighbour (the command table).
//!
//! Each figure is printed in a human line and a `BENCH key=value` line that
//! `scripts/bench.sh` collects. Figures are for the machine it runs on; nothing is asserted.
//! Name sections to run only those: `cargo bench --bench collector -- sampler rendering`.

use std::hint::black_box;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::resource::{UsageWho, getrusage};
use rosey::config::MetricsConfig;
use rosey::dashboard::render::{self, Audience, RenderContext, Rendered};
use rosey::dashboard::view::PageQuery;
use rosey::display::unix_ms;
use rosey::metrics::health::Thresholds;
use rosey::metrics::history::{Sample, Series};
use rosey::metrics::sampler::{HostUsage, Sampler};
use rosey::metrics::{Collector, PluginSnapshot, Snapshot, SystemMetrics};
use rosey::plugins::spec::{Launch, PluginConfig, PluginName, ReloadPolicy, RestartPolicy};
use rosey::plugins::{Launcher, PluginHost, PluginState};

const PLUGINS: usize = 100;
/// One hour at the default 5 s poll interval.
const HOUR: usize = 720;
const POLL: Duration = Duration::from_secs(5);

fn main() {
    // `cargo bench --bench collector -- sampler` runs only the sections whose names match.
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let sections: [(&str, fn()); 5] = [
        ("history", history_memory),
        ("aggregates", aggregates),
        ("sampler", sampler),
        ("rendering", rendering),
        ("snapshot", snapshot),
    ];
    println!(
        "rosey collector benchmark: {PLUGINS} and {} plugins, {HOUR} samples (1 h at 5 s polls) each\n",
        10 * PLUGINS
    );
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
            response_ms: (i % 5) as f32 * 10.0,
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
            response_ms: (r % 300) as f32,
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

/// `BENCH` keys of a figure measured at `count` plugins: plain at 100 (what scripts/bench.sh
/// has always read), `_1000` at 1,000.
fn key_suffix(count: usize) -> String {
    if count == PLUGINS { String::new() } else { format!("_{count}") }
}

fn history_memory() {
    for count in [PLUGINS, 10 * PLUGINS] {
        history_memory_of(count);
    }
}

fn history_memory_of(count: usize) {
    let suffix = key_suffix(count);
    println!("(a) one hour of history for {count} plugins");
    println!("    one sample: {} bytes", std::mem::size_of::<Sample>());

    // Exactly one hour, with the crate's own helper.
    let rss_before = vm_rss_kib();
    let hour: Vec<Series> = (0..count).map(|_| synthetic_series(HOUR, HOUR)).collect();
    let rss_after = vm_rss_kib();
    let heap: usize = hour.iter().map(Series::heap_bytes).sum();
    println!(
        "    after 1 h: heap_bytes {heap} B = {:.2} MiB ({:.1} KiB per plugin); process RSS grew {} KiB = {:.2} MiB",
        mib(heap as f64),
        heap as f64 / 1024.0 / count as f64,
        rss_after.saturating_sub(rss_before),
        mib(rss_after.saturating_sub(rss_before) as f64 * 1024.0)
    );

    // Steady state: the window rolls (whole chunks are dropped), so the peak is what counts.
    let mut series: Vec<Series> = (0..count).map(|_| Series::new(HOUR)).collect();
    let mut samples: Vec<Samples> = (0..count).map(|_| Samples::starting(SystemTime::now())).collect();
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
    let target = 8e6 * (count / PLUGINS) as f64; // 8 MB per 100 plugins
    println!(
        "    target < {:.0} MB: {}",
        target / 1e6,
        if (peak.max(heap) as f64) < target { "met" } else { "MISSED" }
    );
    println!(
        "BENCH history_bytes{suffix}={heap} history_peak_bytes{suffix}={peak} history_rss_delta_kib{suffix}={} views_rss_delta_kib{suffix}={}\n",
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
    for count in [PLUGINS, 10 * PLUGINS] {
        sampler_of(count);
    }
}

fn sampler_of(count: usize) {
    let suffix = key_suffix(count);
    println!("(c) sampling {count} real processes per tick (Sampler::sample)");
    let children = Children(
        (0..count)
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
    assert_eq!(first.len(), count, "every child is found");

    const TICKS: usize = 20;
    let (mut cpu, mut wall, mut worst) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    for _ in 0..TICKS {
        // Far below the real 5 s, but above sysinfo's minimum CPU update interval.
        std::thread::sleep(Duration::from_millis(250));
        let (cpu0, wall0) = (thread_cpu(), Instant::now());
        let (usage, host) = sampler.sample(black_box(&pids));
        let (tick_cpu, tick_wall) = (thread_cpu() - cpu0, wall0.elapsed());
        assert_eq!(usage.len(), count);
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
    // 5 ms per tick at 100 plugins (issue 7), 25 ms at 1,000 (issue 16).
    let target = if count == PLUGINS { 5.0 } else { 25.0 };
    println!("    target < {target} ms CPU per tick: {}", if cpu_ms < target { "met" } else { "MISSED" });
    println!(
        "BENCH sampler_cpu_ms{suffix}={cpu_ms:.3} sampler_worst_cpu_ms{suffix}={:.3} sampler_wall_ms{suffix}={wall_ms:.3}\n",
        worst.as_secs_f64() * 1000.0
    );
}

// (d) -----------------------------------------------------------------------------------------

/// `count` plugins with a full hour each; `ticks` later samples make the snapshots after it
/// (each plugin one sample further, with new figures).
fn snapshot_of(count: usize, ticks: usize) -> Snapshot {
    let now = SystemTime::now();
    let plugins: Vec<PluginSnapshot> = (0..count)
        .map(|i| {
            let series = full_hour_series(HOUR + i % 32 + ticks);
            let view = series.view();
            let last = *view.iter().next_back().expect("a full hour");
            PluginSnapshot {
                version: "1.0.0".into(),
                pid: Some(10_000 + i as u32),
                uptime: Duration::from_secs(3600) + POLL * ticks as u32,
                loaded_at: Some(now - Duration::from_secs(3600)),
                cpu_percent: f64::from(last.cpu_percent),
                memory_bytes: u64::from(last.memory_kib) * 1024,
                cpu_seconds: 12.5,
                processes: 1,
                events: last.events,
                commands: vec!["roll".into()],
                last_sampled_at: Some(now),
                ..PluginSnapshot::example(&format!("plugin-{i:03}"), view)
            }
        })
        .collect();
    let system = SystemMetrics::of(&plugins, Duration::from_secs(3600));
    Snapshot {
        seq: 1 + ticks as u64,
        taken_at: now,
        poll_interval: POLL,
        plugins,
        system,
        host: HostUsage { resident_bytes: 12 << 20, ..HostUsage::default() },
        chat: Default::default(),
    }
}

/// The snapshot after `base` for plugins that do nothing: each one sample and one poll
/// interval of uptime further, its figures unchanged (the real idle case, where a delta holds
/// little more than the uptime step and the new points).
fn idle_after(base: &Snapshot) -> Snapshot {
    let mut next = snapshot_of(base.plugins.len(), 1);
    for (p, before) in next.plugins.iter_mut().zip(&base.plugins) {
        (p.cpu_percent, p.memory_bytes, p.events) = (before.cpu_percent, before.memory_bytes, before.events);
    }
    next.system = base.system;
    next.system.bot_uptime += POLL;
    next
}

/// Mean and best wall time of `render` on a fresh `Rendered` (bodies are cached per snapshot,
/// so each round needs a new one) following `base` when given, and the body size.
fn time_render(
    snapshot: &Arc<Snapshot>,
    base: Option<&Arc<Snapshot>>,
    context: &Arc<RenderContext>,
    rounds: usize,
    render: impl Fn(&Rendered) -> usize,
) -> (Duration, Duration, usize) {
    let (mut total, mut best, mut size) = (Duration::ZERO, Duration::MAX, 0);
    for _ in 0..rounds {
        let rendered = match base {
            None => Rendered::new(snapshot.clone(), context.clone()),
            Some(base) => {
                // The previous snapshot's frame was made when it was current.
                let previous = Rendered::new(base.clone(), context.clone());
                black_box(previous.full_frame());
                previous.next(snapshot.clone())
            }
        };
        let started = Instant::now();
        size = black_box(render(&rendered));
        let took = started.elapsed();
        total += took;
        best = best.min(took);
    }
    (total / rounds as u32, best, size)
}

fn rendering() {
    for (plugins, rounds) in [(PLUGINS, 30), (10 * PLUGINS, 5)] {
        rendering_of(plugins, rounds);
    }
}

/// What a body is timed on: the next snapshot alone, or following the one before, as it does
/// live (with the synthetic plugins' figures changed, or with idle plugins).
#[derive(Clone, Copy)]
enum Timed {
    Alone,
    AfterBusy,
    AfterIdle,
}

fn rendering_of(plugins: usize, rounds: usize) {
    let suffix = key_suffix(plugins);
    println!("(d) rendering one snapshot of {plugins} plugins with a full hour each (ms per snapshot)");
    let base = Arc::new(snapshot_of(plugins, 0));
    let snapshot = Arc::new(snapshot_of(plugins, 1));
    let idle = Arc::new(idle_after(&base));
    let context = Arc::new(RenderContext {
        templates: render::templates().expect("the embedded templates parse"),
        actions_enabled: false,
        thresholds: Thresholds { cpu_percent: 50.0, memory_mb: 100.0, response_ms: 1000.0 },
        sse_clients: Arc::new(rosey::dashboard::server::ClientCap::new(1024)),
        auth_failures: Arc::default(),
        timeline: rosey::timeline::Timeline::new(1),
        notifications: Arc::default(),
    });
    type Render = fn(&Rendered) -> usize;
    // The gzip bodies are compressed from the plain ones, so their times include rendering
    // those; the per-snapshot total counts each body once. The delta follows the snapshot
    // before, as it does live; a full frame is made only for a client that connects. The
    // synthetic plugins change their figures on every sample; the idle delta is the one of
    // plugins that do not (not counted in the total: it is the other case of the same frame).
    let bodies: [(&str, &str, Timed, bool, Render); 9] = [
        ("api_metrics", "/api/metrics JSON", Timed::Alone, true, |r| r.api_metrics().len()),
        ("prometheus", "/metrics text", Timed::Alone, false, |r| r.prometheus().len()),
        ("prometheus_gzip", "/metrics text, then gzip", Timed::Alone, true, |r| r.prometheus_gzip().len()),
        ("index_html", "/ HTML page", Timed::Alone, false, |r| {
            r.index_html(&PageQuery::default(), Audience::Operator).map_or(0, |b| b.len())
        }),
        ("index_html_gzip", "/ HTML page, then gzip", Timed::Alone, true, |r| {
            r.index_html_gzip(&PageQuery::default(), Audience::Operator).map_or(0, |b| b.len())
        }),
        ("sse_full", "/events full frame (on connect)", Timed::Alone, false, |r| r.full_frame().len()),
        ("sse_delta", "/events delta (each client, each snapshot)", Timed::AfterBusy, true, |r| {
            r.delta_frame().map_or(0, |b| b.len())
        }),
        ("sse_delta_idle", "/events delta, idle plugins", Timed::AfterIdle, false, |r| {
            r.delta_frame().map_or(0, |b| b.len())
        }),
        ("api_plugin", "/api/plugin/{name} JSON, one plugin", Timed::Alone, false, |r| r.api_plugin(0).len()),
    ];
    let mut per_snapshot = Duration::ZERO;
    let mut keys = String::new();
    for (key, label, timed, counted, render) in bodies {
        let (snapshot, base) = match timed {
            Timed::Alone => (&snapshot, None),
            Timed::AfterBusy => (&snapshot, Some(&base)),
            Timed::AfterIdle => (&idle, Some(&base)),
        };
        let (mean, best, size) = time_render(snapshot, base, &context, rounds, render);
        println!(
            "    {label:<44} {:>8.3} ms (best {:.3} ms), {:>8} bytes",
            mean.as_secs_f64() * 1000.0,
            best.as_secs_f64() * 1000.0,
            size
        );
        if counted {
            per_snapshot += mean;
        }
        keys.push_str(&format!(
            " render_{key}_ms{suffix}={:.3} size_{key}{suffix}={size}",
            mean.as_secs_f64() * 1000.0
        ));
    }
    let (all_plugins, _, _) =
        time_render(&snapshot, None, &context, rounds.min(5), |r| (0..plugins).map(|i| r.api_plugin(i).len()).sum());
    println!(
        "    {:<44} {:>8.3} ms",
        format!("all {plugins} /api/plugin/{{name}} bodies"),
        all_plugins.as_secs_f64() * 1000.0
    );
    println!(
        "    one snapshot with page, API, Prometheus and SSE deltas all in use: {:.2} ms; at a 5 s interval {:.3} % of one core\n",
        per_snapshot.as_secs_f64() * 1000.0,
        per_snapshot.as_secs_f64() / 5.0 * 100.0
    );
    println!(
        "BENCH{keys} render_all_plugins_ms{suffix}={:.3} render_per_snapshot_ms{suffix}={:.3}\n",
        all_plugins.as_secs_f64() * 1000.0,
        per_snapshot.as_secs_f64() * 1000.0
    );
}

// (e) -----------------------------------------------------------------------------------------

fn snapshot() {
    for (count, rounds) in [(PLUGINS, 200), (10 * PLUGINS, 50)] {
        snapshot_with_commands(count, rounds);
    }
}

/// Plugin `i` claims `own-i` and `pair-(i/2)` in its config entry: every plugin has a command
/// of its own and takes part in one conflict. Their program does not exist and restarts are
/// off, so the host runs `count` real supervisors but no processes (no file descriptors).
fn commanded_plugin(i: usize) -> PluginConfig {
    PluginConfig {
        name: PluginName::new(format!("plugin-{i:04}")).expect("a valid name"),
        launch: Launch::Command { program: "/nonexistent/rosey-bench-plugin".into(), args: vec![] },
        env: Default::default(),
        cwd: None,
        version: None,
        commands: vec![format!("own-{i}"), format!("pair-{}", i / 2)],
        restart: RestartPolicy { enabled: false, ..RestartPolicy::default() },
        reload: ReloadPolicy::default(),
        command_timeout: rosey::plugins::spec::DEFAULT_COMMAND_TIMEOUT,
        memory_limit: None,
        watch: Vec::new(),
    }
}

fn snapshot_with_commands(count: usize, rounds: usize) {
    let suffix = key_suffix(count);
    println!("(e) one collector snapshot of {count} plugins with 2 commands each, {} conflicts", count / 2);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    runtime.block_on(async {
        let (replies, _unread) = tokio::sync::mpsc::channel(1);
        let launcher = Launcher {
            rosey_exe: "/nonexistent/rosey".into(),
            open_files: None,
            timeline: rosey::timeline::Timeline::new(100),
            logs: Default::default(),
        };
        let host = PluginHost::start((0..count).map(commanded_plugin).collect(), launcher, replies);
        // Let every supervisor try its spawn and settle in FAILED: nothing changes after that.
        while host.handles().iter().any(|h| h.status().state != PluginState::Failed) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let config = MetricsConfig { poll_interval: POLL, history_duration: POLL * HOUR as u32 };
        let mut collector = Collector::new(host.registry(), config);
        let published = collector.subscribe();
        let (mut total, mut best) = (Duration::ZERO, Duration::MAX);
        for _ in 0..rounds {
            let started = Instant::now();
            collector.publish_snapshot();
            let took = started.elapsed();
            total += took;
            best = best.min(took);
        }
        let last = published.borrow().clone();
        assert_eq!(last.plugins.len(), count, "every plugin is in the snapshot");
        assert_eq!(last.plugins[0].command_conflicts.len(), 1, "each plugin shows its conflict");
        let mean = total / rounds as u32;
        println!(
            "    publish_snapshot(): mean {:.3} ms, best {:.3} ms ({rounds} rounds)\n",
            mean.as_secs_f64() * 1000.0,
            best.as_secs_f64() * 1000.0
        );
        println!(
            "BENCH snapshot_ms{suffix}={:.3} snapshot_best_ms{suffix}={:.3}\n",
            mean.as_secs_f64() * 1000.0,
            best.as_secs_f64() * 1000.0
        );
        host.stop().await;
    });
}
