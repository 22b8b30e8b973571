//! Snapshots of the JSON posted for each level, a recovery and the overrides.

use chrono::{DateTime, Utc};
use resee_ops_core::{Alert, Severity};
use resee_ops_slack::SlackNotifier;
use serde_json::Value;

fn at() -> DateTime<Utc> {
    DateTime::from_timestamp(1_760_497_200, 0).unwrap()
}

fn render(n: &SlackNotifier, alert: &Alert) -> Value {
    serde_json::from_str(&n.render(alert)).unwrap()
}

fn plain() -> SlackNotifier {
    SlackNotifier::builder().with_webhook_url("https://hooks.slack.com/services/T000/B000/XXXXXXXX").build().unwrap()
}

#[test]
fn error() {
    let alert = Alert::new("database_down", Severity::Error, "Database connection failed")
        .with_source("monitor")
        .with_label("database", "resee")
        .with_text("Connection to `db-1:5432` refused for 3 checks in a row.")
        .with_field("Host", "db-1")
        .with_field("Failures", "3")
        .with_field("Last error", "connection refused <os error 111>")
        .with_timestamp(at());
    insta::assert_json_snapshot!(render(&plain(), &alert));
}

#[test]
fn warning() {
    let alert = Alert::new("disk_usage", Severity::Warning, "Disk usage 85 %")
        .with_source("monitor")
        .with_label("path", "/var/lib/postgresql")
        .with_text("The data volume is filling up: R&D uploads > 10 GB/day.")
        .with_field("Used", "85 %")
        .with_field("Free", "15 GB")
        .with_timestamp(at());
    insta::assert_json_snapshot!(render(&plain(), &alert));
}

#[test]
fn info() {
    let alert = Alert::new("deploy", Severity::Info, "Deployed v1.4.2").with_source("ci").with_timestamp(at());
    insta::assert_json_snapshot!(render(&plain(), &alert));
}

#[test]
fn success() {
    let alert = Alert::new("backup_done", Severity::Success, "Backup completed")
        .with_source("backup")
        .with_label("database", "resee")
        .with_field("Size", "12.4 MB")
        .with_field("Duration", "8 s")
        .with_timestamp(at());
    insta::assert_json_snapshot!(render(&plain(), &alert));
}

#[test]
fn resolved() {
    let alert = Alert::new("database_down", Severity::Error, "Database connection failed")
        .with_source("monitor")
        .with_label("database", "resee")
        .with_timestamp(at())
        .resolved();
    insta::assert_json_snapshot!(render(&plain(), &alert));
}

#[test]
fn overrides() {
    let n = SlackNotifier::builder()
        .with_webhook_url("https://hooks.slack.com/services/T000/B000/XXXXXXXX")
        .with_username("resee-ops")
        .with_icon_emoji(":rotating_light:")
        .with_channel("#ops")
        .build()
        .unwrap();
    let alert = Alert::new("x", Severity::Info, "Hello").with_timestamp(at());
    insta::assert_json_snapshot!(render(&n, &alert));
}
