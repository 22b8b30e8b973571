//! [`BackupFreshnessProbe`]: "backups stopped" as a health check.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use resee_ops_core::{BackupTarget, HealthProbe, ProbeAlertText, ProbeOutcome, SharedClock};

use crate::catalog::list_backups;

/// A [`HealthProbe`] over one target's backups: it reads the newest **verified** backup (the one with a
/// matching manifest, written only after the artifact was read back and verified) and
///
/// - fails (`Down`) when there is none, or when it finished longer ago than `max_age` (default 26 h: a
///   daily job plus two hours of slack);
/// - warns (`Degraded`) when it is smaller than `min_size_ratio` (default 50 %) of the previous verified
///   one: a database does not usually halve overnight, a broken dump often does;
/// - reports the age in seconds as `observedValue`.
///
/// Because it looks at the target and not at the scheduler, "backups stopped" pages someone even when the
/// scheduler itself died. A target it cannot list is `Unknown`. Not critical by default: stale backups do
/// not make the service unusable (see [`with_critical`](Self::with_critical)).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::time::Duration;
/// use resee_ops_backup::BackupFreshnessProbe;
/// use resee_ops_core::{HealthProbe, HealthStatus};
/// use resee_ops_core::testing::InMemoryBackupTarget;
///
/// let probe = BackupFreshnessProbe::new(InMemoryBackupTarget::new(), "resee_production_")
///     .with_name("backup_freshness:s3")
///     .with_max_age(Duration::from_secs(26 * 3600));
/// let outcome = probe.check().await;
/// assert_eq!(outcome.status, HealthStatus::Down, "no verified backup at all");
/// # });
/// ```
pub struct BackupFreshnessProbe {
    name: String,
    target: Arc<dyn BackupTarget>,
    prefix: String,
    max_age: Duration,
    min_size_ratio: f64,
    critical: bool,
    clock: SharedClock,
}

impl fmt::Debug for BackupFreshnessProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackupFreshnessProbe")
            .field("name", &self.name)
            .field("target", &self.target)
            .field("prefix", &self.prefix)
            .field("max_age", &self.max_age)
            .field("min_size_ratio", &self.min_size_ratio)
            .field("critical", &self.critical)
            .finish_non_exhaustive()
    }
}

impl BackupFreshnessProbe {
    /// A probe of the backups on `target` whose names start with `prefix` (`{database}_{environment}_`, see
    /// [`PgDumpBackup::name_prefix`](crate::PgDumpBackup::name_prefix)). Named `backup_freshness`.
    pub fn new(target: impl BackupTarget, prefix: impl Into<String>) -> Self {
        Self::from_arc(Arc::new(target), prefix)
    }

    /// [`new`](Self::new) for a shared target.
    pub fn from_arc(target: Arc<dyn BackupTarget>, prefix: impl Into<String>) -> Self {
        Self {
            name: "backup_freshness".into(),
            target,
            prefix: prefix.into(),
            max_age: Duration::from_secs(26 * 3600),
            min_size_ratio: 0.5,
            critical: false,
            clock: resee_ops_core::system_clock(),
        }
    }

    /// The probe's name in health reports (one per target: `backup_freshness:local`, `backup_freshness:s3`).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The age past which the newest verified backup is stale (default 26 h). `Duration::MAX`: never.
    pub fn with_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// The smallest size of the newest backup relative to the previous one before it warns (default 0.5;
    /// 0 turns the check off). Values outside 0..=1 are clamped.
    pub fn with_min_size_ratio(mut self, ratio: f64) -> Self {
        self.min_size_ratio = if ratio.is_finite() { ratio.clamp(0.0, 1.0) } else { 0.0 };
        self
    }

    /// Whether a failure makes the service's readiness fail (default `false`).
    pub fn with_critical(mut self, critical: bool) -> Self {
        self.critical = critical;
        self
    }

    /// The clock that judges ages (default: the system clock).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }
}

fn human(age: Duration) -> String {
    let secs = age.as_secs();
    match secs {
        s if s >= 86_400 => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
        s if s >= 3600 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        s => format!("{}m {}s", s / 60, s % 60),
    }
}

#[async_trait]
impl HealthProbe for BackupFreshnessProbe {
    fn name(&self) -> &str {
        &self.name
    }

    fn is_critical(&self) -> bool {
        self.critical
    }

    async fn check(&self) -> ProbeOutcome {
        let catalog = match list_backups(self.target.as_ref(), &self.prefix).await {
            Ok(c) => c,
            Err(e) => return ProbeOutcome::unknown(format!("cannot list the backups: {e}")),
        };
        let mut verified = catalog.backups.iter().filter_map(|b| b.manifest.as_ref().map(|m| (b, m)));
        let Some((newest, manifest)) = verified.next() else {
            return ProbeOutcome::down(format!("no verified backup {}* on the target", self.prefix));
        };
        let now = self.clock.now();
        let age = (now - manifest.finished_at).to_std().unwrap_or(Duration::ZERO);
        let observed = |o: ProbeOutcome| o.with_observed(age.as_secs_f64().round(), "seconds");
        if age > self.max_age {
            return observed(ProbeOutcome::down(format!(
                "the newest verified backup, {}, finished {} ago (limit {})",
                newest.name,
                human(age),
                human(self.max_age)
            )));
        }
        if let Some((_, previous)) = verified.next()
            && previous.compressed_size > 0
            && (manifest.compressed_size as f64) < self.min_size_ratio * previous.compressed_size as f64
        {
            let percent = manifest.compressed_size as f64 * 100.0 / previous.compressed_size as f64;
            return observed(ProbeOutcome::degraded(format!(
                "the newest verified backup, {}, is {percent:.0} % of the size of the previous one ({} vs {} bytes)",
                newest.name, manifest.compressed_size, previous.compressed_size
            )));
        }
        observed(ProbeOutcome::up().with_output(format!("{} finished {} ago", newest.name, human(age))))
    }

    fn alert_text(&self, outcome: &ProbeOutcome, resolved: bool) -> ProbeAlertText {
        let title = match (resolved, outcome.status) {
            (true, _) => format!("Backups are fresh again ({})", self.name),
            (false, resee_ops_core::HealthStatus::Degraded) => format!("Backup shrank ({})", self.name),
            (false, resee_ops_core::HealthStatus::Unknown) => format!("Backup freshness unknown ({})", self.name),
            (false, _) => format!("Backups stopped: no recent verified backup ({})", self.name),
        };
        let text = ProbeAlertText::new(title);
        match &outcome.output {
            Some(o) if !resolved => text.with_text(o.clone()),
            _ => text,
        }
    }
}
