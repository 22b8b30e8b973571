//! One run at a time: the single-run lock (a PostgreSQL advisory lock held by a dedicated session) and the
//! in-process guard, against a real PostgreSQL.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use resee_ops_backup::{PgDumpBackup, PgDumpBackupBuilder, alert_names};
use resee_ops_core::testing::{InMemoryBackupTarget, ManualClock, RecordingNotifier};
use resee_ops_core::{BackupStatus, BackupTarget, Severity};

fn builder(name: &str) -> PgDumpBackupBuilder {
    PgDumpBackup::builder()
        .with_url(rich_db())
        .with_environment("locktest")
        .with_name(name)
        .with_clock(ManualClock::new().shared())
        .with_threads(2)
        .with_retry(resee_ops_backup::RetryPolicy::celery(0, Duration::ZERO))
}

/// Another session (a real `psql` process, as another replica's would be) holding `key`; released when
/// dropped.
struct Holder(std::process::Child);

impl Holder {
    fn take(key: i64) -> Self {
        let mut child = Command::new("psql")
            .args(["--no-psqlrc", "-qAt"])
            .envs(libpq_env(rich_db()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("psql");
        let stdin = child.stdin.as_mut().unwrap();
        writeln!(stdin, "SELECT pg_advisory_lock({key});").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "", "pg_advisory_lock returns void: {line:?}");
        Self(child)
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

/// Issue 12: while another session holds the lock the run ends Skipped at once (no dump, an info alert);
/// once it is released the next run backs up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_skipped_while_another_session_holds_the_lock() {
    let target = InMemoryBackupTarget::new();
    let notifier = RecordingNotifier::new();
    let backup = builder("lock_a").with_target(target.clone()).with_notifier(notifier.clone()).build().unwrap();
    let holder = Holder::take(backup.single_run_lock_key());
    let outcome = backup.run().await;
    assert_eq!(outcome.report.status, BackupStatus::Skipped, "{:?}", outcome.report);
    assert!(outcome.is_skipped() && !outcome.is_success());
    assert!(outcome.error.is_none(), "a skip is not a failure");
    assert!(target.list().await.unwrap().is_empty(), "nothing was dumped");
    let alerts = notifier.alerts();
    assert_eq!(alerts.len(), 1);
    assert_eq!((alerts[0].name.as_str(), alerts[0].severity), (alert_names::SKIPPED, Severity::Info));
    assert!(alerts[0].text.contains("single-run lock"), "{:?}", alerts[0].text);

    drop(holder);
    let outcome = backup.run().await;
    assert!(outcome.is_success(), "{:?}", outcome.error);
    assert_eq!(target.list().await.unwrap().len(), 2, "artifact and manifest");
    // The lock is free again after the run: another session can take it at once.
    let probe = psql(
        rich_db(),
        &format!("SELECT pg_try_advisory_lock({0}) AND pg_advisory_unlock({0})", backup.single_run_lock_key()),
    );
    assert_eq!(probe, "t");
}

/// Issue 12: in one process two runs of the same backup never overlap: the second ends Skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_in_one_process_never_overlap() {
    let tmp = tempfile::tempdir().unwrap();
    let (started, go) = (tmp.path().join("started"), tmp.path().join("go"));
    // A pg_dump that waits at a gate, so that the first run is certainly still going.
    let gated = script(
        tmp.path(),
        "pg_dump",
        &format!(
            "[ \"$1\" = --version ] && exec /usr/bin/pg_dump --version\ntouch '{}'\n\
             while [ ! -e '{}' ]; do sleep 0.05; done\nexec /usr/bin/pg_dump \"$@\"",
            started.display(),
            go.display()
        ),
    );
    let target = InMemoryBackupTarget::new();
    let backup =
        std::sync::Arc::new(builder("lock_b").with_pg_dump(&gated).with_target(target.clone()).build().unwrap());
    let first = tokio::spawn({
        let backup = backup.clone();
        async move { backup.run().await }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while !started.exists() {
        assert!(Instant::now() < deadline, "the first run's pg_dump never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = backup.run().await;
    assert_eq!(second.report.status, BackupStatus::Skipped, "{:?}", second.report);
    std::fs::write(&go, b"").unwrap();
    let first = first.await.unwrap();
    assert!(first.is_success(), "{:?}", first.error);
    assert_eq!(target.list().await.unwrap().len(), 2, "exactly one dump");
}
