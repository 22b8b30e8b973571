//! [`BackupError`]: this crate's name for the workspace's one error type, and the codes it sets.

use resee_ops_core::{Error, ErrorKind};

/// The error of every fallible operation in this crate: [`resee_ops_core::Error`] itself.
///
/// What a caller acts on: [`kind`](Error::kind) (`PermissionDenied` for a refused login,
/// `NotFound` for a missing database, `Integrity` for a backup that failed verification — see
/// [`is_integrity`](Error::is_integrity)), [`is_temporary`](Error::is_temporary) (what the run retries),
/// and [`code`](Error::code): the server's SQLSTATE when it sent one (`28P01`, `3D000`, `53300`, …) or
/// one of [`codes`] for the causes that are not the server's.
///
/// Messages never contain the database password: connection details are never formatted into them, and
/// `pg_dump`'s captured stderr is scrubbed of the password before it is attached.
///
/// ```
/// use resee_ops_backup::PgDumpBackup;
/// use resee_ops_core::ErrorKind;
/// use resee_ops_core::testing::InMemoryBackupTarget;
///
/// let err = PgDumpBackup::builder()
///     .with_url("postgres://app:secret@127.0.0.1/db")
///     .with_environment("../etc")
///     .with_target(InMemoryBackupTarget::new())
///     .build()
///     .unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::InvalidInput);
/// assert!(!err.is_temporary());
/// ```
pub type BackupError = Error;

/// `Result` with [`BackupError`].
pub type Result<T, E = BackupError> = std::result::Result<T, E>;

/// The [`code`](Error::code)s this crate sets for causes that are not a server's SQLSTATE.
pub mod codes {
    /// No `pg_dump` binary was found (kind `NotFound`).
    pub const PG_DUMP_NOT_FOUND: &str = "pg_dump_not_found";
    /// The `pg_dump` found is older than the server (kind `InvalidConfig`); the message says what to install.
    pub const PG_DUMP_TOO_OLD: &str = "pg_dump_too_old";
    /// `pg_dump` failed for a reason not known to be permanent (kind `Unexpected`, temporary).
    pub const DUMP_FAILED: &str = "dump_failed";
    /// The run was skipped: another run of the same backup holds the single-run lock (kind `AlreadyExists`,
    /// permanent). Seen only inside a run, which reports it as `BackupStatus::Skipped`, not as an error.
    pub const SKIPPED: &str = "backup_skipped";
    /// Restoring a backup failed (kind `Unexpected`, permanent): `psql` reported an error; the message holds it.
    pub const RESTORE_FAILED: &str = "restore_failed";
}

pub(crate) fn invalid_config(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidConfig, message)
}

pub(crate) fn invalid_name(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidInput, message)
}

pub(crate) fn integrity(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Integrity, message)
}

pub(crate) fn restore_failed(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Unexpected, message).with_code(codes::RESTORE_FAILED).with_temporary(false)
}

pub(crate) fn pg_dump_not_found(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::NotFound, message).with_code(codes::PG_DUMP_NOT_FOUND)
}

/// A client tool (`pg_dump`, `psql`) that could not be started: the OS error is the source and is not
/// repeated in the message, so `{:#}` prints it once (issue 16, point 19).
pub(crate) fn cannot_start(path: &std::path::Path, err: std::io::Error) -> Error {
    pg_dump_not_found(format!("cannot start {}", path.display())).with_source(err)
}

pub(crate) fn pg_dump_too_old(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidConfig, message).with_code(codes::PG_DUMP_TOO_OLD)
}
