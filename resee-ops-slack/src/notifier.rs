//! [`SlackNotifier`] and its [`SlackHealthProbe`].

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use resee_ops_core::{Alert, HealthProbe, Notifier, NotifyOutcome, ProbeOutcome, RetryPolicy, Retrying};

use crate::config::{SlackConfig, SlackNotifierBuilder};
use resee_ops_core::ErrorKind;

use crate::error::SlackError;
use crate::pacing::Pacer;
use crate::render::{Overrides, render};
use crate::transport::{HttpTransport, Transport, classify};

/// A [`Notifier`] that posts alerts to a Slack incoming webhook.
///
/// One call of [`notify`](Notifier::notify) renders the alert (see the crate docs for the layout and
/// Slack's limits), waits for its turn under the pacing (default: a burst of 3, then one per second), posts
/// it, and retries 429s (after `Retry-After`), 5xx answers, timeouts and connection errors under the
/// [`RetryPolicy`]. Slack's refusals (400, 403, 404, 410, `no_service`) are permanent failures carrying
/// Slack's error string, not retried, and turn the [`health_probe`](Self::health_probe) `Down` until a later
/// message gets through.
///
/// A timeout is retried like any temporary failure, so a message Slack accepted but answered too late may
/// show twice: a duplicate is better than a lost alert. `Retry-After` is read as a number of seconds (what
/// Slack sends); without one, the webhook is held for a second.
///
/// Clones share the HTTP client, the pacing and the health state: build one notifier per webhook and
/// clone it. `notify` waits for delivery; wrap it in the core throttle and dispatcher so callers never
/// wait (see the crate docs).
///
/// ```
/// use resee_ops_slack::SlackNotifier;
///
/// let notifier = SlackNotifier::builder()
///     .with_webhook_url("https://hooks.slack.com/services/T000/B000/XXXXXXXX")
///     .build()
///     .unwrap();
/// // Debug shows the host only: the URL is a secret.
/// assert!(!format!("{notifier:?}").contains("XXXXXXXX"));
/// ```
#[derive(Clone)]
pub struct SlackNotifier {
    inner: Arc<Inner>,
}

struct Inner {
    retrying: Retrying<Attempt>,
    health: Arc<Mutex<Health>>,
    config: SlackConfig,
}

/// One try: pace, post, classify. Retried by the core [`Retrying`] wrapper.
struct Attempt {
    transport: Arc<dyn Transport>,
    pacer: Pacer,
    overrides: Overrides,
    host: String,
    /// The longest pause a `Retry-After` imposes on every sender of this webhook.
    max_hold: Duration,
}

impl fmt::Debug for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attempt").field("webhook", &self.host).finish_non_exhaustive()
    }
}

/// What the last finished `notify` found.
#[derive(Clone, Debug, PartialEq)]
enum Health {
    Idle,
    Delivered,
    Failing { error: String, permanent: bool },
}

impl SlackNotifier {
    /// A builder; `webhook_url` is required.
    pub fn builder() -> SlackNotifierBuilder {
        SlackNotifierBuilder::default()
    }

    /// A notifier configured from the environment; see [`SlackConfig::from_env`].
    pub fn from_env() -> Result<Self, SlackError> {
        Self::from_config(SlackConfig::from_env()?)
    }

    /// A notifier from a configuration, validated first.
    pub fn from_config(config: SlackConfig) -> Result<Self, SlackError> {
        config.validate()?;
        let transport = HttpTransport::new(config.webhook_url.clone(), config.timeout)?;
        Ok(Self::with_transport(config, Arc::new(transport)))
    }

    pub(crate) fn with_transport(config: SlackConfig, transport: Arc<dyn Transport>) -> Self {
        let attempt = Attempt {
            transport,
            pacer: Pacer::new(config.pacing_interval, config.pacing_burst),
            overrides: config.overrides(),
            host: config.webhook_url.host().to_owned(),
            max_hold: config.retry.max_retry_after,
        };
        let retrying = Retrying::new(attempt, config.retry.clone());
        Self { inner: Arc::new(Inner { retrying, health: Arc::new(Mutex::new(Health::Idle)), config }) }
    }

    /// The webhook's host (the only part of its URL that is not secret).
    pub fn webhook_host(&self) -> &str {
        self.inner.config.webhook_url.host()
    }

    /// The configuration in use.
    pub fn config(&self) -> &SlackConfig {
        &self.inner.config
    }

    /// The retry policy in use.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.inner.config.retry
    }

    /// The JSON body this notifier would post for `alert`.
    ///
    /// ```
    /// use resee_ops_core::{Alert, Severity};
    /// use resee_ops_slack::SlackNotifier;
    ///
    /// let n = SlackNotifier::builder().with_webhook_url("http://127.0.0.1:9/hook").build().unwrap();
    /// let body = n.render(&Alert::new("db_down", Severity::Error, "Database <primary> down"));
    /// let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    /// assert_eq!(json["text"], "🔴 [ERROR] Database &lt;primary&gt; down");
    /// assert_eq!(json["attachments"][0]["color"], "#E01E5A");
    /// ```
    pub fn render(&self, alert: &Alert) -> String {
        render(alert, &self.inner.retrying.inner().overrides).to_json()
    }

    /// A [`HealthProbe`] named `slack` reporting whether this webhook works, from the messages already
    /// sent (it sends nothing itself, so checking it never posts to the channel).
    ///
    /// `Up` before the first message and after a delivered one; `Degraded` when the last message still
    /// failed temporarily after its retries; `Down`, with Slack's error, after a permanent failure, until a
    /// later message is delivered. Not critical by default: a broken webhook should page someone, not take
    /// the service out of its load balancer.
    pub fn health_probe(&self) -> SlackHealthProbe {
        SlackHealthProbe { health: self.inner.health.clone(), name: "slack".into(), critical: false }
    }

    fn record(&self, outcome: &NotifyOutcome) {
        let mut health = self.inner.health.lock().unwrap_or_else(|p| p.into_inner());
        match outcome {
            NotifyOutcome::Delivered => *health = Health::Delivered,
            NotifyOutcome::PermanentFailure(e) => {
                *health = Health::Failing { error: format!("{e:#}"), permanent: true };
            }
            // A temporary failure does not hide a permanent one.
            NotifyOutcome::TemporaryFailure(_) | NotifyOutcome::RateLimited { .. }
                if !matches!(*health, Health::Failing { permanent: true, .. }) =>
            {
                let error = outcome.error().map_or_else(|| outcome.to_string(), |e| format!("{e:#}"));
                *health = Health::Failing { error, permanent: false };
            }
            _ => {}
        }
    }
}

impl fmt::Debug for SlackNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.inner.config;
        f.debug_struct("SlackNotifier")
            .field("webhook_host", &c.webhook_url.host())
            .field("timeout", &c.timeout)
            .field("pacing_interval", &c.pacing_interval)
            .field("pacing_burst", &c.pacing_burst)
            .field("retry", &c.retry)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Notifier for SlackNotifier {
    async fn notify(&self, alert: &Alert) -> NotifyOutcome {
        let outcome = self.inner.retrying.notify(alert).await;
        self.record(&outcome);
        outcome
    }
}

#[async_trait]
impl Notifier for Attempt {
    async fn notify(&self, alert: &Alert) -> NotifyOutcome {
        let body = render(alert, &self.overrides).to_json().into_bytes();
        self.pacer.acquire().await;
        let result = self.transport.post(body).await.and_then(|answer| classify(&answer));
        let fingerprint = alert.fingerprint();
        match result {
            Ok(()) => {
                tracing::debug!(target: "resee_ops::slack", webhook = %self.host, %fingerprint, "slack accepted the message");
                NotifyOutcome::Delivered
            }
            Err(err) if err.kind() == ErrorKind::RateLimited => {
                let hold = err.retry_after().unwrap_or(Duration::from_secs(1)).min(self.max_hold);
                self.pacer.hold_until(resee_ops_core::deadline::SaturatingAdd::saturating_add(
                    tokio::time::Instant::now(),
                    hold,
                ));
                tracing::warn!(target: "resee_ops::slack", webhook = %self.host, %fingerprint, retry_after = ?err.retry_after(),
                    "slack rate limited the webhook; holding all messages");
                NotifyOutcome::RateLimited { retry_after: err.retry_after() }
            }
            Err(err) => {
                tracing::warn!(target: "resee_ops::slack", webhook = %self.host, %fingerprint, error = %err,
                    temporary = err.is_temporary(), "slack did not accept the message");
                NotifyOutcome::failure(err)
            }
        }
    }
}

/// The [`HealthProbe`] of a [`SlackNotifier`]; from [`SlackNotifier::health_probe`].
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use resee_ops_core::{HealthProbe, HealthStatus};
/// use resee_ops_slack::SlackNotifier;
///
/// let n = SlackNotifier::builder().with_webhook_url("http://127.0.0.1:9/hook").build().unwrap();
/// let probe = n.health_probe();
/// assert_eq!(probe.name(), "slack");
/// assert!(!probe.is_critical());
/// assert_eq!(probe.check().await.status, HealthStatus::Up);
/// # });
/// ```
#[derive(Clone)]
pub struct SlackHealthProbe {
    health: Arc<Mutex<Health>>,
    name: String,
    critical: bool,
}

impl SlackHealthProbe {
    /// Reports under `name` instead of `slack` (for several webhooks).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Makes the probe critical (or not).
    pub fn with_critical(mut self, critical: bool) -> Self {
        self.critical = critical;
        self
    }
}

impl fmt::Debug for SlackHealthProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let health = self.health.lock().unwrap_or_else(|p| p.into_inner()).clone();
        f.debug_struct("SlackHealthProbe")
            .field("name", &self.name)
            .field("critical", &self.critical)
            .field("health", &health)
            .finish()
    }
}

#[async_trait]
impl HealthProbe for SlackHealthProbe {
    fn name(&self) -> &str {
        &self.name
    }

    fn is_critical(&self) -> bool {
        self.critical
    }

    async fn check(&self) -> ProbeOutcome {
        let health = self.health.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match health {
            Health::Idle => ProbeOutcome::up().with_output("no message sent yet"),
            Health::Delivered => ProbeOutcome::up().with_output("last message delivered"),
            Health::Failing { error, permanent: true } => ProbeOutcome::down(format!("webhook failing: {error}")),
            Health::Failing { error, permanent: false } => {
                ProbeOutcome::degraded(format!("last message not delivered: {error}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use resee_ops_core::{HealthStatus, Severity};
    use tokio::time::Instant;

    use super::*;
    use crate::WebhookUrl;
    use crate::transport::Answer;

    /// A transport answering from a script (then `200 ok`), recording when each post happened.
    #[derive(Debug, Default)]
    struct Scripted {
        answers: Mutex<VecDeque<Result<Answer, SlackError>>>,
        calls: Mutex<Vec<Instant>>,
    }

    impl Scripted {
        fn push(&self, status: u16, body: &str, retry_after: Option<u64>) {
            let answer = Answer { status, retry_after: retry_after.map(Duration::from_secs), body: body.into() };
            self.answers.lock().unwrap().push_back(Ok(answer));
        }
        fn calls(&self) -> Vec<Instant> {
            self.calls.lock().unwrap().clone()
        }
    }

    #[async_trait]
    impl Transport for Scripted {
        async fn post(&self, _body: Vec<u8>) -> Result<Answer, SlackError> {
            self.calls.lock().unwrap().push(Instant::now());
            let next = self.answers.lock().unwrap().pop_front();
            next.unwrap_or_else(|| Ok(Answer { status: 200, retry_after: None, body: "ok".into() }))
        }
    }

    fn notifier(transport: &Arc<Scripted>, retry: RetryPolicy) -> SlackNotifier {
        let mut config = SlackConfig::new(WebhookUrl::new("https://hooks.slack.com/services/T/B/s3cr3t").unwrap());
        config.retry = retry;
        SlackNotifier::with_transport(config, transport.clone())
    }

    fn alert() -> Alert {
        Alert::new("db_down", Severity::Error, "Database down")
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured_for_every_sender() {
        let t = Arc::new(Scripted::default());
        t.push(429, "rate_limited", Some(30));
        let n = notifier(&t, RetryPolicy::default());
        let t0 = Instant::now();
        let a1 = alert();
        let first = n.notify(&a1);
        let second = async {
            // Starts after the 429 has arrived: must wait for the same Retry-After.
            tokio::task::yield_now().await;
            n.notify(&Alert::new("other", Severity::Info, "Other")).await
        };
        let (a, b) = tokio::join!(first, second);
        assert!(matches!(a, NotifyOutcome::Delivered), "{a}");
        assert!(matches!(b, NotifyOutcome::Delivered), "{b}");
        let calls: Vec<Duration> = t.calls().iter().map(|c| *c - t0).collect();
        assert_eq!(calls.len(), 3, "{calls:?}");
        assert_eq!(calls[0], Duration::ZERO);
        assert!(
            calls[1..].iter().all(|c| *c >= Duration::from_secs(30)),
            "nothing posted inside Retry-After: {calls:?}"
        );
        assert!(calls[1..].iter().all(|c| *c <= Duration::from_secs(32)), "and not much later: {calls:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_above_the_cap_gives_up_at_once() {
        let t = Arc::new(Scripted::default());
        t.push(429, "rate_limited", Some(3600));
        let n = notifier(&t, RetryPolicy::default().with_max_retry_after(Duration::from_secs(60)));
        let outcome = n.notify(&alert()).await;
        assert!(matches!(outcome, NotifyOutcome::RateLimited { retry_after: Some(d) } if d.as_secs() == 3600));
        assert_eq!(t.calls().len(), 1);
        assert_eq!(n.health_probe().check().await.status, HealthStatus::Degraded);
    }

    #[tokio::test(start_paused = true)]
    async fn server_errors_back_off_within_the_deadline() {
        let t = Arc::new(Scripted::default());
        for _ in 0..100 {
            t.push(503, "", None);
        }
        let policy = RetryPolicy::default()
            .with_max_attempts(100)
            .with_initial_backoff(Duration::from_secs(1))
            .with_max_backoff(Duration::from_secs(8))
            .with_deadline(Duration::from_secs(60));
        let n = notifier(&t, policy);
        let t0 = Instant::now();
        let outcome = n.notify(&alert()).await;
        assert!(
            matches!(outcome, NotifyOutcome::TemporaryFailure(ref e) if e.kind() == resee_ops_core::ErrorKind::Unavailable),
            "{outcome}"
        );
        let calls = t.calls();
        assert!(calls.len() > 3, "retried: {}", calls.len());
        assert!(Instant::now() - t0 < Duration::from_secs(60), "within the deadline");
        let probe = n.health_probe().check().await;
        assert_eq!(probe.status, HealthStatus::Degraded);
        assert!(probe.output.unwrap().contains("HTTP 503"));
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_failure_is_not_retried_and_turns_the_probe_down_until_a_success() {
        let t = Arc::new(Scripted::default());
        t.push(404, "channel_not_found", None);
        t.push(500, "", None);
        t.push(500, "", None);
        t.push(500, "", None);
        let n = notifier(&t, RetryPolicy::default().with_max_attempts(3));
        let probe = n.health_probe();
        assert_eq!(probe.check().await.status, HealthStatus::Up);

        let outcome = n.notify(&alert()).await;
        let err = outcome.error().expect("a failure").clone();
        assert!(matches!(outcome, NotifyOutcome::PermanentFailure(_)));
        assert_eq!(err.kind(), resee_ops_core::ErrorKind::NotFound);
        assert_eq!(t.calls().len(), 1, "not retried");
        let down = probe.check().await;
        assert_eq!(down.status, HealthStatus::Down);
        assert!(down.output.as_deref().unwrap().contains("channel_not_found"), "{down:?}");

        // Three 500s: a temporary failure does not hide the permanent one.
        assert!(matches!(n.notify(&alert()).await, NotifyOutcome::TemporaryFailure(_)));
        assert_eq!(probe.check().await.status, HealthStatus::Down);

        assert!(matches!(n.notify(&alert()).await, NotifyOutcome::Delivered));
        assert_eq!(probe.check().await.status, HealthStatus::Up);
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_100_alerts_is_paced() {
        let t = Arc::new(Scripted::default());
        let n = notifier(&t, RetryPolicy::default());
        let t0 = Instant::now();
        let sends = (0..100).map(|i| {
            let n = n.clone();
            tokio::spawn(async move { n.notify(&Alert::new("burst", Severity::Warning, format!("Alert {i}"))).await })
        });
        for outcome in futures_util::future::join_all(sends).await {
            assert!(matches!(outcome.unwrap(), NotifyOutcome::Delivered));
        }
        let mut calls: Vec<Duration> = t.calls().iter().map(|c| *c - t0).collect();
        calls.sort();
        assert_eq!(calls.len(), 100);
        assert_eq!(calls[2], Duration::ZERO, "burst of 3");
        assert_eq!(calls[3], Duration::from_secs(1));
        assert_eq!(calls[99], Duration::from_secs(97), "then one per second");
        for w in calls.windows(2) {
            assert!(w[1] - w[0] <= Duration::from_secs(1));
        }
        for w in calls.windows(4) {
            assert!(w[3] - w[0] >= Duration::from_secs(1), "never more than 3 in a second: {w:?}");
        }
    }
}
