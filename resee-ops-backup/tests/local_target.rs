//! `LocalDirTarget` against the core conformance suite, plus what only a directory can get wrong.

use std::os::unix::fs::PermissionsExt;

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

#[tokio::test]
async fn sweep_removes_temporaries_of_dead_processes_only() {
    let tmp = tempfile::tempdir().unwrap();
    let target = LocalDirTarget::new(tmp.path()).unwrap();
    // A crash left this one: its process (pid 4194304 is above the kernel's pid_max) is gone.
    let crashed = tmp.path().join(".db_prod_20250101_000000.sql.gz.tmp-4194304-0123456789abcdef");
    std::fs::write(&crashed, b"half a backup").unwrap();
    // This process wrote this one and forgot it (not tracked as live): also abandoned.
    let own = tmp.path().join(format!(".x.sql.gz.tmp-{}-00000000deadbeef", std::process::id()));
    std::fs::write(&own, b"left over").unwrap();
    // A writer still in progress, and files that are not temporaries, stay.
    let mut live = target.create(&ArtifactName::new("live.sql.gz").unwrap()).await.unwrap();
    live.write(b"in progress").await.unwrap();
    std::fs::write(tmp.path().join(".hidden-other"), b"not ours").unwrap();
    std::fs::write(tmp.path().join("kept.sql.gz"), b"committed").unwrap();

    assert_eq!(target.sweep_incomplete().await.unwrap(), 2);
    assert!(!crashed.exists() && !own.exists());
    let left = entries(tmp.path());
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(left.iter().any(|n| n.starts_with(".live.sql.gz.tmp-")));
    live.commit().await.unwrap();
    assert_eq!(target.sweep_incomplete().await.unwrap(), 0);
    assert_eq!(entries(tmp.path()), [".hidden-other", "kept.sql.gz", "live.sql.gz"]);
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
