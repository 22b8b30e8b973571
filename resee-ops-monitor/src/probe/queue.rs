//! [`QueueLength`]: the length of Redis list-based queues (Celery's Redis transport), as a probe and as a
//! metric.

use async_trait::async_trait;
use resee_ops_core::{Error, HealthProbe, MetricSample, MetricSource, ProbeOutcome, SharedClock, system_clock};

use super::redis::{RedisConfig, RedisTarget};
use crate::MonitorError;

/// The length of one or more Redis list queues, summed: a [`HealthProbe`] with thresholds and a
/// [`MetricSource`] in `items`.
///
/// Celery's Redis transport keeps each queue as a list named after it (`celery` by default); `LLEN` reads
/// its backlog without touching the messages. Queues with task priorities enabled also have lists named
/// `<queue>\x06\x16<priority>`; name those explicitly to count them.
///
/// As a probe (named `queue:<queues>`, not critical by default): `Degraded` above the warning threshold
/// (default 1000 items), `Down` above the critical one (none by default).
///
/// ```
/// use resee_ops_core::{HealthProbe, MetricSource};
/// use resee_ops_monitor::{QueueLength, RedisConfig};
/// let q = QueueLength::new(&RedisConfig::from_url("redis://127.0.0.1:6379/").unwrap())
///     .unwrap()
///     .with_queues(["celery", "emails"])
///     .with_warning_above(500)
///     .with_critical_above(Some(5000));
/// assert_eq!(HealthProbe::name(&q), "queue:celery+emails");
/// assert_eq!(MetricSource::name(&q), "queue_length:celery+emails");
/// assert_eq!(q.unit(), "items");
/// ```
#[derive(Clone, Debug)]
pub struct QueueLength {
    target: RedisTarget,
    queues: Vec<String>,
    probe_name: String,
    metric_name: String,
    warning_above: u64,
    critical_above: Option<u64>,
    critical: bool,
    clock: SharedClock,
}

impl QueueLength {
    /// The `celery` queue, warning above 1000 items.
    pub fn new(redis: &RedisConfig) -> Result<Self, MonitorError> {
        let mut q = Self {
            target: RedisTarget::new(redis)?,
            queues: Vec::new(),
            probe_name: String::new(),
            metric_name: String::new(),
            warning_above: 1000,
            critical_above: None,
            critical: false,
            clock: system_clock(),
        };
        q.set_queues(vec!["celery".to_owned()]);
        Ok(q)
    }

    /// Measures these queues (summed). An empty list keeps the current one.
    pub fn with_queues<S: Into<String>>(mut self, queues: impl IntoIterator<Item = S>) -> Self {
        let queues: Vec<String> = queues.into_iter().map(Into::into).collect();
        if !queues.is_empty() {
            self.set_queues(queues);
        }
        self
    }

    fn set_queues(&mut self, queues: Vec<String>) {
        let joined = queues.join("+");
        self.probe_name = format!("queue:{joined}");
        self.metric_name = format!("queue_length:{joined}");
        self.queues = queues;
    }

    /// `Degraded` above `items`.
    pub fn with_warning_above(mut self, items: u64) -> Self {
        self.warning_above = items;
        self
    }

    /// `Down` above `items`, or never with `None`.
    pub fn with_critical_above(mut self, items: Option<u64>) -> Self {
        self.critical_above = items;
        self
    }

    /// Sets whether the probe is critical (default `false`).
    pub fn with_critical(mut self, critical: bool) -> Self {
        self.critical = critical;
        self
    }

    /// Renames the probe (the metric keeps its name).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.probe_name = name.into();
        self
    }

    /// Uses `clock` to stamp metric samples.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The length of each queue, in the configured order (a missing list has length 0).
    pub async fn lengths(&self) -> Result<Vec<(String, u64)>, MonitorError> {
        let t = &self.target;
        t.bounded(async {
            let mut conn = t.connect().await?;
            let mut pipe = redis::pipe();
            for q in &self.queues {
                pipe.cmd("LLEN").arg(q);
            }
            let lengths: Vec<u64> = pipe.query_async(&mut conn).await.map_err(|e| t.error(&e))?;
            Ok(self.queues.iter().cloned().zip(lengths).collect())
        })
        .await
    }

    /// The summed length.
    pub async fn total(&self) -> Result<u64, MonitorError> {
        Ok(self.lengths().await?.iter().map(|(_, n)| n).sum())
    }
}

#[async_trait]
impl HealthProbe for QueueLength {
    fn alert_text(&self, outcome: &ProbeOutcome, resolved: bool) -> resee_ops_core::ProbeAlertText {
        crate::AlertText::Measured("Queue length".into()).alert_text(outcome, resolved)
    }

    fn name(&self) -> &str {
        &self.probe_name
    }

    fn is_critical(&self) -> bool {
        self.critical
    }

    async fn check(&self) -> ProbeOutcome {
        let lengths = match self.lengths().await {
            Ok(l) => l,
            Err(e) => return ProbeOutcome::down(e.message()),
        };
        let total: u64 = lengths.iter().map(|(_, n)| n).sum();
        let detail = lengths.iter().map(|(q, n)| format!("{q}: {n}")).collect::<Vec<_>>().join(", ");
        let outcome = match self.critical_above {
            Some(c) if total > c => ProbeOutcome::down(format!("{total} items queued, above {c} ({detail})")),
            _ if total > self.warning_above => {
                ProbeOutcome::degraded(format!("{total} items queued, above {} ({detail})", self.warning_above))
            }
            _ => ProbeOutcome::up().with_output(detail),
        };
        outcome.with_observed(total as f64, "items")
    }
}

#[async_trait]
impl MetricSource for QueueLength {
    fn name(&self) -> &str {
        &self.metric_name
    }

    fn unit(&self) -> &str {
        "items"
    }

    async fn read(&self) -> Result<Option<MetricSample>, Error> {
        let total = self.total().await?;
        Ok(Some(MetricSample::at(total as f64, self.clock.now())))
    }
}
