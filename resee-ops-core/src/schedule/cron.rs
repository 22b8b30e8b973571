//! [`Schedule`]: a cron expression in an IANA time zone, with its DST rules, jitter and preview.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use crate::{Error, ErrorKind, Result};

/// The fields of a 5-field expression, with what each allows (a 6-field one has `second` first).
const FIELDS: [(&str, &str); 5] = [
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31, L, W"),
    ("month", "1-12 or JAN-DEC"),
    ("day-of-week", "0-7 or SUN-SAT (0 and 7 are Sunday), #n, L"),
];
const SECOND: (&str, &str) = ("second", "0-59");

/// A cron expression evaluated in an IANA time zone: when a job fires.
///
/// Expressions have 5 fields (`minute hour day-of-month month day-of-week`), or 6 with seconds first, or
/// are an alias (`@yearly`, `@monthly`, `@weekly`, `@daily`, `@hourly`). Both the expression and the zone
/// are checked when the schedule is built; the error names the field that is wrong and what it allows.
///
/// Daylight-saving rules (local wall-clock schedules in a zone with DST):
/// - a time that does not exist (spring forward) fires **once, at the first instant after the gap**;
/// - a time that occurs twice (fall back) fires **once, at its first occurrence**, and a process started
///   inside the repeated hour after that occurrence does not run it again at the second;
/// - an hourly or finer schedule keeps its period in real time across both changes.
///
/// So a daily job runs exactly once per local day, never twice and never skipped (croner's rules, which are
/// Vixie cron's for a fixed-time job; `tests/dst.rs` checks them against chrono-tz in Europe/Berlin,
/// America/New_York, Australia/Sydney and Asia/Seoul).
///
/// ```
/// use chrono::{DateTime, Utc};
/// use resee_ops_core::schedule::Schedule;
///
/// let daily = Schedule::new("0 3 * * *", "Asia/Seoul").unwrap();
/// let after: DateTime<Utc> = "2026-12-01T12:00:00Z".parse().unwrap(); // 21:00 in Seoul
/// let next: Vec<String> = daily.upcoming(after, 2).iter().map(|t| t.to_rfc3339()).collect();
/// assert_eq!(next, ["2026-12-02T03:00:00+09:00", "2026-12-03T03:00:00+09:00"]);
///
/// let err = Schedule::new("0 25 * * *", "Asia/Seoul").unwrap_err();
/// assert!(err.to_string().contains("hour field"), "{err}");
/// assert!(Schedule::new("0 3 * * *", "Asia/Tokio").unwrap_err().to_string().contains("unknown time zone"));
/// ```
#[derive(Clone)]
pub struct Schedule {
    expression: String,
    cron: Cron,
    zone: Tz,
    jitter: Duration,
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schedule")
            .field("expression", &self.expression)
            .field("zone", &self.zone.name())
            .field("jitter", &self.jitter)
            .finish()
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.expression, self.zone.name())
    }
}

fn parser() -> CronParser {
    CronParser::builder().seconds(Seconds::Optional).year(Year::Disallowed).build()
}

fn invalid(message: String) -> Error {
    Error::new(ErrorKind::InvalidConfig, message)
}

impl Schedule {
    /// Parses `expression` and looks up `zone` (an IANA name such as `Asia/Seoul` or `UTC`).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidConfig`] naming the wrong field (and what it allows), the unknown zone, or an
    /// expression that never matches a date (`0 0 30 2 *`).
    pub fn new(expression: &str, zone: &str) -> Result<Self> {
        let zone = parse_zone(zone)?;
        let cron = parse_cron(expression)?;
        let schedule = Self { expression: expression.trim().to_owned(), cron, zone, jitter: Duration::ZERO };
        // Patterns such as 30 February parse but never fire: say so now, not at the first wait.
        if schedule.next_after(Utc::now()).is_none() {
            return Err(invalid(format!("cron expression {expression:?} never matches a date")));
        }
        Ok(schedule)
    }

    /// Adds a random delay of up to `max` to every run (spreads replicas and fleets). The scheduler keeps a
    /// jittered run before the next slot. Default: none.
    pub fn with_jitter(mut self, max: Duration) -> Self {
        self.jitter = max;
        self
    }

    /// The expression as written.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The IANA name of the zone.
    pub fn zone_name(&self) -> &'static str {
        self.zone.name()
    }

    /// The jitter bound.
    pub fn jitter(&self) -> Duration {
        self.jitter
    }

    /// The first fire time strictly after `after` (without jitter), or `None` if there is none.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.zone);
        self.cron.find_next_occurrence(&local, false).ok().map(|t| t.with_timezone(&Utc))
    }

    /// The last fire time at or before `at`, or `None` if there is none.
    pub fn previous_at_or_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = at.with_timezone(&self.zone);
        self.cron.find_previous_occurrence(&local, true).ok().map(|t| t.with_timezone(&Utc))
    }

    /// The next `n` fire times after `after`, in the schedule's zone with their UTC offsets (for logs, the
    /// CLI and tests; `to_rfc3339()` prints them as `2026-12-02T03:00:00+09:00`).
    pub fn upcoming(&self, after: DateTime<Utc>, n: usize) -> Vec<DateTime<FixedOffset>> {
        let mut out = Vec::with_capacity(n);
        let mut t = after;
        while out.len() < n {
            let Some(next) = self.next_after(t) else { break };
            out.push(next.with_timezone(&self.zone).fixed_offset());
            t = next;
        }
        out
    }

    /// The schedule's period around `at`: the time between the next two fire times (one day for a daily
    /// job, 23 or 25 hours across a DST change). Used by the missed-run policy.
    pub fn period_at(&self, at: DateTime<Utc>) -> Option<Duration> {
        let first = self.next_after(at)?;
        let second = self.next_after(first)?;
        (second - first).to_std().ok()
    }

    /// A random delay in `[0, jitter]`, at most half the time to the following slot.
    pub(crate) fn jitter_for(&self, slot: DateTime<Utc>) -> Duration {
        if self.jitter.is_zero() {
            return Duration::ZERO;
        }
        let room = self.next_after(slot).and_then(|n| (n - slot).to_std().ok()).map_or(self.jitter, |d| d / 2);
        self.jitter.min(room).mul_f64(fastrand::f64())
    }
}

/// Looks up an IANA zone name.
fn parse_zone(zone: &str) -> Result<Tz> {
    Tz::from_str(zone.trim()).map_err(|_| {
        invalid(format!(
            "unknown time zone {zone:?}: use an IANA name such as \"Asia/Seoul\", \"Europe/Berlin\" or \"UTC\""
        ))
    })
}

/// Parses an expression; on failure finds the field to blame by parsing each field on its own.
fn parse_cron(expression: &str) -> Result<Cron> {
    let text = expression.trim();
    if text.is_empty() {
        return Err(invalid("cron expression is empty: expected 5 fields (minute hour day-of-month month day-of-week), 6 with seconds first, or @daily/@hourly/@weekly/@monthly/@yearly".into()));
    }
    let parser = parser();
    let err = match parser.parse(text) {
        Ok(cron) => return Ok(cron),
        Err(e) => e,
    };
    let fields: Vec<&str> = text.split_whitespace().collect();
    if text.starts_with('@') {
        return Err(invalid(format!(
            "cron expression {text:?}: unknown alias; allowed: @yearly, @annually, @monthly, @weekly, @daily, @hourly"
        )));
    }
    let names: Vec<(&str, &str)> = match fields.len() {
        5 => FIELDS.to_vec(),
        6 => std::iter::once(SECOND).chain(FIELDS).collect(),
        n => {
            return Err(invalid(format!(
                "cron expression {text:?} has {n} fields: expected 5 (minute hour day-of-month month day-of-week) or 6 (second first)"
            )));
        }
    };
    for (i, (name, allowed)) in names.iter().enumerate() {
        let probe: Vec<&str> = (0..fields.len()).map(|j| if i == j { fields[j] } else { "*" }).collect();
        if parser.parse(&probe.join(" ")).is_err() {
            return Err(invalid(format!(
                "cron expression {text:?}: the {name} field ({} of {}) {:?} is invalid; allowed: {allowed}, with * , - /",
                ordinal(i + 1),
                fields.len(),
                fields[i]
            )));
        }
    }
    Err(invalid(format!("cron expression {text:?} is invalid: {err}")))
}

fn ordinal(n: usize) -> &'static str {
    ["1st", "2nd", "3rd", "4th", "5th", "6th"].get(n - 1).copied().unwrap_or("nth")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_field() {
        let cases = [
            ("61 * * * *", "minute field (1st of 5)"),
            ("0 3 32 * *", "day-of-month field (3rd of 5)"),
            ("0 3 * 13 *", "month field (4th of 5)"),
            ("0 3 * * MOX", "day-of-week field (5th of 5)"),
            ("99 0 3 * * *", "second field (1st of 6)"),
            ("0 3 * *", "has 4 fields"),
            ("@sometimes", "unknown alias"),
            ("", "empty"),
            ("0 0 30 2 *", "never matches"),
        ];
        for (expr, needle) in cases {
            let err = Schedule::new(expr, "UTC").unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidConfig);
            assert!(err.to_string().contains(needle), "{expr:?}: {err}");
        }
    }

    #[test]
    fn aliases_and_seconds_parse() {
        for expr in ["@daily", "@hourly", "@weekly", "@monthly", "@yearly", "*/10 * * * * *", "0 3 * * MON-FRI"] {
            Schedule::new(expr, "Asia/Seoul").unwrap();
        }
    }

    #[test]
    fn period_of_a_daily_schedule_is_a_day() {
        let s = Schedule::new("0 3 * * *", "Asia/Seoul").unwrap();
        assert_eq!(s.period_at("2026-12-01T00:00:00Z".parse().unwrap()), Some(Duration::from_secs(86_400)));
    }

    #[test]
    fn jitter_stays_inside_half_the_period() {
        let s = Schedule::new("* * * * *", "UTC").unwrap().with_jitter(Duration::from_secs(3600));
        let slot = "2026-12-01T00:00:00Z".parse().unwrap();
        for _ in 0..100 {
            assert!(s.jitter_for(slot) <= Duration::from_secs(30));
        }
    }
}
