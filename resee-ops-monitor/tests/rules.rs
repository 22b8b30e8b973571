//! Rule semantics, each on paused time: `for`, `keep_firing_for`, hysteresis, minimum sample, no-data and
//! error policies, NaN values, stable fingerprints, source timeouts, delivery that never blocks the
//! evaluator, cancellation, and configuration errors that name the rule and the field.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use resee_ops_core::testing::RecordingNotifier;
use resee_ops_core::{
    Alert, AlertStatus, Error, ErrorKind, Fingerprint, MetricSample, MetricSource, Notifier, NotifyOutcome, Severity,
};
use resee_ops_monitor::{
    AlertState, DataPolicy, EventCounter, Measure, Reading, RequestStats, Rule, RuleEvaluator, presets,
};
use tokio::time::advance;

const MINUTE: Duration = Duration::from_secs(60);

/// A source whose next reading the test sets.
#[derive(Clone, Debug)]
struct Gauge(Arc<Mutex<Result<Option<f64>, String>>>);

impl Gauge {
    fn new(v: f64) -> Self {
        Self(Arc::new(Mutex::new(Ok(Some(v)))))
    }
    fn set(&self, v: f64) {
        *self.0.lock().unwrap() = Ok(Some(v));
    }
    fn empty(&self) {
        *self.0.lock().unwrap() = Ok(None);
    }
    fn fail(&self, why: &str) {
        *self.0.lock().unwrap() = Err(why.to_owned());
    }
}

#[async_trait]
impl MetricSource for Gauge {
    fn name(&self) -> &str {
        "gauge"
    }
    fn unit(&self) -> &str {
        "items"
    }
    async fn read(&self) -> Result<Option<MetricSample>, Error> {
        match &*self.0.lock().unwrap() {
            Ok(v) => Ok(v.map(MetricSample::new)),
            Err(why) => Err(Error::new(ErrorKind::Unavailable, why.clone())),
        }
    }
}

fn rule() -> Rule {
    Rule::new("queue_length", "queue", Measure::Last).with_above(100.0).with_text("Queue length")
}

fn evaluator(rules: impl IntoIterator<Item = Rule>, gauge: &Gauge, inbox: &RecordingNotifier) -> RuleEvaluator {
    RuleEvaluator::builder()
        .with_metric("queue", gauge.clone())
        .with_rules(rules)
        .with_notifier(Arc::new(inbox.clone()))
        .with_repeat_interval(Duration::ZERO)
        .build()
        .unwrap()
}

/// Lets the delivery task run.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

async fn step(ev: &RuleEvaluator, by: Duration) -> AlertState {
    advance(by).await;
    ev.evaluate().await;
    settle().await;
    ev.states()[0].state
}

#[tokio::test(start_paused = true)]
async fn fires_at_once_without_for_and_resolves_when_the_condition_clears() {
    let (g, inbox) = (Gauge::new(50.0), RecordingNotifier::new());
    let ev = evaluator([rule()], &g, &inbox);
    assert_eq!(ev.states()[0].state, AlertState::Inactive, "before the first evaluation");
    assert_eq!(step(&ev, MINUTE).await, AlertState::Inactive);
    g.set(150.0);
    assert_eq!(step(&ev, MINUTE).await, AlertState::Firing);
    assert_eq!(step(&ev, MINUTE).await, AlertState::Firing, "no second alert while firing");
    g.set(100.0);
    assert_eq!(step(&ev, MINUTE).await, AlertState::Inactive, "`>`: 100 is not above 100");
    assert_eq!(inbox.titles(), ["Queue length: 150 > 100", "Queue length: back to 100"]);
    let state = &ev.states()[0];
    assert_eq!((state.value, state.threshold, state.reading.clone()), (Some(100.0), 100.0, Reading::Value));
}

#[tokio::test(start_paused = true)]
async fn for_keeps_the_rule_pending_and_one_clear_evaluation_resets_it() {
    let (g, inbox) = (Gauge::new(150.0), RecordingNotifier::new());
    let ev = evaluator([rule().with_for(5 * MINUTE)], &g, &inbox);
    assert_eq!(step(&ev, MINUTE).await, AlertState::Pending);
    let since = ev.states()[0].since;
    assert!(since.is_some());
    assert_eq!(step(&ev, 4 * MINUTE).await, AlertState::Pending, "4 of 5 minutes");
    assert_eq!(ev.states()[0].since, since, "since: when it became pending");
    g.set(10.0);
    assert_eq!(step(&ev, Duration::from_secs(30)).await, AlertState::Inactive);
    g.set(150.0);
    assert_eq!(step(&ev, Duration::from_secs(30)).await, AlertState::Pending, "the clock starts again");
    assert_eq!(step(&ev, 4 * MINUTE).await, AlertState::Pending);
    assert!(inbox.alerts().is_empty(), "pending sends nothing");
    assert_eq!(step(&ev, MINUTE).await, AlertState::Firing);
    assert_eq!(inbox.titles(), ["Queue length: 150 > 100"]);
}

#[tokio::test(start_paused = true)]
async fn keep_firing_for_holds_the_alert_through_short_dips() {
    let (g, inbox) = (Gauge::new(150.0), RecordingNotifier::new());
    let ev = evaluator([rule().with_keep_firing_for(3 * MINUTE)], &g, &inbox);
    assert_eq!(step(&ev, MINUTE).await, AlertState::Firing);
    g.set(50.0);
    assert_eq!(step(&ev, MINUTE).await, AlertState::Firing, "1 of 3 minutes clear");
    g.set(150.0);
    assert_eq!(step(&ev, MINUTE).await, AlertState::Firing, "back: nothing was resolved");
    g.set(50.0);
    assert_eq!(step(&ev, MINUTE).await, AlertState::Firing);
    assert_eq!(step(&ev, MINUTE).await, AlertState::Firing);
    assert_eq!(step(&ev, MINUTE).await, AlertState::Inactive, "3 minutes since it last held");
    assert_eq!(inbox.titles(), ["Queue length: 150 > 100", "Queue length: back to 50"]);
}

#[tokio::test(start_paused = true)]
async fn hysteresis_clears_only_below_the_clear_threshold() {
    let (g, inbox) = (Gauge::new(0.06), RecordingNotifier::new());
    let r = Rule::new("error_rate", "queue", Measure::Last).with_above(0.05).with_clear_threshold(0.04);
    let ev = evaluator([r], &g, &inbox);
    assert_eq!(step(&ev, MINUTE).await, AlertState::Firing);
    g.set(0.045);
    assert_eq!(step(&ev, MINUTE).await, AlertState::Firing, "between 4 % and 5 %: still firing");
    g.set(0.04);
    assert_eq!(step(&ev, MINUTE).await, AlertState::Inactive, "at 4 %: no longer above the clear threshold");
    g.set(0.045);
    assert_eq!(step(&ev, MINUTE).await, AlertState::Inactive, "inactive: the fire threshold applies");
    assert_eq!(inbox.alerts().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn minimum_sample_is_not_enough_data_rather_than_a_hundred_percent() {
    let stats = RequestStats::new();
    let inbox = RecordingNotifier::new();
    let ev = RuleEvaluator::builder()
        .with_source("http", stats.clone())
        .with_rule(
            Rule::new("error_rate", "http", Measure::ratio(3600 * Duration::from_secs(1)))
                .with_above(0.05)
                .with_min_samples(20),
        )
        .with_notifier(Arc::new(inbox.clone()))
        .build()
        .unwrap();
    ev.evaluate().await;
    assert_eq!(ev.states()[0].reading, Reading::NoData { reason: "no data".into() }, "no requests at all");
    for _ in 0..3 {
        stats.record(Some("/pay"), 503, Duration::from_millis(5));
    }
    ev.evaluate().await;
    let s = &ev.states()[0];
    assert_eq!(s.state, AlertState::Inactive, "3 failed requests of 3 are not a 100 % error rate");
    assert_eq!(s.reading, Reading::NoData { reason: "not enough data (3 of 20 observations)".into() });
    assert_eq!(s.observations, Some(3));
    for _ in 0..17 {
        stats.record(Some("/pay"), 200, Duration::from_millis(5));
    }
    ev.evaluate().await;
    settle().await;
    assert_eq!(ev.states()[0].state, AlertState::Firing, "3 of 20 = 15 %");
    assert_eq!(inbox.alerts()[0].fields.iter().find(|f| f.name == "Observations").unwrap().value, "20");
}

#[tokio::test(start_paused = true)]
async fn keep_state_policy_never_clears_a_firing_alert_on_a_broken_source() {
    let (g, inbox) = (Gauge::new(150.0), RecordingNotifier::new());
    let ev = evaluator([rule()], &g, &inbox);
    assert_eq!(step(&ev, MINUTE).await, AlertState::Firing);
    g.fail("connection refused");
    for _ in 0..5 {
        assert_eq!(step(&ev, MINUTE).await, AlertState::Firing);
    }
    let s = &ev.states()[0];
    assert_eq!(s.reading, Reading::Error { message: "source `gauge`: unavailable: connection refused".into() });
    assert_eq!(s.value, Some(150.0), "the last value is kept");
    g.empty();
    assert_eq!(step(&ev, MINUTE).await, AlertState::Firing, "no data: kept too");
    assert_eq!(inbox.alerts().len(), 1, "nothing resolved");
    // And an inactive rule stays inactive.
    let (g, inbox) = (Gauge::new(1.0), RecordingNotifier::new());
    let ev = evaluator([rule()], &g, &inbox);
    g.fail("down");
    assert_eq!(step(&ev, MINUTE).await, AlertState::Inactive);
}

#[tokio::test(start_paused = true)]
async fn alert_policy_fires_on_errors_and_says_so() {
    let (g, inbox) = (Gauge::new(1.0), RecordingNotifier::new());
    let ev = evaluator([rule().with_on_error(DataPolicy::Alert).with_for(2 * MINUTE)], &g, &inbox);
    assert_eq!(step(&ev, MINUTE).await, AlertState::Inactive);
    g.fail("connection refused");
    assert_eq!(step(&ev, MINUTE).await, AlertState::Pending, "`for` applies to errors too");
    assert_eq!(step(&ev, 2 * MINUTE).await, AlertState::Firing);
    assert_eq!(inbox.titles(), ["Queue length: source error: source `gauge`: unavailable: connection refused"]);
    g.set(1.0);
    assert_eq!(step(&ev, MINUTE).await, AlertState::Inactive);
    assert_eq!(inbox.titles()[1], "Queue length: back to 1");
}

#[tokio::test(start_paused = true)]
async fn ok_policy_clears_but_the_resolution_says_it_was_the_policy() {
    let (g, inbox) = (Gauge::new(150.0), RecordingNotifier::new());
    let ev = evaluator([rule().with_on_no_data(DataPolicy::Ok)], &g, &inbox);
    assert_eq!(step(&ev, MINUTE).await, AlertState::Firing);
    g.empty();
    assert_eq!(step(&ev, MINUTE).await, AlertState::Inactive);
    let resolved = &inbox.alerts()[1];
    assert_eq!(resolved.status, AlertStatus::Resolved);
    assert_eq!(resolved.title, "Queue length: cleared by policy (no data)");
    assert!(resolved.text.contains("not by a value"), "{}", resolved.text);
}

#[tokio::test(start_paused = true)]
async fn nan_and_infinite_values_are_errors_never_firings() {
    let (g, inbox) = (Gauge::new(f64::NAN), RecordingNotifier::new());
    let ev = RuleEvaluator::builder()
        .with_metric("queue", g.clone())
        .with_rule(rule())
        .with_rule(Rule::new("queue_low", "queue", Measure::Last).with_below(1.0))
        .with_notifier(Arc::new(inbox.clone()))
        .build()
        .unwrap();
    for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        g.set(v);
        ev.evaluate().await;
        settle().await;
        for s in ev.states() {
            assert_eq!(s.state, AlertState::Inactive, "{v}: {s:?}");
            assert!(
                matches!(&s.reading, Reading::Error { message } if message.contains("not a finite number")),
                "{s:?}"
            );
        }
    }
    assert!(inbox.alerts().is_empty());
}

#[tokio::test(start_paused = true)]
async fn alerts_have_stable_fingerprints_and_carry_value_and_threshold() {
    let (g, inbox) = (Gauge::new(150.0), RecordingNotifier::new());
    let r = rule().with_label("queue", "celery").with_severity(Severity::Error);
    let ev = evaluator([r], &g, &inbox);
    step(&ev, MINUTE).await;
    g.set(90.0);
    step(&ev, MINUTE).await;
    g.set(400.0);
    step(&ev, MINUTE).await;
    let alerts = inbox.alerts();
    assert_eq!(alerts.len(), 3);
    let expected = Fingerprint::compute("queue_length", "monitor", [("queue", "celery")]);
    assert!(alerts.iter().all(|a| a.fingerprint() == expected), "name + labels only, whatever the value");
    assert_eq!(alerts[0].severity, Severity::Error);
    assert_eq!(alerts[1].status, AlertStatus::Resolved);
    let field = |a: &Alert, n: &str| a.fields.iter().find(|f| f.name == n).map(|f| f.value.clone());
    assert_eq!(field(&alerts[0], "Value").as_deref(), Some("150"));
    assert_eq!(field(&alerts[0], "Threshold").as_deref(), Some("> 100"));
    assert_eq!(field(&alerts[1], "Value").as_deref(), Some("90"));
    assert_eq!(field(&alerts[2], "Value").as_deref(), Some("400"));
}

#[tokio::test(start_paused = true)]
async fn firing_rules_are_reminded_every_repeat_interval() {
    let (g, inbox) = (Gauge::new(150.0), RecordingNotifier::new());
    let ev = RuleEvaluator::builder()
        .with_metric("queue", g.clone())
        .with_rule(rule())
        .with_notifier(Arc::new(inbox.clone()))
        .with_repeat_interval(10 * MINUTE)
        .build()
        .unwrap();
    step(&ev, MINUTE).await;
    for _ in 0..9 {
        step(&ev, MINUTE).await;
    }
    assert_eq!(inbox.alerts().len(), 1);
    step(&ev, MINUTE).await;
    assert_eq!(inbox.alerts().len(), 2, "reminder after 10 minutes");
}

/// A source that never answers.
#[derive(Debug)]
struct Hung;

#[async_trait]
impl MetricSource for Hung {
    fn name(&self) -> &str {
        "hung"
    }
    fn unit(&self) -> &str {
        "items"
    }
    async fn read(&self) -> Result<Option<MetricSample>, Error> {
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_hung_source_costs_its_timeout_and_the_other_rules_still_run() {
    let (g, inbox) = (Gauge::new(150.0), RecordingNotifier::new());
    let ev = RuleEvaluator::builder()
        .with_metric("queue", g.clone())
        .with_metric("hung", Hung)
        .with_source_timeout("hung", Duration::from_secs(2))
        .with_rule(Rule::new("stuck", "hung", Measure::Last).with_above(1.0))
        .with_rule(rule())
        .with_notifier(Arc::new(inbox.clone()))
        .build()
        .unwrap();
    let started = tokio::time::Instant::now();
    ev.evaluate().await;
    assert_eq!(started.elapsed(), Duration::from_secs(2), "reads run concurrently, each under its timeout");
    let states = ev.states();
    assert_eq!(states[0].reading, Reading::Error { message: "source `hung` did not answer within 2s".into() });
    assert_eq!(states[1].state, AlertState::Firing);
}

/// A notifier that never answers.
#[derive(Debug)]
struct Stuck;

#[async_trait]
impl Notifier for Stuck {
    async fn notify(&self, _alert: &Alert) -> NotifyOutcome {
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_stuck_notifier_never_blocks_evaluation() {
    let g = Gauge::new(150.0);
    let ev = RuleEvaluator::builder()
        .with_metric("queue", g.clone())
        .with_rule(rule())
        .with_notifier(Arc::new(Stuck))
        .build()
        .unwrap();
    for i in 0..5 {
        g.set(if i % 2 == 0 { 150.0 } else { 50.0 });
        tokio::time::timeout(Duration::from_millis(1), ev.evaluate())
            .await
            .expect("evaluation does not wait for delivery");
    }
    assert_eq!(ev.evaluations(), 5);
    assert_eq!(ev.states()[0].state, AlertState::Firing);
}

#[tokio::test(start_paused = true)]
async fn an_undelivered_alert_is_sent_again_at_the_next_evaluation_in_order() {
    let (g, inbox) = (Gauge::new(150.0), RecordingNotifier::new());
    inbox.push_outcome(NotifyOutcome::failure(Error::new(ErrorKind::Unavailable, "slack down")));
    let ev = evaluator([rule()], &g, &inbox);
    step(&ev, MINUTE).await;
    assert!(inbox.alerts().is_empty());
    assert_eq!(ev.delivery_stats().failed, 1);
    g.set(50.0);
    step(&ev, MINUTE).await;
    assert_eq!(
        inbox.titles(),
        ["Queue length: 150 > 100", "Queue length: back to 50"],
        "firing first, then resolution"
    );
    assert_eq!(ev.delivery_stats().delivered, 2);
}

#[tokio::test(start_paused = true)]
async fn an_alert_refused_for_good_is_dropped_and_counted_not_retried() {
    let (g, inbox) = (Gauge::new(150.0), RecordingNotifier::new());
    inbox.push_outcome(NotifyOutcome::failure(Error::new(ErrorKind::InvalidInput, "channel_not_found")));
    let ev = evaluator([rule()], &g, &inbox);
    step(&ev, MINUTE).await;
    g.set(50.0);
    step(&ev, MINUTE).await;
    assert_eq!(inbox.titles(), ["Queue length: back to 50"]);
    let stats = ev.delivery_stats();
    assert_eq!((stats.delivered, stats.failed, stats.refused), (1, 1, 1));
    assert_eq!(inbox.attempts(), 2);
}

#[tokio::test(start_paused = true)]
async fn through_a_dispatcher_the_final_outcome_counts_not_the_queueing() {
    use resee_ops_core::{DispatcherConfig, NotifierExt};
    let (g, inbox) = (Gauge::new(150.0), RecordingNotifier::new());
    inbox.push_outcome(NotifyOutcome::failure(Error::new(ErrorKind::Unavailable, "slack down")));
    let dispatcher = inbox.clone().dispatched(DispatcherConfig::default());
    let ev = RuleEvaluator::builder()
        .with_metric("queue", g.clone())
        .with_rule(rule())
        .with_notifier(Arc::new(dispatcher.clone()))
        .build()
        .unwrap();
    ev.evaluate().await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(ev.delivery_stats().failed, 1, "queued by the dispatcher, then failed: not delivered");
    advance(MINUTE).await;
    ev.evaluate().await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(inbox.titles(), ["Queue length: 150 > 100"], "sent again at the next evaluation");
    assert_eq!(ev.delivery_stats().delivered, 1);
    dispatcher.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn a_flapping_rule_sends_one_notice_and_holds_its_alerts_until_it_settles() {
    use resee_ops_core::FlapConfig;
    use resee_ops_core::testing::TokioClock;
    let (g, inbox) = (Gauge::new(150.0), RecordingNotifier::new());
    let ev = RuleEvaluator::builder()
        .with_metric("queue", g.clone())
        .with_rule(rule())
        .with_notifier(Arc::new(inbox.clone()))
        .with_repeat_interval(Duration::ZERO)
        .with_flap(FlapConfig::new(2, 10 * MINUTE))
        .with_clock(TokioClock::at(chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap()).shared())
        .build()
        .unwrap();
    step(&ev, MINUTE).await; // fires
    g.set(50.0);
    step(&ev, MINUTE).await; // resolves
    g.set(150.0);
    step(&ev, MINUTE).await; // a third change in 10 minutes: flapping
    g.set(50.0);
    step(&ev, MINUTE).await; // held
    g.set(150.0);
    assert_eq!(step(&ev, MINUTE).await, AlertState::Firing, "the state itself is never held");
    assert_eq!(inbox.titles(), ["Queue length: 150 > 100", "Queue length: back to 50", "Queue length is flapping"]);
    for _ in 0..9 {
        step(&ev, MINUTE).await;
    }
    assert_eq!(inbox.alerts().len(), 3, "held while it keeps firing for less than the window");
    step(&ev, MINUTE).await;
    let titles = inbox.titles();
    assert_eq!(titles[3..], ["Queue length is steady again", "Queue length: 150 > 100"], "{titles:?}");
    let notice = &inbox.alerts()[2];
    assert_eq!((notice.name.as_str(), notice.severity), ("queue_length_flapping", Severity::Warning));
    assert_eq!(inbox.alerts()[3].fingerprint(), notice.fingerprint(), "the notice is resolved");
}

/// `resolve_on_start` (the Redis-backed restart tests are in `throttle_redis.rs`): the first evaluation that
/// decides sends a resolution when the rule is fine, nothing when it holds; only once; not counted as a
/// flap change; off by default.
#[tokio::test(start_paused = true)]
async fn resolve_on_start_sends_one_resolution_at_the_first_decisive_evaluation() {
    use resee_ops_core::FlapConfig;
    let build = |g: &Gauge, inbox: &RecordingNotifier, resolve: bool| {
        RuleEvaluator::builder()
            .with_metric("queue", g.clone())
            .with_rule(rule().with_on_no_data(DataPolicy::KeepState))
            .with_notifier(Arc::new(inbox.clone()))
            .with_repeat_interval(Duration::ZERO)
            .with_flap(FlapConfig::new(1, 10 * MINUTE))
            .with_resolve_on_start(resolve)
            .build()
            .unwrap()
    };

    // Off by default: a fine rule sends nothing.
    let (g, inbox) = (Gauge::new(50.0), RecordingNotifier::new());
    let ev = build(&g, &inbox, false);
    step(&ev, MINUTE).await;
    assert!(inbox.alerts().is_empty());

    // On: no data (kept state) decides nothing; the first value inside the threshold resolves, once.
    let (g, inbox) = (Gauge::new(50.0), RecordingNotifier::new());
    g.empty();
    let ev = build(&g, &inbox, true);
    step(&ev, MINUTE).await;
    assert!(inbox.alerts().is_empty(), "{:?}", inbox.titles());
    g.set(50.0);
    assert_eq!(step(&ev, MINUTE).await, AlertState::Inactive);
    step(&ev, MINUTE).await;
    assert_eq!(inbox.titles(), ["Queue length: back to 50"]);
    let resolution = &inbox.alerts()[0];
    assert!(resolution.is_resolved());
    let firing = Alert::new("queue_length", Severity::Error, "x").with_source("monitor");
    assert_eq!(resolution.fingerprint(), firing.fingerprint(), "the fingerprint of the rule's firing");
    // Not a flap change: with at most one change per window, a firing and its resolution still go out as such.
    g.set(150.0);
    step(&ev, MINUTE).await;
    g.set(50.0);
    step(&ev, MINUTE).await;
    assert_eq!(inbox.titles()[1..], ["Queue length: 150 > 100", "Queue length is flapping"]);

    // On, but the rule holds at the start: it fires, no resolution.
    let (g, inbox) = (Gauge::new(150.0), RecordingNotifier::new());
    let ev = build(&g, &inbox, true);
    assert_eq!(step(&ev, MINUTE).await, AlertState::Firing);
    assert_eq!(inbox.titles(), ["Queue length: 150 > 100"]);
}

#[tokio::test(start_paused = true)]
async fn spawn_runs_on_the_interval_until_shut_down() {
    let (g, inbox) = (Gauge::new(1.0), RecordingNotifier::new());
    let ev = RuleEvaluator::builder()
        .with_metric("queue", g.clone())
        .with_rule(rule())
        .with_interval(Duration::from_secs(30))
        .with_notifier(Arc::new(inbox.clone()))
        .build()
        .unwrap();
    let handle = ev.spawn();
    settle().await;
    assert_eq!(ev.evaluations(), 1, "one at once");
    for _ in 0..3 {
        advance(Duration::from_secs(30)).await;
        settle().await;
    }
    assert_eq!(ev.evaluations(), 4);
    handle.shutdown().await;
    advance(Duration::from_secs(300)).await;
    settle().await;
    assert_eq!(ev.evaluations(), 4, "cancelled");
}

#[tokio::test(start_paused = true)]
async fn event_counter_windows_slide() {
    let counter = EventCounter::new();
    let inbox = RecordingNotifier::new();
    let ev = RuleEvaluator::builder()
        .with_source("payments", counter.clone())
        .with_rule(presets().remove(0))
        .with_notifier(Arc::new(inbox.clone()))
        .build()
        .unwrap();
    counter.record_n("payment_failed", 6);
    counter.record("something_else");
    advance(30 * MINUTE).await;
    counter.record_n("payment_failed", 5);
    ev.evaluate().await;
    settle().await;
    assert_eq!(ev.states()[0].value, Some(11.0));
    assert_eq!(ev.states()[0].state, AlertState::Firing);
    advance(31 * MINUTE).await;
    ev.evaluate().await;
    settle().await;
    assert_eq!(ev.states()[0].value, Some(5.0), "the first six left the hour");
    assert_eq!(ev.states()[0].state, AlertState::Inactive);
    assert_eq!(
        inbox.titles(),
        ["Payment failures in the last hour: 11 > 10", "Payment failures in the last hour: back to 5"]
    );
}

#[tokio::test(start_paused = true)]
async fn event_counter_memory_is_bounded() {
    let counter = EventCounter::builder().with_max_events(3).build().unwrap();
    for i in 0..100 {
        counter.record(&format!("event_{i}"));
    }
    assert_eq!(counter.events(), ["<other>", "event_0", "event_1", "event_2"]);
    assert_eq!(counter.count("<other>", MINUTE), 97, "nothing is lost");
}

fn build_err(rules: impl IntoIterator<Item = Rule>) -> String {
    let ev = RuleEvaluator::builder()
        .with_metric("queue", Gauge::new(1.0))
        .with_source("http", RequestStats::new())
        .with_source("payments", EventCounter::new())
        .with_rules(rules)
        .build();
    ev.unwrap_err().to_string()
}

#[test]
fn configuration_errors_name_the_rule_and_the_field() {
    let err = build_err([Rule::new("r1", "nowhere", Measure::Last)]);
    assert_eq!(
        err,
        "invalid_config: rule `r1`: field `source`: unknown source `nowhere` (known: http, payments, queue)"
    );
    let err = build_err([Rule::new("r2", "queue", Measure::Last).with_above(f64::NAN)]);
    assert!(err.contains("rule `r2`: field `threshold`: must be a finite number, got NaN"), "{err}");
    let err = build_err([Rule::new("r3", "http", Measure::quantile(1.0, MINUTE)).with_above(1.0)]);
    assert!(err.contains("rule `r3`: field `value.q`: must be strictly between 0 and 1, got 1"), "{err}");
    let err = build_err([Rule::new("r4", "http", Measure::quantile(0.0, MINUTE)).with_above(1.0)]);
    assert!(err.contains("rule `r4`: field `value.q`"), "{err}");
    let err = build_err([Rule::new("r5", "http", Measure::ratio(Duration::ZERO))]);
    assert!(err.contains("rule `r5`: field `value.window`: must be above zero"), "{err}");
    let err = build_err([Rule::new("r6", "http", Measure::ratio(2 * 3600 * Duration::from_secs(1)))]);
    assert!(
        err.contains("rule `r6`: field `value`: the window 7200s is longer than source `http` keeps (3600s)"),
        "{err}"
    );
    let err = build_err([Rule::new("r7", "queue", Measure::ratio(MINUTE))]);
    assert!(err.contains("rule `r7`: field `value`: source `gauge` only has a current value, not a ratio"), "{err}");
    let err = build_err([Rule::new("r8", "payments", Measure::count(MINUTE))]);
    assert!(err.contains("rule `r8`: field `value`: source `events` needs the event name as the series"), "{err}");
    let err = build_err([Rule::new("r9", "queue", Measure::Last).with_above(5.0).with_clear_threshold(6.0)]);
    assert!(err.contains("rule `r9`: field `clear_threshold`: 6 is on the alerting side of `> 5`"), "{err}");
    let err = build_err([rule(), rule()]);
    assert!(err.contains("rule `queue_length`: field `name`: another rule has the same name"), "{err}");
    let err = build_err([Rule::new("r10", "queue", Measure::Last).with_above(1.0).with_clear_threshold(f64::INFINITY)]);
    assert!(err.contains("rule `r10`: field `clear_threshold`"), "{err}");
    // An interval that would spin a core is refused by name; the minimum itself builds.
    let with_interval = |every: Duration| {
        RuleEvaluator::builder().with_metric("queue", Gauge::new(1.0)).with_rules([rule()]).with_interval(every).build()
    };
    let err = with_interval(Duration::from_nanos(1)).unwrap_err().to_string();
    assert!(err.contains("rule evaluator: interval must be at least 10ms, not 1ns"), "{err}");
    assert!(with_interval(resee_ops_monitor::MIN_INTERVAL).is_ok());
}

#[test]
fn configuration_from_json_rejects_negative_windows_and_durations_by_name() {
    let parse = |json: &str| serde_json::from_str::<Rule>(json).map_err(|e| e.to_string());
    let err = parse(r#"{"name": "p95", "source": "http", "value": {"kind": "quantile", "q": 0.95, "window": "-5m"}, "threshold": 2}"#).unwrap_err();
    assert!(err.contains("rule `p95`: field `value.window`: must not be negative, got \"-5m\""), "{err}");
    let err = parse(r#"{"name": "e", "source": "http", "value": {"kind": "ratio", "window": -60}, "threshold": 0.05}"#)
        .unwrap_err();
    assert!(err.contains("rule `e`: field `value.window`: must not be negative, got -60"), "{err}");
    let err = parse(r#"{"name": "e", "source": "http", "value": {"kind": "ratio", "window": "1h"}, "threshold": 0.05, "for": "-1m"}"#).unwrap_err();
    assert!(err.contains("rule `e`: field `for`: must not be negative"), "{err}");
    let err =
        parse(r#"{"name": "e", "source": "http", "value": {"kind": "ratio", "window": "soon"}, "threshold": 0.05}"#)
            .unwrap_err();
    assert!(err.contains("rule `e`: field `value.window`: not a duration"), "{err}");
    let err = parse(r#"{"name": "e", "source": "http", "value": {"kind": "ratio"}, "threshold": 0.05}"#).unwrap_err();
    assert!(err.contains("rule `e`: field `value.window`: is required"), "{err}");
    let err =
        parse(r#"{"name": "q", "source": "http", "value": {"kind": "quantile", "window": "5m"}, "threshold": 2}"#)
            .unwrap_err();
    assert!(err.contains("rule `q`: field `value.q`: is required"), "{err}");

    let ok = parse(
        r#"{"name": "error_rate", "source": "http", "value": {"kind": "ratio", "window": "1h"}, "comparison": ">=",
            "threshold": 0.05, "clear_threshold": 0.04, "severity": "critical", "labels": {"team": "web"},
            "text": "Error rate", "for": "2m", "keep_firing_for": "5m", "min_samples": 20,
            "on_no_data": "ok", "on_error": "alert"}"#,
    )
    .unwrap();
    assert_eq!(ok.for_, 2 * MINUTE);
    assert_eq!(ok.keep_firing_for, 5 * MINUTE);
    assert_eq!(ok.severity, Severity::Error);
    assert_eq!(ok.on_error, DataPolicy::Alert);
    assert_eq!(ok.value, Measure::ratio(3600 * Duration::from_secs(1)));
    // What is written back reads the same.
    let again: Rule = serde_json::from_str(&serde_json::to_string(&ok).unwrap()).unwrap();
    assert_eq!(again, ok);
}

#[test]
fn presets_are_the_seeds_four_rules() {
    let rules = presets();
    let summary: Vec<(String, String, f64, Severity)> =
        rules.iter().map(|r| (r.name.clone(), r.source.clone(), r.threshold, r.severity)).collect();
    assert_eq!(
        summary,
        [
            ("payment_failures".to_owned(), "payments".to_owned(), 10.0, Severity::Error),
            ("error_rate".to_owned(), "http".to_owned(), 0.05, Severity::Error),
            ("api_latency_p95".to_owned(), "http".to_owned(), 2.0, Severity::Warning),
            ("queue_length".to_owned(), "queue".to_owned(), 100.0, Severity::Warning),
        ]
    );
    assert_eq!(rules[2].value, Measure::quantile(0.95, 5 * MINUTE));
    // They build against the sources they name.
    RuleEvaluator::builder()
        .with_source("http", RequestStats::new())
        .with_source("payments", EventCounter::new())
        .with_metric("queue", Gauge::new(0.0))
        .with_rules(rules)
        .build()
        .unwrap();
}
