//! [`Rule`]: a threshold over a source's value, with its semantics.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use resee_ops_core::Severity;
use resee_ops_core::serde_duration::parse_duration;
use serde::{Deserialize, Serialize};

use crate::MonitorError;
use crate::metrics::measure::Measure;

/// How a value is compared with the threshold.
///
/// ```
/// use resee_ops_monitor::Comparison;
/// let c: Comparison = serde_json::from_str(r#"">=""#).unwrap();
/// assert_eq!(c, Comparison::AtLeast);
/// assert!(c.holds(5.0, 5.0) && !Comparison::Above.holds(5.0, 5.0));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Comparison {
    /// `>`
    #[serde(rename = ">", alias = "above")]
    Above,
    /// `>=`
    #[serde(rename = ">=", alias = "at_least")]
    AtLeast,
    /// `<`
    #[serde(rename = "<", alias = "below")]
    Below,
    /// `<=`
    #[serde(rename = "<=", alias = "at_most")]
    AtMost,
}

impl Comparison {
    /// Whether `value` is on the alerting side of `threshold`.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Self::Above => value > threshold,
            Self::AtLeast => value >= threshold,
            Self::Below => value < threshold,
            Self::AtMost => value <= threshold,
        }
    }

    /// `>`, `>=`, `<` or `<=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Above => ">",
            Self::AtLeast => ">=",
            Self::Below => "<",
            Self::AtMost => "<=",
        }
    }

    fn alerts_upwards(self) -> bool {
        matches!(self, Self::Above | Self::AtLeast)
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a rule does when its source has no data (or too few observations) or fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DataPolicy {
    /// Nothing changes: a firing rule keeps firing, a pending one stays pending, an inactive one inactive.
    #[default]
    KeepState,
    /// The condition counts as holding: the rule goes pending, then fires (its alert says why).
    Alert,
    /// The condition counts as not holding: the rule clears, and its resolution says it was cleared by this
    /// policy, not by a value.
    Ok,
}

/// A threshold rule: a source and a [`Measure`] of it, a comparison with a threshold, and how it fires.
///
/// Semantics, evaluated by the [`RuleEvaluator`](crate::RuleEvaluator) on every interval:
///
/// 1. **Reading.** The measure is read under the source's timeout. No value, or fewer than `min_samples`
///    observations, is *no data* (an error rate over 3 requests is not a rate); a source error, a timeout,
///    NaN or an infinite value is an *error*. Neither is ever compared with the threshold; each follows its
///    [`DataPolicy`] (`on_no_data`, `on_error`; default [`DataPolicy::KeepState`], so a broken source never
///    clears a firing rule).
/// 2. **Condition.** `value <comparison> threshold`; once firing, `value <comparison> clear_threshold`
///    instead, when set (hysteresis: fire above 5 %, clear only below 4 %).
/// 3. **`for`.** The condition must hold on every evaluation for this long before the rule fires; until then
///    it is *pending*, and a single evaluation without it sends it back to inactive. Zero: fire at once.
/// 4. **`keep_firing_for`.** A firing rule stays firing this long after its condition stopped holding; if
///    the condition returns meanwhile, nothing was resolved.
/// 5. **Alerts.** Firing and resolution are [`Alert`](resee_ops_core::Alert)s named after the rule, with its
///    labels: the fingerprint is the rule name + labels (+ the evaluator's source), whatever the value.
///    Value, threshold and the measure are fields.
/// 6. **Flapping.** More than 4 firings and resolutions in 10 minutes (the evaluator's
///    [`FlapConfig`](resee_ops_core::FlapConfig), core's `FlapDetector`) send one `<rule>_flapping` notice and
///    hold the rule's alerts (not its state) until it keeps one state for the window; then the notice is
///    resolved and the state it settled in is reported.
///
/// ```
/// use std::time::Duration;
/// use resee_ops_core::Severity;
/// use resee_ops_monitor::{Measure, Rule};
///
/// let rule = Rule::new("error_rate", "http", Measure::ratio(Duration::from_secs(3600)))
///     .with_above(0.05)
///     .with_clear_threshold(0.04)
///     .with_min_samples(20)
///     .with_severity(Severity::Error)
///     .with_text("Error rate")
///     .with_for(Duration::from_secs(120));
/// assert!(rule.validate().is_ok());
///
/// // From configuration (TOML or JSON); errors name the rule and the field.
/// let err = serde_json::from_str::<Rule>(r#"{"name": "p95", "source": "http",
///     "value": {"kind": "quantile", "q": 1.5, "window": "5m"}, "threshold": 2}"#).unwrap_err();
/// assert!(err.to_string().contains("rule `p95`: field `value.q`"), "{err}");
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawRule")]
#[non_exhaustive]
pub struct Rule {
    /// Unique among the evaluator's rules; the alert name.
    pub name: String,
    /// The name the source was registered under.
    pub source: String,
    /// What is read from the source.
    pub value: Measure,
    /// How the value is compared. Default `>`.
    pub comparison: Comparison,
    /// The threshold. Never NaN.
    pub threshold: f64,
    /// The threshold that clears a firing rule, on the non-alerting side of `threshold`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clear_threshold: Option<f64>,
    /// The alert's severity. Default warning.
    pub severity: Severity,
    /// Identity labels of the alert.
    pub labels: BTreeMap<String, String>,
    /// What the rule watches, for people ("Payment failures"); the alert title starts with it.
    pub text: String,
    /// How long the condition must hold before firing. Default zero.
    #[serde(rename = "for", with = "resee_ops_core::serde_duration")]
    pub for_: Duration,
    /// How long a firing rule stays firing after its condition stopped holding. Default zero.
    #[serde(with = "resee_ops_core::serde_duration")]
    pub keep_firing_for: Duration,
    /// Fewer observations than this is no data. Default 1.
    pub min_samples: u64,
    /// What no data does. Default keep state.
    pub on_no_data: DataPolicy,
    /// What a source error does. Default keep state.
    pub on_error: DataPolicy,
}

impl Rule {
    /// A rule on `source`'s `value` that fires when it is above zero, with the defaults.
    pub fn new(name: impl Into<String>, source: impl Into<String>, value: Measure) -> Self {
        Self {
            name: name.into(),
            source: source.into(),
            value,
            comparison: Comparison::Above,
            threshold: 0.0,
            clear_threshold: None,
            severity: Severity::Warning,
            labels: BTreeMap::new(),
            text: String::new(),
            for_: Duration::ZERO,
            keep_firing_for: Duration::ZERO,
            min_samples: 1,
            on_no_data: DataPolicy::KeepState,
            on_error: DataPolicy::KeepState,
        }
    }

    /// Fires when the value is above `threshold`.
    pub fn with_above(self, threshold: f64) -> Self {
        self.with_comparison(Comparison::Above, threshold)
    }

    /// Fires when the value is below `threshold`.
    pub fn with_below(self, threshold: f64) -> Self {
        self.with_comparison(Comparison::Below, threshold)
    }

    /// Sets the comparison and threshold.
    pub fn with_comparison(mut self, comparison: Comparison, threshold: f64) -> Self {
        self.comparison = comparison;
        self.threshold = threshold;
        self
    }

    /// Sets the measure.
    pub fn with_value(mut self, value: Measure) -> Self {
        self.value = value;
        self
    }

    /// Sets the source.
    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.source = source.into();
        self
    }

    /// Sets the clear threshold (hysteresis).
    pub fn with_clear_threshold(mut self, clear: f64) -> Self {
        self.clear_threshold = Some(clear);
        self
    }

    /// Sets the severity.
    pub fn with_severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }

    /// Adds an identity label.
    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Sets the text.
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = text.into();
        self
    }

    /// Sets `for`.
    pub fn with_for(mut self, d: Duration) -> Self {
        self.for_ = d;
        self
    }

    /// Sets `keep_firing_for`.
    pub fn with_keep_firing_for(mut self, d: Duration) -> Self {
        self.keep_firing_for = d;
        self
    }

    /// Sets the minimum number of observations.
    pub fn with_min_samples(mut self, n: u64) -> Self {
        self.min_samples = n;
        self
    }

    /// Sets the no-data policy.
    pub fn with_on_no_data(mut self, policy: DataPolicy) -> Self {
        self.on_no_data = policy;
        self
    }

    /// Sets the source-error policy.
    pub fn with_on_error(mut self, policy: DataPolicy) -> Self {
        self.on_error = policy;
        self
    }

    /// What the alert title starts with: the text, or the name.
    pub(crate) fn subject(&self) -> &str {
        if self.text.is_empty() { &self.name } else { &self.text }
    }

    fn error(&self, field: &str, message: impl fmt::Display) -> MonitorError {
        crate::error::invalid_config(field_error(&self.name, field, message))
    }

    /// Checks what can be checked without the sources: a name, thresholds that are numbers on the right
    /// sides, windows above zero, a quantile strictly between 0 and 1. Errors name the rule and the field.
    pub fn validate(&self) -> Result<(), MonitorError> {
        if self.name.trim().is_empty() {
            return Err(crate::error::invalid_config("a rule has an empty `name`"));
        }
        if self.source.trim().is_empty() {
            return Err(self.error("source", "must name a source"));
        }
        if !self.threshold.is_finite() {
            return Err(self.error("threshold", format_args!("must be a finite number, got {}", self.threshold)));
        }
        if let Some(clear) = self.clear_threshold {
            if !clear.is_finite() {
                return Err(self.error("clear_threshold", format_args!("must be a finite number, got {clear}")));
            }
            let wrong_side =
                if self.comparison.alerts_upwards() { clear > self.threshold } else { clear < self.threshold };
            if wrong_side {
                return Err(self.error(
                    "clear_threshold",
                    format_args!("{clear} is on the alerting side of `{} {}`", self.comparison, self.threshold),
                ));
            }
        }
        if let Some(window) = self.value.window()
            && window.is_zero()
        {
            return Err(self.error("value.window", "must be above zero"));
        }
        if let Measure::Quantile { q, .. } = self.value
            && !(q > 0.0 && q < 1.0)
        {
            return Err(self.error("value.q", format_args!("must be strictly between 0 and 1, got {q}")));
        }
        Ok(())
    }
}

fn field_error(rule: &str, field: &str, message: impl fmt::Display) -> String {
    format!("rule `{rule}`: field `{field}`: {message}")
}

/// A duration as written in configuration, checked for its sign before it becomes a `Duration`.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawDuration {
    Secs(f64),
    Text(String),
}

impl RawDuration {
    fn parse(&self, rule: &str, field: &str) -> Result<Duration, String> {
        let negative = match self {
            Self::Secs(n) => n.is_sign_negative() || n.is_nan(),
            Self::Text(t) => t.trim().starts_with('-'),
        };
        let shown = match self {
            Self::Secs(n) => format!("{n}"),
            Self::Text(t) => format!("{t:?}"),
        };
        if negative {
            return Err(field_error(rule, field, format_args!("must not be negative, got {shown}")));
        }
        match self {
            Self::Secs(n) => Duration::try_from_secs_f64(*n).map_err(|e| field_error(rule, field, e)),
            Self::Text(t) => parse_duration(t).map_err(|e| field_error(rule, field, e.message())),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum RawKind {
    Last,
    Count,
    Rate,
    Ratio,
    Quantile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMeasure {
    kind: RawKind,
    window: Option<RawDuration>,
    q: Option<f64>,
    series: Option<String>,
}

fn default_comparison() -> Comparison {
    Comparison::Above
}

fn default_severity() -> Severity {
    Severity::Warning
}

fn one() -> u64 {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    source: String,
    value: RawMeasure,
    #[serde(default = "default_comparison")]
    comparison: Comparison,
    threshold: f64,
    clear_threshold: Option<f64>,
    #[serde(default = "default_severity")]
    severity: Severity,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    text: String,
    #[serde(rename = "for")]
    for_: Option<RawDuration>,
    keep_firing_for: Option<RawDuration>,
    #[serde(default = "one")]
    min_samples: u64,
    #[serde(default)]
    on_no_data: DataPolicy,
    #[serde(default)]
    on_error: DataPolicy,
}

impl TryFrom<RawRule> for Rule {
    type Error = String;

    fn try_from(raw: RawRule) -> Result<Self, String> {
        let name = raw.name;
        let duration = |d: Option<RawDuration>, field: &str| d.map_or(Ok(Duration::ZERO), |d| d.parse(&name, field));
        let m = raw.value;
        let window = || match &m.window {
            Some(w) => w.parse(&name, "value.window"),
            None => Err(field_error(&name, "value.window", "is required for this kind")),
        };
        let value = match m.kind {
            RawKind::Last => Measure::Last,
            RawKind::Count => Measure::Count { window: window()?, series: m.series.clone() },
            RawKind::Rate => Measure::Rate { window: window()?, series: m.series.clone() },
            RawKind::Ratio => Measure::Ratio { window: window()?, series: m.series.clone() },
            RawKind::Quantile => Measure::Quantile {
                q: m.q.ok_or_else(|| field_error(&name, "value.q", "is required for a quantile"))?,
                window: window()?,
                series: m.series.clone(),
            },
        };
        let rule = Rule {
            for_: duration(raw.for_, "for")?,
            keep_firing_for: duration(raw.keep_firing_for, "keep_firing_for")?,
            name,
            source: raw.source,
            value,
            comparison: raw.comparison,
            threshold: raw.threshold,
            clear_threshold: raw.clear_threshold,
            severity: raw.severity,
            labels: raw.labels,
            text: raw.text,
            min_samples: raw.min_samples,
            on_no_data: raw.on_no_data,
            on_error: raw.on_error,
        };
        rule.validate().map_err(|e| e.message().to_owned())?;
        Ok(rule)
    }
}
