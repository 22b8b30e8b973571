//! [`FlapDetector`]: notices a condition that keeps changing state, so its source can send one "flapping"
//! notice instead of a firing and a resolution per change.
//!
//! A pure value type with no clock and no I/O: the source (the health monitor, a threshold monitor) owns
//! one per fingerprint, tells it about each state change with the time it saw it, and asks it on every
//! evaluation whether the flapping has settled.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// When a condition counts as flapping: more than `max_changes` state changes inside `window`.
///
/// ```
/// use std::time::Duration;
/// use resee_ops_core::FlapConfig;
/// let cfg: FlapConfig = serde_json::from_str(r#"{"max_changes": 3, "window": "15m"}"#).unwrap();
/// assert_eq!(cfg.window, Duration::from_secs(900));
/// assert_eq!(FlapConfig::default().max_changes, 4);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct FlapConfig {
    /// The most state changes allowed inside `window`; one more starts flapping. Zero turns the detector
    /// off. Default 4 (two full down/up rounds).
    pub max_changes: u32,
    /// The window changes are counted in, and how long a flapping condition must keep one state to
    /// count as settled. Default 10 minutes (the throttle's window).
    #[serde(with = "crate::serde_duration")]
    pub window: Duration,
}

impl Default for FlapConfig {
    fn default() -> Self {
        Self { max_changes: 4, window: crate::DEFAULT_THROTTLE_WINDOW }
    }
}

impl FlapConfig {
    /// A configuration: flapping after more than `max_changes` changes inside `window`.
    pub fn new(max_changes: u32, window: Duration) -> Self {
        Self { max_changes, window }
    }

    /// The detector that never reports flapping.
    pub fn disabled() -> Self {
        Self { max_changes: 0, ..Self::default() }
    }

    /// Whether the detector is on.
    pub fn is_enabled(&self) -> bool {
        self.max_changes > 0 && !self.window.is_zero()
    }
}

/// What a [`FlapDetector`] says about a state change or an evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlapVerdict {
    /// Not flapping: send the change as usual.
    Steady,
    /// This change made it flapping: send one "flapping" notice and hold the change.
    Started,
    /// Still flapping: hold the change (send nothing).
    Flapping,
    /// It kept one state for a whole window: flapping is over. Resolve the "flapping" notice, then send
    /// the current state as usual.
    Settled,
}

/// Counts the state changes of one condition and says when it flaps and when it has settled.
///
/// Memory is bounded: it keeps at most `max_changes + 1` timestamps.
///
/// ```
/// use std::time::Duration;
/// use chrono::{DateTime, Utc};
/// use resee_ops_core::{FlapConfig, FlapDetector, FlapVerdict};
///
/// let t = |s: i64| DateTime::<Utc>::from_timestamp(1_700_000_000 + s, 0).unwrap();
/// let mut d = FlapDetector::new(FlapConfig::new(2, Duration::from_secs(600)));
/// assert_eq!(d.record_change(t(0)), FlapVerdict::Steady); // down
/// assert_eq!(d.record_change(t(60)), FlapVerdict::Steady); // up
/// assert_eq!(d.record_change(t(120)), FlapVerdict::Started); // down: a third change inside the window
/// assert_eq!(d.record_change(t(180)), FlapVerdict::Flapping); // up: held
/// assert_eq!(d.poll(t(700)), FlapVerdict::Flapping); // the last change was 520 s ago
/// assert_eq!(d.poll(t(780)), FlapVerdict::Settled); // a whole window without a change
/// assert_eq!(d.poll(t(790)), FlapVerdict::Steady);
/// ```
#[derive(Clone, Debug)]
pub struct FlapDetector {
    config: FlapConfig,
    changes: VecDeque<DateTime<Utc>>,
    flapping: bool,
}

impl FlapDetector {
    /// A detector with `config`, not flapping.
    pub fn new(config: FlapConfig) -> Self {
        Self { config, changes: VecDeque::new(), flapping: false }
    }

    /// The configuration.
    pub fn config(&self) -> &FlapConfig {
        &self.config
    }

    /// Whether the condition is flapping now (changes are held).
    pub fn is_flapping(&self) -> bool {
        self.flapping
    }

    /// Records a state change seen at `now` and says what to do with it.
    pub fn record_change(&mut self, now: DateTime<Utc>) -> FlapVerdict {
        if !self.config.is_enabled() {
            return FlapVerdict::Steady;
        }
        self.changes.push_back(now);
        self.forget_before(now);
        let limit = usize::try_from(self.config.max_changes).unwrap_or(usize::MAX);
        while self.changes.len() > limit.saturating_add(1) {
            self.changes.pop_front();
        }
        if self.flapping {
            FlapVerdict::Flapping
        } else if self.changes.len() > limit {
            self.flapping = true;
            FlapVerdict::Started
        } else {
            FlapVerdict::Steady
        }
    }

    /// Evaluates at `now` without a change: [`Settled`](FlapVerdict::Settled) once, when a flapping
    /// condition has gone a whole window without changing; otherwise `Flapping` or `Steady`.
    pub fn poll(&mut self, now: DateTime<Utc>) -> FlapVerdict {
        if !self.flapping {
            return FlapVerdict::Steady;
        }
        let quiet = match (self.changes.back(), chrono::Duration::from_std(self.config.window)) {
            (Some(last), Ok(window)) => now.signed_duration_since(*last) >= window,
            (None, _) => true,
            (Some(_), Err(_)) => false,
        };
        if quiet {
            self.flapping = false;
            self.changes.clear();
            FlapVerdict::Settled
        } else {
            FlapVerdict::Flapping
        }
    }

    fn forget_before(&mut self, now: DateTime<Utc>) {
        let Ok(window) = chrono::Duration::from_std(self.config.window) else { return };
        while self.changes.front().is_some_and(|t| now.signed_duration_since(*t) >= window) {
            self.changes.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    #[test]
    fn changes_spread_wider_than_the_window_never_flap() {
        let mut d = FlapDetector::new(FlapConfig::new(2, Duration::from_secs(600)));
        for i in 0..20 {
            assert_eq!(d.record_change(t(i * 301)), FlapVerdict::Steady, "change {i}");
        }
        assert!(d.changes.len() <= 3, "bounded memory");
    }

    #[test]
    fn disabled_never_flaps() {
        let mut d = FlapDetector::new(FlapConfig::disabled());
        for i in 0..20 {
            assert_eq!(d.record_change(t(i)), FlapVerdict::Steady);
        }
        assert_eq!(d.poll(t(30)), FlapVerdict::Steady);
    }

    #[test]
    fn a_change_while_flapping_restarts_the_settling_window() {
        let mut d = FlapDetector::new(FlapConfig::new(1, Duration::from_secs(100)));
        d.record_change(t(0));
        assert_eq!(d.record_change(t(10)), FlapVerdict::Started);
        assert_eq!(d.record_change(t(90)), FlapVerdict::Flapping);
        assert_eq!(d.poll(t(150)), FlapVerdict::Flapping);
        assert_eq!(d.poll(t(190)), FlapVerdict::Settled);
        assert!(!d.is_flapping());
        assert_eq!(d.record_change(t(200)), FlapVerdict::Steady, "counting starts afresh");
    }
}
