//! Worker liveness: [`Heartbeat`] (run by each worker) and [`WorkerHeartbeatProbe`] (run by the monitor).

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::MultiplexedConnection;
use resee_ops_core::{HealthProbe, ProbeOutcome, SharedClock, system_clock};
use serde::{Deserialize, Serialize};

use super::redis::{RedisConfig, RedisTarget};
use resee_ops_core::ErrorKind;

use crate::MonitorError;
use crate::error::invalid_config;

/// The default key prefix: a worker `w1` refreshes `resee:heartbeat:w1`.
pub const DEFAULT_HEARTBEAT_PREFIX: &str = "resee:heartbeat:";
/// The default heartbeat TTL: a worker that stops beating counts as dead after this long.
pub const DEFAULT_HEARTBEAT_TTL: Duration = Duration::from_secs(30);
/// The default refresh interval.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);

fn default_ttl() -> Duration {
    DEFAULT_HEARTBEAT_TTL
}
fn default_interval() -> Duration {
    DEFAULT_HEARTBEAT_INTERVAL
}
fn default_prefix() -> String {
    DEFAULT_HEARTBEAT_PREFIX.to_owned()
}

/// How a worker beats. See [`Heartbeat`].
///
/// ```
/// use std::time::Duration;
/// use resee_ops_monitor::{HeartbeatConfig, RedisConfig};
/// let hb = HeartbeatConfig::new("worker-1")
///     .with_ttl(Duration::from_secs(30))
///     .with_interval(Duration::from_secs(10))
///     .build(&RedisConfig::from_url("redis://127.0.0.1:6379/").unwrap())
///     .unwrap();
/// assert_eq!(hb.key(), "resee:heartbeat:worker-1");
/// assert!(HeartbeatConfig::new("w*").build(&RedisConfig::from_url("redis://127.0.0.1/").unwrap()).is_err());
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HeartbeatConfig {
    /// This worker's id (host name, pod name). No whitespace and no glob characters (`*?[]\`).
    pub worker_id: String,
    /// How long one beat keeps the worker alive. Default 30 s.
    #[serde(default = "default_ttl", with = "resee_ops_core::serde_duration")]
    pub ttl: Duration,
    /// How often the worker beats; must be below `ttl`. Default 10 s.
    #[serde(default = "default_interval", with = "resee_ops_core::serde_duration")]
    pub interval: Duration,
    /// The key prefix. Default `resee:heartbeat:`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
}

impl HeartbeatConfig {
    /// The defaults for `worker_id`.
    pub fn new(worker_id: impl Into<String>) -> Self {
        Self {
            worker_id: worker_id.into(),
            ttl: DEFAULT_HEARTBEAT_TTL,
            interval: DEFAULT_HEARTBEAT_INTERVAL,
            prefix: default_prefix(),
        }
    }

    /// Sets the TTL.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets the refresh interval.
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Sets the key prefix.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Validates and builds the worker side against `redis`.
    pub fn build(self, redis: &RedisConfig) -> Result<Heartbeat, MonitorError> {
        let bad_id = self.worker_id.is_empty()
            || self.worker_id.chars().any(|c| c.is_whitespace() || matches!(c, '*' | '?' | '[' | ']' | '\\'));
        if bad_id {
            return Err(invalid_config(format!(
                "worker id {:?} must be non-empty, without whitespace or glob characters",
                self.worker_id
            )));
        }
        if self.ttl < Duration::from_millis(1) || self.interval.is_zero() || self.interval >= self.ttl {
            return Err(invalid_config(format!(
                "heartbeat interval ({:?}) must be above zero and below the TTL ({:?})",
                self.interval, self.ttl
            )));
        }
        Ok(Heartbeat {
            target: RedisTarget::new(redis)?,
            key: format!("{}{}", self.prefix, self.worker_id),
            config: self,
            clock: system_clock(),
            conn: tokio::sync::Mutex::new(None),
        })
    }
}

/// The worker side of liveness: refreshes `<prefix><worker-id>` with `SET … PX <ttl>` every interval.
///
/// The value is the beat time (milliseconds since the Unix epoch, from the heartbeat's clock), so that the
/// probe can also judge staleness by its own clock. On a clean shutdown [`run`](Self::run) deletes the key,
/// so the monitor sees the worker gone at once rather than after the TTL. One Redis connection is kept and
/// re-opened after an error.
///
/// ```no_run
/// # async fn demo() -> Result<(), resee_ops_monitor::MonitorError> {
/// use resee_ops_monitor::{HeartbeatConfig, RedisConfig};
/// let heartbeat = HeartbeatConfig::new("worker-1").build(&RedisConfig::from_env()?)?;
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// # drop(stop);
/// // Beats every 10 s until `stop` is sent or dropped (wire it to your shutdown signal), then removes its key.
/// heartbeat.run(async { let _ = stopped.await; }).await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Heartbeat {
    target: RedisTarget,
    config: HeartbeatConfig,
    key: String,
    clock: SharedClock,
    conn: tokio::sync::Mutex<Option<MultiplexedConnection>>,
}

impl Heartbeat {
    /// Uses `clock` for the beat time written into the key.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The Redis key this worker refreshes.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Refreshes the key once.
    pub async fn beat(&self) -> Result<(), MonitorError> {
        let now_ms = self.clock.now().timestamp_millis();
        let ttl_ms = u64::try_from(self.config.ttl.as_millis()).unwrap_or(u64::MAX);
        let mut cmd = redis::cmd("SET");
        cmd.arg(&self.key).arg(now_ms).arg("PX").arg(ttl_ms);
        self.query::<()>(cmd).await
    }

    /// Deletes the key: the worker is gone now.
    pub async fn stop(&self) -> Result<(), MonitorError> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(&self.key);
        self.query::<()>(cmd).await
    }

    /// Beats at once and then every interval until `shutdown` completes, then deletes the key.
    ///
    /// Failures are logged and retried at the next tick; they never end the loop.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        let mut ticker = tokio::time::interval(self.config.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                _ = ticker.tick() => {
                    if let Err(e) = self.beat().await {
                        tracing::warn!(target: "resee_ops::monitor", key = %self.key, error = %e, "heartbeat failed");
                    }
                }
            }
        }
        if let Err(e) = self.stop().await {
            tracing::warn!(target: "resee_ops::monitor", key = %self.key, error = %e, "could not remove heartbeat key");
        }
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, MonitorError> {
        let t = &self.target;
        let mut slot = self.conn.lock().await;
        let result = t
            .bounded(async {
                let conn = match slot.as_mut() {
                    Some(c) => c,
                    None => slot.insert(t.connect().await?),
                };
                cmd.query_async::<T>(conn).await.map_err(|e| t.error(&e))
            })
            .await;
        if result.is_err() {
            *slot = None;
        }
        result
    }
}

/// Counts live workers (keys `<prefix>*`, found with `SCAN`, never `KEYS`) against a minimum.
///
/// A key counts when it exists (Redis drops it after the TTL) and its beat time is at most `max_age` old by
/// the probe's clock; a value that is not a beat time (a key written by other tooling) counts while it
/// exists. Keep `max_age` at least the heartbeat TTL plus the clock skew between hosts.
///
/// `Down` with no live worker or fewer than the minimum (the output says which), else `Up`; observed value in
/// `workers`. Not critical by default: dead workers should alert, not take the web tier out of rotation.
#[derive(Clone, Debug)]
pub struct WorkerHeartbeatProbe {
    name: String,
    target: RedisTarget,
    prefix: String,
    min_workers: usize,
    max_age: Duration,
    critical: bool,
    clock: SharedClock,
}

impl WorkerHeartbeatProbe {
    /// A probe named `workers` with prefix `resee:heartbeat:`, a minimum of 1 and a max age of 30 s.
    pub fn new(redis: &RedisConfig) -> Result<Self, MonitorError> {
        Ok(Self {
            name: "workers".to_owned(),
            target: RedisTarget::new(redis)?,
            prefix: default_prefix(),
            min_workers: 1,
            max_age: DEFAULT_HEARTBEAT_TTL,
            critical: false,
            clock: system_clock(),
        })
    }

    /// Sets the key prefix.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets the minimum number of live workers (at least 1).
    pub fn with_min_workers(mut self, min: usize) -> Self {
        self.min_workers = min.max(1);
        self
    }

    /// Sets the age after which a beat no longer counts.
    pub fn with_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// Renames the probe.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets whether the probe is critical (default `false`).
    pub fn with_critical(mut self, critical: bool) -> Self {
        self.critical = critical;
        self
    }

    /// Uses `clock` to judge beat ages.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The ids of the live workers, sorted.
    pub async fn live_workers(&self) -> Result<Vec<String>, MonitorError> {
        let t = &self.target;
        t.bounded(async {
            let mut conn = t.connect().await?;
            let pattern = format!("{}*", escape_glob(&self.prefix));
            let mut keys = HashSet::new();
            let mut cursor: u64 = 0;
            loop {
                let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(500)
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| t.error(&e))?;
                keys.extend(batch);
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
            let mut keys: Vec<String> = keys.into_iter().collect();
            keys.sort();
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            let values: Vec<Option<String>> =
                redis::cmd("MGET").arg(&keys).query_async(&mut conn).await.map_err(|e| t.error(&e))?;
            let now_ms = self.clock.now().timestamp_millis();
            let max_age_ms = i64::try_from(self.max_age.as_millis()).unwrap_or(i64::MAX);
            let live = keys
                .into_iter()
                .zip(values)
                .filter(|(_, v)| match v.as_deref().map(str::parse::<i64>) {
                    None => false,                                               // expired since SCAN
                    Some(Ok(beat)) => now_ms.saturating_sub(beat) <= max_age_ms, // future beats count
                    Some(Err(_)) => true,                                        // not ours: TTL governs
                })
                .map(|(k, _)| k[self.prefix.len()..].to_owned())
                .collect();
            Ok(live)
        })
        .await
    }
}

/// Escapes Redis glob characters so that the prefix matches literally.
fn escape_glob(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[async_trait]
impl HealthProbe for WorkerHeartbeatProbe {
    fn alert_text(&self, outcome: &ProbeOutcome, resolved: bool) -> resee_ops_core::ProbeAlertText {
        crate::AlertText::Workers.alert_text(outcome, resolved)
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn is_critical(&self) -> bool {
        self.critical
    }

    async fn check(&self) -> ProbeOutcome {
        let live = match self.live_workers().await {
            Ok(live) => live,
            Err(e) if e.kind() == ErrorKind::InvalidConfig => return ProbeOutcome::unknown(e.message()),
            Err(e) => return ProbeOutcome::down(e.message()),
        };
        let n = live.len();
        let outcome = if n == 0 {
            ProbeOutcome::down("no worker alive")
        } else if n < self.min_workers {
            let noun = if n == 1 { "worker" } else { "workers" };
            ProbeOutcome::down(format!("{n} {noun} alive, fewer than the minimum of {}", self.min_workers))
        } else {
            ProbeOutcome::up().with_output(format!("{n} alive: {}", live.join(", ")))
        };
        outcome.with_observed(n as f64, "workers")
    }
}

#[cfg(test)]
mod tests {
    use super::escape_glob;

    #[test]
    fn prefixes_match_literally() {
        assert_eq!(escape_glob("resee:heartbeat:"), "resee:heartbeat:");
        assert_eq!(escape_glob("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
