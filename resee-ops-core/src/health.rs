//! Health: the [`HealthProbe`] trait and what a probe reports.

use std::fmt::{self, Debug};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// The state of a component, ordered from best to worst so that the worst of several is their `max`.
///
/// `Up < Degraded < Unknown < Down`. In `application/health+json` terms `Up` is `pass`, `Degraded` and
/// `Unknown` are `warn`, `Down` is `fail`.
///
/// ```
/// use resee_ops_core::HealthStatus;
/// let worst = [HealthStatus::Up, HealthStatus::Degraded, HealthStatus::Up].into_iter().max().unwrap();
/// assert_eq!(worst, HealthStatus::Degraded);
/// assert_eq!(HealthStatus::Down.as_health_json(), "fail");
/// ```
///
/// `#[non_exhaustive]`: a `match` outside this crate needs a `_` arm.
///
/// ```compile_fail,E0004
/// use resee_ops_core::HealthStatus;
/// fn ok(s: HealthStatus) -> bool {
///     match s { HealthStatus::Up => true, HealthStatus::Degraded | HealthStatus::Unknown | HealthStatus::Down => false }
/// }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum HealthStatus {
    /// Working.
    Up,
    /// Working, but impaired or close to a limit.
    Degraded,
    /// The state could not be determined.
    #[default]
    Unknown,
    /// Not working.
    Down,
}

impl HealthStatus {
    /// `pass`, `warn` or `fail`, as `application/health+json` spells it.
    pub const fn as_health_json(self) -> &'static str {
        match self {
            Self::Up => "pass",
            Self::Degraded | Self::Unknown => "warn",
            Self::Down => "fail",
        }
    }

    /// The lowercase name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Degraded => "degraded",
            Self::Unknown => "unknown",
            Self::Down => "down",
        }
    }
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one run of a probe found.
///
/// ```
/// use resee_ops_core::{HealthStatus, ProbeOutcome};
/// let o = ProbeOutcome::degraded("disk usage above 80 %").with_observed(85.2, "percent");
/// assert_eq!(o.status, HealthStatus::Degraded);
/// assert_eq!(o.observed_value, Some(85.2));
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProbeOutcome {
    /// The verdict.
    pub status: HealthStatus,
    /// A measured value, if the probe has one (latency, percent used, live workers).
    pub observed_value: Option<f64>,
    /// The unit of `observed_value` (`ms`, `percent`, `workers`).
    pub observed_unit: Option<String>,
    /// Human-readable detail, free of secrets; for failures, why.
    pub output: Option<String>,
    /// How long the check took. The registry fills it in from its own measurement.
    #[serde(with = "crate::serde_duration")]
    pub duration: Duration,
}

impl ProbeOutcome {
    /// An outcome with `status` and nothing else.
    pub fn new(status: HealthStatus) -> Self {
        Self { status, observed_value: None, observed_unit: None, output: None, duration: Duration::ZERO }
    }

    /// Working.
    pub fn up() -> Self {
        Self::new(HealthStatus::Up)
    }

    /// Impaired, with why.
    pub fn degraded(output: impl Into<String>) -> Self {
        Self::new(HealthStatus::Degraded).with_output(output)
    }

    /// Not working, with why.
    pub fn down(output: impl Into<String>) -> Self {
        Self::new(HealthStatus::Down).with_output(output)
    }

    /// Undetermined, with why.
    pub fn unknown(output: impl Into<String>) -> Self {
        Self::new(HealthStatus::Unknown).with_output(output)
    }

    /// Adds a measured value and its unit.
    pub fn with_observed(mut self, value: f64, unit: impl Into<String>) -> Self {
        self.observed_value = Some(value);
        self.observed_unit = Some(unit.into());
        self
    }

    /// Sets the human-readable detail.
    pub fn with_output(mut self, output: impl Into<String>) -> Self {
        self.output = Some(output.into());
        self
    }

    /// Sets the duration.
    pub fn with_duration(mut self, duration: Duration) -> Self {
        self.duration = duration;
        self
    }
}

/// The words of a health alert, as a probe chooses them: see [`HealthProbe::alert_text`].
///
/// ```
/// use resee_ops_core::ProbeAlertText;
/// let t = ProbeAlertText::new("Payment gateway unreachable").with_text("3 of 3 requests timed out");
/// assert_eq!(t.text.as_deref(), Some("3 of 3 requests timed out"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProbeAlertText {
    /// The one-line title (measured values welcome: they never enter the fingerprint).
    pub title: String,
    /// Longer text; `None` lets the monitor use the check's output.
    pub text: Option<String>,
}

impl ProbeAlertText {
    /// A title and no text.
    pub fn new(title: impl Into<String>) -> Self {
        Self { title: title.into(), text: None }
    }

    /// Sets the text.
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }
}

/// Checks one dependency or resource: a database, a cache, a disk, the workers.
///
/// `check` should bound its own work, but the [`HealthRegistry`](crate::HealthRegistry) also runs it under a
/// timeout and catches panics, so one hung or broken probe never holds up the others. Outputs must be free
/// of secrets (no connection strings with passwords).
///
/// ```
/// use async_trait::async_trait;
/// use resee_ops_core::{HealthProbe, ProbeOutcome};
///
/// #[derive(Debug)]
/// struct AlwaysUp;
///
/// #[async_trait]
/// impl HealthProbe for AlwaysUp {
///     fn name(&self) -> &str { "always_up" }
///     async fn check(&self) -> ProbeOutcome { ProbeOutcome::up() }
/// }
/// # let p: std::sync::Arc<dyn HealthProbe> = std::sync::Arc::new(AlwaysUp);
/// # assert!(p.is_critical());
/// ```
#[async_trait]
pub trait HealthProbe: Send + Sync + Debug + 'static {
    /// A short, stable name: the key in health reports (`database`, `redis`, `disk:/var/lib`).
    fn name(&self) -> &str;

    /// Whether the service is unusable when this probe is down. A non-critical probe that fails makes the
    /// aggregate `warn`, not `fail`. Defaults to `true`.
    fn is_critical(&self) -> bool {
        true
    }

    /// Runs the check once.
    async fn check(&self) -> ProbeOutcome;

    /// The title and text of the alert a health monitor sends about this probe: for a firing,
    /// `outcome` is the failing check and `resolved` is false; for the recovery, the passing check and
    /// `true`. The default reads "Health check `<name>` failed" (text: the check's output) and "Health
    /// check `<name>` recovered"; probes with something better to say override it (the database probe
    /// says "Database connection failed", the disk probe "Disk usage 93 %").
    fn alert_text(&self, outcome: &ProbeOutcome, resolved: bool) -> ProbeAlertText {
        let name = self.name();
        if resolved {
            ProbeAlertText::new(format!("Health check {name} recovered"))
        } else {
            let text = ProbeAlertText::new(format!("Health check {name} failed"));
            match &outcome.output {
                Some(output) => text.with_text(output.clone()),
                None => text,
            }
        }
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl<P: HealthProbe + ?Sized> HealthProbe for Arc<P> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn alert_text(&self, outcome: &ProbeOutcome, resolved: bool) -> ProbeAlertText {
        (**self).alert_text(outcome, resolved)
    }
    fn is_critical(&self) -> bool {
        (**self).is_critical()
    }
    async fn check(&self) -> ProbeOutcome {
        (**self).check().await
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl<P: HealthProbe + ?Sized> HealthProbe for Box<P> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn alert_text(&self, outcome: &ProbeOutcome, resolved: bool) -> ProbeAlertText {
        (**self).alert_text(outcome, resolved)
    }
    fn is_critical(&self) -> bool {
        (**self).is_critical()
    }
    async fn check(&self) -> ProbeOutcome {
        (**self).check().await
    }
}
