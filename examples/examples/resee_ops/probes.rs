//! The health checks: PostgreSQL and Redis (critical: readiness fails without them), disk, the Celery
//! workers (`workers`: Celery's broadcast ping) and queues (`queue:<queue>`: all priority lists), Slack
//! delivery, and the freshness of the backups on each target (`backup_freshness:local`, `backup_freshness:s3`:
//! the newest verified backup older than `backup.max_age`, 26 h) (they warn).
//!
//! To add a probe: one more `.with_registration(...)` in [`registry`].

use resee_ops_backup::BackupFreshnessProbe;
use resee_ops_core::{HealthRegistry, Registration};
use resee_ops_monitor::{
    CeleryWorkersProbe, DiskThresholds, DiskUsageProbe, PostgresProbeConfig, QueueLength, RedisConfig,
};

use crate::alerts::Alerts;
use crate::config::{Config, ConfigError};

pub(crate) fn registry(config: &Config, alerts: &Alerts) -> Result<HealthRegistry, ConfigError> {
    let m = &config.monitor;
    let timeout = m.probe_timeout;
    let redis = RedisConfig::new(config.redis.url.clone()).with_timeout(timeout);
    let redis_err = |e: resee_ops_monitor::MonitorError| ConfigError::new("redis.url (REDIS_URL)", e.to_string());
    let broker_url = config.celery.broker_url.clone().unwrap_or_else(|| config.redis.url.clone());
    let broker = RedisConfig::new(broker_url).with_timeout(timeout);
    let broker_err =
        |e: resee_ops_monitor::MonitorError| ConfigError::new("celery.broker_url (CELERY_BROKER_URL)", e.to_string());
    let transport = config.celery.transport();
    let workers = CeleryWorkersProbe::new(&broker)
        .and_then(|p| p.with_transport(transport.clone()))
        .map_err(broker_err)?
        .with_window(config.celery.ping_window)
        .with_min_workers(m.min_workers);
    let workers_timeout = workers.max_duration() + std::time::Duration::from_secs(1);
    let database = PostgresProbeConfig::new(config.database.url.clone())
        .with_timeout(timeout)
        .build()
        .map_err(|e| ConfigError::new("database.url (DATABASE_URL)", e.to_string()))?;
    let thresholds = DiskThresholds::new(m.disk_warning, m.disk_critical)
        .map_err(|e| ConfigError::new("monitor.disk_warning", e.to_string()))?;
    let mut registry = HealthRegistry::new()
        .with_default_timeout(timeout + std::time::Duration::from_secs(1))
        .with_registration(Registration::new(database))
        .with_registration(Registration::new(redis.probe().map_err(redis_err)?))
        .with_registration(Registration::new(DiskUsageProbe::new(&m.disk_path).with_thresholds(thresholds)))
        .with_registration(Registration::new(workers).with_timeout(workers_timeout));
    for queue in &m.queues {
        let length = QueueLength::new(&broker)
            .and_then(|q| q.with_transport(transport.clone()))
            .map_err(broker_err)?
            .with_queues([queue.clone()])
            .with_unacked(config.celery.count_unacked)
            .with_warning_above(m.queue_warning_above);
        registry = registry.with_registration(Registration::new(length));
    }
    if let Some(slack) = &alerts.slack_probe {
        registry = registry.with_registration(Registration::new(slack.clone()));
    }
    // "Backups stopped" pages someone even when the scheduler died: one freshness check per target.
    if config.backup.enabled {
        let prefix = crate::jobs::name_prefix(config)?;
        let max_age = config.backup.max_age;
        let dir_key = "backup.dir (RESEE_BACKUP_DIR)";
        let local = resee_ops_backup::LocalDirTarget::new(&config.backup.dir)
            .map_err(|e| ConfigError::new(dir_key, e.to_string()))?;
        let mut targets: Vec<(&str, std::sync::Arc<dyn resee_ops_core::BackupTarget>)> =
            vec![("local", std::sync::Arc::new(local))];
        if let Some(s3) = crate::jobs::s3_target(config)? {
            targets.push(("s3", std::sync::Arc::new(s3)));
        }
        for (name, target) in targets {
            let probe = BackupFreshnessProbe::from_arc(target, prefix.clone())
                .with_name(format!("backup_freshness:{name}"))
                .with_max_age(max_age);
            registry = registry.with_registration(Registration::new(probe));
        }
    }
    Ok(registry)
}
