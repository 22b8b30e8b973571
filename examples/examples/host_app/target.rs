//! A custom `BackupTarget`: a second directory with its own layout, one folder per month.
//!
//! `resee_ops_backup::LocalDirTarget` keeps every artifact flat in one directory. This host archives them
//! in another, sorted by the month of the `YYYYMMDD` part of their names (the backup names its artifacts
//! `{database}_{environment}_{YYYYMMDD_HHMMSS}.sql.gz`; names without a date go to `undated/`):
//!
//! ```text
//! archive/
//!   2026-12/resee_production_20261201_030000.sql.gz
//!   2026-12/resee_production_20261201_030000.sql.gz.manifest.json
//!   .staging/resee_production_20261201_030000.sql.gz.4242-7.part   (while it is written)
//! ```
//!
//! The contract (see `BackupTarget`): nothing is visible under its final name before it is published, and
//! publishing never overwrites. Bytes are written to a file under `.staging/`, synced, and published by a
//! hard link to the final name (which fails if the name exists) followed by removing the staging file. A
//! writer or staged artifact dropped half-way removes its file. The example's own test runs core's
//! conformance suite against this type (`examples/tests/host_app.rs`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use resee_ops_core::prelude::*;

const STAGING: &str = ".staging";

/// Backups in `root/<YYYY-MM>/<name>`.
#[derive(Debug, Clone)]
pub(crate) struct MonthlyDir {
    root: PathBuf,
}

impl MonthlyDir {
    /// A target in `root` (created when missing).
    pub(crate) fn new(root: impl Into<PathBuf>) -> Result<Self, Error> {
        let root = root.into();
        let staging = root.join(STAGING);
        std::fs::create_dir_all(&staging).map_err(|e| Error::io(format!("cannot create {}", staging.display()), e))?;
        Ok(Self { root })
    }

    /// Where `name` lives once published.
    pub(crate) fn path_of(&self, name: &ArtifactName) -> PathBuf {
        let date = name.as_str().split(['_', '.']).find(|p| p.len() == 8 && p.bytes().all(|b| b.is_ascii_digit()));
        let folder = date.map_or_else(|| "undated".to_owned(), |d| format!("{}-{}", &d[..4], &d[4..6]));
        self.root.join(folder).join(name.as_str())
    }

    async fn meta_of(&self, name: &ArtifactName) -> Result<ArtifactMeta, Error> {
        let path = self.path_of(name);
        let meta = tokio::fs::metadata(&path).await.map_err(|e| Error::io(format!("no artifact named {name}"), e))?;
        Ok(ArtifactMeta::new(name.clone(), meta.len(), modified(&meta)))
    }
}

fn modified(meta: &std::fs::Metadata) -> DateTime<Utc> {
    meta.modified().map(DateTime::<Utc>::from).unwrap_or_else(|_| Utc::now())
}

/// A staging file name no other writer of this process or another one uses.
fn staging_name(name: &ArtifactName) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{name}.{}-{}.part", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

#[async_trait]
impl BackupTarget for MonthlyDir {
    async fn create(&self, name: &ArtifactName) -> Result<Box<dyn ArtifactWriter>, Error> {
        let path = self.root.join(STAGING).join(staging_name(name));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(|e| Error::io(format!("cannot create {}", path.display()), e))?;
        Ok(Box::new(Writer {
            file: Some(file),
            staged: Staged { path, target: self.path_of(name), name: name.clone(), size: 0, done: false },
        }))
    }

    async fn list(&self) -> Result<Vec<ArtifactMeta>, Error> {
        let mut found = Vec::new();
        let mut folders = tokio::fs::read_dir(&self.root)
            .await
            .map_err(|e| Error::io(format!("cannot list {}", self.root.display()), e))?;
        while let Some(folder) = folders.next_entry().await.map_err(|e| Error::io("cannot list the archive", e))? {
            if folder.file_name() == STAGING || !folder.file_type().await.is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let mut files = tokio::fs::read_dir(folder.path())
                .await
                .map_err(|e| Error::io(format!("cannot list {}", folder.path().display()), e))?;
            while let Some(file) = files.next_entry().await.map_err(|e| Error::io("cannot list the archive", e))? {
                let Ok(meta) = file.metadata().await else { continue };
                let Some(name) = file.file_name().to_str().and_then(|n| ArtifactName::new(n).ok()) else { continue };
                if meta.is_file() {
                    found.push(ArtifactMeta::new(name, meta.len(), modified(&meta)));
                }
            }
        }
        found.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(found)
    }

    async fn stat(&self, name: &ArtifactName) -> Result<ArtifactMeta, Error> {
        self.meta_of(name).await
    }

    async fn open(&self, name: &ArtifactName) -> Result<ArtifactReader, Error> {
        let file = tokio::fs::File::open(self.path_of(name))
            .await
            .map_err(|e| Error::io(format!("no artifact named {name}"), e))?;
        Ok(Box::new(file))
    }

    async fn delete(&self, name: &ArtifactName) -> Result<(), Error> {
        tokio::fs::remove_file(self.path_of(name)).await.map_err(|e| Error::io(format!("cannot delete {name}"), e))
    }

    /// Removes staging files left by a process that died while writing (older than an hour, so a live
    /// writer of another process is never touched).
    async fn sweep_incomplete(&self) -> Result<usize, Error> {
        let staging = self.root.join(STAGING);
        let mut entries = tokio::fs::read_dir(&staging)
            .await
            .map_err(|e| Error::io(format!("cannot list {}", staging.display()), e))?;
        let mut removed = 0;
        while let Some(entry) = entries.next_entry().await.map_err(|e| Error::io("cannot list the staging area", e))? {
            let old = entry
                .metadata()
                .await
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age.as_secs() > 3600);
            if old && tokio::fs::remove_file(entry.path()).await.is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// The staging file of one artifact; removed on drop unless published or discarded.
#[derive(Debug)]
struct Staged {
    path: PathBuf,
    target: PathBuf,
    name: ArtifactName,
    size: u64,
    done: bool,
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[derive(Debug)]
struct Writer {
    file: Option<tokio::fs::File>,
    staged: Staged,
}

#[async_trait]
impl ArtifactWriter for Writer {
    async fn write(&mut self, buf: &[u8]) -> Result<(), Error> {
        let file = self.file.as_mut().ok_or_else(|| Error::new(ErrorKind::Closed, "writer already finished"))?;
        file.write_all(buf).await.map_err(|e| Error::io(format!("cannot write {}", self.staged.path.display()), e))?;
        self.staged.size += buf.len() as u64;
        Ok(())
    }

    async fn stage(mut self: Box<Self>) -> Result<Box<dyn StagedArtifact>, Error> {
        if let Some(mut file) = self.file.take() {
            file.flush().await.map_err(|e| Error::io("cannot flush the staging file", e))?;
            file.sync_all().await.map_err(|e| Error::io("cannot sync the staging file", e))?;
        }
        let staged = Staged {
            path: self.staged.path.clone(),
            target: self.staged.target.clone(),
            name: self.staged.name.clone(),
            size: self.staged.size,
            done: false,
        };
        self.staged.done = true; // ownership of the file moves to the staged artifact
        Ok(Box::new(staged))
    }

    async fn abort(self: Box<Self>) -> Result<(), Error> {
        drop(self); // the drop removes the staging file
        Ok(())
    }
}

#[async_trait]
impl StagedArtifact for Staged {
    fn name(&self) -> &ArtifactName {
        &self.name
    }

    fn size(&self) -> u64 {
        self.size
    }

    async fn open(&self) -> Result<ArtifactReader, Error> {
        let file =
            tokio::fs::File::open(&self.path).await.map_err(|e| Error::io("cannot open the staged artifact", e))?;
        Ok(Box::new(file))
    }

    async fn publish(mut self: Box<Self>) -> Result<ArtifactMeta, Error> {
        let folder = self.target.parent().unwrap_or(Path::new("."));
        tokio::fs::create_dir_all(folder)
            .await
            .map_err(|e| Error::io(format!("cannot create {}", folder.display()), e))?;
        // A hard link fails when the final name exists: publishing never overwrites.
        tokio::fs::hard_link(&self.path, &self.target)
            .await
            .map_err(|e| Error::io(format!("cannot publish {} (an existing one is kept)", self.name), e))?;
        let _ = tokio::fs::remove_file(&self.path).await;
        self.done = true;
        Ok(ArtifactMeta::new(self.name.clone(), self.size, Utc::now()))
    }

    async fn discard(self: Box<Self>) -> Result<(), Error> {
        drop(self); // the drop removes the staging file
        Ok(())
    }
}
