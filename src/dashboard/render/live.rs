//! The frames of `/events`: a full frame on connect, then per snapshot one delta against the
//! previous snapshot, holding only what changed (the model is Phoenix LiveView's diff protocol;
//! docs/api.md describes the format).
//!
//! A frame's JSON is built from a *tree*: the full frame's data without its chart points. A
//! delta's `changes` is the difference of two trees (see [`diff`]); points travel apart, as new
//! values only, because the browser keeps its own window of them. Each tree is built once per
//! snapshot on first use, and the previous snapshot's tree is kept only until the next one
//! arrives ([`LiveFrames`] never refers to an older `LiveFrames`). The index page's tree, a
//! thousand plugins' entries and cards, holds each of those as a flat list of [`Fields`],
//! compared field by field, each with the same plugin's (by name: a config reload that adds or
//! removes plugins also gives a delta, which then names the new list of plugins); a detail
//! page's tree is one `serde_json::Value`.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::SystemTime;

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Map, Value};

#[cfg(test)]
mod browser_twins;
mod diff;
mod fields;
use diff::{Pairing, diff, entries_diff, patch, uptime_step};
use fields::Fields;

use crate::dashboard::api::{PluginSummary, SystemJson};
use crate::dashboard::view::{self, CardView, ChartPoint, DetailView, SPARK_SAMPLES, SparkPoint, SystemView};
use crate::display::{rfc3339, unix_ms};
use crate::metrics::Snapshot;
use crate::metrics::health::Thresholds;

/// Frame ids are this process's start (in ms, times 1,000) plus the snapshot's sequence number,
/// so an id from an earlier run of the bot never names a snapshot of this one (a resumed
/// client could otherwise take a delta onto the wrong base). Snapshots come far slower than
/// 1,000 per millisecond, so ids also keep increasing across restarts.
static EPOCH: LazyLock<u64> = LazyLock::new(|| unix_ms(SystemTime::now()).saturating_mul(1000));

/// One snapshot's live-update frames (full and delta, built from its trees on first use).
pub struct LiveFrames {
    pub id: u64,
    snapshot: Arc<Snapshot>,
    thresholds: Thresholds,
    index: OnceLock<IndexTree>,
    details: Vec<OnceLock<Value>>,
}

/// The index page's tree: per plugin its `/api/metrics` entry ([`PluginSummary`]) and its card
/// ([`CardView`]), and the system's figures in both forms.
#[derive(Serialize)]
struct IndexTree {
    plugins: Vec<Fields>,
    system: Value,
    view: IndexView,
}

#[derive(Serialize)]
struct IndexView {
    system: Value,
    cards: Vec<Fields>,
}

impl IndexTree {
    /// The [`diff`] of the two trees' JSON once `base`'s lists are in this tree's order (by
    /// `pairing`), each of `base`'s plugin entries with its uptime grown by `step` first (see
    /// [`uptime_step`]); a plugin `base` lacks has its whole entry and card.
    fn changes_from(&self, base: &IndexTree, pairing: &Pairing, step: Option<f64>) -> Option<Value> {
        let view = patch([
            ("system", diff(&base.view.system, &self.view.system)),
            ("cards", entries_diff(&base.view.cards, &self.view.cards, pairing, None)),
        ]);
        patch([
            ("plugins", entries_diff(&base.plugins, &self.plugins, pairing, step)),
            ("system", diff(&base.system, &self.system)),
            ("view", view),
        ])
    }
}

#[derive(Serialize)]
struct DetailTree<'a> {
    system: SystemJson,
    plugin: PluginSummary<'a>,
    view: DetailPageView,
}

#[derive(Serialize)]
struct DetailPageView {
    system: SystemView,
    card: CardView,
    detail: DetailView,
}

/// Every frame opens with the snapshot's time, so a reader can time a frame from its first
/// bytes (examples/sse_fanout.rs does).
#[derive(Serialize)]
struct FullFrame<'a, T, P> {
    timestamp: String,
    #[serde(flatten)]
    tree: &'a T,
    points: P,
    window: usize,
}

#[derive(Serialize)]
struct DeltaFrame<'a, P> {
    timestamp: String,
    base: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    uptime_step: Option<f64>,
    /// The plugins' names in the new order, only when the plugins differ from the base's.
    #[serde(skip_serializing_if = "Option::is_none")]
    names: Option<Vec<&'a str>>,
    changes: Value,
    points: P,
    window: usize,
}

fn to_tree(value: &impl Serialize) -> Value {
    // These plain structs always serialise (string keys only, no I/O).
    serde_json::to_value(value).unwrap_or_default()
}

/// An SSE frame: `id`, `event` and the JSON on one `data:` line (serde_json never emits a raw
/// newline, so one line is always enough).
fn sse_frame(id: u64, event: &str, payload: &impl Serialize) -> Bytes {
    let mut frame = format!("id: {id}\nevent: {event}\ndata: ").into_bytes();
    // Serialising these plain structs cannot fail (string keys only, no I/O).
    let _ = serde_json::to_writer(&mut frame, payload);
    frame.extend_from_slice(b"\n\n");
    Bytes::from(frame)
}

impl LiveFrames {
    pub fn new(snapshot: Arc<Snapshot>, thresholds: Thresholds) -> LiveFrames {
        let details = snapshot.plugins.iter().map(|_| OnceLock::new()).collect();
        LiveFrames { id: EPOCH.saturating_add(snapshot.seq), snapshot, thresholds, index: OnceLock::new(), details }
    }

    fn timestamp(&self) -> String {
        rfc3339(self.snapshot.taken_at)
    }

    fn card(&self, index: usize) -> CardView {
        CardView::of(&self.snapshot, &self.snapshot.plugins[index], self.thresholds)
    }

    fn index_tree(&self) -> &IndexTree {
        self.index.get_or_init(|| {
            let s = &self.snapshot;
            IndexTree {
                plugins: s.plugins.iter().map(|p| Fields::of(&PluginSummary::of(p))).collect(),
                system: to_tree(&SystemJson::of(&s.system)),
                view: IndexView {
                    system: to_tree(&SystemView::of(&s.system)),
                    cards: (0..s.plugins.len()).map(|i| Fields::of(&self.card(i))).collect(),
                },
            }
        })
    }

    fn detail_tree(&self, index: usize) -> &Value {
        self.details[index].get_or_init(|| {
            let s = &self.snapshot;
            let p = &s.plugins[index];
            to_tree(&DetailTree {
                system: SystemJson::of(&s.system),
                plugin: PluginSummary::of(p),
                view: DetailPageView {
                    system: SystemView::of(&s.system),
                    card: self.card(index),
                    detail: DetailView::of(p),
                },
            })
        })
    }

    /// How many spark points a card keeps: the sparkline's length, or the whole history while
    /// it is shorter (every plugin gets a point on every tick, so one figure fits all).
    fn spark_window(&self) -> usize {
        self.snapshot.plugins.iter().map(|p| p.history.len()).max().unwrap_or(0).min(SPARK_SAMPLES)
    }

    pub fn index_full(&self) -> Bytes {
        let points: Vec<Vec<SparkPoint>> =
            self.snapshot.plugins.iter().map(|p| view::spark_points(&p.history, None)).collect();
        let frame =
            FullFrame { timestamp: self.timestamp(), tree: self.index_tree(), points, window: self.spark_window() };
        sse_frame(self.id, "snapshot", &frame)
    }

    /// The delta from `base`. Plugins added or removed since (a config reload) make it carry
    /// `names`, the new list; a plugin `base` lacks is sent whole, points included.
    pub fn index_delta(&self, base: &LiveFrames) -> Bytes {
        let (old_plugins, new_plugins) = (&base.snapshot.plugins, &self.snapshot.plugins);
        let pairing = Pairing::by_name(&base.snapshot, &self.snapshot);
        let names =
            (!pairing.same_plugins(old_plugins.len())).then(|| new_plugins.iter().map(|p| p.name.as_str()).collect());
        let (old, new) = (base.index_tree(), self.index_tree());
        let step = uptime_step(&old.plugins, &new.plugins, &pairing);
        let changes = new.changes_from(old, &pairing, step);
        let points: BTreeMap<usize, Vec<SparkPoint>> = pairing
            .olds(old_plugins)
            .zip(new_plugins)
            .map(|(o, n)| view::spark_points(&n.history, o.and_then(|o| view::newest_sample_ms(&o.history))))
            .enumerate()
            .filter(|(_, points)| !points.is_empty())
            .collect();
        let frame = DeltaFrame {
            timestamp: self.timestamp(),
            base: base.id,
            uptime_step: step,
            names,
            changes: changes.unwrap_or_else(|| Value::Object(Map::new())),
            points,
            window: self.spark_window(),
        };
        sse_frame(self.id, "delta", &frame)
    }

    pub fn detail_full(&self, index: usize) -> Bytes {
        let history = &self.snapshot.plugins[index].history;
        let frame = FullFrame {
            timestamp: self.timestamp(),
            tree: self.detail_tree(index),
            points: view::chart_points(history, None),
            window: history.len(),
        };
        sse_frame(self.id, "snapshot", &frame)
    }

    /// The delta of one plugin's detail from `base`; None when `base` lacks that plugin.
    pub fn detail_delta(&self, index: usize, base: &LiveFrames) -> Option<Bytes> {
        let plugin = &self.snapshot.plugins[index];
        let (base_index, base_plugin) = base.snapshot.plugin(&plugin.name)?;
        let changes = diff(base.detail_tree(base_index), self.detail_tree(index)).unwrap_or(Value::Object(Map::new()));
        let points: Vec<ChartPoint> = view::chart_points(&plugin.history, view::newest_sample_ms(&base_plugin.history));
        let window = plugin.history.len();
        let frame = DeltaFrame {
            timestamp: self.timestamp(),
            base: base.id,
            uptime_step: None,
            names: None,
            changes,
            points,
            window,
        };
        Some(sse_frame(self.id, "delta", &frame))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::time::Duration;

    use serde_json::json;

    use super::diff::{UPTIME, stepped};
    use super::*;
    use crate::metrics::history::{Sample, Series};
    use crate::metrics::{PluginSnapshot, SystemMetrics};
    use crate::plugins::{CrashRecord, ExitReason, PluginState};

    /// A plugin with `samples` of history, running for `uptime` (not running at zero).
    fn plugin(name: &str, uptime: Duration, cpu_percent: f32, samples: u64) -> PluginSnapshot {
        let mut history = Series::new(720);
        for i in 0..samples {
            let state = PluginState::Running;
            history.push(Sample {
                at_ms: i * 5000,
                events: i,
                cpu_percent,
                memory_kib: 20_480,
                response_ms: 0.0,
                state,
            });
        }
        let running = !uptime.is_zero();
        PluginSnapshot {
            state: if running { PluginState::Running } else { PluginState::Crashed },
            pid: running.then_some(4242),
            uptime,
            cpu_percent: f64::from(cpu_percent),
            memory_bytes: 20 << 20,
            processes: u32::from(running),
            events: samples,
            ..PluginSnapshot::example(name, history.view())
        }
    }

    fn snapshot(seq: u64, plugins: Vec<PluginSnapshot>) -> Arc<Snapshot> {
        let system = SystemMetrics::of(&plugins, Duration::from_secs(100 + 5 * seq));
        let (taken_at, poll_interval) = (SystemTime::UNIX_EPOCH + Duration::from_secs(5 * seq), Duration::from_secs(5));
        Arc::new(Snapshot {
            seq,
            taken_at,
            poll_interval,
            plugins,
            system,
            host: Default::default(),
            chat: Default::default(),
        })
    }

    fn frame_data(frame: &Bytes) -> Value {
        let text = std::str::from_utf8(frame).expect("a frame is text");
        let data = text.lines().find_map(|l| l.strip_prefix("data: ")).expect("a frame has data");
        serde_json::from_str(data).expect("a frame's data is JSON")
    }

    /// The frame without what travels beside the tree.
    fn tree_of(mut frame: Value) -> Value {
        for key in ["timestamp", "points", "window"] {
            frame.as_object_mut().expect("a frame is an object").remove(key);
        }
        frame
    }

    /// The entries and cards are kept as fields for speed; what they say must be what the plain
    /// JSON of the two full frames says: the delta is their [`diff`] once the base's uptimes
    /// took the step, and the entries are the `/api/metrics` ones.
    #[test]
    fn an_index_delta_is_the_diff_of_the_two_full_frames() {
        let seconds = Duration::from_secs;
        let before = snapshot(
            1,
            vec![
                plugin("crashy", seconds(60), 0.0, 12),
                plugin("dice", seconds(3599), 1.5, 12),
                plugin("restarted", seconds(600), 0.0, 12),
                plugin("steady", seconds(7200), 0.0, 12),
            ],
        );
        let mut crashed = plugin("crashy", Duration::ZERO, 0.0, 13);
        crashed.crashes = 1;
        let crash = CrashRecord {
            at: SystemTime::UNIX_EPOCH,
            reason: ExitReason::Signal(9),
            uptime: seconds(64),
            stderr_tail: Vec::new(),
        };
        crashed.crash_log = Arc::new(VecDeque::from([crash]));
        let after = snapshot(
            2,
            vec![
                crashed,
                plugin("dice", seconds(3604), 7.25, 13),
                plugin("restarted", Duration::from_millis(1500), 0.0, 13),
                plugin("steady", seconds(7205), 0.0, 13),
            ],
        );
        let thresholds = Thresholds { cpu_percent: 5.0, memory_mb: 512.0, response_ms: 1000.0 };
        let (base, live) = (LiveFrames::new(before, thresholds), LiveFrames::new(after.clone(), thresholds));

        let delta = frame_data(&live.index_delta(&base));
        assert!(delta.get("names").is_none(), "the same plugins: no new list of them");
        assert_eq!(delta["uptime_step"], 5.0);
        let old = tree_of(stepped_frame(&base, &delta));
        let new = tree_of(frame_data(&live.index_full()));
        assert_eq!(Some(&delta["changes"]), diff(&old, &new).as_ref());
        assert!(delta["changes"]["view"]["cards"]["0"]["last_exit"].is_string(), "the crash is in: {delta}");
        let api = serde_json::to_value(crate::dashboard::api::ApiMetrics::of(&after)).expect("JSON");
        assert_eq!(new["plugins"], api["plugins"]);
    }

    /// `base`'s full frame with the uptimes grown by `delta`'s step, as a client applies it.
    fn stepped_frame(base: &LiveFrames, delta: &Value) -> Value {
        let step = delta["uptime_step"].as_f64().expect("running plugins took a step");
        let mut frame = frame_data(&base.index_full());
        for p in frame["plugins"].as_array_mut().expect("a list of entries") {
            p[UPTIME] = stepped(&p[UPTIME], step);
        }
        frame
    }

    /// `list` (one item per plugin of `old`, by position) in the order of `names`, `missing`
    /// for a name `old` lacks: what a client makes of its lists on a delta's `names`.
    fn in_new_order(list: &Value, old: &[&str], names: &Value, missing: &Value) -> Value {
        let names = names.as_array().expect("a list of names");
        let item = |name: &Value| old.iter().position(|o| name == o).map_or(missing, |i| &list[i]);
        Value::Array(names.iter().map(item).cloned().collect())
    }

    /// A config reload removed one plugin and added another: the delta names the new list, and
    /// a client that puts its lists in that order and applies the rest as usual has the new
    /// full frame, points included.
    #[test]
    fn an_index_delta_across_added_and_removed_plugins_names_them_and_rebuilds_the_full_frame() {
        let running =
            |names: [&str; 3], seq: u64| names.map(|n| plugin(n, Duration::from_secs(590 + 5 * seq), 1.5, 11 + seq));
        let before = snapshot(1, running(["alpha", "dice", "steady"], 1).into());
        let mut after = running(["dice", "newbie", "steady"], 2);
        after[1] = plugin("newbie", Duration::from_millis(2500), 0.5, 2);
        let after = snapshot(2, after.into());
        let thresholds = Thresholds { cpu_percent: 5.0, memory_mb: 512.0, response_ms: 1000.0 };
        let (base, live) = (LiveFrames::new(before, thresholds), LiveFrames::new(after, thresholds));

        let delta = frame_data(&live.index_delta(&base));
        assert_eq!(delta["names"], json!(["dice", "newbie", "steady"]));
        assert_eq!(delta["uptime_step"], 5.0, "the kept plugins' step");
        let old_names = ["alpha", "dice", "steady"];
        let (old_frame, new_frame) = (stepped_frame(&base, &delta), frame_data(&live.index_full()));
        let mut old = tree_of(old_frame.clone());
        old["plugins"] = in_new_order(&old["plugins"], &old_names, &delta["names"], &Value::Null);
        old["view"]["cards"] = in_new_order(&old["view"]["cards"], &old_names, &delta["names"], &Value::Null);
        let new = tree_of(new_frame.clone());
        assert_eq!(Some(&delta["changes"]), diff(&old, &new).as_ref());
        assert_eq!(delta["changes"]["plugins"]["1"], new["plugins"][1], "the new plugin's whole entry");
        assert_eq!(delta["changes"]["view"]["cards"]["1"], new["view"]["cards"][1], "and whole card");

        let mut points = in_new_order(&old_frame["points"], &old_names, &delta["names"], &json!([]));
        for (i, new_points) in delta["points"].as_object().expect("points by position") {
            let list = points[i.parse::<usize>().expect("a position")].as_array_mut().expect("a list of points");
            list.extend(new_points.as_array().expect("new points").iter().cloned());
            let excess = list.len().saturating_sub(delta["window"].as_u64().expect("a window") as usize);
            list.drain(..excess);
        }
        assert_eq!(points, new_frame["points"], "the new plugin's whole window, one new point for the others");
    }
}
