//! One HTTP POST to the webhook, and what Slack's answer means.

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;

use resee_ops_core::ErrorKind;

use crate::error::{SlackError, cap_chars, config, scrub};
use crate::webhook::WebhookUrl;

/// Slack's answer, reduced to what decides the outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) retry_after: Option<Duration>,
    /// The start of the body (at most [`BODY_CAP`] bytes), lossily decoded.
    pub(crate) body: String,
}

/// How much of a response body is read: Slack's answers are a word or two.
pub(crate) const BODY_CAP: usize = 1024;

/// Posts a rendered message. The real one is [`HttpTransport`]; tests substitute a scripted one to drive
/// retries and pacing with paused time.
#[async_trait]
pub(crate) trait Transport: Send + Sync + Debug + 'static {
    async fn post(&self, body: Vec<u8>) -> Result<Answer, SlackError>;
}

/// The reqwest client and the webhook it posts to.
pub(crate) struct HttpTransport {
    client: reqwest::Client,
    webhook: WebhookUrl,
}

impl Debug for HttpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTransport").field("webhook", &self.webhook).finish_non_exhaustive()
    }
}

impl HttpTransport {
    pub(crate) fn new(webhook: WebhookUrl, timeout: Duration) -> Result<Self, SlackError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            // A webhook never redirects; following one could hand the message to someone else.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("resee-ops-slack/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                config(format!("cannot build the HTTP client: {}", scrub(&chain(&e.without_url()), &webhook.secrets())))
            })?;
        Ok(Self { client, webhook })
    }

    fn transport_error(&self, err: reqwest::Error) -> SlackError {
        let kind = if err.is_timeout() { ErrorKind::Timeout } else { ErrorKind::Unavailable };
        let what = if err.is_timeout() { "no answer within the timeout" } else { "request failed" };
        let detail = scrub(&chain(&err.without_url()), &self.webhook.secrets());
        SlackError::new(kind, format!("{what}: {detail}"))
    }
}

/// An error and its sources on one line.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[async_trait]
impl Transport for HttpTransport {
    async fn post(&self, body: Vec<u8>) -> Result<Answer, SlackError> {
        let mut response = self
            .client
            .post(self.webhook.url().clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json; charset=utf-8")
            .body(body)
            .send()
            .await
            .map_err(|e| self.transport_error(e))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let mut bytes = Vec::new();
        while bytes.len() < BODY_CAP {
            match response.chunk().await {
                Ok(Some(chunk)) => bytes.extend_from_slice(&chunk[..chunk.len().min(BODY_CAP - bytes.len())]),
                Ok(None) => break,
                // The status is what matters; a body cut short still leaves it.
                Err(err) if status != 200 => {
                    tracing::debug!(target: "resee_ops::slack", error = %self.transport_error(err), "could not read slack's answer");
                    break;
                }
                Err(err) => return Err(self.transport_error(err)),
            }
        }
        let body = scrub(&String::from_utf8_lossy(&bytes), &self.webhook.secrets());
        Ok(Answer { status, retry_after, body })
    }
}

/// What Slack's answer means: `Ok` only for HTTP 200 with body `ok`.
pub(crate) fn classify(answer: &Answer) -> Result<(), SlackError> {
    let body = answer.body.trim();
    if answer.status == 200 && body == "ok" {
        return Ok(());
    }
    // Slack's error is the body's first word (`invalid_blocks`); a relay may send something longer.
    let slack_error = body.lines().next().map(|l| cap_chars(l.trim(), 200)).filter(|s| !s.is_empty());
    let status = answer.status;
    let (kind, message) = match (status, body) {
        (_, "no_service") => (ErrorKind::NotFound, "the webhook is disabled or was removed"),
        (_, "channel_not_found") => (ErrorKind::NotFound, "the webhook's channel does not exist"),
        (_, "channel_is_archived") => (ErrorKind::NotFound, "the webhook's channel is archived"),
        (_, "invalid_token" | "action_prohibited" | "posting_to_general_channel_denied") => {
            (ErrorKind::PermissionDenied, "slack refused the webhook")
        }
        (429, _) => (ErrorKind::RateLimited, "slack asked us to slow down"),
        (408, _) => (ErrorKind::Timeout, "the webhook timed out"),
        (500..=599, _) => (ErrorKind::Unavailable, "slack is failing"),
        (400, _) => (ErrorKind::InvalidInput, "slack rejected the message"),
        (401 | 403, _) => (ErrorKind::PermissionDenied, "slack refused the webhook"),
        (404, _) => (ErrorKind::NotFound, "the webhook's channel does not exist"),
        (410, _) => (ErrorKind::NotFound, "the webhook's channel is archived"),
        // Permanent: a message that may have been posted is not posted twice.
        _ => (ErrorKind::Unexpected, "unexpected answer from the webhook"),
    };
    let mut err = SlackError::new(kind, message).with_status(status);
    if let Some(code) = slack_error {
        err = err.with_code(code);
    }
    if let Some(wait) = answer.retry_after {
        err = err.with_retry_after(wait);
    }
    Err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Answer {
        Answer { status, retry_after: None, body: body.into() }
    }

    #[test]
    fn classification_table() {
        assert!(classify(&answer(200, "ok")).is_ok());
        assert!(classify(&answer(200, "ok\n")).is_ok());
        let cases = [
            (200, "", ErrorKind::Unexpected),
            (200, "<html>captive portal</html>", ErrorKind::Unexpected),
            (204, "", ErrorKind::Unexpected),
            (302, "", ErrorKind::Unexpected),
            (400, "invalid_payload", ErrorKind::InvalidInput),
            (400, "no_text", ErrorKind::InvalidInput),
            (400, "invalid_blocks", ErrorKind::InvalidInput),
            (403, "action_prohibited", ErrorKind::PermissionDenied),
            (403, "invalid_token", ErrorKind::PermissionDenied),
            (404, "channel_not_found", ErrorKind::NotFound),
            (404, "no_service", ErrorKind::NotFound),
            (410, "channel_is_archived", ErrorKind::NotFound),
            (410, "no_service", ErrorKind::NotFound),
            (408, "", ErrorKind::Timeout),
            (429, "rate_limited", ErrorKind::RateLimited),
            (500, "", ErrorKind::Unavailable),
            (503, "service unavailable", ErrorKind::Unavailable),
            (418, "teapot", ErrorKind::Unexpected),
        ];
        for (status, body, kind) in cases {
            let err = classify(&answer(status, body)).unwrap_err();
            assert_eq!(err.kind(), kind, "{status} {body}");
            assert_eq!(err.status(), Some(status));
            assert_eq!(err.code(), (!body.is_empty()).then_some(body), "{status} {body}");
        }
    }
}
