//! The run's decisions against a mocked target and a mocked notifier (mockall), on paused time: what is
//! retried, how often and how far apart, what is reported, and what only warns. The dump is canned (no
//! server); everything from the target's `create` to the alert is the real run. Each test is named after
//! its rule, and the exact calls are asserted (a call not expected fails the test).

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use async_trait::async_trait;
use chrono::TimeZone as _;
use mockall::Sequence;
use mockall::predicate::{always, function};
use resee_ops_core::testing::{InMemoryBackupTarget, ManualClock};
use resee_ops_core::{Alert, ArtifactMeta, ArtifactReader, BackupStatus, Error, NotifyOutcome, Severity};

use super::*;
use crate::pgdump::PgVersion;

mockall::mock! {
    Target {}
    #[async_trait]
    impl BackupTarget for Target {
        async fn create(&self, name: &ArtifactName) -> std::result::Result<Box<dyn ArtifactWriter>, Error>;
        async fn list(&self) -> std::result::Result<Vec<ArtifactMeta>, Error>;
        async fn stat(&self, name: &ArtifactName) -> std::result::Result<ArtifactMeta, Error>;
        async fn open(&self, name: &ArtifactName) -> std::result::Result<ArtifactReader, Error>;
        async fn delete(&self, name: &ArtifactName) -> std::result::Result<(), Error>;
        async fn sweep_incomplete(&self) -> std::result::Result<usize, Error>;
        fn label(&self) -> &str;
    }
}

impl fmt::Debug for MockTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MockTarget")
    }
}

mockall::mock! {
    Receiver {}
    #[async_trait]
    impl Notifier for Receiver {
        async fn notify(&self, alert: &Alert) -> NotifyOutcome;
        async fn notify_final(&self, alert: &Alert) -> NotifyOutcome;
    }
}

impl fmt::Debug for MockReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MockReceiver")
    }
}

/// A small dump that ends as `pg_dump`'s do.
const DUMP: &str = "--\n-- PostgreSQL database dump\n--\n\nCREATE TABLE t (id integer);\n\
    COPY public.t (id) FROM stdin;\n1\n2\n\\.\n\n--\n-- PostgreSQL database dump complete\n--\n\n";

const FILE: &str = "resee_test_20261201_030000.sql.gz";

/// The in-memory target answers at once: its futures are ready on their first poll (the mock's closures
/// are synchronous).
fn now<T>(f: impl std::future::Future<Output = T>) -> T {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the in-memory target did not answer at once"),
    }
}

/// A target whose label and (unless `sweep` says otherwise) sweep are answered; each test adds the rest.
fn target(sweep: std::result::Result<usize, Error>) -> MockTarget {
    let mut t = MockTarget::new();
    t.expect_label().return_const("mock".to_owned());
    t.expect_sweep_incomplete().times(1).return_once(move || sweep);
    t
}

/// Lets `create` write into a real in-memory target (artifact, then manifest), and counts the calls.
fn creating_into(t: &mut MockTarget, store: &InMemoryBackupTarget, times: usize) {
    let store = store.clone();
    t.expect_create().times(times).returning(move |name| now(store.create(name)));
}

/// Expects, first in `order`, the artifact's `create`, written into `store`.
fn expect_artifact_first(t: &mut MockTarget, store: &InMemoryBackupTarget, order: &mut Sequence) {
    let store = store.clone();
    t.expect_create()
        .with(function(|n: &ArtifactName| n.as_str() == FILE))
        .times(1)
        .in_sequence(order)
        .returning(move |name| now(store.create(name)));
}

fn backup(target: MockTarget, receiver: MockReceiver) -> PgDumpBackup {
    let clock = ManualClock::at(Utc.with_ymd_and_hms(2026, 12, 1, 3, 0, 0).unwrap());
    let mut backup = PgDumpBackup::builder()
        .with_url("postgres://backup@127.0.0.1:1/resee")
        .with_environment("test")
        .with_name("resee")
        .with_single_run_lock(false)
        .with_threads(1)
        .with_clock(clock.shared())
        .with_target(target)
        .with_notifier(receiver)
        .build()
        .unwrap();
    let tool = PgDump { path: "pg_dump".into(), version: PgVersion::from_num(170_000) };
    backup.source = DumpSource::Canned { dump: Arc::from(DUMP.as_bytes()), tool };
    backup
}

/// A receiver expecting exactly one alert, named `name`, and delivering it.
fn delivering_once(name: &'static str) -> MockReceiver {
    let mut receiver = MockReceiver::new();
    receiver
        .expect_notify()
        .with(function(move |a: &Alert| a.name == name))
        .times(1)
        .returning(|_| NotifyOutcome::Delivered);
    receiver
}

/// Rule: a temporary failure is retried by the `RetryPolicy` (by default one attempt plus three retries,
/// 5 minutes apart), then reported once, as a failure, with the original error and its temporary flag.
#[tokio::test(start_paused = true)]
async fn a_temporary_failure_is_retried_three_times_five_minutes_apart_then_reported_once() {
    let t0 = Instant::now();
    let attempts_at = Arc::new(Mutex::new(Vec::new()));
    let mut t = target(Ok(0));
    let at = attempts_at.clone();
    t.expect_create().times(4).returning(move |_| {
        at.lock().unwrap().push(t0.elapsed());
        Err(Error::new(ErrorKind::Unavailable, "S3 answered 503 Slow Down").with_temporary(true))
    });
    let mut receiver = MockReceiver::new();
    receiver
        .expect_notify()
        .with(function(|a: &Alert| {
            a.name == alert_names::FAILED && a.severity == Severity::Error && a.text.contains("503 Slow Down")
        }))
        .times(1)
        .returning(|_| NotifyOutcome::Delivered);
    let outcome = backup(t, receiver).run().await;

    let minutes = |m: u64| Duration::from_secs(60 * m);
    assert_eq!(*attempts_at.lock().unwrap(), [Duration::ZERO, minutes(5), minutes(10), minutes(15)]);
    assert_eq!(outcome.report.status, BackupStatus::Failed);
    assert_eq!(outcome.report.attempts, 4);
    let err = outcome.error.expect("the error is kept");
    assert_eq!(
        (err.kind(), err.is_temporary(), err.message()),
        (ErrorKind::Unavailable, true, "S3 answered 503 Slow Down")
    );
}

/// Rule: a permanent failure gives up at once: one attempt, no wait, one failure report.
#[tokio::test(start_paused = true)]
async fn a_permanent_failure_gives_up_at_once_with_one_failure_report() {
    let t0 = Instant::now();
    let mut t = target(Ok(0));
    t.expect_create()
        .times(1)
        .returning(|_| Err(Error::new(ErrorKind::PermissionDenied, "Access Denied").with_temporary(false)));
    let receiver = delivering_once(alert_names::FAILED);
    let outcome = backup(t, receiver).run().await;

    assert_eq!(t0.elapsed(), Duration::ZERO);
    assert_eq!((outcome.report.status, outcome.report.attempts), (BackupStatus::Failed, 1));
    let err = outcome.error.expect("the error is kept");
    assert_eq!((err.kind(), err.is_temporary(), err.message()), (ErrorKind::PermissionDenied, false, "Access Denied"));
}

/// Rule: a failing sweep of incomplete temporaries is only a warning: the backup still runs, succeeds and
/// reports success.
#[tokio::test(start_paused = true)]
async fn a_failing_sweep_only_warns_and_the_backup_still_succeeds() {
    let store = InMemoryBackupTarget::new();
    let mut t = target(Err(Error::new(ErrorKind::Unavailable, "cannot list the staging area").with_temporary(true)));
    creating_into(&mut t, &store, 2);
    let receiver = delivering_once(alert_names::SUCCEEDED);
    let outcome = backup(t, receiver).run().await;

    assert!(outcome.is_success(), "{:?}", outcome.error);
    assert_eq!(outcome.report.attempts, 1);
    assert!(store.bytes(FILE).is_some());
}

/// Rule: a success reports `{status, filename, size}`, in the outcome and in the one success alert.
#[tokio::test(start_paused = true)]
async fn a_success_reports_its_status_filename_and_size() {
    let store = InMemoryBackupTarget::new();
    let mut t = target(Ok(0));
    let mut order = Sequence::new();
    expect_artifact_first(&mut t, &store, &mut order);
    let manifest = store.clone();
    t.expect_create()
        .with(function(|n: &ArtifactName| n.as_str() == format!("{FILE}.manifest.json")))
        .times(1)
        .in_sequence(&mut order)
        .returning(move |name| now(manifest.create(name)));
    let size = Arc::new(Mutex::new(None::<(String, String)>));
    let seen = size.clone();
    let mut receiver = MockReceiver::new();
    receiver.expect_notify().with(always()).times(1).returning(move |a| {
        assert_eq!((a.name.as_str(), a.severity), (alert_names::SUCCEEDED, Severity::Success));
        let field = |n: &str| a.fields.iter().find(|f| f.name == n).map(|f| f.value.clone()).unwrap_or_default();
        *seen.lock().unwrap() = Some((field("File"), field("Size")));
        NotifyOutcome::Delivered
    });
    let outcome = backup(t, receiver).run().await;

    let stored = store.bytes(FILE).expect("the artifact is on the target").len() as u64;
    let r = &outcome.report;
    assert_eq!((r.status, r.filename.as_str(), r.size_bytes), (BackupStatus::Success, FILE, stored));
    assert!(stored > 0);
    let json = serde_json::to_value(r).unwrap();
    assert_eq!((json["status"].as_str(), json["filename"].as_str()), (Some("success"), Some(FILE)));
    assert_eq!(json["size_bytes"].as_u64(), Some(stored));
    let (file, mb) = size.lock().unwrap().clone().expect("one success alert");
    assert_eq!((file.as_str(), mb), (FILE, format!("{:.2} MB", r.size_mb)));
}

/// Rule: without its manifest an artifact is not a backup: a manifest that cannot be written removes the
/// published artifact (once), and the run is one failure report.
#[tokio::test(start_paused = true)]
async fn a_manifest_that_cannot_be_written_unpublishes_the_artifact() {
    let store = InMemoryBackupTarget::new();
    let mut t = target(Ok(0));
    let mut order = Sequence::new();
    expect_artifact_first(&mut t, &store, &mut order);
    t.expect_create()
        .with(function(|n: &ArtifactName| n.as_str().ends_with(".manifest.json")))
        .times(1)
        .in_sequence(&mut order)
        .returning(|_| Err(Error::new(ErrorKind::PermissionDenied, "manifest refused").with_temporary(false)));
    let removed = store.clone();
    t.expect_delete()
        .with(function(|n: &ArtifactName| n.as_str() == FILE))
        .times(1)
        .in_sequence(&mut order)
        .returning(move |name| now(removed.delete(name)));
    let receiver = delivering_once(alert_names::FAILED);
    let outcome = backup(t, receiver).run().await;

    assert_eq!((outcome.report.status, outcome.report.attempts), (BackupStatus::Failed, 1));
    assert_eq!(outcome.error.map(|e| e.message().to_owned()).as_deref(), Some("manifest refused"));
    assert!(store.bytes(FILE).is_none(), "the artifact without its manifest is gone");
}
