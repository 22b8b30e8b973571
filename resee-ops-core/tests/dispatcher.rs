//! The dispatcher never blocks the caller and accounts for every alert.

use std::time::Duration;

use async_trait::async_trait;
use resee_ops_core::testing::RecordingNotifier;
use resee_ops_core::{
    Alert, DispatchStats, Dispatcher, DispatcherConfig, Error, ErrorKind, Notifier, NotifierExt, NotifyOutcome,
    Severity,
};
use tokio::time::Instant;

fn alert(i: usize) -> Alert {
    Alert::new("load", Severity::Warning, format!("alert {i}")).with_label("i", i.to_string())
}

/// Every accepted alert is accounted for exactly once.
fn assert_accounted(s: &DispatchStats) {
    assert_eq!(s.in_flight, 0, "{s:?}");
    assert_eq!(
        s.accepted,
        s.delivered
            + s.suppressed
            + s.dropped_closed
            + s.dropped_permanent_failure
            + s.dropped_temporary_failure
            + s.dropped_panicked,
        "{s:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_notifier_does_not_slow_notify() {
    let inbox = RecordingNotifier::new().with_delay(Duration::from_secs(5));
    let d = inbox.clone().dispatched(DispatcherConfig::default());
    let started = Instant::now();
    for i in 0..100 {
        assert!(matches!(d.notify(&alert(i)).await, NotifyOutcome::Queued));
    }
    // On paused time any wait on the 5 s receiver would have advanced the clock.
    assert_eq!(started.elapsed(), Duration::ZERO, "notify waited on delivery");
    d.flush().await;
    assert_eq!(inbox.alerts().len(), 100);
    let s = d.stats();
    assert_eq!(s.delivered, 100);
    assert_accounted(&s);
    // 4 lanes, 5 s per delivery: at least 25 rounds, and far fewer than 100 one after the other.
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(125) && took <= Duration::from_secs(250), "took {took:?}");
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_counts_drops() {
    let inbox = RecordingNotifier::new().with_delay(Duration::from_secs(5));
    let d = Dispatcher::spawn(inbox.clone(), DispatcherConfig::default().with_capacity(3).with_concurrency(1));
    let mut full = 0;
    for i in 0..10 {
        match d.notify(&alert(i)).await {
            NotifyOutcome::Queued => {}
            NotifyOutcome::TemporaryFailure(e) => {
                assert_eq!(e.kind(), ErrorKind::Unavailable);
                full += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(full, 7);
    assert_eq!(d.stats().dropped_queue_full, 7);
    d.shutdown(Duration::from_secs(60)).await;
    let s = d.stats();
    assert_eq!(s.delivered, 3);
    assert_eq!(s.accepted, 3);
    assert_eq!(s.dropped(), 7);
    assert_accounted(&s);
    assert_eq!(inbox.titles(), ["alert 0", "alert 1", "alert 2"]);
}

#[tokio::test(start_paused = true)]
async fn shutdown_drains_within_its_grace_and_counts_the_rest() {
    let inbox = RecordingNotifier::new().with_delay(Duration::from_secs(5));
    let d = Dispatcher::spawn(inbox.clone(), DispatcherConfig::default().with_concurrency(1));
    for i in 0..10 {
        d.notify(&alert(i)).await;
    }
    let started = Instant::now();
    d.shutdown(Duration::from_secs(12)).await;
    assert!(started.elapsed() <= Duration::from_secs(12), "shutdown overran its grace: {:?}", started.elapsed());
    let s = d.stats();
    assert_eq!(s.delivered, 2, "{s:?}");
    assert_eq!(s.dropped_closed, 8, "{s:?}");
    assert_accounted(&s);

    // Closed: later alerts are refused and counted.
    let outcome = d.notify(&alert(99)).await;
    assert!(matches!(outcome, NotifyOutcome::PermanentFailure(ref e) if e.kind() == ErrorKind::Closed));
    assert_eq!(d.stats().dropped_closed, 9);
}

#[derive(Debug)]
struct Panics;

#[async_trait]
impl Notifier for Panics {
    async fn notify(&self, alert: &Alert) -> NotifyOutcome {
        if alert.title.contains("boom") {
            panic!("renderer bug");
        }
        NotifyOutcome::Delivered
    }
}

#[tokio::test]
async fn failures_and_panics_are_counted_not_lost() {
    let d = Panics.dispatched(DispatcherConfig::default());
    d.notify(&Alert::new("a", Severity::Error, "boom")).await;
    d.notify(&Alert::new("b", Severity::Error, "fine")).await;
    d.flush().await;
    let s = d.stats();
    assert_eq!((s.dropped_panicked, s.delivered), (1, 1), "{s:?}");
    assert_accounted(&s);

    let inbox = RecordingNotifier::new();
    inbox.push_outcome(NotifyOutcome::PermanentFailure(Error::new(ErrorKind::InvalidInput, "invalid_payload")));
    inbox.push_outcome(NotifyOutcome::TemporaryFailure(Error::new(ErrorKind::Timeout, "timeout")));
    inbox.push_outcome(NotifyOutcome::Suppressed);
    let d = inbox.clone().dispatched(DispatcherConfig::default().with_concurrency(1));
    for i in 0..4 {
        d.notify(&alert(i)).await;
    }
    d.shutdown(Duration::from_secs(1)).await;
    let s = d.stats();
    assert_eq!(
        (s.dropped_permanent_failure, s.dropped_temporary_failure, s.suppressed, s.delivered),
        (1, 1, 1, 1),
        "{s:?}"
    );
    assert_accounted(&s);
}

#[tokio::test(start_paused = true)]
async fn throttle_behind_the_dispatcher_coalesces_a_storm() {
    let inbox = RecordingNotifier::new().with_delay(Duration::from_millis(300));
    let d = inbox.clone().throttled(Duration::from_secs(600)).dispatched(DispatcherConfig::default());
    let a = Alert::new("database_down", Severity::Error, "Database connection failed");
    for _ in 0..50 {
        d.notify(&a).await;
    }
    d.flush().await;
    let s = d.stats();
    assert_eq!((s.delivered, s.suppressed), (1, 49), "{s:?}");
    assert_eq!(inbox.alerts().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn dropping_every_handle_still_delivers_what_was_queued() {
    let inbox = RecordingNotifier::new().with_delay(Duration::from_secs(5));
    let d = Dispatcher::spawn(inbox.clone(), DispatcherConfig::default().with_concurrency(2));
    for i in 0..6 {
        d.notify(&alert(i)).await;
    }
    drop(d);
    // Paused time: each sleep returns as soon as every task is idle, so this loop costs no real time.
    for _ in 0..100 {
        if inbox.alerts().len() == 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(inbox.alerts().len(), 6, "queued alerts were delivered after the last handle went away");
}

/// Slow to deliver a firing, quick to deliver a resolution; records the order of completion.
#[derive(Debug, Default, Clone)]
struct SlowFiring {
    done: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

#[async_trait]
impl Notifier for SlowFiring {
    async fn notify(&self, alert: &Alert) -> NotifyOutcome {
        if !alert.is_resolved() {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        let status = if alert.is_resolved() { "resolved" } else { "firing" };
        self.done.lock().unwrap().push(format!("{} {status}", alert.name));
        NotifyOutcome::Delivered
    }
}

#[tokio::test(start_paused = true)]
async fn a_resolution_never_overtakes_its_firing() {
    let inner = SlowFiring::default();
    let d = Dispatcher::spawn(inner.clone(), DispatcherConfig::default().with_concurrency(4));
    let db = Alert::new("database_down", Severity::Error, "Database connection failed");
    let disk = Alert::new("disk_full", Severity::Error, "Disk usage 93 %");
    d.notify(&db).await;
    d.notify(&db.resolved()).await;
    d.notify(&disk).await;
    d.notify(&disk.resolved()).await;
    d.flush().await;
    let done = inner.done.lock().unwrap().clone();
    let pos = |s: &str| done.iter().position(|d| d == s).unwrap();
    assert!(pos("database_down firing") < pos("database_down resolved"), "{done:?}");
    assert!(pos("disk_full firing") < pos("disk_full resolved"), "{done:?}");
}

/// A receiver that never answers.
#[derive(Debug)]
struct Silent;

#[async_trait]
impl Notifier for Silent {
    async fn notify(&self, _: &Alert) -> NotifyOutcome {
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn flush_cannot_hang_on_a_send_that_never_answers() {
    let d = Silent.dispatched(DispatcherConfig::default().with_delivery_timeout(Duration::from_secs(60)));
    d.notify(&alert(0)).await;
    let outcome = d.notify_final(&alert(1)).await;
    assert!(matches!(outcome, NotifyOutcome::TemporaryFailure(ref e) if e.kind() == ErrorKind::Timeout), "{outcome}");
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(3600), d.flush()).await.expect("flush hung on a silent notifier");
    assert!(started.elapsed() <= Duration::from_secs(60));
    let s = d.stats();
    assert_eq!(s.dropped_temporary_failure, 2);
    assert_accounted(&s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_cannot_hang_when_the_queue_refuses_alerts() {
    // Many refused sends racing a flush: a refused alert must never be seen in flight.
    let d =
        Dispatcher::spawn(RecordingNotifier::new(), DispatcherConfig::default().with_capacity(1).with_concurrency(1));
    let sender = tokio::spawn({
        let d = d.clone();
        async move {
            for i in 0..20_000 {
                d.notify(&alert(i)).await;
            }
        }
    });
    for _ in 0..200 {
        tokio::time::timeout(Duration::from_secs(10), d.flush()).await.expect("flush hung");
    }
    sender.await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), d.flush()).await.expect("flush hung");
    let s = d.stats();
    assert_accounted(&s);
    assert_eq!(s.accepted + s.dropped_queue_full, 20_000);
}

/// Alert semantics, rule "retried until delivered": `notify_final` reports what finally became of a
/// queued alert, so a caller can resend it.
#[tokio::test(start_paused = true)]
async fn rule_notify_final_reports_the_final_outcome_of_a_queued_alert() {
    let inbox = RecordingNotifier::new().with_delay(Duration::from_secs(1));
    inbox.push_outcome(NotifyOutcome::TemporaryFailure(Error::new(ErrorKind::Unavailable, "502")));
    inbox.push_outcome(NotifyOutcome::PermanentFailure(Error::new(ErrorKind::NotFound, "no_service")));
    let d = inbox.clone().dispatched(DispatcherConfig::default());
    let outcome = d.notify_final(&alert(0)).await;
    assert!(matches!(outcome, NotifyOutcome::TemporaryFailure(ref e) if e.message() == "502"), "{outcome}");
    let outcome = d.notify_final(&alert(0)).await;
    assert!(matches!(outcome, NotifyOutcome::PermanentFailure(ref e) if e.message() == "no_service"), "{outcome}");
    assert!(matches!(d.notify_final(&alert(0)).await, NotifyOutcome::Delivered));
    assert!(matches!(d.notify(&alert(1)).await, NotifyOutcome::Queued), "notify still never waits");
    d.shutdown(Duration::from_secs(10)).await;
    let outcome = d.notify_final(&alert(2)).await;
    assert!(matches!(outcome, NotifyOutcome::PermanentFailure(ref e) if e.kind() == ErrorKind::Closed), "{outcome}");
    assert_eq!(inbox.titles(), ["alert 0", "alert 1"]);
}
