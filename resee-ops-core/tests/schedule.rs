//! Schedules and the scheduler on paused Tokio time: the DST rules, missed runs, overlap, retries inside the
//! slot, cancellation.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use resee_ops_core::schedule::{
    Job, JobContext, JobPolicy, MissedRunPolicy, RunOutcome, Schedule, Scheduler, SchedulerHandle,
};
use resee_ops_core::testing::{RecordingNotifier, TokioClock};
use resee_ops_core::{Clock, Error, ErrorKind, Severity, SharedClock};

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn rfc(schedule: &Schedule, after: &str, n: usize) -> Vec<String> {
    schedule.upcoming(t(after), n).iter().map(|d| d.to_rfc3339()).collect()
}

// ---- The DST rules, on the schedule itself ----

#[test]
fn spring_forward_gap_fires_once_at_the_first_instant_after_it() {
    let s = Schedule::new("30 2 * * *", "America/New_York").unwrap();
    assert_eq!(
        rfc(&s, "2027-03-13T12:00:00Z", 3),
        ["2027-03-14T03:00:00-04:00", "2027-03-15T02:30:00-04:00", "2027-03-16T02:30:00-04:00"]
    );
    let berlin = Schedule::new("30 2 * * *", "Europe/Berlin").unwrap();
    assert_eq!(rfc(&berlin, "2025-03-29T12:00:00Z", 2), ["2025-03-30T03:00:00+02:00", "2025-03-31T02:30:00+02:00"]);
}

#[test]
fn fall_back_repeated_time_fires_once_at_its_first_occurrence() {
    let s = Schedule::new("30 1 * * *", "America/New_York").unwrap();
    assert_eq!(
        rfc(&s, "2027-11-06T12:00:00Z", 3),
        ["2027-11-07T01:30:00-04:00", "2027-11-08T01:30:00-05:00", "2027-11-09T01:30:00-05:00"]
    );
}

#[test]
fn hourly_and_finer_keep_their_period_in_real_time_across_both_changes() {
    for (expr, step, from) in [
        ("0 * * * *", 3600, "2027-11-07T03:30:00Z"),
        ("0 * * * *", 3600, "2027-03-14T04:30:00Z"),
        ("*/15 * * * *", 900, "2027-11-07T04:50:00Z"),
        ("*/15 * * * *", 900, "2027-03-14T06:20:00Z"),
    ] {
        let s = Schedule::new(expr, "America/New_York").unwrap();
        let times = s.upcoming(t(from), 8);
        for pair in times.windows(2) {
            assert_eq!((pair[1] - pair[0]).num_seconds(), step, "{expr} from {from}: {times:?}");
        }
    }
    // The repeated hour is there twice, once per offset.
    let hourly = Schedule::new("0 * * * *", "America/New_York").unwrap();
    let fall = rfc(&hourly, "2027-11-07T04:30:00Z", 3);
    assert_eq!(fall, ["2027-11-07T01:00:00-04:00", "2027-11-07T01:00:00-05:00", "2027-11-07T02:00:00-05:00"]);
}

#[test]
fn seoul_has_no_dst_and_the_seed_time_is_18_utc() {
    let s = Schedule::new("0 3 * * *", "Asia/Seoul").unwrap();
    assert_eq!(s.next_after(t("2026-12-01T18:00:00Z")), Some(t("2026-12-02T18:00:00Z")));
    assert_eq!(s.period_at(t("2026-12-01T00:00:00Z")), Some(Duration::from_secs(86_400)));
}

// ---- The scheduler on paused time ----

/// (slot, started, attempt) of one attempt.
type Attempt = (DateTime<Utc>, DateTime<Utc>, u32);

/// A job that records when it ran, and fails, sleeps or waits for cancellation as scripted.
#[derive(Debug, Clone)]
struct Probe {
    name: &'static str,
    clock: SharedClock,
    runs: Arc<Mutex<Vec<Attempt>>>,
    script: Arc<Mutex<Vec<Result<(), Error>>>>,
    takes: Duration,
    last_success: Option<DateTime<Utc>>,
    cancellable: bool,
}

impl Probe {
    fn new(clock: SharedClock) -> Self {
        Self {
            name: "probe",
            clock,
            runs: Arc::default(),
            script: Arc::default(),
            takes: Duration::ZERO,
            last_success: None,
            cancellable: true,
        }
    }
    fn runs(&self) -> Vec<Attempt> {
        self.runs.lock().unwrap().clone()
    }
    fn started(&self) -> Vec<DateTime<Utc>> {
        self.runs().into_iter().map(|r| r.1).collect()
    }
}

#[async_trait]
impl Job for Probe {
    fn name(&self) -> &str {
        self.name
    }
    async fn run(&self, ctx: &JobContext) -> resee_ops_core::Result<()> {
        self.runs.lock().unwrap().push((ctx.slot(), self.clock.now(), ctx.attempt()));
        if !self.takes.is_zero() {
            if self.cancellable {
                tokio::select! {
                    () = tokio::time::sleep(self.takes) => {}
                    () = ctx.cancelled() => return Err(Error::new(ErrorKind::Closed, "cancelled")),
                }
            } else {
                tokio::time::sleep(self.takes).await;
            }
        }
        let mut script = self.script.lock().unwrap();
        if script.is_empty() { Ok(()) } else { script.remove(0) }
    }
    async fn last_success(&self) -> resee_ops_core::Result<Option<DateTime<Utc>>> {
        Ok(self.last_success)
    }
}

fn start(clock: &TokioClock, job: &Probe, expr: &str, zone: &str, policy: JobPolicy) -> SchedulerHandle {
    Scheduler::new()
        .with_clock(clock.shared())
        .with_job(job.clone(), Schedule::new(expr, zone).unwrap(), policy)
        .start()
}

async fn pass(d: Duration) {
    tokio::time::sleep(d).await;
}

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

#[tokio::test(start_paused = true)]
async fn a_daily_job_fires_by_the_dst_rules() {
    let clock = TokioClock::at(t("2027-03-13T12:00:00Z"));
    let job = Probe::new(clock.shared());
    let handle = start(&clock, &job, "30 2 * * *", "America/New_York", JobPolicy::default());
    pass(3 * DAY).await;
    // The gap day at 03:00 EDT (07:00Z), then 02:30 EDT (06:30Z); each exactly once.
    assert_eq!(job.started(), [t("2027-03-14T07:00:00Z"), t("2027-03-15T06:30:00Z"), t("2027-03-16T06:30:00Z")]);
    handle.shutdown(Duration::from_secs(60)).await;

    let clock = TokioClock::at(t("2027-11-06T12:00:00Z"));
    let job = Probe::new(clock.shared());
    let handle = start(&clock, &job, "30 1 * * *", "America/New_York", JobPolicy::default());
    pass(2 * DAY).await;
    // 01:30 EDT on the fall-back night (05:30Z), not again at 01:30 EST (06:30Z).
    assert_eq!(job.started(), [t("2027-11-07T05:30:00Z"), t("2027-11-08T06:30:00Z")]);
    handle.shutdown(Duration::from_secs(60)).await;
}

#[tokio::test(start_paused = true)]
async fn an_hourly_job_keeps_one_hour_in_real_time_on_the_fall_back_night() {
    let clock = TokioClock::at(t("2027-11-07T03:30:00Z"));
    let job = Probe::new(clock.shared());
    let handle = start(&clock, &job, "0 * * * *", "America/New_York", JobPolicy::default());
    pass(5 * HOUR).await;
    let started = job.started();
    assert_eq!(started.len(), 5, "{started:?}");
    for pair in started.windows(2) {
        assert_eq!(pair[1] - pair[0], chrono::Duration::hours(1));
    }
    handle.shutdown(Duration::from_secs(60)).await;
}

#[tokio::test(start_paused = true)]
async fn missed_run_policy_decides_from_the_last_success() {
    let now = t("2026-12-01T06:00:00Z"); // 15:00 in Seoul: today's 03:00 slot has passed
    let cases = [
        (MissedRunPolicy::RunOnce, None, 1, "no success on record: run at start"),
        (MissedRunPolicy::RunOnce, Some(now - chrono::Duration::hours(12)), 0, "today's run happened"),
        (MissedRunPolicy::RunOnce, Some(now - chrono::Duration::hours(24)), 0, "within one period plus grace"),
        (MissedRunPolicy::RunOnce, Some(now - chrono::Duration::hours(26)), 1, "older than a day plus an hour"),
        (MissedRunPolicy::Skip, None, 0, "skip never catches up"),
    ];
    for (policy, last, expected, why) in cases {
        let clock = TokioClock::at(now);
        let mut job = Probe::new(clock.shared());
        job.last_success = last;
        let handle = start(&clock, &job, "0 3 * * *", "Asia/Seoul", JobPolicy::default().with_missed_runs(policy));
        pass(Duration::from_secs(60)).await;
        assert_eq!(job.runs().len(), expected, "{why}");
        let status = &handle.status()[0];
        assert_eq!(status.runs, expected as u64, "{why}");
        assert_eq!(status.next_run, Some(t("2026-12-01T18:00:00Z")), "{why}");
        if expected == 1 {
            assert_eq!(job.runs()[0].1, now, "{why}: at start");
        }
        handle.shutdown(Duration::from_secs(60)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_wake_up_after_the_slot_runs_it_once_or_skips_it() {
    // The process "sleeps" through two slots: the driver notices within its maximum sleep.
    for (policy, expected) in [(MissedRunPolicy::RunOnce, 1), (MissedRunPolicy::Skip, 0)] {
        let clock = TokioClock::at(t("2026-12-01T17:59:00Z"));
        let mut job = Probe::new(clock.shared());
        job.last_success = Some(t("2026-11-30T18:00:00Z")); // yesterday's run: nothing to catch up at start
        let handle = Scheduler::new()
            .with_clock(Arc::new(Jumping { inner: clock, jump: 2 * DAY, after: t("2026-12-01T17:59:30Z") }))
            .with_job(
                job.clone(),
                Schedule::new("0 3 * * *", "Asia/Seoul").unwrap(),
                JobPolicy::default().with_missed_runs(policy).with_missed_run_grace(Duration::from_secs(600)),
            )
            .start();
        pass(Duration::from_secs(120)).await;
        assert_eq!(job.runs().len(), expected, "{policy:?}");
        let status = &handle.status()[0];
        assert_eq!(status.skipped_missed, 1 - expected as u64);
        assert!(status.next_run.unwrap() > t("2026-12-03T18:00:00Z"), "{status:?}");
        handle.shutdown(Duration::from_secs(60)).await;
    }
}

/// A clock that jumps forward once (a suspended machine waking up).
#[derive(Debug)]
struct Jumping {
    inner: TokioClock,
    jump: Duration,
    after: DateTime<Utc>,
}

impl Clock for Jumping {
    fn now(&self) -> DateTime<Utc> {
        let now = self.inner.now();
        if now >= self.after { now + chrono::Duration::from_std(self.jump).unwrap() } else { now }
    }
}

#[tokio::test(start_paused = true)]
async fn a_run_still_going_at_the_next_slot_is_not_started_twice() {
    let clock = TokioClock::at(t("2026-12-01T00:00:30Z"));
    let mut job = Probe::new(clock.shared());
    job.takes = Duration::from_secs(150);
    let alerts = RecordingNotifier::new();
    let handle = Scheduler::new()
        .with_clock(clock.shared())
        .with_notifier(Arc::new(alerts.clone()))
        .with_job(job.clone(), Schedule::new("* * * * *", "UTC").unwrap(), JobPolicy::default())
        .start();
    pass(Duration::from_secs(300)).await;
    // Runs start at :01 (until :03:30) and :04 (until :06:30); the slots :02, :03 and :05 are skipped.
    assert_eq!(job.started(), [t("2026-12-01T00:01:00Z"), t("2026-12-01T00:04:00Z")]);
    let status = &handle.status()[0];
    assert_eq!(status.skipped_overlaps, 3);
    assert!(status.running);
    let skipped = alerts.alerts();
    assert_eq!(skipped.len(), 3);
    assert!(skipped.iter().all(|a| a.severity == Severity::Info && a.name == "job_run_skipped"));
    handle.shutdown(Duration::from_secs(60)).await;
}

#[tokio::test(start_paused = true)]
async fn retries_stay_inside_the_slot() {
    // The seed's policy: one attempt and 3 retries 5 minutes apart.
    let clock = TokioClock::at(t("2026-12-01T17:59:00Z"));
    let job = Probe::new(clock.shared());
    *job.script.lock().unwrap() = vec![Err(Error::new(ErrorKind::Unavailable, "database down")); 3];
    let seed = JobPolicy::default().with_retries(3, Duration::from_secs(300));
    let handle = start(&clock, &job, "0 3 * * *", "Asia/Seoul", seed.clone());
    pass(HOUR).await;
    let attempts: Vec<(DateTime<Utc>, u32)> = job.runs().into_iter().map(|r| (r.1, r.2)).collect();
    assert_eq!(
        attempts,
        [
            (t("2026-12-01T18:00:00Z"), 1),
            (t("2026-12-01T18:05:00Z"), 2),
            (t("2026-12-01T18:10:00Z"), 3),
            (t("2026-12-01T18:15:00Z"), 4)
        ]
    );
    let last = handle.status()[0].last_run.clone().unwrap();
    assert_eq!((last.outcome, last.attempts), (RunOutcome::Succeeded, 4));
    handle.shutdown(Duration::from_secs(60)).await;

    // An every-10-minutes job with retries 5 minutes apart gets one retry, never one at the next slot.
    let clock = TokioClock::at(t("2026-12-01T00:00:30Z"));
    let job = Probe::new(clock.shared());
    *job.script.lock().unwrap() = vec![Err(Error::new(ErrorKind::Timeout, "slow")); 4];
    let handle = start(&clock, &job, "*/10 * * * *", "UTC", seed.clone().with_retries(3, Duration::from_secs(300)));
    pass(Duration::from_secs(25 * 60 + 30)).await;
    let attempts: Vec<Attempt> = job.runs();
    assert_eq!(
        attempts,
        [
            (t("2026-12-01T00:10:00Z"), t("2026-12-01T00:10:00Z"), 1),
            (t("2026-12-01T00:10:00Z"), t("2026-12-01T00:15:00Z"), 2),
            (t("2026-12-01T00:20:00Z"), t("2026-12-01T00:20:00Z"), 1),
            (t("2026-12-01T00:20:00Z"), t("2026-12-01T00:25:00Z"), 2),
        ]
    );
    let status = &handle.status()[0];
    assert_eq!((status.failures, status.skipped_overlaps), (2, 0));
    handle.shutdown(Duration::from_secs(60)).await;
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_are_not_retried() {
    let clock = TokioClock::at(t("2026-12-01T00:00:30Z"));
    let job = Probe::new(clock.shared());
    *job.script.lock().unwrap() = vec![Err(Error::new(ErrorKind::PermissionDenied, "password refused"))];
    let handle = start(&clock, &job, "0 * * * *", "UTC", JobPolicy::default().with_retries(3, Duration::from_secs(60)));
    pass(HOUR).await;
    assert_eq!(job.runs().len(), 1);
    let last = handle.status()[0].last_run.clone().unwrap();
    assert_eq!(last.outcome, RunOutcome::Failed);
    assert!(last.error.unwrap().contains("password refused"));
    handle.shutdown(Duration::from_secs(60)).await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_a_run_finish_within_the_grace_then_cancels() {
    // Finishes within the grace.
    let clock = TokioClock::at(t("2026-12-01T00:00:59Z"));
    let mut job = Probe::new(clock.shared());
    job.takes = Duration::from_secs(30);
    let handle = start(&clock, &job, "* * * * *", "UTC", JobPolicy::default());
    pass(Duration::from_secs(5)).await;
    assert!(handle.status()[0].running);
    let report = handle.shutdown(Duration::from_secs(60)).await;
    assert_eq!((report.finished, report.cancelled, report.aborted), (1, 0, 0));

    // Cancelled after the grace: the job sees the cancellation and ends.
    let mut job = Probe::new(clock.shared());
    job.takes = Duration::from_secs(600);
    let handle = start(&TokioClock::at(t("2026-12-01T00:00:59Z")), &job, "* * * * *", "UTC", JobPolicy::default());
    pass(Duration::from_secs(5)).await;
    let before = tokio::time::Instant::now();
    let report = handle.shutdown(Duration::from_secs(60)).await;
    assert_eq!((report.finished, report.cancelled, report.aborted), (0, 1, 0));
    assert_eq!(before.elapsed().as_secs(), 60);

    // A job that ignores the cancellation is aborted.
    let mut job = Probe::new(clock.shared());
    job.takes = Duration::from_secs(600);
    job.cancellable = false;
    let handle = start(&TokioClock::at(t("2026-12-01T00:00:59Z")), &job, "* * * * *", "UTC", JobPolicy::default());
    pass(Duration::from_secs(5)).await;
    let report = handle.shutdown(Duration::from_secs(60)).await;
    assert_eq!((report.finished, report.cancelled, report.aborted), (0, 0, 1));
}

#[tokio::test(start_paused = true)]
async fn no_retry_starts_after_shutdown() {
    let clock = TokioClock::at(t("2026-12-01T00:00:59Z"));
    let job = Probe::new(clock.shared());
    *job.script.lock().unwrap() = vec![Err(Error::new(ErrorKind::Unavailable, "down")); 4];
    let handle =
        start(&clock, &job, "0 * * * *", "UTC", JobPolicy::default().with_retries(3, Duration::from_secs(300)));
    pass(Duration::from_secs(60 * 60)).await; // 01:00 attempt 1 failed, waiting to retry at 01:05 ... 00:59+1h=01:59
    let before = job.runs().len();
    let report = handle.shutdown(Duration::from_secs(60)).await;
    assert_eq!(report.aborted, 0);
    pass(HOUR).await;
    assert_eq!(job.runs().len(), before);
}

#[tokio::test(start_paused = true)]
async fn jitter_delays_runs_but_keeps_them_in_their_slot() {
    let clock = TokioClock::at(t("2026-12-01T00:00:00Z"));
    let job = Probe::new(clock.shared());
    let handle = Scheduler::new()
        .with_clock(clock.shared())
        .with_job(
            job.clone(),
            Schedule::new("0 * * * *", "UTC").unwrap().with_jitter(Duration::from_secs(600)),
            JobPolicy::default(),
        )
        .start();
    pass(10 * HOUR + Duration::from_secs(601)).await;
    let runs = job.runs();
    assert_eq!(runs.len(), 10);
    for (slot, started, _) in runs {
        let delay = (started - slot).num_seconds();
        assert!((0..=600).contains(&delay), "{slot} started {started}");
    }
    handle.shutdown(Duration::from_secs(60)).await;
}

#[test]
fn preview_lists_each_jobs_next_fire_times() {
    let clock = TokioClock::at(t("2026-12-01T00:00:00Z"));
    let mut job = Probe::new(clock.shared());
    job.name = "backup";
    let scheduler =
        Scheduler::new().with_job(job, Schedule::new("0 3 * * *", "Asia/Seoul").unwrap(), JobPolicy::default());
    let preview = scheduler.preview(t("2026-11-30T12:00:00Z"), 2);
    assert_eq!(preview[0].0, "backup");
    let times: Vec<String> = preview[0].1.iter().map(|d| d.to_rfc3339()).collect();
    assert_eq!(times, ["2026-12-01T03:00:00+09:00", "2026-12-02T03:00:00+09:00"]);
}

#[tokio::test(start_paused = true)]
async fn an_idle_scheduler_wakes_once_a_minute_whatever_the_number_of_jobs() {
    let clock = TokioClock::at(t("2026-12-01T04:00:00Z"));
    let mut scheduler = Scheduler::new().with_clock(clock.shared());
    let job = Probe::new(clock.shared());
    for _ in 0..10 {
        scheduler =
            scheduler.with_job(job.clone(), Schedule::new("0 3 * * *", "Asia/Seoul").unwrap(), JobPolicy::default());
    }
    let handle = scheduler.start();
    pass(HOUR).await;
    assert!(job.runs().is_empty());
    assert!((60..=62).contains(&handle.wakeups()), "{}", handle.wakeups());
    handle.shutdown(Duration::from_secs(1)).await;
}
