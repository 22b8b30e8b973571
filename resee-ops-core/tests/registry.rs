//! The health registry: concurrency, timeouts, panics, aggregation and the health+json shape.

use std::time::Duration;

use resee_ops_core::testing::{ManualClock, StaticProbe};
use resee_ops_core::{CheckGroup, HealthRegistry, HealthStatus, ProbeOutcome, Registration};
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn ten_slow_probes_run_concurrently() {
    let mut registry = HealthRegistry::new();
    for i in 0..10 {
        let p = StaticProbe::new(format!("p{i}"), ProbeOutcome::up()).with_delay(Duration::from_millis(200));
        registry = registry.with_registration(Registration::new(p));
    }
    let started = Instant::now();
    let report = registry.check_all().await;
    let took = started.elapsed();
    assert_eq!(report.checks.len(), 10);
    assert_eq!(report.status, HealthStatus::Up);
    assert!(took >= Duration::from_millis(200) && took < Duration::from_millis(250), "took {took:?}");
    for check in report.checks.values() {
        assert!(check.duration >= Duration::from_millis(200) && check.duration < Duration::from_millis(250));
    }
}

#[tokio::test(start_paused = true)]
async fn a_hung_probe_costs_its_timeout_and_no_more() {
    let registry = HealthRegistry::new()
        .with_registration(Registration::new(StaticProbe::hanging("broker")).with_timeout(Duration::from_secs(3)))
        .with_registration(Registration::new(StaticProbe::new("database", ProbeOutcome::up())));
    let started = Instant::now();
    let report = registry.check_all().await;
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    let broker = &report.checks["broker"];
    assert_eq!(broker.status, HealthStatus::Down);
    assert_eq!(broker.output.as_deref(), Some("timed out after 3s"));
    assert_eq!(broker.duration, Duration::from_secs(3));
    assert_eq!(report.checks["database"].status, HealthStatus::Up);
    assert_eq!(report.status, HealthStatus::Down);
}

#[tokio::test]
async fn a_panicking_probe_is_reported_down() {
    let registry = HealthRegistry::new()
        .with_registration(Registration::new(StaticProbe::panicking("custom", "index out of bounds")))
        .with_registration(Registration::new(StaticProbe::new("database", ProbeOutcome::up())));
    let report = registry.check_all().await;
    let custom = &report.checks["custom"];
    assert_eq!(custom.status, HealthStatus::Down);
    assert_eq!(custom.output.as_deref(), Some("probe panicked: index out of bounds"));
    assert_eq!(report.checks["database"].status, HealthStatus::Up);
}

#[tokio::test]
async fn aggregation_weighs_critical_and_non_critical_probes() {
    async fn status_of(probes: Vec<StaticProbe>) -> HealthStatus {
        let mut r = HealthRegistry::new();
        for p in probes {
            r = r.with_registration(Registration::new(p));
        }
        r.check_all().await.status
    }
    let up = |n: &str| StaticProbe::new(n, ProbeOutcome::up());
    let down = |n: &str| StaticProbe::new(n, ProbeOutcome::down("x"));
    let degraded = |n: &str| StaticProbe::new(n, ProbeOutcome::degraded("x"));
    let unknown = |n: &str| StaticProbe::new(n, ProbeOutcome::unknown("x"));

    assert_eq!(status_of(vec![]).await, HealthStatus::Up);
    assert_eq!(status_of(vec![up("a"), up("b")]).await, HealthStatus::Up);
    assert_eq!(status_of(vec![up("a"), degraded("b")]).await, HealthStatus::Degraded);
    assert_eq!(status_of(vec![up("a"), down("b")]).await, HealthStatus::Down);
    assert_eq!(status_of(vec![up("a"), down("b").with_critical(false)]).await, HealthStatus::Degraded);
    assert_eq!(status_of(vec![degraded("a"), unknown("b")]).await, HealthStatus::Unknown);
    assert_eq!(
        status_of(vec![down("a").with_critical(false), unknown("b").with_critical(false)]).await,
        HealthStatus::Degraded
    );
    assert_eq!(status_of(vec![down("a").with_critical(false), down("b")]).await, HealthStatus::Down);
}

#[tokio::test]
async fn liveness_and_readiness_groups() {
    let registry = HealthRegistry::new()
        .with_registration(Registration::new(StaticProbe::new("database", ProbeOutcome::down("refused"))))
        .with_registration(
            Registration::new(StaticProbe::new("event_loop", ProbeOutcome::up())).with_groups(&[CheckGroup::Liveness]),
        )
        .with_registration(
            Registration::new(StaticProbe::new("disk", ProbeOutcome::up()))
                .with_groups(&[CheckGroup::Liveness, CheckGroup::Readiness]),
        );
    let live = registry.check(CheckGroup::Liveness).await;
    assert_eq!(live.checks.keys().collect::<Vec<_>>(), ["disk", "event_loop"]);
    assert_eq!(live.status, HealthStatus::Up, "a database outage must not fail liveness");
    let ready = registry.check(CheckGroup::Readiness).await;
    assert_eq!(ready.checks.keys().collect::<Vec<_>>(), ["database", "disk"]);
    assert_eq!(ready.status, HealthStatus::Down);
    assert_eq!(ready.http_status(), 503);
    assert_eq!(live.http_status(), 200);
}

#[tokio::test]
async fn report_has_the_health_json_shape() {
    let clock = ManualClock::new();
    let registry = HealthRegistry::new().with_clock(clock.shared()).with_registration(Registration::new(
        StaticProbe::new("disk", ProbeOutcome::degraded("usage above 80 %").with_observed(85.5, "percent")),
    ));
    let report = registry.check_all().await;
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["status"], "warn");
    let disk = &json["checks"]["disk"][0];
    assert_eq!(disk["status"], "warn");
    assert_eq!(disk["observedValue"], 85.5);
    assert_eq!(disk["observedUnit"], "percent");
    assert_eq!(disk["output"], "usage above 80 %");
    assert_eq!(disk["time"], "2025-10-15T03:00:00Z");
    assert_eq!(disk["critical"], true);

    let hidden = serde_json::to_value(report.without_details()).unwrap();
    assert_eq!(hidden, serde_json::json!({"status": "warn"}));

    let back: resee_ops_core::HealthReport = serde_json::from_value(json).unwrap();
    assert_eq!(back.checks["disk"].observed_value, Some(85.5));
}

#[tokio::test]
async fn check_groups_runs_each_probe_once() {
    let both = StaticProbe::new("disk", ProbeOutcome::up());
    let registry = HealthRegistry::new()
        .with_registration(Registration::new(StaticProbe::new("database", ProbeOutcome::down("refused"))))
        .with_registration(Registration::new(both.clone()).with_groups(&[CheckGroup::Liveness, CheckGroup::Readiness]));
    let (live, ready) = registry.check_groups().await;
    assert_eq!(live.checks.keys().collect::<Vec<_>>(), ["disk"]);
    assert_eq!(ready.checks.keys().collect::<Vec<_>>(), ["database", "disk"]);
    assert_eq!((live.status, ready.status), (HealthStatus::Up, HealthStatus::Down));
    assert_eq!(both.checks(), 1, "a probe in both groups runs once");
}

#[tokio::test]
async fn probes_sharing_a_name_do_not_hide_each_other() {
    let registry = HealthRegistry::new()
        .with_registration(Registration::new(StaticProbe::new("database", ProbeOutcome::down("replica refused"))))
        .with_registration(Registration::new(StaticProbe::new("database", ProbeOutcome::up())));
    let report = registry.check_all().await;
    assert_eq!(report.checks.keys().collect::<Vec<_>>(), ["database", "database#2"]);
    assert_eq!(report.status, HealthStatus::Down, "the failing one still counts");
    let (_, ready) = registry.check_groups().await;
    assert_eq!(ready.checks.keys().collect::<Vec<_>>(), ["database", "database#2"]);
}

#[tokio::test]
async fn probes_register_through_shared_references_and_every_clone_runs_them() {
    let registry = HealthRegistry::new();
    let monitor_side = registry.clone();
    assert!(monitor_side.check_all().await.checks.is_empty());

    // Any probe, by value; the group said where it is registered.
    registry
        .register(StaticProbe::new("database", ProbeOutcome::up()))
        .register(Registration::liveness(StaticProbe::new("event_loop", ProbeOutcome::up())));
    let (live, ready) = monitor_side.check_groups().await;
    assert_eq!(ready.checks.keys().collect::<Vec<_>>(), ["database"], "a bare probe is a readiness probe");
    assert_eq!(live.checks.keys().collect::<Vec<_>>(), ["event_loop"], "liveness only");

    // Registered later, from another task, through a shared reference.
    let shared = std::sync::Arc::new(registry);
    let adder = shared.clone();
    tokio::spawn(async move {
        adder.register(Registration::readiness(StaticProbe::new("search", ProbeOutcome::down("refused"))));
    })
    .await
    .unwrap();
    let ready = monitor_side.check(CheckGroup::Readiness).await;
    assert_eq!(ready.checks.len(), 2);
    assert_eq!(ready.status, HealthStatus::Down);
    assert_eq!(monitor_side.registrations().len(), 3);
}
