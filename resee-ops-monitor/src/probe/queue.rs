//! [`QueueLength`]: the length of Celery queues on the kombu Redis transport, as a probe and as a metric.

use async_trait::async_trait;
use resee_ops_core::{Error, HealthProbe, MetricSample, MetricSource, ProbeOutcome, SharedClock, system_clock};

use super::celery::CeleryTransport;
use super::redis::{RedisConfig, RedisTarget};
use crate::MonitorError;

/// The default warning threshold of [`QueueLength`]: more than 100 queued tasks (the seed's
/// "⚠️ Celery queue > 100").
pub const DEFAULT_QUEUE_WARNING_ABOVE: u64 = 100;

/// The length of one or more Celery queues, summed: a [`HealthProbe`] with thresholds and a
/// [`MetricSource`] in `items`.
///
/// kombu's Redis transport keeps a queue's ready messages in one list per priority step: the bare list
/// `<queue>` (priorities 0-2 with the default steps) and `<queue><sep><step>` for the others (`celery\x06\x163`,
/// `…6`, `…9`). The length of a queue is the sum of those lists, which is what Celery's own `_size` counts;
/// `LLEN <queue>` alone misses every task sent with a priority. Name the workers' transport options with
/// [`with_transport`](Self::with_transport) when they are not kombu's defaults.
///
/// With [`with_unacked`](Self::with_unacked) a queue's length also counts the messages workers have taken
/// but not acknowledged yet (running, prefetched, or waiting for their ETA): the entries of the `unacked`
/// hash whose routing key is the queue. All lists (and the hash) are read in one pipelined round trip.
///
/// As a probe (named `queue:<queues>`, not critical by default): `Degraded` above the warning threshold
/// (default 100 items), `Down` above the critical one (none by default).
///
/// ```
/// use resee_ops_core::{HealthProbe, MetricSource};
/// use resee_ops_monitor::{CeleryTransport, QueueLength, RedisConfig};
/// let q = QueueLength::new(&RedisConfig::from_url("redis://127.0.0.1:6379/").unwrap())
///     .unwrap()
///     .with_queues(["celery", "emails"])
///     .with_transport(CeleryTransport::new().with_sep(":").with_priority_steps(0..=9))
///     .unwrap()
///     .with_unacked(true)
///     .with_warning_above(500)
///     .with_critical_above(Some(5000));
/// assert_eq!(HealthProbe::name(&q), "queue:celery+emails");
/// assert_eq!(MetricSource::name(&q), "queue_length:celery+emails");
/// assert_eq!(q.unit(), "items");
/// assert_eq!(QueueLength::new(&RedisConfig::from_url("redis://127.0.0.1/").unwrap()).unwrap().warning_above(), 100);
/// ```
#[derive(Clone, Debug)]
pub struct QueueLength {
    target: RedisTarget,
    transport: CeleryTransport,
    queues: Vec<String>,
    probe_name: String,
    metric_name: String,
    warning_above: u64,
    critical_above: Option<u64>,
    unacked: bool,
    critical: bool,
    clock: SharedClock,
}

/// One queue's length: ready messages (all priority lists) and, when counted, unacknowledged ones.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueDepth {
    /// The queue name.
    pub queue: String,
    /// Messages waiting in the queue's lists.
    pub ready: u64,
    /// Messages taken by a worker and not yet acknowledged (0 unless counted).
    pub unacked: u64,
}

impl QueueDepth {
    /// `ready + unacked`.
    pub fn total(&self) -> u64 {
        self.ready + self.unacked
    }
}

impl QueueLength {
    /// The `celery` queue with kombu's default transport options, ready messages only, warning above
    /// 100 items.
    pub fn new(redis: &RedisConfig) -> Result<Self, MonitorError> {
        let mut q = Self {
            target: RedisTarget::new(redis)?,
            transport: CeleryTransport::default(),
            queues: Vec::new(),
            probe_name: String::new(),
            metric_name: String::new(),
            warning_above: DEFAULT_QUEUE_WARNING_ABOVE,
            critical_above: None,
            unacked: false,
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

    /// Uses the workers' transport options (key prefix, `sep`, `priority_steps`).
    pub fn with_transport(mut self, transport: CeleryTransport) -> Result<Self, MonitorError> {
        transport.validate()?;
        self.transport = transport;
        Ok(self)
    }

    /// Also counts messages delivered to a worker but not acknowledged yet (default `false`).
    pub fn with_unacked(mut self, unacked: bool) -> Self {
        self.unacked = unacked;
        self
    }

    /// The warning threshold.
    pub fn warning_above(&self) -> u64 {
        self.warning_above
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

    /// Each queue's depth, in the configured order (missing lists are empty), in one round trip.
    pub async fn depths(&self) -> Result<Vec<QueueDepth>, MonitorError> {
        let t = &self.target;
        let lists: Vec<Vec<String>> = self.queues.iter().map(|q| self.transport.queue_lists(q)).collect();
        let unacked_key = self.transport.unacked_key();
        t.bounded(async {
            let mut conn = t.connect().await?;
            let mut pipe = redis::pipe();
            for key in lists.iter().flatten() {
                pipe.cmd("LLEN").arg(key);
            }
            if self.unacked {
                pipe.cmd("HVALS").arg(&unacked_key);
            }
            let mut replies: Vec<redis::Value> = pipe.query_async(&mut conn).await.map_err(|e| t.error(&e))?;
            let unacked = if self.unacked { unacked_by_queue(replies.pop(), &unacked_key, t)? } else { Vec::new() };
            let mut lengths = replies.into_iter().map(|v| {
                redis::from_redis_value::<u64>(v).map_err(|e| {
                    resee_ops_core::Error::new(
                        resee_ops_core::ErrorKind::Unexpected,
                        format!("Redis at {}: {e}", t.addr()),
                    )
                })
            });
            let mut depths = Vec::with_capacity(self.queues.len());
            for (queue, keys) in self.queues.iter().zip(&lists) {
                let mut ready = 0;
                for _ in keys {
                    ready += lengths.next().unwrap_or(Ok(0))?;
                }
                let unacked = unacked.iter().filter(|rk| *rk == queue).count() as u64;
                depths.push(QueueDepth { queue: queue.clone(), ready, unacked });
            }
            Ok(depths)
        })
        .await
    }

    /// The length of each queue (ready plus, when counted, unacknowledged), in the configured order.
    pub async fn lengths(&self) -> Result<Vec<(String, u64)>, MonitorError> {
        Ok(self.depths().await?.into_iter().map(|d| (d.queue.clone(), d.total())).collect())
    }

    /// The summed length.
    pub async fn total(&self) -> Result<u64, MonitorError> {
        Ok(self.depths().await?.iter().map(QueueDepth::total).sum())
    }
}

/// The routing keys (= queue names, with Celery's default routing) of the entries of the `unacked` hash,
/// whose values are JSON `[envelope, exchange, routing_key]`. Entries that are not are skipped.
fn unacked_by_queue(reply: Option<redis::Value>, key: &str, t: &RedisTarget) -> Result<Vec<String>, MonitorError> {
    let values: Vec<Vec<u8>> = match reply {
        None => Vec::new(),
        Some(v) => redis::from_redis_value(v).map_err(|e| {
            resee_ops_core::Error::new(
                resee_ops_core::ErrorKind::Unexpected,
                format!("Redis at {}: {key}: {e}", t.addr()),
            )
        })?,
    };
    Ok(values
        .iter()
        .filter_map(|raw| {
            let entry: serde_json::Value = serde_json::from_slice(raw).ok()?;
            entry.get(2)?.as_str().map(str::to_owned)
        })
        .collect())
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
        let depths = match self.depths().await {
            Ok(d) => d,
            Err(e) => return ProbeOutcome::down(e.message()),
        };
        let total: u64 = depths.iter().map(QueueDepth::total).sum();
        let detail = depths
            .iter()
            .map(|d| {
                if self.unacked {
                    format!("{}: {} ({} ready, {} unacked)", d.queue, d.total(), d.ready, d.unacked)
                } else {
                    format!("{}: {}", d.queue, d.ready)
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
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
