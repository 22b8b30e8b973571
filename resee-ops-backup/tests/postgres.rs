//! Backups against a real PostgreSQL with the real `pg_dump`, restored with the real `psql`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::*;
use resee_ops_backup::{LocalDirTarget, Manifest, RetryPolicy, alert_names, verify_artifact};
use resee_ops_core::ErrorKind;
use resee_ops_core::testing::{InMemoryBackupTarget, RecordingNotifier};
use resee_ops_core::{
    ArtifactMeta, ArtifactName, ArtifactReader, ArtifactWriter, BackupStatus, BackupTarget, Error, Severity,
    StagedArtifact,
};
use tokio::io::AsyncReadExt;

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_procedure_in_docs_restores_an_identical_database() {
    let source = rich_db();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("backups");
    let notifier = RecordingNotifier::new();
    let backup = builder(source)
        .with_target(LocalDirTarget::new(&dir).unwrap())
        .with_notifier(notifier.clone())
        .build()
        .unwrap();
    let outcome = backup.run().await;
    assert!(outcome.is_success(), "{:?}", outcome.error);

    let name = "resee_test_20251015_030000.sql.gz";
    let r = &outcome.report;
    assert_eq!((r.status, r.filename.as_str(), r.attempts), (BackupStatus::Success, name, 1));
    let file = dir.join(name);
    let size = std::fs::metadata(&file).unwrap().len();
    assert_eq!(r.size_bytes, size);
    assert_eq!(files_in(&dir), [name.to_owned(), format!("{name}.manifest.json")], "no temporaries left");
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);

    // The manifest describes the file.
    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.manifest.json"))).unwrap()).unwrap();
    assert_eq!(manifest.compressed_size, size);
    assert_eq!(Some(&manifest.sha256), r.sha256.as_ref());
    assert!(manifest.server_version.starts_with("15") || !manifest.server_version.is_empty());
    assert!(manifest.raw_size > size, "compressed");

    // Classic tools accept the file.
    assert!(Command::new("gzip").arg("-t").arg(&file).status().unwrap().success(), "gzip -t");

    // The documented procedure, run exactly as written.
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/restore.md")).unwrap();
    let begin = doc.find("# restore-procedure:begin").expect("begin marker in docs/restore.md");
    let end = doc.find("# restore-procedure:end").expect("end marker in docs/restore.md");
    let procedure = &doc[begin..end];
    let restored_db = format!("resee_bk_restored_{}", std::process::id());
    psql(&server_url(), &format!("DROP DATABASE IF EXISTS \"{restored_db}\" WITH (FORCE)"));
    let out = Command::new("bash")
        .arg("-c")
        .arg(procedure)
        .envs(libpq_env(&server_url()))
        .env("BACKUP", &file)
        .env("TARGET_DB", &restored_db)
        .output()
        .unwrap();
    assert!(out.status.success(), "restore procedure failed: {}", String::from_utf8_lossy(&out.stderr));

    let restored = with_database(&server_url(), &restored_db);
    let original_dump = plain_dump(source);
    let restored_dump = plain_dump(&restored);
    psql(&server_url(), &format!("DROP DATABASE IF EXISTS \"{restored_db}\" WITH (FORCE)"));
    assert!(original_dump.contains("naïve café — 日本語 🐘"), "unicode text is dumped");
    assert!(original_dump.contains("lo_create"), "large objects are dumped");
    assert!(original_dump.contains("CREATE TABLE \"Ünïcode schema\".\"empty table\""));
    assert!(original_dump == restored_dump, "the restored database dumps identically");

    // One success alert, with the identity in labels and the values in fields.
    let alerts = notifier.alerts();
    assert_eq!(alerts.len(), 1);
    let a = &alerts[0];
    assert_eq!((a.name.as_str(), a.severity), (alert_names::SUCCEEDED, Severity::Success));
    assert_eq!(a.title, "Backup of resee (test) succeeded", "plain title: the emoji is the renderer's");
    assert_eq!(a.labels.get("database").map(String::as_str), Some("resee"));
    assert_eq!(a.labels.get("environment").map(String::as_str), Some("test"));
    assert_eq!(a.labels.len(), 2);
    let field = |n: &str| a.fields.iter().find(|f| f.name == n).map(|f| f.value.clone());
    assert_eq!(field("File").as_deref(), Some(name));
    assert!(field("Size").unwrap().ends_with(" MB"));
    assert!(field("Duration").unwrap().ends_with(" s"));

    // The report serializes as the reference system's {status, filename, size_mb} and more.
    let json = serde_json::to_value(&outcome.report).unwrap();
    assert_eq!(json["status"], "success");
    assert_eq!(json["filename"], name);

    // A second run in the same second never overwrites.
    let again = backup.run().await;
    assert_eq!(again.error.as_ref().unwrap().kind(), ErrorKind::AlreadyExists, "{:?}", again.error);
    assert_eq!(std::fs::metadata(&file).unwrap().len(), size);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_bit_flipped_and_cut_short_files_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let target = LocalDirTarget::new(tmp.path()).unwrap();
    let outcome = builder(rich_db()).with_target(target.clone()).with_level(1).build().unwrap().run().await;
    assert!(outcome.is_success(), "{:?}", outcome.error);
    let name = ArtifactName::new(outcome.report.filename.clone()).unwrap();
    let good = verify_artifact(&target, &name).await.unwrap();
    assert!(good.manifest_checked);
    assert!(good.server_version.is_some() && good.pg_dump_version.is_some());
    let bytes = std::fs::read(target.path_of(&name)).unwrap();

    let check = |label: &'static str, body: Vec<u8>| {
        let target = target.clone();
        async move {
            let n = ArtifactName::new(format!("{label}.sql.gz")).unwrap();
            let mut w = target.create(&n).await.unwrap();
            w.write(&body).await.unwrap();
            w.commit().await.unwrap();
            let err = verify_artifact(&target, &n).await.expect_err(label);
            assert_eq!(err.kind(), ErrorKind::Integrity, "{label}: {err}");
        }
    };
    check("truncated", bytes[..bytes.len() / 2].to_vec()).await;
    check("tail-cut", bytes[..bytes.len() - 3].to_vec()).await;
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x10;
    check("bitflip", flipped).await;
    check("empty", Vec::new()).await;

    // A complete gzip of a dump cut short (what `pg_dump | gzip` makes when pg_dump dies): gzip -t passes it.
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(&bytes[..]), &mut raw).unwrap();
    let cut = resee_ops_backup::__bench::compress_block(&raw[..raw.len() * 2 / 3], 6).unwrap();
    let cut_path = tmp.path().join("cut.sql.gz");
    std::fs::write(&cut_path, &cut).unwrap();
    assert!(Command::new("gzip").arg("-t").arg(&cut_path).status().unwrap().success(), "gzip -t is fooled");
    std::fs::remove_file(&cut_path).unwrap();
    check("cut", cut).await;

    // Corrupting the verified file in place is caught too (CRC, and the manifest's SHA-256).
    let mut corrupt = bytes.clone();
    let last = corrupt.len() - 10;
    corrupt[last] ^= 0xff;
    std::fs::write(target.path_of(&name), corrupt).unwrap();
    let err = verify_artifact(&target, &name).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_cut_short_with_exit_status_zero_is_an_integrity_failure() {
    // The classic failure: `pg_dump | head` exits 0 with a truncated dump.
    let tmp = tempfile::tempdir().unwrap();
    let fake = script(
        tmp.path(),
        "pg_dump",
        "[ \"$1\" = --version ] && exec /usr/bin/pg_dump --version\n/usr/bin/pg_dump \"$@\" | head -c 20000\nexit 0",
    );
    let target = InMemoryBackupTarget::new();
    let notifier = RecordingNotifier::new();
    let outcome = builder(rich_db())
        .with_pg_dump(&fake)
        .with_target(target.clone())
        .with_notifier(notifier.clone())
        .build()
        .unwrap()
        .run()
        .await;
    assert_eq!(outcome.report.status, BackupStatus::IntegrityFailed, "{:?}", outcome.error);
    assert_eq!(outcome.error.as_ref().unwrap().kind(), ErrorKind::Integrity);
    assert_eq!(outcome.report.attempts, 1);
    assert!(target.list().await.unwrap().is_empty(), "nothing committed");
    assert_eq!(target.pending_writers(), 0);
    let alerts = notifier.alerts();
    assert_eq!(alerts.len(), 1);
    assert_eq!((alerts[0].name.as_str(), alerts[0].severity), (alert_names::INTEGRITY_FAILED, Severity::Error));
    let title = &alerts[0].title;
    assert!(title.starts_with("Backup of ") && title.ends_with(" failed verification"), "plain title: {title}");
}

/// A target whose first write waits until the test releases it, so that `pg_dump` is caught mid-stream.
#[derive(Debug, Clone)]
struct GatedTarget {
    inner: InMemoryBackupTarget,
    started: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Notify>,
}

#[derive(Debug)]
struct GatedWriter {
    inner: Box<dyn ArtifactWriter>,
    gate: Option<GatedTarget>,
}

#[async_trait]
impl ArtifactWriter for GatedWriter {
    async fn write(&mut self, buf: &[u8]) -> Result<(), Error> {
        if let Some(g) = self.gate.take() {
            g.started.notify_one();
            g.release.notified().await;
        }
        self.inner.write(buf).await
    }
    async fn stage(self: Box<Self>) -> Result<Box<dyn StagedArtifact>, Error> {
        self.inner.stage().await
    }
    async fn abort(self: Box<Self>) -> Result<(), Error> {
        self.inner.abort().await
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl BackupTarget for GatedTarget {
    fn label(&self) -> &str {
        self.inner.label()
    }

    async fn create(&self, name: &ArtifactName) -> Result<Box<dyn ArtifactWriter>, Error> {
        let inner = self.inner.create(name).await?;
        let gate = (!name.as_str().ends_with(".json")).then(|| self.clone());
        Ok(Box::new(GatedWriter { inner, gate }))
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
        self.inner.delete(name).await
    }
    async fn sweep_incomplete(&self) -> Result<usize, Error> {
        self.inner.sweep_incomplete().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_dump_killed_mid_stream_commits_nothing_and_never_saw_the_password_in_argv() {
    let server = password_server();
    let url = database(&server.url, "resee_bk_big", BIG_SQL);
    let gate = GatedTarget {
        inner: InMemoryBackupTarget::new(),
        started: Arc::new(tokio::sync::Notify::new()),
        release: Arc::new(tokio::sync::Notify::new()),
    };
    let notifier = RecordingNotifier::new();
    let backup = Arc::new(
        builder(&url)
            .with_target(gate.clone())
            .with_notifier(notifier.clone())
            .with_retry(RetryPolicy::celery(0, Duration::ZERO))
            .build()
            .unwrap(),
    );
    let run = tokio::spawn({
        let backup = backup.clone();
        async move { backup.run().await }
    });
    tokio::time::timeout(Duration::from_secs(60), gate.started.notified()).await.expect("the dump started");

    // pg_dump is running, blocked on a full pipe. Its argv and environment never hold the password.
    let pids = children_named("pg_dump", "PGDATABASE=resee_bk_big_");
    assert_eq!(pids.len(), 1, "exactly one pg_dump child: {pids:?}");
    let pid = pids[0];
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(cmdline.contains("--format=plain"), "read the right process: {cmdline}");
    assert!(!cmdline.contains(&server.password), "password in argv: {cmdline}");
    let environ = String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/environ")).unwrap()).into_owned();
    assert!(!environ.contains(&server.password), "password in the environment");
    assert!(environ.contains("PGPASSFILE="), "the password goes through a passfile");

    let killed = Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
    assert!(killed.success());
    gate.release.notify_one();
    let outcome = tokio::time::timeout(Duration::from_secs(60), run).await.expect("run ends").unwrap();

    assert_eq!(outcome.report.status, BackupStatus::Failed);
    let err = outcome.error.as_ref().unwrap();
    assert_eq!(err.kind(), ErrorKind::Unexpected, "{err}");
    assert!(err.message().contains("signal 9"), "{err}");
    // Killed (the OOM killer, an operator): not a known permanent cause, so worth another attempt.
    assert!(err.is_temporary(), "{err:?}");
    assert_eq!(outcome.report.attempts, 1, "one attempt configured");
    assert!(gate.inner.list().await.unwrap().is_empty(), "nothing under the final name");
    assert_eq!(gate.inner.pending_writers(), 0, "the writer was aborted");
    let alerts = notifier.alerts();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].name, alert_names::FAILED);
    assert!(alerts[0].text.contains("signal 9"));
    assert!(children_named("pg_dump", "PGDATABASE=resee_bk_big_").is_empty(), "no pg_dump left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn right_password_works_and_wrong_password_fails_once_without_leaking() {
    let server = password_server();
    let url = database(&server.url, "resee_bk_small", "CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2);");
    let target = InMemoryBackupTarget::new();
    let ok = builder(&url).with_target(target.clone()).build().unwrap().run().await;
    assert!(ok.is_success(), "{:?}", ok.error);

    let wrong_password = "definitely-Wrong-pw-1234";
    let wrong = url.replace(&url[url.find(":pw-").unwrap() + 1..url.find('@').unwrap()], wrong_password);
    assert!(wrong.contains(wrong_password));
    let notifier = RecordingNotifier::new();
    let backup = builder(&wrong).with_target(target.clone()).with_notifier(notifier.clone()).build().unwrap();
    let outcome = backup.run().await;
    let err = outcome.error.as_ref().expect("fails");
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert!(!err.is_temporary());
    assert_eq!(outcome.report.attempts, 1, "configuration errors are not retried");
    let shown = format!(
        "{err} {err:?} {} {:?} {:?} {backup:?}",
        serde_json::to_string(&outcome.report).unwrap(),
        outcome.report,
        notifier.alerts()
    );
    for secret in [wrong_password, server.password.as_str()] {
        assert!(!shown.contains(secret), "a password leaked: {shown}");
    }
    let core: resee_ops_core::Error = err.clone();
    assert_eq!(core.kind(), resee_ops_core::ErrorKind::PermissionDenied);
    assert!(!format!("{core} {core:?}").contains(wrong_password));
    assert_eq!(target.list().await.unwrap().len(), 2, "only the good backup and its manifest");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_database_fails_once() {
    let url = url_for("resee_bk_no_such_database");
    let notifier = RecordingNotifier::new();
    let outcome = builder(&url)
        .with_target(InMemoryBackupTarget::new())
        .with_notifier(notifier.clone())
        .build()
        .unwrap()
        .run()
        .await;
    let err = outcome.error.as_ref().unwrap();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert_eq!((outcome.report.status, outcome.report.attempts), (BackupStatus::Failed, 1));
    assert_eq!(outcome.report.filename, "resee_test_20251015_030000.sql.gz");
    let alerts = notifier.alerts();
    assert_eq!((alerts.len(), alerts[0].name.as_str()), (1, alert_names::FAILED));
    assert!(alerts[0].text.contains("does not exist"), "{}", alerts[0].text);
}

#[tokio::test(start_paused = true)]
async fn server_down_is_retried_three_times_five_minutes_apart() {
    // Celery's max_retries=3: one attempt plus three retries.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let target = InMemoryBackupTarget::new();
    let t0 = tokio::time::Instant::now();
    let outcome = builder(&format!("postgres://postgres:pw-down-secret@127.0.0.1:{port}/resee"))
        .with_target(target.clone())
        .build()
        .unwrap()
        .run()
        .await;
    let err = outcome.error.as_ref().unwrap();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.is_temporary());
    assert_eq!(outcome.report.attempts, 4);
    assert!(t0.elapsed() >= Duration::from_secs(900), "three 5-minute waits: {:?}", t0.elapsed());
    assert!(t0.elapsed() < Duration::from_secs(1200), "no fourth wait: {:?}", t0.elapsed());
    assert!(!err.to_string().contains("pw-down-secret"));
    assert!(target.list().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_dump_older_than_the_server_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = script(tmp.path(), "pg_dump", "echo 'pg_dump (PostgreSQL) 12.3'\nexit 0");
    let target = InMemoryBackupTarget::new();
    let outcome = builder(rich_db()).with_pg_dump(&fake).with_target(target.clone()).build().unwrap().run().await;
    let err = outcome.error.as_ref().unwrap();
    assert_eq!(err.code(), Some(resee_ops_backup::codes::PG_DUMP_TOO_OLD), "{err}");
    assert!(err.message().contains("apt-get install postgresql-client-15"), "{err}");
    assert_eq!(outcome.report.attempts, 1);
    assert!(target.list().await.unwrap().is_empty());
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_directory_not_writable() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ro");
    std::fs::create_dir(&dir).unwrap();
    let is_root = Command::new("id").arg("-u").output().unwrap().stdout.starts_with(b"0\n");
    // Root ignores permission bits: make the directory immutable instead (and undo it afterwards).
    struct Undo(std::path::PathBuf, bool);
    impl Drop for Undo {
        fn drop(&mut self) {
            if self.1 {
                let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
            } else {
                let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o700));
            }
        }
    }
    let target = LocalDirTarget::new(&dir).unwrap();
    let _undo = Undo(dir.clone(), is_root);
    if is_root {
        let st = Command::new("chattr").arg("+i").arg(&dir).status().expect("chattr runs (package e2fsprogs)");
        assert!(st.success(), "chattr +i failed: this test needs a filesystem with immutable files");
    } else {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o500)).unwrap();
    }
    assert!(std::fs::write(dir.join("probe"), b"x").is_err(), "the directory is really not writable");
    let outcome = builder(rich_db()).with_target(target).build().unwrap().run().await;
    let err = outcome.error.as_ref().unwrap();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert_eq!((outcome.report.status, outcome.report.attempts), (BackupStatus::Failed, 1));
    assert!(files_in(&dir).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_fails_and_leaves_nothing() {
    let target = InMemoryBackupTarget::new().with_capacity(16 * 1024);
    let notifier = RecordingNotifier::new();
    let outcome =
        builder(rich_db()).with_target(target.clone()).with_notifier(notifier.clone()).build().unwrap().run().await;
    let err = outcome.error.as_ref().unwrap();
    assert_eq!(err.kind(), ErrorKind::StorageFull, "{err}");
    assert_eq!((outcome.report.status, outcome.report.attempts), (BackupStatus::Failed, 1));
    assert!(target.list().await.unwrap().is_empty());
    assert_eq!(target.pending_writers(), 0);
    assert_eq!(notifier.alerts()[0].name, alert_names::FAILED);
}

/// Point 14: `Duration::MAX` is no limit for every timeout the backup takes, with the real `pg_dump` and the
/// single-run lock: the run's deadline and the lock's answer saturated (they panicked), libpq gets
/// `PGCONNECT_TIMEOUT=0` and pg_dump no `--lock-wait-timeout` (both refused numbers that large).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_of_duration_max_are_no_limit() {
    let target = InMemoryBackupTarget::new();
    let outcome = builder(rich_db())
        .with_name("nolimit")
        .with_single_run_lock(true)
        .with_connect_timeout(Duration::MAX)
        .with_lock_wait_timeout(Duration::MAX)
        .with_timeout(Duration::MAX)
        // One attempt: a refusal shows at once instead of after three 5-minute retries.
        .with_retry(RetryPolicy::celery(0, Duration::ZERO))
        .with_target(target.clone())
        .build()
        .unwrap()
        .run()
        .await;
    assert!(outcome.is_success(), "{:?}", outcome.error);
    assert_eq!(outcome.report.attempts, 1);
    assert!(target.bytes(&outcome.report.filename).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_wait_timeout_and_overall_timeout_stop_pg_dump() {
    let url = database(&server_url(), "resee_bk_lock", "CREATE TABLE locked (x int);");
    // Another session holds an exclusive lock, so pg_dump cannot read the table.
    let mut holder = tokio::process::Command::new("psql")
        .args(["-X", "-q", "-c", "BEGIN; LOCK TABLE locked IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(120);"])
        .envs(libpq_env(&url))
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while psql(
        &url,
        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'locked' AND l.mode = 'AccessExclusiveLock' AND l.granted",
    ) != "1"
    {
        assert!(std::time::Instant::now() < deadline, "the lock was never taken");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let target = InMemoryBackupTarget::new();
    let outcome = builder(&url)
        .with_lock_wait_timeout(Duration::from_millis(300))
        .with_retry(RetryPolicy::celery(0, Duration::ZERO))
        .with_target(target.clone())
        .build()
        .unwrap()
        .run()
        .await;
    let err = outcome.error.as_ref().unwrap();
    // A lock wait that timed out is worth another attempt (the lock holder may be gone by then).
    assert!(err.is_temporary(), "{err}");
    assert!(err.message().contains("LOCK TABLE"), "{err}");

    let outcome = builder(&url)
        .with_lock_wait_timeout(Duration::ZERO)
        .with_timeout(Duration::from_secs(2))
        .with_retry(RetryPolicy::celery(0, Duration::ZERO))
        .with_target(target.clone())
        .build()
        .unwrap()
        .run()
        .await;
    let err = outcome.error.as_ref().unwrap();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.message().contains("killed"), "{err}");
    assert!(target.list().await.unwrap().is_empty());
    assert_eq!(target.pending_writers(), 0);
    let _ = holder.start_kill();
    let _ = holder.wait().await;
    assert!(children_named("pg_dump", "PGDATABASE=resee_bk_lock_").is_empty(), "pg_dump was killed");
}

/// A target that stores faithfully but reads back damaged bytes: what a failing disk or a buggy remote store
/// does. The backup's own read-back verification must catch it.
#[derive(Debug, Clone)]
struct DamagingTarget {
    inner: InMemoryBackupTarget,
    damage: fn(&mut Vec<u8>),
}

/// Damages what a staged artifact reads back, and checks that nothing is visible under its name while it is
/// being verified.
#[derive(Debug)]
struct DamagingWriter {
    inner: Box<dyn ArtifactWriter>,
    target: DamagingTarget,
}

#[derive(Debug)]
struct DamagingStaged {
    inner: Box<dyn StagedArtifact>,
    target: DamagingTarget,
}

#[async_trait]
impl ArtifactWriter for DamagingWriter {
    async fn write(&mut self, buf: &[u8]) -> Result<(), Error> {
        self.inner.write(buf).await
    }
    async fn stage(self: Box<Self>) -> Result<Box<dyn StagedArtifact>, Error> {
        Ok(Box::new(DamagingStaged { inner: self.inner.stage().await?, target: self.target }))
    }
    async fn abort(self: Box<Self>) -> Result<(), Error> {
        self.inner.abort().await
    }
}

#[async_trait]
impl StagedArtifact for DamagingStaged {
    fn name(&self) -> &ArtifactName {
        self.inner.name()
    }
    fn size(&self) -> u64 {
        self.inner.size()
    }
    async fn open(&self) -> Result<ArtifactReader, Error> {
        let visible = self.target.inner.list().await?.into_iter().any(|m| &m.name == self.name());
        assert!(!visible, "{} is visible under its name before it was verified", self.name());
        let mut bytes = Vec::new();
        self.inner.open().await?.read_to_end(&mut bytes).await?;
        (self.target.damage)(&mut bytes);
        Ok(Box::new(std::io::Cursor::new(bytes)))
    }
    async fn publish(self: Box<Self>) -> Result<ArtifactMeta, Error> {
        self.inner.publish().await
    }
    async fn discard(self: Box<Self>) -> Result<(), Error> {
        self.inner.discard().await
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl BackupTarget for DamagingTarget {
    fn label(&self) -> &str {
        self.inner.label()
    }

    async fn create(&self, name: &ArtifactName) -> Result<Box<dyn ArtifactWriter>, Error> {
        Ok(Box::new(DamagingWriter { inner: self.inner.create(name).await?, target: self.clone() }))
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
        self.inner.delete(name).await
    }
    async fn sweep_incomplete(&self) -> Result<usize, Error> {
        self.inner.sweep_incomplete().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_seen_when_reading_back_is_an_integrity_failure_and_never_published() {
    type Damage = fn(&mut Vec<u8>);
    let damages: [(&str, Damage); 4] = [
        ("bit flip", |b| {
            let mid = b.len() / 2;
            b[mid] ^= 0x04;
        }),
        ("truncated", |b| b.truncate(b.len() - 100)),
        ("extra bytes", |b| b.extend_from_slice(b"\x1f\x8b garbage")),
        ("flipped gzip trailer", |b| {
            let last = b.len() - 1;
            b[last] ^= 0x01;
        }),
    ];
    for (label, damage) in damages {
        let target = DamagingTarget { inner: InMemoryBackupTarget::new(), damage };
        let notifier = RecordingNotifier::new();
        let outcome =
            builder(rich_db()).with_target(target.clone()).with_notifier(notifier.clone()).build().unwrap().run().await;
        assert_eq!(outcome.report.status, BackupStatus::IntegrityFailed, "{label}: {:?}", outcome.error);
        assert_eq!(outcome.error.as_ref().unwrap().kind(), ErrorKind::Integrity, "{label}");
        assert_eq!(outcome.report.attempts, 1, "{label}: integrity failures are not retried");
        assert!(target.inner.list().await.unwrap().is_empty(), "{label}: the unverified artifact was never published");
        assert_eq!(target.inner.pending_writers(), 0, "{label}: the staged copy was discarded");
        let alerts = notifier.alerts();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].name, alert_names::INTEGRITY_FAILED, "{label}");
    }
}
