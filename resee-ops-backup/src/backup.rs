//! [`PgDumpBackup`]: one verified backup run, with retries and alerts.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use resee_ops_core::{
    Alert, ArtifactName, ArtifactWriter, BackupReport, BackupStatus, BackupTarget, Notifier, Severity, SharedClock,
    StagedArtifact, TargetReport,
};
use tokio::time::Instant;

use crate::codec::{Codec, zstd_stream};
use crate::compress::{self, Sink, StreamStats};
use crate::error::{self, codes};
use crate::lock;
use crate::pgdump::{self, PgDump};
use crate::prune::{self, PruneReport};
use crate::verify::{self, Manifest, Verification};
use crate::{BackupConfig, BackupError, CompressionProfile, NameComponent, Result, RetentionPolicy};
use resee_ops_core::deadline::SaturatingAdd as _;
use resee_ops_core::{ConnectionUrl, ErrorKind, RetryPolicy};

/// Alert names, stable across releases (throttling and routing key on them).
pub mod alert_names {
    /// A backup was written, verified and committed.
    pub const SUCCEEDED: &str = "backup_succeeded";
    /// A backup could not be written.
    pub const FAILED: &str = "backup_failed";
    /// A backup was written but failed verification (or an existing one was found corrupt).
    pub const INTEGRITY_FAILED: &str = "backup_integrity_failed";
    /// The scheduled restore test failed: the newest backup did not restore, or its row counts differ.
    pub const RESTORE_TEST_FAILED: &str = "restore_test_failed";
    /// A run was skipped because another run of the same backup held the single-run lock (info).
    pub const SKIPPED: &str = "backup_skipped";
    /// An optional target failed while the backup succeeded on the required ones (warning).
    pub const TARGET_FAILED: &str = "backup_target_failed";
}

/// The source of every alert this crate sends.
pub const ALERT_SOURCE: &str = "resee-ops-backup";

/// How a run ended: the report, and the typed error and manifest behind it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BackupOutcome {
    /// The report (serializable; what the reference system sends as `{status, filename, size_mb}`).
    pub report: BackupReport,
    /// The error of the last attempt, for failures.
    pub error: Option<BackupError>,
    /// The manifest written, on success.
    pub manifest: Option<Manifest>,
    /// What retention did after the backup on the first target (only after a success, and only with a policy
    /// configured).
    pub prune: Option<PruneReport>,
    /// What retention did on every target the backup reached, by target name.
    pub prunes: Vec<(String, PruneReport)>,
}

impl BackupOutcome {
    fn new(report: BackupReport, error: Option<BackupError>, manifest: Option<Manifest>) -> Self {
        Self { report, error, manifest, prune: None, prunes: Vec::new() }
    }

    /// Whether the backup succeeded.
    pub fn is_success(&self) -> bool {
        self.report.is_success()
    }

    /// Whether the run was skipped: another run held the single-run lock. Not a failure (the reference
    /// service's `backup --once` exits with 3).
    pub fn is_skipped(&self) -> bool {
        self.report.status == BackupStatus::Skipped
    }
}

/// One target of a backup: its name (in reports, alerts and the `target` label of the metrics), the
/// target, whether the run needs it.
#[derive(Debug, Clone)]
struct TargetSlot {
    name: String,
    target: Arc<dyn BackupTarget>,
    required: bool,
}

/// A target as added to the builder: without a name when added by [`PgDumpBackupBuilder::with_target`].
#[derive(Debug, Clone)]
struct PendingTarget {
    name: Option<String>,
    target: Arc<dyn BackupTarget>,
    required: bool,
}

/// Names the targets added without a name after their kind ([`BackupTarget::label`]: `local`, `s3`), or
/// `{kind}-{position}` (1-based) when that name is taken or another unnamed target is of the same kind.
fn name_targets(pending: Vec<PendingTarget>) -> Vec<TargetSlot> {
    let explicit: Vec<String> = pending.iter().filter_map(|p| p.name.clone()).collect();
    let unnamed_of = |label: &str| pending.iter().filter(|p| p.name.is_none() && p.target.label() == label).count();
    let names: Vec<String> = pending
        .iter()
        .enumerate()
        .map(|(i, p)| match &p.name {
            Some(name) => name.clone(),
            None => {
                let label = p.target.label();
                if unnamed_of(label) == 1 && !explicit.iter().any(|n| n == label) {
                    label.to_owned()
                } else {
                    format!("{label}-{}", i + 1)
                }
            }
        })
        .collect();
    pending
        .into_iter()
        .zip(names)
        .map(|(p, name)| TargetSlot { name, target: p.target, required: p.required })
        .collect()
}

/// Verified `pg_dump` backups into any [`BackupTarget`].
///
/// One [`run`](Self::run): sweep temporaries left by crashed runs; find `pg_dump`; a preflight connection,
/// made as `pg_dump` will make it (same host, user, database, `sslmode`/`sslrootcert`, TLS by rustls
/// through `resee_ops_monitor::postgres`), refuses a `pg_dump` older than the server and a role that cannot read a
/// table, schema or sequence `pg_dump` must dump (SQLSTATE 42501), and classifies a refused login (class
/// 28), a missing database (3D000) and a refused TLS certificate as permanent, by SQLSTATE whatever the
/// server's `lc_messages` language; stream `pg_dump`'s output through parallel gzip into the target under a temporary name;
/// once `pg_dump` exited 0 and the dump ends with its completion trailer, stage it (durable, still under the
/// temporary name), read it back from the target and verify it (CRC, trailer, sizes, SHA-256); publish it
/// under its name only then; write the manifest last; alert. Temporary failures (server
/// unreachable or shutting down, timeouts) are retried, 3 attempts 5 minutes apart by default.
///
/// See the [crate docs](crate) for an example.
pub struct PgDumpBackup {
    config: BackupConfig,
    name: NameComponent,
    targets: Vec<TargetSlot>,
    notifier: Option<Arc<dyn Notifier>>,
    clock: SharedClock,
    pg_dump: tokio::sync::OnceCell<PgDump>,
    /// Held for a whole run: two runs of this backup in one process never overlap.
    running: tokio::sync::Mutex<()>,
    source: DumpSource,
}

/// Where an attempt's dump comes from: always `pg_dump`, except in this crate's unit tests.
#[derive(Clone, Debug)]
enum DumpSource {
    /// `pg_dump`, after the preflight (server version, privileges) and the single-run lock.
    PgDump,
    /// A canned dump, as if from this `pg_dump`, and no server: the unit tests of the run's decisions
    /// (retries, reports, alerts) against mocked targets and notifiers, on paused time.
    #[cfg(test)]
    Canned { dump: Arc<[u8]>, tool: PgDump },
}

impl fmt::Debug for PgDumpBackup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgDumpBackup")
            .field("config", &self.config)
            .field("targets", &self.targets)
            .field("notifier", &self.notifier)
            .finish_non_exhaustive()
    }
}

/// Builds a [`PgDumpBackup`]. Errors (a bad URL, an invalid name) surface in [`build`](Self::build).
pub struct PgDumpBackupBuilder {
    config: Option<BackupConfig>,
    connection: Option<Result<ConnectionUrl>>,
    environment: Option<String>,
    name: Option<String>,
    profile: Option<CompressionProfile>,
    level: Option<u32>,
    threads: Option<usize>,
    pg_dump: Option<PathBuf>,
    connect_timeout: Option<Duration>,
    lock_wait_timeout: Option<Duration>,
    timeout: Option<Duration>,
    retry: Option<RetryPolicy>,
    retention: Option<RetentionPolicy>,
    single_run_lock: Option<bool>,
    targets: Vec<PendingTarget>,
    notifier: Option<Arc<dyn Notifier>>,
    clock: Option<SharedClock>,
}

impl fmt::Debug for PgDumpBackupBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgDumpBackupBuilder")
            .field("connection", &self.connection.as_ref().map(|c| c.as_ref().ok()))
            .field("environment", &self.environment)
            .field("name", &self.name)
            .field("profile", &self.profile)
            .field("targets", &self.targets)
            .finish_non_exhaustive()
    }
}

impl PgDumpBackupBuilder {
    fn new() -> Self {
        Self {
            config: None,
            connection: None,
            environment: None,
            name: None,
            profile: None,
            level: None,
            threads: None,
            pg_dump: None,
            connect_timeout: None,
            lock_wait_timeout: None,
            timeout: None,
            retry: None,
            retention: None,
            single_run_lock: None,
            targets: Vec::new(),
            notifier: None,
            clock: None,
        }
    }

    /// The connection from `DATABASE_URL`, else the standard `PG*` variables
    /// ([`ConnectionUrl::postgres_from_env`]); an error when neither is set.
    pub fn from_env() -> Result<Self> {
        Ok(Self::new().with_connection(ConnectionUrl::postgres_from_env()?))
    }

    /// Starts from a deserialized configuration: every field of `config`, then whatever the other
    /// `with_*` methods set on top (in any order). A target is still required.
    ///
    /// ```
    /// use resee_ops_backup::{BackupConfig, PgDumpBackup};
    /// use resee_ops_core::testing::InMemoryBackupTarget;
    ///
    /// let config: BackupConfig = serde_json::from_str(
    ///     r#"{"connection": "postgres://backup@127.0.0.1/resee", "environment": "production"}"#,
    /// ).unwrap();
    /// let backup = PgDumpBackup::builder()
    ///     .with_config(config)
    ///     .with_target(InMemoryBackupTarget::new())
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(backup.config().environment.as_str(), "production");
    /// ```
    pub fn with_config(mut self, config: BackupConfig) -> Self {
        self.config = Some(config);
        self
    }

    fn with_connection_result(mut self, c: Result<ConnectionUrl>) -> Self {
        self.connection = Some(c);
        self
    }

    /// The database to dump.
    pub fn with_connection(self, connection: ConnectionUrl) -> Self {
        self.with_connection_result(Ok(connection))
    }

    /// The database to dump, as a `postgres://` URL or a libpq `key=value` string; a malformed one is
    /// reported by [`build`](Self::build).
    pub fn with_url(self, url: &str) -> Self {
        self.with_connection_result(ConnectionUrl::parse(url))
    }

    /// The environment part of the name (default `development`).
    pub fn with_environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = Some(environment.into());
        self
    }

    /// The database part of the name (default: the database name).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The compression profile.
    pub fn with_profile(mut self, profile: CompressionProfile) -> Self {
        self.profile = Some(profile);
        self
    }

    /// The compression level (gzip 0-12, zstd 1-19), overriding the profile's.
    pub fn with_level(mut self, level: u32) -> Self {
        self.level = Some(level);
        self
    }

    /// Compression threads (default: CPUs, at most 4).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads);
        self
    }

    /// The `pg_dump` binary to run.
    pub fn with_pg_dump(mut self, path: impl Into<PathBuf>) -> Self {
        self.pg_dump = Some(path.into());
        self
    }

    /// Connection timeout (default 30 s; `Duration::MAX`: no limit).
    pub fn with_connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = Some(d);
        self
    }

    /// `pg_dump --lock-wait-timeout` (default 5 minutes; zero, or past the server's limit of about 24.8
    /// days, `Duration::MAX` included: no limit).
    pub fn with_lock_wait_timeout(mut self, d: Duration) -> Self {
        self.lock_wait_timeout = Some(d);
        self
    }

    /// Limit for one attempt (default 6 hours; `Duration::MAX`: no limit); `pg_dump` is killed when it
    /// passes.
    pub fn with_timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    /// The retry policy (default [`default_retry`](crate::default_retry): one attempt plus three
    /// retries, 5 minutes apart).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = Some(retry);
        self
    }

    /// Retention applied after each successful backup (default: none, every backup is kept).
    pub fn with_retention(mut self, policy: RetentionPolicy) -> Self {
        self.retention = Some(policy);
        self
    }

    /// Adds a required target (at least one target is needed). Call it again for several targets: the dump
    /// is made once and written to each; the run succeeds only when every required target succeeded.
    ///
    /// Named after its kind ([`BackupTarget::label`]: `local`, `s3`) in reports, alerts and the `target`
    /// label of the metrics, or `{kind}-{position}` (`local-1`, `local-2`) when two targets would share a
    /// name; see [`with_named_target`](Self::with_named_target).
    ///
    /// ```
    /// use resee_ops_backup::PgDumpBackup;
    /// use resee_ops_core::testing::InMemoryBackupTarget;
    ///
    /// let backup = PgDumpBackup::builder()
    ///     .with_url("postgres://backup@127.0.0.1/resee")
    ///     .with_target(InMemoryBackupTarget::new())
    ///     .with_target(InMemoryBackupTarget::new())
    ///     .with_named_target("offsite", InMemoryBackupTarget::new(), false)
    ///     .build()
    ///     .unwrap();
    /// let names: Vec<&str> = backup.targets().map(|(name, _, _)| name).collect();
    /// assert_eq!(names, ["memory-1", "memory-2", "offsite"]);
    /// ```
    pub fn with_target(mut self, target: impl BackupTarget) -> Self {
        self.targets.push(PendingTarget { name: None, target: Arc::new(target), required: true });
        self
    }

    /// Adds a target with a name (`local`, `s3`) for reports, alerts and the `target` label of the
    /// metrics. An optional target (`required = false`) that fails is a warning alert
    /// ([`alert_names::TARGET_FAILED`]), not a failed backup.
    pub fn with_named_target(mut self, name: impl Into<String>, target: impl BackupTarget, required: bool) -> Self {
        self.targets.push(PendingTarget { name: Some(name.into()), target: Arc::new(target), required });
        self
    }

    /// Whether to take the single-run lock (default `true`): a PostgreSQL advisory lock on the source
    /// database, held by a dedicated session for the whole run, so that two replicas never dump at once:
    /// the second run ends [`BackupStatus::Skipped`].
    pub fn with_single_run_lock(mut self, enabled: bool) -> Self {
        self.single_run_lock = Some(enabled);
        self
    }

    /// Where the alerts go (default: none, only logs).
    pub fn with_notifier(mut self, notifier: impl Notifier) -> Self {
        self.notifier = Some(Arc::new(notifier));
        self
    }

    /// The clock that names artifacts and stamps reports (default: the system clock, UTC).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Validates everything and builds.
    pub fn build(self) -> Result<PgDumpBackup> {
        let mut config = match (self.config, self.connection) {
            (Some(mut config), Some(connection)) => {
                config.connection = connection?;
                config
            }
            (Some(config), None) => config,
            (None, Some(connection)) => BackupConfig::new(connection?),
            (None, None) => return Err(error::invalid_config("no database connection configured")),
        };
        if let Some(env) = self.environment {
            config.environment = NameComponent::new(env)?;
        }
        if let Some(name) = self.name {
            config.name = Some(NameComponent::new(name)?);
        }
        if let Some(profile) = self.profile {
            config.profile = profile;
        }
        if self.level.is_some() {
            config.level = self.level;
        }
        if self.threads.is_some() {
            config.threads = self.threads;
        }
        if self.pg_dump.is_some() {
            config.pg_dump = self.pg_dump;
        }
        if let Some(d) = self.connect_timeout {
            config.connect_timeout = d;
        }
        if let Some(d) = self.lock_wait_timeout {
            config.lock_wait_timeout = d;
        }
        if let Some(d) = self.timeout {
            config.timeout = d;
        }
        if let Some(r) = self.retry {
            config.retry = r;
        }
        if let Some(p) = self.retention {
            config.retention = Some(p);
        }
        if let Some(lock) = self.single_run_lock {
            config.single_run_lock = lock;
        }
        let mut backup = PgDumpBackup::from_parts(config, name_targets(self.targets))?;
        backup.notifier = self.notifier;
        if let Some(clock) = self.clock {
            backup.clock = clock;
        }
        Ok(backup)
    }
}

impl PgDumpBackup {
    /// A builder.
    pub fn builder() -> PgDumpBackupBuilder {
        PgDumpBackupBuilder::new()
    }

    fn from_parts(config: BackupConfig, targets: Vec<TargetSlot>) -> Result<Self> {
        config.validate()?;
        if !targets.iter().any(|t| t.required) {
            return Err(error::invalid_config("no required backup target configured"));
        }
        let mut names = std::collections::HashSet::new();
        if let Some(dup) = targets.iter().find(|t| !names.insert(t.name.as_str())) {
            return Err(error::invalid_config(format!("two backup targets are named {:?}", dup.name)));
        }
        let name = match &config.name {
            Some(n) => n.clone(),
            None => NameComponent::new(config.connection.database())
                .map_err(|e| error::invalid_name(format!("{}; set an explicit name for the artifacts", e.message())))?,
        };
        Ok(Self {
            config,
            name,
            targets,
            notifier: None,
            clock: resee_ops_core::system_clock(),
            pg_dump: tokio::sync::OnceCell::new(),
            running: tokio::sync::Mutex::new(()),
            source: DumpSource::PgDump,
        })
    }

    /// The configuration in effect.
    pub fn config(&self) -> &BackupConfig {
        &self.config
    }

    /// The first target (the primary one).
    pub fn target(&self) -> &Arc<dyn BackupTarget> {
        &self.targets[0].target
    }

    /// Every target: name, target, required.
    pub fn targets(&self) -> impl Iterator<Item = (&str, &Arc<dyn BackupTarget>, bool)> {
        self.targets.iter().map(|t| (t.name.as_str(), &t.target, t.required))
    }

    /// The artifact name for a backup started at `at`: `{database}_{environment}_{YYYYMMDD_HHMMSS}.sql.gz`
    /// (`.sql.zst` for the zstd profile).
    pub fn artifact_name(&self, at: DateTime<Utc>) -> Result<ArtifactName> {
        ArtifactName::new(format!(
            "{}{}{}",
            self.name_prefix(),
            at.format("%Y%m%d_%H%M%S"),
            self.config.profile.extension()
        ))
    }

    /// The key of this backup's single-run lock (`pg_try_advisory_lock(bigint)` on the source database),
    /// derived from [`name_prefix`](Self::name_prefix) and stable across releases. An operator can pause
    /// backups with `SELECT pg_advisory_lock(key)` in a session of their own: runs end `Skipped` until it
    /// ends.
    pub fn single_run_lock_key(&self) -> i64 {
        lock::lock_key(&self.name_prefix())
    }

    /// `{database}_{environment}_`: what the names of this backup's artifacts start with.
    pub fn name_prefix(&self) -> String {
        format!("{}_{}_", self.name, self.config.environment)
    }

    /// Runs one backup with retries, sends the alert, and says how it went. Never panics on failure: the
    /// outcome holds the error.
    ///
    /// First the single-run lock: when another run of this backup is going (in this process, or anywhere
    /// else while [`with_single_run_lock`](PgDumpBackupBuilder::with_single_run_lock) is on), the run ends
    /// at once as [`BackupStatus::Skipped`] with an info alert, and nothing is dumped.
    pub async fn run(&self) -> BackupOutcome {
        let started = Instant::now();
        let started_at = self.clock.now();
        let Ok(_running) = self.running.try_lock() else {
            return self
                .skipped("another run of this backup is still going in this process", started, started_at)
                .await;
        };
        self.run_locked(started, started_at).await
    }

    async fn take_lock(&self) -> Result<Option<lock::RunLock>> {
        let pg_dump = self.pg_dump().await?;
        let psql = match pg_dump.path.with_file_name("psql") {
            p if p.is_file() => PgDump { path: p, version: pg_dump.version },
            _ => pgdump::locate_tool("psql", None).await?,
        };
        let key = self.single_run_lock_key();
        lock::try_lock(&psql, &self.config.connection, self.config.connect_timeout, key).await
    }

    async fn skipped(&self, why: &str, started: Instant, started_at: DateTime<Utc>) -> BackupOutcome {
        tracing::info!(reason = why, "backup skipped");
        let report = BackupReport::new(BackupStatus::Skipped, String::new())
            .with_error(why)
            .with_duration(started.elapsed())
            .with_times(started_at, self.clock.now());
        let outcome = BackupOutcome::new(report, None, None);
        // Counted as a run (a dashboard sees the overlap); no target was touched, so no target series.
        metrics::counter!(resee_ops_core::telemetry::BACKUP_RUNS, "outcome" => BackupStatus::Skipped.as_str())
            .increment(1);
        self.alert(&outcome).await;
        outcome
    }

    async fn run_locked(&self, started: Instant, started_at: DateTime<Utc>) -> BackupOutcome {
        // Taken by the first attempt, once its preflight reached the server (so that a refused login is
        // reported as such), and held until the run ends.
        let lock = tokio::sync::Mutex::new(None);
        let outcome = self.run_with(started, started_at, &lock).await;
        if let Some(lock) = lock.into_inner() {
            lock.release().await;
        }
        outcome
    }

    async fn run_with(
        &self,
        started: Instant,
        started_at: DateTime<Utc>,
        lock: &tokio::sync::Mutex<Option<lock::RunLock>>,
    ) -> BackupOutcome {
        for slot in &self.targets {
            if let Err(e) = slot.target.sweep_incomplete().await {
                tracing::warn!(target = %slot.name, error = %format_args!("{e:#}"), "cannot sweep abandoned temporaries");
            }
        }
        let filename = std::sync::Mutex::new(String::new());
        let targets = std::sync::Mutex::new(Vec::new());
        let (result, attempts) = self
            .config
            .retry
            .run(|attempt| {
                let (filename, targets) = (&filename, &targets);
                async move {
                    let (name, r, per_target) = self.attempt(attempt, lock).await;
                    if let Some(n) = name {
                        *filename.lock().unwrap_or_else(|p| p.into_inner()) = n.to_string();
                    }
                    *targets.lock().unwrap_or_else(|p| p.into_inner()) = per_target;
                    r
                }
            })
            .await;
        let filename = filename.into_inner().unwrap_or_else(|p| p.into_inner());
        let lanes: Vec<Lane> = targets.into_inner().unwrap_or_else(|p| p.into_inner());
        let per_target: Vec<TargetReport> = lanes.iter().map(|l| l.report.clone()).collect();
        if let Err(e) = &result
            && e.code() == Some(codes::SKIPPED)
        {
            return self.skipped(e.message(), started, started_at).await;
        }
        let finished_at = self.clock.now();
        let mut outcome = match result {
            Ok((meta_size, manifest)) => BackupOutcome::new(
                BackupReport::new(BackupStatus::Success, filename)
                    .with_size(meta_size)
                    .with_sha256(manifest.sha256.clone()),
                None,
                Some(manifest),
            ),
            Err(err) => {
                let status = if err.is_integrity() { BackupStatus::IntegrityFailed } else { BackupStatus::Failed };
                BackupOutcome::new(BackupReport::new(status, filename).with_error(format!("{err:#}")), Some(err), None)
            }
        };
        let reached: Vec<String> =
            per_target.iter().filter(|t| t.status == BackupStatus::Success).map(|t| t.target.clone()).collect();
        outcome.report = outcome
            .report
            .with_attempts(attempts)
            .with_duration(started.elapsed())
            .with_times(started_at, finished_at)
            .with_targets(if self.targets.len() > 1 { per_target.clone() } else { Vec::new() });
        match &outcome.error {
            None => {
                tracing::info!(file = %outcome.report.filename, bytes = outcome.report.size_bytes, "backup succeeded")
            }
            Some(e) => {
                tracing::error!(file = %outcome.report.filename, error = %format_args!("{e:#}"), attempts, "backup failed")
            }
        }
        self.record_metrics(&outcome, &lanes);
        self.alert(&outcome).await;
        if outcome.is_success() {
            for failed in per_target.iter().filter(|t| t.status != BackupStatus::Success) {
                self.alert_target_failed(&outcome, failed).await;
            }
        }
        if outcome.is_success()
            && let Some(policy) = &self.config.retention
        {
            for slot in self.targets.iter().filter(|s| reached.contains(&s.name)) {
                let report = self.apply_retention(slot, policy).await;
                outcome.prunes.push((slot.name.clone(), report));
            }
            outcome.prune = outcome.prunes.first().map(|(_, r)| r.clone());
        }
        outcome
    }

    /// Records the run in the backup metrics ([`resee_ops_core::telemetry`]): the run as a whole (outcome,
    /// attempts, wall time), and each target's outcome, time, size and last success under its name.
    fn record_metrics(&self, outcome: &BackupOutcome, lanes: &[Lane]) {
        use resee_ops_core::telemetry::{
            BACKUP_ATTEMPTS, BACKUP_DURATION, BACKUP_LAST_SUCCESS, BACKUP_RUNS, BACKUP_SIZE, BACKUP_TARGET_DURATION,
            BACKUP_TARGET_RUNS,
        };
        let r = &outcome.report;
        let status = r.status.as_str();
        metrics::counter!(BACKUP_RUNS, "outcome" => status).increment(1);
        metrics::counter!(BACKUP_ATTEMPTS).increment(u64::from(r.attempts));
        metrics::histogram!(BACKUP_DURATION, "outcome" => status).record(r.duration);
        let finished = r.finished_at.unwrap_or_else(|| self.clock.now()).timestamp_millis() as f64 / 1000.0;
        for (i, slot) in self.targets.iter().enumerate() {
            // No lane when the attempt ended before it had an artifact name: the target fared as the run.
            let lane = lanes.get(i);
            let target_status = lane.map_or(r.status, |l| l.report.status);
            let target_outcome = target_status.as_str();
            let target = slot.name.clone();
            metrics::counter!(BACKUP_TARGET_RUNS, "target" => target.clone(), "outcome" => target_outcome).increment(1);
            if let Some(spent) = lane.and_then(|l| l.spent) {
                metrics::histogram!(BACKUP_TARGET_DURATION, "target" => target.clone(), "outcome" => target_outcome)
                    .record(spent);
            }
            if target_status == BackupStatus::Success {
                let size = lane.and_then(|l| l.size).unwrap_or(r.size_bytes);
                metrics::gauge!(BACKUP_SIZE, "target" => target.clone()).set(size as f64);
                metrics::gauge!(BACKUP_LAST_SUCCESS, "target" => target).set(finished);
            }
        }
    }

    /// Applies the configured retention to this backup's artifacts on the target (`dry_run`: only plans).
    /// [`run`](Self::run) does this after each successful backup; this is for a manual run or a `--dry-run`.
    /// Only the first target; see [`prune_all`](Self::prune_all) for every target.
    pub async fn prune(&self, dry_run: bool) -> Result<PruneReport> {
        let policy =
            self.config.retention.as_ref().ok_or_else(|| error::invalid_config("no retention policy configured"))?;
        prune::prune(self.target().as_ref(), policy, &self.name_prefix(), self.clock.now(), dry_run).await
    }

    /// [`prune`](Self::prune) on every target, by target name.
    pub async fn prune_all(&self, dry_run: bool) -> Vec<(String, Result<PruneReport>)> {
        let mut out = Vec::new();
        for slot in &self.targets {
            let result = match &self.config.retention {
                Some(policy) => {
                    prune::prune(slot.target.as_ref(), policy, &self.name_prefix(), self.clock.now(), dry_run).await
                }
                None => Err(error::invalid_config("no retention policy configured")),
            };
            out.push((slot.name.clone(), result));
        }
        out
    }

    /// Retention after a successful backup: failures are warnings in the report, never a failed backup.
    async fn apply_retention(&self, slot: &TargetSlot, policy: &RetentionPolicy) -> PruneReport {
        match prune::prune(slot.target.as_ref(), policy, &self.name_prefix(), self.clock.now(), false).await {
            Ok(report) => {
                let (kept, removed) = (report.plan.kept().count(), report.plan.removed().count());
                tracing::info!(target = %slot.name, kept, removed, warnings = report.warnings.len(), "retention applied");
                report
            }
            Err(e) => {
                tracing::warn!(error = %e, "retention could not run");
                PruneReport { warnings: vec![format!("retention could not run: {e}")], ..PruneReport::default() }
            }
        }
    }

    /// Verifies an existing artifact (see [`verify_artifact`](crate::verify_artifact)); a failure sends the
    /// integrity alert.
    pub async fn verify(&self, name: &ArtifactName) -> Result<Verification> {
        let result = verify::verify_artifact(self.target().as_ref(), name).await;
        if let Err(e) = &result
            && e.is_integrity()
        {
            let report =
                BackupReport::new(BackupStatus::IntegrityFailed, name.to_string()).with_error(format!("{e:#}"));
            let outcome = BackupOutcome::new(report, None, None);
            self.alert(&outcome).await;
        }
        result
    }

    fn alert_base(&self, name: &str, severity: Severity, title: String) -> Alert {
        Alert::new(name, severity, title)
            .with_source(ALERT_SOURCE)
            .with_label("database", self.name.as_str())
            .with_label("environment", self.config.environment.as_str())
            .with_timestamp(self.clock.now())
    }

    /// The alert for an outcome (sent by [`run`](Self::run) when a notifier is configured). Titles are
    /// plain text: the level's emoji belongs to the renderer (the Slack notifier adds ✅/🔴 from the
    /// severity), never to the title.
    pub fn alert_for(&self, outcome: &BackupOutcome) -> Alert {
        let r = &outcome.report;
        let (db, env) = (self.name.as_str(), self.config.environment.as_str());
        match r.status {
            BackupStatus::Success => self
                .alert_base(alert_names::SUCCEEDED, Severity::Success, format!("Backup of {db} ({env}) succeeded"))
                .with_text(format!("{} written and verified.", r.filename))
                .with_field("File", r.filename.clone())
                .with_field("Size", format!("{:.2} MB", r.size_mb))
                .with_field("Duration", format!("{:.1} s", r.duration.as_secs_f64()))
                .with_field("SHA-256", r.sha256.clone().unwrap_or_default()),
            BackupStatus::IntegrityFailed => self
                .alert_base(
                    alert_names::INTEGRITY_FAILED,
                    Severity::Error,
                    format!("Backup of {db} ({env}) failed verification"),
                )
                .with_text(r.error.clone().unwrap_or_default())
                .with_field("File", r.filename.clone())
                .with_field("Attempts", r.attempts.to_string()),
            BackupStatus::Skipped => self
                .alert_base(alert_names::SKIPPED, Severity::Info, format!("Backup of {db} ({env}) skipped"))
                .with_text(r.error.clone().unwrap_or_default()),
            _ => self
                .alert_base(alert_names::FAILED, Severity::Error, format!("Backup of {db} ({env}) failed"))
                .with_text(r.error.clone().unwrap_or_default())
                .with_field("File", r.filename.clone())
                .with_field("Attempts", r.attempts.to_string())
                .with_field("Duration", format!("{:.1} s", r.duration.as_secs_f64())),
        }
    }

    /// A warning: an optional target failed while the backup succeeded on the required ones.
    async fn alert_target_failed(&self, outcome: &BackupOutcome, failed: &TargetReport) {
        let (db, env) = (self.name.as_str(), self.config.environment.as_str());
        let alert = self
            .alert_base(
                alert_names::TARGET_FAILED,
                Severity::Warning,
                format!("Backup of {db} ({env}) did not reach target {}", failed.target),
            )
            .with_label("target", failed.target.clone())
            .with_text(failed.error.clone().unwrap_or_default())
            .with_field("File", outcome.report.filename.clone());
        if let Some(n) = &self.notifier {
            let delivery = n.notify(&alert).await;
            if !delivery.is_ok() {
                tracing::warn!(outcome = %delivery, "backup target alert was not delivered");
            }
        }
    }

    async fn alert(&self, outcome: &BackupOutcome) {
        if let Some(n) = &self.notifier {
            let delivery = n.notify(&self.alert_for(outcome)).await;
            if !delivery.is_ok() {
                tracing::warn!(outcome = %delivery, "backup alert was not delivered");
            }
        }
    }

    fn threads(&self) -> usize {
        self.config.threads.unwrap_or_else(default_threads)
    }

    async fn pg_dump(&self) -> Result<&PgDump> {
        self.pg_dump.get_or_try_init(|| pgdump::locate(self.config.pg_dump.as_deref())).await
    }

    /// One attempt. Returns the artifact name it used (once known), the result, and each target's outcome.
    async fn attempt(
        &self,
        attempt: u32,
        lock: &tokio::sync::Mutex<Option<lock::RunLock>>,
    ) -> (Option<ArtifactName>, Result<(u64, Manifest)>, Vec<Lane>) {
        let started = Instant::now();
        let started_at = self.clock.now();
        let name = match self.artifact_name(started_at) {
            Ok(n) => n,
            Err(e) => return (None, Err(e), Vec::new()),
        };
        tracing::info!(attempt, file = %name, "backup attempt");
        // `Duration::MAX` (or any limit past the end of the clock) is no limit: a far future, never a panic.
        let deadline = started.saturating_add(self.config.timeout);
        // What this attempt has published, by target index, so that a failure removes exactly that and nothing
        // else (an artifact of the same name written by another run stays untouched).
        let shared = AttemptShared {
            published: std::sync::Mutex::new(Vec::new()),
            lanes: std::sync::Mutex::new(
                self.targets
                    .iter()
                    .map(|t| Lane {
                        report: TargetReport::new(t.name.clone(), t.required, BackupStatus::Failed),
                        spent: None,
                        size: None,
                    })
                    .collect(),
            ),
            lock,
        };
        let run = self.attempt_inner(&name, started, started_at, deadline, &shared);
        // The phases stop themselves at the deadline (killing and reaping pg_dump); this outer limit, a little
        // later, is only the backstop.
        let result = match tokio::time::timeout_at(deadline.saturating_add(Duration::from_secs(10)), run).await {
            Ok(r) => r,
            Err(_) => Err(BackupError::new(
                ErrorKind::Timeout,
                format!("the backup took longer than {:?}; pg_dump was killed", self.config.timeout),
            )),
        };
        let AttemptShared { published, lanes, .. } = shared;
        let mut lanes: Vec<Lane> = lanes.into_inner().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = &result {
            // The manifest first: it marks completion.
            let published = published.into_inner().unwrap_or_else(|p| p.into_inner());
            for (i, n) in published.iter().rev() {
                if let Err(e) = self.targets[*i].target.delete(n).await {
                    tracing::error!(file = %n, error = %format_args!("{e:#}"), "cannot remove a failed backup");
                }
            }
            for lane in lanes
                .iter_mut()
                .map(|l| &mut l.report)
                .filter(|l| l.status == BackupStatus::Success || l.error.is_none())
            {
                lane.status = if e.is_integrity() { BackupStatus::IntegrityFailed } else { BackupStatus::Failed };
                lane.error = Some(format!("{e:#}"));
            }
        }
        (Some(name), result, lanes)
    }

    async fn attempt_inner(
        &self,
        name: &ArtifactName,
        started: Instant,
        started_at: DateTime<Utc>,
        deadline: Instant,
        shared: &AttemptShared<'_>,
    ) -> Result<(u64, Manifest)> {
        let AttemptShared { published, lanes, lock } = shared;
        // Time each target spends on its own copy (the stream is written to every target at once).
        let spend = |i: usize, d: Duration| {
            let lane = &mut lanes.lock().unwrap_or_else(|p| p.into_inner())[i];
            lane.spent = Some(lane.spent.unwrap_or_default() + d);
        };
        let record =
            |i: usize, n: &ArtifactName| published.lock().unwrap_or_else(|p| p.into_inner()).push((i, n.clone()));
        // An optional target's failure is recorded and the run goes on without it; a required one's ends it.
        let fail = |i: usize, e: BackupError| -> Result<()> {
            let slot = &self.targets[i];
            if slot.required {
                return Err(e);
            }
            tracing::warn!(target = %slot.name, error = %format_args!("{e:#}"), "optional backup target failed");
            let lane = &mut lanes.lock().unwrap_or_else(|p| p.into_inner())[i].report;
            lane.status = if e.is_integrity() { BackupStatus::IntegrityFailed } else { BackupStatus::Failed };
            lane.error = Some(format!("{e:#}"));
            Ok(())
        };
        let (pg_dump, server) = match &self.source {
            DumpSource::PgDump => {
                let pg_dump = self.pg_dump().await?;
                let server = pgdump::preflight(&self.config.connection, self.config.connect_timeout).await?;
                pgdump::check_versions(pg_dump, server)?;
                (pg_dump, server)
            }
            #[cfg(test)]
            DumpSource::Canned { tool, .. } => (tool, tool.version),
        };
        if self.config.single_run_lock {
            let mut held = lock.lock().await;
            if held.is_none() {
                match self.take_lock().await? {
                    Some(taken) => *held = Some(taken),
                    None => {
                        return Err(BackupError::new(
                            ErrorKind::AlreadyExists,
                            "another run of this backup (another replica or process) holds the single-run lock",
                        )
                        .with_code(codes::SKIPPED)
                        .with_temporary(false));
                    }
                }
            }
        }
        let required = self.targets.iter().map(|t| t.required).collect();
        let mut sink = FanOutSink { writers: Vec::new(), failed: Vec::new(), required };
        for (i, slot) in self.targets.iter().enumerate() {
            let creating = Instant::now();
            let created = slot.target.create(name).await;
            spend(i, creating.elapsed());
            match created {
                Ok(w) => sink.writers.push((i, w)),
                Err(e) => fail(i, e)?,
            }
        }
        let streaming = Instant::now();
        let stats = self.dump_into(pg_dump, &mut sink, deadline).await;
        let FanOutSink { writers, failed, .. } = sink;
        for (i, _) in &writers {
            spend(*i, streaming.elapsed());
        }
        for (i, e, at) in failed {
            spend(i, at.duration_since(streaming));
            if let Err(e) = fail(i, e) {
                abort_all(writers).await;
                return Err(e);
            }
        }
        let stats = match stats {
            Ok(s) => s,
            Err(e) => {
                abort_all(writers).await;
                return Err(e);
            }
        };
        // Staged: durable under a temporary name on each target. Each is read back from its target and
        // verified there, and only then published, so an unverified artifact never carries the final name.
        // Dropping a staged artifact on any error below discards it.
        let mut staged: Vec<(usize, Box<dyn StagedArtifact>)> = Vec::new();
        let mut verification: Option<Verification> = None;
        for (i, writer) in writers {
            let verifying = Instant::now();
            let verified = self.stage_and_verify(writer, name, &stats, deadline).await;
            spend(i, verifying.elapsed());
            match verified {
                Ok((s, v)) => {
                    verification.get_or_insert(v);
                    staged.push((i, s));
                }
                Err(e) => fail(i, e)?,
            }
        }
        let mut size = None;
        let mut reached = Vec::new();
        for (i, staged) in staged {
            let publishing = Instant::now();
            let published = staged.publish().await;
            spend(i, publishing.elapsed());
            match published {
                Ok(meta) => {
                    record(i, name);
                    size.get_or_insert(meta.size);
                    lanes.lock().unwrap_or_else(|p| p.into_inner())[i].size = Some(meta.size);
                    reached.push(i);
                }
                Err(e) => fail(i, e)?,
            }
        }
        let Some(v) = verification.filter(|_| !reached.is_empty()) else {
            return Err(BackupError::new(ErrorKind::Unexpected, "no backup target could be written"));
        };
        let finished_at = self.clock.now();
        let manifest = Manifest {
            format: 1,
            artifact: name.to_string(),
            database: self.name.to_string(),
            environment: self.config.environment.to_string(),
            sha256: stats.sha256.clone(),
            compressed_size: stats.compressed_size,
            raw_size: stats.raw_size,
            compression: self.config.profile.codec().as_str().into(),
            level: self.config.effective_level(),
            pg_dump_version: v.pg_dump_version.clone().unwrap_or_else(|| pg_dump.version.to_string()),
            server_version: v.server_version.clone().unwrap_or_else(|| server.to_string()),
            started_at,
            finished_at,
            duration: started.elapsed(),
            tables: Some(stats.tables.clone()),
        };
        let json = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| BackupError::new(ErrorKind::Io, format!("cannot encode the manifest: {e}")))?;
        let manifest_name = Manifest::name_for(name)?;
        for i in reached {
            let target = &self.targets[i].target;
            let writing = Instant::now();
            let written = async {
                let mut w = target.create(&manifest_name).await?;
                if let Err(e) = w.write(&json).await {
                    let _ = w.abort().await;
                    return Err(e);
                }
                w.commit().await
            }
            .await;
            spend(i, writing.elapsed());
            match written {
                Ok(_) => {
                    record(i, &manifest_name);
                    lanes.lock().unwrap_or_else(|p| p.into_inner())[i].report.status = BackupStatus::Success;
                }
                Err(e) => {
                    // Without its manifest the artifact is not a backup: remove it from this target.
                    if let Err(d) = target.delete(name).await {
                        tracing::error!(file = %name, error = %format_args!("{d:#}"), "cannot remove a backup without its manifest");
                    }
                    published.lock().unwrap_or_else(|p| p.into_inner()).retain(|(j, _)| *j != i);
                    fail(i, e)?;
                }
            }
        }
        Ok((size.unwrap_or(stats.compressed_size), manifest))
    }

    /// Stages what `writer` wrote, reads it back from its target and verifies it against what was written.
    async fn stage_and_verify(
        &self,
        writer: Box<dyn ArtifactWriter>,
        name: &ArtifactName,
        stats: &StreamStats,
        deadline: Instant,
    ) -> Result<(Box<dyn StagedArtifact>, Verification)> {
        let staged = writer.stage().await?;
        if staged.size() != stats.compressed_size {
            return Err(error::integrity(format!(
                "{name}: the target stored {} bytes, {} were written",
                staged.size(),
                stats.compressed_size
            )));
        }
        let verification = tokio::time::timeout_at(deadline, async {
            let reader = staged.open().await?;
            match self.config.profile.codec() {
                Codec::Gzip => verify::verify_members(reader, name, &stats.member_sizes, self.threads()).await,
                Codec::Zstd => verify::verify_stream(reader, name, Codec::Zstd).await,
            }
        })
        .await
        .map_err(|_| BackupError::new(ErrorKind::Timeout, "verification did not finish in time"))??;
        verify::check_expected(&verification, &stats.sha256, stats.compressed_size, stats.raw_size)?;
        Ok((staged, verification))
    }

    /// Streams `pg_dump` into the writer. Succeeds only if the stream was fully written, `pg_dump` exited 0
    /// and the dump ends with its completion trailer.
    async fn dump_into(&self, pg_dump: &PgDump, sink: &mut FanOutSink, deadline: Instant) -> Result<StreamStats> {
        #[cfg(test)]
        if let DumpSource::Canned { dump, .. } = &self.source {
            let stats = self.compress_into(std::io::Cursor::new(dump.to_vec()), sink, deadline).await?;
            if !verify::trailer_present(&stats.tail) {
                return Err(error::integrity("the canned dump does not end with the completion trailer"));
            }
            return Ok(stats);
        }
        let conn = &self.config.connection;
        let (running, stdout) =
            pgdump::spawn(pg_dump, conn, self.config.connect_timeout, self.config.lock_wait_timeout)?;
        let stats = self.compress_into(stdout, sink, deadline).await;
        let stats = match stats {
            Ok(s) => s,
            Err(e) => {
                let stderr = running.kill(conn).await;
                if !stderr.is_empty() {
                    tracing::warn!(stderr = %stderr, "pg_dump stderr");
                }
                return Err(e);
            }
        };
        running.finish(conn).await?;
        if !verify::trailer_present(&stats.tail) {
            return Err(error::integrity(
                "pg_dump exited 0 but its output does not end with the completion trailer: the dump is incomplete",
            ));
        }
        Ok(stats)
    }

    /// Compresses `input` into the sink until its end, or fails at `deadline`.
    async fn compress_into<R>(&self, input: R, sink: &mut FanOutSink, deadline: Instant) -> Result<StreamStats>
    where
        R: tokio::io::AsyncRead + Unpin + Send + 'static,
    {
        let threads = self.threads();
        let level = self.config.effective_level();
        let compress = async {
            match self.config.profile.codec() {
                Codec::Gzip => compress::compress_stream(input, sink, level, threads).await,
                Codec::Zstd => {
                    let level = i32::try_from(level).unwrap_or(3);
                    zstd_stream::compress_stream(input, sink, level, u32::try_from(threads).unwrap_or(2)).await
                }
            }
        };
        tokio::select! {
            stats = compress => stats,
            () = tokio::time::sleep_until(deadline) => Err(BackupError::new(
                ErrorKind::Timeout,
                format!("the backup took longer than {:?}; pg_dump was killed", self.config.timeout),
            )),
        }
    }
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 4)
}

/// How one target fared in an attempt: its report, the time it spent on its copy (creating, writing the
/// stream, staging, reading back and verifying, publishing, the manifest; `None`: never reached), and the
/// size it stored.
#[derive(Debug, Clone)]
struct Lane {
    report: TargetReport,
    spent: Option<Duration>,
    size: Option<u64>,
}

/// What an attempt shares with its caller: what it published (by target index), each target's outcome, and
/// the run's single-run lock (taken by the first attempt that reaches the server).
struct AttemptShared<'a> {
    published: std::sync::Mutex<Vec<(usize, ArtifactName)>>,
    lanes: std::sync::Mutex<Vec<Lane>>,
    lock: &'a tokio::sync::Mutex<Option<lock::RunLock>>,
}

/// Writes the compressed stream to every target's writer. A writer that fails is taken out (dropped, which
/// aborts it) and its error kept for the caller to judge (an optional target's failure does not stop the
/// others); the stream fails only when no writer is left.
struct FanOutSink {
    writers: Vec<(usize, Box<dyn ArtifactWriter>)>,
    failed: Vec<(usize, BackupError, Instant)>,
    /// By target index: a required target's failure ends the stream at once.
    required: Vec<bool>,
}

impl Sink for FanOutSink {
    async fn write(&mut self, buf: &[u8]) -> Result<()> {
        let mut i = 0;
        while i < self.writers.len() {
            match self.writers[i].1.write(buf).await {
                Ok(()) => i += 1,
                Err(e) => {
                    let (index, writer) = self.writers.remove(i);
                    if let Err(abort) = writer.abort().await {
                        tracing::warn!(error = %abort, "cannot abort the artifact writer");
                    }
                    // Kept with the time it failed, a required target's too (its time in the metrics).
                    self.failed.push((index, e.clone(), Instant::now()));
                    if self.required.get(index).copied().unwrap_or(true) {
                        return Err(e);
                    }
                }
            }
        }
        if self.writers.is_empty() {
            return Err(self
                .failed
                .last()
                .cloned()
                .map(|(_, e, _)| e)
                .unwrap_or_else(|| BackupError::new(ErrorKind::Io, "no writer left")));
        }
        Ok(())
    }
}

async fn abort_all(writers: Vec<(usize, Box<dyn ArtifactWriter>)>) {
    for (_, writer) in writers {
        if let Err(abort) = writer.abort().await {
            tracing::warn!(error = %abort, "cannot abort the artifact writer");
        }
    }
}

#[cfg(test)]
mod decisions;

#[cfg(test)]
mod tests {
    use super::*;

    /// Point 7: Celery's `max_retries=3` is one attempt plus three retries, 5 minutes apart, through
    /// core's `RetryPolicy`.
    #[tokio::test(start_paused = true)]
    async fn retries_temporary_errors_three_times_five_minutes_apart() {
        let t0 = Instant::now();
        let mut at = Vec::new();
        let (r, attempts) = crate::default_retry()
            .run::<(), _, _>(|_| {
                at.push(t0.elapsed());
                async { Err(BackupError::new(ErrorKind::Unavailable, "connection refused")) }
            })
            .await;
        assert_eq!(r.unwrap_err().kind(), ErrorKind::Unavailable);
        assert_eq!(attempts, 4);
        let minutes = |m: u64| Duration::from_secs(60 * m);
        assert_eq!(at, [Duration::ZERO, minutes(5), minutes(10), minutes(15)]);
    }

    #[tokio::test(start_paused = true)]
    async fn does_not_retry_permanent_errors_and_stops_on_success() {
        let t0 = Instant::now();
        let (r, attempts) = crate::default_retry()
            .run::<(), _, _>(|_| async {
                Err(BackupError::new(ErrorKind::PermissionDenied, "password authentication failed").with_code("28P01"))
            })
            .await;
        assert_eq!(r.unwrap_err().code(), Some("28P01"), "the original error is kept");
        assert_eq!((attempts, t0.elapsed()), (1, Duration::ZERO));

        let policy = RetryPolicy::celery(4, Duration::from_secs(60));
        let (r, attempts) = policy
            .run(|n| async move { if n < 2 { Err(BackupError::new(ErrorKind::Timeout, "slow")) } else { Ok(n) } })
            .await;
        assert_eq!((r.unwrap(), attempts), (2, 2));
        assert_eq!(t0.elapsed(), Duration::from_secs(60));
    }
}
