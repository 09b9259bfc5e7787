//! Notifications: a crash reaches a local webhook receiver as a signed JSON body (the
//! signature checked here), a 500 answer is retried until it succeeds, and a crash loop sends
//! one folded message, not one per crash.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::common::webhook::{Received, Receiver};
use crate::common::{DEADLINE, Rosey, RoseyBuilder, crasher, wait_for};

const SECRET: &str = "hook-s3cret";

fn bot(receiver: &Receiver, crash_restart: Value, window: f64) -> Rosey {
    let mut builder = RoseyBuilder::new().plugins(json!([crasher("0.2", crash_restart)]));
    builder.config["notify"] = json!({
        "coalesce_window": window,
        "webhooks": [{ "url": receiver.url("/hook?token=t0k3n"), "events": ["crashed", "failed"], "secret": SECRET }],
    });
    builder.start()
}

fn crashes(receiver: &Receiver) -> Vec<Received> {
    receiver.received().into_iter().filter(|r| r.header("x-rosey-event") == Some("crashed")).collect()
}

fn expected_signature(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

#[test]
fn a_crash_is_sent_as_a_signed_json_body() {
    let receiver = Receiver::start(&[]);
    let rosey = bot(&receiver, json!({ "enabled": false }), 60.0);
    let sent = wait_for("the crash notification", DEADLINE, || crashes(&receiver).into_iter().next());
    assert_eq!(sent.path, "/hook?token=t0k3n");
    assert_eq!(sent.header("content-type"), Some("application/json"));
    assert_eq!(sent.header("x-rosey-signature-256"), Some(expected_signature(&sent.body).as_str()));
    let body = sent.json();
    assert_eq!((body["event"]["kind"].as_str(), body["event"]["plugin"].as_str()), (Some("crashed"), Some("crasher")));
    assert_eq!(body["event"]["details"]["exit_code"], 3);
    assert_eq!(body["count"], 1);
    assert!(body["text"].as_str().unwrap().contains("crasher: crashed: exited with code 3"), "{body}");
    let failed = wait_for("the FAILED notification", DEADLINE, || {
        receiver.received().into_iter().find(|r| r.header("x-rosey-event") == Some("failed"))
    });
    assert_eq!(failed.json()["event"]["kind"], "failed");
    // The secret and the URL's token are nowhere in the bot's own output or its metrics.
    let metrics = rosey.get("/metrics").body;
    assert!(metrics.contains("rosey_notifications_total{sink=\"0:127.0.0.1\",outcome=\"sent\"} 2"), "{metrics}");
    let log = rosey.stderr_text();
    assert!(!log.contains(SECRET) && !log.contains("t0k3n") && !metrics.contains("t0k3n"));
}

#[test]
fn a_webhook_that_answers_500_is_tried_again_until_it_succeeds() {
    let receiver = Receiver::start(&[500]);
    let rosey = bot(&receiver, json!({ "enabled": false }), 60.0);
    let tries = wait_for("a second try", DEADLINE, || {
        let tries = crashes(&receiver);
        (tries.len() >= 2).then_some(tries)
    });
    assert_eq!(tries[0].body, tries[1].body, "the same message, byte for byte");
    let metrics = wait_for("the delivery counted", DEADLINE, || {
        let metrics = rosey.get("/metrics").body;
        metrics.contains("outcome=\"sent\"} 2").then_some(metrics)
    });
    assert!(metrics.contains("rosey_notifications_total{sink=\"0:127.0.0.1\",outcome=\"retried\"} 1"), "{metrics}");
    assert!(metrics.contains("outcome=\"failed\"} 0"), "{metrics}");
}

#[test]
fn a_crash_loop_sends_one_folded_message_not_one_per_crash() {
    let receiver = Receiver::start(&[]);
    let restart = json!({ "enabled": true, "max_attempts": 1000, "initial_delay": 0.05, "max_delay": 0.05 });
    let started = std::time::Instant::now();
    let rosey = bot(&receiver, restart, 3.0);
    let crashed = wait_for("ten crashes", DEADLINE, || {
        let plugin = rosey.plugin("crasher");
        let count = plugin["current"]["crash_count"].as_u64().unwrap_or(0);
        (count >= 10).then_some(count)
    });
    let folded = wait_for("the folded message", DEADLINE, || {
        crashes(&receiver).into_iter().map(|r| r.json()).find(|body| body["count"].as_u64() > Some(1))
    });
    assert!(folded["text"].as_str().unwrap().contains("more times in 3 s"), "{folded}");
    let sent = crashes(&receiver).len() as f64;
    let crashed = crashed.max(rosey.plugin("crasher")["current"]["crash_count"].as_u64().unwrap_or(0)) as f64;
    // The first crash at once, then at most one message per 3 s window.
    let windows = started.elapsed().as_secs_f64() / 3.0;
    assert!(
        sent <= 2.0 + windows && sent < crashed / 2.0,
        "{sent} messages for {crashed} crashes in {windows:.1} windows"
    );
    let metrics = rosey.get("/metrics").body;
    assert!(!metrics.contains("outcome=\"coalesced\"} 0"), "the folded crashes are counted: {metrics}");
}
