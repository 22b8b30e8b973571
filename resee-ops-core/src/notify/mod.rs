//! Delivering alerts: the [`Notifier`] trait, its outcome, and the wrappers that are notifiers themselves.
//!
//! A production stack usually reads, from the outside in:
//! [`Dispatcher`] (the caller never waits) → [`Throttled`] (at most once per window) →
//! [`Retrying`] (backoff within a deadline) → an adapter such as the Slack notifier.
//! [`NotifierExt`] builds the inner layers fluently.

mod dispatcher;
mod fanout;
mod log;
mod retry;
mod throttle;

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use dispatcher::{DispatchStats, Dispatcher, DispatcherConfig, DropReason};
pub use fanout::FanOut;
pub use log::LogNotifier;
pub use retry::{RetryPolicy, Retrying};
pub use throttle::{
    DEFAULT_THROTTLE_RETENTION, DEFAULT_THROTTLE_WINDOW, InMemoryThrottleStore, ThrottleEntry, ThrottleStore, Throttled,
};

use crate::{Alert, Error};

/// What became of one alert handed to a [`Notifier`].
#[non_exhaustive]
#[derive(Clone, Debug)]
pub enum NotifyOutcome {
    /// The receiving system accepted it.
    Delivered,
    /// Accepted into a queue; a background task delivers it (see [`Dispatcher`]).
    Queued,
    /// Deliberately not sent: a duplicate inside its throttle window, or a resolution whose firing was
    /// never sent. Counted, not lost.
    Suppressed,
    /// The receiver asked us to slow down; try again after `retry_after` if given.
    RateLimited {
        /// How long the receiver asked us to wait.
        retry_after: Option<Duration>,
    },
    /// Not delivered, but the same alert may succeed later (timeouts, 5xx, connection errors).
    TemporaryFailure(Error),
    /// Not delivered, and retrying will not help (bad payload, revoked webhook, archived channel).
    PermanentFailure(Error),
}

impl NotifyOutcome {
    /// A failure outcome from an error, temporary or permanent as the error says.
    pub fn failure(err: Error) -> Self {
        if err.is_temporary() { Self::TemporaryFailure(err) } else { Self::PermanentFailure(err) }
    }

    /// Delivered, queued or deliberately suppressed: nothing left to do for the caller.
    pub fn is_ok(&self) -> bool {
        matches!(self, Self::Delivered | Self::Queued | Self::Suppressed)
    }

    /// Whether trying again later may deliver it.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::TemporaryFailure(_))
    }

    /// The error, for failure outcomes.
    pub fn error(&self) -> Option<&Error> {
        match self {
            Self::TemporaryFailure(e) | Self::PermanentFailure(e) => Some(e),
            _ => None,
        }
    }

    /// A short, stable name (`delivered`, `queued`, `suppressed`, `rate_limited`, `temporary_failure`,
    /// `permanent_failure`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Queued => "queued",
            Self::Suppressed => "suppressed",
            Self::RateLimited { .. } => "rate_limited",
            Self::TemporaryFailure(_) => "temporary_failure",
            Self::PermanentFailure(_) => "permanent_failure",
        }
    }
}

impl std::fmt::Display for NotifyOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::RateLimited { retry_after: Some(d) } => write!(f, "rate_limited (retry after {d:?})"),
            Self::TemporaryFailure(e) | Self::PermanentFailure(e) => write!(f, "{}: {e}", self.as_str()),
            other => f.write_str(other.as_str()),
        }
    }
}

/// Delivers alerts somewhere: Slack, a log, a pager, another notifier.
///
/// Implementations must not panic on any alert (huge text, odd characters, empty fields), must report
/// every failure in the outcome rather than swallowing it, and must keep secrets (webhook URLs, tokens)
/// out of outcomes, logs and `Debug` output. Usable as `Arc<dyn Notifier>`.
///
/// ```
/// use async_trait::async_trait;
/// use resee_ops_core::{Alert, Notifier, NotifyOutcome, Severity};
///
/// #[derive(Debug)]
/// struct Stdout;
///
/// #[async_trait]
/// impl Notifier for Stdout {
///     async fn notify(&self, alert: &Alert) -> NotifyOutcome {
///         println!("[{}] {}", alert.severity, alert.title);
///         NotifyOutcome::Delivered
///     }
/// }
///
/// # tokio_test_block_on(async {
/// let n: std::sync::Arc<dyn Notifier> = std::sync::Arc::new(Stdout);
/// let outcome = n.notify(&Alert::new("demo", Severity::Info, "hello")).await;
/// assert!(outcome.is_ok());
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
/// # }
/// ```
#[async_trait]
pub trait Notifier: Send + Sync + Debug + 'static {
    /// Delivers one alert and says what became of it.
    async fn notify(&self, alert: &Alert) -> NotifyOutcome;

    /// Delivers one alert and waits for its **final** outcome: never [`NotifyOutcome::Queued`].
    ///
    /// A caller that must know whether an alert reached its receiver (the health monitor resending a
    /// resolution until it is delivered) calls this. A notifier that delivers in `notify` needs nothing
    /// more: the default calls [`notify`](Self::notify). A notifier that queues (the [`Dispatcher`])
    /// overrides it to wait for the background delivery, and every wrapper forwards it to the notifier it
    /// wraps, so the truth travels through the whole stack.
    async fn notify_final(&self, alert: &Alert) -> NotifyOutcome {
        self.notify(alert).await
    }
}

// Forwarding impls forward every method: a default method left out would silently bypass the inner one.
#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl<N: Notifier + ?Sized> Notifier for Arc<N> {
    async fn notify(&self, alert: &Alert) -> NotifyOutcome {
        (**self).notify(alert).await
    }
    async fn notify_final(&self, alert: &Alert) -> NotifyOutcome {
        (**self).notify_final(alert).await
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl<N: Notifier + ?Sized> Notifier for Box<N> {
    async fn notify(&self, alert: &Alert) -> NotifyOutcome {
        (**self).notify(alert).await
    }
    async fn notify_final(&self, alert: &Alert) -> NotifyOutcome {
        (**self).notify_final(alert).await
    }
}

/// Fluent wrapping for any [`Notifier`].
///
/// # Order
///
/// The chain reads **inner to outer**: each method wraps everything to its left, so the first call is
/// closest to the receiver and the last one is what the caller talks to. The usual stack is
/// `adapter.throttled(..).dispatched(..)`: the [`Dispatcher`] (outermost) takes the alert without making
/// the caller wait, [`Throttled`] decides whether it is news, and the adapter delivers it.
///
/// - **Retry once, in one layer.** The Slack notifier (`resee-ops-slack`) already retries inside, under
///   its own [`RetryPolicy`]: do **not** add `.retrying(..)` to it, or every failure is retried
///   `attempts × attempts` times and past the outer deadline. Use `.retrying(..)` for adapters that
///   deliver once (your own, [`LogNotifier`] in this example, each branch of a [`FanOut`]).
/// - **Retry inside the throttle**, never outside: a retry outside would meet its own claim and be
///   suppressed. The throttle gives its claim back when the inner layers finally fail.
/// - **Dispatch last**: a [`Dispatcher`] inside a throttle would make the throttle see `Queued`, not the
///   final outcome, for `notify` (callers that need the truth use [`Notifier::notify_final`]).
///
/// ```
/// use std::time::Duration;
/// use resee_ops_core::{LogNotifier, NotifierExt, RetryPolicy};
///
/// let stack = LogNotifier::new()
///     .retrying(RetryPolicy::default().with_deadline(Duration::from_secs(60)))
///     .throttled(Duration::from_secs(600));
/// # let _ = stack;
/// ```
pub trait NotifierExt: Notifier + Sized {
    /// Retries temporary failures and rate limits according to `policy`.
    fn retrying(self, policy: RetryPolicy) -> Retrying<Self> {
        Retrying::new(self, policy)
    }

    /// Sends the same fingerprint at most once per `window`, using an in-memory store.
    fn throttled(self, window: Duration) -> Throttled<Self> {
        Throttled::new(self).with_window(window)
    }

    /// Moves delivery to a background task behind a bounded queue. Must be called inside a Tokio runtime.
    fn dispatched(self, config: DispatcherConfig) -> Dispatcher {
        Dispatcher::spawn(self, config)
    }
}

impl<N: Notifier> NotifierExt for N {}
