//! HTTP endpoints: Prometheus `/metrics`, liveness `/healthz`, readiness `/readyz`.
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::lifecycle::Lifecycle;
use crate::metrics::Metrics;

#[derive(Clone)]
struct HttpState {
    metrics: Arc<Metrics>,
    lifecycle: Arc<Lifecycle>,
}

pub fn router(metrics: Arc<Metrics>, lifecycle: Arc<Lifecycle>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(HttpState { metrics, lifecycle })
}

async fn metrics_handler(State(s): State<HttpState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], s.metrics.encode())
}

/// The process is alive (it answers), whatever its readiness.
async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}

/// 200 once warmed up; 503 while starting or draining.
async fn readyz(State(s): State<HttpState>) -> impl IntoResponse {
    if s.lifecycle.is_ready() {
        (StatusCode::OK, "ready\n")
    } else if s.lifecycle.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n")
    }
}
