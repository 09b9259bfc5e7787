//! The plugin page's charts in a real browser (see `e2e_support/browser.rs`), default fixture
//! (1 s polls): each chart has a value scale and a time axis, the pointer resting on a chart
//! reads out that point's time and value, and a crash is marked on the charts; without
//! JavaScript the server-drawn charts still have both axes.

use std::time::Duration;

use fantoccini::Locator;
use fantoccini::actions::{InputSource, MouseActions, PointerAction};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::common::{DEADLINE, RoseyBuilder, sigkill};
use crate::e2e_support::browser::*;

/// One chart as the reader sees it.
#[derive(Debug, Deserialize)]
struct Chart {
    values: Vec<String>,
    times: Vec<String>,
    readout: String,
    readout_shown: bool,
    crash_markers: usize,
}

async fn chart(browser: &Browser, key: &str) -> Chart {
    let script = r#"
        var f = document.querySelector('#charts [data-chart="' + arguments[0] + '"]');
        var texts = function (css) { return Array.from(f.querySelectorAll(css), function (e) { return e.textContent; }); };
        var out = f.querySelector('[data-chart-readout]');
        return {
            values: texts('[data-axis-value]'), times: texts('[data-axis-time]'),
            readout: out.textContent, readout_shown: !out.hidden,
            crash_markers: f.querySelectorAll('[data-marker="crash"]').length
        };
    "#;
    let value = browser.client.execute(script, vec![json!(key)]).await.expect("chart script runs");
    serde_json::from_value(value).expect("chart fields")
}

/// A time of day as the axis writes it: digits and colons (12:04:05, maybe with AM/PM or UTC).
fn is_clock(text: &str) -> bool {
    text.matches(':').count() == 2 && text.chars().any(|c| c.is_ascii_digit())
}

async fn open_plugin_page(rosey: &crate::common::Rosey, browser: &Browser, name: &str) {
    browser.client.goto(&rosey.url(&format!("/plugin/{name}"))).await.expect("the plugin page loads");
}

#[test]
fn a_plugin_pages_charts_have_axes_a_read_out_under_the_pointer_and_a_crash_marker() {
    in_browser(
        "a_plugin_pages_charts_have_axes_a_read_out_under_the_pointer_and_a_crash_marker",
        true,
        RoseyBuilder::new(),
        async |rosey, browser| {
            open_plugin_page(rosey, browser, "dice-roller").await;
            wait_live(browser).await;
            for key in ["cpu", "memory", "events", "response"] {
                eventually(&format!("the {key} chart's axes"), DEADLINE, async || {
                    let c = chart(browser, key).await;
                    let labelled = c.values.len() == 3 && c.values[2].starts_with('0') && c.times.len() == 3;
                    if labelled && c.times.iter().all(|t| is_clock(t)) { Ok(()) } else { Err(format!("{c:?}")) }
                })
                .await;
            }
            // Two samples at least, so the chart spans time.
            eventually("two samples on the charts", DEADLINE, async || {
                let n =
                    browser.js("return document.querySelector('[data-chart=\"cpu\"] polyline').points.length;").await;
                if n.as_u64() >= Some(2) { Ok(()) } else { Err(n.to_string()) }
            })
            .await;

            let svg = browser.client.find(Locator::Css("[data-chart=\"memory\"] svg")).await.expect("the memory chart");
            let hover = MouseActions::new("mouse".to_owned()).then(PointerAction::MoveToElement {
                element: svg,
                duration: Some(Duration::from_millis(50)),
                x: 100.0,
                y: 0.0,
            });
            browser.client.perform_actions(hover).await.expect("the pointer moves over the chart");
            let memory = eventually("the read-out under the pointer", DEADLINE, async || {
                let c = chart(browser, "memory").await;
                if c.readout_shown && c.readout.contains(" MB") { Ok(c) } else { Err(format!("{c:?}")) }
            })
            .await;
            let (time, value) = memory.readout.split_once(" · ").expect("time · value");
            assert!(is_clock(time), "the read-out's time: {:?}", memory.readout);
            let mb: f64 = value.trim_end_matches(" MB").parse().expect("the read-out's value");
            assert!(mb > 0.0, "a running plugin uses memory: {:?}", memory.readout);
            let guide = browser.js("return document.querySelector('[data-chart=\"memory\"] [data-chart-guide]').getAttribute('visibility');").await;
            assert_eq!(guide, Value::from("visible"), "a guide line marks the point read out");
            browser.page_screenshot("plugin-charts-readout.png").await;

            assert_eq!(chart(browser, "cpu").await.crash_markers, 0, "no crash yet");
            sigkill(rosey.pid_of("dice-roller"));
            for key in ["cpu", "memory", "events", "response"] {
                eventually(&format!("a crash marker on the {key} chart"), LIVE_DEADLINE, async || {
                    let c = chart(browser, key).await;
                    if c.crash_markers == 1 { Ok(()) } else { Err(format!("{c:?}")) }
                })
                .await;
            }
            let title = browser.js("return document.querySelector('[data-marker=\"crash\"] title').textContent;").await;
            assert!(title.as_str().is_some_and(|t| t.starts_with("crash: ")), "the marker says what: {title}");
            browser.page_screenshot("plugin-charts-crash.png").await;
        },
    );
}

#[test]
fn without_javascript_the_plugin_pages_charts_still_have_both_axes() {
    in_browser(
        "without_javascript_the_plugin_pages_charts_still_have_both_axes",
        false,
        RoseyBuilder::new(),
        async |rosey, browser| {
            // The history needs a sample or two before the time axis has labels.
            eventually("the server to label the time axis", DEADLINE, async || {
                open_plugin_page(rosey, browser, "8ball").await;
                let c = chart(browser, "cpu").await;
                if c.values.len() == 3 && c.times.len() == 3 && c.times[2].ends_with(" UTC") {
                    Ok(())
                } else {
                    Err(format!("{c:?}"))
                }
            })
            .await;
            for key in ["memory", "events", "response"] {
                let c = chart(browser, key).await;
                assert_eq!((c.values.len(), c.times.len()), (3, 3), "{key}: {c:?}");
                assert!(!c.readout_shown, "no read-out without a script: {c:?}");
            }
        },
    );
}
