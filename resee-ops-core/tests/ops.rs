//! The one shutdown (`OpsHandle`): producers stop before the alerts are flushed, the last alerts of the
//! producers are delivered, the deadline holds whatever hangs, and what was dropped is returned. Paused time.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use resee_ops_core::prelude::*;
use resee_ops_core::schedule::MissedRunPolicy;
use resee_ops_core::testing::{RecordingNotifier, TokioClock};
use tokio::time::Instant;

/// A producer that, when stopped, sends one last alert (as the monitor's last resolution would) after
/// `takes`, or never ends when `takes` is `None`.
#[derive(Debug)]
struct LastWords {
    alerts: Dispatcher,
    takes: Option<Duration>,
}

#[async_trait]
impl Stop for LastWords {
    async fn stop(self: Box<Self>, _grace: Duration) {
        let Some(takes) = self.takes else { return std::future::pending().await };
        tokio::time::sleep(takes).await;
        self.alerts.notify(&Alert::new("last_words", Severity::Info, "Stopped")).await;
    }
}

/// A job that runs for `takes`, then sends an alert with its result (as a backup does).
#[derive(Debug)]
struct Slow {
    alerts: Dispatcher,
    takes: Duration,
}

#[async_trait]
impl Job for Slow {
    fn name(&self) -> &str {
        "slow"
    }
    async fn run(&self, ctx: &JobContext) -> resee_ops_core::Result<()> {
        tokio::select! {
            () = tokio::time::sleep(self.takes) => {}
            () = ctx.cancelled() => {
                self.alerts.notify(&Alert::new("job", Severity::Warning, "Job cancelled")).await;
                return Err(Error::new(ErrorKind::Closed, "cancelled"));
            }
        }
        self.alerts.notify(&Alert::new("job", Severity::Info, "Job done")).await;
        Ok(())
    }
    async fn last_success(&self) -> resee_ops_core::Result<Option<DateTime<Utc>>> {
        Ok(None) // never ran: the scheduler runs it once at start
    }
}

fn scheduler_running(alerts: &Dispatcher, takes: Duration) -> SchedulerHandle {
    let clock = TokioClock::at("2026-12-01T12:00:00Z".parse().unwrap());
    Scheduler::new()
        .with_clock(clock.shared())
        .with_notifier(alerts.clone())
        .with_job(
            Slow { alerts: alerts.clone(), takes },
            Schedule::new("0 3 * * *", "Asia/Seoul").unwrap(),
            JobPolicy::default().with_missed_runs(MissedRunPolicy::RunOnce),
        )
        .start()
}

#[tokio::test(start_paused = true)]
async fn producers_stop_first_and_their_last_alerts_are_flushed() {
    let inbox = RecordingNotifier::new().with_delay(Duration::from_millis(200));
    let alerts = inbox.clone().dispatched(DispatcherConfig::default());
    let scheduler = scheduler_running(&alerts, Duration::from_secs(20));
    tokio::time::sleep(Duration::from_secs(1)).await; // the catch-up run has started
    let ops = OpsHandle::new(alerts.clone())
        .with_scheduler(scheduler)
        .with_producer("monitor", LastWords { alerts: alerts.clone(), takes: Some(Duration::from_secs(2)) });

    let started = Instant::now();
    let summary = ops.shutdown(Duration::from_secs(60)).await;

    // The job finished inside its grace, the producer stopped, and both of their alerts were delivered
    // although they were sent during the shutdown: the dispatcher closes only after the producers.
    assert_eq!(inbox.titles(), ["Stopped", "Job done"]);
    assert_eq!(summary.jobs.map(|j| (j.finished, j.cancelled, j.aborted)), Some((1, 0, 0)));
    assert_eq!(summary.producers.len(), 1);
    assert!(summary.producers[0].in_time);
    assert_eq!((summary.alerts.delivered, summary.dropped(), summary.alerts.in_flight), (2, 0, 0));
    assert!(summary.is_clean(), "{summary}");
    assert!(started.elapsed() < Duration::from_secs(21), "{:?}", started.elapsed());
    // The dispatcher is closed: later alerts are refused and counted, never queued and lost.
    assert!(matches!(
        alerts.notify(&Alert::new("late", Severity::Info, "late")).await,
        NotifyOutcome::PermanentFailure(_)
    ));
}

#[tokio::test(start_paused = true)]
async fn the_deadline_holds_whatever_hangs_and_what_was_dropped_is_returned() {
    // A receiver that takes an hour per alert, a producer that never stops, a job that ignores nothing
    // but runs for a day.
    let inbox = RecordingNotifier::new().with_delay(Duration::from_secs(3600));
    let alerts = inbox.clone().dispatched(DispatcherConfig::default().with_concurrency(1));
    let scheduler = scheduler_running(&alerts, Duration::from_secs(86_400));
    tokio::time::sleep(Duration::from_secs(1)).await;
    for i in 0..3 {
        alerts.notify(&Alert::new(format!("queued_{i}"), Severity::Warning, "queued")).await;
    }
    let ops = OpsHandle::new(alerts.clone())
        .with_scheduler(scheduler)
        .with_producer("stuck", LastWords { alerts: alerts.clone(), takes: None })
        .with_flush_reserve(Duration::from_secs(5));

    let started = Instant::now();
    let summary = ops.shutdown(Duration::from_secs(30)).await;
    let took = started.elapsed();

    assert!(took <= Duration::from_secs(30), "the deadline holds: {took:?}");
    assert!(took >= Duration::from_secs(25), "producers get their share, alerts the reserve: {took:?}");
    assert!(!summary.producers[0].in_time, "{summary}");
    // The job was cancelled after its grace (25 s - the cancel cleanup) and reported its cancellation.
    assert_eq!(summary.jobs.map(|j| (j.finished, j.cancelled, j.aborted)), Some((0, 1, 0)));
    // The three queued alerts and the job's "cancelled" alert could not be delivered: dropped and counted.
    assert_eq!(summary.alerts.in_flight, 0);
    assert_eq!(summary.alerts.delivered, 0);
    assert_eq!(summary.dropped(), 4, "{summary}");
    assert_eq!(summary.alerts.dropped_closed, 4);
    assert!(!summary.is_clean());
    let shown = summary.to_string();
    assert!(shown.contains("abandoned: stuck") && shown.contains("4 dropped"), "{shown}");
}

#[tokio::test(start_paused = true)]
async fn a_deadline_of_duration_max_waits_for_everything() {
    let inbox = RecordingNotifier::new().with_delay(Duration::from_secs(300));
    let alerts = inbox.clone().dispatched(DispatcherConfig::default());
    alerts.notify(&Alert::new("slow", Severity::Info, "Slow receiver")).await;
    let last = LastWords { alerts: alerts.clone(), takes: Some(Duration::from_secs(900)) };
    let summary = OpsHandle::new(alerts).with_producer("late", last).shutdown(Duration::MAX).await;
    assert!(summary.producers[0].in_time);
    assert_eq!((summary.alerts.delivered, summary.dropped()), (2, 0));
    assert_eq!(inbox.titles(), ["Slow receiver", "Stopped"]);
    assert!(summary.jobs.is_none());
}
