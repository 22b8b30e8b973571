//! [`RuleEvaluator`]: evaluates [`Rule`]s over their sources on an interval and alerts on transitions.

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use resee_ops_core::deadline::SaturatingAdd;
use resee_ops_core::{
    Alert, FlapConfig, FlapDetector, FlapVerdict, LogNotifier, MetricSource, Notifier, Severity, SharedClock,
    system_clock,
};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::rule::{DataPolicy, Rule};
use crate::MonitorError;
use crate::metrics::measure::{LastValue, Measure, Measurement, WindowedSource};
use crate::periodic::MonitorHandle;

/// The default time one source read may take.
pub const DEFAULT_SOURCE_TIMEOUT: Duration = Duration::from_secs(5);

/// Undelivered alerts kept per rule; older ones are coalesced (dropped and counted) beyond this.
const MAX_UNDELIVERED: usize = 16;

/// Where a rule stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AlertState {
    /// The condition does not hold.
    Inactive,
    /// The condition holds, for less than the rule's `for`.
    Pending,
    /// The rule fired and has not been resolved.
    Firing,
}

/// What the last read of a rule's measure gave.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reading {
    /// Not evaluated yet.
    NotYet,
    /// A value, compared with the threshold.
    Value,
    /// No value, or fewer observations than the rule's minimum ("not enough data").
    NoData {
        /// Why: `no data`, or `not enough data (3 of 20 observations)`.
        reason: String,
    },
    /// The source failed, timed out, or gave NaN or an infinite value.
    Error {
        /// The error, free of secrets.
        message: String,
    },
}

/// One rule's state, for a status page.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RuleState {
    /// The rule's name.
    pub name: String,
    /// Inactive, pending or firing.
    pub state: AlertState,
    /// The last value read (kept through no-data and error readings).
    pub value: Option<f64>,
    /// The threshold.
    pub threshold: f64,
    /// Observations behind the last value, where the source knows.
    pub observations: Option<u64>,
    /// When the rule entered its current state (`None`: inactive since the start).
    pub since: Option<DateTime<Utc>>,
    /// What the last read gave.
    pub reading: Reading,
    /// When the rule was last evaluated.
    pub evaluated_at: Option<DateTime<Utc>>,
}

/// Counts of the alert deliveries of a [`RuleEvaluator`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DeliveryStats {
    /// Alerts the notifier accepted.
    pub delivered: u64,
    /// Attempts that failed; a temporary failure is retried on the next evaluation.
    pub failed: u64,
    /// Alerts refused for good (a permanent failure), dropped after their attempt.
    pub refused: u64,
    /// Undelivered alerts replaced by newer ones of the same rule (more than 16 waiting).
    pub coalesced: u64,
}

/// A source as registered.
#[derive(Clone, Debug)]
struct SourceEntry {
    source: Arc<dyn WindowedSource>,
    timeout: Option<Duration>,
}

/// Builds a [`RuleEvaluator`]; see [`RuleEvaluator::builder`].
#[derive(Debug)]
pub struct RuleEvaluatorBuilder {
    rules: Vec<Rule>,
    sources: HashMap<String, SourceEntry>,
    interval: Duration,
    default_timeout: Duration,
    repeat_interval: Duration,
    alert_source: String,
    notifier: Option<Arc<dyn Notifier>>,
    clock: SharedClock,
    flap: FlapConfig,
    resolve_on_start: bool,
}

impl RuleEvaluatorBuilder {
    /// Sets when a rule counts as flapping (default: more than 4 firings and resolutions in 10 minutes;
    /// [`FlapConfig::disabled`] turns it off). A flapping rule sends one "flapping" notice and holds its
    /// alerts until it keeps one state for the window.
    pub fn with_flap(mut self, flap: FlapConfig) -> Self {
        self.flap = flap;
        self
    }

    /// Adds a rule.
    pub fn with_rule(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Adds rules.
    pub fn with_rules(mut self, rules: impl IntoIterator<Item = Rule>) -> Self {
        self.rules.extend(rules);
        self
    }

    /// Registers a source that answers windowed measures ([`RequestStats`](crate::RequestStats),
    /// [`EventCounter`](crate::EventCounter)) under `name`.
    pub fn with_source(mut self, name: impl Into<String>, source: impl WindowedSource) -> Self {
        self.sources.insert(name.into(), SourceEntry { source: Arc::new(source), timeout: None });
        self
    }

    /// Registers a plain [`MetricSource`] ([`QueueLength`](crate::QueueLength),
    /// [`PostgresScalar`](crate::PostgresScalar), [`FnSource`](crate::FnSource)) under `name`; rules read
    /// its current value ([`Measure::Last`]).
    pub fn with_metric(mut self, name: impl Into<String>, source: impl MetricSource) -> Self {
        self.sources.insert(name.into(), SourceEntry { source: Arc::new(LastValue(source)), timeout: None });
        self
    }

    /// Sets the read timeout of the source registered as `name` (default: the evaluator's).
    pub fn with_source_timeout(mut self, name: &str, timeout: Duration) -> Self {
        if let Some(s) = self.sources.get_mut(name) {
            s.timeout = Some(timeout);
        }
        self
    }

    /// Sets the read timeout of sources registered without one (default 5 s).
    pub fn with_default_timeout(mut self, timeout: Duration) -> Self {
        self.default_timeout = timeout;
        self
    }

    /// Sets the time between evaluations (default 30 s; at least [`MIN_INTERVAL`](crate::MIN_INTERVAL)).
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Sets how often a rule that keeps firing is reported again (default 10 minutes, the throttle's
    /// window; zero: never).
    pub fn with_repeat_interval(mut self, every: Duration) -> Self {
        self.repeat_interval = every;
        self
    }

    /// Sets the `source` of alerts (part of their fingerprint; default `monitor`).
    pub fn with_alert_source(mut self, source: impl Into<String>) -> Self {
        self.alert_source = source.into();
        self
    }

    /// Sends alerts through `notifier` (default: a [`LogNotifier`]). Delivery runs on its own task: the
    /// evaluator never waits for it.
    pub fn with_notifier(mut self, notifier: impl Notifier) -> Self {
        self.notifier = Some(Arc::new(notifier));
        self
    }

    /// Whether a rule that is fine on its first decisive evaluation (a value inside its threshold, or a
    /// no-data or error reading its policy clears) sends a resolution of its alert, for a firing an earlier
    /// process (before a restart or deploy) may have sent. The same option, with the same meaning, as the
    /// health monitor's [`with_resolve_on_start`](crate::HealthMonitorBuilder::with_resolve_on_start).
    ///
    /// Meant for a notifier throttled through a shared, durable
    /// [`ThrottleStore`](resee_ops_core::ThrottleStore) such as [`RedisThrottleStore`](crate::RedisThrottleStore):
    /// the throttle passes a resolution only when its firing was sent and is still open, so it goes out
    /// exactly once (across replicas too) and otherwise is suppressed. A rule still firing after the
    /// restart fires as usual, and that throttle suppresses it until the stored window of the earlier
    /// firing ends. With any other notifier every start would announce recoveries: default `false`.
    ///
    /// The start resolution is not a change of the rule's state: the flap detector does not count it.
    pub fn with_resolve_on_start(mut self, resolve: bool) -> Self {
        self.resolve_on_start = resolve;
        self
    }

    /// Uses `clock` for alert timestamps and `since` (durations follow `tokio::time`).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Validates every rule against the sources and builds the evaluator. Errors name the rule and the
    /// field: an unknown source, a measure the source cannot answer, a NaN threshold, a quantile outside
    /// (0, 1), a window of zero or longer than the source keeps, a duplicate name.
    pub fn build(self) -> Result<RuleEvaluator, MonitorError> {
        if self.interval < crate::MIN_INTERVAL {
            return Err(crate::error::invalid_config(format!(
                "rule evaluator: interval must be at least {:?}, not {:?}",
                crate::MIN_INTERVAL,
                self.interval
            )));
        }
        let mut sources: Vec<(String, SourceEntry)> = self.sources.into_iter().collect();
        sources.sort_by(|a, b| a.0.cmp(&b.0));
        let mut reads: Vec<Read> = Vec::new();
        let mut rules = Vec::with_capacity(self.rules.len());
        for rule in self.rules {
            rule.validate()?;
            if rules.iter().any(|r: &CompiledRule| r.rule.name == rule.name) {
                return Err(crate::error::invalid_config(format!(
                    "rule `{}`: field `name`: another rule has the same name",
                    rule.name
                )));
            }
            let Some(source) = sources.iter().position(|(n, _)| *n == rule.source) else {
                let known: Vec<&str> = sources.iter().map(|(n, _)| n.as_str()).collect();
                return Err(crate::error::invalid_config(format!(
                    "rule `{}`: field `source`: unknown source `{}` (known: {})",
                    rule.name,
                    rule.source,
                    if known.is_empty() { "none".to_owned() } else { known.join(", ") }
                )));
            };
            sources[source]
                .1
                .source
                .check(&rule.value)
                .map_err(|why| crate::error::invalid_config(format!("rule `{}`: field `value`: {why}", rule.name)))?;
            // Rules reading the same measure of the same source share one read.
            let read = match reads.iter().position(|r| r.source == source && r.measure == rule.value) {
                Some(i) => i,
                None => {
                    reads.push(Read { source, measure: rule.value.clone() });
                    reads.len() - 1
                }
            };
            rules.push(CompiledRule { rule, read });
        }
        let states = rules
            .iter()
            .map(|_| RuleRuntime { resolve_pending: self.resolve_on_start, ..RuleRuntime::new(self.flap) })
            .collect();
        let outbox =
            Arc::new(Outbox { slots: Mutex::new(vec![Slot::default(); rules.len()]), stats: Default::default() });
        Ok(RuleEvaluator {
            inner: Arc::new(Inner {
                sources: sources.into_iter().map(|(_, s)| s).collect(),
                default_timeout: self.default_timeout,
                rules,
                reads,
                interval: self.interval,
                repeat_interval: self.repeat_interval,
                alert_source: self.alert_source,
                notifier: self.notifier.unwrap_or_else(|| Arc::new(LogNotifier::new())),
                clock: self.clock,
                states: tokio::sync::Mutex::new(states),
                snapshot: Mutex::new(Arc::new(Vec::new())),
                outbox,
                flap: self.flap,
                delivery: OnceLock::new(),
                evaluations: AtomicU64::new(0),
            }),
        })
    }
}

#[derive(Debug)]
struct CompiledRule {
    rule: Rule,
    /// Index into `Inner::reads`.
    read: usize,
}

#[derive(Debug)]
struct Read {
    source: usize,
    measure: Measure,
}

/// One rule's memory across evaluations.
#[derive(Debug, Clone)]
struct RuleRuntime {
    state: AlertState,
    /// When the current state began.
    since: Option<Instant>,
    since_utc: Option<DateTime<Utc>>,
    /// When the condition last held while firing (for `keep_firing_for`).
    last_held: Option<Instant>,
    value: Option<f64>,
    observations: Option<u64>,
    reading: Reading,
    evaluated_at: Option<DateTime<Utc>>,
    /// The firing alert last sent, resolved on recovery.
    open_alert: Option<Alert>,
    last_sent: Option<Instant>,
    /// Counts firings and resolutions.
    flap: FlapDetector,
    /// The "flapping" notice sent, resolved once the rule has settled.
    flap_notice: Option<Alert>,
    /// What was last reported: firing (`true`) or resolved (`false`).
    announced: Option<bool>,
    /// Resolving on start: set until the first evaluation that decides whether the condition holds; if
    /// it does not, that evaluation sends a resolution (which a shared throttle passes only when an
    /// earlier process left the firing open).
    resolve_pending: bool,
}

impl RuleRuntime {
    fn new(flap: FlapConfig) -> Self {
        Self {
            state: AlertState::Inactive,
            since: None,
            since_utc: None,
            last_held: None,
            value: None,
            observations: None,
            reading: Reading::NotYet,
            evaluated_at: None,
            open_alert: None,
            last_sent: None,
            flap: FlapDetector::new(flap),
            flap_notice: None,
            announced: None,
            resolve_pending: false,
        }
    }
}

/// Alerts waiting for delivery, per rule, in order.
#[derive(Debug, Clone, Default)]
struct Slot {
    queue: VecDeque<Alert>,
    in_flight: bool,
}

#[derive(Debug, Default)]
struct StatCounters {
    delivered: AtomicU64,
    failed: AtomicU64,
    refused: AtomicU64,
    coalesced: AtomicU64,
}

#[derive(Debug)]
struct Outbox {
    slots: Mutex<Vec<Slot>>,
    stats: StatCounters,
}

impl Outbox {
    fn slots(&self) -> std::sync::MutexGuard<'_, Vec<Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug)]
struct Inner {
    sources: Vec<SourceEntry>,
    default_timeout: Duration,
    rules: Vec<CompiledRule>,
    reads: Vec<Read>,
    interval: Duration,
    repeat_interval: Duration,
    alert_source: String,
    notifier: Arc<dyn Notifier>,
    clock: SharedClock,
    states: tokio::sync::Mutex<Vec<RuleRuntime>>,
    snapshot: Mutex<Arc<Vec<RuleState>>>,
    outbox: Arc<Outbox>,
    flap: FlapConfig,
    /// The delivery task's queue of rule indexes, started on the first evaluation.
    delivery: OnceLock<mpsc::UnboundedSender<usize>>,
    evaluations: AtomicU64,
}

/// What one read gave, classified.
enum Outcome {
    Value(f64, Option<u64>),
    NoData(String),
    Error(String),
}

/// Evaluates [`Rule`]s over their sources on an interval and sends their firings and resolutions through a
/// [`Notifier`].
///
/// - Each evaluation reads every distinct (source, measure) once, all concurrently, each under its source's
///   timeout (default 5 s); a hung or panicking source is an error outcome for its rules, never a stall.
/// - Alerts go to a delivery task in order per rule: the evaluator never waits on the notifier. The task
///   waits for each alert's final outcome ([`Notifier::notify_final`]: through a dispatcher, the delivery,
///   not the queueing); an alert refused for a temporary reason is sent again on the next evaluation, one
///   refused for good is dropped; [`DeliveryStats`] counts both.
/// - [`states`](Self::states) answers at once with each rule's state, value and `since`.
/// - [`run`](Self::run) / [`spawn`](Self::spawn) run it on the interval until cancelled.
///
/// See [`Rule`] for the semantics of each rule.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use std::time::Duration;
/// use resee_ops_core::testing::RecordingNotifier;
/// use resee_ops_monitor::{AlertState, EventCounter, Measure, Rule, RuleEvaluator};
///
/// let payments = EventCounter::new();
/// let inbox = RecordingNotifier::new();
/// let rules = RuleEvaluator::builder()
///     .with_source("events", payments.clone())
///     .with_rule(
///         Rule::new("payment_failures", "events", Measure::count(Duration::from_secs(3600)).with_series("payment_failed"))
///             .with_above(10.0)
///             .with_text("Payment failures"),
///     )
///     .with_notifier(Arc::new(inbox.clone()))
///     .build()
///     .unwrap();
///
/// payments.record_n("payment_failed", 11);
/// rules.evaluate().await;
/// assert_eq!(rules.states()[0].state, AlertState::Firing);
/// tokio::time::sleep(Duration::from_millis(10)).await; // delivery runs on its own task
/// assert_eq!(inbox.titles(), ["Payment failures: 11 > 10"]);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct RuleEvaluator {
    inner: Arc<Inner>,
}

fn format_value(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

impl RuleEvaluator {
    /// A builder with no rules and no sources: 30-second interval, 5-second source timeout, alerts to the log.
    pub fn builder() -> RuleEvaluatorBuilder {
        RuleEvaluatorBuilder {
            rules: Vec::new(),
            sources: HashMap::new(),
            interval: Duration::from_secs(30),
            default_timeout: DEFAULT_SOURCE_TIMEOUT,
            repeat_interval: resee_ops_core::DEFAULT_THROTTLE_WINDOW,
            alert_source: "monitor".to_owned(),
            notifier: None,
            clock: system_clock(),
            flap: FlapConfig::default(),
            resolve_on_start: false,
        }
    }

    /// The rules, in the order they were added.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.inner.rules.iter().map(|r| &r.rule)
    }

    /// Every rule's state after the last evaluation (all inactive before the first). Never waits.
    pub fn states(&self) -> Vec<RuleState> {
        let snapshot = self.inner.snapshot.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if snapshot.is_empty() && !self.inner.rules.is_empty() {
            return self
                .inner
                .rules
                .iter()
                .map(|r| self.state_of(&r.rule, &RuleRuntime::new(self.inner.flap)))
                .collect();
        }
        snapshot.as_ref().clone()
    }

    /// How many evaluations have completed.
    pub fn evaluations(&self) -> u64 {
        self.inner.evaluations.load(Ordering::SeqCst)
    }

    /// Delivery counts so far.
    pub fn delivery_stats(&self) -> DeliveryStats {
        let s = &self.inner.outbox.stats;
        DeliveryStats {
            delivered: s.delivered.load(Ordering::SeqCst),
            failed: s.failed.load(Ordering::SeqCst),
            refused: s.refused.load(Ordering::SeqCst),
            coalesced: s.coalesced.load(Ordering::SeqCst),
        }
    }

    fn state_of(&self, rule: &Rule, rt: &RuleRuntime) -> RuleState {
        RuleState {
            name: rule.name.clone(),
            state: rt.state,
            value: rt.value,
            threshold: rule.threshold,
            observations: rt.observations,
            since: rt.since_utc,
            reading: rt.reading.clone(),
            evaluated_at: rt.evaluated_at,
        }
    }

    /// Brings `kept`, a former [`state_of`](Self::state_of) of the same rule, up to date.
    fn update_state(&self, kept: &mut RuleState, rule: &Rule, rt: &RuleRuntime) {
        kept.name.clone_from(&rule.name);
        kept.state = rt.state;
        kept.value = rt.value;
        kept.threshold = rule.threshold;
        kept.observations = rt.observations;
        kept.since = rt.since_utc;
        if kept.reading != rt.reading {
            kept.reading.clone_from(&rt.reading);
        }
        kept.evaluated_at = rt.evaluated_at;
    }

    /// Reads every measure once, concurrently, each under its source's timeout.
    ///
    /// Each read is polled once first: an in-memory source answers then and costs neither a timer nor a
    /// task slot. Only the reads still waiting (a database, a queue) run together under their timeouts,
    /// which count from the start of the evaluation.
    async fn read_all(&self) -> Vec<Outcome> {
        let inner = &*self.inner;
        // One clock read per evaluation, not one per source.
        let started = Instant::now();
        let mut outcomes: Vec<Outcome> = Vec::with_capacity(inner.reads.len());
        let mut waiting = Vec::new();
        for (i, read) in inner.reads.iter().enumerate() {
            let entry = &inner.sources[read.source];
            let mut future = AssertUnwindSafe(entry.source.measure(&read.measure)).catch_unwind();
            match (&mut future).now_or_never() {
                Some(answer) => outcomes.push(outcome_of(entry, answer)),
                None => {
                    // A placeholder, replaced below: every waiting read ends in a value or an error.
                    outcomes.push(Outcome::Error(String::new()));
                    waiting.push((i, entry, future));
                }
            }
        }
        if waiting.is_empty() {
            return outcomes;
        }
        let waits = waiting.into_iter().map(|(i, entry, future)| async move {
            let timeout = entry.timeout.unwrap_or(inner.default_timeout);
            let outcome = match tokio::time::timeout_at(started.saturating_add(timeout), future).await {
                Err(_) => Outcome::Error(format!(
                    "source `{}` did not answer within {}",
                    entry.source.name(),
                    resee_ops_core::serde_duration::format_duration(timeout)
                )),
                Ok(answer) => outcome_of(entry, answer),
            };
            (i, outcome)
        });
        for (i, outcome) in futures_util::future::join_all(waits).await {
            outcomes[i] = outcome;
        }
        outcomes
    }

    /// Evaluates every rule once now and queues the alerts of their transitions. Evaluations never overlap:
    /// a call waits for a running one.
    pub async fn evaluate(&self) {
        let inner = &*self.inner;
        let mut states = inner.states.lock().await;
        let outcomes = self.read_all().await;
        let now = Instant::now();
        let now_utc = inner.clock.now();
        let mut alerts: Vec<(usize, Alert)> = Vec::new();
        for (i, compiled) in inner.rules.iter().enumerate() {
            let rule = &compiled.rule;
            let rt = &mut states[i];
            let outcome = &outcomes[compiled.read];
            let on_start = rt.resolve_pending;
            let transition = self.step(rule, rt, outcome, now, now_utc);
            record_rule(rule, rt);
            match transition {
                // While resolving on start the rule has never left `Inactive`, so a resolution is the one
                // for a firing an earlier process may have left open: not a change the flap detector counts.
                Some(resolution) if on_start && resolution.is_resolved() => {
                    rt.announced = Some(false);
                    alerts.push((i, resolution));
                }
                transition => {
                    for alert in self.damp_flapping(rule, rt, transition, now_utc) {
                        alerts.push((i, alert));
                    }
                }
            }
        }
        {
            let mut snapshot = inner.snapshot.lock().unwrap_or_else(|p| p.into_inner());
            match Arc::get_mut(&mut snapshot) {
                // Nobody is reading the last snapshot: update it in place (names and strings keep their
                // allocations) instead of building a new one every evaluation.
                Some(kept) if kept.len() == inner.rules.len() => {
                    for ((kept, r), rt) in kept.iter_mut().zip(&inner.rules).zip(states.iter()) {
                        self.update_state(kept, &r.rule, rt);
                    }
                }
                _ => {
                    *snapshot = Arc::new(
                        inner.rules.iter().zip(states.iter()).map(|(r, rt)| self.state_of(&r.rule, rt)).collect(),
                    );
                }
            }
        }
        drop(states);
        self.enqueue(alerts);
        inner.evaluations.fetch_add(1, Ordering::SeqCst);
    }

    /// Applies one outcome to one rule; returns the alert its transition calls for.
    fn step(
        &self,
        rule: &Rule,
        rt: &mut RuleRuntime,
        outcome: &Outcome,
        now: Instant,
        now_utc: DateTime<Utc>,
    ) -> Option<Alert> {
        rt.evaluated_at = Some(now_utc);
        // Whether the condition holds, or `None` to keep the state as it is.
        let too_few = match outcome {
            Outcome::Value(v, Some(n)) if *n < rule.min_samples => {
                rt.value = Some(*v);
                rt.observations = Some(*n);
                Some(Outcome::NoData(format!("not enough data ({n} of {} observations)", rule.min_samples)))
            }
            _ => None,
        };
        let outcome = too_few.as_ref().unwrap_or(outcome);
        let (holds, why) = match outcome {
            Outcome::Value(v, n) => {
                rt.value = Some(*v);
                rt.observations = *n;
                rt.reading = Reading::Value;
                let threshold = match (rt.state, rule.clear_threshold) {
                    (AlertState::Firing, Some(clear)) => clear,
                    _ => rule.threshold,
                };
                (Some(rule.comparison.holds(*v, threshold)), None)
            }
            Outcome::NoData(reason) => {
                rt.reading = Reading::NoData { reason: reason.clone() };
                (policy(rule.on_no_data), Some(reason.clone()))
            }
            Outcome::Error(message) => {
                tracing::warn!(target: "resee_ops::rules", rule = %rule.name, error = %message, "rule source failed");
                rt.reading = Reading::Error { message: message.clone() };
                (policy(rule.on_error), Some(format!("source error: {message}")))
            }
        };
        let holds = holds?;
        if std::mem::take(&mut rt.resolve_pending) && !holds && rt.state == AlertState::Inactive {
            return Some(self.resolved_alert(rule, rt, why.as_deref(), now_utc));
        }
        let enter = |rt: &mut RuleRuntime, state: AlertState| {
            tracing::info!(target: "resee_ops::rules", rule = %rule.name, from = ?rt.state, to = ?state, "rule state changed");
            rt.state = state;
            rt.since = Some(now);
            rt.since_utc = Some(now_utc);
        };
        match (rt.state, holds) {
            (AlertState::Inactive, true) => {
                enter(rt, AlertState::Pending);
                self.maybe_fire(rule, rt, why.as_deref(), now, now_utc)
            }
            (AlertState::Pending, true) => self.maybe_fire(rule, rt, why.as_deref(), now, now_utc),
            (AlertState::Pending, false) => {
                enter(rt, AlertState::Inactive);
                None
            }
            (AlertState::Firing, true) => {
                rt.last_held = Some(now);
                let repeat = self.inner.repeat_interval;
                let due = !repeat.is_zero() && rt.last_sent.is_some_and(|t| now.duration_since(t) >= repeat);
                if due {
                    rt.last_sent = Some(now);
                    return Some(self.firing_alert(rule, rt, why.as_deref(), now_utc));
                }
                None
            }
            (AlertState::Firing, false) => {
                let held = rt.last_held.unwrap_or(now);
                if now.duration_since(held) < rule.keep_firing_for {
                    return None;
                }
                enter(rt, AlertState::Inactive);
                rt.last_held = None;
                rt.last_sent = None;
                Some(self.resolved_alert(rule, rt, why.as_deref(), now_utc))
            }
            (AlertState::Inactive, false) => None,
        }
    }

    /// Passes a transition's alert on, or holds it while the rule flaps: more than `flap.max_changes`
    /// firings and resolutions inside `flap.window` send one "flapping" notice (`<rule>_flapping`, warning)
    /// instead; once the rule has kept one state for a whole window, the notice is resolved and the current
    /// state is reported if it differs from the last one reported.
    fn damp_flapping(
        &self,
        rule: &Rule,
        rt: &mut RuleRuntime,
        transition: Option<Alert>,
        now_utc: DateTime<Utc>,
    ) -> Vec<Alert> {
        let is_change = transition.as_ref().is_some_and(|a| a.is_resolved() || rt.announced != Some(true));
        let verdict = match &transition {
            Some(_) if is_change => rt.flap.record_change(now_utc),
            _ if rt.flap_notice.is_some() => rt.flap.poll(now_utc),
            _ => FlapVerdict::Steady,
        };
        let mut out = Vec::new();
        match verdict {
            FlapVerdict::Started => {
                tracing::warn!(target: "resee_ops::rules", rule = %rule.name, "rule is flapping; holding its alerts");
                let window = rt.flap.config().window;
                let mut notice = Alert::new(
                    format!("{}_flapping", rule.name),
                    Severity::Warning,
                    format!("{} is flapping", rule.subject()),
                )
                .with_source(&self.inner.alert_source)
                .with_timestamp(now_utc)
                .with_text(format!(
                    "Rule `{}` changed state more than {} times in {}s; its firings and resolutions are held until it \
                     keeps one state for {}s.",
                    rule.name,
                    rt.flap.config().max_changes,
                    window.as_secs(),
                    window.as_secs()
                ));
                notice.labels = rule.labels.clone();
                rt.flap_notice = Some(notice.clone());
                out.push(notice);
            }
            FlapVerdict::Flapping => {}
            FlapVerdict::Settled => {
                if let Some(notice) = rt.flap_notice.take() {
                    let mut resolved = notice.resolved();
                    resolved.title = format!("{} is steady again", rule.subject());
                    resolved.timestamp = now_utc;
                    out.push(resolved);
                }
                // Report where it settled, if that is not what was last reported.
                let firing = rt.state == AlertState::Firing;
                if rt.announced != Some(firing) && (firing || rt.announced.is_some()) {
                    let alert = match (firing, transition) {
                        (_, Some(t)) => t,
                        (true, None) => self.firing_alert(rule, rt, None, now_utc),
                        (false, None) => self.resolved_alert(rule, rt, None, now_utc),
                    };
                    rt.announced = Some(!alert.is_resolved());
                    out.push(alert);
                }
            }
            _ => {
                if let Some(alert) = transition {
                    rt.announced = Some(!alert.is_resolved());
                    out.push(alert);
                }
            }
        }
        out
    }

    /// Fires a pending rule whose condition has held for its `for`.
    fn maybe_fire(
        &self,
        rule: &Rule,
        rt: &mut RuleRuntime,
        why: Option<&str>,
        now: Instant,
        now_utc: DateTime<Utc>,
    ) -> Option<Alert> {
        let pending_since = rt.since.unwrap_or(now);
        if now.duration_since(pending_since) < rule.for_ {
            return None;
        }
        tracing::info!(target: "resee_ops::rules", rule = %rule.name, "rule firing");
        rt.state = AlertState::Firing;
        rt.since = Some(now);
        rt.since_utc = Some(now_utc);
        rt.last_held = Some(now);
        rt.last_sent = Some(now);
        Some(self.firing_alert(rule, rt, why, now_utc))
    }

    fn firing_alert(&self, rule: &Rule, rt: &mut RuleRuntime, why: Option<&str>, now_utc: DateTime<Utc>) -> Alert {
        let title = match why {
            Some(why) => format!("{}: {why}", rule.subject()),
            None => format!(
                "{}: {} {} {}",
                rule.subject(),
                rt.value.map_or_else(|| "?".to_owned(), format_value),
                rule.comparison,
                format_value(rule.threshold)
            ),
        };
        let mut alert = Alert::new(rule.name.clone(), rule.severity, title)
            .with_source(&self.inner.alert_source)
            .with_timestamp(now_utc);
        alert.labels = rule.labels.clone();
        let text = match why {
            Some(why) => format!("Rule `{}` fires by its policy: {why}.", rule.name),
            None => {
                format!("{} of `{}` is {} {}.", rule.value, rule.source, rule.comparison, format_value(rule.threshold))
            }
        };
        alert = alert.with_text(text);
        alert = self.with_fields(alert, rule, rt);
        rt.open_alert = Some(alert.clone());
        alert
    }

    fn resolved_alert(&self, rule: &Rule, rt: &mut RuleRuntime, why: Option<&str>, now_utc: DateTime<Utc>) -> Alert {
        let firing = rt.open_alert.take().unwrap_or_else(|| {
            let mut a =
                Alert::new(rule.name.clone(), rule.severity, rule.subject()).with_source(&self.inner.alert_source);
            a.labels = rule.labels.clone();
            a
        });
        let mut alert = firing.resolved();
        alert.timestamp = now_utc;
        match why {
            Some(why) => {
                alert.title = format!("{}: cleared by policy ({why})", rule.subject());
                alert.text = format!("Rule `{}` was cleared by its policy, not by a value: {why}.", rule.name);
            }
            None => {
                alert.title =
                    format!("{}: back to {}", rule.subject(), rt.value.map_or_else(|| "?".to_owned(), format_value));
                alert.text = format!(
                    "{} of `{}` is no longer {} {}.",
                    rule.value,
                    rule.source,
                    rule.comparison,
                    format_value(rule.threshold)
                );
            }
        }
        alert.fields.clear();
        self.with_fields(alert, rule, rt)
    }

    fn with_fields(&self, mut alert: Alert, rule: &Rule, rt: &RuleRuntime) -> Alert {
        if let Some(v) = rt.value {
            alert = alert.with_field("Value", format_value(v));
        }
        alert = alert.with_field("Threshold", format!("{} {}", rule.comparison, format_value(rule.threshold)));
        if let Some(clear) = rule.clear_threshold {
            alert = alert.with_field("Clears at", format!("{} {}", rule.comparison, format_value(clear)));
        }
        alert = alert.with_field("Measure", format!("{} of {}", rule.value, rule.source));
        if let Some(n) = rt.observations {
            alert = alert.with_field("Observations", n.to_string());
        }
        alert
    }

    /// Queues `alerts` and (re)starts delivery of every rule with undelivered alerts.
    fn enqueue(&self, alerts: Vec<(usize, Alert)>) {
        let inner = &*self.inner;
        let tx = inner.delivery.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(deliver(rx, inner.outbox.clone(), inner.notifier.clone()));
            tx
        });
        let mut slots = inner.outbox.slots();
        for (i, alert) in alerts {
            let slot = &mut slots[i];
            if slot.queue.len() >= MAX_UNDELIVERED {
                // The first one may be on its way; drop the oldest after it.
                let oldest = usize::from(slot.in_flight);
                slot.queue.remove(oldest);
                inner.outbox.stats.coalesced.fetch_add(1, Ordering::SeqCst);
            }
            slot.queue.push_back(alert);
        }
        for (i, slot) in slots.iter_mut().enumerate() {
            if !slot.queue.is_empty() && !slot.in_flight && tx.send(i).is_ok() {
                slot.in_flight = true;
            }
        }
    }

    /// Evaluates at once and then every interval until `shutdown` completes. An evaluation still running
    /// when `shutdown` completes is abandoned. A slow evaluation delays the next (ticks never pile up).
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        crate::periodic::run_every(self.inner.interval, shutdown, || self.evaluate()).await;
    }

    /// Runs [`run`](Self::run) on a new task until the returned handle is shut down or dropped.
    pub fn spawn(&self) -> MonitorHandle {
        let evaluator = self.clone();
        crate::periodic::spawn(|stopped| async move {
            evaluator
                .run(async move {
                    let _ = stopped.await;
                })
                .await;
        })
    }
}

fn policy(p: DataPolicy) -> Option<bool> {
    match p {
        DataPolicy::KeepState => None,
        DataPolicy::Alert => Some(true),
        DataPolicy::Ok => Some(false),
    }
}

/// The outcome of a read that finished: a panic and an error name the source.
fn outcome_of(entry: &SourceEntry, answer: std::thread::Result<Result<Measurement, resee_ops_core::Error>>) -> Outcome {
    match answer {
        Err(_panic) => Outcome::Error(format!("source `{}` panicked", entry.source.name())),
        Ok(Err(e)) => Outcome::Error(format!("source `{}`: {e}", entry.source.name())),
        Ok(Ok(m)) => classify(m),
    }
}

/// Sorts a measurement into value, no data or error. The minimum sample is applied per rule afterwards.
fn classify(m: Measurement) -> Outcome {
    match m.value {
        None => Outcome::NoData("no data".to_owned()),
        Some(v) if !v.is_finite() => Outcome::Error(format!("the source gave {v}, not a finite number")),
        Some(v) => Outcome::Value(v, m.observations),
    }
}

/// Delivers each rule's alerts in order, waiting for each one's final outcome (a dispatcher's `Queued` is not
/// a delivery). An alert refused for a temporary reason stays first in its rule's queue until the next
/// evaluation restarts delivery; one refused for good is dropped, counted and logged.
async fn deliver(mut rx: mpsc::UnboundedReceiver<usize>, outbox: Arc<Outbox>, notifier: Arc<dyn Notifier>) {
    while let Some(i) = rx.recv().await {
        loop {
            let Some(alert) = outbox.slots()[i].queue.front().cloned() else {
                outbox.slots()[i].in_flight = false;
                break;
            };
            let outcome = notifier.notify_final(&alert).await;
            let mut slots = outbox.slots();
            if outcome.is_ok() {
                outbox.stats.delivered.fetch_add(1, Ordering::SeqCst);
                slots[i].queue.pop_front();
            } else if !outcome.is_retryable() {
                tracing::error!(target: "resee_ops::rules", rule = %alert.name, outcome = %outcome, "rule alert refused for good; dropped");
                outbox.stats.failed.fetch_add(1, Ordering::SeqCst);
                outbox.stats.refused.fetch_add(1, Ordering::SeqCst);
                slots[i].queue.pop_front();
            } else {
                tracing::warn!(target: "resee_ops::rules", rule = %alert.name, outcome = %outcome, "rule alert not delivered; retrying at the next evaluation");
                outbox.stats.failed.fetch_add(1, Ordering::SeqCst);
                slots[i].in_flight = false;
                break;
            }
        }
    }
}

/// The rule's metrics: its state (0 inactive, 1 pending, 2 firing) and its last value.
fn record_rule(rule: &Rule, rt: &RuleRuntime) {
    use resee_ops_core::telemetry::{RULE_STATE, RULE_VALUE};
    let state = match rt.state {
        AlertState::Inactive => 0.0,
        AlertState::Pending => 1.0,
        AlertState::Firing => 2.0,
    };
    metrics::gauge!(RULE_STATE, "rule" => rule.name.clone()).set(state);
    if let Some(v) = rt.value {
        metrics::gauge!(RULE_VALUE, "rule" => rule.name.clone()).set(v);
    }
}
