//! Sliding windows as rings of fixed-length time buckets ("ticks"), shared by the in-process sources.

use std::time::Duration;

use tokio::time::Instant;

use crate::MonitorError;

/// The default bucket length of the in-process sources.
pub const DEFAULT_GRANULARITY: Duration = Duration::from_secs(60);

/// The default history the in-process sources keep.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(3600);

/// The most buckets a source keeps (retention / granularity): 100 000, about 69 days of one-minute buckets.
pub const MAX_BUCKETS: u64 = 100_000;

/// Where a bucket starts: whole buckets since the source was created. Time is `tokio::time::Instant`, so
/// tests move it with `tokio::time::pause`/`advance`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ticks {
    base: Instant,
    granularity_secs: u64,
    /// Buckets kept, the current one included.
    retention: u64,
}

impl Ticks {
    pub(crate) fn new(granularity: Duration, retention: Duration, what: &str) -> Result<Self, MonitorError> {
        if granularity < Duration::from_secs(1) || granularity.subsec_nanos() != 0 {
            return Err(crate::error::invalid_config(format!(
                "{what}: granularity must be a whole number of seconds, at least 1s"
            )));
        }
        if retention < granularity {
            return Err(crate::error::invalid_config(format!("{what}: retention must be at least the granularity")));
        }
        let granularity_secs = granularity.as_secs();
        // Memory grows with the buckets kept (a ring per series): bounded, so that no configured retention
        // (`Duration::MAX` included) can overflow the count or exhaust memory.
        let buckets = retention.as_secs().div_ceil(granularity_secs);
        if buckets > MAX_BUCKETS {
            return Err(crate::error::invalid_config(format!(
                "{what}: retention / granularity must be at most {MAX_BUCKETS} buckets, got {buckets}"
            )));
        }
        Ok(Self { base: Instant::now(), granularity_secs, retention: buckets + 1 })
    }

    /// The bucket `at` falls in.
    #[inline]
    pub(crate) fn tick_of(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.base).as_secs() / self.granularity_secs
    }

    /// Where bucket `tick` ends (`None` if an `Instant` cannot hold it).
    pub(crate) fn end_of(&self, tick: u64) -> Option<Instant> {
        let secs = tick.checked_add(1)?.checked_mul(self.granularity_secs)?;
        self.base.checked_add(Duration::from_secs(secs))
    }

    /// The current bucket.
    pub(crate) fn now(&self) -> u64 {
        self.tick_of(Instant::now())
    }

    /// The first bucket of a window ending now: a window of `n` buckets covers the `n - 1` closed ones and
    /// the current, partial one.
    pub(crate) fn window_start(&self, now: u64, window: Duration) -> u64 {
        now.saturating_sub(self.span(window) - 1)
    }

    /// Buckets needed to cover `window`.
    pub(crate) fn span(&self, window: Duration) -> u64 {
        window.as_secs().div_ceil(self.granularity_secs).max(1)
    }

    /// Buckets kept, the current one included.
    pub(crate) fn retention(&self) -> u64 {
        self.retention
    }

    /// The longest window the source answers.
    pub(crate) fn max_window(&self) -> Duration {
        Duration::from_secs((self.retention - 1).saturating_mul(self.granularity_secs))
    }

    /// Why `window` cannot be answered, if it cannot.
    pub(crate) fn check(&self, window: Duration, source: &str) -> Result<(), String> {
        if window.is_zero() {
            return Err("the window must be above zero".to_owned());
        }
        if window > self.max_window() {
            return Err(format!(
                "the window {} is longer than source `{source}` keeps ({})",
                resee_ops_core::serde_duration::format_duration(window),
                resee_ops_core::serde_duration::format_duration(self.max_window())
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_granularity_and_retention_never_overflow() {
        let ticks = Ticks::new(Duration::from_secs(i64::MAX as u64), Duration::MAX, "test").unwrap();
        assert_eq!(ticks.max_window(), Duration::from_secs(u64::MAX), "saturates instead of overflowing");
        let err = Ticks::new(Duration::from_secs(1), Duration::MAX, "test").unwrap_err();
        assert!(err.to_string().contains("at most 100000 buckets"), "{err}");
    }
}
