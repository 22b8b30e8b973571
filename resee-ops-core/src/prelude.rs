//! Everything a host needs to wire the stack and implement the contracts, in one import:
//!
//! ```
//! use resee_ops_core::prelude::*;
//! ```
//!
//! - the traits ([`Notifier`], [`NotifierExt`], [`HealthProbe`], [`MetricSource`], [`BackupTarget`],
//!   [`ArtifactWriter`], [`StagedArtifact`], [`ThrottleStore`], [`Clock`], [`Job`], [`Stop`]) and
//!   [`macro@async_trait`], which every implementation of them needs;
//! - the values they exchange ([`Alert`], [`Severity`], [`ProbeOutcome`], [`ArtifactMeta`], [`Error`], ...)
//!   and the machinery a host wires ([`HealthRegistry`], [`Registration`], [`Dispatcher`],
//!   [`OpsHandle`], [`Schedule`], [`Scheduler`], ...);
//! - the other crates' types that appear in those signatures: [`DateTime`] and [`Utc`] (chrono; the
//!   whole crate is [`resee_ops_core::chrono`](crate::chrono)), [`AsyncRead`] and [`AsyncWrite`] with
//!   their extension traits (tokio's, for [`ArtifactReader`] and a target's files).
//!
//! It leaves out `Result` (core's alias would shadow the standard one) and anything named like a
//! standard item.
//!
//! Implementing a probe needs nothing else:
//!
//! ```
//! use resee_ops_core::prelude::*;
//!
//! #[derive(Debug)]
//! struct QueueDepth;
//!
//! #[async_trait]
//! impl HealthProbe for QueueDepth {
//!     fn name(&self) -> &str {
//!         "jobs"
//!     }
//!     async fn check(&self) -> ProbeOutcome {
//!         ProbeOutcome::up().with_observed(3.0, "items")
//!     }
//! }
//!
//! let registry = HealthRegistry::new();
//! registry.register(Registration::readiness(QueueDepth));
//! ```

pub use async_trait::async_trait;
pub use chrono::{DateTime, Utc};
pub use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub use crate::ops::{OpsHandle, ShutdownSummary, Stop};
pub use crate::schedule::{Job, JobContext, JobPolicy, Schedule, Scheduler, SchedulerHandle};
pub use crate::{
    Alert, AlertStatus, ArtifactMeta, ArtifactName, ArtifactReader, ArtifactWriter, BackupReport, BackupStatus,
    BackupTarget, CheckGroup, Clock, ConnectionUrl, DispatchStats, Dispatcher, DispatcherConfig, Error, ErrorKind,
    FanOut, Field, Fingerprint, HealthProbe, HealthRegistry, HealthReport, HealthStatus, LogNotifier, MetricSample,
    MetricSource, Notifier, NotifierExt, NotifyOutcome, ProbeAlertText, ProbeOutcome, Registration, RetryPolicy,
    Secret, Severity, SharedClock, StagedArtifact, SystemClock, ThrottleStore, Throttled,
};
