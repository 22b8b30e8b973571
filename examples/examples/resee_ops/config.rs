//! The configuration: embedded defaults, then the TOML file (when one is given), then the environment.
//!
//! To add a section: a `#[serde(default, deny_unknown_fields)]` struct with a `Default`, a field in
//! [`Config`], its checks in [`Config::validate`] (errors name the key), and its annotated defaults in
//! `examples/resee-ops.toml`. Unknown keys are rejected, never ignored.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use resee_ops_backup::{CompressionProfile, RetentionPolicy, S3Config};
use resee_ops_core::schedule::{JobPolicy, MissedRunPolicy, Schedule};
use resee_ops_monitor::{CeleryTransport, ConnectionUrl};
use resee_ops_slack::{ENV_WEBHOOK_URL, WebhookUrl};
use serde::{Deserialize, Serialize};

/// A configuration error: the key (or environment variable) at fault and what is allowed. Exit code 2.
#[derive(Debug)]
pub(crate) struct ConfigError {
    pub(crate) key: String,
    pub(crate) message: String,
}

impl ConfigError {
    pub(crate) fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self { key: key.into(), message: message.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "configuration error: {}: {}", self.key, self.message)
    }
}

mod dur {
    pub(crate) use resee_ops_core::serde_duration::{deserialize, serialize};
}

/// The whole configuration file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Config {
    /// `RESEE_ENVIRONMENT`: part of backup names and alert labels.
    pub(crate) environment: String,
    pub(crate) database: DatabaseSection,
    pub(crate) redis: RedisSection,
    pub(crate) celery: CelerySection,
    pub(crate) http: HttpSection,
    pub(crate) alerts: AlertsSection,
    pub(crate) backup: BackupSection,
    pub(crate) restore_test: RestoreTestSection,
    pub(crate) monitor: MonitorSection,
    pub(crate) rules: RulesSection,
    pub(crate) shutdown: ShutdownSection,
    pub(crate) metrics: MetricsSection,
    /// The log channels (general, error, worker, security) and the console; `LOG_DIR`, `LOG_FORMAT`,
    /// `RUST_LOG`, `LOG_MAX_BYTES`, `LOG_BACKUPS` override.
    pub(crate) logging: resee_ops_logging::LoggingConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            environment: "development".into(),
            database: DatabaseSection::default(),
            redis: RedisSection::default(),
            celery: CelerySection::default(),
            http: HttpSection::default(),
            alerts: AlertsSection::default(),
            backup: BackupSection::default(),
            restore_test: RestoreTestSection::default(),
            monitor: MonitorSection::default(),
            rules: RulesSection::default(),
            shutdown: ShutdownSection::default(),
            metrics: MetricsSection::default(),
            logging: resee_ops_logging::LoggingConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct DatabaseSection {
    /// `DATABASE_URL`. Its password is never printed.
    pub(crate) url: ConnectionUrl,
}

impl Default for DatabaseSection {
    fn default() -> Self {
        // This deployment's default (the library itself never guesses a URL).
        Self { url: ConnectionUrl::parse("postgres://postgres@127.0.0.1:5432/postgres").expect("a valid URL") }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RedisSection {
    /// `REDIS_URL`.
    pub(crate) url: ConnectionUrl,
}

impl Default for RedisSection {
    fn default() -> Self {
        Self { url: ConnectionUrl::parse("redis://127.0.0.1:6379/").expect("a valid URL") }
    }
}

/// The Celery workers and queues, checked over their Redis broker as `celery inspect ping` does.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct CelerySection {
    /// `CELERY_BROKER_URL`; unset: `redis.url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) broker_url: Option<ConnectionUrl>,
    /// How long workers have to answer the broadcast ping.
    #[serde(with = "dur")]
    pub(crate) ping_window: Duration,
    /// The workers' `broker_transport_options`: `global_keyprefix`, `sep`, `priority_steps`.
    pub(crate) global_keyprefix: String,
    pub(crate) sep: String,
    pub(crate) priority_steps: Vec<u8>,
    /// Whether a queue's length also counts the tasks workers hold unacknowledged (running, prefetched).
    pub(crate) count_unacked: bool,
}

impl Default for CelerySection {
    fn default() -> Self {
        let t = CeleryTransport::default();
        Self {
            broker_url: None,
            ping_window: resee_ops_monitor::DEFAULT_PING_WINDOW,
            global_keyprefix: t.global_keyprefix,
            sep: t.sep,
            priority_steps: t.priority_steps,
            count_unacked: false,
        }
    }
}

impl CelerySection {
    /// The workers' transport options.
    pub(crate) fn transport(&self) -> CeleryTransport {
        CeleryTransport::new()
            .with_global_keyprefix(&self.global_keyprefix)
            .with_sep(&self.sep)
            .with_priority_steps(self.priority_steps.iter().copied())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct HttpSection {
    /// `RESEE_HTTP_ADDR`.
    pub(crate) listen: String,
    /// Per-check details in the health responses (they name hosts: keep the endpoint private).
    pub(crate) details: bool,
}

impl Default for HttpSection {
    fn default() -> Self {
        Self { listen: "127.0.0.1:8080".into(), details: false }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct AlertsSection {
    /// The same alert at most once per window.
    #[serde(with = "dur")]
    pub(crate) throttle: Duration,
    /// How long one alert is retried (Slack down, rate limits) before it counts as not delivered.
    #[serde(with = "dur")]
    pub(crate) retry_for: Duration,
    /// Alerts waiting for delivery; one more is dropped and counted.
    pub(crate) queue_capacity: usize,
    /// On shutdown, how long queued alerts may take to drain.
    #[serde(with = "dur")]
    pub(crate) flush_timeout: Duration,
    /// Where the throttle keeps its state: `redis` (shared by every replica, kept across restarts) or
    /// `memory` (this process only).
    pub(crate) store: ThrottleStoreKind,
    /// The Redis of the `redis` store; unset: `redis.url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) store_url: Option<ConnectionUrl>,
    /// Key prefix of the `redis` store; unset: `resee-ops:<environment>:throttle:`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) store_prefix: Option<String>,
}

/// Where the alert throttle keeps its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ThrottleStoreKind {
    Redis,
    Memory,
}

impl AlertsSection {
    /// The Redis key prefix of the throttle store.
    pub(crate) fn prefix(&self, environment: &str) -> String {
        self.store_prefix.clone().unwrap_or_else(|| format!("resee-ops:{environment}:throttle:"))
    }
}

/// `/metrics`: the ops layer's own metrics in the Prometheus text format.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct MetricsSection {
    /// Serve `GET /metrics` on the HTTP listener.
    pub(crate) enabled: bool,
}

impl Default for MetricsSection {
    fn default() -> Self {
        Self { enabled: true }
    }
}

impl Default for AlertsSection {
    fn default() -> Self {
        Self {
            throttle: Duration::from_secs(600),
            retry_for: Duration::from_secs(300),
            queue_capacity: 1024,
            flush_timeout: Duration::from_secs(10),
            store: ThrottleStoreKind::Redis,
            store_url: None,
            store_prefix: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct BackupSection {
    /// Run the scheduled backup at all.
    pub(crate) enabled: bool,
    /// `RESEE_BACKUP_DIR`.
    pub(crate) dir: PathBuf,
    /// Cron expression (5 fields, 6 with seconds, or @daily…).
    pub(crate) schedule: String,
    /// IANA zone of the expression.
    pub(crate) timezone: String,
    /// Random delay added to each run.
    #[serde(with = "dur")]
    pub(crate) jitter: Duration,
    /// `skip` or `run_once` (catch up at start when the newest verified backup is too old).
    pub(crate) missed_runs: MissedRunPolicy,
    #[serde(with = "dur")]
    pub(crate) missed_run_grace: Duration,
    /// Retries of a failed run, inside the slot.
    pub(crate) retries: u32,
    #[serde(with = "dur")]
    pub(crate) retry_delay: Duration,
    /// `default` (gzip, libdeflate level 5), `fast` (gzip level 1) or `zstd` (`.sql.zst`).
    pub(crate) profile: CompressionProfile,
    /// Overrides the profile's level (gzip 0-12, zstd 1-19).
    pub(crate) level: Option<u32>,
    /// Limit for one attempt.
    #[serde(with = "dur")]
    pub(crate) timeout: Duration,
    /// Applied after each successful backup; absent: every backup is kept.
    pub(crate) retention: Option<RetentionPolicy>,
    /// Take the single-run lock (a PostgreSQL advisory lock on the source database), so that two replicas
    /// never back up at once: the second run is skipped (exit 3 for `backup --once`).
    pub(crate) single_run_lock: bool,
    /// A second target: an S3-compatible bucket (`[backup.s3]`, or `BACKUP_S3_BUCKET`, `AWS_ACCESS_KEY_ID`, …).
    pub(crate) s3: Option<S3Config>,
    /// Whether the backup fails when S3 fails (`false`: a warning alert, the local backup still counts).
    pub(crate) s3_required: bool,
    /// The freshness check of each target fails when the newest verified backup is older than this.
    #[serde(with = "dur")]
    pub(crate) max_age: Duration,
}

impl Default for BackupSection {
    fn default() -> Self {
        Self {
            enabled: true,
            dir: PathBuf::from("./backups"),
            schedule: "0 3 * * *".into(),
            timezone: "Asia/Seoul".into(),
            jitter: Duration::ZERO,
            missed_runs: MissedRunPolicy::RunOnce,
            missed_run_grace: Duration::from_secs(3600),
            retries: 3,
            retry_delay: Duration::from_secs(300),
            profile: CompressionProfile::Default,
            level: None,
            timeout: Duration::from_secs(6 * 3600),
            retention: None,
            single_run_lock: true,
            s3: None,
            s3_required: true,
            max_age: Duration::from_secs(26 * 3600),
        }
    }
}

impl BackupSection {
    pub(crate) fn policy(&self) -> JobPolicy {
        JobPolicy::default()
            .with_missed_runs(self.missed_runs)
            .with_missed_run_grace(self.missed_run_grace)
            .with_retries(self.retries, self.retry_delay)
    }
}

/// The scheduled restore test: the newest backup restored into a scratch database, row counts checked.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RestoreTestSection {
    /// Run it at all.
    pub(crate) enabled: bool,
    /// Cron expression; weekly by default.
    pub(crate) schedule: String,
    /// IANA time zone of the expression.
    pub(crate) timezone: String,
}

impl Default for RestoreTestSection {
    fn default() -> Self {
        Self { enabled: false, schedule: "0 4 * * 0".into(), timezone: "Asia/Seoul".into() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct MonitorSection {
    /// Time between health cycles.
    #[serde(with = "dur")]
    pub(crate) interval: Duration,
    /// Limit for each probe.
    #[serde(with = "dur")]
    pub(crate) probe_timeout: Duration,
    /// Consecutive failures before a probe counts as down.
    pub(crate) failures_before_down: u32,
    /// The filesystem whose usage is watched.
    pub(crate) disk_path: PathBuf,
    /// Disk usage warning / critical, percent.
    pub(crate) disk_warning: f64,
    pub(crate) disk_critical: f64,
    /// Celery workers expected to answer the ping (check `workers`).
    pub(crate) min_workers: usize,
    /// Celery queues whose length is watched (one check `queue:<queue>` each).
    pub(crate) queues: Vec<String>,
    /// Queue length above which it warns.
    pub(crate) queue_warning_above: u64,
}

impl Default for MonitorSection {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(30),
            probe_timeout: Duration::from_secs(3),
            failures_before_down: 1,
            disk_path: PathBuf::from("/"),
            disk_warning: 80.0,
            disk_critical: 90.0,
            min_workers: 1,
            queues: vec!["celery".into()],
            queue_warning_above: 100,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RulesSection {
    /// Evaluate threshold rules at all.
    pub(crate) enabled: bool,
    /// Time between evaluations.
    #[serde(with = "dur")]
    pub(crate) interval: Duration,
    /// Limit for each source read (the payments query, the queue length).
    #[serde(with = "dur")]
    pub(crate) source_timeout: Duration,
    /// The seed's four rules (payment failures, error rate, API p95, queue length).
    pub(crate) presets: bool,
    /// A SQL query returning the payment failures of the last hour; unset: the host counts
    /// `payment_failed` events in-process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) payments_query: Option<String>,
    /// More rules; one named like a preset replaces it.
    pub(crate) rule: Vec<resee_ops_monitor::Rule>,
}

impl Default for RulesSection {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: Duration::from_secs(30),
            source_timeout: Duration::from_secs(5),
            presets: true,
            payments_query: None,
            rule: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ShutdownSection {
    /// How long a running job may take to finish on SIGTERM before it is cancelled.
    #[serde(with = "dur")]
    pub(crate) grace: Duration,
}

impl Default for ShutdownSection {
    fn default() -> Self {
        Self { grace: resee_ops_core::schedule::DEFAULT_SHUTDOWN_GRACE }
    }
}

/// What [`Config::validate`] produces: the checked values the service is built from.
#[derive(Debug)]
pub(crate) struct Validated {
    pub(crate) backup_schedule: Schedule,
    pub(crate) restore_test_schedule: Schedule,
    pub(crate) listen: SocketAddr,
    pub(crate) slack: Option<WebhookUrl>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Config {
    /// The embedded defaults, the file at `path` (if any), then the environment overrides.
    pub(crate) fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut config = match path {
            None => Self::default(),
            Some(path) => Self::from_file(path)?,
        };
        config.apply_env(env)?;
        Ok(config)
    }

    fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let key = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(&key, format!("cannot read the configuration file: {e}")))?;
        Self::from_toml(&text).map_err(|mut e| {
            e.key = format!("{key}: {}", e.key);
            e
        })
    }

    /// Parses TOML; errors name the dotted key and the line.
    pub(crate) fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let de = toml::Deserializer::parse(text).map_err(|e| ConfigError::new("(syntax)", describe(&e, text)))?;
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            ConfigError::new(if path == "." { "(top level)".into() } else { path }, describe(e.inner(), text))
        })
    }

    /// Applies `DATABASE_URL`, `REDIS_URL`, `CELERY_BROKER_URL`, `RESEE_ENVIRONMENT`, `RESEE_BACKUP_DIR`,
    /// `RESEE_BACKUP_SINGLE_RUN_LOCK`, `BACKUP_S3_*` and `AWS_*` (see `S3Config::from_env`),
    /// `BACKUP_S3_REQUIRED`, `RESEE_HTTP_ADDR`, `RESEE_ALERTS_STORE_PREFIX`, and the logging variables (`LOG_DIR`,
    /// `LOG_FORMAT`, `RUST_LOG`, `LOG_MAX_BYTES`,
    /// `LOG_BACKUPS`).
    pub(crate) fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = var("DATABASE_URL") {
            self.database.url =
                ConnectionUrl::parse(&v).map_err(|e| ConfigError::new("DATABASE_URL", e.to_string()))?;
        }
        if let Some(v) = var("REDIS_URL") {
            self.redis.url = ConnectionUrl::parse(&v).map_err(|e| ConfigError::new("REDIS_URL", e.to_string()))?;
        }
        if let Some(v) = var("CELERY_BROKER_URL") {
            self.celery.broker_url =
                Some(ConnectionUrl::parse(&v).map_err(|e| ConfigError::new("CELERY_BROKER_URL", e.to_string()))?);
        }
        if let Some(v) = var("RESEE_ENVIRONMENT") {
            self.environment = v;
        }
        if let Some(v) = var("RESEE_BACKUP_DIR") {
            self.backup.dir = PathBuf::from(v);
        }
        // S3: `BACKUP_S3_BUCKET` adds the target; the other variables override the file's `[backup.s3]`.
        let s3_err = |e: resee_ops_core::Error| ConfigError::new("backup.s3 (BACKUP_S3_*)", e.message().to_owned());
        match self.backup.s3.as_mut() {
            Some(s3) => s3.apply_lookup(&var).map_err(s3_err)?,
            None => self.backup.s3 = S3Config::from_lookup(&var).map_err(s3_err)?,
        }
        if let Some(v) = var("RESEE_BACKUP_SINGLE_RUN_LOCK") {
            self.backup.single_run_lock = !matches!(v.trim(), "0" | "false" | "no" | "off");
        }
        if let Some(v) = var("BACKUP_S3_REQUIRED") {
            self.backup.s3_required = matches!(v.trim(), "1" | "true" | "yes" | "on");
        }
        if let Some(v) = var("RESEE_HTTP_ADDR") {
            self.http.listen = v;
        }
        if let Some(v) = var("RESEE_ALERTS_STORE_PREFIX") {
            self.alerts.store_prefix = Some(v);
        }
        self.logging = self.logging.clone().with_overrides(&var).map_err(|e| {
            ConfigError::new("logging (LOG_FORMAT, LOG_MAX_BYTES, LOG_BACKUPS)", e.message().to_owned())
        })?;
        Ok(())
    }

    /// Checks every value that can be wrong before anything starts.
    pub(crate) fn validate(&self) -> Result<Validated, ConfigError> {
        resee_ops_backup::NameComponent::new(self.environment.clone())
            .map_err(|e| ConfigError::new("environment (RESEE_ENVIRONMENT)", e.message().to_owned()))?;
        let backup_schedule = Schedule::new(&self.backup.schedule, &self.backup.timezone)
            .map_err(|e| {
                let key = if e.message().contains("time zone") { "backup.timezone" } else { "backup.schedule" };
                ConfigError::new(key, e.message().to_owned())
            })?
            .with_jitter(self.backup.jitter);
        let listen: SocketAddr = self.http.listen.trim().parse().map_err(|_| {
            ConfigError::new(
                "http.listen (RESEE_HTTP_ADDR)",
                format!("{:?} is not an address: use IP:PORT such as 127.0.0.1:8080 or 0.0.0.0:8080", self.http.listen),
            )
        })?;
        let restore_test_schedule =
            Schedule::new(&self.restore_test.schedule, &self.restore_test.timezone).map_err(|e| {
                let key =
                    if e.message().contains("time zone") { "restore_test.timezone" } else { "restore_test.schedule" };
                ConfigError::new(key, e.message().to_owned())
            })?;
        if let Some(level) = self.backup.level {
            let (low, high) = if self.backup.profile == CompressionProfile::Zstd { (1, 19) } else { (0, 12) };
            if !(low..=high).contains(&level) {
                return Err(ConfigError::new(
                    "backup.level",
                    format!("{level} is not a level of this profile: allowed {low}-{high}"),
                ));
            }
        }
        if self.backup.dir.as_os_str().is_empty() {
            return Err(ConfigError::new("backup.dir (RESEE_BACKUP_DIR)", "must not be empty"));
        }
        if self.monitor.interval.is_zero() || self.monitor.probe_timeout.is_zero() {
            return Err(ConfigError::new("monitor.interval / monitor.probe_timeout", "must be above zero"));
        }
        if self.monitor.failures_before_down == 0 {
            return Err(ConfigError::new("monitor.failures_before_down", "allowed: 1 or more"));
        }
        resee_ops_monitor::DiskThresholds::new(self.monitor.disk_warning, self.monitor.disk_critical)
            .map_err(|e| ConfigError::new("monitor.disk_warning / monitor.disk_critical", core_message(e)))?;
        self.logging.validate().map_err(|e| ConfigError::new("logging", e.message().to_owned()))?;
        if self.rules.interval.is_zero() || self.rules.source_timeout.is_zero() {
            return Err(ConfigError::new("rules.interval / rules.source_timeout", "must be above zero"));
        }
        let prefix = self.alerts.prefix(&self.environment);
        if prefix.is_empty() || prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ConfigError::new("alerts.store_prefix", "allowed: a non-empty key prefix without spaces"));
        }
        if self.alerts.queue_capacity == 0 {
            return Err(ConfigError::new("alerts.queue_capacity", "allowed: 1 or more"));
        }
        self.celery
            .transport()
            .validate()
            .map_err(|e| ConfigError::new("celery.sep / celery.priority_steps", e.message().to_owned()))?;
        if self.celery.ping_window.is_zero() {
            return Err(ConfigError::new("celery.ping_window", "must be above zero"));
        }
        let slack = match env(ENV_WEBHOOK_URL) {
            None => None,
            Some(url) => Some(WebhookUrl::new(url).map_err(|e| ConfigError::new(ENV_WEBHOOK_URL, e.to_string()))?),
        };
        if let Some(s3) = &self.backup.s3 {
            resee_ops_backup::S3Target::from_config(s3.clone())
                .map_err(|e| ConfigError::new("backup.s3 (BACKUP_S3_*)", e.message().to_owned()))?;
        }
        if self.backup.max_age.is_zero() {
            return Err(ConfigError::new("backup.max_age", "must be positive"));
        }
        Ok(Validated { backup_schedule, restore_test_schedule, listen, slack })
    }

    /// The effective configuration as TOML, secrets redacted (`--check-config`).
    pub(crate) fn render(&self, validated: &Validated) -> String {
        let body = toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"));
        let alerts = match &validated.slack {
            Some(url) => format!("Slack webhook at {} (from {ENV_WEBHOOK_URL}; URL redacted)", url.host()),
            None => format!("the log ({ENV_WEBHOOK_URL} is not set)"),
        };
        format!("# Effective configuration (passwords shown as ***).\n# Alerts go to: {alerts}\n\n{body}")
    }
}

fn core_message(e: resee_ops_core::Error) -> String {
    e.message().to_owned()
}

/// A TOML error as one line: the message and where.
fn describe(e: &toml::de::Error, text: &str) -> String {
    let message = e.message().trim().to_owned();
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("{message} (line {line})")
        }
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_file_is_the_defaults() {
        let shipped = Config::from_toml(include_str!("../../resee-ops.toml")).unwrap();
        shipped.validate().unwrap();
        assert_eq!(toml::to_string(&shipped).unwrap(), toml::to_string(&Config::default()).unwrap());
    }

    #[test]
    fn errors_name_the_key() {
        for (text, key) in [
            ("[backup]\nschedule = \"0 3 * *\"", "backup.schedule"),
            ("[backup]\ntimezone = \"Asia/Sout\"", "backup.timezone"),
            ("[backup]\nretries = \"three\"", "backup.retries"),
            ("[backup]\nmissed_runs = \"sometimes\"", "backup.missed_runs"),
            ("[backup]\nlevel = 13", "backup.level"),
            ("[backup]\nprofile = \"zstd\"\nlevel = 0", "backup.level"),
            ("[backup.retention]\nkeep_daily = -2", "backup.retention.keep_daily"),
            ("[restore_test]\nschedule = \"weekly\"", "restore_test.schedule"),
            ("[monitor]\ninterval = \"soon\"", "monitor.interval"),
            ("[htp]\nlisten = \"x\"", "htp"),
            ("[http]\nlisten = \"localhost\"", "http.listen (RESEE_HTTP_ADDR)"),
            ("[logging]\nformat = \"xml\"", "logging.format"),
            ("[logging.worker]\nfiel = \"celery.log\"", "logging.worker.fiel"),
            ("[logging]\nlevel = \"info,=[x\"", "logging"),
            ("[celery]\nsep = \"\"", "celery.sep / celery.priority_steps"),
            ("[celery]\npriority_steps = [0, 12]", "celery.sep / celery.priority_steps"),
        ] {
            let err = Config::from_toml(text).and_then(|c| c.validate().map(|_| ()));
            let err = err.unwrap_err();
            assert_eq!(err.key, key, "{text}: {err}");
        }
    }

    #[test]
    fn environment_overrides_the_file() {
        let mut c = Config::from_toml("[http]\nlisten = \"127.0.0.1:9000\"").unwrap();
        c.apply_env(|k| match k {
            "RESEE_HTTP_ADDR" => Some("127.0.0.1:9001".into()),
            "DATABASE_URL" => Some("postgres://app:hunter2@db/app".into()),
            "CELERY_BROKER_URL" => Some("redis://:brokerpw@broker:6379/2".into()),
            "RESEE_BACKUP_DIR" => Some("/var/backups".into()),
            "LOG_FORMAT" => Some("json".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.logging.format, resee_ops_logging::LogFormat::Json);
        let v = c.validate().unwrap();
        assert_eq!(v.listen.port(), 9001);
        assert_eq!(c.backup.dir, PathBuf::from("/var/backups"));
        let printed = c.render(&v);
        assert!(!printed.contains("hunter2") && printed.contains("postgres://app:***@db:5432/app"), "{printed}");
        assert!(!printed.contains("brokerpw") && printed.contains("redis://:***@broker:6379/2"), "{printed}");
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_path() {
        let e = Config::from_toml("[backup]\nschedul = \"0 3 * * *\"\n").unwrap_err();
        assert_eq!(e.key, "backup.schedul");
        assert!(e.message.contains("unknown field") && e.message.contains("line 2"), "{e}");
    }
}
