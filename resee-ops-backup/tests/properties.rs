//! Property tests (proptest): no configuration, duration, version string, span or date makes the backup
//! crate panic (issue 16, point 14), and retention decides every item across the whole range chrono can
//! represent, in every IANA zone. Nothing here reaches a server: the only connection goes to port 1 of
//! loopback (refused at once), on paused Tokio time, and every retry policy is capped to a few attempts, so
//! no case can hang.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;
use resee_ops_backup::{
    BackupConfig, BackupFreshnessProbe, BackupSelector, CalendarSpan, KeepCount, KeepReason, LocalDirTarget,
    PgDumpBackup, PgVersion, RetentionItem, RetentionPolicy,
};
use resee_ops_core::testing::{InMemoryBackupTarget, ManualClock, RecordingNotifier};
use resee_ops_core::{ArtifactName, BackupTarget, HealthProbe, HealthStatus, RetryPolicy};
use serde_json::json;

#[path = "../../resee-ops-core/tests/support/arbitrary.rs"]
mod arbitrary;
use arbitrary::{config_value, duration, parse};

fn paused<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap().block_on(f)
}

/// Any instant chrono can represent, weighted toward the two limits (where local wall times stop being
/// representable) and toward ordinary dates.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    let (min, max) = (DateTime::<Utc>::MIN_UTC.timestamp(), DateTime::<Utc>::MAX_UTC.timestamp());
    prop_oneof![
        1 => Just(DateTime::<Utc>::MIN_UTC),
        1 => Just(DateTime::<Utc>::MAX_UTC),
        2 => (0i64..4 * 86_400).prop_map(move |s| DateTime::from_timestamp(min + s, 0).unwrap()),
        2 => (0i64..4 * 86_400).prop_map(move |s| DateTime::from_timestamp(max - s, 0).unwrap()),
        2 => (min..=max).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap()),
        4 => (0i64..4_102_444_800).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap()),
    ]
}

/// Any IANA zone chrono-tz knows.
fn zone() -> impl Strategy<Value = Tz> {
    prop::sample::select(chrono_tz::TZ_VARIANTS.to_vec())
}

fn keep_count() -> impl Strategy<Value = KeepCount> {
    prop_oneof![
        Just(KeepCount::Off),
        Just(KeepCount::Unlimited),
        (0u32..6).prop_map(KeepCount::from),
        any::<u32>().prop_map(KeepCount::from)
    ]
}

fn span() -> impl Strategy<Value = CalendarSpan> {
    let part = prop_oneof![3 => 0u32..40, 1 => any::<u32>()];
    (part.clone(), part.clone(), part.clone(), part).prop_map(|(years, months, days, hours)| CalendarSpan {
        years,
        months,
        days,
        hours,
    })
}

fn policy() -> impl Strategy<Value = RetentionPolicy> {
    (
        prop::collection::vec(keep_count(), 6),
        prop::option::of(span()),
        zone(),
        prop_oneof![0u32..4, any::<u32>()],
        duration(),
        prop::collection::vec(prop::option::of(span()), 5),
    )
        .prop_map(|(c, within, tz, min_verified, max_age, within_buckets)| {
            let mut p = RetentionPolicy::new()
                .with_keep_last(c[0])
                .with_keep_hourly(c[1])
                .with_keep_daily(c[2])
                .with_keep_weekly(c[3])
                .with_keep_monthly(c[4])
                .with_keep_yearly(c[5])
                .with_time_zone(tz)
                .with_min_verified(min_verified)
                .with_unverified_max_age(max_age);
            if let Some(s) = within {
                p = p.with_keep_within(s);
            }
            let setters = [
                RetentionPolicy::with_keep_within_hourly,
                RetentionPolicy::with_keep_within_daily,
                RetentionPolicy::with_keep_within_weekly,
                RetentionPolicy::with_keep_within_monthly,
                RetentionPolicy::with_keep_within_yearly,
            ];
            for (set, span) in setters.into_iter().zip(within_buckets) {
                if let Some(s) = span {
                    p = set(p, s);
                }
            }
            p
        })
}

/// Commits `bytes` as `name` on `target`.
async fn put(target: &InMemoryBackupTarget, name: &str, bytes: &[u8]) {
    let mut w = target.create(&ArtifactName::new(name).unwrap()).await.unwrap();
    w.write(bytes).await.unwrap();
    w.commit().await.unwrap();
}

/// A verified backup of `size` bytes named for `taken`, whose manifest says it finished at `finished`.
async fn put_backup(target: &InMemoryBackupTarget, taken: &str, size: usize, finished: DateTime<Utc>) {
    let artifact = format!("resee_test_{taken}.sql.gz");
    put(target, &artifact, &vec![0u8; size]).await;
    let manifest = json!({
        "format": 1, "artifact": artifact, "database": "resee", "environment": "test", "sha256": "00",
        "compressed_size": size, "raw_size": size, "compression": "gzip", "level": 5,
        "pg_dump_version": "17.0", "server_version": "17.0", "started_at": finished, "finished_at": finished,
        "duration": "1s",
    });
    put(target, &format!("{artifact}.manifest.json"), manifest.to_string().as_bytes()).await;
}

/// A retry policy of any durations, but at most three attempts: the properties must end.
fn retry() -> impl Strategy<Value = RetryPolicy> {
    (1u32..=3, duration(), duration(), duration(), duration(), any::<bool>()).prop_map(|(n, a, b, c, d, jitter)| {
        RetryPolicy::default()
            .with_max_attempts(n)
            .with_initial_backoff(a)
            .with_max_backoff(b)
            .with_max_retry_after(c)
            .with_deadline(d)
            .with_jitter(jitter)
    })
}

/// The regression the first version of these properties found: chrono's `naive_local` panics when the wall
/// time of an instant within a day of the representable limits is itself past them (a zone ahead of UTC at
/// the end of time, one behind it at the start). `keep_within` must still decide.
#[test]
fn keep_within_decides_at_the_limits_of_time_in_any_zone() {
    let span: CalendarSpan = "1d2h".parse().unwrap();
    for (latest, tz) in [
        (DateTime::<Utc>::MAX_UTC, chrono_tz::Asia::Tokyo),
        (DateTime::<Utc>::MAX_UTC - TimeDelta::hours(3), chrono_tz::Pacific::Kiritimati),
        (DateTime::<Utc>::MIN_UTC, chrono_tz::America::New_York),
        (DateTime::<Utc>::MIN_UTC + TimeDelta::hours(1), chrono_tz::Asia::Seoul),
    ] {
        let cutoff = span.before(latest, tz);
        assert!(cutoff <= latest, "{latest} {tz}: {cutoff}");
        let policy = RetentionPolicy::new().with_keep_within(span).with_time_zone(tz).with_keep_daily(2);
        let items =
            [RetentionItem::new(latest, "newest", true), RetentionItem::new(DateTime::<Utc>::MIN_UTC, "oldest", true)];
        let plan = policy.decide(items, latest);
        assert_eq!(plan.decisions.len(), 2);
        assert!(plan.decisions[0].is_kept());
    }
    // At the end of time in a zone ahead of UTC, the calendar arithmetic runs in UTC: one day and two hours.
    assert_eq!(
        span.before(DateTime::<Utc>::MAX_UTC, chrono_tz::Asia::Tokyo),
        DateTime::<Utc>::MAX_UTC - TimeDelta::hours(26)
    );
    // A span reaching before the start of time keeps everything after the start.
    assert_eq!(
        CalendarSpan { years: 0, months: 0, days: 0, hours: 5 }.before(DateTime::<Utc>::MIN_UTC, Tz::UTC),
        DateTime::<Utc>::MIN_UTC
    );
}

/// `PgVersion::parse` overflowed on `first * 10_000` (debug: a panic; release: a wrapped, wrong version).
#[test]
fn versions_past_server_version_num_are_not_versions() {
    for text in
        ["4294967295.1", "429497.0", "4294967295", "15.10000", "9.6.100", "9.100", "pg_dump (PostgreSQL) 99999999999.1"]
    {
        assert_eq!(PgVersion::parse(text), None, "{text}");
    }
    assert_eq!(PgVersion::parse("429496.7295"), Some(PgVersion::from_num(u32::MAX)));
    assert_eq!(PgVersion::parse("9.6.99"), Some(PgVersion::from_num(90699)));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any string: a version or `None`, never a panic; a version in range prints back as it was read.
    #[test]
    fn version_parsing_never_panics(
        text in "\\PC{0,24}",
        major in prop_oneof![0u64..30, any::<u32>().prop_map(u64::from), any::<u64>()],
        minor in prop_oneof![0u64..100, any::<u64>()],
        patch in prop_oneof![0u64..100, any::<u64>()],
    ) {
        let _ = PgVersion::parse(&text);
        let dotted = format!("{major}.{minor}.{patch}");
        for t in [dotted.as_str(), &format!("pg_dump (PostgreSQL) {major}.{minor} (Debian)"), &format!("{major}beta{minor}")] {
            if let Some(v) = PgVersion::parse(t) {
                let _ = (v.major(), v.major_key(), v.to_string());
            }
        }
        if (10..=429_495).contains(&major) && minor < 10_000 {
            let v = PgVersion::parse(&format!("{major}.{minor}")).unwrap();
            prop_assert_eq!(v.to_string(), format!("{major}.{minor}"));
        }
        if (1..10).contains(&major) && minor < 100 && patch < 100 {
            let v = PgVersion::parse(&dotted).unwrap();
            prop_assert_eq!(v.to_string(), dotted);
        }
    }

    /// Any string, dates at the limits included: a restore selector or an error, never a panic.
    #[test]
    fn restore_selectors_parse_without_panic(text in "\\PC{0,32}", at in instant(), offset in -86_399i32..86_400) {
        let _ = text.parse::<BackupSelector>();
        if let Some(zone) = chrono::FixedOffset::east_opt(offset) {
            let _ = at.with_timezone(&zone).to_rfc3339().parse::<BackupSelector>();
        }
        let _ = at.format("%Y-%m-%d %H:%M").to_string().parse::<BackupSelector>();
    }

    /// Any string: a span or an error, never a panic; a span prints in a form that parses back to it.
    #[test]
    fn calendar_spans_parse_without_panic(text in "\\PC{0,16}", numbers in "[0-9ymdh]{0,16}", s in span()) {
        let _ = text.parse::<CalendarSpan>();
        let _ = numbers.parse::<CalendarSpan>();
        if !s.is_zero() {
            prop_assert_eq!(s.to_string().parse::<CalendarSpan>().unwrap(), s);
        }
    }

    /// Any span, any representable instant, any zone: a cutoff no later than the instant, never a panic.
    #[test]
    fn calendar_spans_subtract_anywhere_in_time(s in span(), latest in instant(), tz in zone()) {
        let cutoff = s.before(latest, tz);
        prop_assert!(cutoff <= latest, "{} before {} in {} is {}", s, latest, tz, cutoff);
        if s.years == 0 && s.months == 0 && s.days == 0 {
            let exact = latest.checked_sub_signed(TimeDelta::hours(i64::from(s.hours)));
            prop_assert_eq!(cutoff, exact.unwrap_or(DateTime::<Utc>::MIN_UTC));
        }
    }

    /// Any policy, any items anywhere in time, any zone: every item gets one decision, newest first, the
    /// newest `min_verified` verified items are kept, and nothing panics.
    #[test]
    fn retention_decides_anywhere_in_time(
        policy in policy(),
        items in prop::collection::vec((instant(), any::<bool>()), 0..12),
        now in instant(),
    ) {
        let items: Vec<RetentionItem> =
            items.into_iter().enumerate().map(|(i, (t, v))| RetentionItem::new(t, format!("b{i}"), v)).collect();
        let plan = policy.decide(items.clone(), now);
        prop_assert_eq!(plan.decisions.len(), items.len());
        prop_assert!(plan.decisions.windows(2).all(|w| w[0].item.timestamp >= w[1].item.timestamp));
        let verified = items.iter().filter(|i| i.verified).count();
        let kept_verified = plan.kept().filter(|d| d.item.verified).count();
        prop_assert!(kept_verified >= verified.min(policy.min_verified as usize));
        if let Some(newest) = plan.decisions.iter().find(|d| d.item.verified)
            && (policy.has_rules() || policy.min_verified > 0)
        {
            prop_assert!(newest.is_kept(), "the newest verified backup is removed: {}", plan);
        }
        for d in plan.removed() {
            prop_assert!(d.reasons().is_empty());
        }
        for d in plan.kept().filter(|d| !d.item.verified) {
            prop_assert_eq!(d.reasons(), [KeepReason::UnverifiedYoung].as_slice());
        }
    }

    /// Arbitrary JSON and TOML into the backup's configuration types: a value or an error, never a panic;
    /// each configuration parsed is built into a backup (or refused), and its names and retention are used.
    #[test]
    fn backup_configs_never_panic(
        config in config_value(&json!({
            "connection": "postgres://backup:pw@127.0.0.1:1/resee", "environment": "production", "name": "resee",
            "profile": "zstd", "level": 3, "threads": 2, "pg_dump": "/usr/bin/pg_dump", "connect_timeout": "30s",
            "lock_wait_timeout": "5m", "timeout": "6h", "single_run_lock": false,
            "retry": {"max_attempts": 3, "initial_backoff": "5m", "max_backoff": "5m", "max_retry_after": "1h",
                      "deadline": "1d", "jitter": false},
            "retention": {"keep_last": 3, "keep_hourly": -1, "keep_daily": 7, "keep_weekly": 4, "keep_monthly": 12,
                          "keep_yearly": "unlimited", "keep_within": "1y2m3d4h",
                          "keep_within_daily": "7d", "keep_within_yearly": "9999y", "time_zone": "Asia/Seoul",
                          "min_verified": 1, "unverified_max_age": "1d"},
        })),
        retention in config_value(&serde_json::to_value(
            RetentionPolicy::new().with_keep_daily(7).with_keep_within("2d".parse().unwrap())
        ).unwrap()),
        at in instant(),
    ) {
        if let Some(policy) = parse::<RetentionPolicy>(&retention) {
            let _ = policy.decide([RetentionItem::new(at, "b", true), RetentionItem::new(at, "u", false)], at);
        }
        if let Some(config) = parse::<BackupConfig>(&config) {
            let _ = format!("{config:?}");
            if let Ok(backup) = PgDumpBackup::builder().with_config(config).with_target(InMemoryBackupTarget::new()).build() {
                let _ = (backup.artifact_name(at), backup.name_prefix(), backup.single_run_lock_key());
                if let Some(policy) = &backup.config().retention {
                    let _ = policy.decide([RetentionItem::new(at, "b", true)], at);
                }
            }
        }
    }

    /// S3 settings from arbitrary JSON and TOML, and built with arbitrary durations and sizes: a target or
    /// an error, never a panic (no request is sent).
    #[cfg(feature = "s3")]
    #[test]
    fn s3_configs_never_panic(
        config in config_value(&json!({
            "bucket": "resee-backups", "prefix": "db", "region": "us-east-1", "endpoint": "http://127.0.0.1:1",
            "access_key_id": "id", "secret_access_key": "key", "session_token": "t", "path_style": true,
            "cloud_credentials": false, "encryption": {"sse_kms": {"key_id": "k"}}, "storage_class": "STANDARD_IA",
            "part_size": 8388608, "parts_in_flight": 2, "sweep_after": "24h", "request_timeout": "5m",
            "max_retries": 3, "retry_timeout": "2m",
        })),
        part_size in prop_oneof![Just(5usize << 20), Just(5usize << 30), any::<usize>()],
        in_flight in any::<usize>(),
        sweep_after in duration(),
        request_timeout in duration(),
        retries in any::<usize>(),
        within in duration(),
    ) {
        if let Some(config) = parse::<resee_ops_backup::S3Config>(&config) {
            let _ = resee_ops_backup::S3Target::from_config(config);
        }
        let _ = resee_ops_backup::S3Target::builder("resee-backups")
            .with_endpoint("http://127.0.0.1:1")
            .with_credentials("id", resee_ops_backup::Secret::new("key"))
            .with_part_size(part_size)
            .with_parts_in_flight(in_flight)
            .with_sweep_after(sweep_after)
            .with_request_timeout(request_timeout)
            .with_retries(retries, within)
            .build();
    }

    /// Freshness over manifests finished anywhere in time, judged at any time with any limit and any size
    /// ratio; the local target's sweep with any minimum age: an outcome, never a panic. A backup no older
    /// than the limit is never "stopped".
    #[test]
    fn freshness_and_sweep_take_any_time_and_duration(
        finished in instant(),
        previous in instant(),
        now in instant(),
        max_age in duration(),
        ratio in prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(-1.0), any::<f64>(), 0.0..1.0],
        sizes in (1usize..64, 1usize..64),
        min_age in duration(),
    ) {
        let target = InMemoryBackupTarget::new();
        let outcome = paused(async {
            put_backup(&target, "20261201_030000", sizes.0, finished).await;
            put_backup(&target, "20261130_030000", sizes.1, previous).await;
            BackupFreshnessProbe::new(target.clone(), "resee_test_")
                .with_max_age(max_age)
                .with_min_size_ratio(ratio)
                .with_clock(ManualClock::at(now).shared())
                .check()
                .await
        });
        let age = (now - finished).to_std().unwrap_or_default();
        if age <= max_age {
            prop_assert!(matches!(outcome.status, HealthStatus::Up | HealthStatus::Degraded), "{:?}", outcome);
        } else {
            prop_assert_eq!(outcome.status, HealthStatus::Down);
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".resee_test_20261201_030000.sql.gz.tmp-1-00000000000000ff"), b"x").unwrap();
        let local = LocalDirTarget::new(dir.path()).unwrap().with_sweep_min_age(min_age);
        let _ = paused(local.sweep_incomplete());
    }
}

proptest! {
    // Each case starts `pg_dump --version` once (about 0.1 s): few cases, the edges come from `duration()`.
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Any timeouts and any retry durations through the builder, then a run against a refused server: the
    /// run fails (or, without a `pg_dump`, fails to start), never panics. `Duration::MAX` is no limit.
    #[test]
    fn backup_runs_take_any_duration(
        timeout in duration(),
        connect_timeout in duration(),
        lock_wait_timeout in duration(),
        retry in retry(),
        within in prop::option::of(span()),
    ) {
        let mut retention = RetentionPolicy::new().with_keep_last(2);
        if let Some(s) = within {
            retention = retention.with_keep_within(s);
        }
        let built = PgDumpBackup::builder()
            .with_url("postgres://backup@127.0.0.1:1/resee")
            .with_timeout(timeout)
            .with_connect_timeout(connect_timeout)
            .with_lock_wait_timeout(lock_wait_timeout)
            .with_retry(retry)
            .with_retention(retention)
            .with_single_run_lock(false)
            .with_target(InMemoryBackupTarget::new())
            .with_notifier(RecordingNotifier::new())
            .with_clock(ManualClock::at(Utc.with_ymd_and_hms(2026, 12, 1, 3, 0, 0).unwrap()).shared())
            .build();
        let Ok(backup) = built else {
            prop_assert!(timeout.is_zero() || connect_timeout.is_zero());
            return Ok(());
        };
        let outcome = paused(backup.run());
        prop_assert!(!outcome.is_success());
        prop_assert!(outcome.report.attempts >= 1 && outcome.report.attempts <= 3);
    }
}
