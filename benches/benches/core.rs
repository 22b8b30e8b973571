//! Core machinery: the cost of `notify` through throttle + dispatcher with a slow receiver, and throttle
//! decisions per second.
//!
//! Besides criterion's mean/median, the `notify` bench prints p50/p99/p99.9 of single calls measured in
//! one run, since the target is a tail latency (p99 ≤ 10 µs). The last bench repeats it with the
//! reference service's Prometheus recorder installed, so the cost of recording the alert metrics on the
//! `notify` path is measured, not assumed (issue 14: no measurable cost).

use resee_ops_benches::{bench_notify, notify_tail_latency, runtime};
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use resee_ops_core::testing::RecordingNotifier;
use resee_ops_core::{Alert, Dispatcher, DispatcherConfig, Notifier, NotifierExt, Severity};

fn alerts(n: usize) -> Vec<Alert> {
    (0..n)
        .map(|i| {
            Alert::new("api_latency", Severity::Warning, format!("API p95 above 2 s ({i})"))
                .with_source("monitor")
                .with_label("endpoint", format!("/api/v1/items/{}", i % 64))
                .with_field("p95", "2.4 s")
        })
        .collect()
}

/// A dispatcher over a throttle over a receiver that takes 5 s per alert.
fn slow_stack(capacity: usize) -> Dispatcher {
    RecordingNotifier::new()
        .with_delay(Duration::from_secs(5))
        .throttled(Duration::from_secs(600))
        .dispatched(DispatcherConfig::default().with_capacity(capacity))
}

fn notify_latency(c: &mut Criterion) {
    let rt = runtime();
    let batch = alerts(4096);

    // Tail latency of single calls, measured directly: queue with room, then a full queue (drop path).
    for (label, capacity) in [("notify p-latency, queue with room", 1 << 20), ("notify p-latency, queue full", 16)] {
        let d = rt.block_on(async { slow_stack(capacity) });
        notify_tail_latency(&rt, label, &d, &batch, 200_000);
        rt.block_on(d.shutdown(Duration::ZERO));
    }

    let d = rt.block_on(async { slow_stack(1 << 22) });
    bench_notify(c, &rt, "notify via dispatcher+throttle (5 s receiver)", &d, &batch);
    rt.block_on(d.shutdown(Duration::ZERO));
}

fn throttle_decisions(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let throttled = RecordingNotifier::new().throttled(Duration::from_secs(600));
    let batch = alerts(64);
    // Claim every fingerprint once, so the measured calls are the storm case: duplicates suppressed.
    rt.block_on(async {
        for a in &batch {
            throttled.notify(a).await;
        }
    });
    let mut group = c.benchmark_group("throttle");
    group.throughput(Throughput::Elements(1));
    group.bench_function("fingerprint", |b| b.iter(|| black_box(&batch[7]).fingerprint()));
    let mut i = 0usize;
    group.bench_function("decision (duplicate suppressed)", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            let a = &batch[i % batch.len()];
            // The future completes without waiting: poll it once.
            let fut = throttled.notify(a);
            black_box(futures_now(fut))
        })
    });
    group.finish();

    // Decisions per second over one second of calls, as a plain figure.
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < Duration::from_secs(1) {
        for a in &batch {
            black_box(futures_now(throttled.notify(a)));
            n += 1;
        }
    }
    println!("throttle decisions per second: {:.2} million", n as f64 / started.elapsed().as_secs_f64() / 1e6);
}

/// Polls a future that is known not to wait, without a runtime round trip.
fn futures_now<F: std::future::Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("future waited"),
    }
}

/// `notify_latency` again with the Prometheus recorder the reference service installs. Last in the group:
/// a global recorder cannot be uninstalled, and the dispatcher registers its metric handles when built, so
/// the stacks are built after the install.
fn notify_latency_with_metrics(c: &mut Criterion) {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .expect("the only recorder of this bench binary");
    resee_ops_core::telemetry::describe();
    let rt = runtime();
    let batch = alerts(4096);
    for (label, capacity) in [
        ("notify p-latency, queue with room, Prometheus recorder", 1 << 20),
        ("notify p-latency, queue full, Prometheus recorder", 16),
    ] {
        let d = rt.block_on(async { slow_stack(capacity) });
        notify_tail_latency(&rt, label, &d, &batch, 200_000);
        rt.block_on(d.shutdown(Duration::ZERO));
    }
    let d = rt.block_on(async { slow_stack(1 << 22) });
    bench_notify(c, &rt, "notify via dispatcher+throttle (5 s receiver), Prometheus recorder", &d, &batch);
    rt.block_on(d.shutdown(Duration::ZERO));
    // The figures above include real recording: the recorder saw the accepted and the dropped alerts.
    let text = handle.render();
    let value = |prefix: &str| {
        text.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
    };
    let accepted = value("resee_ops_alerts_accepted_total ").unwrap_or(0.0);
    let dropped = value("resee_ops_alerts_dropped_total{reason=\"queue_full\"}").unwrap_or(0.0);
    assert!(accepted > 0.0 && dropped > 0.0, "the recorder recorded nothing:\n{text}");
    println!("recorded by the Prometheus recorder: {accepted} accepted, {dropped} dropped (queue full)");
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = notify_latency, throttle_decisions, notify_latency_with_metrics
}
criterion_main!(benches);
