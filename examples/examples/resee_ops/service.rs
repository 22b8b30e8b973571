//! The long-running service (`run`), the one-shot backup (`backup --once`) and the schedule preview.
//!
//! Shutdown order on SIGTERM/SIGINT: the scheduler stops starting runs and gives a running backup the
//! grace period (then cancels it: no file is left under a final name); the monitor and the rules stop; the HTTP server
//! stops accepting and finishes its requests; queued alerts are flushed; exit 0.
//!
//! SIGHUP reads the configuration again (the file and the environment, as at start) and applies its
//! `[logging] level` at once; every other setting takes a restart.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use chrono::Utc;
use resee_ops_core::SystemClock;
use resee_ops_core::schedule::{RunControl, RunOutcome, Schedule, Scheduler, run_in_slot};
use resee_ops_logging::LogHandle;
use resee_ops_monitor::HealthMonitor;
use tokio::signal::unix::{SignalKind, signal};

use crate::alerts::Alerts;
use crate::config::{Config, ConfigError, Validated};
use crate::http::{AppState, router};
use crate::jobs::{BackupJob, Jobs, SlotLock};
use crate::rules::Rules;
use crate::{EXIT_CONFIG, config_error};

/// Exit code of `backup --once` when another run holds the slot.
const EXIT_SKIPPED: u8 = 3;

/// SIGTERM and SIGINT, counted by a task of their own: `recv` completes on the next one, with its name.
struct Signals {
    rx: tokio::sync::watch::Receiver<(u32, &'static str)>,
    seen: u32,
}

impl Signals {
    fn install() -> std::io::Result<Self> {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let (tx, rx) = tokio::sync::watch::channel((0, ""));
        tokio::spawn(async move {
            loop {
                let name = tokio::select! {
                    Some(()) = term.recv() => "SIGTERM",
                    Some(()) = int.recv() => "SIGINT",
                    else => return,
                };
                tx.send_modify(|(n, last)| {
                    *n += 1;
                    *last = name;
                });
            }
        });
        Ok(Self { rx, seen: 0 })
    }

    async fn recv(&mut self) -> &'static str {
        let seen = self.seen;
        let next = self.rx.wait_for(|(n, _)| *n > seen).await.map(|state| *state);
        match next {
            Ok((n, name)) => {
                self.seen = n;
                name
            }
            Err(_) => std::future::pending().await,
        }
    }
}

/// On every SIGHUP: [`Config::load`] again from `path` (the file and the environment, as at start: a set
/// `RUST_LOG` still wins over the file) and apply its `[logging] level` through `logs`. A configuration
/// that does not load, or directives that do not parse, are logged and the level in force stays.
fn reload_log_level_on_sighup(path: Option<PathBuf>, logs: LogHandle) -> std::io::Result<()> {
    let mut hangup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            let before = logs.level();
            let applied = Config::load(path.as_deref()).map_err(|e| e.to_string()).and_then(|config| {
                logs.set_level(&config.logging.level).map(|()| config.logging.level).map_err(|e| e.to_string())
            });
            match applied {
                // Logged under the new directives: WARN, so that it shows whatever they are.
                Ok(level) => tracing::warn!(signal = "SIGHUP", from = %before, to = %level, "log level reloaded"),
                Err(error) => {
                    tracing::error!(signal = "SIGHUP", error = %error, level = %before, "log level not reloaded: keeping the level in force")
                }
            }
        }
    });
    Ok(())
}

pub(crate) async fn run(config: Config, validated: Validated, path: Option<PathBuf>, logs: LogHandle) -> ExitCode {
    // First, so that a signal during start-up (a catch-up backup) is a graceful shutdown too.
    let mut signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("resee_ops: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = reload_log_level_on_sighup(path, logs) {
        eprintln!("resee_ops: cannot install the SIGHUP handler: {e}");
        return ExitCode::FAILURE;
    }
    let started_at = Utc::now();
    // Before anything is built: the alert dispatcher registers its metrics when it is built.
    let metrics = config.metrics.enabled.then(crate::http::install_metrics).flatten();
    let parts = match build(&config, &validated) {
        Ok(p) => p,
        Err(e) => return config_error(&e),
    };
    let Parts { alerts, monitor, rules, jobs } = parts;
    let listener = match tokio::net::TcpListener::bind(validated.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "resee_ops: cannot listen on {}: {e} (another process may use the port: set http.listen or RESEE_HTTP_ADDR)",
                validated.listen
            );
            alerts.shutdown(config.alerts.flush_timeout).await;
            return ExitCode::FAILURE;
        }
    };

    let mut scheduler = Scheduler::new().with_notifier(alerts.notifier());
    for j in jobs.scheduled {
        scheduler = scheduler.with_job(j.job, j.schedule, j.policy);
    }
    for (job, next) in scheduler.preview(Utc::now(), 1) {
        if let Some(t) = next.first() {
            tracing::info!(job = %job, next_run = %t.to_rfc3339(), "scheduled");
        }
    }
    let monitor_handle = monitor.spawn();
    let rules_handle = rules.as_ref().map(Rules::spawn);
    let scheduler = scheduler.start();

    let state = AppState {
        monitor: monitor.clone(),
        rules: rules.clone(),
        schedule: scheduler.status_view(),
        backup: jobs.backup.clone(),
        started_at,
        environment: config.environment.clone(),
        metrics,
    };
    let (stop_http, http_stopped) = tokio::sync::watch::channel(false);
    let mut http_stopped = http_stopped;
    let address = listener.local_addr().unwrap_or(validated.listen);
    let server = axum::serve(listener, router(state, config.http.details)).with_graceful_shutdown(async move {
        let _ = http_stopped.wait_for(|s| *s).await;
    });
    let server = tokio::spawn(async move { server.await });
    tracing::info!(address = %address, "listening: /health/live, /health/ready, /status, /metrics");

    let signal = signals.recv().await;
    let grace = config.shutdown.grace;
    tracing::info!(signal, grace = ?grace, "shutting down: no new runs; running jobs get the grace period");
    // A second signal cancels running jobs at once instead of waiting out the grace period.
    let control = scheduler.control();
    let shutdown = scheduler.shutdown(grace);
    tokio::pin!(shutdown);
    let report = tokio::select! {
        report = &mut shutdown => report,
        again = signals.recv() => {
            tracing::warn!(signal = again, "second signal: cancelling running jobs now");
            control.cancel();
            shutdown.await
        }
    };
    tracing::info!(
        finished = report.finished,
        cancelled = report.cancelled,
        aborted = report.aborted,
        "scheduler stopped"
    );
    monitor_handle.shutdown().await;
    if let Some(handle) = rules_handle {
        handle.shutdown().await;
    }
    let _ = stop_http.send(true);
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "HTTP server ended with an error"),
        Err(e) => tracing::error!(error = %e, "HTTP server task failed"),
    }
    alerts.shutdown(config.alerts.flush_timeout).await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

struct Parts {
    alerts: Alerts,
    monitor: HealthMonitor,
    rules: Option<Rules>,
    jobs: Jobs,
}

fn build(config: &Config, validated: &Validated) -> Result<Parts, ConfigError> {
    let alerts = Alerts::build(config, validated)?;
    let registry = crate::probes::registry(config, &alerts)?;
    let monitor = HealthMonitor::builder(registry)
        .with_interval(config.monitor.interval)
        .with_failures_before_down(config.monitor.failures_before_down)
        // With the Redis store a restart resolves what the previous process left open (exactly once).
        .with_resolve_on_start(config.alerts.store == crate::config::ThrottleStoreKind::Redis)
        .with_notifier(alerts.notifier())
        .build()
        .map_err(|e| ConfigError::new("monitor", e.to_string()))?;
    let rules = if config.rules.enabled { Some(Rules::build(config, alerts.notifier())?) } else { None };
    let jobs = Jobs::build(config, validated, alerts.notifier())?;
    Ok(Parts { alerts, monitor, rules, jobs })
}

/// `backup --once`: one slot of the backup job (with its retries, never past the next scheduled run),
/// the report as JSON on stdout. SIGTERM/SIGINT stop retries, then cancel after the grace period.
pub(crate) async fn backup_once(config: Config, validated: Validated) -> ExitCode {
    let mut signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("resee_ops: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let alerts = match Alerts::build(&config, &validated) {
        Ok(a) => a,
        Err(e) => return config_error(&e),
    };
    let job = match BackupJob::new(&config, alerts.notifier()) {
        Ok(j) => Arc::new(j),
        Err(e) => return config_error(&e),
    };
    // Say "skipped" before doing anything when the slot is visibly taken.
    match SlotLock::try_acquire(&config.backup.dir) {
        Ok(Some(_)) => {}
        Ok(None) => {
            eprintln!("resee_ops: backup skipped: another run holds the slot ({})", config.backup.dir.display());
            return ExitCode::from(EXIT_SKIPPED);
        }
        Err(e) => {
            eprintln!("resee_ops: backup.dir {}: {e}", config.backup.dir.display());
            return ExitCode::from(EXIT_CONFIG);
        }
    }
    let control = RunControl::new();
    let watcher = {
        let control = control.clone();
        let grace = config.shutdown.grace;
        tokio::spawn(async move {
            let signal = signals.recv().await;
            tracing::warn!(signal, grace = ?grace, "stopping: no more retries; the running attempt gets the grace period");
            control.stop();
            tokio::select! {
                () = tokio::time::sleep(grace) => {}
                again = signals.recv() => tracing::warn!(signal = again, "second signal: cancelling now"),
            }
            control.cancel();
        })
    };
    let now = Utc::now();
    let deadline = validated.backup_schedule.next_after(now);
    let policy = config.backup.policy();
    let record = run_in_slot(job.as_ref(), &policy, now, deadline, &SystemClock, &control).await;
    watcher.abort();
    if let Some(report) = job.last_report() {
        match serde_json::to_string(&report) {
            Ok(json) => println!("{json}"),
            Err(e) => eprintln!("resee_ops: cannot encode the report: {e}"),
        }
    }
    alerts.shutdown(config.alerts.flush_timeout).await;
    match record.outcome {
        RunOutcome::Succeeded => ExitCode::SUCCESS,
        _ if job.was_busy() => ExitCode::from(EXIT_SKIPPED),
        _ => {
            if let Some(e) = &record.error {
                eprintln!("resee_ops: backup failed after {} attempt(s): {e}", record.attempts);
            }
            ExitCode::FAILURE
        }
    }
}

/// `schedule --next N [--cron EXPR] [--tz ZONE]`: one line per fire time, `job<TAB>RFC 3339`.
pub(crate) fn print_schedule(
    config: &Config,
    validated: &Validated,
    n: usize,
    cron: Option<String>,
    tz: Option<String>,
) -> ExitCode {
    let mut schedules: Vec<(String, Schedule)> = Vec::new();
    let zone_of = |own: &str| tz.clone().unwrap_or_else(|| own.to_owned());
    let key = |e: &resee_ops_core::Error, flag: &str| {
        let which = if e.message().contains("time zone") { "--tz" } else { flag };
        ConfigError::new(which, e.message().to_owned())
    };
    if let Some(expr) = cron {
        match Schedule::new(&expr, &zone_of(&config.backup.timezone)) {
            Ok(s) => schedules.push(("cron".into(), s)),
            Err(e) => return config_error(&key(&e, "--cron")),
        }
    } else if config.backup.enabled {
        let s = if tz.is_some() {
            Schedule::new(&config.backup.schedule, &zone_of(&config.backup.timezone))
        } else {
            Ok(validated.backup_schedule.clone())
        };
        match s {
            Ok(s) => schedules.push(("backup".into(), s)),
            Err(e) => return config_error(&key(&e, "backup.schedule")),
        }
    }
    let now = Utc::now();
    for (name, schedule) in &schedules {
        println!("# {name}: {schedule}");
        for t in schedule.upcoming(now, n) {
            println!("{name}\t{}", t.to_rfc3339());
        }
    }
    ExitCode::SUCCESS
}
