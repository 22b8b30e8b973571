use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Notifier, NotifyOutcome};
use crate::clock::{SharedClock, system_clock};
use crate::{Alert, Error, Fingerprint, Severity};

/// The default throttle window: the same alert at most once per 10 minutes.
pub const DEFAULT_THROTTLE_WINDOW: Duration = Duration::from_secs(600);

/// How long [`Throttled`] keeps the entry of a fingerprint that has gone quiet (no firing sent) by
/// default: a day. See [`Throttled::with_retention`].
pub const DEFAULT_THROTTLE_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// What a [`ThrottleStore`] remembers about one fingerprint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ThrottleEntry {
    /// When a firing alert with this fingerprint was last sent.
    pub last_fired: DateTime<Utc>,
    /// Whether that firing was sent and its resolution not yet. [`Throttled`] removes the entry when the
    /// resolution is sent, so it only writes open entries; a closed one (from an older store) counts as
    /// no entry.
    pub open: bool,
    /// The severity of that firing: a more severe one passes inside the window (an escalation).
    pub severity: Severity,
}

impl ThrottleEntry {
    /// A new entry.
    pub fn new(last_fired: DateTime<Utc>, open: bool, severity: Severity) -> Self {
        Self { last_fired, open, severity }
    }
}

/// Where [`Throttled`] keeps its per-fingerprint state.
///
/// The in-memory store serves one process; a store shared by several replicas (Redis, PostgreSQL)
/// implements the same two calls with a compare-and-swap. The contract, checked by
/// [`testing::conformance::throttle_store`](crate::testing::conformance::throttle_store) (feature
/// `testing`):
///
/// - `get` returns what the last successful swap wrote (`None` after a swap to `None`).
/// - `compare_and_swap` is atomic: it writes only if the current entry equals `expected` (`None`: no
///   entry), and says whether it wrote. Of two racing swaps from the same `expected`, exactly one wins.
/// - An entry may be evicted once `keep_for` has passed since its `last_fired` (a fingerprint that went
///   quiet, whose source stopped reporting it); never earlier. Memory stays bounded by the alerts of the
///   last `keep_for`.
#[async_trait]
pub trait ThrottleStore: Send + Sync + Debug + 'static {
    /// The entry for `key`, if any.
    async fn get(&self, key: Fingerprint) -> Result<Option<ThrottleEntry>, Error>;

    /// Replaces the entry for `key` with `new` (`None` removes it) only if it currently equals `expected`.
    /// Returns whether the swap happened.
    async fn compare_and_swap(
        &self,
        key: Fingerprint,
        expected: Option<&ThrottleEntry>,
        new: Option<ThrottleEntry>,
        keep_for: Duration,
    ) -> Result<bool, Error>;
}

/// A [`ThrottleStore`] in process memory.
///
/// Memory stays bounded by the alerts that matter: resolved fingerprints are removed at once, and
/// whenever the map has doubled since the last clean-up, entries quiet for longer than their `keep_for`
/// are evicted. `Debug` shows the number of entries, never the map.
#[derive(Default, Clone)]
pub struct InMemoryThrottleStore {
    entries: Arc<Mutex<Entries>>,
}

impl Debug for InMemoryThrottleStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryThrottleStore").field("entries", &self.len()).finish()
    }
}

/// Fingerprints are already well-mixed 64-bit hashes: use them as the table hash directly.
#[derive(Debug, Default, Clone, Copy)]
struct FingerprintHasher(u64);

impl std::hash::Hasher for FingerprintHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only reached for non-u64 keys, which this map never has; fold them in anyway.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type FingerprintMap = HashMap<Fingerprint, ThrottleEntry, std::hash::BuildHasherDefault<FingerprintHasher>>;

#[derive(Debug, Default)]
struct Entries {
    map: FingerprintMap,
    /// The latest `last_fired` written: the store's notion of "now", so it never reads a clock itself.
    newest: Option<DateTime<Utc>>,
    /// Clean up when the map grows past this.
    prune_at: usize,
}

impl Entries {
    const MIN_PRUNE_AT: usize = 1024;

    fn put(&mut self, key: Fingerprint, new: Option<ThrottleEntry>, keep_for: Duration) {
        match new {
            Some(e) => {
                self.newest = self.newest.max(Some(e.last_fired));
                self.map.insert(key, e);
            }
            None => {
                self.map.remove(&key);
            }
        }
        if self.map.len() >= self.prune_at.max(Self::MIN_PRUNE_AT) {
            self.prune(keep_for);
        }
    }

    fn prune(&mut self, keep_for: Duration) {
        let (Some(now), Ok(keep_for)) = (self.newest, chrono::Duration::from_std(keep_for)) else { return };
        self.map.retain(|_, e| now.signed_duration_since(e.last_fired) < keep_for);
        self.prune_at = (self.map.len() * 2).max(Self::MIN_PRUNE_AT);
    }
}

impl InMemoryThrottleStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many fingerprints are remembered.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs `rule` on the entry for `key` and records its decision, all under one lock.
    fn decide_and_record(
        &self,
        key: Fingerprint,
        keep_for: Duration,
        rule: impl FnOnce(Option<&ThrottleEntry>) -> Decision,
    ) -> Option<(Option<ThrottleEntry>, Option<ThrottleEntry>)> {
        let mut entries = self.lock();
        match rule(entries.map.get(&key)) {
            Decision::Suppress => None,
            Decision::Send { previous, next } => {
                entries.put(key, next.clone(), keep_for);
                Some((previous, next))
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic while holding this lock cannot leave a map half-updated, so poisoning is ignored.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl ThrottleStore for InMemoryThrottleStore {
    async fn get(&self, key: Fingerprint) -> Result<Option<ThrottleEntry>, Error> {
        Ok(self.lock().map.get(&key).cloned())
    }

    async fn compare_and_swap(
        &self,
        key: Fingerprint,
        expected: Option<&ThrottleEntry>,
        new: Option<ThrottleEntry>,
        keep_for: Duration,
    ) -> Result<bool, Error> {
        let mut entries = self.lock();
        if entries.map.get(&key) != expected {
            return Ok(false);
        }
        entries.put(key, new, keep_for);
        Ok(true)
    }
}

/// The throttle's decision for one alert, before sending.
#[derive(Debug, PartialEq)]
enum Decision {
    Send { previous: Option<ThrottleEntry>, next: Option<ThrottleEntry> },
    Suppress,
}

/// The throttling rule, as a pure function of the stored entry.
///
/// - A firing alert is sent unless a firing alert with the same fingerprint and at least its severity was
///   sent less than `window` ago and not resolved since: duplicates of one state inside the window are
///   suppressed; an escalation (warning, then error) is sent at once.
/// - A resolved alert is sent if and only if the firing it ends was sent (and not yet resolved). Sending
///   it ends the window: the next firing is sent at once, so the channel never shows "recovered" while the
///   thing is down. Damping a flapping check is the source's job (the health monitor's damping and
///   [`FlapDetector`](crate::FlapDetector)).
fn decide(entry: Option<&ThrottleEntry>, alert: &Alert, now_nanos: i64, window: Duration) -> Decision {
    if alert.is_resolved() {
        return match entry {
            Some(e) if e.open => Decision::Send { previous: Some(e.clone()), next: None },
            _ => Decision::Suppress,
        };
    }
    let window = i64::try_from(window.as_nanos()).unwrap_or(i64::MAX);
    match entry {
        // A clock that went backwards counts as inside the window.
        Some(e)
            if e.open
                && now_nanos.saturating_sub(e.last_fired.timestamp_nanos_opt().unwrap_or(i64::MIN)) < window
                && alert.severity <= e.severity =>
        {
            Decision::Suppress
        }
        _ => Decision::Send {
            previous: entry.cloned(),
            next: Some(ThrottleEntry {
                last_fired: DateTime::from_timestamp_nanos(now_nanos),
                open: true,
                severity: alert.severity,
            }),
        },
    }
}

/// Sends the same alert (same [`Fingerprint`]) at most once per window; see the rule on
/// [`Throttled::new`].
///
/// The window is claimed in the store before sending and given back if the inner notifier fails, so a
/// failed send never silences the retry that follows. If the store itself fails, the alert is sent anyway:
/// a duplicate is better than a lost alert. `Debug` shows the settings and the store's size, never its
/// entries.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use std::time::Duration;
/// use resee_ops_core::{Alert, Notifier, NotifierExt, NotifyOutcome, Severity};
/// use resee_ops_core::testing::RecordingNotifier;
///
/// let inbox = RecordingNotifier::new();
/// let n = inbox.clone().throttled(Duration::from_secs(600));
/// let alert = Alert::new("database_down", Severity::Error, "Database connection failed");
/// assert!(matches!(n.notify(&alert).await, NotifyOutcome::Delivered));
/// assert!(matches!(n.notify(&alert).await, NotifyOutcome::Suppressed));
/// assert!(matches!(n.notify(&alert.resolved()).await, NotifyOutcome::Delivered));
/// // The delivered resolution ended the window: failing again is news.
/// assert!(matches!(n.notify(&alert).await, NotifyOutcome::Delivered));
/// assert_eq!(inbox.alerts().len(), 3);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct Throttled<N> {
    inner: N,
    store: Store,
    window: Duration,
    retention: Duration,
    clock: SharedClock,
}

/// The in-memory store is called directly (no boxed future, one lock); any other store through the trait.
#[derive(Debug, Clone)]
enum Store {
    Memory(InMemoryThrottleStore),
    Shared(Arc<dyn ThrottleStore>),
}

impl Store {
    fn as_dyn(&self) -> &dyn ThrottleStore {
        match self {
            Store::Memory(m) => m,
            Store::Shared(s) => s.as_ref(),
        }
    }
}

impl<N: Notifier> Throttled<N> {
    /// Wraps `inner` with the default 10-minute window, an in-memory store and the system clock.
    ///
    /// Rule: a firing alert is sent unless the same fingerprint fired (and was sent) with at least its
    /// severity less than a window ago and was not resolved since; an escalation (warning, then error) is
    /// sent at once; a resolved alert is sent if and only if its firing was sent, and a sent resolution
    /// ends the window. Sources that keep reporting a condition while it lasts (as the health monitor
    /// does) therefore get a reminder once per window.
    pub fn new(inner: N) -> Self {
        Self {
            inner,
            store: Store::Memory(InMemoryThrottleStore::new()),
            window: DEFAULT_THROTTLE_WINDOW,
            retention: DEFAULT_THROTTLE_RETENTION,
            clock: system_clock(),
        }
    }

    /// Sets the window.
    pub fn with_window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Sets how long the state of a fingerprint that went quiet is kept (default a day, never less than
    /// twice the window). A firing re-sent within it (a reminder) keeps it; past it the entry may be
    /// evicted, and a late resolution of it is then suppressed like one whose firing was never sent.
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    fn keep_for(&self) -> Duration {
        self.retention.max(self.window.saturating_mul(2))
    }

    /// Uses `store` for the state (share one store between replicas to throttle across them).
    pub fn with_store(mut self, store: Arc<dyn ThrottleStore>) -> Self {
        self.store = Store::Shared(store);
        self
    }

    /// Uses `store`, an in-memory store (clones share their entries: give the same store to several
    /// throttles of one process to throttle across them).
    pub fn with_memory_store(mut self, store: InMemoryThrottleStore) -> Self {
        self.store = Store::Memory(store);
        self
    }

    /// Uses `clock` to read the time.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The wrapped notifier.
    pub fn inner(&self) -> &N {
        &self.inner
    }

    /// The window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Claims the right to send `alert`, or says it is a duplicate. `Ok(None)` means suppress.
    async fn claim(&self, alert: &Alert) -> Result<Option<(Option<ThrottleEntry>, Option<ThrottleEntry>)>, Error> {
        let key = alert.fingerprint();
        let keep_for = self.keep_for();
        // A few rounds of compare-and-swap; contention on one fingerprint is rare and short.
        if let Store::Memory(memory) = &self.store {
            // The default store answers in one critical section: no compare-and-swap round trip.
            let now = self.clock.now_nanos();
            return Ok(memory.decide_and_record(key, keep_for, |entry| decide(entry, alert, now, self.window)));
        }
        let Store::Shared(store) = &self.store else { unreachable!("matched above") };
        for _ in 0..16 {
            let now = self.clock.now_nanos();
            let entry = store.get(key).await?;
            match decide(entry.as_ref(), alert, now, self.window) {
                Decision::Suppress => return Ok(None),
                Decision::Send { previous, next } => {
                    if store.compare_and_swap(key, previous.as_ref(), next.clone(), keep_for).await? {
                        return Ok(Some((previous, next)));
                    }
                }
            }
        }
        Err(Error::new(crate::ErrorKind::Unavailable, "throttle store kept changing under compare-and-swap"))
    }
}

impl<N: Notifier> Throttled<N> {
    /// Claims, sends through `send` (the inner `notify` or `notify_final`), and gives the claim back if
    /// sending failed.
    async fn throttle<'a, F>(&'a self, alert: &'a Alert, send: impl FnOnce(&'a N, &'a Alert) -> F) -> NotifyOutcome
    where
        F: Future<Output = NotifyOutcome> + 'a,
    {
        let claimed = match self.claim(alert).await {
            Ok(Some(claim)) => Some(claim),
            Ok(None) => {
                tracing::debug!(target: "resee_ops::notify", fingerprint = %alert.fingerprint(), "alert suppressed by throttle");
                return NotifyOutcome::Suppressed;
            }
            Err(err) => {
                tracing::warn!(target: "resee_ops::notify", error = %err, "throttle store failed; sending unthrottled");
                None
            }
        };
        let outcome = send(&self.inner, alert).await;
        // `Queued` is not delivered: a queueing inner notifier may still fail, but its final outcome is not
        // ours to see here, so only an outright failure gives the window back.
        if !outcome.is_ok()
            && let Some((previous, next)) = claimed
        {
            // Give the window back so the next attempt is not suppressed.
            let key = alert.fingerprint();
            if let Err(err) = self.store.as_dyn().compare_and_swap(key, next.as_ref(), previous, self.keep_for()).await
            {
                tracing::warn!(target: "resee_ops::notify", error = %err, "could not release throttle claim");
            }
        }
        outcome
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl<N: Notifier> Notifier for Throttled<N> {
    async fn notify(&self, alert: &Alert) -> NotifyOutcome {
        self.throttle(alert, |inner, alert| inner.notify(alert)).await
    }

    async fn notify_final(&self, alert: &Alert) -> NotifyOutcome {
        self.throttle(alert, |inner, alert| inner.notify_final(alert)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Severity;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    fn n(secs: i64) -> i64 {
        t(secs).timestamp_nanos_opt().unwrap()
    }

    #[test]
    fn rule_table() {
        let w = Duration::from_secs(600);
        let a = Alert::new("a", Severity::Error, "A");
        let r = a.resolved();
        assert!(matches!(decide(None, &a, n(0), w), Decision::Send { .. }));
        assert_eq!(decide(None, &r, n(0), w), Decision::Suppress, "resolve without a sent firing");
        let open = ThrottleEntry::new(t(0), true, Severity::Error);
        assert_eq!(decide(Some(&open), &a, n(599), w), Decision::Suppress);
        assert!(matches!(decide(Some(&open), &a, n(600), w), Decision::Send { .. }));
        assert!(matches!(decide(Some(&open), &r, n(5), w), Decision::Send { .. }));
        let closed = ThrottleEntry::new(t(0), false, Severity::Error);
        assert_eq!(decide(Some(&closed), &r, n(5), w), Decision::Suppress, "resolved twice");
        assert!(matches!(decide(Some(&closed), &a, n(300), w), Decision::Send { .. }), "a resolution ends the window");
        assert_eq!(
            decide(Some(&open), &r, n(5), w),
            Decision::Send { previous: Some(open.clone()), next: None },
            "a sent resolution removes the entry"
        );
        assert_eq!(decide(Some(&open), &a, n(-50), w), Decision::Suppress, "clock went backwards");
        let warned = ThrottleEntry::new(t(0), true, Severity::Warning);
        assert!(matches!(decide(Some(&warned), &a, n(60), w), Decision::Send { .. }), "escalation");
        let info = Alert::new("a", Severity::Info, "A");
        assert_eq!(decide(Some(&warned), &info, n(60), w), Decision::Suppress, "de-escalation waits");
    }
}
