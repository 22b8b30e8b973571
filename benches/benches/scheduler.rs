//! The scheduler's idle cost with 10 jobs (not a criterion bench: the figures are per hour).
//!
//! 1. Simulated: a week of paused Tokio time with 10 no-op jobs on mixed schedules (daily in three zones,
//!    hourly, every 5 and 15 minutes, weekly, monthly): driver wake-ups and job runs per hour, and the
//!    single-threaded run's CPU time per simulated hour (thread CPU time from `/proc/thread-self/schedstat`).
//! 2. Real time: 10 daily jobs that do not fire, on the service's runtime (2 workers), for 90 s: the
//!    process's CPU time (all threads, `/proc/self/task/*/schedstat`) and context switches (wake-ups),
//!    extrapolated to an hour.
//!
//! ```text
//! cargo bench -p resee-ops-benches --bench scheduler
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use resee_ops_core::schedule::{Job, JobContext, JobPolicy, Schedule, Scheduler};
use resee_ops_core::testing::TokioClock;

#[derive(Debug, Clone)]
struct Noop(Arc<AtomicU64>);

#[async_trait]
impl Job for Noop {
    fn name(&self) -> &str {
        "noop"
    }
    async fn run(&self, _ctx: &JobContext) -> resee_ops_core::Result<()> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

const MIXED: [(&str, &str); 10] = [
    ("0 3 * * *", "Asia/Seoul"),
    ("30 2 * * *", "America/New_York"),
    ("0 4 * * *", "Europe/Berlin"),
    ("0 * * * *", "UTC"),
    ("*/15 * * * *", "UTC"),
    ("*/5 * * * *", "UTC"),
    ("0 */6 * * *", "UTC"),
    ("5 4 * * SUN", "Asia/Seoul"),
    ("0 0 1 * *", "UTC"),
    ("0 9 * * MON-FRI", "Asia/Seoul"),
];

/// CPU time in nanoseconds of the threads listed (first field of `schedstat`).
fn schedstat_ns(paths: impl Iterator<Item = std::path::PathBuf>) -> u64 {
    paths
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .filter_map(|s| s.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()))
        .sum()
}

fn thread_cpu_ns() -> u64 {
    schedstat_ns(std::iter::once("/proc/thread-self/schedstat".into()))
}

fn process_cpu_ns() -> u64 {
    let tasks = std::fs::read_dir("/proc/self/task")
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path().join("schedstat")).collect::<Vec<_>>());
    schedstat_ns(tasks.unwrap_or_default().into_iter())
}

/// Voluntary + involuntary context switches of every thread of this process.
fn context_switches() -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else { return 0 };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("status")).ok())
        .map(|s| {
            s.lines()
                .filter(|l| l.starts_with("voluntary_ctxt_switches:") || l.starts_with("nonvoluntary_ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1).and_then(|n| n.parse::<u64>().ok()))
                .sum::<u64>()
        })
        .sum()
}

fn simulated() {
    let days = 7u64;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
    let runs = Arc::new(AtomicU64::new(0));
    let (wakeups, cpu) = rt.block_on(async {
        let clock = TokioClock::at("2026-12-01T00:00:30Z".parse().unwrap());
        let mut scheduler = Scheduler::new().with_clock(clock.shared());
        for (expr, zone) in MIXED {
            scheduler =
                scheduler.with_job(Noop(runs.clone()), Schedule::new(expr, zone).unwrap(), JobPolicy::default());
        }
        let cpu0 = thread_cpu_ns();
        let handle = scheduler.start();
        tokio::time::sleep(Duration::from_secs(days * 86_400)).await;
        let cpu = thread_cpu_ns() - cpu0;
        let wakeups = handle.wakeups();
        handle.shutdown(Duration::from_secs(1)).await;
        (wakeups, cpu)
    });
    let hours = (days * 24) as f64;
    println!(
        "scheduler, 10 mixed jobs, {days} simulated days: {:.1} driver wake-ups/h, {:.1} job runs/h, {:.0} µs CPU/h (single thread, runs included)",
        wakeups as f64 / hours,
        runs.load(Ordering::Relaxed) as f64 / hours,
        cpu as f64 / 1_000.0 / hours
    );
}

fn real_time() {
    let seconds = 90u64;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let runs = Arc::new(AtomicU64::new(0));
    let (cpu, switches, wakeups) = rt.block_on(async {
        let mut scheduler = Scheduler::new();
        for i in 0..10 {
            // Daily jobs at minute i of 03:00 in Seoul: none is due during the measurement (unless run
            // between 03:00 and 03:10 KST).
            let expr = format!("{i} 3 * * *");
            scheduler = scheduler.with_job(
                Noop(runs.clone()),
                Schedule::new(&expr, "Asia/Seoul").unwrap(),
                JobPolicy::default(),
            );
        }
        let handle = scheduler.start();
        tokio::time::sleep(Duration::from_millis(200)).await; // settle: the driver's first pass
        let (cpu0, cs0, w0) = (process_cpu_ns(), context_switches(), handle.wakeups());
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let (cpu1, cs1, w1) = (process_cpu_ns(), context_switches(), handle.wakeups());
        handle.shutdown(Duration::from_secs(1)).await;
        (cpu1 - cpu0, cs1 - cs0, w1 - w0)
    });
    let per_hour = 3600.0 / seconds as f64;
    println!(
        "scheduler, 10 idle daily jobs, {seconds} s real time on 2 workers: {:.0} driver wake-ups/h, {:.0} context switches/h (whole process, the bench's own sleeping main task included), {:.1} ms CPU/h",
        wakeups as f64 * per_hour,
        switches as f64 * per_hour,
        cpu as f64 / 1e6 * per_hour
    );
}

fn main() {
    // `cargo bench` passes `--bench` and maybe a filter; this bench has one mode.
    simulated();
    real_time();
}
