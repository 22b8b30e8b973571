//! HealthMonitor: damping, alerts on transitions, the cache, and the run loop, on paused time.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use resee_ops_core::testing::{ManualClock, RecordingNotifier, StaticProbe};
use resee_ops_core::{
    AlertStatus, CheckGroup, DispatcherConfig, Error, ErrorKind, HealthProbe, HealthRegistry, HealthStatus, Notifier,
    NotifierExt, NotifyOutcome, ProbeAlertText, ProbeOutcome, Registration, Severity, Throttled,
};
use resee_ops_monitor::{AlertMode, AlertText, FLAPPING_ALERT_NAME, HEALTH_ALERT_NAME, HealthMonitor, MonitorConfig};

/// A test double that speaks like the real probe of its name, as the real probes word their alerts
/// through `HealthProbe::alert_text`.
#[derive(Debug)]
struct Titled(StaticProbe);

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl HealthProbe for Titled {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn is_critical(&self) -> bool {
        self.0.is_critical()
    }
    async fn check(&self) -> ProbeOutcome {
        self.0.check().await
    }
    fn alert_text(&self, outcome: &ProbeOutcome, resolved: bool) -> ProbeAlertText {
        AlertText::for_probe(self.0.name()).alert_text(outcome, resolved)
    }
}

fn titled(probe: &StaticProbe) -> Registration {
    Registration::new(Titled(probe.clone()))
}

fn up() -> ProbeOutcome {
    ProbeOutcome::up()
}
fn down() -> ProbeOutcome {
    ProbeOutcome::down("connection refused")
}
fn disk(percent: f64) -> ProbeOutcome {
    let o = match percent {
        p if p > 90.0 => ProbeOutcome::down("above 90 %"),
        p if p > 80.0 => ProbeOutcome::degraded("above 80 %"),
        _ => ProbeOutcome::up(),
    };
    o.with_observed(percent, "percent")
}

fn monitor_of(probes: &[&StaticProbe], inbox: &RecordingNotifier, failures: u32, passes: u32) -> HealthMonitor {
    let registry = probes.iter().fold(HealthRegistry::new(), |r, p| r.with_registration(titled(p)));
    HealthMonitor::builder(registry)
        .with_failures_before_down(failures)
        .with_passes_before_up(passes)
        .with_notifier(Arc::new(inbox.clone()))
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn flapping_is_damped_in_both_directions() {
    let db = StaticProbe::new("database", up());
    let inbox = RecordingNotifier::new();
    let monitor = monitor_of(&[&db], &inbox, 3, 2);

    // (raw answer, reported status after the cycle)
    let script = [
        (up(), HealthStatus::Up),
        (down(), HealthStatus::Up),
        (down(), HealthStatus::Up),
        (up(), HealthStatus::Up), // the streak is broken
        (down(), HealthStatus::Up),
        (down(), HealthStatus::Up),
        (down(), HealthStatus::Down), // third in a row
        (up(), HealthStatus::Down),
        (down(), HealthStatus::Down), // the pass streak is broken
        (up(), HealthStatus::Down),
        (up(), HealthStatus::Up), // second in a row
    ];
    for (i, (answer, expected)) in script.into_iter().enumerate() {
        db.set(answer);
        let report = monitor.run_once().await;
        assert_eq!(report.checks["database"].status, expected, "step {i}");
        assert_eq!(monitor.report(CheckGroup::Readiness).unwrap().status, expected, "cached, step {i}");
    }
    let alerts = inbox.alerts();
    assert_eq!(inbox.titles(), ["Database connection failed", "Database connection recovered"]);
    assert_eq!(alerts[0].status, AlertStatus::Firing);
    assert_eq!(alerts[0].severity, Severity::Error);
    assert_eq!(alerts[1].status, AlertStatus::Resolved);
    assert_eq!(alerts[1].severity, Severity::Success);
    assert_eq!(alerts[0].fingerprint(), alerts[1].fingerprint());
    assert_eq!(monitor.cycles(), 11);
}

#[tokio::test(start_paused = true)]
async fn a_damped_check_says_why_it_still_passes() {
    let db = StaticProbe::new("database", up());
    let inbox = RecordingNotifier::new();
    let monitor = monitor_of(&[&db], &inbox, 3, 2);
    monitor.run_once().await;
    db.set(down());
    let report = monitor.run_once().await;
    let check = &report.checks["database"];
    assert_eq!(check.status, HealthStatus::Up);
    assert_eq!(check.output.as_deref(), Some("fail (1 of 3 before down): connection refused"));
}

/// Alert semantics, rule 1: a firing is sent when a probe's damped state turns failing and again when it
/// escalates; the same state on the next cycles sends nothing; fingerprints are stable.
#[tokio::test(start_paused = true)]
async fn rule_a_firing_is_sent_when_the_state_turns_failing_and_again_when_it_escalates() {
    let db = StaticProbe::new("database", up());
    let redis = StaticProbe::new("redis", up());
    let workers = StaticProbe::new("workers", up().with_observed(2.0, "workers"));
    let data = StaticProbe::new("disk:/data", disk(40.0)).with_critical(false);
    let inbox = RecordingNotifier::new();
    let monitor = monitor_of(&[&db, &redis, &workers, &data], &inbox, 1, 1);

    monitor.run_once().await;
    monitor.run_once().await;
    assert!(inbox.alerts().is_empty(), "healthy from the start: nothing to say");

    db.set(down());
    redis.set(down());
    workers.set(ProbeOutcome::down("no worker alive").with_observed(0.0, "workers"));
    data.set(disk(85.2));
    monitor.run_once().await;
    monitor.run_once().await; // still failing: nothing new
    let mut titles = inbox.titles();
    titles.sort();
    assert_eq!(titles, ["Database connection failed", "Disk usage 85 %", "No worker alive", "Redis connection failed"]);

    data.set(disk(93.4)); // escalation is a change
    monitor.run_once().await;
    monitor.run_once().await;
    let alerts = inbox.alerts();
    assert_eq!(alerts.len(), 5);
    assert_eq!(alerts[4].title, "Disk usage 93 %");
    assert_eq!(alerts[4].severity, Severity::Error);
    let warning = alerts.iter().find(|a| a.title == "Disk usage 85 %").unwrap();
    assert_eq!(warning.severity, Severity::Warning);
    assert_eq!(warning.fingerprint(), alerts[4].fingerprint(), "values never enter the fingerprint");

    for p in [&db, &redis] {
        p.set(up());
    }
    workers.set(up().with_observed(1.0, "workers"));
    data.set(disk(41.0));
    monitor.run_once().await;
    monitor.run_once().await;
    let alerts = inbox.alerts();
    assert_eq!(alerts.len(), 9, "{:?}", inbox.titles());
    let recoveries = &alerts[5..];
    assert!(recoveries.iter().all(|a| a.is_resolved() && a.severity == Severity::Success));
    let mut titles: Vec<_> = recoveries.iter().map(|a| a.title.as_str()).collect();
    titles.sort();
    assert_eq!(
        titles,
        [
            "Database connection recovered",
            "Disk usage back to 41 %",
            "Redis connection recovered",
            "Workers alive again"
        ]
    );

    // Every recovery resolves the fingerprint of its firing; fingerprints differ between probes.
    for r in recoveries {
        let firing = alerts[..5].iter().find(|f| f.labels == r.labels).unwrap();
        assert_eq!(firing.fingerprint(), r.fingerprint());
        assert_eq!(r.name, HEALTH_ALERT_NAME);
        assert_eq!(r.source, "monitor");
        assert_eq!(r.labels.len(), 1, "only the probe name identifies the alert: {:?}", r.labels);
    }
    let mut fps: Vec<_> = alerts[..5].iter().map(|a| a.fingerprint()).collect();
    fps.dedup();
    fps.sort();
    fps.dedup();
    assert_eq!(fps.len(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_probe_is_down_and_alerts_without_disturbing_the_others() {
    let bad = StaticProbe::panicking("custom", "index out of bounds");
    let db = StaticProbe::new("database", up());
    let inbox = RecordingNotifier::new();
    let monitor = monitor_of(&[&bad, &db], &inbox, 1, 1);
    let report = monitor.run_once().await;
    assert_eq!(report.status, HealthStatus::Down);
    assert_eq!(report.checks["custom"].status, HealthStatus::Down);
    assert!(report.checks["custom"].output.as_deref().unwrap().contains("index out of bounds"));
    assert_eq!(report.checks["database"].status, HealthStatus::Up);
    assert_eq!(inbox.titles(), ["Health check custom failed"]);
}

#[tokio::test(start_paused = true)]
async fn a_hanging_probe_costs_its_timeout_and_no_more() {
    let hung = StaticProbe::hanging("redis");
    let slow = StaticProbe::new("database", up()).with_delay(Duration::from_millis(1500));
    let registry = HealthRegistry::new()
        .with_default_timeout(Duration::from_secs(2))
        .with_registration(titled(&hung))
        .with_registration(titled(&slow));
    let monitor = HealthMonitor::builder(registry).with_failures_before_down(1).build().unwrap();
    let started = tokio::time::Instant::now();
    let report = monitor.run_once().await;
    assert_eq!(started.elapsed(), Duration::from_secs(2), "concurrent, each under its own timeout");
    assert_eq!(report.checks["redis"].output.as_deref(), Some("timed out after 2s"));
    assert_eq!(report.checks["database"].status, HealthStatus::Up);
}

#[tokio::test(start_paused = true)]
async fn the_run_loop_ticks_on_its_interval_and_stops_on_shutdown() {
    let db = StaticProbe::new("database", up()).with_delay(Duration::from_secs(1));
    let registry = HealthRegistry::new().with_registration(titled(&db));
    let monitor = HealthMonitor::builder(registry).with_interval(Duration::from_secs(10)).build().unwrap();
    assert!(monitor.report(CheckGroup::Readiness).is_none(), "nothing before the first cycle");

    let handle = monitor.spawn();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(monitor.cycles(), 1, "first cycle at once");
    tokio::time::sleep(Duration::from_secs(30)).await; // t = 31.5 s: cycles at 0, 10, 20, 30
    assert_eq!(monitor.cycles(), 4);

    // A cycle slower than the interval delays the next one; ticks never pile up.
    db.set(up());
    let slow_registry = HealthRegistry::new()
        .with_default_timeout(Duration::from_secs(60))
        .with_registration(Registration::new(StaticProbe::new("slow", up()).with_delay(Duration::from_secs(25))));
    let slow = HealthMonitor::builder(slow_registry).with_interval(Duration::from_secs(10)).build().unwrap();
    let slow_handle = slow.spawn();
    tokio::time::sleep(Duration::from_secs(60)).await; // cycles end at 25, 50 (started 0, 25)
    assert_eq!(slow.cycles(), 2);
    slow_handle.shutdown().await;

    let stop_started = tokio::time::Instant::now();
    handle.shutdown().await;
    assert!(stop_started.elapsed() <= Duration::from_secs(1), "shutdown abandons a running cycle");
    let after = monitor.cycles();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(monitor.cycles(), after, "no cycle after shutdown");
}

#[tokio::test(start_paused = true)]
async fn dropping_the_handle_stops_the_loop_too() {
    let registry = HealthRegistry::new().with_registration(Registration::new(StaticProbe::new("database", up())));
    let monitor = HealthMonitor::builder(registry).with_interval(Duration::from_secs(10)).build().unwrap();
    drop(monitor.spawn());
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(monitor.cycles() <= 1, "{}", monitor.cycles());
}

#[tokio::test(start_paused = true)]
async fn a_failed_delivery_is_retried_on_the_next_cycle() {
    let db = StaticProbe::new("database", down());
    let inbox = RecordingNotifier::new();
    inbox.push_outcome(NotifyOutcome::TemporaryFailure(resee_ops_core::Error::new(
        resee_ops_core::ErrorKind::Unavailable,
        "slack is down",
    )));
    let monitor = monitor_of(&[&db], &inbox, 1, 1);
    monitor.run_once().await;
    assert!(inbox.alerts().is_empty());
    monitor.run_once().await;
    monitor.run_once().await;
    assert_eq!(inbox.attempts(), 2, "retried once, then nothing new to say");
    assert_eq!(inbox.titles(), ["Database connection failed"]);
}

/// A failing database probe behind a 10-minute throttle, on a manual clock.
fn throttled_monitor(config: MonitorConfig) -> (StaticProbe, RecordingNotifier, ManualClock, HealthMonitor) {
    let clock = ManualClock::new();
    let inbox = RecordingNotifier::new();
    let throttled: Arc<dyn Notifier> =
        Arc::new(Throttled::new(inbox.clone()).with_window(Duration::from_secs(600)).with_clock(clock.shared()));
    let db = StaticProbe::new("database", down());
    let monitor = HealthMonitor::builder(HealthRegistry::new().with_registration(titled(&db)))
        .with_config(config)
        .with_notifier(throttled)
        .with_clock(clock.shared())
        .build()
        .unwrap();
    (db, inbox, clock, monitor)
}

#[tokio::test(start_paused = true)]
async fn every_cycle_mode_with_a_throttle_reminds_once_per_window() {
    let config = r#"{"failures_before_down": 1, "passes_before_up": 1, "alert_mode": "every_cycle"}"#;
    let (_db, inbox, clock, monitor) = throttled_monitor(serde_json::from_str(config).unwrap());
    assert_eq!(monitor.config().alert_mode, AlertMode::EveryCycle);

    for _ in 0..5 {
        monitor.run_once().await;
        clock.advance(Duration::from_secs(30));
    }
    assert_eq!(inbox.titles(), ["Database connection failed"], "throttled to one per window");
    for _ in 0..16 {
        monitor.run_once().await;
        clock.advance(Duration::from_secs(30));
    }
    assert_eq!(inbox.titles(), ["Database connection failed", "Database connection failed"], "one reminder");
}

/// Alert semantics, rule "resolution": a resolution ends the throttle window, so a probe failing again
/// right after its recovery is reported at once: the channel never says "recovered" while it is down.
#[tokio::test(start_paused = true)]
async fn rule_a_firing_after_a_delivered_resolution_is_sent_at_once() {
    let config = r#"{"failures_before_down": 1, "passes_before_up": 1}"#;
    let (db, inbox, clock, monitor) = throttled_monitor(serde_json::from_str(config).unwrap());
    monitor.run_once().await;
    clock.advance(Duration::from_secs(30));
    db.set(up());
    monitor.run_once().await;
    clock.advance(Duration::from_secs(30));
    db.set(down());
    monitor.run_once().await;
    assert_eq!(
        inbox.titles(),
        ["Database connection failed", "Database connection recovered", "Database connection failed"]
    );
    monitor.run_once().await;
    assert_eq!(inbox.alerts().len(), 3, "the same state again is not news");
}

/// Alert semantics, rule "reminder": while a probe keeps failing, a reminder goes out every
/// `repeat_interval`, counted from the last *delivered* firing; a suppressed one does not count.
#[tokio::test(start_paused = true)]
async fn rule_reminders_count_from_the_last_delivered_firing() {
    let clock = ManualClock::new();
    let inbox = RecordingNotifier::new();
    // The first firing is coalesced by some layer (say, a throttle shared with another replica).
    inbox.push_outcome(NotifyOutcome::Suppressed);
    let db = StaticProbe::new("database", down());
    let monitor = HealthMonitor::builder(HealthRegistry::new().with_registration(titled(&db)))
        .with_failures_before_down(1)
        .with_notifier(Arc::new(inbox.clone()))
        .with_repeat_interval(Duration::from_secs(300))
        .with_clock(clock.shared())
        .build()
        .unwrap();
    monitor.run_once().await;
    assert!(inbox.alerts().is_empty());
    clock.advance(Duration::from_secs(30));
    monitor.run_once().await;
    assert_eq!(inbox.titles(), ["Database connection failed"], "a suppressed firing is tried again");
    for _ in 0..9 {
        clock.advance(Duration::from_secs(30));
        monitor.run_once().await;
    }
    assert_eq!(inbox.alerts().len(), 1, "no reminder before 300 s after the delivered one");
    clock.advance(Duration::from_secs(30));
    monitor.run_once().await;
    assert_eq!(inbox.alerts().len(), 2, "reminded 300 s after the delivered firing");

    // Without anything suppressed: at 0 s, 300 s and 600 s.
    let plain = RecordingNotifier::new();
    let clock = ManualClock::new();
    let monitor = HealthMonitor::builder(HealthRegistry::new().with_registration(titled(&db)))
        .with_failures_before_down(1)
        .with_notifier(Arc::new(plain.clone()))
        .with_repeat_interval(Duration::from_secs(300))
        .with_clock(clock.shared())
        .build()
        .unwrap();
    for _ in 0..21 {
        monitor.run_once().await;
        clock.advance(Duration::from_secs(30));
    }
    assert_eq!(plain.alerts().len(), 3, "at 0 s, 300 s and 600 s");
}

/// Alert semantics, rule "retried until delivered": behind the recommended dispatcher, a resolution the
/// receiver fails twice is sent again until it arrives.
#[tokio::test(start_paused = true)]
async fn rule_a_resolution_is_retried_through_the_dispatcher_until_delivered() {
    let inbox = RecordingNotifier::new();
    let dispatcher = inbox.clone().dispatched(DispatcherConfig::default());
    let db = StaticProbe::new("database", down());
    let monitor = HealthMonitor::builder(HealthRegistry::new().with_registration(titled(&db)))
        .with_failures_before_down(1)
        .with_passes_before_up(1)
        .with_notifier(Arc::new(dispatcher.clone()))
        .build()
        .unwrap();
    monitor.run_once().await;
    assert_eq!(inbox.titles(), ["Database connection failed"]);

    let failure = || NotifyOutcome::TemporaryFailure(Error::new(ErrorKind::Unavailable, "503 from slack"));
    inbox.push_outcome(failure());
    inbox.push_outcome(failure());
    db.set(up());
    for _ in 0..4 {
        monitor.run_once().await;
    }
    assert_eq!(inbox.titles(), ["Database connection failed", "Database connection recovered"]);
    assert_eq!(inbox.attempts(), 4, "firing, two failed resolutions, the delivered one, then nothing");
    let stats = dispatcher.stats();
    assert_eq!((stats.delivered, stats.dropped_temporary_failure), (2, 2));
}

/// Alert semantics, rule "retried until delivered": the monitor never holds a lock across a delivery;
/// a receiver that takes an hour neither delays the cycles nor gets the alert twice.
#[tokio::test(start_paused = true)]
async fn rule_a_slow_delivery_never_holds_up_the_cycles() {
    let inbox = RecordingNotifier::new().with_delay(Duration::from_secs(3600));
    let db = StaticProbe::new("database", down());
    let monitor = HealthMonitor::builder(HealthRegistry::new().with_registration(titled(&db)))
        .with_failures_before_down(1)
        .with_interval(Duration::from_secs(10))
        .with_notifier(Arc::new(inbox.clone()))
        .build()
        .unwrap();
    let handle = monitor.spawn();
    tokio::time::sleep(Duration::from_secs(65)).await;
    assert_eq!(monitor.cycles(), 7, "cycles at 0, 10, ..., 60 s while the first alert is still on its way");
    assert_eq!(inbox.attempts(), 1, "an alert in flight is not sent again");
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(inbox.titles(), ["Database connection failed"]);
    handle.shutdown().await;
}

/// Alert semantics, rule "flapping": more than K changes of one probe inside the window send one
/// "flapping" notice and hold further firings and resolutions until the probe keeps one state for a
/// whole window; then the notice is resolved and the current state reported.
#[tokio::test(start_paused = true)]
async fn rule_a_flapping_probe_sends_one_notice_and_holds_changes_until_it_settles() {
    let clock = ManualClock::new();
    let inbox = RecordingNotifier::new();
    let db = StaticProbe::new("database", up());
    let config: MonitorConfig = serde_json::from_str(
        r#"{"failures_before_down": 1, "passes_before_up": 1, "repeat_interval": "0s",
            "flap": {"max_changes": 3, "window": "10m"}}"#,
    )
    .unwrap();
    let monitor = HealthMonitor::builder(HealthRegistry::new().with_registration(titled(&db)))
        .with_config(config)
        .with_notifier(Arc::new(inbox.clone()))
        .with_clock(clock.shared())
        .build()
        .unwrap();
    monitor.run_once().await;
    for answer in [down(), up(), down(), up(), down(), up(), down()] {
        clock.advance(Duration::from_secs(30));
        db.set(answer);
        monitor.run_once().await;
    }
    assert_eq!(
        inbox.titles(),
        [
            "Database connection failed",
            "Database connection recovered",
            "Database connection failed",
            "Health check database is flapping"
        ],
        "three changes pass; the fourth starts flapping and is held, and so are the ones after it"
    );
    let notice = &inbox.alerts()[3];
    assert_eq!((notice.name.as_str(), notice.severity), (FLAPPING_ALERT_NAME, Severity::Warning));
    // It stays down: one window after the last change it has settled.
    for _ in 0..19 {
        clock.advance(Duration::from_secs(30));
        monitor.run_once().await;
    }
    assert_eq!(inbox.alerts().len(), 4, "held while the window is not over");
    clock.advance(Duration::from_secs(30));
    monitor.run_once().await;
    monitor.run_once().await;
    let titles = inbox.titles();
    assert_eq!(titles[4..], ["Health check database steady again"]);
    assert!(inbox.alerts()[4].is_resolved());
    assert_eq!(inbox.alerts()[4].fingerprint(), notice.fingerprint());
    // The channel already says "failed" (the last delivered state): nothing more until a real change.
    db.set(up());
    monitor.run_once().await;
    assert_eq!(inbox.titles()[5..], ["Database connection recovered"]);
}

#[tokio::test(start_paused = true)]
async fn the_cache_serves_each_group_and_is_filled_before_alerts_are_sent() {
    let db = StaticProbe::new("database", down());
    let process = StaticProbe::new("process", up());
    let queue = StaticProbe::new("queue:celery", ProbeOutcome::down("5000 items").with_observed(5000.0, "items"))
        .with_critical(false);
    let registry = HealthRegistry::new()
        .with_registration(titled(&db))
        .with_registration(titled(&queue))
        .with_registration(titled(&process).with_groups(&[CheckGroup::Liveness]));
    let slow_inbox = RecordingNotifier::new().with_delay(Duration::from_secs(60));
    let monitor = HealthMonitor::builder(registry)
        .with_failures_before_down(1)
        .with_notifier(Arc::new(slow_inbox.clone()))
        .with_alert_text("database", AlertText::Custom { firing: "DB down".into(), resolved: "DB up".into() })
        .build()
        .unwrap();
    let cycle = tokio::spawn({
        let monitor = monitor.clone();
        async move { monitor.run_once().await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!cycle.is_finished(), "still waiting on the slow notifier");
    let ready = monitor.report(CheckGroup::Readiness).expect("cached before the alerts went out");
    assert_eq!(ready.status, HealthStatus::Down);
    assert_eq!(ready.checks.keys().collect::<Vec<_>>(), ["database", "queue:celery"]);
    let live = monitor.report(CheckGroup::Liveness).unwrap();
    assert_eq!(live.status, HealthStatus::Up, "a database outage never fails liveness");
    assert_eq!(live.checks.keys().collect::<Vec<_>>(), ["process"]);
    assert_eq!(monitor.latest().unwrap().checks.len(), 3);
    cycle.await.unwrap();
    let mut titles = slow_inbox.titles();
    titles.sort();
    assert_eq!(titles, ["DB down", "Queue length 5000 items"]);
}

#[test]
fn invalid_configurations_are_rejected() {
    let b = || HealthMonitor::builder(HealthRegistry::new());
    assert!(b().with_failures_before_down(0).build().is_err());
    assert!(b().with_passes_before_up(0).build().is_err());
    assert!(b().with_interval(Duration::ZERO).build().is_err());
    // A tiny interval would spin a core: refused with a clear error; the minimum itself is fine.
    let err = b().with_interval(Duration::from_nanos(1)).build().unwrap_err();
    assert!(err.to_string().contains("monitor interval must be at least 10ms, not 1ns"), "{err}");
    assert!(b().with_interval(resee_ops_monitor::MIN_INTERVAL).build().is_ok());
    assert!(b().build().is_ok());
    let d = MonitorConfig::default();
    assert_eq!((d.interval, d.failures_before_down, d.passes_before_up), (Duration::from_secs(30), 3, 2));
}

#[tokio::test(start_paused = true)]
async fn a_probe_in_both_groups_runs_once_per_cycle() {
    let disk = StaticProbe::new("disk:/", up());
    let registry = HealthRegistry::new()
        .with_registration(titled(&disk).with_groups(&[CheckGroup::Liveness, CheckGroup::Readiness]));
    let monitor = HealthMonitor::builder(registry).build().unwrap();
    monitor.run_once().await;
    monitor.run_once().await;
    assert_eq!(disk.checks(), 2);
    assert_eq!(monitor.report(CheckGroup::Liveness).unwrap().checks.len(), 1);
    assert_eq!(monitor.report(CheckGroup::Readiness).unwrap().checks.len(), 1);
}

/// Alert semantics, rule 6: stale health is not health: past its maximum age (default three intervals)
/// the cached readiness report answers `fail` with a reason (`tests/http.rs` checks the 503 on the wire).
#[tokio::test(start_paused = true)]
async fn rule_a_stale_report_fails_readiness_with_a_reason() {
    let clock = ManualClock::new();
    let monitor = HealthMonitor::builder(
        HealthRegistry::new().with_registration(Registration::new(StaticProbe::new("database", up()))),
    )
    .with_interval(Duration::from_secs(30))
    .with_clock(clock.shared())
    .build()
    .unwrap();
    assert_eq!(monitor.config().effective_max_report_age(), Duration::from_secs(90));
    monitor.run_once().await;
    clock.advance(Duration::from_secs(90));
    assert_eq!(monitor.report(CheckGroup::Readiness).unwrap().status, HealthStatus::Up, "90 s old: still fresh");
    clock.advance(Duration::from_secs(1));
    let stale = monitor.report(CheckGroup::Readiness).unwrap();
    assert_eq!(stale.status, HealthStatus::Down);
    assert_eq!(stale.http_status(), 503);
    let why = stale.output.unwrap();
    assert!(why.starts_with("stale: the last health check finished 91s ago"), "{why}");
    assert_eq!(stale.checks["database"].status, HealthStatus::Up, "the last seen checks stay attached");
    assert_eq!(monitor.report(CheckGroup::Liveness).unwrap().status, HealthStatus::Up, "liveness is not readiness");
    monitor.run_once().await;
    assert_eq!(monitor.report(CheckGroup::Readiness).unwrap().status, HealthStatus::Up, "fresh again");
}

/// A probe words its own alerts (`HealthProbe::alert_text`); the monitor never picks a wording from the
/// probe's name.
#[tokio::test(start_paused = true)]
async fn a_probe_supplies_its_own_alert_text_and_its_name_chooses_none() {
    #[derive(Debug)]
    struct Payments;

    #[async_trait]
    impl HealthProbe for Payments {
        fn name(&self) -> &str {
            "payments"
        }
        async fn check(&self) -> ProbeOutcome {
            ProbeOutcome::down("3 of 3 requests timed out")
        }
        fn alert_text(&self, _: &ProbeOutcome, resolved: bool) -> ProbeAlertText {
            if resolved {
                ProbeAlertText::new("Payment gateway reachable again")
            } else {
                ProbeAlertText::new("Payment gateway unreachable").with_text("Card payments fail; see the runbook.")
            }
        }
    }

    let replica = StaticProbe::new("postgres-replica", down());
    let registry = HealthRegistry::new()
        .with_registration(Registration::new(Payments))
        .with_registration(Registration::new(replica));
    let inbox = RecordingNotifier::new();
    let monitor = HealthMonitor::builder(registry)
        .with_failures_before_down(1)
        .with_notifier(Arc::new(inbox.clone()))
        .build()
        .unwrap();
    monitor.run_once().await;
    let mut titles = inbox.titles();
    titles.sort();
    assert_eq!(titles, ["Health check postgres-replica failed", "Payment gateway unreachable"]);
    let payments = inbox.alerts().into_iter().find(|a| a.title.starts_with("Payment")).unwrap();
    assert_eq!(payments.text, "Card payments fail; see the runbook.");
    let replica = inbox.alerts().into_iter().find(|a| a.title.starts_with("Health")).unwrap();
    assert_eq!(replica.text, "connection refused", "the default text is the check's output");
}
