//! Deadlines that never overflow: `Duration::MAX` means "no limit".
//!
//! `Instant + Duration` and `DateTime + TimeDelta` panic when the sum cannot be represented, and a
//! timeout, deadline, interval or window read from configuration can be anything up to `Duration::MAX`.
//! Every such sum in the workspace goes through [`SaturatingAdd::saturating_add`] instead: a sum past what
//! the type can hold becomes a far future ([`FAR_FUTURE`] ahead, as Tokio's own "far future"), so a limit
//! of `Duration::MAX` simply never arrives.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use resee_ops_core::deadline::{FAR_FUTURE, SaturatingAdd};
//!
//! let now = Instant::now();
//! assert_eq!(now.saturating_add(Duration::from_secs(5)), now + Duration::from_secs(5));
//! assert!(now.saturating_add(Duration::MAX) >= now + FAR_FUTURE); // no panic: no limit
//!
//! let t = chrono::Utc::now();
//! assert_eq!(t.saturating_add(Duration::MAX), chrono::DateTime::<chrono::Utc>::MAX_UTC);
//! ```

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

/// How far ahead "no limit" reaches when the exact sum cannot be represented: about 30 years.
pub const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// `self + d` that never panics; see the [module docs](self).
pub trait SaturatingAdd: Sized {
    /// `self + d`; when that cannot be represented, [`FAR_FUTURE`] after `self` (instants) or the latest
    /// representable time (`DateTime`).
    fn saturating_add(self, d: Duration) -> Self;
}

impl SaturatingAdd for std::time::Instant {
    fn saturating_add(self, d: Duration) -> Self {
        self.checked_add(d).or_else(|| self.checked_add(FAR_FUTURE)).unwrap_or(self)
    }
}

impl SaturatingAdd for tokio::time::Instant {
    fn saturating_add(self, d: Duration) -> Self {
        self.checked_add(d).or_else(|| self.checked_add(FAR_FUTURE)).unwrap_or(self)
    }
}

impl SaturatingAdd for DateTime<Utc> {
    fn saturating_add(self, d: Duration) -> Self {
        TimeDelta::from_std(d).ok().and_then(|d| self.checked_add_signed(d)).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_past_the_representable_become_the_far_future() {
        let now = std::time::Instant::now();
        for d in [Duration::ZERO, Duration::from_secs(1), FAR_FUTURE, Duration::MAX, Duration::from_secs(u64::MAX)] {
            let at = now.saturating_add(d);
            assert!(at >= now);
            assert!(at >= now + d.min(FAR_FUTURE), "{d:?}");
        }
        let tokio_now = tokio::time::Instant::now();
        assert!(tokio_now.saturating_add(Duration::MAX) >= tokio_now + FAR_FUTURE);
        let t = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap();
        assert_eq!(t.saturating_add(Duration::from_secs(60)), t + TimeDelta::seconds(60));
        assert_eq!(t.saturating_add(Duration::MAX), DateTime::<Utc>::MAX_UTC);
        assert_eq!(DateTime::<Utc>::MAX_UTC.saturating_add(Duration::from_secs(1)), DateTime::<Utc>::MAX_UTC);
    }
}
