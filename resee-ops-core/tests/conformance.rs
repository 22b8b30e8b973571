//! The core's own doubles and wrappers pass the conformance suites adapters run.

use std::sync::Arc;
use std::time::Duration;

use resee_ops_core::testing::{InMemoryBackupTarget, RecordingNotifier, conformance};
use resee_ops_core::{DispatcherConfig, FanOut, LogNotifier, NotifierExt, RetryPolicy};

#[tokio::test]
async fn recording_notifier() {
    let n = RecordingNotifier::new();
    let report = conformance::notifier(&n, &[]).await;
    assert_eq!(n.alerts().len(), report.sent);
}

#[tokio::test]
async fn log_notifier_and_wrappers() {
    conformance::notifier(&LogNotifier::new(), &[]).await;
    let inbox = RecordingNotifier::new();
    let fan = FanOut::new(vec![Arc::new(inbox.clone()), Arc::new(LogNotifier::new())]);
    let report = conformance::notifier(&fan.retrying(RetryPolicy::default()), &[]).await;
    assert_eq!(inbox.alerts().len(), report.sent);
}

#[tokio::test]
async fn dispatcher() {
    let inbox = RecordingNotifier::new();
    let d = inbox.clone().dispatched(DispatcherConfig::default());
    let report = conformance::notifier(&d, &[]).await;
    d.shutdown(Duration::from_secs(5)).await;
    assert_eq!(inbox.alerts().len(), report.sent);
}

#[tokio::test]
async fn in_memory_backup_target() {
    let target = InMemoryBackupTarget::new();
    conformance::backup_target(&target).await;
    assert_eq!(target.pending_writers(), 0, "every writer was closed");
}

#[tokio::test]
async fn full_in_memory_target_reports_storage_full() {
    let target = InMemoryBackupTarget::new().with_capacity(10);
    let name = resee_ops_core::ArtifactName::new("x.sql.gz").unwrap();
    use resee_ops_core::BackupTarget;
    let mut w = target.create(&name).await.unwrap();
    w.write(b"0123456789").await.unwrap();
    let err = w.write(b"!").await.unwrap_err();
    assert_eq!(err.kind(), resee_ops_core::ErrorKind::StorageFull);
    drop(w);
    assert!(target.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn in_memory_throttle_store() {
    let store = resee_ops_core::InMemoryThrottleStore::new();
    conformance::throttle_store(&store).await;
    assert!(store.is_empty(), "the suite cleans up after itself");
}

#[tokio::test(start_paused = true)]
async fn static_probe() {
    use resee_ops_core::ProbeOutcome;
    use resee_ops_core::testing::StaticProbe;
    let probe = StaticProbe::new("disk:/", ProbeOutcome::degraded("85 % used").with_observed(85.0, "percent"));
    let outcome = conformance::health_probe(&probe, Duration::from_secs(1), &["s3cr3t"]).await;
    assert_eq!(outcome.observed_value, Some(85.0));
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "did not finish within")]
async fn a_hanging_probe_fails_the_probe_suite() {
    let probe = resee_ops_core::testing::StaticProbe::hanging("database");
    conformance::health_probe(&probe, Duration::from_secs(1), &[]).await;
}
