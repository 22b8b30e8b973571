//! [`SlackError`]: this crate's name for the workspace's one error type.

use resee_ops_core::{Error, ErrorKind};

/// The error of `resee-ops-slack`: [`resee_ops_core::Error`] itself.
///
/// It says what went wrong ([`kind`](Error::kind)), whether retrying may help
/// ([`is_temporary`](Error::is_temporary)), and, for answers from Slack, the HTTP
/// [`status`](Error::status), Slack's own error string as the [`code`](Error::code)
/// (`invalid_blocks`, `channel_is_archived`, `no_service`, …; capped at 200 characters, control characters
/// removed) and the [`retry_after`](Error::retry_after) of a 429. Kinds: `RateLimited` (429), `Unavailable`
/// (5xx, connection failures), `Timeout`, `InvalidInput` (400: the message was refused), `PermissionDenied`
/// (401/403: the webhook was refused), `NotFound` (404/410, `channel_not_found`, `channel_is_archived`,
/// `no_service`), `Unexpected` (anything else, permanent, so a message that may have been posted is not
/// posted twice), `InvalidConfig`. Its `Display` and `Debug` never contain the webhook URL.
///
/// ```
/// use resee_ops_core::ErrorKind;
/// use resee_ops_slack::WebhookUrl;
///
/// let err = WebhookUrl::new("http://hooks.slack.com/services/T0/B0/secret").unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::InvalidConfig);
/// assert!(!err.is_temporary());
/// assert!(!err.to_string().contains("secret"));
/// ```
pub type SlackError = Error;

pub(crate) fn config(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidConfig, message)
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
    fn scrub_removes_secrets_and_control_chars() {
        let s = scrub("error sending request for url (https://h/services/T/B/tok)\nmore", &["/services/T/B/tok"]);
        assert_eq!(s, "error sending request for url (https://h[redacted]) more");
        assert_eq!(cap_chars("äöü", 2), "äö…");
        assert_eq!(cap_chars("äö", 2), "äö");
    }
}
