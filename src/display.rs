//! Every conversion of a time, duration, size, count or address for display or export: the
//! seed's short uptime text, RFC 3339 timestamps (the `time` crate writes them), Unix-epoch
//! numbers for the history samples and Prometheus, megabytes, digit groups and the decimal
//! places the JSON rounds to. One home, so the page, the chat, the JSON API and `/metrics` agree.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::format_description::well_known::Rfc3339;

/// A duration cut into whole calendar units, largest first (`time` does the arithmetic).
struct Parts {
    days: i64,
    hours: i64,
    minutes: i64,
    seconds: i64,
}

impl Parts {
    fn of(d: Duration) -> Parts {
        // Beyond `time::Duration::MAX` (292 billion years) nothing is left to show exactly.
        let d = time::Duration::try_from(d).unwrap_or(time::Duration::MAX);
        Parts {
            days: d.whole_days(),
            hours: d.whole_hours() % 24,
            minutes: d.whole_minutes() % 60,
            seconds: d.whole_seconds() % 60,
        }
    }
}

/// The seed's uptime format: `45s`, `12m`, `3h 5m`, `2d 4h` (two units at most, truncated).
pub fn format_uptime(d: Duration) -> String {
    let Parts { days, hours, minutes, seconds } = Parts::of(d);
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {minutes}m")
    } else if minutes > 0 {
        format!("{minutes}m")
    } else {
        format!("{seconds}s")
    }
}

/// Like [`format_uptime`] but with seconds under an hour, for how long a crashed process ran:
/// `3m 12s`.
pub fn format_duration(d: Duration) -> String {
    let Parts { days, hours, minutes, seconds } = Parts::of(d);
    if days > 0 || hours > 0 {
        format_uptime(d)
    } else if minutes > 0 {
        format!("{minutes}m {seconds}s")
    } else {
        format!("{seconds}s")
    }
}

/// How long an operator's action took: `0.84 s`, in hundredths, since a reload of a quick
/// plugin takes well under a second.
pub fn format_action_seconds(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// RFC 3339 in UTC, e.g. `2026-11-29T05:01:02.123Z`.
pub fn rfc3339(t: SystemTime) -> String {
    time::OffsetDateTime::from(t).format(&Rfc3339).unwrap_or_default()
}

/// Milliseconds since the Unix epoch (0 for a clock set before 1970).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Seconds since the Unix epoch, as Prometheus writes times (0 for a clock set before 1970).
pub fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

pub fn format_mb(mb: f64) -> String {
    format!("{mb:.1} MB")
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `v` rounded to `places` decimal places (the JSON API's figures).
pub fn round(v: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (v * f).round() / f
}

/// `host:port`, with brackets for IPv6 literals.
pub fn host_port(host: &str, port: u16) -> String {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => format!("[{v6}]:{port}"),
        _ => format!("{host}:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn uptime_reads_like_the_seed() {
        assert_eq!(format_uptime(Duration::from_secs_f64(45.9)), "45s");
        assert_eq!(format_uptime(secs(12 * 60 + 59)), "12m");
        assert_eq!(format_uptime(secs(3 * 3600 + 5 * 60)), "3h 5m");
        assert_eq!(format_uptime(secs(2 * 86400 + 4 * 3600 + 59)), "2d 4h");
        assert!(format_uptime(Duration::MAX).ends_with('h'), "no overflow at the extreme");
    }

    #[test]
    fn durations_keep_seconds_under_an_hour() {
        assert_eq!(format_duration(secs(0)), "0s");
        assert_eq!(format_duration(secs(192)), "3m 12s");
        assert_eq!(format_duration(secs(3600 + 61)), "1h 1m");
        assert_eq!(format_duration(secs(86400 + 3600)), "1d 1h");
    }

    #[test]
    fn rfc3339_is_utc() {
        let t = UNIX_EPOCH + Duration::from_millis(86_400_123);
        assert_eq!(rfc3339(t), "1970-01-02T00:00:00.123Z");
    }

    #[test]
    fn epoch_numbers() {
        let t = UNIX_EPOCH + Duration::from_millis(1_500);
        assert_eq!(unix_ms(t), 1_500);
        assert_eq!(unix_seconds(t), 1.5);
        assert_eq!(unix_ms(UNIX_EPOCH - secs(1)), 0);
    }
}
