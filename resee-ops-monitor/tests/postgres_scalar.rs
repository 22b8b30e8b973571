//! PostgresScalar against a real PostgreSQL: numbers, NULL, non-numbers, a table the application owns, a
//! server that never answers, and errors without the password.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{assert_between, closed_port, hanging_port};
use resee_ops_core::ErrorKind;
use resee_ops_core::MetricSource;
use resee_ops_core::testing::{RecordingNotifier, services};
use resee_ops_monitor::{AlertState, Measure, PAYMENTS_SOURCE, PostgresScalarConfig, Reading, RuleEvaluator, presets};

const SECRET: &str = "s3cr3t-Pa55word";

fn scalar(query: &str) -> resee_ops_monitor::PostgresScalar {
    PostgresScalarConfig::from_url(services::postgres().url(), query).unwrap().build().unwrap()
}

#[tokio::test]
async fn reads_one_number_null_is_no_data_and_text_is_an_error() {
    assert_eq!(scalar("SELECT 42").value().await.unwrap(), Some(42.0));
    assert_eq!(scalar("SELECT 0.25::numeric").read().await.unwrap().unwrap().value, 0.25);
    assert_eq!(scalar("SELECT count(*) FROM generate_series(1, 12)").value().await.unwrap(), Some(12.0));
    assert_eq!(scalar("SELECT NULL::int").value().await.unwrap(), None);
    assert_eq!(scalar("SELECT 1 WHERE false").value().await.unwrap(), None, "no row");
    let err = scalar("SELECT 'many'").value().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unexpected);
    assert!(err.message().contains("returned \"many\", not a number"), "{err}");
    let err = scalar("SELECT * FROM resee_no_such_table").value().await.unwrap_err();
    assert!(err.message().contains("does not exist"), "{err}");
    assert!(PostgresScalarConfig::from_url(services::postgres().url(), "  ").unwrap().build().is_err(), "empty query");
}

#[tokio::test]
async fn the_preset_payment_rule_reads_the_applications_own_table() {
    let table = format!("resee_test_payments_{}", std::process::id());
    let admin = scalar(&format!(
        "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (status text, created_at timestamptz DEFAULT now());
         INSERT INTO {table} (status) SELECT 'failed' FROM generate_series(1, 11);
         INSERT INTO {table} (status, created_at) SELECT 'failed', now() - interval '2 hours' FROM generate_series(1, 50);
         SELECT 1"
    ));
    admin.value().await.unwrap();
    let failed = PostgresScalarConfig::from_url(
        services::postgres().url(),
        format!("SELECT count(*) FROM {table} WHERE status = 'failed' AND created_at > now() - interval '1 hour'"),
    )
    .unwrap()
    .with_name("payment_failures")
    .build()
    .unwrap();
    let inbox = RecordingNotifier::new();
    let payment_rule = presets().remove(0).with_value(Measure::Last);
    let ev = RuleEvaluator::builder()
        .with_metric(PAYMENTS_SOURCE, failed)
        .with_rule(payment_rule)
        .with_notifier(Arc::new(inbox.clone()))
        .build()
        .unwrap();
    ev.evaluate().await;
    scalar(&format!("DROP TABLE {table}; SELECT 1")).value().await.unwrap();
    let state = &ev.states()[0];
    assert_eq!((state.state, state.value), (AlertState::Firing, Some(11.0)), "{state:?}");
}

#[tokio::test]
async fn a_server_that_never_answers_is_a_timeout_error_without_the_password() {
    let url = format!("postgres://app:{SECRET}@127.0.0.1:{}/app", hanging_port());
    let s = PostgresScalarConfig::from_url(url.as_str(), "SELECT 1")
        .unwrap()
        .with_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = s.value().await.unwrap_err();
    assert_between(started.elapsed(), Duration::from_millis(300), Duration::from_millis(1500));
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(err.message().contains("did not answer within 300ms"), "{err}");
    let text = format!("{err} {err:?} {s:?}");
    assert!(!text.contains(SECRET), "{text}");

    // Through a rule: an error reading that names the source, never the password.
    let url = format!("postgres://app:{SECRET}@127.0.0.1:{}/app", closed_port());
    let s = PostgresScalarConfig::from_url(url.as_str(), "SELECT 1").unwrap().with_name("payments_db").build().unwrap();
    let ev = RuleEvaluator::builder()
        .with_metric(PAYMENTS_SOURCE, s)
        .with_rule(presets().remove(0).with_value(Measure::Last))
        .build()
        .unwrap();
    ev.evaluate().await;
    let state = &ev.states()[0];
    let Reading::Error { message } = &state.reading else { panic!("{state:?}") };
    assert!(message.starts_with("source `payments_db`: unavailable: PostgreSQL at 127.0.0.1:"), "{message}");
    assert!(!serde_json::to_string(state).unwrap().contains(SECRET));
}
