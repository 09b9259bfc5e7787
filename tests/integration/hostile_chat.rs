//! Hostile chat input (issue 13): what a chat user types can neither reach the operator's
//! terminal as control sequences nor stop the console from reading.

use serde_json::json;

use crate::common::*;

#[test]
fn terminal_escapes_and_bidi_overrides_in_user_names_are_shown_escaped() {
    let mut rosey = RoseyBuilder::new().plugins(json!([{ "name": "dice-roller", "builtin": "dice-roller" }])).start();
    rosey.say("ev\u{1b}[2J\u{1b}]0;owned\u{7}il: !roll 1d6");
    let escaped = wait_for_line(&rosey, "[dice-roller] @ev");
    assert!(escaped.starts_with("[dice-roller] @ev\\u{1b}[2J\\u{1b}]0;owned\\u{7}il 🎲 1d6: "), "{escaped:?}");
    rosey.say("\u{202e}lanigiro: !roll 1d4");
    let bidi = wait_for_line(&rosey, "[dice-roller] @\\u{202e}lanigiro 🎲 1d4: ");
    let out = rosey.stdout_lines().join("\n");
    assert!(!out.contains(['\u{1b}', '\u{7}', '\u{202e}']), "raw control characters reached stdout: {out:?}");
    assert!(!bidi.is_empty());
}

#[test]
fn bidi_overrides_in_replies_are_shown_escaped() {
    let echo =
        json!({ "name": "echo", "command": ["python3", concat!(env!("CARGO_MANIFEST_DIR"), "/plugins/echo.py")] });
    let mut rosey = RoseyBuilder::new().plugins(json!([echo])).start();
    rosey.wait_for_plugin("echo's hello", "echo", |p| p["version"] == "1.0.0");
    rosey.say("alice: !echo txt\u{202e}exe.\u{2066}x");
    let reply = wait_for_line(&rosey, "[echo] @alice ");
    assert_eq!(reply, "[echo] @alice alice said: txt\\u{202e}exe.\\u{2066}x");
}

#[test]
fn a_line_of_invalid_utf8_does_not_end_console_input() {
    let mut rosey = RoseyBuilder::new().plugins(json!([{ "name": "dice-roller", "builtin": "dice-roller" }])).start();
    rosey.say_bytes(b"mallory\xff\xfe: !roll 1d6\n");
    wait_for_line(&rosey, "[dice-roller] @mallory\u{fffd}\u{fffd} 🎲 1d6: ");
    rosey.say("alice: !roll 1d6");
    wait_for_line(&rosey, "[dice-roller] @alice 🎲 1d6: ");
}

#[test]
fn an_overlong_line_is_refused_and_the_next_one_is_read() {
    let mut rosey = RoseyBuilder::new().plugins(json!([{ "name": "dice-roller", "builtin": "dice-roller" }])).start();
    let mut huge = b"bob: !roll 1d6 ".to_vec();
    huge.resize(8 * 1024 * 1024, b'x');
    huge.push(b'\n');
    rosey.say_bytes(&huge);
    let refused = wait_for_line(&rosey, "[rosey] @bob ");
    assert_eq!(refused, "[rosey] @bob your message of 8388608 bytes is over the 4096-byte limit; ignored");
    rosey.say("alice: !roll 1d6");
    wait_for_line(&rosey, "[dice-roller] @alice 🎲 1d6: ");
    assert!(rosey.stderr_text().contains("a chat line of 8388608 bytes is over the 4096-byte limit"));
}
