//! The throttle's windows, resolution rule, claim release and failure behaviour.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use resee_ops_core::testing::{ManualClock, RecordingNotifier};
use resee_ops_core::{
    Alert, Error, ErrorKind, FanOut, Fingerprint, InMemoryThrottleStore, Notifier, NotifyOutcome, Severity,
    ThrottleEntry, ThrottleStore, Throttled,
};

const WINDOW: Duration = Duration::from_secs(600);

fn stack() -> (RecordingNotifier, ManualClock, Throttled<RecordingNotifier>) {
    let inbox = RecordingNotifier::new();
    let clock = ManualClock::new();
    let throttled = Throttled::new(inbox.clone()).with_window(WINDOW).with_clock(clock.shared());
    (inbox, clock, throttled)
}

fn db_down() -> Alert {
    Alert::new("database_down", Severity::Error, "Database connection failed")
        .with_source("monitor")
        .with_label("probe", "database")
}

fn kind(o: &NotifyOutcome) -> &'static str {
    o.as_str()
}

#[tokio::test]
async fn rule_the_same_state_inside_the_window_is_a_duplicate_and_suppressed() {
    let (inbox, _clock, n) = stack();
    let mut outcomes = Vec::new();
    for _ in 0..50 {
        outcomes.push(kind(&n.notify(&db_down()).await));
    }
    assert_eq!(outcomes[0], "delivered");
    assert!(outcomes[1..].iter().all(|o| *o == "suppressed"), "{outcomes:?}");
    assert_eq!(inbox.alerts().len(), 1);
}

#[tokio::test]
async fn measured_values_do_not_defeat_the_throttle() {
    let (inbox, _clock, n) = stack();
    let disk = |pct: u32| {
        Alert::new("disk_usage", Severity::Warning, format!("Disk usage {pct} %")).with_label("path", "/data")
    };
    n.notify(&disk(85)).await;
    n.notify(&disk(86)).await;
    n.notify(&disk(87)).await;
    assert_eq!(inbox.titles(), ["Disk usage 85 %"]);
}

#[tokio::test]
async fn rule_an_escalation_is_a_firing_inside_the_window() {
    let (inbox, clock, n) = stack();
    let disk = |severity, pct: u32| {
        Alert::new("disk_usage", severity, format!("Disk usage {pct} %")).with_label("path", "/data")
    };
    assert_eq!(kind(&n.notify(&disk(Severity::Warning, 85)).await), "delivered");
    clock.advance(Duration::from_secs(60));
    assert_eq!(kind(&n.notify(&disk(Severity::Error, 93)).await), "delivered", "warning -> error is news");
    clock.advance(Duration::from_secs(60));
    assert_eq!(kind(&n.notify(&disk(Severity::Error, 94)).await), "suppressed");
    assert_eq!(kind(&n.notify(&disk(Severity::Warning, 88)).await), "suppressed", "de-escalation is not");
    assert_eq!(kind(&n.notify(&disk(Severity::Warning, 70).resolved()).await), "delivered");
    assert_eq!(inbox.titles(), ["Disk usage 85 %", "Disk usage 93 %", "Disk usage 70 %"]);
}

#[tokio::test]
async fn window_expiry_sends_again() {
    let (inbox, clock, n) = stack();
    assert_eq!(kind(&n.notify(&db_down()).await), "delivered");
    clock.advance(WINDOW - Duration::from_secs(1));
    assert_eq!(kind(&n.notify(&db_down()).await), "suppressed");
    clock.advance(Duration::from_secs(1));
    assert_eq!(kind(&n.notify(&db_down()).await), "delivered", "exactly one window later");
    assert_eq!(inbox.alerts().len(), 2);
}

/// Alert semantics, rule "resolution": a delivered resolution ends the window, so failing again inside
/// it is sent at once; the channel never shows "recovered" while the thing is down.
#[tokio::test]
async fn rule_a_delivered_resolution_ends_the_window() {
    let (inbox, clock, n) = stack();
    let firing = db_down();
    assert_eq!(kind(&n.notify(&firing).await), "delivered");
    clock.advance(Duration::from_secs(60));
    assert_eq!(kind(&n.notify(&firing.resolved()).await), "delivered", "its firing was sent");
    assert_eq!(kind(&n.notify(&firing.resolved()).await), "suppressed", "already resolved");
    clock.advance(Duration::from_secs(60));
    assert_eq!(kind(&n.notify(&firing).await), "delivered", "down again inside the window: news");
    assert_eq!(kind(&n.notify(&firing).await), "suppressed", "a duplicate of the same state");
    assert_eq!(kind(&n.notify(&firing.resolved()).await), "delivered");
    let statuses: Vec<_> = inbox.alerts().iter().map(|a| a.is_resolved()).collect();
    assert_eq!(statuses, [false, true, false, true]);
}

/// Alert semantics, rule "resolution": a resolution whose delivery failed keeps the window open, so
/// its retry is sent and a re-fire is still a duplicate.
#[tokio::test]
async fn rule_a_failed_resolution_keeps_the_firing_open() {
    let (inbox, _clock, n) = stack();
    let firing = db_down();
    n.notify(&firing).await;
    inbox.push_outcome(NotifyOutcome::TemporaryFailure(Error::new(ErrorKind::Unavailable, "502")));
    assert_eq!(kind(&n.notify(&firing.resolved()).await), "temporary_failure");
    assert_eq!(kind(&n.notify(&firing).await), "suppressed", "still open: a duplicate");
    assert_eq!(kind(&n.notify(&firing.resolved()).await), "delivered", "the retry goes out");
}

#[tokio::test]
async fn resolution_without_firing_is_not_sent() {
    let (inbox, _clock, n) = stack();
    assert_eq!(kind(&n.notify(&db_down().resolved()).await), "suppressed");
    assert!(inbox.alerts().is_empty());
}

#[tokio::test]
async fn different_fingerprints_are_independent() {
    let (inbox, _clock, n) = stack();
    n.notify(&db_down()).await;
    n.notify(&db_down().with_label("probe", "replica")).await;
    n.notify(&db_down().with_source("other-host")).await;
    assert_eq!(inbox.alerts().len(), 3);
}

#[tokio::test]
async fn a_failed_send_gives_the_window_back() {
    let (inbox, _clock, n) = stack();
    inbox.push_outcome(NotifyOutcome::TemporaryFailure(Error::new(ErrorKind::Unavailable, "receiver down")));
    assert_eq!(kind(&n.notify(&db_down()).await), "temporary_failure");
    assert_eq!(kind(&n.notify(&db_down()).await), "delivered", "the retry is not suppressed");
    // A resolution whose firing failed to send is not sent either.
    inbox.push_outcome(NotifyOutcome::PermanentFailure(Error::new(ErrorKind::InvalidInput, "bad payload")));
    let other = db_down().with_label("probe", "other");
    assert_eq!(kind(&n.notify(&other).await), "permanent_failure");
    assert_eq!(kind(&n.notify(&other.resolved()).await), "suppressed");
    assert_eq!(inbox.alerts().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_identical_alerts_send_one() {
    let inbox = RecordingNotifier::new();
    let n = Arc::new(Throttled::new(inbox.clone()));
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let n = n.clone();
            tokio::spawn(async move { n.notify(&db_down()).await })
        })
        .collect();
    let mut delivered = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), NotifyOutcome::Delivered) {
            delivered += 1;
        }
    }
    assert_eq!(delivered, 1);
    assert_eq!(inbox.alerts().len(), 1);
}

#[derive(Debug)]
struct BrokenStore;

#[async_trait]
impl ThrottleStore for BrokenStore {
    async fn get(&self, _: Fingerprint) -> Result<Option<ThrottleEntry>, Error> {
        Err(Error::new(ErrorKind::Unavailable, "store down"))
    }
    async fn compare_and_swap(
        &self,
        _: Fingerprint,
        _: Option<&ThrottleEntry>,
        _: Option<ThrottleEntry>,
        _: Duration,
    ) -> Result<bool, Error> {
        Err(Error::new(ErrorKind::Unavailable, "store down"))
    }
}

#[tokio::test]
async fn a_broken_store_fails_open() {
    let inbox = RecordingNotifier::new();
    let n = Throttled::new(inbox.clone()).with_store(Arc::new(BrokenStore));
    assert_eq!(kind(&n.notify(&db_down()).await), "delivered");
    assert_eq!(kind(&n.notify(&db_down()).await), "delivered", "duplicates rather than losses");
    assert_eq!(inbox.alerts().len(), 2);
}

#[tokio::test]
async fn a_shared_store_throttles_across_replicas() {
    let store = Arc::new(InMemoryThrottleStore::new());
    let clock = ManualClock::new();
    let (a, b) = (RecordingNotifier::new(), RecordingNotifier::new());
    let replica_a = Throttled::new(a.clone()).with_store(store.clone()).with_clock(clock.shared());
    let replica_b = Throttled::new(b.clone()).with_store(store.clone()).with_clock(clock.shared());
    assert_eq!(kind(&replica_a.notify(&db_down()).await), "delivered");
    assert_eq!(kind(&replica_b.notify(&db_down()).await), "suppressed");
    assert_eq!(kind(&replica_b.notify(&db_down().resolved()).await), "delivered", "either replica may resolve");
    assert_eq!(store.len(), 0, "the resolution removed the entry");
}

#[tokio::test]
async fn throttle_state_stays_bounded_resolved_and_quiet_fingerprints_are_evicted() {
    let store = Arc::new(InMemoryThrottleStore::new());
    let clock = ManualClock::new();
    let n = Throttled::new(RecordingNotifier::new())
        .with_store(store.clone())
        .with_clock(clock.shared())
        .with_retention(Duration::from_secs(3600));
    let open = db_down().with_label("probe", "still-down");
    n.notify(&open).await;
    for i in 0..1500 {
        let a = db_down().with_label("i", i.to_string());
        n.notify(&a).await;
        n.notify(&a.resolved()).await;
    }
    assert_eq!(store.len(), 1, "a delivered resolution removes its entry");
    for i in 0..1500 {
        n.notify(&db_down().with_label("quiet", i.to_string())).await;
    }
    assert_eq!(store.len(), 1501);
    // Within the retention, an open entry is kept: its resolution still goes out.
    clock.advance(Duration::from_secs(1800));
    n.notify(&open).await; // a reminder keeps it fresh
    clock.advance(Duration::from_secs(1800));
    for i in 0..1100 {
        n.notify(&db_down().with_label("late", i.to_string())).await;
    }
    assert!(store.len() < 1500, "fingerprints quiet for longer than the retention were evicted: {}", store.len());
    assert_eq!(kind(&n.notify(&open.resolved()).await), "delivered", "a fingerprint still reported is kept");
    assert_eq!(format!("{store:?}"), format!("InMemoryThrottleStore {{ entries: {} }}", store.len()));
    assert!(!format!("{n:?}").contains("last_fired"), "Debug never dumps the entries: {n:?}");
}

/// Point 5: `Debug` of a fan-out names how many branches it has, never the branches (a recording branch
/// holds every alert it saw; a dispatcher logs its inner notifier's `Debug`).
#[tokio::test]
async fn debug_of_a_fan_out_never_dumps_its_branches() {
    let inbox = RecordingNotifier::new();
    let fan = FanOut::new(Vec::new()).with_branch(inbox.clone()).with_branch(Arc::new(inbox.clone()));
    for i in 0..100 {
        fan.notify(&db_down().with_label("i", i.to_string())).await;
    }
    assert_eq!(inbox.alerts().len(), 200);
    assert_eq!(format!("{fan:?}"), "FanOut { branches: 2 }");
}

#[tokio::test]
async fn throttles_sharing_an_in_memory_store_take_the_direct_path_together() {
    let store = InMemoryThrottleStore::new();
    let clock = ManualClock::new();
    let (a, b) = (RecordingNotifier::new(), RecordingNotifier::new());
    let first = Throttled::new(a.clone()).with_memory_store(store.clone()).with_clock(clock.shared());
    let second = Throttled::new(b.clone()).with_memory_store(store.clone()).with_clock(clock.shared());
    assert_eq!(kind(&first.notify(&db_down()).await), "delivered");
    assert_eq!(kind(&second.notify(&db_down()).await), "suppressed");
    clock.advance(WINDOW);
    assert_eq!(kind(&second.notify(&db_down()).await), "delivered");
    assert_eq!((a.alerts().len(), b.alerts().len(), store.len()), (1, 1, 1));
}
