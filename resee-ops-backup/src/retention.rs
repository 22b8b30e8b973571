//! [`RetentionPolicy`]: which backups to keep, with restic's `forget` semantics, decided by a pure function.
//!
//! The rules (restic's, see `restic forget --help`): every counted rule walks the verified backups from the
//! newest to the oldest and keeps the newest backup of each of its N newest calendar buckets (`keep_last`:
//! every backup is its own bucket; hourly, daily, ISO-weekly, monthly, yearly buckets in the policy's time
//! zone); while a rule still has count left when it reaches the oldest backup, it keeps that one too;
//! `keep_within` keeps every backup strictly newer than the newest one minus a calendar span;
//! `keep_within_hourly` … `keep_within_yearly` keep the newest backup of every hourly … yearly bucket inside
//! such a window (and the oldest backup, when it is inside); `-1` means unlimited. A backup is kept when any
//! rule keeps it. On top of restic:
//!
//! - `min_verified` verified backups are always kept (the newest ones), whatever the rules say;
//! - unverified or incomplete backups (no valid manifest) never count toward a rule; they are kept while
//!   younger than `unverified_max_age` (a backup may still be finishing) and removed after that.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{BackupError, Result};

/// How many buckets a counted rule keeps: off (`0`), a number, or unlimited (`-1`).
///
/// Deserializes from an integer (`-1` for unlimited; other negative numbers are rejected) or `"unlimited"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum KeepCount {
    /// The rule is off.
    #[default]
    Off,
    /// Keep this many buckets.
    Count(u32),
    /// Keep every bucket.
    Unlimited,
}

impl KeepCount {
    /// From restic's integer form: `0` off, `-1` unlimited, `n > 0` n. Other negative numbers are an error.
    pub fn from_i64(n: i64) -> Result<Self> {
        match n {
            0 => Ok(Self::Off),
            -1 => Ok(Self::Unlimited),
            n if n > 0 => Ok(Self::Count(u32::try_from(n).unwrap_or(u32::MAX))),
            n => Err(crate::error::invalid_config(format!("keep count {n} is invalid: use -1 for unlimited"))),
        }
    }

    /// The integer form (`-1` for unlimited).
    pub fn as_i64(self) -> i64 {
        match self {
            Self::Off => 0,
            Self::Count(n) => i64::from(n),
            Self::Unlimited => -1,
        }
    }

    fn is_on(self) -> bool {
        self != Self::Off && self != Self::Count(0)
    }
}

impl From<u32> for KeepCount {
    fn from(n: u32) -> Self {
        if n == 0 { Self::Off } else { Self::Count(n) }
    }
}

impl Serialize for KeepCount {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_i64(self.as_i64())
    }
}

impl<'de> Deserialize<'de> for KeepCount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Int(i64),
            Text(String),
        }
        match Repr::deserialize(d)? {
            Repr::Int(n) => Self::from_i64(n).map_err(serde::de::Error::custom),
            Repr::Text(t) if t == "unlimited" => Ok(Self::Unlimited),
            Repr::Text(t) => Err(serde::de::Error::custom(format!("keep count {t:?}: use a number or \"unlimited\""))),
        }
    }
}

/// A calendar span for `keep_within`, restic's `NyNmNdNh` (`"7d"`, `"1m14d"`, `"1y2m3d4h"`).
///
/// Subtracted as restic does: years and months on the calendar (a day that overflows the month rolls over:
/// March 31 minus one month is March 2 or 3), then days, on the wall clock of the policy's zone; then hours
/// as elapsed time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CalendarSpan {
    /// Years.
    pub years: u32,
    /// Months.
    pub months: u32,
    /// Days.
    pub days: u32,
    /// Hours.
    pub hours: u32,
}

impl CalendarSpan {
    /// Whether the span is zero.
    pub fn is_zero(&self) -> bool {
        *self == Self::default()
    }

    /// `latest` minus this span, with the calendar arithmetic in `tz`.
    ///
    /// Total: a span that reaches past the earliest representable time gives that time
    /// ([`DateTime::<Utc>::MIN_UTC`](DateTime::MIN_UTC), before which nothing is), and within a day of the
    /// representable limits, where `tz`'s wall time itself cannot be represented, the calendar arithmetic
    /// is done in UTC. Never panics.
    pub fn before(&self, latest: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
        // chrono's `naive_local` panics when the wall time is past `NaiveDateTime::MAX` or before `MIN`
        // (a UTC time within a day of the limits, in a zone ahead of or behind UTC).
        let offset = chrono::Offset::fix(&tz.offset_from_utc_datetime(&latest.naive_utc()));
        let Some(local) = latest.naive_utc().checked_add_offset(offset) else {
            return self.before(latest, Tz::UTC);
        };
        let months = i64::from(local.year()) * 12 + i64::from(local.month0())
            - i64::from(self.years) * 12
            - i64::from(self.months);
        let (year, month0) = (months.div_euclid(12), months.rem_euclid(12));
        let first = i32::try_from(year)
            .ok()
            .and_then(|y| NaiveDate::from_ymd_opt(y, u32::try_from(month0).unwrap_or(0) + 1, 1))
            .unwrap_or(NaiveDate::MIN);
        let day_offset = i64::from(local.day()) - 1 - i64::from(self.days);
        let date = first.checked_add_signed(chrono::TimeDelta::days(day_offset)).unwrap_or(NaiveDate::MIN);
        let naive = date.and_time(local.time());
        // An ambiguous wall time (fall back) takes the earlier instant; one in a gap (spring forward) the first
        // instant after the gap.
        let instant = tz
            .from_local_datetime(&naive)
            .earliest()
            .or_else(|| {
                let after_gap = naive.checked_add_signed(chrono::TimeDelta::hours(1))?;
                tz.from_local_datetime(&after_gap).earliest()
            })
            .map_or(DateTime::<Utc>::MIN_UTC, |t| t.with_timezone(&Utc));
        instant.checked_sub_signed(chrono::TimeDelta::hours(i64::from(self.hours))).unwrap_or(DateTime::<Utc>::MIN_UTC)
    }
}

impl FromStr for CalendarSpan {
    type Err = BackupError;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || crate::error::invalid_config(format!("{s:?} is not a span like \"7d\", \"1y2m\" or \"3d12h\""));
        let mut span = Self::default();
        let mut seen = String::new();
        let mut rest = s.trim();
        if rest.is_empty() {
            return Err(bad());
        }
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
            if digits == 0 {
                return Err(bad());
            }
            let n: u32 = rest[..digits].parse().map_err(|_| bad())?;
            let unit = rest[digits..].chars().next().ok_or_else(bad)?;
            if seen.contains(unit) {
                return Err(bad());
            }
            seen.push(unit);
            match unit {
                'y' => span.years = n,
                'm' => span.months = n,
                'd' => span.days = n,
                'h' => span.hours = n,
                _ => return Err(bad()),
            }
            rest = &rest[digits + 1..];
        }
        Ok(span)
    }
}

impl fmt::Display for CalendarSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.write_str("0h");
        }
        for (n, unit) in [(self.years, 'y'), (self.months, 'm'), (self.days, 'd'), (self.hours, 'h')] {
            if n > 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        Ok(())
    }
}

impl Serialize for CalendarSpan {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CalendarSpan {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// Which backups to keep, with restic `forget` semantics. See [`RetentionPolicy::decide`] for the rules.
///
/// ```
/// use resee_ops_backup::{KeepCount, RetentionPolicy};
/// let policy: RetentionPolicy = serde_json::from_value(serde_json::json!({
///     "keep_daily": 7, "keep_weekly": 4, "keep_monthly": -1,
///     "keep_within": "2d", "keep_within_weekly": "1y", "time_zone": "Europe/Berlin", "min_verified": 3
/// })).unwrap();
/// assert_eq!(policy.keep_monthly, KeepCount::Unlimited);
/// assert_eq!(policy.keep_within_weekly, Some("1y".parse().unwrap()));
/// assert_eq!(policy.time_zone, chrono_tz::Europe::Berlin);
/// assert!(serde_json::from_value::<RetentionPolicy>(serde_json::json!({"keep_daily": -2})).is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RetentionPolicy {
    /// Keep the N newest backups.
    #[serde(default)]
    pub keep_last: KeepCount,
    /// Keep the newest backup of each of the N newest hours that have one.
    #[serde(default)]
    pub keep_hourly: KeepCount,
    /// ... days.
    #[serde(default)]
    pub keep_daily: KeepCount,
    /// ... ISO weeks (Monday to Sunday; the days around New Year may belong to week 52 or 53 of the year
    /// before, or to week 1 of the year after).
    #[serde(default)]
    pub keep_weekly: KeepCount,
    /// ... months.
    #[serde(default)]
    pub keep_monthly: KeepCount,
    /// ... years.
    #[serde(default)]
    pub keep_yearly: KeepCount,
    /// Keep every backup newer than the newest one minus this span.
    #[serde(default)]
    pub keep_within: Option<CalendarSpan>,
    /// Keep the newest backup of every hour that is newer than the newest backup minus this span (restic's
    /// `--keep-within-hourly`).
    #[serde(default)]
    pub keep_within_hourly: Option<CalendarSpan>,
    /// ... of every day (`--keep-within-daily`).
    #[serde(default)]
    pub keep_within_daily: Option<CalendarSpan>,
    /// ... of every ISO week (`--keep-within-weekly`).
    #[serde(default)]
    pub keep_within_weekly: Option<CalendarSpan>,
    /// ... of every month (`--keep-within-monthly`).
    #[serde(default)]
    pub keep_within_monthly: Option<CalendarSpan>,
    /// ... of every year (`--keep-within-yearly`).
    #[serde(default)]
    pub keep_within_yearly: Option<CalendarSpan>,
    /// The time zone of the calendar buckets (IANA name). Default UTC.
    #[serde(default = "default_tz", with = "tz_serde")]
    pub time_zone: Tz,
    /// The newest this many verified backups are always kept. Default 1.
    #[serde(default = "default_min_verified")]
    pub min_verified: u32,
    /// Unverified or incomplete backups are removed once older than this. Default 1 day.
    #[serde(default = "default_unverified_max_age", with = "resee_ops_core::serde_duration")]
    pub unverified_max_age: Duration,
}

fn default_tz() -> Tz {
    Tz::UTC
}

fn default_min_verified() -> u32 {
    1
}

fn default_unverified_max_age() -> Duration {
    Duration::from_secs(86_400)
}

mod tz_serde {
    use chrono_tz::Tz;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(tz: &Tz, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(tz.name())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Tz, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(|_| serde::de::Error::custom(format!("unknown time zone {name:?} (an IANA name)")))
    }
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self::new()
    }
}

impl RetentionPolicy {
    /// No keep rule (only `min_verified` = 1 keeps anything), UTC, unverified backups removed after a day.
    pub fn new() -> Self {
        Self {
            keep_last: KeepCount::Off,
            keep_hourly: KeepCount::Off,
            keep_daily: KeepCount::Off,
            keep_weekly: KeepCount::Off,
            keep_monthly: KeepCount::Off,
            keep_yearly: KeepCount::Off,
            keep_within: None,
            keep_within_hourly: None,
            keep_within_daily: None,
            keep_within_weekly: None,
            keep_within_monthly: None,
            keep_within_yearly: None,
            time_zone: Tz::UTC,
            min_verified: default_min_verified(),
            unverified_max_age: default_unverified_max_age(),
        }
    }

    /// Sets `keep_last`.
    pub fn with_keep_last(mut self, n: impl Into<KeepCount>) -> Self {
        self.keep_last = n.into();
        self
    }

    /// Sets `keep_hourly`.
    pub fn with_keep_hourly(mut self, n: impl Into<KeepCount>) -> Self {
        self.keep_hourly = n.into();
        self
    }

    /// Sets `keep_daily`.
    pub fn with_keep_daily(mut self, n: impl Into<KeepCount>) -> Self {
        self.keep_daily = n.into();
        self
    }

    /// Sets `keep_weekly`.
    pub fn with_keep_weekly(mut self, n: impl Into<KeepCount>) -> Self {
        self.keep_weekly = n.into();
        self
    }

    /// Sets `keep_monthly`.
    pub fn with_keep_monthly(mut self, n: impl Into<KeepCount>) -> Self {
        self.keep_monthly = n.into();
        self
    }

    /// Sets `keep_yearly`.
    pub fn with_keep_yearly(mut self, n: impl Into<KeepCount>) -> Self {
        self.keep_yearly = n.into();
        self
    }

    /// Sets `keep_within`.
    pub fn with_keep_within(mut self, span: CalendarSpan) -> Self {
        self.keep_within = Some(span);
        self
    }

    /// Sets `keep_within_hourly`.
    pub fn with_keep_within_hourly(mut self, span: CalendarSpan) -> Self {
        self.keep_within_hourly = Some(span);
        self
    }

    /// Sets `keep_within_daily`.
    pub fn with_keep_within_daily(mut self, span: CalendarSpan) -> Self {
        self.keep_within_daily = Some(span);
        self
    }

    /// Sets `keep_within_weekly`.
    pub fn with_keep_within_weekly(mut self, span: CalendarSpan) -> Self {
        self.keep_within_weekly = Some(span);
        self
    }

    /// Sets `keep_within_monthly`.
    pub fn with_keep_within_monthly(mut self, span: CalendarSpan) -> Self {
        self.keep_within_monthly = Some(span);
        self
    }

    /// Sets `keep_within_yearly`.
    pub fn with_keep_within_yearly(mut self, span: CalendarSpan) -> Self {
        self.keep_within_yearly = Some(span);
        self
    }

    /// Sets the time zone of the buckets.
    pub fn with_time_zone(mut self, tz: Tz) -> Self {
        self.time_zone = tz;
        self
    }

    /// Sets the number of verified backups that is never crossed.
    pub fn with_min_verified(mut self, n: u32) -> Self {
        self.min_verified = n;
        self
    }

    /// Sets the age after which unverified backups are removed.
    pub fn with_unverified_max_age(mut self, age: Duration) -> Self {
        self.unverified_max_age = age;
        self
    }

    /// Whether any keep rule is on (without one only `min_verified` keeps backups).
    pub fn has_rules(&self) -> bool {
        self.counted_rules().iter().any(|(_, c)| c.is_on())
            || self.keep_within.is_some_and(|s| !s.is_zero())
            || self.within_rules().iter().any(|(_, _, s)| s.is_some_and(|s| !s.is_zero()))
    }

    /// The `keep_within_*` rules: the reason, the calendar bucket they use, the span.
    fn within_rules(&self) -> [(KeepReason, KeepReason, Option<CalendarSpan>); 5] {
        [
            (KeepReason::WithinHourly, KeepReason::Hourly, self.keep_within_hourly),
            (KeepReason::WithinDaily, KeepReason::Daily, self.keep_within_daily),
            (KeepReason::WithinWeekly, KeepReason::Weekly, self.keep_within_weekly),
            (KeepReason::WithinMonthly, KeepReason::Monthly, self.keep_within_monthly),
            (KeepReason::WithinYearly, KeepReason::Yearly, self.keep_within_yearly),
        ]
    }

    fn counted_rules(&self) -> [(KeepReason, KeepCount); 6] {
        [
            (KeepReason::Last, self.keep_last),
            (KeepReason::Hourly, self.keep_hourly),
            (KeepReason::Daily, self.keep_daily),
            (KeepReason::Weekly, self.keep_weekly),
            (KeepReason::Monthly, self.keep_monthly),
            (KeepReason::Yearly, self.keep_yearly),
        ]
    }

    /// Decides, for every item, keep or remove and why. Pure: the same items and `now` give the same plan.
    /// `now` only ages unverified items. The plan lists the items newest first (equal times in input order).
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// use resee_ops_backup::{KeepReason, RetentionItem, RetentionPolicy};
    ///
    /// let day = |d| Utc.with_ymd_and_hms(2026, 3, d, 2, 0, 0).unwrap();
    /// let items: Vec<_> = (1..=5).map(|d| RetentionItem::new(day(d), format!("b{d}"), true)).collect();
    /// let plan = RetentionPolicy::new().with_keep_daily(3).decide(items, day(5));
    /// assert_eq!(plan.kept().map(|d| d.item.name.as_str()).collect::<Vec<_>>(), ["b5", "b4", "b3"]);
    /// assert_eq!(plan.decisions[0].reasons(), [KeepReason::Daily].as_slice());
    /// ```
    pub fn decide(&self, items: impl IntoIterator<Item = RetentionItem>, now: DateTime<Utc>) -> RetentionPlan {
        let mut items: Vec<RetentionItem> = items.into_iter().collect();
        // Newest first; the sort is stable, so equal instants keep their input order.
        items.sort_by_key(|i| std::cmp::Reverse(i.timestamp));
        let mut reasons: Vec<Vec<KeepReason>> = vec![Vec::new(); items.len()];
        let verified: Vec<usize> = (0..items.len()).filter(|&i| items[i].verified).collect();
        if let Some(&newest) = verified.first() {
            let latest = items[newest].timestamp;
            for (reason, count) in self.counted_rules() {
                if !count.is_on() {
                    continue;
                }
                let mut left = count;
                let mut last_key: Option<i64> = None;
                for (nr, &i) in verified.iter().enumerate() {
                    if left == KeepCount::Count(0) {
                        break;
                    }
                    let key = self.bucket(reason, nr, items[i].timestamp);
                    if last_key != Some(key) || nr == verified.len() - 1 {
                        reasons[i].push(reason);
                        last_key = Some(key);
                        if let KeepCount::Count(n) = left {
                            left = KeepCount::Count(n - 1);
                        }
                    }
                }
            }
            if let Some(span) = self.keep_within.filter(|s| !s.is_zero()) {
                let cutoff = span.before(latest, self.time_zone);
                for &i in &verified {
                    if items[i].timestamp > cutoff {
                        reasons[i].push(KeepReason::Within);
                    }
                }
            }
            // restic's `--keep-within-<bucket>`: inside the window, the newest backup of every bucket, and the
            // oldest backup when it is inside too; no count.
            for (reason, calendar, span) in self.within_rules() {
                let Some(span) = span.filter(|s| !s.is_zero()) else { continue };
                let cutoff = span.before(latest, self.time_zone);
                let mut last_key: Option<i64> = None;
                for (nr, &i) in verified.iter().enumerate() {
                    if items[i].timestamp <= cutoff {
                        break;
                    }
                    let key = self.bucket(calendar, nr, items[i].timestamp);
                    if last_key != Some(key) || nr == verified.len() - 1 {
                        reasons[i].push(reason);
                        last_key = Some(key);
                    }
                }
            }
            // The minimum is counted over what the rules keep; the newest verified items fill any gap.
            let mut kept = verified.iter().filter(|&&i| !reasons[i].is_empty()).count();
            for &i in &verified {
                if kept >= usize::try_from(self.min_verified).unwrap_or(usize::MAX) {
                    break;
                }
                if reasons[i].is_empty() {
                    reasons[i].push(KeepReason::MinVerified);
                    kept += 1;
                }
            }
        }
        let max_age = chrono::TimeDelta::from_std(self.unverified_max_age).unwrap_or(chrono::TimeDelta::MAX);
        let decisions = items
            .into_iter()
            .zip(reasons)
            .map(|(item, reasons)| {
                let decision = if !item.verified {
                    if now.signed_duration_since(item.timestamp) < max_age {
                        Decision::Keep(vec![KeepReason::UnverifiedYoung])
                    } else {
                        Decision::Remove(RemoveReason::UnverifiedTooOld)
                    }
                } else if reasons.is_empty() {
                    Decision::Remove(RemoveReason::NoRule)
                } else {
                    Decision::Keep(reasons)
                };
                RetentionDecision { item, decision }
            })
            .collect();
        RetentionPlan { decisions }
    }

    /// The bucket key of the `nr`-th newest verified item for a counted rule.
    fn bucket(&self, rule: KeepReason, nr: usize, at: DateTime<Utc>) -> i64 {
        let t = at.with_timezone(&self.time_zone);
        let (y, m, d, h) = (i64::from(t.year()), i64::from(t.month()), i64::from(t.day()), i64::from(t.hour()));
        match rule {
            KeepReason::Hourly => {
                // The UTC offset is part of the hour: on the night the clocks go back, the two 01:00 hours are
                // two buckets, as they are two real hours.
                let offset = i64::from(chrono::Offset::fix(t.offset()).local_minus_utc());
                ((y * 100 + m) * 100 + d) * 100 + h + offset * 100_000_000_000
            }
            KeepReason::Daily => (y * 100 + m) * 100 + d,
            KeepReason::Weekly => {
                let w = t.iso_week();
                i64::from(w.year()) * 100 + i64::from(w.week())
            }
            KeepReason::Monthly => y * 100 + m,
            KeepReason::Yearly => y,
            _ => i64::try_from(nr).unwrap_or(i64::MAX),
        }
    }
}

/// One backup as retention sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetentionItem {
    /// When the backup was taken.
    pub timestamp: DateTime<Utc>,
    /// Its name.
    pub name: String,
    /// Whether it is complete and verified (its manifest is there and matches).
    pub verified: bool,
}

impl RetentionItem {
    /// An item.
    pub fn new(timestamp: DateTime<Utc>, name: impl Into<String>, verified: bool) -> Self {
        Self { timestamp, name: name.into(), verified }
    }
}

/// Why a backup is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum KeepReason {
    /// `keep_last`.
    Last,
    /// `keep_hourly`.
    Hourly,
    /// `keep_daily`.
    Daily,
    /// `keep_weekly`.
    Weekly,
    /// `keep_monthly`.
    Monthly,
    /// `keep_yearly`.
    Yearly,
    /// `keep_within`.
    Within,
    /// `keep_within_hourly`.
    WithinHourly,
    /// `keep_within_daily`.
    WithinDaily,
    /// `keep_within_weekly`.
    WithinWeekly,
    /// `keep_within_monthly`.
    WithinMonthly,
    /// `keep_within_yearly`.
    WithinYearly,
    /// One of the newest `min_verified` verified backups.
    MinVerified,
    /// Unverified, but younger than `unverified_max_age` (it may still be finishing).
    UnverifiedYoung,
}

impl KeepReason {
    /// A short, stable, snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Last => "last",
            Self::Hourly => "hourly",
            Self::Daily => "daily",
            Self::Weekly => "weekly",
            Self::Monthly => "monthly",
            Self::Yearly => "yearly",
            Self::Within => "within",
            Self::WithinHourly => "within_hourly",
            Self::WithinDaily => "within_daily",
            Self::WithinWeekly => "within_weekly",
            Self::WithinMonthly => "within_monthly",
            Self::WithinYearly => "within_yearly",
            Self::MinVerified => "min_verified",
            Self::UnverifiedYoung => "unverified_young",
        }
    }
}

/// Why a backup is removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RemoveReason {
    /// No rule keeps it.
    NoRule,
    /// Unverified or incomplete, and older than `unverified_max_age`.
    UnverifiedTooOld,
}

impl RemoveReason {
    /// A short, stable, snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NoRule => "no_rule",
            Self::UnverifiedTooOld => "unverified_too_old",
        }
    }
}

/// Keep (with every rule that keeps it) or remove (and why).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Kept, by these rules.
    Keep(Vec<KeepReason>),
    /// Removed.
    Remove(RemoveReason),
}

/// The decision for one item.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetentionDecision {
    /// The item.
    pub item: RetentionItem,
    /// Keep or remove.
    pub decision: Decision,
}

impl RetentionDecision {
    /// Whether it is kept.
    pub fn is_kept(&self) -> bool {
        matches!(self.decision, Decision::Keep(_))
    }

    /// The rules that keep it (empty when removed).
    pub fn reasons(&self) -> &[KeepReason] {
        match &self.decision {
            Decision::Keep(r) => r,
            Decision::Remove(_) => &[],
        }
    }
}

/// Every item's decision, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetentionPlan {
    /// The decisions, newest first.
    pub decisions: Vec<RetentionDecision>,
}

impl RetentionPlan {
    /// The kept items, newest first.
    pub fn kept(&self) -> impl Iterator<Item = &RetentionDecision> {
        self.decisions.iter().filter(|d| d.is_kept())
    }

    /// The removed items, newest first.
    pub fn removed(&self) -> impl Iterator<Item = &RetentionDecision> {
        self.decisions.iter().filter(|d| !d.is_kept())
    }
}

impl fmt::Display for RetentionPlan {
    /// One line per item: `keep   NAME  (daily, weekly)` or `remove NAME  (no_rule)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.decisions {
            let verified = if d.item.verified { "" } else { " [unverified]" };
            match &d.decision {
                Decision::Keep(r) => {
                    let why: Vec<&str> = r.iter().map(|r| r.as_str()).collect();
                    writeln!(f, "keep   {}{verified}  ({})", d.item.name, why.join(", "))?;
                }
                Decision::Remove(r) => writeln!(f, "remove {}{verified}  ({})", d.item.name, r.as_str())?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_parse_and_print() {
        let s: CalendarSpan = "1y2m3d4h".parse().unwrap();
        assert_eq!((s.years, s.months, s.days, s.hours), (1, 2, 3, 4));
        assert_eq!(s.to_string(), "1y2m3d4h");
        assert_eq!("13d23h".parse::<CalendarSpan>().unwrap().to_string(), "13d23h");
        for bad in ["", "d", "3", "3w", "1d1d", "-1d", "1.5d"] {
            assert!(bad.parse::<CalendarSpan>().is_err(), "{bad}");
        }
    }

    #[test]
    fn month_arithmetic_rolls_over_like_restic() {
        let t = Utc.with_ymd_and_hms(2024, 3, 31, 12, 0, 0).unwrap();
        let s: CalendarSpan = "1m".parse().unwrap();
        assert_eq!(s.before(t, Tz::UTC), Utc.with_ymd_and_hms(2024, 3, 2, 12, 0, 0).unwrap());
        let s: CalendarSpan = "1d2h".parse().unwrap();
        assert_eq!(s.before(t, Tz::UTC), Utc.with_ymd_and_hms(2024, 3, 30, 10, 0, 0).unwrap());
    }

    #[test]
    fn keep_counts() {
        assert_eq!(KeepCount::from_i64(-1).unwrap(), KeepCount::Unlimited);
        assert_eq!(KeepCount::from_i64(0).unwrap(), KeepCount::Off);
        assert!(KeepCount::from_i64(-2).is_err());
        let p: RetentionPolicy = serde_json::from_value(serde_json::json!({"keep_last": "unlimited"})).unwrap();
        assert_eq!(p.keep_last, KeepCount::Unlimited);
        assert!(p.has_rules());
        assert!(!RetentionPolicy::new().has_rules());
        assert!(serde_json::from_value::<RetentionPolicy>(serde_json::json!({"time_zone": "Mars/Base"})).is_err());
        assert!(serde_json::from_value::<RetentionPolicy>(serde_json::json!({"keep_dayly": 1})).is_err());
    }
}
