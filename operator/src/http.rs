//! `/healthz`, `/readyz`, `/metrics`.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::topics::Topics;

pub struct Probes {
    pub client: kube::Client,
    pub topics: Topics,
    pub metrics: Metrics,
    /// Set once this replica knows whether it leads (leader or standby).
    pub elected: AtomicBool,
}

pub async fn serve(listener: tokio::net::TcpListener, probes: Arc<Probes>, shutdown: CancellationToken) {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(probes);
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await {
        tracing::error!(error = %e, "probe server failed");
    }
}

/// Ready when the API server and Kafka answer and the lease state is known.
async fn readyz(State(p): State<Arc<Probes>>) -> impl IntoResponse {
    let api_ok = p.client.apiserver_version().await.is_ok();
    let kafka_ok = p.topics.ping().await.is_ok();
    let elected = p.elected.load(Ordering::Relaxed);
    let role = if p.metrics.leader.get() == 1 { "leader" } else { "standby" };
    let body = format!("apiserver={api_ok} kafka={kafka_ok} lease={elected} role={role}\n");
    let status = if api_ok && kafka_ok && elected { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, body)
}

async fn metrics(State(p): State<Arc<Probes>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], p.metrics.render())
}
