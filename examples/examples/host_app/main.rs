//! `host_app`: a web service that adds resee-ops — **the template to copy** into your own service.
//!
//! ```text
//! cargo run -p resee-ops-examples --example host_app
//! ```
//!
//! It uses only the resee-ops crates and tokio (everything else comes through their preludes and
//! re-exports), and shows each step of `docs/adding-resee-ops.md`:
//!
//! 1. **One alert stack**, shared by the backup, the health monitor and the host's own code: Slack when
//!    `SLACK_WEBHOOK_URL` is set (else the log), throttled (the same alert at most once per 10 minutes),
//!    behind one dispatcher (the caller never waits on Slack).
//! 2. **Health**: the PostgreSQL probe and a custom probe of an HTTP dependency ([`probe`]:
//!    `HOST_APP_DEPENDENCY_URL`), run by the monitor, served at `/health/ready` and `/health/live` by the
//!    endpoint merged into the host's own axum router.
//! 3. **Backups**: a verified `pg_dump` every day at 03:00 `Asia/Seoul` (and one at start when none exists)
//!    into a custom target ([`target`]: a second directory sorted by month, `HOST_APP_BACKUP_DIR`).
//! 4. **One shutdown** on SIGTERM/SIGINT: the HTTP server stops taking requests, then the [`OpsHandle`]
//!    stops the monitor and the scheduler (a running backup gets the grace period), flushes the alerts, and
//!    says what was dropped.
//!
//! Environment: `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`),
//! `HOST_APP_ADDR` (default `127.0.0.1:8081`), `HOST_APP_BACKUP_DIR` (default `./archive`),
//! `HOST_APP_DEPENDENCY_URL` (optional), `SLACK_WEBHOOK_URL` (optional), `RUST_LOG`.
//! The host's own routes: `GET /` and `POST /payments/failed` (reports a failed payment: an app alert
//! through the same stack).

mod probe;
mod target;

use std::process::ExitCode;
use std::time::Duration;

use resee_ops_backup::{PgDumpBackup, list_backups};
use resee_ops_core::schedule::MissedRunPolicy;
use resee_ops_logging::{LoggingConfig, tracing};
use resee_ops_monitor::http::axum::extract::State;
use resee_ops_monitor::http::axum::routing::{get, post};
use resee_ops_monitor::http::{EndpointConfig, axum, router};
use resee_ops_monitor::prelude::*;
use resee_ops_slack::SlackNotifier;
use tokio::signal::unix::{SignalKind, signal};

use crate::probe::HttpDependency;
use crate::target::MonthlyDir;

/// How long the whole shutdown may take after the HTTP server has stopped.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(30);

fn setting(name: &str, default: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty()).unwrap_or_else(|| default.to_owned())
}

#[tokio::main]
async fn main() -> ExitCode {
    // Console only here; drop `.with_console_only()` for the four log files under `LOG_DIR`.
    let _logs = match LoggingConfig::from_env().and_then(|c| resee_ops_logging::init(c.with_console_only())) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("host_app: logging: {e}");
            return ExitCode::from(2);
        }
    };
    match run().await {
        // Stopped as asked; the summary (logged) says whether anything was dropped.
        Ok(_summary) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "host_app cannot start");
            ExitCode::from(2)
        }
    }
}

/// The one alert stack (step 1): Slack retries inside, so there is no `.retrying(..)`.
fn alert_stack() -> Result<Dispatcher, Error> {
    let window = Duration::from_secs(600);
    Ok(if std::env::var("SLACK_WEBHOOK_URL").is_ok_and(|v| !v.is_empty()) {
        tracing::info!("alerts go to Slack");
        SlackNotifier::from_env()?.throttled(window).dispatched(DispatcherConfig::default())
    } else {
        tracing::info!("SLACK_WEBHOOK_URL is not set: alerts go to the log");
        LogNotifier::new().throttled(window).dispatched(DispatcherConfig::default())
    })
}

/// The backup as a scheduled job (step 3). The backup retries temporary failures itself and sends its
/// own success and failure alerts.
#[derive(Debug)]
struct BackupJob(PgDumpBackup);

#[async_trait]
impl Job for BackupJob {
    fn name(&self) -> &str {
        "backup"
    }

    async fn run(&self, ctx: &JobContext) -> Result<(), Error> {
        tokio::select! {
            outcome = self.0.run() => outcome.error.map_or(Ok(()), Err),
            // Past the shutdown grace: dropping the run removes its staging file (see `target`).
            () = ctx.cancelled() => Err(Error::new(ErrorKind::Closed, "backup cancelled by shutdown")),
        }
    }

    /// The newest verified backup (one with a manifest) decides whether a run was missed.
    async fn last_success(&self) -> Result<Option<DateTime<Utc>>, Error> {
        let catalog = list_backups(self.0.target().as_ref(), &self.0.name_prefix()).await?;
        Ok(catalog.backups.into_iter().find_map(|b| b.manifest.map(|m| m.finished_at)))
    }
}

/// The host's own state: its handlers send alerts through the same dispatcher.
#[derive(Clone)]
struct App {
    alerts: Dispatcher,
}

/// A host route that reports a business event as an alert (step 1: one stack for everything).
async fn payment_failed(State(app): State<App>) -> (axum::http::StatusCode, &'static str) {
    let alert = Alert::new("payment_failed", Severity::Error, "Payment failed")
        .with_source("host_app")
        .with_field("Provider", "example");
    app.alerts.notify(&alert).await; // queued: never waits on Slack
    (axum::http::StatusCode::ACCEPTED, "reported\n")
}

async fn run() -> Result<ShutdownSummary, Error> {
    let database_url = setting("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres");
    let alerts = alert_stack()?;

    // Step 2: health. The registry takes probes through `&self`, so later code can add its own too.
    let registry = HealthRegistry::new();
    registry.register(Registration::readiness(PostgresProbeConfig::from_url(&database_url)?.build()?));
    if let Ok(url) = std::env::var("HOST_APP_DEPENDENCY_URL") {
        registry.register(Registration::readiness(
            HttpDependency::new("payments_api", &url)?.with_timeout(Duration::from_secs(2)),
        ));
    }
    let monitor = HealthMonitor::builder(registry.clone()).with_notifier(alerts.clone()).build()?;

    // Step 3: backups into the custom target, on a schedule.
    let backup = PgDumpBackup::builder()
        .with_url(&database_url)
        .with_environment(setting("RESEE_ENVIRONMENT", "development"))
        .with_target(MonthlyDir::new(setting("HOST_APP_BACKUP_DIR", "./archive"))?)
        .with_notifier(alerts.clone())
        .build()?;
    let scheduler = Scheduler::new()
        .with_notifier(alerts.clone())
        .with_job(
            BackupJob(backup),
            Schedule::new("0 3 * * *", "Asia/Seoul")?,
            JobPolicy::default().with_missed_runs(MissedRunPolicy::RunOnce),
        )
        .start();

    // Step 4: one handle owns everything that produces alerts, and the dispatcher they share.
    let ops = OpsHandle::new(alerts.clone()).with_scheduler(scheduler).with_producer("monitor", monitor.spawn());

    // The host's own router, with the health endpoint merged in.
    let app = axum::Router::new()
        .route("/", get(|| async { "host_app\n" }))
        .route("/payments/failed", post(payment_failed))
        .with_state(App { alerts: alerts.clone() })
        .merge(router(monitor.clone(), EndpointConfig::default()));
    let addr = setting("HOST_APP_ADDR", "127.0.0.1:8081");
    let listener =
        tokio::net::TcpListener::bind(&addr).await.map_err(|e| Error::io(format!("cannot listen on {addr}"), e))?;
    let address = listener.local_addr().map_err(|e| Error::io("no local address", e))?;
    tracing::info!(%address, "listening: /, /payments/failed, /health/ready, /health/live");

    let mut term = signal(SignalKind::terminate()).map_err(|e| Error::io("cannot install SIGTERM", e))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| Error::io("cannot install SIGINT", e))?;
    let stop = async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
    };
    let server = tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(stop).await });

    // Ready once the first health cycle has run (each probe is bounded by its own timeout).
    monitor.ready().await;
    tracing::info!(status = %monitor.report(CheckGroup::Readiness).map(|r| r.status).unwrap_or(HealthStatus::Unknown), "first health check done");

    // The server ends on the signal, after its requests are answered: no new app alerts from here on.
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "HTTP server failed"),
        Err(e) => tracing::error!(error = %e, "HTTP server task failed"),
    }
    let summary = ops.shutdown(SHUTDOWN_DEADLINE).await;
    tracing::info!(dropped = summary.dropped(), "host_app stopped: {summary}");
    Ok(summary)
}
