//! Health probes, a health monitor that alerts on changes, and an HTTP health endpoint for **resee-ops**.
//!
//! - **Probes** ([`HealthProbe`](resee_ops_core::HealthProbe)s, each bounded by its own timeout, with
//!   outputs free of secrets): [`PostgresProbe`] (`SELECT 1`), [`RedisProbe`] (`PING`),
//!   [`DiskUsageProbe`] (`statvfs`, 80 % / 90 % by default), [`CeleryWorkersProbe`] (Celery's broadcast
//!   `ping` over the kombu Redis transport, as `celery inspect ping`), [`QueueLength`] (a Celery queue's
//!   priority lists, optionally plus its unacked messages; also a
//!   [`MetricSource`](resee_ops_core::MetricSource)), both configured with the workers'
//!   [`CeleryTransport`] options, and [`WorkerHeartbeatProbe`] with the worker-side [`Heartbeat`] for Rust
//!   workers.
//! - **[`HealthMonitor`]**: runs a [`HealthRegistry`](resee_ops_core::HealthRegistry) on an interval,
//!   damps flapping, caches the last report, and sends alerts with stable fingerprints through any
//!   [`Notifier`](resee_ops_core::Notifier).
//! - **Endpoint** (feature `axum`): [`http::router`], readiness and liveness served from the cache.
//! - **Metric sources** for threshold rules: [`RequestStats`] (the host's HTTP traffic, recorded by
//!   [`RequestStatsLayer`], a tower `Layer`), [`EventCounter`] (named events), [`PostgresScalar`] (one number
//!   from SQL), [`FnSource`] (a closure) and [`QueueLength`]; what a rule reads is a [`Measure`].
//! - **Shared alert state**: [`RedisThrottleStore`], the throttle's
//!   [`ThrottleStore`](resee_ops_core::ThrottleStore) in Redis: replicas throttle as one (an atomic
//!   compare-and-swap script per decision), open alerts survive restarts, and an outage falls back to
//!   in-memory throttling.
//! - **Threshold rules**: [`Rule`] (value over a window, comparison, `for`, `keep_firing_for`, hysteresis,
//!   minimum sample, no-data and error policies), [`RuleEvaluator`] (runs them on an interval and alerts
//!   through any notifier), [`presets`] (the seed's four rules).
//!
//! Errors are the workspace's one [`resee_ops_core::Error`] (named [`MonitorError`] here). Connection
//! strings are core's [`ConnectionUrl`] (re-exported), parsed once and the same for the backup crate;
//! its `Debug`, `Display` and `Serialize` hide the password.
//!
//! # Example
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::time::Duration;
//! use resee_ops_core::{CheckGroup, HealthRegistry, HealthStatus, NotifierExt, Registration};
//! use resee_ops_core::testing::RecordingNotifier;
//! use resee_ops_monitor::{DiskUsageProbe, HealthMonitor, PostgresProbeConfig, RedisConfig};
//!
//! // Nothing listens on port 1: both dependencies fail fast.
//! let registry = HealthRegistry::new()
//!     .with_registration(Registration::new(PostgresProbeConfig::from_url("postgres://app:secret@127.0.0.1:1/app").unwrap().build().unwrap()))
//!     .with_registration(Registration::new(RedisConfig::from_url("redis://127.0.0.1:1/").unwrap().probe().unwrap()))
//!     .with_registration(Registration::new(DiskUsageProbe::new("/")));
//!
//! let slack = RecordingNotifier::new(); // in production: resee-ops-slack, throttled
//! let monitor = HealthMonitor::builder(registry)
//!     .with_interval(Duration::from_secs(30))
//!     .with_failures_before_down(1)
//!     .with_notifier(slack.clone().throttled(Duration::from_secs(600)))
//!     .build()
//!     .unwrap();
//! let report = monitor.run_once().await;
//!
//! assert_eq!(report.status, HealthStatus::Down);
//! assert!(!serde_json::to_string(&report).unwrap().contains("secret"));
//! assert_eq!(monitor.report(CheckGroup::Readiness).unwrap().http_status(), 503);
//! let titles = slack.titles();
//! assert!(titles.contains(&"Database connection failed".to_owned()));
//! assert!(titles.contains(&"Redis connection failed".to_owned()));
//! # });
//! ```

//!
//! # Threshold rules
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::time::Duration;
//! use resee_ops_core::testing::RecordingNotifier;
//! use resee_ops_monitor::{AlertState, EventCounter, FnSource, RequestStats, RuleEvaluator, presets};
//!
//! let http = RequestStats::new(); // `app.layer(http.layer())` records the traffic
//! let payments = EventCounter::new(); // `payments.record("payment_failed")` from the host
//! let queue = FnSource::new("queue", "items", || async { Ok(Some(250.0)) }); // in production: QueueLength
//! let inbox = RecordingNotifier::new(); // in production: Slack, throttled and dispatched
//! let rules = RuleEvaluator::builder()
//!     .with_source("http", http.clone())
//!     .with_source("payments", payments.clone())
//!     .with_metric("queue", queue)
//!     .with_rules(presets())
//!     .with_notifier(inbox.clone())
//!     .build()
//!     .unwrap();
//! rules.evaluate().await; // `rules.spawn()` runs it every 30 s
//! let states = rules.states();
//! assert_eq!(states[3].name, "queue_length");
//! assert_eq!(states[3].state, AlertState::Firing);
//! assert_eq!(states[1].state, AlertState::Inactive, "no traffic: not enough data, not an error rate");
//! # });
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod http;
mod metrics;
mod monitor;
mod periodic;
pub mod postgres;
pub mod prelude;
mod probe;
mod rules;
mod throttle;

pub use error::MonitorError;
pub use metrics::events::{EventCounter, EventCounterBuilder, OTHER_EVENTS};
pub use metrics::func::FnSource;
pub use metrics::layer::{RequestStatsLayer, RequestStatsService, ResponseFuture, RouteTemplate};
pub use metrics::measure::{Measure, Measurement, WindowedSource};
pub use metrics::request::{OTHER_ROUTES, QUANTILE_RELATIVE_ERROR, RequestStats, RequestStatsBuilder, UNMATCHED_ROUTE};
pub use metrics::scalar::{PostgresScalar, PostgresScalarConfig};
pub use metrics::window::{DEFAULT_GRANULARITY, DEFAULT_RETENTION, MAX_BUCKETS};
pub use monitor::{
    AlertMode, AlertText, FLAPPING_ALERT_NAME, HEALTH_ALERT_NAME, HealthMonitor, HealthMonitorBuilder, MIN_INTERVAL,
    MonitorConfig,
};
pub use periodic::MonitorHandle;
pub use probe::celery::{
    CeleryPing, CeleryTransport, CeleryWorkersProbe, DEFAULT_CELERY_SEP, DEFAULT_PING_WINDOW, DEFAULT_PRIORITY_STEPS,
};
pub use probe::disk::{DiskThresholds, DiskUsageProbe, FsStats, FsStatsSource, HUNG_AFTER, Statvfs};
pub use probe::heartbeat::{
    DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_HEARTBEAT_KEY, DEFAULT_HEARTBEAT_TTL, Heartbeat, HeartbeatConfig,
    WorkerHeartbeatProbe,
};
pub use probe::postgres::{DEFAULT_TIMEOUT, PostgresProbe, PostgresProbeConfig};
pub use probe::queue::{DEFAULT_QUEUE_WARNING_ABOVE, QueueDepth, QueueLength};
pub use probe::redis::{RedisConfig, RedisProbe};
pub use resee_ops_core::{ConnectionUrl, Secret};
pub use rules::evaluator::{
    AlertState, DEFAULT_SOURCE_TIMEOUT, DeliveryStats, Reading, RuleEvaluator, RuleEvaluatorBuilder, RuleState,
};
pub use rules::presets::{HTTP_SOURCE, PAYMENT_FAILED_EVENT, PAYMENTS_SOURCE, QUEUE_SOURCE, presets};
pub use rules::rule::{Comparison, DataPolicy, Rule};
pub use throttle::{DEFAULT_RETRY_AFTER, DEFAULT_THROTTLE_PREFIX, RedisThrottleStore};
