//! The error type of `resee-ops-core`, shared by the traits every adapter implements.

use std::fmt;

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
    /// [`Error::temporary`] or [`Error::permanent`].
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

/// The error of `resee-ops-core` and of every trait method adapters implement.
///
/// It carries a [`kind`](Error::kind), a human-readable message, an optional source and whether the
/// operation is worth retrying ([`is_temporary`](Error::is_temporary)). Messages must never contain
/// secrets: adapters strip URLs and passwords before they build one.
///
/// ```
/// use resee_ops_core::{Error, ErrorKind};
///
/// let err = Error::new(ErrorKind::Unavailable, "database is not accepting connections");
/// assert!(err.is_temporary());
/// assert_eq!(err.kind(), ErrorKind::Unavailable);
///
/// let err = Error::new(ErrorKind::Io, "disk hiccup").temporary();
/// assert!(err.is_temporary());
/// assert_eq!(err.to_string(), "io: disk hiccup");
/// ```
#[derive(thiserror::Error)]
#[error("{kind}: {message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    temporary: bool,
    #[source]
    source: Option<BoxError>,
}

impl Error {
    /// A new error of `kind`; whether it is temporary follows [`ErrorKind::default_temporary`].
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), temporary: kind.default_temporary(), source: None }
    }

    /// Attaches the underlying cause. The source's `Display` must be free of secrets too.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Marks the error as worth retrying.
    pub fn temporary(mut self) -> Self {
        self.temporary = true;
        self
    }

    /// Marks the error as not worth retrying.
    pub fn permanent(mut self) -> Self {
        self.temporary = false;
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without the kind prefix that `Display` adds.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether retrying the same operation later may succeed.
    pub fn is_temporary(&self) -> bool {
        self.temporary
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message).field("temporary", &self.temporary);
        if let Some(source) = &self.source {
            // Display, not Debug: third-party Debug output may hold URLs or other secrets.
            d.field("source", &format_args!("{source}"));
        }
        d.finish()
    }
}

impl Clone for Error {
    /// Clones kind, message and temporariness; the source is kept as its rendered text.
    fn clone(&self) -> Self {
        Self {
            kind: self.kind,
            message: self.message.clone(),
            temporary: self.temporary,
            source: self.source.as_ref().map(|s| BoxError::from(s.to_string())),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        use std::io::ErrorKind as Io;
        let kind = match err.kind() {
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
        };
        let message = err.to_string();
        Self::new(kind, message).with_source(err)
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
    fn clone_keeps_source_text() {
        let e = Error::new(ErrorKind::Io, "outer").with_source(std::io::Error::other("inner"));
        let c = e.clone();
        assert_eq!(std::error::Error::source(&c).unwrap().to_string(), "inner");
        assert!(format!("{c:?}").contains("inner"));
    }
}
