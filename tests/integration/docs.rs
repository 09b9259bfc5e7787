//! The reference documentation matches what the bot serves: every field of the JSON API is
//! described in docs/api.md and every metric family of `/metrics` in docs/metrics.md. A field
//! or metric added without its description fails here, not in an operator's hands.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use crate::common::{RoseyBuilder, sigkill};

fn doc(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every object key in `value`, at any depth (array elements included).
fn keys(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                out.insert(key.clone());
                keys(inner, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| keys(item, out)),
        _ => {}
    }
}

/// A field counts as described when the doc names it in code style, alone (`` `state` ``) or
/// as the last part of a path (`` `plugins[].state` ``).
fn describes_field(doc: &str, key: &str) -> bool {
    doc.contains(&format!("`{key}`")) || doc.contains(&format!(".{key}`"))
}

#[test]
fn every_api_field_is_described_in_docs_api_md() {
    let rosey = RoseyBuilder::new().start();
    rosey.wait_until_running();
    // A crash, so that the crash log has an entry whose fields are checked too.
    sigkill(rosey.pid_of("dice-roller"));
    let plugin = rosey.wait_for_plugin("a crash log entry", "dice-roller", |p| {
        p["crash_log"].as_array().is_some_and(|log| !log.is_empty()) && p["aggregates_1h"].is_object()
    });
    let mut served = BTreeSet::new();
    keys(&plugin, &mut served);
    keys(&rosey.get_json("/api/metrics"), &mut served);

    let api = doc("api.md");
    let missing: Vec<&String> = served.iter().filter(|key| !describes_field(&api, key)).collect();
    assert!(missing.is_empty(), "served but not described in docs/api.md: {missing:?}");
}

#[test]
fn every_metric_family_is_described_in_docs_metrics_md() {
    let rosey = RoseyBuilder::new().start();
    rosey.wait_until_running();
    let text = rosey.get("/metrics").body;
    let families: BTreeSet<&str> =
        text.lines().filter_map(|line| line.strip_prefix("# TYPE ")?.split_whitespace().next()).collect();
    assert!(families.len() > 10, "the exposition lists its families: {text}");

    let metrics = doc("metrics.md");
    let missing: Vec<&&str> = families
        .iter()
        .filter(|name| !metrics.contains(&format!("`{name}`")) && !metrics.contains(&format!("`{name}{{")))
        .collect();
    assert!(missing.is_empty(), "exported but not described in docs/metrics.md: {missing:?}");
}
