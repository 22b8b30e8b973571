//! Where alerts go: dispatcher (never blocks the caller) → throttle (the same alert at most once per
//! window, its state in Redis by default so that replicas throttle as one and a restart forgets no open
//! alert) → Slack when `SLACK_WEBHOOK_URL` is set (with its own retries), else the log.
//!
//! To add a destination: wrap it here (a `FanOut` over several notifiers, each with its own retries).

use std::sync::Arc;
use std::time::Duration;

use resee_ops_core::{Dispatcher, DispatcherConfig, LogNotifier, Notifier, NotifierExt, RetryPolicy, Throttled};
use resee_ops_monitor::{RedisConfig, RedisThrottleStore};
use resee_ops_slack::{SlackConfig, SlackHealthProbe, SlackNotifier};

use crate::config::{Config, ConfigError, ThrottleStoreKind, Validated};

/// The service's alert pipeline.
#[derive(Debug, Clone)]
pub(crate) struct Alerts {
    dispatcher: Dispatcher,
    /// The Slack delivery probe, when Slack is the destination.
    pub(crate) slack_probe: Option<SlackHealthProbe>,
}

impl Alerts {
    pub(crate) fn build(config: &Config, validated: &Validated) -> Result<Self, ConfigError> {
        let dispatch = DispatcherConfig::default().with_capacity(config.alerts.queue_capacity);
        let store = throttle_store(config)?;
        let throttle = |n| {
            let t = Throttled::new(n).with_window(config.alerts.throttle);
            match &store {
                Some(s) => t.with_store(s.clone()),
                None => t,
            }
        };
        let Some(url) = &validated.slack else {
            let dispatcher = throttle(Box::new(LogNotifier::new()) as Box<dyn Notifier>).dispatched(dispatch);
            return Ok(Self { dispatcher, slack_probe: None });
        };
        let mut slack =
            SlackConfig::from_env().map_err(|e| ConfigError::new(resee_ops_slack::ENV_WEBHOOK_URL, e.to_string()))?;
        slack.retry = RetryPolicy::default().with_deadline(config.alerts.retry_for);
        let notifier = SlackNotifier::from_config(slack)
            .map_err(|e| ConfigError::new(resee_ops_slack::ENV_WEBHOOK_URL, e.to_string()))?;
        tracing::info!(webhook_host = url.host(), "alerts go to Slack");
        let slack_probe = Some(notifier.health_probe());
        Ok(Self { dispatcher: throttle(Box::new(notifier)).dispatched(dispatch), slack_probe })
    }

    /// The notifier every part of the service sends to.
    pub(crate) fn notifier(&self) -> Arc<dyn Notifier> {
        Arc::new(self.dispatcher.clone())
    }

    /// Delivers what is queued (at most `timeout`), then reports what happened to every alert.
    pub(crate) async fn shutdown(&self, timeout: Duration) {
        self.dispatcher.shutdown(timeout).await;
        let s = self.dispatcher.stats();
        tracing::info!(
            delivered = s.delivered,
            suppressed = s.suppressed,
            dropped = s.dropped(),
            dropped_closed = s.dropped_closed,
            dropped_failed = s.dropped_permanent_failure + s.dropped_temporary_failure,
            "alerts flushed"
        );
    }
}

/// The throttle's shared store: Redis (`alerts.store_url`, else `redis.url`) unless `alerts.store = "memory"`.
fn throttle_store(config: &Config) -> Result<Option<Arc<RedisThrottleStore>>, ConfigError> {
    if config.alerts.store == ThrottleStoreKind::Memory {
        return Ok(None);
    }
    let url = config.alerts.store_url.clone().unwrap_or_else(|| config.redis.url.clone());
    let redis = RedisConfig::new(url).with_timeout(config.monitor.probe_timeout);
    let store = RedisThrottleStore::new(&redis)
        .map_err(|e| ConfigError::new("alerts.store_url (REDIS_URL)", e.message().to_owned()))?
        .with_prefix(config.alerts.prefix(&config.environment));
    tracing::info!(prefix = store.prefix(), "alert throttle state in Redis (shared by replicas)");
    Ok(Some(Arc::new(store)))
}
