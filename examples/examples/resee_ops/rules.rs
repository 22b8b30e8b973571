//! The threshold rules: the seed's four (payment failures, error rate, API p95, Celery queue length), on by
//! default, plus or instead of those any `[[rules.rule]]` of the configuration, evaluated every
//! `rules.interval` and alerting through the service's pipeline.
//!
//! Sources: `http` is this process's own HTTP traffic (the router records through [`Rules::layer`]);
//! `payments` is a SQL scalar when `rules.payments_query` is set, else an event counter the host feeds with
//! `payment_failed` events (in-process with [`Rules::record_event`], or `POST /events/payment_failed`);
//! `queue` is the length of the monitored Celery queues.
//!
//! To add a source: one more `.with_source(..)` / `.with_metric(..)` in [`Rules::build`].

use std::sync::Arc;

use resee_ops_core::Notifier;
use resee_ops_monitor::{
    EventCounter, HTTP_SOURCE, Measure, MonitorHandle, PAYMENTS_SOURCE, PostgresScalarConfig, QUEUE_SOURCE,
    QueueLength, RedisConfig, RequestStats, RequestStatsLayer, RuleEvaluator, RuleState, presets,
};

use crate::config::{Config, ConfigError};

/// The evaluator and the in-process sources the rest of the service feeds.
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    evaluator: RuleEvaluator,
    http: RequestStats,
    /// `payment_failed` events, when payments are not read with a query.
    payments: Option<EventCounter>,
}

impl Rules {
    /// Builds the sources and the rules; errors name the configuration key (and the rule and its field).
    pub(crate) fn build(config: &Config, notifier: Arc<dyn Notifier>) -> Result<Self, ConfigError> {
        let r = &config.rules;
        let http = RequestStats::new();
        let redis = RedisConfig::new(config.redis.url.clone()).with_timeout(r.source_timeout);
        let queue = QueueLength::new(&redis)
            .map_err(|e| ConfigError::new("redis.url (REDIS_URL)", e.to_string()))?
            .with_queues(config.monitor.queues.clone());
        let mut builder = RuleEvaluator::builder()
            .with_interval(r.interval)
            .with_default_timeout(r.source_timeout)
            // With the Redis store a restart resolves what the previous process left open (exactly once), as
            // the health monitor does.
            .with_resolve_on_start(config.alerts.store == crate::config::ThrottleStoreKind::Redis)
            .with_notifier(notifier)
            .with_source(HTTP_SOURCE, http.clone())
            .with_metric(QUEUE_SOURCE, queue);
        let mut rules = if r.presets { presets() } else { Vec::new() };
        let payments = match &r.payments_query {
            Some(query) => {
                let scalar = PostgresScalarConfig::new(config.database.url.clone(), query.clone())
                    .with_name("payment_failures")
                    .with_timeout(r.source_timeout)
                    .build()
                    .map_err(|e| ConfigError::new("rules.payments_query", e.to_string()))?;
                builder = builder.with_metric(PAYMENTS_SOURCE, scalar);
                // The query counts the hour itself: the preset reads its value.
                for rule in rules.iter_mut().filter(|rule| rule.source == PAYMENTS_SOURCE) {
                    *rule = rule.clone().with_value(Measure::Last);
                }
                None
            }
            None => {
                let counter = EventCounter::builder()
                    .with_name("payment_events")
                    .build()
                    .map_err(|e| ConfigError::new("rules", e.to_string()))?;
                builder = builder.with_source(PAYMENTS_SOURCE, counter.clone());
                Some(counter)
            }
        };
        // A configured rule replaces the preset of the same name, or adds to them.
        for rule in &r.rule {
            match rules.iter_mut().find(|p| p.name == rule.name) {
                Some(preset) => *preset = rule.clone(),
                None => rules.push(rule.clone()),
            }
        }
        let evaluator =
            builder.with_rules(rules).build().map_err(|e| ConfigError::new("rules", e.message().to_owned()))?;
        Ok(Self { evaluator, http, payments })
    }

    /// Builds the rules once to check them (no source is read, no connection opened).
    pub(crate) fn check(config: &Config) -> Result<(), ConfigError> {
        if config.rules.enabled {
            Self::build(config, Arc::new(resee_ops_core::LogNotifier::new()))?;
        }
        Ok(())
    }

    /// The tower layer that records the server's own traffic into the `http` source.
    pub(crate) fn layer(&self) -> RequestStatsLayer {
        self.http.layer()
    }

    /// Counts one `event` (`payment_failed` where a payment fails), when payments are counted in-process
    /// rather than read with `rules.payments_query`; `false` when they are not.
    pub(crate) fn record_event(&self, event: &str) -> bool {
        match &self.payments {
            Some(counter) => {
                counter.record(event);
                true
            }
            None => false,
        }
    }

    /// Each rule's state, value and since, for the status page.
    pub(crate) fn states(&self) -> Vec<RuleState> {
        self.evaluator.states()
    }

    /// Starts the evaluation loop.
    pub(crate) fn spawn(&self) -> MonitorHandle {
        self.evaluator.spawn()
    }
}
