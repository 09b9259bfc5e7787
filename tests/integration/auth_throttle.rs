//! Failed logins: held off per client address with `429` and `Retry-After`, logged one line
//! each in the format docs/operations.md gives fail2ban (whose filter there is checked against
//! the real lines, the one after a flood included), counted in
//! `rosey_auth_failures_total`; `X-Forwarded-For` believed only from a trusted proxy.

use std::time::Duration;

use serde_json::json;

use crate::common::pages::basic;
use crate::common::raw::get_from;
use crate::common::*;

const PASSWORD: &str = "s3cret-Pa55word";

fn guarded(trusted_proxies: &[&str]) -> Rosey {
    let mut builder = RoseyBuilder::new();
    builder.config["dashboard"]["auth"] = json!({ "username": "ops", "password": PASSWORD });
    builder.config["dashboard"]["trusted_proxies"] = json!(trusted_proxies);
    builder.start()
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The failure lines of the log, as fail2ban's `failregex` in docs/operations.md reads them:
/// (client, user, route).
fn failure_lines(rosey: &Rosey) -> Vec<(String, String, String)> {
    rosey
        .stderr_text()
        .lines()
        .filter_map(|line| {
            let rest = line.split_once(" dashboard login failed: client=")?.1;
            let (client, rest) = rest.split_once(" user=\"")?;
            let (user, rest) = rest.rsplit_once("\" route=\"")?;
            let route = rest.split_once('"')?.0;
            Some((client.to_owned(), user.to_owned(), route.to_owned()))
        })
        .collect()
}

#[test]
fn twenty_wrong_passwords_hold_the_address_off_the_right_one_too_and_no_other_address() {
    let rosey = guarded(&[]);
    let port = rosey.port();
    let (wrong, right) = (basic("ops", "guess"), basic("ops", PASSWORD));
    let answers: Vec<_> =
        (0..20).map(|_| get_from("127.0.0.1", port, "/api/metrics", &[("Authorization", &wrong)])).collect();
    let statuses: Vec<u16> = answers.iter().map(|(status, _)| *status).collect();
    assert!(statuses.starts_with(&[401, 401]), "a mistyped password is not held off: {statuses:?}");
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    let first_held = statuses.iter().position(|s| *s == 429).expect("held");
    assert!(statuses[first_held..].iter().all(|s| *s == 429), "held until the hold ends: {statuses:?}");

    let (status, headers) = get_from("127.0.0.1", port, "/api/metrics", &[("Authorization", &right)]);
    assert_eq!(status, 429, "the right password waits out the hold too");
    let retry_after: u64 = header(&headers, "retry-after").and_then(|v| v.parse().ok()).expect("Retry-After");
    assert!((1..=60).contains(&retry_after), "Retry-After: {retry_after}");
    let (status, _) = get_from("127.0.0.2", port, "/api/metrics", &[("Authorization", &right)]);
    assert_eq!(status, 200, "another address is served at once");
    assert_eq!(get_from("127.0.0.1", port, "/health", &[]).0, 200, "probes are never held off");

    std::thread::sleep(Duration::from_secs(retry_after));
    let (status, _) = get_from("127.0.0.1", port, "/api/metrics", &[("Authorization", &right)]);
    assert_eq!(status, 200, "served once Retry-After has passed");

    let lines = failure_lines(&rosey);
    assert_eq!(lines.len(), first_held, "one line per failure, none for held requests: {lines:?}");
    assert!(lines.iter().all(|l| *l == ("127.0.0.1".into(), "ops".into(), "/api/metrics".into())), "{lines:?}");
    assert!(rosey.stderr_text().contains("dashboard logins from 127.0.0.1 held off for"));
    assert!(!rosey.stderr_text().contains(PASSWORD) && !rosey.stderr_text().contains("guess"));
    wait_for("rosey_auth_failures_total to count the failures", DEADLINE, || {
        let metrics = request("GET", &rosey.url("/metrics"), &[("Authorization", &right)]).ok()?.body;
        metrics.contains(&format!("\nrosey_auth_failures_total {first_held}\n")).then_some(())
    });
}

#[test]
fn a_hostile_user_name_stays_inside_its_quotes_on_one_line() {
    let rosey = guarded(&[]);
    let hostile = "ev\"il route=\"/x\" client=6.6.6.6 \u{1b}[31m";
    get_from("127.0.0.1", rosey.port(), "/", &[("Authorization", &basic(hostile, "x"))]);
    let line = wait_for("the failure line", DEADLINE, || {
        rosey.stderr_text().lines().find(|l| l.contains("dashboard login failed")).map(str::to_owned)
    });
    assert!(
        line.ends_with(
            r#"dashboard login failed: client=127.0.0.1 user="ev\"il route=\"/x\" client=6.6.6.6 \u{1b}[31m" route="/""#
        ),
        "{line}"
    );
}

#[test]
fn forwarded_for_counts_only_from_a_trusted_proxy() {
    let rosey = guarded(&["127.0.0.2"]);
    let port = rosey.port();
    let wrong = basic("ops", "guess");
    let spoofed = [("Authorization", wrong.as_str()), ("X-Forwarded-For", "198.51.100.7")];
    get_from("127.0.0.1", port, "/", &spoofed);
    get_from("127.0.0.2", port, "/", &spoofed);
    let clients: Vec<String> = wait_for("two failure lines", DEADLINE, || {
        let lines = failure_lines(&rosey);
        (lines.len() == 2).then(|| lines.into_iter().map(|(client, _, _)| client).collect())
    });
    assert_eq!(clients, ["127.0.0.1", "198.51.100.7"], "the header from an untrusted client changes nothing");

    // The client behind the proxy is held off, not the proxy.
    let statuses: Vec<u16> = (0..10).map(|_| get_from("127.0.0.2", port, "/", &spoofed).0).collect();
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    let right = basic("ops", PASSWORD);
    let other_client = [("Authorization", right.as_str()), ("X-Forwarded-For", "198.51.100.8")];
    assert_eq!(get_from("127.0.0.2", port, "/", &other_client).0, 200, "another client of the proxy is served");
    let faked = [("Authorization", right.as_str()), ("X-Forwarded-For", "198.51.100.8")];
    assert_eq!(get_from("127.0.0.1", port, "/", &faked).0, 200);
    let held = [("Authorization", right.as_str()), ("X-Forwarded-For", "198.51.100.7")];
    assert_eq!(get_from("127.0.0.2", port, "/", &held).0, 429, "the held client stays held behind the proxy");
}

/// The hosts that the `failregex` of docs/operations.md finds in `lines` (None for a line it
/// does not match), with Python's `re`, which reads fail2ban's regular expressions as
/// fail2ban does (fail2ban is Python); `<HOST>` as an address.
fn failregex_hosts(lines: &[String]) -> Vec<Option<String>> {
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md")).unwrap();
    let failregex = docs.lines().find_map(|l| l.strip_prefix("failregex = ")).expect("a failregex in the docs");
    let script = r#"
import re, sys
pattern = re.compile(sys.argv[1].replace("<HOST>", r"(?P<host>[0-9A-Fa-f.:]+)"))
for line in sys.stdin.read().splitlines():
    found = pattern.search(line)
    print(found.group("host") if found else "-")
"#;
    let mut python = std::process::Command::new("python3")
        .args(["-c", script, failregex])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    std::io::Write::write_all(&mut python.stdin.take().unwrap(), lines.join("\n").as_bytes()).unwrap();
    let output = python.wait_with_output().unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    text.lines().map(|host| (host != "-").then(|| host.to_owned())).collect()
}

#[test]
fn the_documented_fail2ban_filter_finds_the_address_of_every_failure_line() {
    let rosey = guarded(&["127.0.0.2"]);
    let port = rosey.port();
    let wrong = basic("ops\" user=\"x", "guess");
    // One failure each from many clients behind the proxy, faster than the lines' budget of
    // 10 a second, then one more later: that line also says how many were left out.
    let clients: Vec<String> = (1..=30).map(|n| format!("198.51.100.{n}")).collect();
    for client in &clients {
        get_from("127.0.0.2", port, "/api/metrics", &[("Authorization", &wrong), ("X-Forwarded-For", client)]);
    }
    std::thread::sleep(Duration::from_millis(1100));
    get_from("127.0.0.1", port, "/", &[("Authorization", &wrong)]);
    let lines: Vec<String> = wait_for("the late failure's line", DEADLINE, || {
        let text = rosey.stderr_text();
        let lines: Vec<String> =
            text.lines().filter(|l| l.contains("dashboard login failed")).map(str::to_owned).collect();
        lines.iter().any(|l| l.contains("client=127.0.0.1 ")).then_some(lines)
    });
    let hosts = failregex_hosts(&lines);
    for (line, host) in lines.iter().zip(&hosts) {
        let client = line.split_once("client=").and_then(|(_, rest)| rest.split_once(' ')).map(|(c, _)| c);
        assert_eq!(host.as_deref(), client, "the filter reads this line's client: {line}");
    }
    assert_eq!(hosts.len(), lines.len());
}
