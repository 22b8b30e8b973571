//! Running a cycle on an interval until cancelled: shared by the health monitor and the rule evaluator.

use std::time::Duration;

/// Stops a loop started with [`HealthMonitor::spawn`](crate::HealthMonitor::spawn) or
/// [`RuleEvaluator::spawn`](crate::RuleEvaluator::spawn). Dropping it stops the loop too.
#[derive(Debug)]
pub struct MonitorHandle {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl MonitorHandle {
    /// Stops the loop (an unfinished cycle is abandoned) and waits for it to end.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// Whether the loop has ended.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// Part of an [`OpsHandle`](resee_ops_core::OpsHandle)'s shutdown: the loop stops before the alerts are
/// flushed.
#[async_trait::async_trait]
impl resee_ops_core::Stop for MonitorHandle {
    async fn stop(self: Box<Self>, _grace: std::time::Duration) {
        // An unfinished cycle is abandoned at once; its deliveries already run on their own tasks.
        self.shutdown().await;
    }
}

/// Runs `cycle` at once and then every `interval` until `shutdown` completes. A cycle still running when
/// `shutdown` completes is abandoned; a slow cycle delays the next one (ticks never pile up).
pub(crate) async fn run_every<F: Future<Output = ()>>(
    interval: Duration,
    shutdown: impl Future<Output = ()>,
    mut cycle: impl FnMut() -> F,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => return,
            _ = ticker.tick() => {}
        }
        tokio::select! {
            biased;
            () = &mut shutdown => return,
            () = cycle() => {}
        }
    }
}

/// Runs `run` (given its shutdown signal) on a new task, stopped through the returned handle.
pub(crate) fn spawn<F>(run: impl FnOnce(tokio::sync::oneshot::Receiver<()>) -> F) -> MonitorHandle
where
    F: Future<Output = ()> + Send + 'static,
{
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    MonitorHandle { stop: Some(stop), task: tokio::spawn(run(stopped)) }
}
