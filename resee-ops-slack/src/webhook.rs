//! The webhook URL: a validated secret.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use reqwest::Url;
use serde::{Deserialize, Deserializer};

use crate::error::{SlackError, config};

/// A Slack incoming-webhook URL, validated, and treated as the secret it is.
///
/// Whoever knows the URL can post to the channel, so its `Debug` and `Display` show only the host, and
/// nothing in this crate logs it or puts it in an error. The full URL is available through
/// [`expose`](Self::expose), named so that its uses are easy to find.
///
/// Rules: an absolute `https` URL with a host and no user name or password. Plain `http` is accepted only
/// for loopback hosts (`localhost`, `127.0.0.0/8`, `::1`): test receivers and local relays.
///
/// ```
/// use resee_ops_slack::WebhookUrl;
///
/// let url: WebhookUrl = "https://hooks.slack.com/services/T000/B000/XXXXXXXX".parse().unwrap();
/// assert_eq!(url.to_string(), "hooks.slack.com");
/// assert_eq!(format!("{url:?}"), r#"WebhookUrl("hooks.slack.com")"#);
/// assert!(url.expose().ends_with("/XXXXXXXX"));
///
/// assert!(WebhookUrl::new("http://127.0.0.1:8080/hook").is_ok());
/// assert!(WebhookUrl::new("http://hooks.slack.com/services/T000/B000/XXXXXXXX").is_err());
/// assert!(WebhookUrl::new("not a url").is_err());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    url: Url,
    host: String,
}

impl WebhookUrl {
    /// Validates `url`; see the rules above. Errors are [`ErrorKind::InvalidConfig`] and never contain
    /// the URL.
    ///
    /// [`ErrorKind::InvalidConfig`]: resee_ops_core::ErrorKind::InvalidConfig
    pub fn new(url: impl AsRef<str>) -> Result<Self, SlackError> {
        let raw = url.as_ref().trim();
        if raw.is_empty() {
            return Err(config("the webhook URL is empty"));
        }
        // url's parse errors describe the problem, never the input.
        let url = Url::parse(raw).map_err(|e| config(format!("the webhook URL is not a valid URL: {e}")))?;
        let host = match url.host_str() {
            Some(host) if !host.is_empty() => host.to_owned(),
            _ => return Err(config("the webhook URL has no host")),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(config("the webhook URL must not contain a user name or password"));
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let loopback = match bare.parse::<IpAddr>() {
            Ok(ip) => ip.is_loopback(),
            Err(_) => bare.eq_ignore_ascii_case("localhost"),
        };
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            "http" => {
                return Err(config(format!(
                    "the webhook URL must use https (plain http is allowed only for loopback hosts, not {host})"
                )));
            }
            other => {
                return Err(config(format!(
                    "the webhook URL must use https, not `{}`",
                    crate::error::cap_chars(other, 20)
                )));
            }
        }
        Ok(Self { url, host })
    }

    /// The host, the only part that is not secret.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The full URL, secret path included. Do not log it.
    pub fn expose(&self) -> &str {
        self.url.as_str()
    }

    pub(crate) fn url(&self) -> &Url {
        &self.url
    }

    /// The strings that must never appear in output: the full URL, its path and query, and every path
    /// segment long enough to be a token.
    pub(crate) fn secrets(&self) -> Vec<&str> {
        let mut secrets = vec![self.url.as_str(), self.url.path()];
        secrets.extend(self.url.query());
        secrets.extend(self.url.path().split('/').filter(|s| s.len() >= 8));
        secrets
    }
}

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("WebhookUrl").field(&self.host).finish()
    }
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.host)
    }
}

impl FromStr for WebhookUrl {
    type Err = SlackError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for WebhookUrl {
    type Error = SlackError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl<'de> Deserialize<'de> for WebhookUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::new(s).map_err(serde::de::Error::custom)
    }
}
