//! [`MonitorError`]: the one error type of this crate.

use std::fmt;

use resee_ops_core::ErrorKind;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong in this crate, in terms a caller can act on.
///
/// The list may grow, so match with a wildcard arm.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MonitorErrorKind {
    /// A configuration value is missing or malformed (an unparsable URL, thresholds out of order).
    InvalidConfig,
    /// The server is not reachable, refused the connection or broke it.
    Unavailable,
    /// The server did not answer in time.
    Timeout,
    /// The server answered, but with an error or something unexpected.
    Server,
    /// A local I/O error (for example `statvfs` on a missing path).
    Io,
}

impl MonitorErrorKind {
    /// A short, stable, snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidConfig => "invalid_config",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::Server => "server",
            Self::Io => "io",
        }
    }

    const fn default_temporary(self) -> bool {
        matches!(self, Self::Unavailable | Self::Timeout)
    }
}

impl fmt::Display for MonitorErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of `resee-ops-monitor`.
///
/// Messages are free of secrets: connection strings are never included, and passwords are scrubbed from
/// anything a client library reports. Converts into [`resee_ops_core::Error`].
///
/// ```
/// use resee_ops_monitor::{MonitorError, MonitorErrorKind};
///
/// let err = MonitorError::new(MonitorErrorKind::Timeout, "redis did not answer within 2s");
/// assert!(err.is_temporary());
/// let core: resee_ops_core::Error = err.into();
/// assert_eq!(core.kind(), resee_ops_core::ErrorKind::Timeout);
/// ```
#[derive(thiserror::Error)]
#[error("{kind}: {message}")]
pub struct MonitorError {
    kind: MonitorErrorKind,
    message: String,
    temporary: bool,
    #[source]
    source: Option<BoxError>,
}

impl MonitorError {
    /// A new error; whether it is temporary follows the kind (`Unavailable` and `Timeout` are).
    pub fn new(kind: MonitorErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), temporary: kind.default_temporary(), source: None }
    }

    /// Attaches the underlying cause (its `Display` must be free of secrets).
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> MonitorErrorKind {
        self.kind
    }

    /// The message, without the kind prefix.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether trying again later may succeed.
    pub fn is_temporary(&self) -> bool {
        self.temporary
    }

    pub(crate) fn invalid_config(message: impl Into<String>) -> Self {
        Self::new(MonitorErrorKind::InvalidConfig, message)
    }
}

impl fmt::Debug for MonitorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("MonitorError");
        d.field("kind", &self.kind).field("message", &self.message).field("temporary", &self.temporary);
        if let Some(source) = &self.source {
            // Display, not Debug: a client library's Debug output may hold connection details.
            d.field("source", &format_args!("{source}"));
        }
        d.finish()
    }
}

impl From<MonitorError> for resee_ops_core::Error {
    fn from(err: MonitorError) -> Self {
        let kind = match err.kind {
            MonitorErrorKind::InvalidConfig => ErrorKind::InvalidConfig,
            MonitorErrorKind::Unavailable => ErrorKind::Unavailable,
            MonitorErrorKind::Timeout => ErrorKind::Timeout,
            MonitorErrorKind::Server => ErrorKind::Unexpected,
            MonitorErrorKind::Io => ErrorKind::Io,
        };
        let temporary = err.temporary;
        let core = resee_ops_core::Error::new(kind, err.message.clone()).with_source(err);
        if temporary { core.temporary() } else { core.permanent() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_into_core_error_keeping_temporariness() {
        let e = MonitorError::new(MonitorErrorKind::Server, "READONLY").with_source(std::io::Error::other("inner"));
        assert!(!e.is_temporary());
        let core: resee_ops_core::Error = e.into();
        assert_eq!(core.kind(), ErrorKind::Unexpected);
        assert!(!core.is_temporary());
        assert_eq!(core.message(), "READONLY");

        let e = MonitorError::new(MonitorErrorKind::Unavailable, "refused");
        let core: resee_ops_core::Error = e.into();
        assert!(core.is_temporary());
        assert_eq!(core.kind(), ErrorKind::Unavailable);
    }

    #[test]
    fn debug_shows_source_as_text() {
        let e = MonitorError::invalid_config("bad").with_source(std::io::Error::other("why"));
        let dbg = format!("{e:?}");
        assert!(dbg.contains("why") && dbg.contains("InvalidConfig"), "{dbg}");
        assert_eq!(e.to_string(), "invalid_config: bad");
    }
}
