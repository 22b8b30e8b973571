//! Restoring a backup, and the scheduled restore test.
//!
//! [`Restorer::restore`]: pick a backup ([`BackupSelector`]: the newest, a name, or the newest taken at or
//! before a time), **verify it first** (its manifest, SHA-256, full decompression, dump trailer), create the
//! target database (default: a new name derived from the backup; an existing non-empty database is refused
//! unless `force`, which drops and recreates it), then stream-decompress the backup in-process into
//! `psql -v ON_ERROR_STOP=1 --single-transaction`. The password reaches `psql` only through a 0600 passfile
//! (`PGPASSFILE`), never argv. If anything fails half-way `psql` is killed, so the transaction never commits,
//! and a database this restore created is dropped again.
//!
//! [`Restorer::restore_test`]: restores the newest backup into a scratch database, compares every table's
//! row count with the counts recorded in the manifest at dump time, and drops the scratch database.
//! [`run_restore_test`] adds the alert on failure; the reference service schedules it (weekly by default
//! when enabled).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::Stdio;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use resee_ops_core::{Alert, BackupTarget, Notifier, Severity};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::catalog::{self, BackupEntry, Catalog};
use crate::codec::{self, ChannelReader, Codec};
use crate::error::{self, codes};
use crate::pgdump::{self, PgDump};
use crate::verify::{self, Verification};
use crate::{ALERT_SOURCE, BackupError, Result, alert_names};
use resee_ops_core::{ConnectionUrl, ErrorKind};

const CHUNK: usize = 256 * 1024;

/// Which backup to restore.
///
/// Parses from `latest`, an RFC 3339 time (`2026-12-01T20:30:00Z`), `YYYY-MM-DD HH:MM[:SS]` or `YYYY-MM-DD`
/// (UTC; the newest backup taken at or before it), or else an artifact name.
///
/// ```
/// use resee_ops_backup::BackupSelector;
/// assert_eq!("latest".parse::<BackupSelector>().unwrap(), BackupSelector::Latest);
/// assert!(matches!("2026-12-01 20:30".parse().unwrap(), BackupSelector::At(_)));
/// assert!(matches!("db_prod_20261201_203000.sql.gz".parse().unwrap(), BackupSelector::Name(_)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackupSelector {
    /// The newest verified backup.
    Latest,
    /// The backup of this artifact name.
    Name(String),
    /// The newest verified backup taken at or before this time.
    At(DateTime<Utc>),
}

impl FromStr for BackupSelector {
    type Err = BackupError;

    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        if s.is_empty() {
            return Err(error::invalid_config("empty backup selector"));
        }
        if s == "latest" {
            return Ok(Self::Latest);
        }
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Ok(Self::At(t.with_timezone(&Utc)));
        }
        for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"] {
            if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
                return Ok(Self::At(t.and_utc()));
            }
        }
        if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            let end = d.and_hms_opt(23, 59, 59).unwrap_or_default();
            return Ok(Self::At(end.and_utc()));
        }
        Ok(Self::Name(s.to_owned()))
    }
}

/// How a restore shows progress.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProgressMode {
    /// No progress output (the default for the API).
    #[default]
    Off,
    /// A progress bar with bytes and ETA when stderr is a terminal, else plain lines.
    Auto,
    /// A progress bar on stderr.
    Bar,
    /// A plain line on stderr every few seconds.
    Lines,
}

/// Options of one restore.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RestoreOptions {
    /// The database to restore into. Default: derived from the backup ([`default_database_name`]).
    pub database: Option<String>,
    /// Drop and recreate the database if it exists and is not empty (otherwise that is refused).
    pub force: bool,
}

impl RestoreOptions {
    /// Restore into `database`.
    pub fn with_database(mut self, database: impl Into<String>) -> Self {
        self.database = Some(database.into());
        self
    }

    /// Drop and recreate a non-empty existing database.
    pub fn with_force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }
}

/// What a restore did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RestoreReport {
    /// The backup restored.
    pub backup: String,
    /// The database restored into.
    pub database: String,
    /// Whether the database was created (or recreated) by this restore.
    pub created: bool,
    /// Compressed bytes read.
    pub compressed_bytes: u64,
    /// SQL bytes fed to `psql`.
    pub raw_bytes: u64,
    /// Time spent verifying before the restore.
    #[serde(with = "resee_ops_core::serde_duration")]
    pub verify_duration: Duration,
    /// Time spent restoring (after verification).
    #[serde(with = "resee_ops_core::serde_duration")]
    pub duration: Duration,
}

/// The default database name for restoring `artifact`: its name without the extension, plus `_restored`
/// (`resee_production_20261201_203000_restored`). PostgreSQL names are at most 63 bytes: longer names are an
/// error asking for an explicit one.
///
/// ```
/// use resee_ops_backup::default_database_name;
/// assert_eq!(default_database_name("db_prod_20261201_203000.sql.gz").unwrap(), "db_prod_20261201_203000_restored");
/// ```
pub fn default_database_name(artifact: &str) -> Result<String> {
    let stem = catalog::EXTENSIONS.iter().find_map(|ext| artifact.strip_suffix(ext)).unwrap_or(artifact);
    let name = format!("{stem}_restored");
    if name.len() > 63 {
        return Err(error::invalid_config(format!(
            "{name:?} is longer than PostgreSQL's 63 bytes: name the database to restore into"
        )));
    }
    Ok(name)
}

fn check_database_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 63 || name.chars().any(char::is_control) {
        return Err(error::invalid_config(format!(
            "{name:?} is not a usable database name (1 to 63 bytes, no control characters)"
        )));
    }
    Ok(())
}

/// Restores backups from a target into a PostgreSQL server.
///
/// ```no_run
/// # async fn demo() -> Result<(), resee_ops_backup::BackupError> {
/// use resee_ops_backup::{BackupSelector, ConnectionUrl, LocalDirTarget, ProgressMode, RestoreOptions, Restorer};
///
/// let server = ConnectionUrl::parse("postgres://postgres@127.0.0.1:5432/postgres")?;
/// let restorer = Restorer::new(LocalDirTarget::new("./backups")?, server).with_progress(ProgressMode::Auto);
/// let report = restorer.restore(&BackupSelector::Latest, &RestoreOptions::default()).await?;
/// println!("restored {} into {} in {:?}", report.backup, report.database, report.duration);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Restorer {
    target: Arc<dyn BackupTarget>,
    server: ConnectionUrl,
    prefix: String,
    psql: Option<PathBuf>,
    connect_timeout: Duration,
    progress: ProgressMode,
}

impl Restorer {
    /// Restores from `target` into the server of `server`; `server`'s database is the one connected to for
    /// creating and dropping databases (usually `postgres`).
    pub fn new(target: impl BackupTarget, server: ConnectionUrl) -> Self {
        Self::from_shared(Arc::new(target), server)
    }

    /// As [`new`](Self::new), sharing a target.
    pub fn from_shared(target: Arc<dyn BackupTarget>, server: ConnectionUrl) -> Self {
        Self {
            target,
            server,
            prefix: String::new(),
            psql: None,
            connect_timeout: Duration::from_secs(30),
            progress: ProgressMode::Off,
        }
    }

    /// Only backups whose names start with `prefix` (`"{database}_{environment}_"`); default all.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The `psql` to run (default: the newest on `PATH` or under `/usr/lib/postgresql/*/bin`).
    pub fn with_psql(mut self, path: impl Into<PathBuf>) -> Self {
        self.psql = Some(path.into());
        self
    }

    /// Connection timeout (default 30 s; `Duration::MAX`: no limit). `psql`'s administration commands
    /// are bounded by four times it.
    pub fn with_connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// How to show progress (default: none).
    pub fn with_progress(mut self, mode: ProgressMode) -> Self {
        self.progress = mode;
        self
    }

    /// The backups on the target, newest first (what `backups list` shows).
    pub async fn list(&self) -> Result<Catalog> {
        catalog::list_backups(self.target.as_ref(), &self.prefix).await
    }

    /// The backup `selector` names. Only verified backups (with a matching manifest) are ever selected.
    pub async fn select(&self, selector: &BackupSelector) -> Result<BackupEntry> {
        let backups = self.list().await?.backups;
        let found = match selector {
            BackupSelector::Latest => backups.into_iter().find(BackupEntry::is_verified),
            BackupSelector::At(t) => backups.into_iter().find(|b| b.is_verified() && b.taken_at <= *t),
            BackupSelector::Name(name) => {
                let entry = backups.into_iter().find(|b| b.name.as_str() == name);
                if let Some(e) = &entry
                    && !e.is_verified()
                {
                    return Err(error::integrity(format!(
                        "{name} has no matching manifest: it is incomplete or unverified and is not restored"
                    )));
                }
                entry
            }
        };
        found.ok_or_else(|| BackupError::new(ErrorKind::NotFound, format!("no verified backup matches {selector:?}")))
    }

    async fn psql(&self) -> Result<PgDump> {
        pgdump::locate_tool("psql", self.psql.as_deref()).await
    }

    /// Restores the backup `selector` names: verified first, streamed into `psql --single-transaction`, all or
    /// nothing (see `docs/restore.md`).
    pub async fn restore(&self, selector: &BackupSelector, options: &RestoreOptions) -> Result<RestoreReport> {
        let entry = self.select(selector).await?;
        let database = match &options.database {
            Some(d) => d.clone(),
            None => default_database_name(entry.name.as_str())?,
        };
        check_database_name(&database)?;
        let psql = self.psql().await?;
        let verify_started = Instant::now();
        tracing::info!(backup = %entry.name, "verifying before the restore");
        let verification = verify::verify_artifact(self.target.as_ref(), &entry.name).await?;
        if !verification.manifest_checked {
            return Err(error::integrity(format!("{}: its manifest disappeared", entry.name)));
        }
        let verify_duration = verify_started.elapsed();
        let db = Db { psql: &psql, server: &self.server, timeout: self.connect_timeout };
        let created = db.prepare(&database, options.force).await?;
        let started = Instant::now();
        tracing::info!(backup = %entry.name, database = %database, "restoring");
        match self.stream_into_psql(&psql, &entry, &verification, &database).await {
            Ok((compressed_bytes, raw_bytes)) => {
                let duration = started.elapsed();
                tracing::info!(database = %database, ?duration, "restore finished");
                Ok(RestoreReport {
                    backup: entry.name.to_string(),
                    database,
                    created,
                    compressed_bytes,
                    raw_bytes,
                    verify_duration,
                    duration,
                })
            }
            Err(e) => {
                if created && let Err(drop) = db.drop_database(&database).await {
                    tracing::warn!(database = %database, error = %drop, "cannot drop the database of a failed restore");
                }
                Err(e)
            }
        }
    }

    /// Decompresses the artifact in-process into `psql`. Returns (compressed, raw) bytes.
    async fn stream_into_psql(
        &self,
        psql: &PgDump,
        entry: &BackupEntry,
        verification: &Verification,
        database: &str,
    ) -> Result<(u64, u64)> {
        let codec = codec::Codec::of(entry.name.as_str()).unwrap_or(Codec::Gzip);
        let conn = self.server.clone().with_database(database);
        let (mut cmd, _passfile) = pgdump::libpq_command(&psql.path, &conn, self.connect_timeout, "resee-ops-restore")?;
        cmd.args(["--no-psqlrc", "--quiet", "--no-password", "--set", "ON_ERROR_STOP=1", "--single-transaction"])
            .arg("--file=-")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| error::cannot_start(&psql.path, e))?;
        let stderr = pgdump::capture_stderr(child.stderr.take().expect("stderr is piped"));
        let mut stdin = child.stdin.take().expect("stdin is piped");

        let mut progress = Progress::new(self.progress, verification.compressed_size);
        let mut reader = self.target.open(&entry.name).await?;
        let (comp_tx, comp_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
        let (raw_tx, mut raw_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
        let decode = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
            let mut decoder = codec::decoder(codec, ChannelReader::new(comp_rx))?;
            let mut total = 0u64;
            loop {
                let mut buf = vec![0u8; CHUNK];
                let n = match decoder.read(&mut buf) {
                    Ok(0) => return Ok(total),
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                buf.truncate(n);
                total += n as u64;
                if raw_tx.blocking_send(buf).is_err() {
                    return Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "psql stopped reading"));
                }
            }
        });
        let name = &entry.name;
        let counted = &mut progress;
        let feed = async move {
            let mut compressed = 0u64;
            loop {
                let mut chunk = vec![0u8; CHUNK];
                let n = reader.read(&mut chunk).await.map_err(|e| BackupError::io(format!("cannot read {name}"), e))?;
                if n == 0 {
                    return Ok(compressed);
                }
                chunk.truncate(n);
                compressed += n as u64;
                counted.inc(n as u64);
                if comp_tx.send(chunk).await.is_err() {
                    // The decoder stopped: its result says why.
                    return Ok(compressed);
                }
            }
        };
        // Owns stdin: dropping it at the end closes psql's input (`shutdown` alone does not close a pipe).
        let write = async move {
            while let Some(chunk) = raw_rx.recv().await {
                stdin.write_all(&chunk).await?;
            }
            stdin.flush().await
        };
        let (fed, written) = tokio::join!(feed, write);
        let decoded = decode.await.map_err(|e| BackupError::new(ErrorKind::Io, format!("restore task failed: {e}")))?;
        let pipeline: Result<(u64, u64)> = match (fed, decoded, written) {
            (Ok(c), Ok(r), Ok(())) if c == verification.compressed_size && r == verification.raw_size => Ok((c, r)),
            (Ok(c), Ok(r), Ok(())) => Err(error::integrity(format!(
                "{name} changed since it was verified ({c} / {r} bytes instead of {} / {})",
                verification.compressed_size, verification.raw_size
            ))),
            (Err(e), _, _) => Err(e),
            // psql closing its input early (it stopped on an error) surfaces as a broken pipe on either side:
            // its exit status and message say more (checked below).
            (_, Err(e), _) | (_, _, Err(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                Err(error::restore_failed("psql stopped reading its input early"))
            }
            (_, Err(e), _) => Err(error::integrity(format!("{name} failed to decompress: {e}"))),
            (_, _, Err(e)) => Err(BackupError::io("cannot write to psql", e)),
        };
        let psql_stopped = matches!(&pipeline, Err(e) if e.code() == Some(codes::RESTORE_FAILED));
        if let Err(e) = pipeline.as_ref()
            && !psql_stopped
        {
            let e = e.clone();
            // Never let psql commit a partial restore: kill it before it sees the end of its input.
            let _ = child.start_kill();
            let _ = child.wait().await;
            progress.finish();
            return Err(e);
        }
        let status = child.wait().await.map_err(|e| BackupError::io("cannot wait for psql", e))?;
        progress.finish();
        let message = conn.scrub(stderr.await.unwrap_or_default());
        if !status.success() {
            let how = format!("psql exited with {status} restoring into {database}");
            let err = pgdump::classify(&how, &message);
            let message = err.message().replace("pg_dump", "psql");
            return Err(psql_error(err, message));
        }
        pipeline
    }

    /// The scheduled restore test: restores the newest verified backup into a scratch database
    /// (`resee_restore_test_{random}`), compares every table's row count with the manifest's, and drops the
    /// scratch database whatever happened. A failure is an error (see [`run_restore_test`] for the alert).
    pub async fn restore_test(&self) -> Result<RestoreTestReport> {
        let started = Instant::now();
        let entry = self.select(&BackupSelector::Latest).await?;
        let expected = entry.manifest.as_ref().and_then(|m| m.tables.clone()).ok_or_else(|| {
            error::integrity(format!(
                "{}: its manifest records no row counts (written by an older version); nothing to check against",
                entry.name
            ))
        })?;
        let scratch = format!("resee_restore_test_{:016x}", fastrand::u64(..));
        let options = RestoreOptions::default().with_database(scratch.clone());
        let restored = self.restore(&BackupSelector::Name(entry.name.to_string()), &options).await;
        let psql = self.psql().await?;
        let db = Db { psql: &psql, server: &self.server, timeout: self.connect_timeout };
        let checked = match &restored {
            Ok(_) => db.check_row_counts(&scratch, &expected).await,
            Err(_) => Ok(()),
        };
        let dropped = db.drop_database(&scratch).await;
        let report = restored?;
        checked?;
        if let Err(e) = dropped {
            tracing::warn!(database = %scratch, error = %e, "cannot drop the restore test's scratch database");
        }
        Ok(RestoreTestReport {
            backup: report.backup,
            database: scratch,
            tables: expected.len(),
            rows: expected.values().sum(),
            duration: started.elapsed(),
        })
    }
}

/// What a successful restore test checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RestoreTestReport {
    /// The backup restored.
    pub backup: String,
    /// The scratch database (dropped again).
    pub database: String,
    /// Tables whose row counts matched.
    pub tables: usize,
    /// Rows in those tables.
    pub rows: u64,
    /// Time taken.
    #[serde(with = "resee_ops_core::serde_duration")]
    pub duration: Duration,
}

/// Runs [`Restorer::restore_test`] and alerts through `notifier` when it fails (alert
/// [`alert_names::RESTORE_TEST_FAILED`], severity error).
pub async fn run_restore_test(restorer: &Restorer, notifier: Option<&dyn Notifier>) -> Result<RestoreTestReport> {
    let result = restorer.restore_test().await;
    match &result {
        Ok(r) => tracing::info!(backup = %r.backup, tables = r.tables, rows = r.rows, "restore test passed"),
        Err(e) => {
            tracing::error!(error = %format_args!("{e:#}"), "restore test failed");
            if let Some(n) = notifier {
                let alert = Alert::new(alert_names::RESTORE_TEST_FAILED, Severity::Error, "Restore test failed")
                    .with_source(ALERT_SOURCE)
                    .with_text(format!("{e:#}"))
                    .with_field("Kind", e.kind().as_str());
                let delivery = n.notify(&alert).await;
                if !delivery.is_ok() {
                    tracing::warn!(outcome = %delivery, "restore test alert was not delivered");
                }
            }
        }
    }
    result
}

/// `psql` failed: a failure `classify` could not place (the `pg_dump` catch-all) becomes a permanent
/// [`codes::RESTORE_FAILED`]; a placed one (a too-old client) keeps its kind and code, with `message`.
fn psql_error(err: BackupError, message: String) -> BackupError {
    if err.code() == Some(codes::DUMP_FAILED) {
        return error::restore_failed(message);
    }
    let out = BackupError::new(err.kind(), message).with_temporary(err.is_temporary());
    match err.code() {
        Some(code) => out.with_code(code.to_owned()),
        None => out,
    }
}

/// Database administration through `psql` (so TLS and authentication work exactly as for `pg_dump`).
struct Db<'a> {
    psql: &'a PgDump,
    server: &'a ConnectionUrl,
    timeout: Duration,
}

impl Db<'_> {
    /// Runs `sql` (with psql variables `vars`) in `database`; returns the unaligned, tuples-only output.
    async fn run(&self, database: Option<&str>, sql: &str, vars: &[(&str, &str)]) -> Result<String> {
        let conn = match database {
            Some(d) => self.server.clone().with_database(d),
            None => self.server.clone(),
        };
        let (mut cmd, _passfile) = pgdump::libpq_command(&self.psql.path, &conn, self.timeout, "resee-ops-restore")?;
        cmd.args(["--no-psqlrc", "--quiet", "--no-align", "--tuples-only", "--no-password"]);
        cmd.args(["--set", "ON_ERROR_STOP=1"]);
        for (k, v) in vars {
            cmd.arg("--set").arg(format!("{k}={v}"));
        }
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| error::cannot_start(&self.psql.path, e))?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        stdin.write_all(sql.as_bytes()).await.map_err(|e| BackupError::io("cannot write to psql", e))?;
        drop(stdin);
        let out = tokio::time::timeout(self.timeout.saturating_mul(4), child.wait_with_output())
            .await
            .map_err(|_| BackupError::new(ErrorKind::Timeout, "psql did not answer in time"))?
            .map_err(|e| BackupError::io("cannot run psql", e))?;
        if !out.status.success() {
            let stderr = conn.scrub(String::from_utf8_lossy(&out.stderr).trim().to_owned());
            let err = pgdump::classify(&format!("psql exited with {}", out.status), &stderr);
            let message = err.message().to_owned();
            return Err(psql_error(err, message));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Makes `database` ready: created when missing; used when it exists and is empty; refused when it is not
    /// empty, unless `force` (then dropped and recreated). Returns whether it was (re)created.
    async fn prepare(&self, database: &str, force: bool) -> Result<bool> {
        let vars = [("db", database)];
        let exists = self.run(None, "SELECT 1 FROM pg_database WHERE datname = :'db';", &vars).await? == "1";
        if exists {
            let objects = self.run(Some(database), USER_OBJECTS_SQL, &[]).await?;
            let objects: u64 = objects.parse().unwrap_or(u64::MAX);
            if objects == 0 {
                return Ok(false);
            }
            if !force {
                return Err(BackupError::new(
                    ErrorKind::AlreadyExists,
                    format!(
                        "database {database:?} exists and is not empty ({objects} objects): restore into a new \
                         database, or use --force to drop and recreate it"
                    ),
                ));
            }
            tracing::warn!(database, objects, "dropping a non-empty database to restore into it (--force)");
            self.drop_database(database).await?;
        }
        self.run(None, "CREATE DATABASE :\"db\";", &vars).await?;
        Ok(true)
    }

    async fn drop_database(&self, database: &str) -> Result<()> {
        self.run(None, "DROP DATABASE IF EXISTS :\"db\" WITH (FORCE);", &[("db", database)]).await.map(drop)
    }

    /// Compares `SELECT count(*)` of every table in `expected` with its count.
    async fn check_row_counts(&self, database: &str, expected: &BTreeMap<String, u64>) -> Result<()> {
        if expected.is_empty() {
            return Ok(());
        }
        // The names are as pg_dump wrote them: valid, quoted where needed.
        let sql: String = expected.keys().map(|t| format!("SELECT count(*) FROM {t};\n")).collect();
        let out = self.run(Some(database), &sql, &[]).await?;
        let counts: Vec<&str> = out.lines().collect();
        let mut wrong = Vec::new();
        for (i, (table, want)) in expected.iter().enumerate() {
            let got = counts.get(i).and_then(|c| c.trim().parse::<u64>().ok());
            if got != Some(*want) {
                wrong.push(format!("{table}: {} rows, {want} at dump time", got.map_or("?".into(), |g| g.to_string())));
            }
        }
        if wrong.is_empty() {
            return Ok(());
        }
        let shown = wrong.iter().take(5).cloned().collect::<Vec<_>>().join("; ");
        Err(error::integrity(format!(
            "the restored database differs from the dump in {} table(s): {shown}",
            wrong.len()
        )))
    }
}

/// Counts what a restore would collide with: relations, functions and types in non-system schemas, schemas
/// other than `public`, large objects.
const USER_OBJECTS_SQL: &str = "\
SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
          WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp)') \
     + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
          WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')) \
     + (SELECT count(*) FROM pg_namespace WHERE nspname NOT IN ('public', 'pg_catalog', 'information_schema') \
          AND nspname !~ '^pg_') \
     + (SELECT count(*) FROM pg_largeobject_metadata);";

/// Progress of a restore, by compressed bytes read (the total is known from verification).
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    lines: Option<LineProgress>,
}

struct LineProgress {
    total: u64,
    done: u64,
    started: Instant,
    last: Instant,
}

impl Progress {
    fn new(mode: ProgressMode, total: u64) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let (bar, lines) = match mode {
            ProgressMode::Off => (false, false),
            ProgressMode::Auto => (terminal, !terminal),
            ProgressMode::Bar => (true, false),
            ProgressMode::Lines => (false, true),
        };
        let bar = bar.then(|| {
            let pb = indicatif::ProgressBar::new(total);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{spinner} restoring [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            ) {
                pb.set_style(style.progress_chars("=> "));
            }
            pb
        });
        let now = Instant::now();
        let lines = lines.then_some(LineProgress { total, done: 0, started: now, last: now });
        Self { bar, lines }
    }

    fn inc(&mut self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
        if let Some(l) = &mut self.lines {
            l.done += n;
            if l.last.elapsed() >= Duration::from_secs(5) {
                l.last = Instant::now();
                eprintln!("{}", l.line());
            }
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if let Some(l) = self.lines.take() {
            eprintln!("{}", l.line());
        }
    }
}

impl LineProgress {
    fn line(&self) -> String {
        let mib = |b: u64| b as f64 / 1_048_576.0;
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = self.done as f64 / secs;
        let pct = if self.total == 0 { 100.0 } else { self.done as f64 * 100.0 / self.total as f64 };
        let eta = if rate > 0.0 { (self.total.saturating_sub(self.done)) as f64 / rate } else { 0.0 };
        format!(
            "restore: {:.1} MiB of {:.1} MiB ({pct:.0} %), {:.1} MiB/s, ETA {eta:.0} s",
            mib(self.done),
            mib(self.total),
            rate / 1_048_576.0
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_parse() {
        let at = |s: &str| match s.parse::<BackupSelector>().unwrap() {
            BackupSelector::At(t) => t.to_rfc3339(),
            other => panic!("{other:?}"),
        };
        assert_eq!(at("2026-12-01T20:30:00+01:00"), "2026-12-01T19:30:00+00:00");
        assert_eq!(at("2026-12-01 20:30"), "2026-12-01T20:30:00+00:00");
        assert_eq!(at("2026-12-01"), "2026-12-01T23:59:59+00:00");
        assert!("".parse::<BackupSelector>().is_err());
    }

    #[test]
    fn default_names() {
        assert_eq!(default_database_name("a_b_20261201_000000.sql.zst").unwrap(), "a_b_20261201_000000_restored");
        assert!(default_database_name(&format!("{}_prod_20261201_000000.sql.gz", "x".repeat(40))).is_err());
        assert!(check_database_name("ok name").is_ok());
        assert!(check_database_name("bad\nname").is_err());
    }
}
