//! Retention decisions: restic's own `forget` test cases as an oracle, and hand-built timelines for what restic
//! does not test (time zones and DST, ISO week 53, the verified minimum, unverified backups).

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use resee_ops_backup::{CalendarSpan, Decision, KeepCount, KeepReason, RemoveReason, RetentionItem, RetentionPolicy};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("{s}: {e}")).with_timezone(&Utc)
}

fn verified(times: &[&str]) -> Vec<RetentionItem> {
    times.iter().map(|t| RetentionItem::new(at(t), *t, true)).collect()
}

fn kept_names(policy: &RetentionPolicy, items: Vec<RetentionItem>, now: DateTime<Utc>) -> Vec<String> {
    policy.decide(items, now).kept().map(|d| d.item.name.clone()).collect()
}

/// restic's `TestApplyPolicy` cases (`tests/data/restic-forget-cases.json`, BSD-2-Clause, restic authors):
/// every case (all 37: restic's 40 but the 3 tag cases) must keep exactly restic's expected snapshots.
#[test]
fn restic_forget_cases_are_reproduced() {
    let data: serde_json::Value =
        serde_json::from_str(include_str!("data/restic-forget-cases.json")).expect("valid JSON");
    let snapshots: Vec<String> =
        data["snapshots"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect();
    let now = at("2016-01-18T12:02:03Z");
    let mut checked = 0;
    for case in data["cases"].as_array().unwrap() {
        let n = case["n"].as_u64().unwrap();
        let mut policy = RetentionPolicy::new().with_min_verified(0);
        for (key, value) in case["policy"].as_object().unwrap() {
            let count = || KeepCount::from_i64(value.as_i64().unwrap()).unwrap();
            let span = || value.as_str().unwrap().parse::<CalendarSpan>().unwrap();
            match key.as_str() {
                "last" => policy = policy.with_keep_last(count()),
                "hourly" => policy = policy.with_keep_hourly(count()),
                "daily" => policy = policy.with_keep_daily(count()),
                "weekly" => policy = policy.with_keep_weekly(count()),
                "monthly" => policy = policy.with_keep_monthly(count()),
                "yearly" => policy = policy.with_keep_yearly(count()),
                "within" => policy = policy.with_keep_within(span()),
                "within_hourly" => policy = policy.with_keep_within_hourly(span()),
                "within_daily" => policy = policy.with_keep_within_daily(span()),
                "within_weekly" => policy = policy.with_keep_within_weekly(span()),
                "within_monthly" => policy = policy.with_keep_within_monthly(span()),
                "within_yearly" => policy = policy.with_keep_within_yearly(span()),
                other => panic!("case {n}: unknown rule {other}"),
            }
        }
        let items: Vec<RetentionItem> = snapshots.iter().map(|s| RetentionItem::new(at(s), s.clone(), true)).collect();
        let plan = policy.decide(items, now);
        let mut got: Vec<DateTime<Utc>> = plan.kept().map(|d| d.item.timestamp).collect();
        let mut want: Vec<DateTime<Utc>> =
            case["keep"].as_array().unwrap().iter().map(|s| at(s.as_str().unwrap())).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "restic case {n} {}", case["policy"]);
        assert_eq!(plan.decisions.len(), snapshots.len());
        checked += 1;
    }
    assert_eq!(checked, 37, "every case of the file: restic's 40 but its 3 tag cases");
    assert_eq!(data["skipped"].as_array().unwrap().len(), 3);
}

#[test]
fn daily_buckets_follow_the_configured_zone_across_the_spring_forward_day() {
    // Berlin springs forward on 2026-03-29. B is 23:30 CEST on the 29th, A 00:30 CEST on the 30th: two local
    // days, one UTC day.
    let items = || {
        verified(&[
            "2026-03-27T12:00:00Z",
            "2026-03-28T21:30:00Z", // C: 22:30 CET on the 28th
            "2026-03-29T21:30:00Z", // B
            "2026-03-29T22:30:00Z", // A
        ])
    };
    let now = at("2026-03-30T00:00:00Z");
    let berlin = RetentionPolicy::new().with_min_verified(0).with_keep_daily(2).with_time_zone(Tz::Europe__Berlin);
    assert_eq!(kept_names(&berlin, items(), now), ["2026-03-29T22:30:00Z", "2026-03-29T21:30:00Z"]);
    let utc = berlin.clone().with_time_zone(Tz::UTC);
    assert_eq!(kept_names(&utc, items(), now), ["2026-03-29T22:30:00Z", "2026-03-28T21:30:00Z"]);
}

#[test]
fn the_two_one_oclock_hours_of_the_fall_back_night_are_two_hourly_buckets() {
    // New York falls back on 2027-11-07: 01:10 EDT (05:10Z) and 01:10 EST (06:10Z) are an hour apart.
    let items = verified(&[
        "2027-11-07T04:10:00Z", // 00:10 EDT
        "2027-11-07T05:10:00Z", // 01:10 EDT
        "2027-11-07T05:40:00Z", // 01:40 EDT
        "2027-11-07T06:10:00Z", // 01:10 EST
        "2027-11-07T07:10:00Z", // 02:10 EST
    ]);
    let p = RetentionPolicy::new().with_min_verified(0).with_keep_hourly(3).with_time_zone(Tz::America__New_York);
    assert_eq!(
        kept_names(&p, items, at("2027-11-07T08:00:00Z")),
        ["2027-11-07T07:10:00Z", "2027-11-07T06:10:00Z", "2027-11-07T05:40:00Z"]
    );
}

#[test]
fn keep_within_subtracts_calendar_days_in_the_zone_across_dst() {
    // Latest: 12:00 CEST on 2026-03-29. One calendar day earlier is 12:00 CET on the 28th, 23 real hours.
    let items = || verified(&["2026-03-29T10:00:00Z", "2026-03-28T11:30:00Z", "2026-03-28T10:30:00Z"]);
    let now = at("2026-03-29T10:00:00Z");
    let span: CalendarSpan = "1d".parse().unwrap();
    let berlin = RetentionPolicy::new().with_min_verified(0).with_keep_within(span).with_time_zone(Tz::Europe__Berlin);
    assert_eq!(kept_names(&berlin, items(), now), ["2026-03-29T10:00:00Z", "2026-03-28T11:30:00Z"]);
    let utc = berlin.with_time_zone(Tz::UTC);
    assert_eq!(kept_names(&utc, items(), now).len(), 3);
    // Exactly at the cutoff is out.
    let p = RetentionPolicy::new().with_min_verified(0).with_keep_within("2h".parse().unwrap());
    assert_eq!(kept_names(&p, verified(&["2026-01-01T12:00:00Z", "2026-01-01T10:00:00Z"]), now).len(), 1);
}

#[test]
fn years_and_months_end_where_the_zone_says() {
    // 03:00Z on New Year's Day is still 22:00 on New Year's Eve in New York.
    let items = || verified(&["2026-01-01T03:00:00Z", "2025-12-31T12:00:00Z", "2025-06-01T12:00:00Z"]);
    let now = at("2026-01-01T04:00:00Z");
    let ny = RetentionPolicy::new().with_min_verified(0).with_keep_yearly(1).with_time_zone(Tz::America__New_York);
    assert_eq!(kept_names(&ny, items(), now), ["2026-01-01T03:00:00Z"]);
    let monthly = ny.clone().with_keep_yearly(0u32).with_keep_monthly(2);
    assert_eq!(kept_names(&monthly, items(), now), ["2026-01-01T03:00:00Z", "2025-06-01T12:00:00Z"]);
    let utc = RetentionPolicy::new().with_min_verified(0).with_keep_yearly(2);
    assert_eq!(kept_names(&utc, items(), now), ["2026-01-01T03:00:00Z", "2025-12-31T12:00:00Z"]);
}

#[test]
fn iso_week_53_spans_the_new_year() {
    // 2026 has 53 ISO weeks: Monday 2026-12-28 to Sunday 2027-01-03 is 2026-W53.
    let items = verified(&[
        "2027-01-04T12:00:00Z", // 2027-W01
        "2027-01-03T12:00:00Z", // 2026-W53
        "2026-12-28T12:00:00Z", // 2026-W53
        "2026-12-27T12:00:00Z", // 2026-W52
        "2026-12-20T12:00:00Z", // 2026-W51
    ]);
    let p = RetentionPolicy::new().with_min_verified(0).with_keep_weekly(3);
    let plan = p.decide(items, at("2027-01-05T00:00:00Z"));
    let names: Vec<&str> = plan.kept().map(|d| d.item.name.as_str()).collect();
    assert_eq!(names, ["2027-01-04T12:00:00Z", "2027-01-03T12:00:00Z", "2026-12-27T12:00:00Z"]);
    assert_eq!(plan.decisions[2].decision, Decision::Remove(RemoveReason::NoRule));
}

#[test]
fn unlimited_keeps_every_bucket_and_the_oldest() {
    let mut times = Vec::new();
    for day in 1..=30 {
        times.push(format!("2026-04-{day:02}T01:00:00Z"));
        times.push(format!("2026-04-{day:02}T13:00:00Z"));
    }
    let items: Vec<RetentionItem> = times.iter().map(|t| RetentionItem::new(at(t), t.clone(), true)).collect();
    let p = RetentionPolicy::new().with_min_verified(0).with_keep_daily(KeepCount::Unlimited);
    let plan = p.decide(items, at("2026-05-01T00:00:00Z"));
    // The newest of each of the 30 days, and the oldest backup (restic's "oldest daily snapshot").
    assert_eq!(plan.kept().count(), 31);
    assert!(plan.kept().any(|d| d.item.name == "2026-04-01T01:00:00Z"));
    assert!(!plan.kept().any(|d| d.item.name == "2026-04-02T01:00:00Z"));
    let all = RetentionPolicy::new().with_min_verified(0).with_keep_last(KeepCount::Unlimited);
    assert_eq!(
        all.decide(plan.decisions.iter().map(|d| d.item.clone()), at("2026-05-01T00:00:00Z")).kept().count(),
        60
    );
}

#[test]
fn the_verified_minimum_wins_over_the_rules() {
    let items =
        verified(&["2026-05-03T00:00:00Z", "2026-05-02T00:00:00Z", "2026-05-01T00:00:00Z", "2026-04-30T00:00:00Z"]);
    let p = RetentionPolicy::new().with_keep_last(1).with_min_verified(3);
    let plan = p.decide(items.clone(), at("2026-05-03T00:00:00Z"));
    let reasons: Vec<&[KeepReason]> = plan.decisions.iter().map(|d| d.reasons()).collect();
    assert_eq!(reasons, [&[KeepReason::Last][..], &[KeepReason::MinVerified], &[KeepReason::MinVerified], &[]]);
    // Even a policy without rules keeps the minimum, and the default minimum is one.
    assert_eq!(RetentionPolicy::new().decide(items.clone(), at("2026-05-03T00:00:00Z")).kept().count(), 1);
    // A minimum larger than what exists keeps everything.
    assert_eq!(
        RetentionPolicy::new().with_min_verified(10).decide(items, at("2026-05-03T00:00:00Z")).kept().count(),
        4
    );
}

#[test]
fn unverified_backups_never_count_and_go_after_their_age() {
    let now = at("2026-05-03T12:00:00Z");
    let items = vec![
        RetentionItem::new(at("2026-05-03T11:00:00Z"), "fresh-unverified", false),
        RetentionItem::new(at("2026-05-03T00:00:00Z"), "v3", true),
        RetentionItem::new(at("2026-05-02T06:00:00Z"), "old-unverified", false),
        RetentionItem::new(at("2026-05-02T00:00:00Z"), "v2", true),
        RetentionItem::new(at("2026-05-01T00:00:00Z"), "v1", true),
    ];
    let p = RetentionPolicy::new().with_keep_last(2).with_min_verified(2);
    let plan = p.decide(items, now);
    let got: Vec<(&str, &Decision)> = plan.decisions.iter().map(|d| (d.item.name.as_str(), &d.decision)).collect();
    assert_eq!(
        got,
        [
            ("fresh-unverified", &Decision::Keep(vec![KeepReason::UnverifiedYoung])),
            ("v3", &Decision::Keep(vec![KeepReason::Last])),
            ("old-unverified", &Decision::Remove(RemoveReason::UnverifiedTooOld)),
            ("v2", &Decision::Keep(vec![KeepReason::Last])),
            ("v1", &Decision::Remove(RemoveReason::NoRule)),
        ]
    );
    // Only unverified backups: none counts toward the minimum, old ones still go.
    let only = vec![RetentionItem::new(at("2026-04-01T00:00:00Z"), "u", false)];
    assert_eq!(p.decide(only, now).removed().count(), 1);
    let text = p.decide(vec![RetentionItem::new(at("2026-04-01T00:00:00Z"), "u", false)], now).to_string();
    assert_eq!(text, "remove u [unverified]  (unverified_too_old)\n");
}

#[test]
fn the_decision_is_the_same_whatever_the_input_order() {
    let mut items = verified(&[
        "2026-01-05T00:00:00Z",
        "2026-01-01T00:00:00Z",
        "2026-01-03T00:00:00Z",
        "2026-01-02T00:00:00Z",
        "2026-01-04T00:00:00Z",
    ]);
    let p = RetentionPolicy::new().with_keep_daily(2).with_keep_weekly(1);
    let now = Utc.with_ymd_and_hms(2026, 1, 6, 0, 0, 0).unwrap();
    let first = p.decide(items.clone(), now);
    items.reverse();
    assert_eq!(p.decide(items, now), first);
    let times: Vec<_> = first.decisions.iter().map(|d| d.item.timestamp).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
}
