//! The dashboard over HTTPS in a real browser: Chromium, trusting the test CA the way a user
//! would after importing it (its NSS database, not a flag that skips the check), loads the
//! page with every card, and the live updates arrive over the same HTTPS origin.

use std::process::Command;

use crate::auth_tls::{issue, with_tls};
use crate::common::DEADLINE;
use crate::e2e_support::browser::*;

#[test]
fn chromium_trusting_the_test_ca_shows_the_cards_and_live_updates_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = issue(dir.path(), "browser");
    let builder = with_tls(dir.path(), &cert, &key);
    let test = "chromium_trusting_the_test_ca_shows_the_cards_and_live_updates_over_https";
    in_browser_via(test, true, builder, Scheme::Https { ca: &ca }, async |rosey, browser| {
        let origin = browser.js("return location.origin;").await;
        assert_eq!(origin, format!("https://127.0.0.1:{}", rosey.port()), "the page is the HTTPS one");
        for plugin in PLUGINS {
            card_until(browser, &format!("{plugin}'s card, running"), plugin, DEADLINE, |c| {
                c.state == "RUNNING" && has_figure(&c.pid)
            })
            .await;
        }
        wait_live(browser).await;
        let before =
            card_until(browser, "dice-roller's event count", "dice-roller", DEADLINE, |c| has_figure(&c.events)).await;
        let expected = (Card::count(&before.events) + 3).to_string();
        for _ in 0..3 {
            rosey.say("!roll 2d6");
        }
        card_until(browser, &format!("dice-roller's events to show {expected}"), "dice-roller", LIVE_DEADLINE, |c| {
            c.events.trim() == expected
        })
        .await;
        // They came by the page's own live stream, which the bot counts: an HTTPS page may open
        // no plain-HTTP stream (the browser blocks mixed content), and this port speaks only TLS.
        let metrics = Command::new("curl")
            .args(["-sSf", "--max-time", "10", "--cacert"])
            .arg(&ca)
            .arg(format!("https://127.0.0.1:{}/metrics", rosey.port()))
            .output()
            .expect("curl runs");
        let metrics = String::from_utf8_lossy(&metrics.stdout).into_owned();
        assert!(metrics.lines().any(|l| l == "rosey_sse_clients 1"), "the page's stream is counted: {metrics}");
        browser.page_screenshot("browser-tls.png").await;
    });
}
