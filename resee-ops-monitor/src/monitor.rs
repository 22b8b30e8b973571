//! [`HealthMonitor`]: runs a [`HealthRegistry`] on an interval, damps flapping, caches the last report and
//! alerts on changes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use resee_ops_core::{
    Alert, CheckGroup, CheckResult, FlapConfig, FlapDetector, FlapVerdict, HealthProbe, HealthRegistry, HealthReport,
    HealthStatus, LogNotifier, Notifier, NotifyOutcome, ProbeAlertText, ProbeOutcome, Severity, SharedClock,
    system_clock,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::MonitorError;

/// The shortest interval the health monitor and the rule evaluator accept: a shorter one would keep a core
/// busy checking (a 1 ns interval spins) without telling anyone anything new.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);
use crate::error::invalid_config;
use crate::periodic::MonitorHandle;

/// The alert name of every health alert; the `probe` label tells them apart.
pub const HEALTH_ALERT_NAME: &str = "health_check";

/// The alert name of the "flapping" notice of a probe (label `probe`), see [`MonitorConfig::flap`].
pub const FLAPPING_ALERT_NAME: &str = "health_check_flapping";

fn default_interval() -> Duration {
    Duration::from_secs(30)
}
fn default_failures() -> u32 {
    3
}
fn default_passes() -> u32 {
    2
}
fn default_source() -> String {
    "monitor".to_owned()
}
fn default_repeat_interval() -> Duration {
    resee_ops_core::DEFAULT_THROTTLE_WINDOW
}

/// When the monitor hands a failing probe to the notifier.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AlertMode {
    /// Once per change of a probe's (damped) status, once on recovery, and a reminder every
    /// [`repeat_interval`](MonitorConfig::repeat_interval), counted from the last *delivered* firing, while
    /// a probe keeps failing. Safe with any notifier, even an unthrottled one. A delivery that fails is
    /// retried on the next cycle until it is delivered or permanently refused.
    #[default]
    OnChange,
    /// On every cycle while a probe fails, and once on recovery. Meant for a
    /// [`Throttled`](resee_ops_core::Throttled) notifier, which turns it into one reminder per window.
    EveryCycle,
}

/// How the [`HealthMonitor`] runs. Deserialisable; the builder methods of [`HealthMonitorBuilder`] set the
/// same fields.
///
/// ```
/// use std::time::Duration;
/// use resee_ops_monitor::{AlertMode, MonitorConfig};
/// let cfg: MonitorConfig = serde_json::from_str(r#"{"interval": "10s", "failures_before_down": 2, "alert_mode": "every_cycle"}"#).unwrap();
/// assert_eq!(cfg.interval, Duration::from_secs(10));
/// assert_eq!(cfg.passes_before_up, 2);
/// assert_eq!(cfg.alert_mode, AlertMode::EveryCycle);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MonitorConfig {
    /// Time between the starts of two cycles (a slow cycle delays the next, never stacks). Default 30 s.
    #[serde(default = "default_interval", with = "resee_ops_core::serde_duration")]
    pub interval: Duration,
    /// Consecutive failed checks before a passing probe is reported failing. Default 3.
    #[serde(default = "default_failures")]
    pub failures_before_down: u32,
    /// Consecutive passed checks before a failing probe is reported up again. Default 2.
    #[serde(default = "default_passes")]
    pub passes_before_up: u32,
    /// The `source` of alerts (part of their fingerprint). Default `monitor`.
    #[serde(default = "default_source")]
    pub source: String,
    /// When to notify. Default [`AlertMode::OnChange`].
    #[serde(default)]
    pub alert_mode: AlertMode,
    /// In [`AlertMode::OnChange`], how often a still-failing probe is reported again. Default 10 minutes
    /// (the throttle's default window); zero turns reminders off.
    #[serde(default = "default_repeat_interval", with = "resee_ops_core::serde_duration")]
    pub repeat_interval: Duration,
    /// When a probe counts as flapping: more than `max_changes` changes of its damped state (passing to
    /// failing or back) inside `window`. A flapping probe sends one "flapping" notice
    /// ([`FLAPPING_ALERT_NAME`]) and holds its firings and resolutions until it has kept one state for a
    /// whole window; then the notice is resolved and the current state is reported as usual. Default:
    /// more than 4 changes in 10 minutes.
    #[serde(default)]
    pub flap: FlapConfig,
    /// How old the cached report may grow before the readiness report says `fail` ("stale") instead of
    /// its content: a monitor whose cycles stopped must not keep answering "pass". Zero (the default)
    /// means three times the [`interval`](Self::interval).
    #[serde(default, with = "resee_ops_core::serde_duration")]
    pub max_report_age: Duration,
    /// Whether a probe that passes on its first check sends a resolution of its health alert, for a
    /// firing an earlier process (before a restart or deploy) may have sent. Meant for a notifier
    /// throttled through a shared, durable [`ThrottleStore`](resee_ops_core::ThrottleStore) such as
    /// [`RedisThrottleStore`](crate::RedisThrottleStore): the throttle passes a resolution only when its
    /// firing was sent and is still open, so it goes out exactly once and otherwise is suppressed. With
    /// any other notifier every start would announce recoveries: default `false`.
    #[serde(default)]
    pub resolve_on_start: bool,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            interval: default_interval(),
            failures_before_down: default_failures(),
            passes_before_up: default_passes(),
            source: default_source(),
            alert_mode: AlertMode::default(),
            repeat_interval: default_repeat_interval(),
            flap: FlapConfig::default(),
            max_report_age: Duration::ZERO,
            resolve_on_start: false,
        }
    }
}

impl MonitorConfig {
    /// The effective maximum age of the cached report: [`max_report_age`](Self::max_report_age), or three
    /// intervals when it is zero.
    pub fn effective_max_report_age(&self) -> Duration {
        if self.max_report_age.is_zero() { self.interval.saturating_mul(3) } else { self.max_report_age }
    }

    fn validate(&self) -> Result<(), MonitorError> {
        if self.interval < MIN_INTERVAL {
            return Err(invalid_config(format!(
                "monitor interval must be at least {MIN_INTERVAL:?}, not {:?}",
                self.interval
            )));
        }
        if self.failures_before_down == 0 || self.passes_before_up == 0 {
            return Err(invalid_config("failures_before_down and passes_before_up must be at least 1"));
        }
        Ok(())
    }
}

/// How the alerts of one probe read. Titles carry measured values; the fingerprint never does.
///
/// ```
/// use resee_ops_monitor::AlertText;
/// assert_eq!(AlertText::for_probe("database"), AlertText::Failed("Database connection".into()));
/// assert_eq!(AlertText::for_probe("disk:/var/lib"), AlertText::Measured("Disk usage".into()));
/// assert_eq!(AlertText::for_probe("workers"), AlertText::Workers);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AlertText {
    /// "`<subject>` failed", recovering as "`<subject>` recovered".
    Failed(String),
    /// "`<subject>` 85 %" with the observed value and unit, recovering as "`<subject>` back to 42 %".
    Measured(String),
    /// "No worker alive" (or "Only 1 worker alive" below the minimum), recovering as "Workers alive again".
    Workers,
    /// Fixed titles.
    Custom {
        /// The title while failing.
        firing: String,
        /// The title of the recovery.
        resolved: String,
    },
}

impl AlertText {
    /// The wording this crate's probes use under their default names: `database` and `postgres*` →
    /// "Database connection failed"; `redis` → "Redis connection failed"; `disk*` → "Disk usage 85 %";
    /// `workers` → "No worker alive"; `queue*` → "Queue length 1200 items"; anything else → "Health check
    /// `<name>` failed". The monitor never picks a wording by name: a probe supplies its own through
    /// [`HealthProbe::alert_text`](resee_ops_core::HealthProbe::alert_text), and
    /// [`HealthMonitorBuilder::with_alert_text`] overrides it. This helps a wrapper or test double speak
    /// like the real probe.
    pub fn for_probe(name: &str) -> Self {
        match name {
            "database" => Self::Failed("Database connection".into()),
            "redis" => Self::Failed("Redis connection".into()),
            "workers" => Self::Workers,
            n if n.starts_with("postgres") => Self::Failed("Database connection".into()),
            n if n.starts_with("disk") => Self::Measured("Disk usage".into()),
            n if n.starts_with("queue") => Self::Measured("Queue length".into()),
            n => Self::Failed(format!("Health check {n}")),
        }
    }

    /// The title (and no text: the check's output is used) for `outcome`, failing or `resolved`; what a
    /// probe returns from [`HealthProbe::alert_text`](resee_ops_core::HealthProbe::alert_text).
    ///
    /// ```
    /// use resee_ops_core::ProbeOutcome;
    /// use resee_ops_monitor::AlertText;
    /// let disk = AlertText::Measured("Disk usage".into());
    /// let full = ProbeOutcome::down("above 90 %").with_observed(93.4, "percent");
    /// assert_eq!(disk.alert_text(&full, false).title, "Disk usage 93 %");
    /// assert_eq!(disk.alert_text(&ProbeOutcome::up().with_observed(41.0, "percent"), true).title, "Disk usage back to 41 %");
    /// ```
    pub fn alert_text(&self, outcome: &ProbeOutcome, resolved: bool) -> ProbeAlertText {
        let shown = observed_of(outcome.observed_value, outcome.observed_unit.as_deref());
        ProbeAlertText::new(match (self, resolved) {
            (Self::Failed(subject), false) => format!("{subject} failed"),
            (Self::Failed(subject), true) => format!("{subject} recovered"),
            (Self::Measured(subject), false) => match shown {
                Some(v) => format!("{subject} {v}"),
                None => format!("{subject} unknown"),
            },
            (Self::Measured(subject), true) => match shown {
                Some(v) => format!("{subject} back to {v}"),
                None => format!("{subject} recovered"),
            },
            (Self::Workers, false) => match outcome.observed_value {
                Some(n) if n >= 1.0 => format!("Only {n} worker{} alive", if n == 1.0 { "" } else { "s" }),
                _ => "No worker alive".to_owned(),
            },
            (Self::Workers, true) => "Workers alive again".to_owned(),
            (Self::Custom { firing, .. }, false) => firing.clone(),
            (Self::Custom { resolved, .. }, true) => resolved.clone(),
        })
    }
}

/// "85 %", "1200 items", "3.5 ms"; rounded to whole numbers for percent.
fn observed(result: &CheckResult) -> Option<String> {
    observed_of(result.observed_value, result.observed_unit.as_deref())
}

fn observed_of(value: Option<f64>, unit: Option<&str>) -> Option<String> {
    let v = value?;
    Some(match unit {
        Some("percent") => format!("{} %", v.round()),
        Some(unit) => format!("{v} {unit}"),
        None => format!("{v}"),
    })
}

fn severity_of(status: HealthStatus) -> Severity {
    if status == HealthStatus::Down { Severity::Error } else { Severity::Warning }
}

/// One probe's memory across cycles.
#[derive(Debug)]
struct ProbeState {
    /// The status reported after damping.
    damped: HealthStatus,
    consecutive_failures: u32,
    consecutive_passes: u32,
    /// The status whose alert the notifier last took (`Up`: nothing open).
    alerted: HealthStatus,
    /// The last firing alert the notifier took, resolved on recovery.
    open_alert: Option<Alert>,
    /// When the notifier last *delivered* a firing alert for this probe (reminders count from it).
    last_delivered: Option<DateTime<Utc>>,
    /// Counts the changes of the damped state.
    flap: FlapDetector,
    /// The "flapping" notice the notifier took, resolved once the probe has settled.
    flap_notice: Option<Alert>,
    /// An alert of this probe is being delivered: nothing else is sent for it until that ends.
    in_flight: bool,
}

#[derive(Debug, Default)]
struct State {
    probes: HashMap<String, ProbeState>,
}

/// What a delivery was about, to record its final outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sent {
    /// A firing (or reminder) for this damped status.
    Firing(HealthStatus),
    Resolution,
    FlapStarted,
    FlapSettled,
}

/// One alert to deliver after the cycle's decisions.
#[derive(Debug)]
struct Delivery {
    probe: String,
    sent: Sent,
    alert: Alert,
}

/// The outcome of a monitor cycle, as cached for endpoints.
#[derive(Debug, Clone)]
struct Snapshot {
    readiness: HealthReport,
    liveness: HealthReport,
    all: HealthReport,
    /// When the cycle's checks finished.
    at: DateTime<Utc>,
}

#[derive(Debug)]
struct Inner {
    registry: HealthRegistry,
    config: MonitorConfig,
    notifier: Arc<dyn Notifier>,
    texts: HashMap<String, AlertText>,
    clock: SharedClock,
    /// Held for a whole cycle's checks and decisions, never across a delivery: cycles do not overlap.
    cycle: tokio::sync::Mutex<()>,
    /// Short critical sections only (a cycle's decisions, a delivery's outcome).
    state: Mutex<State>,
    latest: watch::Sender<Option<Arc<Snapshot>>>,
    cycles: AtomicU64,
}

impl Inner {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic inside these short sections cannot leave a half-made decision behind.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Builds a [`HealthMonitor`]; see [`HealthMonitor::builder`].
#[derive(Debug)]
pub struct HealthMonitorBuilder {
    registry: HealthRegistry,
    config: MonitorConfig,
    notifier: Option<Arc<dyn Notifier>>,
    texts: HashMap<String, AlertText>,
    clock: SharedClock,
}

impl HealthMonitorBuilder {
    /// Replaces the whole configuration.
    pub fn with_config(mut self, config: MonitorConfig) -> Self {
        self.config = config;
        self
    }

    /// Sets the interval between cycles (at least [`MIN_INTERVAL`]).
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.config.interval = interval;
        self
    }

    /// Sets how many consecutive failures make a passing probe fail.
    pub fn with_failures_before_down(mut self, n: u32) -> Self {
        self.config.failures_before_down = n;
        self
    }

    /// Sets how many consecutive passes make a failing probe pass.
    pub fn with_passes_before_up(mut self, n: u32) -> Self {
        self.config.passes_before_up = n;
        self
    }

    /// Sets when to notify.
    pub fn with_alert_mode(mut self, mode: AlertMode) -> Self {
        self.config.alert_mode = mode;
        self
    }

    /// Sets how often a still-failing probe is reported again in [`AlertMode::OnChange`] (zero: never).
    pub fn with_repeat_interval(mut self, every: Duration) -> Self {
        self.config.repeat_interval = every;
        self
    }

    /// Sets [`MonitorConfig::resolve_on_start`]: a probe passing on its first check resolves an alert an
    /// earlier process left open (use with a shared throttle store).
    pub fn with_resolve_on_start(mut self, resolve: bool) -> Self {
        self.config.resolve_on_start = resolve;
        self
    }

    /// Sets the `source` of alerts.
    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.config.source = source.into();
        self
    }

    /// Sends alerts through `notifier` (default: a [`LogNotifier`]): any [`Notifier`], a concrete one or a
    /// shared `Arc<dyn Notifier>`. Wrap it in [`Throttled`](resee_ops_core::Throttled) and a
    /// [`Dispatcher`](resee_ops_core::Dispatcher) in production; deliveries run on their own tasks, never
    /// holding up a cycle.
    pub fn with_notifier(mut self, notifier: impl Notifier) -> Self {
        self.notifier = Some(Arc::new(notifier));
        self
    }

    /// Sets how the alerts of the probe called `probe` read (default: [`AlertText::for_probe`]).
    pub fn with_alert_text(mut self, probe: impl Into<String>, text: AlertText) -> Self {
        self.texts.insert(probe.into(), text);
        self
    }

    /// Uses `clock` for alert timestamps.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Validates the configuration and builds the monitor. Nothing runs until [`HealthMonitor::run`],
    /// [`HealthMonitor::spawn`] or [`HealthMonitor::run_once`].
    pub fn build(self) -> Result<HealthMonitor, MonitorError> {
        self.config.validate()?;
        let (latest, _) = watch::channel(None);
        Ok(HealthMonitor {
            inner: Arc::new(Inner {
                registry: self.registry,
                config: self.config,
                notifier: self.notifier.unwrap_or_else(|| Arc::new(LogNotifier::new())),
                texts: self.texts,
                clock: self.clock,
                cycle: tokio::sync::Mutex::new(()),
                state: Mutex::new(State::default()),
                latest,
                cycles: AtomicU64::new(0),
            }),
        })
    }
}

/// Runs a [`HealthRegistry`] on an interval, keeps the last report for endpoints, damps flapping and sends
/// alerts on changes.
///
/// - **Damping**: a passing probe is reported failing only after `failures_before_down` consecutive failed
///   checks (anything but `Up`), and a failing one `Up` only after `passes_before_up` consecutive passes.
///   While failing, the reported status follows the checks at once (85 % → 93 % escalates from `Degraded`
///   to `Down`). A probe's first check is taken as it is: there is nothing yet to damp against.
/// - **Alerts**: one [`Alert`] named [`HEALTH_ALERT_NAME`] per probe, with label `probe=<name>` and the
///   configured source, so its fingerprint is stable whatever the values; severity `Error` for `Down`,
///   `Warning` for `Degraded`/`Unknown`; the recovery is [`Alert::resolved`] of the last firing alert (same
///   fingerprint, severity `Success`). See [`AlertMode`] for when alerts are sent.
/// - **Cache**: [`report`](Self::report) answers from the last cycle at once, so an endpoint never waits on
///   a dependency. Reports carry the damped statuses.
/// - **Groups**: each cycle runs every probe once, concurrently, and splits the results into the readiness
///   and liveness reports; a probe registered in both groups still runs once.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use std::time::Duration;
/// use resee_ops_core::{CheckGroup, HealthRegistry, HealthStatus, ProbeOutcome, Registration};
/// use resee_ops_core::testing::{RecordingNotifier, StaticProbe};
/// use resee_ops_monitor::HealthMonitor;
///
/// let db = StaticProbe::new("database", ProbeOutcome::up());
/// let inbox = RecordingNotifier::new();
/// let monitor = HealthMonitor::builder(HealthRegistry::new().with_registration(Registration::new(db.clone())))
///     .with_interval(Duration::from_secs(10))
///     .with_failures_before_down(2)
///     .with_notifier(Arc::new(inbox.clone()))
///     .build()
///     .unwrap();
///
/// monitor.run_once().await;
/// db.set(ProbeOutcome::down("connection refused"));
/// monitor.run_once().await; // one failure: damped
/// assert_eq!(monitor.report(CheckGroup::Readiness).unwrap().status, HealthStatus::Up);
/// monitor.run_once().await; // second failure: down, alert sent
/// assert_eq!(monitor.report(CheckGroup::Readiness).unwrap().status, HealthStatus::Down);
/// // A test double words its alert generically; the real PostgresProbe says "Database connection failed".
/// assert_eq!(inbox.titles(), ["Health check database failed"]);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct HealthMonitor {
    inner: Arc<Inner>,
}

impl HealthMonitor {
    /// A builder for a monitor of `registry`, with the default [`MonitorConfig`]. Pass a clone and keep
    /// the registry: probes registered on it later are checked from the next cycle on.
    pub fn builder(registry: HealthRegistry) -> HealthMonitorBuilder {
        HealthMonitorBuilder {
            registry,
            config: MonitorConfig::default(),
            notifier: None,
            texts: HashMap::new(),
            clock: system_clock(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &MonitorConfig {
        &self.inner.config
    }

    /// How many cycles have completed.
    pub fn cycles(&self) -> u64 {
        self.inner.cycles.load(Ordering::SeqCst)
    }

    /// Resolves once the first cycle has completed (at once if one has): from then on
    /// [`report`](Self::report) answers and the readiness endpoint serves real results instead of "not
    /// ready yet". A host awaits it after [`spawn`](Self::spawn), before it reports itself ready or starts
    /// taking traffic, instead of running a cycle by hand; bound the wait with `tokio::time::timeout` when
    /// a probe may take long (each probe is bounded by its own timeout, so a cycle is too).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use resee_ops_core::prelude::*;
    /// use resee_ops_core::testing::StaticProbe;
    /// use resee_ops_monitor::HealthMonitor;
    ///
    /// let registry = HealthRegistry::new();
    /// registry.register(Registration::readiness(StaticProbe::new("database", ProbeOutcome::up())));
    /// let monitor = HealthMonitor::builder(registry.clone()).build().unwrap();
    /// let running = monitor.spawn();
    /// monitor.ready().await;
    /// assert_eq!(monitor.report(CheckGroup::Readiness).unwrap().status, HealthStatus::Up);
    /// # running.shutdown().await;
    /// # });
    /// ```
    pub async fn ready(&self) {
        let mut latest = self.inner.latest.subscribe();
        // The sender lives in `inner`, which `self` keeps alive: the wait ends only with a report.
        let _ = latest.wait_for(Option::is_some).await;
    }

    /// The last report of `group` (damped), or `None` before the first cycle completed. Never waits.
    ///
    /// A readiness report older than [`MonitorConfig::max_report_age`] (default three intervals) is not
    /// served as it is: its status is `Down` (HTTP 503) and its `output` says how old it is, since a
    /// monitor whose cycles stopped knows nothing about the present. Its checks stay attached, as they
    /// were last seen.
    pub fn report(&self, group: CheckGroup) -> Option<HealthReport> {
        let snapshot = self.inner.latest.borrow().clone()?;
        Some(match group {
            CheckGroup::Liveness => snapshot.liveness.clone(),
            _ => self.unless_stale(&snapshot, snapshot.readiness.clone()),
        })
    }

    /// The last report of every probe (damped), or `None` before the first cycle completed; stale as
    /// [`report`](Self::report) says.
    pub fn latest(&self) -> Option<HealthReport> {
        let snapshot = self.inner.latest.borrow().clone()?;
        Some(self.unless_stale(&snapshot, snapshot.all.clone()))
    }

    fn unless_stale(&self, snapshot: &Snapshot, mut report: HealthReport) -> HealthReport {
        let max_age = self.inner.config.effective_max_report_age();
        let age = self.inner.clock.now().signed_duration_since(snapshot.at).to_std().unwrap_or_default();
        if age > max_age {
            report.status = HealthStatus::Down;
            report.output = Some(format!(
                "stale: the last health check finished {}s ago, longer than the maximum age of {}s",
                age.as_secs(),
                max_age.as_secs()
            ));
        }
        report
    }

    /// Runs one cycle now: checks, damping, cache update, then alerts, and waits for the alerts to reach
    /// their final outcome. Returns the damped report of every probe. Cycles never overlap: a call waits
    /// for a running one to finish its checks. (The [`run`](Self::run) loop does not wait for
    /// deliveries: a slow receiver never delays the next cycle.)
    pub async fn run_once(&self) -> HealthReport {
        let (report, deliveries) = self.cycle().await;
        for delivery in deliveries {
            let _ = delivery.await;
        }
        report
    }

    /// Checks, damping, cache update and alert decisions; the deliveries run on their own tasks.
    async fn cycle(&self) -> (HealthReport, Vec<JoinHandle<()>>) {
        let inner = &self.inner;
        let cycle = inner.cycle.lock().await;
        // Each probe runs once per cycle, even when it serves both groups.
        let (live, ready) = inner.registry.check_groups().await;
        // The probes by report key, for their alert wording; read per cycle, since probes can be
        // registered after the monitor was built. The first of several sharing a name owns the plain key.
        let mut probes: HashMap<String, Arc<dyn HealthProbe>> = HashMap::new();
        for r in inner.registry.registrations() {
            probes.entry(r.probe().name().to_owned()).or_insert_with(|| r.probe().clone());
        }
        let raw: BTreeMap<String, CheckResult> =
            ready.checks.iter().chain(live.checks.iter()).map(|(n, c)| (n.clone(), c.clone())).collect();
        let now = inner.clock.now();

        let (all, deliveries) = {
            let mut state = inner.state();
            let mut damped: BTreeMap<String, CheckResult> = BTreeMap::new();
            for (name, result) in &raw {
                let probe = self.damp(&mut state, name, result.status, now);
                let mut shown = result.clone();
                if probe.damped != result.status {
                    let note = if result.status == HealthStatus::Up {
                        format!("passing ({} of {} before up)", probe.consecutive_passes, inner.config.passes_before_up)
                    } else {
                        format!(
                            "{} ({} of {} before down)",
                            result.status.as_health_json(),
                            probe.consecutive_failures,
                            inner.config.failures_before_down
                        )
                    };
                    shown.output = Some(match &result.output {
                        Some(out) => format!("{note}: {out}"),
                        None => note,
                    });
                    shown.status = probe.damped;
                }
                damped.insert(name.clone(), shown);
            }

            let pick = |names: &BTreeSet<&String>| {
                HealthReport::from_checks(
                    damped.iter().filter(|(n, _)| names.contains(n)).map(|(n, c)| (n.clone(), c.clone())).collect(),
                )
            };
            let snapshot = Snapshot {
                readiness: pick(&ready.checks.keys().collect()),
                liveness: pick(&live.checks.keys().collect()),
                all: HealthReport::from_checks(damped.clone()),
                at: now,
            };
            let all = snapshot.all.clone();
            inner.latest.send_replace(Some(Arc::new(snapshot)));
            let deliveries: Vec<Delivery> = damped
                .iter()
                .filter_map(|(name, result)| self.decide(&mut state, &probes, name, result, now))
                .collect();
            (all, deliveries)
        };
        drop(cycle);
        inner.cycles.fetch_add(1, Ordering::SeqCst);
        // No lock is held from here on: each delivery runs on its own task and records its outcome.
        let handles = deliveries.into_iter().map(|d| tokio::spawn(self.clone().deliver(d))).collect();
        (all, handles)
    }

    /// Applies one raw status to the probe's damping state and returns it.
    fn damp<'s>(&self, state: &'s mut State, name: &str, raw: HealthStatus, now: DateTime<Utc>) -> &'s ProbeState {
        let cfg = &self.inner.config;
        let failing = raw != HealthStatus::Up;
        let probe = state.probes.entry(name.to_owned()).or_insert_with(|| ProbeState {
            damped: raw,
            consecutive_failures: 0,
            consecutive_passes: 0,
            // Resolving on start: a passing probe behaves as if its firing had been taken, so its
            // resolution is sent once; the throttle passes it only if that firing is open in its store.
            alerted: if cfg.resolve_on_start && raw == HealthStatus::Up {
                HealthStatus::Down
            } else {
                HealthStatus::Up
            },
            open_alert: None,
            last_delivered: None,
            flap: FlapDetector::new(cfg.flap),
            flap_notice: None,
            in_flight: false,
        });
        let before = probe.damped;
        if failing {
            probe.consecutive_failures += 1;
            probe.consecutive_passes = 0;
            if probe.damped != HealthStatus::Up || probe.consecutive_failures >= cfg.failures_before_down {
                probe.damped = raw;
            }
        } else {
            probe.consecutive_passes += 1;
            probe.consecutive_failures = 0;
            if probe.damped == HealthStatus::Up || probe.consecutive_passes >= cfg.passes_before_up {
                probe.damped = HealthStatus::Up;
            }
        }
        if probe.damped != before {
            tracing::info!(target: "resee_ops::monitor", probe = name, from = %before, to = %probe.damped, "health status changed");
        }
        if (probe.damped == HealthStatus::Up) != (before == HealthStatus::Up) {
            // Passing to failing or back: a change the flap detector counts (an escalation is not one).
            if probe.flap.record_change(now) == FlapVerdict::Started {
                tracing::warn!(target: "resee_ops::monitor", probe = name, "health check is flapping; holding its alerts");
            }
        } else if probe.flap.poll(now) == FlapVerdict::Settled {
            tracing::info!(target: "resee_ops::monitor", probe = name, "health check steady again");
        }
        probe
    }

    /// Decides the one alert the probe's state calls for now, if any, and marks it in flight.
    fn decide(
        &self,
        state: &mut State,
        probes: &HashMap<String, Arc<dyn HealthProbe>>,
        name: &str,
        result: &CheckResult,
        now: DateTime<Utc>,
    ) -> Option<Delivery> {
        let inner = &self.inner;
        let probe = state.probes.get_mut(name)?;
        if probe.in_flight {
            return None;
        }
        // The wording: the builder's override, else the probe's own, else the trait's default.
        let outcome = result.outcome();
        let words = |resolved: bool| match (inner.texts.get(name), probes.get(name)) {
            (Some(text), _) => text.alert_text(&outcome, resolved),
            (None, Some(probe)) => probe.alert_text(&outcome, resolved),
            (None, None) => AlertText::Failed(format!("Health check {name}")).alert_text(&outcome, resolved),
        };
        let base = |name_: &str, severity, title: String| {
            Alert::new(name_, severity, title)
                .with_source(&inner.config.source)
                .with_label("probe", name)
                .with_field("Probe", name)
                .with_timestamp(now)
        };
        let (sent, alert) = if probe.flap.is_flapping() || probe.flap_notice.is_some() {
            // Flapping: one notice when it starts, its resolution when it has settled; changes are held.
            match (probe.flap.is_flapping(), &probe.flap_notice) {
                (true, None) => {
                    let window = probe.flap.config().window;
                    let alert = base(
                        FLAPPING_ALERT_NAME,
                        Severity::Warning,
                        format!("Health check {name} is flapping"),
                    )
                    .with_text(format!(
                        "{name} changed state more than {} times in {}s; further changes are held until it keeps one \
                             state for {}s.",
                        probe.flap.config().max_changes,
                        window.as_secs(),
                        window.as_secs()
                    ));
                    (Sent::FlapStarted, alert)
                }
                (false, Some(notice)) => {
                    let mut alert = notice.resolved();
                    alert.title = format!("Health check {name} steady again");
                    alert.text = format!("{name} has kept one state for {}s.", probe.flap.config().window.as_secs());
                    alert.timestamp = now;
                    (Sent::FlapSettled, alert)
                }
                _ => return None,
            }
        } else if probe.damped != HealthStatus::Up {
            let repeat = inner.config.repeat_interval;
            // Reminders count from the last delivered firing; a firing that was only suppressed (or never
            // delivered) is tried again on every cycle until one gets through.
            let reminder_due = probe.alerted != HealthStatus::Up
                && !repeat.is_zero()
                && probe.last_delivered.is_none_or(|last| {
                    now.signed_duration_since(last)
                        >= chrono::Duration::from_std(repeat).unwrap_or(chrono::Duration::MAX)
                });
            let due = inner.config.alert_mode == AlertMode::EveryCycle || probe.damped != probe.alerted || reminder_due;
            if !due {
                return None;
            }
            let words = words(false);
            let mut alert = base(HEALTH_ALERT_NAME, severity_of(probe.damped), words.title)
                .with_text(words.text.or_else(|| result.output.clone()).unwrap_or_default())
                .with_field("Status", result.status.as_health_json());
            if let Some(v) = observed(result) {
                alert = alert.with_field("Observed", v);
            }
            (Sent::Firing(probe.damped), alert)
        } else if probe.alerted != HealthStatus::Up {
            let firing = probe
                .open_alert
                .clone()
                .unwrap_or_else(|| base(HEALTH_ALERT_NAME, Severity::Error, words(false).title));
            let words = words(true);
            let mut alert = firing.resolved();
            alert.title = words.title;
            alert.text = words.text.unwrap_or_else(|| format!("{name} passes again."));
            alert.fields.retain(|f| f.name == "Probe");
            alert.fields.push(resee_ops_core::Field::new("Status", "pass"));
            if let Some(v) = observed(result) {
                alert.fields.push(resee_ops_core::Field::new("Observed", v));
            }
            alert.timestamp = now;
            (Sent::Resolution, alert)
        } else {
            return None;
        };
        probe.in_flight = true;
        Some(Delivery { probe: name.to_owned(), sent, alert })
    }

    /// Delivers one alert to its final outcome (no lock held) and records it.
    async fn deliver(self, delivery: Delivery) {
        let notifier = self.inner.notifier.clone();
        let alert = delivery.alert.clone();
        // A panicking notifier must not leave the probe marked in flight forever.
        let outcome = tokio::spawn(async move { notifier.notify_final(&alert).await }).await.unwrap_or_else(|_| {
            NotifyOutcome::PermanentFailure(resee_ops_core::Error::new(
                resee_ops_core::ErrorKind::Unexpected,
                "the notifier panicked",
            ))
        });
        self.record(delivery, outcome);
    }

    /// Records the final outcome of a delivery in the probe's state.
    fn record(&self, delivery: Delivery, outcome: NotifyOutcome) {
        let Delivery { probe: name, sent, alert } = delivery;
        let mut state = self.inner.state();
        let Some(probe) = state.probes.get_mut(&name) else { return };
        probe.in_flight = false;
        let taken = match &outcome {
            // `Queued` from a notifier that queues without reporting its final outcome: taken on trust.
            NotifyOutcome::Delivered | NotifyOutcome::Queued | NotifyOutcome::Suppressed => true,
            NotifyOutcome::PermanentFailure(err) => {
                tracing::error!(target: "resee_ops::monitor", probe = %name, title = %alert.title, error = %err,
                    "health alert permanently refused; not retrying it");
                true
            }
            other => {
                tracing::warn!(target: "resee_ops::monitor", probe = %name, title = %alert.title, outcome = %other,
                    "health alert not delivered; retrying next cycle");
                false
            }
        };
        if !taken {
            return;
        }
        let delivered = matches!(outcome, NotifyOutcome::Delivered | NotifyOutcome::Queued);
        match sent {
            Sent::Firing(status) => {
                probe.alerted = status;
                if delivered || matches!(outcome, NotifyOutcome::PermanentFailure(_)) {
                    // A refused firing waits a repeat interval before its reminder tries again.
                    probe.last_delivered = Some(alert.timestamp);
                }
                probe.open_alert = Some(alert);
            }
            Sent::Resolution => {
                probe.alerted = HealthStatus::Up;
                probe.open_alert = None;
                probe.last_delivered = None;
            }
            Sent::FlapStarted => probe.flap_notice = Some(alert),
            Sent::FlapSettled => probe.flap_notice = None,
        }
    }

    /// Runs a cycle at once and then every interval until `shutdown` completes. A cycle still running when
    /// `shutdown` completes is abandoned. A slow cycle delays the next one (ticks never pile up).
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        // Deliveries run on their own tasks: a slow receiver never delays the next cycle.
        crate::periodic::run_every(self.inner.config.interval, shutdown, || async {
            self.cycle().await;
        })
        .await;
    }

    /// Runs [`run`](Self::run) on a new task until the returned handle is shut down or dropped.
    pub fn spawn(&self) -> MonitorHandle {
        let monitor = self.clone();
        crate::periodic::spawn(|stopped| async move {
            monitor
                .run(async move {
                    let _ = stopped.await;
                })
                .await;
        })
    }
}
