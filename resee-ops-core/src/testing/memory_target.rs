use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{
    ArtifactMeta, ArtifactName, ArtifactReader, ArtifactWriter, BackupTarget, Error, ErrorKind, StagedArtifact,
};

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

    /// Writers (and staged artifacts) created and neither published nor discarded yet.
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
    fn label(&self) -> &str {
        "memory"
    }

    async fn create(&self, name: &ArtifactName) -> Result<Box<dyn ArtifactWriter>, Error> {
        let mut store = self.lock();
        if store.committed.contains_key(name) {
            return Err(Error::new(ErrorKind::AlreadyExists, format!("artifact {name} exists already")));
        }
        store.pending += 1;
        Ok(Box::new(MemoryWriter {
            pending: Pending { target: self.clone(), name: name.clone(), open: true },
            buf: Vec::new(),
        }))
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

/// Counts as a pending writer until dropped or marked done.
#[derive(Debug)]
struct Pending {
    target: InMemoryBackupTarget,
    name: ArtifactName,
    open: bool,
}

impl Pending {
    fn close(&mut self) {
        if std::mem::replace(&mut self.open, false) {
            self.target.lock().pending -= 1;
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.close();
    }
}

#[derive(Debug)]
struct MemoryWriter {
    pending: Pending,
    buf: Vec<u8>,
}

#[async_trait]
impl ArtifactWriter for MemoryWriter {
    async fn write(&mut self, buf: &[u8]) -> Result<(), Error> {
        if let Some(cap) = self.pending.target.capacity
            && (self.buf.len() + buf.len()) as u64 > cap
        {
            return Err(Error::new(ErrorKind::StorageFull, format!("in-memory target is full ({cap} bytes)")));
        }
        self.buf.extend_from_slice(buf);
        Ok(())
    }

    async fn stage(self: Box<Self>) -> Result<Box<dyn StagedArtifact>, Error> {
        let MemoryWriter { pending, buf } = *self;
        Ok(Box::new(MemoryStaged { pending, bytes: Arc::new(buf) }))
    }

    async fn abort(mut self: Box<Self>) -> Result<(), Error> {
        self.pending.close();
        Ok(())
    }
}

#[derive(Debug)]
struct MemoryStaged {
    pending: Pending,
    bytes: Arc<Vec<u8>>,
}

#[async_trait]
impl StagedArtifact for MemoryStaged {
    fn name(&self) -> &ArtifactName {
        &self.pending.name
    }

    fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    async fn open(&self) -> Result<ArtifactReader, Error> {
        Ok(Box::new(std::io::Cursor::new(ArcBytes(self.bytes.clone()))))
    }

    async fn publish(mut self: Box<Self>) -> Result<ArtifactMeta, Error> {
        let created = Utc::now();
        let name = self.pending.name.clone();
        {
            let mut store = self.pending.target.lock();
            if store.committed.contains_key(&name) {
                return Err(Error::new(ErrorKind::AlreadyExists, format!("artifact {name} exists already")));
            }
            store.committed.insert(name.clone(), (self.bytes.clone(), created));
        }
        self.pending.close();
        Ok(ArtifactMeta::new(name, self.bytes.len() as u64, created))
    }

    async fn discard(mut self: Box<Self>) -> Result<(), Error> {
        self.pending.close();
        Ok(())
    }
}
