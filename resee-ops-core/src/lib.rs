//! The contracts and shared machinery of **resee-ops**, the operations layer for Rust web services.
//!
//! This crate holds what every part agrees on, and nothing that talks to an external system:
//!
//! - **Values**: [`Alert`] (with a stable [`Fingerprint`]), [`Severity`], [`HealthStatus`],
//!   [`ProbeOutcome`], [`MetricSample`], [`ArtifactName`], [`ArtifactMeta`], [`BackupReport`].
//! - **Traits** the adapter crates implement: [`Notifier`] (`resee-ops-slack`), [`BackupTarget`]
//!   (`resee-ops-backup`), [`HealthProbe`] and [`MetricSource`] (`resee-ops-monitor`).
//! - **Machinery**: [`Throttled`], [`Retrying`], [`FanOut`] and [`Dispatcher`] (notifiers that wrap
//!   notifiers), [`LogNotifier`] (the default), [`HealthRegistry`] (concurrent probes with timeouts and an
//!   `application/health+json` report), [`FlapDetector`] (one "flapping" notice instead of a storm),
//!   [`Clock`], and [`schedule`]: cron schedules in IANA time zones and the
//!   [`Scheduler`](schedule::Scheduler) that runs jobs on them.
//! - **One shutdown**: [`OpsHandle`] owns the producers (monitor, rules, scheduler) and the dispatcher and
//!   stops them in order within one deadline.
//! - **[`prelude`]**: the traits, values and machinery above plus what their signatures expose from other
//!   crates ([`async_trait`](macro@async_trait), chrono's `DateTime`/`Utc`, tokio's `AsyncRead`), so a
//!   host adds only the resee-ops crates and tokio: `use resee_ops_core::prelude::*;`.
//! - **Testing** (feature `testing`): doubles, conformance suites, throwaway PostgreSQL/Redis.
//!
//! One error type for the whole workspace, [`Error`], with an [`ErrorKind`] and [`Error::is_temporary`];
//! one connection-string type, [`ConnectionUrl`]; one secret wrapper, [`Secret`].
//!
//! # Wiring a notification stack
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::time::Duration;
//! use resee_ops_core::{Alert, DispatcherConfig, LogNotifier, Notifier, NotifierExt, RetryPolicy, Severity};
//!
//! // Inner to outer (see `NotifierExt`, "Order"): retry within a minute; once per 10 minutes; never
//! // block the caller. The Slack notifier retries inside: it takes the place of `.retrying(..)` too.
//! let alerts = LogNotifier::new()
//!     .retrying(RetryPolicy::default().with_deadline(Duration::from_secs(60)))
//!     .throttled(Duration::from_secs(600))
//!     .dispatched(DispatcherConfig::default());
//!
//! alerts.notify(&Alert::new("backup_failed", Severity::Error, "Backup failed")).await;
//! alerts.shutdown(Duration::from_secs(5)).await;
//! assert_eq!(alerts.stats().delivered, 1);
//! # });
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod alert;
pub mod backup;
pub mod clock;
pub mod deadline;
pub mod error;
pub mod flap;
pub mod health;
pub mod metric;
pub mod notify;
pub mod ops;
pub mod prelude;
pub mod registry;
pub mod schedule;
pub mod secret;
pub mod serde_duration;
pub mod telemetry;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
pub mod url;

pub use alert::{Alert, AlertStatus, Field, Fingerprint, Severity};
pub use backup::{
    ArtifactMeta, ArtifactName, ArtifactReader, ArtifactWriter, BackupReport, BackupStatus, BackupTarget,
    StagedArtifact, TargetReport,
};
pub use clock::{Clock, SharedClock, SystemClock, system_clock};
pub use error::{Error, ErrorKind, Result};
pub use flap::{FlapConfig, FlapDetector, FlapVerdict};
pub use health::{HealthProbe, HealthStatus, ProbeAlertText, ProbeOutcome};
pub use metric::{MetricSample, MetricSource};
pub use notify::{
    DEFAULT_THROTTLE_RETENTION, DEFAULT_THROTTLE_WINDOW, DispatchStats, Dispatcher, DispatcherConfig, DropReason,
    FanOut, InMemoryThrottleStore, LogNotifier, Notifier, NotifierExt, NotifyOutcome, RetryPolicy, Retrying,
    ThrottleEntry, ThrottleStore, Throttled,
};
pub use registry::{CheckGroup, CheckResult, DEFAULT_PROBE_TIMEOUT, HealthRegistry, HealthReport, Registration};
pub use secret::Secret;
pub use serde_duration::parse_duration;
pub use url::{ConnectionUrl, Scheme, SslMode};

pub use ops::{OpsHandle, ShutdownSummary, Stop};

/// The `#[async_trait]` attribute every implementation of a core trait needs, so a host does not add
/// `async-trait` itself (also in the [`prelude`]).
pub use async_trait::async_trait;
/// The date-time crate of [`ArtifactMeta::new`], [`Clock::now`] and the schedules, at the version core
/// uses (`resee_ops_core::chrono::Duration`, ...); [`DateTime`](chrono::DateTime) and
/// [`Utc`](chrono::Utc) are in the [`prelude`].
pub use chrono;
