//! Worker liveness for Rust workers: [`Heartbeat`] (run by each worker) and [`WorkerHeartbeatProbe`] (run
//! by the monitor), sharing one sorted set of worker id → last beat. For Celery workers use
//! [`CeleryWorkersProbe`](crate::CeleryWorkersProbe).

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::MultiplexedConnection;
use resee_ops_core::{HealthProbe, HealthStatus, ProbeAlertText, ProbeOutcome, SharedClock, system_clock};
use serde::{Deserialize, Serialize};

use super::redis::{RedisConfig, RedisTarget};
use resee_ops_core::ErrorKind;

use crate::MonitorError;
use crate::error::invalid_config;

/// The default key: the sorted set in which every worker records its last beat.
pub const DEFAULT_HEARTBEAT_KEY: &str = "resee:heartbeats";
/// How long a worker that stopped beating stays in the sorted set before a beat of another worker prunes
/// it (and how long the set lives after the last beat of any worker).
const RETENTION: Duration = Duration::from_secs(24 * 3600);
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
fn default_key() -> String {
    DEFAULT_HEARTBEAT_KEY.to_owned()
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
/// assert_eq!(hb.key(), "resee:heartbeats");
/// assert!(HeartbeatConfig::new("w 1").build(&RedisConfig::from_url("redis://127.0.0.1/").unwrap()).is_err());
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HeartbeatConfig {
    /// This worker's id (host name, pod name): non-empty, without whitespace or control characters.
    pub worker_id: String,
    /// How long one beat keeps the worker alive. Default 30 s.
    #[serde(default = "default_ttl", with = "resee_ops_core::serde_duration")]
    pub ttl: Duration,
    /// How often the worker beats; must be below `ttl`. Default 10 s.
    #[serde(default = "default_interval", with = "resee_ops_core::serde_duration")]
    pub interval: Duration,
    /// The sorted set shared by all workers. Default `resee:heartbeats`.
    #[serde(default = "default_key")]
    pub key: String,
}

impl HeartbeatConfig {
    /// The defaults for `worker_id`.
    pub fn new(worker_id: impl Into<String>) -> Self {
        Self {
            worker_id: worker_id.into(),
            ttl: DEFAULT_HEARTBEAT_TTL,
            interval: DEFAULT_HEARTBEAT_INTERVAL,
            key: default_key(),
        }
    }

    /// Sets the TTL.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets the refresh interval (at least [`MIN_INTERVAL`](crate::MIN_INTERVAL), below the TTL).
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Sets the sorted set's key.
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = key.into();
        self
    }

    /// Validates and builds the worker side against `redis`.
    pub fn build(self, redis: &RedisConfig) -> Result<Heartbeat, MonitorError> {
        let bad_id = self.worker_id.is_empty() || self.worker_id.chars().any(|c| c.is_whitespace() || c.is_control());
        if bad_id {
            return Err(invalid_config(format!(
                "worker id {:?} must be non-empty, without whitespace or control characters",
                self.worker_id
            )));
        }
        if self.interval < crate::MIN_INTERVAL || self.interval >= self.ttl {
            return Err(invalid_config(format!(
                "heartbeat interval ({:?}) must be at least {:?} and below the TTL ({:?})",
                self.interval,
                crate::MIN_INTERVAL,
                self.ttl
            )));
        }
        if self.key.is_empty() {
            return Err(invalid_config("heartbeat key must not be empty"));
        }
        Ok(Heartbeat {
            target: RedisTarget::new(redis)?,
            config: self,
            clock: system_clock(),
            conn: tokio::sync::Mutex::new(None),
        })
    }
}

/// The worker side of liveness: records `worker id → beat time` in a sorted set (`ZADD`) every interval.
///
/// The score is the beat time (milliseconds since the Unix epoch, from the heartbeat's clock), so the
/// probe judges staleness by its own clock and reads only the live members, never the keyspace. Each beat
/// also prunes members that have not beaten for a day and keeps the set itself for a day past the last
/// beat. On a clean shutdown [`run`](Self::run) removes this worker's member, so the monitor sees it gone at
/// once rather than after the TTL. One Redis connection is kept and re-opened after an error.
///
/// ```no_run
/// # async fn demo() -> Result<(), resee_ops_monitor::MonitorError> {
/// use resee_ops_monitor::{HeartbeatConfig, RedisConfig};
/// let heartbeat = HeartbeatConfig::new("worker-1").build(&RedisConfig::from_env()?)?;
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// # drop(stop);
/// // Beats every 10 s until `stop` is sent or dropped (wire it to your shutdown signal), then leaves the set.
/// heartbeat.run(async { let _ = stopped.await; }).await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Heartbeat {
    target: RedisTarget,
    config: HeartbeatConfig,
    clock: SharedClock,
    conn: tokio::sync::Mutex<Option<MultiplexedConnection>>,
}

impl Heartbeat {
    /// Uses `clock` for the beat time recorded in the set.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The sorted set this worker beats into.
    pub fn key(&self) -> &str {
        &self.config.key
    }

    /// This worker's id: its member in the set.
    pub fn worker_id(&self) -> &str {
        &self.config.worker_id
    }

    /// Beats once: one pipelined round trip (`ZADD`, prune, `PEXPIRE`).
    pub async fn beat(&self) -> Result<(), MonitorError> {
        let now_ms = self.clock.now().timestamp_millis();
        let retention_ms = RETENTION.as_millis() as i64;
        let mut pipe = redis::pipe();
        pipe.cmd("ZADD").arg(self.key()).arg(now_ms).arg(self.worker_id()).ignore();
        pipe.cmd("ZREMRANGEBYSCORE").arg(self.key()).arg("-inf").arg(format!("({}", now_ms - retention_ms)).ignore();
        pipe.cmd("PEXPIRE").arg(self.key()).arg(retention_ms).ignore();
        self.query(pipe).await
    }

    /// Removes this worker from the set: it is gone now.
    pub async fn stop(&self) -> Result<(), MonitorError> {
        let mut pipe = redis::pipe();
        pipe.cmd("ZREM").arg(self.key()).arg(self.worker_id()).ignore();
        self.query(pipe).await
    }

    /// Beats at once and then every interval until `shutdown` completes, then leaves the set.
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
                        tracing::warn!(target: "resee_ops::monitor", key = %self.key(), worker = %self.worker_id(), error = %e, "heartbeat failed");
                    }
                }
            }
        }
        if let Err(e) = self.stop().await {
            tracing::warn!(target: "resee_ops::monitor", key = %self.key(), worker = %self.worker_id(), error = %e, "could not remove the heartbeat");
        }
    }

    async fn query(&self, pipe: redis::Pipeline) -> Result<(), MonitorError> {
        let t = &self.target;
        let mut slot = self.conn.lock().await;
        let result = t
            .bounded(async {
                let conn = match slot.as_mut() {
                    Some(c) => c,
                    None => slot.insert(t.connect().await?),
                };
                pipe.query_async::<()>(conn).await.map_err(|e| t.error(&e))
            })
            .await;
        if result.is_err() {
            *slot = None;
        }
        result
    }
}

/// Counts live Rust workers (members of the [`Heartbeat`] sorted set whose last beat is at most `max_age`
/// old by the probe's clock) against a minimum.
///
/// One `ZRANGEBYSCORE` reads only the live members: the cost grows with the number of workers, not with the
/// keyspace. Keep `max_age` at least the heartbeat TTL plus the clock skew between hosts; beats from the
/// future count.
///
/// `Down` with no live worker or fewer than the minimum (the output says which), else `Up`; observed value in
/// `workers`. When Redis cannot be asked (unreachable, or no answer within the timeout) the outcome is
/// `Down` with that reason and no observed value: a timeout is never reported as "no worker alive". Not
/// critical by default: dead workers should alert, not take the web tier out of rotation.
#[derive(Clone, Debug)]
pub struct WorkerHeartbeatProbe {
    name: String,
    target: RedisTarget,
    key: String,
    min_workers: usize,
    max_age: Duration,
    critical: bool,
    clock: SharedClock,
}

impl WorkerHeartbeatProbe {
    /// A probe named `workers` on the key `resee:heartbeats`, with a minimum of 1 and a max age of 30 s.
    pub fn new(redis: &RedisConfig) -> Result<Self, MonitorError> {
        Ok(Self {
            name: "workers".to_owned(),
            target: RedisTarget::new(redis)?,
            key: default_key(),
            min_workers: 1,
            max_age: DEFAULT_HEARTBEAT_TTL,
            critical: false,
            clock: system_clock(),
        })
    }

    /// Sets the sorted set's key.
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = key.into();
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
        let now_ms = self.clock.now().timestamp_millis();
        let max_age_ms = i64::try_from(self.max_age.as_millis()).unwrap_or(i64::MAX);
        t.bounded(async {
            let mut conn = t.connect().await?;
            let mut live: Vec<String> = redis::cmd("ZRANGEBYSCORE")
                .arg(&self.key)
                .arg(now_ms.saturating_sub(max_age_ms))
                .arg("+inf")
                .query_async(&mut conn)
                .await
                .map_err(|e| t.error(&e))?;
            live.sort();
            Ok(live)
        })
        .await
    }
}

#[async_trait]
impl HealthProbe for WorkerHeartbeatProbe {
    /// "No worker alive", "Only 1 worker alive", "Worker check failed" when Redis could not be asked,
    /// "Workers alive again".
    fn alert_text(&self, outcome: &ProbeOutcome, resolved: bool) -> ProbeAlertText {
        workers_alert_text("worker", outcome, resolved)
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
            Err(e) => return ProbeOutcome::down(format!("cannot read the worker heartbeats: {}", e.message())),
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

/// The alert wording of a worker probe (`kind` is "worker" or "Celery worker"): "No Celery worker alive",
/// "Only 1 Celery worker alive", "Celery workers alive again"; when the check could not count (Redis down
/// or slow: no observed value) "Celery worker check failed", never "no worker alive".
pub(crate) fn workers_alert_text(kind: &str, outcome: &ProbeOutcome, resolved: bool) -> ProbeAlertText {
    let mut capital = kind.to_owned();
    if let Some(first) = capital.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    ProbeAlertText::new(if resolved {
        format!("{capital}s alive again")
    } else {
        match outcome.observed_value {
            None => format!("{capital} check failed"),
            Some(_) if outcome.status != HealthStatus::Down => format!("{capital}s need attention"),
            Some(n) if n < 1.0 => format!("No {kind} alive"),
            Some(n) => format!("Only {n} {kind}{} alive", if n == 1.0 { "" } else { "s" }),
        }
    })
}
