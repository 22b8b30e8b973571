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
}

/// The system's real-time clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }
}

impl<C: Clock + ?Sized> Clock for Box<C> {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }
}

/// A shared clock handle, as stored by the machinery in this crate.
pub type SharedClock = Arc<dyn Clock>;

/// The default clock handle.
pub fn system_clock() -> SharedClock {
    Arc::new(SystemClock)
}
