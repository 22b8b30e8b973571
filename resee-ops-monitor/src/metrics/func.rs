//! [`FnSource`]: any async closure as a metric source.

use std::fmt;
use std::future::Future;

use async_trait::async_trait;
use resee_ops_core::{Error, MetricSample, MetricSource};

/// A [`MetricSource`] that calls a closure: for anything the other sources do not read (a cache size, an
/// external API's quota).
///
/// The closure returns the value, `None` for no data, or an error.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use resee_ops_core::MetricSource;
/// use resee_ops_monitor::FnSource;
/// let open_tickets = FnSource::new("open_tickets", "items", || async { Ok(Some(12.0)) });
/// assert_eq!(open_tickets.read().await.unwrap().unwrap().value, 12.0);
/// # });
/// ```
pub struct FnSource<F> {
    name: String,
    unit: String,
    read: F,
}

impl<F> FnSource<F> {
    /// A source named `name` whose values are in `unit`.
    pub fn new(name: impl Into<String>, unit: impl Into<String>, read: F) -> Self {
        Self { name: name.into(), unit: unit.into(), read }
    }
}

impl<F> fmt::Debug for FnSource<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnSource").field("name", &self.name).field("unit", &self.unit).finish_non_exhaustive()
    }
}

#[async_trait]
impl<F, Fut> MetricSource for FnSource<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<f64>, Error>> + Send,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn unit(&self) -> &str {
        &self.unit
    }

    async fn read(&self) -> Result<Option<MetricSample>, Error> {
        Ok((self.read)().await?.map(MetricSample::new))
    }
}
