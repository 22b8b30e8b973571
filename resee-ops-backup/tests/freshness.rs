//! `BackupFreshnessProbe`: the old, missing, shrunken and healthy cases, on manifests as backups write them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use resee_ops_backup::{BackupFreshnessProbe, Manifest};
use resee_ops_core::testing::{InMemoryBackupTarget, ManualClock, conformance};
use resee_ops_core::{ArtifactName, BackupTarget, HealthProbe, HealthStatus};

/// A backup as a run leaves it: the artifact, then its manifest (finished at `finished`, `size` bytes).
async fn backup(target: &InMemoryBackupTarget, stamp: &str, finished: DateTime<Utc>, size: usize) {
    let name = ArtifactName::new(format!("db_prod_{stamp}.sql.gz")).unwrap();
    let mut w = target.create(&name).await.unwrap();
    w.write(&vec![7u8; size]).await.unwrap();
    w.commit().await.unwrap();
    let manifest = serde_json::json!({
        "format": 1, "artifact": name.as_str(), "database": "db", "environment": "prod", "sha256": "00",
        "compressed_size": size, "raw_size": size * 8, "compression": "gzip", "level": 5,
        "pg_dump_version": "15.18", "server_version": "15.18", "started_at": finished, "finished_at": finished,
        "duration": "1s"
    });
    let mut w = target.create(&Manifest::name_for(&name).unwrap()).await.unwrap();
    w.write(&serde_json::to_vec(&manifest).unwrap()).await.unwrap();
    w.commit().await.unwrap();
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn probe(target: &InMemoryBackupTarget, clock: &ManualClock) -> BackupFreshnessProbe {
    BackupFreshnessProbe::new(target.clone(), "db_prod_").with_name("backup_freshness:test").with_clock(clock.shared())
}

#[tokio::test]
async fn missing_old_shrunken_and_healthy() {
    let target = InMemoryBackupTarget::new();
    let clock = ManualClock::new();
    clock.set(at("2026-12-02T03:30:00Z"));

    // Missing: nothing at all, then only an unverified artifact (no manifest) and someone else's backup.
    let outcome = probe(&target, &clock).check().await;
    assert_eq!(outcome.status, HealthStatus::Down);
    assert!(outcome.output.as_deref().unwrap().contains("no verified backup"), "{outcome:?}");
    let mut w = target.create(&ArtifactName::new("db_prod_20261202_030000.sql.gz").unwrap()).await.unwrap();
    w.write(b"crashed before its manifest").await.unwrap();
    w.commit().await.unwrap();
    backup(&target, "x_20261202_030000", at("2026-12-02T03:00:00Z"), 100).await; // db_prod_x_…: not ours
    assert_eq!(probe(&target, &clock).check().await.status, HealthStatus::Down);

    // Healthy: verified, 30 minutes old; the age is the observed value.
    backup(&target, "20261201_030000", at("2026-12-01T03:05:00Z"), 1000).await;
    backup(&target, "20261202_020000", at("2026-12-02T03:00:00Z"), 900).await;
    let outcome = probe(&target, &clock).check().await;
    assert_eq!(outcome.status, HealthStatus::Up, "{outcome:?}");
    assert_eq!((outcome.observed_value, outcome.observed_unit.as_deref()), (Some(1800.0), Some("seconds")));

    // Old: 26 h and a second after the newest finished.
    clock.set(at("2026-12-03T05:00:01Z"));
    let outcome = probe(&target, &clock).check().await;
    assert_eq!(outcome.status, HealthStatus::Down, "{outcome:?}");
    assert_eq!(outcome.observed_value, Some(26.0 * 3600.0 + 1.0));
    assert!(outcome.output.as_deref().unwrap().contains("limit 1d 2h"), "{outcome:?}");
    let p = probe(&target, &clock);
    assert!(p.alert_text(&outcome, false).title.starts_with("Backups stopped"));
    assert!(!p.is_critical());
    // A longer limit is configurable.
    let outcome = probe(&target, &clock).with_max_age(Duration::from_secs(48 * 3600)).check().await;
    assert_eq!(outcome.status, HealthStatus::Up);

    // Shrunken: the newest is below half of the previous verified one.
    clock.set(at("2026-12-03T03:30:00Z"));
    backup(&target, "20261203_030000", at("2026-12-03T03:05:00Z"), 449).await;
    let outcome = probe(&target, &clock).check().await;
    assert_eq!(outcome.status, HealthStatus::Degraded, "{outcome:?}");
    assert!(outcome.output.as_deref().unwrap().contains("50 %"), "{outcome:?}");
    assert_eq!(probe(&target, &clock).with_min_size_ratio(0.4).check().await.status, HealthStatus::Up);
}

#[tokio::test]
async fn passes_the_health_probe_conformance_suite() {
    let target = InMemoryBackupTarget::new();
    backup(&target, "20261202_020000", Utc::now(), 10).await;
    let outcome = conformance::health_probe(&probe(&target, &ManualClock::new()), Duration::from_secs(5), &[]).await;
    assert_eq!(outcome.status, HealthStatus::Up);
}
