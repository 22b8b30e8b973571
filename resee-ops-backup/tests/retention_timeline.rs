//! Retention over long simulated timelines, as an outside checker runs them: two years of daily 03:00
//! backups (the schedule's own fire times, so DST days are 23 or 25 hours long) in Asia/Seoul and
//! Europe/Berlin, some days with a failed (unverified) attempt and its retry 5 minutes later, pruned after
//! every run. After each prune:
//!
//! 1. the kept set is what an independent implementation of restic's rules (written here from
//!    `restic-forget.md`, not from our code) keeps of what exists;
//! 2. it equals the policy applied to everything ever seen, restricted to what still exists;
//! 3. a backup kept by the previous prune and removed by this one lost every rule that kept it: a newer
//!    backup arrived in its bucket, or its bucket fell out of the rule's N newest buckets.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, TimeZone, Utc};
use chrono_tz::Tz;
use resee_ops_backup::{KeepCount, KeepReason, RetentionItem, RetentionPolicy};
use resee_ops_core::schedule::Schedule;

/// A calendar rule of the policy, as the oracle sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Rule {
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

const RULES: [Rule; 4] = [Rule::Daily, Rule::Weekly, Rule::Monthly, Rule::Yearly];

/// The bucket of `t` for `rule`, on the wall clock of `tz` (ISO weeks for `Weekly`).
fn bucket(rule: Rule, t: DateTime<Utc>, tz: Tz) -> (i32, u32, u32) {
    let l = t.with_timezone(&tz);
    match rule {
        Rule::Daily => (l.year(), l.month(), l.day()),
        Rule::Weekly => (l.iso_week().year(), l.iso_week().week(), 0),
        Rule::Monthly => (l.year(), l.month(), 0),
        Rule::Yearly => (l.year(), 0, 0),
    }
}

/// `n` as restic's integer: `-1` unlimited.
type Counts = [(Rule, i64); 4];

fn policy(counts: &Counts, tz: Tz) -> RetentionPolicy {
    let c = |r: Rule| KeepCount::from_i64(counts.iter().find(|(x, _)| *x == r).map_or(0, |(_, n)| *n)).unwrap();
    RetentionPolicy::new()
        .with_keep_daily(c(Rule::Daily))
        .with_keep_weekly(c(Rule::Weekly))
        .with_keep_monthly(c(Rule::Monthly))
        .with_keep_yearly(c(Rule::Yearly))
        .with_time_zone(tz)
}

/// restic's rules (restic-forget.md, rules 1-5) on verified backups: for each rule, walking newest to
/// oldest while count is left, keep a backup whose bucket differs from the last kept one's, and the oldest
/// backup while count is left. Returns, per kept time, the rules that keep it.
fn restic_oracle(verified: &[DateTime<Utc>], counts: &Counts, tz: Tz) -> BTreeMap<DateTime<Utc>, Vec<Rule>> {
    let mut list = verified.to_vec();
    list.sort_by(|a, b| b.cmp(a));
    let mut kept: BTreeMap<DateTime<Utc>, Vec<Rule>> = BTreeMap::new();
    for &(rule, count) in counts {
        let mut left = count;
        let mut last = None;
        for (i, &t) in list.iter().enumerate() {
            if left == 0 {
                break;
            }
            let b = bucket(rule, t, tz);
            if last != Some(b) || i == list.len() - 1 {
                kept.entry(t).or_default().push(rule);
                last = Some(b);
                if left > 0 {
                    left -= 1;
                }
            }
        }
    }
    kept
}

#[derive(Clone, Debug)]
struct Backup {
    at: DateTime<Utc>,
    verified: bool,
}

fn name(b: &Backup) -> String {
    format!("{}{}", b.at.to_rfc3339(), if b.verified { "" } else { "-partial" })
}

/// Runs the timeline and checks the three invariants after every prune; returns the final kept set.
fn simulate(zone: &str, counts: Counts, days: usize) -> Vec<Backup> {
    let tz: Tz = zone.parse().unwrap();
    let policy = policy(&counts, tz);
    let schedule = Schedule::new("0 3 * * *", zone).unwrap();
    let start = tz.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap().with_timezone(&Utc);
    let fires = schedule.upcoming(start, days);
    assert_eq!(fires.len(), days);

    let mut existing: Vec<Backup> = Vec::new();
    let mut seen: Vec<Backup> = Vec::new();
    let mut previous: BTreeMap<String, Vec<KeepReason>> = BTreeMap::new();
    for (day, fire) in fires.iter().enumerate() {
        let fire = fire.with_timezone(&Utc);
        // Every 13th day the first attempt fails and leaves an unverified partial; the retry 5 minutes later
        // succeeds (the seed's 3 retries 5 minutes apart).
        let mut runs = Vec::new();
        if day % 13 == 5 {
            runs.push(Backup { at: fire, verified: false });
            runs.push(Backup { at: fire + chrono::Duration::minutes(5), verified: true });
        } else {
            runs.push(Backup { at: fire, verified: true });
        }
        for run in runs {
            existing.push(run.clone());
            seen.push(run.clone());
            let now = run.at + chrono::Duration::minutes(1);
            let items =
                |v: &[Backup]| v.iter().map(|b| RetentionItem::new(b.at, name(b), b.verified)).collect::<Vec<_>>();
            let plan = policy.decide(items(&existing), now);
            let kept: BTreeMap<String, Vec<KeepReason>> =
                plan.kept().map(|d| (d.item.name.clone(), d.reasons().to_vec())).collect();
            let ctx = format!("{zone} {counts:?} after the run at {}", run.at.with_timezone(&tz));

            // 1. restic's rules, independently, on what exists; unverified backups kept while younger than a day.
            let verified: Vec<DateTime<Utc>> = existing.iter().filter(|b| b.verified).map(|b| b.at).collect();
            let oracle = restic_oracle(&verified, &counts, tz);
            let mut want: BTreeSet<String> = oracle.keys().map(|t| name(&Backup { at: *t, verified: true })).collect();
            for b in existing.iter().filter(|b| !b.verified) {
                if now - b.at < chrono::Duration::days(1) {
                    want.insert(name(b));
                }
            }
            let got: BTreeSet<String> = kept.keys().cloned().collect();
            assert_eq!(got, want, "{ctx}: restic's rules");

            // 2. The policy over everything ever seen, restricted to what exists.
            let exists: BTreeSet<String> = existing.iter().map(name).collect();
            let over_seen: BTreeSet<String> = policy
                .decide(items(&seen), now)
                .kept()
                .map(|d| d.item.name.clone())
                .filter(|n| exists.contains(n))
                .collect();
            assert_eq!(got, over_seen, "{ctx}: the policy over everything seen");

            // 3. What was kept and is now removed lost each of its rules for a reason.
            for (gone, reasons) in previous.iter().filter(|(n, _)| !kept.contains_key(*n)) {
                let Some(b) = existing.iter().find(|b| name(b) == *gone) else { continue };
                if !b.verified {
                    assert!(now - b.at >= chrono::Duration::days(1), "{ctx}: {gone} removed while young");
                    continue;
                }
                for reason in reasons {
                    let rule = match reason {
                        KeepReason::Daily => Rule::Daily,
                        KeepReason::Weekly => Rule::Weekly,
                        KeepReason::Monthly => Rule::Monthly,
                        KeepReason::Yearly => Rule::Yearly,
                        other => panic!("{ctx}: {gone} was kept as {other:?}, which this policy does not have"),
                    };
                    let own = bucket(rule, b.at, tz);
                    let newer_in_bucket =
                        existing.iter().any(|o| o.verified && o.at > b.at && bucket(rule, o.at, tz) == own);
                    let newer_buckets: BTreeSet<_> = existing
                        .iter()
                        .filter(|o| o.verified && o.at > b.at && bucket(rule, o.at, tz) != own)
                        .map(|o| bucket(rule, o.at, tz))
                        .collect();
                    let count = counts.iter().find(|(r, _)| *r == rule).unwrap().1;
                    let aged_out = count >= 0 && newer_buckets.len() as i64 >= count;
                    assert!(
                        newer_in_bucket || aged_out,
                        "{ctx}: {gone}, kept by {rule:?}, removed with no newer backup in its bucket and only {} newer buckets",
                        newer_buckets.len()
                    );
                }
            }

            existing.retain(|b| got.contains(&name(b)));
            previous = kept;
        }
    }
    existing
}

#[test]
fn two_years_of_daily_backups_in_seoul_and_berlin() {
    let policies: [Counts; 3] = [
        // The usual: a week of dailies, a month of weeklies, a year of monthlies, every year.
        [(Rule::Daily, 7), (Rule::Weekly, 4), (Rule::Monthly, 12), (Rule::Yearly, -1)],
        // Counts that run out: the oldest-backup extra comes and goes.
        [(Rule::Daily, 14), (Rule::Weekly, 0), (Rule::Monthly, 6), (Rule::Yearly, 2)],
        // Unlimited weeklies: every ISO week (2026 has 53) keeps its newest backup.
        [(Rule::Daily, 3), (Rule::Weekly, -1), (Rule::Monthly, 0), (Rule::Yearly, 0)],
    ];
    for zone in ["Asia/Seoul", "Europe/Berlin"] {
        let tz: Tz = zone.parse().unwrap();
        for counts in policies {
            let kept = simulate(zone, counts, 730);
            let verified: Vec<DateTime<Utc>> = kept.iter().filter(|b| b.verified).map(|b| b.at).collect();
            // Each kept backup is a 03:00 (or 03:05 retry) local backup.
            for t in &verified {
                let l = t.with_timezone(&tz);
                assert!(l.format("%H:%M").to_string() == "03:00" || l.format("%H:%M").to_string() == "03:05", "{l}");
            }
            let n = |r: Rule| counts.iter().find(|(x, _)| *x == r).unwrap().1;
            let distinct = |r: Rule| verified.iter().map(|t| bucket(r, *t, tz)).collect::<BTreeSet<_>>().len() as i64;
            for r in RULES {
                if n(r) > 0 {
                    assert!(distinct(r) >= n(r), "{zone} {counts:?}: {r:?} keeps its {} buckets", n(r));
                }
            }
            if n(Rule::Weekly) == -1 {
                // 2026-W01 .. 2027-W52 (2026 has 53 ISO weeks), and one more for the last days of 2027.
                assert!(distinct(Rule::Weekly) >= 105, "{zone}: {} weeks", distinct(Rule::Weekly));
            }
        }
    }
}
