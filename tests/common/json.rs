//! Checking JSON: the shape of the API's objects (field names and kinds), RFC 3339 timestamps,
//! a plugin in a list, a series in the Prometheus text.

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Seconds since the Unix epoch of an RFC 3339 timestamp (`2026-11-29T05:01:02.5Z`,
/// `...+02:00`); None if it is not one.
pub fn parse_rfc3339(text: &str) -> Option<f64> {
    let at = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    Some(at.unix_timestamp_nanos() as f64 / 1e9)
}

/// Seconds since the Unix epoch of a JSON string holding an RFC 3339 timestamp; panics if it is
/// not one.
pub fn rfc3339_seconds(v: &Value) -> f64 {
    let text = v.as_str().unwrap_or_else(|| panic!("not a string: {v}"));
    parse_rfc3339(text).unwrap_or_else(|| panic!("not RFC 3339: {text:?}"))
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs_f64()
}

/// A count (a non-negative integer) in the API's JSON; panics if it is not one.
pub fn count(value: &Value) -> u64 {
    value.as_u64().unwrap_or_else(|| panic!("{value} is not a count"))
}

/// The value of one series (`name` or `name{labels}`) in a Prometheus exposition.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The entry named `name` in a list of plugins (or cards).
pub fn plugin_in<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("no plugin {name} in {list}"))
}

/// What a JSON value must be.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Str,
    Num,
    UInt,
    Bool,
    Obj,
    Arr,
    StrOrNull,
    NumOrNull,
    UIntOrNull,
}

fn is_kind(v: &Value, kind: Kind) -> bool {
    match kind {
        Kind::Str => v.is_string(),
        Kind::Num => v.is_number(),
        Kind::UInt => v.is_u64(),
        Kind::Bool => v.is_boolean(),
        Kind::Obj => v.is_object(),
        Kind::Arr => v.is_array(),
        Kind::StrOrNull => v.is_string() || v.is_null(),
        Kind::NumOrNull => v.is_number() || v.is_null(),
        Kind::UIntOrNull => v.is_u64() || v.is_null(),
    }
}

pub fn assert_shape(what: &str, value: &Value, fields: &[(&str, Kind)]) {
    assert!(value.is_object(), "{what} is not an object: {value}");
    for (key, kind) in fields {
        let v = value.get(*key).unwrap_or_else(|| panic!("{what} lacks \"{key}\": {value}"));
        assert!(is_kind(v, *kind), "{what}.{key} should be {kind:?}, is {v}");
    }
}

pub const SUMMARY: &[(&str, Kind)] = &[
    ("name", Kind::Str),
    ("version", Kind::Str),
    ("pid", Kind::UIntOrNull),
    ("state", Kind::Str),
    ("uptime_seconds", Kind::Num),
    ("cpu_percent", Kind::Num),
    ("memory_mb", Kind::Num),
    ("event_count", Kind::UInt),
    ("crash_count", Kind::UInt),
];

pub const SYSTEM: &[(&str, Kind)] = &[
    ("bot_uptime_seconds", Kind::Num),
    ("bot_uptime_human", Kind::Str),
    ("total_plugins", Kind::UInt),
    ("plugins_running", Kind::UInt),
    ("plugins_crashed", Kind::UInt),
    ("total_events", Kind::UInt),
    ("total_memory_mb", Kind::Num),
];

pub const STATS: &[(&str, Kind)] = &[("avg", Kind::Num), ("min", Kind::Num), ("max", Kind::Num), ("p95", Kind::Num)];

pub const STATES: [&str; 5] = ["STARTING", "RUNNING", "CRASHED", "FAILED", "STOPPED"];

pub fn assert_rfc3339(what: &str, v: &Value) {
    let text = v.as_str().unwrap_or_else(|| panic!("{what} is not a string: {v}"));
    assert!(parse_rfc3339(text).is_some(), "{what} is not RFC 3339: {text:?}");
}

pub fn assert_api_metrics_shape(data: &Value) {
    assert_shape("/api/metrics", data, &[("timestamp", Kind::Str), ("plugins", Kind::Arr), ("system", Kind::Obj)]);
    assert_rfc3339("/api/metrics timestamp", &data["timestamp"]);
    let plugins = data["plugins"].as_array().expect("plugins is a list");
    for p in plugins {
        assert_shape("a plugin summary", p, SUMMARY);
        assert!(STATES.contains(&p["state"].as_str().unwrap_or_default()), "unknown state in {p}");
    }
    assert_shape("system", &data["system"], SYSTEM);
    let system = &data["system"];
    assert_eq!(system["total_plugins"].as_u64(), Some(plugins.len() as u64), "{system}");
    let running = plugins.iter().filter(|p| p["state"] == "RUNNING").count() as u64;
    assert_eq!(system["plugins_running"].as_u64(), Some(running), "{data}");
    let events: u64 = plugins.iter().filter_map(|p| p["event_count"].as_u64()).sum();
    assert_eq!(system["total_events"].as_u64(), Some(events), "{data}");
}
