//! The backup lifecycle against a real PostgreSQL: retention after each backup on a local target, restores
//! with the real `psql` (gzip and zstd) compared with `pg_dump` of the source, refusals, and the restore test.

mod common;

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use common::*;
use resee_ops_backup::{
    BackupSelector, CompressionProfile, ConnectionUrl, LocalDirTarget, Manifest, PgDumpBackup, ProgressMode,
    RestoreOptions, Restorer, RetentionPolicy, alert_names, list_backups, prune, run_restore_test,
};
use resee_ops_core::testing::{ManualClock, RecordingNotifier};
use resee_ops_core::{ArtifactMeta, ArtifactName, ArtifactReader, ArtifactWriter, BackupTarget, Error, ErrorKind};

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

async fn backup_into(dir: &Path, profile: CompressionProfile, clock: &ManualClock) -> resee_ops_backup::Manifest {
    let outcome = PgDumpBackup::builder()
        // Tests of one binary back up the same database in parallel: the lock has its own tests.
        .with_single_run_lock(false)
        .with_url(rich_db())
        .with_environment("test")
        .with_name("rich")
        .with_profile(profile)
        .with_clock(clock.shared())
        .with_threads(2)
        .with_target(LocalDirTarget::new(dir).unwrap())
        .build()
        .unwrap()
        .run()
        .await;
    assert!(outcome.is_success(), "{:?}", outcome.error);
    outcome.manifest.unwrap()
}

fn restorer(dir: &Path) -> Restorer {
    let server = ConnectionUrl::parse(&server_url()).unwrap();
    Restorer::new(LocalDirTarget::new(dir).unwrap(), server).with_progress(ProgressMode::Lines)
}

fn drop_db(name: &str) {
    psql(&server_url(), &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));
}

fn db_exists(name: &str) -> bool {
    psql(&server_url(), &format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'")) == "1"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_and_zstd_backups_restore_to_an_identical_database() {
    for (profile, ext) in [(CompressionProfile::Default, ".sql.gz"), (CompressionProfile::Zstd, ".sql.zst")] {
        let dir = tempfile::tempdir().unwrap();
        let manifest = backup_into(dir.path(), profile, &ManualClock::new()).await;
        assert!(manifest.artifact.ends_with(ext), "{}", manifest.artifact);
        let tables = manifest.tables.clone().expect("row counts recorded");
        assert_eq!(tables.get("public.people"), Some(&4), "{tables:?}");
        assert_eq!(tables.get("sales.orders"), Some(&5000));
        assert_eq!(tables.get("\"Ünïcode schema\".\"empty table\""), Some(&0));

        let target_db = format!("resee_lc_restored_{}_{}", &ext[5..], std::process::id());
        drop_db(&target_db);
        let report = restorer(dir.path())
            .restore(&BackupSelector::Latest, &RestoreOptions::default().with_database(target_db.clone()))
            .await
            .unwrap();
        assert!(report.created);
        assert_eq!(report.backup, manifest.artifact);
        assert_eq!(report.raw_bytes, manifest.raw_size);
        assert_eq!(plain_dump(&with_database(&server_url(), &target_db)), plain_dump(rich_db()), "{ext}");
        drop_db(&target_db);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_empty_database_is_refused_unless_forced_and_the_default_name_comes_from_the_backup() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = backup_into(dir.path(), CompressionProfile::Default, &ManualClock::new()).await;
    let busy =
        database(&server_url(), "resee_lc_busy", "CREATE TABLE precious (id int); INSERT INTO precious VALUES (42);");
    let busy_name = busy.rsplit('/').next().unwrap().to_owned();
    let r = restorer(dir.path());
    let err = r
        .restore(&BackupSelector::Latest, &RestoreOptions::default().with_database(busy_name.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    assert!(err.to_string().contains("--force"), "{err}");
    assert_eq!(psql(&busy, "SELECT id FROM precious"), "42", "untouched");

    let report = r
        .restore(
            &BackupSelector::Name(manifest.artifact.clone()),
            &RestoreOptions::default().with_database(busy_name.clone()).with_force(true),
        )
        .await
        .unwrap();
    assert!(report.created);
    assert_eq!(plain_dump(&busy), plain_dump(rich_db()));
    drop_db(&busy_name);

    // An existing empty database is used as it is; by default the name is derived from the backup.
    let default_name = resee_ops_backup::default_database_name(&manifest.artifact).unwrap();
    drop_db(&default_name);
    psql(&server_url(), &format!("CREATE DATABASE \"{default_name}\""));
    let report = r.restore(&BackupSelector::Latest, &RestoreOptions::default()).await.unwrap();
    assert_eq!((report.database.as_str(), report.created), (default_name.as_str(), false));
    drop_db(&default_name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_backup_is_refused_before_anything_is_written() {
    for profile in [CompressionProfile::Default, CompressionProfile::Zstd] {
        let dir = tempfile::tempdir().unwrap();
        let manifest = backup_into(dir.path(), profile, &ManualClock::new()).await;
        let path = dir.path().join(&manifest.artifact);
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x40;
        std::fs::write(&path, bytes).unwrap();
        let target_db = format!("resee_lc_corrupt_{}", std::process::id());
        drop_db(&target_db);
        let err = restorer(dir.path())
            .restore(&BackupSelector::Latest, &RestoreOptions::default().with_database(target_db.clone()))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
        assert!(!db_exists(&target_db), "nothing was created");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unverified_backups_and_unknown_names_are_not_restored() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = backup_into(dir.path(), CompressionProfile::Default, &ManualClock::new()).await;
    std::fs::remove_file(dir.path().join(format!("{}.manifest.json", manifest.artifact))).unwrap();
    let r = restorer(dir.path());
    let err = r.restore(&BackupSelector::Latest, &RestoreOptions::default()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let err =
        r.restore(&BackupSelector::Name(manifest.artifact.clone()), &RestoreOptions::default()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    let err = r.restore(&"2000-01-01".parse().unwrap(), &RestoreOptions::default()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_restore_test_passes_on_a_good_backup_and_fails_loudly_on_a_damaged_one() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let manifest = backup_into(dir.path(), CompressionProfile::Zstd, &clock).await;
    let notifier = RecordingNotifier::new();
    let r = restorer(dir.path());
    let report = run_restore_test(&r, Some(&notifier)).await.unwrap();
    assert_eq!(report.backup, manifest.artifact);
    assert_eq!(report.tables, manifest.tables.as_ref().unwrap().len());
    assert!(!db_exists(&report.database), "the scratch database is dropped");
    assert!(notifier.alerts().is_empty());

    // Row counts that do not match what was dumped (the manifest says one more row).
    let manifest_path = dir.path().join(format!("{}.manifest.json", manifest.artifact));
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    m["tables"]["sales.orders"] = serde_json::json!(5001);
    std::fs::write(&manifest_path, serde_json::to_vec(&m).unwrap()).unwrap();
    let err = run_restore_test(&r, Some(&notifier)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity);
    assert!(err.to_string().contains("sales.orders: 5000 rows, 5001 at dump time"), "{err}");

    // A damaged artifact: verification stops it before any restore.
    clock.advance(Duration::from_secs(3600));
    let newer = backup_into(dir.path(), CompressionProfile::Default, &clock).await;
    let path = dir.path().join(&newer.artifact);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() - 100;
    bytes[at] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let err = run_restore_test(&r, Some(&notifier)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");

    let alerts = notifier.alerts();
    assert_eq!(alerts.len(), 2);
    assert!(alerts.iter().all(|a| a.name == alert_names::RESTORE_TEST_FAILED), "{alerts:?}");
    // Issue 16, point 4: the title is plain text; the level's emoji belongs to the renderer (Slack adds 🔴).
    assert!(alerts.iter().all(|a| a.title == "Restore test failed" && a.title.is_ascii()), "{alerts:?}");
    assert!(alerts[0].text.contains("sales.orders: 5000 rows"), "{alerts:?}");
    let leftovers = psql(&server_url(), "SELECT count(*) FROM pg_database WHERE datname LIKE 'resee_restore_test_%'");
    assert_eq!(leftovers, "0", "no scratch database is left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_runs_after_each_successful_backup_and_never_after_a_failed_one() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let policy = RetentionPolicy::new().with_keep_last(2).with_min_verified(2);
    let backup = |url: &str| {
        PgDumpBackup::builder()
            // Tests of one binary back up the same database in parallel: the lock has its own tests.
            .with_single_run_lock(false)
            .with_url(url)
            .with_environment("test")
            .with_name("rich")
            .with_clock(clock.shared())
            .with_threads(2)
            .with_retry(resee_ops_backup::RetryPolicy::celery(0, Duration::ZERO))
            .with_retention(policy.clone())
            .with_target(LocalDirTarget::new(dir.path()).unwrap())
            .build()
            .unwrap()
    };
    // Something else's backup in the same directory, an old unverified artifact of ours, an orphan manifest.
    std::fs::write(dir.path().join("other_test_20200101_000000.sql.gz"), b"not ours").unwrap();
    std::fs::write(dir.path().join("rich_test_20200101_000000.sql.gz"), b"crashed before its manifest").unwrap();
    std::fs::write(dir.path().join("rich_test_20200102_000000.sql.gz.manifest.json"), b"{}").unwrap();

    let mut names = Vec::new();
    for _ in 0..3 {
        let outcome = backup(rich_db()).run().await;
        assert!(outcome.is_success(), "{:?}", outcome.error);
        names.push(outcome.report.filename.clone());
        assert!(outcome.prune.as_ref().unwrap().warnings.is_empty());
        clock.advance(Duration::from_secs(86_400));
    }
    let manifest = |n: &str| format!("{n}.manifest.json");
    let mut want = vec![
        names[1].clone(),
        manifest(&names[1]),
        names[2].clone(),
        manifest(&names[2]),
        "other_test_20200101_000000.sql.gz".to_owned(),
    ];
    want.sort();
    assert_eq!(files_in(dir.path()), want);

    // A failed backup (no such database) leaves every backup in place, even with a policy that would prune.
    let failing = PgDumpBackup::builder()
        // Tests of one binary back up the same database in parallel: the lock has its own tests.
        .with_single_run_lock(false)
        .with_url(&with_database(&server_url(), "resee_lc_no_such_db"))
        .with_environment("test")
        .with_name("rich")
        .with_clock(clock.shared())
        .with_retry(resee_ops_backup::RetryPolicy::celery(0, Duration::ZERO))
        .with_retention(RetentionPolicy::new().with_min_verified(0))
        .with_target(LocalDirTarget::new(dir.path()).unwrap())
        .build()
        .unwrap();
    let outcome = failing.run().await;
    assert!(!outcome.is_success());
    assert!(outcome.prune.is_none());
    assert_eq!(files_in(dir.path()), want);

    // A dry run plans without removing.
    let dry = RetentionPolicy::new().with_keep_last(1).with_min_verified(1);
    let b = PgDumpBackup::builder()
        // Tests of one binary back up the same database in parallel: the lock has its own tests.
        .with_single_run_lock(false)
        .with_url(rich_db())
        .with_environment("test")
        .with_name("rich")
        .with_clock(clock.shared())
        .with_retention(dry)
        .with_target(LocalDirTarget::new(dir.path()).unwrap())
        .build()
        .unwrap();
    let report = b.prune(true).await.unwrap();
    assert!(report.dry_run);
    let text = report.to_string();
    assert!(text.contains(&format!("keep   {}  (last)", names[2])), "{text}");
    assert!(text.contains(&format!("remove {}  (no_rule)", names[1])), "{text}");
    assert_eq!(files_in(dir.path()), want);
}

/// A target whose deletes fail for names containing a marker (a unit-level edge case: a real local target
/// cannot be made to fail one delete and not another for root).
#[derive(Debug)]
struct FailingDeletes {
    inner: LocalDirTarget,
    fails: fn(&str) -> bool,
}

#[async_trait]
impl BackupTarget for FailingDeletes {
    async fn create(&self, name: &ArtifactName) -> Result<Box<dyn ArtifactWriter>, Error> {
        self.inner.create(name).await
    }
    async fn list(&self) -> Result<Vec<ArtifactMeta>, Error> {
        self.inner.list().await
    }
    async fn stat(&self, name: &ArtifactName) -> Result<ArtifactMeta, Error> {
        self.inner.stat(name).await
    }
    async fn open(&self, name: &ArtifactName) -> Result<ArtifactReader, Error> {
        self.inner.open(name).await
    }
    async fn delete(&self, name: &ArtifactName) -> Result<(), Error> {
        if (self.fails)(name.as_str()) {
            return Err(Error::new(ErrorKind::PermissionDenied, "delete refused"));
        }
        self.inner.delete(name).await
    }
}

async fn fake_backup(target: &dyn BackupTarget, name: &str) {
    let artifact = ArtifactName::new(name).unwrap();
    let mut w = target.create(&artifact).await.unwrap();
    w.write(b"0123456789").await.unwrap();
    w.commit().await.unwrap();
    let manifest = serde_json::json!({
        "format": 1, "artifact": name, "database": "db", "environment": "prod", "sha256": "00",
        "compressed_size": 10, "raw_size": 10, "compression": "gzip", "level": 5, "pg_dump_version": "15",
        "server_version": "15", "started_at": "2026-01-01T00:00:00Z", "finished_at": "2026-01-01T00:00:00Z",
        "duration": "1s"
    });
    let mut w = target.create(&Manifest::name_for(&artifact).unwrap()).await.unwrap();
    w.write(&serde_json::to_vec(&manifest).unwrap()).await.unwrap();
    w.commit().await.unwrap();
}

#[tokio::test]
async fn delete_failures_are_warnings_and_never_leave_a_manifest_without_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let target = FailingDeletes { inner: LocalDirTarget::new(dir.path()).unwrap(), fails: |n| n.contains("20260101_") };
    for day in ["20260101_000000", "20260102_000000", "20260103_000000"] {
        fake_backup(&target, &format!("db_prod_{day}.sql.gz")).await;
    }
    // 01-01: its manifest cannot be removed, so its artifact stays too. 01-02: removed fully.
    let policy = RetentionPolicy::new().with_keep_last(1);
    let now = chrono::Utc::now();
    let report = prune(&target, &policy, "db_prod_", now, false).await.unwrap();
    assert_eq!(report.warnings.len(), 1, "{report}");
    assert_eq!(report.removed, ["db_prod_20260102_000000.sql.gz.manifest.json", "db_prod_20260102_000000.sql.gz"]);
    let catalog = list_backups(&target, "db_prod_").await.unwrap();
    let names: Vec<(&str, bool)> = catalog.backups.iter().map(|b| (b.name.as_str(), b.is_verified())).collect();
    assert_eq!(names, [("db_prod_20260103_000000.sql.gz", true), ("db_prod_20260101_000000.sql.gz", true)]);

    // The artifact's delete fails after its manifest went: it is left unverified, never restorable.
    let target = FailingDeletes {
        inner: LocalDirTarget::new(dir.path()).unwrap(),
        fails: |n| n == "db_prod_20260101_000000.sql.gz",
    };
    let report = prune(&target, &policy, "db_prod_", now, false).await.unwrap();
    assert_eq!(report.removed, ["db_prod_20260101_000000.sql.gz.manifest.json"], "{report}");
    assert_eq!(report.warnings.len(), 1);
    let catalog = list_backups(&target, "db_prod_").await.unwrap();
    let names: Vec<(&str, bool)> = catalog.backups.iter().map(|b| (b.name.as_str(), b.is_verified())).collect();
    assert_eq!(names, [("db_prod_20260103_000000.sql.gz", true), ("db_prod_20260101_000000.sql.gz", false)]);
}
