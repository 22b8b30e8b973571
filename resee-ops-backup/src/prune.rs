//! Applying a [`RetentionPolicy`] to a target.
//!
//! **Removal order.** For each backup to remove, the manifest goes first and the artifact second. The
//! manifest is what marks a backup verified and restorable, so an interruption between the two (a crash, a
//! failed delete) leaves at worst an artifact without a manifest: an unverified backup, never restored,
//! removed by a later run once it is older than `unverified_max_age`. It never leaves a verified-looking
//! manifest without its data. When the manifest cannot be removed, the artifact is left alone too.
//! Manifests whose artifact is already gone are removed as well.

use std::fmt;

use chrono::{DateTime, Utc};
use resee_ops_core::{ArtifactName, BackupTarget, ErrorKind};
use serde::Serialize;

use crate::catalog::{self, Catalog};
use crate::verify::Manifest;
use crate::{Result, RetentionItem, RetentionPlan, RetentionPolicy};

/// What a prune did (or, for a dry run, would do).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PruneReport {
    /// Every backup's decision, newest first.
    pub plan: RetentionPlan,
    /// Whether this was a dry run (nothing removed).
    pub dry_run: bool,
    /// The files removed (manifests and artifacts), in the order removed.
    pub removed: Vec<String>,
    /// Removals that failed; the backup stays (or stays unverified) and the next run tries again.
    pub warnings: Vec<String>,
}

impl fmt::Display for PruneReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kept = self.plan.kept().count();
        let removed = self.plan.removed().count();
        let verb = if self.dry_run { "would remove" } else { "removing" };
        writeln!(f, "retention: keeping {kept}, {verb} {removed}")?;
        write!(f, "{}", self.plan)?;
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        Ok(())
    }
}

/// A serializable summary of a [`PruneReport`].
#[derive(Debug, Serialize)]
struct Summary<'a> {
    kept: usize,
    removed: &'a [String],
    warnings: &'a [String],
}

impl PruneReport {
    /// A JSON summary: `{kept, removed, warnings}`.
    pub fn summary_json(&self) -> serde_json::Value {
        serde_json::to_value(Summary {
            kept: self.plan.kept().count(),
            removed: &self.removed,
            warnings: &self.warnings,
        })
        .unwrap_or_default()
    }
}

/// Applies `policy` to the backups on `target` whose names start with `prefix` (`"{database}_{environment}_"`),
/// manifest first, then artifact (an interruption leaves at worst an unverified artifact, never a verified-looking
/// manifest without its data). `now` ages unverified backups. With `dry_run` nothing is removed. Failing to list the target is an error; failing to remove a file is a warning in the report.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use resee_ops_backup::{RetentionPolicy, prune};
/// use resee_ops_core::testing::InMemoryBackupTarget;
///
/// let target = InMemoryBackupTarget::new();
/// let report = prune(&target, &RetentionPolicy::new().with_keep_daily(7), "db_prod_", chrono::Utc::now(), true)
///     .await
///     .unwrap();
/// assert!(report.plan.decisions.is_empty());
/// # });
/// ```
pub async fn prune(
    target: &dyn BackupTarget,
    policy: &RetentionPolicy,
    prefix: &str,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<PruneReport> {
    let Catalog { backups, orphan_manifests } = catalog::list_backups(target, prefix).await?;
    let plan =
        policy.decide(backups.iter().map(|b| RetentionItem::new(b.taken_at, b.name.as_str(), b.is_verified())), now);
    let mut report = PruneReport { plan, dry_run, removed: Vec::new(), warnings: Vec::new() };
    if dry_run {
        return Ok(report);
    }
    let doomed: Vec<String> = report.plan.removed().map(|d| d.item.name.clone()).collect();
    for name in doomed {
        let Ok(artifact) = ArtifactName::new(name.as_str()) else { continue };
        let manifest = Manifest::name_for(&artifact)?;
        // The manifest first: see the module docs.
        if !remove(target, &manifest, &mut report).await {
            continue;
        }
        remove(target, &artifact, &mut report).await;
    }
    for orphan in orphan_manifests {
        remove(target, &orphan, &mut report).await;
    }
    Ok(report)
}

/// Removes one file; a missing file counts as removed. Returns whether it is gone.
async fn remove(target: &dyn BackupTarget, name: &ArtifactName, report: &mut PruneReport) -> bool {
    match target.delete(name).await {
        Ok(()) => {
            tracing::info!(file = %name, "retention removed");
            report.removed.push(name.to_string());
            true
        }
        Err(e) if e.kind() == ErrorKind::NotFound => true,
        Err(e) => {
            tracing::warn!(file = %name, error = %e, "retention cannot remove a file");
            report.warnings.push(format!("cannot remove {name}: {e}"));
            false
        }
    }
}
