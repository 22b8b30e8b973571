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

/// What a [`ThrottleStore`] remembers about one fingerprint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ThrottleEntry {
    /// When a firing alert with this fingerprint was last sent.
    pub last_fired: DateTime<Utc>,
    /// Whether that firing was sent and its resolution not yet.
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
/// implements the same two calls with a compare-and-swap. A store may evict a *closed* entry
/// (`open == false`) once `keep_for` has passed since its `last_fired`: by then it no longer changes any
/// decision. Open entries must be kept until they are resolved, or a resolution would go unsent.
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
/// Memory stays bounded by the alerts that matter: whenever the map has doubled since the last clean-up,
/// closed entries older than their `keep_for` are evicted.
#[derive(Debug, Default, Clone)]
pub struct InMemoryThrottleStore {
    entries: Arc<Mutex<Entries>>,
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
        self.map.retain(|_, e| e.open || now.signed_duration_since(e.last_fired) < keep_for);
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
///   sent less than `window` ago. This holds across a resolution too: fire, resolve, fire again inside the
///   window sends the second firing only once the window has passed and the source reports it again, so a
///   flapping check cannot flood the channel. An escalation (warning, then error) is sent at once.
/// - A resolved alert is sent if and only if the firing it ends was sent (and not yet resolved).
fn decide(entry: Option<&ThrottleEntry>, alert: &Alert, now_nanos: i64, window: Duration) -> Decision {
    if alert.is_resolved() {
        return match entry {
            Some(e) if e.open => {
                Decision::Send { previous: Some(e.clone()), next: Some(ThrottleEntry { open: false, ..e.clone() }) }
            }
            _ => Decision::Suppress,
        };
    }
    let window = i64::try_from(window.as_nanos()).unwrap_or(i64::MAX);
    match entry {
        // A clock that went backwards counts as inside the window.
        Some(e)
            if now_nanos.saturating_sub(e.last_fired.timestamp_nanos_opt().unwrap_or(i64::MIN)) < window
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
/// a duplicate is better than a lost alert.
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
/// assert_eq!(inbox.alerts().len(), 2);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct Throttled<N> {
    inner: N,
    store: Store,
    window: Duration,
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
    /// severity less than a window ago, even if it was resolved in between; an escalation (warning, then
    /// error) is sent at once; a resolved alert is sent if and only if its firing was sent.
    /// Sources that keep reporting a condition while it lasts (as the health monitor does) therefore get a
    /// reminder once per window.
    pub fn new(inner: N) -> Self {
        Self {
            inner,
            store: Store::Memory(InMemoryThrottleStore::new()),
            window: DEFAULT_THROTTLE_WINDOW,
            clock: system_clock(),
        }
    }

    /// Sets the window.
    pub fn with_window(mut self, window: Duration) -> Self {
        self.window = window;
        self
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
        let keep_for = self.window.saturating_mul(2);
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

#[async_trait]
impl<N: Notifier> Notifier for Throttled<N> {
    async fn notify(&self, alert: &Alert) -> NotifyOutcome {
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
        let outcome = self.inner.notify(alert).await;
        if !outcome.is_ok()
            && let Some((previous, next)) = claimed
        {
            // Give the window back so the next attempt is not suppressed.
            let key = alert.fingerprint();
            if let Err(err) =
                self.store.as_dyn().compare_and_swap(key, next.as_ref(), previous, self.window.saturating_mul(2)).await
            {
                tracing::warn!(target: "resee_ops::notify", error = %err, "could not release throttle claim");
            }
        }
        outcome
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
        assert_eq!(decide(Some(&closed), &a, n(300), w), Decision::Suppress, "re-fire inside the window");
        assert!(matches!(decide(Some(&closed), &a, n(601), w), Decision::Send { .. }));
        assert_eq!(decide(Some(&open), &a, n(-50), w), Decision::Suppress, "clock went backwards");
        let warned = ThrottleEntry::new(t(0), true, Severity::Warning);
        assert!(matches!(decide(Some(&warned), &a, n(60), w), Decision::Send { .. }), "escalation");
        let info = Alert::new("a", Severity::Info, "A");
        assert_eq!(decide(Some(&warned), &info, n(60), w), Decision::Suppress, "de-escalation waits");
    }
}
