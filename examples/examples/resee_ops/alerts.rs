//! Where alerts go: dispatcher (never blocks the caller) → throttle (the same alert at most once per
//! window) → Slack when `SLACK_WEBHOOK_URL` is set (with its own retries), else the log.
//!
//! To add a destination: wrap it here (a `FanOut` over several notifiers, each with its own retries).

use std::sync::Arc;
use std::time::Duration;

use resee_ops_core::{Dispatcher, DispatcherConfig, LogNotifier, Notifier, NotifierExt, RetryPolicy};
use resee_ops_slack::{SlackConfig, SlackHealthProbe, SlackNotifier};

use crate::config::{Config, ConfigError, Validated};

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
        let throttle = config.alerts.throttle;
        let Some(url) = &validated.slack else {
            let dispatcher = LogNotifier::new().throttled(throttle).dispatched(dispatch);
            return Ok(Self { dispatcher, slack_probe: None });
        };
        let mut slack =
            SlackConfig::from_env().map_err(|e| ConfigError::new(resee_ops_slack::ENV_WEBHOOK_URL, e.to_string()))?;
        slack.retry = RetryPolicy::default().with_deadline(config.alerts.retry_for);
        let notifier = SlackNotifier::from_config(slack)
            .map_err(|e| ConfigError::new(resee_ops_slack::ENV_WEBHOOK_URL, e.to_string()))?;
        tracing::info!(webhook_host = url.host(), "alerts go to Slack");
        let slack_probe = Some(notifier.health_probe());
        Ok(Self { dispatcher: notifier.throttled(throttle).dispatched(dispatch), slack_probe })
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
