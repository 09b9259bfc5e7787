//! The operations kit in `deploy/`: Prometheus accepts the alert rules and the scrape config,
//! the rules' own unit tests pass, and every metric the alerts and the Grafana dashboard query
//! is one the running bot really exports (a renamed metric would leave a silent, empty panel
//! or an alert that can never fire).

use crate::e2e_support as e2e;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::common::RoseyBuilder;

const RULES: &str = "rosey-alerts.rules.yml";
const RULES_TEST: &str = "rosey-alerts.test.yml";
const SCRAPE_CONFIG: &str = "prometheus.yml";
const GRAFANA: &str = "deploy/grafana/rosey-dashboard.json";
/// The metric families the kit may query from the bot (`up` and friends come from Prometheus).
const PREFIXES: &[&str] = &["rosey_", "process_"];
const TOOL_DEADLINE: Duration = Duration::from_secs(60);

fn prometheus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn promtool(test: &str, args: &[&str]) -> Option<e2e::ToolRun> {
    let tools = e2e::tools(&format!("ops::{test}"), &["promtool"])?;
    Some(e2e::run_tool(&tools[0], args, &prometheus_dir(), b"", TOOL_DEADLINE))
}

#[test]
fn promtool_accepts_the_alert_rules() {
    let Some(run) = promtool("promtool_accepts_the_alert_rules", &["check", "rules", RULES]) else { return };
    assert!(run.status.success(), "promtool check rules {RULES}:\n{}", run.output());
}

#[test]
fn the_alert_rules_pass_their_unit_tests() {
    let Some(run) = promtool("the_alert_rules_pass_their_unit_tests", &["test", "rules", RULES_TEST]) else { return };
    assert!(run.status.success(), "promtool test rules {RULES_TEST}:\n{}", run.output());
}

#[test]
fn promtool_accepts_the_scrape_config() {
    let Some(run) = promtool("promtool_accepts_the_scrape_config", &["check", "config", SCRAPE_CONFIG]) else { return };
    assert!(run.status.success(), "promtool check config {SCRAPE_CONFIG}:\n{}", run.output());
}

/// The `expr:` values of a Prometheus rules file: plain or quoted one-liners and `|` / `>`
/// block scalars (the lines indented deeper than the key).
fn rule_exprs(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut exprs = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let Some(value) = trimmed.strip_prefix("expr:") else { continue };
        let indent = line.len() - trimmed.len();
        let value = value.trim();
        if value.starts_with('|') || value.starts_with('>') {
            let block: Vec<&str> = lines[i + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
                .map(|l| l.trim())
                .collect();
            exprs.push(block.join(" "));
        } else {
            let unquoted = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(value);
            exprs.push(unquoted.to_owned());
        }
    }
    exprs
}

/// Every PromQL query in a Grafana dashboard: targets' and annotations' `expr`, and the
/// template variables' queries (`label_values(metric, label)`).
fn grafana_queries(node: &Value, out: &mut Vec<String>) {
    match node {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr" | "definition", Value::String(s)) => out.push(s.clone()),
                    ("query", Value::String(s)) if s.contains('(') || s.contains('_') => out.push(s.clone()),
                    _ => {}
                }
                grafana_queries(value, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| grafana_queries(item, out)),
        _ => {}
    }
}

/// Names used by `queries` that the bot does not export, with the query that uses each.
fn unknown_names(queries: &[String], exported: &BTreeSet<String>) -> Vec<String> {
    let mut unknown = Vec::new();
    for query in queries {
        for name in e2e::promql_names(query, PREFIXES) {
            if !exported.contains(&name) {
                unknown.push(format!("{name}   (in: {query})"));
            }
        }
    }
    unknown.sort();
    unknown.dedup();
    unknown
}

#[test]
fn every_metric_the_alerts_and_the_grafana_dashboard_query_is_exported() {
    let rules_text = read(&prometheus_dir().join(RULES));
    let rule_count = rules_text
        .lines()
        .filter(|l| l.trim_start().starts_with("- alert:") || l.trim_start().starts_with("- record:"))
        .count();
    let alert_exprs = rule_exprs(&rules_text);
    assert!(rule_count > 0, "no rules found in {RULES}");
    assert_eq!(alert_exprs.len(), rule_count, "one expr per rule in {RULES}: {alert_exprs:#?}");

    let grafana: Value = serde_json::from_str(&read(&Path::new(env!("CARGO_MANIFEST_DIR")).join(GRAFANA)))
        .unwrap_or_else(|e| panic!("{GRAFANA} is not JSON: {e}"));
    let mut panel_queries = Vec::new();
    grafana_queries(&grafana, &mut panel_queries);
    let used_by_panels: BTreeSet<String> = panel_queries.iter().flat_map(|q| e2e::promql_names(q, PREFIXES)).collect();
    assert!(!used_by_panels.is_empty(), "no rosey_/process_ metric found in {GRAFANA}'s queries: {panel_queries:#?}");

    // The default fixture runs every kind of plugin; wait for a sample so that every per-plugin
    // family has series.
    let rosey = RoseyBuilder::new().start();
    rosey.wait_until_running();
    let exported = e2e::poll_until("a /metrics sample with CPU figures", crate::common::DEADLINE, || {
        let body = rosey.get("/metrics").body;
        let names = e2e::exported_metric_names(&body);
        if names.contains("rosey_plugin_cpu_percent") { Ok(names) } else { Err(body) }
    });

    let missing_in_rules = unknown_names(&alert_exprs, &exported);
    assert!(
        missing_in_rules.is_empty(),
        "{RULES} queries metrics the bot does not export:\n{}",
        missing_in_rules.join("\n")
    );
    let missing_in_panels = unknown_names(&panel_queries, &exported);
    assert!(
        missing_in_panels.is_empty(),
        "{GRAFANA} queries metrics the bot does not export:\n{}",
        missing_in_panels.join("\n")
    );
}

#[test]
fn metric_names_are_read_from_rules_and_queries_as_written() {
    let yaml = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: rosey_plugin_up == 0\n      - alert: B\n        expr: |\n          increase(rosey_plugin_crashes_total[10m])\n            >= 3\n        for: 1m\n      - alert: C\n        expr: 'rosey_plugin_state{state=\"FAILED\"} == 1'\n";
    assert_eq!(
        rule_exprs(yaml),
        [
            "rosey_plugin_up == 0",
            "increase(rosey_plugin_crashes_total[10m]) >= 3",
            "rosey_plugin_state{state=\"FAILED\"} == 1"
        ]
    );
    let names = e2e::promql_names(
        "rate(process_cpu_seconds_total[5m]) and on (job) rosey_up{label=\"rosey_not_a_metric\", plugin=~\"$plugin\"}",
        PREFIXES,
    );
    assert_eq!(names.into_iter().collect::<Vec<_>>(), ["process_cpu_seconds_total", "rosey_up"]);
}
