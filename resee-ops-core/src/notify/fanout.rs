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
///
/// `Debug` shows how many branches there are, never the branches themselves (each may be large, and
/// a dispatcher logs its inner notifier's `Debug` once).
#[derive(Clone, Default)]
pub struct FanOut {
    branches: Vec<Arc<dyn Notifier>>,
}

impl std::fmt::Debug for FanOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FanOut").field("branches", &self.branches.len()).finish()
    }
}

impl FanOut {
    /// A fan-out over `branches`.
    pub fn new(branches: Vec<Arc<dyn Notifier>>) -> Self {
        Self { branches }
    }

    /// Adds a branch.
    pub fn with_branch(mut self, branch: impl Notifier) -> Self {
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

impl FanOut {
    /// Sends through every branch with `send` and keeps the worst outcome.
    async fn fan_out<'a, F>(
        &'a self,
        alert: &'a Alert,
        send: impl Fn(&'a Arc<dyn Notifier>, &'a Alert) -> F,
    ) -> NotifyOutcome
    where
        F: Future<Output = NotifyOutcome> + 'a,
    {
        let outcomes = join_all(self.branches.iter().map(|b| send(b, alert))).await;
        let mut worst = NotifyOutcome::Delivered;
        for (i, outcome) in outcomes.into_iter().enumerate() {
            if !outcome.is_ok() {
                tracing::warn!(target: "resee_ops::notify", branch = i, outcome = %outcome,
                    fingerprint = %alert.fingerprint(), "fan-out branch did not deliver");
            }
            if badness(&outcome) > badness(&worst) {
                worst = outcome;
            }
        }
        worst
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl Notifier for FanOut {
    async fn notify(&self, alert: &Alert) -> NotifyOutcome {
        self.fan_out(alert, |branch, alert| branch.notify(alert)).await
    }

    async fn notify_final(&self, alert: &Alert) -> NotifyOutcome {
        self.fan_out(alert, |branch, alert| branch.notify_final(alert)).await
    }
}
