//! What changed between two snapshots' trees: the `changes` of a delta frame. Plain JSON
//! values are compared by [`diff`]; the index page's per-plugin entries, held as [`Fields`],
//! are compared field by field, each with the base entry of the same plugin (by name, so a
//! config reload that added or removed plugins still gives a delta, see [`Pairing`]).

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::fields::Fields;
use crate::metrics::Snapshot;

/// What changed from `old` to `new`, None if nothing. Objects give an object of the changed
/// keys (recursively); arrays of objects that kept their length give an object keyed by the
/// changed positions (`{"3": {...}}`); anything else that differs is sent whole. Trees never
/// lose keys (they are serialised structs), so there is no removal to encode.
pub fn diff(old: &Value, new: &Value) -> Option<Value> {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            patch(n.iter().map(|(k, nv)| (k, o.get(k).map_or_else(|| Some(nv.clone()), |ov| diff(ov, nv)))))
        }
        (Value::Array(o), Value::Array(n)) if o.len() == n.len() && n.iter().all(Value::is_object) => {
            patch(o.iter().zip(n).map(|(ov, nv)| diff(ov, nv)).enumerate())
        }
        _ if old == new => None,
        _ => Some(new.clone()),
    }
}

/// The object of the changes that are there, None if none is. A key is made a `String` only
/// for a change, as most keys (a thousand plugins' positions) have none.
pub fn patch<K: ToString>(changes: impl IntoIterator<Item = (K, Option<Value>)>) -> Option<Value> {
    let patch: Map<String, Value> =
        changes.into_iter().filter_map(|(key, change)| change.map(|change| (key.to_string(), change))).collect();
    (!patch.is_empty()).then_some(Value::Object(patch))
}

/// Where each plugin of a snapshot was in the base snapshot: entry `i` is the base position of
/// the plugin at position `i`, None for a plugin the base lacks. Plugins are matched by name
/// (a snapshot holds each name once, sorted).
pub struct Pairing(Vec<Option<usize>>);

impl Pairing {
    pub fn by_name(base: &Snapshot, new: &Snapshot) -> Pairing {
        Pairing(new.plugins.iter().map(|p| base.plugin(&p.name).map(|(i, _)| i)).collect())
    }

    /// Whether the two snapshots hold the same plugins (then in the same positions, as both
    /// are sorted by name).
    pub fn same_plugins(&self, base_len: usize) -> bool {
        self.0.len() == base_len && self.0.iter().enumerate().all(|(i, old)| *old == Some(i))
    }

    /// Each new position's base item, None for a plugin the base lacks.
    pub fn olds<'a, T>(&'a self, old: &'a [T]) -> impl Iterator<Item = Option<&'a T>> {
        self.0.iter().map(|i| i.and_then(|i| old.get(i)))
    }
}

/// [`diff`] of two lists of entries, each new entry against its base entry (by `pairing`),
/// which has its uptime grown by `step` first; an entry the base lacks is sent whole.
pub fn entries_diff(old: &[Fields], new: &[Fields], pairing: &Pairing, step: Option<f64>) -> Option<Value> {
    patch(
        pairing
            .olds(old)
            .zip(new)
            .map(|(o, n)| o.map_or_else(|| Some(super::to_tree(n)), |o| fields_diff(o, n, step)))
            .enumerate(),
    )
}

/// [`diff`] of one entry, field by field.
fn fields_diff(old: &Fields, new: &Fields, step: Option<f64>) -> Option<Value> {
    patch(old.iter().zip(new.iter()).map(|((key, o), (new_key, n))| {
        debug_assert_eq!(key, new_key, "both are the fields of the same struct, in its order");
        let change = match step {
            Some(step) if key == UPTIME => diff(&stepped(o, step), n),
            _ => diff(o, n),
        };
        (key, change)
    }))
}

fn round_tenth(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// The key of a plugin entry's uptime.
pub const UPTIME: &str = "uptime_seconds";

/// Every running plugin's uptime grows by about the time between two snapshots: the most
/// common step (to 0.1 s) is sent once instead of one `uptime_seconds` per plugin, which would
/// be most of a steady-state delta. A plugin whose uptime did not grow by exactly that step
/// still gets its own value, so the result is exact.
pub fn uptime_step(old: &[Fields], new: &[Fields], pairing: &Pairing) -> Option<f64> {
    let uptime = |p: &Fields| p.get(UPTIME).and_then(Value::as_f64).unwrap_or(0.0);
    let mut counts: HashMap<u64, usize> = HashMap::new();
    let kept = pairing.olds(old).zip(new).filter_map(|(o, n)| o.map(|o| (o, n)));
    for (o, n) in kept.filter(|(o, n)| uptime(o) > 0.0 && uptime(n) > 0.0) {
        *counts.entry(round_tenth(uptime(n) - uptime(o)).to_bits()).or_default() += 1;
    }
    counts.into_iter().max_by_key(|&(_, n)| n).map(|(bits, _)| f64::from_bits(bits))
}

/// A base entry's uptime with the step applied, as the client applies it.
pub fn stepped(uptime: &Value, step: f64) -> Value {
    match uptime.as_f64() {
        Some(up) if up > 0.0 => Value::from(round_tenth(up + step)),
        _ => uptime.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde::Serialize;
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

    #[derive(Serialize)]
    struct Entry {
        uptime_seconds: f64,
    }

    fn entries<const N: usize>(uptimes: [f64; N]) -> [Fields; N] {
        uptimes.map(|uptime_seconds| Fields::of(&Entry { uptime_seconds }))
    }

    #[test]
    fn the_common_uptime_step_is_sent_once_and_the_others_stay_explicit() {
        let (old, new) = (entries([10.0, 20.3, 7.0]), entries([15.0, 25.3, 0.4]));
        let same = Pairing(vec![Some(0), Some(1), Some(2)]);
        assert!(same.same_plugins(3));
        let step = uptime_step(&old, &new, &same).expect("two plugins ran on");
        assert_eq!(step, 5.0);
        let patch = entries_diff(&old, &new, &same, Some(step));
        assert_eq!(patch, Some(json!({"2": {"uptime_seconds": 0.4}})), "only the restarted plugin is named");
    }

    #[test]
    fn a_plugin_the_base_lacks_is_sent_whole_and_the_others_against_their_own_base_entry() {
        // The base's first plugin was removed, a new one came second.
        let (old, new) = (entries([3.0, 10.0, 20.0]), entries([15.0, 1.5, 25.0]));
        let moved = Pairing(vec![Some(1), None, Some(2)]);
        assert!(!moved.same_plugins(3));
        let step = uptime_step(&old, &new, &moved).expect("two plugins ran on");
        assert_eq!(step, 5.0, "the new plugin's uptime is not a step");
        let patch = entries_diff(&old, &new, &moved, Some(step));
        assert_eq!(patch, Some(json!({"1": {"uptime_seconds": 1.5}})), "the kept ones took the step");
    }
}
