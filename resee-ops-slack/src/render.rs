//! Turning an [`Alert`] into a Slack message that Slack accepts, whatever the alert holds.

use resee_ops_core::{Alert, Severity};
use serde::Serialize;

/// Slack's limits, as documented for `chat.postMessage` and Block Kit. Lengths are counted in UTF-16 code
/// units, which is never less than the character count Slack uses, so a fitted text is always accepted.
pub(crate) mod limits {
    /// The top-level `text`.
    pub(crate) const TEXT: usize = 40_000;
    /// The text of a section block.
    pub(crate) const SECTION_TEXT: usize = 3_000;
    /// The text of one field of a section block.
    pub(crate) const FIELD_TEXT: usize = 2_000;
    /// Fields per section block.
    pub(crate) const FIELDS_PER_SECTION: usize = 10;
    /// The text of a header block.
    pub(crate) const HEADER: usize = 150;
    /// Blocks per message: the message's own blocks and its attachment's blocks together, the strict
    /// reading of Slack's "up to 50 blocks in each message".
    pub(crate) const BLOCKS: usize = 50;
    /// Elements of a context block.
    pub(crate) const CONTEXT_ELEMENTS: usize = 10;
    /// The text of one context element (we keep well under the 3,000 of a text object).
    pub(crate) const CONTEXT_TEXT: usize = 2_000;
}

/// What is appended where a text was cut.
const CUT: &str = "… [truncated]";

/// Message-wide overrides, where the webhook allows them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Overrides {
    pub(crate) username: Option<String>,
    pub(crate) icon_emoji: Option<String>,
    pub(crate) icon_url: Option<String>,
    pub(crate) channel: Option<String>,
}

/// The emoji shown with each level.
pub(crate) fn emoji(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "🔴",
        Severity::Warning => "⚠️",
        Severity::Success => "✅",
        // Info, and any level a later core adds (`Severity` is non-exhaustive).
        _ => "ℹ️",
    }
}

/// The colour bar of each level (legacy attachment colour).
pub(crate) fn colour(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "#E01E5A",
        Severity::Warning => "#ECB22E",
        Severity::Success => "#2EB67D",
        _ => "#36C5F0",
    }
}

/// Escapes the three characters Slack treats as control characters in `mrkdwn` text.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

fn len16(s: &str) -> usize {
    s.encode_utf16().count()
}

/// `s` (already escaped or plain) cut visibly to at most `max` UTF-16 units, never inside an `&…;` entity.
fn cut(s: String, max: usize, escaped: bool) -> String {
    if len16(&s) <= max {
        return s;
    }
    let budget = max.saturating_sub(len16(CUT));
    let mut used = 0;
    let mut end = 0;
    for (i, c) in s.char_indices() {
        if used + c.len_utf16() > budget {
            break;
        }
        used += c.len_utf16();
        end = i + c.len_utf8();
    }
    let mut kept = &s[..end];
    if escaped
        && let Some(amp) = kept.rfind('&')
        && !kept[amp..].contains(';')
    {
        kept = &kept[..amp];
    }
    format!("{kept}{CUT}")
}

/// Escaped `mrkdwn` text, fitted to `max`.
fn mrkdwn(s: &str, max: usize) -> String {
    cut(escape(s), max, true)
}

/// Plain text (shown as is by Slack, so not escaped), fitted to `max`.
fn plain(s: &str, max: usize) -> String {
    cut(s.to_owned(), max, false)
}

fn title(alert: &Alert) -> &str {
    if !alert.title.trim().is_empty() {
        &alert.title
    } else if !alert.name.trim().is_empty() {
        &alert.name
    } else {
        "Untitled alert"
    }
}

/// A text object of Block Kit.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Text {
    PlainText { text: String, emoji: bool },
    Mrkdwn { text: String },
}

/// The blocks this crate uses.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Header {
        text: Text,
    },
    Section {
        #[serde(skip_serializing_if = "Option::is_none")]
        text: Option<Text>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        fields: Vec<Text>,
    },
    Context {
        elements: Vec<Text>,
    },
}

#[derive(Serialize)]
struct Attachment {
    color: &'static str,
    fallback: String,
    blocks: Vec<Block>,
}

/// The body posted to the webhook.
#[derive(Serialize)]
pub(crate) struct Message<'a> {
    text: String,
    blocks: [Block; 1],
    attachments: [Attachment; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    icon_emoji: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    icon_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<&'a str>,
}

impl Message<'_> {
    /// The JSON body.
    pub(crate) fn to_json(&self) -> String {
        // Serializing these types cannot fail: string keys, no maps, no floats.
        serde_json::to_string(self).unwrap_or_default()
    }
}

fn md(text: String) -> Text {
    Text::Mrkdwn { text }
}

/// The Slack message for `alert`.
///
/// Layout: a fallback `text` (used in notifications), a header block with the emoji and title, and one
/// coloured attachment holding the text section, the fields (two columns, ten per section), and a
/// context line with level, source, time and labels.
pub(crate) fn render<'a>(alert: &Alert, overrides: &'a Overrides) -> Message<'a> {
    let emoji = emoji(alert.severity);
    let title = title(alert);
    let resolved = alert.is_resolved();
    let headline = if resolved { format!("{emoji} Recovered: {title}") } else { format!("{emoji} {title}") };

    let mut fallback = if resolved {
        format!("{emoji} [RECOVERED] {title}")
    } else {
        format!("{emoji} [{}] {title}", alert.severity.as_str().to_uppercase())
    };
    if !alert.text.is_empty() {
        fallback.push('\n');
        fallback.push_str(&alert.text);
    }

    let mut blocks: Vec<Block> = Vec::new();
    if !alert.text.trim().is_empty() {
        blocks.push(Block::Section { text: Some(md(mrkdwn(&alert.text, limits::SECTION_TEXT))), fields: Vec::new() });
    }

    // Room for the header (the message's own block), the text section, the context line and a "more
    // fields" note: 50 blocks in the whole message, attachment included.
    let max_field_sections = limits::BLOCKS - 4;
    let shown = alert.fields.len().min(max_field_sections * limits::FIELDS_PER_SECTION);
    for chunk in alert.fields[..shown].chunks(limits::FIELDS_PER_SECTION) {
        let fields = chunk
            .iter()
            .map(|f| {
                let name = if f.name.trim().is_empty() { "(unnamed)" } else { &f.name };
                let value = if f.value.trim().is_empty() { "–" } else { &f.value };
                // Both halves fitted, so that a long value never hides the name.
                let name = mrkdwn(name, 200);
                let value = mrkdwn(value, limits::FIELD_TEXT - len16(&name) - 4);
                md(format!("*{name}*\n{value}"))
            })
            .collect();
        blocks.push(Block::Section { text: None, fields });
    }
    if shown < alert.fields.len() {
        let more = alert.fields.len() - shown;
        blocks.push(Block::Context { elements: vec![md(format!("… {more} more fields not shown"))] });
    }

    let mut context: Vec<Text> = Vec::with_capacity(5);
    let status = if resolved { "recovered" } else { "firing" };
    context.push(md(format!("*{}* · {status}", alert.severity.as_str())));
    if !alert.source.is_empty() {
        context.push(md(format!("*Source:* {}", mrkdwn(&alert.source, 500))));
    }
    let ts = alert.timestamp;
    context.push(md(format!(
        "<!date^{}^{{date_short_pretty}} {{time_secs}}|{}>",
        ts.timestamp(),
        ts.format("%Y-%m-%d %H:%M:%S UTC")
    )));
    if !alert.labels.is_empty() {
        let labels = alert.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ");
        context.push(md(mrkdwn(&labels, limits::CONTEXT_TEXT)));
    }
    if !alert.name.is_empty() {
        context.push(md(mrkdwn(&alert.name, 500)));
    }
    context.truncate(limits::CONTEXT_ELEMENTS);
    blocks.push(Block::Context { elements: context });
    debug_assert!(blocks.len() < limits::BLOCKS, "the header block counts too");

    let header = plain(&headline, limits::HEADER);
    Message {
        text: mrkdwn(&fallback, limits::TEXT),
        attachments: [Attachment { color: colour(alert.severity), fallback: header.clone(), blocks }],
        blocks: [Block::Header { text: Text::PlainText { text: header, emoji: true } }],
        username: overrides.username.as_deref(),
        icon_emoji: overrides.icon_emoji.as_deref(),
        icon_url: overrides.icon_url.as_deref(),
        channel: overrides.channel.as_deref(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_and_cut_keep_entities_whole() {
        assert_eq!(escape("a < b && c > d"), "a &lt; b &amp;&amp; c &gt; d");
        let s = "&".repeat(100);
        let fitted = mrkdwn(&s, 30);
        assert!(len16(&fitted) <= 30, "{fitted}");
        assert!(fitted.ends_with(CUT));
        let body = fitted.trim_end_matches(CUT);
        assert_eq!(body, "&amp;".repeat(body.len() / 5), "only whole entities are kept");
        assert_eq!(mrkdwn("short", 30), "short");
    }

    #[test]
    fn cut_counts_utf16_units() {
        let s = "🔥".repeat(100);
        let fitted = plain(&s, 21);
        assert!(len16(&fitted) <= 21);
        assert!(fitted.starts_with("🔥🔥🔥🔥"));
    }
}
