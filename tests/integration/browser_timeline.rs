//! The timeline page in a real browser (see `e2e_support/browser.rs`): a crash shows up on
//! `/timeline` without a page load, linked to its plugin, and the hostile plugin's version in
//! its hello event reads literally.

use crate::common::{HOSTILE_VERSION, RoseyBuilder, sigkill};
use crate::e2e_support::browser::*;

#[test]
fn a_crash_appears_on_the_timeline_page_without_a_reload() {
    in_browser(
        "a_crash_appears_on_the_timeline_page_without_a_reload",
        true,
        RoseyBuilder::new(),
        async |rosey, browser| {
            browser.client.goto(&rosey.url("/timeline")).await.expect("the timeline loads");
            wait_live(browser).await;
            browser.js("window.__noReload = 1;").await;
            let hostile = browser
                .js("return Array.from(document.querySelectorAll('#timeline .tl-hello .tl-message'))
                    .map(function (m) { return m.textContent; }).join('\\n');")
                .await;
            assert!(hostile.as_str().unwrap_or("").contains(HOSTILE_VERSION), "the version reads literally: {hostile}");
            assert_eq!(browser.js("return document.querySelectorAll('#timeline img').length;").await, 0);

            sigkill(rosey.pid_of("dice-roller"));
            let link = eventually("the crash on the page", LIVE_DEADLINE, async || {
                let found = browser
                    .js("var e = document.querySelector('#timeline .tl-crashed .tl-plugin');
                     return e ? e.getAttribute('href') + ' ' + e.textContent : '';")
                    .await;
                match found.as_str() {
                    Some(text) if !text.is_empty() => Ok(text.to_owned()),
                    _ => Err(found.to_string()),
                }
            })
            .await;
            assert_eq!(link, "/plugin/dice-roller dice-roller");
            assert_eq!(browser.js("return window.__noReload;").await, 1, "no page load happened");
        },
    );
}
