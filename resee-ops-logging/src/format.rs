//! One event, one line: the JSON and the text format, with secrets masked on the way.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};

use crate::config::LogFormat;
use crate::mask::{MASK, is_secret_field, mask_urls};

/// The parts of a line that do not come from the event's fields.
pub(crate) struct Head<'a> {
    pub(crate) timestamp: &'a str,
    pub(crate) level: &'a tracing::Level,
    pub(crate) target: &'a str,
    pub(crate) spans: &'a [&'static str],
}

/// The current time as RFC 3339 with microseconds and the local offset (`2026-12-01T20:29:13.123456+01:00`).
pub(crate) fn timestamp(out: &mut String) {
    /// The formatted date and time to the second, and the offset, of the last second seen on this thread:
    /// most events share their second with the one before, so they cost one clock read and six digits.
    /// The offset (time zone rules, `TZ`) is looked up once per second, when the second changes.
    struct Second {
        unix: i64,
        date_time: String,
        offset: String,
    }
    thread_local! {
        static SECOND: std::cell::RefCell<Second> =
            const { std::cell::RefCell::new(Second { unix: i64::MIN, date_time: String::new(), offset: String::new() }) };
    }
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    let Ok(since_epoch) = since_epoch else {
        return uncached_timestamp(out); // a clock before 1970
    };
    let unix = i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX);
    let micros = since_epoch.subsec_micros();
    SECOND.with(|cell| {
        let Ok(mut second) = cell.try_borrow_mut() else {
            return uncached_timestamp(out);
        };
        if second.unix != unix {
            let Some(utc) = chrono::DateTime::from_timestamp(unix, 0) else {
                return uncached_timestamp(out);
            };
            let local = utc.with_timezone(&chrono::Local);
            second.unix = unix;
            second.date_time.clear();
            let _ = write!(second.date_time, "{}", local.format("%Y-%m-%dT%H:%M:%S"));
            second.offset.clear();
            let _ = write!(second.offset, "{}", local.format("%:z"));
        }
        out.push_str(&second.date_time);
        out.push('.');
        push_micros(out, micros);
        out.push_str(&second.offset);
    });
}

fn uncached_timestamp(out: &mut String) {
    let _ = write!(out, "{}", chrono::Local::now().format("%Y-%m-%dT%H:%M:%S%.6f%:z"));
}

/// Appends the six digits of `micros` (below 1,000,000).
fn push_micros(out: &mut String, mut micros: u32) {
    let mut digits = [b'0'; 6];
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (micros % 10) as u8;
        micros /= 10;
    }
    out.push_str(std::str::from_utf8(&digits).unwrap_or_default());
}

/// Appends `value` in decimal (what `write!(out, "{value}")` does, without the formatting machinery).
fn push_u64(out: &mut String, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.push_str(std::str::from_utf8(&digits[at..]).unwrap_or_default());
}

fn push_i64(out: &mut String, value: i64) {
    if value < 0 {
        out.push('-');
    }
    push_u64(out, value.unsigned_abs());
}

/// Slots of the per-thread cache of secret-name answers.
const SECRET_CACHE: usize = 64;

/// The event's message and fields, rendered once for one format.
pub(crate) struct Fields {
    format: LogFormat,
    pub(crate) message: String,
    pub(crate) fields: String,
    scratch: String,
    /// Whether a field name is a secret's, by the name's address and length: field names are `'static`
    /// strings of callsites, so most events find all their names here and match none.
    secret_names: [(usize, usize, bool); SECRET_CACHE],
}

impl Fields {
    pub(crate) fn new(format: LogFormat) -> Self {
        Self {
            format,
            message: String::new(),
            fields: String::new(),
            scratch: String::new(),
            secret_names: [(0, 0, false); SECRET_CACHE],
        }
    }

    fn is_secret(&mut self, name: &'static str) -> bool {
        let key = (name.as_ptr() as usize, name.len());
        let slot = &mut self.secret_names[(key.0 >> 3 ^ key.1) % SECRET_CACHE];
        if (slot.0, slot.1) != key {
            *slot = (key.0, key.1, is_secret_field(name));
        }
        slot.2
    }

    pub(crate) fn clear(&mut self) {
        self.message.clear();
        self.fields.clear();
    }

    fn field_name(&mut self, name: &str) {
        match self.format {
            LogFormat::Json => {
                if !self.fields.is_empty() {
                    self.fields.push(',');
                }
                json_string(&mut self.fields, name);
                self.fields.push(':');
            }
            LogFormat::Text => {
                self.fields.push(' ');
                self.fields.push_str(name);
                self.fields.push('=');
            }
        }
    }

    fn string_value(&mut self, value: &str) {
        let value = mask_urls(value);
        match self.format {
            LogFormat::Json => json_string(&mut self.fields, &value),
            LogFormat::Text => {
                let _ = write!(self.fields, "{:?}", &*value);
            }
        }
    }

    /// Records a value that is a string in JSON and plain in text (Debug/Display renderings).
    fn plain_value(&mut self, value: &str) {
        let value = mask_urls(value);
        match self.format {
            LogFormat::Json => json_string(&mut self.fields, &value),
            LogFormat::Text => text_plain(&mut self.fields, &value),
        }
    }

    fn masked(&mut self, field: &Field) -> bool {
        if self.is_secret(field.name()) {
            self.field_name(field.name());
            self.string_value(MASK);
            true
        } else {
            false
        }
    }

    fn skip(field: &Field) -> bool {
        // The `log` crate's metadata fields (when log records are bridged) are not event fields.
        field.name().starts_with("log.")
    }

    fn message_from(&mut self, render: impl FnOnce(&mut String)) {
        render(&mut self.message);
        if let std::borrow::Cow::Owned(masked) = mask_urls(&self.message) {
            self.message = masked;
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if Self::skip(field) {
            return;
        }
        if field.name() == "message" {
            self.message_from(|m| m.push_str(value));
        } else if !self.masked(field) {
            self.field_name(field.name());
            self.string_value(value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if Self::skip(field) {
            return;
        }
        if field.name() == "message" {
            self.message_from(|m| {
                let _ = write!(m, "{value:?}");
            });
        } else if !self.masked(field) {
            let mut scratch = std::mem::take(&mut self.scratch);
            scratch.clear();
            let _ = write!(scratch, "{value:?}");
            self.field_name(field.name());
            self.plain_value(&scratch);
            self.scratch = scratch;
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.record_debug(field, &format_args!("{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if !Self::skip(field) && !self.masked(field) {
            self.field_name(field.name());
            push_i64(&mut self.fields, value);
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if !Self::skip(field) && !self.masked(field) {
            self.field_name(field.name());
            push_u64(&mut self.fields, value);
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if !Self::skip(field) && !self.masked(field) {
            self.field_name(field.name());
            self.fields.push_str(if value { "true" } else { "false" });
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if !Self::skip(field) && !self.masked(field) {
            self.field_name(field.name());
            if value.is_finite() {
                let _ = write!(self.fields, "{value}");
            } else {
                // JSON has no NaN or infinity; a string keeps the information.
                let text = value.to_string();
                self.string_value(&text);
            }
        }
    }
}

/// Appends the whole line (with its `\n`) for `head` and the rendered `fields` to `out`.
pub(crate) fn line(out: &mut String, head: &Head<'_>, fields: &Fields) {
    match fields.format {
        LogFormat::Json => {
            out.push_str("{\"timestamp\":\"");
            out.push_str(head.timestamp);
            out.push_str("\",\"level\":\"");
            out.push_str(head.level.as_str());
            out.push_str("\",\"target\":");
            json_string(out, head.target);
            out.push_str(",\"message\":");
            json_string(out, &fields.message);
            out.push_str(",\"fields\":{");
            out.push_str(&fields.fields);
            out.push_str("},\"spans\":[");
            for (i, span) in head.spans.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(out, span);
            }
            out.push_str("]}\n");
        }
        LogFormat::Text => {
            out.push_str(head.timestamp);
            let _ = write!(out, " {:>5} ", head.level.as_str());
            out.push_str(head.target);
            out.push_str(": ");
            for span in head.spans {
                out.push_str(span);
                out.push_str(": ");
            }
            text_plain(out, &fields.message);
            out.push_str(&fields.fields);
            out.push('\n');
        }
    }
}

/// A line this crate writes about itself (dropped lines, a sink failing or recovering).
pub(crate) fn own_line(format: LogFormat, level: tracing::Level, message: &str, numbers: &[(&str, u64)]) -> String {
    let mut timestamp_text = String::new();
    timestamp(&mut timestamp_text);
    let mut fields = Fields::new(format);
    fields.message.push_str(message);
    for (name, value) in numbers {
        fields.field_name(name);
        let _ = write!(fields.fields, "{value}");
    }
    let head = Head { timestamp: &timestamp_text, level: &level, target: crate::OWN_TARGET, spans: &[] };
    let mut out = String::new();
    line(&mut out, &head, &fields);
    out
}

/// Appends `value` as a JSON string literal.
///
/// The bytes that need no escaping are skipped eight at a time (then one at a time through a table) and
/// copied in one piece: most field names and values need no escaping at all.
pub(crate) fn json_string(out: &mut String, value: &str) {
    out.reserve(value.len() + 2);
    out.push('"');
    let bytes = value.as_bytes();
    let (mut start, mut at) = (0, 0);
    loop {
        while let Some(word) = bytes.get(at..at + 8) {
            if any_needs_escape(u64::from_le_bytes(word.try_into().unwrap_or_default())) {
                break;
            }
            at += 8;
        }
        while at < bytes.len() && !NEEDS_ESCAPE[usize::from(bytes[at])] {
            at += 1;
        }
        let Some(&b) = bytes.get(at) else {
            break;
        };
        out.push_str(&value[start..at]);
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            _ => {
                let _ = write!(out, "\\u{b:04x}");
            }
        }
        at += 1;
        start = at;
    }
    out.push_str(&value[start..]);
    out.push('"');
}

/// The bytes a JSON string literal cannot hold as they are (DEL too, to keep lines plain).
const NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = b < 0x20 || b == b'"' as usize || b == b'\\' as usize || b == 0x7f;
        b += 1;
    }
    table
};

/// Whether any of the eight bytes of `word` is below 0x20, `"`, `\\` or 0x7f (exact, no false negatives;
/// "Determine if a word has a byte less than n" from Bit Twiddling Hacks, valid for n ≤ 128).
const fn any_needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const fn has_zero_byte(v: u64) -> u64 {
        v.wrapping_sub(ONES) & !v & HIGH
    }
    let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    (below_space
        | has_zero_byte(word ^ (ONES * b'"' as u64))
        | has_zero_byte(word ^ (ONES * b'\\' as u64))
        | has_zero_byte(word ^ (ONES * 0x7f)))
        != 0
}

/// Appends `value` with line breaks escaped, so one event stays one line.
fn text_plain(out: &mut String, value: &str) {
    if !value.contains(['\n', '\r']) {
        out.push_str(value);
        return;
    }
    for c in value.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_escape_quotes_backslashes_and_controls() {
        let mut out = String::new();
        json_string(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(out, r#""a\"b\\c\nd\u0001é""#);
        assert_eq!(serde_json::from_str::<String>(&out).unwrap(), "a\"b\\c\nd\u{1}é");
    }

    #[test]
    fn json_strings_escape_at_every_position_of_a_word() {
        for special in ["\"", "\\", "\n", "\u{1}", "\u{1f}", "\u{7f}", "\t"] {
            for at in 0..20 {
                let value = format!("{}{special}{}é ok", "a".repeat(at), "b".repeat(19 - at));
                let mut out = String::new();
                json_string(&mut out, &value);
                assert_eq!(serde_json::from_str::<String>(&out).unwrap(), value, "{out}");
            }
        }
        for b in 0u8..=0x7f {
            let value = format!("0123456789{}abcdef", b as char);
            let mut out = String::new();
            json_string(&mut out, &value);
            assert_eq!(serde_json::from_str::<String>(&out).unwrap(), value);
        }
    }

    #[test]
    fn timestamps_are_rfc3339_with_microseconds_and_an_offset() {
        for _ in 0..3 {
            let mut out = String::new();
            timestamp(&mut out);
            let parsed = chrono::DateTime::parse_from_rfc3339(&out).unwrap();
            assert!((chrono::Utc::now() - parsed.to_utc()).num_seconds().abs() < 5, "{out}");
            assert_eq!(out.len(), "2026-12-01T20:29:13.123456+00:00".len(), "{out}");
        }
    }

    #[test]
    fn numbers_are_written_as_display_writes_them() {
        for value in [0, 1, 9, 10, 99, 100, 12_345, i64::MAX, -1, -10, i64::MIN] {
            let mut out = String::new();
            push_i64(&mut out, value);
            assert_eq!(out, value.to_string());
        }
        let mut out = String::new();
        push_u64(&mut out, u64::MAX);
        assert_eq!(out, u64::MAX.to_string());
        for (value, text) in [(0, "000000"), (7, "000007"), (123_456, "123456"), (999_999, "999999")] {
            let mut out = String::new();
            push_micros(&mut out, value);
            assert_eq!(out, text);
        }
    }

    #[test]
    fn own_lines_are_valid_json() {
        let line = own_line(LogFormat::Json, tracing::Level::WARN, "dropped", &[("dropped", 3)]);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["fields"]["dropped"], 3);
        assert_eq!(v["level"], "WARN");
        assert!(line.ends_with('\n'));
    }
}
