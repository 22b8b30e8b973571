use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{ArtifactMeta, ArtifactName, ArtifactReader, ArtifactWriter, BackupTarget, Error, ErrorKind};

#[derive(Debug, Default)]
struct Store {
    committed: BTreeMap<ArtifactName, (Arc<Vec<u8>>, DateTime<Utc>)>,
    pending: usize,
}

/// A [`BackupTarget`] in memory, for tests. Clones share the same store.
///
/// [`with_capacity`](Self::with_capacity) makes it behave like a disk that fills up: a write that would
/// exceed the capacity fails with [`ErrorKind::StorageFull`].
#[derive(Debug, Clone, Default)]
pub struct InMemoryBackupTarget {
    store: Arc<Mutex<Store>>,
    capacity: Option<u64>,
}

impl InMemoryBackupTarget {
    /// An empty target without a size limit.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fails writes once an artifact would exceed `bytes`.
    pub fn with_capacity(mut self, bytes: u64) -> Self {
        self.capacity = Some(bytes);
        self
    }

    /// Writers created and neither committed nor discarded yet.
    pub fn pending_writers(&self) -> usize {
        self.lock().pending
    }

    /// The bytes of a committed artifact.
    pub fn bytes(&self, name: &str) -> Option<Vec<u8>> {
        let name = ArtifactName::new(name).ok()?;
        self.lock().committed.get(&name).map(|(b, _)| b.as_ref().clone())
    }

    /// Replaces the bytes of a committed artifact (to simulate corruption).
    pub fn corrupt(&self, name: &str, bytes: Vec<u8>) {
        let name = ArtifactName::new(name).expect("valid name");
        let mut store = self.lock();
        let created = store.committed.get(&name).map(|(_, c)| *c).unwrap_or_else(Utc::now);
        store.committed.insert(name, (Arc::new(bytes), created));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn not_found(name: &ArtifactName) -> Error {
        Error::new(ErrorKind::NotFound, format!("no artifact named {name}"))
    }
}

#[async_trait]
impl BackupTarget for InMemoryBackupTarget {
    async fn create(&self, name: &ArtifactName) -> Result<Box<dyn ArtifactWriter>, Error> {
        let mut store = self.lock();
        if store.committed.contains_key(name) {
            return Err(Error::new(ErrorKind::AlreadyExists, format!("artifact {name} exists already")));
        }
        store.pending += 1;
        Ok(Box::new(MemoryWriter { target: self.clone(), name: name.clone(), buf: Vec::new(), open: true }))
    }

    async fn list(&self) -> Result<Vec<ArtifactMeta>, Error> {
        Ok(self.lock().committed.iter().map(|(n, (b, c))| ArtifactMeta::new(n.clone(), b.len() as u64, *c)).collect())
    }

    async fn stat(&self, name: &ArtifactName) -> Result<ArtifactMeta, Error> {
        let store = self.lock();
        let (b, c) = store.committed.get(name).ok_or_else(|| Self::not_found(name))?;
        Ok(ArtifactMeta::new(name.clone(), b.len() as u64, *c))
    }

    async fn open(&self, name: &ArtifactName) -> Result<ArtifactReader, Error> {
        let bytes = self.lock().committed.get(name).map(|(b, _)| b.clone()).ok_or_else(|| Self::not_found(name))?;
        Ok(Box::new(std::io::Cursor::new(ArcBytes(bytes))))
    }

    async fn delete(&self, name: &ArtifactName) -> Result<(), Error> {
        self.lock().committed.remove(name).map(|_| ()).ok_or_else(|| Self::not_found(name))
    }
}

struct ArcBytes(Arc<Vec<u8>>);

impl AsRef<[u8]> for ArcBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

#[derive(Debug)]
struct MemoryWriter {
    target: InMemoryBackupTarget,
    name: ArtifactName,
    buf: Vec<u8>,
    open: bool,
}

impl MemoryWriter {
    fn close(&mut self) {
        if std::mem::replace(&mut self.open, false) {
            self.target.lock().pending -= 1;
        }
    }
}

impl Drop for MemoryWriter {
    fn drop(&mut self) {
        self.close();
    }
}

#[async_trait]
impl ArtifactWriter for MemoryWriter {
    async fn write(&mut self, buf: &[u8]) -> Result<(), Error> {
        if let Some(cap) = self.target.capacity
            && (self.buf.len() + buf.len()) as u64 > cap
        {
            return Err(Error::new(ErrorKind::StorageFull, format!("in-memory target is full ({cap} bytes)")));
        }
        self.buf.extend_from_slice(buf);
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<ArtifactMeta, Error> {
        let created = Utc::now();
        let bytes = std::mem::take(&mut self.buf);
        let size = bytes.len() as u64;
        {
            let mut store = self.target.lock();
            if store.committed.contains_key(&self.name) {
                return Err(Error::new(ErrorKind::AlreadyExists, format!("artifact {} exists already", self.name)));
            }
            store.committed.insert(self.name.clone(), (Arc::new(bytes), created));
        }
        self.close();
        Ok(ArtifactMeta::new(self.name.clone(), size, created))
    }

    async fn abort(mut self: Box<Self>) -> Result<(), Error> {
        self.close();
        Ok(())
    }
}
