//! CeleryWorkersProbe and the Celery-aware QueueLength against REAL Celery 5 workers (`--pool=solo`) on the
//! test Redis (`resee_ops_core::testing::services::redis()`), plus the faults: Redis down, a wrong password,
//! a wrong database, a server that never answers, a busy worker, two workers with one name, replies that are
//! not JSON or not base64, and a cancelled check. After each, `SCAN` proves no reply binding or list is left.
//!
//! Each test has its own `global_keyprefix`, so the tests run in parallel without seeing each other's workers.
//! Python with Celery is found by `common::celery::python()` (see there); without it these tests fail.

mod common;

use std::time::{Duration, Instant};

use common::celery::Broker;
use common::{closed_port, hanging_port, unique};
use resee_ops_core::ErrorKind;
use resee_ops_core::testing::services;
use resee_ops_core::{HealthProbe, HealthStatus, MetricSource};
use resee_ops_monitor::{CeleryTransport, CeleryWorkersProbe, QueueLength, RedisConfig};

const SECRET: &str = "s3cr3t-Pa55word";
/// The database of the tests' brokers: the pidbox channel name carries it.
const DB: &str = "3";

fn broker(tag: &str) -> Broker {
    Broker { url: services::redis().url_for_database(DB), prefix: format!("{}:", unique(tag)), ..Broker::default() }
}

fn redis_config(b: &Broker) -> RedisConfig {
    RedisConfig::from_url(b.url.as_str()).unwrap().with_timeout(Duration::from_secs(2))
}

fn transport(b: &Broker) -> CeleryTransport {
    let mut t = CeleryTransport::new().with_global_keyprefix(&b.prefix);
    if let Some(sep) = &b.sep {
        t = t.with_sep(sep);
    }
    if let Some(steps) = &b.steps {
        t = t.with_priority_steps(steps.iter().copied());
    }
    if let Some(exchange) = &b.control_exchange {
        t = t.with_control_exchange(exchange);
    }
    t
}

fn probe(b: &Broker) -> CeleryWorkersProbe {
    CeleryWorkersProbe::new(&redis_config(b)).unwrap().with_transport(transport(b)).unwrap()
}

async fn conn(b: &Broker) -> redis::aio::MultiplexedConnection {
    redis::Client::open(b.url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap()
}

/// Every key under the broker's prefix, by `SCAN`.
async fn keys(b: &Broker) -> Vec<String> {
    let mut c = conn(b).await;
    let pattern = format!("{}*", b.prefix);
    let mut cursor = 0u64;
    let mut out = Vec::new();
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut c)
            .await
            .unwrap();
        out.extend(batch);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    out.sort();
    out
}

/// Asserts that no reply binding or reply list of a ping is left under the broker's prefix.
async fn assert_no_ping_leftovers(b: &Broker) {
    let leftovers: Vec<String> = keys(b).await.into_iter().filter(|k| k.contains("reply.celery.pidbox")).collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}

fn node(tag: &str) -> String {
    format!("{tag}-{}@resee-test", std::process::id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_one_then_two_real_workers_and_filters_by_destination() {
    let b = broker("ping");
    let w1 = node("w1");
    let w2 = node("w2");
    let _worker1 = b.worker(&w1, "q-ping");
    let window = Duration::from_secs(3);
    let probe = probe(&b).with_window(window);

    let started = Instant::now();
    let outcome = probe.check().await;
    assert_eq!(outcome.status, HealthStatus::Up, "{outcome:?}");
    assert_eq!(outcome.observed_value, Some(1.0));
    assert_eq!(outcome.observed_unit.as_deref(), Some("workers"));
    assert_eq!(outcome.output.as_deref(), Some(format!("1 alive: {w1}").as_str()));
    assert!(started.elapsed() < window, "returns once every subscriber answered: {:?}", started.elapsed());

    let outcome = probe.clone().with_min_workers(2).check().await;
    assert_eq!(outcome.status, HealthStatus::Down, "{outcome:?}");
    assert_eq!(probe.alert_text(&outcome, false).title, "Only 1 Celery worker alive");
    assert_eq!(
        outcome.output.as_deref(),
        Some(format!("1 Celery worker answered ({w1}), fewer than the minimum of 2").as_str())
    );

    let _worker2 = b.worker(&w2, "q-ping");
    let ping = probe.ping().await.unwrap();
    let mut both = vec![w1.clone(), w2.clone()];
    both.sort();
    assert_eq!(ping.workers, both);
    assert_eq!(ping.subscribers, 2);
    assert!(ping.duplicates.is_empty() && ping.unreadable.is_empty(), "{ping:?}");
    assert_eq!(probe.clone().with_min_workers(2).check().await.observed_value, Some(2.0));

    // Celery's own `inspect().ping()` sees the same workers.
    let celery: serde_json::Value = serde_json::from_str(&b.run(&["ping", "1"])).unwrap();
    let mut celery_names: Vec<String> = celery.as_object().unwrap().keys().cloned().collect();
    celery_names.sort();
    assert_eq!(celery_names, both);

    // Only the named worker is asked, and the check ends as soon as it answered.
    let started = Instant::now();
    let only_w2 = probe.clone().with_destination([w2.clone()]);
    let ping = only_w2.ping().await.unwrap();
    assert_eq!(ping.workers, std::slice::from_ref(&w2));
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    assert_eq!(only_w2.check().await.status, HealthStatus::Up);
    let nobody = probe.clone().with_window(Duration::from_millis(500)).with_destination(["nobody@nowhere"]);
    let outcome = nobody.check().await;
    assert_eq!(outcome.status, HealthStatus::Down, "{outcome:?}");
    assert_eq!(outcome.observed_value, Some(0.0));

    assert_no_ping_leftovers(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_worker_fails_within_the_window_and_leaves_nothing() {
    let b = broker("none");
    let window = Duration::from_millis(800);
    let probe = probe(&b).with_window(window);
    let started = Instant::now();
    let outcome = probe.check().await;
    assert!(started.elapsed() < window + Duration::from_millis(500), "{:?}", started.elapsed());
    assert_eq!(outcome.status, HealthStatus::Down, "{outcome:?}");
    let expected = format!(
        "no Celery worker listens on {}/3.celery.pidbox (none running, or they use another database or key prefix)",
        b.prefix
    );
    assert_eq!(outcome.output.as_deref(), Some(expected.as_str()));
    assert_eq!(probe.alert_text(&outcome, false).title, "No Celery worker alive");
    assert_eq!(probe.alert_text(&resee_ops_core::ProbeOutcome::up(), true).title, "Celery workers alive again");
    assert_eq!(outcome.observed_value, Some(0.0));
    assert_no_ping_leftovers(&b).await;

    // A worker on another database (a wrong db in the URL) is not seen either.
    let other_db = Broker { url: services::redis().url_for_database("4"), ..b.clone() };
    let _w = other_db.worker(&node("otherdb"), "q-none");
    assert_eq!(probe.check().await.status, HealthStatus::Down);
    assert_eq!(self::probe(&other_db).check().await.status, HealthStatus::Up);
    assert_no_ping_leftovers(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_names_without_a_prefix() {
    // kombu's default names (no prefix), on a database no other test of this file uses.
    let b = Broker { url: services::redis().url_for_database("5"), ..Broker::default() };
    let name = node("plain");
    let _w = b.worker(&name, "q-plain");
    let probe = CeleryWorkersProbe::new(&redis_config(&b)).unwrap();
    assert_eq!(probe.control_channel(), "/5.celery.pidbox");
    let ping = probe.ping().await.unwrap();
    assert!(ping.workers.contains(&name), "{ping:?}");
    let ping = probe.clone().with_destination([name.clone()]).ping().await.unwrap();
    assert_eq!(ping.workers, [name]);
    let mut c = conn(&b).await;
    let members: Vec<Vec<u8>> =
        redis::cmd("SMEMBERS").arg("_kombu.binding.reply.celery.pidbox").query_async(&mut c).await.unwrap();
    assert!(members.is_empty(), "reply bindings left: {members:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_sep_and_priority_steps_for_ping_and_queue_length() {
    let b = Broker { sep: Some(":".into()), steps: Some((0..=9).collect()), ..broker("sep") };
    let name = node("sep");
    let _w = b.worker(&name, "q-sep-consumed");
    let ping = probe(&b).ping().await.unwrap();
    assert_eq!(ping.workers, std::slice::from_ref(&name));

    // Real Celery enqueues into `jobs`, which no worker consumes: none, 0, 3, 3, 5, 9.
    b.run(&["enqueue", "jobs", "-", "0", "3", "3", "5", "9"]);
    let q = QueueLength::new(&redis_config(&b)).unwrap().with_queues(["jobs"]).with_transport(transport(&b)).unwrap();
    assert_eq!(q.total().await.unwrap(), 6);
    let mut c = conn(&b).await;
    let bare: u64 = redis::cmd("LLEN").arg(format!("{}jobs", b.prefix)).query_async(&mut c).await.unwrap();
    assert_eq!(bare, 2, "LLEN of the bare list alone misses the priority lists");
    let three: u64 = redis::cmd("LLEN").arg(format!("{}jobs:3", b.prefix)).query_async(&mut c).await.unwrap();
    assert_eq!(three, 2);
    // With kombu's default sep the priority lists are not found.
    let wrong = QueueLength::new(&redis_config(&b))
        .unwrap()
        .with_queues(["jobs"])
        .with_transport(CeleryTransport::new().with_global_keyprefix(&b.prefix))
        .unwrap();
    assert_eq!(wrong.total().await.unwrap(), 2);
    assert_no_ping_leftovers(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_length_sums_the_priority_lists_of_real_celery_tasks() {
    let b = broker("queue");
    // No worker runs: what real Celery enqueued stays.
    b.run(&["enqueue", "celery", "-", "2", "5", "9", "9"]);
    let q = QueueLength::new(&redis_config(&b)).unwrap().with_transport(transport(&b)).unwrap();
    assert_eq!(HealthProbe::name(&q), "queue:celery");
    assert_eq!(q.lengths().await.unwrap(), [("celery".to_owned(), 5)]);
    let mut lists: Vec<String> =
        keys(&b).await.into_iter().filter(|k| k.starts_with(&format!("{}celery", b.prefix))).collect();
    lists.sort();
    let p = &b.prefix;
    assert_eq!(lists, [format!("{p}celery"), format!("{p}celery\x06\x163"), format!("{p}celery\x06\x169")]);
    let outcome = q.check().await;
    assert_eq!(outcome.status, HealthStatus::Up, "{outcome:?}");
    assert_eq!(outcome.observed_value, Some(5.0));
    assert_eq!(q.read().await.unwrap().unwrap().value, 5.0);

    // The seed's threshold: warn above 100.
    let priorities: Vec<String> = (0..96).map(|i| (i % 10).to_string()).collect();
    let mut args = vec!["enqueue", "celery"];
    args.extend(priorities.iter().map(String::as_str));
    b.run(&args);
    let outcome = q.check().await;
    assert_eq!(outcome.status, HealthStatus::Degraded, "101 > 100: {outcome:?}");
    assert_eq!(q.alert_text(&outcome, false).title, "Queue length 101 items");
    assert_eq!(outcome.observed_value, Some(101.0));
    let critical = q.clone().with_critical_above(Some(100));
    assert_eq!(critical.check().await.status, HealthStatus::Down);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_solo_worker_does_not_answer_and_its_task_counts_as_unacked() {
    let b = broker("busy");
    let name = node("busy");
    let _w = b.worker(&name, "celery");
    b.run(&["sleepers", "celery", "6", "3"]);
    // Wait (bounded) until the worker has taken the first task.
    let mut c = conn(&b).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n: u64 = redis::cmd("HLEN").arg(format!("{}unacked", b.prefix)).query_async(&mut c).await.unwrap();
        if n >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the worker never took a task");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let q = QueueLength::new(&redis_config(&b)).unwrap().with_transport(transport(&b)).unwrap();
    let with_unacked = q.clone().with_unacked(true);
    assert_eq!(q.total().await.unwrap(), 2, "ready only");
    assert_eq!(with_unacked.total().await.unwrap(), 3, "ready + the running task");
    let outcome = with_unacked.check().await;
    assert_eq!(outcome.output.as_deref(), Some("celery: 3 (2 ready, 1 unacked)"));

    let window = Duration::from_millis(800);
    let started = Instant::now();
    let outcome = probe(&b).with_window(window).check().await;
    assert!(started.elapsed() < window + Duration::from_secs(1), "{:?}", started.elapsed());
    assert_eq!(outcome.status, HealthStatus::Down, "{outcome:?}");
    assert_eq!(
        outcome.output.as_deref(),
        Some("no Celery worker answered the ping within 800ms (1 subscribed but did not answer (busy?))")
    );
    assert_no_ping_leftovers(&b).await;
}

/// `CeleryTransport::control_exchange` against a real worker started with Celery's `control_exchange`: the
/// probe with the same exchange finds it (and Celery's own ping agrees); the default exchange does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_control_exchange_is_spoken_as_the_workers_speak_it() {
    let b = Broker { control_exchange: Some("resee_ctl".into()), ..broker("ctl") };
    let name = node("ctl");
    let _w = b.worker(&name, "q-ctl");
    let matching = probe(&b);
    assert_eq!(matching.control_channel(), format!("{}/3.resee_ctl.pidbox", b.prefix));
    let ping = matching.ping().await.unwrap();
    assert_eq!(ping.workers, std::slice::from_ref(&name), "{ping:?}");
    assert_eq!(ping.subscribers, 1);
    assert_eq!(matching.check().await.status, HealthStatus::Up);
    let only = matching.clone().with_destination([name.clone()]).ping().await.unwrap();
    assert_eq!(only.workers, std::slice::from_ref(&name));

    let celery: serde_json::Value = serde_json::from_str(&b.run(&["ping", "1"])).unwrap();
    assert_eq!(celery.as_object().unwrap().keys().collect::<Vec<_>>(), [&name]);

    // The default exchange is another channel: nobody listens there.
    let default = Broker { control_exchange: None, ..b.clone() };
    let outcome = probe(&default).with_window(Duration::from_millis(500)).check().await;
    assert_eq!(outcome.status, HealthStatus::Down, "{outcome:?}");
    assert_eq!(outcome.observed_value, Some(0.0));
    assert_no_ping_leftovers(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_with_one_name_are_reported() {
    let b = broker("dup");
    let name = node("dup");
    let _w1 = b.worker(&name, "q-dup");
    let _w2 = b.worker(&name, "q-dup");
    let ping = probe(&b).ping().await.unwrap();
    assert_eq!(ping.workers, std::slice::from_ref(&name));
    assert_eq!(ping.duplicates, std::slice::from_ref(&name));
    let outcome = probe(&b).check().await;
    assert_eq!(outcome.status, HealthStatus::Degraded, "{outcome:?}");
    assert_eq!(outcome.observed_value, Some(1.0));
    assert!(outcome.output.unwrap().contains(&format!("several workers share the node name {name}")));
    assert_no_ping_leftovers(&b).await;
}

/// How a fake worker answers a request body: the raw reply to push, or nothing.
type Responder = Box<dyn Fn(&serde_json::Value) -> Option<String> + Send>;

/// A stand-in for a broken worker: subscribes to the control channel and answers every request with
/// `reply(request_body)` pushed onto the reply list (or nothing). Returns its task.
async fn fake_worker(
    b: &Broker,
    channel: String,
    reply: impl Fn(&serde_json::Value) -> Option<String> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    use base64::Engine as _;
    use futures_util::StreamExt as _;
    let client = redis::Client::open(b.url.as_str()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.psubscribe(&channel).await.unwrap();
    let mut c = conn(b).await;
    let prefix = b.prefix.clone();
    tokio::spawn(async move {
        let mut messages = pubsub.into_on_message();
        while let Some(msg) = messages.next().await {
            let payload: Vec<u8> = msg.get_payload().unwrap();
            let envelope: serde_json::Value = serde_json::from_slice(&payload).unwrap();
            let body = base64::engine::general_purpose::STANDARD.decode(envelope["body"].as_str().unwrap()).unwrap();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            if let Some(r) = reply(&body) {
                let oid = body["reply_to"]["routing_key"].as_str().unwrap();
                let list = format!("{prefix}{oid}.reply.celery.pidbox");
                let () = redis::cmd("LPUSH").arg(list).arg(r).query_async(&mut c).await.unwrap();
            }
        }
    })
}

#[tokio::test]
async fn unreadable_and_foreign_replies_give_a_clear_outcome() {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let b = broker("garbage");
    let probe = probe(&b).with_window(Duration::from_millis(600));
    let cases: Vec<(&str, Responder, HealthStatus, &str)> = vec![
        ("not json", Box::new(|_| Some("{not json".into())), HealthStatus::Down, "reply is not valid JSON"),
        (
            "not base64",
            Box::new(|r| {
                Some(
                    serde_json::json!({"body": "%%% not base64", "headers": {"ticket": r["ticket"]},
                    "properties": {"body_encoding": "base64"}})
                    .to_string(),
                )
            }),
            HealthStatus::Down,
            "reply body is not valid base64",
        ),
        (
            "another ticket",
            Box::new(move |_| {
                Some(
                    serde_json::json!({"body": b64(r#"{"x@y": {"ok": "pong"}}"#), "headers": {"ticket": "other"},
                    "properties": {"body_encoding": "base64"}})
                    .to_string(),
                )
            }),
            HealthStatus::Down,
            "no Celery worker answered the ping within 600ms (1 subscribed but did not answer (busy?))",
        ),
    ];
    for (what, reply, status, text) in cases {
        let fake = fake_worker(&b, probe.control_channel(), reply).await;
        let started = Instant::now();
        let outcome = probe.check().await;
        assert!(started.elapsed() < Duration::from_secs(2), "{what}: {:?}", started.elapsed());
        fake.abort();
        assert_eq!(outcome.status, status, "{what}: {outcome:?}");
        assert!(outcome.output.as_deref().unwrap().contains(text), "{what}: {outcome:?}");
        assert_no_ping_leftovers(&b).await;
    }
}

#[tokio::test]
async fn a_cancelled_check_still_removes_its_binding() {
    let b = broker("cancel");
    let probe = probe(&b).with_window(Duration::from_secs(5));
    let silent = fake_worker(&b, probe.control_channel(), |_| None).await;
    assert!(tokio::time::timeout(Duration::from_millis(300), probe.check()).await.is_err(), "still waiting");
    // The binding was made, and the dropped check removes it in the background (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<String> = keys(&b).await.into_iter().filter(|k| k.contains("reply.celery.pidbox")).collect();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "left behind after cancellation: {left:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    silent.abort();
}

#[tokio::test]
async fn redis_faults_are_clear_outcomes_without_secrets() {
    let timeout = Duration::from_millis(400);
    let window = Duration::from_millis(300);
    let check = |url: String| async move {
        let probe = CeleryWorkersProbe::new(&RedisConfig::from_url(url.as_str()).unwrap().with_timeout(timeout))
            .unwrap()
            .with_window(window);
        let started = Instant::now();
        let outcome = probe.check().await;
        assert!(started.elapsed() <= probe.max_duration() + Duration::from_millis(500), "{:?}", started.elapsed());
        assert!(!format!("{outcome:?} {probe:?}").contains(SECRET), "{outcome:?}");
        assert_eq!(outcome.status, HealthStatus::Down, "{outcome:?}");
        assert_eq!(outcome.observed_value, None, "not a worker count: {outcome:?}");
        assert_eq!(probe.alert_text(&outcome, false).title, "Celery worker check failed");
        outcome.output.unwrap()
    };
    let down = check(format!("redis://:{SECRET}@127.0.0.1:{}/0", closed_port())).await;
    assert!(down.starts_with("cannot ping the Celery workers: Redis at 127.0.0.1:"), "{down}");
    let hanging = format!("redis://:{SECRET}@127.0.0.1:{}/0", hanging_port());
    let output = check(hanging.clone()).await;
    assert!(output.contains("timed out") || output.contains("did not answer within"), "{output}");
    let err = CeleryWorkersProbe::new(&RedisConfig::from_url(hanging.as_str()).unwrap().with_timeout(timeout))
        .unwrap()
        .ping()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "a timeout is a timeout: {err}");
    let wrong_password = check(services::redis().url().replacen("redis://", &format!("redis://:{SECRET}@"), 1)).await;
    assert!(wrong_password.starts_with("cannot ping the Celery workers"), "{wrong_password}");
    let wrong_db = check(services::redis().url_for_database("99")).await;
    assert!(wrong_db.contains("DB index is out of range") || wrong_db.contains("invalid DB index"), "{wrong_db}");

    let err = RedisConfig::from_url(format!("redis://:{SECRET}@127.0.0.1:x/0").as_str()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(!format!("{err:?}").contains(SECRET));
    let bad = CeleryWorkersProbe::new(&RedisConfig::from_url("redis://127.0.0.1/0").unwrap())
        .unwrap()
        .with_transport(CeleryTransport::new().with_sep(""));
    assert_eq!(bad.unwrap_err().kind(), ErrorKind::InvalidConfig);
}
