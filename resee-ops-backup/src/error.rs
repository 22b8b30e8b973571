//! The one error type of this crate.

use std::fmt;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong with a backup, in terms a caller can act on.
///
/// The list grows, so match with a wildcard arm.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackupErrorKind {
    /// A configuration value is missing or malformed.
    InvalidConfig,
    /// A name component (database, environment) or artifact name was rejected.
    InvalidName,
    /// No `pg_dump` binary was found.
    PgDumpNotFound,
    /// The `pg_dump` found is older than the server; the message says what to install.
    PgDumpTooOld,
    /// The server is not reachable, starting up or shutting down. Temporary.
    Unavailable,
    /// The server refused the credentials or the role lacks a privilege.
    AuthFailed,
    /// The database does not exist.
    DatabaseNotFound,
    /// `pg_dump` failed (non-zero exit, killed, or its output is not a complete dump).
    DumpFailed,
    /// The connection, a lock or the whole run took longer than allowed.
    Timeout,
    /// The backup target is full.
    StorageFull,
    /// The target refused the write (permissions, missing directory).
    PermissionDenied,
    /// An artifact of that name exists already.
    AlreadyExists,
    /// The named artifact does not exist.
    NotFound,
    /// The artifact failed verification: corrupt, truncated, incomplete dump, mismatching manifest.
    Integrity,
    /// Another local I/O or storage error.
    Io,
}

impl BackupErrorKind {
    /// A short, stable, snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidConfig => "invalid_config",
            Self::InvalidName => "invalid_name",
            Self::PgDumpNotFound => "pg_dump_not_found",
            Self::PgDumpTooOld => "pg_dump_too_old",
            Self::Unavailable => "unavailable",
            Self::AuthFailed => "auth_failed",
            Self::DatabaseNotFound => "database_not_found",
            Self::DumpFailed => "dump_failed",
            Self::Timeout => "timeout",
            Self::StorageFull => "storage_full",
            Self::PermissionDenied => "permission_denied",
            Self::AlreadyExists => "already_exists",
            Self::NotFound => "not_found",
            Self::Integrity => "integrity",
            Self::Io => "io",
        }
    }

    const fn default_temporary(self) -> bool {
        matches!(self, Self::Unavailable | Self::Timeout)
    }
}

impl fmt::Display for BackupErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of every fallible operation in this crate.
///
/// Messages never contain the database password: connection details are never formatted into them, and
/// `pg_dump`'s captured stderr is scrubbed of the password before it is attached.
///
/// ```
/// use resee_ops_backup::{BackupError, BackupErrorKind};
/// let e = BackupError::new(BackupErrorKind::Unavailable, "server is shutting down");
/// assert!(e.is_temporary());
/// let core: resee_ops_core::Error = e.into();
/// assert_eq!(core.kind(), resee_ops_core::ErrorKind::Unavailable);
/// ```
#[derive(thiserror::Error)]
#[error("{kind}: {message}")]
pub struct BackupError {
    kind: BackupErrorKind,
    message: String,
    temporary: bool,
    #[source]
    source: Option<BoxError>,
}

impl BackupError {
    /// A new error; whether it is temporary follows the kind (`Unavailable` and `Timeout` are).
    pub fn new(kind: BackupErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), temporary: kind.default_temporary(), source: None }
    }

    /// Attaches a cause. Its `Display` must be free of secrets.
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
    pub fn kind(&self) -> BackupErrorKind {
        self.kind
    }

    /// The message without the kind prefix.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether retrying later may succeed (server unreachable or shutting down, timeouts).
    pub fn is_temporary(&self) -> bool {
        self.temporary
    }

    /// Whether this is an integrity failure (the artifact was written but is not a good backup).
    pub fn is_integrity(&self) -> bool {
        self.kind == BackupErrorKind::Integrity
    }

    pub(crate) fn invalid_config(message: impl Into<String>) -> Self {
        Self::new(BackupErrorKind::InvalidConfig, message)
    }

    pub(crate) fn integrity(message: impl Into<String>) -> Self {
        Self::new(BackupErrorKind::Integrity, message)
    }

    pub(crate) fn io(context: &str, err: std::io::Error) -> Self {
        let kind = match err.kind() {
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded | std::io::ErrorKind::FileTooLarge => {
                BackupErrorKind::StorageFull
            }
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
                BackupErrorKind::PermissionDenied
            }
            std::io::ErrorKind::NotFound => BackupErrorKind::NotFound,
            std::io::ErrorKind::AlreadyExists => BackupErrorKind::AlreadyExists,
            _ => BackupErrorKind::Io,
        };
        Self::new(kind, format!("{context}: {err}")).with_source(err)
    }
}

impl Clone for BackupError {
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

impl fmt::Debug for BackupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("BackupError");
        d.field("kind", &self.kind).field("message", &self.message).field("temporary", &self.temporary);
        if let Some(source) = &self.source {
            d.field("source", &format_args!("{source}"));
        }
        d.finish()
    }
}

impl From<resee_ops_core::Error> for BackupError {
    fn from(err: resee_ops_core::Error) -> Self {
        use resee_ops_core::ErrorKind as K;
        let kind = match err.kind() {
            K::InvalidConfig => BackupErrorKind::InvalidConfig,
            K::InvalidInput => BackupErrorKind::InvalidName,
            K::NotFound => BackupErrorKind::NotFound,
            K::AlreadyExists => BackupErrorKind::AlreadyExists,
            K::PermissionDenied => BackupErrorKind::PermissionDenied,
            K::Unavailable => BackupErrorKind::Unavailable,
            K::Timeout => BackupErrorKind::Timeout,
            K::StorageFull => BackupErrorKind::StorageFull,
            K::Integrity => BackupErrorKind::Integrity,
            _ => BackupErrorKind::Io,
        };
        let temporary = err.is_temporary();
        let message = err.message().to_owned();
        let mut out = Self::new(kind, message).with_source(err);
        out.temporary = temporary;
        out
    }
}

impl From<BackupError> for resee_ops_core::Error {
    fn from(err: BackupError) -> Self {
        use resee_ops_core::ErrorKind as K;
        let kind = match err.kind {
            BackupErrorKind::InvalidConfig | BackupErrorKind::PgDumpNotFound | BackupErrorKind::PgDumpTooOld => {
                K::InvalidConfig
            }
            BackupErrorKind::InvalidName => K::InvalidInput,
            BackupErrorKind::Unavailable => K::Unavailable,
            BackupErrorKind::AuthFailed | BackupErrorKind::PermissionDenied => K::PermissionDenied,
            BackupErrorKind::DatabaseNotFound | BackupErrorKind::NotFound => K::NotFound,
            BackupErrorKind::DumpFailed => K::Unexpected,
            BackupErrorKind::Timeout => K::Timeout,
            BackupErrorKind::StorageFull => K::StorageFull,
            BackupErrorKind::AlreadyExists => K::AlreadyExists,
            BackupErrorKind::Integrity => K::Integrity,
            BackupErrorKind::Io => K::Io,
        };
        let temporary = err.temporary;
        let core = resee_ops_core::Error::new(kind, err.to_string()).with_source(err);
        if temporary { core.temporary() } else { core.permanent() }
    }
}

/// `Result` with [`BackupError`].
pub type Result<T, E = BackupError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_core_and_keep_temporariness() {
        let e = BackupError::new(BackupErrorKind::DumpFailed, "server closed the connection").temporary();
        let core: resee_ops_core::Error = e.into();
        assert_eq!(core.kind(), resee_ops_core::ErrorKind::Unexpected);
        assert!(core.is_temporary());
        let e = BackupError::new(BackupErrorKind::AuthFailed, "password authentication failed");
        assert!(!e.is_temporary());
        let core: resee_ops_core::Error = e.into();
        assert_eq!(core.kind(), resee_ops_core::ErrorKind::PermissionDenied);
        let back: BackupError = resee_ops_core::Error::new(resee_ops_core::ErrorKind::StorageFull, "full").into();
        assert_eq!(back.kind(), BackupErrorKind::StorageFull);
    }

    #[test]
    fn io_errors_are_classified() {
        let e = BackupError::io("write", std::io::Error::from(std::io::ErrorKind::StorageFull));
        assert_eq!(e.kind(), BackupErrorKind::StorageFull);
        let e = BackupError::io("create", std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        assert_eq!(e.kind(), BackupErrorKind::PermissionDenied);
        assert!(e.to_string().starts_with("permission_denied: create: "));
    }
}
