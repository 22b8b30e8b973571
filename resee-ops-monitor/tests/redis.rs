//! Redis-backed parts against a real Redis, a closed port and a server that never answers: RedisProbe,
//! Heartbeat + WorkerHeartbeatProbe, QueueLength.

mod common;

use std::time::{Duration, Instant};

use common::{assert_between, closed_port, hanging_port, unique};
use resee_ops_core::ErrorKind;
use resee_ops_core::testing::{ManualClock, services};
use resee_ops_core::{HealthProbe, HealthStatus, MetricSource};
use resee_ops_monitor::{HeartbeatConfig, QueueLength, RedisConfig, WorkerHeartbeatProbe};

const SECRET: &str = "s3cr3t-Pa55word";

fn redis() -> RedisConfig {
    RedisConfig::from_url(services::redis().url()).unwrap().with_timeout(Duration::from_secs(2))
}

async fn raw_connection() -> redis::aio::MultiplexedConnection {
    redis::Client::open(services::redis().url()).unwrap().get_multiplexed_async_connection().await.unwrap()
}

#[tokio::test]
async fn ping_up_against_the_real_server() {
    let probe = redis().probe().unwrap();
    let outcome = probe.check().await;
    assert_eq!(outcome.status, HealthStatus::Up, "{outcome:?}");
    assert_eq!(outcome.observed_unit.as_deref(), Some("ms"));
    assert_eq!(probe.name(), "redis");
}

#[tokio::test]
async fn closed_port_fails_fast_without_leaking_the_password() {
    let cfg = RedisConfig::from_url(format!("redis://:{SECRET}@127.0.0.1:{}/0", closed_port()).as_str()).unwrap();
    let probe = cfg.probe().unwrap();
    let started = Instant::now();
    let err = probe.ping().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    let outcome = probe.check().await;
    assert_eq!(outcome.status, HealthStatus::Down);
    let text = format!("{err} {err:?} {outcome:?} {probe:?} {cfg:?}");
    assert!(!text.contains(SECRET), "{text}");
}

#[tokio::test]
async fn a_server_that_never_answers_fails_at_the_timeout() {
    let timeout = Duration::from_millis(300);
    let cfg = RedisConfig::from_url(format!("redis://:{SECRET}@127.0.0.1:{}/0", hanging_port()).as_str())
        .unwrap()
        .with_timeout(timeout);
    let probe = cfg.probe().unwrap();
    let started = Instant::now();
    let outcome = probe.check().await;
    assert_between(started.elapsed(), timeout, Duration::from_millis(1500));
    assert_eq!(outcome.status, HealthStatus::Down);
    assert!(!format!("{outcome:?}").contains(SECRET));

    // The same bound holds for the heartbeat probe and the queue probe.
    let workers = WorkerHeartbeatProbe::new(&cfg).unwrap();
    let started = Instant::now();
    let outcome = workers.check().await;
    assert_between(started.elapsed(), timeout, Duration::from_millis(1500));
    assert_eq!(outcome.status, HealthStatus::Down);
    assert_eq!(outcome.observed_value, None, "a timeout is not a count of zero workers");
    let output = outcome.output.clone().unwrap();
    assert!(output.contains("timed out") || output.contains("did not answer within"), "{output}");
    assert!(!output.contains("no worker alive"), "{output}");
    assert_eq!(workers.alert_text(&outcome, false).title, "Worker check failed");
    let queue = QueueLength::new(&cfg).unwrap();
    let started = Instant::now();
    let err = queue.read().await.unwrap_err();
    assert_between(started.elapsed(), timeout, Duration::from_millis(1500));
    assert!(err.is_temporary(), "{err}");
}

#[tokio::test]
async fn wrong_password_is_a_server_error_without_the_password() {
    // The test server has no password: AUTH is refused, and the refusal must not echo ours.
    let url = services::redis().url().replacen("redis://", &format!("redis://:{SECRET}@"), 1);
    let probe = RedisConfig::from_url(url.as_str()).unwrap().probe().unwrap();
    let outcome = probe.check().await;
    assert_eq!(outcome.status, HealthStatus::Down, "{outcome:?}");
    assert!(!format!("{outcome:?} {probe:?}").contains(SECRET), "{outcome:?}");
}

#[tokio::test]
async fn heartbeats_count_live_workers_and_expire_by_the_clock() {
    let key = format!("{}:heartbeats", unique("workers"));
    let clock = ManualClock::new();
    let beat = |id: &str| {
        HeartbeatConfig::new(id)
            .with_key(&key)
            .with_ttl(Duration::from_secs(30))
            .with_interval(Duration::from_secs(10))
            .build(&redis())
            .unwrap()
            .with_clock(clock.shared())
    };
    let probe = WorkerHeartbeatProbe::new(&redis())
        .unwrap()
        .with_key(&key)
        .with_min_workers(2)
        .with_max_age(Duration::from_secs(30))
        .with_clock(clock.shared());

    let outcome = probe.check().await;
    assert_eq!(outcome.status, HealthStatus::Down, "no worker yet: {outcome:?}");
    assert_eq!(outcome.observed_value, Some(0.0));

    let w1 = beat("w1");
    w1.beat().await.unwrap();
    let outcome = probe.check().await;
    assert_eq!(outcome.status, HealthStatus::Down, "below the minimum: {outcome:?}");
    assert_eq!(outcome.output.as_deref(), Some("1 worker alive, fewer than the minimum of 2"));
    assert_eq!(outcome.observed_value, Some(1.0));

    let w2 = beat("w2");
    w2.beat().await.unwrap();
    assert_eq!(probe.live_workers().await.unwrap(), ["w1", "w2"]);
    assert_eq!(probe.check().await.status, HealthStatus::Up);

    // One sorted set of worker → last beat, which expires a day after the last beat of any worker.
    let mut conn = raw_connection().await;
    let ttl: i64 = redis::cmd("PTTL").arg(w1.key()).query_async(&mut conn).await.unwrap();
    assert!((1..=86_400_000).contains(&ttl), "PTTL {ttl}");
    let kind: String = redis::cmd("TYPE").arg(&key).query_async(&mut conn).await.unwrap();
    assert_eq!(kind, "zset");

    // 20 s later w2 beats again, w1 does not; 11 s after that w1's beat is 31 s old.
    clock.advance(Duration::from_secs(20));
    w2.beat().await.unwrap();
    clock.advance(Duration::from_secs(11));
    assert_eq!(probe.live_workers().await.unwrap(), ["w2"]);
    clock.advance(Duration::from_secs(20));
    let outcome = probe.check().await;
    assert_eq!(outcome.status, HealthStatus::Down, "{outcome:?}");
    assert_eq!(outcome.output.as_deref(), Some("no worker alive"));

    // A clean stop removes the key at once.
    w1.beat().await.unwrap();
    assert_eq!(probe.live_workers().await.unwrap(), ["w1"]);
    w1.stop().await.unwrap();
    assert!(probe.live_workers().await.unwrap().is_empty());
    w2.stop().await.unwrap();
}

#[tokio::test]
async fn the_probe_reads_only_live_members_of_a_large_set() {
    // 5000 workers beat a day ago (pruned by the next beat), 3000 an hour ago (stale), 3 now: one
    // ZRANGEBYSCORE returns the 3, whatever else the set or the keyspace holds.
    let key = format!("{}:heartbeats", unique("many"));
    let clock = ManualClock::new();
    let now_ms = resee_ops_core::Clock::now(&clock).timestamp_millis();
    let mut conn = raw_connection().await;
    let mut pipe = redis::pipe();
    for i in 0..5000 {
        pipe.cmd("ZADD").arg(&key).arg(now_ms - 25 * 3_600_000).arg(format!("gone-{i}")).ignore();
    }
    for i in 0..3000 {
        pipe.cmd("ZADD").arg(&key).arg(now_ms - 3_600_000).arg(format!("stale-{i}")).ignore();
    }
    let () = pipe.query_async(&mut conn).await.unwrap();
    for id in ["a", "b", "c"] {
        HeartbeatConfig::new(id)
            .with_key(&key)
            .build(&redis())
            .unwrap()
            .with_clock(clock.shared())
            .beat()
            .await
            .unwrap();
    }
    let probe = WorkerHeartbeatProbe::new(&redis()).unwrap().with_key(&key).with_clock(clock.shared());
    assert_eq!(probe.live_workers().await.unwrap(), ["a", "b", "c"]);
    assert_eq!(probe.check().await.observed_value, Some(3.0));
    let size: u64 = redis::cmd("ZCARD").arg(&key).query_async(&mut conn).await.unwrap();
    assert_eq!(size, 3003, "members silent for more than a day were pruned");
    let () = redis::cmd("DEL").arg(&key).query_async(&mut conn).await.unwrap();
}

#[tokio::test]
async fn the_heartbeat_loop_beats_until_shutdown_then_leaves_the_set() {
    let key = format!("{}:heartbeats", unique("loop"));
    let heartbeat = HeartbeatConfig::new("loop-worker")
        .with_key(&key)
        .with_ttl(Duration::from_secs(5))
        .with_interval(Duration::from_millis(100))
        .build(&redis())
        .unwrap();
    let probe = WorkerHeartbeatProbe::new(&redis()).unwrap().with_key(&key);
    let mut conn = raw_connection().await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        heartbeat
            .run(async {
                let _ = stopped.await;
            })
            .await
    });

    // Wait (bounded) until the value has changed at least twice: the loop refreshes, not just once.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 3 {
        assert!(Instant::now() < deadline, "heartbeat did not refresh: saw {seen:?}");
        let v: Option<String> = redis::cmd("ZSCORE").arg(&key).arg("loop-worker").query_async(&mut conn).await.unwrap();
        seen.extend(v);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(probe.check().await.status, HealthStatus::Up);

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("loop stops").unwrap();
    let score: Option<String> = redis::cmd("ZSCORE").arg(&key).arg("loop-worker").query_async(&mut conn).await.unwrap();
    assert_eq!(score, None, "the worker left the set on shutdown");
    assert_eq!(probe.check().await.status, HealthStatus::Down);
}

#[tokio::test]
async fn queue_length_is_a_probe_with_thresholds_and_a_metric() {
    let queue = unique("celery");
    let other = unique("emails");
    let mut conn = raw_connection().await;
    let q = QueueLength::new(&redis())
        .unwrap()
        .with_queues([queue.clone(), other.clone()])
        .with_warning_above(3)
        .with_critical_above(Some(5));
    assert_eq!(q.read().await.unwrap().unwrap().value, 0.0, "missing lists are empty queues");
    assert_eq!(q.check().await.status, HealthStatus::Up);

    let () = redis::cmd("RPUSH").arg(&queue).arg(&["a", "b", "c"][..]).query_async(&mut conn).await.unwrap();
    let () = redis::cmd("RPUSH").arg(&other).arg("d").query_async(&mut conn).await.unwrap();
    assert_eq!(q.lengths().await.unwrap(), [(queue.clone(), 3), (other.clone(), 1)]);
    let outcome = q.check().await;
    assert_eq!(outcome.status, HealthStatus::Degraded, "{outcome:?}");
    assert_eq!(outcome.observed_value, Some(4.0));
    assert_eq!(outcome.observed_unit.as_deref(), Some("items"));

    let () = redis::cmd("RPUSH").arg(&other).arg(&["e", "f"][..]).query_async(&mut conn).await.unwrap();
    assert_eq!(q.check().await.status, HealthStatus::Down);
    assert_eq!(q.read().await.unwrap().unwrap().value, 6.0);

    // A key of another type is an error, not a length.
    let () = redis::cmd("SET").arg(&queue).arg("not a list").query_async(&mut conn).await.unwrap();
    assert_eq!(q.check().await.status, HealthStatus::Down);
    assert!(q.read().await.is_err());
    let () = redis::cmd("DEL").arg(&queue).arg(&other).query_async(&mut conn).await.unwrap();

    let default = QueueLength::new(&redis()).unwrap();
    assert_eq!(MetricSource::name(&default), "queue_length:celery");
    assert!(!default.is_critical());
}

#[test]
fn heartbeat_configs_are_validated() {
    let r = RedisConfig::from_url("redis://127.0.0.1:6379/").unwrap();
    assert!(HeartbeatConfig::new("").build(&r).is_err());
    assert!(HeartbeatConfig::new("a b").build(&r).is_err());
    assert!(HeartbeatConfig::new("w").with_interval(Duration::from_secs(30)).build(&r).is_err(), "interval >= ttl");
    // A refresh loop faster than MIN_INTERVAL would spin against Redis: refused, naming the minimum.
    let tiny = HeartbeatConfig::new("w").with_ttl(Duration::from_millis(1)).with_interval(Duration::from_nanos(1));
    let err = tiny.build(&r).unwrap_err().to_string();
    assert!(err.contains("heartbeat interval (1ns) must be at least 10ms and below the TTL (1ms)"), "{err}");
    let fine =
        HeartbeatConfig::new("w").with_ttl(Duration::from_millis(20)).with_interval(resee_ops_monitor::MIN_INTERVAL);
    assert!(fine.build(&r).is_ok());
    let cfg: HeartbeatConfig = serde_json::from_str(r#"{"worker_id": "w9", "ttl": "1m", "interval": "20s"}"#).unwrap();
    let hb = cfg.build(&r).unwrap();
    assert_eq!((hb.key(), hb.worker_id()), ("resee:heartbeats", "w9"));
    let err = RedisConfig::from_url(format!("redis://:{SECRET}@127.0.0.1:notaport/0").as_str()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(!format!("{err} {err:?}").contains(SECRET));
}

#[test]
fn config_debug_and_serialisation_hide_a_query_password() {
    for url in [
        format!("redis://127.0.0.1:6379/?password={SECRET}"),
        format!("redis://127.0.0.1:6379/0?Password={SECRET}&protocol=resp3"),
    ] {
        let cfg: RedisConfig = serde_json::from_value(serde_json::json!({"url": url})).unwrap();
        let probe = cfg.probe().unwrap();
        let text = format!("{cfg:?} {} {probe:?} {}", cfg.url, serde_json::to_string(&cfg).unwrap());
        assert!(!text.contains(SECRET), "{text}");
        assert!(serde_json::to_string(&cfg).unwrap().contains(":***@"), "{text}");
    }
}

#[tokio::test]
async fn probes_and_the_queue_metric_pass_the_core_conformance_suites() {
    use resee_ops_core::testing::conformance;
    let within = Duration::from_secs(15);
    conformance::health_probe(&redis().probe().unwrap(), within, &[]).await;
    let url = services::redis().url().replacen("redis://", &format!("redis://:{SECRET}@"), 1);
    let refused = RedisConfig::from_url(url.as_str()).unwrap().probe().unwrap();
    assert_eq!(conformance::health_probe(&refused, within, &[SECRET]).await.status, HealthStatus::Down);
    let queue = QueueLength::new(&redis()).unwrap().with_queues([unique("conformance")]);
    conformance::health_probe(&queue, within, &[]).await;
    let sample = conformance::metric_source(&queue, within, &[]).await;
    assert_eq!(sample.map(|s| s.value), Some(0.0));
    let refused = QueueLength::new(&RedisConfig::from_url(url.as_str()).unwrap()).unwrap();
    conformance::metric_source(&refused, within, &[SECRET]).await;
}
