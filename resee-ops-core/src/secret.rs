//! [`Secret`]: a string that cannot be printed by accident.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A secret string: a password, a token. `Debug`, `Display` and `Serialize` print `***`; the only way to
/// the value is [`expose`](Self::expose), which says at the call site that a secret leaves its wrapper.
///
/// Every secret string of the workspace is this type: database and Redis passwords (inside
/// [`ConnectionUrl`](crate::ConnectionUrl)), S3 keys and session tokens. The Slack `WebhookUrl` is a
/// validated URL that is secret as a whole: it keeps the parsed URL instead, prints only its host and has
/// the same one accessor, `expose()`.
///
/// ```
/// use resee_ops_core::Secret;
/// let pw = Secret::new("hunter2");
/// assert_eq!(format!("{pw} {pw:?}"), "*** ***");
/// assert_eq!(serde_json::to_string(&pw).unwrap(), "\"***\"");
/// assert_eq!(pw.expose(), "hunter2");
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, for handing to a client library (a passfile, a connection config, a request).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self)
    }
}

impl Serialize for Secret {
    /// Serialises as `***`: a configuration written back out never carries the secret.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}
