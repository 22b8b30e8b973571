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
    /// The formatted date, time to the second and offset of the last second seen on this thread: most
    /// events share their second with the one before, so only the microseconds are formatted anew.
    struct Second {
        unix: i64,
        date_time: String,
        offset: String,
    }
    thread_local! {
        static SECOND: std::cell::RefCell<Second> =
            const { std::cell::RefCell::new(Second { unix: i64::MIN, date_time: String::new(), offset: String::new() }) };
    }
    let now = chrono::Local::now();
    let unix = now.timestamp();
    // A leap second shows as 1,000,000 µs or more: clamp into the second.
    let micros = now.timestamp_subsec_micros().min(999_999);
    SECOND.with(|cell| {
        let Ok(mut second) = cell.try_borrow_mut() else {
            let _ = write!(out, "{}", now.format("%Y-%m-%dT%H:%M:%S%.6f%:z"));
            return;
        };
        if second.unix != unix {
            second.unix = unix;
            second.date_time.clear();
            let _ = write!(second.date_time, "{}", now.format("%Y-%m-%dT%H:%M:%S"));
            second.offset.clear();
            let _ = write!(second.offset, "{}", now.format("%:z"));
        }
        out.push_str(&second.date_time);
        let _ = write!(out, ".{micros:06}");
        out.push_str(&second.offset);
    });
}

/// The event's message and fields, rendered once for one format.
pub(crate) struct Fields {
    format: LogFormat,
    pub(crate) message: String,
    pub(crate) fields: String,
    scratch: String,
}

impl Fields {
    pub(crate) fn new(format: LogFormat) -> Self {
        Self { format, message: String::new(), fields: String::new(), scratch: String::new() }
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
        if is_secret_field(field.name()) {
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
        if self.message.contains("://")
            && let std::borrow::Cow::Owned(masked) = mask_urls(&self.message)
        {
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
            let _ = write!(self.fields, "{value}");
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if !Self::skip(field) && !self.masked(field) {
            self.field_name(field.name());
            let _ = write!(self.fields, "{value}");
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
pub(crate) fn json_string(out: &mut String, value: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in value.bytes().enumerate() {
        let escaped = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f | 0x7f => "",
            _ => continue,
        };
        out.push_str(&value[start..i]);
        if escaped.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escaped);
        }
        start = i + 1;
    }
    out.push_str(&value[start..]);
    out.push('"');
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
    fn own_lines_are_valid_json() {
        let line = own_line(LogFormat::Json, tracing::Level::WARN, "dropped", &[("dropped", 3)]);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["fields"]["dropped"], 3);
        assert_eq!(v["level"], "WARN");
        assert!(line.ends_with('\n'));
    }
}
