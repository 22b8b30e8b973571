use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::{Notifier, NotifyOutcome};
use crate::{Alert, Error, ErrorKind};

/// When and how often [`Retrying`] tries again.
///
/// Exponential backoff with full jitter (`sleep = random(0, min(max_backoff, initial * 2^n))`), a wait of
/// at least the receiver's `Retry-After` (capped at `max_retry_after`), at most `max_attempts` attempts,
/// and never past `deadline` counted from the first attempt.
///
/// ```
/// use std::time::Duration;
/// use resee_ops_core::RetryPolicy;
/// let p = RetryPolicy::default()
///     .with_max_attempts(5)
///     .with_initial_backoff(Duration::from_millis(500))
///     .with_deadline(Duration::from_secs(120));
/// assert_eq!(p.max_attempts(), 5);
/// ```
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// Backoff ceiling before the first retry.
    #[serde(with = "crate::serde_duration")]
    pub initial_backoff: Duration,
    /// Backoff ceiling for later retries.
    #[serde(with = "crate::serde_duration")]
    pub max_backoff: Duration,
    /// The longest `Retry-After` honoured; longer requests give up instead of waiting.
    #[serde(with = "crate::serde_duration")]
    pub max_retry_after: Duration,
    /// The whole budget, from the first attempt: no attempt starts after it.
    #[serde(with = "crate::serde_duration")]
    pub deadline: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
            deadline: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// Sets [`max_attempts`](Self::max_attempts) (values below 1 count as 1).
    pub fn with_max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Sets [`initial_backoff`](Self::initial_backoff).
    pub fn with_initial_backoff(mut self, d: Duration) -> Self {
        self.initial_backoff = d;
        self
    }

    /// Sets [`max_backoff`](Self::max_backoff).
    pub fn with_max_backoff(mut self, d: Duration) -> Self {
        self.max_backoff = d;
        self
    }

    /// Sets [`max_retry_after`](Self::max_retry_after).
    pub fn with_max_retry_after(mut self, d: Duration) -> Self {
        self.max_retry_after = d;
        self
    }

    /// Sets [`deadline`](Self::deadline).
    pub fn with_deadline(mut self, d: Duration) -> Self {
        self.deadline = d;
        self
    }

    /// Attempts in all.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts.max(1)
    }

    /// The jittered backoff before retry number `retry` (0 for the first retry).
    pub fn backoff(&self, retry: u32) -> Duration {
        let ceiling = self.initial_backoff.saturating_mul(1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX));
        let ceiling = ceiling.min(self.max_backoff);
        // Full jitter: spreads retries of many callers evenly over the window.
        ceiling.mul_f64(fastrand::f64())
    }
}

/// Retries temporary failures and rate limits of the notifier it wraps; see [`RetryPolicy`].
///
/// Permanent failures return at once. When the budget runs out, the last outcome is returned, so the
/// caller still sees why the alert was not delivered.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// use resee_ops_core::{Alert, Notifier, NotifierExt, NotifyOutcome, RetryPolicy, Severity};
/// use resee_ops_core::testing::RecordingNotifier;
///
/// let inner = RecordingNotifier::new();
/// inner.push_outcome(NotifyOutcome::RateLimited { retry_after: Some(std::time::Duration::from_secs(2)) });
/// let n = inner.clone().retrying(RetryPolicy::default());
/// assert!(matches!(n.notify(&Alert::new("x", Severity::Info, "hi")).await, NotifyOutcome::Delivered));
/// assert_eq!(inner.attempts(), 2);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct Retrying<N> {
    inner: N,
    policy: RetryPolicy,
}

impl<N: Notifier> Retrying<N> {
    /// Wraps `inner`.
    pub fn new(inner: N, policy: RetryPolicy) -> Self {
        Self { inner, policy }
    }

    /// The wrapped notifier.
    pub fn inner(&self) -> &N {
        &self.inner
    }

    /// The policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }
}

impl<N: Notifier> Retrying<N> {
    /// The retry loop around `send` (the inner `notify` or `notify_final`).
    ///
    /// Each attempt is bounded by the time left to the deadline: an inner call that would outlive it is
    /// cut short and reported as a temporary timeout, so the deadline holds whatever the inner notifier
    /// does. Giving up returns the last outcome as it was, with its original error and temporary flag.
    async fn retry<'a, F>(&'a self, alert: &'a Alert, send: impl Fn(&'a N, &'a Alert) -> F) -> NotifyOutcome
    where
        F: Future<Output = NotifyOutcome> + 'a,
    {
        let started = Instant::now();
        // `Duration::MAX` (or any deadline past the end of time) means no deadline.
        let deadline = started.checked_add(self.policy.deadline);
        let mut attempt: u32 = 0;
        loop {
            let outcome = match deadline {
                Some(deadline) => match tokio::time::timeout_at(deadline, send(&self.inner, alert)).await {
                    Ok(outcome) => outcome,
                    Err(_) => NotifyOutcome::TemporaryFailure(Error::new(
                        ErrorKind::Timeout,
                        format!("no answer within the retry deadline of {:?}", self.policy.deadline),
                    )),
                },
                None => send(&self.inner, alert).await,
            };
            attempt += 1;
            let wait = match &outcome {
                NotifyOutcome::RateLimited { retry_after } => {
                    let asked = retry_after.unwrap_or_default();
                    if asked > self.policy.max_retry_after {
                        tracing::warn!(target: "resee_ops::notify", ?asked, "Retry-After above the cap, giving up");
                        return outcome;
                    }
                    asked.max(self.policy.backoff(attempt - 1))
                }
                NotifyOutcome::TemporaryFailure(_) => self.policy.backoff(attempt - 1),
                _ => return outcome,
            };
            if attempt >= self.policy.max_attempts() {
                return give_up(outcome, attempt, "attempts exhausted");
            }
            if deadline.is_some_and(|deadline| Instant::now().checked_add(wait).is_none_or(|at| at >= deadline)) {
                return give_up(outcome, attempt, "deadline reached");
            }
            tracing::debug!(target: "resee_ops::notify", attempt, ?wait, outcome = %outcome, "retrying alert");
            tokio::time::sleep(wait).await;
        }
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl<N: Notifier> Notifier for Retrying<N> {
    async fn notify(&self, alert: &Alert) -> NotifyOutcome {
        self.retry(alert, |inner, alert| inner.notify(alert)).await
    }

    async fn notify_final(&self, alert: &Alert) -> NotifyOutcome {
        self.retry(alert, |inner, alert| inner.notify_final(alert)).await
    }
}

/// Logs why retrying stopped and returns the last outcome unchanged: the caller sees the receiver's own
/// error, kind and temporary flag (a still-temporary failure stays temporary, so an outer layer may try
/// again later).
fn give_up(outcome: NotifyOutcome, attempts: u32, why: &str) -> NotifyOutcome {
    tracing::warn!(target: "resee_ops::notify", attempts, why, outcome = %outcome, "giving up on alert");
    outcome
}
