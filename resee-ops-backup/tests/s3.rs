//! `S3Target` against a real S3-compatible server (`moto_server` on loopback, started by the tests): the
//! conformance suite, backups that round-trip through S3 and restore with `psql` (gzip and zstd), retention
//! on S3, a connection cut mid-upload, refused credentials, a missing bucket, never overwriting, and the
//! encryption and storage-class headers reaching the server.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use resee_ops_backup::{
    BackupSelector, CompressionProfile, ConnectionUrl, LocalDirTarget, PgDumpBackup, ProgressMode, RestoreOptions,
    Restorer, RetentionPolicy, S3Encryption, S3Target, S3TargetBuilder, alert_names, list_backups,
};
use resee_ops_core::testing::services::{self, Service};
use resee_ops_core::testing::{ManualClock, RecordingNotifier, conformance};
use resee_ops_core::{ArtifactName, BackupStatus, BackupTarget, ErrorKind, Secret, Severity};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "wJalrXUtnFEMI-K7MDENG-s3-test-secret";

fn bucket() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("resee-test-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// A fresh bucket on the shared test server, and a builder for it.
fn fresh(endpoint: &str) -> (String, S3TargetBuilder) {
    let server = services::moto();
    let b = bucket();
    services::create_s3_bucket(server, &b).expect("create the test bucket");
    (b.clone(), builder(&b, endpoint))
}

fn builder(bucket: &str, endpoint: &str) -> S3TargetBuilder {
    S3Target::builder(bucket)
        .with_endpoint(endpoint)
        .with_credentials("AKIAIOSFODNN7EXAMPLE", Secret::new(SECRET))
        .with_part_size(5 * 1024 * 1024)
        .with_retries(1, Duration::from_secs(5))
        .with_request_timeout(Duration::from_secs(60))
}

/// One unsigned HTTP request to the test server (moto accepts them with its authentication off); returns the
/// status line, the headers (lowercase names) and the body.
fn raw(server: &str, method: &str, path: &str) -> (String, Vec<(String, String)>, String) {
    let host = server.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().unwrap_or_default().to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

/// Every key in the bucket (staging objects included).
fn all_keys(bucket: &str) -> Vec<String> {
    let (_, _, body) = raw(services::moto().url(), "GET", &format!("/{bucket}?list-type=2"));
    body.split("<Key>").skip(1).filter_map(|s| s.split("</Key>").next()).map(str::to_owned).collect()
}

/// The incomplete multipart uploads of the bucket.
fn uploads(bucket: &str) -> usize {
    let (_, _, body) = raw(services::moto().url(), "GET", &format!("/{bucket}?uploads"));
    body.matches("<UploadId>").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_backup_target_conformance_suite() {
    for prefix in [None, Some("prod/db")] {
        let (b, builder) = fresh(services::moto().url());
        let target = match prefix {
            Some(p) => builder.with_prefix(p),
            None => builder,
        }
        .build()
        .unwrap();
        target.check().await.unwrap();
        conformance::backup_target(&target).await;
        // Dropped writers and staged artifacts clean up in the background: allow them a moment.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while (uploads(&b) > 0 || !all_keys(&b).is_empty()) && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(all_keys(&b), Vec::<String>::new(), "nothing left in the bucket");
        assert_eq!(uploads(&b), 0, "no multipart upload left open");
    }
}

fn backup(target: S3Target, clock: &ManualClock, profile: CompressionProfile) -> PgDumpBackup {
    PgDumpBackup::builder()
        // Tests of one binary back up the same database in parallel: the lock has its own tests.
        .with_single_run_lock(false)
        .with_url(rich_db())
        .with_environment("test")
        .with_name("rich")
        .with_profile(profile)
        .with_clock(clock.shared())
        .with_threads(2)
        .with_retry(resee_ops_backup::RetryPolicy::celery(0, Duration::ZERO))
        .with_retention(RetentionPolicy::new().with_keep_last(2).with_min_verified(2))
        .with_target(target)
        .build()
        .unwrap()
}

fn drop_db(name: &str) {
    psql(&server_url(), &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));
}

/// Issue 12 and 13: backups through S3 (gzip and zstd) restore with psql to the source's dump; retention
/// prunes on S3 after each backup; nothing staged is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_round_trip_through_s3_restore_with_psql_and_are_pruned() {
    let (b, builder) = fresh(services::moto().url());
    let target = builder.with_prefix("resee").build().unwrap();
    let clock = ManualClock::new();
    let mut names = Vec::new();
    for profile in [CompressionProfile::Default, CompressionProfile::Zstd, CompressionProfile::Default] {
        let outcome = backup(target.clone(), &clock, profile).run().await;
        assert!(outcome.is_success(), "{:?}", outcome.error);
        assert!(outcome.prune.as_ref().unwrap().warnings.is_empty(), "{:?}", outcome.prune);
        names.push(outcome.report.filename.clone());
        clock.advance(Duration::from_secs(3600));
    }
    // Retention (keep the last 2) ran on S3: the first backup and its manifest are gone.
    let mut want: Vec<String> =
        names[1..].iter().flat_map(|n| [format!("resee/{n}"), format!("resee/{n}.manifest.json")]).collect();
    want.sort();
    assert_eq!(all_keys(&b), want, "exactly the kept artifacts and manifests; no staging objects");
    assert_eq!(uploads(&b), 0);

    let catalog = list_backups(&target, "rich_test_").await.unwrap();
    assert!(catalog.backups.iter().all(|e| e.is_verified()));
    let server = ConnectionUrl::parse(&server_url()).unwrap();
    let restorer = Restorer::new(target.clone(), server).with_progress(ProgressMode::Lines);
    for name in &names[1..] {
        let db = format!("resee_s3_restored_{}", std::process::id());
        drop_db(&db);
        let report = restorer
            .restore(&BackupSelector::Name(name.clone()), &RestoreOptions::default().with_database(db.clone()))
            .await
            .unwrap();
        assert_eq!(&report.backup, name);
        assert_eq!(plain_dump(&with_database(&server_url(), &db)), plain_dump(rich_db()), "{name}");
        drop_db(&db);
    }
    assert!(names[1].ends_with(".sql.zst") && names[2].ends_with(".sql.gz"), "{names:?}");
}

/// A TCP proxy that forwards to `upstream` until `limit` bytes went upstream, then cuts every connection
/// and refuses new ones: the server "dies" mid-upload.
async fn cutting_proxy(upstream: SocketAddr, limit: u64) -> (SocketAddr, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let (cut_tx, cut_rx) = tokio::sync::watch::channel(false);
    let counter = Arc::clone(&sent);
    tokio::spawn(async move {
        let cut_tx = Arc::new(cut_tx);
        let mut cut = cut_rx.clone();
        loop {
            let (client, _) = tokio::select! {
                conn = listener.accept() => match conn { Ok(c) => c, Err(_) => break },
                _ = cut.wait_for(|c| *c) => break,
            };
            let (counter, cut_tx, mut cut_rx) = (Arc::clone(&counter), Arc::clone(&cut_tx), cut_rx.clone());
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else { return };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = async {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match cr.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if counter.fetch_add(n as u64, Ordering::SeqCst) + n as u64 > limit {
                            let _ = cut_tx.send(true);
                            return;
                        }
                        if sw.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                };
                let down = async {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                };
                tokio::select! {
                    () = up => {},
                    () = down => {},
                    _ = cut_rx.wait_for(|c| *c) => {},
                }
            });
        }
        // The listener is dropped here: new connections are refused.
    });
    (addr, sent)
}

/// Issue 12: the connection cut mid-upload leaves no final key; the upload it left open (its abort could
/// not get through either) is listed and aborted by the next sweep.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_cut_mid_upload_leaves_no_final_key_and_the_sweep_aborts_the_upload() {
    let moto: SocketAddr = services::moto().url().trim_start_matches("http://").parse().unwrap();
    let (proxy, sent) = cutting_proxy(moto, 8 * 1024 * 1024).await;
    let (b, builder) = fresh(&format!("http://{proxy}"));
    let through_proxy = builder.build().unwrap();
    let name = ArtifactName::new("rich_test_20260101_000000.sql.gz").unwrap();
    let mut w = through_proxy.create(&name).await.unwrap();
    // 24 MiB that do not compress: several parts, the cut falls in the second.
    let mut err = None;
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..24 {
        let chunk: Vec<u8> = (0..1024 * 1024)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        if let Err(e) = w.write(&chunk).await {
            err = Some(e);
            break;
        }
    }
    let err = match err {
        Some(e) => {
            let _ = w.abort().await;
            e
        }
        None => w.stage().await.expect_err("staging through a cut connection must fail"),
    };
    assert!(sent.load(Ordering::SeqCst) > 8 * 1024 * 1024, "the cut happened");
    assert!(err.is_temporary(), "a cut connection is worth retrying: {err:#}");
    assert!(!format!("{err:#}").contains(SECRET));

    let direct = builder_for(&b).with_sweep_after(Duration::ZERO).build().unwrap();
    assert!(direct.list().await.unwrap().is_empty(), "no final key");
    assert_eq!(direct.stat(&name).await.unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(uploads(&b), 1, "the cut upload is still open on the server");
    // With the default age (24 h) a fresh upload is left alone: it may belong to a run in progress.
    assert_eq!(builder_for(&b).build().unwrap().sweep_incomplete().await.unwrap(), 0);
    assert_eq!(direct.sweep_incomplete().await.unwrap(), 1);
    assert_eq!(uploads(&b), 0, "the sweep aborted it");
    assert!(all_keys(&b).is_empty());
}

fn builder_for(bucket: &str) -> S3TargetBuilder {
    builder(bucket, services::moto().url())
}

/// Issue 12: a refused credential is a permanent error with a clear message that never shows the secret;
/// the backup fails once, without retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_credential_is_permanent_clear_and_never_shows_the_secret() {
    let with_auth: Service =
        services::start_private_moto(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")]).expect("moto with authentication");
    let target = builder("resee-backups", with_auth.url()).build().unwrap();
    let err = target.check().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err:#}");
    assert!(!err.is_temporary());
    assert!(err.to_string().contains("refused the credentials"), "{err}");
    assert!(err.to_string().contains("AKIAIOSFODNN7EXAMPLE"), "names the key id: {err}");
    for shown in [err.to_string(), format!("{err:#}"), format!("{err:?}"), format!("{target:?}")] {
        assert!(!shown.contains(SECRET), "the secret leaked: {shown}");
    }
    let outcome = PgDumpBackup::builder()
        // Tests of one binary back up the same database in parallel: the lock has its own tests.
        .with_single_run_lock(false)
        .with_url(rich_db())
        .with_environment("test")
        .with_name("rich")
        .with_target(target)
        .build()
        .unwrap()
        .run()
        .await;
    assert_eq!(outcome.report.status, BackupStatus::Failed);
    assert_eq!(outcome.report.attempts, 1, "a permanent error is not retried");
    let text = serde_json::to_string(&outcome.report).unwrap();
    assert!(text.contains("refused the credentials") && !text.contains(SECRET), "{text}");
}

/// Issue 12: a bucket that does not exist is a clear, permanent `NotFound`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_is_a_clear_permanent_error() {
    let target = builder_for("resee-no-such-bucket").build().unwrap();
    let err = target.check().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err:#}");
    assert!(!err.is_temporary());
    assert!(err.to_string().contains("bucket \"resee-no-such-bucket\" does not exist"), "{err}");
    let name = ArtifactName::new("a.sql.gz").unwrap();
    let err = target.create(&name).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err:#}");
    assert!(err.to_string().contains("does not exist"), "{err}");
}

/// Issue 16, point 14: `Duration::MAX` as the request timeout means "no limit" on real requests too (built
/// without a panic is not enough: the HTTP client must take it when it sends).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_timeout_of_duration_max_means_no_limit_on_real_requests() {
    let (_b, builder) = fresh(services::moto().url());
    let target = builder.with_request_timeout(Duration::MAX).build().unwrap();
    target.check().await.unwrap();
    let name = ArtifactName::new("rich_test_20260101_000000.sql.gz").unwrap();
    let mut writer = target.create(&name).await.unwrap();
    writer.write(b"no limit").await.unwrap();
    writer.commit().await.unwrap();
    assert_eq!(target.stat(&name).await.unwrap().size, 8);
    let mut body = Vec::new();
    target.open(&name).await.unwrap().read_to_end(&mut body).await.unwrap();
    assert_eq!(body, b"no limit");
    target.delete(&name).await.unwrap();
    assert!(target.list().await.unwrap().is_empty());
}

/// Issue 12: an existing key is never overwritten, whether it exists before `create` or appears while
/// another writer is staged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_key_is_never_overwritten() {
    let (_b, builder) = fresh(services::moto().url());
    let target = builder.build().unwrap();
    let name = ArtifactName::new("rich_test_20260101_000000.sql.gz").unwrap();
    let mut late = target.create(&name).await.unwrap();
    late.write(b"second").await.unwrap();
    let late = late.stage().await.unwrap();
    let mut first = target.create(&name).await.unwrap();
    first.write(b"first").await.unwrap();
    first.commit().await.unwrap();
    assert_eq!(target.create(&name).await.unwrap_err().kind(), ErrorKind::AlreadyExists);
    let err = late.publish().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err:#}");
    let mut body = Vec::new();
    target.open(&name).await.unwrap().read_to_end(&mut body).await.unwrap();
    assert_eq!(body, b"first");
}

/// Issue 12: server-side encryption and the storage class reach the server (moto records them and reports
/// them on HEAD); the staging upload stays readable (`STANDARD`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encryption_and_storage_class_reach_the_server() {
    let (b, builder) = fresh(services::moto().url());
    let target = builder.with_encryption(S3Encryption::SseS3).with_storage_class("STANDARD_IA").build().unwrap();
    let name = ArtifactName::new("rich_test_20260101_000000.sql.gz").unwrap();
    let mut w = target.create(&name).await.unwrap();
    w.write(b"encrypted at rest").await.unwrap();
    w.commit().await.unwrap();
    let (status, headers, _) = raw(services::moto().url(), "HEAD", &format!("/{b}/{name}"));
    assert!(status.contains("200"), "{status}");
    let header = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(header("x-amz-server-side-encryption"), Some("AES256"), "{headers:?}");
    assert_eq!(header("x-amz-storage-class"), Some("STANDARD_IA"), "{headers:?}");
}

fn two_target_backup(local: &std::path::Path, s3: S3Target, s3_required: bool) -> (PgDumpBackup, RecordingNotifier) {
    let notifier = RecordingNotifier::new();
    let backup = PgDumpBackup::builder()
        .with_single_run_lock(false)
        .with_url(rich_db())
        .with_environment("test")
        .with_name("fan")
        .with_threads(2)
        .with_retry(resee_ops_backup::RetryPolicy::celery(0, Duration::ZERO))
        .with_named_target("local", LocalDirTarget::new(local).unwrap(), true)
        .with_named_target("s3", s3, s3_required)
        .with_notifier(notifier.clone())
        .build()
        .unwrap();
    (backup, notifier)
}

/// Issue 12: one dump fanned out to a local directory and S3; the report lists each target; an optional
/// target that fails is a warning alert, not a failed backup; a required one that fails fails the run and
/// leaves nothing on the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_dump_goes_to_every_target_and_only_required_ones_decide() {
    let dir = tempfile::tempdir().unwrap();
    let (b, builder) = fresh(services::moto().url());
    let (backup, notifier) = two_target_backup(dir.path(), builder.build().unwrap(), true);
    let outcome = backup.run().await;
    assert!(outcome.is_success(), "{:?}", outcome.error);
    let targets: Vec<(&str, BackupStatus)> =
        outcome.report.targets.iter().map(|t| (t.target.as_str(), t.status)).collect();
    assert_eq!(targets, [("local", BackupStatus::Success), ("s3", BackupStatus::Success)]);
    let name = outcome.report.filename.clone();
    let local_bytes = std::fs::read(dir.path().join(&name)).unwrap();
    let mut s3_bytes = Vec::new();
    let s3 = builder_for(&b).build().unwrap();
    s3.open(&ArtifactName::new(&name).unwrap()).await.unwrap().read_to_end(&mut s3_bytes).await.unwrap();
    assert!(local_bytes == s3_bytes, "the same dump on both targets");
    assert_eq!(list_backups(&s3, "fan_test_").await.unwrap().backups[0].manifest.as_ref().unwrap().artifact, name);
    assert!(notifier.alerts().iter().all(|a| a.name != alert_names::TARGET_FAILED));

    // An optional S3 target whose bucket is gone: a warning, and the backup still succeeds locally.
    let dir = tempfile::tempdir().unwrap();
    let (backup, notifier) = two_target_backup(dir.path(), builder_for("resee-gone-bucket").build().unwrap(), false);
    let outcome = backup.run().await;
    assert!(outcome.is_success(), "{:?}", outcome.error);
    let s3 = &outcome.report.targets[1];
    assert_eq!((s3.target.as_str(), s3.required, s3.status), ("s3", false, BackupStatus::Failed));
    assert!(s3.error.as_deref().unwrap_or_default().contains("does not exist"), "{s3:?}");
    let warning = notifier.alerts().into_iter().find(|a| a.name == alert_names::TARGET_FAILED).expect("a warning");
    assert_eq!(warning.severity, Severity::Warning);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2, "artifact and manifest locally");

    // The same S3 target required: the run fails and the local copy is removed again.
    let dir = tempfile::tempdir().unwrap();
    let (backup, _) = two_target_backup(dir.path(), builder_for("resee-gone-bucket").build().unwrap(), true);
    let outcome = backup.run().await;
    assert_eq!(outcome.report.status, BackupStatus::Failed);
    assert!(outcome.report.error.as_deref().unwrap_or_default().contains("does not exist"), "{:?}", outcome.report);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing left on the other target");
}
