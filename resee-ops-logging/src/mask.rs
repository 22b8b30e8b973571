//! The last line of defence against secrets in log lines.
//!
//! The crates keep secrets out of their events; this masks what slips through anyway: the values of fields
//! named like a secret, and the password of any `scheme://user:password@host` URL in a message or value.

use std::borrow::Cow;

/// What a masked value is replaced with.
pub const MASK: &str = "***";

/// Field-name fragments whose values are always masked (compared without regard to case).
pub const SECRET_FIELD_NAMES: &[&str] =
    &["password", "passwd", "token", "secret", "webhook_url", "api_key", "apikey", "authorization", "credential"];

/// Whether a field called `name` holds a secret by its name.
///
/// ```
/// assert!(resee_ops_logging::is_secret_field("db_password"));
/// assert!(resee_ops_logging::is_secret_field("SLACK_WEBHOOK_URL"));
/// assert!(!resee_ops_logging::is_secret_field("database"));
/// ```
pub fn is_secret_field(name: &str) -> bool {
    // Field names are short; avoid allocating on the hot path.
    let bytes = name.as_bytes();
    SECRET_FIELD_NAMES.iter().any(|needle| {
        let n = needle.as_bytes();
        bytes.len() >= n.len() && bytes.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
    })
}

/// Masks the password of every `scheme://user:password@` in `text`.
///
/// ```
/// use resee_ops_logging::mask_urls;
/// assert_eq!(
///     mask_urls("connect postgres://resee:s3cret@db:5432/resee failed"),
///     "connect postgres://resee:***@db:5432/resee failed"
/// );
/// assert_eq!(mask_urls("redis://:hunter2@cache/0"), "redis://:***@cache/0");
/// assert_eq!(mask_urls("nothing to hide: https://example.org/a:b@c"), "nothing to hide: https://example.org/a:b@c");
/// ```
pub fn mask_urls(text: &str) -> Cow<'_, str> {
    if !text.contains("://") {
        return Cow::Borrowed(text);
    }
    let mut out = String::new();
    let mut done = 0; // bytes of `text` already in `out`
    let mut search = 0;
    while let Some(found) = text[search..].find("://") {
        let authority_start = search + found + 3;
        // The authority ends at the first '/', '?', '#' or whitespace; userinfo ends at its last '@'.
        let rest = &text[authority_start..];
        let authority_len = rest
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace() || c == '"')
            .unwrap_or(rest.len());
        let authority = &rest[..authority_len];
        if let Some(at) = authority.rfind('@')
            && let Some(colon) = authority[..at].find(':')
            && colon + 1 < at
        {
            let password_start = authority_start + colon + 1;
            out.push_str(&text[done..password_start]);
            out.push_str(MASK);
            done = authority_start + at;
        }
        search = authority_start + authority_len;
    }
    if done == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[done..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_every_url_password_and_nothing_else() {
        assert_eq!(
            mask_urls("a postgres://u:p@h/db b postgresql://x:y%40z@h2 c"),
            "a postgres://u:***@h/db b postgresql://x:***@h2 c"
        );
        assert_eq!(mask_urls("postgres://user@host/db"), "postgres://user@host/db");
        assert_eq!(mask_urls("postgres://user:@host/db"), "postgres://user:@host/db");
        assert_eq!(mask_urls("x://"), "x://");
        assert_eq!(mask_urls("ü postgres://ü:ä@h ü"), "ü postgres://ü:***@h ü");
        // A password holding '@' is masked up to the last '@' of the authority.
        assert_eq!(mask_urls("postgres://u:p@ss@h/db"), "postgres://u:***@h/db");
    }

    #[test]
    fn secret_field_names_match_without_case() {
        for name in ["password", "PGPASSWORD", "api_token", "client_secret", "webhook_url", "Authorization"] {
            assert!(is_secret_field(name), "{name}");
        }
        for name in ["database", "host", "duration_ms", "pass"] {
            assert!(!is_secret_field(name), "{name}");
        }
    }
}
