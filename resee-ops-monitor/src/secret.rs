//! [`ConnectionUrl`]: a connection string that never shows its password.

use std::fmt;
use std::ops::Range;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A connection string (`postgres://user:password@host/db`, `redis://:password@host:6379/0`, or a
/// PostgreSQL `key=value` string) whose `Debug`, `Display` and `Serialize` hide the password, wherever it
/// is: URL userinfo, any `password=` query parameter, or a `password = value` / `password='quoted'` key.
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

    /// The string with every password replaced by `***`.
    pub fn redacted(&self) -> String {
        let mut out = String::with_capacity(self.0.len());
        let mut pos = 0;
        for r in merge(self.password_ranges()) {
            out.push_str(&self.0[pos..r.start]);
            out.push_str("***");
            pos = r.end;
        }
        out.push_str(&self.0[pos..]);
        out
    }

    /// The first password, if the string has one (URL userinfo, a `password=` query parameter or a
    /// `password=` key), as written.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn password(&self) -> Option<&str> {
        self.passwords().next()
    }

    /// Every password in the string, as written (a URL may carry one in its userinfo and more in its query).
    pub(crate) fn passwords(&self) -> impl Iterator<Item = &str> {
        self.password_ranges().into_iter().map(|r| &self.0[r])
    }

    /// Byte ranges of the passwords, in order, none empty.
    fn password_ranges(&self) -> Vec<Range<usize>> {
        let s = self.0.as_str();
        let mut ranges = match url_scheme(s) {
            Some(scheme) => url_password_ranges(s, scheme),
            None => keyword_password_ranges(s),
        };
        ranges.retain(|r| !r.is_empty());
        ranges
    }

    /// `text` with every occurrence of a password, as written, percent-decoded or (for a `key=value`
    /// string) with its backslash escapes resolved, replaced by `***`.
    pub(crate) fn scrub(&self, text: impl Into<String>) -> String {
        let mut text = text.into();
        let is_url = url_scheme(&self.0).is_some();
        let mut forms: Vec<String> = Vec::new();
        for pw in self.passwords() {
            forms.push(pw.to_owned());
            forms.push(percent_decode(pw));
            if !is_url {
                forms.push(unescape(pw));
            }
        }
        // Longest first, so a password that contains another is replaced whole.
        forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
        for form in forms {
            if !form.is_empty() && text.contains(&form) {
                text = text.replace(&form, "***");
            }
        }
        text
    }
}

/// The scheme (`postgres`, `redis`, ...) if `s` is a URL: it starts with `scheme://`. A `key=value`
/// string that merely contains `://` somewhere (in a password, say) is not a URL.
fn url_scheme(s: &str) -> Option<&str> {
    let (scheme, _) = s.split_once("://")?;
    let mut chars = scheme.chars();
    (chars.next()?.is_ascii_alphabetic() && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)))
        .then_some(scheme)
}

/// Passwords in a URL: the one in the userinfo (`user:pw@`) and every `password=` query parameter.
fn url_password_ranges(s: &str, scheme: &str) -> Vec<Range<usize>> {
    let start = scheme.len() + 3;
    let rest = &s[start..];
    let mut ranges = Vec::new();
    let postgres = scheme.eq_ignore_ascii_case("postgres") || scheme.eq_ignore_ascii_case("postgresql");
    // tokio-postgres takes the userinfo up to the first `@` anywhere; URL parsers (redis) up to the last
    // `@` before the path, query or fragment.
    let userinfo = if postgres {
        rest.find('@').map(|at| &rest[..at])
    } else {
        let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
        authority.rfind('@').map(|at| &authority[..at])
    };
    if let Some(userinfo) = userinfo
        && let Some(colon) = userinfo.find(':')
    {
        ranges.push(start + colon + 1..start + userinfo.len());
    }
    // The query runs to the end: tokio-postgres does not treat `#` as a fragment, so a password may hold one.
    let path_end = start + rest.find('?').unwrap_or(rest.len());
    if path_end < s.len() {
        let mut pos = path_end + 1;
        for param in s[pos..].split('&') {
            if let Some((key, _)) = param.split_once('=')
                && percent_decode(key).eq_ignore_ascii_case("password")
            {
                ranges.push(pos + key.len() + 1..pos + param.len());
            }
            pos += param.len() + 1;
        }
    }
    ranges
}

/// Passwords in a libpq `key=value` string: `password=pw`, `password = pw`, `password='p w'`, with
/// `\'` and `\\` escapes (quoted or not). Parsing stops at the first malformed pair.
fn keyword_password_ranges(s: &str) -> Vec<Range<usize>> {
    let bytes = s.as_bytes();
    let skip_ws = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    let mut ranges = Vec::new();
    let mut i = skip_ws(0);
    while i < bytes.len() {
        let key_start = i;
        while i < bytes.len() && bytes[i] != b'=' && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = &s[key_start..i];
        i = skip_ws(i);
        if key.is_empty() || bytes.get(i) != Some(&b'=') {
            break;
        }
        i = skip_ws(i + 1);
        let quoted = bytes.get(i) == Some(&b'\'');
        if quoted {
            i += 1;
        }
        let value_start = i;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 2,
                b'\'' if quoted => break,
                b if !quoted && b.is_ascii_whitespace() => break,
                _ => i += 1,
            }
        }
        let value_end = i.min(bytes.len());
        if key.eq_ignore_ascii_case("password") {
            ranges.push(value_start..value_end);
        }
        i = skip_ws(value_end + usize::from(quoted));
    }
    ranges
}

/// Sorted, overlapping ranges joined.
fn merge(mut ranges: Vec<Range<usize>>) -> Vec<Range<usize>> {
    ranges.sort_by_key(|r| r.start);
    let mut out: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// Resolves libpq backslash escapes (`\'` to `'`, `\\` to `\`).
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        out.push(if c == '\\' { chars.next().unwrap_or(c) } else { c });
    }
    out
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
            // password= in the query: any case, percent-encoded, among other parameters.
            ("postgres://u@h/db?password=s3cret", Some("s3cret")),
            ("postgres://u@h/db?sslmode=disable&password=x&connect_timeout=3", Some("x")),
            ("postgres://u@h/db?PassWord=p%40ss%26w", Some("p%40ss%26w")),
            ("postgres://u@h/db?pass%77ord=s3cret", Some("s3cret")),
            ("postgres://u@h/db?password=s3cr#et", Some("s3cr#et")),
            ("postgres://u@h/db?password=&sslmode=disable", None),
            ("postgres://u@h/db?passwords=x&user_password=y", None),
            ("redis://h:6379/?password=s3cret", Some("s3cret")),
            ("redis://h:6379?password=s3cret&db=2", Some("s3cret")),
            // key=value: spaces around `=`, quotes, escapes, odd casing.
            ("host=h password = s3cret dbname=d", Some("s3cret")),
            ("host=h password= s3cret", Some("s3cret")),
            ("host=h password =s3cret", Some("s3cret")),
            ("password='a b'", Some("a b")),
            (r"host=h password='it\'s a \\ pw' user=u", Some(r"it\'s a \\ pw")),
            (r"host=h password=se\ cret user=u", Some(r"se\ cret")),
            ("host=h PASSWORD=s3cret", Some("s3cret")),
            ("host=h password='unterminated pw", Some("unterminated pw")),
            ("host=h password=pa://ss dbname=d", Some("pa://ss")),
            ("host=h application_name=password=x user=u", None),
            ("host=h sslpassword=x", None),
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
        // Several passwords: each is redacted and scrubbed.
        let u = ConnectionUrl::new("postgres://u:one1@h/db?password=two2&PASSWORD=thr%2Fee");
        assert_eq!(u.passwords().collect::<Vec<_>>(), ["one1", "two2", "thr%2Fee"]);
        assert_eq!(u.redacted(), "postgres://u:***@h/db?password=***&PASSWORD=***");
        assert_eq!(u.scrub("one1 two2 thr/ee thr%2Fee"), "*** *** *** ***");
        // tokio-postgres reads the userinfo up to the first `@`, even past `/`; URL parsers stop at the path.
        let u = ConnectionUrl::new("postgres://u:pa/ss@h/db");
        assert_eq!(u.redacted(), "postgres://u:***@h/db");
        let u = ConnectionUrl::new("redis://u:pa@ss@h/0?password=x@y");
        assert_eq!(u.redacted(), "redis://u:***@h/0?password=***");
        // Overlapping candidates are redacted as one.
        let u = ConnectionUrl::new("postgres://h:5432/db?password=a@b");
        assert_eq!(u.redacted(), "postgres://h:***");
        // libpq escapes: the unescaped password is scrubbed as well.
        let u = ConnectionUrl::new(r"host=h password='it\'s \\ x' user=u");
        assert_eq!(u.redacted(), "host=h password='***' user=u");
        assert_eq!(u.scrub(r"bad password it's \ x"), "bad password ***");
        assert_eq!(unescape(r"a\'b\\c\"), r"a'b\c\");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }
}
