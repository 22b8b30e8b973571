//! Sends one test alert of each level (info, success, warning, error) to the Slack webhook in
//! `SLACK_WEBHOOK_URL` and prints what became of each.
//!
//! ```text
//! SLACK_WEBHOOK_URL=https://hooks.slack.com/services/... cargo run -p resee-ops-examples --example send_test_alert
//! ```
//!
//! Exits with status 1 if any alert was not delivered, 2 if the configuration is invalid. Without
//! `SLACK_WEBHOOK_URL` it says so and writes the alerts to the log instead (and exits 0). Optional:
//! `SLACK_USERNAME`, `SLACK_ICON_EMOJI`, `SLACK_ICON_URL`, `SLACK_CHANNEL`; `RUST_LOG` for more detail.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use resee_ops_core::{Alert, HealthProbe, LogNotifier, Notifier, NotifyOutcome, RetryPolicy, Severity};
use resee_ops_slack::{ENV_WEBHOOK_URL, SlackConfig, SlackNotifier};

#[tokio::main]
async fn main() -> ExitCode {
    resee_ops_examples::init_logging("info");

    let configured = std::env::var(ENV_WEBHOOK_URL).is_ok_and(|v| !v.trim().is_empty());
    let (notifier, probe): (Arc<dyn Notifier>, Option<Arc<dyn HealthProbe>>) = if configured {
        let slack = SlackConfig::from_env().and_then(|mut config| {
            // An interactive check: give up after half a minute rather than the default five.
            config.retry = RetryPolicy::default().with_deadline(Duration::from_secs(30));
            SlackNotifier::from_config(config)
        });
        match slack {
            Ok(slack) => {
                println!("sending 4 test alerts to the Slack webhook at {}", slack.webhook_host());
                let probe = Arc::new(slack.health_probe());
                (Arc::new(slack), Some(probe))
            }
            Err(err) => {
                eprintln!("error: {err}");
                return ExitCode::from(2);
            }
        }
    } else {
        println!("{ENV_WEBHOOK_URL} is not set: writing the test alerts to the log instead");
        (Arc::new(LogNotifier::new()), None)
    };

    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "this machine".to_owned());
    let mut undelivered = 0;
    for severity in Severity::ALL {
        let alert = Alert::new("resee_ops_test_alert", severity, format!("Test alert ({severity})"))
            .with_source("send_test_alert")
            .with_label("level", severity.as_str())
            .with_text("A test of the resee-ops alert path. Nothing is wrong; no action needed.")
            .with_field("Level", severity.as_str())
            .with_field("Sent from", host.as_str());
        let outcome = notifier.notify(&alert).await;
        println!("{:<8} {outcome}", severity.as_str());
        if !matches!(outcome, NotifyOutcome::Delivered) {
            undelivered += 1;
        }
    }

    if let Some(probe) = probe {
        let health = probe.check().await;
        println!("webhook health: {} ({})", health.status, health.output.unwrap_or_default());
    }
    if undelivered > 0 {
        eprintln!("{undelivered} of {} test alerts were not delivered", Severity::ALL.len());
        return ExitCode::FAILURE;
    }
    println!("all {} test alerts delivered", Severity::ALL.len());
    ExitCode::SUCCESS
}
