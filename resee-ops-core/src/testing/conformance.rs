//! Checks every implementation of a core trait must pass; adapters call them from their own tests.
//!
//! They panic with a message naming the broken rule, like `assert!`, so they read as test failures.
//!
//! | contract | entry point | named checks |
//! |---|---|---|
//! | `BackupTarget` | [`backup_target`], [`backup::run_all`] | [`backup`]: `put_get_roundtrip`, `list_and_delete`, `publish_never_overwrites`, `staged_not_visible`, `abort_leaves_nothing`, `missing_names_not_found`, `sweep_incomplete`, with [`backup::Capabilities`] |
//! | `Notifier` | [`notifier`] | |
//! | `ThrottleStore` | [`throttle_store`] | |
//! | `HealthProbe` | [`health_probe`] | |
//! | `MetricSource` | [`metric_source`] | |
//!
//! **Stability:** the entry points, the named checks and their signatures are stable API of the
//! `testing` feature: they are renamed or removed only in a major release. What they check is not frozen:
//! a minor release may add checks (a new rule of a contract) and capability flags (`Capabilities` is
//! `#[non_exhaustive]`; a new flag defaults to "supported", so targets opt out explicitly), so an
//! implementation that passes today may fail a later suite where it breaks that rule.

use std::time::Duration;

use crate::{
    Alert, BackupTarget, Fingerprint, HealthProbe, MetricSample, MetricSource, Notifier, NotifyOutcome, ProbeOutcome,
    Severity, ThrottleEntry, ThrottleStore,
};

pub mod backup;

/// Runs `fut` within `within`, turning a panic or an overrun into a conformance failure.
async fn bounded<T>(what: &str, within: Duration, fut: impl std::future::Future<Output = T>) -> T {
    use futures_util::FutureExt;
    match tokio::time::timeout(within, std::panic::AssertUnwindSafe(fut).catch_unwind()).await {
        Ok(Ok(value)) => value,
        Ok(Err(_)) => panic!("{what}: panicked"),
        Err(_) => panic!("{what}: did not finish within {within:?} (its own timeout must bound it)"),
    }
}

fn assert_no_secret(what: &str, shown: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!shown.contains(secret), "{what} contains a secret: {shown}");
    }
}

/// The `HealthProbe` contract: `check` finishes within `within` (the probe's own timeout bounds it,
/// whatever its dependency does) and never panics, also five at once; the name is non-empty and stable;
/// an observed value is finite and comes with its unit; neither `Debug`, the outcome (output and JSON) nor
/// the alert wording contains any of `secrets`. Returns the last outcome, for the caller's own checks.
///
/// Point it at a dependency that is down or refuses the credentials too: that is where secrets leak and
/// timeouts matter.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::time::Duration;
/// use resee_ops_core::ProbeOutcome;
/// use resee_ops_core::testing::{StaticProbe, conformance};
/// let probe = StaticProbe::new("database", ProbeOutcome::down("password authentication failed"));
/// let outcome = conformance::health_probe(&probe, Duration::from_secs(1), &["s3cr3t"]).await;
/// assert!(outcome.output.is_some());
/// # });
/// ```
pub async fn health_probe(probe: &dyn HealthProbe, within: Duration, secrets: &[&str]) -> ProbeOutcome {
    let name = probe.name().to_owned();
    assert!(!name.is_empty(), "health probe conformance: the name must not be empty");
    assert_no_secret("health probe conformance: Debug output", &format!("{probe:?}"), secrets);
    assert_no_secret("health probe conformance: name", &name, secrets);
    let what = format!("health probe conformance: check of {name}");
    let mut last = bounded(&what, within, probe.check()).await;
    let concurrent = futures_util::future::join_all((0..5).map(|_| probe.check()));
    for outcome in bounded(&format!("{what} (5 at once)"), within, concurrent).await {
        last = outcome;
    }
    assert_eq!(probe.name(), name, "health probe conformance: the name must be stable");
    if let Some(v) = last.observed_value {
        assert!(v.is_finite(), "health probe conformance: observed value {v} of {name} is not finite");
        assert!(last.observed_unit.is_some(), "health probe conformance: observed value of {name} has no unit");
    }
    let json = serde_json::to_string(&last).expect("a ProbeOutcome serialises");
    assert_no_secret("health probe conformance: outcome", &format!("{last:?} {json}"), secrets);
    for resolved in [false, true] {
        let words = probe.alert_text(&last, resolved);
        assert!(!words.title.is_empty(), "health probe conformance: alert title of {name} is empty");
        assert_no_secret("health probe conformance: alert wording", &format!("{words:?}"), secrets);
    }
    last
}

/// The `MetricSource` contract: `read` finishes within `within` and never panics, also five at once;
/// name and unit are non-empty; a value is finite; `Debug`, values and errors contain none of `secrets`.
/// Returns the last sample (`None`: no data, which is allowed).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::time::Duration;
/// use async_trait::async_trait;
/// use resee_ops_core::{Error, MetricSample, MetricSource};
/// use resee_ops_core::testing::conformance;
///
/// #[derive(Debug)]
/// struct Constant;
/// #[async_trait]
/// impl MetricSource for Constant {
///     fn name(&self) -> &str { "constant" }
///     fn unit(&self) -> &str { "items" }
///     async fn read(&self) -> Result<Option<MetricSample>, Error> { Ok(Some(MetricSample::new(3.0))) }
/// }
/// let sample = conformance::metric_source(&Constant, Duration::from_secs(1), &[]).await;
/// assert_eq!(sample.unwrap().value, 3.0);
/// # });
/// ```
pub async fn metric_source(source: &dyn MetricSource, within: Duration, secrets: &[&str]) -> Option<MetricSample> {
    let name = source.name().to_owned();
    assert!(!name.is_empty(), "metric source conformance: the name must not be empty");
    assert!(!source.unit().is_empty(), "metric source conformance: the unit of {name} must not be empty");
    assert_no_secret("metric source conformance: Debug output", &format!("{source:?}"), secrets);
    let what = format!("metric source conformance: read of {name}");
    let mut results = vec![bounded(&what, within, source.read()).await];
    let concurrent = futures_util::future::join_all((0..5).map(|_| source.read()));
    results.extend(bounded(&format!("{what} (5 at once)"), within, concurrent).await);
    let mut last = None;
    for result in results {
        match result {
            Ok(sample) => {
                if let Some(s) = &sample {
                    assert!(
                        s.value.is_finite(),
                        "metric source conformance: value {} of {name} is not finite",
                        s.value
                    );
                }
                last = sample;
            }
            Err(err) => assert_no_secret("metric source conformance: error", &format!("{err} {err:?}"), secrets),
        }
    }
    last
}

/// What [`notifier`] sent, so the caller can check its receiving side got as many messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct NotifierSuiteReport {
    /// Alerts handed to the notifier, each expected to be delivered (or queued) once.
    pub sent: usize,
}

fn assert_ok(what: &str, outcome: &NotifyOutcome) {
    assert!(
        matches!(outcome, NotifyOutcome::Delivered | NotifyOutcome::Queued),
        "notifier conformance: {what} was not delivered: {outcome}"
    );
}

/// The `Notifier` contract: every level and a resolution are delivered; hostile content (markup
/// characters, emoji, 100 kB of text, 100 fields, empty strings) is delivered rather than rejected or
/// panicked on; 20 concurrent calls all succeed; `Debug` of the notifier and every outcome's `Display`
/// contain none of `secrets`.
///
/// The notifier must deliver to a working receiver (and must not throttle: give it a fresh one).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use resee_ops_core::testing::{conformance, RecordingNotifier};
/// let n = RecordingNotifier::new();
/// let report = conformance::notifier(&n, &[]).await;
/// assert_eq!(n.alerts().len(), report.sent);
/// # });
/// ```
pub async fn notifier(notifier: &dyn Notifier, secrets: &[&str]) -> NotifierSuiteReport {
    let debug = format!("{notifier:?}");
    for secret in secrets {
        assert!(!debug.contains(secret), "notifier conformance: Debug output contains a secret: {debug}");
    }
    let mut sent = 0;
    let mut check = |what: &str, outcome: NotifyOutcome| {
        let shown = format!("{outcome} {outcome:?}");
        for secret in secrets {
            assert!(!shown.contains(secret), "notifier conformance: outcome of {what} contains a secret: {shown}");
        }
        assert_ok(what, &outcome);
        sent += 1;
    };

    for severity in Severity::ALL {
        let alert = Alert::new("conformance_level", severity, format!("Conformance {severity}"))
            .with_source("conformance")
            .with_label("level", severity.as_str())
            .with_text("Checking that every level is delivered.")
            .with_field("Level", severity.as_str())
            .with_field("Empty", "");
        check(severity.as_str(), notifier.notify(&alert).await);
    }

    let firing = Alert::new("conformance_resolve", Severity::Error, "Conformance resolve").with_source("conformance");
    check("a firing alert", notifier.notify(&firing).await);
    check("a resolved alert", notifier.notify(&firing.resolved()).await);

    let markup = Alert::new("conformance_markup", Severity::Warning, "<b>&amp; \"quotes\" 'x' <!channel> 🔥 ünïcödé")
        .with_text("a < b && c > d; <https://example.com|link> `code` *bold* _it_ ~s~ \u{202e}rtl")
        .with_field("<field>", "&value;");
    check("markup and unicode", notifier.notify(&markup).await);

    let mut huge = Alert::new("conformance_huge", Severity::Info, "T".repeat(5_000)).with_text("x".repeat(100_000));
    for i in 0..100 {
        huge = huge.with_field(format!("field {i}"), "v".repeat(4_000));
    }
    check("a huge alert", notifier.notify(&huge).await);

    let empty = Alert::new("conformance_empty", Severity::Info, "");
    check("an alert with empty title", notifier.notify(&empty).await);

    let concurrent = (0..20).map(|i| {
        let alert = Alert::new("conformance_concurrent", Severity::Info, format!("Concurrent {i}"))
            .with_label("i", i.to_string());
        async move { notifier.notify(&alert).await }
    });
    for (i, outcome) in futures_util::future::join_all(concurrent).await.into_iter().enumerate() {
        check(&format!("concurrent alert {i}"), outcome);
    }

    // `notify_final` waits for the final outcome: a queueing notifier must not answer `Queued` there.
    let last = Alert::new("conformance_final", Severity::Error, "Conformance final outcome").with_source("conformance");
    let outcome = notifier.notify_final(&last).await;
    assert!(
        matches!(outcome, NotifyOutcome::Delivered),
        "notifier conformance: notify_final must report the final outcome (delivered), got {outcome}"
    );
    check("notify_final", outcome);
    NotifierSuiteReport { sent }
}

/// The `ThrottleStore` contract (what a store shared between replicas, such as Redis, must meet), on
/// fingerprints no other test uses: `get` reads what the last successful swap wrote; `compare_and_swap`
/// writes only over the expected entry (`None`: no entry), says whether it wrote, and removes on `None`;
/// of 16 concurrent swaps from the same expected entry exactly one wins; keys are independent over the
/// whole 64-bit range; nothing is evicted before its `keep_for`.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use resee_ops_core::InMemoryThrottleStore;
/// use resee_ops_core::testing::conformance;
/// conformance::throttle_store(&InMemoryThrottleStore::new()).await;
/// # });
/// ```
pub async fn throttle_store(store: &dyn ThrottleStore) {
    const KEEP: Duration = Duration::from_secs(3600);
    let base = fastrand::u64(1..u64::MAX - 64);
    let key = |i: u64| Fingerprint::from_u64(base.wrapping_add(i));
    let at = |s: i64| chrono::DateTime::from_timestamp(1_700_000_000 + s, 123_456_789).expect("valid time");
    let e1 = ThrottleEntry::new(at(0), true, Severity::Warning);
    let e2 = ThrottleEntry::new(at(60), true, Severity::Error);
    let e3 = ThrottleEntry::new(at(120), false, Severity::Error);
    let get = |k| async move { store.get(k).await.expect("throttle store conformance: get failed") };
    let cas = |k, expected: Option<ThrottleEntry>, new: Option<ThrottleEntry>| async move {
        store
            .compare_and_swap(k, expected.as_ref(), new, KEEP)
            .await
            .expect("throttle store conformance: compare_and_swap failed")
    };

    let k = key(0);
    assert_eq!(get(k).await, None, "throttle store conformance: an unknown key must read as None");
    assert!(cas(k, None, Some(e1.clone())).await, "throttle store conformance: insert over no entry must succeed");
    assert_eq!(get(k).await.as_ref(), Some(&e1), "throttle store conformance: get must return what was written");
    assert!(!cas(k, None, Some(e2.clone())).await, "throttle store conformance: insert over an entry must fail");
    assert!(
        !cas(k, Some(e2.clone()), Some(e3.clone())).await,
        "throttle store conformance: a stale expected must fail"
    );
    assert_eq!(get(k).await.as_ref(), Some(&e1), "throttle store conformance: a failed swap must not write");
    assert!(
        cas(k, Some(e1.clone()), Some(e2.clone())).await,
        "throttle store conformance: swap from current must succeed"
    );
    assert_eq!(get(k).await.as_ref(), Some(&e2), "throttle store conformance: get after swap");
    assert!(
        cas(k, Some(e2.clone()), Some(e3.clone())).await,
        "throttle store conformance: closed entries are stored too"
    );
    assert_eq!(
        get(k).await.as_ref(),
        Some(&e3),
        "throttle store conformance: every field round-trips (open, severity, nanoseconds)"
    );
    assert!(cas(k, Some(e3.clone()), None).await, "throttle store conformance: swap to None must succeed");
    assert_eq!(get(k).await, None, "throttle store conformance: swap to None must remove the entry");
    assert!(!cas(k, Some(e3.clone()), None).await, "throttle store conformance: removing a missing entry must fail");

    // Keys are independent, at both ends of the range too.
    let edges = [key(1), Fingerprint::from_u64(0), Fingerprint::from_u64(u64::MAX)];
    for (i, k) in edges.into_iter().enumerate() {
        let _ = store.compare_and_swap(k, store.get(k).await.expect("get").as_ref(), None, KEEP).await;
        let entry = ThrottleEntry::new(at(i as i64), true, Severity::Info);
        assert!(cas(k, None, Some(entry.clone())).await, "throttle store conformance: insert key {k}");
        assert_eq!(get(k).await, Some(entry), "throttle store conformance: key {k} reads its own entry");
    }
    assert_eq!(get(key(2)).await, None, "throttle store conformance: a neighbouring key must stay empty");
    for k in edges {
        let current = get(k).await;
        assert!(cas(k, current, None).await, "throttle store conformance: clean-up of {k}");
    }

    // Exactly one of many racing swaps from the same expected entry wins.
    let k = key(3);
    let racers = (0..16).map(|i| {
        let entry = ThrottleEntry::new(at(i), true, Severity::Error);
        async move { store.compare_and_swap(k, None, Some(entry), KEEP).await }
    });
    let wins = futures_util::future::join_all(racers)
        .await
        .into_iter()
        .map(|r| r.expect("throttle store conformance: compare_and_swap failed under contention"))
        .filter(|won| *won)
        .count();
    assert_eq!(wins, 1, "throttle store conformance: {wins} of 16 racing swaps from the same entry won");
    let current = get(k).await;
    assert!(current.is_some(), "throttle store conformance: the winner's entry must be readable");
    assert!(cas(k, current, None).await, "throttle store conformance: clean-up");
}

/// The whole `BackupTarget` contract, for a target with every [`backup::Capabilities`]: the same as
/// [`backup::run_all`]`(target, Capabilities::default())`. See the [`backup`] module for the named checks
/// and for targets that lack a capability.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use resee_ops_core::testing::{conformance, InMemoryBackupTarget};
/// conformance::backup_target(&InMemoryBackupTarget::new()).await;
/// # });
/// ```
pub async fn backup_target(target: &dyn BackupTarget) {
    backup::run_all(target, backup::Capabilities::default()).await;
}
