//! resee-ops-logging: the cost of one event on the caller's thread (target: p99 ≤ 1 µs for a JSON event
//! with 5 fields) and sustained lines per second to disk, against `tracing-appender`'s non-blocking writer
//! with `tracing-subscriber`'s JSON formatter.
//!
//! Besides criterion's figures, it prints p50/p99/p99.9 of single events measured in one run, and the
//! medians and ratio of three interleaved sustained runs of each writer.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use resee_ops_benches::percentiles;
use resee_ops_logging::{LogFormat, LogGuard, Logging, LoggingConfig};
use tracing::Dispatch;
use tracing_subscriber::layer::SubscriberExt;

/// One JSON event with five fields, as a service logs a served request.
fn event(i: u64) {
    tracing::info!(
        target: "resee::http",
        method = "GET",
        path = "/api/v1/reviews",
        status = 200u64,
        duration_ms = 12.5,
        request = i,
        "request served"
    );
}

fn ours(dir: &std::path::Path, lossless: bool) -> (Dispatch, LogGuard) {
    let config = LoggingConfig::new(dir)
        .with_format(LogFormat::Json)
        .with_console(false)
        .with_lossless(lossless)
        .with_queue_capacity(64 * 1024);
    Logging::new(config).build().expect("logging")
}

fn appender(dir: &std::path::Path, lossy: bool) -> (Dispatch, tracing_appender::non_blocking::WorkerGuard) {
    let file = tracing_appender::rolling::never(dir, "general.log");
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(lossy)
        .buffered_lines_limit(64 * 1024)
        .finish(file);
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("info"))
        .with(tracing_subscriber::fmt::layer().json().with_writer(writer));
    (Dispatch::new(subscriber), guard)
}

/// Prints the percentiles of 200,000 single events on `dispatch`, then runs criterion's bench `name`.
fn latency(c: &mut Criterion, dispatch: &Dispatch, label: &str, name: &str) {
    tracing::dispatcher::with_default(dispatch, || {
        for i in 0..10_000 {
            event(i); // warm up: thread-locals, callsite interest, page cache
        }
        let samples = (0..200_000u64)
            .map(|i| {
                let started = Instant::now();
                event(black_box(i));
                started.elapsed()
            })
            .collect();
        percentiles(label, samples);
        c.bench_function(name, |b| {
            let mut i = 0;
            b.iter(|| {
                i += 1;
                event(black_box(i))
            })
        });
    });
}

fn caller_latency(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (dispatch, guard) = ours(dir.path(), false);
    latency(
        c,
        &dispatch,
        "resee-ops-logging: one JSON event with 5 fields, caller's thread",
        "logging/json event, 5 fields (caller)",
    );
    let dropped: u64 = guard.stats().iter().map(|s| s.dropped).sum();
    println!("(lines dropped because the writer fell behind during the latency runs: {dropped})");
    drop(guard);

    let dir = tempfile::tempdir().unwrap();
    let (dispatch, guard) = appender(dir.path(), true);
    latency(
        c,
        &dispatch,
        "tracing-appender non-blocking + fmt json: same event, caller's thread",
        "logging/json event, 5 fields (caller), tracing-appender",
    );
    drop(guard);
}

/// Time to write `lines` events and have them all on disk (lossless on both sides).
fn sustained_ours(lines: u64) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let (dispatch, guard) = ours(dir.path(), true);
    let started = Instant::now();
    tracing::dispatcher::with_default(&dispatch, || (0..lines).for_each(event));
    assert!(guard.shutdown(Duration::from_secs(120)));
    started.elapsed()
}

fn sustained_appender(lines: u64) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let (dispatch, guard) = appender(dir.path(), false);
    let started = Instant::now();
    tracing::dispatcher::with_default(&dispatch, || (0..lines).for_each(event));
    drop(guard); // flushes and joins the worker
    started.elapsed()
}

fn sustained(c: &mut Criterion) {
    const LINES: u64 = 300_000;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        a.push(sustained_ours(LINES));
        b.push(sustained_appender(LINES));
    }
    a.sort();
    b.sort();
    let rate = |d: Duration| LINES as f64 / d.as_secs_f64();
    println!(
        "sustained, {LINES} JSON lines to disk (median of 3 interleaved): resee-ops-logging {:.0} lines/s ({:?}), \
         tracing-appender {:.0} lines/s ({:?}), ratio {:.2}",
        rate(a[1]),
        a[1],
        rate(b[1]),
        b[1],
        rate(a[1]) / rate(b[1])
    );

    let mut group = c.benchmark_group("logging/sustained to disk");
    group.sample_size(10).throughput(Throughput::Elements(50_000));
    group.bench_function("resee-ops-logging", |bench| {
        bench.iter_custom(|iters| (0..iters).map(|_| sustained_ours(50_000)).sum())
    });
    group.bench_function("tracing-appender", |bench| {
        bench.iter_custom(|iters| (0..iters).map(|_| sustained_appender(50_000)).sum())
    });
    group.finish();
}

/// `RESEE_LOGGING_EVENTS=N`: instead of the benches, logs 10,000 warm-up events and then `N` measured events
/// with each writer, each measured batch inside its own function, for `benches/scripts/logging_callgrind.sh`
/// (which counts the instructions of the caller's thread inside those functions: a figure the machine's load
/// does not change).
fn instructions(events: u64) {
    // Different bodies (the label), else the linker folds the two identical functions into one symbol.
    #[inline(never)]
    fn measured_resee_ops_logging(events: u64) {
        black_box("resee-ops-logging");
        (0..events).for_each(|i| event(black_box(i)));
    }
    #[inline(never)]
    fn measured_tracing_appender(events: u64) {
        black_box("tracing-appender");
        (0..events).for_each(|i| event(black_box(i)));
    }
    let dir = tempfile::tempdir().unwrap();
    let (dispatch, guard) = ours(dir.path(), true);
    tracing::dispatcher::with_default(&dispatch, || {
        (0..10_000).for_each(event);
        measured_resee_ops_logging(events);
    });
    drop(guard);
    let (dispatch, guard) = appender(dir.path(), false);
    tracing::dispatcher::with_default(&dispatch, || {
        (0..10_000).for_each(event);
        measured_tracing_appender(events);
    });
    drop(guard);
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = caller_latency, sustained
}

fn main() {
    if let Some(events) = std::env::var("RESEE_LOGGING_EVENTS").ok().and_then(|n| n.parse().ok()) {
        instructions(events);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
