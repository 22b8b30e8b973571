//! [`presets`]: the seed's four rules.

use std::time::Duration;

use resee_ops_core::Severity;

use super::rule::Rule;
use crate::metrics::measure::Measure;

/// The source name the preset payment rule reads: an [`EventCounter`](crate::EventCounter) fed with
/// [`PAYMENT_FAILED_EVENT`], or a [`PostgresScalar`](crate::PostgresScalar) (then read its current value:
/// `rule.with_value(Measure::Last)`).
pub const PAYMENTS_SOURCE: &str = "payments";
/// The event the preset payment rule counts.
pub const PAYMENT_FAILED_EVENT: &str = "payment_failed";
/// The source name the preset error-rate and latency rules read: [`RequestStats`](crate::RequestStats).
pub const HTTP_SOURCE: &str = "http";
/// The source name the preset queue rule reads: [`QueueLength`](crate::QueueLength).
pub const QUEUE_SOURCE: &str = "queue";

const HOUR: Duration = Duration::from_secs(3600);

/// The seed's four rules, on by default, with its thresholds and levels:
///
/// | rule | source | value | fires | severity |
/// |---|---|---|---|---|
/// | `payment_failures` | `payments` | count of `payment_failed` over 1 h | > 10 | error |
/// | `error_rate` | `http` | 5xx ratio over 1 h, at least 20 requests | > 5 % (clears below 4 %) | error |
/// | `api_latency_p95` | `http` | p95 latency over 5 min, at least 20 requests | > 2 s | warning |
/// | `queue_length` | `queue` | current length | > 100 | warning |
///
/// ```
/// use resee_ops_monitor::presets;
/// let rules = presets();
/// assert_eq!(rules.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
///            ["payment_failures", "error_rate", "api_latency_p95", "queue_length"]);
/// assert!(rules.iter().all(|r| r.validate().is_ok()));
/// ```
pub fn presets() -> Vec<Rule> {
    vec![
        Rule::new("payment_failures", PAYMENTS_SOURCE, Measure::count(HOUR).with_series(PAYMENT_FAILED_EVENT))
            .with_above(10.0)
            .with_severity(Severity::Error)
            .with_text("Payment failures in the last hour"),
        Rule::new("error_rate", HTTP_SOURCE, Measure::ratio(HOUR))
            .with_above(0.05)
            .with_clear_threshold(0.04)
            .with_min_samples(20)
            .with_severity(Severity::Error)
            .with_text("HTTP error rate over 1 h"),
        Rule::new("api_latency_p95", HTTP_SOURCE, Measure::quantile(0.95, Duration::from_secs(300)))
            .with_above(2.0)
            .with_min_samples(20)
            .with_severity(Severity::Warning)
            .with_text("API p95 latency (s) over 5 min"),
        Rule::new("queue_length", QUEUE_SOURCE, Measure::Last)
            .with_above(100.0)
            .with_severity(Severity::Warning)
            .with_text("Celery queue length"),
    ]
}
