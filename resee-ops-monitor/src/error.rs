//! [`MonitorError`]: this crate's name for the workspace's one error type.

use resee_ops_core::{Error, ErrorKind};

/// The error of `resee-ops-monitor`: [`resee_ops_core::Error`] itself, so a probe's error needs no
/// conversion and keeps its kind, temporariness and code (a SQLSTATE from PostgreSQL, the error prefix
/// from Redis such as `READONLY`).
///
/// Messages are free of secrets: connection strings are never included, and passwords are scrubbed from
/// anything a client library reports.
///
/// ```
/// use resee_ops_core::ErrorKind;
/// use resee_ops_monitor::PostgresProbeConfig;
///
/// let err = PostgresProbeConfig::from_url("postgres://app:hunter2@db/app?weird=1").unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::InvalidConfig);
/// assert!(!err.is_temporary());
/// assert!(!err.to_string().contains("hunter2"));
/// ```
pub type MonitorError = Error;

pub(crate) fn invalid_config(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidConfig, message)
}
