use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::{Alert, Notifier, NotifyOutcome};

#[derive(Debug, Default)]
struct State {
    delivered: Mutex<Vec<Alert>>,
    scripted: Mutex<VecDeque<NotifyOutcome>>,
    delay: Mutex<Duration>,
    attempts: AtomicUsize,
}

/// A notifier that records what it delivers, for tests.
///
/// Outcomes can be scripted ([`push_outcome`](Self::push_outcome)): each call takes the next scripted
/// outcome, and records the alert only when the outcome is `Delivered` (the default once the script is
/// empty). A delay makes it a slow receiver. Clones share state.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use resee_ops_core::{Alert, Notifier, NotifyOutcome, Severity};
/// use resee_ops_core::testing::RecordingNotifier;
/// let n = RecordingNotifier::new();
/// n.push_outcome(NotifyOutcome::Suppressed);
/// n.notify(&Alert::new("a", Severity::Info, "first")).await;
/// n.notify(&Alert::new("a", Severity::Info, "second")).await;
/// assert_eq!(n.titles(), ["second"]);
/// assert_eq!(n.attempts(), 2);
/// # });
/// ```
#[derive(Debug, Clone, Default)]
pub struct RecordingNotifier {
    state: Arc<State>,
}

impl RecordingNotifier {
    /// A notifier that delivers everything at once.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every call take `delay` (on the Tokio clock) before answering.
    pub fn with_delay(self, delay: Duration) -> Self {
        *self.state.delay.lock().unwrap_or_else(|p| p.into_inner()) = delay;
        self
    }

    /// Queues the outcome of a future call.
    pub fn push_outcome(&self, outcome: NotifyOutcome) {
        self.state.scripted.lock().unwrap_or_else(|p| p.into_inner()).push_back(outcome);
    }

    /// The alerts delivered so far, in order.
    pub fn alerts(&self) -> Vec<Alert> {
        self.state.delivered.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Titles of the alerts delivered so far.
    pub fn titles(&self) -> Vec<String> {
        self.alerts().into_iter().map(|a| a.title).collect()
    }

    /// Calls of `notify` so far, whatever their outcome.
    pub fn attempts(&self) -> usize {
        self.state.attempts.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Notifier for RecordingNotifier {
    async fn notify(&self, alert: &Alert) -> NotifyOutcome {
        self.state.attempts.fetch_add(1, Ordering::SeqCst);
        let delay = *self.state.delay.lock().unwrap_or_else(|p| p.into_inner());
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let outcome = self.state.scripted.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
        let outcome = outcome.unwrap_or(NotifyOutcome::Delivered);
        if matches!(outcome, NotifyOutcome::Delivered) {
            self.state.delivered.lock().unwrap_or_else(|p| p.into_inner()).push(alert.clone());
        }
        outcome
    }
}
