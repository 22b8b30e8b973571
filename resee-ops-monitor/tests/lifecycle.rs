//! The monitor's lifecycle in a host: `ready()` after the first cycle, and the one shutdown (`OpsHandle`)
//! that stops the loop before it flushes the alerts. Paused time.

use std::time::Duration;

use resee_ops_core::prelude::*;
use resee_ops_core::testing::{RecordingNotifier, StaticProbe};
use resee_ops_monitor::HealthMonitor;
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn ready_resolves_once_the_first_cycle_has_completed() {
    let db = StaticProbe::new("database", ProbeOutcome::up()).with_delay(Duration::from_secs(3));
    let monitor = HealthMonitor::builder(HealthRegistry::new().with_registration(Registration::readiness(db.clone())))
        .with_interval(Duration::from_secs(30))
        .build()
        .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_secs(10), monitor.ready()).await.is_err(),
        "no cycle runs before the monitor is started"
    );

    let running = monitor.spawn();
    let started = Instant::now();
    monitor.ready().await;
    assert_eq!(started.elapsed(), Duration::from_secs(3), "ready as soon as the first cycle's checks end");
    assert_eq!(monitor.report(CheckGroup::Readiness).unwrap().status, HealthStatus::Up);
    assert_eq!(db.checks(), 1);

    // Once ready, always ready: later calls resolve at once.
    let again = Instant::now();
    monitor.ready().await;
    assert_eq!(again.elapsed(), Duration::ZERO);
    running.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn one_shutdown_stops_the_monitor_then_delivers_its_last_alert() {
    let db = StaticProbe::new("database", ProbeOutcome::down("connection refused"));
    // A receiver that takes 4 s: the firing is still being delivered when the shutdown starts.
    let inbox = RecordingNotifier::new().with_delay(Duration::from_secs(4));
    let alerts = inbox.clone().dispatched(DispatcherConfig::default());
    let monitor = HealthMonitor::builder(HealthRegistry::new().with_registration(Registration::readiness(db.clone())))
        .with_interval(Duration::from_secs(10))
        .with_failures_before_down(1)
        .with_notifier(alerts.clone())
        .build()
        .unwrap();
    let ops = OpsHandle::new(alerts.clone()).with_producer("monitor", monitor.spawn());
    monitor.ready().await;
    tokio::task::yield_now().await; // the cycle's delivery task hands the firing to the dispatcher

    let summary = ops.shutdown(Duration::from_secs(30)).await;
    assert_eq!(inbox.titles(), ["Health check database failed"], "flushed, not dropped");
    assert!(summary.is_clean(), "{summary}");
    assert_eq!(summary.producers[0].name, "monitor");
    assert_eq!(summary.alerts.delivered, 1);

    // The loop has stopped: no more cycles, whatever time passes.
    let cycles = monitor.cycles();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(monitor.cycles(), cycles);
    assert_eq!(db.checks(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_probe_registered_after_the_monitor_was_built_is_checked_and_alerts_in_its_own_words() {
    /// A host's probe with its own wording.
    #[derive(Debug)]
    struct Payments;

    #[async_trait]
    impl HealthProbe for Payments {
        fn name(&self) -> &str {
            "payments_api"
        }
        async fn check(&self) -> ProbeOutcome {
            ProbeOutcome::down("503 from the provider")
        }
        fn alert_text(&self, _outcome: &ProbeOutcome, resolved: bool) -> ProbeAlertText {
            ProbeAlertText::new(if resolved { "Payments reachable again" } else { "Payments unreachable" })
        }
    }

    let registry = HealthRegistry::new();
    registry.register(Registration::readiness(StaticProbe::new("database", ProbeOutcome::up())));
    let inbox = RecordingNotifier::new();
    let monitor = HealthMonitor::builder(registry.clone())
        .with_failures_before_down(1)
        .with_notifier(inbox.clone())
        .build()
        .unwrap();
    monitor.run_once().await;
    assert_eq!(monitor.report(CheckGroup::Readiness).unwrap().status, HealthStatus::Up);

    registry.register(Payments);
    monitor.run_once().await;
    let report = monitor.report(CheckGroup::Readiness).unwrap();
    assert_eq!(report.status, HealthStatus::Down);
    assert!(report.checks.contains_key("payments_api"));
    assert_eq!(inbox.titles(), ["Payments unreachable"]);
}
