//! Alerts: what a notifier delivers.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How bad it is. Ordered from least to most severe.
///
/// ```
/// use resee_ops_core::Severity;
/// assert!(Severity::Error > Severity::Warning);
/// let s: Severity = serde_json::from_str("\"critical\"").unwrap();
/// assert_eq!(s, Severity::Error);
/// ```
///
/// `#[non_exhaustive]`: a level may be added in a minor release, so a `match` outside this crate needs a
/// `_` arm; naming every level is not enough:
///
/// ```compile_fail,E0004
/// use resee_ops_core::Severity;
/// fn rank(s: Severity) -> u8 {
///     match s { Severity::Info => 0, Severity::Success => 1, Severity::Warning => 2, Severity::Error => 3 }
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Severity {
    /// For information only.
    Info,
    /// Something finished well (a backup, a recovery).
    Success,
    /// Needs attention soon.
    Warning,
    /// Needs attention now. `"critical"` is accepted as an alias.
    #[serde(alias = "critical")]
    Error,
}

impl Severity {
    /// All levels, least severe first.
    pub const ALL: [Severity; 4] = [Severity::Info, Severity::Success, Severity::Warning, Severity::Error];

    /// The lowercase name (`"info"`, `"success"`, `"warning"`, `"error"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Success => "success",
            Self::Warning => "warning",
            Self::Error => "error",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether an alert reports a problem or its end.
///
/// `#[non_exhaustive]`: a `match` outside this crate needs a `_` arm.
///
/// ```compile_fail,E0004
/// use resee_ops_core::AlertStatus;
/// fn open(s: AlertStatus) -> bool {
///     match s { AlertStatus::Firing => true, AlertStatus::Resolved => false }
/// }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum AlertStatus {
    /// The condition holds.
    #[default]
    Firing,
    /// The condition that fired has ended.
    Resolved,
}

/// A stable identity for an alert, computed from its identity labels only.
///
/// Two alerts about the same thing have the same fingerprint whatever their measured values, title or text,
/// so that throttling and resolution can match them. The hash is 64-bit XXH3 over the alert's name, source
/// and labels, each part seeded with the hash so far; XXH3 is a frozen, specified algorithm, so a
/// fingerprint is stable across processes, builds and releases.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Fingerprint(u64);

impl Fingerprint {
    /// Computes a fingerprint from an alert name, a source and identity labels (in any order).
    pub fn compute<'a>(name: &str, source: &str, labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut labels: Vec<_> = labels.into_iter().collect();
        labels.sort_unstable();
        Self::from_sorted(name, source, labels)
    }

    /// [`compute`](Self::compute) for labels already sorted by key, then value (as a `BTreeMap` yields them).
    fn from_sorted<'a>(name: &str, source: &str, labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        // Each part is hashed with the running hash as its seed. XXH3 mixes a part's length into its hash,
        // so part boundaries count: ("ab", "c") and ("a", "bc") differ. No buffer, no allocation.
        let part = |seed: u64, bytes: &str| xxhash_rust::xxh3::xxh3_64_with_seed(bytes.as_bytes(), seed);
        let mut h = part(part(0, name), source);
        for (k, v) in labels {
            h = part(part(h, k), v);
        }
        Self(h)
    }

    /// The raw 64-bit value.
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// A fingerprint from a raw value (for stores that persist fingerprints).
    pub const fn from_u64(v: u64) -> Self {
        Self(v)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// One key/value pair shown with an alert (for example `Size: 12.4 MB`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Field {
    /// The label.
    pub name: String,
    /// The value, as text.
    pub value: String,
}

impl Field {
    /// A field `name: value`.
    ///
    /// ```
    /// use resee_ops_core::Field;
    /// let f = Field::new("Size", "12.4 MB");
    /// assert_eq!((f.name.as_str(), f.value.as_str()), ("Size", "12.4 MB"));
    /// ```
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self { name: name.into(), value: value.into() }
    }
}

/// A notification: what happened, how bad it is, and what it is about.
///
/// The [`fingerprint`](Alert::fingerprint) is computed from `name`, `source` and `labels` only. Put measured
/// values in the title, text or fields, never in labels.
///
/// ```
/// use resee_ops_core::{Alert, AlertStatus, Severity};
///
/// let alert = Alert::new("disk_usage", Severity::Warning, "Disk usage 85 %")
///     .with_source("monitor")
///     .with_label("path", "/var/lib/postgresql")
///     .with_text("The data volume is filling up.")
///     .with_field("Used", "85 %");
/// let later = Alert::new("disk_usage", Severity::Error, "Disk usage 93 %")
///     .with_source("monitor")
///     .with_label("path", "/var/lib/postgresql");
/// assert_eq!(alert.fingerprint(), later.fingerprint());
///
/// let recovered = alert.resolved();
/// assert_eq!(recovered.status, AlertStatus::Resolved);
/// assert_eq!(recovered.fingerprint(), alert.fingerprint());
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Alert {
    /// A stable, machine-readable name of the condition (`database_down`, `backup_failed`).
    pub name: String,
    /// Identity labels: what the alert is about (`database=resee`, `path=/data`). Part of the fingerprint.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// A one-line summary for humans.
    pub title: String,
    /// Longer free text; may be empty.
    #[serde(default)]
    pub text: String,
    /// Ordered key/value pairs shown with the alert.
    #[serde(default)]
    pub fields: Vec<Field>,
    /// How bad it is.
    pub severity: Severity,
    /// Firing or resolved.
    #[serde(default)]
    pub status: AlertStatus,
    /// Which component raised it (`backup`, `monitor`, a host name). Part of the fingerprint.
    #[serde(default)]
    pub source: String,
    /// When the condition was observed.
    pub timestamp: DateTime<Utc>,
}

impl Alert {
    /// A firing alert stamped with the current time.
    pub fn new(name: impl Into<String>, severity: Severity, title: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            labels: BTreeMap::new(),
            title: title.into(),
            text: String::new(),
            fields: Vec::new(),
            severity,
            status: AlertStatus::Firing,
            source: String::new(),
            timestamp: Utc::now(),
        }
    }

    /// Sets the source.
    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.source = source.into();
        self
    }

    /// Adds an identity label.
    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Sets the free text.
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = text.into();
        self
    }

    /// Appends a field.
    pub fn with_field(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.fields.push(Field { name: name.into(), value: value.into() });
        self
    }

    /// Sets the status.
    pub fn with_status(mut self, status: AlertStatus) -> Self {
        self.status = status;
        self
    }

    /// Sets the timestamp.
    pub fn with_timestamp(mut self, timestamp: DateTime<Utc>) -> Self {
        self.timestamp = timestamp;
        self
    }

    /// The same alert marked resolved, with severity [`Severity::Success`].
    pub fn resolved(&self) -> Self {
        Self { status: AlertStatus::Resolved, severity: Severity::Success, ..self.clone() }
    }

    /// The identity of this alert; see [`Fingerprint`].
    pub fn fingerprint(&self) -> Fingerprint {
        // Labels live in a BTreeMap: already sorted, so no allocation on this hot path.
        Fingerprint::from_sorted(&self.name, &self.source, self.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    /// Whether this alert reports the end of a condition.
    pub fn is_resolved(&self) -> bool {
        self.status == AlertStatus::Resolved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_ignores_values_and_label_order() {
        let a = Alert::new("x", Severity::Error, "A 1").with_label("a", "1").with_label("b", "2").with_field("v", "1");
        let b = Alert::new("x", Severity::Warning, "A 2").with_label("b", "2").with_label("a", "1").with_text("t");
        assert_eq!(a.fingerprint(), b.fingerprint());
        let c = a.clone().with_label("a", "other");
        assert_ne!(a.fingerprint(), c.fingerprint());
        let d = a.clone().with_source("elsewhere");
        assert_ne!(a.fingerprint(), d.fingerprint());
    }

    #[test]
    fn fingerprint_is_stable_across_releases() {
        // Pinned value: changing the hash would reset every persisted throttle window.
        let fp = Fingerprint::compute("database_down", "monitor", [("database", "resee")]);
        assert_eq!(fp.to_string(), format!("{:016x}", fp.as_u64()));
        assert_eq!(fp, Fingerprint::compute("database_down", "monitor", [("database", "resee")]));
        assert_eq!(fp.as_u64(), 4_694_251_438_576_365_941);
        assert_ne!(Fingerprint::compute("ab", "c", []), Fingerprint::compute("a", "bc", []), "part boundaries count");
    }

    #[test]
    fn serde_round_trip() {
        let a = Alert::new("x", Severity::Success, "done").with_field("Size", "1 MB");
        let json = serde_json::to_string(&a).unwrap();
        assert!(json.contains("\"severity\":\"success\""));
        let back: Alert = serde_json::from_str(&json).unwrap();
        assert_eq!(a, back);
    }
}
