//! Property tests (proptest): no configuration, duration or URL makes core panic, and no password leaks
//! from a connection string into an error.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use proptest::prelude::*;
use resee_ops_core::schedule::{Job, JobContext, JobPolicy, RunControl, Schedule, Scheduler, run_in_slot};
use resee_ops_core::testing::{ManualClock, RecordingNotifier, StaticProbe};
use resee_ops_core::{
    Alert, ConnectionUrl, Dispatcher, DispatcherConfig, Error, ErrorKind, FlapConfig, FlapDetector, HealthRegistry,
    Notifier, NotifierExt, NotifyOutcome, ProbeOutcome, Registration, RetryPolicy, Severity, Throttled,
};
use serde_json::json;

#[path = "support/arbitrary.rs"]
mod arbitrary;
use arbitrary::{config_value, duration, parse};

fn paused<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(f)
}

fn alert(i: u32) -> Alert {
    Alert::new("prop", Severity::Error, format!("alert {i}")).with_label("i", i.to_string())
}

/// Fails with a temporary error `failures` times, then succeeds.
#[derive(Debug)]
struct Flaky {
    failures: u32,
    runs: AtomicU32,
}

impl Flaky {
    fn new(failures: u32) -> Self {
        Self { failures, runs: AtomicU32::new(0) }
    }
}

#[async_trait]
impl Job for Flaky {
    fn name(&self) -> &str {
        "flaky"
    }
    async fn run(&self, _ctx: &JobContext) -> resee_ops_core::Result<()> {
        if self.runs.fetch_add(1, Ordering::SeqCst) < self.failures {
            Err(Error::new(ErrorKind::Unavailable, "not yet"))
        } else {
            Ok(())
        }
    }
}

fn slot() -> DateTime<Utc> {
    DateTime::from_timestamp(1_760_497_200, 0).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any string: an error or a URL, never a panic; neither the error nor the parsed URL's `Display` and
    /// `Debug` show the password.
    #[test]
    fn connection_urls_never_panic_nor_leak(
        scheme in prop::sample::select(vec!["postgres://", "postgresql://", "redis://", "rediss://", "redis+unix://", "", "http://"]),
        user in "[a-z%:@/]{0,6}",
        host in "[a-z0-9.:\\[\\]%@/?=&-]{0,20}",
        rest in "\\PC{0,24}",
        password in "[A-Za-z]{2}[A-Za-z0-9]{6,12}",
        kv in any::<bool>(),
    ) {
        let text = if kv {
            format!("host={host} user={user} password={password} {rest}")
        } else {
            format!("{scheme}{user}:{password}@{host}{rest}")
        };
        match ConnectionUrl::parse(&text) {
            Ok(url) => {
                // The password as parsed (libpq reads `user= password=x` as the user `password=x`).
                if let Some(parsed) = url.password().map(|p| p.expose().to_owned()).filter(|p| p.len() >= 4) {
                    let shown = format!("{url} {url:?} {}", url.redacted());
                    prop_assert!(!shown.contains(&parsed), "{} -> {}", text, shown);
                }
            }
            Err(err) => {
                let shown = format!("{err} {err:?} {err:#}");
                prop_assert!(!shown.contains(&password), "{} -> {}", text, shown);
            }
        }
        let _ = ConnectionUrl::parse(&rest);
    }

    /// Arbitrary JSON and TOML into every core configuration type: an error or a value, never a panic;
    /// and each value parsed is then used once.
    #[test]
    fn core_configs_never_panic(
        retry in config_value(&serde_json::to_value(RetryPolicy::default()).unwrap()),
        dispatcher in config_value(&serde_json::to_value(DispatcherConfig::default()).unwrap()),
        flap in config_value(&serde_json::to_value(FlapConfig::default()).unwrap()),
        job in config_value(&serde_json::to_value(JobPolicy::default()).unwrap()),
        other in config_value(&json!({"name": "x", "url": "postgres://127.0.0.1/db", "severity": "error"})),
    ) {
        let _ = parse::<ConnectionUrl>(&other);
        let _ = parse::<resee_ops_core::ArtifactName>(&other);
        let _ = parse::<resee_ops_core::Secret>(&other);
        let _ = parse::<Alert>(&other);
        let _ = parse::<resee_ops_core::HealthReport>(&other);
        if let Some(policy) = parse::<RetryPolicy>(&retry) {
            let _ = (policy.backoff(0), policy.backoff(u32::MAX), policy.max_attempts());
            let inner = RecordingNotifier::new();
            inner.push_outcome(NotifyOutcome::failure(Error::new(ErrorKind::Unavailable, "once")));
            let outcome = paused(inner.clone().retrying(policy).notify(&alert(0)));
            let _ = outcome;
        }
        if let Some(config) = parse::<DispatcherConfig>(&dispatcher) {
            paused(async {
                let d = Dispatcher::spawn(RecordingNotifier::new(), config);
                let _ = d.notify(&alert(1)).await;
                d.shutdown(Duration::from_secs(5)).await;
            });
        }
        if let Some(config) = parse::<FlapConfig>(&flap) {
            let mut detector = FlapDetector::new(config);
            for i in 0..6 {
                let _ = detector.record_change(slot() + chrono::TimeDelta::seconds(i));
            }
            let _ = detector.poll(DateTime::<Utc>::MAX_UTC);
        }
        if let Some(policy) = parse::<JobPolicy>(&job) {
            let record = paused(run_in_slot(&Flaky::new(1), &policy, slot(), None, &ManualClock::new(), &RunControl::new()));
            let _ = record;
        }
    }

    /// Every core builder that takes a `Duration`, fed zero, `Duration::MAX` and arbitrary values, then
    /// used once: no panic (a huge limit means "no limit").
    #[test]
    fn core_durations_never_panic(a in duration(), b in duration(), c in duration()) {
        // Retries: backoff, Retry-After and deadline.
        let policy = RetryPolicy::default()
            .with_initial_backoff(a)
            .with_max_backoff(b)
            .with_max_retry_after(c)
            .with_deadline(a);
        let inner = RecordingNotifier::new();
        inner.push_outcome(NotifyOutcome::RateLimited { retry_after: Some(b) });
        let _ = paused(inner.retrying(policy).notify(&alert(2)));
        let _ = paused(RetryPolicy::celery(1, b).run(|n| async move {
            if n == 1 { Err(Error::new(ErrorKind::Timeout, "slow").with_retry_after(c)) } else { Ok(()) }
        }));

        // The dispatcher's delivery timeout and its shutdown grace, in front of a slow receiver.
        paused(async {
            let d = Dispatcher::spawn(RecordingNotifier::new().with_delay(b), DispatcherConfig::default().with_delivery_timeout(a));
            let _ = d.notify(&alert(3)).await;
            d.shutdown(c).await;
        });

        // The throttle's window and retention, twice on one fingerprint.
        paused(async {
            let clock = ManualClock::new();
            let t = Throttled::new(RecordingNotifier::new()).with_window(a).with_retention(b).with_clock(clock.shared());
            let _ = t.notify(&alert(4)).await;
            clock.advance(c);
            let _ = t.notify(&alert(4)).await;
            let _ = t.notify(&alert(4).resolved()).await;
        });

        // Probe timeouts, and a probe slower than them.
        paused(async {
            let probe = StaticProbe::new("slow", ProbeOutcome::up().with_duration(a)).with_delay(c);
            let registry = HealthRegistry::new()
                .with_default_timeout(a)
                .with_registration(Registration::new(probe.clone()))
                .with_registration(Registration::new(probe).with_timeout(b));
            let _ = registry.check(resee_ops_core::CheckGroup::Readiness).await;
        });

        // Schedules, jobs and their retries.
        let schedule = Schedule::new("0 3 * * *", "Asia/Seoul").unwrap().with_jitter(a);
        let _ = schedule.upcoming(slot(), 2);
        let policy = JobPolicy::default().with_missed_run_grace(b).with_retries(2, c);
        let _ = paused(run_in_slot(&Flaky::new(1), &policy, slot(), None, &ManualClock::new(), &RunControl::new()));
        paused(async {
            let handle = Scheduler::new()
                .with_max_sleep(a)
                .with_clock(resee_ops_core::testing::TokioClock::at(slot()).shared())
                .with_job(Flaky::new(0), schedule, policy)
                .start();
            tokio::time::sleep(Duration::from_secs(1)).await;
            handle.shutdown(b).await;
        });

        // Clocks, reports and errors carry durations too.
        ManualClock::new().advance(a);
        let _ = FlapDetector::new(FlapConfig::new(1, a)).record_change(slot());
        let _ = Error::new(ErrorKind::RateLimited, "wait").with_retry_after(a).to_string();
        let _ = resee_ops_core::BackupReport::new(resee_ops_core::BackupStatus::Success, "x").with_duration(a);
    }
}
