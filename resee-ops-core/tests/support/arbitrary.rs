//! Arbitrary configuration values for the property tests of every crate (each includes this file with
//! `#[path]`, so the strategy is written once and proptest stays a dev-dependency).
//!
//! A config parser meets two kinds of input: the wrong shape (any JSON at all) and the right keys with
//! wrong values (numbers at their extremes, durations that do not fit a `Duration`, strings that look
//! almost right). [`config_value`] produces both, using the keys of a serialised sample so most cases get
//! past "unknown field" into the parsing of each value.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use proptest::prelude::*;
use serde_json::{Map, Value};

/// Strings that configuration parsers treat specially, or almost.
const SPECIAL: &[&str] = &[
    "",
    " ",
    "-1",
    "0",
    "-1s",
    "0s",
    "1ns",
    "5m",
    "1h30m",
    "250ms",
    "18446744073709551615s",
    "18446744073709551616",
    "99999999999999999999d",
    "1e400s",
    "1e-400s",
    "NaN",
    "inf",
    "-inf",
    "1.5",
    "unlimited",
    "off",
    "true",
    "null",
    "postgres://u:pw@127.0.0.1:5432/db?sslmode=require",
    "host=127.0.0.1 user=u password=pw",
    "redis://:pw@127.0.0.1:6379/0",
    "rediss://127.0.0.1",
    "https://hooks.slack.com/services/T0/B0/x",
    "http://127.0.0.1:1/x",
    "UTC",
    "Asia/Seoul",
    "Mars/Olympus",
    "* * * * *",
    "0 3 * * *",
    "@daily",
    "61 * * * *",
    "info",
    "debug",
    "warn,resee=trace",
    "json",
    "text",
    "gzip",
    "zstd",
    "default",
    "every_cycle",
    "on_change",
    "keep_state",
    "alert",
    "ok",
    ">",
    "<",
    "1y2m3d4h",
    "4294967296d",
    "\u{0}",
    "💥",
    "../../etc/passwd",
    "%zz",
    ":emoji:",
];

/// A leaf value: extremes of every number type, duration-like strings, special and random strings.
pub fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop::sample::select(vec![0.0, -0.0, 0.5, -1.0, 1e300, -1e300, 1.8446744073709552e19, 5e-324, f64::MAX])
            .prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f).map(Value::Number)),
        prop::sample::select(SPECIAL).prop_map(Value::from),
        (any::<u64>(), prop::sample::select(vec!["ns", "us", "ms", "s", "m", "h", "d", "w", "y", ""]))
            .prop_map(|(n, unit)| Value::from(format!("{n}{unit}"))),
        "\\PC{0,16}".prop_map(Value::from),
    ]
}

/// Any value whose objects mostly use `keys` (and sometimes other names), nested a few levels.
pub fn value_with_keys(keys: Vec<String>) -> BoxedStrategy<Value> {
    let key = prop_oneof![4 => prop::sample::select(keys), 1 => "[a-z_]{1,10}"];
    leaf()
        .prop_recursive(3, 32, 8, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((key.clone(), inner), 0..8)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
            ]
        })
        .boxed()
}

/// Values for a configuration shaped like `sample`: mostly objects with its keys (and those of its nested
/// objects), the keys' values arbitrary.
pub fn config_value(sample: &Value) -> impl Strategy<Value = Value> {
    let mut keys = Vec::new();
    collect_keys(sample, &mut keys);
    keys.sort();
    keys.dedup();
    if keys.is_empty() {
        keys.push("value".to_owned());
    }
    let any = value_with_keys(keys.clone());
    let top = prop::collection::vec((prop::sample::select(keys), any.clone()), 0..10)
        .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>()));
    prop_oneof![4 => top, 1 => any]
}

fn collect_keys(v: &Value, keys: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                keys.push(k.clone());
                collect_keys(v, keys);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_keys(v, keys)),
        _ => {}
    }
}

/// Deserialises `value` as `T` from JSON and, where it has a TOML form, from TOML: either may fail, neither
/// may panic. Returns the JSON result for the caller to use.
pub fn parse<T: serde::de::DeserializeOwned>(value: &Value) -> Option<T> {
    if let Ok(text) = toml::to_string(value) {
        let _ = toml::from_str::<T>(&text);
    }
    serde_json::from_value::<T>(value.clone()).ok()
}

/// Durations a builder must take: zero, the largest, around the edges of what `Instant`, chrono and
/// `u32` milliseconds hold, and arbitrary ones.
pub fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::MAX),
        Just(Duration::from_secs(u64::MAX)),
        Just(Duration::from_secs(i64::MAX as u64)),
        Just(Duration::from_millis(u64::from(u32::MAX) + 1)),
        Just(Duration::from_nanos(1)),
        (0u64..100_000).prop_map(Duration::from_millis),
        (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
    ]
}
