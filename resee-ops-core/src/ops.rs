//! [`OpsHandle`]: one shutdown for the whole operations stack.
//!
//! A host starts a few parts that produce alerts (the health monitor's loop, the rule evaluator's loop,
//! the scheduler's jobs) and one [`Dispatcher`] they all send through. Stopping them by hand is easy to get
//! wrong: stop the dispatcher first and the last alerts (a backup's result, a resolution) are lost; forget
//! a deadline and a hung job keeps the process from exiting. [`OpsHandle`] owns them and stops them in the
//! one right order, within one deadline:
//!
//! 1. **Producers**: the scheduler starts no new runs and running jobs get a grace period (then they are
//!    cancelled, then aborted); every other producer ([`Stop`]) is stopped. All at once, each bounded by
//!    the producers' share of the deadline.
//! 2. **Alerts**: the dispatcher takes no new alerts, delivers what is queued with the time left (at least
//!    the [flush reserve](OpsHandle::with_flush_reserve)), then drops and counts the rest.
//! 3. **Summary**: what stopped in time, what the jobs did, and every alert delivered, suppressed or
//!    dropped (by reason), as a [`ShutdownSummary`].

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use crate::schedule::{CANCEL_CLEANUP, RunControl, SchedulerHandle, ShutdownReport, StatusView};
use crate::{DispatchStats, Dispatcher};

/// The default time kept for flushing alerts at the end of a shutdown: 5 seconds (at most half the
/// deadline).
pub const DEFAULT_FLUSH_RESERVE: Duration = Duration::from_secs(5);

/// A running part that produces alerts and can be stopped: the health monitor's and the rule evaluator's
/// loops (`resee_ops_monitor::MonitorHandle` implements it), or a host's own task.
///
/// ```
/// use std::time::Duration;
/// use resee_ops_core::prelude::*;
///
/// /// A host's own loop, stopped through a channel.
/// #[derive(Debug)]
/// struct Poller {
///     stop: tokio::sync::oneshot::Sender<()>,
///     task: tokio::task::JoinHandle<()>,
/// }
///
/// #[async_trait]
/// impl Stop for Poller {
///     async fn stop(self: Box<Self>, _grace: Duration) {
///         let _ = self.stop.send(());
///         let _ = self.task.await;
///     }
/// }
/// ```
#[async_trait]
pub trait Stop: Send + fmt::Debug + 'static {
    /// Stops producing, finishes or abandons the work in progress, and returns once it has ended.
    /// `grace` is the time it is given; the [`OpsHandle`] stops waiting for it after that.
    async fn stop(self: Box<Self>, grace: Duration);
}

/// How one producer stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProducerStop {
    /// The name it was added under.
    pub name: String,
    /// Whether it ended within its share of the deadline (else it was abandoned).
    pub in_time: bool,
}

/// What [`OpsHandle::shutdown`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownSummary {
    /// Each producer, in the order it was added.
    pub producers: Vec<ProducerStop>,
    /// The scheduler's report: runs finished, cancelled, aborted. `None` without a scheduler, or when it
    /// did not end within its share of the deadline (its jobs were then cancelled and abandoned).
    pub jobs: Option<ShutdownReport>,
    /// The dispatcher's final counters: every alert it ever took, delivered, suppressed or dropped by
    /// reason. Nothing is in flight any more.
    pub alerts: DispatchStats,
    /// How long the shutdown took.
    pub elapsed: Duration,
}

impl ShutdownSummary {
    /// Alerts dropped, whatever the reason (the queue was full, the receiver failed, the deadline came).
    pub fn dropped(&self) -> u64 {
        self.alerts.dropped()
    }

    /// Whether everything stopped in time and no alert was dropped.
    pub fn is_clean(&self) -> bool {
        self.dropped() == 0 && self.producers.iter().all(|p| p.in_time) && self.jobs.is_none_or(|j| j.aborted == 0)
    }
}

impl fmt::Display for ShutdownSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let late: Vec<&str> = self.producers.iter().filter(|p| !p.in_time).map(|p| p.name.as_str()).collect();
        write!(f, "stopped in {:.1}s: {} producer(s)", self.elapsed.as_secs_f64(), self.producers.len())?;
        if !late.is_empty() {
            write!(f, " ({} abandoned: {})", late.len(), late.join(", "))?;
        }
        if let Some(j) = self.jobs {
            write!(f, "; jobs {} finished, {} cancelled, {} aborted", j.finished, j.cancelled, j.aborted)?;
        }
        let a = &self.alerts;
        write!(f, "; alerts {} delivered, {} suppressed, {} dropped", a.delivered, a.suppressed, a.dropped())
    }
}

/// One shutdown for the monitor, the rule evaluator, the scheduler's jobs and the alert dispatcher they
/// share, in the right order and within one deadline (see the [module](self) for the order).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::time::Duration;
/// use resee_ops_core::prelude::*;
/// use resee_ops_core::schedule::Scheduler;
/// use resee_ops_core::testing::RecordingNotifier;
///
/// let inbox = RecordingNotifier::new(); // in production: Slack, throttled
/// let alerts = inbox.clone().dispatched(DispatcherConfig::default());
/// let scheduler = Scheduler::new().with_notifier(alerts.clone()).start();
/// let ops = OpsHandle::new(alerts.clone()).with_scheduler(scheduler);
/// // .with_producer("monitor", monitor.spawn()) with resee-ops-monitor
///
/// alerts.notify(&Alert::new("deploy", Severity::Info, "Deployed")).await;
/// let summary = ops.shutdown(Duration::from_secs(30)).await; // on SIGTERM
/// assert_eq!(summary.alerts.delivered, 1);
/// assert!(summary.is_clean(), "{summary}");
/// # });
/// ```
#[derive(Debug)]
pub struct OpsHandle {
    dispatcher: Dispatcher,
    scheduler: Option<SchedulerHandle>,
    producers: Vec<(String, Box<dyn Stop>)>,
    flush_reserve: Duration,
}

impl OpsHandle {
    /// A handle that ends with `alerts`, the dispatcher every producer sends through.
    pub fn new(alerts: Dispatcher) -> Self {
        Self { dispatcher: alerts, scheduler: None, producers: Vec::new(), flush_reserve: DEFAULT_FLUSH_RESERVE }
    }

    /// Owns the started scheduler: stopped with the producers, its running jobs given a grace period.
    pub fn with_scheduler(mut self, scheduler: SchedulerHandle) -> Self {
        self.scheduler = Some(scheduler);
        self
    }

    /// Owns a producer (for example `monitor.spawn()`), stopped before the alerts are flushed.
    pub fn with_producer(mut self, name: impl Into<String>, producer: impl Stop) -> Self {
        self.producers.push((name.into(), Box::new(producer)));
        self
    }

    /// Keeps `reserve` of the deadline for flushing alerts after the producers have stopped (default
    /// [`DEFAULT_FLUSH_RESERVE`]; never more than half the deadline).
    pub fn with_flush_reserve(mut self, reserve: Duration) -> Self {
        self.flush_reserve = reserve;
        self
    }

    /// The dispatcher.
    pub fn alerts(&self) -> &Dispatcher {
        &self.dispatcher
    }

    /// The scheduler's status, for a status page.
    pub fn scheduler_status(&self) -> Option<StatusView> {
        self.scheduler.as_ref().map(SchedulerHandle::status_view)
    }

    /// The control of the running jobs, to cancel them at once while [`shutdown`](Self::shutdown) waits
    /// (an operator's second Ctrl-C).
    pub fn job_control(&self) -> Option<RunControl> {
        self.scheduler.as_ref().map(SchedulerHandle::control)
    }

    /// Stops everything within `deadline`: producers first (the scheduler's running jobs get the
    /// producers' share minus [`CANCEL_CLEANUP`] before they are cancelled), then the alerts are flushed
    /// with the time left, then the rest is dropped and counted. `Duration::MAX` means no deadline.
    pub async fn shutdown(self, deadline: Duration) -> ShutdownSummary {
        let started = tokio::time::Instant::now();
        let Self { dispatcher, scheduler, producers, flush_reserve } = self;
        let reserve = flush_reserve.min(deadline / 2);
        let for_producers = deadline.saturating_sub(reserve);
        tracing::info!(target: "resee_ops::ops", deadline = ?deadline, producers = producers.len(),
            scheduler = scheduler.is_some(), "shutting down: stopping producers");

        let jobs = async {
            let scheduler = scheduler?;
            let grace = for_producers.saturating_sub(CANCEL_CLEANUP);
            match tokio::time::timeout(for_producers, scheduler.shutdown(grace)).await {
                Ok(report) => Some(report),
                Err(_) => {
                    tracing::error!(target: "resee_ops::ops", "the scheduler did not stop in time; its jobs are abandoned");
                    None
                }
            }
        };
        let stops = futures_util::future::join_all(producers.into_iter().map(|(name, producer)| async move {
            let in_time = tokio::time::timeout(for_producers, producer.stop(for_producers)).await.is_ok();
            if !in_time {
                tracing::error!(target: "resee_ops::ops", producer = %name, "producer did not stop in time; abandoned");
            }
            ProducerStop { name, in_time }
        }));
        let (jobs, producers) = tokio::join!(jobs, stops);

        // The time left, but never less than the reserve: the last alerts (a backup's result, a
        // resolution) are the ones an operator needs.
        let left = deadline.saturating_sub(started.elapsed()).max(reserve);
        tracing::info!(target: "resee_ops::ops", grace = ?left, in_flight = dispatcher.stats().in_flight,
            "producers stopped: flushing alerts");
        dispatcher.shutdown(left).await;
        let summary = ShutdownSummary { producers, jobs, alerts: dispatcher.stats(), elapsed: started.elapsed() };
        if summary.dropped() > 0 {
            tracing::warn!(target: "resee_ops::ops", dropped = summary.dropped(), "{summary}");
        } else {
            tracing::info!(target: "resee_ops::ops", "{summary}");
        }
        summary
    }
}
