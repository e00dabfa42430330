//! `/healthz`, `/readyz` and `/metrics`.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use rdkafka::consumer::Consumer;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::Shared;

pub async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>, shutdown: CancellationToken) {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(shared);
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await {
        tracing::error!(error = %e, "probe server failed");
    }
}

async fn readyz(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let mut redis = shared.redis.clone();
    let redis_ok = redis::cmd("PING").query_async::<String>(&mut redis).await.is_ok();
    let mongo_ok = shared.mongo.ping().await.is_ok();
    let consumer = shared.consumer.clone();
    let kafka_ok = tokio::task::spawn_blocking(move || consumer.fetch_metadata(None, Duration::from_secs(2)).is_ok())
        .await
        .unwrap_or(false);
    let body = format!("kafka={kafka_ok} redis={redis_ok} mongodb={mongo_ok}\n");
    let status = if kafka_ok && redis_ok && mongo_ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, body)
}

async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], shared.metrics.render())
}
