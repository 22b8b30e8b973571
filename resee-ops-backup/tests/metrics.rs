//! The metrics table of `docs/metrics.md` against what is really recorded (metrics-util's
//! `DebuggingRecorder`, installed for this test binary only): after a real backup (pg_dump into a local
//! directory and into a second, optional target that fills up), a delivered alert, a dropped one and a
//! health check, every documented name of those parts appears with its documented kind, labels and unit,
//! each backup target with its own outcome; and the table agrees with `resee_ops_core::telemetry::METRICS`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use metrics_util::MetricKind as RecordedKind;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use resee_ops_backup::{LocalDirTarget, PgDumpBackup};
use resee_ops_core::telemetry::{self, METRICS, MetricKind};
use resee_ops_core::testing::{InMemoryBackupTarget, RecordingNotifier, StaticProbe, services};
use resee_ops_core::{
    Alert, DispatcherConfig, HealthRegistry, Notifier, NotifierExt, NotifyOutcome, ProbeOutcome, Registration, Severity,
};

/// One row of the documented table.
#[derive(Debug, PartialEq)]
struct Row {
    kind: String,
    unit: String,
    labels: BTreeSet<String>,
}

/// The table of `docs/metrics.md`: name → (kind, unit, labels).
fn documented() -> BTreeMap<String, Row> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/metrics.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let cell = |c: &str| c.trim().trim_matches('`').to_owned();
    doc.lines()
        .filter(|l| l.starts_with("| `resee_ops_"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').collect();
            let labels = cells[4].split(',').map(cell).filter(|s| !s.is_empty()).collect();
            (cell(cells[1]), Row { kind: cell(cells[2]), unit: cell(cells[3]), labels })
        })
        .collect()
}

#[test]
fn the_table_in_the_docs_is_the_table_in_the_code() {
    let doc = documented();
    let code: BTreeMap<String, Row> = METRICS
        .iter()
        .map(|m| {
            let row = Row {
                kind: m.kind.as_str().to_owned(),
                unit: m.unit.map(|u| u.as_str().to_owned()).unwrap_or_default(),
                labels: m.labels.iter().map(|s| (*s).to_owned()).collect(),
            };
            (m.name.to_owned(), row)
        })
        .collect();
    assert_eq!(doc, code);
    assert!(METRICS.iter().all(|m| m.name.starts_with("resee_ops_")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_metrics_appear_after_a_backup_a_delivered_and_a_dropped_alert() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().expect("the only recorder of this test binary");
    telemetry::describe();

    // A real backup to two targets: the local directory (added without a name: named `local` after its
    // kind) succeeds; `offsite`, optional, is a disk that fills up after 64 bytes and fails.
    let dir = tempfile::tempdir().unwrap();
    let backup = PgDumpBackup::builder()
        .with_url(services::postgres().url())
        .with_environment("test")
        .with_name("metrics")
        .with_threads(1)
        .with_target(LocalDirTarget::new(dir.path()).unwrap())
        .with_named_target("offsite", InMemoryBackupTarget::new().with_capacity(64), false)
        .build()
        .unwrap();
    // A second run started while the first is going is skipped (the first takes the single-run lock before
    // it first awaits; `join!` polls it first).
    let (outcome, overlapping) = tokio::join!(backup.run(), backup.run());
    assert!(outcome.is_success(), "{:?}", outcome.error);
    assert!(overlapping.is_skipped(), "{:?}", overlapping.report);
    let fared: Vec<(&str, &str)> =
        outcome.report.targets.iter().map(|t| (t.target.as_str(), t.status.as_str())).collect();
    assert_eq!(fared, [("local", "success"), ("offsite", "failed")]);

    // One alert delivered, one suppressed, one dropped (the dispatcher is shut down).
    let inbox = RecordingNotifier::new();
    let alerts = inbox.clone().throttled(Duration::from_secs(600)).dispatched(DispatcherConfig::default());
    let alert = Alert::new("metrics_test", Severity::Error, "Something broke");
    assert!(matches!(alerts.notify_final(&alert).await, NotifyOutcome::Delivered));
    assert!(matches!(alerts.notify_final(&alert).await, NotifyOutcome::Suppressed));
    alerts.shutdown(Duration::from_secs(5)).await;
    assert!(!alerts.notify(&alert).await.is_ok());

    // A health check.
    HealthRegistry::new()
        .with_registration(Registration::new(StaticProbe::new("db", ProbeOutcome::up())))
        .check_all()
        .await;

    let recorded: Vec<_> = snapshotter.snapshot().into_vec();
    let find = |name: &str| recorded.iter().filter(move |(key, _, _, _)| key.key().name() == name).collect::<Vec<_>>();
    let doc = documented();
    let expected = [
        telemetry::BACKUP_RUNS,
        telemetry::BACKUP_ATTEMPTS,
        telemetry::BACKUP_DURATION,
        telemetry::BACKUP_TARGET_RUNS,
        telemetry::BACKUP_TARGET_DURATION,
        telemetry::BACKUP_SIZE,
        telemetry::BACKUP_LAST_SUCCESS,
        telemetry::ALERTS_ACCEPTED,
        telemetry::ALERTS_DELIVERED,
        telemetry::ALERTS_SUPPRESSED,
        telemetry::ALERTS_DROPPED,
        telemetry::ALERTS_DELIVERY,
        telemetry::ALERTS_QUEUE_DEPTH,
        telemetry::PROBE_DURATION,
        telemetry::PROBE_STATUS,
    ];
    for name in expected {
        let row = doc.get(name).unwrap_or_else(|| panic!("{name} is not in docs/metrics.md"));
        let series = find(name);
        assert!(!series.is_empty(), "{name} was not recorded");
        for (key, unit, _, _) in &series {
            let kind = match key.kind() {
                RecordedKind::Counter => MetricKind::Counter,
                RecordedKind::Gauge => MetricKind::Gauge,
                RecordedKind::Histogram => MetricKind::Histogram,
            };
            assert_eq!(kind.as_str(), row.kind, "{name}: kind");
            let labels: BTreeSet<String> = key.key().labels().map(|l| l.key().to_owned()).collect();
            assert_eq!(labels, row.labels, "{name}: labels");
            assert_eq!(unit.map(|u| u.as_str().to_owned()).unwrap_or_default(), row.unit, "{name}: unit");
        }
    }

    // And the values say what happened.
    let value = |name: &str, label: (&str, &str)| {
        find(name)
            .into_iter()
            .find(|(k, _, _, _)| k.key().labels().any(|l| l.key() == label.0 && l.value() == label.1))
            .map(|(_, _, _, v)| v)
            .unwrap_or_else(|| panic!("{name} {{{}={}}} not recorded", label.0, label.1))
    };
    let counter = |name: &str| match find(name).first().map(|s| &s.3) {
        Some(DebugValue::Counter(n)) => *n,
        other => panic!("{name}: {other:?}"),
    };
    // The run as a whole: one successful run (the required target got its copy), one attempt; and the
    // overlapping run, skipped (it made no attempt and touched no target).
    assert_eq!(find(telemetry::BACKUP_RUNS).len(), 2);
    assert_eq!(value(telemetry::BACKUP_RUNS, ("outcome", "success")), &DebugValue::Counter(1));
    assert_eq!(value(telemetry::BACKUP_RUNS, ("outcome", "skipped")), &DebugValue::Counter(1));
    assert_eq!(counter(telemetry::BACKUP_ATTEMPTS), 1);
    assert!(
        matches!(value(telemetry::BACKUP_DURATION, ("outcome", "success")), DebugValue::Histogram(h) if h.len() == 1)
    );
    // Each target: its own outcome, time, size and last success, under its own name.
    let series = |name: &str| -> BTreeMap<Vec<(String, String)>, &DebugValue> {
        find(name)
            .into_iter()
            .map(|(k, _, _, v)| {
                let labels = k.key().labels().map(|l| (l.key().to_owned(), l.value().to_owned())).collect();
                (labels, v)
            })
            .collect()
    };
    let labels = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    };
    let local_ok = labels(&[("target", "local"), ("outcome", "success")]);
    let offsite_failed = labels(&[("target", "offsite"), ("outcome", "failed")]);
    let runs = series(telemetry::BACKUP_TARGET_RUNS);
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(runs[&local_ok], &DebugValue::Counter(1));
    assert_eq!(runs[&offsite_failed], &DebugValue::Counter(1));
    let spent = series(telemetry::BACKUP_TARGET_DURATION);
    assert_eq!(spent.len(), 2, "{spent:?}");
    for key in [&local_ok, &offsite_failed] {
        assert!(matches!(spent[key], DebugValue::Histogram(h) if h.len() == 1), "{key:?}: {spent:?}");
    }
    let run_seconds = outcome.report.duration.as_secs_f64();
    assert!(matches!(spent[&local_ok], DebugValue::Histogram(h) if h[0].0 > 0.0 && h[0].0 <= run_seconds));
    let size = outcome.report.size_bytes as f64;
    let sizes = series(telemetry::BACKUP_SIZE);
    assert_eq!(sizes.keys().collect::<Vec<_>>(), [&labels(&[("target", "local")])], "no size for a failed target");
    assert!(matches!(value(telemetry::BACKUP_SIZE, ("target", "local")), DebugValue::Gauge(g) if g.0 == size));
    let last = outcome.report.finished_at.unwrap().timestamp_millis() as f64 / 1000.0;
    let lasts = series(telemetry::BACKUP_LAST_SUCCESS);
    assert_eq!(lasts.keys().collect::<Vec<_>>(), [&labels(&[("target", "local")])], "no success for a failed target");
    assert!(matches!(value(telemetry::BACKUP_LAST_SUCCESS, ("target", "local")), DebugValue::Gauge(g) if g.0 == last));
    assert_eq!(counter(telemetry::ALERTS_ACCEPTED), 2);
    assert_eq!(counter(telemetry::ALERTS_DELIVERED), 1);
    assert_eq!(counter(telemetry::ALERTS_SUPPRESSED), 1);
    assert_eq!(value(telemetry::ALERTS_DROPPED, ("reason", "closed")), &DebugValue::Counter(1));
    assert_eq!(value(telemetry::ALERTS_DROPPED, ("reason", "queue_full")), &DebugValue::Counter(0));
    assert!(
        matches!(value(telemetry::ALERTS_DELIVERY, ("outcome", "delivered")), DebugValue::Histogram(h) if h.len() == 1)
    );
    assert!(matches!(find(telemetry::ALERTS_QUEUE_DEPTH)[0].3, DebugValue::Gauge(g) if g.0 == 0.0));
    assert!(matches!(value(telemetry::PROBE_STATUS, ("probe", "db")), DebugValue::Gauge(g) if g.0 == 1.0));
}
