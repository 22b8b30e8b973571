//! The [`BackupTarget`] contract as named checks, in the manner of `object_store`'s `integration` module:
//! a target runs [`run_all`] with the [`Capabilities`] it has, or calls single checks from its own tests.
//!
//! Every check works on names of its own (a random prefix, so checks and concurrent test binaries sharing a
//! bucket or directory never see each other's artifacts), cleans up what it created and panics with a
//! message naming the broken rule, like `assert!`.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use resee_ops_core::testing::InMemoryBackupTarget;
//! use resee_ops_core::testing::conformance::backup::{self, Capabilities};
//!
//! let target = InMemoryBackupTarget::new();
//! backup::run_all(&target, Capabilities::default()).await;
//! // Or one check at a time:
//! backup::publish_never_overwrites(&target, Capabilities::default()).await;
//! // A target that cannot hold large artifacts skips the checks that need them.
//! let small = InMemoryBackupTarget::new().with_capacity(1024 * 1024);
//! backup::run_all(&small, Capabilities::default().with_large_artifacts(false)).await;
//! # });
//! ```

use tokio::io::AsyncReadExt;

use crate::{ArtifactMeta, ArtifactName, BackupTarget, ErrorKind};

/// What a target supports; each flag turns on the checks that need it. [`Default`] is everything, which
/// every target of this workspace supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Artifacts of several megabytes, written in many uneven chunks (off for a target with a small
    /// capacity, such as a capped [`InMemoryBackupTarget`](crate::testing::InMemoryBackupTarget)).
    pub large_artifacts: bool,
    /// A second writer may be created for a name while a first one is staged; then the later publish
    /// must fail with `AlreadyExists` (off for a target that locks a name while it is written).
    pub concurrent_writers: bool,
    /// The target writes temporaries that [`BackupTarget::sweep_incomplete`] removes. On: the sweep must
    /// spare a live writer and every published artifact. Off: the sweep must do nothing (`Ok(0)`), the
    /// documented no-op of a target with nothing to sweep.
    pub sweeps_temporaries: bool,
}

impl Default for Capabilities {
    fn default() -> Self {
        Self { large_artifacts: true, concurrent_writers: true, sweeps_temporaries: true }
    }
}

impl Capabilities {
    /// Sets [`large_artifacts`](Self::large_artifacts).
    pub fn with_large_artifacts(mut self, yes: bool) -> Self {
        self.large_artifacts = yes;
        self
    }

    /// Sets [`concurrent_writers`](Self::concurrent_writers).
    pub fn with_concurrent_writers(mut self, yes: bool) -> Self {
        self.concurrent_writers = yes;
        self
    }

    /// Sets [`sweeps_temporaries`](Self::sweeps_temporaries).
    pub fn with_sweeps_temporaries(mut self, yes: bool) -> Self {
        self.sweeps_temporaries = yes;
        self
    }
}

/// Runs every check the target's `capabilities` allow, one after the other.
pub async fn run_all(target: &dyn BackupTarget, capabilities: Capabilities) {
    put_get_roundtrip(target, capabilities).await;
    list_and_delete(target).await;
    publish_never_overwrites(target, capabilities).await;
    staged_not_visible(target).await;
    abort_leaves_nothing(target).await;
    missing_names_not_found(target).await;
    sweep_incomplete(target, capabilities).await;
}

/// Names under a random prefix, so that checks never see each other's artifacts.
struct Names {
    prefix: String,
}

impl Names {
    fn new(check: &str) -> Self {
        Self { prefix: format!("conformance-{check}-{:08x}-", fastrand::u32(..)) }
    }

    fn name(&self, s: &str) -> ArtifactName {
        ArtifactName::new(format!("{}{s}", self.prefix)).expect("valid name")
    }

    /// The names of this check's artifacts that `list` shows, in `list`'s order.
    async fn listed(&self, target: &dyn BackupTarget) -> Vec<String> {
        let metas: Vec<ArtifactMeta> = target.list().await.expect("backup target conformance: list failed");
        metas.into_iter().map(|m| m.name.to_string()).filter(|n| n.starts_with(&self.prefix)).collect()
    }
}

async fn write(target: &dyn BackupTarget, name: &ArtifactName, body: &[u8]) -> ArtifactMeta {
    let mut w = target.create(name).await.expect("backup target conformance: create failed");
    for chunk in body.chunks(65_537) {
        w.write(chunk).await.expect("backup target conformance: write failed");
    }
    w.commit().await.expect("backup target conformance: commit failed")
}

async fn read(target: &dyn BackupTarget, name: &ArtifactName) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut reader = target.open(name).await.expect("backup target conformance: open failed");
    reader.read_to_end(&mut bytes).await.expect("backup target conformance: read failed");
    bytes
}

async fn delete_all(target: &dyn BackupTarget, names: &Names) {
    for n in names.listed(target).await {
        let name = ArtifactName::new(n).expect("listed names are valid");
        target.delete(&name).await.expect("backup target conformance: clean-up delete failed");
    }
}

/// Committed artifacts read back byte for byte: empty, small and (with
/// [`large_artifacts`](Capabilities::large_artifacts)) a multi-megabyte one written in uneven chunks;
/// nothing is visible before commit; `commit` and `stat` report the size.
pub async fn put_get_roundtrip(target: &dyn BackupTarget, capabilities: Capabilities) {
    let names = Names::new("roundtrip");
    let mut bodies = vec![("empty", Vec::new()), ("small", b"hello, backup".to_vec())];
    if capabilities.large_artifacts {
        let big = (0..5 * 1024 * 1024 + 17).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        bodies.push(("big", big));
    }
    for (label, body) in &bodies {
        let n = names.name(label);
        let mut w = target.create(&n).await.expect("backup target conformance: create failed");
        for chunk in body.chunks(65_537) {
            w.write(chunk).await.expect("backup target conformance: write failed");
        }
        assert!(
            !names.listed(target).await.contains(&n.to_string()),
            "backup target conformance: {label} visible before commit"
        );
        let meta = w.commit().await.expect("backup target conformance: commit failed");
        assert_eq!(meta.name, n, "backup target conformance: commit returned another name");
        assert_eq!(meta.size, body.len() as u64, "backup target conformance: commit size of {label}");
        let stat = target.stat(&n).await.expect("backup target conformance: stat failed");
        assert_eq!(stat.size, body.len() as u64, "backup target conformance: stat size of {label}");
        let back = read(target, &n).await;
        assert!(
            back == *body,
            "backup target conformance: {label} read back differs ({} vs {} bytes)",
            back.len(),
            body.len()
        );
    }
    delete_all(target, &names).await;
}

/// `list` holds exactly the committed artifacts, sorted by name; `delete` removes one (then `stat` says
/// `NotFound`) and leaves the others.
pub async fn list_and_delete(target: &dyn BackupTarget) {
    let names = Names::new("list");
    for label in ["c", "a", "b"] {
        write(target, &names.name(label), label.as_bytes()).await;
    }
    let expected: Vec<String> = ["a", "b", "c"].iter().map(|l| names.name(l).to_string()).collect();
    assert_eq!(
        names.listed(target).await,
        expected,
        "backup target conformance: list must hold exactly the committed artifacts, sorted by name"
    );
    target.delete(&names.name("b")).await.expect("backup target conformance: delete failed");
    assert_eq!(
        target.stat(&names.name("b")).await.expect_err("backup target conformance: stat after delete").kind(),
        ErrorKind::NotFound,
        "backup target conformance: a deleted artifact must be NotFound"
    );
    assert_eq!(
        names.listed(target).await,
        [expected[0].clone(), expected[2].clone()],
        "backup target conformance: delete must remove exactly one artifact"
    );
    assert_eq!(read(target, &names.name("c")).await, b"c", "backup target conformance: delete touched another");
    delete_all(target, &names).await;
    assert!(names.listed(target).await.is_empty(), "backup target conformance: artifacts left after delete");
}

/// An existing name is never overwritten: committing over it fails with `AlreadyExists` and keeps the
/// artifact; with [`concurrent_writers`](Capabilities::concurrent_writers), publishing a staged artifact
/// over a name committed meanwhile fails the same way.
pub async fn publish_never_overwrites(target: &dyn BackupTarget, capabilities: Capabilities) {
    let names = Names::new("overwrite");
    let n = names.name("kept");
    write(target, &n, b"original").await;
    let err = match target.create(&n).await {
        Ok(mut w) => {
            w.write(b"replacement").await.expect("backup target conformance: write failed");
            w.commit().await.expect_err("backup target conformance: committing over an existing name must fail")
        }
        Err(e) => e,
    };
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "backup target conformance: overwrite error kind: {err}");
    assert_eq!(read(target, &n).await, b"original", "backup target conformance: a failed overwrite changed it");

    if capabilities.concurrent_writers {
        let raced = names.name("raced");
        let mut w = target.create(&raced).await.expect("backup target conformance: create failed");
        w.write(b"second").await.expect("backup target conformance: write failed");
        let late = w.stage().await.expect("backup target conformance: stage failed");
        write(target, &raced, b"first").await;
        let err = late.publish().await.expect_err("backup target conformance: publish over an existing name must fail");
        assert_eq!(err.kind(), ErrorKind::AlreadyExists, "backup target conformance: publish error kind: {err}");
        assert_eq!(read(target, &raced).await, b"first", "backup target conformance: a failed publish changed it");
    }
    delete_all(target, &names).await;
}

/// A staged artifact is readable (its own bytes) and invisible to `list` and `stat` until published;
/// published, it is listed with its size; discarded or dropped, it leaves nothing.
pub async fn staged_not_visible(target: &dyn BackupTarget) {
    let names = Names::new("staged");
    let n = names.name("staged");
    let mut w = target.create(&n).await.expect("backup target conformance: create failed");
    w.write(b"staged ").await.expect("backup target conformance: write failed");
    w.write(b"bytes").await.expect("backup target conformance: write failed");
    let staged = w.stage().await.expect("backup target conformance: stage failed");
    assert_eq!(staged.name(), &n, "backup target conformance: staged name");
    assert_eq!(staged.size(), 12, "backup target conformance: staged size");
    assert!(names.listed(target).await.is_empty(), "backup target conformance: staged artifact visible in list");
    assert_eq!(
        target.stat(&n).await.expect_err("backup target conformance: stat of a staged artifact").kind(),
        ErrorKind::NotFound,
        "backup target conformance: a staged artifact must be NotFound by name"
    );
    let mut bytes = Vec::new();
    let mut reader = staged.open().await.expect("backup target conformance: open staged failed");
    reader.read_to_end(&mut bytes).await.expect("backup target conformance: read staged failed");
    assert_eq!(bytes, b"staged bytes", "backup target conformance: staged bytes read back");
    let meta = staged.publish().await.expect("backup target conformance: publish failed");
    assert_eq!(meta.size, 12, "backup target conformance: published size");
    assert_eq!(names.listed(target).await, [n.to_string()], "backup target conformance: published artifact missing");
    target.delete(&n).await.expect("backup target conformance: delete failed");

    let mut w = target.create(&n).await.expect("backup target conformance: create failed");
    w.write(b"x").await.expect("backup target conformance: write failed");
    let staged = w.stage().await.expect("backup target conformance: stage failed");
    staged.discard().await.expect("backup target conformance: discard failed");
    let mut w = target.create(&n).await.expect("backup target conformance: create failed");
    w.write(b"x").await.expect("backup target conformance: write failed");
    drop(w.stage().await.expect("backup target conformance: stage failed"));
    assert!(
        names.listed(target).await.is_empty(),
        "backup target conformance: a discarded or dropped staged artifact is visible"
    );
}

/// An aborted or dropped writer leaves nothing visible, and its name can be used again.
pub async fn abort_leaves_nothing(target: &dyn BackupTarget) {
    let names = Names::new("abort");
    let mut w = target.create(&names.name("aborted")).await.expect("backup target conformance: create failed");
    w.write(b"partial").await.expect("backup target conformance: write failed");
    w.abort().await.expect("backup target conformance: abort failed");
    let mut w = target.create(&names.name("dropped")).await.expect("backup target conformance: create failed");
    w.write(b"partial").await.expect("backup target conformance: write failed");
    drop(w);
    assert!(
        names.listed(target).await.is_empty(),
        "backup target conformance: an aborted or dropped artifact is visible"
    );
    write(target, &names.name("aborted"), b"").await;
    assert_eq!(
        names.listed(target).await,
        [names.name("aborted").to_string()],
        "backup target conformance: a name freed by abort must be usable"
    );
    delete_all(target, &names).await;
}

/// `stat`, `open` and `delete` of a name that was never written fail with `NotFound`.
pub async fn missing_names_not_found(target: &dyn BackupTarget) {
    let missing = Names::new("missing").name("missing");
    assert_eq!(target.stat(&missing).await.expect_err("stat missing").kind(), ErrorKind::NotFound);
    assert_eq!(target.open(&missing).await.err().expect("open missing").kind(), ErrorKind::NotFound);
    assert_eq!(target.delete(&missing).await.expect_err("delete missing").kind(), ErrorKind::NotFound);
}

/// `sweep_incomplete` succeeds and never removes a published artifact or a live writer's data (a
/// concurrent run's): the writer commits afterwards and reads back. Without
/// [`sweeps_temporaries`](Capabilities::sweeps_temporaries) it must sweep nothing (`Ok(0)`).
pub async fn sweep_incomplete(target: &dyn BackupTarget, capabilities: Capabilities) {
    let names = Names::new("sweep");
    write(target, &names.name("published"), b"published").await;
    let mut live = target.create(&names.name("live")).await.expect("backup target conformance: create failed");
    live.write(b"live ").await.expect("backup target conformance: write failed");
    let swept = target.sweep_incomplete().await.expect("backup target conformance: sweep_incomplete failed");
    if !capabilities.sweeps_temporaries {
        assert_eq!(swept, 0, "backup target conformance: a target with nothing to sweep swept {swept}");
    }
    live.write(b"writer").await.expect("backup target conformance: a sweep broke a live writer");
    live.commit().await.expect("backup target conformance: a sweep broke a live writer's commit");
    assert_eq!(read(target, &names.name("live")).await, b"live writer", "backup target conformance: live writer");
    assert_eq!(
        read(target, &names.name("published")).await,
        b"published",
        "backup target conformance: a sweep changed a published artifact"
    );
    delete_all(target, &names).await;
}
