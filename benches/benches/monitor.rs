//! Health monitor: the CPU cost of one cycle (run the registry, damp, cache, decide alerts) and of answering
//! an endpoint from the cache, with in-memory probes so only our own work is measured.

use resee_ops_benches::runtime;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use resee_ops_core::testing::{RecordingNotifier, StaticProbe};
use resee_ops_core::{CheckGroup, HealthRegistry, ProbeOutcome, Registration};
use resee_ops_monitor::HealthMonitor;

/// `n` probes, one in ten failing (so damping and alert decisions do real work).
fn monitor(n: usize) -> HealthMonitor {
    let registry = (0..n).fold(HealthRegistry::new(), |r, i| {
        let outcome = if i % 10 == 0 {
            ProbeOutcome::down("connection refused")
        } else {
            ProbeOutcome::up().with_observed(1.5, "ms")
        };
        r.with_registration(Registration::new(StaticProbe::new(format!("probe-{i}"), outcome)))
    });
    HealthMonitor::builder(registry).with_notifier(Arc::new(RecordingNotifier::new())).build().expect("monitor")
}

fn cycle(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("monitor_cycle");
    for n in [5, 50] {
        let m = monitor(n);
        rt.block_on(m.run_once());
        group.bench_with_input(BenchmarkId::from_parameter(n), &m, |b, m| {
            b.to_async(&rt).iter(|| async { black_box(m.run_once().await) });
        });
    }
    group.finish();
}

fn cached_report(c: &mut Criterion) {
    let rt = runtime();
    let m = monitor(50);
    rt.block_on(m.run_once());
    c.bench_function("cached_readiness_report_50_as_json", |b| {
        b.iter(|| {
            let report = m.report(CheckGroup::Readiness).expect("cached");
            black_box(serde_json::to_vec(&report).expect("json"))
        });
    });
}

criterion_group!(benches, cycle, cached_report);
criterion_main!(benches);
