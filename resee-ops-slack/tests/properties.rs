//! Property tests (proptest): no configuration or duration makes the Slack notifier panic, and no webhook
//! secret shows in an error. The webhook is a loopback port that refuses (port 1).

use proptest::prelude::*;
use resee_ops_core::{Alert, Notifier, RetryPolicy, Severity};
use resee_ops_slack::{SlackConfig, SlackNotifier, WebhookUrl};

#[path = "../../resee-ops-core/tests/support/arbitrary.rs"]
mod arbitrary;
use arbitrary::{config_value, duration, parse};

const REFUSED: &str = "http://127.0.0.1:1/services/T000/B000/s3cr3tT0k3n";

fn paused<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap().block_on(f)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Arbitrary JSON and TOML into `SlackConfig` and `WebhookUrl`: an error or a value, never a panic,
    /// and an error never repeats the webhook's secret path; a configuration that parses builds a notifier
    /// that renders an alert.
    #[test]
    fn slack_configs_never_panic(
        config in config_value(&serde_json::to_value(serde_json::json!({
            "webhook_url": REFUSED, "username": "ops", "icon_emoji": ":fire:", "icon_url": "https://x/i.png",
            "channel": "#ops", "timeout": "10s", "retry": RetryPolicy::default(), "pacing_interval": "1s",
            "pacing_burst": 3,
        })).unwrap()),
        path in "/services/[A-Za-z0-9]{4}/[A-Za-z0-9]{4}/[A-Za-z0-9]{12}",
        scheme in prop::sample::select(vec!["https://", "http://", "ftp://", "", "https://user:pw@"]),
        host in "[a-z0-9.:\\[\\]-]{0,20}",
    ) {
        if let Some(config) = parse::<SlackConfig>(&config)
            && let Ok(notifier) = SlackNotifier::from_config(config)
        {
            let _ = notifier.render(&Alert::new("x", Severity::Error, "hi"));
        }
        let secret = &path[path.len() - 12..];
        match WebhookUrl::new(format!("{scheme}{host}{path}")) {
            Ok(url) => {
                let shown = format!("{url} {url:?}");
                prop_assert!(!shown.contains(secret), "{}", shown);
            }
            Err(err) => {
                let shown = format!("{err} {err:?}");
                prop_assert!(!shown.contains(secret), "{}", shown);
            }
        }
    }

    /// The builder's timeout, pacing and retry durations, fed zero, `Duration::MAX` and arbitrary values,
    /// then used for two messages: an outcome, never a panic.
    #[test]
    fn slack_durations_never_panic(a in duration(), b in duration(), c in duration(), burst in 0u32..5) {
        let built = SlackNotifier::builder()
            .with_webhook_url(REFUSED)
            .with_timeout(a)
            .with_pacing(b, burst)
            .with_retry(RetryPolicy::default().with_max_attempts(2).with_initial_backoff(c).with_max_retry_after(c).with_deadline(a))
            .build();
        if let Ok(notifier) = built {
            paused(async {
                let _ = notifier.notify(&Alert::new("x", Severity::Error, "one")).await;
                let _ = notifier.notify(&Alert::new("y", Severity::Error, "two")).await;
            });
        }
    }
}
