//! The dashboard's cards in a real browser (see `e2e_support/browser.rs`), with the default
//! fixture (dice-roller, 8ball and the plugin with the hostile version string; 1 s polls): the
//! page loads without console errors and every card shows its figures (a card the page lacks is
//! rebuilt from its template); on a phone the cards stack without sideways scrolling; without
//! JavaScript every card is still there and the page refreshes itself.

use std::time::Duration;

use fantoccini::Locator;
use serde_json::json;

use crate::common::{DEADLINE, HOSTILE_VERSION, RoseyBuilder};
use crate::e2e_support::browser::*;

#[test]
fn the_page_loads_without_console_errors_and_every_card_shows_its_figures() {
    in_browser(
        "the_page_loads_without_console_errors_and_every_card_shows_its_figures",
        true,
        RoseyBuilder::new(),
        async |_rosey, browser| {
            wait_live(browser).await;
            for plugin in PLUGINS {
                card_until(browser, &format!("{plugin}'s pid, CPU and memory"), plugin, DEADLINE, |c| {
                    c.state == "RUNNING"
                        && c.pid.trim().parse::<u32>().is_ok()
                        && has_figure(&c.cpu)
                        && has_figure(&c.memory)
                })
                .await;
            }
            let hostile = browser.card("hostile").await.expect("the hostile card");
            assert_eq!(hostile.version, HOSTILE_VERSION, "the version is shown as text, exactly");
            let injected = browser.js("return document.querySelectorAll('img').length;").await;
            assert_eq!(injected, json!(0), "the version's <img> must not become an element");
            assert!(browser.client.get_alert_text().await.is_err(), "no alert() ran");
            browser.page_screenshot("dashboard-desktop.png").await;

            // A card the page lacks is built from the page's own template on the next update.
            browser.js("document.querySelector('#cards [data-plugin=\"8ball\"]').remove();").await;
            let rebuilt = card_until(browser, "8ball's card to be rebuilt", "8ball", LIVE_DEADLINE, |c| {
                c.is_healthy() && c.pid.trim().parse::<u32>().is_ok() && has_figure(&c.memory)
            })
            .await;
            assert_eq!(rebuilt.link, "/plugin/8ball", "the rebuilt card links to its page: {rebuilt:?}");
            let order = browser
                .js("return Array.from(document.querySelectorAll('#cards [data-plugin]'), c => c.dataset.plugin);")
                .await;
            assert_eq!(order, json!(["8ball", "dice-roller", "hostile"]), "in the server's order");
        },
    );
}

#[test]
fn on_a_phone_the_cards_stack_without_sideways_scrolling() {
    in_browser(
        "on_a_phone_the_cards_stack_without_sideways_scrolling",
        true,
        RoseyBuilder::new(),
        async |_rosey, browser| {
            browser.resize(PHONE).await;
            wait_live(browser).await;
            for plugin in PLUGINS {
                card_until(browser, &format!("{plugin}'s figures"), plugin, DEADLINE, |c| has_figure(&c.memory)).await;
            }
            let widths = browser
            .js("var d = document.documentElement; return [d.scrollWidth, d.clientWidth, document.body.scrollWidth];")
            .await;
            let (scroll, client) = (widths[0].as_f64().unwrap_or(f64::MAX), widths[1].as_f64().unwrap_or(0.0));
            assert!(scroll <= client, "no horizontal scroll at {PHONE:?}: scrollWidth, clientWidth, body = {widths}");

            let mut cards = Vec::new();
            for plugin in PLUGINS {
                cards.push(browser.card(plugin).await.expect("card"));
            }
            cards.sort_by(|a, b| a.top.total_cmp(&b.top));
            for pair in cards.windows(2) {
                assert!((pair[0].left - pair[1].left).abs() < 1.0, "cards share one column: {cards:#?}");
                assert!(pair[1].top > pair[0].top, "each card is below the previous one: {cards:#?}");
            }
            browser.page_screenshot("dashboard-phone.png").await;
        },
    );
}

#[test]
fn without_javascript_every_card_shows_and_the_page_refreshes_itself() {
    in_browser(
        "without_javascript_every_card_shows_and_the_page_refreshes_itself",
        false,
        RoseyBuilder::new(),
        async |rosey, browser| {
            // The first render may predate the first sample; the page's own refreshes bring it.
            for plugin in PLUGINS {
                card_until(
                    browser,
                    &format!("{plugin}'s card with its figures"),
                    plugin,
                    Duration::from_secs(15),
                    |c| c.pid.trim().parse::<u32>().is_ok() && has_figure(&c.memory),
                )
                .await;
            }
            let events = Card::count(&browser.card("dice-roller").await.expect("dice-roller's card").events);
            let origin = browser.js("return performance.timeOrigin;").await;
            let first_card = browser.client.find(Locator::Css("#cards [data-plugin]")).await.expect("a card element");

            // New data exists on the server only after the page was rendered.
            rosey.say("!roll 1d6");
            let refreshed =
                eventually("the page to reload itself with the new event count", Duration::from_secs(15), async || {
                    let card = browser.card("dice-roller").await.ok_or("no dice-roller card")?;
                    let now = browser.js("return performance.timeOrigin;").await;
                    if now != origin && Card::count(&card.events) > events {
                        Ok(card)
                    } else {
                        Err(format!("{now} {card:?}"))
                    }
                })
                .await;
            assert!(first_card.text().await.is_err(), "the old page is gone (the new one replaced it): {refreshed:?}");

            let conn = browser.js("return document.getElementById('conn').textContent;").await;
            assert_eq!(conn, "static", "the script really did not run");
        },
    );
}
