//! Configuration: connection parameters, name components, compression, retries.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use resee_ops_core::{ConnectionUrl, RetryPolicy};

use crate::error::{self, invalid_config};
use crate::{BackupError, Result};

/// A validated component of an artifact name (the database or environment part).
///
/// 1 to 100 bytes; no `/` or `\`; no `..`; not starting with `.`; no control characters.
///
/// ```
/// use resee_ops_backup::NameComponent;
/// assert!(NameComponent::new("resee_dev").is_ok());
/// assert!(NameComponent::new("../etc").is_err());
/// assert!(NameComponent::new("a/b").is_err());
/// assert!(NameComponent::new("bad\u{7}name").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct NameComponent(String);

impl NameComponent {
    /// Validates `s`.
    pub fn new(s: impl Into<String>) -> Result<Self> {
        let s = s.into();
        let bad = |why: &str| error::invalid_name(format!("invalid name component {s:?}: {why}"));
        if s.is_empty() || s.len() > 100 {
            return Err(bad("must be 1 to 100 bytes long"));
        }
        if s.contains(['/', '\\']) {
            return Err(bad("must not contain a path separator"));
        }
        if s.contains("..") {
            return Err(bad("must not contain '..'"));
        }
        if s.starts_with('.') {
            return Err(bad("must not start with '.'"));
        }
        if s.chars().any(char::is_control) {
            return Err(bad("must not contain control characters"));
        }
        Ok(Self(s))
    }

    /// The component as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for NameComponent {
    type Error = BackupError;
    fn try_from(s: String) -> Result<Self> {
        Self::new(s)
    }
}

impl fmt::Debug for NameComponent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for NameComponent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How to compress: the format and how hard.
///
/// The gzip profiles write standard gzip (`.sql.gz`, several gzip members compressed in parallel), readable
/// by `gunzip`, `gzip -t` and `zcat`; the zstd profile writes `.sql.zst` (`zstd -d`, `zstdcat`). All three
/// are verified, named and restored the same way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CompressionProfile {
    /// gzip, libdeflate level 5: within about 1 % of `gzip -6`'s size, several times faster (chosen by
    /// measurement, see `benches/scripts/backup_vs_shell.sh`). What the seed's operators restore with.
    #[default]
    Default,
    /// gzip level 1: for very large databases, when time matters more than size.
    Fast,
    /// zstd level 3, multithreaded (`.sql.zst`): about as fast as `pg_dump` alone, smaller than gzip.
    Zstd,
}

impl CompressionProfile {
    /// The compression level this profile uses (gzip 0-12, zstd 1-19).
    pub const fn level(self) -> u32 {
        match self {
            Self::Default => 5,
            Self::Fast => 1,
            Self::Zstd => 3,
        }
    }

    /// The artifact name extension: `.sql.gz` or `.sql.zst`.
    pub const fn extension(self) -> &'static str {
        self.codec().extension()
    }

    pub(crate) const fn codec(self) -> crate::codec::Codec {
        match self {
            Self::Default | Self::Fast => crate::codec::Codec::Gzip,
            Self::Zstd => crate::codec::Codec::Zstd,
        }
    }

    const fn max_level(self) -> u32 {
        match self.codec() {
            crate::codec::Codec::Gzip => 12,
            crate::codec::Codec::Zstd => 19,
        }
    }
}

/// The backups' retry schedule, as the seed's Celery task had it (`max_retries=3`,
/// `default_retry_delay=300`): one attempt plus three retries, exactly 5 minutes apart, no overall deadline.
pub fn default_retry() -> RetryPolicy {
    RetryPolicy::celery(3, Duration::from_secs(300))
}

/// The serde form of a [`PgDumpBackup`](crate::PgDumpBackup)'s settings, for configuration files.
///
/// ```
/// use resee_ops_backup::BackupConfig;
/// let cfg: BackupConfig = serde_json::from_value(serde_json::json!({
///     "connection": "postgres://backup@127.0.0.1:5432/resee_dev",
///     "environment": "production",
///     "profile": "fast",
///     "timeout": "2h",
///     "retry": { "max_attempts": 5, "initial_backoff": "1m", "max_backoff": "1m", "jitter": false }
/// })).unwrap();
/// assert_eq!(cfg.environment.as_str(), "production");
/// assert_eq!(cfg.retry.max_attempts(), 5);
/// ```
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct BackupConfig {
    /// The database to dump: a connection string (URL or libpq `key=value`) or a table of `host`, `port`,
    /// `user`, `password`, `dbname`, `sslmode` — core's [`ConnectionUrl`], read as the monitor reads it.
    pub connection: ConnectionUrl,
    /// The environment part of the artifact name. Default `development`.
    #[serde(default = "default_environment")]
    pub environment: NameComponent,
    /// The database part of the artifact name. Default: the database name.
    #[serde(default)]
    pub name: Option<NameComponent>,
    /// Compression profile. Default: gzip level 6.
    #[serde(default)]
    pub profile: CompressionProfile,
    /// Overrides the profile's level (gzip 0-12, zstd 1-19).
    #[serde(default)]
    pub level: Option<u32>,
    /// Compression threads, 1 to [`MAX_THREADS`]. Default: the number of CPUs, at most 4. Each thread
    /// may hold a block of about 1 MiB in flight.
    #[serde(default)]
    pub threads: Option<usize>,
    /// `pg_dump` to run. Default: found on `PATH` or under `/usr/lib/postgresql/*/bin`, newest first.
    #[serde(default)]
    pub pg_dump: Option<PathBuf>,
    /// Connection timeout. Default 30 s. `Duration::MAX` (or anything past what libpq holds, about 68
    /// years): no limit.
    #[serde(default = "default_connect_timeout", with = "resee_ops_core::serde_duration")]
    pub connect_timeout: Duration,
    /// How long `pg_dump` waits for a table lock (`--lock-wait-timeout`). Default 5 minutes. Zero, or
    /// more than the server's timeout settings hold (about 24.8 days; `Duration::MAX` included): no limit.
    #[serde(default = "default_lock_wait_timeout", with = "resee_ops_core::serde_duration")]
    pub lock_wait_timeout: Duration,
    /// Limit for one attempt, dump and verification included; `pg_dump` is killed when it passes.
    /// Default 6 hours. `Duration::MAX`: no limit.
    #[serde(default = "default_timeout", with = "resee_ops_core::serde_duration")]
    pub timeout: Duration,
    /// Retries of temporary failures: core's [`RetryPolicy`]. Default [`default_retry`]: one attempt plus
    /// three retries, 5 minutes apart.
    #[serde(default = "default_retry")]
    pub retry: RetryPolicy,
    /// Retention, applied to this backup's artifacts on the target after each successful backup (never
    /// after a failed one). Default: none, every backup is kept.
    #[serde(default)]
    pub retention: Option<crate::RetentionPolicy>,
    /// Take the single-run lock (a PostgreSQL advisory lock on the source database, held for the whole run
    /// by a dedicated session), so that two replicas never dump at once. Default `true`.
    #[serde(default = "default_true")]
    pub single_run_lock: bool,
}

impl fmt::Debug for BackupConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackupConfig")
            .field("connection", &self.connection)
            .field("environment", &self.environment)
            .field("name", &self.name)
            .field("profile", &self.profile)
            .field("level", &self.level)
            .field("threads", &self.threads)
            .field("pg_dump", &self.pg_dump)
            .field("connect_timeout", &self.connect_timeout)
            .field("lock_wait_timeout", &self.lock_wait_timeout)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("retention", &self.retention)
            .field("single_run_lock", &self.single_run_lock)
            .finish()
    }
}

impl BackupConfig {
    /// Defaults for `connection`.
    pub fn new(connection: ConnectionUrl) -> Self {
        Self {
            connection,
            environment: default_environment(),
            name: None,
            profile: CompressionProfile::Default,
            level: None,
            threads: None,
            pg_dump: None,
            connect_timeout: default_connect_timeout(),
            lock_wait_timeout: default_lock_wait_timeout(),
            timeout: default_timeout(),
            retry: default_retry(),
            retention: None,
            single_run_lock: true,
        }
    }

    /// The compression level in effect.
    pub fn effective_level(&self) -> u32 {
        self.level.unwrap_or(self.profile.level())
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if let Some(l) = self.level
            && (l > self.profile.max_level() || (self.profile == CompressionProfile::Zstd && l == 0))
        {
            let range = if self.profile == CompressionProfile::Zstd { "zstd 1-19" } else { "gzip 0-12" };
            return Err(invalid_config(format!("level {l} is out of range ({range})")));
        }
        if let Some(threads) = self.threads
            && !(1..=MAX_THREADS).contains(&threads)
        {
            return Err(invalid_config(format!("threads must be between 1 and {MAX_THREADS}, not {threads}")));
        }
        for (what, d) in [("connect_timeout", self.connect_timeout), ("timeout", self.timeout)] {
            if d.is_zero() {
                return Err(invalid_config(format!("{what} must be positive")));
            }
        }
        Ok(())
    }
}

/// The most compression threads a backup may use: more only costs memory (a block in flight per thread).
pub const MAX_THREADS: usize = 256;

fn default_environment() -> NameComponent {
    NameComponent("development".into())
}

fn default_true() -> bool {
    true
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_lock_wait_timeout() -> Duration {
    Duration::from_secs(300)
}

fn default_timeout() -> Duration {
    Duration::from_secs(6 * 3600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_deserializes_and_hides_the_password() {
        let cfg: BackupConfig = serde_json::from_value(serde_json::json!({
            "connection": {"host": "127.0.0.1", "user": "bk", "password": "hunter2-secret", "dbname": "resee"},
            "environment": "staging",
            "level": 9
        }))
        .unwrap();
        assert_eq!(cfg.effective_level(), 9);
        assert_eq!(cfg.retry, default_retry());
        assert!(!format!("{cfg:?}").contains("hunter2-secret"));
        let err = serde_json::from_value::<BackupConfig>(serde_json::json!({
            "connection": "postgres://x@h/d", "environment": "../prod"
        }))
        .err()
        .unwrap();
        assert!(err.to_string().contains("must not contain"), "{err}");
    }

    #[test]
    fn threads_are_bounded_with_a_clear_error() {
        let with = |threads: usize| {
            serde_json::from_value::<BackupConfig>(serde_json::json!({
                "connection": "postgres://x@h/d", "threads": threads
            }))
            .unwrap()
            .validate()
        };
        assert!(with(1).is_ok());
        assert!(with(MAX_THREADS).is_ok());
        for bad in [0, MAX_THREADS + 1, usize::MAX] {
            let err = with(bad).unwrap_err();
            assert_eq!(err.kind(), resee_ops_core::ErrorKind::InvalidConfig, "{err}");
            assert!(err.to_string().contains("threads must be between 1 and 256"), "{err}");
        }
    }
}
