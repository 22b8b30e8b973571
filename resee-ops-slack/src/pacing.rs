//! Pacing: about one message per second per webhook, with a small burst.

use std::sync::Mutex;
use std::time::Duration;

use resee_ops_core::deadline::SaturatingAdd;
use tokio::time::Instant;

/// A token bucket in its GCRA form, over the Tokio clock (so tests drive it with paused time).
///
/// Each [`acquire`](Pacer::acquire) reserves the next free slot and sleeps until it: the first `burst`
/// calls pass at once, later ones one per `interval`, served in call order. [`hold_until`](Pacer::hold_until)
/// stops every send until an instant (Slack's `Retry-After` applies to the whole webhook, not one message),
/// including the sends already waiting for a slot reserved before the hold: they look again when they wake
/// and wait for a new slot after it.
///
/// Hand-written rather than `governor`: governor's waiting does not run on Tokio's clock, so paused-time
/// tests could not drive it, and it has no way to hold all senders for a `Retry-After`.
#[derive(Debug)]
pub(crate) struct Pacer {
    interval: Duration,
    /// How far ahead of now the schedule may run before callers wait: `(burst - 1) * interval`.
    tolerance: Duration,
    /// The theoretical arrival time: when the bucket would be empty again.
    tat: Mutex<Option<Instant>>,
    /// The latest `Retry-After` hold: nothing is sent before it.
    held: Mutex<Option<Instant>>,
}

impl Pacer {
    /// A pacer letting `burst` (at least 1) sends through at once, then one per `interval`.
    /// A zero interval disables pacing.
    pub(crate) fn new(interval: Duration, burst: u32) -> Self {
        Self {
            interval,
            tolerance: interval.saturating_mul(burst.max(1) - 1),
            tat: Mutex::new(None),
            held: Mutex::new(None),
        }
    }

    /// Reserves a slot and returns when it comes; how long that is from now.
    fn reserve(&self, now: Instant) -> Duration {
        if self.interval.is_zero() {
            return Duration::ZERO;
        }
        let mut tat = self.tat.lock().unwrap_or_else(|p| p.into_inner());
        let current = tat.unwrap_or(now).max(now);
        // The earliest start the bucket allows.
        let start = current.checked_sub(self.tolerance).map_or(now, |t| t.max(now));
        *tat = Some(current.saturating_add(self.interval));
        start - now
    }

    /// Waits for the next slot, and for any hold that began while waiting.
    pub(crate) async fn acquire(&self) {
        loop {
            let wait = self.reserve(Instant::now());
            if !wait.is_zero() {
                tracing::debug!(target: "resee_ops::slack", ?wait, "pacing slack message");
                tokio::time::sleep(wait).await;
            }
            // A slot reserved before a `Retry-After` arrived may fall inside it: reserve again, after it.
            let held = *self.held.lock().unwrap_or_else(|p| p.into_inner());
            if held.is_none_or(|h| h <= Instant::now()) {
                return;
            }
        }
    }

    /// Makes every later [`acquire`](Self::acquire) wait at least until `until`.
    pub(crate) fn hold_until(&self, until: Instant) {
        if self.interval.is_zero() {
            return;
        }
        {
            let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
            *held = Some(held.map_or(until, |h| h.max(until)));
        }
        let mut tat = self.tat.lock().unwrap_or_else(|p| p.into_inner());
        let held = until.saturating_add(self.tolerance);
        *tat = Some(tat.map_or(held, |t| t.max(held)));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// `n` tasks each acquiring a slot and answering how long after now they got it.
    fn acquirers(pacer: &Arc<Pacer>, n: usize) -> Vec<tokio::task::JoinHandle<Duration>> {
        let t0 = Instant::now();
        (0..n)
            .map(|_| {
                let pacer = pacer.clone();
                tokio::spawn(async move {
                    pacer.acquire().await;
                    Instant::now() - t0
                })
            })
            .collect()
    }

    async fn sorted_times(tasks: Vec<tokio::task::JoinHandle<Duration>>) -> Vec<Duration> {
        let mut times = Vec::new();
        for t in tasks {
            times.push(t.await.unwrap());
        }
        times.sort();
        times
    }

    #[tokio::test(start_paused = true)]
    async fn burst_then_one_per_interval() {
        let pacer = Arc::new(Pacer::new(Duration::from_secs(1), 3));
        let tasks = acquirers(&pacer, 100);
        let times = sorted_times(tasks).await;
        assert_eq!(&times[..3], &[Duration::ZERO; 3], "the burst passes at once");
        for (i, t) in times.iter().enumerate().skip(3) {
            assert_eq!(*t, Duration::from_secs(i as u64 - 2), "send {i} comes one interval after the previous");
        }
        // In any 10-second window at most 10 + burst sends.
        for w in times.windows(13) {
            assert!(w[12] - w[0] >= Duration::from_secs(10), "{w:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn bucket_refills_while_idle() {
        let pacer = Pacer::new(Duration::from_secs(1), 2);
        let t0 = Instant::now();
        for _ in 0..3 {
            pacer.acquire().await;
        }
        assert_eq!(Instant::now() - t0, Duration::from_secs(1));
        tokio::time::sleep(Duration::from_secs(60)).await;
        let t1 = Instant::now();
        pacer.acquire().await;
        pacer.acquire().await;
        assert_eq!(Instant::now(), t1, "a full bucket again after a quiet minute");
    }

    #[tokio::test(start_paused = true)]
    async fn hold_until_stops_everyone() {
        let pacer = Pacer::new(Duration::from_secs(1), 3);
        let t0 = Instant::now();
        pacer.hold_until(t0 + Duration::from_secs(30));
        pacer.acquire().await;
        assert_eq!(Instant::now() - t0, Duration::from_secs(30));
        pacer.acquire().await;
        assert_eq!(Instant::now() - t0, Duration::from_secs(31), "paced again after the hold");
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_also_stops_sends_already_waiting_for_their_slot() {
        // Slots at 0, 0, 0, 1, 2, …, 7 are reserved before a Retry-After of 30 s arrives at 0.5 s: nothing
        // goes out between 0.5 s and 30.5 s, and after the hold the sends are paced again, one per second.
        let pacer = Arc::new(Pacer::new(Duration::from_secs(1), 3));
        let tasks = acquirers(&pacer, 10);
        tokio::time::sleep(Duration::from_millis(500)).await;
        pacer.hold_until(Instant::now() + Duration::from_secs(30));
        let times = sorted_times(tasks).await;
        assert_eq!(&times[..3], &[Duration::ZERO; 3], "the burst left before the hold");
        let hold_end = Duration::from_millis(30_500);
        assert!(times[3..].iter().all(|t| *t >= hold_end), "nothing sent inside the hold: {times:?}");
        for w in times[3..].windows(2) {
            assert!(w[1] - w[0] >= Duration::from_secs(1), "paced after the hold: {times:?}");
        }
        assert!(*times.last().unwrap() <= hold_end + Duration::from_secs(7), "and not later than needed: {times:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn zero_interval_disables_pacing() {
        let pacer = Pacer::new(Duration::ZERO, 1);
        let t0 = Instant::now();
        for _ in 0..1000 {
            pacer.acquire().await;
        }
        pacer.hold_until(t0 + Duration::from_secs(5));
        pacer.acquire().await;
        assert_eq!(Instant::now(), t0);
    }
}
