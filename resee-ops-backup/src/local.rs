//! [`LocalDirTarget`]: backups in a local directory.

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use resee_ops_core::{
    ArtifactMeta, ArtifactName, ArtifactReader, ArtifactWriter, BackupTarget, Error, ErrorKind, StagedArtifact,
};
use tokio::io::AsyncWriteExt;

use crate::error;
use crate::{BackupError, Result};

/// A [`BackupTarget`] in a local directory (mode 0700), one file (mode 0600) per artifact.
///
/// An artifact is written to a hidden temporary `.{name}.tmp-{pid}-{random}`, fsynced (staged: it can be read
/// back there before anyone sees it under its name), moved to its name
/// without ever replacing an existing file (`renameat2(RENAME_NOREPLACE)`, or a hard link where that is not
/// supported), and the directory is fsynced. A writer or staged artifact that is dropped, aborted or
/// discarded removes its temporary.
///
/// # Sweeping temporaries
/// Temporaries of runs that died (a crash, `kill -9`) are removed by
/// [`sweep_incomplete`](BackupTarget::sweep_incomplete), which every backup run calls first. A writer holds
/// an exclusive advisory lock (`flock`) on its temporary from creation until it is published or removed;
/// the sweep removes only temporaries it can lock itself **and** that were last modified at least
/// [`sweep_min_age`](Self::with_sweep_min_age) ago (default [`DEFAULT_SWEEP_MIN_AGE`](Self::DEFAULT_SWEEP_MIN_AGE), one hour). The lock
/// is released by the kernel when its holder dies, whatever its PID, so this is right across containers
/// that share the volume (where PIDs mean nothing); the age covers the instant between creating and
/// locking a file, and filesystems whose locks are not shared between hosts (there, a writer's file keeps
/// a fresh modification time while it is written).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use resee_ops_backup::LocalDirTarget;
/// use resee_ops_core::{ArtifactName, BackupTarget};
///
/// let dir = tempfile::tempdir().unwrap();
/// let target = LocalDirTarget::new(dir.path().join("backups")).unwrap();
/// let mut w = target.create(&ArtifactName::new("a.sql.gz").unwrap()).await.unwrap();
/// w.write(b"data").await.unwrap();
/// assert_eq!(w.commit().await.unwrap().size, 4);
/// assert_eq!(target.list().await.unwrap().len(), 1);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct LocalDirTarget {
    dir: PathBuf,
    sweep_min_age: Duration,
}

fn io_err(op: &str, path: &Path, err: std::io::Error) -> Error {
    let core = Error::from(std::io::Error::new(err.kind(), format!("{op} {}: {err}", path.display())));
    if core.kind() == ErrorKind::Io { core.with_temporary(true) } else { core }
}

impl LocalDirTarget {
    /// How long an unlocked temporary must have been left unmodified before the sweep removes it: one hour.
    pub const DEFAULT_SWEEP_MIN_AGE: Duration = Duration::from_secs(3600);

    /// Uses `dir`, creating it (and its parents) with mode 0700 if missing. An existing directory is used as it
    /// is (its mode is the operator's choice: it may be shared with a sync agent); a warning is logged when
    /// others can read it. Artifacts are 0600 either way.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        match std::fs::metadata(&dir) {
            Ok(m) if m.is_dir() => {
                if m.permissions().mode() & 0o077 != 0 {
                    tracing::warn!(dir = %dir.display(), "backup directory is accessible to others (mode is not 0700)");
                }
            }
            Ok(_) => {
                return Err(error::invalid_config(format!("{} exists and is not a directory", dir.display())));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&dir)
                    .map_err(|e| BackupError::io(format!("cannot create {}", dir.display()), e))?;
            }
            Err(e) => return Err(BackupError::io(format!("cannot access {}", dir.display()), e)),
        }
        Ok(Self { dir, sweep_min_age: Self::DEFAULT_SWEEP_MIN_AGE })
    }

    /// Sets how long an unlocked temporary must have been left unmodified before
    /// [`sweep_incomplete`](BackupTarget::sweep_incomplete) removes it (default [`DEFAULT_SWEEP_MIN_AGE`](Self::DEFAULT_SWEEP_MIN_AGE)).
    /// A temporary locked by a live writer is never removed, whatever its age.
    pub fn with_sweep_min_age(mut self, min_age: Duration) -> Self {
        self.sweep_min_age = min_age;
        self
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of an artifact.
    pub fn path_of(&self, name: &ArtifactName) -> PathBuf {
        self.dir.join(name.as_str())
    }

    fn temp_path(&self, name: &ArtifactName) -> PathBuf {
        let mut stem = name.as_str();
        while stem.len() > 200 {
            let mut cut = 200;
            while !stem.is_char_boundary(cut) {
                cut -= 1;
            }
            stem = &stem[..cut];
        }
        self.dir.join(format!(".{stem}.tmp-{}-{:016x}", std::process::id(), fastrand::u64(..)))
    }
}

/// Whether a file name is one of our temporaries (`.{name}.tmp-{pid}-{16 hex digits}`). The PID is only
/// informative: whether a temporary is abandoned is decided by its lock, never by its PID.
fn is_temporary(file_name: &str) -> bool {
    let Some((_, suffix)) = file_name.strip_prefix('.').and_then(|rest| rest.rsplit_once(".tmp-")) else {
        return false;
    };
    suffix.split_once('-').is_some_and(|(pid, random)| {
        pid.parse::<u32>().is_ok() && random.len() == 16 && random.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// Tries to take the exclusive advisory lock of `file` without waiting: `Ok(false)` when another open
/// file description (another process, or another writer of this one) holds it.
fn try_lock(file: &std::fs::File) -> std::io::Result<bool> {
    use rustix::fs::{FlockOperation, flock};
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Creates the temporary `tmp` (mode 0600) and takes its exclusive lock, held as long as the returned file
/// (or a clone of it) is open. Waits for the lock if a sweep holds it for a moment (it then sees the file
/// is new and leaves it).
fn create_locked(tmp: &Path) -> std::io::Result<std::fs::File> {
    let file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(tmp)?;
    if let Err(e) = rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive) {
        let _ = std::fs::remove_file(tmp);
        return Err(e.into());
    }
    Ok(file)
}

/// Removes the temporary at `path` if it is abandoned: nobody holds its lock and it was last modified at
/// least `min_age` ago. The check and the removal happen under the lock, so no writer can take the file
/// in between. `Ok(true)` when it was removed.
fn sweep_one(path: &Path, min_age: Duration, now: SystemTime) -> std::io::Result<bool> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if !try_lock(&file)? {
        return Ok(false);
    }
    let modified = file.metadata()?.modified()?;
    // A modification time in the future (clock skew) counts as new.
    if now.duration_since(modified).is_ok_and(|age| age >= min_age) {
        match std::fs::remove_file(path) {
            Ok(()) => return Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

fn publish(tmp: &Path, dest: &Path) -> std::io::Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    match renameat_with(CWD, tmp, CWD, dest, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => {
            // The filesystem cannot rename without replacing: a hard link fails if the name exists.
            std::fs::hard_link(tmp, dest)?;
            std::fs::remove_file(tmp).inspect_err(|_| unpublish(dest))
        }
        Err(e) => Err(e.into()),
    }
}

/// Moves the staged `tmp` to `dest`, makes that durable (`sync_dir` fsyncs the directory; a parameter so
/// that tests can make it fail) and stats it. If anything fails once `dest` exists, `dest` is removed again:
/// a failed publish leaves nothing under the final name (the caller never learns the name was used, so
/// nobody else would remove it).
fn publish_durably(
    tmp: &Path,
    dest: &Path,
    dir: &Path,
    sync_dir: impl Fn(&Path) -> std::io::Result<()>,
) -> Result<std::fs::Metadata, Error> {
    publish(tmp, dest).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::new(ErrorKind::AlreadyExists, format!("{} exists already", dest.display()))
        } else {
            io_err("cannot rename to", dest, e)
        }
    })?;
    sync_dir(dir)
        .map_err(|e| io_err("cannot fsync", dir, e))
        .and_then(|()| std::fs::metadata(dest).map_err(|e| io_err("cannot stat", dest, e)))
        .inspect_err(|_| unpublish(dest))
}

/// Best effort: removes an artifact whose publishing failed half-way, logging when it cannot.
fn unpublish(dest: &Path) {
    match std::fs::remove_file(dest) {
        Ok(()) => {
            if let Some(dir) = dest.parent()
                && let Err(e) = fsync_dir(dir)
            {
                tracing::warn!(dir = %dir.display(), error = %format_args!("{e:#}"), "cannot fsync after removing a failed publish");
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::error!(path = %dest.display(), error = %format_args!("{e:#}"), "cannot remove a half-published artifact");
        }
    }
}

#[async_trait]
impl BackupTarget for LocalDirTarget {
    fn label(&self) -> &str {
        "local"
    }

    async fn create(&self, name: &ArtifactName) -> Result<Box<dyn ArtifactWriter>, Error> {
        let dest = self.path_of(name);
        if tokio::fs::symlink_metadata(&dest).await.is_ok() {
            return Err(Error::new(ErrorKind::AlreadyExists, format!("{} exists already", dest.display())));
        }
        let tmp = self.temp_path(name);
        let path = tmp.clone();
        let lock = tokio::task::spawn_blocking(move || create_locked(&path))
            .await
            .map_err(|e| Error::new(ErrorKind::Io, format!("create task failed: {e}")))?
            .map_err(|e| io_err("cannot create", &tmp, e))?;
        // The writer's handle shares the open file description, and so the lock, with `lock`: the lock
        // lasts until the temporary is published or removed, also after the writer is closed at `stage`.
        let file = lock.try_clone().map_err(|e| io_err("cannot open", &tmp, e))?;
        let temp = Temp { tmp, dest, dir: self.dir.clone(), name: name.clone(), done: false, _lock: lock };
        Ok(Box::new(LocalWriter { file: Some(tokio::fs::File::from_std(file)), temp, size: 0 }))
    }

    async fn list(&self) -> Result<Vec<ArtifactMeta>, Error> {
        let mut entries = tokio::fs::read_dir(&self.dir).await.map_err(|e| io_err("cannot list", &self.dir, e))?;
        let mut out = Vec::new();
        while let Some(entry) = entries.next_entry().await.map_err(|e| io_err("cannot list", &self.dir, e))? {
            let Some(file_name) = entry.file_name().to_str().map(str::to_owned) else { continue };
            let Ok(name) = ArtifactName::new(file_name) else { continue };
            let Ok(meta) = entry.metadata().await else { continue };
            if meta.is_file() {
                out.push(artifact_meta(name, &meta));
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn stat(&self, name: &ArtifactName) -> Result<ArtifactMeta, Error> {
        let path = self.path_of(name);
        let meta = tokio::fs::metadata(&path).await.map_err(|e| io_err("cannot stat", &path, e))?;
        if !meta.is_file() {
            return Err(Error::new(ErrorKind::NotFound, format!("{} is not a file", path.display())));
        }
        Ok(artifact_meta(name.clone(), &meta))
    }

    async fn open(&self, name: &ArtifactName) -> Result<ArtifactReader, Error> {
        let path = self.path_of(name);
        let file = tokio::fs::File::open(&path).await.map_err(|e| io_err("cannot open", &path, e))?;
        Ok(Box::new(file))
    }

    async fn delete(&self, name: &ArtifactName) -> Result<(), Error> {
        let path = self.path_of(name);
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            std::fs::remove_file(&path).map_err(|e| io_err("cannot delete", &path, e))?;
            fsync_dir(&dir).map_err(|e| io_err("cannot fsync", &dir, e))
        })
        .await
        .map_err(|e| Error::new(ErrorKind::Io, format!("delete task failed: {e}")))?
    }

    async fn sweep_incomplete(&self) -> Result<usize, Error> {
        let dir = self.dir.clone();
        let min_age = self.sweep_min_age;
        tokio::task::spawn_blocking(move || {
            let mut removed = 0;
            let now = SystemTime::now();
            for entry in std::fs::read_dir(&dir).map_err(|e| io_err("cannot list", &dir, e))?.flatten() {
                if !entry.file_name().to_str().is_some_and(is_temporary) {
                    continue;
                }
                let path = entry.path();
                if sweep_one(&path, min_age, now).map_err(|e| io_err("cannot sweep", &path, e))? {
                    tracing::info!(path = %path.display(), "removed an abandoned temporary");
                    removed += 1;
                }
            }
            if removed > 0 {
                fsync_dir(&dir).map_err(|e| io_err("cannot fsync", &dir, e))?;
            }
            Ok(removed)
        })
        .await
        .map_err(|e| Error::new(ErrorKind::Io, format!("sweep task failed: {e}")))?
    }
}

fn artifact_meta(name: ArtifactName, meta: &std::fs::Metadata) -> ArtifactMeta {
    let created = meta.modified().map(DateTime::<Utc>::from).unwrap_or_else(|_| Utc::now());
    ArtifactMeta::new(name, meta.len(), created)
}

/// A temporary file that is removed when dropped, unless it was published. Holds the temporary's
/// exclusive lock (released when it is dropped, after the removal or the rename).
#[derive(Debug)]
struct Temp {
    tmp: PathBuf,
    dest: PathBuf,
    dir: PathBuf,
    name: ArtifactName,
    done: bool,
    _lock: std::fs::File,
}

impl Temp {
    fn discard(&mut self) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        if let Err(e) = std::fs::remove_file(&self.tmp)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.tmp.display(), error = %format_args!("{e:#}"), "cannot remove a temporary");
        }
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        self.discard();
    }
}

#[derive(Debug)]
struct LocalWriter {
    file: Option<tokio::fs::File>,
    temp: Temp,
    size: u64,
}

#[async_trait]
impl ArtifactWriter for LocalWriter {
    async fn write(&mut self, buf: &[u8]) -> Result<(), Error> {
        let file = self.file.as_mut().ok_or_else(|| Error::new(ErrorKind::Closed, "writer is closed"))?;
        file.write_all(buf).await.map_err(|e| io_err("cannot write", &self.temp.tmp, e))?;
        self.size += buf.len() as u64;
        Ok(())
    }

    async fn stage(mut self: Box<Self>) -> Result<Box<dyn StagedArtifact>, Error> {
        let mut file = self.file.take().ok_or_else(|| Error::new(ErrorKind::Closed, "writer is closed"))?;
        file.flush().await.map_err(|e| io_err("cannot write", &self.temp.tmp, e))?;
        file.sync_all().await.map_err(|e| io_err("cannot fsync", &self.temp.tmp, e))?;
        drop(file);
        let LocalWriter { temp, size, .. } = *self;
        Ok(Box::new(LocalStaged { temp, size }))
    }

    async fn abort(mut self: Box<Self>) -> Result<(), Error> {
        self.file = None;
        self.temp.discard();
        Ok(())
    }
}

/// A fsynced temporary, readable, not yet under its name.
#[derive(Debug)]
struct LocalStaged {
    temp: Temp,
    size: u64,
}

#[async_trait]
impl StagedArtifact for LocalStaged {
    fn name(&self) -> &ArtifactName {
        &self.temp.name
    }

    fn size(&self) -> u64 {
        self.size
    }

    async fn open(&self) -> Result<ArtifactReader, Error> {
        let file = tokio::fs::File::open(&self.temp.tmp).await.map_err(|e| io_err("cannot open", &self.temp.tmp, e))?;
        Ok(Box::new(file))
    }

    async fn publish(mut self: Box<Self>) -> Result<ArtifactMeta, Error> {
        let (tmp, dest, dir) = (self.temp.tmp.clone(), self.temp.dest.clone(), self.temp.dir.clone());
        // On any error the temporary is dropped, and so removed, and the final name is removed again if it
        // was already taken: nothing is left half-published.
        let meta = tokio::task::spawn_blocking(move || publish_durably(&tmp, &dest, &dir, fsync_dir))
            .await
            .map_err(|e| Error::new(ErrorKind::Io, format!("publish task failed: {e}")))??;
        self.temp.done = true;
        let created = meta.modified().map(DateTime::<Utc>::from).unwrap_or_else(|_| Utc::now());
        Ok(ArtifactMeta::new(self.temp.name.clone(), self.size, created))
    }

    async fn discard(mut self: Box<Self>) -> Result<(), Error> {
        self.temp.discard();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_recognised() {
        let t = LocalDirTarget { dir: "/x".into(), sweep_min_age: LocalDirTarget::DEFAULT_SWEEP_MIN_AGE };
        let p = t.temp_path(&ArtifactName::new("db_dev_20250101_000000.sql.gz").unwrap());
        let f = p.file_name().unwrap().to_str().unwrap();
        assert!(is_temporary(f), "{f}");
        assert!(!is_temporary("db.sql.gz"));
        assert!(!is_temporary(".db.sql.gz.tmp-12-xyz"));
        assert!(!is_temporary(".db.sql.gz.tmp-x-0123456789abcdef"));
        let long = ArtifactName::new("é".repeat(127)).unwrap();
        let p = t.temp_path(&long);
        assert!(p.file_name().unwrap().len() <= 255);
    }

    #[test]
    fn a_failure_after_the_rename_removes_the_published_file() {
        let dir = tempfile::tempdir().unwrap();
        let (tmp, dest) = (dir.path().join(".a.tmp"), dir.path().join("a.sql.gz"));
        std::fs::write(&tmp, b"data").unwrap();
        let failing = |_: &Path| Err(std::io::Error::other("injected fsync failure"));
        let err = publish_durably(&tmp, &dest, dir.path(), failing).unwrap_err();
        assert!(format!("{err:#}").contains("injected fsync failure"), "{err:#}");
        assert!(!dest.exists(), "the artifact was left under its final name");
        assert!(!tmp.exists());

        std::fs::write(&tmp, b"data").unwrap();
        let meta = publish_durably(&tmp, &dest, dir.path(), fsync_dir).unwrap();
        assert_eq!((meta.len(), std::fs::read(&dest).unwrap()), (4, b"data".to_vec()));
        // An existing artifact is neither replaced nor removed.
        std::fs::write(&tmp, b"other").unwrap();
        let err = publish_durably(&tmp, &dest, dir.path(), fsync_dir).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&dest).unwrap(), b"data");
    }
}
