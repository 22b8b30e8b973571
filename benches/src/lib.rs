//! Benchmarks of resee-ops: see `benches/benches/` and the scripts in `benches/scripts/`.
//!
//! This library holds what the benches share.

use std::time::Duration;

/// The runtime every bench uses: two workers, as many as the machine has cores.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

/// Prints p50, p99, p99.9 and the maximum of single-call timings measured in one run (the targets are
/// tail latencies, which criterion's mean and median do not show).
///
/// ```
/// use std::time::Duration;
/// let line = resee_ops_benches::percentiles("demo", (1..=1000).map(Duration::from_micros).collect());
/// assert!(line.contains("p50=501µs p99=991µs"), "{line}");
/// ```
pub fn percentiles(label: &str, mut samples: Vec<Duration>) -> String {
    if samples.is_empty() {
        return format!("{label}: no samples");
    }
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    let line = format!(
        "{label}: n={} p50={:?} p99={:?} p99.9={:?} max={:?}",
        samples.len(),
        at(0.50),
        at(0.99),
        at(0.999),
        samples[samples.len() - 1]
    );
    println!("{line}");
    line
}

/// Times `calls` single `notify` calls on `dispatcher` (cycling through `alerts`) one by one, and prints
/// their percentiles under `label`.
pub fn notify_tail_latency(
    rt: &tokio::runtime::Runtime,
    label: &str,
    dispatcher: &resee_ops_core::Dispatcher,
    alerts: &[resee_ops_core::Alert],
    calls: usize,
) -> String {
    use resee_ops_core::Notifier;
    let samples = rt.block_on(async {
        let mut samples = Vec::with_capacity(calls);
        for i in 0..calls {
            let alert = &alerts[i % alerts.len()];
            let started = std::time::Instant::now();
            std::hint::black_box(dispatcher.notify(alert).await);
            samples.push(started.elapsed());
        }
        samples
    });
    percentiles(label, samples)
}

/// A criterion bench `name` of `notify` on `dispatcher`, cycling through `alerts`.
pub fn bench_notify(
    c: &mut criterion::Criterion,
    rt: &tokio::runtime::Runtime,
    name: &str,
    dispatcher: &resee_ops_core::Dispatcher,
    alerts: &[resee_ops_core::Alert],
) {
    use resee_ops_core::Notifier;
    let mut i = 0usize;
    c.bench_function(name, |b| {
        b.to_async(rt).iter(|| {
            i = i.wrapping_add(1);
            let alert = &alerts[i % alerts.len()];
            async move { std::hint::black_box(dispatcher.notify(alert).await) }
        })
    });
}
