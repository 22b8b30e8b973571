//! The scheduled jobs: the daily verified backup (with retention after each success) and the optional
//! restore test.
//!
//! To add a job: implement [`Job`] (one attempt per `run`; watch `ctx.cancelled()` if it can be cut short)
//! and push it in [`Jobs::build`] with its schedule and policy.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use resee_ops_backup::{
    LocalDirTarget, Manifest, PgDumpBackup, ProgressMode, Restorer, RetryPolicy, S3Target, list_backups,
    run_restore_test,
};
use resee_ops_core::schedule::{Job, JobContext, JobPolicy, MissedRunPolicy, Schedule};
use resee_ops_core::{BackupReport, Error, ErrorKind, Notifier};

use crate::config::{Config, ConfigError, Validated};

/// A job with its schedule and policy.
#[derive(Debug)]
pub(crate) struct ScheduledJob {
    pub(crate) job: Arc<dyn Job>,
    pub(crate) schedule: Schedule,
    pub(crate) policy: JobPolicy,
}

/// Every scheduled job of the service, and direct handles on those other parts read from.
#[derive(Debug, Default)]
pub(crate) struct Jobs {
    pub(crate) scheduled: Vec<ScheduledJob>,
    pub(crate) backup: Option<Arc<BackupJob>>,
}

impl Jobs {
    pub(crate) fn build(
        config: &Config,
        validated: &Validated,
        alerts: Arc<dyn Notifier>,
    ) -> Result<Self, ConfigError> {
        let mut jobs = Self::default();
        if config.backup.enabled {
            let backup = Arc::new(BackupJob::new(config, alerts.clone())?);
            jobs.scheduled.push(ScheduledJob {
                job: backup.clone(),
                schedule: validated.backup_schedule.clone(),
                policy: config.backup.policy(),
            });
            jobs.backup = Some(backup);
        }
        if config.restore_test.enabled {
            let job = Arc::new(RestoreTestJob { restorer: restorer(config)?, alerts });
            jobs.scheduled.push(ScheduledJob {
                job,
                schedule: validated.restore_test_schedule.clone(),
                policy: JobPolicy::default().with_missed_runs(MissedRunPolicy::Skip),
            });
        }
        Ok(jobs)
    }
}

/// The daily backup: one verified `pg_dump` per attempt into the local directory, with its alerts.
///
/// Retries are the scheduler's (inside the slot), so the backup itself makes one attempt. A lock on the
/// backup directory keeps two processes (the service and a `backup --once` CronJob) from running at once.
#[derive(Debug)]
pub(crate) struct BackupJob {
    backup: PgDumpBackup,
    dir: PathBuf,
    /// `{database}_{environment}_`: this deployment's artifacts.
    prefix: String,
    last_report: Mutex<Option<BackupReport>>,
    busy: AtomicBool,
}

impl BackupJob {
    pub(crate) fn new(config: &Config, alerts: Arc<dyn Notifier>) -> Result<Self, ConfigError> {
        let b = &config.backup;
        let dir_key = "backup.dir (RESEE_BACKUP_DIR)";
        let target = LocalDirTarget::new(&b.dir).map_err(|e| ConfigError::new(dir_key, e.to_string()))?;
        let mut builder = PgDumpBackup::builder()
            .with_connection(config.database.url.clone())
            .with_environment(config.environment.clone())
            .with_profile(b.profile)
            .with_timeout(b.timeout);
        if let Some(level) = b.level {
            builder = builder.with_level(level);
        }
        if let Some(policy) = &b.retention {
            builder = builder.with_retention(policy.clone());
        }
        builder = builder.with_named_target("local", target, true).with_single_run_lock(b.single_run_lock);
        if let Some(s3) = s3_target(config)? {
            builder = builder.with_named_target("s3", s3, b.s3_required);
        }
        let backup = builder
            .with_retry(RetryPolicy::celery(0, Duration::ZERO))
            .with_notifier(alerts)
            .build()
            .map_err(|e| ConfigError::new("database.url (DATABASE_URL)", e.to_string()))?;
        let prefix = backup.name_prefix();
        Ok(Self { backup, dir: b.dir.clone(), prefix, last_report: Mutex::new(None), busy: AtomicBool::new(false) })
    }

    /// The report of the last run in this process.
    pub(crate) fn last_report(&self) -> Option<BackupReport> {
        self.last_report.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether the last attempt found the slot held by another process.
    pub(crate) fn was_busy(&self) -> bool {
        self.busy.load(Ordering::SeqCst)
    }

    /// The manifest of the newest verified backup of this deployment (a manifest is written only after
    /// the artifact was read back and verified).
    pub(crate) async fn newest_verified(&self) -> resee_ops_core::Result<Option<Manifest>> {
        let catalog = list_backups(self.backup.target().as_ref(), &self.prefix).await?;
        Ok(catalog.backups.into_iter().find_map(|b| b.manifest))
    }

    /// The backup itself (for `prune`).
    pub(crate) fn backup(&self) -> &PgDumpBackup {
        &self.backup
    }

    /// After a cancelled run: removes this deployment's artifacts published since `since` that have no
    /// manifest (published but not yet marked complete when the run was cut short).
    async fn remove_unfinished_since(&self, since: DateTime<Utc>) {
        for (_, target, _) in self.backup.targets() {
            self.remove_unfinished_on(target.as_ref(), since).await;
        }
    }

    async fn remove_unfinished_on(&self, target: &dyn resee_ops_core::BackupTarget, since: DateTime<Utc>) {
        let listed = match target.list().await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot list the backups to remove a cancelled one");
                return;
            }
        };
        let names: std::collections::HashSet<&str> = listed.iter().map(|m| m.name.as_str()).collect();
        for meta in &listed {
            let name = meta.name.as_str();
            let unfinished = name.starts_with(&self.prefix)
                && (name.ends_with(".sql.gz") || name.ends_with(".sql.zst"))
                && meta.created >= since - chrono::Duration::seconds(2)
                && !names.contains(format!("{name}.manifest.json").as_str());
            if unfinished {
                match target.delete(&meta.name).await {
                    Ok(()) => tracing::warn!(file = name, "removed the backup of a cancelled run"),
                    Err(e) => tracing::error!(file = name, error = %e, "cannot remove the backup of a cancelled run"),
                }
            }
        }
    }
}

#[async_trait]
impl Job for BackupJob {
    fn name(&self) -> &str {
        "backup"
    }

    async fn run(&self, ctx: &JobContext) -> resee_ops_core::Result<()> {
        let Some(_lock) = SlotLock::try_acquire(&self.dir)? else {
            self.busy.store(true, Ordering::SeqCst);
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("another backup run holds the slot (lock on {})", self.dir.display()),
            )
            .with_temporary(false));
        };
        self.busy.store(false, Ordering::SeqCst);
        let started = Utc::now();
        tokio::select! {
            outcome = self.backup.run() => {
                *self.last_report.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome.report.clone());
                if outcome.is_skipped() {
                    // Another replica is backing up: not a failure, and nothing to retry.
                    self.busy.store(true, Ordering::SeqCst);
                    return Err(Error::new(
                        ErrorKind::AlreadyExists,
                        outcome.report.error.unwrap_or_else(|| "another run holds the single-run lock".into()),
                    )
                    .with_temporary(false));
                }
                match outcome.error {
                    None if outcome.is_success() => Ok(()),
                    None => Err(Error::new(ErrorKind::Unexpected, outcome.report.error.unwrap_or_default())),
                    Some(e) => Err(e),
                }
            }
            () = ctx.cancelled() => {
                // Dropping the run killed pg_dump and removed its temporary file; a file already published
                // under its final name but without its manifest goes too.
                self.remove_unfinished_since(started).await;
                Err(Error::new(ErrorKind::Closed, "backup cancelled on shutdown; no file was left under a final name"))
            }
        }
    }

    async fn last_success(&self) -> resee_ops_core::Result<Option<DateTime<Utc>>> {
        // So that "no successful backup for 26 h" can be alerted on from the start, not only after this
        // process's first backup: each target's gauge from the newest verified backup in that target. The
        // other targets (S3) are read on their own task, so that a slow bucket never delays this answer.
        for (name, target, _) in self.backup.targets().skip(1) {
            let (name, target, prefix) = (name.to_owned(), target.clone(), self.prefix.clone());
            tokio::spawn(async move {
                match list_backups(target.as_ref(), &prefix).await {
                    Ok(catalog) => {
                        if let Some(m) = catalog.backups.into_iter().find_map(|b| b.manifest) {
                            record_last_success(&name, m.finished_at);
                        }
                    }
                    Err(e) => tracing::warn!(target = %name, error = %e, "cannot list the backups of a target"),
                }
            });
        }
        let last = self.newest_verified().await?.map(|m| m.finished_at);
        if let (Some(t), Some((name, _, _))) = (last, self.backup.targets().next()) {
            record_last_success(name, t);
        }
        Ok(last)
    }
}

/// Sets the backup's last-success gauge of the target named `target` (the label `PgDumpBackup::run` uses).
fn record_last_success(target: &str, at: DateTime<Utc>) {
    metrics::gauge!(resee_ops_core::telemetry::BACKUP_LAST_SUCCESS, "target" => target.to_owned())
        .set(at.timestamp_millis() as f64 / 1000.0);
}

/// The S3 target of `[backup.s3]` (or `BACKUP_S3_*`), if one is configured.
pub(crate) fn s3_target(config: &Config) -> Result<Option<S3Target>, ConfigError> {
    config
        .backup
        .s3
        .clone()
        .map(|s3| S3Target::from_config(s3).map_err(|e| ConfigError::new("backup.s3 (BACKUP_S3_*)", e.to_string())))
        .transpose()
}

/// `{database}_{environment}_`: this deployment's artifacts.
pub(crate) fn name_prefix(config: &Config) -> Result<String, ConfigError> {
    let url_key = "database.url (DATABASE_URL)";
    let name = resee_ops_backup::NameComponent::new(config.database.url.database())
        .map_err(|e| ConfigError::new(url_key, e.to_string()))?;
    Ok(format!("{name}_{}_", config.environment))
}

/// A [`Restorer`] for this deployment: its backup directory and name prefix, the server of `database.url`.
pub(crate) fn restorer(config: &Config) -> Result<Restorer, ConfigError> {
    restorer_from(config, "local")
}

/// A [`Restorer`] reading from the target `from`: `local` (the backup directory) or `s3` (`[backup.s3]`).
pub(crate) fn restorer_from(config: &Config, from: &str) -> Result<Restorer, ConfigError> {
    let dir_key = "backup.dir (RESEE_BACKUP_DIR)";
    let target: Arc<dyn resee_ops_core::BackupTarget> = match from {
        "local" => {
            Arc::new(LocalDirTarget::new(&config.backup.dir).map_err(|e| ConfigError::new(dir_key, e.to_string()))?)
        }
        "s3" => Arc::new(
            s3_target(config)?
                .ok_or_else(|| ConfigError::new("--from", "s3 is not configured (backup.s3 or BACKUP_S3_BUCKET)"))?,
        ),
        other => return Err(ConfigError::new("--from", format!("{other:?} is not a target: local or s3"))),
    };
    let url_key = "database.url (DATABASE_URL)";
    let server = config.database.url.clone();
    let name = resee_ops_backup::NameComponent::new(server.database())
        .map_err(|e| ConfigError::new(url_key, e.to_string()))?;
    Ok(Restorer::new(target, server)
        .with_prefix(format!("{name}_{}_", config.environment))
        .with_progress(ProgressMode::Auto))
}

/// The restore test as a scheduled job: alerts (through the service's alerts) when it fails.
#[derive(Debug)]
pub(crate) struct RestoreTestJob {
    restorer: Restorer,
    alerts: Arc<dyn Notifier>,
}

#[async_trait]
impl Job for RestoreTestJob {
    fn name(&self) -> &str {
        "restore_test"
    }

    async fn run(&self, _ctx: &JobContext) -> resee_ops_core::Result<()> {
        let restorer = self.restorer.clone().with_progress(ProgressMode::Off);
        // Not retried: a failure is the finding, and it was alerted.
        run_restore_test(&restorer, Some(self.alerts.as_ref())).await.map(drop).map_err(|e| e.with_temporary(false))
    }

    async fn last_success(&self) -> resee_ops_core::Result<Option<DateTime<Utc>>> {
        Ok(None)
    }
}

/// An exclusive, non-blocking `flock` on the backup directory, held while a backup runs; released when
/// dropped (or when the process dies).
#[derive(Debug)]
pub(crate) struct SlotLock {
    _dir: File,
}

impl SlotLock {
    /// `Ok(None)` when another process (or run) holds it.
    pub(crate) fn try_acquire(dir: &Path) -> std::io::Result<Option<Self>> {
        let file = File::open(dir)?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(Self { _dir: file })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}
