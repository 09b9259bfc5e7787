//! `rosey status [NAME]`: the plugins as a table (name, state, pid, uptime, CPU, memory,
//! restarts, version), or with `--json` the API's own answer. Each row comes from
//! `/api/plugin/NAME` (the one answer with `restarts`); the list of names from
//! `/api/metrics`. Every field from the bot is shown escaped, and the columns line up by how
//! wide their text shows on a terminal.

use serde::Deserialize;

use super::RemoteError;
use super::client::{Client, read};
use super::terminal::{Colour, Style, escaped, width};
use crate::display::{format_mb, format_uptime};
use crate::plugins::spec::PluginName;

/// What `rosey status` shows.
pub struct StatusRequest<'a> {
    pub plugin: Option<&'a PluginName>,
    pub json: bool,
}

/// Ask and print.
pub fn show(client: &Client, request: &StatusRequest<'_>) -> Result<String, RemoteError> {
    let path = match request.plugin {
        Some(name) => format!("api/plugin/{name}"),
        None => "api/metrics".to_owned(),
    };
    let body = client.get(&path)?;
    if request.json {
        return Ok(json_for_terminal(&body));
    }
    let bad_answer = |body: String| RemoteError::BadAnswer { url: client.url(&path), body };
    let rows = match request.plugin {
        Some(_) => vec![read::<PluginAnswer>(&body).ok_or_else(|| bad_answer(body))?],
        None => {
            let Some(metrics) = read::<MetricsAnswer>(&body) else { return Err(bad_answer(body)) };
            let mut rows = Vec::with_capacity(metrics.plugins.len());
            for listed in metrics.plugins {
                let Ok(name) = PluginName::new(&listed.name) else { return Err(bad_answer(body)) };
                let path = format!("api/plugin/{name}");
                match client.get(&path) {
                    Ok(body) => rows.push(read::<PluginAnswer>(&body).ok_or_else(|| bad_answer(body))?),
                    // Removed by a config reload since the list was taken.
                    Err(RemoteError::Refused { status: 404, .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            rows
        }
    };
    Ok(table(&rows, Style::for_stdout()))
}

/// `/api/metrics`, as far as the table needs it.
#[derive(Debug, Deserialize)]
struct MetricsAnswer {
    plugins: Vec<Listed>,
}

#[derive(Debug, Deserialize)]
struct Listed {
    name: String,
}

/// `/api/plugin/NAME`, as far as the table needs it.
#[derive(Debug, Deserialize)]
struct PluginAnswer {
    name: String,
    version: String,
    state: String,
    /// The bot's own colour for the card (its thresholds, not this terminal's config); absent
    /// from a bot older than the field.
    #[serde(default)]
    health: Option<String>,
    pid: Option<u32>,
    current: Current,
    restarts: u64,
}

#[derive(Debug, Deserialize)]
struct Current {
    cpu_percent: f64,
    memory_mb: f64,
    uptime_seconds: f64,
}

impl PluginAnswer {
    /// The card's colour as the bot classifies it (`health`): green, yellow above a
    /// threshold, red when crashed or failed, none while starting or stopped.
    fn colour(&self) -> Option<Colour> {
        match self.health.as_deref()? {
            "healthy" => Some(Colour::Green),
            "warning" => Some(Colour::Yellow),
            "error" => Some(Colour::Red),
            _ => None,
        }
    }

    /// The row's cells; figures of a process only while one runs.
    fn cells(&self) -> [String; 8] {
        let running = self.pid.is_some();
        let figure = |text: String| if running { text } else { "-".to_owned() };
        [
            escaped(&self.name),
            escaped(&self.state),
            self.pid.map_or_else(|| "-".to_owned(), |pid| pid.to_string()),
            figure(format_uptime(
                std::time::Duration::try_from_secs_f64(self.current.uptime_seconds).unwrap_or_default(),
            )),
            figure(format!("{:.1}%", self.current.cpu_percent)),
            figure(format_mb(self.current.memory_mb)),
            self.restarts.to_string(),
            escaped(&self.version),
        ]
    }
}

const HEADERS: [&str; 8] = ["NAME", "STATE", "PID", "UPTIME", "CPU", "MEMORY", "RESTARTS", "VERSION"];
/// Figures line up on the right.
const RIGHT_ALIGNED: [bool; 8] = [false, false, true, true, true, true, true, false];
/// The state column.
const STATE: usize = 1;

/// The table, a header line and a line per plugin, columns two spaces apart.
fn table(rows: &[PluginAnswer], style: Style) -> String {
    let cells: Vec<[String; 8]> = rows.iter().map(PluginAnswer::cells).collect();
    let mut widths = HEADERS.map(width);
    for row in &cells {
        for (column, cell) in row.iter().enumerate() {
            widths[column] = widths[column].max(width(cell));
        }
    }
    let mut out = String::new();
    let mut line = |texts: [&str; 8], colour: Option<Colour>| {
        let mut text = String::new();
        for (column, cell) in texts.into_iter().enumerate() {
            let padding = " ".repeat(widths[column] - width(cell));
            let cell = if column == STATE { style.paint(cell, colour) } else { cell.to_owned() };
            if column > 0 {
                text.push_str("  ");
            }
            if RIGHT_ALIGNED[column] {
                text.push_str(&padding);
                text.push_str(&cell);
            } else {
                text.push_str(&cell);
                text.push_str(&padding);
            }
        }
        out.push_str(text.trim_end_matches(' '));
        out.push('\n');
    };
    line(HEADERS, None);
    for (row, plugin) in cells.iter().zip(rows) {
        line(row.each_ref().map(String::as_str), plugin.colour());
    }
    out
}

/// The API's JSON with the characters JSON leaves raw but a terminal would obey (C1 controls
/// such as U+009B, DEL, bidirectional overrides) written as `\uXXXX` escapes: the same JSON
/// value, safe to print. They can only occur inside strings, where the escape means the same.
fn json_for_terminal(body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 1);
    for c in body.chars() {
        if crate::chat::console::is_unsafe_for_terminals(c) && !matches!(c, '\n' | '\r' | '\t') {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn plugin(name: &str, state: &str, pid: Option<u32>, version: &str) -> PluginAnswer {
        with_health(name, state, pid, version, "healthy")
    }

    fn with_health(name: &str, state: &str, pid: Option<u32>, version: &str, health: &str) -> PluginAnswer {
        let answer = json!({
            "name": name, "version": version, "state": state, "pid": pid, "restarts": 2, "health": health,
            "current": { "cpu_percent": 1.25, "memory_mb": 4.24, "uptime_seconds": 185.0 },
        });
        serde_json::from_value(answer).expect("the API's shape")
    }

    #[test]
    fn columns_line_up_and_hostile_text_is_escaped() {
        let rows = [
            plugin("dice-roller", "RUNNING", Some(4242), "0.1.0"),
            plugin("ev\u{1b}[2Jil", "FAILED", None, "<img>\"\\ & 🦀 '\u{202e}"),
        ];
        assert_eq!(
            table(&rows, Style::PLAIN),
            "NAME           STATE     PID  UPTIME   CPU  MEMORY  RESTARTS  VERSION\n\
             dice-roller    RUNNING  4242      3m  1.2%  4.2 MB         2  0.1.0\n\
             ev\\u{1b}[2Jil  FAILED      -       -     -       -         2  <img>\"\\ & 🦀 '\\u{202e}\n"
        );
    }

    #[test]
    fn wide_characters_take_two_cells() {
        let rows = [plugin("🦀🦀", "RUNNING", Some(1), "1"), plugin("abcd", "RUNNING", Some(2), "1")];
        let text = table(&rows, Style::PLAIN);
        let state_at: Vec<usize> = text.lines().map(|l| width(&l[..l.find("RUNNING").unwrap_or(0)])).collect();
        assert_eq!(state_at[1], state_at[2], "{text}");
    }

    #[test]
    fn states_take_the_dashboards_colours() {
        let coloured = table(
            &[
                with_health("a", "RUNNING", Some(1), "1", "warning"),
                with_health("b", "CRASHED", None, "1", "error"),
                with_health("c", "STOPPED", None, "1", "idle"),
            ],
            Style::COLOURED,
        );
        assert!(coloured.contains("\x1b[33mRUNNING\x1b[0m"), "over the CPU threshold: {coloured}");
        assert!(coloured.contains("\x1b[31mCRASHED\x1b[0m"), "{coloured}");
        assert!(coloured.contains("  STOPPED  "), "{coloured}");
        assert!(table(&[plugin("a", "RUNNING", Some(1), "1")], Style::COLOURED).contains("\x1b[32mRUNNING\x1b[0m"));
    }

    #[test]
    fn json_stays_json_without_terminal_controls() {
        let body = json!({ "version": "a\u{9b}2J\u{202e}b\u{7f}", "name": "\u{1b}" }).to_string();
        let safe = json_for_terminal(&body);
        assert!(!safe.chars().any(|c| crate::chat::console::is_unsafe_for_terminals(c) && c != '\n'), "{safe}");
        let back: serde_json::Value = serde_json::from_str(&safe).expect("still JSON");
        assert_eq!(back.to_string(), body, "the same value");
    }
}
