//! The one error type of this crate: [`SlackError`], with a [`SlackErrorKind`].

use std::fmt;
use std::time::Duration;

use resee_ops_core::ErrorKind;

/// What went wrong talking to Slack, in terms an operator can act on.
///
/// The list may grow, so match with a wildcard arm.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SlackErrorKind {
    /// The configuration is missing or malformed (a bad webhook URL, an unset `SLACK_WEBHOOK_URL`, an
    /// invalid override). Fix the configuration; retrying will not help.
    InvalidConfig,
    /// Slack answered 429: too many messages. Temporary; see [`SlackError::retry_after`].
    RateLimited,
    /// Slack (or a relay) answered with a 5xx status. Temporary.
    ServerError,
    /// The request did not complete within the configured timeout. Temporary.
    Timeout,
    /// The webhook host could not be reached (DNS, refused or reset connection, TLS). Temporary.
    Connection,
    /// Slack refused the message itself (HTTP 400: `invalid_payload`, `no_text`, `invalid_blocks`, …).
    /// Permanent.
    InvalidPayload,
    /// Slack refused the webhook (HTTP 403: `action_prohibited`, `invalid_token`). Permanent.
    Forbidden,
    /// The webhook's channel does not exist (HTTP 404 `channel_not_found`). Permanent.
    ChannelNotFound,
    /// The webhook's channel is archived (HTTP 410 `channel_is_archived`). Permanent.
    ChannelArchived,
    /// The webhook was disabled or removed (`no_service`). Permanent.
    NoService,
    /// Any other answer: an unexpected status, or a 2xx whose body is not `ok`. Permanent, so that a message
    /// that may have been posted is not posted twice.
    UnexpectedResponse,
}

impl SlackErrorKind {
    /// Whether errors of this kind are worth retrying.
    pub const fn is_temporary(self) -> bool {
        matches!(self, Self::RateLimited | Self::ServerError | Self::Timeout | Self::Connection)
    }

    /// A short, stable, snake_case name for logs and metrics labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidConfig => "invalid_config",
            Self::RateLimited => "rate_limited",
            Self::ServerError => "server_error",
            Self::Timeout => "timeout",
            Self::Connection => "connection",
            Self::InvalidPayload => "invalid_payload",
            Self::Forbidden => "forbidden",
            Self::ChannelNotFound => "channel_not_found",
            Self::ChannelArchived => "channel_archived",
            Self::NoService => "no_service",
            Self::UnexpectedResponse => "unexpected_response",
        }
    }

    /// The matching kind of the core error.
    pub const fn core_kind(self) -> ErrorKind {
        match self {
            Self::InvalidConfig => ErrorKind::InvalidConfig,
            Self::RateLimited => ErrorKind::RateLimited,
            Self::ServerError | Self::Connection => ErrorKind::Unavailable,
            Self::Timeout => ErrorKind::Timeout,
            Self::InvalidPayload => ErrorKind::InvalidInput,
            Self::Forbidden => ErrorKind::PermissionDenied,
            Self::ChannelNotFound | Self::ChannelArchived | Self::NoService => ErrorKind::NotFound,
            Self::UnexpectedResponse => ErrorKind::Unexpected,
        }
    }
}

impl fmt::Display for SlackErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of `resee-ops-slack`.
///
/// It says what went wrong ([`kind`](Self::kind)), whether retrying may help
/// ([`is_temporary`](Self::is_temporary)), and, for answers from Slack, the HTTP status and Slack's own
/// error string (`invalid_blocks`, `channel_is_archived`, …). Its `Display` and `Debug` never contain the
/// webhook URL: HTTP client errors are rendered without their URL and scrubbed before they are stored.
/// It converts into [`resee_ops_core::Error`], and stays reachable there as its
/// [`source`](std::error::Error::source).
///
/// ```
/// use resee_ops_slack::{SlackErrorKind, WebhookUrl};
///
/// let err = WebhookUrl::new("http://hooks.slack.com/services/T0/B0/secret").unwrap_err();
/// assert_eq!(err.kind(), SlackErrorKind::InvalidConfig);
/// assert!(!err.is_temporary());
/// assert!(!err.to_string().contains("secret"));
///
/// let core: resee_ops_core::Error = err.into();
/// assert_eq!(core.kind(), resee_ops_core::ErrorKind::InvalidConfig);
/// ```
#[derive(Clone)]
pub struct SlackError {
    kind: SlackErrorKind,
    message: String,
    status: Option<u16>,
    slack_error: Option<String>,
    retry_after: Option<Duration>,
}

impl SlackError {
    pub(crate) fn new(kind: SlackErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), status: None, slack_error: None, retry_after: None }
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Self::new(SlackErrorKind::InvalidConfig, message)
    }

    pub(crate) fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    pub(crate) fn with_slack_error(mut self, slack_error: Option<String>) -> Self {
        self.slack_error = slack_error.filter(|s| !s.is_empty());
        self
    }

    pub(crate) fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> SlackErrorKind {
        self.kind
    }

    /// Whether sending the same message again later may succeed.
    pub fn is_temporary(&self) -> bool {
        self.kind.is_temporary()
    }

    /// The HTTP status Slack answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// Slack's error string (`invalid_payload`, `channel_not_found`, …), if it sent one. Capped at 200
    /// characters, control characters removed.
    pub fn slack_error(&self) -> Option<&str> {
        self.slack_error.as_deref()
    }

    /// How long Slack asked us to wait (the `Retry-After` of a 429), if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The message, without the kind, status and Slack error that `Display` adds.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for SlackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "slack: {}", self.message)?;
        match (self.status, &self.slack_error) {
            (Some(status), Some(e)) => write!(f, " (HTTP {status}: {e})"),
            (Some(status), None) => write!(f, " (HTTP {status})"),
            (None, Some(e)) => write!(f, " ({e})"),
            (None, None) => Ok(()),
        }
    }
}

impl fmt::Debug for SlackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlackError")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("status", &self.status)
            .field("slack_error", &self.slack_error)
            .field("retry_after", &self.retry_after)
            .finish()
    }
}

impl std::error::Error for SlackError {}

impl From<SlackError> for resee_ops_core::Error {
    fn from(err: SlackError) -> Self {
        let e = resee_ops_core::Error::new(err.kind.core_kind(), err.to_string());
        let e = if err.is_temporary() { e.temporary() } else { e.permanent() };
        // Kept as the source, so callers can downcast to read the Slack kind, status and error string.
        e.with_source(err)
    }
}

/// Makes an error text from a third-party error safe to keep: the whole source chain on one line, with
/// every occurrence of `secrets` replaced, control characters removed, and capped in length.
pub(crate) fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(secret, "[redacted]");
    }
    let out: String = out.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    cap_chars(out.trim(), 300)
}

/// The first `max` characters of `s`, with `…` when cut.
pub(crate) fn cap_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_core_and_temporariness() {
        let e = SlackError::new(SlackErrorKind::ServerError, "slack answered 503").with_status(503);
        assert!(e.is_temporary());
        assert_eq!(e.to_string(), "slack: slack answered 503 (HTTP 503)");
        let core: resee_ops_core::Error = e.into();
        assert_eq!(core.kind(), ErrorKind::Unavailable);
        assert!(core.is_temporary());

        let e = SlackError::new(SlackErrorKind::ChannelArchived, "rejected")
            .with_status(410)
            .with_slack_error(Some("channel_is_archived".into()));
        assert!(!e.is_temporary());
        assert_eq!(e.slack_error(), Some("channel_is_archived"));
        let core: resee_ops_core::Error = e.into();
        assert_eq!(core.kind(), ErrorKind::NotFound);
        assert!(!core.is_temporary());
        assert!(core.to_string().contains("channel_is_archived"));
    }

    #[test]
    fn scrub_removes_secrets_and_control_chars() {
        let s = scrub("error sending request for url (https://h/services/T/B/tok)\nmore", &["/services/T/B/tok"]);
        assert_eq!(s, "error sending request for url (https://h[redacted]) more");
        assert_eq!(cap_chars("äöü", 2), "äö…");
        assert_eq!(cap_chars("äö", 2), "äö");
    }
}
