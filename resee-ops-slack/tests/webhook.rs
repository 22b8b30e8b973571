//! The Slack notifier against a real HTTP server on loopback (wiremock).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use resee_ops_core::testing::conformance;
use resee_ops_core::{
    Alert, DispatcherConfig, ErrorKind, HealthProbe, HealthStatus, Notifier, NotifierExt, NotifyOutcome, RetryPolicy,
    Severity,
};
use resee_ops_slack::{SlackError, SlackNotifier, SlackNotifierBuilder};
use serde_json::Value;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const TOKEN: &str = "s3cr3tT0k3nXYZ";
const WEBHOOK_PATH: &str = "/services/T0001/B0002/s3cr3tT0k3nXYZ";

fn webhook(server: &MockServer) -> String {
    format!("{}{WEBHOOK_PATH}", server.uri())
}

/// A builder for `server` with fast retries and no pacing, unless a test sets them.
fn builder(server: &MockServer) -> SlackNotifierBuilder {
    SlackNotifier::builder()
        .with_webhook_url(webhook(server))
        .with_timeout(Duration::from_secs(5))
        .with_retry(fast_retries(3))
        .with_pacing(Duration::ZERO, 1)
}

fn fast_retries(attempts: u32) -> RetryPolicy {
    RetryPolicy::default()
        .with_max_attempts(attempts)
        .with_initial_backoff(Duration::from_millis(10))
        .with_max_backoff(Duration::from_millis(40))
        .with_deadline(Duration::from_secs(10))
}

fn alert() -> Alert {
    Alert::new("database_down", Severity::Error, "Database connection failed")
        .with_source("monitor")
        .with_label("database", "resee")
        .with_text("connection refused")
        .with_field("Host", "db-1")
}

/// The error that carries Slack's answer: `err` itself, or (after core's retry wrapper gave up) its
/// source.
fn slack_answer(err: &resee_ops_core::Error) -> Option<&SlackError> {
    if err.status().is_some() {
        return Some(err);
    }
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        if let Some(e) = s.downcast_ref::<SlackError>()
            && e.status().is_some()
        {
            return Some(e);
        }
        source = s.source();
    }
    None
}

/// Checks a message against Slack's documented limits, as Slack would.
fn check_limits(body: &Value) -> Result<(), String> {
    let len = |v: &Value| v.as_str().map_or(0, |s| s.encode_utf16().count());
    let unescaped = |v: &Value| {
        let s = v.as_str().unwrap_or_default();
        s.match_indices('<').any(|(i, _)| !s[i..].starts_with("<!date^")) || s.contains('>') && !s.contains("<!date^")
    };
    let text = &body["text"];
    if len(text) == 0 || len(text) > 40_000 {
        return Err(format!("no_text or text too long ({})", len(text)));
    }
    if unescaped(text) {
        return Err("unescaped markup in text".into());
    }
    let top = body["blocks"].as_array().ok_or("no blocks")?;
    let attachment = body["attachments"].as_array().and_then(|a| a.first()).ok_or("no attachment")?;
    let inner = attachment["blocks"].as_array().ok_or("no attachment blocks")?;
    if top.len() + inner.len() > 50 {
        return Err("too many blocks".into());
    }
    for block in top.iter().chain(inner) {
        match block["type"].as_str() {
            Some("header") => {
                let t = &block["text"]["text"];
                if len(t) == 0 || len(t) > 150 || block["text"]["type"] != "plain_text" {
                    return Err(format!("bad header ({})", len(t)));
                }
            }
            Some("section") => {
                if let Some(fields) = block["fields"].as_array() {
                    if fields.is_empty() || fields.len() > 10 {
                        return Err(format!("{} fields in a section", fields.len()));
                    }
                    for f in fields {
                        if len(&f["text"]) == 0 || len(&f["text"]) > 2_000 {
                            return Err(format!("field text of {}", len(&f["text"])));
                        }
                    }
                } else {
                    let t = &block["text"]["text"];
                    if len(t) == 0 || len(t) > 3_000 || unescaped(t) {
                        return Err(format!("bad section text ({})", len(t)));
                    }
                }
            }
            Some("context") => {
                let elements = block["elements"].as_array().ok_or("context without elements")?;
                if elements.is_empty() || elements.len() > 10 {
                    return Err("context elements".into());
                }
                for e in elements {
                    if len(&e["text"]) == 0 || len(&e["text"]) > 3_000 {
                        return Err("context text".into());
                    }
                }
            }
            other => return Err(format!("unexpected block {other:?}")),
        }
    }
    Ok(())
}

/// A receiver that answers like Slack: `invalid_blocks` for a message over the limits, else `ok`; it
/// keeps every message and when it arrived.
#[derive(Clone, Default)]
struct SlackLike {
    received: Arc<Mutex<Vec<(Instant, Value)>>>,
}

impl SlackLike {
    async fn mount(&self, server: &MockServer) {
        Mock::given(method("POST"))
            .and(path(WEBHOOK_PATH))
            .and(header("content-type", "application/json; charset=utf-8"))
            .respond_with(self.clone())
            .mount(server)
            .await;
    }

    fn messages(&self) -> Vec<Value> {
        self.received.lock().unwrap().iter().map(|(_, v)| v.clone()).collect()
    }

    fn arrivals(&self) -> Vec<Instant> {
        self.received.lock().unwrap().iter().map(|(t, _)| *t).collect()
    }
}

impl Respond for SlackLike {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
            return ResponseTemplate::new(400).set_body_string("invalid_payload");
        };
        let verdict = check_limits(&body);
        self.received.lock().unwrap().push((Instant::now(), body));
        match verdict {
            Ok(()) => ResponseTemplate::new(200).set_body_string("ok"),
            Err(why) => ResponseTemplate::new(400).set_body_string(format!("invalid_blocks\n{why}")),
        }
    }
}

#[tokio::test]
async fn delivers_a_well_formed_message() {
    let server = MockServer::start().await;
    let slack = SlackLike::default();
    slack.mount(&server).await;
    let n = builder(&server).with_username("resee-ops").with_icon_emoji(":rotating_light:").build().unwrap();
    let outcome = n.notify(&alert()).await;
    assert!(matches!(outcome, NotifyOutcome::Delivered), "{outcome}");
    let messages = slack.messages();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(m["text"], "🔴 [ERROR] Database connection failed\nconnection refused");
    assert_eq!(m["username"], "resee-ops");
    assert_eq!(m["icon_emoji"], ":rotating_light:");
    assert_eq!(m["attachments"][0]["color"], "#E01E5A");
}

#[tokio::test]
async fn every_status_is_classified() {
    // (status, body, outcome, error kind, requests made with 3 attempts allowed)
    type Case = (u16, &'static str, &'static str, ErrorKind, u64);
    let cases: &[Case] = &[
        (400, "invalid_payload", "permanent_failure", ErrorKind::InvalidInput, 1),
        (400, "no_text", "permanent_failure", ErrorKind::InvalidInput, 1),
        (400, "invalid_blocks", "permanent_failure", ErrorKind::InvalidInput, 1),
        (403, "action_prohibited", "permanent_failure", ErrorKind::PermissionDenied, 1),
        (403, "invalid_token", "permanent_failure", ErrorKind::PermissionDenied, 1),
        (404, "channel_not_found", "permanent_failure", ErrorKind::NotFound, 1),
        (404, "no_service", "permanent_failure", ErrorKind::NotFound, 1),
        (410, "channel_is_archived", "permanent_failure", ErrorKind::NotFound, 1),
        (200, "not ok", "permanent_failure", ErrorKind::Unexpected, 1),
        (500, "", "temporary_failure", ErrorKind::Unavailable, 3),
        (502, "bad gateway", "temporary_failure", ErrorKind::Unavailable, 3),
        (503, "", "temporary_failure", ErrorKind::Unavailable, 3),
        (429, "rate_limited", "rate_limited", ErrorKind::RateLimited, 3),
    ];
    for &(status, body, outcome_name, core_kind, requests) in cases {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(status).set_body_string(body))
            .expect(requests)
            .mount(&server)
            .await;
        let n = builder(&server).build().unwrap();
        let probe = n.health_probe();
        let outcome = n.notify(&alert()).await;
        assert_eq!(outcome.as_str(), outcome_name, "{status} {body}: {outcome}");
        // Giving up keeps the receiver's last answer: an exhausted 429 stays `RateLimited`, which carries
        // no error; every other failure keeps Slack's own status and error string.
        if core_kind != ErrorKind::RateLimited {
            let err = outcome.error().unwrap();
            assert_eq!(err.kind(), core_kind, "{status} {body}: {err}");
            let answer = slack_answer(err).unwrap_or_else(|| panic!("{status} {body}: {err:?}"));
            assert_eq!(answer.status(), Some(status), "{err:?}");
            assert!(
                err.to_string().contains(&format!("HTTP {status}"))
                    || answer.to_string().contains(&format!("HTTP {status}")),
                "{err}"
            );
            if !body.is_empty() {
                assert_eq!(answer.code(), Some(body), "Slack's error string is kept: {err:?}");
            }
        }
        let health = probe.check().await;
        let expected = if outcome_name == "permanent_failure" { HealthStatus::Down } else { HealthStatus::Degraded };
        assert_eq!(health.status, expected, "{status} {body}");
        server.verify().await;
    }
}

#[tokio::test]
async fn a_temporary_failure_is_retried_until_delivered() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .with_priority(1)
        .expect(2)
        .mount(&server)
        .await;
    let slack = SlackLike::default();
    slack.mount(&server).await;
    let n = builder(&server).build().unwrap();
    assert!(matches!(n.notify(&alert()).await, NotifyOutcome::Delivered));
    assert_eq!(slack.messages().len(), 1);
}

#[tokio::test]
async fn retry_after_is_waited_for_over_http() {
    // The exact timing is checked with paused time in the unit tests; here the real header is parsed and a
    // real second passes.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1").set_body_string("rate_limited"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    let slack = SlackLike::default();
    slack.mount(&server).await;
    let n = builder(&server).build().unwrap();
    let started = Instant::now();
    let outcome = n.notify(&alert()).await;
    assert!(matches!(outcome, NotifyOutcome::Delivered), "{outcome}");
    let arrivals = slack.arrivals();
    assert_eq!(arrivals.len(), 1);
    assert!(arrivals[0] - started >= Duration::from_secs(1), "waited for Retry-After: {:?}", arrivals[0] - started);
}

#[tokio::test]
async fn a_timeout_is_a_temporary_failure() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok").set_delay(Duration::from_secs(3)))
        .expect(2)
        .mount(&server)
        .await;
    let n = builder(&server).with_timeout(Duration::from_millis(200)).with_retry(fast_retries(2)).build().unwrap();
    let outcome = n.notify(&alert()).await;
    assert!(matches!(&outcome, NotifyOutcome::TemporaryFailure(e) if e.kind() == ErrorKind::Timeout), "{outcome}");
    assert!(outcome.to_string().contains("no answer within the timeout"), "{outcome}");
}

#[tokio::test]
async fn a_refused_connection_is_a_temporary_failure() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let n = SlackNotifier::builder()
        .with_webhook_url(format!("http://127.0.0.1:{port}{WEBHOOK_PATH}"))
        .with_retry(fast_retries(2))
        .build()
        .unwrap();
    let outcome = n.notify(&alert()).await;
    assert!(matches!(&outcome, NotifyOutcome::TemporaryFailure(e) if e.kind() == ErrorKind::Unavailable), "{outcome}");
    assert!(!outcome.to_string().contains(TOKEN));
}

#[tokio::test]
async fn a_burst_of_100_alerts_is_paced_over_http() {
    let server = MockServer::start().await;
    let slack = SlackLike::default();
    slack.mount(&server).await;
    let interval = Duration::from_millis(20);
    let n = builder(&server).with_pacing(interval, 3).build().unwrap();
    let started = Instant::now();
    let sends = (0..100).map(|i| {
        let n = n.clone();
        async move { n.notify(&Alert::new("storm", Severity::Warning, format!("Alert {i}"))).await }
    });
    for outcome in futures_util::future::join_all(sends).await {
        assert!(matches!(outcome, NotifyOutcome::Delivered), "{outcome}");
    }
    let mut arrivals = slack.arrivals();
    arrivals.sort();
    assert_eq!(arrivals.len(), 100);
    // After a burst of 3, one per interval: the last leaves 97 intervals after the first.
    let span = *arrivals.last().unwrap() - started;
    assert!(span >= interval * 97, "100 alerts went out in {span:?}");
}

#[tokio::test]
async fn a_100_way_concurrent_send_delivers_each_once() {
    let server = MockServer::start().await;
    let slack = SlackLike::default();
    slack.mount(&server).await;
    let n = builder(&server).build().unwrap();
    let sends = (0..100).map(|i| {
        let n = n.clone();
        async move { n.notify(&Alert::new("concurrent", Severity::Info, format!("Alert {i}"))).await }
    });
    let outcomes = futures_util::future::join_all(sends).await;
    assert!(outcomes.iter().all(|o| matches!(o, NotifyOutcome::Delivered)));
    let mut titles: Vec<String> =
        slack.messages().iter().map(|m| m["blocks"][0]["text"]["text"].as_str().unwrap().to_owned()).collect();
    titles.sort();
    titles.dedup();
    assert_eq!(titles.len(), 100);
}

#[tokio::test]
async fn huge_alerts_are_fitted_to_slack_limits() {
    let server = MockServer::start().await;
    let slack = SlackLike::default();
    slack.mount(&server).await;
    let n = builder(&server).build().unwrap();
    let mut huge = Alert::new("huge", Severity::Warning, "<&>".repeat(200))
        .with_source("s".repeat(10_000))
        .with_text("a < b & c > d ".repeat(20_000))
        .with_label("k".repeat(3_000), "v".repeat(3_000));
    for i in 0..600 {
        huge = huge.with_field(format!("field {i} {}", "n".repeat(500)), "🔥".repeat(3_000));
    }
    let outcome = n.notify(&huge).await;
    assert!(matches!(outcome, NotifyOutcome::Delivered), "{outcome}");
    let m = &slack.messages()[0];
    let inner = m["attachments"][0]["blocks"].as_array().unwrap();
    assert_eq!(inner.len(), 49, "text, 46 field sections, a note, the context: 50 with the header");
    assert!(m["text"].as_str().unwrap().ends_with("… [truncated]"), "visible truncation");
    assert!(inner[0]["text"]["text"].as_str().unwrap().ends_with("… [truncated]"));
    assert!(m["blocks"][0]["text"]["text"].as_str().unwrap().ends_with("… [truncated]"));
    assert_eq!(inner[47]["elements"][0]["text"], "… 140 more fields not shown");

    // And the smallest alert is still a valid message.
    assert!(matches!(n.notify(&Alert::new("", Severity::Info, "")).await, NotifyOutcome::Delivered));
    assert_eq!(slack.messages()[1]["blocks"][0]["text"]["text"], "ℹ️ Untitled alert");
}

#[tokio::test]
async fn passes_the_core_notifier_conformance_suite() {
    let server = MockServer::start().await;
    let slack = SlackLike::default();
    slack.mount(&server).await;
    let n = builder(&server).build().unwrap();
    let report = conformance::notifier(&n, &[TOKEN, WEBHOOK_PATH]).await;
    assert_eq!(slack.messages().len(), report.sent, "every alert reached the receiver once");
}

#[tokio::test]
async fn fifty_identical_alerts_send_one_message_and_one_recovery() {
    let server = MockServer::start().await;
    let slack = SlackLike::default();
    slack.mount(&server).await;
    let alerts = builder(&server)
        .build()
        .unwrap()
        .throttled(Duration::from_secs(600))
        .dispatched(DispatcherConfig::default().with_concurrency(4));
    for _ in 0..50 {
        assert!(matches!(alerts.notify(&alert()).await, NotifyOutcome::Queued));
    }
    alerts.flush().await;
    assert!(matches!(alerts.notify(&alert().resolved()).await, NotifyOutcome::Queued));
    alerts.shutdown(Duration::from_secs(10)).await;
    let stats = alerts.stats();
    assert_eq!((stats.delivered, stats.suppressed, stats.dropped()), (2, 49, 0), "{stats:?}");
    let messages = slack.messages();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["blocks"][0]["text"]["text"], "🔴 Database connection failed");
    assert_eq!(messages[1]["blocks"][0]["text"]["text"], "✅ Recovered: Database connection failed");
    assert_eq!(messages[1]["attachments"][0]["color"], "#2EB67D");
}

#[tokio::test]
async fn the_probe_goes_down_on_a_rejected_webhook_and_up_after_a_success() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(410).set_body_string("channel_is_archived"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    SlackLike::default().mount(&server).await;
    let n = builder(&server).build().unwrap();
    let probe = n.health_probe();
    assert!(matches!(n.notify(&alert()).await, NotifyOutcome::PermanentFailure(_)));
    let down = probe.check().await;
    assert_eq!(down.status, HealthStatus::Down);
    assert!(down.output.unwrap().contains("channel_is_archived"));
    assert!(matches!(n.notify(&alert()).await, NotifyOutcome::Delivered));
    assert_eq!(probe.check().await.status, HealthStatus::Up);
}

/// A `MakeWriter` into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn the_webhook_url_never_leaks() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = MockServer::start().await;
    let secrets = [TOKEN, WEBHOOK_PATH];
    let mut shown: Vec<String> = Vec::new();
    let mut show = |what: &str, text: String| shown.push(format!("{what}: {text}"));

    // A relay that echoes the URL it was called with, in every answer that matters.
    let echo = format!("invalid_token for {}", webhook(&server));
    for (status, body) in [(403, echo.as_str()), (500, echo.as_str()), (429, "rate_limited"), (200, echo.as_str())] {
        server.reset().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(status).set_body_string(body))
            .mount(&server)
            .await;
        let n = builder(&server).with_retry(fast_retries(2)).build().unwrap();
        show("notifier debug", format!("{n:?}"));
        let outcome = n.notify(&alert()).await;
        show("outcome", format!("{outcome} {outcome:?}"));
        show("probe", format!("{:?}", n.health_probe().check().await));
        show("probe debug", format!("{:?}", n.health_probe()));
    }
    server.reset().await;
    SlackLike::default().mount(&server).await;
    let n = builder(&server).build().unwrap();
    show("delivered", format!("{}", n.notify(&alert()).await));
    show("config", format!("{:?}", n.config()));
    show("webhook", format!("{} {:?}", n.config().webhook_url, n.config().webhook_url));

    // Transport errors: refused connection and timeout.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let refused = SlackNotifier::builder()
        .with_webhook_url(format!("http://127.0.0.1:{port}{WEBHOOK_PATH}"))
        .with_retry(fast_retries(1))
        .build()
        .unwrap();
    show("refused", format!("{:?}", refused.notify(&alert()).await));
    server.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(2)))
        .mount(&server)
        .await;
    let slow = builder(&server).with_timeout(Duration::from_millis(100)).with_retry(fast_retries(1)).build().unwrap();
    show("timeout", format!("{:?}", slow.notify(&alert()).await));

    // Configuration errors, the builder, and the panic an `unwrap` would print.
    let bad = format!("http://hooks.example.com{WEBHOOK_PATH}");
    let builder_with_bad = SlackNotifier::builder().with_webhook_url(&bad);
    show("builder debug", format!("{builder_with_bad:?}"));
    let err: SlackError = builder_with_bad.build().unwrap_err();
    show("config error", format!("{err} {err:?}"));
    show("core error", format!("{err:#}"));
    let panic =
        std::panic::catch_unwind(|| SlackNotifier::builder().with_webhook_url(&bad).build().expect("slack notifier"))
            .unwrap_err();
    show("panic", panic.downcast_ref::<String>().cloned().unwrap_or_default());
    let ok_builder = SlackNotifier::builder().with_webhook_url(webhook(&server));
    show("builder debug", format!("{ok_builder:?}"));

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("slack did not accept the message"), "the failures were logged: {logs}");
    assert!(logs.contains("127.0.0.1"), "the host is fine to log");
    for secret in secrets {
        assert!(!logs.contains(secret), "the tracing output contains the webhook secret:\n{logs}");
        for s in &shown {
            assert!(!s.contains(secret), "{s}");
        }
    }
    assert!(shown.iter().any(|s| s.contains("invalid_token for [redacted]")), "echo kept, URL scrubbed: {shown:?}");
}
