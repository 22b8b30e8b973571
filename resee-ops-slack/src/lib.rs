//! Slack alerts for **resee-ops**: a [`Notifier`](resee_ops_core::Notifier) that posts to a Slack incoming
//! webhook, and that an on-call engineer can rely on.
//!
//! - **Never loses an alert quietly.** A 429 waits for `Retry-After` (capped) and retries; 5xx answers,
//!   timeouts and connection errors retry with jittered exponential backoff within a deadline. Slack's
//!   refusals (`invalid_payload`, `invalid_token`, `channel_not_found`, `channel_is_archived`,
//!   `no_service`, …) are permanent failures carrying Slack's error string, and turn the notifier's
//!   [`health_probe`](SlackNotifier::health_probe) `Down` until a message gets through again.
//! - **Never trips Slack's limits.** Messages are paced to about one per second per webhook after a burst of
//!   three; every text is fitted to Slack's limits by visible truncation (text 40,000, section 3,000, header
//!   150, 10 fields per section, 50 blocks), and `&`, `<`, `>` are escaped.
//! - **Never leaks the webhook.** The URL is a [`WebhookUrl`] whose `Debug`/`Display` show the host only;
//!   no log line, error or panic message of this crate contains it.
//!
//! # Sending alerts
//!
//! ```
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! use std::time::Duration;
//! use resee_ops_core::{Alert, DispatcherConfig, Notifier, NotifierExt, Severity};
//! use resee_ops_slack::SlackNotifier;
//! # use wiremock::{Mock, MockServer, ResponseTemplate, matchers::method};
//! # let slack = MockServer::start().await;
//! # Mock::given(method("POST")).respond_with(ResponseTemplate::new(200).set_body_string("ok")).mount(&slack).await;
//! # let webhook_url = format!("{}/services/T000/B000/XXXXXXXX", slack.uri());
//!
//! // In production, `SlackNotifier::from_env()` reads SLACK_WEBHOOK_URL.
//! let slack_notifier = SlackNotifier::builder().with_webhook_url(&webhook_url).build()?;
//! let probe = slack_notifier.health_probe(); // register it with the health registry
//!
//! let alerts = slack_notifier
//!     .throttled(Duration::from_secs(600)) // the same alert at most once per 10 minutes
//!     .dispatched(DispatcherConfig::default()); // callers never wait for Slack
//!
//! let alert = Alert::new("backup_failed", Severity::Error, "Backup failed")
//!     .with_source("backup")
//!     .with_label("database", "resee")
//!     .with_text("pg_dump exited with status 1")
//!     .with_field("Duration", "12 s");
//! assert!(alerts.notify(&alert).await.is_ok()); // queued at once
//! assert!(alerts.notify(&alert).await.is_ok()); // queued, then suppressed by the throttle
//!
//! alerts.shutdown(Duration::from_secs(10)).await;
//! assert_eq!(alerts.stats().delivered, 1);
//! assert_eq!(alerts.stats().suppressed, 1);
//! # let _ = probe;
//! # Ok::<(), resee_ops_slack::SlackError>(())
//! # }).unwrap();
//! ```
//!
//! # The message
//!
//! A fallback `text` (used by notifications), a header with the level's emoji (🔴 error, ⚠️ warning,
//! ✅ success, ℹ️ info) and the title — "Recovered: …" for resolved alerts — then an attachment coloured by
//! level holding the text, the fields in two columns, and a context line with level, source, time (shown
//! in the reader's time zone), labels and alert name. [`SlackNotifier::render`] returns the JSON.
//!
//! # Configuration
//!
//! [`SlackNotifier::builder`], [`SlackNotifier::from_env`] (`SLACK_WEBHOOK_URL`, optional
//! `SLACK_USERNAME`, `SLACK_ICON_EMOJI`, `SLACK_ICON_URL`, `SLACK_CHANNEL`) or a deserialized
//! [`SlackConfig`]. Plain `http` webhook URLs are accepted for loopback hosts only.

// The README's snippets are compiled (and run) as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod readme_doctests {}

mod config;
mod error;
mod notifier;
mod pacing;
pub mod prelude;
mod render;
mod transport;
mod webhook;

pub use config::{
    DEFAULT_PACING_BURST, DEFAULT_PACING_INTERVAL, DEFAULT_TIMEOUT, ENV_CHANNEL, ENV_ICON_EMOJI, ENV_ICON_URL,
    ENV_USERNAME, ENV_WEBHOOK_URL, SlackConfig, SlackNotifierBuilder,
};
pub use error::SlackError;
pub use notifier::{SlackHealthProbe, SlackNotifier};
pub use webhook::WebhookUrl;
