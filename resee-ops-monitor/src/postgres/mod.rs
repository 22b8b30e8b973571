//! PostgreSQL connections: the one place in resee-ops where core's
//! [`ConnectionUrl`] becomes a `tokio-postgres` connection, TLS included.
//!
//! The backup's preflight (`resee-ops-backup`) and the monitor's probe and SQL metrics (`resee-ops-monitor`)
//! connect through [`PgConnector`], so one `DATABASE_URL` means the same host, user, database and TLS
//! mode in both, and the same as for `pg_dump`, which gets the same `sslmode`/`sslrootcert`/`sslcert`/
//! `sslkey` through libpq's `PG*` variables.
//!
//! # TLS (libpq's `sslmode`)
//!
//! TLS is rustls with the aws-lc-rs provider (the one reqwest already uses: one TLS stack, no OpenSSL).
//!
//! | `sslmode` | TLS | the server's certificate |
//! |---|---|---|
//! | `disable` | never | — |
//! | `allow`, `prefer` (default) | if the server offers it, else plain | not checked (as libpq) |
//! | `require` | always; a server without TLS is refused | not checked, unless a root certificate is given (`sslrootcert`, or `~/.postgresql/root.crt` exists): then as `verify-ca` (as libpq) |
//! | `verify-ca` | always | signed by a trusted root |
//! | `verify-full` | always | signed by a trusted root **and** naming the host |
//!
//! Trusted roots: the PEM file `sslrootcert` names, `sslrootcert=system` for the operating system's store,
//! else `~/.postgresql/root.crt`; `verify-ca`/`verify-full` without any of them is an
//! [`ErrorKind::InvalidConfig`] error naming the fix. `sslcert` and `sslkey` (PEM) give a client
//! certificate. `allow` is treated as `prefer` (TLS first). Over a Unix socket there is no TLS.
//!
//! A refused certificate (unknown issuer, wrong host name, expired) and a server without TLS under
//! `require` and stronger are permanent [`ErrorKind::InvalidConfig`] errors (see [`tls_error`]): retrying
//! does not change a certificate.
//!
//! ```no_run
//! # async fn run() -> Result<(), resee_ops_core::Error> {
//! use std::time::Duration;
//! use resee_ops_core::ConnectionUrl;
//! use resee_ops_monitor::postgres::PgConnector;
//!
//! let url = ConnectionUrl::parse("postgres://app@db.internal/app?sslmode=verify-full&sslrootcert=/etc/ssl/db-ca.pem")?;
//! let connector = PgConnector::new(&url, Duration::from_secs(5), "my-app")?;
//! let conn = connector.connect().await.map_err(|e| connector.error(&e))?;
//! let rows = conn.client().simple_query("SELECT 1").await.map_err(|e| connector.error(&e))?;
//! # drop(rows); Ok(()) }
//! ```
//!
//! This module is a building block of the resee-ops crates (the backup's preflight uses it too); its API
//! follows their needs.

mod tls;

use std::time::Duration;

use resee_ops_core::{ConnectionUrl, Error, ErrorKind, Scheme, SslMode};
use tokio_postgres_rustls::MakeRustlsConnect;

pub use tls::{TLS_CERTIFICATE_REFUSED, TLS_HANDSHAKE_FAILED, TLS_NOT_SUPPORTED, rustls_refusal, tls_error};

/// How to connect to one PostgreSQL server: the client configuration and the TLS connector built from a
/// [`ConnectionUrl`]. Cheap to clone; `Debug` shows the target and the TLS mode, never the password.
#[derive(Clone)]
pub struct PgConnector {
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    url: ConnectionUrl,
    target: String,
}

impl std::fmt::Debug for PgConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConnector")
            .field("target", &self.target)
            .field("sslmode", &self.url.ssl_mode())
            .finish_non_exhaustive()
    }
}

impl PgConnector {
    /// The connection `url` describes: host (or socket directory), port, user, password, database,
    /// `application_name` (default `application`), `options`, `channel_binding` and TLS (see the
    /// [crate docs](crate)), with `connect_timeout` for each connection attempt.
    ///
    /// An [`ErrorKind::InvalidConfig`] error when `url` is not a PostgreSQL one, or a certificate file
    /// cannot be read; the message names the file, never the password.
    pub fn new(url: &ConnectionUrl, connect_timeout: Duration, application: &str) -> Result<Self, Error> {
        if url.scheme() != Scheme::Postgres {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                "a PostgreSQL connection needs a postgres:// or key=value connection string",
            ));
        }
        let mut pg = tokio_postgres::Config::new();
        if url.is_unix_socket() {
            pg.host_path(url.host());
        } else {
            pg.host(url.host());
        }
        pg.port(url.port()).dbname(url.database()).connect_timeout(connect_timeout);
        if let Some(user) = url.user() {
            pg.user(user);
        }
        if let Some(pw) = url.password() {
            pg.password(pw.expose());
        }
        pg.application_name(url.param("application_name").unwrap_or(application));
        if let Some(options) = url.param("options") {
            pg.options(options);
        }
        if let Some(binding) = url.param("channel_binding") {
            use tokio_postgres::config::ChannelBinding;
            pg.channel_binding(match binding {
                "disable" => ChannelBinding::Disable,
                "prefer" => ChannelBinding::Prefer,
                "require" => ChannelBinding::Require,
                _ => {
                    return Err(Error::new(
                        ErrorKind::InvalidConfig,
                        "channel_binding must be disable, prefer or require",
                    ));
                }
            });
        }
        pg.ssl_mode(match url.ssl_mode() {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Allow | SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        let tls = MakeRustlsConnect::new(tls::client_config(url)?);
        Ok(Self { config: pg, tls, url: url.clone(), target: url.target() })
    }

    /// Where it connects (`db.internal:5432/app`), without user or password.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The connection string it was built from (redacted when printed).
    pub fn url(&self) -> &ConnectionUrl {
        &self.url
    }

    /// Opens a connection. Its background task runs until the returned [`PgConnection`] is dropped.
    /// Errors are the client's own; [`error`](Self::error) turns one into a secret-free typed error.
    pub async fn connect(&self) -> Result<PgConnection, tokio_postgres::Error> {
        let (client, connection) = self.config.connect(self.tls.clone()).await?;
        let task = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "PostgreSQL connection ended with an error");
            }
        });
        Ok(PgConnection { client, task })
    }

    /// A typed error for a failure of [`connect`](Self::connect) or of a query, with the SQLSTATE as its
    /// code: TLS refusals as [`tls_error`] classifies them (permanent), server errors as
    /// [`ErrorKind::Unexpected`], anything else (refused, reset, closed) as a temporary
    /// [`ErrorKind::Unavailable`]. The message starts with `PostgreSQL at <target>:` and never carries the
    /// password.
    pub fn error(&self, e: &tokio_postgres::Error) -> Error {
        let at = format!("PostgreSQL at {}", self.target);
        if let Some(tls) = tls_error(e, &self.url) {
            return Error::new(tls.kind(), self.url.scrub(format!("{at}: {}", tls.message())))
                .with_temporary(false)
                .with_code(tls.code().unwrap_or_default());
        }
        let (kind, detail) = match e.as_db_error() {
            Some(db) => (ErrorKind::Unexpected, format!("{} {}: {}", db.severity(), db.code().code(), db.message())),
            None if e.is_closed() => (ErrorKind::Unavailable, "connection closed".to_owned()),
            None => (ErrorKind::Unavailable, with_causes(e)),
        };
        let err = Error::new(kind, self.url.scrub(format!("{at}: {detail}")));
        match e.code() {
            Some(code) => err.with_code(code.code()),
            None => err,
        }
    }
}

/// An open connection: the client, and its background task, aborted when this is dropped.
#[derive(Debug)]
pub struct PgConnection {
    client: tokio_postgres::Client,
    task: tokio::task::JoinHandle<()>,
}

impl PgConnection {
    /// The client.
    pub fn client(&self) -> &tokio_postgres::Client {
        &self.client
    }
}

impl Drop for PgConnection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `e` and its causes, `outer: inner: innermost` (tokio-postgres leaves the cause out of `Display`).
pub fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let part = c.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = c.source();
    }
    text
}
