//! [`PostgresProbe`]: `SELECT 1` over a fresh connection.

use std::time::Duration;

use async_trait::async_trait;
use resee_ops_core::{HealthProbe, ProbeOutcome};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use resee_ops_core::ConnectionUrl;
use resee_ops_core::ErrorKind;

use crate::MonitorError;
use crate::error::invalid_config;

/// The default probe timeout of the built-in probes.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}

fn default_name() -> String {
    "database".to_owned()
}

fn yes() -> bool {
    true
}

/// Configuration of a [`PostgresProbe`]. Deserialisable; `Debug` and `Serialize` hide the password.
///
/// ```
/// use std::time::Duration;
/// use resee_ops_monitor::PostgresProbeConfig;
///
/// let probe = PostgresProbeConfig::from_url("postgres://app:hunter2@127.0.0.1:5432/app")
///     .unwrap()
///     .with_timeout(Duration::from_secs(2))
///     .build()
///     .unwrap();
/// assert!(!format!("{probe:?}").contains("hunter2"));
///
/// let cfg: PostgresProbeConfig = serde_json::from_str(r#"{"url": "postgres://127.0.0.1/app", "timeout": "2s"}"#).unwrap();
/// assert_eq!(cfg.timeout, Duration::from_secs(2));
/// assert_eq!(cfg.name, "database");
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PostgresProbeConfig {
    /// A `postgres://` URL or a `key=value` connection string.
    pub url: ConnectionUrl,
    /// How long connecting and `SELECT 1` may take together. Default 3 s.
    #[serde(default = "default_timeout", with = "resee_ops_core::serde_duration")]
    pub timeout: Duration,
    /// The probe's name in reports. Default `database`.
    #[serde(default = "default_name")]
    pub name: String,
    /// Whether the service is unusable without the database. Default `true`.
    #[serde(default = "yes")]
    pub critical: bool,
}

impl PostgresProbeConfig {
    /// A configuration for `url` with the defaults.
    pub fn new(url: ConnectionUrl) -> Self {
        Self { url, timeout: DEFAULT_TIMEOUT, name: default_name(), critical: true }
    }

    /// A configuration for a connection string (see [`ConnectionUrl`]); the error does not repeat it.
    pub fn from_url(url: &str) -> Result<Self, MonitorError> {
        Ok(Self::new(ConnectionUrl::parse(url)?))
    }

    /// The connection from `DATABASE_URL`, else libpq's `PG*` variables, as the backup crate reads them
    /// ([`ConnectionUrl::postgres_from_env`]); an error when neither is set, never a guessed default.
    pub fn from_env() -> Result<Self, MonitorError> {
        Ok(Self::new(ConnectionUrl::postgres_from_env()?))
    }

    /// Sets the timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets whether the probe is critical.
    pub fn with_critical(mut self, critical: bool) -> Self {
        self.critical = critical;
        self
    }

    /// Validates the configuration and builds the probe.
    pub fn build(self) -> Result<PostgresProbe, MonitorError> {
        PostgresProbe::from_config(self)
    }
}

/// Checks PostgreSQL with `SELECT 1` over a **new connection on every check**.
///
/// Why not a pool: a health check should answer the question the application's next connection attempt
/// will face (is the server accepting connections, is authentication working, is `max_connections`
/// exhausted?). A pooled connection that was opened an hour ago answers `SELECT 1` happily while new
/// connections are refused. At one check every few seconds the cost is a handful of connections per minute,
/// which PostgreSQL handles easily. The connection task is aborted when the check ends, timed out or not.
///
/// The connection string is core's [`ConnectionUrl`], configured exactly as the backup crate configures
/// its preflight.
/// The observed value is the round trip (connect + query) in milliseconds. Failure outputs name the host,
/// port and database, never the user's password.
#[derive(Clone)]
pub struct PostgresProbe {
    config: PostgresProbeConfig,
    connector: crate::postgres::PgConnector,
    target: String,
}

impl std::fmt::Debug for PostgresProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresProbe")
            .field("name", &self.config.name)
            .field("target", &self.target)
            .field("timeout", &self.config.timeout)
            .field("critical", &self.config.critical)
            .finish_non_exhaustive()
    }
}

impl PostgresProbe {
    /// Builds a probe; fails if the connection string cannot be parsed (the error does not repeat it).
    pub fn from_config(config: PostgresProbeConfig) -> Result<Self, MonitorError> {
        if config.url.scheme() != resee_ops_core::Scheme::Postgres {
            return Err(invalid_config("the PostgreSQL probe needs a postgres:// or key=value connection string"));
        }
        if config.timeout.is_zero() {
            return Err(invalid_config("PostgreSQL probe timeout must be above zero"));
        }
        let connector = crate::postgres::PgConnector::new(&config.url, config.timeout, "resee-ops-monitor")?;
        let target = config.url.target();
        Ok(Self { config, connector, target })
    }

    /// Where the probe connects (`127.0.0.1:5432/app`), without user or password.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Connects, runs `SELECT 1` and disconnects, all within the timeout; returns the round-trip time.
    pub async fn ping(&self) -> Result<Duration, MonitorError> {
        let started = Instant::now();
        let rows = self.query_within(self.config.timeout, "SELECT 1").await?;
        let answered =
            rows.iter().any(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(r) if r.get(0) == Some("1")));
        if answered {
            Ok(started.elapsed())
        } else {
            Err(MonitorError::new(
                ErrorKind::Unexpected,
                format!("PostgreSQL at {}: SELECT 1 returned no row", self.target),
            ))
        }
    }

    /// Connects, runs `sql` (simple query protocol) and disconnects, all within `timeout`. Errors name the
    /// target, never the password.
    pub(crate) async fn query_within(
        &self,
        timeout: Duration,
        sql: &str,
    ) -> Result<Vec<tokio_postgres::SimpleQueryMessage>, MonitorError> {
        match tokio::time::timeout(timeout, self.query(sql)).await {
            Ok(result) => result,
            Err(_) => Err(MonitorError::new(
                ErrorKind::Timeout,
                format!(
                    "PostgreSQL at {} did not answer within {}",
                    self.target,
                    resee_ops_core::serde_duration::format_duration(timeout)
                ),
            )),
        }
    }

    async fn query(&self, sql: &str) -> Result<Vec<tokio_postgres::SimpleQueryMessage>, MonitorError> {
        let c = &self.connector;
        // The connection's task is aborted however this function ends (error, or the caller's timeout).
        let conn = c.connect().await.map_err(|e| c.error(&e))?;
        conn.client().simple_query(sql).await.map_err(|e| c.error(&e))
    }
}

#[async_trait]
impl HealthProbe for PostgresProbe {
    fn alert_text(&self, outcome: &ProbeOutcome, resolved: bool) -> resee_ops_core::ProbeAlertText {
        crate::AlertText::Failed("Database connection".into()).alert_text(outcome, resolved)
    }

    fn name(&self) -> &str {
        &self.config.name
    }

    fn is_critical(&self) -> bool {
        self.config.critical
    }

    async fn check(&self) -> ProbeOutcome {
        match self.ping().await {
            Ok(rtt) => ProbeOutcome::up().with_observed(round2(rtt.as_secs_f64() * 1000.0), "ms"),
            Err(e) => ProbeOutcome::down(e.message()),
        }
    }
}

pub(crate) fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}
