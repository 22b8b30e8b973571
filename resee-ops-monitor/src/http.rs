//! The HTTP health endpoint (feature `axum`): readiness and liveness routes served from a
//! [`HealthMonitor`]'s cached report.

/// The axum crate this router is built with (0.8), so a host merges [`router`] into its own
/// `axum::Router` and serves it without adding axum itself or guessing its major version:
/// `use resee_ops_monitor::http::axum;`.
pub use axum;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use resee_ops_core::{CheckGroup, HealthReport, HealthStatus};

use crate::HealthMonitor;

/// The media type of the responses.
pub const HEALTH_JSON: &str = "application/health+json";

/// Paths and visibility of the health routes.
///
/// ```
/// use resee_ops_monitor::http::EndpointConfig;
/// let cfg = EndpointConfig::default().with_details(true).with_readiness_path("/ready");
/// assert_eq!(cfg.liveness_path(), "/health/live");
/// ```
#[derive(Clone, Debug)]
pub struct EndpointConfig {
    readiness_path: String,
    liveness_path: String,
    details: bool,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self { readiness_path: "/health/ready".into(), liveness_path: "/health/live".into(), details: false }
    }
}

impl EndpointConfig {
    /// Sets the readiness route (default `/health/ready`).
    pub fn with_readiness_path(mut self, path: impl Into<String>) -> Self {
        self.readiness_path = path.into();
        self
    }

    /// Sets the liveness route (default `/health/live`).
    pub fn with_liveness_path(mut self, path: impl Into<String>) -> Self {
        self.liveness_path = path.into();
        self
    }

    /// Shows per-check details (default: hidden, only the aggregate status). Enable it only where the
    /// endpoint is not reachable by the public: outputs name hosts and ports.
    pub fn with_details(mut self, details: bool) -> Self {
        self.details = details;
        self
    }

    /// The readiness route.
    pub fn readiness_path(&self) -> &str {
        &self.readiness_path
    }

    /// The liveness route.
    pub fn liveness_path(&self) -> &str {
        &self.liveness_path
    }
}

/// A router with the readiness route (the readiness group: the critical dependencies) and the liveness route
/// (the liveness group: the process only, never a dependency), answering `application/health+json` with 200
/// for `pass`/`warn` and 503 for `fail`.
///
/// Both answer from the monitor's last cycle and never run a probe. Before the first cycle has completed,
/// readiness answers 503 (`fail`, not ready yet) and liveness 200 (the process answers, so it lives).
///
/// ```
/// use resee_ops_core::HealthRegistry;
/// use resee_ops_monitor::HealthMonitor;
/// use resee_ops_monitor::http::{EndpointConfig, router};
/// let monitor = HealthMonitor::builder(HealthRegistry::new()).build().unwrap();
/// let app: axum::Router = axum::Router::new().merge(router(monitor, EndpointConfig::default()));
/// # let _ = app;
/// ```
pub fn router(monitor: HealthMonitor, config: EndpointConfig) -> Router {
    let details = config.details;
    let ready_monitor = monitor.clone();
    Router::new()
        .route(
            &config.readiness_path,
            get(move || {
                let monitor = ready_monitor.clone();
                async move { respond(monitor.report(CheckGroup::Readiness), HealthStatus::Down, details) }
            }),
        )
        .route(
            &config.liveness_path,
            get(move || {
                let monitor = monitor.clone();
                async move { respond(monitor.report(CheckGroup::Liveness), HealthStatus::Up, details) }
            }),
        )
}

fn respond(report: Option<HealthReport>, before_first_cycle: HealthStatus, details: bool) -> Response {
    let report =
        report.unwrap_or_else(|| HealthReport::with_status(before_first_cycle, "no health check has completed yet"));
    let report = if details { report } else { report.without_details() };
    let status = StatusCode::from_u16(report.http_status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let body = serde_json::to_vec(&report).unwrap_or_else(|_| br#"{"status":"fail"}"#.to_vec());
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(HEALTH_JSON));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
