//! DiskUsageProbe: the real statvfs, and thresholds through an injectable source.

use std::path::Path;
use std::sync::{Arc, Mutex};

use resee_ops_core::{HealthProbe, HealthStatus};
use resee_ops_monitor::{DiskThresholds, DiskUsageProbe, FsStats, FsStatsSource, Statvfs};

/// Answers whatever the test last set, and remembers the path it was asked about.
#[derive(Debug, Default)]
struct FakeFs {
    answer: Mutex<Option<FsStats>>,
    asked: Mutex<Vec<String>>,
}

impl FakeFs {
    fn used(&self, used_percent: u64) {
        // 1000 blocks of 4 KiB, nothing reserved: used% = used blocks / 10.
        let total = 1000 * 4096;
        let free = total - used_percent * 10 * 4096;
        *self.answer.lock().unwrap() = Some(FsStats::new(total, free, free));
    }
}

impl FsStatsSource for FakeFs {
    fn stats(&self, path: &Path) -> std::io::Result<FsStats> {
        self.asked.lock().unwrap().push(path.display().to_string());
        self.answer.lock().unwrap().ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    }
}

#[tokio::test]
async fn the_real_statvfs_measures_a_real_directory() {
    let dir = std::env::temp_dir();
    let stats = Statvfs.stats(&dir).unwrap();
    assert!(stats.total_bytes > 0 && stats.available_bytes <= stats.total_bytes, "{stats:?}");
    let probe = DiskUsageProbe::new(&dir);
    let outcome = probe.check().await;
    let used = outcome.observed_value.expect("a percentage");
    assert!((0.0..=100.0).contains(&used), "{used}");
    let expected = (stats.used_percent().unwrap() * 10.0).round() / 10.0;
    assert!((used - expected).abs() <= 0.2, "probe {used} vs statvfs {expected}");
    assert_eq!(probe.name(), format!("disk:{}", dir.display()));
    assert!(!probe.is_critical());
}

#[tokio::test]
async fn a_missing_path_is_unknown_not_up() {
    let outcome = DiskUsageProbe::new("/resee/no/such/path").check().await;
    assert_eq!(outcome.status, HealthStatus::Unknown, "{outcome:?}");
    assert!(outcome.output.unwrap().contains("/resee/no/such/path"));
}

#[tokio::test]
async fn default_thresholds_are_80_and_90_percent() {
    let fs = Arc::new(FakeFs::default());
    let probe = DiskUsageProbe::new("/data").with_source(fs.clone());
    for (used, status) in [
        (10, HealthStatus::Up),
        (80, HealthStatus::Up),
        (81, HealthStatus::Degraded),
        (85, HealthStatus::Degraded),
        (90, HealthStatus::Degraded),
        (93, HealthStatus::Down),
        (100, HealthStatus::Down),
    ] {
        fs.used(used);
        let outcome = probe.check().await;
        assert_eq!(outcome.status, status, "{used} %: {outcome:?}");
        assert_eq!(outcome.observed_value, Some(used as f64));
        assert_eq!(outcome.observed_unit.as_deref(), Some("percent"));
    }
    assert!(fs.asked.lock().unwrap().iter().all(|p| p == "/data"));
}

#[tokio::test]
async fn thresholds_are_configurable() {
    let fs = Arc::new(FakeFs::default());
    let probe = DiskUsageProbe::new("/data")
        .with_source(fs.clone())
        .with_thresholds(DiskThresholds::new(50.0, 70.0).unwrap())
        .with_critical(true)
        .with_name("data-volume");
    fs.used(60);
    assert_eq!(probe.check().await.status, HealthStatus::Degraded);
    fs.used(71);
    let outcome = probe.check().await;
    assert_eq!(outcome.status, HealthStatus::Down);
    assert_eq!(outcome.output.as_deref(), Some("71 % used, above the critical threshold of 70 %"));
    assert_eq!(probe.name(), "data-volume");
    assert!(probe.is_critical());

    let t: DiskThresholds = serde_json::from_str(r#"{"warning": 75, "critical": 95}"#).unwrap();
    assert_eq!((t.warning(), t.critical()), (75.0, 95.0));
    assert!(serde_json::from_str::<DiskThresholds>(r#"{"warning": 95, "critical": 75}"#).is_err());
}

#[test]
fn used_percent_counts_reserved_blocks_as_unavailable_like_df() {
    // 100 blocks, 30 free of which 10 reserved for root: used 70 / (70 + 20).
    let s = FsStats::new(100, 30, 20);
    assert!((s.used_percent().unwrap() - 77.777).abs() < 0.01);
    assert_eq!(FsStats::new(0, 0, 0).used_percent(), None);
}

/// A file system whose `statvfs` blocks until the test lets it go, like a dead NFS mount.
#[derive(Debug)]
struct HungFs {
    release: Mutex<std::sync::mpsc::Receiver<()>>,
    calls: std::sync::atomic::AtomicUsize,
}

impl FsStatsSource for HungFs {
    fn stats(&self, _: &Path) -> std::io::Result<FsStats> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let _ = self.release.lock().unwrap().recv();
        Ok(FsStats::new(1000, 900, 900))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_statvfs_keeps_one_thread_and_the_next_cycles_report_it() {
    let (release, blocked) = std::sync::mpsc::channel();
    let fs = Arc::new(HungFs { release: Mutex::new(blocked), calls: Default::default() });
    let probe = DiskUsageProbe::new("/mnt/nfs").with_source(fs.clone());
    let registry = resee_ops_core::HealthRegistry::new()
        .with_default_timeout(std::time::Duration::from_millis(200))
        .with_registration(resee_ops_core::Registration::new(probe.clone()));

    // Cycles inside HUNG_AFTER wait on the same call and time out; after it, they say why at once.
    let mut last = None;
    for _ in 0..8 {
        let next = registry.check_all().await.checks["disk:/mnt/nfs"].clone();
        assert_eq!(next.status, HealthStatus::Down);
        last = next.output;
    }
    let why = last.unwrap();
    assert!(why.starts_with("statvfs /mnt/nfs has not returned for 1 s"), "{why}");
    assert_eq!(fs.calls.load(std::sync::atomic::Ordering::SeqCst), 1, "one blocking thread, not one per cycle");

    // The mount comes back: the stuck call returns and frees the slot; checks run again.
    release.send(()).unwrap();
    release.send(()).unwrap();
    let mut recovered = None;
    for _ in 0..500 {
        let outcome = probe.check().await;
        if outcome.status == HealthStatus::Up {
            recovered = Some(outcome);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await; // poll for the freed slot
    }
    assert_eq!(recovered.expect("checks run again once statvfs returns").observed_value, Some(10.0));
    assert_eq!(fs.calls.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test]
async fn passes_the_core_probe_conformance_suite() {
    let probe = DiskUsageProbe::new(std::env::temp_dir());
    let outcome =
        resee_ops_core::testing::conformance::health_probe(&probe, std::time::Duration::from_secs(10), &[]).await;
    assert_eq!(outcome.observed_unit.as_deref(), Some("percent"));
}
