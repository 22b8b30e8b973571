use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::{Notifier, NotifyOutcome};
use crate::{Alert, Error, ErrorKind};

/// Settings of a [`Dispatcher`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct DispatcherConfig {
    /// Alerts that may wait in the queue (shared out evenly between the lanes); one more is dropped and
    /// counted. At most [`Dispatcher::MAX_CAPACITY`].
    pub capacity: usize,
    /// Alerts delivered at the same time: the number of lanes. Alerts with the same fingerprint always
    /// take the same lane, so a firing and its resolution are delivered in order, never at once. At most
    /// [`Dispatcher::MAX_CONCURRENCY`].
    pub concurrency: usize,
    /// The longest one delivery may take, retries included; past it the alert counts as a temporary
    /// failure and the lane moves on. A notifier that never answers therefore cannot stall its lane, or
    /// [`Dispatcher::flush`] and [`Dispatcher::shutdown`] that wait for it. Default 10 minutes (twice the
    /// default retry deadline); `Duration::MAX` means no limit.
    #[serde(with = "crate::serde_duration")]
    pub delivery_timeout: Duration,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        Self { capacity: 1024, concurrency: 4, delivery_timeout: Duration::from_secs(600) }
    }
}

impl DispatcherConfig {
    /// Sets the queue capacity (at least 1).
    pub fn with_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// Sets the delivery concurrency (at least 1).
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// Sets the longest one delivery may take ([`delivery_timeout`](Self::delivery_timeout)).
    pub fn with_delivery_timeout(mut self, timeout: Duration) -> Self {
        self.delivery_timeout = timeout;
        self
    }
}

/// Why an alert was not delivered by a [`Dispatcher`].
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The queue was full when the alert arrived.
    QueueFull,
    /// The dispatcher was shut down before the alert arrived, or before it could be delivered.
    Closed,
    /// The inner notifier failed permanently.
    PermanentFailure,
    /// The inner notifier still failed temporarily when it gave up (wrap it in `Retrying` to retry).
    TemporaryFailure,
    /// The inner notifier panicked.
    Panicked,
}

/// Counters of a [`Dispatcher`]: every alert handed to it ends in exactly one of
/// `delivered`, `suppressed` or one of the `dropped_*` counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DispatchStats {
    /// Alerts accepted into the queue.
    pub accepted: u64,
    /// Delivered by the inner notifier.
    pub delivered: u64,
    /// Suppressed (coalesced) by the inner notifier, for example a throttle.
    pub suppressed: u64,
    /// Dropped because the queue was full.
    pub dropped_queue_full: u64,
    /// Dropped because the dispatcher was closed.
    pub dropped_closed: u64,
    /// Dropped after a permanent failure.
    pub dropped_permanent_failure: u64,
    /// Dropped after a temporary failure the inner notifier gave up on.
    pub dropped_temporary_failure: u64,
    /// Dropped because the inner notifier panicked.
    pub dropped_panicked: u64,
    /// Accepted and not finished yet (queued or being delivered).
    pub in_flight: u64,
}

impl DispatchStats {
    /// All drops, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_queue_full
            + self.dropped_closed
            + self.dropped_permanent_failure
            + self.dropped_temporary_failure
            + self.dropped_panicked
    }
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    delivered: AtomicU64,
    suppressed: AtomicU64,
    queue_full: AtomicU64,
    closed: AtomicU64,
    permanent: AtomicU64,
    temporary: AtomicU64,
    panicked: AtomicU64,
    finished: AtomicU64,
}

impl DropReason {
    /// A short snake_case name, the `reason` label of the dropped-alerts metric.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::QueueFull => "queue_full",
            Self::Closed => "closed",
            Self::PermanentFailure => "permanent_failure",
            Self::TemporaryFailure => "temporary_failure",
            Self::Panicked => "panicked",
        }
    }

    const fn index(self) -> usize {
        match self {
            Self::QueueFull => 0,
            Self::Closed => 1,
            Self::PermanentFailure => 2,
            Self::TemporaryFailure => 3,
            Self::Panicked => 4,
        }
    }
}

impl Shared {
    /// Counts a dropped alert (its counter and its metric).
    fn dropped(&self, reason: DropReason) {
        self.counters.drop(reason);
        self.metrics.dropped[reason.index()].increment(1);
    }
}

impl Counters {
    fn drop(&self, reason: DropReason) {
        let c = match reason {
            DropReason::QueueFull => &self.queue_full,
            DropReason::Closed => &self.closed,
            DropReason::PermanentFailure => &self.permanent,
            DropReason::TemporaryFailure => &self.temporary,
            DropReason::Panicked => &self.panicked,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// The dispatcher's metrics handles, registered once when it is built (recording is then one atomic
/// operation, or nothing without a recorder).
struct Metrics {
    accepted: metrics::Counter,
    delivered: metrics::Counter,
    suppressed: metrics::Counter,
    dropped: [metrics::Counter; 5],
    depth: metrics::Gauge,
    latency_delivered: metrics::Histogram,
    latency_suppressed: metrics::Histogram,
    latency_dropped: metrics::Histogram,
}

impl Metrics {
    fn register() -> Self {
        use crate::telemetry::{
            ALERTS_ACCEPTED, ALERTS_DELIVERED, ALERTS_DELIVERY, ALERTS_DROPPED, ALERTS_QUEUE_DEPTH, ALERTS_SUPPRESSED,
        };
        let dropped = |reason: DropReason| metrics::counter!(ALERTS_DROPPED, "reason" => reason.as_str());
        Self {
            accepted: metrics::counter!(ALERTS_ACCEPTED),
            delivered: metrics::counter!(ALERTS_DELIVERED),
            suppressed: metrics::counter!(ALERTS_SUPPRESSED),
            dropped: [
                dropped(DropReason::QueueFull),
                dropped(DropReason::Closed),
                dropped(DropReason::PermanentFailure),
                dropped(DropReason::TemporaryFailure),
                dropped(DropReason::Panicked),
            ],
            depth: metrics::gauge!(ALERTS_QUEUE_DEPTH),
            latency_delivered: metrics::histogram!(ALERTS_DELIVERY, "outcome" => "delivered"),
            latency_suppressed: metrics::histogram!(ALERTS_DELIVERY, "outcome" => "suppressed"),
            latency_dropped: metrics::histogram!(ALERTS_DELIVERY, "outcome" => "dropped"),
        }
    }
}

struct Shared {
    counters: Counters,
    metrics: Metrics,
    /// Set when shutdown starts: no new alerts.
    closed: AtomicBool,
    /// Set when the grace period is over: lanes stop, cutting deliveries short.
    cut: watch::Sender<bool>,
    idle: Notify,
}

/// Moves delivery off the caller's path: `notify` puts the alert in a bounded queue and returns
/// [`NotifyOutcome::Queued`] at once; background tasks hand it to the inner notifier.
///
/// A caller that must know what finally became of an alert calls
/// [`notify_final`](Notifier::notify_final) instead: the alert takes the same queue and lane, and the
/// call resolves once the background task has its final outcome (delivered, suppressed, a failure, or
/// `PermanentFailure` of kind `Closed` when a shutdown dropped it). Waiting on it never blocks the lane.
///
/// There is one queue and one task per lane ([`DispatcherConfig::concurrency`]); an alert's lane follows
/// from its fingerprint, so alerts about the same thing are delivered one after the other, in order.
///
/// Every alert ends delivered, suppressed, or dropped and counted with its reason
/// ([`DispatchStats`]); drops and failures are also logged at `WARN`/`ERROR`. A full queue never blocks the
/// caller: the alert is dropped and counted. [`shutdown`](Dispatcher::shutdown) drains what is queued
/// within a grace period.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::time::Duration;
/// use resee_ops_core::{Alert, DispatcherConfig, Notifier, NotifierExt, NotifyOutcome, Severity};
/// use resee_ops_core::testing::RecordingNotifier;
///
/// let inbox = RecordingNotifier::new();
/// let dispatcher = inbox.clone().dispatched(DispatcherConfig::default());
/// let outcome = dispatcher.notify(&Alert::new("demo", Severity::Info, "hello")).await;
/// assert!(matches!(outcome, NotifyOutcome::Queued));
/// dispatcher.shutdown(Duration::from_secs(5)).await;
/// assert_eq!(dispatcher.stats().delivered, 1);
/// assert_eq!(inbox.alerts().len(), 1);
/// # });
/// ```
#[derive(Clone)]
pub struct Dispatcher {
    lanes: Arc<[mpsc::Sender<Job>]>,
    shared: Arc<Shared>,
    workers: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>,
    inner_name: Arc<str>,
}

impl fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatcher").field("inner", &self.inner_name).field("stats", &self.stats()).finish()
    }
}

impl Dispatcher {
    /// The most lanes a dispatcher runs: a larger [`DispatcherConfig::concurrency`] counts as this.
    pub const MAX_CONCURRENCY: usize = 1024;

    /// The largest queue a dispatcher keeps: a larger [`DispatcherConfig::capacity`] counts as this.
    pub const MAX_CAPACITY: usize = 1 << 20;

    /// Starts the background task on the current Tokio runtime.
    ///
    /// # Panics
    /// Outside a Tokio runtime, as `tokio::spawn` does.
    pub fn spawn(inner: impl Notifier, config: DispatcherConfig) -> Self {
        let inner_name: Arc<str> = format!("{inner:?}").into();
        let inner: Arc<dyn Notifier> = Arc::new(inner);
        // Clamped: a configured `usize::MAX` must not allocate (or panic on) that many lanes or slots.
        let lanes = config.concurrency.clamp(1, Self::MAX_CONCURRENCY);
        let per_lane = config.capacity.clamp(1, Self::MAX_CAPACITY).div_ceil(lanes);
        let shared = Arc::new(Shared {
            counters: Counters::default(),
            metrics: Metrics::register(),
            closed: AtomicBool::new(false),
            cut: watch::channel(false).0,
            idle: Notify::new(),
        });
        let mut senders = Vec::with_capacity(lanes);
        let mut workers = Vec::with_capacity(lanes);
        for _ in 0..lanes {
            let (tx, rx) = mpsc::channel(per_lane);
            senders.push(tx);
            workers.push(tokio::spawn(run_lane(rx, inner.clone(), shared.clone(), config.delivery_timeout)));
        }
        Self { lanes: senders.into(), shared, workers: Arc::new(std::sync::Mutex::new(workers)), inner_name }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> DispatchStats {
        let c = &self.shared.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let accepted = load(&c.accepted);
        DispatchStats {
            accepted,
            delivered: load(&c.delivered),
            suppressed: load(&c.suppressed),
            dropped_queue_full: load(&c.queue_full),
            dropped_closed: load(&c.closed),
            dropped_permanent_failure: load(&c.permanent),
            dropped_temporary_failure: load(&c.temporary),
            dropped_panicked: load(&c.panicked),
            in_flight: accepted.saturating_sub(load(&c.finished)),
        }
    }

    /// Waits until nothing is queued or being delivered. It cannot hang on a failing or silent
    /// notifier: every delivery ends within [`DispatcherConfig::delivery_timeout`], and an alert the
    /// queue refused is never counted as in flight.
    pub async fn flush(&self) {
        loop {
            let idle = self.shared.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.stats().in_flight == 0 {
                return;
            }
            idle.await;
        }
    }

    /// Stops accepting alerts, delivers what is queued for at most `grace`, then counts the rest as dropped
    /// ([`DropReason::Closed`]). Safe to call more than once and from clones.
    pub async fn shutdown(&self, grace: Duration) {
        if !self.shared.closed.swap(true, Ordering::SeqCst) {
            tracing::debug!(target: "resee_ops::notify", "dispatcher shutting down");
        }
        if tokio::time::timeout(grace, self.flush()).await.is_err() {
            tracing::warn!(target: "resee_ops::notify", in_flight = self.stats().in_flight,
                "dispatcher grace period over; dropping undelivered alerts");
        }
        self.shared.cut.send_replace(true);
        let workers = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|p| p.into_inner()));
        for worker in workers {
            let _ = worker.await;
        }
    }
}

/// One queued alert, and who waits for its final outcome.
struct Job {
    alert: Alert,
    ack: Option<oneshot::Sender<NotifyOutcome>>,
    /// When `notify` took it (for the delivery latency).
    queued_at: std::time::Instant,
}

impl Job {
    fn acknowledge(self, outcome: NotifyOutcome) {
        if let Some(ack) = self.ack {
            // The waiter may have gone away; then nobody needs the outcome.
            let _ = ack.send(outcome);
        }
    }
}

impl Dispatcher {
    fn lane(&self, alert: &Alert) -> &mpsc::Sender<Job> {
        &self.lanes[(alert.fingerprint().as_u64() % self.lanes.len() as u64) as usize]
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl Notifier for Dispatcher {
    async fn notify(&self, alert: &Alert) -> NotifyOutcome {
        match enqueue(self.lane(alert), &self.shared, alert, None) {
            Ok(()) => NotifyOutcome::Queued,
            Err(refused) => refused,
        }
    }

    async fn notify_final(&self, alert: &Alert) -> NotifyOutcome {
        let (ack, outcome) = oneshot::channel();
        if let Err(refused) = enqueue(self.lane(alert), &self.shared, alert, Some(ack)) {
            return refused;
        }
        // Every job is acknowledged when it finishes or is dropped; a lane that vanished (its runtime
        // shut down) drops the sender, which reads as closed.
        outcome.await.unwrap_or_else(|_| closed_outcome("alert dispatcher stopped before delivery"))
    }
}

fn closed_outcome(message: &'static str) -> NotifyOutcome {
    NotifyOutcome::PermanentFailure(Error::new(ErrorKind::Closed, message))
}

/// Puts the alert in its lane's queue, or says why not (the refusal is counted and logged).
fn enqueue(
    tx: &mpsc::Sender<Job>,
    shared: &Shared,
    alert: &Alert,
    ack: Option<oneshot::Sender<NotifyOutcome>>,
) -> Result<(), NotifyOutcome> {
    let counters = &shared.counters;
    if shared.closed.load(Ordering::Acquire) {
        shared.dropped(DropReason::Closed);
        tracing::warn!(target: "resee_ops::notify", fingerprint = %alert.fingerprint(), title = %alert.title,
            "alert dropped: dispatcher closed");
        return Err(closed_outcome("alert dispatcher is shut down"));
    }
    // Reserve the slot first and count only an alert that surely enters the queue: `in_flight` never
    // shows an alert that was refused, so `flush` never waits for one.
    match tx.try_reserve() {
        Ok(permit) => {
            counters.accepted.fetch_add(1, Ordering::Relaxed);
            shared.metrics.accepted.increment(1);
            shared.metrics.depth.increment(1.0);
            permit.send(Job { alert: alert.clone(), ack, queued_at: std::time::Instant::now() });
            Ok(())
        }
        Err(err) => {
            let (reason, refused) = match err {
                mpsc::error::TrySendError::Full(()) => (
                    DropReason::QueueFull,
                    NotifyOutcome::TemporaryFailure(Error::new(ErrorKind::Unavailable, "alert queue is full")),
                ),
                mpsc::error::TrySendError::Closed(()) => {
                    (DropReason::Closed, closed_outcome("alert dispatcher is shut down"))
                }
            };
            shared.dropped(reason);
            tracing::warn!(target: "resee_ops::notify", fingerprint = %alert.fingerprint(), title = %alert.title,
                ?reason, "alert dropped");
            Err(refused)
        }
    }
}

/// One lane: delivers its alerts one after the other until every handle is gone (finishing what is
/// queued) or the grace period of a shutdown is over (counting what is left as dropped).
async fn run_lane(mut rx: mpsc::Receiver<Job>, inner: Arc<dyn Notifier>, shared: Arc<Shared>, limit: Duration) {
    let mut cut = shared.cut.subscribe();
    loop {
        let job = tokio::select! {
            biased;
            _ = cut.wait_for(|c| *c) => break,
            job = rx.recv() => match job {
                Some(job) => job,
                None => return,
            },
        };
        tokio::select! {
            biased;
            _ = cut.wait_for(|c| *c) => {
                drop_closed(&shared, job, "alert dropped: delivery cut short by shutdown");
                break;
            }
            outcome = deliver(&*inner, &job.alert, limit) => finish(&shared, job, outcome),
        }
    }
    // Shut down: whatever is still queued is dropped and counted.
    rx.close();
    while let Ok(job) = rx.try_recv() {
        drop_closed(&shared, job, "alert dropped: dispatcher shut down before delivery");
    }
    shared.idle.notify_waiters();
}

fn drop_closed(shared: &Shared, job: Job, why: &'static str) {
    shared.dropped(DropReason::Closed);
    shared.metrics.depth.decrement(1.0);
    shared.metrics.latency_dropped.record(job.queued_at.elapsed());
    shared.counters.finished.fetch_add(1, Ordering::Release);
    tracing::error!(target: "resee_ops::notify", fingerprint = %job.alert.fingerprint(), title = %job.alert.title, "{why}");
    job.acknowledge(closed_outcome(why));
}

/// Runs the inner notifier to its final outcome within `limit`, turning a panic into `None`.
async fn deliver(inner: &dyn Notifier, alert: &Alert, limit: Duration) -> Option<NotifyOutcome> {
    use futures_util::FutureExt;
    let attempt = std::panic::AssertUnwindSafe(inner.notify_final(alert)).catch_unwind();
    // A limit past the end of time means no limit.
    let Some(deadline) = tokio::time::Instant::now().checked_add(limit) else { return attempt.await.ok() };
    match tokio::time::timeout_at(deadline, attempt).await {
        Ok(outcome) => outcome.ok(),
        Err(_) => Some(NotifyOutcome::TemporaryFailure(Error::new(
            ErrorKind::Timeout,
            format!("delivery took longer than {}", crate::serde_duration::format_duration(limit)),
        ))),
    }
}

fn finish(shared: &Shared, job: Job, outcome: Option<NotifyOutcome>) {
    let c = &shared.counters;
    let m = &shared.metrics;
    let alert = &job.alert;
    let latency = job.queued_at.elapsed();
    m.depth.decrement(1.0);
    let outcome = match outcome {
        Some(NotifyOutcome::Delivered | NotifyOutcome::Queued) => {
            c.delivered.fetch_add(1, Ordering::Relaxed);
            m.delivered.increment(1);
            m.latency_delivered.record(latency);
            NotifyOutcome::Delivered
        }
        Some(NotifyOutcome::Suppressed) => {
            c.suppressed.fetch_add(1, Ordering::Relaxed);
            m.suppressed.increment(1);
            m.latency_suppressed.record(latency);
            NotifyOutcome::Suppressed
        }
        Some(NotifyOutcome::PermanentFailure(err)) => {
            shared.dropped(DropReason::PermanentFailure);
            m.latency_dropped.record(latency);
            tracing::error!(target: "resee_ops::notify", fingerprint = %alert.fingerprint(), title = %alert.title,
                error = %err, "alert dropped: permanent delivery failure");
            NotifyOutcome::PermanentFailure(err)
        }
        Some(other) => {
            shared.dropped(DropReason::TemporaryFailure);
            m.latency_dropped.record(latency);
            tracing::error!(target: "resee_ops::notify", fingerprint = %alert.fingerprint(), title = %alert.title,
                outcome = %other, "alert dropped: delivery still failing when the notifier gave up");
            other
        }
        None => {
            shared.dropped(DropReason::Panicked);
            m.latency_dropped.record(latency);
            tracing::error!(target: "resee_ops::notify", fingerprint = %alert.fingerprint(), title = %alert.title,
                "alert dropped: notifier panicked");
            NotifyOutcome::PermanentFailure(Error::new(ErrorKind::Unexpected, "the notifier panicked"))
        }
    };
    c.finished.fetch_add(1, Ordering::Release);
    shared.idle.notify_waiters();
    job.acknowledge(outcome);
}
