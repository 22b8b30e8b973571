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
    /// The whole budget, from the first attempt: no attempt starts after it. `Duration::MAX` means no limit.
    #[serde(with = "crate::serde_duration")]
    pub deadline: Duration,
    /// Whether waits are jittered (full jitter, the default) or exactly the backoff (fixed schedules such as
    /// Celery's `default_retry_delay`).
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
            deadline: Duration::from_secs(300),
            jitter: true,
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

    /// Sets [`jitter`](Self::jitter).
    pub fn with_jitter(mut self, jitter: bool) -> Self {
        self.jitter = jitter;
        self
    }

    /// Celery's `max_retries` semantics: one attempt plus `max_retries` retries, exactly `delay` apart,
    /// no jitter and no overall deadline. The seed's "재시도 3회" is `celery(3, 5 minutes)`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use resee_ops_core::RetryPolicy;
    /// let p = RetryPolicy::celery(3, Duration::from_secs(300));
    /// assert_eq!(p.max_attempts(), 4);
    /// assert_eq!(p.backoff(0), Duration::from_secs(300));
    /// assert_eq!(p.backoff(2), Duration::from_secs(300));
    /// ```
    pub fn celery(max_retries: u32, delay: Duration) -> Self {
        Self {
            max_attempts: max_retries.saturating_add(1),
            initial_backoff: delay,
            max_backoff: delay,
            max_retry_after: delay,
            deadline: Duration::MAX,
            jitter: false,
        }
    }

    /// Runs `op` (given the attempt number, from 1) until it succeeds, fails with a permanent error, or the
    /// attempts or the deadline run out; waits [`backoff`](Self::backoff) (at least the error's
    /// [`retry_after`](Error::retry_after), up to `max_retry_after`) between attempts on the Tokio clock.
    /// Returns the last result, unchanged (its error keeps its kind, source and temporary flag), and the
    /// number of attempts made.
    pub async fn run<T, F, Fut>(&self, mut op: F) -> (Result<T, Error>, u32)
    where
        F: FnMut(u32) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let deadline = Instant::now().checked_add(self.deadline);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let err = match op(attempt).await {
                Ok(v) => return (Ok(v), attempt),
                Err(e) => e,
            };
            if !err.is_temporary() || attempt >= self.max_attempts() {
                return (Err(err), attempt);
            }
            let asked = err.retry_after().unwrap_or_default().min(self.max_retry_after);
            let wait = self.backoff(attempt - 1).max(asked);
            if deadline.is_some_and(|d| Instant::now().checked_add(wait).is_none_or(|at| at >= d)) {
                return (Err(err), attempt);
            }
            tracing::warn!(target: "resee_ops::retry", attempt, error = %format_args!("{err:#}"), retry_in = ?wait, "attempt failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// Attempts in all.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts.max(1)
    }

    /// The jittered backoff before retry number `retry` (0 for the first retry).
    pub fn backoff(&self, retry: u32) -> Duration {
        let ceiling = self.initial_backoff.saturating_mul(1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX));
        let ceiling = ceiling.min(self.max_backoff);
        if !self.jitter {
            return ceiling;
        }
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
            metrics::counter!(crate::telemetry::ALERTS_RETRIED).increment(1);
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
