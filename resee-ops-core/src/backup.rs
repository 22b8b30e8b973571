//! Backups: the [`BackupTarget`] trait, artifact names and metadata, and the report every backup run ends with.

use std::fmt::{self, Debug};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncRead;

use crate::{Error, ErrorKind};

/// A validated artifact name: one path component, safe on every target.
///
/// 1 to 255 bytes; no `/` or `\`; not `.` or `..`; no leading `.` (targets use that for temporaries);
/// no control characters.
///
/// ```
/// use resee_ops_core::ArtifactName;
/// let name = ArtifactName::new("resee_production_20251015_030000.sql.gz").unwrap();
/// assert_eq!(name.as_str(), "resee_production_20251015_030000.sql.gz");
/// assert!(ArtifactName::new("../etc/passwd").is_err());
/// assert!(ArtifactName::new(".hidden").is_err());
/// assert!(ArtifactName::new("a\nb").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ArtifactName(String);

impl ArtifactName {
    /// Validates `name`.
    pub fn new(name: impl Into<String>) -> Result<Self, Error> {
        let name = name.into();
        let invalid = |why: &str| Error::new(ErrorKind::InvalidInput, format!("invalid artifact name {name:?}: {why}"));
        if name.is_empty() || name.len() > 255 {
            return Err(invalid("must be 1 to 255 bytes long"));
        }
        if name.contains(['/', '\\']) {
            return Err(invalid("must not contain a path separator"));
        }
        if name.starts_with('.') {
            return Err(invalid("must not start with '.'"));
        }
        if name.chars().any(char::is_control) {
            return Err(invalid("must not contain control characters"));
        }
        Ok(Self(name))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ArtifactName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for ArtifactName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ArtifactName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for ArtifactName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::new(s)
    }
}

impl<'de> Deserialize<'de> for ArtifactName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::new(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// What a target knows about a committed artifact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ArtifactMeta {
    /// Its name.
    pub name: ArtifactName,
    /// Its size in bytes.
    pub size: u64,
    /// When it was committed (as the target records it).
    pub created: DateTime<Utc>,
}

impl ArtifactMeta {
    /// New metadata.
    pub fn new(name: ArtifactName, size: u64, created: DateTime<Utc>) -> Self {
        Self { name, size, created }
    }
}

/// A reader over a committed artifact.
pub type ArtifactReader = Box<dyn AsyncRead + Send + Unpin>;

/// An artifact being written. Nothing is visible under its name until it is published:
/// [`commit`](ArtifactWriter::commit) publishes at once; [`stage`](ArtifactWriter::stage) makes the bytes
/// durable under a temporary name first, so they can be read back and verified before
/// [`StagedArtifact::publish`]. [`abort`](ArtifactWriter::abort), a failed commit, or simply dropping the
/// writer leaves nothing under the final name (and removes the temporary data, at the latest on the target's
/// next [`sweep_incomplete`](BackupTarget::sweep_incomplete)).
#[async_trait]
pub trait ArtifactWriter: Send + Debug {
    /// Appends `buf`.
    async fn write(&mut self, buf: &[u8]) -> Result<(), Error>;

    /// Makes everything written durable, still under a temporary name, and returns the staged artifact.
    async fn stage(self: Box<Self>) -> Result<Box<dyn StagedArtifact>, Error>;

    /// Discards everything written.
    async fn abort(self: Box<Self>) -> Result<(), Error>;

    /// Stages and publishes in one step, and returns the artifact's metadata.
    async fn commit(self: Box<Self>) -> Result<ArtifactMeta, Error> {
        self.stage().await?.publish().await
    }
}

/// A written, durable artifact that is not visible under its name yet: read it back, then
/// [`publish`](StagedArtifact::publish) or [`discard`](StagedArtifact::discard) it. Dropping it discards it.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use tokio::io::AsyncReadExt;
/// use resee_ops_core::{ArtifactName, BackupTarget};
/// use resee_ops_core::testing::InMemoryBackupTarget;
///
/// let target = InMemoryBackupTarget::new();
/// let name = ArtifactName::new("db.sql.gz").unwrap();
/// let mut w = target.create(&name).await.unwrap();
/// w.write(b"dump").await.unwrap();
/// let staged = w.stage().await.unwrap();
/// let mut back = Vec::new();
/// staged.open().await.unwrap().read_to_end(&mut back).await.unwrap();
/// assert_eq!(back, b"dump");
/// assert!(target.list().await.unwrap().is_empty(), "verified before anyone can see it");
/// staged.publish().await.unwrap();
/// assert_eq!(target.list().await.unwrap().len(), 1);
/// # });
/// ```
#[async_trait]
pub trait StagedArtifact: Send + Sync + Debug {
    /// The name it will be published under.
    fn name(&self) -> &ArtifactName;

    /// Its size in bytes.
    fn size(&self) -> u64;

    /// Reads the staged bytes back, as the target stored them.
    async fn open(&self) -> Result<ArtifactReader, Error>;

    /// Makes it visible under its name. Fails with [`ErrorKind::AlreadyExists`] (and discards the staged
    /// data) if the name was taken meanwhile: nothing is ever overwritten.
    async fn publish(self: Box<Self>) -> Result<ArtifactMeta, Error>;

    /// Throws it away.
    async fn discard(self: Box<Self>) -> Result<(), Error>;
}

/// Where backups are kept: a local directory, an S3 bucket, memory (for tests).
///
/// Writes are streaming and atomic: [`create`](BackupTarget::create) returns a writer, and the artifact
/// appears only when committed (or staged, then published). Creating a name that already exists fails with [`ErrorKind::AlreadyExists`]:
/// a backup is never overwritten. Missing names give [`ErrorKind::NotFound`].
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use tokio::io::AsyncReadExt;
/// use resee_ops_core::{ArtifactName, BackupTarget};
/// use resee_ops_core::testing::InMemoryBackupTarget;
///
/// let target = InMemoryBackupTarget::new();
/// let name = ArtifactName::new("demo.sql.gz").unwrap();
/// let mut w = target.create(&name).await.unwrap();
/// w.write(b"hello").await.unwrap();
/// assert!(target.list().await.unwrap().is_empty(), "not visible before commit");
/// let meta = w.commit().await.unwrap();
/// assert_eq!(meta.size, 5);
///
/// let mut body = Vec::new();
/// target.open(&name).await.unwrap().read_to_end(&mut body).await.unwrap();
/// assert_eq!(body, b"hello");
/// # });
/// ```
#[async_trait]
pub trait BackupTarget: Send + Sync + Debug + 'static {
    /// Starts writing a new artifact called `name`.
    async fn create(&self, name: &ArtifactName) -> Result<Box<dyn ArtifactWriter>, Error>;

    /// Every committed artifact, sorted by name.
    async fn list(&self) -> Result<Vec<ArtifactMeta>, Error>;

    /// Metadata of one committed artifact.
    async fn stat(&self, name: &ArtifactName) -> Result<ArtifactMeta, Error>;

    /// Reads a committed artifact.
    async fn open(&self, name: &ArtifactName) -> Result<ArtifactReader, Error>;

    /// Deletes a committed artifact.
    async fn delete(&self, name: &ArtifactName) -> Result<(), Error>;

    /// Removes temporary data left by writers that never finished (a crash, a killed process) and says how
    /// many were removed.
    ///
    /// The default does nothing and returns 0: it is right **only** for a target that cannot leave
    /// anything to sweep (an in-memory target, one whose store discards unfinished uploads by itself). A
    /// target that writes temporaries (files, multipart uploads) must implement it, and a wrapper must
    /// forward it (`#[deny(clippy::missing_trait_methods)]` on the wrapper's impl catches a forgotten one).
    async fn sweep_incomplete(&self) -> Result<usize, Error> {
        Ok(0)
    }

    /// A short name of the kind of target (`local`, `s3`, `memory`): the name of a target a backup adds
    /// without one (`PgDumpBackupBuilder::with_target` in `resee-ops-backup`), and so the `target` label of
    /// its backup metrics ([`telemetry`](crate::telemetry)). Default `custom`.
    fn label(&self) -> &str {
        "custom"
    }
}

macro_rules! forward_backup_target {
    ($wrapper:ident) => {
        #[deny(clippy::missing_trait_methods)]
        #[async_trait]
        impl<T: BackupTarget + ?Sized> BackupTarget for $wrapper<T> {
            async fn create(&self, name: &ArtifactName) -> Result<Box<dyn ArtifactWriter>, Error> {
                (**self).create(name).await
            }
            async fn list(&self) -> Result<Vec<ArtifactMeta>, Error> {
                (**self).list().await
            }
            async fn stat(&self, name: &ArtifactName) -> Result<ArtifactMeta, Error> {
                (**self).stat(name).await
            }
            async fn open(&self, name: &ArtifactName) -> Result<ArtifactReader, Error> {
                (**self).open(name).await
            }
            async fn delete(&self, name: &ArtifactName) -> Result<(), Error> {
                (**self).delete(name).await
            }
            async fn sweep_incomplete(&self) -> Result<usize, Error> {
                (**self).sweep_incomplete().await
            }
            fn label(&self) -> &str {
                (**self).label()
            }
        }
    };
}

forward_backup_target!(Arc);
forward_backup_target!(Box);

/// How a backup run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BackupStatus {
    /// Written, verified and committed.
    Success,
    /// Not written (dump, compression or storage failed).
    Failed,
    /// Written, but the artifact failed verification; nothing was committed under the final name, or an
    /// existing artifact was found corrupt.
    IntegrityFailed,
    /// Not attempted: another run of the same backup held the single-run lock (another replica, or an
    /// earlier run still going). Not a failure.
    Skipped,
}

impl BackupStatus {
    /// `success`, `failed`, `integrity_failed` or `skipped`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failed => "failed",
            Self::IntegrityFailed => "integrity_failed",
            Self::Skipped => "skipped",
        }
    }
}

impl fmt::Display for BackupStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one target of a backup run fared (a run can write to several: local and S3, say).
///
/// ```
/// use resee_ops_core::{BackupStatus, TargetReport};
/// let t = TargetReport::new("s3", false, BackupStatus::Failed).with_error("unavailable: connection refused");
/// assert_eq!(serde_json::to_value(&t).unwrap()["status"], "failed");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TargetReport {
    /// The target's name, as configured.
    pub target: String,
    /// Whether the run fails when this target fails (an optional target's failure is only a warning).
    pub required: bool,
    /// How it ended for this target.
    pub status: BackupStatus,
    /// Why it failed, free of secrets.
    pub error: Option<String>,
}

impl TargetReport {
    /// A report for `target`.
    pub fn new(target: impl Into<String>, required: bool, status: BackupStatus) -> Self {
        Self { target: target.into(), required, status, error: None }
    }

    /// Sets the error text.
    pub fn with_error(mut self, error: impl Into<String>) -> Self {
        self.error = Some(error.into());
        self
    }
}

/// The result of one backup run: what the reference system reports as `{status, filename, size_mb}`, and more.
///
/// ```
/// use std::time::Duration;
/// use resee_ops_core::{BackupReport, BackupStatus};
/// let r = BackupReport::new(BackupStatus::Success, "resee_production_20251015_030000.sql.gz")
///     .with_size(12_582_912)
///     .with_duration(Duration::from_secs(42));
/// assert_eq!(r.size_mb, 12.0);
/// let json = serde_json::to_value(&r).unwrap();
/// assert_eq!(json["status"], "success");
/// assert_eq!(json["filename"], "resee_production_20251015_030000.sql.gz");
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BackupReport {
    /// How it ended.
    pub status: BackupStatus,
    /// The artifact name (the intended one, for failures).
    pub filename: String,
    /// Compressed size in bytes (0 when nothing was committed).
    pub size_bytes: u64,
    /// `size_bytes` in MiB, rounded to two decimals, as the reference system reports it.
    pub size_mb: f64,
    /// SHA-256 of the artifact, hex, when it was committed.
    pub sha256: Option<String>,
    /// Wall time of the run, all attempts included.
    #[serde(with = "crate::serde_duration")]
    pub duration: Duration,
    /// Attempts made (1 when the first one settled it).
    pub attempts: u32,
    /// Why it failed, free of secrets.
    pub error: Option<String>,
    /// When the run started.
    pub started_at: Option<DateTime<Utc>>,
    /// When the run finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// Each target's outcome, when the run wrote to several (empty for a single target).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<TargetReport>,
}

impl BackupReport {
    /// A report with `status` and `filename`; everything else empty.
    pub fn new(status: BackupStatus, filename: impl Into<String>) -> Self {
        Self {
            status,
            filename: filename.into(),
            size_bytes: 0,
            size_mb: 0.0,
            sha256: None,
            duration: Duration::ZERO,
            attempts: 1,
            error: None,
            started_at: None,
            finished_at: None,
            targets: Vec::new(),
        }
    }

    /// Sets the size (and `size_mb`).
    pub fn with_size(mut self, bytes: u64) -> Self {
        self.size_bytes = bytes;
        self.size_mb = (bytes as f64 / (1024.0 * 1024.0) * 100.0).round() / 100.0;
        self
    }

    /// Sets the SHA-256.
    pub fn with_sha256(mut self, hex: impl Into<String>) -> Self {
        self.sha256 = Some(hex.into());
        self
    }

    /// Sets the duration.
    pub fn with_duration(mut self, d: Duration) -> Self {
        self.duration = d;
        self
    }

    /// Sets the number of attempts.
    pub fn with_attempts(mut self, n: u32) -> Self {
        self.attempts = n;
        self
    }

    /// Sets the error text.
    pub fn with_error(mut self, error: impl Into<String>) -> Self {
        self.error = Some(error.into());
        self
    }

    /// Sets start and finish times.
    pub fn with_times(mut self, started: DateTime<Utc>, finished: DateTime<Utc>) -> Self {
        self.started_at = Some(started);
        self.finished_at = Some(finished);
        self
    }

    /// Sets the per-target outcomes.
    pub fn with_targets(mut self, targets: Vec<TargetReport>) -> Self {
        self.targets = targets;
        self
    }

    /// Whether the backup succeeded.
    pub fn is_success(&self) -> bool {
        self.status == BackupStatus::Success
    }
}
