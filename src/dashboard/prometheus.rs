//! `/metrics`: the Prometheus text format 0.0.4. Every metric name is written here; the seed's
//! names and HELP texts are kept exactly, the rest are documented in `docs/metrics.md`.

use std::fmt::Write;

use crate::chat::irc::connection::LinkState;
use crate::display::unix_seconds;
use crate::metrics::{ChatSnapshot, PluginSnapshot, Snapshot};
use crate::plugins::PluginState;
use crate::plugins::timing::Buckets;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Escape a label value as the format requires: backslash, double quote, newline.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

struct Writer {
    out: String,
}

impl Writer {
    fn header(&mut self, name: &str, help: &str, kind: &str) {
        if !self.out.is_empty() {
            self.out.push('\n');
        }
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn value(&mut self, name: &str, labels: &str, value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            self.out.push_str(labels);
            self.out.push('}');
        }
        self.out.push(' ');
        push_value(&mut self.out, value);
        self.out.push('\n');
    }

    /// One histogram family with a `plugin` label per plugin.
    fn histogram(
        &mut self,
        snapshot: &Snapshot,
        name: &str,
        help: &str,
        buckets: impl Fn(&PluginSnapshot) -> &Buckets,
    ) {
        self.header(name, help, "histogram");
        for p in &snapshot.plugins {
            let b = buckets(p);
            let plugin = format!("plugin=\"{}\"", p.name);
            for (bound, count) in b.cumulative() {
                let le = bound.map_or_else(|| "+Inf".to_owned(), |b| b.to_string());
                self.value(&format!("{name}_bucket"), &format!("{plugin},le=\"{le}\""), count as f64);
            }
            self.value(&format!("{name}_sum"), &plugin, b.sum_seconds());
            self.value(&format!("{name}_count"), &plugin, b.count() as f64);
        }
    }

    /// One metric family with a `plugin` label per plugin.
    fn per_plugin(
        &mut self,
        snapshot: &Snapshot,
        name: &str,
        help: &str,
        kind: &str,
        value: impl Fn(&PluginSnapshot) -> f64,
    ) {
        self.header(name, help, kind);
        for p in &snapshot.plugins {
            // Plugin names are restricted to [A-Za-z0-9._-] by config validation: no escaping needed.
            self.value(name, &format!("plugin=\"{}\"", p.name), value(p));
        }
    }

    fn single(&mut self, name: &str, help: &str, kind: &str, value: f64) {
        self.header(name, help, kind);
        self.value(name, "", value);
    }
}

/// A sample value as the format spells it: Rust writes `inf` and `-inf`, the format wants
/// `+Inf` and `-Inf` (a scraper rejects the whole exposition otherwise).
fn push_value(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(out, "{value}");
    }
}

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// Render the whole exposition for one snapshot. `sse_clients` and `auth_failures` are read
/// when the snapshot is first rendered, so they may lag by up to one poll interval.
pub fn render(snapshot: &Snapshot, sse_clients: usize, auth_failures: u64) -> String {
    let mut w = Writer { out: String::with_capacity(256 + snapshot.plugins.len() * 1600) };
    let s = &snapshot.system;

    // The seed's metrics, names and HELP texts exactly.
    w.per_plugin(snapshot, "rosey_plugin_cpu_percent", "Plugin CPU usage percent", "gauge", |p| p.cpu_percent);
    w.per_plugin(snapshot, "rosey_plugin_memory_mb", "Plugin memory usage MB", "gauge", PluginSnapshot::memory_mb);
    w.per_plugin(snapshot, "rosey_plugin_uptime_seconds", "Plugin uptime seconds", "gauge", |p| p.uptime.as_secs_f64());
    w.per_plugin(snapshot, "rosey_plugin_events_total", "Plugin events processed", "counter", |p| p.events as f64);
    w.per_plugin(snapshot, "rosey_plugin_crashes_total", "Plugin crash count", "counter", |p| p.crashes as f64);
    w.single("rosey_bot_uptime_seconds", "Bot uptime seconds", "gauge", s.bot_uptime.as_secs_f64());
    w.single("rosey_total_plugins", "Total plugins loaded", "gauge", s.total_plugins as f64);
    w.single("rosey_plugins_running", "Plugins currently running", "gauge", s.plugins_running as f64);

    // Additions.
    w.single("rosey_plugins_crashed", "Plugins currently CRASHED or FAILED", "gauge", s.plugins_crashed as f64);
    w.per_plugin(
        snapshot,
        "rosey_plugin_memory_bytes",
        "Resident memory of the plugin's process tree in bytes",
        "gauge",
        |p| p.memory_bytes as f64,
    );
    w.per_plugin(snapshot, "rosey_plugin_up", "1 when the plugin is RUNNING, else 0", "gauge", |p| {
        flag(p.is_running())
    });
    w.header("rosey_plugin_info", "Plugin version, as a label; always 1", "gauge");
    for p in &snapshot.plugins {
        let labels = format!("plugin=\"{}\",version=\"{}\"", p.name, escape_label(&p.version));
        w.value("rosey_plugin_info", &labels, 1.0);
    }
    w.header("rosey_plugin_state", "1 for the plugin's current state, 0 for the others", "gauge");
    for p in &snapshot.plugins {
        for state in PluginState::ALL {
            let labels = format!("plugin=\"{}\",state=\"{}\"", p.name, state.as_str());
            w.value("rosey_plugin_state", &labels, flag(p.state == state));
        }
    }
    w.per_plugin(
        snapshot,
        "rosey_plugin_cpu_seconds_total",
        "CPU time of the plugin's current process tree in seconds",
        "counter",
        |p| p.cpu_seconds,
    );
    w.per_plugin(
        snapshot,
        "rosey_plugin_start_time_seconds",
        "Start time of the plugin's current process since the Unix epoch in seconds",
        "gauge",
        |p| p.started_at().map_or(0.0, unix_seconds),
    );
    w.per_plugin(snapshot, "rosey_plugin_restarts_total", "Plugin restarts after crashes", "counter", |p| {
        p.restarts as f64
    });
    w.per_plugin(snapshot, "rosey_plugin_processes", "Processes in the plugin's process tree", "gauge", |p| {
        f64::from(p.processes)
    });
    w.per_plugin(
        snapshot,
        "rosey_plugin_protocol_errors_total",
        "Invalid, unknown or oversized lines received from the plugin",
        "counter",
        |p| p.protocol_errors as f64,
    );
    w.per_plugin(
        snapshot,
        "rosey_plugin_dropped_commands_total",
        "Commands refused because the plugin was busy (every slot taken) or not running",
        "counter",
        |p| p.dropped_commands as f64,
    );
    w.per_plugin(
        snapshot,
        "rosey_plugin_command_timeouts_total",
        "Commands the host answered because the plugin did not within command_timeout",
        "counter",
        |p| p.command_timeouts as f64,
    );
    w.per_plugin(
        snapshot,
        "rosey_plugin_log_lines_dropped_total",
        "Lines the plugin wrote (stderr, or stdout that is not protocol) over logs.lines_per_second, not kept",
        "counter",
        |p| p.log_lines_dropped as f64,
    );
    w.per_plugin(
        snapshot,
        "rosey_plugin_log_file_errors_total",
        "Lines of the plugin's log that could not be written to its file in logs.dir",
        "counter",
        |p| p.log_file_errors as f64,
    );
    w.histogram(
        snapshot,
        "rosey_plugin_response_time_seconds",
        "Seconds from writing a command to the plugin to reading its reply",
        |p| &p.response.total,
    );
    // `status`, the PRD's label name (Appendix B), with the outcome as its value.
    w.header("rosey_plugin_reloads_total", "Finished reloads of the plugin, by status", "counter");
    for p in &snapshot.plugins {
        for (outcome, count) in p.operations.reloads.by_outcome() {
            let labels = format!("plugin=\"{}\",status=\"{}\"", p.name, outcome.as_str());
            w.value("rosey_plugin_reloads_total", &labels, count as f64);
        }
    }
    w.histogram(
        snapshot,
        "rosey_reload_duration_seconds",
        "Seconds from a reload's start to its end (switched, rolled back or failed)",
        |p| &p.operations.reloads.durations,
    );

    w.single("rosey_sse_clients", "Connected dashboard live-update clients", "gauge", sse_clients as f64);
    chat_series(&mut w, &snapshot.chat);
    w.single(
        "rosey_auth_failures_total",
        "Dashboard requests refused for wrong credentials",
        "counter",
        auth_failures as f64,
    );

    // The host process itself, as every Prometheus client library exports it.
    let h = &snapshot.host;
    w.single("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", "counter", h.cpu_seconds);
    w.single("process_resident_memory_bytes", "Resident memory size in bytes.", "gauge", h.resident_bytes as f64);
    w.single("process_virtual_memory_bytes", "Virtual memory size in bytes.", "gauge", h.virtual_bytes as f64);
    w.single(
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        "gauge",
        h.start_time_seconds as f64,
    );
    w.single("process_open_fds", "Number of open file descriptors.", "gauge", h.open_fds as f64);
    w.single("process_max_fds", "Maximum number of open file descriptors.", "gauge", h.max_fds as f64);
    w.out
}

/// The chat connections' families and the admin commands. The families are always declared
/// (alert rules and dashboards can rely on the names); their series appear per configured
/// connection and per (command, user) counted. Connection names are restricted by the config,
/// admin names are not: every label value is escaped.
fn chat_series(w: &mut Writer, chat: &ChatSnapshot) {
    let connections = &chat.connections;
    let label = |name: &str| format!("connection=\"{}\"", escape_label(name));
    w.header("rosey_chat_connected", "1 when the chat connection is registered with its server, else 0", "gauge");
    for c in connections {
        w.value("rosey_chat_connected", &label(&c.name), flag(c.state == LinkState::Registered));
    }
    w.header("rosey_chat_messages_total", "Lines read from (in) and sent to (out) the chat server", "counter");
    for c in connections {
        for (direction, count) in [("in", c.messages_in), ("out", c.messages_out)] {
            let labels = format!("{},direction=\"{direction}\"", label(&c.name));
            w.value("rosey_chat_messages_total", &labels, count as f64);
        }
    }
    w.header("rosey_chat_replies_dropped_total", "Replies that could not be queued for the chat server", "counter");
    for c in connections {
        w.value("rosey_chat_replies_dropped_total", &label(&c.name), c.replies_dropped as f64);
    }
    w.header("rosey_chat_reconnects_total", "Times the chat connection was lost or failed and retried", "counter");
    for c in connections {
        w.value("rosey_chat_reconnects_total", &label(&c.name), c.reconnects as f64);
    }
    w.header(
        "rosey_admin_commands_total",
        "!admin commands by command and admin (user=\"refused\" for every refused one)",
        "counter",
    );
    for ((command, user), count) in &chat.admin_commands {
        let labels = format!("command=\"{}\",user=\"{}\"", escape_label(command), escape_label(user));
        w.value("rosey_admin_commands_total", &labels, *count as f64);
    }
}

/// `rosey_notifications_total{sink,outcome}`: webhook messages by how they ended (the sink is
/// `N:host`, never the URL's path or credentials). Nothing without webhooks.
pub fn notifications(out: &mut String, counts: &[crate::notify::SinkCounts]) {
    use std::fmt::Write;
    if counts.is_empty() {
        return;
    }
    out.push_str("# HELP rosey_notifications_total Webhook notifications by outcome (sent, retried, failed, dropped, coalesced)\n");
    out.push_str("# TYPE rosey_notifications_total counter\n");
    for sink in counts {
        for outcome in crate::notify::Outcome::ALL {
            let label = escape_label(&sink.sink);
            let _ = writeln!(
                out,
                "rosey_notifications_total{{sink=\"{label}\",outcome=\"{}\"}} {}",
                outcome.as_str(),
                sink.get(outcome)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::irc::connection::ConnectionStatus;

    #[test]
    fn chat_and_admin_label_values_are_escaped() {
        let status = ConnectionStatus {
            name: "lab".to_owned(),
            server: "127.0.0.1:6667".to_owned(),
            tls: false,
            state: LinkState::Registered,
            nick: None,
            channels: Vec::new(),
            lag_seconds: None,
            messages_in: 7,
            messages_out: 3,
            replies_dropped: 0,
            reconnects: 1,
            last_error: None,
        };
        let chat = ChatSnapshot {
            connections: vec![status],
            admin_commands: vec![(("reload", "a\"b\\c\nd".to_owned()), 2)],
            audit: Default::default(),
        };
        let mut w = Writer { out: String::new() };
        chat_series(&mut w, &chat);
        assert!(w.out.contains("rosey_chat_connected{connection=\"lab\"} 1\n"), "{}", w.out);
        assert!(w.out.contains("rosey_chat_messages_total{connection=\"lab\",direction=\"in\"} 7\n"), "{}", w.out);
        assert!(w.out.contains(r#"rosey_admin_commands_total{command="reload",user="a\"b\\c\nd"} 2"#), "{}", w.out);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label("line\nbreak"), "line\\nbreak");
        assert_eq!(escape_label("<&>🦀"), "<&>🦀");
    }

    #[test]
    fn special_values_are_spelled_as_the_format_requires() {
        let shown = |v: f64| {
            let mut out = String::new();
            push_value(&mut out, v);
            out
        };
        assert_eq!(shown(f64::INFINITY), "+Inf");
        assert_eq!(shown(f64::NEG_INFINITY), "-Inf");
        assert_eq!(shown(f64::NAN), "NaN");
        assert_eq!(shown(1.5), "1.5");
        assert_eq!(shown(3.0), "3");
    }
}
