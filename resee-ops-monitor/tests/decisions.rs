//! The health monitor's delivery decisions against a mocked receiver (mockall): what it sends, how often,
//! and when it stops, with the exact calls asserted.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mockall::Sequence;
use mockall::predicate::function;
use resee_ops_core::testing::{ManualClock, StaticProbe};
use resee_ops_core::{Alert, Error, ErrorKind, HealthRegistry, Notifier, NotifyOutcome, ProbeOutcome, Registration};
use resee_ops_monitor::HealthMonitor;

mockall::mock! {
    Receiver {}
    #[async_trait]
    impl Notifier for Receiver {
        async fn notify(&self, alert: &Alert) -> NotifyOutcome;
        async fn notify_final(&self, alert: &Alert) -> NotifyOutcome;
    }
}

impl std::fmt::Debug for MockReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MockReceiver")
    }
}

fn firing() -> impl Fn(&Alert) -> bool {
    |a: &Alert| !a.is_resolved()
}

fn resolution() -> impl Fn(&Alert) -> bool {
    |a: &Alert| a.is_resolved()
}

/// Expects `times` calls of `notify_final` with alerts matching `which`, in order, answered by `answer`.
fn expect(
    receiver: &mut MockReceiver,
    order: &mut Sequence,
    which: impl Fn(&Alert) -> bool + Send + 'static,
    times: usize,
    answer: impl Fn(&Alert) -> NotifyOutcome + Send + 'static,
) {
    receiver.expect_notify_final().with(function(which)).times(times).in_sequence(order).returning(answer);
}

fn monitor(probe: &StaticProbe, receiver: MockReceiver, clock: &ManualClock) -> HealthMonitor {
    HealthMonitor::builder(HealthRegistry::new().with_registration(Registration::new(probe.clone())))
        .with_failures_before_down(1)
        .with_passes_before_up(1)
        .with_notifier(Arc::new(receiver))
        .with_clock(clock.shared())
        .build()
        .unwrap()
}

/// Alert semantics, rule "retried until delivered or permanently refused": a refused resolution is not
/// sent again; the monitor asks for final outcomes (`notify_final`), never the queue's word (`notify`).
#[tokio::test(start_paused = true)]
async fn rule_a_permanently_refused_resolution_is_not_resent() {
    let mut receiver = MockReceiver::new();
    let mut order = Sequence::new();
    expect(&mut receiver, &mut order, firing(), 1, |_| NotifyOutcome::Delivered);
    expect(&mut receiver, &mut order, resolution(), 1, |_| {
        NotifyOutcome::PermanentFailure(Error::new(ErrorKind::NotFound, "channel_is_archived"))
    });
    receiver.expect_notify().never();

    let clock = ManualClock::new();
    let db = StaticProbe::new("database", ProbeOutcome::down("refused"));
    let monitor = monitor(&db, receiver, &clock);
    monitor.run_once().await;
    db.set(ProbeOutcome::up());
    for _ in 0..5 {
        clock.advance(Duration::from_secs(30));
        monitor.run_once().await;
    }
    // The mock checks `times` when the monitor (and with it the mock) is dropped.
}

/// Alert semantics, rule "retried until delivered": a firing that fails temporarily is sent again on
/// each cycle until it is delivered, then not again before the reminder.
#[tokio::test(start_paused = true)]
async fn rule_a_temporarily_failed_firing_is_resent_each_cycle_until_delivered() {
    let mut receiver = MockReceiver::new();
    let mut order = Sequence::new();
    expect(&mut receiver, &mut order, firing(), 3, |_| {
        NotifyOutcome::TemporaryFailure(Error::new(ErrorKind::Unavailable, "503"))
    });
    expect(&mut receiver, &mut order, firing(), 1, |_| NotifyOutcome::Delivered);

    let clock = ManualClock::new();
    let db = StaticProbe::new("database", ProbeOutcome::down("refused"));
    let monitor = monitor(&db, receiver, &clock);
    for _ in 0..8 {
        monitor.run_once().await;
        clock.advance(Duration::from_secs(30));
    }
}

/// A panicking receiver is a permanent refusal for that alert, not a probe stuck "in flight" forever.
#[tokio::test(start_paused = true)]
async fn a_panicking_receiver_does_not_silence_the_probe() {
    let mut receiver = MockReceiver::new();
    let mut order = Sequence::new();
    expect(&mut receiver, &mut order, firing(), 1, |_| panic!("receiver bug"));
    expect(&mut receiver, &mut order, resolution(), 1, |_| NotifyOutcome::Delivered);

    let clock = ManualClock::new();
    let db = StaticProbe::new("database", ProbeOutcome::down("refused"));
    let monitor = monitor(&db, receiver, &clock);
    monitor.run_once().await;
    clock.advance(Duration::from_secs(30));
    monitor.run_once().await;
    db.set(ProbeOutcome::up());
    monitor.run_once().await;
}

mockall::mock! {
    Probe {}
    #[async_trait]
    impl resee_ops_core::HealthProbe for Probe {
        fn name(&self) -> &str;
        async fn check(&self) -> ProbeOutcome;
    }
}

impl std::fmt::Debug for MockProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MockProbe")
    }
}

/// A probe answering `outcomes` in order, one check per cycle (asserted: the monitor runs each probe
/// exactly once a cycle).
fn scripted(outcomes: Vec<ProbeOutcome>) -> MockProbe {
    let mut probe = MockProbe::new();
    probe.expect_name().return_const("database".to_owned());
    let mut order = Sequence::new();
    for outcome in outcomes {
        probe.expect_check().times(1).in_sequence(&mut order).return_once(move || outcome);
    }
    probe
}

/// Damping, rule "reported failing only after `failures_before_down` consecutive failures": with 3, an
/// isolated failure and a pair of failures send nothing; the third failure in a row sends the firing once;
/// `passes_before_up` (2) passes send the resolution once.
#[tokio::test(start_paused = true)]
async fn damping_fires_after_consecutive_failures_and_resolves_after_consecutive_passes() {
    let (up, down) = (ProbeOutcome::up, || ProbeOutcome::down("connection refused"));
    let probe = scripted(vec![up(), down(), up(), down(), down(), down(), down(), up(), up(), up()]);
    let mut receiver = MockReceiver::new();
    let mut order = Sequence::new();
    expect(&mut receiver, &mut order, firing(), 1, |_| NotifyOutcome::Delivered);
    expect(&mut receiver, &mut order, resolution(), 1, |_| NotifyOutcome::Delivered);
    let clock = ManualClock::new();
    let monitor = HealthMonitor::builder(HealthRegistry::new().with_registration(Registration::new(probe)))
        .with_failures_before_down(3)
        .with_passes_before_up(2)
        .with_repeat_interval(Duration::ZERO)
        .with_notifier(receiver)
        .with_clock(clock.shared())
        .build()
        .unwrap();
    let mut statuses = Vec::new();
    for _ in 0..10 {
        monitor.run_once().await;
        statuses.push(monitor.report(resee_ops_core::CheckGroup::Readiness).unwrap().status);
        clock.advance(Duration::from_secs(30));
    }
    use resee_ops_core::HealthStatus::{Down, Up};
    assert_eq!(statuses, [Up, Up, Up, Up, Up, Down, Down, Down, Up, Up], "damped statuses");
}
