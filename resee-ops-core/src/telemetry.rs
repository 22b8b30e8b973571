//! The metrics of the operations layer itself, recorded through the [`metrics`] facade.
//!
//! Every crate of the workspace records its metrics under the names below, so any `metrics` exporter
//! works (the reference service serves them at `/metrics` with `metrics-exporter-prometheus`). Without an
//! installed recorder recording costs next to nothing. [`METRICS`] is the one table of names, kinds, units
//! and labels (`docs/metrics.md` shows it, and a test checks the two agree); call [`describe`] once after
//! installing a recorder so that exporters know each metric's unit and help text.
//!
//! Handles that are recorded on a hot path (the dispatcher's counters and queue depth) are registered when
//! the component is built: install the recorder before building the alert stack.
//!
//! ```
//! use resee_ops_core::telemetry::{self, METRICS};
//! assert!(METRICS.iter().any(|m| m.name == telemetry::ALERTS_DROPPED));
//! telemetry::describe(); // a no-op without a recorder
//! ```

pub use metrics::Unit;

/// What kind of metric a name is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetricKind {
    /// Only goes up (a Prometheus `counter`).
    Counter,
    /// A value that goes up and down (a Prometheus `gauge`).
    Gauge,
    /// A distribution of observations (a Prometheus `summary` or `histogram`, as the exporter chooses).
    Histogram,
}

impl MetricKind {
    /// `counter`, `gauge` or `histogram`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

/// One metric: its name, kind, unit, labels and meaning.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct MetricDef {
    /// The metric's name.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: MetricKind,
    /// Its unit (`None`: a plain number, such as a state code).
    pub unit: Option<Unit>,
    /// The labels every series of it carries.
    pub labels: &'static [&'static str],
    /// What it measures.
    pub help: &'static str,
}

/// Backup runs per `outcome` (`success`, `failed`, `integrity_failed`, `skipped`): the run as a whole (it
/// succeeds when every required target got a verified copy; it is skipped when another run held the lock).
pub const BACKUP_RUNS: &str = "resee_ops_backup_runs_total";
/// Attempts made by backup runs (a run retries temporary failures).
pub const BACKUP_ATTEMPTS: &str = "resee_ops_backup_attempts_total";
/// Wall time of backup runs, all attempts included, per `outcome`.
pub const BACKUP_DURATION: &str = "resee_ops_backup_duration_seconds";
/// How each target fared in each backup run, per `target` (its configured name) and `outcome` (`success`,
/// `failed`, `integrity_failed`): one increment per target per run.
pub const BACKUP_TARGET_RUNS: &str = "resee_ops_backup_target_runs_total";
/// Time a target spent on its copy in the run's last attempt (creating it, writing the stream, staging,
/// reading back and verifying, publishing, the manifest), per `target` and `outcome`.
pub const BACKUP_TARGET_DURATION: &str = "resee_ops_backup_target_duration_seconds";
/// Compressed size of the last successful backup on each `target`.
pub const BACKUP_SIZE: &str = "resee_ops_backup_size_bytes";
/// When the last successful backup on each `target` finished (Unix time).
pub const BACKUP_LAST_SUCCESS: &str = "resee_ops_backup_last_success_timestamp_seconds";

/// Alerts a dispatcher accepted into its queue.
pub const ALERTS_ACCEPTED: &str = "resee_ops_alerts_accepted_total";
/// Alerts the receiver delivered.
pub const ALERTS_DELIVERED: &str = "resee_ops_alerts_delivered_total";
/// Alerts suppressed (coalesced) by the throttle.
pub const ALERTS_SUPPRESSED: &str = "resee_ops_alerts_suppressed_total";
/// Alerts dropped, per `reason` (`queue_full`, `closed`, `permanent_failure`, `temporary_failure`,
/// `panicked`).
pub const ALERTS_DROPPED: &str = "resee_ops_alerts_dropped_total";
/// Retries of alert deliveries (each attempt after the first).
pub const ALERTS_RETRIED: &str = "resee_ops_alerts_retried_total";
/// From `notify` to the alert's final outcome in a dispatcher, per `outcome` (`delivered`, `suppressed`,
/// `dropped`).
pub const ALERTS_DELIVERY: &str = "resee_ops_alerts_delivery_seconds";
/// Alerts queued or being delivered.
pub const ALERTS_QUEUE_DEPTH: &str = "resee_ops_alerts_queue_depth";

/// Duration of health checks, per `probe`.
pub const PROBE_DURATION: &str = "resee_ops_health_probe_duration_seconds";
/// The last health check's status per `probe`: 1 pass, 0.5 warn (degraded), 0 fail.
pub const PROBE_STATUS: &str = "resee_ops_health_probe_status";

/// A threshold rule's state per `rule`: 0 inactive, 1 pending, 2 firing.
pub const RULE_STATE: &str = "resee_ops_rule_state";
/// A threshold rule's last value per `rule` (absent while it has no value).
pub const RULE_VALUE: &str = "resee_ops_rule_value";

/// When a scheduled job runs next (Unix time), per `job`.
pub const SCHEDULER_NEXT_RUN: &str = "resee_ops_scheduler_next_run_timestamp_seconds";
/// Slots not run, per `job` and `reason` (`overlap`: the previous run was still going; `missed`: the
/// process woke up too late and the policy is to skip).
pub const SCHEDULER_SKIPPED: &str = "resee_ops_scheduler_skipped_runs_total";
/// Runs missed while the process was down and caught up at start, per `job`.
pub const SCHEDULER_MISSED: &str = "resee_ops_scheduler_missed_runs_total";

const fn def(
    name: &'static str,
    kind: MetricKind,
    unit: Option<Unit>,
    labels: &'static [&'static str],
    help: &'static str,
) -> MetricDef {
    MetricDef { name, kind, unit, labels, help }
}

use MetricKind::{Counter, Gauge, Histogram};

/// Every metric of the workspace, in the order of `docs/metrics.md`.
pub const METRICS: &[MetricDef] = &[
    def(BACKUP_RUNS, Counter, Some(Unit::Count), &["outcome"], "Backup runs by outcome."),
    def(BACKUP_ATTEMPTS, Counter, Some(Unit::Count), &[], "Attempts made by backup runs."),
    def(BACKUP_DURATION, Histogram, Some(Unit::Seconds), &["outcome"], "Wall time of backup runs."),
    def(BACKUP_TARGET_RUNS, Counter, Some(Unit::Count), &["target", "outcome"], "Backup runs by target and outcome."),
    def(
        BACKUP_TARGET_DURATION,
        Histogram,
        Some(Unit::Seconds),
        &["target", "outcome"],
        "Time a target spent on its copy: write, verify, publish.",
    ),
    def(BACKUP_SIZE, Gauge, Some(Unit::Bytes), &["target"], "Compressed size of the last successful backup."),
    def(BACKUP_LAST_SUCCESS, Gauge, Some(Unit::Seconds), &["target"], "Unix time of the last successful backup."),
    def(ALERTS_ACCEPTED, Counter, Some(Unit::Count), &[], "Alerts accepted into the dispatch queue."),
    def(ALERTS_DELIVERED, Counter, Some(Unit::Count), &[], "Alerts delivered."),
    def(ALERTS_SUPPRESSED, Counter, Some(Unit::Count), &[], "Alerts suppressed by the throttle."),
    def(ALERTS_DROPPED, Counter, Some(Unit::Count), &["reason"], "Alerts dropped, by reason."),
    def(ALERTS_RETRIED, Counter, Some(Unit::Count), &[], "Retried alert deliveries."),
    def(ALERTS_DELIVERY, Histogram, Some(Unit::Seconds), &["outcome"], "From notify to the final outcome."),
    def(ALERTS_QUEUE_DEPTH, Gauge, Some(Unit::Count), &[], "Alerts queued or being delivered."),
    def(PROBE_DURATION, Histogram, Some(Unit::Seconds), &["probe"], "Duration of health checks."),
    def(PROBE_STATUS, Gauge, None, &["probe"], "Last health check: 1 pass, 0.5 warn, 0 fail."),
    def(RULE_STATE, Gauge, None, &["rule"], "Threshold rule state: 0 inactive, 1 pending, 2 firing."),
    def(RULE_VALUE, Gauge, None, &["rule"], "Threshold rule's last value."),
    def(SCHEDULER_NEXT_RUN, Gauge, Some(Unit::Seconds), &["job"], "Unix time of the job's next run."),
    def(SCHEDULER_SKIPPED, Counter, Some(Unit::Count), &["job", "reason"], "Slots not run, by reason."),
    def(SCHEDULER_MISSED, Counter, Some(Unit::Count), &["job"], "Missed runs caught up at start."),
];

/// Describes every metric of [`METRICS`] (unit and help text) to the installed recorder. Call it once
/// after installing the recorder; without one it does nothing.
pub fn describe() {
    for m in METRICS {
        match (m.kind, m.unit) {
            (Counter, Some(u)) => metrics::describe_counter!(m.name, u, m.help),
            (Counter, None) => metrics::describe_counter!(m.name, m.help),
            (Gauge, Some(u)) => metrics::describe_gauge!(m.name, u, m.help),
            (Gauge, None) => metrics::describe_gauge!(m.name, m.help),
            (Histogram, Some(u)) => metrics::describe_histogram!(m.name, u, m.help),
            (Histogram, None) => metrics::describe_histogram!(m.name, m.help),
        }
    }
}
