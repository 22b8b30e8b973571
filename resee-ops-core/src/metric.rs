//! Metrics: the [`MetricSource`] trait and its sample.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Error;

/// One reading of a metric.
///
/// ```
/// use resee_ops_core::MetricSample;
/// let s = MetricSample::new(42.0);
/// assert_eq!(s.value, 42.0);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MetricSample {
    /// The value, in the source's unit.
    pub value: f64,
    /// When it was read.
    pub timestamp: DateTime<Utc>,
}

impl MetricSample {
    /// A sample stamped with the current time.
    pub fn new(value: f64) -> Self {
        Self { value, timestamp: Utc::now() }
    }

    /// A sample with an explicit timestamp.
    pub fn at(value: f64, timestamp: DateTime<Utc>) -> Self {
        Self { value, timestamp }
    }
}

/// Something that can be read as a number: a queue length, an error rate, a latency percentile.
///
/// `read` returns `Ok(None)` when there is no data yet (an empty window), which threshold rules must not
/// confuse with zero.
///
/// ```
/// use async_trait::async_trait;
/// use resee_ops_core::{Error, MetricSample, MetricSource};
///
/// #[derive(Debug)]
/// struct Constant(f64);
///
/// #[async_trait]
/// impl MetricSource for Constant {
///     fn name(&self) -> &str { "constant" }
///     fn unit(&self) -> &str { "items" }
///     async fn read(&self) -> Result<Option<MetricSample>, Error> { Ok(Some(MetricSample::new(self.0))) }
/// }
/// ```
#[async_trait]
pub trait MetricSource: Send + Sync + Debug + 'static {
    /// A short, stable name (`queue_length:celery`, `api_latency_p95`).
    fn name(&self) -> &str;

    /// The unit of the values (`items`, `percent`, `seconds`, `per_hour`).
    fn unit(&self) -> &str;

    /// Reads the current value, or `None` when there is no data.
    async fn read(&self) -> Result<Option<MetricSample>, Error>;
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl<M: MetricSource + ?Sized> MetricSource for Arc<M> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn unit(&self) -> &str {
        (**self).unit()
    }
    async fn read(&self) -> Result<Option<MetricSample>, Error> {
        (**self).read().await
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl<M: MetricSource + ?Sized> MetricSource for Box<M> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn unit(&self) -> &str {
        (**self).unit()
    }
    async fn read(&self) -> Result<Option<MetricSample>, Error> {
        (**self).read().await
    }
}
