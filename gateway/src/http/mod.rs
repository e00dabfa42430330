//! HTTP routes: REST API, probes, metrics, web client and the `/ws` upgrade.

mod abuse;
pub mod api;
pub mod auth;
pub mod client;
mod dms;
pub mod error;
pub mod moderation;
mod web;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use std::sync::Arc;

use crate::state::AppState;

/// Largest accepted REST request body.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(web::index))
        .route("/app.js", get(web::app_js))
        .route("/js/{name}", get(web::module))
        .route("/style.css", get(web::style))
        .route("/api/auth/register", post(auth::register))
        .route("/api/auth/login", post(auth::login))
        .route("/api/auth/refresh", post(auth::refresh))
        .route("/api/auth/logout", post(auth::logout))
        .route("/api/ws-ticket", post(auth::ws_ticket))
        .route("/api/me", get(api::me))
        .route("/api/rooms", get(api::list_rooms).post(api::create_room))
        .route("/api/rooms/{name}/messages", get(api::messages))
        .route("/api/rooms/{name}/moderation", get(moderation::show))
        .route("/api/rooms/{name}/moderators", post(moderation::grant))
        .route("/api/rooms/{name}/moderators/{username}", axum::routing::delete(moderation::revoke))
        .route("/api/rooms/{name}/bans", post(moderation::ban))
        .route("/api/rooms/{name}/bans/{username}", axum::routing::delete(moderation::unban))
        .route("/api/rooms/{name}/mutes", post(moderation::mute))
        .route("/api/rooms/{name}/mutes/{username}", axum::routing::delete(moderation::unmute))
        .route("/api/rooms/{name}/kick", post(moderation::kick))
        .route("/api/rooms/{name}/settings", axum::routing::put(moderation::settings))
        .route("/api/rooms/{name}/audit", get(moderation::audit))
        .route("/api/dms", post(dms::open))
        .route("/api/dms/{name}/leave", post(dms::leave))
        .route("/api/blocks", get(dms::blocked).post(dms::block))
        .route("/api/blocks/{username}", axum::routing::delete(dms::unblock))
        .route("/ws", get(crate::ws::upgrade))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(crate::server_api::routes())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), request_timeout))
        .layer(middleware::from_fn_with_state(state.clone(), count_requests))
        .layer(middleware::map_response(nosniff))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// What a connection gets while file descriptors run short: the probes, nothing else.
pub fn probes_only(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(|| async {
            error::ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the server is at capacity; try again")
        })
        .layer(middleware::map_response(nosniff))
        .with_state(state)
}

/// A request (its body included) that takes longer than `AURORA_REQUEST_TIMEOUT` gets 408.
async fn request_timeout(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(state.config.request_timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => error::ApiError::new(StatusCode::REQUEST_TIMEOUT, "timeout", "request took too long").into_response(),
    }
}

async fn count_requests(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let response = next.run(req).await;
    if let Some(route) = route.filter(|r| r.starts_with("/api/")) {
        state.metrics.http_requests.with_label_values(&[route.as_str(), response.status().as_str()]).inc();
    }
    response
}

/// Every response: browsers must not guess another content type.
async fn nosniff(mut response: Response) -> Response {
    response.headers_mut().insert(header::X_CONTENT_TYPE_OPTIONS, header::HeaderValue::from_static("nosniff"));
    response
}

async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "shutting down" }))).into_response();
    }
    let failing = check_dependencies(&state).await;
    let down_for = {
        let mut since = state.unready_since.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if failing.is_empty() {
            *since = None;
        } else if since.is_none() {
            *since = Some(std::time::Instant::now());
        }
        since.map(|t| t.elapsed())
    };
    let down: serde_json::Map<String, serde_json::Value> =
        failing.iter().map(|f| (f.dependency.as_str().to_owned(), json!(f.cause.to_string()))).collect();
    match down_for {
        None => Json(json!({ "status": "ready" })).into_response(),
        // A blip: keep serving (sends answer `unavailable`); the Service keeps this gateway.
        Some(d) if d < state.config.ready_grace => {
            Json(json!({ "status": "degraded", "down": down, "down_for_ms": d.as_millis() as u64 })).into_response()
        }
        Some(d) => {
            let body = json!({ "status": "not ready", "down": down, "down_for_ms": d.as_millis() as u64 });
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

/// Checks every dependency and records the answers in `aurora_dependency_up`.
pub async fn check_dependencies(state: &AppState) -> Vec<aurora_core::ports::NotReady> {
    let readiness = &state.backend.readiness;
    let failing = readiness.check().await;
    for dependency in readiness.dependencies() {
        let up = !failing.iter().any(|f| f.dependency == *dependency);
        state.metrics.dependency_up.with_label_values(&[dependency.as_str()]).set(i64::from(up));
    }
    failing
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}

async fn not_found() -> error::ApiError {
    error::ApiError::not_found("no such endpoint")
}
