//! `RedisThrottleStore` against a real Redis: the conformance suite, replicas racing on the same
//! fingerprints (separate connections, as separate processes have), expiry, Redis going down and coming
//! back (a private server this test stops and starts), and open alerts across a simulated restart, of the
//! health monitor and of the threshold-rule evaluator.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::unique;
use resee_ops_core::testing::services::{self, PrivateRedis};
use resee_ops_core::testing::{ManualClock, RecordingNotifier, StaticProbe, conformance};
use resee_ops_core::{
    Alert, CheckGroup, Fingerprint, HealthRegistry, HealthStatus, Notifier, NotifyOutcome, ProbeOutcome, Registration,
    Severity, ThrottleEntry, ThrottleStore, Throttled,
};
use resee_ops_monitor::{
    AlertState, FnSource, HealthMonitor, Measure, RedisConfig, RedisThrottleStore, Rule, RuleEvaluator,
};

const WINDOW: Duration = Duration::from_secs(600);

fn config(url: &str) -> RedisConfig {
    RedisConfig::from_url(url).unwrap().with_timeout(Duration::from_secs(2))
}

/// A store on the shared test Redis under a prefix no other test uses.
fn store(prefix: &str) -> RedisThrottleStore {
    RedisThrottleStore::new(&config(services::redis().url())).unwrap().with_prefix(prefix)
}

async fn raw_connection(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap()
}

/// One replica's notifier stack: its own store (own connection), its own inbox.
fn replica(prefix: &str, clock: &ManualClock) -> (Throttled<RecordingNotifier>, RecordingNotifier) {
    let inbox = RecordingNotifier::new();
    let stack = Throttled::new(inbox.clone())
        .with_window(WINDOW)
        .with_clock(clock.shared())
        .with_store(Arc::new(store(prefix)));
    (stack, inbox)
}

#[tokio::test]
async fn the_redis_store_passes_the_throttle_store_conformance_suite() {
    conformance::throttle_store(&store(&unique("conformance"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rule_replicas_racing_on_the_same_fingerprints_send_each_alert_exactly_once() {
    let prefix = unique("race");
    let clock = ManualClock::new();
    let replicas: Vec<_> = (0..4).map(|_| replica(&prefix, &clock)).collect();
    let alerts: Vec<Alert> =
        (0..8).map(|i| Alert::new(format!("race_{i}"), Severity::Error, format!("Alert {i}"))).collect();

    // Every replica sends every alert three times, all at once.
    let race = |resolved: bool| {
        let mut tasks = Vec::new();
        for (stack, _) in &replicas {
            for alert in &alerts {
                for _ in 0..3 {
                    let stack = stack.clone();
                    let alert = if resolved { alert.resolved() } else { alert.clone() };
                    tasks.push(tokio::spawn(async move { stack.notify(&alert).await }));
                }
            }
        }
        async move {
            let mut delivered = 0;
            for t in tasks {
                if matches!(t.await.unwrap(), NotifyOutcome::Delivered) {
                    delivered += 1;
                }
            }
            delivered
        }
    };
    let sent = |resolved: bool| {
        let mut per_alert = vec![0; alerts.len()];
        for (_, inbox) in &replicas {
            for a in inbox.alerts().iter().filter(|a| a.is_resolved() == resolved) {
                per_alert[alerts.iter().position(|x| x.fingerprint() == a.fingerprint()).unwrap()] += 1;
            }
        }
        per_alert
    };

    assert_eq!(race(false).await, alerts.len(), "one delivery per fingerprint across 4 replicas");
    assert_eq!(sent(false), vec![1; alerts.len()], "each firing exactly once");
    assert_eq!(race(true).await, alerts.len());
    assert_eq!(sent(true), vec![1; alerts.len()], "each resolution exactly once");
    // The resolutions ended the windows: failing again is news, once.
    assert_eq!(race(false).await, alerts.len());
    assert_eq!(sent(false), vec![2; alerts.len()]);
    // Inside the window nothing more goes out; after it, one reminder per fingerprint.
    assert_eq!(race(false).await, 0);
    clock.advance(WINDOW);
    assert_eq!(race(false).await, alerts.len());
    assert_eq!(sent(false), vec![3; alerts.len()]);
}

#[tokio::test]
async fn entries_expire_on_their_own_and_live_under_the_prefix() {
    let prefix = unique("expiry");
    let store = store(&prefix);
    let key = Fingerprint::from_u64(0xfeed_beef);
    let entry = ThrottleEntry::new(chrono::Utc::now(), true, Severity::Error);
    assert!(store.compare_and_swap(key, None, Some(entry.clone()), Duration::from_millis(400)).await.unwrap());
    assert_eq!(store.key_of(key), format!("{prefix}00000000feedbeef"));

    let mut conn = raw_connection(services::redis().url()).await;
    let pttl: i64 = redis::cmd("PTTL").arg(store.key_of(key)).query_async(&mut conn).await.unwrap();
    assert!((1..=400).contains(&pttl), "PX is the keep_for given: {pttl}");
    assert_eq!(store.get(key).await.unwrap(), Some(entry));
    // Redis removes it by itself (bounded polling of the real server).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.get(key).await.unwrap().is_some() {
        assert!(std::time::Instant::now() < deadline, "the entry did not expire");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let exists: i64 = redis::cmd("EXISTS").arg(store.key_of(key)).query_async(&mut conn).await.unwrap();
    assert_eq!(exists, 0);
}

#[tokio::test]
async fn a_redis_outage_falls_back_to_memory_and_recovers_when_redis_is_back() {
    let server = PrivateRedis::start().unwrap_or_else(|e| panic!("a private redis-server: {e}"));
    let prefix = unique("outage");
    let store = Arc::new(
        RedisThrottleStore::new(&config(server.url())).unwrap().with_prefix(&prefix).with_retry_after(Duration::ZERO),
    );
    let inbox = RecordingNotifier::new();
    let stack = Throttled::new(inbox.clone()).with_window(WINDOW).with_store(store.clone());
    let db_down = Alert::new("database_down", Severity::Error, "Database connection failed");
    let disk_full = Alert::new("disk_full", Severity::Error, "Disk full");

    // Before the outage: Redis decides.
    assert!(matches!(stack.notify(&disk_full).await, NotifyOutcome::Delivered));
    assert!(!store.is_degraded());

    server.stop().unwrap();
    // Never silence: the firing goes out; never a flood: its repeat is suppressed in memory.
    assert!(matches!(stack.notify(&db_down).await, NotifyOutcome::Delivered));
    assert!(store.is_degraded(), "the store says it decides in memory");
    assert!(matches!(stack.notify(&db_down).await, NotifyOutcome::Suppressed));
    assert!(matches!(stack.notify(&db_down).await, NotifyOutcome::Suppressed));

    server.restart().unwrap();
    // Back: the entry written during the outage was carried over, so the repeat stays suppressed and its
    // resolution still goes out, exactly once.
    assert!(matches!(stack.notify(&db_down).await, NotifyOutcome::Suppressed));
    assert!(!store.is_degraded(), "Redis decides again");
    let mut conn = raw_connection(server.url()).await;
    let stored: Option<String> =
        redis::cmd("GET").arg(store.key_of(db_down.fingerprint())).query_async(&mut conn).await.unwrap();
    assert!(stored.is_some_and(|s| s.contains("\"open\":true")), "carried over into Redis");
    // Another replica (own connection) sees it too.
    let other = Throttled::new(RecordingNotifier::new())
        .with_window(WINDOW)
        .with_store(Arc::new(RedisThrottleStore::new(&config(server.url())).unwrap().with_prefix(&prefix)));
    assert!(matches!(other.notify(&db_down).await, NotifyOutcome::Suppressed));
    assert!(matches!(stack.notify(&db_down.resolved()).await, NotifyOutcome::Delivered));
    assert!(matches!(other.notify(&db_down.resolved()).await, NotifyOutcome::Suppressed));
    assert!(matches!(stack.notify(&db_down.resolved()).await, NotifyOutcome::Suppressed));
    assert_eq!(inbox.titles(), ["Disk full", "Database connection failed", "Database connection failed"]);
    assert!(inbox.alerts()[2].is_resolved());
}

#[tokio::test]
async fn an_unreachable_redis_at_start_is_no_error_and_every_decision_is_still_made() {
    let store = RedisThrottleStore::new(&config(&format!("redis://127.0.0.1:{}/", common::closed_port())))
        .unwrap()
        .with_prefix(unique("never"));
    let stack = Throttled::new(RecordingNotifier::new()).with_store(Arc::new(store));
    let a = Alert::new("a", Severity::Warning, "A");
    assert!(matches!(stack.notify(&a).await, NotifyOutcome::Delivered));
    assert!(matches!(stack.notify(&a).await, NotifyOutcome::Suppressed));
    assert!(matches!(stack.notify(&a.resolved()).await, NotifyOutcome::Delivered));
}

/// One "process": a health monitor over `probe`, alerting through a throttle on the Redis store.
fn process(
    probe: &StaticProbe,
    prefix: &str,
    clock: &ManualClock,
    resolve_on_start: bool,
) -> (HealthMonitor, RecordingNotifier) {
    let (stack, inbox) = replica(prefix, clock);
    let monitor = HealthMonitor::builder(HealthRegistry::new().with_registration(Registration::new(probe.clone())))
        .with_failures_before_down(1)
        .with_passes_before_up(1)
        .with_clock(clock.shared())
        .with_resolve_on_start(resolve_on_start)
        .with_notifier(Arc::new(stack))
        .build()
        .unwrap();
    (monitor, inbox)
}

#[tokio::test]
async fn rule_open_alerts_survive_a_restart_resolved_once_and_not_resent_inside_their_window() {
    let prefix = unique("restart");
    let clock = ManualClock::new();
    let db = StaticProbe::new("database", ProbeOutcome::down("connection refused"));

    let (before, inbox) = process(&db, &prefix, &clock, true);
    assert_eq!(before.run_once().await.status, HealthStatus::Down);
    assert_eq!(inbox.alerts().len(), 1, "{:?}", inbox.titles());
    drop(before); // the deploy

    // The new process finds the outage still going: not re-sent inside the window...
    let (after, inbox) = process(&db, &prefix, &clock, true);
    clock.advance(Duration::from_secs(60));
    after.run_once().await;
    assert!(inbox.alerts().is_empty(), "still firing, inside its window: {:?}", inbox.titles());
    // ...a reminder once the window has passed...
    clock.advance(WINDOW);
    after.run_once().await;
    assert_eq!(inbox.alerts().len(), 1);
    // ...and its recovery resolved exactly once.
    db.set(ProbeOutcome::up());
    after.run_once().await;
    after.run_once().await;
    assert_eq!(inbox.alerts().len(), 2);
    assert!(inbox.alerts()[1].is_resolved());
    assert_eq!(after.report(CheckGroup::Readiness).unwrap().status, HealthStatus::Up);
}

#[tokio::test]
async fn rule_an_outage_that_ended_during_the_restart_is_resolved_once_by_one_of_the_replicas() {
    let prefix = unique("restart_recovered");
    let clock = ManualClock::new();
    let db = StaticProbe::new("database", ProbeOutcome::down("connection refused"));
    let (before, inbox) = process(&db, &prefix, &clock, true);
    before.run_once().await;
    assert_eq!(inbox.alerts().len(), 1);
    drop(before);

    // The database came back while the service was restarting: two new replicas start on a passing probe.
    db.set(ProbeOutcome::up());
    let (a, inbox_a) = process(&db, &prefix, &clock, true);
    let (b, inbox_b) = process(&db, &prefix, &clock, true);
    tokio::join!(a.run_once(), b.run_once());
    a.run_once().await;
    let resolutions: Vec<Alert> = inbox_a.alerts().into_iter().chain(inbox_b.alerts()).collect();
    assert_eq!(resolutions.len(), 1, "exactly one resolution: {resolutions:?}");
    assert!(resolutions[0].is_resolved());
    assert_eq!(resolutions[0].fingerprint(), inbox.alerts()[0].fingerprint());

    // With nothing open, resolving on start sends nothing.
    let (c, inbox_c) = process(&db, &prefix, &clock, true);
    c.run_once().await;
    assert!(inbox_c.alerts().is_empty());
}

/// A value the test sets, read by the rule's source.
#[derive(Clone, Debug)]
struct Level(Arc<Mutex<f64>>);

impl Level {
    fn new(v: f64) -> Self {
        Self(Arc::new(Mutex::new(v)))
    }
    fn set(&self, v: f64) {
        *self.0.lock().unwrap() = v;
    }
}

/// One "process" of the threshold monitor: a rule `queue > 100` over `level`, alerting through a throttle on
/// the Redis store (its own connection, as a new process has).
fn rules_process(level: &Level, prefix: &str, clock: &ManualClock) -> (RuleEvaluator, RecordingNotifier) {
    let (stack, inbox) = replica(prefix, clock);
    let level = level.clone();
    let source = FnSource::new("queue", "items", move || {
        let v = *level.0.lock().unwrap();
        async move { Ok(Some(v)) }
    });
    let evaluator = RuleEvaluator::builder()
        .with_metric("queue", source)
        .with_rule(Rule::new("queue_length", "queue", Measure::Last).with_above(100.0).with_text("Queue length"))
        .with_clock(clock.shared())
        .with_resolve_on_start(true)
        .with_notifier(stack)
        .build()
        .unwrap();
    (evaluator, inbox)
}

/// Evaluates once and waits until the delivery task has taken `n` alerts in all (delivered or suppressed by
/// the throttle: either is a final outcome) — a condition, polled, with a bound.
async fn evaluate_until_taken(evaluator: &RuleEvaluator, n: u64) {
    evaluator.evaluate().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while evaluator.delivery_stats().delivered < n {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", evaluator.delivery_stats());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn rule_threshold_rules_survive_a_restart_resolved_once_and_not_resent_inside_their_window() {
    let prefix = unique("rules_restart");
    let clock = ManualClock::new();
    let queue = Level::new(150.0);

    let (before, inbox) = rules_process(&queue, &prefix, &clock);
    evaluate_until_taken(&before, 1).await;
    assert_eq!(before.states()[0].state, AlertState::Firing);
    assert_eq!(inbox.titles(), ["Queue length: 150 > 100"]);
    let fired = inbox.alerts()[0].clone();
    drop(before); // the deploy

    // The new process finds the rule still firing: it fires again, and the store suppresses it inside the
    // window of the earlier firing (no resolution on start either: the condition holds).
    let (after, inbox) = rules_process(&queue, &prefix, &clock);
    clock.advance(Duration::from_secs(60));
    evaluate_until_taken(&after, 1).await;
    assert_eq!(after.states()[0].state, AlertState::Firing);
    assert!(inbox.alerts().is_empty(), "still firing, inside its window: {:?}", inbox.titles());

    // Its recovery is resolved exactly once.
    queue.set(20.0);
    evaluate_until_taken(&after, 2).await;
    after.evaluate().await;
    after.evaluate().await;
    assert_eq!(after.delivery_stats().delivered, 2, "nothing more to send");
    assert_eq!(inbox.titles(), ["Queue length: back to 20"]);
    assert!(inbox.alerts()[0].is_resolved());
    assert_eq!(inbox.alerts()[0].fingerprint(), fired.fingerprint());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_a_threshold_that_recovered_during_the_restart_is_resolved_once_by_one_of_the_replicas() {
    let prefix = unique("rules_restart_recovered");
    let clock = ManualClock::new();
    let queue = Level::new(150.0);
    let (before, inbox) = rules_process(&queue, &prefix, &clock);
    evaluate_until_taken(&before, 1).await;
    assert_eq!(inbox.alerts().len(), 1);
    let fired = inbox.alerts()[0].clone();
    drop(before);

    // The queue drained while the service was restarting: two new replicas start on a fine value.
    queue.set(20.0);
    let (a, inbox_a) = rules_process(&queue, &prefix, &clock);
    let (b, inbox_b) = rules_process(&queue, &prefix, &clock);
    tokio::join!(evaluate_until_taken(&a, 1), evaluate_until_taken(&b, 1));
    // Later evaluations of a fine rule send nothing more.
    a.evaluate().await;
    b.evaluate().await;
    assert_eq!((a.delivery_stats().delivered, b.delivery_stats().delivered), (1, 1));
    let resolutions: Vec<Alert> = inbox_a.alerts().into_iter().chain(inbox_b.alerts()).collect();
    assert_eq!(resolutions.len(), 1, "exactly one resolution: {resolutions:?}");
    assert!(resolutions[0].is_resolved());
    assert_eq!(resolutions[0].fingerprint(), fired.fingerprint());
    assert_eq!(resolutions[0].title, "Queue length: back to 20");

    // With nothing open, resolving on start sends nothing.
    let (c, inbox_c) = rules_process(&queue, &prefix, &clock);
    evaluate_until_taken(&c, 1).await;
    assert!(inbox_c.alerts().is_empty(), "{:?}", inbox_c.titles());
    assert_eq!(c.states()[0].state, AlertState::Inactive);
}
