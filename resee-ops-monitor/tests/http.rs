//! The health endpoint through real HTTP requests to the router served on a loopback port.

mod common;

use std::time::{Duration, Instant};

use resee_ops_core::testing::{ManualClock, StaticProbe, services};
use resee_ops_core::{CheckGroup, HealthRegistry, ProbeOutcome, Registration};
use resee_ops_monitor::http::{EndpointConfig, HEALTH_JSON, router};
use resee_ops_monitor::{HealthMonitor, PostgresProbeConfig, RedisConfig};
use serde_json::Value;

/// Serves the monitor's router on 127.0.0.1:0 and returns its base URL.
async fn serve(monitor: &HealthMonitor, config: EndpointConfig) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(monitor.clone(), config);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

async fn get(url: &str) -> (u16, String, Value) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    (status, content_type, body)
}

fn monitor(registry: HealthRegistry) -> HealthMonitor {
    HealthMonitor::builder(registry).with_failures_before_down(1).build().unwrap()
}

#[tokio::test]
async fn status_codes_and_shape_follow_the_cached_report() {
    let db = StaticProbe::new("database", ProbeOutcome::up().with_observed(1.5, "ms"));
    let cache = StaticProbe::new("cache", ProbeOutcome::up()).with_critical(false);
    let process = StaticProbe::new("process", ProbeOutcome::up());
    let registry = HealthRegistry::new()
        .with_registration(Registration::new(db.clone()))
        .with_registration(Registration::new(cache.clone()))
        .with_registration(Registration::new(process).with_groups(&[CheckGroup::Liveness]));
    let monitor = monitor(registry);
    let base = serve(&monitor, EndpointConfig::default()).await;
    let ready = format!("{base}/health/ready");
    let live = format!("{base}/health/live");

    // Before the first cycle: not ready, but alive.
    let (code, content_type, body) = get(&ready).await;
    assert_eq!((code, content_type.as_str(), body["status"].as_str()), (503, HEALTH_JSON, Some("fail")));
    assert_eq!(body["output"], "no health check has completed yet", "the answer says why");
    let (code, _, body) = get(&live).await;
    assert_eq!((code, body["status"].as_str()), (200, Some("pass")));

    monitor.run_once().await;
    let (code, _, body) = get(&ready).await;
    assert_eq!(code, 200);
    assert_eq!(body, serde_json::json!({"status": "pass"}), "details hidden by default");

    cache.set(ProbeOutcome::down("refused"));
    monitor.run_once().await;
    let (code, _, body) = get(&ready).await;
    assert_eq!((code, body["status"].as_str()), (200, Some("warn")), "a non-critical failure warns");

    db.set(ProbeOutcome::down("connection refused"));
    monitor.run_once().await;
    let (code, _, body) = get(&ready).await;
    assert_eq!((code, body["status"].as_str()), (503, Some("fail")));
    assert!(body.get("checks").is_none());
    let (code, _, body) = get(&live).await;
    assert_eq!((code, body["status"].as_str()), (200, Some("pass")), "the database never fails liveness");

    let response = reqwest::get(&ready).await.unwrap();
    assert_eq!(response.headers()["cache-control"], "no-store");
    let response = reqwest::get(format!("{base}/health")).await.unwrap();
    assert_eq!(response.status().as_u16(), 404);
}

/// Alert semantics, rule 6, on the wire: past the report's maximum age (default three intervals) readiness
/// answers 503 `fail` with the reason in `output`, not the old "pass"; liveness is not affected.
#[tokio::test]
async fn rule_a_stale_report_makes_readiness_answer_503_with_a_reason() {
    let clock = ManualClock::new();
    let db = StaticProbe::new("database", ProbeOutcome::up());
    let monitor = HealthMonitor::builder(HealthRegistry::new().with_registration(Registration::new(db)))
        .with_interval(Duration::from_secs(30))
        .with_clock(clock.shared())
        .build()
        .unwrap();
    let base = serve(&monitor, EndpointConfig::default()).await;
    let ready = format!("{base}/health/ready");
    monitor.run_once().await;
    clock.advance(Duration::from_secs(90));
    let (code, _, body) = get(&ready).await;
    assert_eq!((code, body["status"].as_str()), (200, Some("pass")), "90 s old: still fresh");

    clock.advance(Duration::from_secs(1));
    let (code, content_type, body) = get(&ready).await;
    assert_eq!((code, content_type.as_str(), body["status"].as_str()), (503, HEALTH_JSON, Some("fail")));
    let why = body["output"].as_str().unwrap_or_default();
    assert!(why.starts_with("stale: "), "the answer says why: {body}");
    let (code, _, body) = get(&format!("{base}/health/live")).await;
    assert_eq!((code, body["status"].as_str()), (200, Some("pass")), "liveness is not readiness");

    monitor.run_once().await;
    let (code, _, _) = get(&ready).await;
    assert_eq!(code, 200, "fresh again after a cycle");
}

#[tokio::test]
async fn details_when_enabled_on_custom_paths() {
    let db = StaticProbe::new("database", ProbeOutcome::up().with_observed(1.5, "ms"));
    let monitor = monitor(HealthRegistry::new().with_registration(Registration::new(db.clone())));
    let config = EndpointConfig::default().with_details(true).with_readiness_path("/ready").with_liveness_path("/live");
    let base = serve(&monitor, config).await;
    monitor.run_once().await;
    let (code, _, body) = get(&format!("{base}/ready")).await;
    assert_eq!(code, 200);
    let check = &body["checks"]["database"][0];
    assert_eq!(check["status"], "pass");
    assert_eq!(check["observedValue"], 1.5);
    assert_eq!(check["observedUnit"], "ms");
    assert_eq!(check["critical"], true);
    assert!(check["time"].is_string() && check["duration"].is_string(), "{check}");
    let (code, _, body) = get(&format!("{base}/live")).await;
    assert_eq!((code, body["status"].as_str()), (200, Some("pass")));
}

#[tokio::test]
async fn a_request_never_waits_on_a_hanging_dependency() {
    let registry = HealthRegistry::new()
        .with_default_timeout(Duration::from_secs(30))
        .with_registration(Registration::new(StaticProbe::hanging("database")));
    let monitor = monitor(registry);
    let handle = monitor.spawn(); // its first cycle hangs for 30 s
    let base = serve(&monitor, EndpointConfig::default()).await;
    let started = Instant::now();
    let (code, _, _) = get(&format!("{base}/health/ready")).await;
    assert_eq!(code, 503);
    assert!(started.elapsed() < Duration::from_secs(2), "answered from the cache: {:?}", started.elapsed());
    handle.shutdown().await;
}

#[tokio::test]
async fn real_dependencies_end_to_end() {
    let registry = HealthRegistry::new()
        .with_registration(Registration::new(
            PostgresProbeConfig::from_url(services::postgres().url()).unwrap().build().unwrap(),
        ))
        .with_registration(Registration::new(
            RedisConfig::from_url(format!("redis://:hunter2hunter2@127.0.0.1:{}/", common::closed_port()).as_str())
                .unwrap()
                .probe()
                .unwrap(),
        ));
    let monitor = monitor(registry);
    let base = serve(&monitor, EndpointConfig::default().with_details(true)).await;
    monitor.run_once().await;
    let response = reqwest::get(format!("{base}/health/ready")).await.unwrap();
    assert_eq!(response.status().as_u16(), 503);
    let text = response.text().await.unwrap();
    assert!(!text.contains("hunter2hunter2"), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["status"], "fail");
    assert_eq!(body["checks"]["database"][0]["status"], "pass");
    assert_eq!(body["checks"]["redis"][0]["status"], "fail");
}
