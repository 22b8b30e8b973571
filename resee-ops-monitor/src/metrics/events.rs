//! [`EventCounter`]: counts of named events over sliding windows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use resee_ops_core::{Error, ErrorKind, MetricSample, MetricSource};
use tokio::time::Instant;

use super::measure::{Measure, Measurement, WindowedSource};
use super::window::{DEFAULT_GRANULARITY, DEFAULT_RETENTION, Ticks};
use crate::MonitorError;

/// The event that takes the counts of names beyond [`EventCounterBuilder::with_max_events`].
pub const OTHER_EVENTS: &str = "<other>";

/// One event's counts: a ring of `(tick, count)` slots, one per bucket of the retention.
struct Ring(Box<[(u64, u64)]>);

impl Ring {
    fn new(len: u64) -> Self {
        Self(vec![(u64::MAX, 0); usize::try_from(len).unwrap_or(usize::MAX)].into_boxed_slice())
    }

    fn add(&mut self, tick: u64, n: u64) {
        let len = self.0.len() as u64;
        let slot = &mut self.0[(tick % len) as usize];
        if slot.0 != tick {
            *slot = (tick, 0);
        }
        slot.1 += n;
    }

    fn sum(&self, from: u64, to: u64) -> u64 {
        self.0.iter().filter(|(t, _)| (from..=to).contains(t)).map(|(_, n)| n).sum()
    }
}

struct Inner {
    name: String,
    ticks: Ticks,
    max_events: usize,
    events: Mutex<HashMap<Box<str>, Ring>>,
}

/// Builds an [`EventCounter`]; see [`EventCounter::builder`].
#[derive(Debug, Clone)]
pub struct EventCounterBuilder {
    name: String,
    granularity: Duration,
    retention: Duration,
    max_events: usize,
}

impl EventCounterBuilder {
    /// Sets the source name (default `events`).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the bucket length (default 1 minute, whole seconds).
    pub fn with_granularity(mut self, granularity: Duration) -> Self {
        self.granularity = granularity;
        self
    }

    /// Sets how much history is kept (default 1 hour): the longest window a rule can read.
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// Sets how many distinct event names are counted on their own (default 256); further names are counted
    /// as [`OTHER_EVENTS`].
    pub fn with_max_events(mut self, n: usize) -> Self {
        self.max_events = n;
        self
    }

    /// Validates and builds.
    pub fn build(self) -> Result<EventCounter, MonitorError> {
        let ticks = Ticks::new(self.granularity, self.retention, "event counter")?;
        Ok(EventCounter {
            inner: Arc::new(Inner { name: self.name, ticks, max_events: self.max_events, events: Mutex::default() }),
        })
    }
}

/// Counts of named events in sliding windows, recorded from anywhere in the host
/// (`counter.record("payment_failed")`); a [`WindowedSource`] answering `count` and `rate` of one event
/// (the measure's `series`).
///
/// Memory is bounded: one ring of (retention / granularity + 1) counters per name, for at most
/// `max_events` names (about 1 KB each with the defaults). Clones share the counts.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::time::Duration;
/// use resee_ops_monitor::{EventCounter, Measure, WindowedSource};
///
/// let counter = EventCounter::new();
/// counter.record("payment_failed");
/// counter.record_n("payment_failed", 2);
/// assert_eq!(counter.count("payment_failed", Duration::from_secs(3600)), 3);
/// let m = counter.measure(&Measure::count(Duration::from_secs(3600)).with_series("payment_failed")).await.unwrap();
/// assert_eq!(m.value, Some(3.0));
/// # });
/// ```
#[derive(Clone)]
pub struct EventCounter {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EventCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventCounter")
            .field("name", &self.inner.name)
            .field("max_window", &self.inner.ticks.max_window())
            .finish_non_exhaustive()
    }
}

impl Default for EventCounter {
    fn default() -> Self {
        Self::new()
    }
}

impl EventCounter {
    /// A counter with the defaults: source `events`, 1-minute buckets for 1 hour, 256 names.
    pub fn new() -> Self {
        Self::builder().build().expect("the defaults are valid")
    }

    /// A builder with the defaults.
    pub fn builder() -> EventCounterBuilder {
        EventCounterBuilder {
            name: "events".to_owned(),
            granularity: DEFAULT_GRANULARITY,
            retention: DEFAULT_RETENTION,
            max_events: 256,
        }
    }

    /// Counts one `event` now.
    pub fn record(&self, event: &str) {
        self.record_n(event, 1);
    }

    /// Counts `n` occurrences of `event` now.
    pub fn record_n(&self, event: &str, n: u64) {
        let inner = &*self.inner;
        let tick = inner.ticks.tick_of(Instant::now());
        let mut events = inner.events.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ring) = events.get_mut(event) {
            ring.add(tick, n);
            return;
        }
        let key = if events.len() < inner.max_events { event } else { OTHER_EVENTS };
        events.entry(key.into()).or_insert_with(|| Ring::new(inner.ticks.retention())).add(tick, n);
    }

    /// How many `event`s were recorded in the window ending now.
    pub fn count(&self, event: &str, window: Duration) -> u64 {
        let ticks = &self.inner.ticks;
        let now = ticks.now();
        let from = ticks.window_start(now, window);
        let events = self.inner.events.lock().unwrap_or_else(|p| p.into_inner());
        events.get(event).map_or(0, |ring| ring.sum(from, now))
    }

    /// The names counted so far, sorted.
    pub fn events(&self) -> Vec<String> {
        let mut names: Vec<String> =
            self.inner.events.lock().unwrap_or_else(|p| p.into_inner()).keys().map(|k| k.to_string()).collect();
        names.sort();
        names
    }
}

#[async_trait]
impl MetricSource for EventCounter {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn unit(&self) -> &str {
        "events"
    }

    /// All events over the whole retention.
    async fn read(&self) -> Result<Option<MetricSample>, Error> {
        let window = self.inner.ticks.max_window();
        let total: u64 = self.events().iter().map(|e| self.count(e, window)).sum();
        Ok(Some(MetricSample::new(total as f64)))
    }
}

#[async_trait]
impl WindowedSource for EventCounter {
    fn check(&self, measure: &Measure) -> Result<(), String> {
        match measure {
            Measure::Count { window, series: Some(_) } | Measure::Rate { window, series: Some(_) } => {
                self.inner.ticks.check(*window, self.name())
            }
            Measure::Count { .. } | Measure::Rate { .. } => {
                Err(format!("source `{}` needs the event name as the series", self.name()))
            }
            other => Err(format!("source `{}` counts events; it has no {}", self.name(), other.kind())),
        }
    }

    async fn measure(&self, measure: &Measure) -> Result<Measurement, Error> {
        match measure {
            Measure::Count { window, series: Some(event) } => {
                let n = self.count(event, *window);
                Ok(Measurement::new(n as f64).with_observations(n))
            }
            Measure::Rate { window, series: Some(event) } => {
                let n = self.count(event, *window);
                Ok(Measurement::new(n as f64 / window.as_secs_f64()).with_observations(n))
            }
            other => Err(Error::new(ErrorKind::InvalidInput, format!("{}: {other} is not supported", self.name()))),
        }
    }
}
