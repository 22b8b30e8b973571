//! Configuration: [`SlackConfig`] (serde, environment) and [`SlackNotifierBuilder`].

use std::fmt;
use std::time::Duration;

use resee_ops_core::RetryPolicy;
use serde::Deserialize;

use crate::SlackNotifier;
use crate::error::{SlackError, cap_chars, config};
use crate::render::Overrides;
use crate::webhook::WebhookUrl;

/// The default timeout of one request to the webhook.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default pacing: one message per second per webhook…
pub const DEFAULT_PACING_INTERVAL: Duration = Duration::from_secs(1);
/// …after a burst of this many.
pub const DEFAULT_PACING_BURST: u32 = 3;

/// The environment variable holding the webhook URL.
pub const ENV_WEBHOOK_URL: &str = "SLACK_WEBHOOK_URL";
/// Optional: the user name to post as (legacy webhooks only; app webhooks ignore it).
pub const ENV_USERNAME: &str = "SLACK_USERNAME";
/// Optional: an emoji to post with, as `:name:`.
pub const ENV_ICON_EMOJI: &str = "SLACK_ICON_EMOJI";
/// Optional: an image URL to post with.
pub const ENV_ICON_URL: &str = "SLACK_ICON_URL";
/// Optional: the channel to post to (legacy webhooks only).
pub const ENV_CHANNEL: &str = "SLACK_CHANNEL";

/// Everything a [`SlackNotifier`] needs, deserializable from a configuration file.
///
/// Durations accept `"500ms"`, `"10s"`, `"2m"` or a number of seconds. `Debug` shows only the webhook's
/// host. There is deliberately no `Serialize`: the webhook URL is a secret.
///
/// ```
/// use resee_ops_slack::{SlackConfig, SlackNotifier};
///
/// let config: SlackConfig = serde_json::from_value(serde_json::json!({
///     "webhook_url": "https://hooks.slack.com/services/T000/B000/XXXXXXXX",
///     "username": "resee-ops",
///     "icon_emoji": ":rotating_light:",
///     "timeout": "5s",
///     "retry": { "deadline": "2m" },
/// }))
/// .unwrap();
/// assert_eq!(config.timeout, std::time::Duration::from_secs(5));
/// assert!(!format!("{config:?}").contains("XXXXXXXX"));
/// let notifier = SlackNotifier::from_config(config).unwrap();
/// # let _ = notifier;
/// ```
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SlackConfig {
    /// The incoming-webhook URL (secret).
    pub webhook_url: WebhookUrl,
    /// Post as this user name, where the webhook allows it.
    #[serde(default)]
    pub username: Option<String>,
    /// Post with this emoji (`:rotating_light:`), where the webhook allows it.
    #[serde(default)]
    pub icon_emoji: Option<String>,
    /// Post with this image (an https URL), where the webhook allows it.
    #[serde(default)]
    pub icon_url: Option<String>,
    /// Post to this channel (`#ops`), where the webhook allows it.
    #[serde(default)]
    pub channel: Option<String>,
    /// The time limit of one request. Default 10 s.
    #[serde(default = "default_timeout", with = "resee_ops_core::serde_duration")]
    pub timeout: Duration,
    /// Retries of 429s, 5xx, timeouts and connection errors. Default: core's [`RetryPolicy::default`]
    /// (8 attempts, 1 s → 30 s jittered backoff, `Retry-After` honoured up to 2 min, 5 min deadline).
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Pacing: the interval between messages once the burst is spent. Default 1 s; zero disables pacing.
    #[serde(default = "default_pacing_interval", with = "resee_ops_core::serde_duration")]
    pub pacing_interval: Duration,
    /// Pacing: messages sent at once before pacing applies. Default 3.
    #[serde(default = "default_pacing_burst")]
    pub pacing_burst: u32,
}

fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}
fn default_pacing_interval() -> Duration {
    DEFAULT_PACING_INTERVAL
}
fn default_pacing_burst() -> u32 {
    DEFAULT_PACING_BURST
}

impl SlackConfig {
    /// A configuration with defaults for everything but the webhook.
    pub fn new(webhook_url: WebhookUrl) -> Self {
        Self {
            webhook_url,
            username: None,
            icon_emoji: None,
            icon_url: None,
            channel: None,
            timeout: DEFAULT_TIMEOUT,
            retry: RetryPolicy::default(),
            pacing_interval: DEFAULT_PACING_INTERVAL,
            pacing_burst: DEFAULT_PACING_BURST,
        }
    }

    /// Reads `SLACK_WEBHOOK_URL` (required) and `SLACK_USERNAME`, `SLACK_ICON_EMOJI`, `SLACK_ICON_URL`,
    /// `SLACK_CHANNEL` (optional; empty counts as unset).
    pub fn from_env() -> Result<Self, SlackError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`from_env`](Self::from_env), reading variables through `lookup`.
    ///
    /// ```
    /// use resee_ops_core::ErrorKind;
    /// use resee_ops_slack::SlackConfig;
    ///
    /// let env = |name: &str| match name {
    ///     "SLACK_WEBHOOK_URL" => Some("https://hooks.slack.com/services/T000/B000/XXXXXXXX".to_owned()),
    ///     "SLACK_CHANNEL" => Some("#ops".to_owned()),
    ///     _ => None,
    /// };
    /// let config = SlackConfig::from_lookup(env).unwrap();
    /// assert_eq!(config.channel.as_deref(), Some("#ops"));
    ///
    /// let err = SlackConfig::from_lookup(|_| None).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    /// assert!(err.to_string().contains("SLACK_WEBHOOK_URL is not set"));
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SlackError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let url = get(ENV_WEBHOOK_URL).ok_or_else(|| config(format!("{ENV_WEBHOOK_URL} is not set")))?;
        let webhook_url = WebhookUrl::new(url).map_err(|e| config(format!("{ENV_WEBHOOK_URL}: {}", e.message())))?;
        let mut config = Self::new(webhook_url);
        config.username = get(ENV_USERNAME);
        config.icon_emoji = get(ENV_ICON_EMOJI);
        config.icon_url = get(ENV_ICON_URL);
        config.channel = get(ENV_CHANNEL);
        config.validate()?;
        Ok(config)
    }

    /// Checks the values a webhook URL's own validation does not cover.
    pub fn validate(&self) -> Result<(), SlackError> {
        fn text(name: &str, value: &Option<String>, max: usize) -> Result<(), SlackError> {
            match value {
                Some(v) if v.trim().is_empty() => Err(config(format!("{name} is empty"))),
                Some(v) if v.chars().count() > max => Err(config(format!("{name} is longer than {max} characters"))),
                Some(v) if v.chars().any(char::is_control) => {
                    Err(config(format!("{name} contains control characters")))
                }
                _ => Ok(()),
            }
        }
        text("username", &self.username, 80)?;
        text("channel", &self.channel, 80)?;
        text("icon_emoji", &self.icon_emoji, 100)?;
        text("icon_url", &self.icon_url, 2000)?;
        if let Some(emoji) = &self.icon_emoji
            && !(emoji.len() > 2 && emoji.starts_with(':') && emoji.ends_with(':') && !emoji.contains(' '))
        {
            return Err(config(format!("icon_emoji must look like `:name:`, not `{}`", cap_chars(emoji, 40))));
        }
        if let Some(icon) = &self.icon_url
            && !icon.starts_with("https://")
        {
            return Err(config("icon_url must be an https URL"));
        }
        if self.timeout.is_zero() {
            return Err(config("timeout must be above zero"));
        }
        if self.pacing_burst == 0 {
            return Err(config("pacing_burst must be at least 1"));
        }
        Ok(())
    }

    pub(crate) fn overrides(&self) -> Overrides {
        Overrides {
            username: self.username.clone(),
            icon_emoji: self.icon_emoji.clone(),
            icon_url: self.icon_url.clone(),
            channel: self.channel.clone(),
        }
    }
}

impl fmt::Debug for SlackConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlackConfig")
            .field("webhook_host", &self.webhook_url.host())
            .field("username", &self.username)
            .field("icon_emoji", &self.icon_emoji)
            .field("icon_url", &self.icon_url)
            .field("channel", &self.channel)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("pacing_interval", &self.pacing_interval)
            .field("pacing_burst", &self.pacing_burst)
            .finish()
    }
}

/// Builds a [`SlackNotifier`]; from [`SlackNotifier::builder`].
///
/// ```
/// use std::time::Duration;
/// use resee_ops_core::RetryPolicy;
/// use resee_ops_slack::SlackNotifier;
///
/// let notifier = SlackNotifier::builder()
///     .with_webhook_url("https://hooks.slack.com/services/T000/B000/XXXXXXXX")
///     .with_username("resee-ops")
///     .with_icon_emoji(":rotating_light:")
///     .with_timeout(Duration::from_secs(5))
///     .with_retry(RetryPolicy::default().with_deadline(Duration::from_secs(120)))
///     .with_pacing(Duration::from_secs(1), 3)
///     .build()
///     .unwrap();
/// assert_eq!(notifier.webhook_host(), "hooks.slack.com");
///
/// let err = SlackNotifier::builder().build().unwrap_err();
/// assert!(err.to_string().contains("no webhook URL"));
/// ```
#[derive(Default)]
pub struct SlackNotifierBuilder {
    webhook: Option<Result<WebhookUrl, SlackError>>,
    username: Option<String>,
    icon_emoji: Option<String>,
    icon_url: Option<String>,
    channel: Option<String>,
    timeout: Option<Duration>,
    retry: Option<RetryPolicy>,
    pacing: Option<(Duration, u32)>,
}

impl fmt::Debug for SlackNotifierBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = match &self.webhook {
            Some(Ok(url)) => url.host(),
            Some(Err(_)) => "<invalid>",
            None => "<unset>",
        };
        f.debug_struct("SlackNotifierBuilder")
            .field("webhook_host", &host)
            .field("username", &self.username)
            .field("icon_emoji", &self.icon_emoji)
            .field("icon_url", &self.icon_url)
            .field("channel", &self.channel)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("pacing", &self.pacing)
            .finish()
    }
}

impl SlackNotifierBuilder {
    /// The webhook URL (required). Validated by [`build`](Self::build); see [`WebhookUrl`].
    pub fn with_webhook_url(mut self, url: impl AsRef<str>) -> Self {
        self.webhook = Some(WebhookUrl::new(url));
        self
    }

    /// An already validated webhook URL.
    pub fn with_webhook(mut self, url: WebhookUrl) -> Self {
        self.webhook = Some(Ok(url));
        self
    }

    /// Post as this user name, where the webhook allows it.
    pub fn with_username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// Post with this emoji (`:rotating_light:`), where the webhook allows it.
    pub fn with_icon_emoji(mut self, emoji: impl Into<String>) -> Self {
        self.icon_emoji = Some(emoji.into());
        self
    }

    /// Post with this image (an https URL), where the webhook allows it.
    pub fn with_icon_url(mut self, url: impl Into<String>) -> Self {
        self.icon_url = Some(url.into());
        self
    }

    /// Post to this channel, where the webhook allows it.
    pub fn with_channel(mut self, channel: impl Into<String>) -> Self {
        self.channel = Some(channel.into());
        self
    }

    /// The time limit of one request (default 10 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// How temporary failures and 429s are retried; `RetryPolicy::default().with_max_attempts(1)` turns
    /// retries off (for example when an outer [`Retrying`](resee_ops_core::Retrying) does them).
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// At most `burst` messages at once, then one per `interval` (default 1 s, 3). A zero interval
    /// disables pacing.
    pub fn with_pacing(mut self, interval: Duration, burst: u32) -> Self {
        self.pacing = Some((interval, burst));
        self
    }

    /// The configuration this builder describes, validated.
    pub fn into_config(self) -> Result<SlackConfig, SlackError> {
        let webhook = self.webhook.ok_or_else(|| config("no webhook URL was given"))??;
        let mut config = SlackConfig::new(webhook);
        config.username = self.username;
        config.icon_emoji = self.icon_emoji;
        config.icon_url = self.icon_url;
        config.channel = self.channel;
        if let Some(t) = self.timeout {
            config.timeout = t;
        }
        if let Some(r) = self.retry {
            config.retry = r;
        }
        if let Some((interval, burst)) = self.pacing {
            config.pacing_interval = interval;
            config.pacing_burst = burst;
        }
        config.validate()?;
        Ok(config)
    }

    /// The notifier.
    pub fn build(self) -> Result<SlackNotifier, SlackError> {
        SlackNotifier::from_config(self.into_config()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url() -> WebhookUrl {
        WebhookUrl::new("https://hooks.slack.com/services/T0/B0/s3cr3t").unwrap()
    }

    #[test]
    fn validation_errors_are_clear() {
        let mut c = SlackConfig::new(url());
        c.icon_emoji = Some("rotating_light".into());
        assert!(c.validate().unwrap_err().to_string().contains("icon_emoji must look like `:name:`"));
        let mut c = SlackConfig::new(url());
        c.icon_url = Some("http://example.com/x.png".into());
        assert!(c.validate().unwrap_err().to_string().contains("icon_url must be an https URL"));
        let mut c = SlackConfig::new(url());
        c.channel = Some("  ".into());
        assert!(c.validate().unwrap_err().to_string().contains("channel is empty"));
        let mut c = SlackConfig::new(url());
        c.pacing_burst = 0;
        assert!(c.validate().is_err());
        let mut c = SlackConfig::new(url());
        c.timeout = Duration::ZERO;
        assert!(c.validate().is_err());
    }

    #[test]
    fn env_lookup_reads_overrides_and_rejects_bad_urls() {
        let c = SlackConfig::from_lookup(|n| match n {
            ENV_WEBHOOK_URL => Some(" https://hooks.slack.com/services/T0/B0/s3cr3t ".into()),
            ENV_USERNAME => Some("ops".into()),
            ENV_ICON_EMOJI => Some(":fire:".into()),
            ENV_ICON_URL => Some("".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.username.as_deref(), Some("ops"));
        assert_eq!(c.icon_emoji.as_deref(), Some(":fire:"));
        assert_eq!(c.icon_url, None, "empty counts as unset");
        let err =
            SlackConfig::from_lookup(|_| Some("http://hooks.slack.com/services/T0/B0/s3cr3t".into())).unwrap_err();
        assert!(
            err.to_string().starts_with("invalid_config: SLACK_WEBHOOK_URL: the webhook URL must use https"),
            "{err}"
        );
        assert!(!err.to_string().contains("s3cr3t"));
    }

    #[test]
    fn serde_rejects_bad_urls_and_unknown_fields() {
        let err = serde_json::from_str::<SlackConfig>(r#"{"webhook_url":"ftp://x/services/s3cr3t"}"#).unwrap_err();
        assert!(err.to_string().contains("must use https"), "{err}");
        assert!(!err.to_string().contains("s3cr3t"));
        assert!(serde_json::from_str::<SlackConfig>(r#"{"webhook_url":"https://h/x","colour":"red"}"#).is_err());
        let c: SlackConfig =
            serde_json::from_str(r#"{"webhook_url":"https://h/x","pacing_interval":"250ms","pacing_burst":5}"#)
                .unwrap();
        assert_eq!(c.pacing_interval, Duration::from_millis(250));
        assert_eq!(c.pacing_burst, 5);
    }
}
