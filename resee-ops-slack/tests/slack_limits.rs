//! Oracles for Slack's own limits, as an outside checker applies them: a stand-in that judges every message
//! by Slack's documented limits (counted as Slack counts: UTF-16 code units, JavaScript's string length) and
//! rate-limits the webhook as Slack does (about one message per second, then `429` with `Retry-After`).
//!
//! Limits (Slack's docs): top-level `text` 40,000 characters; at most 50 blocks in a message (the message's
//! blocks and its attachment's blocks together, the strict reading); a header's text 150; a section's text
//! 3,000; at most 10 fields per section, each 2,000; a context at most 10 elements.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use resee_ops_core::{Alert, Notifier, NotifyOutcome, RetryPolicy, Severity};
use resee_ops_slack::SlackNotifier;
use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const WEBHOOK_PATH: &str = "/services/T0001/B0002/s3cr3tT0k3nXYZ";
const CUT: &str = "… [truncated]";

/// Slack's count: UTF-16 code units.
fn len(s: &str) -> usize {
    s.encode_utf16().count()
}

fn text_of(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// `mrkdwn` that Slack would not misread: every `&` starts one of the three entities, and the only `<` is
/// the date token this crate writes.
fn check_escaped(s: &str) -> Result<(), String> {
    for (i, _) in s.match_indices('&') {
        let rest = &s[i..];
        if !(rest.starts_with("&amp;") || rest.starts_with("&lt;") || rest.starts_with("&gt;")) {
            return Err(format!("a bare or cut entity at {i}: {:?}", &rest[..rest.len().min(8)]));
        }
    }
    for (i, _) in s.match_indices('<') {
        if !s[i..].starts_with("<!date^") {
            return Err(format!("raw < at {i}"));
        }
    }
    Ok(())
}

/// Judges a message body by Slack's limits; the reason when Slack would refuse or truncate it.
fn verdict(body: &Value) -> Result<(), String> {
    let text = text_of(&body["text"]);
    if text.trim().is_empty() {
        return Err("no_text".into());
    }
    if len(text) > 40_000 {
        return Err(format!("text of {} would be truncated by Slack", len(text)));
    }
    check_escaped(text)?;
    if text.contains('\u{FFFD}') {
        return Err("a replacement character: a character was cut".into());
    }
    let top = body["blocks"].as_array().cloned().unwrap_or_default();
    let attachments = body["attachments"].as_array().cloned().unwrap_or_default();
    let mut all = top.clone();
    for a in &attachments {
        all.extend(a["blocks"].as_array().cloned().unwrap_or_default());
    }
    if all.len() > 50 {
        return Err(format!("{} blocks in the message", all.len()));
    }
    for block in &all {
        match block["type"].as_str() {
            Some("header") => {
                let t = text_of(&block["text"]["text"]);
                if block["text"]["type"] != "plain_text" || t.is_empty() || len(t) > 150 {
                    return Err(format!("header of {}", len(t)));
                }
            }
            Some("section") => {
                let fields = block["fields"].as_array();
                let t = block["text"]["text"].as_str();
                if fields.is_none() && t.is_none() {
                    return Err("a section without text or fields".into());
                }
                if let Some(t) = t {
                    if t.is_empty() || len(t) > 3_000 {
                        return Err(format!("section text of {}", len(t)));
                    }
                    check_escaped(t)?;
                }
                if let Some(fields) = fields {
                    if fields.is_empty() || fields.len() > 10 {
                        return Err(format!("{} fields in a section", fields.len()));
                    }
                    for f in fields {
                        let t = text_of(&f["text"]);
                        if t.is_empty() || len(t) > 2_000 {
                            return Err(format!("field text of {}", len(t)));
                        }
                        check_escaped(t)?;
                    }
                }
            }
            Some("context") => {
                let elements = block["elements"].as_array().ok_or("context without elements")?;
                if elements.is_empty() || elements.len() > 10 {
                    return Err(format!("{} context elements", elements.len()));
                }
                for e in elements {
                    let t = text_of(&e["text"]);
                    if t.is_empty() || len(t) > 3_000 {
                        return Err(format!("context text of {}", len(t)));
                    }
                    check_escaped(t)?;
                }
            }
            other => return Err(format!("unexpected block {other:?}")),
        }
    }
    Ok(())
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// `shown` is `full` itself, or a prefix of it cut on a character (never inside an entity) followed by the
/// visible marker, at most `max` long and not much shorter (a cut keeps as much as fits).
fn fitted(shown: &str, full: &str, max: usize) -> Result<(), String> {
    if shown == full {
        return if len(full) <= max { Ok(()) } else { Err(format!("{} over {max} and not cut", len(full))) };
    }
    let kept = shown.strip_suffix(CUT).ok_or_else(|| format!("cut without the marker: …{:?}", tail(shown)))?;
    if !full.starts_with(kept) {
        return Err(format!("the kept part is not a prefix of the original: …{:?}", tail(kept)));
    }
    if len(shown) > max {
        return Err(format!("cut to {} over {max}", len(shown)));
    }
    // At most an entity (5) and a surrogate pair (2) short of the limit.
    if len(shown) + 7 < max {
        return Err(format!("cut to {} far under {max}", len(shown)));
    }
    Ok(())
}

fn tail(s: &str) -> &str {
    let start = s.char_indices().rev().nth(10).map_or(0, |(i, _)| i);
    &s[start..]
}

/// Characters that stress the counting: 1 to 4 UTF-8 bytes, surrogate pairs, joiners and variation selectors
/// (parts of one emoji), and the three characters Slack escapes.
const POOL: &[&str] = &["a", " ", "é", "한", "€", "🔥", "👨", "\u{200D}", "\u{FE0F}", "&", "<", ">", "*", "\n"];

/// A deterministic string of `n` characters from the pool (a small LCG, so that huge strings are cheap).
fn gen_text(seed: u64, n: usize) -> String {
    let mut x = seed | 1;
    let mut s = String::new();
    for _ in 0..n {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        s.push_str(POOL[(x >> 33) as usize % POOL.len()]);
    }
    s
}

fn notifier() -> SlackNotifier {
    SlackNotifier::builder().with_webhook_url(format!("http://127.0.0.1:9{WEBHOOK_PATH}")).build().unwrap()
}

/// Renders `alert` and checks it against Slack's limits, and that each text shows as much of the alert
/// as fits.
fn check_render(n: &SlackNotifier, alert: &Alert) -> Result<Value, String> {
    let body: Value = serde_json::from_str(&n.render(alert)).map_err(|e| e.to_string())?;
    verdict(&body)?;
    let inner = body["attachments"][0]["blocks"].as_array().ok_or("no attachment blocks")?;
    if !alert.text.trim().is_empty() {
        fitted(text_of(&inner[0]["text"]["text"]), &escape(&alert.text), 3_000).map_err(|e| format!("section: {e}"))?;
    }
    let header = text_of(&body["blocks"][0]["text"]["text"]);
    let emoji = header.split(' ').next().unwrap_or_default();
    let title = if alert.title.trim().is_empty() { &alert.name } else { &alert.title };
    if !title.trim().is_empty() {
        let full = if alert.is_resolved() { format!("{emoji} Recovered: {title}") } else { format!("{emoji} {title}") };
        fitted(header, &full, 150).map_err(|e| format!("header: {e}"))?;
    }
    let shown_fields: usize = inner
        .iter()
        .filter_map(|b| b["fields"].as_array())
        .map(|f| f.iter().map(|f| text_of(&f["text"])).filter(|t| !t.is_empty()).count())
        .sum();
    let note = inner.iter().any(|b| text_of(&b["elements"][0]["text"]).contains("more fields not shown"));
    if shown_fields < alert.fields.len() && !note {
        return Err(format!("{} of {} fields shown and no note", shown_fields, alert.fields.len()));
    }
    Ok(body)
}

#[test]
fn alerts_at_slacks_boundaries_fit() {
    let n = notifier();
    for (title_len, text_len, fields) in
        [(149, 2_999, 10), (150, 3_000, 11), (151, 3_001, 460), (400, 40_001, 461), (1, 39_990, 0), (148, 0, 600)]
    {
        for seed in [1, 2, 3] {
            let mut alert = Alert::new("boundary", Severity::Warning, gen_text(seed, title_len))
                .with_text(gen_text(seed + 10, text_len))
                .with_source(gen_text(seed + 20, 600))
                .with_label(gen_text(seed + 30, 1_500), gen_text(seed + 40, 1_500));
            for i in 0..fields {
                alert = alert.with_field(gen_text(seed + i, 210), gen_text(seed + i + 1, 2_010));
            }
            check_render(&n, &alert).unwrap_or_else(|e| panic!("{title_len}/{text_len}/{fields}/{seed}: {e}"));
            check_render(&n, &alert.resolved()).unwrap_or_else(|e| panic!("resolved {title_len}/{text_len}: {e}"));
        }
    }
}

#[test]
fn many_fields_keep_the_whole_message_within_50_blocks() {
    let n = notifier();
    for fields in [0, 1, 9, 10, 11, 459, 460, 461, 470, 1_000] {
        let mut alert = Alert::new("fields", Severity::Error, "Fields").with_text("body");
        for i in 0..fields {
            alert = alert.with_field(format!("f{i}"), "v");
        }
        let body = check_render(&n, &alert).unwrap_or_else(|e| panic!("{fields} fields: {e}"));
        let total =
            body["blocks"].as_array().unwrap().len() + body["attachments"][0]["blocks"].as_array().unwrap().len();
        assert!(total <= 50, "{fields} fields: {total} blocks");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Any mix of multi-byte characters, surrogate pairs, joiners and escaped characters, at lengths around
    /// each limit: the message stays within Slack's limits and every cut text is a prefix of the original.
    #[test]
    fn any_unicode_near_the_limits_fits(
        seed in any::<u64>(),
        title_len in prop_oneof![0usize..5, 140usize..160, 300usize..320],
        text_len in prop_oneof![0usize..5, 2_990usize..3_010, 39_990usize..40_010],
        fields in prop_oneof![0usize..12, 455usize..470],
        name_len in 0usize..220,
        value_len in prop_oneof![0usize..5, 1_990usize..2_010],
    ) {
        let mut alert = Alert::new(gen_text(seed ^ 7, 20), Severity::Error, gen_text(seed, title_len))
            .with_text(gen_text(seed ^ 1, text_len));
        for i in 0..fields {
            alert = alert.with_field(gen_text(seed ^ (i as u64 + 2), name_len), gen_text(seed ^ (i as u64 + 3), value_len));
        }
        if let Err(e) = check_render(&notifier(), &alert) {
            prop_assert!(false, "{}", e);
        }
    }
}

// ---- Over HTTP: a stand-in with Slack's limits and Slack's rate limit ----

/// What the stand-in saw.
#[derive(Debug, Clone)]
enum Seen {
    Accepted { at: Instant, title: String },
    Limited { at: Instant, until: Instant },
    Refused { why: String },
}

/// Slack as an outside checker fakes it: a message over the limits is refused (`400 invalid_blocks`), and
/// more than one message per `min_gap` is answered `429` with `Retry-After: retry_after` seconds.
#[derive(Clone)]
struct StandIn {
    min_gap: Duration,
    retry_after: u64,
    state: Arc<Mutex<(Option<Instant>, Vec<Seen>)>>,
}

impl StandIn {
    fn new(min_gap: Duration, retry_after: u64) -> Self {
        Self { min_gap, retry_after, state: Arc::default() }
    }

    async fn mount(&self, server: &MockServer) {
        Mock::given(method("POST")).and(path(WEBHOOK_PATH)).respond_with(self.clone()).mount(server).await;
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().1.clone()
    }
}

impl Respond for StandIn {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap();
        let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
            state.1.push(Seen::Refused { why: "invalid_payload".into() });
            return ResponseTemplate::new(400).set_body_string("invalid_payload");
        };
        if let Err(why) = verdict(&body) {
            state.1.push(Seen::Refused { why: why.clone() });
            return ResponseTemplate::new(400).set_body_string(format!("invalid_blocks\n{why}"));
        }
        if state.0.is_some_and(|last| now - last < self.min_gap) {
            let until = now + Duration::from_secs(self.retry_after);
            state.1.push(Seen::Limited { at: now, until });
            return ResponseTemplate::new(429)
                .insert_header("retry-after", self.retry_after.to_string().as_str())
                .set_body_string("rate_limited");
        }
        state.0 = Some(now);
        let title = text_of(&body["blocks"][0]["text"]["text"]).to_owned();
        state.1.push(Seen::Accepted { at: now, title });
        ResponseTemplate::new(200).set_body_string("ok")
    }
}

/// Six alerts at once with the default pacing (a burst of three, then one per second) against a webhook
/// that takes one message per second and answers the rest `429`, `Retry-After: 2`: every alert is delivered
/// exactly once, and after a 429 nothing reaches Slack before its `Retry-After` has passed (but for
/// requests already in flight when it was sent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_holds_every_sender_of_the_webhook() {
    let server = MockServer::start().await;
    let slack = StandIn::new(Duration::from_millis(900), 2);
    slack.mount(&server).await;
    let n = SlackNotifier::builder()
        .with_webhook_url(format!("{}{WEBHOOK_PATH}", server.uri()))
        .with_retry(RetryPolicy::default().with_max_attempts(20).with_deadline(Duration::from_secs(60)))
        .build()
        .unwrap();
    let sends = (0..6).map(|i| {
        let n = n.clone();
        async move { n.notify(&Alert::new("storm", Severity::Warning, format!("Alert {i}"))).await }
    });
    for outcome in futures_util::future::join_all(sends).await {
        assert!(matches!(outcome, NotifyOutcome::Delivered), "{outcome}");
    }
    let seen = slack.seen();
    let mut titles: Vec<&str> = seen
        .iter()
        .filter_map(|s| match s {
            Seen::Accepted { title, .. } => Some(title.as_str()),
            _ => None,
        })
        .collect();
    titles.sort();
    let want: Vec<String> = (0..6).map(|i| format!("⚠️ Alert {i}")).collect();
    assert_eq!(titles, want, "each alert delivered once: {seen:?}");
    assert!(seen.iter().any(|s| matches!(s, Seen::Limited { .. })), "the burst met the limit: {seen:?}");
    if let Some(Seen::Refused { why }) = seen.iter().find(|s| matches!(s, Seen::Refused { .. })) {
        panic!("the stand-in refused a message: {why}");
    }
    // In flight: requests sent before the 429 reached us arrive within a few milliseconds of it.
    let in_flight = Duration::from_millis(150);
    for (i, s) in seen.iter().enumerate() {
        let Seen::Limited { at, until } = s else { continue };
        for later in &seen[i + 1..] {
            let arrived = match later {
                Seen::Accepted { at, .. } | Seen::Limited { at, .. } => *at,
                Seen::Refused { .. } => continue,
            };
            assert!(
                arrived <= *at + in_flight || arrived >= *until,
                "a request arrived {:?} after a 429 that asked for 2 s: {seen:?}",
                arrived - *at
            );
        }
    }
}

/// The biggest alert still goes through a stand-in that applies Slack's limits strictly.
#[tokio::test]
async fn a_huge_unicode_alert_is_accepted_by_a_strict_stand_in() {
    let server = MockServer::start().await;
    let slack = StandIn::new(Duration::ZERO, 1);
    slack.mount(&server).await;
    let n = SlackNotifier::builder()
        .with_webhook_url(format!("{}{WEBHOOK_PATH}", server.uri()))
        .with_pacing(Duration::ZERO, 1)
        .build()
        .unwrap();
    let mut alert = Alert::new("huge", Severity::Error, gen_text(5, 500))
        .with_text(gen_text(6, 50_000))
        .with_source(gen_text(7, 2_000))
        .with_label(gen_text(8, 3_000), gen_text(9, 3_000));
    for i in 0..600 {
        alert = alert.with_field(gen_text(i, 300), gen_text(i + 1, 2_500));
    }
    let outcome = n.notify(&alert).await;
    assert!(matches!(outcome, NotifyOutcome::Delivered), "{outcome}: {:?}", slack.seen());
    assert!(matches!(n.notify(&alert.resolved()).await, NotifyOutcome::Delivered), "{:?}", slack.seen());
}
