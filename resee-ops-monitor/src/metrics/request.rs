//! [`RequestStats`]: request counts, error counts and latency quantiles of the host's HTTP traffic, per route
//! template and overall, over sliding windows.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use hdrhistogram::Histogram;
use resee_ops_core::{Error, ErrorKind, MetricSample, MetricSource};
use rustc_hash::FxBuildHasher;
use tokio::time::Instant;

use super::measure::{Measure, Measurement, WindowedSource};
use super::window::{DEFAULT_GRANULARITY, DEFAULT_RETENTION, Ticks};
use crate::MonitorError;

/// The series of requests that matched no route template (404s, a service without routing).
pub const UNMATCHED_ROUTE: &str = "<unmatched>";

/// The series that takes the requests of route templates beyond [`RequestStatsBuilder::with_max_routes`].
pub const OTHER_ROUTES: &str = "<other>";

/// Latencies are recorded in microseconds from 1 µs to one hour (longer ones count as one hour) with two
/// significant digits: every quantile is within 1 % of a value that was observed.
const LOWEST_MICROS: u64 = 1;
const HIGHEST_MICROS: u64 = 3_600_000_000;
const SIGNIFICANT_DIGITS: u8 = 2;

/// The relative error bound of the latency quantiles of [`RequestStats`]: 1 %.
pub const QUANTILE_RELATIVE_ERROR: f64 = 0.01;

fn histogram() -> Histogram<u32> {
    Histogram::new_with_bounds(LOWEST_MICROS, HIGHEST_MICROS, SIGNIFICANT_DIGITS).expect("constant, valid bounds")
}

/// Which response statuses count as errors: a bit per status code 0-1023.
#[derive(Clone, Copy)]
struct StatusSet([u64; 16]);

impl StatusSet {
    fn from_codes(codes: impl IntoIterator<Item = u16>) -> Self {
        let mut bits = [0u64; 16];
        for c in codes.into_iter().filter(|c| *c < 1024) {
            bits[usize::from(c / 64)] |= 1 << (c % 64);
        }
        Self(bits)
    }

    #[inline]
    fn contains(&self, code: u16) -> bool {
        code < 1024 && self.0[usize::from(code / 64)] & (1 << (code % 64)) != 0
    }
}

/// Requests and errors of one bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    requests: u64,
    errors: u64,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.requests += other.requests;
        self.errors += other.errors;
    }
}

/// The bucket a shard is writing for one route: a dense histogram, reused from bucket to bucket.
struct Bucket {
    counts: Counts,
    latency: Histogram<u32>,
}

impl Bucket {
    fn new() -> Self {
        Self { counts: Counts::default(), latency: histogram() }
    }
}

/// A route's bucket being written by one shard.
struct Current {
    tick: u64,
    /// Where bucket `tick` ends: a request before it records into this bucket with one comparison, no
    /// division (`None`: past what an `Instant` can hold, every request takes the slow path).
    end: Option<Instant>,
    bucket: Bucket,
}

/// A shard's route: its interned template and the bucket being written.
struct Slot {
    route: Arc<str>,
    current: Current,
}

/// A shard's routes, in a dense vector found by template through `index`, plus the slot the shard wrote
/// last: a thread serving one route after another compares the template once and hashes nothing.
#[derive(Default)]
struct ShardState {
    slots: Vec<Slot>,
    index: HashMap<Arc<str>, usize, FxBuildHasher>,
    last: usize,
}

impl ShardState {
    /// The slot of `route`, if this shard has one.
    #[inline]
    fn find(&mut self, route: &str) -> Option<usize> {
        if let Some(slot) = self.slots.get(self.last)
            && same_str(&slot.route, route)
        {
            return Some(self.last);
        }
        let i = *self.index.get(route)?;
        self.last = i;
        Some(i)
    }
}

/// String equality without a call to `memcmp` for the short strings route templates are: the same pointer
/// (the caller passes an interned template) or, failing that, eight bytes at a time.
#[inline]
fn same_str(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    if std::ptr::eq(a.as_ptr(), b.as_ptr()) {
        return true;
    }
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ar, br) = (ac.remainder(), bc.remainder());
    ac.zip(bc).all(|(x, y)| {
        u64::from_ne_bytes(x.try_into().unwrap_or_default()) == u64::from_ne_bytes(y.try_into().unwrap_or_default())
    }) && ar.iter().zip(br).all(|(x, y)| x == y)
}

/// One shard on its own cache lines, so two threads recording at once do not share one.
#[repr(align(128))]
#[derive(Default)]
struct Shard(Mutex<ShardState>);

/// A closed bucket, as kept for the retention: counts and the histogram's non-empty bins only
/// (`(value, count)`, a few hundred for typical latencies instead of 3 328 dense counters).
struct Closed {
    counts: Counts,
    latency: Box<[(u32, u32)]>,
}

/// The non-empty bins of `h`, each as its highest equivalent value (which records into the same bin).
fn sparse(h: &Histogram<u32>) -> Box<[(u32, u32)]> {
    h.iter_recorded()
        .map(|v| {
            let value = u32::try_from(v.value_iterated_to()).unwrap_or(u32::MAX);
            (value, v.count_at_value())
        })
        .collect()
}

/// Adds sparse bins to a dense histogram (exactly: each lands in the bin it came from).
fn add_sparse(h: &mut Histogram<u32>, bins: &[(u32, u32)]) {
    for &(value, count) in bins {
        let _ = h.record_n(u64::from(value).min(h.high()), count);
    }
}

/// Closed buckets, per route, by tick.
#[derive(Default)]
struct History {
    routes: HashMap<Arc<str>, BTreeMap<u64, Closed>>,
}

struct Inner {
    name: String,
    ticks: Ticks,
    errors: StatusSet,
    max_routes: usize,
    shards: Box<[Shard]>,
    /// Route templates seen so far, interned; only consulted when a shard meets a route for the first time.
    known: Mutex<HashSet<Arc<str>>>,
    history: Mutex<History>,
}

/// Builds [`RequestStats`]; see [`RequestStats::builder`].
#[derive(Debug, Clone)]
pub struct RequestStatsBuilder {
    name: String,
    granularity: Duration,
    retention: Duration,
    error_statuses: Vec<u16>,
    max_routes: usize,
    shards: usize,
}

impl RequestStatsBuilder {
    /// Sets the source name (default `http`).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the bucket length (default 1 minute, whole seconds): windows move in steps of one bucket.
    pub fn with_granularity(mut self, granularity: Duration) -> Self {
        self.granularity = granularity;
        self
    }

    /// Sets how much history is kept (default 1 hour): the longest window a rule can read.
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// Sets which response statuses count as errors (default 500-599).
    pub fn with_error_statuses(mut self, statuses: impl IntoIterator<Item = u16>) -> Self {
        self.error_statuses = statuses.into_iter().collect();
        self
    }

    /// Sets how many route templates get their own series (default 256); the requests of further ones are
    /// counted in [`OTHER_ROUTES`], so memory stays bounded whatever the router does.
    pub fn with_max_routes(mut self, n: usize) -> Self {
        self.max_routes = n;
        self
    }

    /// Sets the number of shards (default: twice the available parallelism, rounded up to a power of two).
    pub fn with_shards(mut self, n: usize) -> Self {
        self.shards = n;
        self
    }

    /// Validates and builds.
    pub fn build(self) -> Result<RequestStats, MonitorError> {
        let ticks = Ticks::new(self.granularity, self.retention, "request stats")?;
        if self.shards == 0 {
            return Err(crate::error::invalid_config("request stats: shards must be at least 1"));
        }
        let shards = self.shards.next_power_of_two();
        Ok(RequestStats {
            inner: Arc::new(Inner {
                name: self.name,
                ticks,
                errors: StatusSet::from_codes(self.error_statuses),
                max_routes: self.max_routes,
                shards: (0..shards).map(|_| Shard::default()).collect(),
                known: Mutex::default(),
                history: Mutex::default(),
            }),
        })
    }
}

/// Request counts, error counts and latency quantiles of the host's HTTP traffic, per route template and
/// overall, over sliding windows; a [`WindowedSource`] for rules, fed by [`RequestStatsLayer`](crate::RequestStatsLayer).
///
/// - **Windows**: buckets of one minute (configurable) for one hour (configurable); a window of `w` reads
///   the buckets that cover the last `w`, the current, partial one included.
/// - **Latency**: an HDR histogram per bucket (microseconds, 1 µs to 1 h, two significant digits): a
///   quantile is within [`QUANTILE_RELATIVE_ERROR`] (1 %) of the exact one, and windows and routes merge
///   exactly. The bucket being written is dense (13 KB per route and shard); closed buckets keep only their
///   non-empty bins (8 bytes each, a few KB per minute of a route).
/// - **No global lock on the hot path**: each thread records into one of several shards (its own mutex,
///   uncontended unless two threads share a shard); a shard hands a closed bucket over to the shared history
///   when it starts the next one. Readers merge shards and history at read time.
/// - **Measures**: `count` (requests), `rate` (requests per second), `ratio` (errors / requests, with the
///   number of requests as observations), `quantile` (latency in seconds). A measure's `series` is a route
///   template; none means all routes.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::time::Duration;
/// use resee_ops_monitor::{Measure, RequestStats, WindowedSource};
///
/// let stats = RequestStats::new();
/// for i in 0..100u64 {
///     let status = if i < 7 { 503 } else { 200 };
///     stats.record(Some("/api/reviews/{id}"), status, Duration::from_millis(10 + i));
/// }
/// let hour = Duration::from_secs(3600);
/// let error_rate = stats.measure(&Measure::ratio(hour)).await.unwrap();
/// assert_eq!(error_rate.value, Some(0.07));
/// assert_eq!(error_rate.observations, Some(100));
/// let p95 = stats.measure(&Measure::quantile(0.95, hour).with_series("/api/reviews/{id}")).await.unwrap();
/// assert!((p95.value.unwrap() - 0.104).abs() < 0.104 * 0.01);
/// # });
/// ```
#[derive(Clone)]
pub struct RequestStats {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RequestStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestStats")
            .field("name", &self.inner.name)
            .field("shards", &self.inner.shards.len())
            .field("max_window", &self.inner.ticks.max_window())
            .finish_non_exhaustive()
    }
}

impl Default for RequestStats {
    fn default() -> Self {
        Self::new()
    }
}

thread_local! {
    /// This thread's shard number, handed out round robin on first use.
    static SHARD: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed)
    };
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock leaves counters, never broken invariants: carry on.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Totals of one window.
struct WindowTotals {
    counts: Counts,
    latency: Histogram<u32>,
}

impl RequestStats {
    /// Stats with the defaults: source `http`, 1-minute buckets for 1 hour, 5xx are errors.
    pub fn new() -> Self {
        Self::builder().build().expect("the defaults are valid")
    }

    /// A builder with the defaults.
    pub fn builder() -> RequestStatsBuilder {
        let parallelism = std::thread::available_parallelism().map_or(4, |n| n.get());
        RequestStatsBuilder {
            name: "http".to_owned(),
            granularity: DEFAULT_GRANULARITY,
            retention: DEFAULT_RETENTION,
            error_statuses: (500..600).collect(),
            max_routes: 256,
            shards: parallelism * 2,
        }
    }

    /// A [`RequestStatsLayer`](crate::RequestStatsLayer) that records into these stats.
    pub fn layer(&self) -> crate::RequestStatsLayer {
        crate::RequestStatsLayer::new(self.clone())
    }

    /// Records one request that ended now: its route template (`None`: unmatched), response status and
    /// latency.
    pub fn record(&self, route: Option<&str>, status: u16, latency: Duration) {
        self.record_at(route, status, latency, Instant::now());
    }

    /// Records one request that ended at `at` (the layer passes the instant it read to measure the latency,
    /// so recording reads no clock).
    #[inline]
    pub fn record_at(&self, route: Option<&str>, status: u16, latency: Duration, at: Instant) {
        let inner = &*self.inner;
        let error = u64::from(inner.errors.contains(status));
        // No u128 arithmetic on the hot path: seconds and microseconds separately.
        let micros = latency
            .as_secs()
            .saturating_mul(1_000_000)
            .saturating_add(u64::from(latency.subsec_micros()))
            .max(LOWEST_MICROS);
        let shard = SHARD.with(|s| *s) & (inner.shards.len() - 1);
        let mut state = lock(&inner.shards[shard].0);
        let route = route.unwrap_or(UNMATCHED_ROUTE);
        let i = match state.find(route) {
            Some(i) => i,
            None => self.add_route(&mut state, route, at),
        };
        let Slot { route, current } = &mut state.slots[i];
        // Common case: still within the bucket being written (an instant before it, from a thread that read
        // the clock earlier, also lands in it, as it always did).
        if current.end.is_none_or(|end| at >= end) {
            self.roll(route, current, at);
        }
        current.bucket.counts.requests += 1;
        current.bucket.counts.errors += error;
        current.bucket.latency.saturating_record(micros);
    }

    /// Moves a route's current bucket on to the one `at` falls in, handing the closed one to the history.
    #[cold]
    fn roll(&self, route: &str, current: &mut Current, at: Instant) {
        let tick = self.inner.ticks.tick_of(at);
        if current.tick < tick {
            let closed = current.tick;
            current.tick = tick;
            self.close(route, closed, &mut current.bucket);
        }
        current.end = self.inner.ticks.end_of(current.tick);
    }

    /// The shard's slot for `route`, created on first sight (cold path).
    #[cold]
    fn add_route(&self, state: &mut ShardState, route: &str, at: Instant) -> usize {
        let key: Arc<str> = {
            let mut known = lock(&self.inner.known);
            match known.get(route) {
                Some(k) => k.clone(),
                None if known.len() < self.inner.max_routes => {
                    let k: Arc<str> = Arc::from(route);
                    known.insert(k.clone());
                    k
                }
                None => Arc::from(OTHER_ROUTES),
            }
        };
        // Past the route limit, every further template shares the shard's `<other>` slot.
        let i = match state.index.get(&key) {
            Some(&i) => i,
            None => {
                let tick = self.inner.ticks.tick_of(at);
                let current = Current { tick, end: self.inner.ticks.end_of(tick), bucket: Bucket::new() };
                state.slots.push(Slot { route: key.clone(), current });
                state.index.insert(key, state.slots.len() - 1);
                state.slots.len() - 1
            }
        };
        state.last = i;
        i
    }

    /// Hands a shard's closed bucket of `route` to the history and leaves it empty.
    fn close(&self, route: &str, tick: u64, bucket: &mut Bucket) {
        if bucket.counts.requests == 0 {
            return;
        }
        let mut history = lock(&self.inner.history);
        let keep_from = self.inner.ticks.now().saturating_sub(self.inner.ticks.retention() - 1);
        let series = match history.routes.get_mut(route) {
            Some(s) => s,
            None => history.routes.entry(Arc::from(route)).or_default(),
        };
        if tick >= keep_from {
            match series.get_mut(&tick) {
                Some(closed) => {
                    // Another shard closed this minute of the route already: merge.
                    add_sparse(&mut bucket.latency, &closed.latency);
                    closed.counts.add(bucket.counts);
                    closed.latency = sparse(&bucket.latency);
                }
                None => {
                    series.insert(tick, Closed { counts: bucket.counts, latency: sparse(&bucket.latency) });
                }
            }
        }
        bucket.latency.reset();
        bucket.counts = Counts::default();
        // Forget what fell out of the retention, so memory stays bounded even when nobody reads.
        while let Some(oldest) = series.first_entry()
            && *oldest.key() < keep_from
        {
            oldest.remove();
        }
    }

    /// Answers `measure` for the window ending at `now` rather than at this instant (the reading side of
    /// [`record_at`](Self::record_at)); [`WindowedSource::measure`] is `measure_at(measure, Instant::now())`.
    pub fn measure_at(&self, measure: &Measure, now: Instant) -> Result<Measurement, Error> {
        let unsupported =
            || Error::new(ErrorKind::InvalidInput, format!("{}: {measure} is not supported", self.name()));
        let window = measure.window().ok_or_else(unsupported)?;
        let totals = self.totals(measure.series(), window, self.inner.ticks.tick_of(now));
        let n = totals.counts.requests;
        Ok(match measure {
            Measure::Count { .. } => Measurement::new(n as f64).with_observations(n),
            Measure::Rate { .. } => Measurement::new(n as f64 / window.as_secs_f64()).with_observations(n),
            Measure::Ratio { .. } | Measure::Quantile { .. } if n == 0 => Measurement::no_data().with_observations(0),
            Measure::Ratio { .. } => Measurement::new(totals.counts.errors as f64 / n as f64).with_observations(n),
            Measure::Quantile { q, .. } => {
                Measurement::new(totals.latency.value_at_quantile(*q) as f64 / 1e6).with_observations(n)
            }
            _ => return Err(unsupported()),
        })
    }

    /// The totals of `route` (`None`: all) over the window ending in bucket `now`.
    fn totals(&self, route: Option<&str>, window: Duration, now: u64) -> WindowTotals {
        let inner = &*self.inner;
        let from = inner.ticks.window_start(now, window);
        let mut totals = WindowTotals { counts: Counts::default(), latency: histogram() };
        let wanted = |r: &str| route.is_none_or(|want| want == r);
        for shard in &inner.shards {
            let mut state = lock(&shard.0);
            for Slot { route: r, current } in &mut state.slots {
                if current.tick < now {
                    // Closed but not yet handed over (the shard saw no request since): hand it over now.
                    let closed = current.tick;
                    current.tick = now;
                    current.end = inner.ticks.end_of(now);
                    self.close(r, closed, &mut current.bucket);
                } else if wanted(r) && (from..=now).contains(&current.tick) {
                    totals.counts.add(current.bucket.counts);
                    let _ = totals.latency.add(&current.bucket.latency);
                }
            }
        }
        let mut history = lock(&inner.history);
        // Forget what fell out of the retention, for every route (a route may have gone quiet).
        let keep_from = now.saturating_sub(inner.ticks.retention() - 1);
        history.routes.retain(|_, series| {
            *series = series.split_off(&keep_from);
            !series.is_empty()
        });
        for (r, series) in &history.routes {
            if !wanted(r) {
                continue;
            }
            for (_, closed) in series.range(from..=now) {
                totals.counts.add(closed.counts);
                add_sparse(&mut totals.latency, &closed.latency);
            }
        }
        totals
    }

    /// The route templates with their own series so far (plus [`UNMATCHED_ROUTE`] / [`OTHER_ROUTES`] once
    /// used), sorted.
    pub fn routes(&self) -> Vec<String> {
        let mut routes: Vec<String> = lock(&self.inner.known).iter().map(|r| r.to_string()).collect();
        for shard in &self.inner.shards {
            for Slot { route: r, .. } in &lock(&shard.0).slots {
                if !routes.iter().any(|k| **k == **r) {
                    routes.push(r.to_string());
                }
            }
        }
        routes.sort();
        routes
    }

    /// The bytes held by histograms and counters right now (an estimate that leaves out hash-map overhead).
    pub fn memory_bytes(&self) -> usize {
        let dense = std::mem::size_of::<Current>() + histogram().distinct_values() * std::mem::size_of::<u32>();
        let current: usize = self.inner.shards.iter().map(|s| lock(&s.0).slots.len()).sum();
        let closed: usize = lock(&self.inner.history)
            .routes
            .values()
            .flat_map(BTreeMap::values)
            .map(|c| std::mem::size_of::<Closed>() + 16 + std::mem::size_of_val(&*c.latency))
            .sum();
        current * dense + closed
    }
}

#[async_trait]
impl MetricSource for RequestStats {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn unit(&self) -> &str {
        "requests"
    }

    /// The number of requests over the whole retention.
    async fn read(&self) -> Result<Option<MetricSample>, Error> {
        let totals = self.totals(None, self.inner.ticks.max_window(), self.inner.ticks.now());
        Ok(Some(MetricSample::new(totals.counts.requests as f64)))
    }
}

#[async_trait]
impl WindowedSource for RequestStats {
    fn check(&self, measure: &Measure) -> Result<(), String> {
        match measure.window() {
            None => {
                Err(format!("source `{}` has no current value; read a count, rate, ratio or quantile", self.name()))
            }
            Some(w) => self.inner.ticks.check(w, self.name()),
        }
    }

    async fn measure(&self, measure: &Measure) -> Result<Measurement, Error> {
        self.measure_at(measure, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_set() {
        let s = StatusSet::from_codes(500..600);
        assert!(s.contains(500) && s.contains(599) && !s.contains(404) && !s.contains(600) && !s.contains(2000));
        let s = StatusSet::from_codes([429, 503]);
        assert!(s.contains(429) && s.contains(503) && !s.contains(500));
    }
}
