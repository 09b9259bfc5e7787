//! Hostile and greedy HTTP clients (issue 13, items 7 and 8): oversized and unfinished request
//! heads, an h2c preface, more connections than the cap, more live clients than the
//! open-files limit allows. The bot must stay answerable and bounded.
//!
//! Not tested here because it takes 30 s: a connection that sends nothing is closed after
//! the documented 30 s (measured with `scripts/connection_probe.py idle`, docs/performance.md).

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use nix::sys::resource::{Resource, getrlimit};
use serde_json::json;

use crate::common::sse::Sse;
use crate::common::*;

/// Write `request` (the server may stop reading and close early), then read what comes back
/// until the server closes. A reset after the answer still counts as a close.
fn send_and_read_until_closed(port: u16, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(DEADLINE)).expect("timeout set");
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return answer,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("the server kept the connection open; it sent {:?}", String::from_utf8_lossy(&answer))
            }
            Err(_) => return answer,
        }
    }
}

fn health_request(extra_header: &str) -> Vec<u8> {
    format!("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra_header}Connection: close\r\n\r\n").into_bytes()
}

#[test]
fn an_oversized_request_head_gets_431_and_a_close() {
    let rosey = RoseyBuilder::new().plugins(json!([])).start();
    // 64 KiB: above the dashboard's cap, below hyper's default buffer (about 408 KiB).
    let padding = format!("X-Padding: {}\r\n", "a".repeat(64 * 1024));
    let answer = send_and_read_until_closed(rosey.port(), &health_request(&padding));
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 431"), "an oversized head is refused: {text}");

    // A large but reasonable head (cookies, a long auth line) is still served.
    let cookies = format!("Cookie: {}\r\n", "session=x; ".repeat(700));
    let answer = send_and_read_until_closed(rosey.port(), &health_request(&cookies));
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "an 8 KB head is served: {text}");
    assert_eq!(rosey.get_json("/health"), json!({ "status": "ok" }));
}

#[test]
fn a_client_that_sends_only_the_h2c_preface_is_closed() {
    let rosey = RoseyBuilder::new().plugins(json!([])).start();
    // Before: hyper-util's protocol detection took it as HTTP/2 and held the connection open.
    send_and_read_until_closed(rosey.port(), b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    assert_eq!(rosey.get_json("/health"), json!({ "status": "ok" }));
}

/// An HTTP/1.1 connection that asked for `/health` once and is kept alive, holding its place.
fn kept_alive_connection(port: u16) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(DEADLINE)).expect("timeout set");
    stream.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").expect("request sent");
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&answer).contains(r#"{"status":"ok"}"#) {
        let n = stream.read(&mut buf).expect("the answer");
        assert!(n > 0, "the server closed a kept-alive connection");
        answer.extend_from_slice(&buf[..n]);
    }
    stream
}

#[test]
fn beyond_the_connection_cap_clients_wait_until_others_leave() {
    let mut builder = RoseyBuilder::new().plugins(json!([]));
    // The cap is max_sse_clients plus 64 connections for everything else.
    builder.config["dashboard"]["max_sse_clients"] = json!(2);
    let rosey = builder.start();
    let mut held: Vec<TcpStream> = (0..66).map(|_| kept_alive_connection(rosey.port())).collect();

    let mut waiting = TcpStream::connect(("127.0.0.1", rosey.port())).expect("the kernel queues it");
    waiting.write_all(&health_request("")).expect("request sent");
    waiting.set_read_timeout(Some(Duration::from_secs(1))).expect("timeout set");
    let mut buf = [0u8; 1024];
    let early = waiting.read(&mut buf);
    assert!(
        early.as_ref().is_err_and(|e| matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "a 67th connection is not served while 66 are open: {early:?}"
    );

    held.pop();
    waiting.set_read_timeout(Some(DEADLINE)).expect("timeout set");
    let mut answer = Vec::new();
    waiting.read_to_end(&mut answer).expect("answered once a place is free");
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));
}

#[test]
fn live_clients_beyond_the_open_files_limit_are_refused_and_health_answers() {
    // No room to raise: the dashboard must fit its caps into 200 descriptors.
    let rosey = RoseyBuilder::new().open_files(OpenFiles { soft: 200, hard: 200 }).start();
    let mut streams = Vec::new();
    let mut refused = 0;
    for _ in 0..250 {
        let sse = Sse::open(rosey.port(), "/events", &[]);
        match sse.status {
            200 => streams.push(sse),
            503 => refused += 1,
            other => panic!("a live-update client got {other}"),
        }
    }
    assert!(refused > 0, "clients beyond the limit are refused, not left hanging");
    assert_eq!(rosey.get_json("/health"), json!({ "status": "ok" }), "with {} live clients", streams.len());
    let log = rosey.stderr_text();
    let warning = log.lines().find(|l| l.contains("open-files limit")).unwrap_or_else(|| panic!("no warning:\n{log}"));
    assert!(warning.contains(&format!("serving at most {} live-update clients", streams.len())), "{warning}");
    assert!(warning.contains("dashboard.max_sse_clients = 1024"), "{warning}");
}

/// The soft and hard open-files limits of a running process, from /proc.
fn open_files_of(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("/proc/PID/limits");
    let line = limits.lines().find(|l| l.starts_with("Max open files")).expect("a Max open files line");
    let numbers: Vec<u64> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    (numbers[0], numbers[1])
}

#[test]
fn the_soft_open_files_limit_is_raised_to_the_hard_limit() {
    let (_, our_hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("RLIMIT_NOFILE is readable");
    let hard = our_hard.min(4096);
    assert!(hard > 256, "this test needs a hard open-files limit above 256 (it is {our_hard})");
    let rosey = RoseyBuilder::new().plugins(json!([])).open_files(OpenFiles { soft: 256, hard }).start();
    assert_eq!(open_files_of(rosey.child.id()), (hard, hard));
}

#[test]
fn plugins_get_the_open_files_limit_the_bot_was_started_with() {
    let (_, our_hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("RLIMIT_NOFILE is readable");
    let hard = our_hard.min(4096);
    assert!(hard > 256, "this test needs a hard open-files limit above 256 (it is {our_hard})");
    let sleeper = json!({ "name": "sleeper", "command": ["sleep", "600"] });
    let rosey = RoseyBuilder::new().plugins(json!([sleeper])).open_files(OpenFiles { soft: 256, hard }).start();
    let pid = rosey.wait_for_state("sleeper", "RUNNING")["pid"].as_u64().expect("a pid") as u32;
    assert_eq!(open_files_of(pid), (256, hard), "the raise is the bot's, not its plugins'");
}
