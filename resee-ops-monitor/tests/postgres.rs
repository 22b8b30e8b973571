//! PostgresProbe against a real PostgreSQL, a closed port and a server that never answers.

mod common;

use std::time::{Duration, Instant};

use common::{assert_between, closed_port, hanging_port, with_credentials};
use resee_ops_core::ErrorKind;
use resee_ops_core::testing::services;
use resee_ops_core::{HealthProbe, HealthRegistry, HealthStatus, Registration};
use resee_ops_monitor::PostgresProbeConfig;

const SECRET: &str = "s3cr3t-Pa55word";

#[tokio::test]
async fn up_against_the_real_server() {
    let probe = PostgresProbeConfig::from_url(services::postgres().url()).unwrap().build().unwrap();
    let outcome = probe.check().await;
    assert_eq!(outcome.status, HealthStatus::Up, "{outcome:?}");
    assert_eq!(outcome.observed_unit.as_deref(), Some("ms"));
    assert!(outcome.observed_value.unwrap() > 0.0);
    assert_eq!(probe.name(), "database");
    assert!(probe.is_critical());
}

#[tokio::test]
async fn closed_port_fails_fast_without_leaking_the_password() {
    let url = format!("postgres://app:{SECRET}@127.0.0.1:{}/app", closed_port());
    let probe =
        PostgresProbeConfig::from_url(url.as_str()).unwrap().with_timeout(Duration::from_secs(5)).build().unwrap();
    let started = Instant::now();
    let err = probe.ping().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2), "refused connections fail at once: {:?}", started.elapsed());
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.is_temporary());
    let outcome = probe.check().await;
    assert_eq!(outcome.status, HealthStatus::Down);
    let text = format!("{err} {err:?} {outcome:?} {probe:?}");
    assert!(!text.contains(SECRET), "{text}");
    let output = outcome.output.unwrap();
    assert!(output.starts_with(&format!("PostgreSQL at {}: ", probe.target())), "{output}");
    assert!(output.contains("Connection refused"), "names the cause: {output}");
}

#[tokio::test]
async fn a_server_that_never_answers_fails_at_the_timeout() {
    let url = format!("postgres://app:{SECRET}@127.0.0.1:{}/app", hanging_port());
    let timeout = Duration::from_millis(300);
    let probe = PostgresProbeConfig::from_url(url.as_str()).unwrap().with_timeout(timeout).build().unwrap();
    let started = Instant::now();
    let outcome = probe.check().await;
    assert_between(started.elapsed(), timeout, Duration::from_millis(1500));
    assert_eq!(outcome.status, HealthStatus::Down);
    let output = outcome.output.unwrap();
    assert!(output.contains("did not answer within 300ms"), "{output}");
    assert!(!output.contains(SECRET));

    // The registry's own, shorter timeout wins too, and the other probes are not held up.
    let registry = HealthRegistry::new()
        .with_registration(Registration::new(probe).with_timeout(Duration::from_millis(200)))
        .with_registration(Registration::new(
            PostgresProbeConfig::from_url(services::postgres().url()).unwrap().with_name("real").build().unwrap(),
        ));
    let started = Instant::now();
    let report = registry.check_all().await;
    assert_between(started.elapsed(), Duration::from_millis(200), Duration::from_millis(1500));
    assert_eq!(report.checks["database"].status, HealthStatus::Down);
    assert_eq!(report.checks["real"].status, HealthStatus::Up);
}

#[tokio::test]
async fn server_errors_are_reported_without_the_password() {
    // A real server rejecting the login or the database: either way a server error, never the password.
    let base = services::postgres().url_for_database("resee_no_such_database");
    let url = with_credentials(&base, "postgres", SECRET);
    let probe = PostgresProbeConfig::from_url(url.as_str()).unwrap().build().unwrap();
    let err = probe.ping().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unexpected, "{err}");
    let outcome = probe.check().await;
    let output = outcome.output.clone().unwrap();
    assert!(output.contains("FATAL"), "{output}");
    let text = format!("{err} {err:?} {outcome:?} {probe:?}");
    assert!(!text.contains(SECRET), "{text}");
    let core: resee_ops_core::Error = err;
    assert!(!format!("{core} {core:?}").contains(SECRET));
}

#[test]
fn invalid_connection_strings_are_rejected_without_echoing_them() {
    let err = PostgresProbeConfig::from_url(format!("postgres://u:{SECRET}@host:notaport/db").as_str()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(!format!("{err} {err:?}").contains(SECRET), "{err}");
    assert!(
        PostgresProbeConfig::from_url("postgres://127.0.0.1/db").unwrap().with_timeout(Duration::ZERO).build().is_err()
    );
}

#[test]
fn config_debug_and_serialisation_hide_the_password() {
    let cfg: PostgresProbeConfig = serde_json::from_value(
        serde_json::json!({"url": format!("postgres://app:{SECRET}@db/app"), "critical": false}),
    )
    .unwrap();
    assert!(!cfg.critical);
    assert_eq!(cfg.timeout, Duration::from_secs(3));
    assert!(!format!("{cfg:?}").contains(SECRET));
    assert!(!serde_json::to_string(&cfg).unwrap().contains(SECRET));
    let probe = cfg.build().unwrap();
    assert_eq!(probe.target(), "db:5432/app");
    assert!(!probe.is_critical());

    // The password may also sit in the query or in a key=value string, spaced or quoted.
    for url in [
        format!("postgres://app@db/app?password={SECRET}"),
        format!("postgres://app@db/app?sslmode=disable&password={SECRET}&connect_timeout=5"),
        format!("host=db user=app password = {SECRET} dbname=app"),
        format!("host=db user=app password='{SECRET} x' dbname=app"),
    ] {
        let cfg: PostgresProbeConfig = serde_json::from_value(serde_json::json!({"url": url})).unwrap();
        let probe = cfg.clone().build().unwrap();
        let text = format!("{cfg:?} {} {probe:?} {}", cfg.url, serde_json::to_string(&cfg).unwrap());
        assert!(!text.contains(SECRET), "{text}");
        assert_eq!(probe.target(), "db:5432/app");
    }
}

#[tokio::test]
async fn passes_the_core_probe_conformance_suite_up_refused_and_unreachable() {
    use resee_ops_core::testing::conformance;
    let within = Duration::from_secs(15);
    let up = PostgresProbeConfig::from_url(services::postgres().url()).unwrap().build().unwrap();
    assert_eq!(conformance::health_probe(&up, within, &[]).await.status, HealthStatus::Up);
    let base = services::postgres().url_for_database("resee_no_such_database");
    let refused =
        PostgresProbeConfig::from_url(with_credentials(&base, "postgres", SECRET).as_str()).unwrap().build().unwrap();
    assert_eq!(conformance::health_probe(&refused, within, &[SECRET]).await.status, HealthStatus::Down);
    let url = format!("postgres://app:{SECRET}@127.0.0.1:{}/app", closed_port());
    let closed = PostgresProbeConfig::from_url(url.as_str()).unwrap().build().unwrap();
    assert_eq!(conformance::health_probe(&closed, within, &[SECRET]).await.status, HealthStatus::Down);
}
