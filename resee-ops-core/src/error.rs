//! The error type of `resee-ops-core`, shared by the traits every adapter implements.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// What went wrong, in terms a caller can act on.
///
/// The list grows as adapters need it, so match with a wildcard arm.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A configuration value is missing or malformed. Fix the configuration; retrying will not help.
    InvalidConfig,
    /// An argument (a name, a value) was rejected before anything was attempted.
    InvalidInput,
    /// The named thing (artifact, database, channel) does not exist.
    NotFound,
    /// The named thing exists already and will not be overwritten.
    AlreadyExists,
    /// Credentials were refused or permissions are missing.
    PermissionDenied,
    /// The remote side is not reachable or not answering right now.
    Unavailable,
    /// An operation did not finish within its time limit.
    Timeout,
    /// The remote side asked us to slow down.
    RateLimited,
    /// The storage is full or a quota was reached.
    StorageFull,
    /// Data failed an integrity check (checksum, truncation, missing trailer).
    Integrity,
    /// The component was shut down and accepts no more work.
    Closed,
    /// A local I/O error that fits no other kind.
    Io,
    /// Anything else; the message says what.
    Unexpected,
}

impl ErrorKind {
    /// Whether errors of this kind are usually worth retrying.
    ///
    /// [`Error::is_temporary`] starts from this default; a producer that knows better overrides it with
    /// [`Error::with_temporary`].
    pub const fn default_temporary(self) -> bool {
        matches!(self, Self::Unavailable | Self::Timeout | Self::RateLimited)
    }

    /// A short, stable, snake_case name for logs and metrics labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidConfig => "invalid_config",
            Self::InvalidInput => "invalid_input",
            Self::NotFound => "not_found",
            Self::AlreadyExists => "already_exists",
            Self::PermissionDenied => "permission_denied",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::RateLimited => "rate_limited",
            Self::StorageFull => "storage_full",
            Self::Integrity => "integrity",
            Self::Closed => "closed",
            Self::Io => "io",
            Self::Unexpected => "unexpected",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
type SharedError = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// The one error type of **resee-ops**: of `resee-ops-core`, of every trait method adapters implement, and
/// of the adapters themselves (`resee_ops_slack::SlackError`, `resee_ops_backup::BackupError` and
/// `resee_ops_monitor::MonitorError` are this type).
///
/// It carries a [`kind`](Error::kind), a human-readable message, whether the operation is worth retrying
/// ([`is_temporary`](Error::is_temporary)), and, where the other side said more, its own
/// [`code`](Error::code) (a SQLSTATE such as `28P01`, Slack's error string such as
/// `channel_is_archived`, a Redis error prefix), an HTTP [`status`](Error::status) and a
/// [`retry_after`](Error::retry_after) hint. Messages never contain secrets: adapters strip URLs and
/// passwords before they build one.
///
/// The cause is printed once: `Display` shows kind, message and code, never the source; the source is
/// reachable through [`source()`](std::error::Error::source), and the alternate form (`{:#}`) prints the
/// whole chain on one line, for logs.
///
/// ```
/// use std::error::Error as _;
/// use resee_ops_core::{Error, ErrorKind};
///
/// let err = Error::new(ErrorKind::Unavailable, "database is not accepting connections");
/// assert!(err.is_temporary());
/// assert_eq!(err.kind(), ErrorKind::Unavailable);
///
/// let err = Error::new(ErrorKind::Io, "cannot write the manifest")
///     .with_source(std::io::Error::other("disk hiccup"))
///     .with_temporary(true);
/// assert!(err.is_temporary());
/// assert_eq!(err.to_string(), "io: cannot write the manifest");
/// assert_eq!(err.source().unwrap().to_string(), "disk hiccup");
/// assert_eq!(format!("{err:#}"), "io: cannot write the manifest: disk hiccup");
///
/// let err = Error::new(ErrorKind::NotFound, "Slack refused the message").with_status(410).with_code("channel_is_archived");
/// assert_eq!(err.to_string(), "not_found: Slack refused the message (HTTP 410: channel_is_archived)");
/// ```
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    temporary: bool,
    code: Option<String>,
    status: Option<u16>,
    retry_after: Option<Duration>,
    source: Option<SharedError>,
}

impl Error {
    /// A new error of `kind`; whether it is temporary follows [`ErrorKind::default_temporary`].
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            temporary: kind.default_temporary(),
            code: None,
            status: None,
            retry_after: None,
            source: None,
        }
    }

    /// An I/O error while doing `context` (`"cannot create /backups/x.tmp"`): the kind follows the I/O
    /// error's kind, the I/O error becomes the source.
    pub fn io(context: impl Into<String>, err: std::io::Error) -> Self {
        Self::new(io_kind(err.kind()), context).with_source(err)
    }

    /// Attaches the underlying cause. Its `Display` must be free of secrets too, and the message should
    /// not repeat it (it is printed through [`source()`](std::error::Error::source)).
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(SharedError::from(source.into()));
        self
    }

    /// Sets the other side's own error code: a SQLSTATE (`28P01`), Slack's error string, a Redis error
    /// prefix (`READONLY`), or an adapter's stable reason (`pg_dump_too_old`).
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into()).filter(|c| !c.is_empty());
        self
    }

    /// Sets the HTTP status the other side answered with.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Sets how long the other side asked us to wait (a `Retry-After`).
    pub fn with_retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    /// Prefixes the message with `context` (`"attempt 2: "` + message).
    pub fn with_context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// Sets whether the error is worth retrying.
    pub fn with_temporary(mut self, temporary: bool) -> Self {
        self.temporary = temporary;
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without the kind prefix and the code suffix that `Display` adds.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether retrying the same operation later may succeed.
    pub fn is_temporary(&self) -> bool {
        self.temporary
    }

    /// Whether this is an integrity failure (data written but corrupt, truncated or incomplete).
    pub fn is_integrity(&self) -> bool {
        self.kind == ErrorKind::Integrity
    }

    /// The other side's own error code, if known (see [`with_code`](Self::with_code)).
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// The HTTP status the other side answered with, if it answered over HTTP.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// How long the other side asked us to wait, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)?;
        match (self.status, &self.code) {
            (Some(status), Some(code)) => write!(f, " (HTTP {status}: {code})")?,
            (Some(status), None) => write!(f, " (HTTP {status})")?,
            (None, Some(code)) => write!(f, " ({code})")?,
            (None, None) => {}
        }
        if f.alternate() {
            let mut cause = std::error::Error::source(self);
            while let Some(c) = cause {
                write!(f, ": {c}")?;
                cause = c.source();
            }
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl fmt::Debug for Error {
    /// The one redacting `Debug` of the workspace: the source is shown by its `Display`, since
    /// third-party `Debug` output may hold URLs or other secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message).field("temporary", &self.temporary);
        if let Some(code) = &self.code {
            d.field("code", code);
        }
        if let Some(status) = self.status {
            d.field("status", &status);
        }
        if let Some(wait) = self.retry_after {
            d.field("retry_after", &wait);
        }
        if let Some(source) = &self.source {
            d.field("source", &format_args!("{source}"));
        }
        d.finish()
    }
}

fn io_kind(kind: std::io::ErrorKind) -> ErrorKind {
    use std::io::ErrorKind as Io;
    match kind {
        Io::NotFound => ErrorKind::NotFound,
        Io::AlreadyExists => ErrorKind::AlreadyExists,
        Io::PermissionDenied | Io::ReadOnlyFilesystem => ErrorKind::PermissionDenied,
        Io::StorageFull | Io::QuotaExceeded | Io::FileTooLarge => ErrorKind::StorageFull,
        Io::TimedOut => ErrorKind::Timeout,
        Io::ConnectionRefused | Io::ConnectionReset | Io::ConnectionAborted | Io::NotConnected => {
            ErrorKind::Unavailable
        }
        Io::InvalidInput | Io::InvalidFilename => ErrorKind::InvalidInput,
        Io::UnexpectedEof | Io::InvalidData => ErrorKind::Integrity,
        _ => ErrorKind::Io,
    }
}

impl From<std::io::Error> for Error {
    /// The I/O error is the source; the message names its kind only, so the cause is printed once.
    fn from(err: std::io::Error) -> Self {
        let message = format!("I/O error ({})", err.kind());
        Self::io(message, err)
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_map_to_kinds() {
        let e: Error = std::io::Error::from(std::io::ErrorKind::StorageFull).into();
        assert_eq!(e.kind(), ErrorKind::StorageFull);
        assert!(!e.is_temporary());
        let e: Error = std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into();
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.is_temporary());
    }

    #[test]
    fn clone_keeps_the_source() {
        let e = Error::new(ErrorKind::Io, "outer").with_source(std::io::Error::other("inner"));
        let c = e.clone();
        let source = std::error::Error::source(&c).unwrap();
        assert_eq!(source.to_string(), "inner");
        assert!(source.downcast_ref::<std::io::Error>().is_some());
        assert!(format!("{c:?}").contains("inner"));
    }

    /// Point 19: the cause is printed once, whether one prints `Display` and walks `source()` (as error
    /// reporters do) or uses the one-line alternate form.
    #[test]
    fn the_cause_is_printed_once() {
        let cause = "No such file or directory (os error 2)";
        let errors = [
            Error::from(std::io::Error::new(std::io::ErrorKind::NotFound, cause)),
            Error::io("cannot open /x", std::io::Error::new(std::io::ErrorKind::NotFound, cause)),
        ];
        for e in errors {
            let mut report = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                report.push_str(&format!(": {s}"));
                source = s.source();
            }
            assert_eq!(report.matches(cause).count(), 1, "{report}");
            assert_eq!(format!("{e:#}"), report);
            assert_eq!(e.kind(), ErrorKind::NotFound);
        }
    }
}
