//! Serde support for durations in configuration (`#[serde(with = "resee_ops_core::serde_duration")]`): `"500ms"`, `"30s"`, `"10m"`, `"2h"`, `"1d"`, or a plain number of seconds.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

use crate::{Error, ErrorKind};

/// Parses `"500ms"`, `"30s"`, `"10m"`, `"2h"`, `"1d"` or a bare number of seconds (`"90"`, `"1.5"`).
///
/// ```
/// use std::time::Duration;
/// use resee_ops_core::parse_duration;
/// assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
/// assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
/// assert!(parse_duration("ten minutes").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, Error> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let bad = || Error::new(ErrorKind::InvalidConfig, format!("not a duration: {text:?} (try \"30s\", \"10m\")"));
    let n: f64 = number.parse().map_err(|_| bad())?;
    let scale = match unit.trim() {
        "ms" => 0.001,
        "" | "s" | "sec" | "secs" => 1.0,
        "m" | "min" | "mins" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(n * scale).map_err(|_| bad())
}

/// Formats a duration the way [`parse_duration`] reads it (`"600s"`, `"250ms"`).
pub fn format_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 { format!("{}s", d.as_secs()) } else { format!("{}ms", d.as_millis()) }
}

/// `#[serde(serialize_with)]` half of `#[serde(with = "resee_ops_core::serde_duration")]`.
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

/// `#[serde(deserialize_with)]` half: accepts a number of seconds or a string for [`parse_duration`].
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Secs(f64),
        Text(String),
    }
    match Repr::deserialize(d)? {
        Repr::Secs(n) => Duration::try_from_secs_f64(n).map_err(serde::de::Error::custom),
        Repr::Text(t) => parse_duration(&t).map_err(serde::de::Error::custom),
    }
}
