//! The answers of `!admin help`, `status`, `list` and `metrics`, read from one metrics snapshot
//! (the same figures the dashboard shows at that moment).

use crate::display::{format_duration, format_uptime};
use crate::display::{format_mb, thousands};
use crate::metrics::{PluginSnapshot, Snapshot};

pub const HELP: &str = "\
!admin commands (for the operator):
!admin status [NAME]: the bot, or one plugin in detail
!admin list: every plugin with its version and state
!admin metrics: totals, and where the dashboard is
!admin reload NAME: hot reload (the new process starts beside the old one; nothing is lost)
!admin restart NAME: stop, then start (asks for yes)
!admin stop NAME: stop, and stay stopped (asks for yes)
!admin start NAME: start a STOPPED or FAILED plugin
!admin reload-config: read the config file again and apply what changed
!admin audit: the latest admin commands and refusals";

/// `!admin status`: the totals, then one line per plugin.
pub fn overview(snapshot: &Snapshot) -> String {
    let mut lines = vec![totals(snapshot)];
    lines.extend(snapshot.plugins.iter().map(|p| {
        format!("{}: {}, CPU {:.1} %, {}", headline(p), state_and_uptime(p), p.cpu_percent, format_mb(p.memory_mb()))
    }));
    lines.join("\n")
}

/// `!admin status NAME`.
pub fn plugin(snapshot: &Snapshot, name: &str) -> String {
    let Some((_, p)) = snapshot.plugin(name) else {
        return format!("no plugin named {name:?}; !admin list shows them");
    };
    let mut facts = vec![state_and_uptime(p)];
    facts.extend(p.pid.map(|pid| format!("pid {pid}")));
    facts.push(format!("CPU {:.1} %", p.cpu_percent));
    facts.push(format_mb(p.memory_mb()));
    facts.push(format!("{} events", thousands(p.events)));
    facts.push(format!("{} crashes", thousands(p.crashes)));
    facts.push(format!("{} restarts", thousands(p.restarts)));
    if p.dropped_commands > 0 {
        facts.push(format!("{} commands dropped", thousands(p.dropped_commands)));
    }
    facts.extend(p.next_restart_in.map(|d| format!("next restart in {}", format_duration(d))));
    if !p.commands.is_empty() {
        facts.push(format!("commands: !{}", p.commands.join(", !")));
    }
    format!("{}: {}", headline(p), facts.join(", "))
}

/// `!admin list`.
pub fn list(snapshot: &Snapshot) -> String {
    if snapshot.plugins.is_empty() {
        return "no plugins are configured".to_owned();
    }
    let mut lines = vec![format!("{} plugins:", snapshot.plugins.len())];
    lines.extend(snapshot.plugins.iter().map(|p| format!("{} {}", headline(p), p.state.as_str())));
    lines.join("\n")
}

/// `!admin metrics`.
pub fn metrics(snapshot: &Snapshot, dashboard_url: Option<&str>) -> String {
    let dashboard = match dashboard_url {
        Some(url) => format!("dashboard: {url} (JSON: {url}api/metrics, Prometheus: {url}metrics)"),
        None => "the dashboard is disabled (dashboard.enabled = false)".to_owned(),
    };
    format!("{}\n{dashboard}", totals(snapshot))
}

fn totals(snapshot: &Snapshot) -> String {
    let s = &snapshot.system;
    format!(
        "up {}; {}/{} plugins running, {} down; {} events; {} in plugins",
        format_uptime(s.bot_uptime),
        s.plugins_running,
        s.total_plugins,
        s.plugins_crashed,
        thousands(s.total_events),
        format_mb(s.total_memory_mb)
    )
}

fn headline(p: &PluginSnapshot) -> String {
    format!("{} {}", p.name, p.version)
}

fn state_and_uptime(p: &PluginSnapshot) -> String {
    match p.pid {
        Some(_) => format!("{} for {}", p.state.as_str(), format_uptime(p.uptime)),
        None => p.state.as_str().to_owned(),
    }
}
