//! Numbers as the config writes and reads them: durations in seconds with a sane range per key,
//! non-negative thresholds, and how numbers are printed back (`5`, not `5.0`; `1e300`, not 301
//! digits).
//!
//! Deserialisation does the checking, so a value out of range is reported like a type error:
//! with its key and source, and the key it took keeps its valid default for the other checks.

use std::marker::PhantomData;
use std::time::Duration;

use serde::de::{Error as _, Unexpected};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The range a [`Seconds`] value must lie in.
pub trait SecondsRange {
    /// Smallest accepted value. When it is above 0, zero and negatives are "not > 0" (the key's
    /// usual wording) and only small positive values get the range message.
    const MIN: f64;
    const MAX: f64;
    /// The whole range in words, for the message about a value outside it.
    const EXPECTED: &'static str;
}

/// `metrics.poll_interval`: at least 0.1 s (finer than the CPU sampler can measure), at most a day.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PollRange;
impl SecondsRange for PollRange {
    const MIN: f64 = 0.1;
    const MAX: f64 = 86_400.0;
    const EXPECTED: &'static str = "a number of seconds from 0.1 to 86400 (1 day)";
}

/// `metrics.history_duration`: up to a week (its lower bound, the poll interval, spans keys).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HistoryRange;
impl SecondsRange for HistoryRange {
    const MIN: f64 = 0.0;
    const MAX: f64 = 604_800.0;
    const EXPECTED: &'static str = "a number of seconds >= metrics.poll_interval, at most 604800 (1 week)";
}

/// The restart delays and reset window: zero (no wait) up to a day.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DelayRange;
impl SecondsRange for DelayRange {
    const MIN: f64 = 0.0;
    const MAX: f64 = 86_400.0;
    const EXPECTED: &'static str = "a number of seconds from 0 to 86400 (1 day)";
}

/// `reload_timeout`, `drain_timeout` and `command_timeout`: above zero, up to an hour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReloadRange;
impl SecondsRange for ReloadRange {
    const MIN: f64 = 0.1;
    const MAX: f64 = 3_600.0;
    const EXPECTED: &'static str = "a number of seconds from 0.1 to 3600 (1 hour)";
}

/// The chat connections' pacing and timeouts: from 0.01 s (tests pace fast) to an hour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChatRange;
impl SecondsRange for ChatRange {
    const MIN: f64 = 0.01;
    const MAX: f64 = 3_600.0;
    const EXPECTED: &'static str = "a number of seconds from 0.01 to 3600 (1 hour)";
}

/// A number of seconds within `R`'s range, kept as written (for `rosey config`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seconds<R> {
    written: f64,
    range: PhantomData<R>,
}

/// A value outside a [`Seconds`] range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OutOfRange {
    /// Zero or below where the range starts above zero, below zero elsewhere, or not a number.
    #[error("{} is below the range", compact(*.0))]
    TooSmall(f64),
    /// Positive and finite, yet outside the range.
    #[error("expected {expected}, found {}", compact(*found))]
    OutsideRange { expected: &'static str, found: f64 },
}

impl<R: SecondsRange> Seconds<R> {
    pub fn new(written: f64) -> Result<Self, OutOfRange> {
        let floor_ok = if R::MIN > 0.0 { written > 0.0 } else { written >= 0.0 };
        if !floor_ok || written.is_nan() {
            return Err(OutOfRange::TooSmall(written));
        }
        if !(R::MIN..=R::MAX).contains(&written) {
            return Err(OutOfRange::OutsideRange { expected: R::EXPECTED, found: written });
        }
        Ok(Seconds { written, range: PhantomData })
    }

    /// A value the program itself chose (a default).
    pub fn builtin(value: Duration) -> Self {
        Self::new(value.as_secs_f64()).expect("a built-in default is within its range")
    }

    pub fn written(self) -> f64 {
        self.written
    }

    pub fn duration(self) -> Duration {
        // In range, so finite and between 0 and a week: it converts.
        Duration::try_from_secs_f64(self.written).unwrap_or(Duration::ZERO)
    }
}

impl<'de, R: SecondsRange> Deserialize<'de> for Seconds<R> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let written = f64::deserialize(deserializer)?;
        Seconds::new(written).map_err(|e| match e {
            // The key's own wording ("> 0", ">= 0") is what the reporter adds to an invalid value.
            OutOfRange::TooSmall(v) => D::Error::invalid_value(Unexpected::Float(v), &R::EXPECTED),
            outside @ OutOfRange::OutsideRange { .. } => D::Error::custom(outside),
        })
    }
}

impl<R> Serialize for Seconds<R> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        whole_as_integer(&self.written, serializer)
    }
}

/// A finite number >= 0 (the dashboard's warning thresholds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NonNegative(f64);

impl NonNegative {
    pub const fn of(value: u32) -> Self {
        NonNegative(value as f64)
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

impl<'de> Deserialize<'de> for NonNegative {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = f64::deserialize(deserializer)?;
        if value.is_finite() && value >= 0.0 {
            Ok(NonNegative(value))
        } else {
            Err(D::Error::invalid_value(Unexpected::Float(value), &"a number >= 0"))
        }
    }
}

impl Serialize for NonNegative {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        whole_as_integer(&self.0, serializer)
    }
}

/// Whole numbers are printed as integers (`5`, not `5.0`), as rosey.json writes them.
fn whole_as_integer<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    // Below 2^53 every whole f64 is exactly an i64.
    if value.fract() == 0.0 && value.abs() < 9.0e15 {
        serializer.serialize_i64(*value as i64)
    } else {
        serializer.serialize_f64(*value)
    }
}

/// A number short enough for a message: `0.5`, `3600`, but `1e300` and `1e-10`.
pub fn compact(value: f64) -> String {
    let magnitude = value.abs();
    if value == 0.0 || !value.is_finite() || (1e-4..1e15).contains(&magnitude) {
        value.to_string()
    } else {
        format!("{value:e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_short() {
        assert_eq!(compact(0.0), "0");
        assert_eq!(compact(3600.0), "3600");
        assert_eq!(compact(0.5), "0.5");
        assert_eq!(compact(1e300), "1e300");
        assert_eq!(compact(1e-10), "1e-10");
        assert_eq!(compact(-2.5e20), "-2.5e20");
    }

    #[test]
    fn seconds_outside_their_range_are_refused() {
        assert_eq!(Seconds::<PollRange>::new(0.0), Err(OutOfRange::TooSmall(0.0)));
        assert_eq!(Seconds::<DelayRange>::new(-1.0), Err(OutOfRange::TooSmall(-1.0)));
        assert!(matches!(Seconds::<PollRange>::new(1e-10), Err(OutOfRange::OutsideRange { .. })));
        assert!(matches!(Seconds::<HistoryRange>::new(1e300), Err(OutOfRange::OutsideRange { .. })));
        assert_eq!(Seconds::<DelayRange>::new(0.0).map(Seconds::duration), Ok(Duration::ZERO));
        assert_eq!(Seconds::<HistoryRange>::new(604_800.0).map(Seconds::duration), Ok(Duration::from_secs(604_800)));
    }
}
