//! The health checks: PostgreSQL and Redis (critical: readiness fails without them), disk, Celery workers
//! and queue, Slack delivery (they warn).
//!
//! To add a probe: one more `.register(...)` in [`registry`].

use resee_ops_core::{HealthRegistry, Registration};
use resee_ops_monitor::{
    DiskThresholds, DiskUsageProbe, PostgresProbeConfig, QueueLength, RedisConfig, WorkerHeartbeatProbe,
};

use crate::alerts::Alerts;
use crate::config::{Config, ConfigError};

pub(crate) fn registry(config: &Config, alerts: &Alerts) -> Result<HealthRegistry, ConfigError> {
    let m = &config.monitor;
    let timeout = m.probe_timeout;
    let redis = RedisConfig::new(config.redis.url.clone()).with_timeout(timeout);
    let redis_err = |e: resee_ops_monitor::MonitorError| ConfigError::new("redis.url (REDIS_URL)", e.to_string());
    let database = PostgresProbeConfig::new(config.database.url.clone())
        .with_timeout(timeout)
        .build()
        .map_err(|e| ConfigError::new("database.url (DATABASE_URL)", e.to_string()))?;
    let thresholds = DiskThresholds::new(m.disk_warning, m.disk_critical)
        .map_err(|e| ConfigError::new("monitor.disk_warning", e.to_string()))?;
    let mut registry = HealthRegistry::new()
        .with_default_timeout(timeout + std::time::Duration::from_secs(1))
        .register(Registration::new(database))
        .register(Registration::new(redis.probe().map_err(redis_err)?))
        .register(Registration::new(DiskUsageProbe::new(&m.disk_path).with_thresholds(thresholds)))
        .register(Registration::new(
            WorkerHeartbeatProbe::new(&redis).map_err(redis_err)?.with_min_workers(m.min_workers),
        ))
        .register(Registration::new(
            QueueLength::new(&redis)
                .map_err(redis_err)?
                .with_queues(m.queues.clone())
                .with_warning_above(m.queue_warning_above),
        ));
    if let Some(slack) = &alerts.slack_probe {
        registry = registry.register(Registration::new(slack.clone()));
    }
    Ok(registry)
}
