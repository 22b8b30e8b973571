//! Celery over the kombu Redis transport: [`CeleryTransport`] (the broker's transport options, shared with
//! [`QueueLength`](crate::QueueLength)) and [`CeleryWorkersProbe`] (Celery's broadcast `ping`, spoken with
//! plain Redis commands exactly as `celery inspect ping` does).
//!
//! See [`CeleryWorkersProbe`] for the wire format.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use redis::aio::MultiplexedConnection;
use resee_ops_core::deadline::SaturatingAdd;
use resee_ops_core::{HealthProbe, ProbeAlertText, ProbeOutcome};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::redis::{RedisConfig, RedisTarget};
use crate::MonitorError;

/// kombu's default separator between a queue name and its priority (`sep`), and inside binding members.
pub const DEFAULT_CELERY_SEP: &str = "\x06\x16";
/// kombu's default `priority_steps`: priorities 0-2 go to the bare list, 3-5 to `<q><sep>3`, and so on.
pub const DEFAULT_PRIORITY_STEPS: [u8; 4] = [0, 3, 6, 9];
/// How long [`CeleryWorkersProbe`] waits for replies by default, as `celery inspect ping --timeout 1`.
pub const DEFAULT_PING_WINDOW: Duration = Duration::from_secs(1);

/// How long kombu ≥ 5.7 keeps a binding table before its sweep may delete it (`MIN_BINDING_TTL`).
const BINDING_DEADLINE: Duration = Duration::from_secs(3600);

fn default_sep() -> String {
    DEFAULT_CELERY_SEP.to_owned()
}
fn default_steps() -> Vec<u8> {
    DEFAULT_PRIORITY_STEPS.to_vec()
}
fn default_control_exchange() -> String {
    "celery".to_owned()
}

/// The Celery/kombu settings that decide Redis key and channel names: mirror the workers'
/// `broker_transport_options` (`global_keyprefix`, `sep`, `priority_steps`) and `control_exchange`.
///
/// They must match the workers: with another `sep` a worker cannot parse the reply binding and stops
/// answering pings from *every* client while it exists, which is why [`CeleryWorkersProbe`] removes it
/// at once. Deserialises from the same names Celery uses.
///
/// ```
/// use resee_ops_monitor::CeleryTransport;
/// let t = CeleryTransport::new().with_global_keyprefix("app:").with_sep(":").with_priority_steps(0..=9);
/// assert_eq!(t.queue_lists("celery")[..3], ["app:celery", "app:celery:1", "app:celery:2"]);
/// assert_eq!(CeleryTransport::new().queue_lists("celery"), ["celery", "celery\x06\x163", "celery\x06\x166", "celery\x06\x169"]);
/// let t: CeleryTransport = serde_json::from_str(r#"{"global_keyprefix": "app:", "priority_steps": [0, 5]}"#).unwrap();
/// assert_eq!(t.sep, "\x06\x16");
/// assert!(CeleryTransport::new().with_sep("").validate().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CeleryTransport {
    /// Prefix of every Redis key and channel (`broker_transport_options["global_keyprefix"]`). Default empty.
    #[serde(default)]
    pub global_keyprefix: String,
    /// Separator in priority list names and binding members (`sep`). Default `"\x06\x16"`.
    #[serde(default = "default_sep")]
    pub sep: String,
    /// Priority steps (`priority_steps`), 0 to 9. Default `[0, 3, 6, 9]`.
    #[serde(default = "default_steps")]
    pub priority_steps: Vec<u8>,
    /// Celery's `control_exchange`. Default `celery`.
    #[serde(default = "default_control_exchange")]
    pub control_exchange: String,
}

impl Default for CeleryTransport {
    fn default() -> Self {
        Self {
            global_keyprefix: String::new(),
            sep: default_sep(),
            priority_steps: default_steps(),
            control_exchange: default_control_exchange(),
        }
    }
}

impl CeleryTransport {
    /// kombu's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `global_keyprefix`.
    pub fn with_global_keyprefix(mut self, prefix: impl Into<String>) -> Self {
        self.global_keyprefix = prefix.into();
        self
    }

    /// Sets `sep`.
    pub fn with_sep(mut self, sep: impl Into<String>) -> Self {
        self.sep = sep.into();
        self
    }

    /// Sets `priority_steps` (sorted and deduplicated; 0 is always a step: the bare list).
    pub fn with_priority_steps(mut self, steps: impl IntoIterator<Item = u8>) -> Self {
        self.priority_steps = steps.into_iter().collect();
        self
    }

    /// Sets Celery's `control_exchange`.
    pub fn with_control_exchange(mut self, exchange: impl Into<String>) -> Self {
        self.control_exchange = exchange.into();
        self
    }

    /// Checks that the names built from these settings are usable.
    pub fn validate(&self) -> Result<(), MonitorError> {
        if self.sep.is_empty() {
            return Err(crate::error::invalid_config("Celery transport `sep` must not be empty"));
        }
        if self.control_exchange.is_empty() {
            return Err(crate::error::invalid_config("Celery `control_exchange` must not be empty"));
        }
        if let Some(s) = self.priority_steps.iter().find(|s| **s > 9) {
            return Err(crate::error::invalid_config(format!("Celery priority step {s} is outside 0..=9")));
        }
        Ok(())
    }

    /// `name` as a Redis key: with the global prefix.
    pub(crate) fn key(&self, name: &str) -> String {
        format!("{}{name}", self.global_keyprefix)
    }

    /// The Redis lists that hold `queue`'s ready messages: the bare list (steps 0) and `<queue><sep><step>`
    /// for every other step, prefixed, in step order.
    pub fn queue_lists(&self, queue: &str) -> Vec<String> {
        let mut steps = self.priority_steps.clone();
        steps.push(0);
        steps.sort_unstable();
        steps.dedup();
        steps
            .into_iter()
            .map(|s| if s == 0 { self.key(queue) } else { format!("{}{queue}{}{s}", self.global_keyprefix, self.sep) })
            .collect()
    }

    /// The key of the hash of delivered but unacknowledged messages (`unacked`).
    pub(crate) fn unacked_key(&self) -> String {
        self.key("unacked")
    }
}

impl RedisConfig {
    /// The Celery broker: `CELERY_BROKER_URL`, else what [`RedisConfig::from_env`] reads.
    pub fn from_celery_env() -> Result<Self, MonitorError> {
        let var = |name: &str| std::env::var(name).ok().filter(|u| !u.trim().is_empty());
        match var("CELERY_BROKER_URL") {
            Some(url) => Self::from_url(&url),
            None => Self::from_env(),
        }
    }
}

/// What one broadcast `ping` found. Worker names are Celery node names (`celery@host`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CeleryPing {
    /// The workers that answered `pong`, sorted, each once.
    pub workers: Vec<String>,
    /// Names that answered more than once: two workers share a node name (Celery warns about this too).
    pub duplicates: Vec<String>,
    /// Why each reply that could not be read was rejected (not JSON, not base64, not a ping answer).
    pub unreadable: Vec<String>,
    /// How many clients were subscribed to the control channel when the request was published: the live
    /// workers' pidbox consumers, busy or not.
    pub subscribers: u64,
}

/// A parsed reply list element.
#[derive(Debug, PartialEq)]
enum Reply {
    /// Node names with their answers: `Ok(())` for `pong`, else what they said.
    Answers(Vec<(String, Result<(), String>)>),
    /// A reply to another request (a different ticket).
    Foreign,
}

/// Parses one element of the reply list: a kombu envelope whose (base64) body is `{"<node>": {"ok": "pong"}}`.
fn parse_reply(raw: &[u8], ticket: &str) -> Result<Reply, String> {
    let envelope: Value =
        serde_json::from_slice(raw).map_err(|e| format!("reply is not valid JSON ({e}): {}", preview(raw)))?;
    let envelope = envelope.as_object().ok_or_else(|| format!("reply is not a JSON object: {}", preview(raw)))?;
    match envelope.get("headers").and_then(|h| h.get("ticket")).and_then(Value::as_str) {
        Some(t) if t == ticket => {}
        Some(_) => return Ok(Reply::Foreign),
        None => return Err(format!("reply has no ticket: {}", preview(raw))),
    }
    let body = envelope.get("body").and_then(Value::as_str).ok_or("reply has no string body")?;
    let encoding = envelope.get("properties").and_then(|p| p.get("body_encoding")).and_then(Value::as_str);
    let body: Vec<u8> = match encoding {
        Some("base64") => BASE64
            .decode(body.trim())
            .map_err(|e| format!("reply body is not valid base64 ({e}): {}", preview(body.as_bytes())))?,
        None => body.as_bytes().to_vec(),
        Some(other) => return Err(format!("reply body has an unsupported encoding {other:?}")),
    };
    let content_type = envelope.get("content-type").and_then(Value::as_str).unwrap_or("application/json");
    if content_type != "application/json" {
        return Err(format!("reply is {content_type}, not JSON: set the workers' task_serializer to json"));
    }
    let body: Value =
        serde_json::from_slice(&body).map_err(|e| format!("reply body is not valid JSON ({e}): {}", preview(&body)))?;
    let nodes = body
        .as_object()
        .filter(|o| !o.is_empty())
        .ok_or_else(|| format!("reply body is not {{node: answer}}: {body}"))?;
    let answers = nodes
        .iter()
        .map(|(node, answer)| {
            let verdict = match answer.get("ok").and_then(Value::as_str) {
                Some("pong") => Ok(()),
                _ => Err(format!("{node} answered {answer}")),
            };
            (node.clone(), verdict)
        })
        .collect();
    Ok(Reply::Answers(answers))
}

/// The first bytes of `raw`, printable, for error messages.
fn preview(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(&raw[..raw.len().min(60)]).into_owned();
    let ellipsis = if raw.len() > 60 { "…" } else { "" };
    format!("{text:?}{ellipsis}")
}

/// A random RFC 4122 version-4 UUID in text form (kombu uses UUIDs for reply queues, tickets and tags).
fn uuid4() -> String {
    const VERSION_MASK: u128 = 0xf << 76; // the 13th hex digit: the version, 4
    const VARIANT_MASK: u128 = 0x3 << 62; // the top two bits of the 17th hex digit: the variant, 0b10
    let v = (fastrand::u128(..) & !VERSION_MASK & !VARIANT_MASK) | (0x4 << 76) | (0x2 << 62);
    let h = format!("{v:032x}");
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

fn unix_now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// The names of one ping: its reply queue, its binding and the request.
#[derive(Debug, Clone)]
struct PingKeys {
    binding_table: String,
    member: String,
    reply_lists: Vec<String>,
}

impl PingKeys {
    fn new(t: &CeleryTransport, oid: &str) -> Self {
        let reply_exchange = format!("reply.{}.pidbox", t.control_exchange);
        let queue = format!("{oid}.{reply_exchange}");
        Self {
            binding_table: t.key(&format!("_kombu.binding.{reply_exchange}")),
            // routing key, pattern (empty), queue: the queue name inside the member carries no prefix.
            member: format!("{oid}{sep}{sep}{queue}", sep = t.sep),
            reply_lists: t.queue_lists(&queue),
        }
    }

    /// `SREM` the binding and `DEL` the reply lists, in one round trip.
    fn cleanup(&self) -> redis::Pipeline {
        let mut pipe = redis::pipe();
        pipe.cmd("SREM").arg(&self.binding_table).arg(&self.member).ignore();
        pipe.cmd("DEL").arg(&self.reply_lists).ignore();
        pipe
    }
}

/// Removes a ping's binding and reply list in the background: when the check was cancelled before its own
/// cleanup ran, when that cleanup failed, or (`delay`) to catch a late reply after it.
fn cleanup_in_background(target: RedisTarget, keys: PingKeys, delay: Duration) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        tracing::warn!(target: "resee_ops::monitor", "no runtime to remove a Celery ping's reply binding");
        return;
    };
    rt.spawn(async move {
        tokio::time::sleep(delay).await;
        let result = target
            .bounded(async {
                let mut conn = target.connect().await?;
                keys.cleanup().query_async::<()>(&mut conn).await.map_err(|e| target.error(&e))
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(target: "resee_ops::monitor", error = %e, "could not remove a Celery ping's reply binding");
        }
    });
}

/// Cleans a ping up when dropped unless [`disarm`](Self::disarm)ed: the binding must not outlive the check.
struct CleanupGuard {
    target: RedisTarget,
    keys: Option<PingKeys>,
}

impl CleanupGuard {
    fn disarm(&mut self) {
        self.keys = None;
    }
}

impl Drop for CleanupGuard {
    fn drop(&mut self) {
        if let Some(keys) = self.keys.take() {
            cleanup_in_background(self.target.clone(), keys, Duration::ZERO);
        }
    }
}

/// Counts live Celery workers with Celery's own broadcast `ping` over the kombu Redis transport, as
/// `celery inspect ping` does, with plain Redis commands (no Python); the commands are listed below.
///
/// Each check binds a private reply list, publishes the ping on the control channel of the broker's
/// database, collects `pong`s for the reply window (default 1 s), and removes the binding and the list
/// again, also when it fails or is cancelled. It returns before the window ends once every subscribed
/// worker (or every worker named with [`with_destination`](Self::with_destination)) has answered, and
/// at once when no worker is subscribed. A check takes at most the window plus the Redis timeout.
///
/// Outcome (named `workers`, not critical by default, observed value in `workers`): `Down` when fewer
/// workers than the minimum (default 1) answered, or when Redis cannot be reached (the output says why:
/// a timeout is a timeout); `Degraded` when enough answered but two workers share a node name or a reply
/// could not be read; else `Up` with the node names.
///
/// A worker started with `--pool=solo` answers only between tasks: a long task makes it miss the window.
///
/// # Wire format
///
/// kombu 5.7, measured against a live Celery 5.7 worker with `redis-cli MONITOR`:
///
/// 1. `SADD <P>_kombu.binding.reply.celery.pidbox "<oid><sep><sep><oid>.reply.celery.pidbox"`: the reply
///    binding the worker looks up to route its answer; and `ZADD <P>_kombu.binding_deadlines GT <now+1h>
///    reply.celery.pidbox` so that kombu ≥ 5.7's binding sweep does not drop that table during the ping.
/// 2. `PUBLISH <P>/<db>.celery.pidbox <envelope>`: the request (a kombu message whose base64 body is
///    `{"method": "ping", "destination": …, "ticket": …, "reply_to": …}`); Redis answers with the number of
///    subscribed workers.
/// 3. `BRPOP <P><oid>.reply.celery.pidbox` until the reply window ends, or earlier once every subscriber
///    (or every named destination) has answered; each reply body is `{"<node>": {"ok": "pong"}}`.
/// 4. `SREM` the binding and `DEL` the reply list, whatever happened (also when the check is cancelled).
///
/// `<P>` is the transport's `global_keyprefix`; `<db>` the broker URL's database number.
///
/// ```
/// use std::time::Duration;
/// use resee_ops_core::HealthProbe;
/// use resee_ops_monitor::{CeleryTransport, CeleryWorkersProbe, RedisConfig};
/// let probe = CeleryWorkersProbe::new(&RedisConfig::from_url("redis://127.0.0.1:6379/0").unwrap())
///     .unwrap()
///     .with_window(Duration::from_millis(500))
///     .with_min_workers(2)
///     .with_destination(["celery@worker-1", "celery@worker-2"])
///     .with_transport(CeleryTransport::new().with_global_keyprefix("app:"))
///     .unwrap();
/// assert_eq!(probe.name(), "workers");
/// assert_eq!(probe.control_channel(), "app:/0.celery.pidbox");
/// assert!(!probe.is_critical());
/// ```
#[derive(Clone, Debug)]
pub struct CeleryWorkersProbe {
    name: String,
    target: RedisTarget,
    timeout: Duration,
    db: i64,
    transport: CeleryTransport,
    window: Duration,
    min_workers: usize,
    destination: Vec<String>,
    critical: bool,
}

impl CeleryWorkersProbe {
    /// A probe named `workers` against the broker `redis` (its database number picks the control
    /// channel), kombu's default transport options, a 1 s window and a minimum of 1 worker.
    pub fn new(redis: &RedisConfig) -> Result<Self, MonitorError> {
        let target = RedisTarget::new(redis)?;
        let db = target.db();
        Ok(Self {
            name: "workers".to_owned(),
            target,
            timeout: redis.timeout,
            db,
            transport: CeleryTransport::default(),
            window: DEFAULT_PING_WINDOW,
            min_workers: 1,
            destination: Vec::new(),
            critical: false,
        })
    }

    /// Uses the workers' transport options (key prefix, `sep`, control exchange).
    pub fn with_transport(mut self, transport: CeleryTransport) -> Result<Self, MonitorError> {
        transport.validate()?;
        self.transport = transport;
        Ok(self)
    }

    /// Sets how long to wait for replies (at least 1 ms).
    pub fn with_window(mut self, window: Duration) -> Self {
        self.window = window.max(Duration::from_millis(1));
        self
    }

    /// Sets the minimum number of live workers (at least 1).
    pub fn with_min_workers(mut self, min: usize) -> Self {
        self.min_workers = min.max(1);
        self
    }

    /// Pings only these node names (`celery@host`), as `celery inspect ping -d …`; an empty list
    /// broadcasts to all. The check ends as soon as all of them answered.
    pub fn with_destination<S: Into<String>>(mut self, nodes: impl IntoIterator<Item = S>) -> Self {
        self.destination = nodes.into_iter().map(Into::into).collect();
        self.destination.sort();
        self.destination.dedup();
        self
    }

    /// Renames the probe.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets whether the probe is critical (default `false`: dead workers alert, but do not take the web
    /// tier out of rotation).
    pub fn with_critical(mut self, critical: bool) -> Self {
        self.critical = critical;
        self
    }

    /// The Redis pub/sub channel the workers listen on: `<prefix>/<db>.<control_exchange>.pidbox`.
    pub fn control_channel(&self) -> String {
        let t = &self.transport;
        t.key(&format!("/{}.{}.pidbox", self.db, t.control_exchange))
    }

    /// The longest a [`check`](HealthProbe::check) takes: the reply window plus the Redis timeout.
    pub fn max_duration(&self) -> Duration {
        self.window.saturating_add(self.timeout)
    }

    /// The request envelope as kombu publishes it on the control channel.
    fn request(&self, oid: &str, ticket: &str) -> String {
        let t = &self.transport;
        let destination = if self.destination.is_empty() { Value::Null } else { json!(self.destination) };
        let body = json!({
            "method": "ping",
            "arguments": {},
            "destination": destination,
            "pattern": null,
            "matcher": null,
            "ticket": ticket,
            "reply_to": {"exchange": format!("reply.{}.pidbox", t.control_exchange), "routing_key": oid},
        });
        json!({
            "body": BASE64.encode(body.to_string()),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {"clock": 1, "expires": unix_now().saturating_add(self.window).as_secs_f64()},
            "properties": {
                "delivery_mode": 2,
                "delivery_info": {"exchange": format!("{}.pidbox", t.control_exchange), "routing_key": ""},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": uuid4(),
            },
        })
        .to_string()
    }

    /// Pings the workers once and returns what came back within the window.
    ///
    /// Errors only when Redis could not be used (unreachable, refused the password or the database, or
    /// did not answer within the timeout); unreadable replies are reported in [`CeleryPing::unreadable`].
    pub async fn ping(&self) -> Result<CeleryPing, MonitorError> {
        let t = &self.target;
        let overall = Instant::now().saturating_add(self.max_duration());
        let oid = uuid4();
        let ticket = uuid4();
        let keys = PingKeys::new(&self.transport, &oid);
        let mut conn = t.connect().await?;
        let mut guard = CleanupGuard { target: t.clone(), keys: Some(keys.clone()) };

        let result = match tokio::time::timeout_at(overall, self.exchange(&mut conn, &keys, &oid, &ticket)).await {
            Ok(r) => r,
            Err(_) => Err(resee_ops_core::Error::new(
                resee_ops_core::ErrorKind::Timeout,
                format!(
                    "Redis at {} did not answer within {}",
                    t.addr(),
                    resee_ops_core::serde_duration::format_duration(self.max_duration())
                ),
            )),
        };
        // Clean up on this connection within what is left of the bound (a healthy server answers in well
        // under a millisecond); if that fails, the guard retries in the background.
        let left = overall.saturating_duration_since(Instant::now()).max(Duration::from_millis(100));
        let cleaned = tokio::time::timeout(left, keys.cleanup().query_async::<()>(&mut conn)).await;
        if matches!(cleaned, Ok(Ok(()))) {
            guard.disarm();
        }
        drop(guard);
        if let Ok(ping) = &result
            && (ping.workers.len() as u64) < ping.subscribers
        {
            // A subscriber that read the binding just before the SREM may still push its reply after the
            // DEL; remove such a straggler once more a little later.
            cleanup_in_background(t.clone(), keys, Duration::from_secs(2));
        }
        result
    }

    /// Steps 1 to 3: bind, publish, collect.
    async fn exchange(
        &self,
        conn: &mut MultiplexedConnection,
        keys: &PingKeys,
        oid: &str,
        ticket: &str,
    ) -> Result<CeleryPing, MonitorError> {
        let t = &self.target;
        let started = Instant::now();
        let reply_exchange = format!("reply.{}.pidbox", self.transport.control_exchange);
        let deadline_ms = (unix_now() + BINDING_DEADLINE).as_millis() as u64;
        let mut pipe = redis::pipe();
        pipe.cmd("SADD").arg(&keys.binding_table).arg(&keys.member).ignore();
        pipe.cmd("ZADD")
            .arg(self.transport.key("_kombu.binding_deadlines"))
            .arg("GT")
            .arg(deadline_ms)
            .arg(&reply_exchange)
            .ignore();
        pipe.cmd("PUBLISH").arg(self.control_channel()).arg(self.request(oid, ticket));
        let (subscribers,): (u64,) = pipe.query_async(conn).await.map_err(|e| t.error(&e))?;

        let mut ping = CeleryPing { subscribers, ..CeleryPing::default() };
        let expected =
            if self.destination.is_empty() { subscribers } else { subscribers.min(self.destination.len() as u64) };
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut answered = 0u64;
        let deadline = started.saturating_add(self.window);
        // BRPOP in slices shorter than the connection's response timeout.
        let slice_max = (self.timeout / 2).max(Duration::from_millis(1));
        while answered < expected {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining < Duration::from_millis(1) {
                break;
            }
            let slice = remaining.min(slice_max);
            let popped: Option<(Vec<u8>, Vec<u8>)> = redis::cmd("BRPOP")
                .arg(&keys.reply_lists)
                .arg(format!("{:.3}", slice.as_secs_f64()))
                .query_async(conn)
                .await
                .map_err(|e| t.error(&e))?;
            let Some((_, raw)) = popped else { continue };
            match parse_reply(&raw, ticket) {
                Ok(Reply::Foreign) => {}
                Ok(Reply::Answers(answers)) => {
                    answered += 1;
                    for (node, verdict) in answers {
                        if self.destination.is_empty() || self.destination.contains(&node) {
                            match verdict {
                                Ok(()) => *seen.entry(node).or_default() += 1,
                                Err(why) => ping.unreadable.push(why),
                            }
                        }
                    }
                }
                Err(why) => {
                    answered += 1;
                    ping.unreadable.push(why);
                }
            }
        }
        ping.duplicates = seen.iter().filter(|(_, n)| **n > 1).map(|(k, _)| k.clone()).collect();
        ping.workers = seen.into_keys().collect();
        Ok(ping)
    }
}

fn window_text(d: Duration) -> String {
    resee_ops_core::serde_duration::format_duration(d)
}

#[async_trait]
impl HealthProbe for CeleryWorkersProbe {
    fn name(&self) -> &str {
        &self.name
    }

    /// "No Celery worker alive" (the seed's "no Celery worker"), "Only 1 Celery worker alive", "Celery
    /// worker check failed" when Redis could not be asked, "Celery workers alive again".
    fn alert_text(&self, outcome: &ProbeOutcome, resolved: bool) -> ProbeAlertText {
        super::heartbeat::workers_alert_text("Celery worker", outcome, resolved)
    }

    fn is_critical(&self) -> bool {
        self.critical
    }

    async fn check(&self) -> ProbeOutcome {
        let ping = match self.ping().await {
            Ok(p) => p,
            Err(e) => return ProbeOutcome::down(format!("cannot ping the Celery workers: {}", e.message())),
        };
        let n = ping.workers.len();
        let mut notes = Vec::new();
        if !ping.duplicates.is_empty() {
            notes.push(format!("several workers share the node name {}", ping.duplicates.join(", ")));
        }
        if !ping.unreadable.is_empty() {
            notes.push(format!(
                "{} unreadable repl{}: {}",
                ping.unreadable.len(),
                plural(ping.unreadable.len(), "y", "ies"),
                ping.unreadable.join("; ")
            ));
        }
        let silent = ping.subscribers.saturating_sub(n as u64);
        if n < self.min_workers && silent > 0 && ping.unreadable.is_empty() {
            notes.push(format!("{silent} subscribed but did not answer (busy?)"));
        }
        let notes = if notes.is_empty() { String::new() } else { format!(" ({})", notes.join("; ")) };
        let outcome = if n == 0 && ping.subscribers == 0 {
            ProbeOutcome::down(format!(
                "no Celery worker listens on {} (none running, or they use another database or key prefix)",
                self.control_channel()
            ))
        } else if n == 0 {
            ProbeOutcome::down(format!("no Celery worker answered the ping within {}{notes}", window_text(self.window)))
        } else if n < self.min_workers {
            ProbeOutcome::down(format!(
                "{n} Celery {} answered ({}), fewer than the minimum of {}{notes}",
                plural(n, "worker", "workers"),
                ping.workers.join(", "),
                self.min_workers
            ))
        } else if !notes.is_empty() {
            ProbeOutcome::degraded(format!("{n} alive: {}{notes}", ping.workers.join(", ")))
        } else {
            ProbeOutcome::up().with_output(format!("{n} alive: {}", ping.workers.join(", ")))
        };
        outcome.with_observed(n as f64, "workers")
    }
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(body: &str, encoding: &str, ticket: &str) -> Vec<u8> {
        json!({"body": body, "content-type": "application/json", "headers": {"ticket": ticket},
               "properties": {"body_encoding": encoding}})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn replies_are_parsed_and_bad_ones_explained() {
        let pong = BASE64.encode(r#"{"w1@vm": {"ok": "pong"}}"#);
        assert_eq!(
            parse_reply(&envelope(&pong, "base64", "t"), "t"),
            Ok(Reply::Answers(vec![("w1@vm".into(), Ok(()))]))
        );
        assert_eq!(parse_reply(&envelope(&pong, "base64", "other"), "t"), Ok(Reply::Foreign));
        // The exact reply captured from a Celery 5.7 worker.
        let captured = br#"{"body": "eyJ3MUB2bSI6IHsib2siOiAicG9uZyJ9fQ==", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"ticket": "b6927e4e", "clock": 3}, "properties": {"delivery_mode": 1, "delivery_info": {"exchange": "reply.celery.pidbox", "routing_key": "bb09"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "058d"}}"#;
        assert_eq!(parse_reply(captured, "b6927e4e"), Ok(Reply::Answers(vec![("w1@vm".into(), Ok(()))])));
        assert!(parse_reply(b"{not json", "t").unwrap_err().contains("not valid JSON"));
        assert!(parse_reply(&envelope("%%%", "base64", "t"), "t").unwrap_err().contains("not valid base64"));
        let err = BASE64.encode(r#"{"w1@vm": {"error": "KeyError('x')"}}"#);
        let Ok(Reply::Answers(a)) = parse_reply(&envelope(&err, "base64", "t"), "t") else { panic!() };
        assert!(a[0].1.as_ref().unwrap_err().contains("KeyError"));
        assert!(parse_reply(&envelope(&BASE64.encode("[1]"), "base64", "t"), "t").is_err());
        assert!(parse_reply(b"[]", "t").is_err());
    }

    #[test]
    fn uuids_are_version_4() {
        let u = uuid4();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"), "{u}");
        assert_ne!(uuid4(), u);
    }

    #[test]
    fn names_follow_kombu() {
        let t = CeleryTransport::new();
        let keys = PingKeys::new(&t, "OID");
        assert_eq!(keys.binding_table, "_kombu.binding.reply.celery.pidbox");
        assert_eq!(keys.member, "OID\x06\x16\x06\x16OID.reply.celery.pidbox");
        assert_eq!(keys.reply_lists[0], "OID.reply.celery.pidbox");
        let t = CeleryTransport::new().with_global_keyprefix("pfx:").with_sep(":").with_control_exchange("x");
        let keys = PingKeys::new(&t, "OID");
        assert_eq!(keys.binding_table, "pfx:_kombu.binding.reply.x.pidbox");
        assert_eq!(keys.member, "OID::OID.reply.x.pidbox");
        assert_eq!(keys.reply_lists[..2], ["pfx:OID.reply.x.pidbox", "pfx:OID.reply.x.pidbox:3"]);
    }
}
