//! The probe server of the consumer and the operator: `/healthz` (the process runs),
//! `/readyz` (its dependencies answer) and `/metrics` (Prometheus text). The gateway
//! serves the same paths next to its API.

use async_trait::async_trait;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// One line item of `/readyz`: `name=value`; the process is ready when every check is ok.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub value: String,
    pub ok: bool,
}

impl Check {
    /// A dependency that answers (`name=true`) or not (`name=false`).
    pub fn up(name: &'static str, ok: bool) -> Check {
        Check { name, value: ok.to_string(), ok }
    }

    /// Information that does not decide readiness (`role=standby`).
    pub fn info(name: &'static str, value: impl Into<String>) -> Check {
        Check { name, value: value.into(), ok: true }
    }
}

/// What a binary answers on its probe paths.
#[async_trait]
pub trait Probes: Send + Sync + 'static {
    /// The checks of `/readyz`, each bounded so a probe with a short timeout gets an answer.
    async fn readiness(&self) -> Vec<Check>;
    /// The Prometheus text exposition of `/metrics`.
    fn metrics(&self) -> String;
}

/// Serves the probe paths on `listener` until `shutdown`.
pub async fn serve<P: Probes>(listener: tokio::net::TcpListener, probes: Arc<P>, shutdown: CancellationToken) {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz::<P>))
        .route("/metrics", get(metrics::<P>))
        .with_state(probes);
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await {
        tracing::error!(error = %e, "probe server failed");
    }
}

async fn readyz<P: Probes>(State(probes): State<Arc<P>>) -> impl IntoResponse {
    let checks = probes.readiness().await;
    let line: Vec<String> = checks.iter().map(|c| format!("{}={}", c.name, c.value)).collect();
    let status = if checks.iter().all(|c| c.ok) { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, format!("{}\n", line.join(" ")))
}

async fn metrics<P: Probes>(State(probes): State<Arc<P>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], probes.metrics())
}
