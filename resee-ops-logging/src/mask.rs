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
    // Called for every field of every event: instead of trying each fragment at each position, one table
    // lookup per byte of the name says which fragments can start there (usually none), and only those are
    // compared.
    let bytes = name.as_bytes();
    bytes.iter().enumerate().any(|(at, &b)| {
        let mut candidates = SECRET_FIRST_BYTES[usize::from(b)];
        while candidates != 0 {
            let needle = SECRET_FIELD_NAMES[candidates.trailing_zeros() as usize].as_bytes();
            if bytes.len() - at >= needle.len() && bytes[at..at + needle.len()].eq_ignore_ascii_case(needle) {
                return true;
            }
            candidates &= candidates - 1;
        }
        false
    })
}

/// For each byte, the fragments of [`SECRET_FIELD_NAMES`] (bit `i` for fragment `i`) that start with it,
/// in either case; built at compile time.
const SECRET_FIRST_BYTES: [u16; 256] = {
    assert!(SECRET_FIELD_NAMES.len() <= 16);
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < SECRET_FIELD_NAMES.len() {
        let first = SECRET_FIELD_NAMES[i].as_bytes()[0];
        table[first.to_ascii_lowercase() as usize] |= 1 << i;
        table[first.to_ascii_uppercase() as usize] |= 1 << i;
        i += 1;
    }
    table
};

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
    if !has_scheme_separator(text.as_bytes()) {
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

/// Whether `text` holds `://` (the quick test on every value: cheaper than a substring search's set-up for
/// the short strings of log fields).
fn has_scheme_separator(mut text: &[u8]) -> bool {
    while let Some(colon) = text.iter().position(|&b| b == b':') {
        text = &text[colon + 1..];
        if text.starts_with(b"//") {
            return true;
        }
    }
    false
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

    /// The table-driven matcher agrees with the plain definition (a fragment occurs anywhere, any case).
    #[test]
    fn the_fast_matcher_agrees_with_the_plain_one() {
        let plain = |name: &str| {
            let lower = name.to_ascii_lowercase();
            SECRET_FIELD_NAMES.iter().any(|n| lower.contains(n))
        };
        let mut names: Vec<String> =
            ["", "p", "Passwd", "xpassword", "pAsSwOrD_x", "tok", "toKEN", "webhook_ur", "WEBHOOK_URL", "apikey"]
                .iter()
                .map(|s| (*s).to_owned())
                .collect();
        for needle in SECRET_FIELD_NAMES {
            for cut in 0..needle.len() {
                names.push(format!("a_{}", &needle[..cut]));
                names.push(format!("{}{}", &needle[..cut], needle.to_ascii_uppercase()));
                names.push(format!("{}_{}", &needle[cut..], &needle[..cut]));
            }
        }
        for name in &names {
            assert_eq!(is_secret_field(name), plain(name), "{name:?}");
        }
    }
}
