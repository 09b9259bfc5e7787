//! The detail page's charts as a person reads them: a value scale rounded up to a figure that
//! reads well (so the labels are 0, half and the top of the scale), a time axis, and markers
//! where the plugin crashed or was reloaded. The server draws all of it, so the page has axes
//! without JavaScript; the live page redraws it from the points with its own copies of
//! [`nice_ceiling`] and [`axis_value`] (held to tests/fixtures/drawing.json like the lines).

use std::time::SystemTime;

use serde::Serialize;

use crate::display::unix_ms;
use crate::metrics::PluginSnapshot;
use crate::metrics::history::SeriesView;

/// The top of a value scale: the smallest 1, 2 or 5 times a power of ten at or above `max`
/// (1 for a chart of zeros, so its scale still reads 0 to 1).
pub fn nice_ceiling(max: f64) -> f64 {
    if max.is_nan() || max <= 0.0 {
        return 1.0;
    }
    let power = 10f64.powi(max.log10().floor() as i32);
    let fraction = max / power;
    let nice = if fraction <= 1.0 {
        1.0
    } else if fraction <= 2.0 {
        2.0
    } else if fraction <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * power
}

/// A value on an axis or in the read-out: at most two decimals, no trailing zeros.
pub fn axis_value(v: f64) -> String {
    let rounded = (v * 100.0).round() / 100.0;
    // `-0` would read oddly under a chart of non-negative figures.
    format!("{}", if rounded == 0.0 { 0.0 } else { rounded })
}

/// A sample's time on the time axis, in UTC (the live page relabels it in the reader's zone).
fn clock(at_ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second())
}

/// The three labels of the value scale, top first: the scale's top, its half, and 0.
pub fn value_labels(top: f64, unit: &str) -> Vec<String> {
    [top, top / 2.0, 0.0].iter().map(|&v| format!("{}{unit}", axis_value(v))).collect()
}

/// The three labels of the time axis, oldest first (none without samples).
pub fn time_labels(history: &SeriesView) -> Vec<String> {
    let (Some(first), Some(last)) = (history.iter().next(), history.iter().next_back()) else {
        return Vec::new();
    };
    let middle = first.at_ms + (last.at_ms - first.at_ms) / 2;
    let mut labels = vec![clock(first.at_ms), clock(middle), clock(last.at_ms)];
    labels[2].push_str(" UTC");
    labels
}

/// A crash or a reload, drawn as a vertical line across every chart.
#[derive(Debug, Clone, Serialize)]
pub struct Marker {
    /// `crash` or `reload`.
    pub kind: &'static str,
    /// Where it is drawn, in the chart's box.
    pub x: f64,
    /// What a pointer resting on it shows.
    pub title: String,
}

/// The crashes and reloads within the charts' window, placed on a `width` wide time axis.
pub fn markers(p: &PluginSnapshot, width: f64) -> Vec<Marker> {
    let history = &p.history;
    let (Some(first), Some(last)) = (history.iter().next(), history.iter().next_back()) else {
        return Vec::new();
    };
    let (start, end) = (first.at_ms, last.at_ms);
    let place = |at: SystemTime| {
        let at = unix_ms(at);
        (at >= start).then(|| {
            // Later than the newest sample (it comes with the next one): at the right edge.
            let x = if end > start { (at - start) as f64 / (end - start) as f64 * width } else { width };
            x.min(width).round()
        })
    };
    let crashes = p.crash_log.iter().filter_map(|c| {
        place(c.at).map(|x| Marker { kind: "crash", x, title: format!("crash: {}", super::crash_reason(c)) })
    });
    let reloads = p.operations.reload_log.iter().filter_map(|r| {
        let outcome = super::ReloadView::of(r).outcome;
        place(r.at).map(|x| Marker { kind: "reload", x, title: format!("reload: {outcome}") })
    });
    crashes.chain(reloads).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_end_on_a_figure_that_reads_well() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(37.3), 50.0);
        assert_eq!(nice_ceiling(100.0), 100.0);
        assert_eq!(nice_ceiling(101.0), 200.0);
        assert_eq!(value_labels(50.0, "%"), ["50%", "25%", "0%"]);
        assert_eq!(value_labels(0.5, " ms"), ["0.5 ms", "0.25 ms", "0 ms"]);
    }

    #[test]
    fn clock_labels_are_utc_times_of_day() {
        assert_eq!(clock(0), "00:00:00");
        assert_eq!(clock((13 * 3600 + 4 * 60 + 5) * 1000 + 999), "13:04:05");
    }
}
