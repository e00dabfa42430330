//! `/healthz`, `/readyz`, `/metrics`, and the lag gauge.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use rdkafka::consumer::Consumer;
use rdkafka::Offset;
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

/// Every 5 s: log end minus position, per assigned partition and summed.
pub async fn track_lag(shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let consumer = shared.consumer.clone();
        let lags = tokio::task::spawn_blocking(move || {
            let position = consumer.position().ok()?;
            let mut lags = Vec::new();
            for e in position.elements() {
                let (_, high) = consumer.fetch_watermarks(e.topic(), e.partition(), Duration::from_secs(1)).ok()?;
                // No position yet (nothing read since the assignment): not counted.
                let behind = match e.offset() {
                    Offset::Offset(p) => (high - p).max(0),
                    _ => 0,
                };
                lags.push((e.topic().to_owned(), e.partition(), behind));
            }
            Some(lags)
        })
        .await
        .ok()
        .flatten();
        if let Some(lags) = lags {
            let metrics = &shared.metrics;
            metrics.partition_lag.reset();
            for (topic, partition, behind) in &lags {
                metrics.partition_lag.with_label_values(&[topic, &partition.to_string()]).set(*behind);
            }
            metrics.lag.set(lags.iter().map(|l| l.2).sum());
        }
    }
}
