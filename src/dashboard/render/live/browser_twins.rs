//! The rules the live page applies as the server does, checked without a browser: the
//! sparkline and chart drawing ([`view::polyline`]), the charts' value scale
//! ([`view::nice_ceiling`], [`view::axis_value`]), the rounding of an uptime grown by a
//! delta's step ([`stepped`]) and the sparkline's length ([`SPARK_SAMPLES`]). The browser
//! keeps its own copy of each because it redraws from the points and applies the step on every
//! delta (sending ready-made lines would resend every point of every card each second), so
//! both sides are held to the answers of `tests/fixtures/drawing.json`: the Rust side here,
//! the JavaScript side by running the functions of `static/dashboard.js` in `node` (skipped,
//! with a notice, where `node` is not installed).

use std::process::Command;

use serde::Deserialize;
use serde_json::Value;

use super::diff::stepped;
use crate::dashboard::view::{self, SPARK_SAMPLES};

const FIXTURE: &str = include_str!("../../../../tests/fixtures/drawing.json");
const JS: &str = include_str!("../../../../static/dashboard.js");

#[derive(Deserialize)]
struct Fixture {
    polyline: Vec<Line>,
    uptime: Vec<Uptime>,
    nice_ceiling: Vec<Ceiling>,
    axis_value: Vec<AxisValue>,
}

#[derive(Deserialize)]
struct Ceiling {
    max: f64,
    top: f64,
}

#[derive(Deserialize)]
struct AxisValue {
    value: f64,
    label: String,
}

#[derive(Deserialize)]
struct Line {
    values: Vec<f64>,
    #[serde(rename = "box")]
    size: (f64, f64),
    #[serde(default)]
    floor: f64,
    points: String,
}

#[derive(Deserialize)]
struct Uptime {
    uptime: f64,
    step: f64,
    stepped: f64,
}

fn fixture() -> Fixture {
    serde_json::from_str(FIXTURE).expect("tests/fixtures/drawing.json is the shape above")
}

#[test]
fn the_server_draws_and_steps_as_the_fixture_says() {
    let fixture = fixture();
    for line in &fixture.polyline {
        assert_eq!(
            view::polyline(line.values.iter().copied(), line.size, line.floor),
            line.points,
            "{:?}",
            line.values
        );
    }
    for c in &fixture.nice_ceiling {
        assert_eq!(view::nice_ceiling(c.max), c.top, "scale for {}", c.max);
    }
    for a in &fixture.axis_value {
        assert_eq!(view::axis_value(a.value), a.label, "label of {}", a.value);
    }
    for up in &fixture.uptime {
        assert_eq!(stepped(&Value::from(up.uptime), up.step), Value::from(up.stepped), "{} + {}", up.uptime, up.step);
    }
}

#[test]
fn the_live_page_keeps_the_servers_sparkline_length() {
    assert!(JS.contains(&format!("const SPARK_SAMPLES = {SPARK_SAMPLES};")), "static/dashboard.js's SPARK_SAMPLES");
}

/// The source of `static/dashboard.js`'s function `name`: from its line to its closing brace
/// (functions inside the script's closure are indented by two spaces).
fn js_function(name: &str) -> &'static str {
    let start = JS.find(&format!("  function {name}(")).unwrap_or_else(|| panic!("dashboard.js defines {name}"));
    let end = JS[start..].find("\n  }\n").unwrap_or_else(|| panic!("{name} ends")) + start + "\n  }".len();
    &JS[start..end]
}

#[test]
fn the_live_page_draws_and_steps_as_the_fixture_says() {
    let script = format!(
        "{}\n{}\n{}\n{}\nconst fixture = {FIXTURE};\n\
         const wrong = [];\n\
         for (const l of fixture.polyline) {{\n\
           const got = polylinePoints(l.values, l.box[0], l.box[1], l.floor);\n\
           if (got !== l.points) wrong.push(`polyline ${{JSON.stringify(l.values)}}: ${{got}}`);\n\
         }}\n\
         for (const c of fixture.nice_ceiling) {{\n\
           const got = niceCeiling(c.max);\n\
           if (got !== c.top) wrong.push(`nice_ceiling ${{c.max}}: ${{got}}`);\n\
         }}\n\
         for (const a of fixture.axis_value) {{\n\
           const got = axisValue(a.value);\n\
           if (got !== a.label) wrong.push(`axis_value ${{a.value}}: ${{got}}`);\n\
         }}\n\
         for (const u of fixture.uptime) {{\n\
           const got = steppedUptime(u.uptime, u.step);\n\
           if (got !== u.stepped) wrong.push(`uptime ${{u.uptime}} + ${{u.step}}: ${{got}}`);\n\
         }}\n\
         console.log(wrong.join('\\n'));\n\
         process.exit(wrong.length ? 1 : 0);\n",
        js_function("polylinePoints"),
        js_function("steppedUptime"),
        js_function("niceCeiling"),
        js_function("axisValue"),
    );
    let output = match Command::new("node").arg("-e").arg(&script).output() {
        Ok(output) => output,
        Err(e) => {
            eprintln!("NOTICE: node not runnable ({e}); the live page's copy of the drawing rules is not checked");
            return;
        }
    };
    assert!(
        output.status.success(),
        "dashboard.js disagrees with tests/fixtures/drawing.json:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
