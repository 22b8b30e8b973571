//! [`HealthRegistry`]: runs probes concurrently, each under its own timeout, and aggregates a report.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::clock::{SharedClock, system_clock};
use crate::{HealthProbe, HealthStatus, ProbeOutcome};

/// The default per-probe timeout.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Which question a probe answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum CheckGroup {
    /// "Is the process alive?" Only cheap, local checks; never a dependency (a database outage must not
    /// make an orchestrator restart every replica).
    Liveness,
    /// "Can it serve traffic?" Dependencies such as the database and Redis.
    Readiness,
}

/// One probe and how the registry runs it: its groups (visible where it is registered) and its timeout.
///
/// ```
/// use std::time::Duration;
/// use resee_ops_core::{CheckGroup, HealthRegistry, ProbeOutcome, Registration};
/// use resee_ops_core::testing::StaticProbe;
///
/// let registry = HealthRegistry::new();
/// // Readiness: "can it serve traffic?" (dependencies).
/// registry.register(Registration::readiness(StaticProbe::new("database", ProbeOutcome::up())));
/// // Liveness: "is the process alive?" (never a dependency).
/// registry.register(Registration::liveness(StaticProbe::new("event_loop", ProbeOutcome::up())));
/// // Any probe converts into a readiness registration; set a timeout or both groups explicitly.
/// registry.register(StaticProbe::new("cache", ProbeOutcome::up()));
/// registry.register(
///     Registration::readiness(StaticProbe::new("queue", ProbeOutcome::up()))
///         .with_groups(&[CheckGroup::Liveness, CheckGroup::Readiness])
///         .with_timeout(Duration::from_secs(1)),
/// );
/// assert_eq!(registry.registrations().len(), 4);
/// ```
#[derive(Debug, Clone)]
pub struct Registration {
    probe: Arc<dyn HealthProbe>,
    timeout: Option<Duration>,
    groups: Vec<CheckGroup>,
}

impl<P: HealthProbe> From<P> for Registration {
    /// A probe alone registers in the readiness group, as [`Registration::readiness`] says.
    fn from(probe: P) -> Self {
        Self::readiness(probe)
    }
}

impl Registration {
    /// `probe` in the readiness group ("can it serve traffic?": the database, Redis, an HTTP dependency),
    /// with the registry's default timeout.
    pub fn readiness(probe: impl HealthProbe) -> Self {
        Self::from_arc(Arc::new(probe))
    }

    /// `probe` in the liveness group only ("is the process alive?": cheap, local checks; never a
    /// dependency, since a database outage must not make an orchestrator restart every replica).
    pub fn liveness(probe: impl HealthProbe) -> Self {
        Self::readiness(probe).with_groups(&[CheckGroup::Liveness])
    }

    /// The same as [`readiness`](Self::readiness); prefer the name that says the group.
    pub fn new(probe: impl HealthProbe) -> Self {
        Self::readiness(probe)
    }

    /// Like [`readiness`](Self::readiness), for a probe already shared.
    pub fn from_arc(probe: Arc<dyn HealthProbe>) -> Self {
        Self { probe, timeout: None, groups: vec![CheckGroup::Readiness] }
    }

    /// Sets this probe's timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Puts the probe in exactly these groups.
    pub fn with_groups(mut self, groups: &[CheckGroup]) -> Self {
        self.groups = groups.to_vec();
        self
    }

    /// The probe.
    pub fn probe(&self) -> &Arc<dyn HealthProbe> {
        &self.probe
    }

    /// The groups the probe belongs to.
    pub fn groups(&self) -> &[CheckGroup] {
        &self.groups
    }

    /// Whether the probe belongs to `group`.
    pub fn is_in(&self, group: CheckGroup) -> bool {
        self.groups.contains(&group)
    }
}

/// The result of one probe in a [`HealthReport`].
///
/// `#[non_exhaustive]`: outside this crate it is built with [`CheckResult::new`], not a struct literal,
/// so a field may be added in a minor release.
///
/// ```compile_fail,E0639
/// use resee_ops_core::{CheckResult, HealthStatus};
/// let r = CheckResult {
///     status: HealthStatus::Up,
///     observed_value: None,
///     observed_unit: None,
///     output: None,
///     time: chrono::Utc::now(),
///     duration: std::time::Duration::ZERO,
///     critical: true,
/// };
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct CheckResult {
    /// `pass`, `warn` or `fail` in JSON; the probe's own status in Rust.
    #[serde(with = "health_json_status")]
    pub status: HealthStatus,
    /// Measured value, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_value: Option<f64>,
    /// Its unit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_unit: Option<String>,
    /// Human-readable detail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// When the check finished.
    pub time: DateTime<Utc>,
    /// How long it took.
    #[serde(with = "crate::serde_duration")]
    pub duration: Duration,
    /// Whether the probe is critical.
    pub critical: bool,
}

impl CheckResult {
    /// The result of a check that answered `outcome` at `time`, for a probe that is `critical` or not
    /// (for custom endpoints and tests that build reports by hand).
    ///
    /// ```
    /// use resee_ops_core::{CheckResult, HealthStatus, ProbeOutcome};
    /// let r = CheckResult::new(ProbeOutcome::down("refused"), chrono::Utc::now(), true);
    /// assert_eq!(r.status, HealthStatus::Down);
    /// assert_eq!(r.output.as_deref(), Some("refused"));
    /// assert_eq!(r.outcome().status, HealthStatus::Down);
    /// ```
    pub fn new(outcome: ProbeOutcome, time: DateTime<Utc>, critical: bool) -> Self {
        Self {
            status: outcome.status,
            observed_value: outcome.observed_value,
            observed_unit: outcome.observed_unit,
            output: outcome.output,
            time,
            duration: outcome.duration,
            critical,
        }
    }

    /// The result as a [`ProbeOutcome`].
    pub fn outcome(&self) -> ProbeOutcome {
        let mut o = ProbeOutcome::new(self.status).with_duration(self.duration);
        o.observed_value = self.observed_value;
        o.observed_unit = self.observed_unit.clone();
        o.output = self.output.clone();
        o
    }
}

/// An aggregated health report, serialised in the shape of `application/health+json`
/// (`{"status": "pass", "checks": {"database": [{"status": "pass", "observedValue": 1.2, ...}]}}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HealthReport {
    /// The aggregate: the worst critical status; non-critical probes count at most as `Degraded`.
    #[serde(with = "health_json_status")]
    pub status: HealthStatus,
    /// Why the status is what it is, when the checks alone do not say (for example "no check has run yet").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Per probe, keyed by name. Empty when details are hidden.
    #[serde(with = "checks_as_arrays", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: BTreeMap<String, CheckResult>,
}

impl HealthReport {
    /// A report from individual results, aggregated by the rule on [`status`](Self::status).
    pub fn from_checks(checks: BTreeMap<String, CheckResult>) -> Self {
        let status = checks
            .values()
            .map(|c| if c.critical { c.status } else { c.status.min(HealthStatus::Degraded) })
            .max()
            .unwrap_or(HealthStatus::Up);
        Self { status, output: None, checks }
    }

    /// A report with no checks: `status`, and `output` saying why.
    ///
    /// ```
    /// use resee_ops_core::{HealthReport, HealthStatus};
    /// let r = HealthReport::with_status(HealthStatus::Down, "no health check has completed yet");
    /// assert_eq!(
    ///     serde_json::to_value(&r).unwrap(),
    ///     serde_json::json!({"status": "fail", "output": "no health check has completed yet"})
    /// );
    /// ```
    pub fn with_status(status: HealthStatus, output: impl Into<String>) -> Self {
        Self { status, output: Some(output.into()), checks: BTreeMap::new() }
    }

    /// The same report without per-check details (for endpoints reachable by the public).
    pub fn without_details(&self) -> Self {
        Self { status: self.status, output: self.output.clone(), checks: BTreeMap::new() }
    }

    /// The HTTP status an endpoint should answer with: 200 for pass and warn, 503 for fail.
    pub fn http_status(&self) -> u16 {
        if self.status == HealthStatus::Down { 503 } else { 200 }
    }
}

/// Runs [`HealthProbe`]s concurrently and aggregates their results.
///
/// Each probe runs in its own task under its own timeout: a hung probe costs its timeout and no more, and
/// is reported `Down` with the time it was given; a panicking probe is reported `Down` with the panic
/// message. Probes are grouped for liveness and readiness endpoints.
///
/// Probes are added through `&self` ([`register`](Self::register)), at any time, and clones share them:
/// hand a clone to the health monitor and register more probes later (a plugin, a feature switched on
/// at run time); the next check runs them too.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::time::Duration;
/// use resee_ops_core::{CheckGroup, HealthRegistry, HealthStatus, ProbeOutcome, Registration};
/// use resee_ops_core::testing::StaticProbe;
///
/// let registry = HealthRegistry::new().with_default_timeout(Duration::from_secs(2));
/// registry
///     .register(Registration::readiness(StaticProbe::new("database", ProbeOutcome::up())))
///     .register(Registration::readiness(StaticProbe::new("cache", ProbeOutcome::down("refused")).with_critical(false)))
///     .register(Registration::liveness(StaticProbe::new("process", ProbeOutcome::up())));
///
/// let ready = registry.check(CheckGroup::Readiness).await;
/// assert_eq!(ready.status, HealthStatus::Degraded, "a non-critical failure only warns");
/// assert_eq!(ready.checks.len(), 2);
/// let json = serde_json::to_value(&ready).unwrap();
/// assert_eq!(json["status"], "warn");
/// assert_eq!(json["checks"]["cache"][0]["status"], "fail");
///
/// let live = registry.check(CheckGroup::Liveness).await;
/// assert_eq!(live.status, HealthStatus::Up);
///
/// // A clone shares the probes: what one registers, the other runs.
/// let monitor_side = registry.clone();
/// registry.register(Registration::readiness(StaticProbe::new("search", ProbeOutcome::up())));
/// assert_eq!(monitor_side.check(CheckGroup::Readiness).await.checks.len(), 3);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct HealthRegistry {
    probes: Arc<RwLock<Vec<Registration>>>,
    default_timeout: Duration,
    clock: SharedClock,
}

impl Default for HealthRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl HealthRegistry {
    /// An empty registry with a 5-second default timeout.
    pub fn new() -> Self {
        Self { probes: Arc::default(), default_timeout: DEFAULT_PROBE_TIMEOUT, clock: system_clock() }
    }

    /// Sets the timeout of probes registered without one (for this handle and the clones made after).
    pub fn with_default_timeout(mut self, timeout: Duration) -> Self {
        self.default_timeout = timeout;
        self
    }

    /// Uses `clock` for the `time` of each result.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Adds a probe: a [`Registration`] (its group chosen by [`Registration::readiness`] or
    /// [`Registration::liveness`]) or any [`HealthProbe`] (readiness). Works through `&self` and returns
    /// it, so calls chain; every clone of this registry sees the probe from its next check on.
    ///
    /// Probe names should be unique; where two share a name, the later one is reported as `name#2` (and
    /// so on) rather than hiding the first.
    pub fn register(&self, registration: impl Into<Registration>) -> &Self {
        self.probes.write().unwrap_or_else(|p| p.into_inner()).push(registration.into());
        self
    }

    /// [`register`](Self::register) by value, for building a registry in one expression.
    pub fn with_registration(self, registration: impl Into<Registration>) -> Self {
        self.register(registration);
        self
    }

    /// The registered probes, in registration order.
    pub fn registrations(&self) -> Vec<Registration> {
        self.probes.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Runs the probes of `group` concurrently and aggregates them.
    pub async fn check(&self, group: CheckGroup) -> HealthReport {
        Self::report(Self::keyed(self.run(|r| r.is_in(group)).await))
    }

    /// Runs every probe, whatever its group.
    pub async fn check_all(&self) -> HealthReport {
        Self::report(Self::keyed(self.run(|_| true).await))
    }

    /// Runs every probe once and splits the results by group: `(liveness, readiness)`. A probe in both
    /// groups runs once and appears in both reports.
    pub async fn check_groups(&self) -> (HealthReport, HealthReport) {
        let all = self.run(|_| true).await;
        let pick = |group: CheckGroup| {
            Self::report(
                all.iter().filter(|(r, _, _)| r.is_in(group)).map(|(_, k, c)| (k.clone(), c.clone())).collect(),
            )
        };
        (pick(CheckGroup::Liveness), pick(CheckGroup::Readiness))
    }

    fn report(results: Vec<(String, CheckResult)>) -> HealthReport {
        HealthReport::from_checks(results.into_iter().collect())
    }

    fn keyed(results: Vec<(Registration, String, CheckResult)>) -> Vec<(String, CheckResult)> {
        results.into_iter().map(|(_, key, result)| (key, result)).collect()
    }

    /// Runs the selected probes concurrently; returns each with its report key, in registration order.
    async fn run(&self, select: impl Fn(&Registration) -> bool) -> Vec<(Registration, String, CheckResult)> {
        // A snapshot: probes registered meanwhile run from the next check on; no lock is held across a check.
        let all = self.registrations();
        let selected: Vec<usize> = (0..all.len()).filter(|&i| select(&all[i])).collect();
        let runs = selected.iter().map(|&i| {
            let r = &all[i];
            let timeout = r.timeout.unwrap_or(self.default_timeout);
            let probe = r.probe.clone();
            let clock = self.clock.clone();
            async move {
                let outcome = run_one(probe.clone(), timeout).await;
                CheckResult::new(outcome, clock.now(), probe.is_critical())
            }
        });
        let results = futures_util::future::join_all(runs).await;
        // Keys follow registration order, so they are the same whichever subset ran. Two probes with one
        // name must not hide each other: the later ones are reported as `name#2`, `name#3`, ...
        let mut taken = std::collections::HashSet::new();
        let mut keys = std::collections::HashMap::new();
        for (i, r) in all.iter().enumerate() {
            let name = r.probe.name();
            let mut key = name.to_owned();
            let mut n = 1;
            while !taken.insert(key.clone()) {
                n += 1;
                key = format!("{name}#{n}");
            }
            keys.insert(i, key);
        }
        selected
            .into_iter()
            .zip(results)
            .map(|(i, result)| {
                let r = all[i].clone();
                let key = keys.get(&i).cloned().unwrap_or_else(|| r.probe.name().to_owned());
                if key != r.probe.name() {
                    tracing::warn!(target: "resee_ops::health", probe = r.probe.name(), reported_as = %key,
                        "two health probes share a name; give them distinct names");
                }
                record_check(&key, &result);
                (r, key, result)
            })
            .collect()
    }
}

/// Runs one probe in its own task, under `timeout`, catching panics.
/// The check's metrics: its duration and status, labelled with its report key.
fn record_check(key: &str, result: &CheckResult) {
    use crate::telemetry::{PROBE_DURATION, PROBE_STATUS};
    let status = match result.status {
        HealthStatus::Up => 1.0,
        HealthStatus::Degraded | HealthStatus::Unknown => 0.5,
        _ => 0.0,
    };
    let probe = key.to_owned();
    metrics::histogram!(PROBE_DURATION, "probe" => probe.clone()).record(result.duration);
    metrics::gauge!(PROBE_STATUS, "probe" => probe).set(status);
}

async fn run_one(probe: Arc<dyn HealthProbe>, timeout: Duration) -> ProbeOutcome {
    let started = tokio::time::Instant::now();
    let task_probe = probe.clone();
    let mut task = tokio::spawn(async move { task_probe.check().await });
    let outcome = match tokio::time::timeout(timeout, &mut task).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(join)) if join.is_panic() => {
            let payload = join.into_panic();
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            tracing::error!(target: "resee_ops::health", probe = probe.name(), panic = %msg, "health probe panicked");
            ProbeOutcome::down(format!("probe panicked: {msg}"))
        }
        Ok(Err(_)) => ProbeOutcome::down("probe task was cancelled"),
        Err(_) => {
            task.abort();
            tracing::warn!(target: "resee_ops::health", probe = probe.name(), ?timeout, "health probe timed out");
            ProbeOutcome::down(format!("timed out after {}", crate::serde_duration::format_duration(timeout)))
        }
    };
    // The registry's measurement wins: it includes scheduling, and is right for a probe that timed out.
    outcome.with_duration(started.elapsed())
}

mod health_json_status {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::HealthStatus;

    pub(super) fn serialize<S: Serializer>(s: &HealthStatus, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(s.as_health_json())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<HealthStatus, D::Error> {
        let text = String::deserialize(d)?;
        Ok(match text.as_str() {
            "pass" | "ok" | "up" => HealthStatus::Up,
            "warn" => HealthStatus::Degraded,
            "fail" | "error" | "down" => HealthStatus::Down,
            _ => HealthStatus::Unknown,
        })
    }
}

mod checks_as_arrays {
    use std::collections::BTreeMap;

    use serde::ser::SerializeMap;
    use serde::{Deserialize, Deserializer, Serializer};

    use super::CheckResult;

    pub(super) fn serialize<S: Serializer>(checks: &BTreeMap<String, CheckResult>, ser: S) -> Result<S::Ok, S::Error> {
        let mut map = ser.serialize_map(Some(checks.len()))?;
        for (name, check) in checks {
            map.serialize_entry(name, std::slice::from_ref(check))?;
        }
        map.end()
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, CheckResult>, D::Error> {
        let raw = BTreeMap::<String, Vec<CheckResult>>::deserialize(d)?;
        Ok(raw.into_iter().filter_map(|(k, mut v)| v.pop().map(|c| (k, c))).collect())
    }
}
