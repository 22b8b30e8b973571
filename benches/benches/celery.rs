//! Celery checks against a real Celery 5 worker on the test Redis: the cost of one `CeleryWorkersProbe`
//! ping (a targeted ping and a broadcast that ends once every subscriber answered), the time a broadcast
//! spends beyond its reply window when a subscriber stays silent, and one `QueueLength` read of a queue with
//! 10 priority lists (`priority_steps` 0..=9).
//!
//! Needs Python with Celery (see `scripts/test.sh`, or set `RESEE_TEST_CELERY_PYTHON`).
//!
//! ```text
//! cargo bench -p resee-ops-benches --bench celery
//! ```

#[path = "../../resee-ops-monitor/tests/common/celery.rs"]
mod celery_worker;

use std::hint::black_box;
use std::time::{Duration, Instant};

use celery_worker::Broker;
use criterion::{Criterion, criterion_group, criterion_main};
use resee_ops_benches::{percentiles, runtime};
use resee_ops_core::testing::services;
use resee_ops_monitor::{CeleryTransport, CeleryWorkersProbe, QueueLength, RedisConfig};

fn broker(tag: &str) -> Broker {
    Broker {
        url: services::redis().url_for_database("6"),
        prefix: format!("resee-bench:{tag}:{}:", std::process::id()),
        ..Broker::default()
    }
}

fn ping(c: &mut Criterion) {
    let rt = runtime();
    let b = broker("ping");
    let name = format!("bench-{}@resee-test", std::process::id());
    let _worker = b.worker(&name, "bench-unused");
    let cfg = RedisConfig::from_url(b.url.as_str()).unwrap();
    let transport = CeleryTransport::new().with_global_keyprefix(&b.prefix);
    let probe = CeleryWorkersProbe::new(&cfg).unwrap().with_transport(transport.clone()).unwrap();
    let targeted = probe.clone().with_destination([name.clone()]);
    assert_eq!(rt.block_on(probe.ping()).unwrap().workers, std::slice::from_ref(&name));

    let mut group = c.benchmark_group("celery_ping");
    group.bench_function("destination_1_worker", |bench| {
        bench.to_async(&rt).iter(|| async { black_box(targeted.ping().await.unwrap()) });
    });
    group.bench_function("broadcast_1_worker", |bench| {
        bench.to_async(&rt).iter(|| async { black_box(probe.ping().await.unwrap()) });
    });
    let nobody = CeleryWorkersProbe::new(&cfg)
        .unwrap()
        .with_transport(transport.clone().with_global_keyprefix(format!("{}none:", b.prefix)))
        .unwrap();
    group.bench_function("broadcast_no_worker", |bench| {
        bench.to_async(&rt).iter(|| async { black_box(nobody.ping().await.unwrap()) });
    });
    group.finish();

    // A subscriber that never answers (a busy solo worker) makes the broadcast wait out its window:
    // how much longer than the window does the whole check take?
    let window = Duration::from_millis(200);
    let silent_prefix = format!("{}silent:", b.prefix);
    let silent = CeleryWorkersProbe::new(&cfg)
        .unwrap()
        .with_transport(transport.with_global_keyprefix(&silent_prefix))
        .unwrap()
        .with_window(window);
    let overshoot = rt.block_on(async {
        let client = redis::Client::open(b.url.as_str()).unwrap();
        let mut pubsub = client.get_async_pubsub().await.unwrap();
        pubsub.psubscribe(silent.control_channel()).await.unwrap();
        let mut samples = Vec::new();
        for _ in 0..20 {
            let started = Instant::now();
            let p = silent.ping().await.unwrap();
            assert_eq!(p.subscribers, 1);
            samples.push(started.elapsed().saturating_sub(window));
        }
        samples
    });
    percentiles("celery_ping/broadcast_silent_subscriber: time beyond the 200ms window", overshoot);
}

fn queue_length(c: &mut Criterion) {
    let rt = runtime();
    let b = Broker { steps: Some((0..=9).collect()), ..broker("queue") };
    let transport = CeleryTransport::new().with_global_keyprefix(&b.prefix).with_priority_steps(0..=9);
    // 10 priority lists of the queue `bench`, 10 tasks each, enqueued by real Celery (no worker runs).
    let priorities: Vec<String> = (0..100).map(|i| (i % 10).to_string()).collect();
    let mut args = vec!["enqueue", "bench"];
    args.extend(priorities.iter().map(String::as_str));
    b.run(&args);
    let cfg = RedisConfig::from_url(b.url.as_str()).unwrap();
    let q = QueueLength::new(&cfg).unwrap().with_queues(["bench"]).with_transport(transport).unwrap();
    assert_eq!(rt.block_on(q.total()).unwrap(), 100);
    let with_unacked = q.clone().with_unacked(true);
    let mut group = c.benchmark_group("queue_length");
    group.bench_function("10_priority_lists", |bench| {
        bench.to_async(&rt).iter(|| async { black_box(q.total().await.unwrap()) });
    });
    group.bench_function("10_priority_lists_plus_unacked", |bench| {
        bench.to_async(&rt).iter(|| async { black_box(with_unacked.total().await.unwrap()) });
    });
    group.finish();
    rt.block_on(async {
        let client = redis::Client::open(b.url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{}*", b.prefix)).query_async(&mut conn).await.unwrap();
        let () = redis::cmd("DEL").arg(keys).query_async(&mut conn).await.unwrap();
    });
}

criterion_group!(benches, ping, queue_length);
criterion_main!(benches);
