//! [`RequestStatsLayer`]: a tower middleware that records every request into [`RequestStats`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;

use super::request::RequestStats;

/// A request extension naming the route template a request matched (`/api/reviews/{id}`), for routers other
/// than axum; with axum, `MatchedPath` is read (feature `axum`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteTemplate(pub Arc<str>);

/// The route of a request, as cheap to clone as the extension it came from.
#[derive(Clone, Debug)]
enum Route {
    None,
    Template(RouteTemplate),
    #[cfg(feature = "axum")]
    Axum(axum::extract::MatchedPath),
}

impl Route {
    fn of<B>(req: &Request<B>) -> Self {
        #[cfg(feature = "axum")]
        if let Some(m) = req.extensions().get::<axum::extract::MatchedPath>() {
            return Self::Axum(m.clone());
        }
        match req.extensions().get::<RouteTemplate>() {
            Some(t) => Self::Template(t.clone()),
            None => Self::None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Self::None => None,
            Self::Template(t) => Some(&t.0),
            #[cfg(feature = "axum")]
            Self::Axum(m) => Some(m.as_str()),
        }
    }
}

/// Records each request's route template, status and latency into [`RequestStats`]: one line in an axum or
/// any tower stack, as tower-http's `TraceLayer`.
///
/// The route template is axum's `MatchedPath` (feature `axum`; add the layer with `Router::layer` so it
/// runs after routing) or a [`RouteTemplate`] extension; requests with neither count as
/// [`UNMATCHED_ROUTE`](crate::UNMATCHED_ROUTE). The latency runs from the call until the response head is
/// ready (the body is not waited for); an error from the inner service counts as status 500. A request
/// whose future is dropped before it finishes (the client went away) is not recorded.
///
/// ```
/// use resee_ops_monitor::RequestStats;
/// # #[cfg(feature = "axum")] {
/// let stats = RequestStats::new();
/// let app: axum::Router = axum::Router::new()
///     .route("/api/reviews/{id}", axum::routing::get(|| async { "ok" }))
///     .layer(stats.layer());
/// # let _ = app; }
/// ```
#[derive(Clone, Debug)]
pub struct RequestStatsLayer {
    stats: RequestStats,
}

impl RequestStatsLayer {
    /// A layer recording into `stats`.
    pub fn new(stats: RequestStats) -> Self {
        Self { stats }
    }
}

impl<S> Layer<S> for RequestStatsLayer {
    type Service = RequestStatsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestStatsService { inner, stats: self.stats.clone() }
    }
}

/// The service of [`RequestStatsLayer`], generic over the request and response bodies.
#[derive(Clone, Debug)]
pub struct RequestStatsService<S> {
    inner: S,
    stats: RequestStats,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequestStatsService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let route = Route::of(&req);
        let start = Instant::now();
        ResponseFuture { inner: self.inner.call(req), stats: self.stats.clone(), route, start }
    }
}

pin_project! {
    /// The response future of [`RequestStatsService`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        stats: RequestStats,
        route: Route,
        start: Instant,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").field("route", &self.route.as_str()).finish_non_exhaustive()
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let now = Instant::now();
        let status = match &result {
            Ok(response) => response.status().as_u16(),
            Err(_) => 500,
        };
        this.stats.record_at(this.route.as_str(), status, now.saturating_duration_since(*this.start), now);
        Poll::Ready(result)
    }
}
