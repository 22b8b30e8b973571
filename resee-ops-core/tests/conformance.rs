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

mod backup_checks {
    //! The named backup-target checks: a capped target opts out of large artifacts, and each check
    //! catches the broken rule it is named after.

    use async_trait::async_trait;
    use resee_ops_core::testing::InMemoryBackupTarget;
    use resee_ops_core::testing::conformance::backup::{self, Capabilities};
    use resee_ops_core::{ArtifactMeta, ArtifactName, ArtifactReader, ArtifactWriter, BackupTarget, Error};

    #[tokio::test]
    async fn a_capped_target_passes_without_large_artifacts() {
        let target = InMemoryBackupTarget::new().with_capacity(1024 * 1024);
        backup::run_all(&target, Capabilities::default().with_large_artifacts(false)).await;
        assert_eq!(target.pending_writers(), 0, "every writer was closed");
        assert!(target.list().await.unwrap().is_empty(), "every check cleans up after itself");
    }

    #[tokio::test]
    #[should_panic(expected = "write failed")]
    async fn a_capped_target_fails_the_large_artifact_check() {
        let target = InMemoryBackupTarget::new().with_capacity(1024 * 1024);
        backup::put_get_roundtrip(&target, Capabilities::default()).await;
    }

    /// An in-memory target with one rule broken.
    #[derive(Debug)]
    struct Broken {
        inner: InMemoryBackupTarget,
        unsorted_list: bool,
        sweep_reports: usize,
    }

    #[async_trait]
    impl BackupTarget for Broken {
        async fn create(&self, name: &ArtifactName) -> Result<Box<dyn ArtifactWriter>, Error> {
            self.inner.create(name).await
        }
        async fn list(&self) -> Result<Vec<ArtifactMeta>, Error> {
            let mut list = self.inner.list().await?;
            if self.unsorted_list {
                list.reverse();
            }
            Ok(list)
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
            self.inner.sweep_incomplete().await?;
            Ok(self.sweep_reports)
        }
    }

    fn broken() -> Broken {
        Broken { inner: InMemoryBackupTarget::new(), unsorted_list: false, sweep_reports: 0 }
    }

    #[tokio::test]
    async fn the_broken_double_is_fine_where_it_is_not_broken() {
        backup::run_all(&broken(), Capabilities::default().with_sweeps_temporaries(false)).await;
    }

    #[tokio::test]
    #[should_panic(expected = "sorted by name")]
    async fn list_and_delete_catches_an_unsorted_list() {
        backup::list_and_delete(&Broken { unsorted_list: true, ..broken() }).await;
    }

    #[tokio::test]
    #[should_panic(expected = "a target with nothing to sweep swept 2")]
    async fn sweep_incomplete_catches_a_sweep_where_there_is_nothing_to_sweep() {
        let target = Broken { sweep_reports: 2, ..broken() };
        backup::sweep_incomplete(&target, Capabilities::default().with_sweeps_temporaries(false)).await;
    }
}
