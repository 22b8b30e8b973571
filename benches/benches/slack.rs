//! The Slack notifier: rendering one alert, and `notify` through dispatcher + throttle + Slack against a
//! loopback receiver that takes 5 s per request.
//!
//! Criterion reports mean/median; the `notify` bench also prints p50/p99/p99.9 of single calls measured
//! in one run, since the target is a tail latency (p99 ≤ 10 µs). The receiver sees a bounded number of
//! requests: 64 distinct alerts at most, throttled, paced to one per second, and cut at shutdown.

use resee_ops_benches::{bench_notify, notify_tail_latency, runtime};
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use resee_ops_core::{Alert, Dispatcher, DispatcherConfig, NotifierExt, Severity};
use resee_ops_slack::SlackNotifier;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn alert(i: usize) -> Alert {
    Alert::new("api_latency", Severity::Warning, format!("API p95 above 2 s ({i})"))
        .with_source("monitor")
        .with_label("endpoint", format!("/api/v1/items/{}", i % 64))
        .with_text(
            "The p95 latency of the endpoint has been above 2 s for 5 minutes. <https://grafana/d/api|Dashboard>",
        )
        .with_field("p95", "2.4 s")
        .with_field("p99", "3.9 s")
        .with_field("Requests/s", "412")
}

fn render(c: &mut Criterion) {
    let slack = SlackNotifier::builder()
        .with_webhook_url("https://hooks.slack.com/services/T000/B000/XXXXXXXX")
        .build()
        .expect("notifier");
    let a = alert(1);
    c.bench_function("slack/render one alert", |b| b.iter(|| black_box(slack.render(black_box(&a)))));
}

/// Dispatcher → throttle → Slack, posting to `server` (which answers after 5 s).
fn stack(server: &MockServer, capacity: usize) -> Dispatcher {
    SlackNotifier::builder()
        .with_webhook_url(format!("{}/services/T000/B000/XXXXXXXX", server.uri()))
        .build()
        .expect("notifier")
        .throttled(Duration::from_secs(600))
        .dispatched(DispatcherConfig::default().with_capacity(capacity))
}

fn notify(c: &mut Criterion) {
    let rt = runtime();
    let server = rt.block_on(async {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_string("ok").set_delay(Duration::from_secs(5)))
            .mount(&server)
            .await;
        server
    });
    let batch: Vec<Alert> = (0..4096).map(alert).collect();

    // Tail latency of single calls, measured directly.
    let d = rt.block_on(async { stack(&server, 1 << 20) });
    notify_tail_latency(&rt, "slack notify via dispatcher+throttle (5 s receiver)", &d, &batch, 200_000);
    rt.block_on(d.shutdown(Duration::ZERO));

    let d = rt.block_on(async { stack(&server, 1 << 22) });
    bench_notify(c, &rt, "slack/notify via dispatcher+throttle (5 s receiver)", &d, &batch);
    rt.block_on(d.shutdown(Duration::ZERO));
    let received = rt.block_on(server.received_requests()).map_or(0, |r| r.len());
    println!("receiver got {received} requests");
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = render, notify
}
criterion_main!(benches);
