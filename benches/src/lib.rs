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
