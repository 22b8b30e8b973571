//! Time as a dependency, so that every time-based decision can be tested without waiting.

use std::fmt::Debug;
use std::sync::Arc;

use chrono::{DateTime, Utc};

/// A source of wall-clock time.
///
/// Decisions that compare timestamps (throttle windows, heartbeat ages) ask a `Clock` rather than
/// [`Utc::now`], so tests drive them with a manual clock. Sleeping and timeouts use `tokio::time`, which
/// tests control with `tokio::time::pause`.
///
/// ```
/// use resee_ops_core::{Clock, SystemClock};
/// let before = chrono::Utc::now();
/// assert!(SystemClock.now() >= before);
/// ```
pub trait Clock: Send + Sync + Debug + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;

    /// The current time in nanoseconds since the Unix epoch: the same instant as [`now`](Clock::now), for hot
    /// paths that only compare times (building a `DateTime` costs more than reading the clock).
    fn now_nanos(&self) -> i64 {
        self.now().timestamp_nanos_opt().unwrap_or(i64::MAX)
    }
}

/// The system's real-time clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn now_nanos(&self) -> i64 {
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
            Err(before) => -i64::try_from(before.duration().as_nanos()).unwrap_or(i64::MAX),
        }
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }
    fn now_nanos(&self) -> i64 {
        (**self).now_nanos()
    }
}

impl<C: Clock + ?Sized> Clock for Box<C> {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }
    fn now_nanos(&self) -> i64 {
        (**self).now_nanos()
    }
}

/// A shared clock handle, as stored by the machinery in this crate.
pub type SharedClock = Arc<dyn Clock>;

/// The default clock handle.
pub fn system_clock() -> SharedClock {
    Arc::new(SystemClock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_nanos_agrees_with_now() {
        let before = Utc::now().timestamp_nanos_opt().unwrap();
        let nanos = SystemClock.now_nanos();
        let after = Utc::now().timestamp_nanos_opt().unwrap();
        assert!(before <= nanos && nanos <= after);
    }
}
