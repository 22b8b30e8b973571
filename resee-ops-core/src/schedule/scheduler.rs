//! [`Scheduler`]: runs [`Job`]s on their [`Schedule`]s, with the missed-run policy, no overlap, retries
//! inside the slot, and a graceful, cancellable shutdown.

use std::fmt::{self, Debug};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Schedule;
use crate::deadline::SaturatingAdd;
use crate::{Alert, Clock, Notifier, Result, Severity, SharedClock, system_clock};

/// The alert sent (severity info) when a run is skipped because the previous one is still running.
pub const OVERLAP_ALERT_NAME: &str = "job_run_skipped";

/// The default time a running job gets to finish on shutdown before it is cancelled.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(60);

/// How long a cancelled job gets to clean up (remove partial output) before its task is aborted.
pub const CANCEL_CLEANUP: Duration = Duration::from_secs(10);

/// How long the scheduler waits for a job's [`last_success`](Job::last_success) at start.
const LAST_SUCCESS_TIMEOUT: Duration = Duration::from_secs(30);

/// Something the [`Scheduler`] runs: one attempt per call to [`run`](Job::run).
///
/// A job watches [`JobContext::cancelled`] when it can be cancelled half-way and must then leave nothing
/// half-done behind (a backup removes its partial file); it is aborted [`CANCEL_CLEANUP`] after the cancel.
#[async_trait]
pub trait Job: Send + Sync + Debug + 'static {
    /// A short, unique name (`backup`), used in logs, alerts and the status page.
    fn name(&self) -> &str;

    /// One attempt. A [temporary](crate::Error::is_temporary) error is retried within the slot (see
    /// [`JobPolicy::retries`]); a permanent one ends the slot.
    async fn run(&self, ctx: &JobContext) -> Result<()>;

    /// When the job last succeeded, as far as it can tell from durable state (a backup job asks its target
    /// for the newest verified backup). The missed-run policy decides from it at start. Default: unknown.
    async fn last_success(&self) -> Result<Option<DateTime<Utc>>> {
        Ok(None)
    }
}

#[async_trait]
impl<J: Job + ?Sized> Job for Arc<J> {
    fn name(&self) -> &str {
        (**self).name()
    }
    async fn run(&self, ctx: &JobContext) -> Result<()> {
        (**self).run(ctx).await
    }
    async fn last_success(&self) -> Result<Option<DateTime<Utc>>> {
        (**self).last_success().await
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Signal {
    Run,
    /// No new runs or retries start.
    Stop,
    /// Running attempts should end now.
    Cancel,
}

/// Tells running jobs to stop (no new attempts) and then to cancel (end the current attempt).
///
/// The [`Scheduler`] owns one; [`run_in_slot`] takes one so that a one-shot run (a CLI's `backup --once`)
/// shuts down the same way.
#[derive(Debug, Clone)]
pub struct RunControl {
    tx: Arc<watch::Sender<Signal>>,
}

impl Default for RunControl {
    fn default() -> Self {
        Self::new()
    }
}

impl RunControl {
    /// A control in the running state.
    pub fn new() -> Self {
        Self { tx: Arc::new(watch::Sender::new(Signal::Run)) }
    }

    /// No new runs or retries start; running attempts continue.
    pub fn stop(&self) {
        self.tx.send_if_modified(|s| raise(s, Signal::Stop));
    }

    /// Running attempts are asked to end now ([`JobContext::cancelled`] completes).
    pub fn cancel(&self) {
        self.tx.send_if_modified(|s| raise(s, Signal::Cancel));
    }

    /// Whether [`stop`](Self::stop) or [`cancel`](Self::cancel) was called.
    pub fn is_stopping(&self) -> bool {
        *self.tx.borrow() >= Signal::Stop
    }

    fn context(&self, slot: DateTime<Utc>, attempt: u32, deadline: Option<DateTime<Utc>>) -> JobContext {
        JobContext { slot, attempt, deadline, signal: self.tx.subscribe() }
    }
}

fn raise(state: &mut Signal, to: Signal) -> bool {
    if *state < to {
        *state = to;
        true
    } else {
        false
    }
}

/// What a running attempt knows about itself.
#[derive(Debug, Clone)]
pub struct JobContext {
    slot: DateTime<Utc>,
    attempt: u32,
    deadline: Option<DateTime<Utc>>,
    signal: watch::Receiver<Signal>,
}

impl JobContext {
    /// A context for running a job by hand (tests, one-shot commands): attempt 1, no deadline, never
    /// cancelled.
    pub fn detached(slot: DateTime<Utc>) -> Self {
        RunControl::new().context(slot, 1, None)
    }

    /// The nominal time of the slot this run belongs to.
    pub fn slot(&self) -> DateTime<Utc> {
        self.slot
    }

    /// 1 for the first attempt, 2 for the first retry, …
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The next slot: no retry starts at or after it.
    pub fn deadline(&self) -> Option<DateTime<Utc>> {
        self.deadline
    }

    /// Whether the run was cancelled.
    pub fn is_cancelled(&self) -> bool {
        *self.signal.borrow() == Signal::Cancel
    }

    /// Completes when the run is cancelled (shutdown, after the grace period); never otherwise.
    pub async fn cancelled(&self) {
        let mut rx = self.signal.clone();
        if rx.wait_for(|s| *s == Signal::Cancel).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// What to do at start about a run missed while the process was down.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MissedRunPolicy {
    /// Wait for the next slot.
    #[default]
    Skip,
    /// Run once at start when the last success is older than one period plus the grace (or unknown), like
    /// systemd's `Persistent=true`. Also runs a slot once when the process wakes up late for it.
    RunOnce,
}

/// How one job is run: missed runs, retries inside the slot.
///
/// ```
/// use std::time::Duration;
/// use resee_ops_core::schedule::{JobPolicy, MissedRunPolicy};
/// // The seed's backup: one attempt and 3 retries 5 minutes apart, caught up at start.
/// let p = JobPolicy::default().with_missed_runs(MissedRunPolicy::RunOnce).with_retries(3, Duration::from_secs(300));
/// assert_eq!(p.retries, 3);
/// let p: JobPolicy = serde_json::from_str(r#"{"missed_runs": "run_once", "retries": 3, "retry_delay": "5m"}"#).unwrap();
/// assert_eq!(p.retry_delay, Duration::from_secs(300));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct JobPolicy {
    /// Missed runs. Default [`MissedRunPolicy::Skip`].
    pub missed_runs: MissedRunPolicy,
    /// Tolerance added to one period before a last success counts as missed; also how late a slot may
    /// start after a wake-up under [`MissedRunPolicy::Skip`]. Default 1 hour.
    #[serde(with = "crate::serde_duration")]
    pub missed_run_grace: Duration,
    /// Retries of a temporarily failed run, never past the next slot. Default 0.
    pub retries: u32,
    /// Wait before each retry. Default 5 minutes.
    #[serde(with = "crate::serde_duration")]
    pub retry_delay: Duration,
}

impl Default for JobPolicy {
    fn default() -> Self {
        Self {
            missed_runs: MissedRunPolicy::Skip,
            missed_run_grace: Duration::from_secs(3600),
            retries: 0,
            retry_delay: Duration::from_secs(300),
        }
    }
}

impl JobPolicy {
    /// Sets [`missed_runs`](Self::missed_runs).
    pub fn with_missed_runs(mut self, policy: MissedRunPolicy) -> Self {
        self.missed_runs = policy;
        self
    }

    /// Sets [`missed_run_grace`](Self::missed_run_grace).
    pub fn with_missed_run_grace(mut self, grace: Duration) -> Self {
        self.missed_run_grace = grace;
        self
    }

    /// Sets [`retries`](Self::retries) and [`retry_delay`](Self::retry_delay).
    pub fn with_retries(mut self, retries: u32, delay: Duration) -> Self {
        self.retries = retries;
        self.retry_delay = delay;
        self
    }
}

/// How a slot ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RunOutcome {
    /// An attempt succeeded.
    Succeeded,
    /// Every attempt failed (or a permanent error, or no room for another retry).
    Failed,
    /// Cancelled on shutdown.
    Cancelled,
}

/// One slot's run, for logs and the status page.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RunRecord {
    /// The slot's nominal time (the start time for a catch-up run).
    pub slot: DateTime<Utc>,
    /// When the first attempt started.
    pub started_at: DateTime<Utc>,
    /// When the last attempt ended.
    pub finished_at: DateTime<Utc>,
    /// Attempts made.
    pub attempts: u32,
    /// How it ended.
    pub outcome: RunOutcome,
    /// The last error, when it did not succeed.
    pub error: Option<String>,
}

/// Runs one slot of `job`: the first attempt now, then up to [`JobPolicy::retries`] retries of temporary
/// failures [`JobPolicy::retry_delay`] apart, none starting at or after `deadline` (the next slot) or after
/// `control` was stopped.
pub async fn run_in_slot(
    job: &dyn Job,
    policy: &JobPolicy,
    slot: DateTime<Utc>,
    deadline: Option<DateTime<Utc>>,
    clock: &dyn Clock,
    control: &RunControl,
) -> RunRecord {
    let started_at = clock.now();
    let name = job.name();
    let mut attempt = 0;
    let (outcome, error) = loop {
        attempt += 1;
        let ctx = control.context(slot, attempt, deadline);
        tracing::info!(job = name, attempt, slot = %slot, "job attempt");
        let err = match job.run(&ctx).await {
            Ok(()) => break (RunOutcome::Succeeded, None),
            Err(e) if ctx.is_cancelled() => break (RunOutcome::Cancelled, Some(e.to_string())),
            Err(e) => e,
        };
        if attempt > policy.retries || !err.is_temporary() {
            break (RunOutcome::Failed, Some(err.to_string()));
        }
        if control.is_stopping() {
            tracing::warn!(job = name, error = %err, "job failed; not retried, shutting down");
            break (RunOutcome::Failed, Some(err.to_string()));
        }
        let retry_at = clock.now().saturating_add(policy.retry_delay);
        if let Some(d) = deadline
            && retry_at >= d
        {
            tracing::warn!(job = name, error = %err, next_slot = %d, "job failed; no retry, it would pass the next run");
            break (RunOutcome::Failed, Some(err.to_string()));
        }
        tracing::warn!(job = name, attempt, error = %err, retry_in = ?policy.retry_delay, "job failed; retrying");
        let mut signal = control.tx.subscribe();
        tokio::select! {
            () = tokio::time::sleep(policy.retry_delay) => {}
            _ = signal.wait_for(|s| *s >= Signal::Stop) => {
                tracing::warn!(job = name, "retry abandoned, shutting down");
                break (RunOutcome::Failed, Some(err.to_string()));
            }
        }
    };
    let record = RunRecord { slot, started_at, finished_at: clock.now(), attempts: attempt, outcome, error };
    match record.outcome {
        RunOutcome::Succeeded => tracing::info!(job = name, attempts = attempt, "job succeeded"),
        _ => {
            tracing::error!(job = name, attempts = attempt, outcome = ?record.outcome, error = record.error.as_deref().unwrap_or(""), "job did not succeed")
        }
    }
    record
}

/// The state of one job, for the status page.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct JobStatus {
    /// The job's name.
    pub name: String,
    /// The cron expression.
    pub schedule: String,
    /// The IANA zone of the expression.
    pub zone: String,
    /// The next run (jitter included), or `None` once stopped.
    pub next_run: Option<DateTime<Utc>>,
    /// Whether a run is in progress.
    pub running: bool,
    /// The last finished run.
    pub last_run: Option<RunRecord>,
    /// The last success: from the job's durable state at start, then from runs.
    pub last_success: Option<DateTime<Utc>>,
    /// Slots run (catch-up runs included).
    pub runs: u64,
    /// Slots that did not succeed.
    pub failures: u64,
    /// Slots skipped because the previous run was still going.
    pub skipped_overlaps: u64,
    /// Slots skipped because the process woke up too late for them ([`MissedRunPolicy::Skip`]).
    pub skipped_missed: u64,
}

struct Entry {
    job: Arc<dyn Job>,
    schedule: Schedule,
    policy: JobPolicy,
    slot: Option<DateTime<Utc>>,
    fire_at: Option<DateTime<Utc>>,
    task: Option<JoinHandle<()>>,
}

impl Entry {
    fn is_running(&self) -> bool {
        self.task.as_ref().is_some_and(|t| !t.is_finished())
    }
}

type Statuses = Arc<Mutex<Vec<JobStatus>>>;

fn with_status<R>(statuses: &Statuses, i: usize, f: impl FnOnce(&mut JobStatus) -> R) -> R {
    let mut all = statuses.lock().unwrap_or_else(|p| p.into_inner());
    f(&mut all[i])
}

/// Runs jobs on their schedules in the background.
///
/// - One driver task sleeps until the earliest due job (at most [`with_max_sleep`](Self::with_max_sleep),
///   default 60 s, so a wall-clock jump or a suspended machine is noticed within that time), and is idle
///   otherwise: no polling.
/// - At start, each job with [`MissedRunPolicy::RunOnce`] whose [`last_success`](Job::last_success) is
///   unknown or older than one period plus the grace runs once at once.
/// - A job still running when its next slot comes is not started twice: the slot is skipped, counted
///   ([`JobStatus::skipped_overlaps`]), logged and alerted at [`Severity::Info`].
/// - Retries stay inside the slot ([`run_in_slot`]).
/// - [`SchedulerHandle::shutdown`] stops starting work, gives running jobs a grace period, then cancels them.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap().block_on(async {
/// use std::time::Duration;
/// use async_trait::async_trait;
/// use resee_ops_core::schedule::{Job, JobContext, JobPolicy, MissedRunPolicy, Schedule, Scheduler};
///
/// #[derive(Debug)]
/// struct Hello;
/// #[async_trait]
/// impl Job for Hello {
///     fn name(&self) -> &str { "hello" }
///     async fn run(&self, _ctx: &JobContext) -> resee_ops_core::Result<()> { Ok(()) }
/// }
///
/// let policy = JobPolicy::default().with_missed_runs(MissedRunPolicy::RunOnce);
/// let handle = Scheduler::new().with_job(Hello, Schedule::new("0 3 * * *", "Asia/Seoul").unwrap(), policy).start();
/// tokio::time::sleep(Duration::from_millis(10)).await; // the catch-up run (no success on record)
/// assert_eq!(handle.status()[0].runs, 1);
/// handle.shutdown(Duration::from_secs(60)).await;
/// # });
/// ```
pub struct Scheduler {
    entries: Vec<Entry>,
    clock: SharedClock,
    notifier: Option<Arc<dyn Notifier>>,
    max_sleep: Duration,
}

impl Debug for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let jobs: Vec<String> = self.entries.iter().map(|e| format!("{} {}", e.job.name(), e.schedule)).collect();
        f.debug_struct("Scheduler").field("jobs", &jobs).field("max_sleep", &self.max_sleep).finish()
    }
}

impl Default for Scheduler {
    fn default() -> Self {
        Self::new()
    }
}

impl Scheduler {
    /// No jobs, the system clock, no alerts.
    pub fn new() -> Self {
        Self { entries: Vec::new(), clock: system_clock(), notifier: None, max_sleep: Duration::from_secs(60) }
    }

    /// Reads wall-clock time from `clock` (tests: a clock that follows Tokio's paused time).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Sends the scheduler's own alerts (skipped overlapping runs) to `notifier`.
    pub fn with_notifier(mut self, notifier: impl Notifier) -> Self {
        self.notifier = Some(Arc::new(notifier));
        self
    }

    /// The longest the driver sleeps without looking at the clock again. Default 60 s.
    pub fn with_max_sleep(mut self, d: Duration) -> Self {
        self.max_sleep = d.max(Duration::from_millis(10));
        self
    }

    /// Adds a job.
    pub fn with_job(mut self, job: impl Job, schedule: Schedule, policy: JobPolicy) -> Self {
        self.entries.push(Entry { job: Arc::new(job), schedule, policy, slot: None, fire_at: None, task: None });
        self
    }

    /// Each job's name and its next `n` fire times after `after` (without jitter).
    pub fn preview(&self, after: DateTime<Utc>, n: usize) -> Vec<(String, Vec<DateTime<FixedOffset>>)> {
        self.entries.iter().map(|e| (e.job.name().to_owned(), e.schedule.upcoming(after, n))).collect()
    }

    /// Starts the driver on the current Tokio runtime.
    pub fn start(self) -> SchedulerHandle {
        let statuses: Statuses = Arc::new(Mutex::new(
            self.entries
                .iter()
                .map(|e| JobStatus {
                    name: e.job.name().to_owned(),
                    schedule: e.schedule.expression().to_owned(),
                    zone: e.schedule.zone_name().to_owned(),
                    next_run: None,
                    running: false,
                    last_run: None,
                    last_success: None,
                    runs: 0,
                    failures: 0,
                    skipped_overlaps: 0,
                    skipped_missed: 0,
                })
                .collect(),
        ));
        let control = RunControl::new();
        let wakeups = Arc::new(AtomicU64::new(0));
        let driver = Driver {
            wakeups: wakeups.clone(),
            entries: self.entries,
            clock: self.clock,
            notifier: self.notifier,
            max_sleep: self.max_sleep,
            statuses: statuses.clone(),
            control: control.clone(),
        };
        SchedulerHandle { statuses, control, wakeups, driver: Some(tokio::spawn(driver.run())) }
    }
}

struct Driver {
    wakeups: Arc<AtomicU64>,
    entries: Vec<Entry>,
    clock: SharedClock,
    notifier: Option<Arc<dyn Notifier>>,
    max_sleep: Duration,
    statuses: Statuses,
    control: RunControl,
}

impl Driver {
    async fn run(mut self) -> Vec<JoinHandle<()>> {
        let now = self.clock.now();
        for i in 0..self.entries.len() {
            self.plan(i, now);
            let last = match tokio::time::timeout(LAST_SUCCESS_TIMEOUT, self.entries[i].job.last_success()).await {
                Ok(Ok(last)) => Ok(last),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no answer within {LAST_SUCCESS_TIMEOUT:?}")),
            };
            if let Ok(Some(t)) = last {
                with_status(&self.statuses, i, |s| s.last_success = Some(t));
            }
            if let Some(reason) = self.catch_up_reason(i, now, last) {
                let name = self.entries[i].job.name().to_owned();
                tracing::info!(job = %name, reason = %reason, "missed run: running once now");
                metrics::counter!(crate::telemetry::SCHEDULER_MISSED, "job" => name).increment(1);
                let deadline = self.entries[i].slot;
                self.spawn(i, now, deadline);
            }
        }
        let mut signal = self.control.tx.subscribe();
        loop {
            if *signal.borrow_and_update() >= Signal::Stop {
                break;
            }
            self.wakeups.fetch_add(1, Ordering::Relaxed);
            let now = self.clock.now();
            for i in 0..self.entries.len() {
                if self.entries[i].fire_at.is_some_and(|t| t <= now) {
                    self.fire(i, now).await;
                }
            }
            let wake = self.entries.iter().filter_map(|e| e.fire_at).min();
            let nap = wake.map_or(self.max_sleep, |w| (w - now).to_std().unwrap_or(Duration::ZERO).min(self.max_sleep));
            tokio::select! {
                () = tokio::time::sleep(nap) => {}
                _ = signal.changed() => {}
            }
        }
        for i in 0..self.entries.len() {
            with_status(&self.statuses, i, |s| s.next_run = None);
        }
        self.entries.iter_mut().filter_map(|e| e.task.take()).collect()
    }

    /// Sets the next slot after `after`.
    fn plan(&mut self, i: usize, after: DateTime<Utc>) {
        let e = &mut self.entries[i];
        e.slot = e.schedule.next_after(after);
        e.fire_at = e.slot.map(|s| s.saturating_add(e.schedule.jitter_for(s)));
        let fire_at = e.fire_at;
        let next = metrics::gauge!(crate::telemetry::SCHEDULER_NEXT_RUN, "job" => e.job.name().to_owned());
        match fire_at {
            Some(t) => next.set(t.timestamp_millis() as f64 / 1000.0),
            None => next.set(f64::NAN),
        }
        with_status(&self.statuses, i, |s| s.next_run = fire_at);
    }

    fn catch_up_reason(
        &self,
        i: usize,
        now: DateTime<Utc>,
        last: std::result::Result<Option<DateTime<Utc>>, String>,
    ) -> Option<String> {
        let e = &self.entries[i];
        if e.policy.missed_runs != MissedRunPolicy::RunOnce {
            return None;
        }
        let period = e.schedule.period_at(now)?;
        match last {
            Err(why) => Some(format!("cannot tell when it last succeeded ({why})")),
            Ok(None) => Some("no successful run on record".into()),
            Ok(Some(t)) => {
                let age = (now - t).to_std().unwrap_or(Duration::ZERO);
                (age > period + e.policy.missed_run_grace).then(|| {
                    format!(
                        "last success at {} is older than one period ({}) plus the grace ({})",
                        t.to_rfc3339(),
                        crate::serde_duration::format_duration(period),
                        crate::serde_duration::format_duration(e.policy.missed_run_grace)
                    )
                })
            }
        }
    }

    /// A slot is due.
    async fn fire(&mut self, i: usize, now: DateTime<Utc>) {
        let Some(slot) = self.entries[i].slot else { return };
        // The slot after this one, counted from now: after a long sleep, missed slots collapse into this one.
        self.plan(i, slot.max(now));
        let e = &self.entries[i];
        let name = e.job.name().to_owned();
        let late = (now - slot).to_std().unwrap_or(Duration::ZERO);
        if e.policy.missed_runs == MissedRunPolicy::Skip && late > e.policy.missed_run_grace {
            tracing::warn!(job = %name, slot = %slot, late = ?late, "slot missed (the process was not running); skipped");
            with_status(&self.statuses, i, |s| s.skipped_missed += 1);
            metrics::counter!(crate::telemetry::SCHEDULER_SKIPPED, "job" => name, "reason" => "missed").increment(1);
            return;
        }
        if e.is_running() {
            tracing::warn!(job = %name, slot = %slot, "previous run still going; this run is skipped");
            with_status(&self.statuses, i, |s| s.skipped_overlaps += 1);
            metrics::counter!(crate::telemetry::SCHEDULER_SKIPPED, "job" => name.clone(), "reason" => "overlap")
                .increment(1);
            if let Some(n) = &self.notifier {
                let alert = Alert::new(
                    OVERLAP_ALERT_NAME,
                    Severity::Info,
                    format!("{name}: run skipped, the previous run is still going"),
                )
                .with_source("scheduler")
                .with_label("job", name.clone())
                .with_field("Slot", slot.to_rfc3339())
                .with_timestamp(now);
                let outcome = n.notify(&alert).await;
                if !outcome.is_ok() {
                    tracing::warn!(job = %name, outcome = %outcome, "skip alert not delivered");
                }
            }
            return;
        }
        let deadline = self.entries[i].slot;
        self.spawn(i, slot, deadline);
    }

    fn spawn(&mut self, i: usize, slot: DateTime<Utc>, deadline: Option<DateTime<Utc>>) {
        let e = &mut self.entries[i];
        let (job, policy, clock, control, statuses) =
            (e.job.clone(), e.policy.clone(), self.clock.clone(), self.control.clone(), self.statuses.clone());
        with_status(&statuses, i, |s| s.running = true);
        e.task = Some(tokio::spawn(async move {
            let record = run_in_slot(job.as_ref(), &policy, slot, deadline, clock.as_ref(), &control).await;
            with_status(&statuses, i, |s| {
                s.running = false;
                s.runs += 1;
                if record.outcome == RunOutcome::Succeeded {
                    s.last_success = Some(record.finished_at);
                } else {
                    s.failures += 1;
                }
                s.last_run = Some(record);
            });
        }));
    }
}

/// How a shutdown went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Runs that finished within the grace period.
    pub finished: usize,
    /// Runs cancelled after the grace period that ended within [`CANCEL_CLEANUP`].
    pub cancelled: usize,
    /// Runs aborted because they did not end after being cancelled.
    pub aborted: usize,
}

/// A started [`Scheduler`]: its status, and its shutdown.
#[derive(Debug)]
pub struct SchedulerHandle {
    statuses: Statuses,
    control: RunControl,
    wakeups: Arc<AtomicU64>,
    driver: Option<JoinHandle<Vec<JoinHandle<()>>>>,
}

impl SchedulerHandle {
    /// Every job's state, in the order they were added.
    pub fn status(&self) -> Vec<JobStatus> {
        self.statuses.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How often the driver has woken up (its idle cost: about one wake-up per due slot plus one per
    /// maximum sleep, whatever the number of jobs).
    pub fn wakeups(&self) -> u64 {
        self.wakeups.load(Ordering::Relaxed)
    }

    /// The control of the running jobs, to cancel them at once while [`shutdown`](Self::shutdown) waits
    /// (an operator's second Ctrl-C).
    pub fn control(&self) -> RunControl {
        self.control.clone()
    }

    /// A shared, cheap view of the status for other tasks (the HTTP status page).
    pub fn status_view(&self) -> StatusView {
        StatusView { statuses: self.statuses.clone() }
    }

    /// Stops starting runs and retries, waits up to `grace` for running jobs, then cancels them and waits
    /// up to [`CANCEL_CLEANUP`] more before aborting what is left.
    pub async fn shutdown(mut self, grace: Duration) -> ShutdownReport {
        self.control.stop();
        let tasks = match self.driver.take() {
            Some(d) => d.await.unwrap_or_default(),
            None => Vec::new(),
        };
        let mut tasks: Vec<JoinHandle<()>> = tasks.into_iter().filter(|t| !t.is_finished()).collect();
        let running = tasks.len();
        if running > 0 {
            tracing::info!(running, grace = ?grace, "waiting for running jobs");
        }
        let mut report = ShutdownReport::default();
        let all = futures_util::future::join_all(tasks.iter_mut());
        if tokio::time::timeout(grace, all).await.is_ok() {
            // Ended within the grace: by themselves, or because `control()` cancelled them meanwhile.
            if *self.control.tx.borrow() == Signal::Cancel {
                report.cancelled = running;
            } else {
                report.finished = running;
            }
            return report;
        }
        report.finished = tasks.iter().filter(|t| t.is_finished()).count();
        // Counted before the cancel: a job that ends right after it was still cancelled.
        let cancelling = running - report.finished;
        tracing::warn!(grace = ?grace, "jobs still running after the grace period: cancelling");
        self.control.cancel();
        let left: Vec<&mut JoinHandle<()>> = tasks.iter_mut().filter(|t| !t.is_finished()).collect();
        if tokio::time::timeout(CANCEL_CLEANUP, futures_util::future::join_all(left)).await.is_ok() {
            report.cancelled = cancelling;
            return report;
        }
        for t in tasks.iter().filter(|t| !t.is_finished()) {
            t.abort();
            report.aborted += 1;
        }
        report.cancelled = cancelling - report.aborted;
        tracing::error!(aborted = report.aborted, "jobs did not end after being cancelled: aborted");
        report
    }
}

impl Drop for SchedulerHandle {
    fn drop(&mut self) {
        self.control.cancel();
        if let Some(d) = &self.driver {
            d.abort();
        }
    }
}

/// A read-only view of the scheduler's status, cheap to clone.
#[derive(Debug, Clone)]
pub struct StatusView {
    statuses: Statuses,
}

impl StatusView {
    /// Every job's state.
    pub fn status(&self) -> Vec<JobStatus> {
        self.statuses.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
