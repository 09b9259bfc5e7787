//! A plugin's log panel in a real browser (see `e2e_support/browser.rs`): new lines arrive
//! without a page load, a hostile line (markup, ANSI colours, a bidi override, invalid UTF-8)
//! shows literally, Pause holds new lines until Follow, the text and stream filters hide what
//! does not match, and lines dropped over the budget are marked.

use fantoccini::Locator;
use serde_json::{Value, json};

use crate::common::{RoseyBuilder, fixture};
use crate::e2e_support::browser::*;

/// The hostile line of the chatty fixture as the panel must show it: markup as text, colours
/// gone, the bidi controls visible, each invalid byte a replacement character.
const HOSTILE_SHOWN: &str = "<b>bold</b> & <script>alert(1)</script> red [U+202E]evil[U+202C] bad \u{fffd}\u{fffd} end";

/// The texts of the panel's visible lines and markers, in order.
async fn shown(browser: &Browser) -> Vec<String> {
    let script = r#"
        return Array.from(document.querySelectorAll('#log-lines > li'))
            .filter((li) => !li.hidden)
            .map((li) => (li.querySelector('.log-text') || li).textContent);
    "#;
    let Value::Array(items) = browser.js(script).await else { return Vec::new() };
    items.into_iter().map(|v| v.as_str().unwrap_or("").to_owned()).collect()
}

async fn shows(browser: &Browser, what: &str, check: impl Fn(&[String]) -> bool) -> Vec<String> {
    eventually(what, LIVE_DEADLINE, async || {
        let lines = shown(browser).await;
        if check(&lines) { Ok(lines) } else { Err(format!("{lines:?}")) }
    })
    .await
}

fn has(lines: &[String], text: &str) -> bool {
    lines.iter().any(|l| l == text)
}

#[test]
fn new_log_lines_arrive_live_and_a_hostile_line_shows_literally() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let version = dir.path().join("VERSION");
    std::fs::write(&version, "1").expect("the version file is writable");
    let chatty =
        json!({ "name": "chatty", "command": ["python3", fixture("chatty.py"), version.display().to_string()] });
    in_browser(
        "new_log_lines_arrive_live_and_a_hostile_line_shows_literally",
        true,
        RoseyBuilder::new().plugins(json!([chatty])),
        async |rosey, browser| {
            browser.client.goto(&rosey.url("/plugin/chatty")).await.expect("the plugin page loads");
            shows(browser, "the start-up lines", |l| has(l, "started 1") && has(l, "stray stdout 1")).await;
            browser.js("window.__noReload = 1;").await;

            rosey.say("!log fresh");
            shows(browser, "a new line without a page load", |l| has(l, "err fresh") && has(l, "out fresh")).await;
            rosey.say("!hostile");
            shows(browser, "the hostile line, literally", |l| has(l, HOSTILE_SHOWN)).await;
            let elements =
                browser.js("return document.querySelectorAll('#log-lines b, #log-lines script').length;").await;
            assert_eq!(elements, json!(0), "the markup stayed text");
            let scripts = browser.js("return document.scripts.length;").await;
            assert_eq!(scripts, json!(2), "only the page's own scripts");
            assert!(browser.client.get_alert_text().await.is_err(), "no alert() ran");
            let escape =
                browser.js("return document.getElementById('log-lines').textContent.includes('\\u001b');").await;
            assert_eq!(escape, json!(false), "no escape character reaches the page");

            // Pause holds new lines; Follow shows them.
            click(browser, "#log-follow").await;
            rosey.say("!log held");
            eventually("the panel to count the held lines", LIVE_DEADLINE, async || {
                let status = browser.js("return document.getElementById('log-status').textContent;").await;
                let text = status.as_str().unwrap_or("").to_owned();
                if text.starts_with("paused: 2 new lines") { Ok(()) } else { Err(text) }
            })
            .await;
            assert!(!has(&shown(browser).await, "out held"), "paused: not shown yet");
            click(browser, "#log-follow").await;
            shows(browser, "the held lines after Follow", |l| has(l, "err held") && has(l, "out held")).await;

            // The filters hide what does not match, and bring it back.
            browser
                .js("const f = document.getElementById('log-filter'); f.value = 'fresh'; f.dispatchEvent(new Event('input'));")
                .await;
            let mut filtered = shown(browser).await;
            filtered.sort(); // the two pipes are read side by side
            assert_eq!(filtered, ["err fresh", "out fresh"], "only the lines holding the text");
            browser
                .js("const s = document.getElementById('log-stream'); s.value = 'stdout'; s.dispatchEvent(new Event('change'));")
                .await;
            assert_eq!(shown(browser).await, ["out fresh"], "and only stdout");
            browser
                .js("const f = document.getElementById('log-filter'); f.value = ''; f.dispatchEvent(new Event('input'));
                     const s = document.getElementById('log-stream'); s.value = ''; s.dispatchEvent(new Event('change'));")
                .await;

            // A flood: what was dropped is marked where it was dropped.
            rosey.say("!flood 0.3");
            let lines =
                shows(browser, "a dropped-lines marker", |l| l.iter().any(|t| t.ends_with(" lines dropped"))).await;
            let marker = lines.iter().find(|t| t.ends_with(" lines dropped")).expect("a marker");
            let count: u64 = marker.split(' ').next().and_then(|n| n.parse().ok()).expect("a count");
            assert!(count > 0, "{marker}");
            shows(browser, "the flood's end", |l| l.iter().any(|t| t.starts_with("flood done"))).await;
            let marker = browser.js("return window.__noReload === 1;").await;
            assert_eq!(marker, json!(true), "all of it without a page load");
            browser.js("document.getElementById('log-panel').scrollIntoView();").await;
            let panel = browser.client.find(Locator::Css("#log-panel")).await.expect("the log panel");
            browser.screenshot("plugin-page-log.png", panel.screenshot().await.expect("panel screenshot"));
        },
    );
}
