//! DST oracle: the scheduler on a faked clock (paused Tokio time) across both DST changes of 2026 in
//! Europe/Berlin, America/New_York, Australia/Sydney (southern hemisphere: the clocks go back in April and
//! forward in October) and Asia/Seoul (no DST), checked against an independent computation with chrono-tz.
//!
//! The rule checked (croner's, and Vixie cron's for a fixed-time job): a job fires exactly once per local
//! day, at its wall-clock time; when that time does not exist (spring forward) it fires once at the first
//! instant after the gap; when it exists twice (fall back) it fires once, at its first occurrence. Never
//! twice, never skipped. After every run the next-run status and the `resee_ops_scheduler_next_run_timestamp_seconds`
//! gauge name the next of those instants.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use resee_ops_core::schedule::{Job, JobContext, JobPolicy, Schedule, Scheduler};
use resee_ops_core::telemetry::SCHEDULER_NEXT_RUN;
use resee_ops_core::testing::TokioClock;
use resee_ops_core::{Clock, SharedClock};

/// The instant a daily `mm hh * * *` job fires on local date `day` in `tz`, computed with chrono-tz alone.
fn oracle(tz: Tz, day: NaiveDate, hh: u32, mm: u32) -> DateTime<Utc> {
    let wall = NaiveDateTime::new(day, NaiveTime::from_hms_opt(hh, mm, 0).unwrap());
    match tz.from_local_datetime(&wall) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        // Repeated (fall back): the first occurrence.
        LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
        // In the gap (spring forward): the first wall-clock minute after it.
        LocalResult::None => {
            let mut m = wall;
            loop {
                m += chrono::Duration::minutes(1);
                if let Some(t) = tz.from_local_datetime(&m).earliest() {
                    return t.with_timezone(&Utc);
                }
            }
        }
    }
}

/// What the wall-clock time `hh:mm` is on `day` in `tz`.
#[derive(Debug, PartialEq)]
enum Kind {
    Normal,
    Gap,
    Repeated,
}

fn kind(tz: Tz, day: NaiveDate, hh: u32, mm: u32) -> Kind {
    match tz.from_local_datetime(&day.and_hms_opt(hh, mm, 0).unwrap()) {
        LocalResult::Single(_) => Kind::Normal,
        LocalResult::Ambiguous(..) => Kind::Repeated,
        LocalResult::None => Kind::Gap,
    }
}

fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// A job that records when it started.
#[derive(Debug, Clone)]
struct Recorder {
    name: String,
    clock: SharedClock,
    started: Arc<Mutex<Vec<DateTime<Utc>>>>,
}

#[async_trait]
impl Job for Recorder {
    fn name(&self) -> &str {
        &self.name
    }
    async fn run(&self, _ctx: &JobContext) -> resee_ops_core::Result<()> {
        self.started.lock().unwrap().push(self.clock.now());
        Ok(())
    }
}

/// The 2026 DST change days of each zone: (spring forward, fall back). Seoul has none: Berlin's days are used.
const ZONES: [(&str, &str, &str); 4] = [
    ("Europe/Berlin", "2026-03-29", "2026-10-25"),
    ("America/New_York", "2026-03-08", "2026-11-01"),
    ("Australia/Sydney", "2026-10-04", "2026-04-05"),
    ("Asia/Seoul", "2026-03-29", "2026-10-25"),
];

#[test]
fn the_change_days_are_what_the_test_thinks() {
    for (zone, spring, fall) in ZONES {
        let tz: Tz = zone.parse().unwrap();
        let (gap, repeated) =
            if zone == "Asia/Seoul" { (Kind::Normal, Kind::Normal) } else { (Kind::Gap, Kind::Repeated) };
        let (gap_hh, rep_hh) = match zone {
            "America/New_York" => (2, 1),
            _ => (2, 2),
        };
        assert_eq!(kind(tz, date(spring), gap_hh, 30), gap, "{zone} {spring}");
        assert_eq!(kind(tz, date(fall), rep_hh, 30), repeated, "{zone} {fall}");
        // 03:00 itself exists exactly once on every day of the year in all four zones.
        let mut day = date("2026-01-01");
        while day < date("2027-01-01") {
            assert_eq!(kind(tz, day, 3, 0), Kind::Normal, "{zone} {day}");
            day = day.succ_opt().unwrap();
        }
    }
}

/// The schedule alone, a whole year of every zone: `upcoming` agrees with the oracle on every day, for the
/// seed's 03:00 and for the two times that fall into the gap or the repeated hour somewhere.
#[test]
fn a_year_of_daily_fire_times_matches_the_oracle() {
    for (zone, _, _) in ZONES {
        let tz: Tz = zone.parse().unwrap();
        for (hh, mm) in [(3, 0), (2, 30), (1, 30)] {
            let s = Schedule::new(&format!("{mm} {hh} * * *"), zone).unwrap();
            let start = date("2026-01-01");
            let from = tz.from_local_datetime(&start.and_hms_opt(0, 0, 0).unwrap()).unwrap().with_timezone(&Utc);
            let got = s.upcoming(from, 365);
            for (i, t) in got.iter().enumerate() {
                let day = start + chrono::Duration::days(i as i64);
                assert_eq!(t.with_timezone(&Utc), oracle(tz, day, hh, mm), "{zone} {hh}:{mm:02} on {day}");
            }
            // And backwards: the last fire time at or before an instant is the same one.
            for pair in got.windows(2) {
                let (a, b) = (pair[0].with_timezone(&Utc), pair[1].with_timezone(&Utc));
                assert_eq!(s.previous_at_or_before(a), Some(a), "{zone} {hh}:{mm:02} at {a}");
                assert_eq!(
                    s.previous_at_or_before(b - chrono::Duration::seconds(1)),
                    Some(a),
                    "{zone} {hh}:{mm:02} before {b}"
                );
            }
        }
    }
}

/// A process (re)started inside the repeated hour, after the first occurrence has run, does not run the job
/// again at the second occurrence: the next run is the next day's.
#[test]
fn a_restart_inside_the_repeated_hour_does_not_run_again() {
    for (zone, hh, fall) in [
        ("America/New_York", 1, "2026-11-01"),
        ("Europe/Berlin", 2, "2026-10-25"),
        ("Australia/Sydney", 2, "2026-04-05"),
    ] {
        let tz: Tz = zone.parse().unwrap();
        let s = Schedule::new(&format!("30 {hh} * * *"), zone).unwrap();
        let first = oracle(tz, date(fall), hh, 30);
        let next_day = oracle(tz, date(fall).succ_opt().unwrap(), hh, 30);
        // 40 minutes after the first 02:30 is 02:10 of the repeated hour, before the second 02:30.
        let restart = first + chrono::Duration::minutes(40);
        assert_eq!(restart.with_timezone(&tz).format("%H:%M").to_string(), format!("{:02}:10", hh), "{zone}");
        assert_eq!(s.next_after(restart), Some(next_day), "{zone}");
        assert_eq!(s.next_after(first), Some(next_day), "{zone}: right after the run");
        assert_eq!(s.next_after(first - chrono::Duration::seconds(1)), Some(first), "{zone}");
    }
}

/// The gauge's current value for `job` (the snapshot resets gauges, so only this file's single scheduler
/// test reads it).
fn next_run_gauge(snapshotter: &metrics_util::debugging::Snapshotter, job: &str) -> Option<f64> {
    snapshotter.snapshot().into_vec().into_iter().find_map(|(key, _, _, value)| {
        let k = key.key();
        let ours = k.name() == SCHEDULER_NEXT_RUN && k.labels().any(|l| l.key() == "job" && l.value() == job);
        match value {
            DebugValue::Gauge(v) if ours => Some(v.into_inner()),
            _ => None,
        }
    })
}

async fn sleep_until(clock: &TokioClock, t: DateTime<Utc>) {
    let d = (t - clock.now()).to_std().unwrap_or(Duration::ZERO);
    tokio::time::sleep(d).await;
}

/// The scheduler itself, on paused time: for each zone, each change day and each of 03:00, 02:30 and 01:30,
/// five local days around the change run exactly once each at the oracle's instant, and after each run the
/// status and the gauge name the next one.
#[tokio::test(start_paused = true)]
async fn the_scheduler_fires_once_per_local_day_across_both_changes() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().expect("the only recorder of this test binary");

    let mut checked = 0;
    for (zone, spring, fall) in ZONES {
        let tz: Tz = zone.parse().unwrap();
        for change in [spring, fall] {
            for (hh, mm) in [(3, 0), (2, 30), (1, 30)] {
                let name = format!("{zone} {change} {hh}:{mm:02}");
                let first_day = date(change) - chrono::Duration::days(2);
                let days: Vec<NaiveDate> = (0..6).map(|i| first_day + chrono::Duration::days(i)).collect();
                let expected: Vec<DateTime<Utc>> = days.iter().map(|d| oracle(tz, *d, hh, mm)).collect();
                // Start at local midnight two days before the change.
                let start = tz.from_local_datetime(&first_day.and_hms_opt(0, 0, 0).unwrap()).unwrap();
                let clock = TokioClock::at(start.with_timezone(&Utc));
                let job = Recorder { name: name.clone(), clock: clock.shared(), started: Arc::default() };
                let handle = Scheduler::new()
                    .with_clock(clock.shared())
                    .with_job(
                        job.clone(),
                        Schedule::new(&format!("{mm} {hh} * * *"), zone).unwrap(),
                        JobPolicy::default(),
                    )
                    .start();
                tokio::task::yield_now().await;
                assert_eq!(handle.status()[0].next_run, Some(expected[0]), "{name}: first next run");
                assert_eq!(next_run_gauge(&snapshotter, &name), Some(expected[0].timestamp() as f64), "{name}");

                // Five runs; the sixth is only the next run named after the fifth.
                for k in 0..5 {
                    // Just before the slot nothing has run yet; just after, it ran once.
                    sleep_until(&clock, expected[k] - chrono::Duration::seconds(1)).await;
                    assert_eq!(job.started.lock().unwrap().len(), k, "{name}: early run before {}", expected[k]);
                    sleep_until(&clock, expected[k] + chrono::Duration::seconds(1)).await;
                    let started = job.started.lock().unwrap().clone();
                    assert_eq!(started.len(), k + 1, "{name}: {started:?}");
                    assert_eq!(started[k], expected[k], "{name}: run {k} at the oracle's instant");
                    let status = handle.status()[0].clone();
                    assert_eq!(status.next_run, Some(expected[k + 1]), "{name}: next run after run {k}");
                    assert_eq!(
                        next_run_gauge(&snapshotter, &name),
                        Some(expected[k + 1].timestamp() as f64),
                        "{name}: the gauge after run {k}"
                    );
                }
                // Nothing else until just before the sixth: in particular no second run in a repeated hour.
                sleep_until(&clock, expected[5] - chrono::Duration::seconds(1)).await;
                let started = job.started.lock().unwrap().clone();
                assert_eq!(started.len(), 5, "{name}: {started:?}");
                // One run per local day, each on its own local date.
                let local_days: Vec<NaiveDate> = started.iter().map(|t| t.with_timezone(&tz).date_naive()).collect();
                assert_eq!(local_days, days[..5], "{name}");
                handle.shutdown(Duration::from_secs(1)).await;
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 24);
}
