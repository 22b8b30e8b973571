//! What a rule reads from a source: a [`Measure`] (a value over a window), answered as a [`Measurement`] by a
//! [`WindowedSource`].

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use resee_ops_core::{Error, MetricSource};
use serde::Serialize;

use resee_ops_core::serde_duration::format_duration;

/// The value a rule reads from its source.
///
/// `series` picks one series of a source that has several: a route template of
/// [`RequestStats`](crate::RequestStats) (`None`: all routes), an event name of
/// [`EventCounter`](crate::EventCounter) (required there).
///
/// ```
/// use std::time::Duration;
/// use resee_ops_monitor::Measure;
/// let p95 = Measure::quantile(0.95, Duration::from_secs(300));
/// assert_eq!(p95.to_string(), "p95 over 300s");
/// let failures = Measure::count(Duration::from_secs(3600)).with_series("payment_failed");
/// assert_eq!(failures.to_string(), "count of payment_failed over 3600s");
/// ```
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Measure {
    /// The source's current value ([`MetricSource::read`]): a queue length, a SQL scalar.
    Last,
    /// How many observations (requests, events) fell in the window.
    Count {
        /// The window.
        #[serde(with = "resee_ops_core::serde_duration")]
        window: Duration,
        /// The series; see the type's docs.
        #[serde(skip_serializing_if = "Option::is_none")]
        series: Option<String>,
    },
    /// Observations per second over the window.
    Rate {
        /// The window.
        #[serde(with = "resee_ops_core::serde_duration")]
        window: Duration,
        /// The series.
        #[serde(skip_serializing_if = "Option::is_none")]
        series: Option<String>,
    },
    /// Failed observations divided by all observations in the window (an error rate, `0.05` = 5 %).
    Ratio {
        /// The window.
        #[serde(with = "resee_ops_core::serde_duration")]
        window: Duration,
        /// The series.
        #[serde(skip_serializing_if = "Option::is_none")]
        series: Option<String>,
    },
    /// The `q` quantile (`0.95` = p95) of the observed values in the window, in the source's unit.
    Quantile {
        /// Strictly between 0 and 1.
        q: f64,
        /// The window.
        #[serde(with = "resee_ops_core::serde_duration")]
        window: Duration,
        /// The series.
        #[serde(skip_serializing_if = "Option::is_none")]
        series: Option<String>,
    },
}

impl Measure {
    /// A [`Measure::Count`] over `window`.
    pub fn count(window: Duration) -> Self {
        Self::Count { window, series: None }
    }

    /// A [`Measure::Rate`] over `window`.
    pub fn rate(window: Duration) -> Self {
        Self::Rate { window, series: None }
    }

    /// A [`Measure::Ratio`] over `window`.
    pub fn ratio(window: Duration) -> Self {
        Self::Ratio { window, series: None }
    }

    /// A [`Measure::Quantile`] over `window`.
    pub fn quantile(q: f64, window: Duration) -> Self {
        Self::Quantile { q, window, series: None }
    }

    /// The same measure of one series (ignored by [`Measure::Last`]).
    pub fn with_series(mut self, name: impl Into<String>) -> Self {
        match &mut self {
            Self::Last => {}
            Self::Count { series, .. }
            | Self::Rate { series, .. }
            | Self::Ratio { series, .. }
            | Self::Quantile { series, .. } => *series = Some(name.into()),
        }
        self
    }

    /// The window, if the measure has one.
    pub fn window(&self) -> Option<Duration> {
        match self {
            Self::Last => None,
            Self::Count { window, .. }
            | Self::Rate { window, .. }
            | Self::Ratio { window, .. }
            | Self::Quantile { window, .. } => Some(*window),
        }
    }

    /// The series, if one is picked.
    pub fn series(&self) -> Option<&str> {
        match self {
            Self::Last => None,
            Self::Count { series, .. }
            | Self::Rate { series, .. }
            | Self::Ratio { series, .. }
            | Self::Quantile { series, .. } => series.as_deref(),
        }
    }

    /// `last`, `count`, `rate`, `ratio` or `quantile`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Last => "last",
            Self::Count { .. } => "count",
            Self::Rate { .. } => "rate",
            Self::Ratio { .. } => "ratio",
            Self::Quantile { .. } => "quantile",
        }
    }
}

impl fmt::Display for Measure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            Self::Last => return f.write_str("current value"),
            Self::Quantile { q, .. } => format!("p{}", (q * 100.0 * 1000.0).round() / 1000.0),
            other => other.kind().to_owned(),
        };
        match self.series() {
            Some(s) => write!(f, "{what} of {s}")?,
            None => f.write_str(&what)?,
        }
        if let Some(w) = self.window() {
            write!(f, " over {}", format_duration(w))?;
        }
        Ok(())
    }
}

/// A source's answer to a [`Measure`].
///
/// ```
/// use resee_ops_monitor::Measurement;
/// let m = Measurement::new(0.07).with_observations(1200);
/// assert_eq!((m.value, m.observations), (Some(0.07), Some(1200)));
/// assert_eq!(Measurement::no_data().value, None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Measurement {
    /// The value, or `None` when there is no data (an empty window for a ratio or quantile).
    pub value: Option<f64>,
    /// How many observations the value stands on, where that is known (requests behind an error rate).
    pub observations: Option<u64>,
}

impl Measurement {
    /// A value whose sample size is unknown or irrelevant.
    pub fn new(value: f64) -> Self {
        Self { value: Some(value), observations: None }
    }

    /// No data.
    pub fn no_data() -> Self {
        Self { value: None, observations: None }
    }

    /// Sets the number of observations behind the value.
    pub fn with_observations(mut self, n: u64) -> Self {
        self.observations = Some(n);
        self
    }
}

/// A [`MetricSource`] that can answer windowed [`Measure`]s; what the rule evaluator reads.
///
/// Any plain [`MetricSource`] answers [`Measure::Last`] (the evaluator wraps it); sources that keep history
/// ([`RequestStats`](crate::RequestStats), [`EventCounter`](crate::EventCounter)) implement this trait.
#[async_trait]
pub trait WindowedSource: MetricSource {
    /// Why this source cannot answer `measure` (an unsupported kind, a window longer than its retention), or
    /// `Ok` if it can. Checked once when the evaluator is built.
    fn check(&self, measure: &Measure) -> Result<(), String>;

    /// Answers `measure` now.
    async fn measure(&self, measure: &Measure) -> Result<Measurement, Error>;
}

/// A plain [`MetricSource`] as a [`WindowedSource`] that answers [`Measure::Last`] only.
#[derive(Debug)]
pub(crate) struct LastValue<M>(pub(crate) M);

// A wrapper forwards every method, defaults included (issue 16, point 17).
#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl<M: MetricSource> MetricSource for LastValue<M> {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn unit(&self) -> &str {
        self.0.unit()
    }
    async fn read(&self) -> Result<Option<resee_ops_core::MetricSample>, Error> {
        self.0.read().await
    }
}

#[async_trait]
impl<M: MetricSource> WindowedSource for LastValue<M> {
    fn check(&self, measure: &Measure) -> Result<(), String> {
        match measure {
            Measure::Last => Ok(()),
            other => Err(format!("source `{}` only has a current value, not a {}", self.0.name(), other.kind())),
        }
    }

    async fn measure(&self, _measure: &Measure) -> Result<Measurement, Error> {
        Ok(match self.0.read().await? {
            Some(sample) => Measurement::new(sample.value),
            None => Measurement::no_data(),
        })
    }
}
