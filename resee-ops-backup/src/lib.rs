//! Verified, streaming `pg_dump` backups for **resee-ops**.
//!
//! [`PgDumpBackup`] runs `pg_dump` (no shell; the password reaches it only through a 0600 passfile, never
//! argv), streams its output through block-parallel gzip (libdeflate) or multithreaded zstd
//! ([`CompressionProfile`]) into any [`BackupTarget`](resee_ops_core::BackupTarget)
//! in bounded memory, and reports success only when all of these hold: `pg_dump` exited 0, the dump ends with
//! its completion trailer, the artifact read back from the target decompresses with valid CRCs to exactly the
//! bytes `pg_dump` wrote, and the manifest (`{artifact}.manifest.json`, the completion marker) was written.
//! Anything else leaves nothing under the final name. Artifacts are named
//! `{database}_{environment}_{YYYYMMDD_HHMMSS}.sql.gz` (UTC; `.sql.zst` for the zstd profile). The manifest
//! also records every table's row count, counted in the dump stream itself.
//!
//! - [`LocalDirTarget`]: a local directory (0700) of 0600 files, written atomically.
//! - `S3Target` (feature `s3`): an S3-compatible bucket, streaming multipart upload to a staging key, read
//!   back and verified, published by a server-side copy that never overwrites (`docs/backup-targets.md`).
//! - Several targets per run (local + S3: the dump is made once and fanned out; optional targets only
//!   warn), one run at a time (a PostgreSQL advisory lock held for the run; a second replica's run ends
//!   [`Skipped`](resee_ops_core::BackupStatus::Skipped)), and [`BackupFreshnessProbe`], a health check
//!   that fails when the newest verified backup is too old.
//! - [`verify_artifact`]: checks an existing backup (truncated, bit-flipped or cut-short files fail).
//! - Alerts through any [`Notifier`](resee_ops_core::Notifier): success, failure, integrity failure
//!   (names in [`alert_names`], labels `database` and `environment`; plain titles, the Slack renderer adds
//!   the level's emoji).
//! - A preflight connection before dumping, over TLS where the URL's `sslmode` asks for it (the same
//!   `sslmode`, `sslrootcert`, `sslcert`, `sslkey` reach `pg_dump` as `PGSSLMODE`, `PGSSLROOTCERT`, …):
//!   version, privileges (SQLSTATE 42501 before anything is dumped), login and database, classified by
//!   SQLSTATE, never by the server's words.
//! - Retries of temporary failures (everything not known to be permanent) with core's
//!   [`RetryPolicy`]: one attempt plus three retries, 5 minutes apart (Celery's
//!   `max_retries=3`).
//! - [`RetentionPolicy`]: restic `forget` rules plus a verified minimum, decided by a pure function
//!   ([`RetentionPolicy::decide`]) and applied by [`prune`] after each successful backup.
//! - [`Restorer`]: verify, create the database, stream into `psql --single-transaction`; the scheduled
//!   restore test ([`run_restore_test`]) checks row counts against the manifest. See `docs/restore.md`.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> Result<(), resee_ops_backup::BackupError> {
//! use resee_ops_backup::{LocalDirTarget, PgDumpBackup};
//! use resee_ops_core::LogNotifier;
//!
//! let backup = PgDumpBackup::builder()
//!     .with_url("postgres://postgres@127.0.0.1:5432/resee_dev")
//!     .with_environment("production")
//!     .with_target(LocalDirTarget::new("./backups")?)
//!     .with_notifier(LogNotifier::new())
//!     .build()?;
//! let outcome = backup.run().await;
//! println!("{}", serde_json::to_string(&outcome.report).unwrap());
//! assert!(outcome.is_success(), "{:?}", outcome.error);
//! # Ok(()) }
//! ```
//!
//! Configuration can also come from serde ([`BackupConfig`]) or from the environment
//! ([`PgDumpBackupBuilder::from_env`]: `DATABASE_URL`, else `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`,
//! `PGDATABASE`). Bad names are rejected before anything runs:
//!
//! ```
//! use resee_ops_backup::PgDumpBackup;
//! use resee_ops_core::ErrorKind;
//! use resee_ops_core::testing::InMemoryBackupTarget;
//!
//! let err = PgDumpBackup::builder()
//!     .with_url("postgres://postgres:secret@127.0.0.1/resee_dev")
//!     .with_environment("../../etc")
//!     .with_target(InMemoryBackupTarget::new())
//!     .build()
//!     .unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::InvalidInput);
//! assert!(!err.to_string().contains("secret"));
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

mod backup;
mod catalog;
mod codec;
mod compress;
mod config;
mod error;
mod freshness;
mod local;
mod lock;
mod pgdump;
pub mod prelude;
mod prune;
mod restore;
mod retention;
#[cfg(feature = "s3")]
mod s3;
mod verify;

pub use backup::{ALERT_SOURCE, BackupOutcome, PgDumpBackup, PgDumpBackupBuilder, alert_names};
pub use catalog::{BackupEntry, Catalog, list_backups};
pub use config::{BackupConfig, CompressionProfile, MAX_THREADS, NameComponent, default_retry};
pub use error::{BackupError, Result, codes};
pub use freshness::BackupFreshnessProbe;
pub use local::LocalDirTarget;
pub use pgdump::PgVersion;
pub use prune::{PruneReport, prune};
pub use resee_ops_core::RetryPolicy;
pub use resee_ops_core::{ConnectionUrl, Secret};
pub use restore::{
    BackupSelector, ProgressMode, RestoreOptions, RestoreReport, RestoreTestReport, Restorer, default_database_name,
    run_restore_test,
};
pub use retention::{
    CalendarSpan, Decision, KeepCount, KeepReason, RemoveReason, RetentionDecision, RetentionItem, RetentionPlan,
    RetentionPolicy,
};
#[cfg(feature = "s3")]
#[cfg_attr(docsrs, doc(cfg(feature = "s3")))]
pub use s3::{S3Config, S3Encryption, S3Target, S3TargetBuilder};
pub use verify::{DUMP_TRAILER, Manifest, Verification, verify_artifact};

/// The time-zone crate of [`RetentionPolicy`]'s calendar rules.
pub use chrono_tz;
/// The JSON crate of [`PruneReport::summary_json`] (and the one to print a
/// [`BackupReport`](resee_ops_core::BackupReport) with), so a host need not add it.
pub use serde_json;

#[doc(hidden)]
pub mod __bench {
    //! Internals exposed for the benchmarks only; not a stable API.
    pub use crate::compress::{compress_block, compress_parallel};
}
