//! The backups on a target: artifacts found by name, each with its manifest if there is a valid one.

use chrono::{DateTime, NaiveDateTime, Utc};
use resee_ops_core::{ArtifactName, BackupTarget, ErrorKind};
use tokio::io::AsyncReadExt;

use crate::verify::Manifest;
use crate::{BackupError, Result};

const MANIFEST_SUFFIX: &str = ".manifest.json";
/// Manifests are small; anything larger is not one of ours.
const MANIFEST_MAX: u64 = 4 * 1024 * 1024;

/// The file name extensions of backup artifacts, by codec.
pub(crate) const EXTENSIONS: [&str; 2] = [".sql.gz", ".sql.zst"];

/// A backup found on a target.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct BackupEntry {
    /// The artifact's name (`{database}_{environment}_{YYYYMMDD_HHMMSS}.sql.gz` or `.sql.zst`).
    pub name: ArtifactName,
    /// Its size in bytes.
    pub size: u64,
    /// When the backup was taken (from its name, UTC).
    pub taken_at: DateTime<Utc>,
    /// Its manifest, when there is one that describes exactly this artifact (name and size). Without one the
    /// backup is unverified or incomplete and must not be restored.
    pub manifest: Option<Manifest>,
}

impl BackupEntry {
    /// Whether a matching manifest marks it complete and verified.
    pub fn is_verified(&self) -> bool {
        self.manifest.is_some()
    }
}

/// What a target holds: its backups (newest first) and manifests whose artifact is gone.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Catalog {
    /// The backups, newest first.
    pub backups: Vec<BackupEntry>,
    /// Manifests without their artifact (left by an interrupted removal, or by hand).
    pub orphan_manifests: Vec<ArtifactName>,
}

/// The time in an artifact name after `prefix` (`{prefix}YYYYMMDD_HHMMSS.sql.gz`), if it is one.
pub(crate) fn parse_artifact_name(name: &str, prefix: &str) -> Option<DateTime<Utc>> {
    let rest = name.strip_prefix(prefix)?;
    let stamp = EXTENSIONS.iter().find_map(|ext| rest.strip_suffix(ext))?;
    let stamp = if prefix.is_empty() {
        // No prefix: the time is the last 15 characters, after an underscore.
        let (head, stamp) = stamp.split_at_checked(stamp.len().checked_sub(15)?)?;
        head.strip_suffix('_').filter(|h| !h.is_empty())?;
        stamp
    } else {
        stamp
    };
    if stamp.len() != 15 {
        return None;
    }
    NaiveDateTime::parse_from_str(stamp, "%Y%m%d_%H%M%S").ok().map(|t| t.and_utc())
}

/// Lists the backups on `target` whose names start with `prefix` (`"{database}_{environment}_"`, or `""` for
/// all), newest first, reading each manifest.
pub async fn list_backups(target: &dyn BackupTarget, prefix: &str) -> Result<Catalog> {
    let listing = target.list().await?;
    let mut manifests = std::collections::BTreeMap::new();
    let mut artifacts = Vec::new();
    for meta in listing {
        let name = meta.name.as_str();
        if let Some(artifact) = name.strip_suffix(MANIFEST_SUFFIX) {
            if parse_artifact_name(artifact, prefix).is_some() {
                manifests.insert(artifact.to_owned(), meta);
            }
        } else if let Some(taken_at) = parse_artifact_name(name, prefix) {
            artifacts.push((meta, taken_at));
        }
    }
    let mut catalog = Catalog::default();
    for (meta, taken_at) in artifacts {
        let manifest = match manifests.remove(meta.name.as_str()) {
            Some(m) => read_manifest(target, &m.name, m.size).await?.filter(|man| {
                let matches = man.artifact == meta.name.as_str() && man.compressed_size == meta.size;
                if !matches {
                    tracing::warn!(file = %meta.name, "the manifest does not describe this artifact");
                }
                matches
            }),
            None => None,
        };
        catalog.backups.push(BackupEntry { name: meta.name, size: meta.size, taken_at, manifest });
    }
    catalog.backups.sort_by(|a, b| b.taken_at.cmp(&a.taken_at).then_with(|| b.name.cmp(&a.name)));
    catalog.orphan_manifests = manifests.into_values().map(|m| m.name).collect();
    Ok(catalog)
}

/// Reads and parses a manifest; `None` when it is missing (removed meanwhile), oversized or invalid.
async fn read_manifest(target: &dyn BackupTarget, name: &ArtifactName, size: u64) -> Result<Option<Manifest>> {
    if size > MANIFEST_MAX {
        tracing::warn!(file = %name, size, "ignoring an oversized manifest");
        return Ok(None);
    }
    let mut reader = match target.open(name).await {
        Ok(r) => r,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut text = Vec::new();
    (&mut reader)
        .take(MANIFEST_MAX)
        .read_to_end(&mut text)
        .await
        .map_err(|e| BackupError::io(format!("cannot read {name}"), e))?;
    match serde_json::from_slice::<Manifest>(&text) {
        Ok(m) => Ok(Some(m)),
        Err(e) => {
            tracing::warn!(file = %name, error = %e, "ignoring an invalid manifest");
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse() {
        let t = |s: &str| parse_artifact_name(s, "").map(|t| t.to_rfc3339());
        assert_eq!(t("db_prod_20261201_203000.sql.gz").as_deref(), Some("2026-12-01T20:30:00+00:00"));
        assert_eq!(t("a_b_c_20261201_203000.sql.zst").as_deref(), Some("2026-12-01T20:30:00+00:00"));
        assert_eq!(t("20261201_203000.sql.gz"), None);
        assert_eq!(t("db_prod_20261301_203000.sql.gz"), None);
        assert_eq!(t("db_prod_20261201_203000.sql"), None);
        assert!(parse_artifact_name("db_prod_20261201_203000.sql.gz", "db_prod_").is_some());
        assert!(parse_artifact_name("db_prod_x_20261201_203000.sql.gz", "db_prod_").is_none());
    }
}
