//! Prometheus for real: promtool lints the live `/metrics` output, and a real Prometheus server
//! on loopback scrapes the running bot every second and answers queries about it (with the
//! alert rules from `deploy/` loaded and evaluating cleanly against the live series).

use crate::e2e_support as e2e;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::{DEADLINE, RoseyBuilder, free_port, request};

/// Prometheus needs a few scrapes and rule evaluations after it starts.
const PROMETHEUS_DEADLINE: Duration = Duration::from_secs(30);

#[test]
fn promtool_finds_nothing_in_live_metrics_but_the_memory_mb_notice() {
    let Some(tools) =
        e2e::tools("prometheus_e2e::promtool_finds_nothing_in_live_metrics_but_the_memory_mb_notice", &["promtool"])
    else {
        return;
    };
    let rosey = RoseyBuilder::new().start();
    rosey.wait_until_running();
    let body = e2e::poll_until("/metrics with CPU figures for every plugin", DEADLINE, || {
        let reply = rosey.get("/metrics");
        let sampled = ["dice-roller", "8ball", "hostile"]
            .iter()
            .all(|p| reply.body.contains(&format!("rosey_plugin_cpu_percent{{plugin=\"{p}\"")));
        if reply.status == 200 && sampled { Ok(reply.body) } else { Err(reply.body) }
    });

    let run = e2e::run_tool(&tools[0], &["check", "metrics"], Path::new("."), body.as_bytes(), DEADLINE);
    // 0: clean; 3: lint notices only; anything else (1: unparsable input) is a failure.
    assert!(
        matches!(run.status.code(), Some(0 | 3)),
        "promtool check metrics failed:\n{}\n--- input:\n{body}",
        run.output()
    );
    let complaints: Vec<String> = run.lines().into_iter().filter(|l| !l.contains("rosey_plugin_memory_mb")).collect();
    assert!(complaints.is_empty(), "promtool check metrics complains:\n{}\n--- input:\n{body}", complaints.join("\n"));
}

/// A Prometheus server on a free loopback port with its own storage, killed on drop.
struct Prometheus {
    port: u16,
    daemon: e2e::Daemon,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Scrape `target` (host:port) every second as job "rosey", with the kit's alert rules.
    fn start(binary: &Path, target: &str) -> Prometheus {
        Prometheus::start_with(binary, target, "")
    }

    /// As [`Prometheus::start`], with `job` (YAML lines, indented for the job) added to the job.
    fn start_with(binary: &Path, target: &str, job: &str) -> Prometheus {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/rosey-alerts.rules.yml");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {rules:?}\n\
             scrape_configs:\n  - job_name: rosey\n{job}    static_configs:\n      - targets: [{target:?}]\n"
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("prometheus.yml written");
        let port = free_port();
        let mut command = Command::new(binary);
        command
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .current_dir(dir.path());
        let mut daemon = e2e::Daemon::spawn("prometheus", command, &dir.path().join("prometheus.log"));
        e2e::poll_until("Prometheus to be ready", PROMETHEUS_DEADLINE, || {
            daemon.assert_alive();
            let reply = request("GET", &format!("http://127.0.0.1:{port}/-/ready"), &[]).map_err(|e| e.to_string())?;
            if reply.status == 200 { Ok(()) } else { Err(format!("{}: {}", reply.status, reply.body)) }
        });
        Prometheus { port, daemon, _dir: dir }
    }

    /// `/api/v1/{path}`'s `data`, or what went wrong.
    fn api(&self, path: &str) -> Result<Value, String> {
        let reply =
            request("GET", &format!("http://127.0.0.1:{}/api/v1/{path}", self.port), &[]).map_err(|e| e.to_string())?;
        let body: Value = serde_json::from_str(&reply.body).map_err(|e| format!("{e}: {}", reply.body))?;
        if reply.status != 200 || body["status"] != "success" {
            return Err(reply.body);
        }
        Ok(body["data"].clone())
    }

    /// The instant vector for `query`.
    fn query(&self, query: &str) -> Result<Vec<Value>, String> {
        let data = self.api(&format!("query?query={}", e2e::query_escape(query)))?;
        data["result"].as_array().cloned().ok_or_else(|| data.to_string())
    }
}

#[test]
fn a_real_prometheus_scrapes_the_bot_every_second() {
    let Some(tools) = e2e::tools("prometheus_e2e::a_real_prometheus_scrapes_the_bot_every_second", &["prometheus"])
    else {
        return;
    };
    let rosey = RoseyBuilder::new().start();
    rosey.wait_until_running();
    let target = format!("127.0.0.1:{}", rosey.port());
    let mut prometheus = Prometheus::start(&tools[0], &target);

    let up = e2e::poll_until("up{job=\"rosey\"} == 1", PROMETHEUS_DEADLINE, || {
        prometheus.daemon.assert_alive();
        let result = prometheus.query("up{job=\"rosey\"}")?;
        match result.as_slice() {
            [series] if series["value"][1] == "1" => Ok(series.clone()),
            _ => Err(format!("{result:?}; targets: {:?}", prometheus.api("targets"))),
        }
    });
    assert_eq!(up["metric"]["instance"], target.as_str(), "the scraped target is the bot: {up}");

    let plugins = e2e::poll_until("rosey_plugin_cpu_percent for dice-roller and 8ball", PROMETHEUS_DEADLINE, || {
        let result = prometheus.query("rosey_plugin_cpu_percent{job=\"rosey\"}")?;
        let plugins: BTreeSet<String> =
            result.iter().filter_map(|s| s["metric"]["plugin"].as_str().map(str::to_owned)).collect();
        if plugins.contains("dice-roller") && plugins.contains("8ball") {
            Ok(plugins)
        } else {
            Err(format!("{result:?}"))
        }
    });
    assert!(plugins.contains("hostile"), "every configured plugin has a CPU series: {plugins:?}");

    // The kit's alert rules load into the real server and evaluate against the live series
    // without errors (a rule that fails at run time would never alert).
    let groups = e2e::poll_until("every alert rule evaluated", PROMETHEUS_DEADLINE, || {
        let groups = prometheus.api("rules")?["groups"].as_array().cloned().unwrap_or_default();
        let rules: Vec<&Value> = groups.iter().flat_map(|g| g["rules"].as_array().into_iter().flatten()).collect();
        let evaluated = !rules.is_empty() && rules.iter().all(|r| r["health"] != "unknown");
        if evaluated { Ok(rules.into_iter().cloned().collect::<Vec<_>>()) } else { Err(format!("{groups:?}")) }
    });
    let broken: Vec<String> = groups
        .iter()
        .filter(|r| r["health"] != "ok")
        .map(|r| format!("{}: {} {}", r["name"], r["health"], r["lastError"]))
        .collect();
    assert!(broken.is_empty(), "alert rules fail on live data:\n{}", broken.join("\n"));
    // Nothing is wrong with the bot, so nothing fires.
    let firing = prometheus.query("ALERTS{alertstate=\"firing\"}").expect("ALERTS query");
    assert!(firing.is_empty(), "alerts firing for a healthy bot: {firing:?}");
}

#[test]
fn a_real_prometheus_scrapes_the_bot_over_tls_with_the_test_ca() {
    let Some(tools) =
        e2e::tools("prometheus_e2e::a_real_prometheus_scrapes_the_bot_over_tls_with_the_test_ca", &["prometheus"])
    else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (ca, cert, key) = crate::auth_tls::issue(dir.path(), "scrape");
    let rosey = crate::auth_tls::spawn_with_tls(dir.path(), &cert, &key);
    let target = format!("127.0.0.1:{}", rosey.port());
    let job = format!("    scheme: https\n    tls_config:\n      ca_file: {:?}\n", ca.display().to_string());
    let mut prometheus = Prometheus::start_with(&tools[0], &target, &job);
    e2e::poll_until("up{job=\"rosey\"} == 1 over https", PROMETHEUS_DEADLINE, || {
        prometheus.daemon.assert_alive();
        let result = prometheus.query("up{job=\"rosey\"}")?;
        match result.as_slice() {
            [series] if series["value"][1] == "1" => Ok(()),
            _ => Err(format!("{result:?}; targets: {:?}", prometheus.api("targets"))),
        }
    });
    let sse = prometheus.query("rosey_sse_clients").unwrap();
    assert_eq!(sse.len(), 1, "the bot's own series arrive over https: {sse:?}");
}
