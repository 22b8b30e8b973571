//! A `tokio_postgres::Config` from core's [`ConnectionUrl`].

use std::time::Duration;

use resee_ops_core::{ConnectionUrl, SslMode};

use crate::MonitorError;
use crate::error::invalid_config;

/// The client configuration for `url`: host (or socket directory), port, user, password, database,
/// `sslmode`, `application_name` (default `app`) and `options`, with `connect_timeout`.
pub(crate) fn config(
    url: &ConnectionUrl,
    connect_timeout: Duration,
    app: &str,
) -> Result<tokio_postgres::Config, MonitorError> {
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
    pg.application_name(url.param("application_name").unwrap_or(app));
    if let Some(options) = url.param("options") {
        pg.options(options);
    }
    pg.ssl_mode(match url.ssl_mode() {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Allow | SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
        _ => return Err(invalid_config("unsupported sslmode")),
    });
    Ok(pg)
}
