//! [`RedisConfig`] (shared by every Redis-backed part of this crate) and [`RedisProbe`] (`PING`).

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::MultiplexedConnection;
use resee_ops_core::{HealthProbe, ProbeOutcome};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::postgres::{DEFAULT_TIMEOUT, round2};
use resee_ops_core::ErrorKind;
use resee_ops_core::{ConnectionUrl, SslMode};

use crate::MonitorError;
use crate::error::invalid_config;

fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}

/// Where a Redis server is and how long to wait for it. `Debug` and `Serialize` hide the password.
///
/// # TLS (`rediss://`)
/// `rediss://` connects over TLS (rustls, aws-lc-rs) and by default checks the server's certificate
/// against the operating system's roots and the host name (`verify-full`). Query parameters, named as
/// libpq names them: `sslrootcert=/path/ca.pem` trusts that CA instead; `sslmode=verify-ca` checks the
/// chain but not the host name; `sslmode=require` checks nothing unless `sslrootcert` is given (then as
/// `verify-ca`), and redis-rs' `rediss://…#insecure` means the same; `sslcert` + `sslkey` give a client
/// certificate. TLS options on a `redis://` URL are refused.
///
/// ```
/// use std::time::Duration;
/// use resee_ops_monitor::RedisConfig;
/// let cfg = RedisConfig::from_url("redis://:hunter2@127.0.0.1:6379/0").unwrap().with_timeout(Duration::from_secs(1));
/// assert!(!format!("{cfg:?}").contains("hunter2"));
/// assert!(cfg.probe().is_ok());
/// assert!(RedisConfig::from_url("not a url").is_err());
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RedisConfig {
    /// A `redis://` (or `unix://`) URL.
    pub url: ConnectionUrl,
    /// How long connecting plus one command may take. Default 3 s.
    #[serde(default = "default_timeout", with = "resee_ops_core::serde_duration")]
    pub timeout: Duration,
}

impl RedisConfig {
    /// A configuration for `url` with the default timeout.
    pub fn new(url: ConnectionUrl) -> Self {
        Self { url, timeout: DEFAULT_TIMEOUT }
    }

    /// A configuration for a `redis://`, `rediss://` or `redis+unix://` URL; the error does not repeat it.
    pub fn from_url(url: &str) -> Result<Self, MonitorError> {
        Ok(Self::new(ConnectionUrl::parse(url)?))
    }

    /// `REDIS_URL`; an error when it is unset or malformed, never a guessed default.
    pub fn from_env() -> Result<Self, MonitorError> {
        Ok(Self::new(ConnectionUrl::from_env_var("REDIS_URL")?))
    }

    /// Sets the timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// A [`RedisProbe`] named `redis`.
    pub fn probe(&self) -> Result<RedisProbe, MonitorError> {
        Ok(RedisProbe { name: "redis".to_owned(), critical: true, target: RedisTarget::new(self)? })
    }
}

/// A validated Redis endpoint: a client, its timeout and a secret-free description.
#[derive(Clone)]
pub(crate) struct RedisTarget {
    client: redis::Client,
    url: ConnectionUrl,
    timeout: Duration,
    addr: String,
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTarget").field("addr", &self.addr).field("timeout", &self.timeout).finish()
    }
}

impl RedisTarget {
    pub(crate) fn new(config: &RedisConfig) -> Result<Self, MonitorError> {
        if config.timeout.is_zero() {
            return Err(invalid_config("Redis timeout must be above zero"));
        }
        if config.url.scheme() == resee_ops_core::Scheme::Postgres {
            return Err(invalid_config("a Redis probe needs a redis://, rediss:// or redis+unix:// URL"));
        }
        let client = client(&config.url)?;
        Ok(Self { client, url: config.url.clone(), timeout: config.timeout, addr: config.url.target() })
    }

    /// The database number.
    pub(crate) fn db(&self) -> i64 {
        self.client.get_connection_info().redis_settings().db()
    }

    /// `host:port/db`, without credentials.
    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    /// A new connection, within the timeout.
    pub(crate) async fn connect(&self) -> Result<MultiplexedConnection, MonitorError> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        self.bounded(async {
            self.client.get_multiplexed_async_connection_with_config(&config).await.map_err(|e| self.error(&e))
        })
        .await
    }

    /// Runs `work` under the timeout, mapping expiry to a `Timeout` error.
    pub(crate) async fn bounded<T>(
        &self,
        work: impl Future<Output = Result<T, MonitorError>>,
    ) -> Result<T, MonitorError> {
        match tokio::time::timeout(self.timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(MonitorError::new(
                ErrorKind::Timeout,
                format!(
                    "Redis at {} did not answer within {}",
                    self.addr,
                    resee_ops_core::serde_duration::format_duration(self.timeout)
                ),
            )),
        }
    }

    /// A secret-free error from a client error.
    pub(crate) fn error(&self, e: &redis::RedisError) -> MonitorError {
        if let Some(tls) = crate::postgres::rustls_refusal(e, self.url.ssl_mode()) {
            let message = self.url.scrub(format!("Redis at {}: {}", self.addr, tls.message()));
            return MonitorError::new(tls.kind(), message)
                .with_temporary(false)
                .with_code(tls.code().unwrap_or_default());
        }
        let kind = if e.is_timeout() {
            ErrorKind::Timeout
        } else if e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped() {
            ErrorKind::Unavailable
        } else {
            ErrorKind::Unexpected
        };
        let err = MonitorError::new(kind, self.url.scrub(format!("Redis at {}: {e}", self.addr)));
        match e.code() {
            Some(code) => err.with_code(code),
            None => err,
        }
    }
}

/// The client for `url`: plain for `redis://` and `redis+unix://`; for `rediss://`, TLS (rustls) as its
/// `sslmode` says (see [`RedisConfig`]).
fn client(url: &ConnectionUrl) -> Result<redis::Client, MonitorError> {
    use redis::IntoConnectionInfo as _;
    let bad = |e: redis::RedisError| {
        invalid_config(url.scrub(format!("invalid Redis URL: {}", e.detail().unwrap_or("unparsable"))))
    };
    if url.scheme() != resee_ops_core::Scheme::RedisTls {
        return redis::Client::open(url.expose()).map_err(bad);
    }
    install_crypto_provider();
    let mode = url.ssl_mode();
    let root = url.param("sslrootcert").filter(|r| !r.is_empty() && *r != "system");
    let mut text = url.expose();
    if mode == SslMode::Require && root.is_none() {
        // No certificate check at all (redis-rs' `#insecure`), as libpq's `require`.
        text.push_str("#insecure");
    }
    let info = text.into_connection_info().map_err(bad)?;
    let read = |param: &str| -> Result<Option<Vec<u8>>, MonitorError> {
        match url.param(param).filter(|p| !p.is_empty() && *p != "system") {
            Some(path) => {
                std::fs::read(path).map(Some).map_err(|e| invalid_config(format!("cannot read {param} {path}: {e}")))
            }
            None => Ok(None),
        }
    };
    let client_tls = match (read("sslcert")?, read("sslkey")?) {
        (Some(client_cert), Some(client_key)) => Some(redis::ClientTlsConfig { client_cert, client_key }),
        (None, None) => None,
        _ => return Err(invalid_config("sslcert and sslkey must be given together")),
    };
    let certs = redis::TlsCertificates { client_tls, root_cert: read("sslrootcert")? };
    let client = redis::Client::build_with_tls(info, certs).map_err(bad)?;
    if mode == SslMode::VerifyFull || (mode == SslMode::Require && root.is_none()) {
        return Ok(client);
    }
    // verify-ca, and require with a root certificate (as libpq): the chain is checked, the host name not.
    let info = client.get_connection_info().clone();
    let mut addr = info.addr().clone();
    addr.set_danger_accept_invalid_hostnames(true);
    redis::Client::open(info.set_addr(addr)).map_err(bad)
}

/// redis-rs builds its rustls configuration with the process-wide default provider: make it aws-lc-rs
/// (the workspace's one TLS provider) unless the application installed one.
fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another installer is fine: a provider is installed either way.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
}

/// Checks Redis with `PING` over a new connection on every check (for the same reason as
/// [`PostgresProbe`](crate::PostgresProbe)). Observed value: the round trip in milliseconds.
#[derive(Clone, Debug)]
pub struct RedisProbe {
    name: String,
    critical: bool,
    target: RedisTarget,
}

impl RedisProbe {
    /// Builds a probe named `redis`; see [`RedisConfig::probe`].
    pub fn from_config(config: RedisConfig) -> Result<Self, MonitorError> {
        config.probe()
    }

    /// Renames the probe.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets whether the probe is critical (default `true`).
    pub fn with_critical(mut self, critical: bool) -> Self {
        self.critical = critical;
        self
    }

    /// Connects and sends `PING` within the timeout; returns the round-trip time.
    pub async fn ping(&self) -> Result<Duration, MonitorError> {
        let started = Instant::now();
        let t = &self.target;
        t.bounded(async {
            let mut conn = t.connect().await?;
            let pong: String = redis::cmd("PING").query_async(&mut conn).await.map_err(|e| t.error(&e))?;
            if pong == "PONG" {
                Ok(started.elapsed())
            } else {
                Err(MonitorError::new(ErrorKind::Unexpected, format!("Redis at {}: unexpected PING reply", t.addr())))
            }
        })
        .await
    }
}

#[async_trait]
impl HealthProbe for RedisProbe {
    fn alert_text(&self, outcome: &ProbeOutcome, resolved: bool) -> resee_ops_core::ProbeAlertText {
        crate::AlertText::Failed("Redis connection".into()).alert_text(outcome, resolved)
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn is_critical(&self) -> bool {
        self.critical
    }

    async fn check(&self) -> ProbeOutcome {
        match self.ping().await {
            Ok(rtt) => ProbeOutcome::up().with_observed(round2(rtt.as_secs_f64() * 1000.0), "ms"),
            Err(e) => ProbeOutcome::down(e.message()),
        }
    }
}
