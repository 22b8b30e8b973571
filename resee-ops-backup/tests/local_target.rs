//! `LocalDirTarget` against the core conformance suite, plus what only a directory can get wrong.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use resee_ops_backup::LocalDirTarget;
use resee_ops_core::testing::conformance;
use resee_ops_core::{ArtifactName, BackupTarget, ErrorKind};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn entries(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_backup_target_conformance_suite() {
    let tmp = tempfile::tempdir().unwrap();
    let target = LocalDirTarget::new(tmp.path().join("a/b")).unwrap();
    conformance::backup_target(&target).await;
    assert_eq!(mode(target.dir()), 0o700);
    assert!(entries(target.dir()).is_empty(), "no temporaries left: {:?}", entries(target.dir()));
}

#[tokio::test]
async fn files_are_private_and_invisible_until_commit() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let target = LocalDirTarget::new(tmp.path()).unwrap();
    assert_eq!(mode(tmp.path()), 0o755, "an existing directory is left as the operator set it");
    let name = ArtifactName::new("db_prod_20250101_000000.sql.gz").unwrap();
    let mut w = target.create(&name).await.unwrap();
    w.write(b"partial").await.unwrap();
    let during = entries(tmp.path());
    assert_eq!(during.len(), 1);
    assert!(during[0].starts_with(".db_prod_20250101_000000.sql.gz.tmp-"), "{during:?}");
    assert_eq!(mode(&tmp.path().join(&during[0])), 0o600);
    assert!(target.list().await.unwrap().is_empty(), "temporaries are not listed");
    assert_eq!(target.stat(&name).await.unwrap_err().kind(), ErrorKind::NotFound);
    w.commit().await.unwrap();
    assert_eq!(entries(tmp.path()), ["db_prod_20250101_000000.sql.gz"]);
    assert_eq!(mode(&target.path_of(&name)), 0o600);
}

/// Another process holding a file's lock, killed when the test ends however it ends.
struct LockHolder(std::process::Child);

impl LockHolder {
    /// `flock FILE` (util-linux) in a second real process; returns once that process holds the lock.
    fn start(path: &std::path::Path) -> Self {
        use std::io::BufRead as _;
        let mut child = std::process::Command::new("flock")
            .arg("--exclusive")
            // The lock holder is this very process (no child that would outlive a kill).
            .arg("--no-fork")
            .arg(path)
            .arg("-c")
            .arg("echo locked; exec sleep 600")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("flock (util-linux) must be installed");
        let mut line = String::new();
        // Returns when flock holds the lock and says so, or at EOF if it exits (then the assert fails).
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let holder = Self(child);
        assert_eq!(line.trim(), "locked", "flock did not take the lock");
        holder
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn age(path: &std::path::Path, by: Duration) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - by).unwrap();
}

/// Point 8: the sweep never removes a temporary another live run holds locked, however old it is and
/// whatever PID its name carries (containers sharing a volume see other PIDs); it removes an unlocked one
/// once it is older than the minimum age.
#[tokio::test]
async fn sweep_removes_only_unlocked_temporaries_older_than_the_minimum_age() {
    let tmp = tempfile::tempdir().unwrap();
    let target = LocalDirTarget::new(tmp.path()).unwrap().with_sweep_min_age(Duration::from_secs(600));
    let hour = Duration::from_secs(3600);
    // Another run, in another container (PID 4194304 does not exist here), writes this one and holds its lock.
    let held = tmp.path().join(".db_prod_20250101_000000.sql.gz.tmp-4194304-0123456789abcdef");
    std::fs::write(&held, b"another run's backup").unwrap();
    age(&held, hour);
    let holder = LockHolder::start(&held);
    // A crash left this one: unlocked, an hour old.
    let abandoned = tmp.path().join(format!(".x.sql.gz.tmp-{}-00000000deadbeef", std::process::id()));
    std::fs::write(&abandoned, b"left over").unwrap();
    age(&abandoned, hour);
    // Unlocked but new (a writer between creating and locking it): kept until it is older than the minimum.
    let fresh = tmp.path().join(".y.sql.gz.tmp-4194304-00000000cafebabe");
    std::fs::write(&fresh, b"just created").unwrap();
    // A writer of this process, idle for an hour, and files that are not temporaries, stay.
    let mut live = target.create(&ArtifactName::new("live.sql.gz").unwrap()).await.unwrap();
    live.write(b"in progress").await.unwrap();
    let live_tmp = tmp.path().join(entries(tmp.path()).into_iter().find(|n| n.starts_with(".live.")).unwrap());
    age(&live_tmp, hour);
    std::fs::write(tmp.path().join(".hidden-other"), b"not ours").unwrap();
    std::fs::write(tmp.path().join("kept.sql.gz"), b"committed").unwrap();

    assert_eq!(target.sweep_incomplete().await.unwrap(), 1);
    assert!(!abandoned.exists());
    assert!(held.exists(), "a temporary locked by another live process was swept");
    assert!(fresh.exists() && live_tmp.exists());

    // When the other run dies, the kernel releases its lock: its temporary is abandoned now.
    drop(holder);
    assert_eq!(target.sweep_incomplete().await.unwrap(), 1);
    assert!(!held.exists());

    live.commit().await.unwrap();
    age(&fresh, hour);
    assert_eq!(target.sweep_incomplete().await.unwrap(), 1);
    assert_eq!(entries(tmp.path()), [".hidden-other", "kept.sql.gz", "live.sql.gz"]);
    // The default minimum age is an hour.
    assert_eq!(LocalDirTarget::DEFAULT_SWEEP_MIN_AGE, hour);
}

#[tokio::test]
async fn a_file_in_place_of_the_directory_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("backups");
    std::fs::write(&file, b"").unwrap();
    let err = LocalDirTarget::new(&file).unwrap_err();
    assert_eq!(err.kind(), resee_ops_core::ErrorKind::InvalidConfig);
    assert!(err.message().contains("not a directory"), "{err}");
}
