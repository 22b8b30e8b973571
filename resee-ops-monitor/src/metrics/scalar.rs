//! [`PostgresScalar`]: one number from a SQL query, read under a timeout.

use std::time::Duration;

use async_trait::async_trait;
use resee_ops_core::{Error, MetricSample, MetricSource, SharedClock, system_clock};
use serde::{Deserialize, Serialize};

use crate::probe::postgres::{DEFAULT_TIMEOUT, PostgresProbe, PostgresProbeConfig};
use resee_ops_core::ConnectionUrl;
use resee_ops_core::ErrorKind;

use crate::MonitorError;

fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}

fn default_name() -> String {
    "postgres_scalar".to_owned()
}

fn default_unit() -> String {
    "items".to_owned()
}

/// Configuration of a [`PostgresScalar`]. Deserialisable; `Debug` and `Serialize` hide the password.
///
/// ```
/// use resee_ops_monitor::PostgresScalarConfig;
/// let cfg: PostgresScalarConfig = serde_json::from_str(r#"{
///     "url": "postgres://app:hunter2@127.0.0.1/app",
///     "query": "SELECT count(*) FROM payments WHERE status = 'failed' AND created_at > now() - interval '1 hour'",
///     "name": "payment_failures", "timeout": "2s"
/// }"#).unwrap();
/// let source = cfg.build().unwrap();
/// assert!(!format!("{source:?}").contains("hunter2"));
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PostgresScalarConfig {
    /// A `postgres://` URL or a `key=value` connection string.
    pub url: ConnectionUrl,
    /// A query whose first column of its first row is the number (NULL or no row: no data).
    pub query: String,
    /// How long connecting and the query may take together. Default 3 s.
    #[serde(default = "default_timeout", with = "resee_ops_core::serde_duration")]
    pub timeout: Duration,
    /// The source name. Default `postgres_scalar`.
    #[serde(default = "default_name")]
    pub name: String,
    /// The unit of the number. Default `items`.
    #[serde(default = "default_unit")]
    pub unit: String,
}

impl PostgresScalarConfig {
    /// A configuration for `query` on `url`, with the defaults.
    pub fn new(url: ConnectionUrl, query: impl Into<String>) -> Self {
        Self { url, query: query.into(), timeout: DEFAULT_TIMEOUT, name: default_name(), unit: default_unit() }
    }

    /// A configuration for `query` on a connection string (see [`ConnectionUrl`]); the error does not
    /// repeat the string.
    pub fn from_url(url: &str, query: impl Into<String>) -> Result<Self, MonitorError> {
        Ok(Self::new(ConnectionUrl::parse(url)?, query))
    }

    /// Sets the timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the source name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the unit.
    pub fn with_unit(mut self, unit: impl Into<String>) -> Self {
        self.unit = unit.into();
        self
    }

    /// Validates and builds the source.
    pub fn build(self) -> Result<PostgresScalar, MonitorError> {
        PostgresScalar::from_config(self)
    }
}

/// A [`MetricSource`] reading one number with a SQL query (failed payments in the last hour from the
/// application's own table), over a new connection per read, under a timeout.
///
/// Connection handling, TLS and error texts are those of [`PostgresProbe`](crate::PostgresProbe): the same
/// URL type, errors that name host, port and database but never the password. The first column of the
/// first row is the value; NULL or no row is "no data"; text that is not a number is an error.
#[derive(Clone)]
pub struct PostgresScalar {
    config: PostgresScalarConfig,
    connection: PostgresProbe,
    clock: SharedClock,
}

impl std::fmt::Debug for PostgresScalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresScalar")
            .field("name", &self.config.name)
            .field("target", &self.connection.target())
            .field("query", &self.config.query)
            .field("timeout", &self.config.timeout)
            .finish_non_exhaustive()
    }
}

impl PostgresScalar {
    /// Builds the source; fails on an unparsable connection string, an empty query or a zero timeout.
    pub fn from_config(config: PostgresScalarConfig) -> Result<Self, MonitorError> {
        if config.query.trim().is_empty() {
            return Err(crate::error::invalid_config(format!(
                "PostgreSQL scalar `{}`: the query is empty",
                config.name
            )));
        }
        let connection = PostgresProbeConfig::new(config.url.clone())
            .with_timeout(config.timeout)
            .with_name(config.name.clone())
            .build()?;
        Ok(Self { config, connection, clock: system_clock() })
    }

    /// Uses `clock` to stamp samples.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Runs the query once: the number, or `None` for NULL / no row.
    pub async fn value(&self) -> Result<Option<f64>, MonitorError> {
        let rows = self.connection.query_within(self.config.timeout, &self.config.query).await?;
        let first = rows.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_owned)),
            _ => None,
        });
        let Some(Some(text)) = first else { return Ok(None) };
        text.trim().parse::<f64>().map(Some).map_err(|_| {
            MonitorError::new(
                ErrorKind::Unexpected,
                format!(
                    "PostgreSQL scalar `{}` at {}: the query returned {text:?}, not a number",
                    self.config.name,
                    self.connection.target()
                ),
            )
        })
    }
}

#[async_trait]
impl MetricSource for PostgresScalar {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn unit(&self) -> &str {
        &self.config.unit
    }

    async fn read(&self) -> Result<Option<MetricSample>, Error> {
        Ok(self.value().await?.map(|v| MetricSample::at(v, self.clock.now())))
    }
}
