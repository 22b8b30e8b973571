//! Property tests (proptest): no configuration makes the monitor panic. Everything here stays
//! on loopback (port 1 refuses at once) and on paused Tokio time.

use proptest::prelude::*;
use resee_ops_core::testing::{ManualClock, RecordingNotifier, StaticProbe};
use resee_ops_core::{CheckGroup, HealthRegistry, ProbeOutcome, Registration};
use resee_ops_core::{HealthProbe, MetricSource, ThrottleStore};
use resee_ops_monitor::{
    CeleryTransport, CeleryWorkersProbe, DiskThresholds, DiskUsageProbe, EventCounter, FnSource, HealthMonitor,
    HeartbeatConfig, Measure, MonitorConfig, PostgresProbeConfig, PostgresScalarConfig, RedisConfig,
    RedisThrottleStore, RequestStats, Rule, RuleEvaluator, WindowedSource, WorkerHeartbeatProbe,
};
use serde_json::json;

#[path = "../../resee-ops-core/tests/support/arbitrary.rs"]
mod arbitrary;
use arbitrary::{config_value, parse};

fn paused<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap().block_on(f)
}

fn refused_redis() -> RedisConfig {
    RedisConfig::from_url("redis://127.0.0.1:1/0").unwrap()
}

fn constant() -> FnSource<impl Fn() -> std::future::Ready<Result<Option<f64>, resee_ops_core::Error>> + Send + Sync> {
    FnSource::new("m", "items", || std::future::ready(Ok(Some(5.0))))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Arbitrary JSON and TOML into every monitor configuration type: an error or a value, never a panic;
    /// each value parsed is then built and, where that needs no network, used once.
    #[test]
    fn monitor_configs_never_panic(
        monitor in config_value(&serde_json::to_value(MonitorConfig::default()).unwrap()),
        rule in config_value(&serde_json::to_value(Rule::new("r", "m", Measure::Last).with_above(1.0)).unwrap()),
        probe in config_value(&json!({
            "url": "postgres://u:pw@127.0.0.1:1/db", "timeout": "3s", "name": "db", "critical": true,
            "query": "SELECT 1", "unit": "rows", "worker_id": "w", "ttl": "30s", "interval": "10s", "key": "k",
            "warning": 80.0, "critical_percent": 90.0, "path": "/", "thresholds": {"warning": 80, "critical": 90},
            "global_keyprefix": "", "sep": "\u{6}\u{16}", "priority_steps": [0, 3], "control_exchange": "celery",
        })),
    ) {
        if let Some(config) = parse::<MonitorConfig>(&monitor) {
            let _ = config.effective_max_report_age();
            let built = HealthMonitor::builder(HealthRegistry::new().with_registration(Registration::new(
                StaticProbe::new("p", ProbeOutcome::down("x")),
            )))
            .with_config(config)
            .with_clock(ManualClock::new().shared())
            .with_notifier(RecordingNotifier::new())
            .build();
            if let Ok(monitor) = built {
                paused(async {
                    monitor.run_once().await;
                    monitor.run_once().await;
                    let _ = monitor.report(CheckGroup::Readiness);
                });
            }
        }
        if let Some(rule) = parse::<Rule>(&rule) {
            let _ = rule.validate();
            let source = rule.source.clone();
            let built = RuleEvaluator::builder().with_metric(source, constant()).with_rule(rule).build();
            if let Ok(evaluator) = built {
                paused(evaluator.evaluate());
            }
        }
        if let Some(config) = parse::<PostgresProbeConfig>(&probe) {
            let _ = config.build();
        }
        if let Some(config) = parse::<RedisConfig>(&probe) {
            let _ = config.probe();
        }
        if let Some(config) = parse::<PostgresScalarConfig>(&probe) {
            let _ = config.build();
        }
        if let Some(config) = parse::<HeartbeatConfig>(&probe) {
            let _ = config.build(&refused_redis());
        }
        if let Some(transport) = parse::<CeleryTransport>(&probe) {
            let _ = transport.validate();
            let _ = transport.queue_lists("celery");
            if let Ok(probe) = CeleryWorkersProbe::new(&refused_redis()).and_then(|p| p.with_transport(transport)) {
                let _ = probe.control_channel();
            }
        }
        if let Some(thresholds) = parse::<DiskThresholds>(&probe) {
            let _ = DiskUsageProbe::new("/").with_thresholds(thresholds);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Every monitor builder that takes a `Duration`, fed zero, `Duration::MAX` and arbitrary values, then
    /// used once (point 14): an error or a working value, never a panic; a huge limit means "no limit".
    /// Connections go to loopback port 1, which refuses at once.
    #[test]
    fn monitor_durations_never_panic(a in arbitrary::duration(), b in arbitrary::duration(), c in arbitrary::duration()) {
        paused(async {
            // The health monitor's interval, reminders and report age, probe timeouts; then its loop.
            let probe = StaticProbe::new("p", ProbeOutcome::down("x"));
            let registry = HealthRegistry::new()
                .with_default_timeout(c)
                .with_registration(Registration::new(probe).with_timeout(a));
            let clock = ManualClock::new();
            if let Ok(monitor) = HealthMonitor::builder(registry)
                .with_interval(a)
                .with_repeat_interval(b)
                .with_clock(clock.shared())
                .with_notifier(RecordingNotifier::new())
                .build()
            {
                monitor.run_once().await;
                clock.advance(c);
                monitor.run_once().await;
                let _ = monitor.report(CheckGroup::Readiness);
                let handle = monitor.spawn();
                tokio::task::yield_now().await;
                handle.shutdown().await;
            }

            // The rule evaluator's interval, reminders and source timeouts, and a rule's `for` times.
            let rule = Rule::new("r", "m", Measure::Last).with_above(1.0).with_for(a).with_keep_firing_for(b);
            if let Ok(evaluator) = RuleEvaluator::builder()
                .with_metric("m", constant())
                .with_rule(rule)
                .with_interval(a)
                .with_repeat_interval(b)
                .with_default_timeout(c)
                .with_source_timeout("m", a)
                .build()
            {
                evaluator.evaluate().await;
                evaluator.evaluate().await;
                let handle = evaluator.spawn();
                tokio::task::yield_now().await;
                handle.shutdown().await;
            }

            // Windowed sources: granularity, retention and the windows asked of them.
            if let Ok(counter) = EventCounter::builder().with_granularity(a).with_retention(b).build() {
                counter.record("x");
                let _ = counter.count("x", c);
                let _ = counter.measure(&Measure::rate(c)).await;
            }
            if let Ok(stats) = RequestStats::builder().with_granularity(a).with_retention(b).build() {
                stats.record(Some("/x"), 500, c);
                let _ = stats.measure(&Measure::Quantile { q: 0.5, window: a, series: None }).await;
            }

            // Client timeouts against a refused port, and the heartbeat's times.
            let redis = refused_redis().with_timeout(a);
            if let Ok(probe) = redis.probe() {
                let _ = probe.check().await;
            }
            if let Ok(probe) = PostgresProbeConfig::from_url("postgres://u:pw@127.0.0.1:1/db").unwrap().with_timeout(a).build() {
                let _ = probe.check().await;
            }
            if let Ok(scalar) = PostgresScalarConfig::from_url("postgres://u@127.0.0.1:1/db", "SELECT 1").unwrap().with_timeout(b).build() {
                let _ = scalar.read().await;
            }
            if let Ok(beat) = HeartbeatConfig::new("w").with_ttl(a).with_interval(b).build(&redis) {
                let _ = beat.beat().await;
            }
            if let Ok(probe) = WorkerHeartbeatProbe::new(&redis) {
                let _ = probe.with_max_age(c).check().await;
            }
            if let Ok(probe) = CeleryWorkersProbe::new(&redis) {
                let _ = probe.with_window(b).check().await;
            }
            if let Ok(store) = RedisThrottleStore::new(&redis) {
                let _ = store.with_retry_after(c).get(resee_ops_core::Fingerprint::from_u64(1)).await;
            }
        });
    }
}
