//! The HTTP server: `/health/live` and `/health/ready` (`application/health+json`, from the monitor's last
//! cycle), the status page of the schedule and the threshold rules (`/status`, HTML; `/status.json`), and
//! the ops layer's metrics (`/metrics`, Prometheus text format; names in `docs/metrics.md`).
//! Its own traffic is recorded for the error-rate and latency rules.
//!
//! To add a route: merge it into the router in [`router`] (state it needs goes into [`AppState`]).

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use resee_ops_core::schedule::{JobStatus, StatusView};
use resee_ops_core::{BackupReport, CheckGroup, HealthStatus};
use resee_ops_monitor::http::EndpointConfig;
use resee_ops_monitor::{HealthMonitor, Reading, RuleState};
use serde::Serialize;

use crate::jobs::BackupJob;
use crate::rules::Rules;

/// What the routes read.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub(crate) monitor: HealthMonitor,
    pub(crate) rules: Option<Rules>,
    pub(crate) schedule: StatusView,
    pub(crate) backup: Option<Arc<BackupJob>>,
    pub(crate) started_at: DateTime<Utc>,
    pub(crate) environment: String,
    /// The Prometheus recorder's handle, when `metrics.enabled`.
    pub(crate) metrics: Option<PrometheusHandle>,
}

/// Installs the Prometheus recorder as the process's `metrics` recorder and describes the ops layer's
/// metrics; `None` (logged) when another recorder is installed already.
pub(crate) fn install_metrics() -> Option<PrometheusHandle> {
    match PrometheusBuilder::new().install_recorder() {
        Ok(handle) => {
            resee_ops_core::telemetry::describe();
            Some(handle)
        }
        Err(e) => {
            tracing::warn!(error = %e, "metrics: cannot install the Prometheus recorder; /metrics is off");
            None
        }
    }
}

/// `GET /metrics`: every recorded metric in the Prometheus text format (version 0.0.4).
async fn metrics(State(state): State<AppState>) -> Response {
    let Some(handle) = &state.metrics else { return StatusCode::NOT_FOUND.into_response() };
    handle.run_upkeep();
    let mut response = handle.render().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    response
}

pub(crate) fn router(state: AppState, details: bool) -> Router {
    let health =
        resee_ops_monitor::http::router(state.monitor.clone(), EndpointConfig::default().with_details(details));
    let status = Router::new()
        .route("/", get(|| async { axum::response::Redirect::to("/status") }))
        .route("/status", get(status_html))
        .route("/status.json", get(status_json))
        .route("/metrics", get(metrics))
        .route("/events/{name}", axum::routing::post(record_event))
        .with_state(state.clone());
    let router = health.merge(status);
    // After routing, so that each request is recorded under its route template.
    match &state.rules {
        Some(rules) => router.layer(rules.layer()),
        None => router,
    }
}

#[derive(Debug, Serialize)]
struct Status {
    service: &'static str,
    environment: String,
    started_at: DateTime<Utc>,
    readiness: &'static str,
    jobs: Vec<JobStatus>,
    /// Each threshold rule: inactive, pending or firing, its last value and since when.
    rules: Vec<RuleState>,
    /// The last backup run by this process.
    last_backup: Option<BackupReport>,
    /// The newest verified backup in the target (this process's or an earlier one's).
    newest_verified_backup: Option<NewestBackup>,
}

#[derive(Debug, Serialize)]
struct NewestBackup {
    file: String,
    finished_at: DateTime<Utc>,
    size_bytes: u64,
    sha256: String,
}

async fn status(state: &AppState) -> Status {
    let readiness = match state.monitor.report(CheckGroup::Readiness) {
        None => "not checked yet",
        Some(r) if r.status == HealthStatus::Down => "fail",
        Some(r) if r.status == HealthStatus::Up => "pass",
        Some(_) => "warn",
    };
    let (last_backup, newest) = match &state.backup {
        None => (None, None),
        Some(b) => {
            let newest = match b.newest_verified().await {
                Ok(m) => m.map(|m| NewestBackup {
                    file: m.artifact,
                    finished_at: m.finished_at,
                    size_bytes: m.compressed_size,
                    sha256: m.sha256,
                }),
                Err(e) => {
                    tracing::warn!(error = %e, "status page: cannot list backups");
                    None
                }
            };
            (b.last_report(), newest)
        }
    };
    Status {
        service: "resee-ops",
        environment: state.environment.clone(),
        started_at: state.started_at,
        readiness,
        jobs: state.schedule.status(),
        rules: state.rules.as_ref().map(Rules::states).unwrap_or_default(),
        last_backup,
        newest_verified_backup: newest,
    }
}

/// `POST /events/payment_failed`: the host counts an event for the rules (204), or 404 when payments are
/// read with `rules.payments_query`.
async fn record_event(State(state): State<AppState>, Path(name): Path<String>) -> StatusCode {
    let valid = !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid {
        return StatusCode::BAD_REQUEST;
    }
    match &state.rules {
        Some(rules) if rules.record_event(&name) => StatusCode::NO_CONTENT,
        _ => StatusCode::NOT_FOUND,
    }
}

async fn status_json(State(state): State<AppState>) -> Response {
    let mut response = axum::Json(status(&state).await).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn status_html(State(state): State<AppState>) -> Response {
    let s = status(&state).await;
    let time = |t: Option<DateTime<Utc>>| t.map_or_else(|| "—".to_owned(), |t| t.to_rfc3339());
    let mut page = String::new();
    let _ = write!(
        page,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>resee-ops status</title>\
         <style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.3em .8em;text-align:left;border-bottom:1px solid #ddd}}</style>\
         </head><body><h1>resee-ops ({})</h1><p>Started {} · readiness <b>{}</b> · <a href=\"/health/ready\">/health/ready</a> · \
         <a href=\"/status.json\">JSON</a></p><h2>Schedule</h2><table><tr><th>job</th><th>schedule</th><th>next run</th>\
         <th>last run</th><th>outcome</th><th>last success</th><th>runs / failures / skipped</th></tr>",
        escape(&s.environment),
        s.started_at.to_rfc3339(),
        s.readiness
    );
    for j in &s.jobs {
        let (last, outcome) = match &j.last_run {
            Some(r) => (
                r.started_at.to_rfc3339(),
                format!(
                    "{:?} after {} attempt(s){}",
                    r.outcome,
                    r.attempts,
                    r.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
                ),
            ),
            None if j.running => ("running".to_owned(), String::new()),
            None => ("—".to_owned(), String::new()),
        };
        let _ = write!(
            page,
            "<tr><td>{}</td><td><code>{}</code> {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} / {} / {}</td></tr>",
            escape(&j.name),
            escape(&j.schedule),
            escape(&j.zone),
            time(j.next_run),
            last,
            escape(&outcome),
            time(j.last_success),
            j.runs,
            j.failures,
            j.skipped_overlaps + j.skipped_missed
        );
    }
    page.push_str("</table><h2>Rules</h2>");
    if s.rules.is_empty() {
        page.push_str("<p>No threshold rules (rules.enabled = false).</p>");
    } else {
        page.push_str(
            "<table><tr><th>rule</th><th>state</th><th>value</th><th>threshold</th><th>since</th><th>reading</th></tr>",
        );
        for r in &s.rules {
            let reading = match &r.reading {
                Reading::NotYet => "not evaluated yet".to_owned(),
                Reading::Value => "value".to_owned(),
                Reading::NoData { reason } => reason.clone(),
                Reading::Error { message } => format!("error: {message}"),
                _ => String::new(),
            };
            let _ = write!(
                page,
                "<tr><td>{}</td><td><b>{:?}</b></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&r.name),
                r.state,
                r.value.map_or_else(|| "—".to_owned(), |v| format!("{v:.4}")),
                r.threshold,
                time(r.since),
                escape(&reading)
            );
        }
        page.push_str("</table>");
    }
    page.push_str("<h2>Backups</h2>");
    match &s.last_backup {
        Some(r) => {
            let _ = write!(
                page,
                "<p>Last run here: <b>{}</b> {} ({:.2} MB, {} attempt(s), {:.1} s){}</p>",
                r.status.as_str(),
                escape(&r.filename),
                r.size_mb,
                r.attempts,
                r.duration.as_secs_f64(),
                r.error.as_deref().map(|e| format!(": {}", escape(e))).unwrap_or_default()
            );
        }
        None => page.push_str("<p>No backup has run in this process yet.</p>"),
    }
    match &s.newest_verified_backup {
        Some(b) => {
            let _ = write!(
                page,
                "<p>Newest verified backup: {} (verified {}, {} bytes, SHA-256 <code>{}</code>)</p>",
                escape(&b.file),
                b.finished_at.to_rfc3339(),
                b.size_bytes,
                escape(&b.sha256)
            );
        }
        None => page.push_str("<p>No verified backup in the target.</p>"),
    }
    page.push_str("</body></html>");
    let mut response = Html(page).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
