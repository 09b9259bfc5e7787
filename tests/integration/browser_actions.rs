//! The action buttons in a real browser (see `e2e_support/browser.rs`), with actions enabled
//! (basic auth): a card's Reload button reloads the plugin and the card shows the new version and
//! the outcome without leaving the page, Stop takes a second click and Start replaces it, and
//! without JavaScript the buttons still work as plain forms (the browser comes back to the
//! dashboard, which shows the outcome).

use fantoccini::Locator;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::common::actions::{Deployable, wait_for_plugin};
use crate::common::{DEADLINE, RoseyBuilder};
use crate::e2e_support::browser::*;

/// What a card shows of the actions: the visible buttons' labels, the reload outcome line and
/// the answer to the last button pressed (empty when hidden).
#[derive(Debug, Deserialize)]
struct CardActions {
    buttons: Vec<String>,
    last_reload: String,
    answer: String,
}

async fn card_actions(browser: &Browser, plugin: &str) -> CardActions {
    let script = r#"
        var card = document.querySelector('#cards [data-plugin="' + arguments[0] + '"]');
        // (A closed <details> keeps its content laid out but skipped: only this sees it.)
        var shown = function (el) { return el.checkVisibility({ visibilityProperty: true }); };
        var text = function (el) { return shown(el) ? el.textContent : ''; };
        var buttons = Array.from(card.querySelectorAll('.card-actions button, .card-actions summary')).filter(shown);
        return {
            buttons: buttons.map(function (b) { return b.textContent; }),
            last_reload: text(card.querySelector('.last-reload')),
            answer: text(card.querySelector('.action-result'))
        };
    "#;
    let value = browser.client.execute(script, vec![json!(plugin)]).await.expect("card script runs");
    serde_json::from_value(value).expect("card actions")
}

#[test]
fn the_reload_button_on_a_card_reloads_the_plugin_and_the_card_shows_the_new_version() {
    let plugin = Deployable::new("versioned", "1");
    let mut builder = RoseyBuilder::new().plugins(json!([plugin.entry()]));
    builder.config["dashboard"]["auth"] = json!({ "username": "admin", "password": "s3cret" });
    let card_css = "#cards [data-plugin=\"versioned\"]";
    in_browser(
        "the_reload_button_on_a_card_reloads_the_plugin_and_the_card_shows_the_new_version",
        true,
        builder,
        async |rosey, browser| {
            wait_for_plugin(rosey, "version 1 running", "versioned", |p| p["version"] == "1");
            wait_live(browser).await;
            card_until(browser, "version 1 on the card", "versioned", DEADLINE, |c| c.version == "1").await;
            let offered = card_actions(browser, "versioned").await;
            assert_eq!(offered.buttons, ["Reload", "Restart…", "Stop…"], "a running plugin's buttons");
            browser.js("window.__noReload = 1;").await;

            plugin.deploy("2");
            click(browser, &format!("{card_css} form[data-action=reload] button")).await;
            card_until(browser, "the new version on the card", "versioned", LIVE_DEADLINE, |c| c.version == "2").await;
            let shown = eventually("the reload's outcome on the card", LIVE_DEADLINE, async || {
                let shown = card_actions(browser, "versioned").await;
                let done = shown.answer.starts_with("reloaded versioned 1 → 2 in ");
                if done && shown.last_reload.contains("reloaded versioned 1 → 2 in ") {
                    Ok(shown)
                } else {
                    Err(format!("{shown:?}"))
                }
            })
            .await;
            let card = browser.client.find(Locator::Css(card_css)).await.expect("the card");
            browser.screenshot("dashboard-card-reloaded.png", card.screenshot().await.expect("card screenshot"));

            // Stop asks for a second click; then the card offers Start instead.
            click(browser, &format!("{card_css} details:has(form[data-action=stop]) summary")).await;
            let asking = card_actions(browser, "versioned").await;
            assert!(asking.buttons.contains(&"Stop now".to_owned()), "the confirmation is shown: {asking:?}");
            assert_eq!(
                wait_for_plugin(rosey, "the state", "versioned", |_| true)["state"],
                "RUNNING",
                "not yet stopped"
            );
            click(browser, &format!("{card_css} form[data-action=stop] button")).await;
            card_until(browser, "the card to show STOPPED", "versioned", LIVE_DEADLINE, |c| c.state == "STOPPED").await;
            let stopped = eventually("Start offered instead of Stop", LIVE_DEADLINE, async || {
                let shown = card_actions(browser, "versioned").await;
                if shown.buttons == ["Reload", "Restart…", "Start"] { Ok(shown) } else { Err(format!("{shown:?}")) }
            })
            .await;
            assert!(stopped.answer.starts_with("stopped versioned in "), "{stopped:?}");
            click(browser, &format!("{card_css} form[data-action=start] button")).await;
            card_until(browser, "the card to show RUNNING again", "versioned", LIVE_DEADLINE, |c| {
                c.state == "RUNNING" && c.version == "2"
            })
            .await;

            let marker = browser.js("return window.__noReload === 1;").await;
            assert_eq!(marker, json!(true), "all of it without leaving the page: {shown:?}");

            // The plugin's page lists the reload.
            browser.client.goto(&rosey.url("/plugin/versioned")).await.expect("the plugin page loads");
            wait_live(browser).await;
            let log = browser
                .js("return Array.from(document.querySelectorAll('#reload-log > li'), li => li.querySelector('[data-field=versions]').textContent);")
                .await;
            assert_eq!(log, json!(["1 → 2"]), "one reload, from 1 to 2");
            browser.page_screenshot("plugin-page-reload-log.png").await;
        },
    );
}

#[test]
fn without_javascript_the_stop_button_still_stops_the_plugin_after_a_second_click() {
    let mut builder = RoseyBuilder::new().plugins(json!([{ "name": "dice-roller", "builtin": "dice-roller" }]));
    builder.config["dashboard"]["auth"] = json!({ "username": "admin", "password": "s3cret" });
    in_browser(
        "without_javascript_the_stop_button_still_stops_the_plugin_after_a_second_click",
        false,
        builder,
        async |rosey, browser| {
            let card = "#cards [data-plugin=\"dice-roller\"]";
            click(browser, &format!("{card} details:has(form[data-action=stop]) summary")).await;
            // The form posts as the browser sends it: its credentials, its own origin. The
            // answer sends the browser back to the dashboard, which shows the plugin stopped.
            click(browser, &format!("{card} form[data-action=stop] button")).await;
            let back = eventually("the dashboard again, showing dice-roller STOPPED", DEADLINE, async || {
                let url = browser.client.current_url().await.map_err(|e| e.to_string())?;
                let shown = browser.card("dice-roller").await;
                match shown {
                    Some(shown) if url.path() == "/" && shown.state == "STOPPED" => Ok(url),
                    other => Err(format!("{url}: {other:?}")),
                }
            })
            .await;
            assert_eq!(back.as_str(), rosey.url("/"), "back on the page the button was on");
            let start_hidden =
                browser.js(&format!("return document.querySelector('{card} form[data-action=start]').hidden;")).await;
            assert_eq!(start_hidden, false, "Start is offered now");
            let stopped = wait_for_plugin(rosey, "dice-roller stopped", "dice-roller", |p| p["state"] == "STOPPED");
            assert_eq!(stopped["pid"], Value::Null);
        },
    );
}
