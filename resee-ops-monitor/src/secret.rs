//! [`ConnectionUrl`]: a connection string that never shows its password.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A connection string (`postgres://user:password@host/db`, `redis://:password@host:6379/0`, or a
/// PostgreSQL `key=value` string) whose `Debug` and `Display` hide the password.
///
/// ```
/// use resee_ops_monitor::ConnectionUrl;
/// let url = ConnectionUrl::new("postgres://app:hunter2@db.internal:5432/app");
/// assert_eq!(url.redacted(), "postgres://app:***@db.internal:5432/app");
/// assert!(!format!("{url:?} {url}").contains("hunter2"));
/// assert_eq!(url.expose(), "postgres://app:hunter2@db.internal:5432/app");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionUrl(String);

impl ConnectionUrl {
    /// Wraps a connection string.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The full string, password included. Only for handing to a client library.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The string with its password replaced by `***`.
    pub fn redacted(&self) -> String {
        match self.password_range() {
            Some(r) => format!("{}***{}", &self.0[..r.start], &self.0[r.end..]),
            None => self.0.clone(),
        }
    }

    /// The password, if the string has one (URL userinfo or a `password=` key).
    pub(crate) fn password(&self) -> Option<&str> {
        self.password_range().map(|r| &self.0[r])
    }

    fn password_range(&self) -> Option<std::ops::Range<usize>> {
        let s = self.0.as_str();
        let range = if let Some(scheme_end) = s.find("://") {
            let start = scheme_end + 3;
            let rest = &s[start..];
            let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let authority = &rest[..authority_end];
            let userinfo = &authority[..authority.rfind('@')?];
            let colon = userinfo.find(':')?;
            start + colon + 1..start + userinfo.len()
        } else {
            // key=value form: password=secret or password='se cret'
            let start = s.find("password=")? + "password=".len();
            let value = &s[start..];
            if let Some(quoted) = value.strip_prefix('\'') {
                start + 1..start + 1 + quoted.find('\'').unwrap_or(quoted.len())
            } else {
                start..start + value.find(char::is_whitespace).unwrap_or(value.len())
            }
        };
        (!range.is_empty()).then_some(range)
    }

    /// `text` with every occurrence of the password, as written or percent-decoded, replaced by `***`.
    pub(crate) fn scrub(&self, text: impl Into<String>) -> String {
        let mut text = text.into();
        if let Some(pw) = self.password() {
            for form in [pw.to_owned(), percent_decode(pw)] {
                if !form.is_empty() && text.contains(&form) {
                    text = text.replace(&form, "***");
                }
            }
        }
        text
    }
}

/// Decodes `%XX` escapes (as URL parsers do for passwords); invalid escapes stay as written.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl fmt::Debug for ConnectionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ConnectionUrl").field(&self.redacted()).finish()
    }
}

impl fmt::Display for ConnectionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl From<&str> for ConnectionUrl {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl From<String> for ConnectionUrl {
    fn from(s: String) -> Self {
        Self::new(s)
    }
}

impl<'de> Deserialize<'de> for ConnectionUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self)
    }
}

impl Serialize for ConnectionUrl {
    /// Serialises the redacted form: a config written back out never leaks the password.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_passwords_in_every_form() {
        let cases = [
            ("redis://:s3cret@127.0.0.1:6379/0", Some("s3cret")),
            ("redis://user:s3cret@127.0.0.1:6379/0", Some("s3cret")),
            ("postgres://u:p%40ss@h/db?sslmode=disable", Some("p%40ss")),
            ("postgres://u@h/db", None),
            ("redis://127.0.0.1/", None),
            ("host=h user=u password=s3cret dbname=d", Some("s3cret")),
            ("host=h password='se cret' dbname=d", Some("se cret")),
            ("postgres://u:@h/db", None),
        ];
        for (url, pw) in cases {
            let u = ConnectionUrl::new(url);
            assert_eq!(u.password(), pw, "{url}");
            if let Some(pw) = pw {
                assert!(!u.redacted().contains(pw), "{url}");
                assert!(!format!("{u:?}").contains(pw));
                assert!(!serde_json::to_string(&u).unwrap().contains(pw));
                assert_eq!(u.scrub(format!("failed: {url}")), format!("failed: {}", u.redacted()));
            }
        }
        let u = ConnectionUrl::new("postgres://u:p%40ss%2Fw@h/db");
        assert_eq!(u.scrub("auth failed for p@ss/w and p%40ss%2Fw"), "auth failed for *** and ***");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }
}
