//! The frames of `/events`: a full frame on connect, then per snapshot one delta against the
//! previous snapshot, holding only what changed (the model is Phoenix LiveView's diff protocol;
//! docs/api.md describes the format).
//!
//! A frame's JSON is built from a *tree*: the full frame's data without its chart points. A
//! delta's `changes` is the difference of two trees (see [`diff`]); points travel apart, as new
//! values only, because the browser keeps its own window of them. Each tree is built once per
//! snapshot on first use, and the previous snapshot's tree is kept only until the next one
//! arrives ([`Live`] never refers to an older `Live`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::SystemTime;

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::dashboard::api::{PluginSummary, SystemJson};
use crate::dashboard::view::{
    self, CardView, ChartPoint, DetailView, SPARK_SAMPLES, SparkPoint, SystemView, Thresholds,
};
use crate::metrics::Snapshot;
use crate::timefmt::{rfc3339, unix_ms};

/// Frame ids are this process's start (in ms, times 1,000) plus the snapshot's sequence number,
/// so an id from an earlier run of the bot never names a snapshot of this one (a resumed
/// client could otherwise take a delta onto the wrong base). Snapshots come far slower than
/// 1,000 per millisecond, so ids also keep increasing across restarts.
static EPOCH: LazyLock<u64> = LazyLock::new(|| unix_ms(SystemTime::now()).saturating_mul(1000));

/// One snapshot's live-update trees, built on first use.
pub struct Live {
    pub id: u64,
    snapshot: Arc<Snapshot>,
    thresholds: Thresholds,
    index: OnceLock<Value>,
    details: Vec<OnceLock<Value>>,
}

#[derive(Serialize)]
struct IndexTree<'a> {
    plugins: Vec<PluginSummary<'a>>,
    system: SystemJson,
    view: IndexView,
}

#[derive(Serialize)]
struct IndexView {
    system: SystemView,
    cards: Vec<CardView>,
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
struct FullFrame<'a, P> {
    timestamp: String,
    #[serde(flatten)]
    tree: &'a Value,
    points: P,
    window: usize,
}

#[derive(Serialize)]
struct DeltaFrame<P> {
    timestamp: String,
    base: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    uptime_step: Option<f64>,
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

/// What changed from `old` to `new`, None if nothing. Objects give an object of the changed
/// keys (recursively); arrays of objects that kept their length give an object keyed by the
/// changed positions (`{"3": {...}}`); anything else that differs is sent whole. Trees never
/// lose keys (they are serialised structs), so there is no removal to encode.
pub fn diff(old: &Value, new: &Value) -> Option<Value> {
    let patch: Map<String, Value> = match (old, new) {
        (Value::Object(o), Value::Object(n)) => n
            .iter()
            .filter_map(|(k, nv)| match o.get(k) {
                Some(ov) => diff(ov, nv).map(|d| (k.clone(), d)),
                None => Some((k.clone(), nv.clone())),
            })
            .collect(),
        (Value::Array(o), Value::Array(n)) if o.len() == n.len() && n.iter().all(Value::is_object) => {
            o.iter().zip(n).enumerate().filter_map(|(i, (ov, nv))| diff(ov, nv).map(|d| (i.to_string(), d))).collect()
        }
        _ if old == new => return None,
        _ => return Some(new.clone()),
    };
    (!patch.is_empty()).then_some(Value::Object(patch))
}

fn round_tenth(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// Every running plugin's uptime grows by about the time between two snapshots: the most
/// common step (to 0.1 s) is sent once instead of one `uptime_seconds` per plugin, which would
/// be most of a steady-state delta. A plugin whose uptime did not grow by exactly that step
/// still gets its own value, so the result is exact.
fn uptime_step(old: &[Value], new: &[Value]) -> Option<f64> {
    let uptime = |p: &Value| p["uptime_seconds"].as_f64().unwrap_or(0.0);
    let mut counts: HashMap<u64, usize> = HashMap::new();
    for (o, n) in old.iter().zip(new).filter(|(o, n)| uptime(o) > 0.0 && uptime(n) > 0.0) {
        *counts.entry(round_tenth(uptime(n) - uptime(o)).to_bits()).or_default() += 1;
    }
    counts.into_iter().max_by_key(|&(_, n)| n).map(|(bits, _)| f64::from_bits(bits))
}

/// The base's plugin entries with the step applied, as the client applies it.
fn stepped(plugins: &[Value], step: f64) -> Value {
    let mut plugins = plugins.to_vec();
    for p in &mut plugins {
        if let Some(up) = p["uptime_seconds"].as_f64().filter(|&up| up > 0.0) {
            p["uptime_seconds"] = Value::from(round_tenth(up + step));
        }
    }
    Value::Array(plugins)
}

impl Live {
    pub fn new(snapshot: Arc<Snapshot>, thresholds: Thresholds) -> Live {
        let details = snapshot.plugins.iter().map(|_| OnceLock::new()).collect();
        Live { id: EPOCH.saturating_add(snapshot.seq), snapshot, thresholds, index: OnceLock::new(), details }
    }

    fn timestamp(&self) -> String {
        rfc3339(self.snapshot.taken_at)
    }

    fn card(&self, index: usize) -> CardView {
        CardView::of(&self.snapshot, &self.snapshot.plugins[index], self.thresholds)
    }

    fn index_tree(&self) -> &Value {
        self.index.get_or_init(|| {
            let s = &self.snapshot;
            to_tree(&IndexTree {
                plugins: s.plugins.iter().map(PluginSummary::of).collect(),
                system: SystemJson::of(&s.system),
                view: IndexView {
                    system: SystemView::of(&s.system),
                    cards: (0..s.plugins.len()).map(|i| self.card(i)).collect(),
                },
            })
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

    /// The delta from `base`; None when the plugins differ (then everyone gets a full frame).
    pub fn index_delta(&self, base: &Live) -> Option<Bytes> {
        let (old_plugins, new_plugins) = (&base.snapshot.plugins, &self.snapshot.plugins);
        let same_plugins = old_plugins.len() == new_plugins.len()
            && old_plugins.iter().zip(new_plugins).all(|(o, n)| o.name == n.name);
        if !same_plugins {
            return None;
        }
        let (old, new) = (base.index_tree(), self.index_tree());
        let old_entries = old["plugins"].as_array().map_or(&[][..], Vec::as_slice);
        let new_entries = new["plugins"].as_array().map_or(&[][..], Vec::as_slice);
        let step = uptime_step(old_entries, new_entries);
        let mut changes = Map::new();
        for (key, value) in new.as_object().into_iter().flatten() {
            let changed = match (key.as_str(), step) {
                ("plugins", Some(step)) => diff(&stepped(old_entries, step), value),
                _ => diff(&old[key], value),
            };
            if let Some(changed) = changed {
                changes.insert(key.clone(), changed);
            }
        }
        let points: BTreeMap<usize, Vec<SparkPoint>> = old_plugins
            .iter()
            .zip(new_plugins)
            .map(|(o, n)| view::spark_points(&n.history, view::newest_sample_ms(&o.history)))
            .enumerate()
            .filter(|(_, points)| !points.is_empty())
            .collect();
        let frame = DeltaFrame {
            timestamp: self.timestamp(),
            base: base.id,
            uptime_step: step,
            changes: Value::Object(changes),
            points,
            window: self.spark_window(),
        };
        Some(sse_frame(self.id, "delta", &frame))
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
    pub fn detail_delta(&self, index: usize, base: &Live) -> Option<Bytes> {
        let plugin = &self.snapshot.plugins[index];
        let (base_index, base_plugin) = base.snapshot.plugin(&plugin.name)?;
        let changes = diff(base.detail_tree(base_index), self.detail_tree(index)).unwrap_or(Value::Object(Map::new()));
        let points: Vec<ChartPoint> = view::chart_points(&plugin.history, view::newest_sample_ms(&base_plugin.history));
        let window = plugin.history.len();
        let frame =
            DeltaFrame { timestamp: self.timestamp(), base: base.id, uptime_step: None, changes, points, window };
        Some(sse_frame(self.id, "delta", &frame))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_diff_names_only_what_changed() {
        let old = json!({"t": "a", "cards": [{"cpu": "1%", "name": "x"}, {"cpu": "2%", "name": "y"}], "log": [1]});
        let new = json!({"t": "b", "cards": [{"cpu": "1%", "name": "x"}, {"cpu": "5%", "name": "y"}], "log": [1]});
        assert_eq!(diff(&old, &new), Some(json!({"t": "b", "cards": {"1": {"cpu": "5%"}}})));
        assert_eq!(diff(&old, &old), None);
        // A list that changed its length is sent whole.
        let longer = json!({"log": [{"a": 1}, {"a": 2}]});
        assert_eq!(diff(&json!({"log": [{"a": 1}]}), &longer), Some(longer.clone()));
        // A value that turns into an object replaces it.
        assert_eq!(diff(&json!({"d": null}), &json!({"d": {"x": 1}})), Some(json!({"d": {"x": 1}})));
    }

    #[test]
    fn the_common_uptime_step_is_sent_once_and_the_others_stay_explicit() {
        let old = [json!({"uptime_seconds": 10.0}), json!({"uptime_seconds": 20.3}), json!({"uptime_seconds": 7.0})];
        let new = [json!({"uptime_seconds": 15.0}), json!({"uptime_seconds": 25.3}), json!({"uptime_seconds": 0.4})];
        let step = uptime_step(&old, &new).expect("two plugins ran on");
        assert_eq!(step, 5.0);
        let patch = diff(&stepped(&old, step), &Value::from(new.to_vec()));
        assert_eq!(patch, Some(json!({"2": {"uptime_seconds": 0.4}})), "only the restarted plugin is named");
    }
}
