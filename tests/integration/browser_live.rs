//! Live updates in a real browser (see `e2e_support/browser.rs`): chat commands show up in the
//! event count (SSE, no reload), and so do a config reload's added and removed plugins (their
//! cards come and go, by deltas); a killed plugin turns red with its state in words, then green
//! again after the restart; a crash shows up live in a plugin page's crash log, its stderr as
//! text.

use std::time::{Duration, Instant};

use fantoccini::Locator;
use serde::Deserialize;
use serde_json::json;

use crate::common::{DEADLINE, HOSTILE_VERSION, RoseyBuilder, python_plugin, sigkill};
use crate::e2e_support::browser::*;

#[test]
fn chat_commands_and_a_config_reload_show_up_without_a_page_reload() {
    const N: u64 = 5;
    in_browser(
        "chat_commands_and_a_config_reload_show_up_without_a_page_reload",
        true,
        RoseyBuilder::new(),
        async |rosey, browser| {
            wait_live(browser).await;
            let before =
                card_until(browser, "dice-roller's event count", "dice-roller", DEADLINE, |c| has_figure(&c.events))
                    .await;
            let before = Card::count(&before.events);
            browser.js("window.__noReload = 1;").await;
            let origin = browser.js("return performance.timeOrigin;").await;

            for _ in 0..N {
                rosey.say("!roll 2d6");
            }
            let expected = (before + N).to_string();
            card_until(
                browser,
                &format!("dice-roller's events to show {expected}"),
                "dice-roller",
                LIVE_DEADLINE,
                |c| c.events.trim() == expected,
            )
            .await;

            // A config reload removes 8ball and adds a plugin: the cards follow, by deltas.
            collect_frame_times(browser).await;
            let mut config = rosey.config.clone();
            let plugins = config["plugins"].as_array_mut().expect("a list of plugins");
            plugins.retain(|p| p["name"] != "8ball");
            plugins.push(json!({ "name": "napper", "command": ["sleep", "3600"] }));
            std::fs::write(&rosey.config_path, config.to_string()).expect("config rewritten");
            rosey.signal(nix::sys::signal::Signal::SIGHUP);
            let napper = card_until(browser, "the added plugin's card", "napper", LIVE_DEADLINE, |c| {
                c.state == "RUNNING" && c.pid.trim().parse::<u32>().is_ok()
            })
            .await;
            assert_eq!(napper.link, "/plugin/napper", "the new card links to its page: {napper:?}");
            let mut shown = shown_cards(browser).await;
            shown.sort();
            assert_eq!(shown, ["dice-roller", "hostile", "napper"], "8ball's card is gone");
            let hostile = browser.card("hostile").await.expect("the hostile card");
            assert_eq!(hostile.version, HOSTILE_VERSION, "a kept card keeps its figures");
            let full = frame_times(browser, "rosey:full").await;
            assert!(full.is_empty(), "the reload came as deltas, not as a whole new page ({} full frames)", full.len());

            let marker = browser.js("return window.__noReload === 1 && performance.timeOrigin;").await;
            assert_eq!(marker, origin, "the count and the reload arrived without a page reload");
        },
    );
}

#[test]
fn a_killed_plugin_turns_red_within_two_seconds_and_green_after_its_restart() {
    // The restart waits 3 s, so the CRASHED state stays on screen long enough to be seen.
    let mut builder = RoseyBuilder::new();
    for plugin in builder.config["plugins"].as_array_mut().expect("plugin list") {
        if plugin["name"] == "dice-roller" {
            plugin["restart"] = json!({ "initial_delay": 3 });
        }
    }
    in_browser(
        "a_killed_plugin_turns_red_within_two_seconds_and_green_after_its_restart",
        true,
        builder,
        async |_rosey, browser| {
            wait_live(browser).await;
            let running = card_until(browser, "dice-roller running", "dice-roller", DEADLINE, |c| {
                c.is_healthy() && c.pid.trim().parse::<u32>().is_ok()
            })
            .await;
            browser.js("window.__noReload = 1;").await;
            let pid: i32 = running.pid.trim().parse().expect("pid on the card");
            let crashes = Card::count(&running.crashes);

            sigkill(pid);
            let killed_at = Instant::now();
            let crashed =
                card_until(browser, "the card to show CRASHED in red", "dice-roller", Duration::from_secs(2), |c| {
                    c.is_crashed()
                })
                .await;
            let shown_after = killed_at.elapsed();
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                format!("browser: the crash was on screen {shown_after:?} after the kill\n").as_bytes(),
            );
            let card =
                browser.client.find(Locator::Css("#cards [data-plugin=\"dice-roller\"]")).await.expect("the card");
            let png = card.screenshot().await.expect("card screenshot");
            browser.screenshot("dashboard-crashed-card.png", png);
            let crashed = if Card::count(&crashed.crashes) == crashes + 1 {
                crashed
            } else {
                card_until(browser, "the crash count to go up by one", "dice-roller", LIVE_DEADLINE, |c| {
                    Card::count(&c.crashes) == crashes + 1
                })
                .await
            };
            assert_eq!(crashed.state, "CRASHED", "the state is in words: {crashed:?}");

            let restarted =
                card_until(browser, "the card to turn green after the restart", "dice-roller", DEADLINE, |c| {
                    c.is_healthy() && c.pid.trim() != pid.to_string() && c.pid.trim().parse::<u32>().is_ok()
                })
                .await;
            assert_eq!(Card::count(&restarted.crashes), crashes + 1, "one crash, counted once: {restarted:?}");
            let marker = browser.js("return window.__noReload === 1;").await;
            assert_eq!(marker, json!(true), "all of it without a page reload");
        },
    );
}

/// The crash log of a detail page as shown: the entries' visible texts, and whether the
/// "No crashes recorded" line is shown.
#[derive(Debug, Deserialize)]
struct CrashLog {
    entries: Vec<CrashEntry>,
    empty_shown: bool,
}

#[derive(Debug, Deserialize)]
struct CrashEntry {
    reason: String,
    /// None when the stderr block is hidden.
    stderr: Option<String>,
}

async fn crash_log(browser: &Browser) -> CrashLog {
    let script = r#"
        var shown = function (el) { return el.getClientRects().length > 0; };
        var entries = Array.from(document.querySelectorAll('#crash-log > li'), function (li) {
            var pre = li.querySelector('pre');
            return { reason: li.querySelector('.crash-reason').textContent, stderr: shown(pre) ? pre.textContent : null };
        });
        return { entries: entries, empty_shown: shown(document.getElementById('crash-empty')) };
    "#;
    serde_json::from_value(browser.js(script).await).expect("crash log")
}

#[test]
fn a_crash_appears_live_on_the_plugin_page_with_its_stderr_shown_literally() {
    // Runs until killed; its stderr holds markup that must stay text.
    let mut crasher = python_plugin("crasher", "crasher.py", &["600"]);
    crasher["restart"] = json!({ "initial_delay": 60 });
    in_browser(
        "a_crash_appears_live_on_the_plugin_page_with_its_stderr_shown_literally",
        true,
        RoseyBuilder::new().plugin(crasher),
        async |rosey, browser| {
            browser.client.goto(&rosey.url("/plugin/crasher")).await.expect("the plugin page loads");
            wait_live(browser).await;
            let before = crash_log(browser).await;
            assert!(before.entries.is_empty() && before.empty_shown, "no crash yet: {before:?}");
            browser.js("window.__noReload = 1;").await;

            let pid = rosey.pid_of("crasher");
            sigkill(pid);
            let after = eventually("the crash in the page's crash log", LIVE_DEADLINE, async || {
                let log = crash_log(browser).await;
                if log.entries.len() == 1 && !log.empty_shown { Ok(log) } else { Err(format!("{log:?}")) }
            })
            .await;
            let entry = &after.entries[0];
            assert!(entry.reason.starts_with("killed by SIGKILL after "), "the reason in words: {entry:?}");
            assert_eq!(
                entry.stderr.as_deref(),
                Some("starting up\n<script>alert('stderr')</script> & \"quotes\"\nfatal: giving up"),
                "the stderr tail, line for line, as text"
            );
            let scripts = browser.js("return document.scripts.length;").await;
            assert_eq!(scripts, json!(2), "only the page's own scripts (dashboard.js, plugin_log.js) are elements");
            assert!(browser.client.get_alert_text().await.is_err(), "no alert() ran");
            let badge =
                browser.js("return document.querySelector('#detail .card [data-field=\"badge\"]').textContent;").await;
            assert_eq!(badge, "CRASHED", "the plugin's card says so too");
            let marker = browser.js("return window.__noReload === 1;").await;
            assert_eq!(marker, json!(true), "all of it without a page reload");
            browser.page_screenshot("plugin-page-crash.png").await;
        },
    );
}
