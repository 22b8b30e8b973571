use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::Clock;

/// A clock that moves only when told to.
///
/// ```
/// use std::time::Duration;
/// use resee_ops_core::Clock;
/// use resee_ops_core::testing::ManualClock;
/// let clock = ManualClock::new();
/// let t0 = clock.now();
/// clock.advance(Duration::from_secs(600));
/// assert_eq!((clock.now() - t0).num_seconds(), 600);
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    /// A clock at 2025-10-15 03:00:00 UTC (a fixed, recognisable instant).
    pub fn new() -> Self {
        Self::at(DateTime::from_timestamp(1_760_497_200, 0).expect("valid timestamp"))
    }

    /// A clock at `t`.
    pub fn at(t: DateTime<Utc>) -> Self {
        Self { now: Arc::new(Mutex::new(t)) }
    }

    /// Moves the clock forward.
    pub fn advance(&self, d: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        *now = crate::deadline::SaturatingAdd::saturating_add(*now, d);
    }

    /// Sets the clock (backwards too).
    pub fn set(&self, t: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) = t;
    }

    /// This clock as a shared handle.
    pub fn shared(&self) -> crate::SharedClock {
        Arc::new(self.clone())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A wall clock that follows Tokio's clock from a chosen instant: with paused time
/// (`tokio::time::pause`, `start_paused`), sleeping advances it too, so schedulers that compute fire times
/// from a [`Clock`] and wait with `tokio::time` can be tested across days (and DST changes) in no time.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// use std::time::Duration;
/// use resee_ops_core::Clock;
/// use resee_ops_core::testing::TokioClock;
/// let clock = TokioClock::at("2027-03-13T12:00:00Z".parse().unwrap());
/// tokio::time::sleep(Duration::from_secs(86_400)).await;
/// assert_eq!(clock.now().to_rfc3339(), "2027-03-14T12:00:00+00:00");
/// # });
/// ```
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: DateTime<Utc>,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// A clock reading `t` now, moving with `tokio::time`.
    pub fn at(t: DateTime<Utc>) -> Self {
        Self { origin: t, start: tokio::time::Instant::now() }
    }

    /// This clock as a shared handle.
    pub fn shared(&self) -> crate::SharedClock {
        Arc::new(*self)
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        self.origin + chrono::Duration::from_std(self.start.elapsed()).unwrap_or(chrono::Duration::MAX)
    }
}
