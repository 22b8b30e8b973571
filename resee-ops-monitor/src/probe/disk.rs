//! [`DiskUsageProbe`]: how full the file system holding a path is.

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use resee_ops_core::{HealthProbe, ProbeOutcome};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use resee_ops_core::ErrorKind;

use crate::MonitorError;
use crate::error::invalid_config;

/// Sizes of a file system, in bytes, as `statvfs` reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FsStats {
    /// Total size.
    pub total_bytes: u64,
    /// Free, including blocks reserved for the superuser.
    pub free_bytes: u64,
    /// Free for unprivileged users.
    pub available_bytes: u64,
}

impl FsStats {
    /// Stats from sizes in bytes.
    pub fn new(total_bytes: u64, free_bytes: u64, available_bytes: u64) -> Self {
        Self { total_bytes, free_bytes, available_bytes }
    }

    /// Percent used, as `df` computes it: used / (used + available), so that blocks reserved for root
    /// count as unavailable. `None` for a file system of size zero.
    pub fn used_percent(&self) -> Option<f64> {
        let used = self.total_bytes.saturating_sub(self.free_bytes);
        let denominator = used + self.available_bytes;
        (denominator > 0).then(|| used as f64 * 100.0 / denominator as f64)
    }
}

/// Where the probe gets [`FsStats`]: [`Statvfs`] in production, a double in tests.
pub trait FsStatsSource: Send + Sync + Debug + 'static {
    /// The stats of the file system holding `path`. May block (it runs on a blocking thread).
    fn stats(&self, path: &Path) -> std::io::Result<FsStats>;
}

/// The real source: `statvfs(2)` through `rustix`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Statvfs;

impl FsStatsSource for Statvfs {
    fn stats(&self, path: &Path) -> std::io::Result<FsStats> {
        let s = rustix::fs::statvfs(path)?;
        let block = s.f_frsize.max(1);
        Ok(FsStats {
            total_bytes: s.f_blocks.saturating_mul(block),
            free_bytes: s.f_bfree.saturating_mul(block),
            available_bytes: s.f_bavail.saturating_mul(block),
        })
    }
}

/// Usage thresholds in percent: `Degraded` above `warning`, `Down` above `critical`.
///
/// ```
/// use resee_ops_monitor::DiskThresholds;
/// let t = DiskThresholds::default();
/// assert_eq!((t.warning(), t.critical()), (80.0, 90.0));
/// assert!(DiskThresholds::new(95.0, 90.0).is_err());
/// assert!(DiskThresholds::new(80.0, 101.0).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawThresholds", into = "RawThresholds")]
pub struct DiskThresholds {
    warning: f64,
    critical: f64,
}

#[derive(Serialize, Deserialize)]
struct RawThresholds {
    warning: f64,
    critical: f64,
}

impl TryFrom<RawThresholds> for DiskThresholds {
    type Error = MonitorError;
    fn try_from(r: RawThresholds) -> Result<Self, MonitorError> {
        Self::new(r.warning, r.critical)
    }
}

impl From<DiskThresholds> for RawThresholds {
    fn from(t: DiskThresholds) -> Self {
        Self { warning: t.warning, critical: t.critical }
    }
}

impl Default for DiskThresholds {
    fn default() -> Self {
        Self { warning: 80.0, critical: 90.0 }
    }
}

impl DiskThresholds {
    /// Thresholds with `0 <= warning <= critical <= 100`.
    pub fn new(warning: f64, critical: f64) -> Result<Self, MonitorError> {
        let ok = (0.0..=100.0).contains(&warning) && (0.0..=100.0).contains(&critical) && warning <= critical;
        if ok {
            Ok(Self { warning, critical })
        } else {
            Err(invalid_config(format!(
                "disk thresholds must satisfy 0 <= warning <= critical <= 100, got warning {warning}, critical {critical}"
            )))
        }
    }

    /// Degraded above this percentage.
    pub fn warning(&self) -> f64 {
        self.warning
    }

    /// Down above this percentage.
    pub fn critical(&self) -> f64 {
        self.critical
    }
}

/// Checks how full the file system holding a path is. Named `disk:<path>`; observed value in percent,
/// rounded to one decimal. Not critical by default: a full disk degrades a web service before it stops it,
/// and the alert fires either way.
///
/// `statvfs` runs on a blocking thread, which no timeout can stop: on a dead NFS mount it may never
/// return. At most one call is in flight per probe (clones share it; register one probe per path):
/// concurrent checks share its answer, and once it has run for [`HUNG_AFTER`], later checks do not start
/// another thread but report the probe `Down` with how long the call has been stuck.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use resee_ops_core::HealthProbe;
/// use resee_ops_monitor::DiskUsageProbe;
/// let probe = DiskUsageProbe::new("/");
/// let outcome = probe.check().await;
/// assert_eq!(outcome.observed_unit.as_deref(), Some("percent"));
/// assert_eq!(probe.name(), "disk:/");
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct DiskUsageProbe {
    name: String,
    path: PathBuf,
    thresholds: DiskThresholds,
    critical: bool,
    source: Arc<dyn FsStatsSource>,
    /// When the `statvfs` call still running started, if one is.
    in_flight: Arc<Mutex<Option<InFlight>>>,
}

impl DiskUsageProbe {
    /// A probe of the file system holding `path`, with the default thresholds (80 %, 90 %).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        Self {
            name: format!("disk:{}", path.display()),
            path,
            thresholds: DiskThresholds::default(),
            critical: false,
            source: Arc::new(Statvfs),
            in_flight: Arc::new(Mutex::new(None)),
        }
    }

    /// Sets the thresholds.
    pub fn with_thresholds(mut self, thresholds: DiskThresholds) -> Self {
        self.thresholds = thresholds;
        self
    }

    /// Renames the probe.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets whether the probe is critical (default `false`).
    pub fn with_critical(mut self, critical: bool) -> Self {
        self.critical = critical;
        self
    }

    /// Reads stats from `source` instead of `statvfs`.
    pub fn with_source(mut self, source: Arc<dyn FsStatsSource>) -> Self {
        self.source = source;
        self
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Percent used, read on a blocking thread. A call made while another is running shares its
    /// answer; once the running call is older than [`HUNG_AFTER`] (a healthy `statvfs` takes
    /// microseconds), it fails at once with kind `Timeout`, without starting another thread.
    pub async fn used_percent(&self) -> Result<f64, MonitorError> {
        let mut answer = {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            match &*in_flight {
                Some(running) if running.since.elapsed() >= HUNG_AFTER => {
                    return Err(MonitorError::new(
                        ErrorKind::Timeout,
                        format!(
                            "statvfs {} has not returned for {} s: the file system may be hung (a dead network mount?)",
                            self.path.display(),
                            running.since.elapsed().as_secs()
                        ),
                    ));
                }
                Some(running) => running.answer.clone(),
                None => {
                    let (tx, rx) = watch::channel(None);
                    *in_flight = Some(InFlight { since: tokio::time::Instant::now(), answer: rx.clone() });
                    let (source, path, slot) = (self.source.clone(), self.path.clone(), self.in_flight.clone());
                    // The thread frees the slot itself when the call returns (or panics), even if every
                    // caller gave up long before.
                    drop(tokio::task::spawn_blocking(move || {
                        let free = FreeOnDrop(slot);
                        let answer = source.stats(&path).map_err(|e| e.to_string());
                        // Free first: whoever reads this answer and checks again starts a new call.
                        drop(free);
                        let _ = tx.send(Some(answer));
                    }));
                    rx
                }
            }
        };
        let stats = match answer.wait_for(Option::is_some).await {
            Ok(done) => done.clone().unwrap_or_else(|| Err("no answer".to_owned())),
            Err(_) => Err("the statvfs task failed".to_owned()),
        }
        .map_err(|e| MonitorError::new(ErrorKind::Io, format!("statvfs {}: {e}", self.path.display())))?;
        stats.used_percent().ok_or_else(|| {
            MonitorError::new(ErrorKind::Io, format!("{} reports a file system of size zero", self.path.display()))
        })
    }
}

/// How long a `statvfs` call may run before the next check reports it hung instead of waiting for it.
pub const HUNG_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// The `statvfs` call of a probe still running: when it started and where its answer will appear.
#[derive(Debug)]
struct InFlight {
    since: tokio::time::Instant,
    answer: watch::Receiver<Option<Result<FsStats, String>>>,
}

/// Frees a probe's in-flight slot when the blocking call ends, however it ends.
struct FreeOnDrop(Arc<Mutex<Option<InFlight>>>);

impl Drop for FreeOnDrop {
    fn drop(&mut self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

#[async_trait]
impl HealthProbe for DiskUsageProbe {
    fn alert_text(&self, outcome: &ProbeOutcome, resolved: bool) -> resee_ops_core::ProbeAlertText {
        crate::AlertText::Measured("Disk usage".into()).alert_text(outcome, resolved)
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn is_critical(&self) -> bool {
        self.critical
    }

    async fn check(&self) -> ProbeOutcome {
        let used = match self.used_percent().await {
            Ok(used) => used,
            Err(e) if e.kind() == ErrorKind::Timeout => return ProbeOutcome::down(e.message()),
            Err(e) => return ProbeOutcome::unknown(e.message()),
        };
        let shown = (used * 10.0).round() / 10.0;
        let t = self.thresholds;
        let outcome = if used > t.critical {
            ProbeOutcome::down(format!("{shown} % used, above the critical threshold of {} %", t.critical))
        } else if used > t.warning {
            ProbeOutcome::degraded(format!("{shown} % used, above the warning threshold of {} %", t.warning))
        } else {
            ProbeOutcome::up()
        };
        outcome.with_observed(shown, "percent")
    }
}
