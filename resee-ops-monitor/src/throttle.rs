//! [`RedisThrottleStore`]: the throttle's state in Redis, shared by every replica and kept across restarts.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::MultiplexedConnection;
use resee_ops_core::{Error, ErrorKind, Fingerprint, InMemoryThrottleStore, ThrottleEntry, ThrottleStore};
use tokio::time::Instant;

use crate::MonitorError;
use crate::probe::redis::{RedisConfig, RedisTarget};

/// The key prefix of [`RedisThrottleStore`] unless [`with_prefix`](RedisThrottleStore::with_prefix) sets
/// another: one key per fingerprint, `resee-ops:throttle:<16 hex digits>`.
pub const DEFAULT_THROTTLE_PREFIX: &str = "resee-ops:throttle:";

/// How long the store keeps deciding in memory after Redis failed before it asks Redis again, unless
/// [`with_retry_after`](RedisThrottleStore::with_retry_after) sets another: 5 s.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

/// The compare-and-swap, atomic in Redis: `KEYS[1]` is replaced by `ARGV[2]` (removed when empty) with
/// expiry `ARGV[3]` ms only if it currently holds `ARGV[1]` (absent when empty). Returns 1 if it wrote.
const CAS_SCRIPT: &str = r"
local cur = redis.call('GET', KEYS[1])
if ARGV[1] == '' then
  if cur then return 0 end
elseif cur ~= ARGV[1] then
  return 0
end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1
";

/// A [`ThrottleStore`] in Redis, so that several replicas throttle as one and a restart forgets nothing.
///
/// - **Atomic across replicas.** Each compare-and-swap is one Lua script (`EVALSHA`, loaded again by
///   `EVAL` when the server lost it), so of two replicas deciding about the same fingerprint exactly one
///   wins; the loser re-reads and suppresses. There is no read-modify-write window.
/// - **Expiry by Redis.** Every write sets `PX` to the throttle's retention (`keep_for`: a day by default,
///   never less than two windows), so a fingerprint that went quiet disappears on its own; a sent
///   resolution deletes its key at once.
/// - **Open alerts survive a restart.** An entry stays while its alert is open (fired, not resolved) and
///   reminders refresh it, so after a deploy a still-firing alert is suppressed until its window (stored as
///   the time it was last sent) ends, and its recovery is resolved exactly once.
/// - **Outage.** When Redis fails or does not answer within the configuration's timeout, the store decides
///   in process memory instead (each replica throttles on its own: at most one message per replica per
///   window, never silence, never a flood), logs one warning, and asks Redis again every
///   [`retry_after`](Self::with_retry_after). Once Redis answers it logs that it is back, and an entry
///   written in memory during the outage is carried over to Redis the first time its fingerprint is read
///   (unless a replica wrote one meanwhile), so an alert fired during the outage is still resolved.
///
/// It takes the same [`RedisConfig`] as the probes, so it connects to the same place the same way. One
/// connection is kept (multiplexed: concurrent decisions do not wait for each other) and re-opened after
/// an error. `Debug` shows the address, never the password.
///
/// ```no_run
/// # async fn demo() -> Result<(), resee_ops_monitor::MonitorError> {
/// use std::sync::Arc;
/// use std::time::Duration;
/// use resee_ops_core::{DispatcherConfig, LogNotifier, NotifierExt, Throttled};
/// use resee_ops_monitor::{RedisConfig, RedisThrottleStore};
///
/// let store = RedisThrottleStore::new(&RedisConfig::from_env()?)?.with_prefix("myapp:production:throttle:");
/// let alerts = Throttled::new(LogNotifier::new())
///     .with_window(Duration::from_secs(600))
///     .with_store(Arc::new(store))
///     .dispatched(DispatcherConfig::default());
/// # let _ = alerts; Ok(()) }
/// ```
#[derive(Debug)]
pub struct RedisThrottleStore {
    target: RedisTarget,
    prefix: String,
    retry_after: Duration,
    script: redis::Script,
    conn: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    /// Where decisions go while Redis is unreachable.
    fallback: InMemoryThrottleStore,
    /// Since when Redis is considered down (`None`: up).
    down_since: Mutex<Option<Instant>>,
}

impl RedisThrottleStore {
    /// A store on the Redis of `config` (its URL, TLS mode and timeout), with the
    /// [default prefix](DEFAULT_THROTTLE_PREFIX). It connects on first use: an unreachable Redis is not an
    /// error here, the store decides in memory until Redis answers.
    pub fn new(config: &RedisConfig) -> Result<Self, MonitorError> {
        Ok(Self {
            target: RedisTarget::new(config)?,
            prefix: DEFAULT_THROTTLE_PREFIX.to_owned(),
            retry_after: DEFAULT_RETRY_AFTER,
            script: redis::Script::new(CAS_SCRIPT),
            conn: tokio::sync::Mutex::new(None),
            fallback: InMemoryThrottleStore::new(),
            down_since: Mutex::new(None),
        })
    }

    /// Sets the key prefix (each key is the prefix and the fingerprint in hex). Give each deployment
    /// (environment) its own, so that staging and production sharing a Redis do not throttle each other's
    /// alerts.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets how long the store keeps deciding in memory after Redis failed before it tries Redis again
    /// (default [`DEFAULT_RETRY_AFTER`]).
    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether the store currently decides in memory because Redis failed.
    pub fn is_degraded(&self) -> bool {
        self.down_since.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// The Redis key of `key`.
    pub fn key_of(&self, key: Fingerprint) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Whether Redis should be asked now (up, or down for longer than `retry_after`).
    fn try_redis(&self) -> bool {
        let down = self.down_since.lock().unwrap_or_else(|p| p.into_inner());
        down.is_none_or(|since| since.elapsed() >= self.retry_after)
    }

    fn mark_down(&self, err: &Error) {
        let mut down = self.down_since.lock().unwrap_or_else(|p| p.into_inner());
        if down.is_none() {
            tracing::warn!(target: "resee_ops::notify", addr = self.target.addr(), error = %err,
                "throttle store: Redis failed; throttling in process memory until it answers (replicas may each send once)");
        }
        *down = Some(Instant::now());
    }

    fn mark_up(&self) {
        let mut down = self.down_since.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(since) = down.take() {
            tracing::info!(target: "resee_ops::notify", addr = self.target.addr(), down_for = ?since.elapsed(),
                "throttle store: Redis answers again; throttling across replicas");
        }
    }

    /// Runs `op` on a (cached) connection within the timeout; drops the connection after an error.
    async fn with_conn<T, F>(&self, op: impl FnOnce(MultiplexedConnection) -> F) -> Result<T, MonitorError>
    where
        F: Future<Output = Result<T, redis::RedisError>>,
    {
        let t = &self.target;
        t.bounded(async {
            let conn = {
                let mut slot = self.conn.lock().await;
                match slot.as_ref() {
                    Some(c) => c.clone(),
                    None => slot.insert(t.connect().await?).clone(),
                }
            };
            op(conn).await.map_err(|e| t.error(&e))
        })
        .await
        .inspect_err(|_| {
            if let Ok(mut slot) = self.conn.try_lock() {
                *slot = None;
            }
        })
    }

    async fn redis_get(&self, key: Fingerprint) -> Result<Option<ThrottleEntry>, MonitorError> {
        let rkey = self.key_of(key);
        let raw: Option<String> =
            self.with_conn(|mut c| async move { redis::cmd("GET").arg(&rkey).query_async(&mut c).await }).await?;
        raw.map(|raw| decode(&raw)).transpose()
    }

    async fn redis_cas(
        &self,
        key: Fingerprint,
        expected: Option<&ThrottleEntry>,
        new: Option<&ThrottleEntry>,
        keep_for: Duration,
    ) -> Result<bool, MonitorError> {
        let rkey = self.key_of(key);
        let expected = expected.map(encode).transpose()?.unwrap_or_default();
        let new = new.map(encode).transpose()?.unwrap_or_default();
        // At least a millisecond: PX 0 is an error.
        let px = u64::try_from(keep_for.as_millis()).unwrap_or(u64::MAX).clamp(1, i64::MAX as u64);
        let script = &self.script;
        let wrote: i64 = self
            .with_conn(
                |mut c| async move { script.key(&rkey).arg(expected).arg(new).arg(px).invoke_async(&mut c).await },
            )
            .await?;
        Ok(wrote == 1)
    }

    /// Reads from Redis, first carrying over an entry written in memory during an outage.
    async fn get_from_redis(&self, key: Fingerprint) -> Result<Option<ThrottleEntry>, MonitorError> {
        let current = self.redis_get(key).await?;
        let Some(local) = self.fallback.get(key).await? else { return Ok(current) };
        if current.is_none() {
            // Written here while Redis was down: Redis learns it unless a replica wrote meanwhile.
            self.redis_cas(key, None, Some(&local), resee_ops_core::DEFAULT_THROTTLE_RETENTION).await?;
        }
        let _ = self.fallback.compare_and_swap(key, Some(&local), None, Duration::ZERO).await;
        self.redis_get(key).await
    }
}

#[async_trait]
impl ThrottleStore for RedisThrottleStore {
    async fn get(&self, key: Fingerprint) -> Result<Option<ThrottleEntry>, Error> {
        if self.try_redis() {
            match self.get_from_redis(key).await {
                Ok(entry) => {
                    self.mark_up();
                    return Ok(entry);
                }
                Err(e) if is_outage(&e) => self.mark_down(&e),
                Err(e) => return Err(e),
            }
        }
        self.fallback.get(key).await
    }

    async fn compare_and_swap(
        &self,
        key: Fingerprint,
        expected: Option<&ThrottleEntry>,
        new: Option<ThrottleEntry>,
        keep_for: Duration,
    ) -> Result<bool, Error> {
        if self.try_redis() {
            match self.redis_cas(key, expected, new.as_ref(), keep_for).await {
                Ok(wrote) => {
                    self.mark_up();
                    return Ok(wrote);
                }
                Err(e) if is_outage(&e) => self.mark_down(&e),
                Err(e) => return Err(e),
            }
        }
        self.fallback.compare_and_swap(key, expected, new, keep_for).await
    }
}

/// Whether `e` means "Redis cannot decide now" (unreachable, slow, refusing: `LOADING`, `READONLY`, ...),
/// as opposed to an entry that cannot be read, which is reported (the throttle then sends).
fn is_outage(e: &Error) -> bool {
    e.kind() != ErrorKind::Integrity
}

fn encode(entry: &ThrottleEntry) -> Result<String, Error> {
    serde_json::to_string(entry)
        .map_err(|e| Error::new(ErrorKind::Unexpected, format!("cannot encode a throttle entry: {e}")))
}

fn decode(raw: &str) -> Result<ThrottleEntry, Error> {
    serde_json::from_str(raw)
        .map_err(|e| Error::new(ErrorKind::Integrity, format!("unreadable throttle entry in Redis: {e}")))
}
