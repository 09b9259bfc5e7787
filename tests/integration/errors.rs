//! Errors and odd input: unknown plugins and paths, other methods, hostile paths; a disabled
//! dashboard and a port that is taken.

use std::net::TcpStream;

use serde_json::json;

use crate::common::raw::{find, raw_exchange};
use crate::common::*;

#[test]
fn unknown_plugin_is_a_json_404() {
    let rosey = RoseyBuilder::new().start();
    let resp = rosey.get("/api/plugin/nope");
    assert_eq!(resp.status, 404);
    assert_eq!(resp.content_type, "application/json");
    assert_eq!(resp.json(), json!({ "error": "Plugin nope not found" }));
}

#[test]
fn unknown_paths_are_404_and_other_methods_405() {
    let rosey = RoseyBuilder::new().start();
    for path in ["/nope", "/api", "/api/metrics/", "/api/plugin/", "/static/nope.js", "/plugin/", "/metrics/x"] {
        assert_eq!(rosey.get(path).status, 404, "GET {path}");
    }
    for path in ["/", "/api/metrics", "/api/plugin/dice-roller", "/metrics", "/health", "/events", "/plugin/8ball"] {
        for method in ["POST", "PUT", "DELETE", "PATCH"] {
            let resp = request(method, &rosey.url(path), &[]).expect("an answer");
            assert_eq!(resp.status, 405, "{method} {path}");
            let allow = resp.header("allow").unwrap_or_default();
            assert!(allow.contains("GET"), "{method} {path}: Allow says {allow:?}");
        }
    }
    // HEAD: the GET's status and headers, no body.
    for path in ["/", "/api/metrics", "/metrics", "/health"] {
        let answer = raw_exchange(
            rosey.port(),
            &format!("HEAD {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
        );
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 200"), "HEAD {path}: {text}");
        let head_end = find(&answer, b"\r\n\r\n").expect("a complete head") + 4;
        assert_eq!(answer.len(), head_end, "HEAD {path} sent a body: {text}");
    }
    let head = request("HEAD", &rosey.url("/"), &[]).expect("HEAD answered");
    assert_eq!(head.status, 200);
    assert!(head.content_type.starts_with("text/html"), "{}", head.content_type);
}

#[test]
fn hostile_paths_never_fail_and_are_never_reflected_as_markup() {
    let rosey = RoseyBuilder::new().start();
    let long = "a".repeat(5000);
    let paths = [
        "/api/plugin/%3Cscript%3Ealert(1)%3C%2Fscript%3E".to_owned(),
        "/plugin/%3Cscript%3Ealert(1)%3C%2Fscript%3E".to_owned(),
        "/plugin/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E".to_owned(),
        "/plugin/..%2f..".to_owned(),
        "/plugin/..%2F..%2Fetc%2Fpasswd".to_owned(),
        "/api/plugin/..%2f..".to_owned(),
        "/api/plugin/%FF%FE".to_owned(),
        "/plugin/%00".to_owned(),
        "/api/plugin/%22%27%3E".to_owned(),
        format!("/api/plugin/{long}"),
        format!("/plugin/{long}"),
        format!("/{long}"),
        "/events?plugin=%3Cscript%3E".to_owned(),
        "/events?plugin=%FF".to_owned(),
        "/events?plugin=a&plugin=b".to_owned(),
        "/static/..%2f..%2fCargo.toml".to_owned(),
        "/?%3Cscript%3E=1".to_owned(),
    ];
    for path in &paths {
        let resp = request("GET", &rosey.url(path), &[]).unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let shown: String = path.chars().take(80).collect();
        assert!(resp.status < 500, "GET {shown}: {} {}", resp.status, resp.body);
        if !path.starts_with("/?") {
            assert!((400..500).contains(&resp.status), "GET {shown}: {}", resp.status);
        }
        assert_eq!(resp.header("x-content-type-options"), Some("nosniff"), "GET {shown}");
        if resp.content_type.starts_with("text/html") {
            for raw in ["<script>alert", "<img src", "\"'>"] {
                assert!(!resp.body.contains(raw), "GET {shown} reflects {raw:?} unescaped:\n{}", resp.body);
            }
        }
    }
    let resp = rosey.get("/api/plugin/%3Cscript%3E");
    assert_eq!(resp.json(), json!({ "error": "Plugin <script> not found" }), "JSON holds the name literally");
    let resp = rosey.get("/plugin/%3Cscript%3E");
    assert_eq!(resp.status, 404);
    assert!(resp.content_type.starts_with("text/html"), "{}", resp.content_type);
    assert!(resp.body.contains("&lt;script&gt;"), "the name is shown, escaped:\n{}", resp.body);
    // The bot is still fine.
    assert_eq!(rosey.get_json("/health"), json!({ "status": "ok" }));
}

/// Socket inodes of the TCP sockets in LISTEN state (from /proc/net/tcp and tcp6).
fn listening_inodes() -> Vec<String> {
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() > 9 && cols[3] == "0A" {
                out.push(cols[9].to_owned());
            }
        }
    }
    out
}

fn socket_inodes_of(pid: u32) -> Vec<String> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return Vec::new() };
    fds.flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|target| {
            let t = target.to_string_lossy().into_owned();
            t.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']')).map(str::to_owned)
        })
        .collect()
}

#[test]
fn disabled_dashboard_listens_nowhere_but_plugins_run() {
    let rosey = RoseyBuilder::new().env("ROSEY_DASHBOARD__ENABLED", "false").spawn();
    wait_for("the plugins to start", DEADLINE, || {
        rosey.assert_alive();
        let log = rosey.stderr_text();
        (log.contains(r#"hello plugin="dice-roller""#) && log.contains(r#"hello plugin="8ball""#)).then_some(())
    });
    let log = rosey.stderr_text();
    assert!(log.contains("dashboard disabled"), "the log says so:\n{log}");
    assert!(!log.contains("dashboard: http://"), "no URL announced:\n{log}");
    rosey.assert_alive();

    let err = TcpStream::connect(("127.0.0.1", rosey.port())).expect_err("nothing listens on the dashboard port");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    let listening = listening_inodes();
    let own = socket_inodes_of(rosey.child.id());
    assert!(own.iter().all(|inode| !listening.contains(inode)), "rosey holds a listening socket");
}

#[test]
fn bind_failure_exits_1_naming_the_address_and_the_reason() {
    let (mut rosey, occupied) = spawn_on_a_taken_port();
    let port = rosey.port();
    let status = rosey.wait_exit(DEADLINE);
    assert_eq!(status.code(), Some(1), "{status:?}");
    let log = wait_for("the error message", DEADLINE, || {
        let log = rosey.stderr_text();
        log.contains("error:").then_some(log)
    });
    let message = log.lines().find(|l| l.contains("error:")).unwrap();
    assert!(message.contains(&format!("127.0.0.1:{port}")), "names the address: {message}");
    assert!(message.to_lowercase().contains("address already in use"), "names the reason: {message}");

    // The plugins that had started are stopped, not orphaned.
    let pids: Vec<u32> = log
        .lines()
        .filter(|l| l.contains("INFO started plugin="))
        .filter_map(|l| l.split("pid=").nth(1).and_then(|p| p.trim().parse().ok()))
        .collect();
    for pid in pids {
        wait_for("the plugin to be gone", DEADLINE, || (!process_exists(pid)).then_some(()));
    }
    drop(occupied);
}
