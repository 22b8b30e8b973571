//! Property tests (proptest): no configuration makes the monitor panic. Everything here stays
//! on loopback (port 1 refuses at once) and on paused Tokio time.

use proptest::prelude::*;
use resee_ops_core::testing::{ManualClock, RecordingNotifier, StaticProbe};
use resee_ops_core::{CheckGroup, HealthRegistry, ProbeOutcome, Registration};
use resee_ops_monitor::{
    CeleryTransport, CeleryWorkersProbe, DiskThresholds, DiskUsageProbe, FnSource, HealthMonitor, HeartbeatConfig,
    Measure, MonitorConfig, PostgresProbeConfig, PostgresScalarConfig, RedisConfig, Rule, RuleEvaluator,
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
