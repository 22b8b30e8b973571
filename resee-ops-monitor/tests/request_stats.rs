//! RequestStats and its layer: a real axum server on loopback, per-route and overall series, sliding windows on
//! paused time, configurable error statuses, bounded routes, and exact counts from two threads at once.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use resee_ops_core::testing::RecordingNotifier;
use resee_ops_monitor::{
    AlertState, Measure, RequestStats, RouteTemplate, RuleEvaluator, UNMATCHED_ROUTE, WindowedSource,
};
use tokio::time::advance;

const HOUR: Duration = Duration::from_secs(3600);
const MINUTE: Duration = Duration::from_secs(60);

async fn value(stats: &RequestStats, m: Measure) -> Option<f64> {
    stats.measure(&m).await.unwrap().value
}

#[tokio::test]
async fn the_layer_records_a_real_servers_traffic_per_route_template() {
    let stats = RequestStats::new();
    let app = Router::new()
        .route("/api/reviews/{id}", get(|| async { "ok" }))
        .route(
            "/api/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                "slow"
            }),
        )
        .route("/api/boom", get(|| async { StatusCode::SERVICE_UNAVAILABLE }))
        .layer(stats.layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let client = reqwest::Client::new();
    for i in 0..8 {
        let r = client.get(format!("http://{addr}/api/reviews/{i}")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    for _ in 0..2 {
        assert_eq!(client.get(format!("http://{addr}/api/boom")).send().await.unwrap().status(), 503);
    }
    client.get(format!("http://{addr}/api/slow")).send().await.unwrap();
    assert_eq!(client.get(format!("http://{addr}/nowhere")).send().await.unwrap().status(), 404);
    server.abort();

    assert_eq!(stats.routes(), ["/api/boom", "/api/reviews/{id}", "/api/slow", UNMATCHED_ROUTE]);
    let count = |route: &str| Measure::count(HOUR).with_series(route);
    assert_eq!(value(&stats, count("/api/reviews/{id}")).await, Some(8.0), "one series for every id");
    assert_eq!(value(&stats, count("/api/boom")).await, Some(2.0));
    assert_eq!(value(&stats, count(UNMATCHED_ROUTE)).await, Some(1.0), "a 404 without a route");
    assert_eq!(value(&stats, Measure::count(HOUR)).await, Some(12.0), "overall");
    assert_eq!(value(&stats, Measure::ratio(HOUR)).await, Some(2.0 / 12.0), "503s are errors, the 404 is not");
    assert_eq!(value(&stats, Measure::ratio(HOUR).with_series("/api/reviews/{id}")).await, Some(0.0));
    let slow = value(&stats, Measure::quantile(0.5, HOUR).with_series("/api/slow")).await.unwrap();
    assert!((0.05..0.5).contains(&slow), "latency in seconds, at least the handler's 50 ms: {slow}");
}

#[tokio::test]
async fn a_route_template_extension_names_the_route_for_other_routers() {
    use tower_like::call;
    let stats = RequestStats::new();
    let mut req = http::Request::new(());
    req.extensions_mut().insert(RouteTemplate(Arc::from("/jobs/{id}")));
    call(&stats, req, 500).await;
    call(&stats, http::Request::new(()), 200).await;
    assert_eq!(value(&stats, Measure::count(HOUR).with_series("/jobs/{id}")).await, Some(1.0));
    assert_eq!(value(&stats, Measure::ratio(HOUR)).await, Some(0.5));
}

/// Drives the layer's service by hand, as any tower stack would.
mod tower_like {
    use std::convert::Infallible;
    use std::future::poll_fn;

    use resee_ops_monitor::RequestStats;
    use tower_layer::Layer;
    use tower_service::Service;

    #[derive(Clone)]
    struct Status(u16);

    impl Service<http::Request<()>> for Status {
        type Response = http::Response<()>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Self::Response, Infallible>>;
        fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: http::Request<()>) -> Self::Future {
            let mut r = http::Response::new(());
            *r.status_mut() = http::StatusCode::from_u16(self.0).unwrap();
            std::future::ready(Ok(r))
        }
    }

    pub(crate) async fn call(stats: &RequestStats, req: http::Request<()>, status: u16) {
        let mut svc = stats.layer().layer(Status(status));
        poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
        svc.call(req).await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn windows_slide_and_history_is_dropped_after_the_retention() {
    let stats = RequestStats::new();
    stats.record(Some("/a"), 500, Duration::from_millis(10));
    advance(30 * MINUTE).await;
    stats.record(Some("/a"), 200, Duration::from_millis(20));
    stats.record(Some("/b"), 200, Duration::from_millis(30));
    assert_eq!(value(&stats, Measure::count(HOUR)).await, Some(3.0));
    assert_eq!(value(&stats, Measure::count(5 * MINUTE)).await, Some(2.0), "the first request is 30 min old");
    assert_eq!(value(&stats, Measure::ratio(HOUR)).await, Some(1.0 / 3.0));
    assert_eq!(value(&stats, Measure::rate(MINUTE)).await, Some(2.0 / 60.0), "requests per second");
    advance(31 * MINUTE).await;
    assert_eq!(value(&stats, Measure::ratio(HOUR)).await, Some(0.0), "the 500 left the hour");
    let before = stats.memory_bytes();
    advance(2 * HOUR).await;
    assert_eq!(value(&stats, Measure::count(HOUR)).await, Some(0.0));
    assert_eq!(stats.measure(&Measure::quantile(0.95, HOUR)).await.unwrap().value, None, "no data, not zero");
    stats.record(Some("/a"), 200, Duration::from_millis(1));
    value(&stats, Measure::count(HOUR)).await;
    assert!(stats.memory_bytes() < before, "old buckets are freed: {} < {before}", stats.memory_bytes());
}

#[tokio::test(start_paused = true)]
async fn p95_follows_the_latencies_within_one_percent() {
    let stats = RequestStats::new();
    for ms in 1..=1000u64 {
        stats.record(Some("/x"), 200, Duration::from_millis(ms));
        if ms % 100 == 0 {
            advance(MINUTE).await; // spread over ten buckets, merged at read time
        }
    }
    let p95 = value(&stats, Measure::quantile(0.95, HOUR)).await.unwrap();
    assert!((p95 - 0.95).abs() <= 0.95 * resee_ops_monitor::QUANTILE_RELATIVE_ERROR, "{p95}");
}

#[tokio::test(start_paused = true)]
async fn error_statuses_and_the_route_cap_are_configurable() {
    let stats = RequestStats::builder().with_error_statuses([429, 500]).with_max_routes(2).build().unwrap();
    for (route, status) in [("/a", 429), ("/b", 503), ("/c", 500), ("/d", 200)] {
        stats.record(Some(route), status, Duration::from_millis(1));
    }
    assert_eq!(value(&stats, Measure::ratio(HOUR)).await, Some(0.5), "429 and 500 count, 503 does not");
    assert_eq!(stats.routes(), ["/a", "/b", "<other>"]);
    assert_eq!(value(&stats, Measure::count(HOUR).with_series("<other>")).await, Some(2.0), "nothing is lost");
    assert!(RequestStats::builder().with_granularity(Duration::from_millis(1500)).build().is_err());
    assert!(RequestStats::builder().with_retention(Duration::from_secs(10)).build().is_err());
}

#[tokio::test(start_paused = true)]
async fn p95_rule_over_request_stats_fires_and_resolves() {
    let stats = RequestStats::new();
    let inbox = RecordingNotifier::new();
    let rules = resee_ops_monitor::presets().into_iter().filter(|r| r.source == "http");
    let ev = RuleEvaluator::builder()
        .with_source("http", stats.clone())
        .with_rules(rules)
        .with_notifier(Arc::new(inbox.clone()))
        .build()
        .unwrap();
    for _ in 0..30 {
        stats.record(Some("/api"), 200, Duration::from_millis(2500));
    }
    ev.evaluate().await;
    let states = ev.states();
    assert_eq!((states[0].name.as_str(), states[0].state), ("error_rate", AlertState::Inactive));
    assert_eq!((states[1].name.as_str(), states[1].state), ("api_latency_p95", AlertState::Firing));
    advance(6 * MINUTE).await;
    for _ in 0..30 {
        stats.record(Some("/api"), 200, Duration::from_millis(100));
    }
    ev.evaluate().await;
    assert_eq!(ev.states()[1].state, AlertState::Inactive, "the slow minute left the 5-minute window");
}

#[test]
fn two_threads_recording_at_once_lose_nothing() {
    let stats = RequestStats::new();
    std::thread::scope(|s| {
        for t in 0..2 {
            let stats = stats.clone();
            s.spawn(move || {
                for i in 0..50_000u64 {
                    let status = if i % 10 == 0 { 500 } else { 200 };
                    stats.record(Some(if t == 0 { "/a" } else { "/b" }), status, Duration::from_micros(100 + i % 900));
                }
            });
        }
    });
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        assert_eq!(value(&stats, Measure::count(HOUR)).await, Some(100_000.0));
        assert_eq!(value(&stats, Measure::ratio(HOUR)).await, Some(0.1));
        assert_eq!(value(&stats, Measure::count(HOUR).with_series("/b")).await, Some(50_000.0));
    });
}
