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
        *now += chrono::Duration::from_std(d).expect("duration in range");
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
