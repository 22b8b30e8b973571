//! TLS against real servers (issue 16, point 9): a private PostgreSQL with `ssl = on` that accepts TCP
//! connections over TLS only, a private plaintext PostgreSQL, and a private Redis that speaks TLS only, all
//! with certificates of a throwaway CA made for this test process. They never depend on the machine's own
//! servers, so these tests pass without a network (`unshare -n`).

use std::path::Path;
use std::sync::OnceLock;

use resee_ops_core::testing::services::{PrivatePostgres, TestCa, start_private_redis_tls};
use resee_ops_core::{ConnectionUrl, ErrorKind, HealthProbe, HealthStatus};
use resee_ops_monitor::postgres::{TLS_CERTIFICATE_REFUSED, TLS_NOT_SUPPORTED};
use resee_ops_monitor::{HeartbeatConfig, PostgresProbeConfig, QueueLength, RedisConfig, WorkerHeartbeatProbe};

struct Servers {
    /// Signed the servers' certificates, which name `localhost` only.
    ca: TestCa,
    /// Another CA, which signed nothing the servers use.
    other_ca: TestCa,
    tls_pg_port: u16,
    plain_pg_port: u16,
    redis_port: u16,
}

fn port(url: &str) -> u16 {
    ConnectionUrl::parse(url).unwrap().port()
}

fn servers() -> &'static Servers {
    static SERVERS: OnceLock<Servers> = OnceLock::new();
    SERVERS.get_or_init(|| {
        let ca = TestCa::new(&["localhost"]).expect("test CA");
        let other_ca = TestCa::new(&["localhost"]).expect("second test CA");
        let tls_pg = PrivatePostgres::new().with_tls(&ca).with_tls_only().start().expect("private TLS PostgreSQL");
        let plain_pg = PrivatePostgres::new().start().expect("private plaintext PostgreSQL");
        let redis = start_private_redis_tls(&ca).expect("private TLS Redis");
        Servers {
            tls_pg_port: port(tls_pg.url()),
            plain_pg_port: port(plain_pg.url()),
            redis_port: port(redis.url()),
            ca,
            other_ca,
        }
    })
}

fn pg(host: &str, port: u16, mode: &str, root: Option<&Path>) -> PostgresProbeConfig {
    let mut url = format!("postgres://postgres@{host}:{port}/postgres?sslmode={mode}");
    if let Some(root) = root {
        url.push_str(&format!("&sslrootcert={}", root.display()));
    }
    PostgresProbeConfig::from_url(&url).unwrap()
}

#[tokio::test]
async fn require_connects_over_tls_without_checking_the_certificate() {
    let s = servers();
    // The server accepts TCP connections over TLS only: a pass proves the probe spoke TLS.
    let probe = pg("127.0.0.1", s.tls_pg_port, "require", None).build().unwrap();
    probe.ping().await.unwrap();
    assert_eq!(probe.check().await.status, HealthStatus::Up);
    // prefer, libpq's default, takes TLS when the server offers it, and plain when it does not.
    pg("127.0.0.1", s.tls_pg_port, "prefer", None).build().unwrap().ping().await.unwrap();
    pg("127.0.0.1", s.plain_pg_port, "prefer", None).build().unwrap().ping().await.unwrap();
}

#[tokio::test]
async fn verify_full_connects_with_the_right_ca_and_host_name() {
    let s = servers();
    let probe = pg("localhost", s.tls_pg_port, "verify-full", Some(&s.ca.ca_cert())).build().unwrap();
    probe.ping().await.unwrap();
}

#[tokio::test]
async fn verify_full_refuses_a_certificate_of_another_ca() {
    let s = servers();
    for mode in ["verify-full", "verify-ca", "require"] {
        // `require` with a root certificate checks the chain, as libpq does.
        let probe = pg("localhost", s.tls_pg_port, mode, Some(&s.other_ca.ca_cert())).build().unwrap();
        let err = probe.ping().await.unwrap_err();
        assert_eq!((err.kind(), err.is_temporary()), (ErrorKind::InvalidConfig, false), "{mode}: {err}");
        assert_eq!(err.code(), Some(TLS_CERTIFICATE_REFUSED), "{mode}: {err}");
        assert!(err.message().contains("not signed by a trusted root"), "{mode}: {err}");
        assert!(err.message().contains(&format!("localhost:{}/postgres", s.tls_pg_port)), "{err}");
        let outcome = probe.check().await;
        assert_eq!(outcome.status, HealthStatus::Down);
        assert!(outcome.output.unwrap().contains("certificate was refused"));
    }
}

#[tokio::test]
async fn verify_full_refuses_a_host_name_the_certificate_does_not_hold() {
    let s = servers();
    // The certificate names `localhost`, not `127.0.0.1`.
    let err = pg("127.0.0.1", s.tls_pg_port, "verify-full", Some(&s.ca.ca_cert())).build().unwrap().ping().await;
    let err = err.unwrap_err();
    assert_eq!((err.kind(), err.is_temporary()), (ErrorKind::InvalidConfig, false), "{err}");
    assert_eq!(err.code(), Some(TLS_CERTIFICATE_REFUSED), "{err}");
    assert!(err.message().contains("does not name the host"), "{err}");
    // verify-ca checks the chain only.
    pg("127.0.0.1", s.tls_pg_port, "verify-ca", Some(&s.ca.ca_cert())).build().unwrap().ping().await.unwrap();
}

#[tokio::test]
async fn a_plaintext_server_under_sslmode_require_fails_clearly() {
    let s = servers();
    for mode in ["require", "verify-full"] {
        let probe = pg("localhost", s.plain_pg_port, mode, Some(&s.ca.ca_cert())).build().unwrap();
        let err = probe.ping().await.unwrap_err();
        assert_eq!((err.kind(), err.is_temporary()), (ErrorKind::InvalidConfig, false), "{err}");
        assert_eq!(err.code(), Some(TLS_NOT_SUPPORTED), "{err}");
        assert!(err.message().contains("server does not support TLS"), "{err}");
        assert!(err.message().contains(&format!("sslmode={mode} requires it")), "{err}");
    }
}

#[test]
fn verifying_without_a_readable_root_certificate_is_a_configuration_error() {
    let err = pg("localhost", 5432, "verify-full", Some(Path::new("/nonexistent/ca.pem"))).build().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(err.message().contains("/nonexistent/ca.pem"), "{err}");
}

fn rediss(host: &str, query: &str) -> RedisConfig {
    RedisConfig::from_url(&format!("rediss://{host}:{}/0{query}", servers().redis_port)).unwrap()
}

fn ca_query(ca: &TestCa) -> String {
    format!("?sslrootcert={}", ca.ca_cert().display())
}

#[tokio::test]
async fn rediss_ping_with_the_test_ca() {
    let s = servers();
    let probe = rediss("localhost", &ca_query(&s.ca)).probe().unwrap();
    probe.ping().await.unwrap();
    assert_eq!(probe.check().await.status, HealthStatus::Up);
    // verify-ca: the chain, not the name; require / #insecure: nothing checked.
    rediss("127.0.0.1", &format!("{}&sslmode=verify-ca", ca_query(&s.ca))).probe().unwrap().ping().await.unwrap();
    rediss("127.0.0.1", "?sslmode=require").probe().unwrap().ping().await.unwrap();
    rediss("127.0.0.1", "#insecure").probe().unwrap().ping().await.unwrap();
}

#[tokio::test]
async fn rediss_refuses_another_ca_and_a_wrong_host_name() {
    let s = servers();
    for (cfg, hint) in [
        (rediss("localhost", &ca_query(&s.other_ca)), "not signed by a trusted root"),
        (rediss("127.0.0.1", &ca_query(&s.ca)), "does not name the host"),
    ] {
        let err = cfg.probe().unwrap().ping().await.unwrap_err();
        assert_eq!((err.kind(), err.is_temporary()), (ErrorKind::InvalidConfig, false), "{err}");
        assert_eq!(err.code(), Some(TLS_CERTIFICATE_REFUSED), "{err}");
        assert!(err.message().contains(hint), "{err}");
    }
}

/// Everything in the monitor that talks to Redis shares one connection path, TLS included.
#[tokio::test]
async fn heartbeats_and_queue_lengths_work_over_rediss() {
    let s = servers();
    let cfg = rediss("localhost", &ca_query(&s.ca));
    let beat = HeartbeatConfig::new("tls-worker").build(&cfg).unwrap();
    beat.beat().await.unwrap();
    let outcome = WorkerHeartbeatProbe::new(&cfg).unwrap().check().await;
    assert_eq!(outcome.observed_value, Some(1.0), "{outcome:?}");
    let queue = QueueLength::new(&cfg).unwrap();
    assert_eq!(resee_ops_core::MetricSource::read(&queue).await.unwrap().map(|s| s.value), Some(0.0));
}
