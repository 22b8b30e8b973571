use std::sync::Arc;

use async_trait::async_trait;
use futures_util::future::join_all;

use super::{Notifier, NotifyOutcome};
use crate::Alert;

/// Sends every alert to several notifiers at once.
///
/// The outcome is the worst of the branches: `Delivered` only when every branch delivered; then queued or
/// suppressed; then a permanent failure before a temporary one before a rate limit. Each failing
/// branch is also logged. Wrap each branch in its own [`Retrying`](super::Retrying) rather than the fan-out,
/// so a retry never re-sends to branches that already succeeded.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use resee_ops_core::{Alert, FanOut, LogNotifier, Notifier, Severity};
/// let both = FanOut::new(vec![Arc::new(LogNotifier::new()), Arc::new(LogNotifier::new())]);
/// assert!(both.notify(&Alert::new("demo", Severity::Info, "hi")).await.is_ok());
/// # });
/// ```
#[derive(Debug, Clone, Default)]
pub struct FanOut {
    branches: Vec<Arc<dyn Notifier>>,
}

impl FanOut {
    /// A fan-out over `branches`.
    pub fn new(branches: Vec<Arc<dyn Notifier>>) -> Self {
        Self { branches }
    }

    /// Adds a branch.
    pub fn with(mut self, branch: impl Notifier) -> Self {
        self.branches.push(Arc::new(branch));
        self
    }

    /// How many branches there are.
    pub fn len(&self) -> usize {
        self.branches.len()
    }

    /// Whether there are no branches.
    pub fn is_empty(&self) -> bool {
        self.branches.is_empty()
    }
}

fn badness(o: &NotifyOutcome) -> u8 {
    match o {
        NotifyOutcome::PermanentFailure(_) => 4,
        NotifyOutcome::TemporaryFailure(_) => 3,
        NotifyOutcome::RateLimited { .. } => 2,
        NotifyOutcome::Queued | NotifyOutcome::Suppressed => 1,
        _ => 0,
    }
}

#[async_trait]
impl Notifier for FanOut {
    async fn notify(&self, alert: &Alert) -> NotifyOutcome {
        let outcomes = join_all(self.branches.iter().map(|b| b.notify(alert))).await;
        let mut worst = NotifyOutcome::Delivered;
        for (branch, outcome) in self.branches.iter().zip(outcomes) {
            if !outcome.is_ok() {
                tracing::warn!(target: "resee_ops::notify", branch = ?branch, outcome = %outcome,
                    fingerprint = %alert.fingerprint(), "fan-out branch did not deliver");
            }
            if badness(&outcome) > badness(&worst) {
                worst = outcome;
            }
        }
        worst
    }
}
