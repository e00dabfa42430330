//! `GET /ws`: authenticate and check Origin before upgrading, then run a session.

mod commands;
mod control;
mod session;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Query, State, WebSocketUpgrade};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;

use aurora_core::protocol::MAX_FRAME_BYTES;

use crate::http::error::{bearer, known_user, ApiError};
use crate::state::AppState;

/// Read chunk and initial read buffer per connection (zero-filled, so resident). Client frames
/// are small (a `send` is a few hundred bytes); a larger one takes more reads. tokio-tungstenite's
/// default 128 KiB costs ~136 KiB per idle socket; 4 KiB cost 13.1 KiB per joined connection, 1 KiB
/// (with the command handlers boxed) 11.6 KiB (`./run.sh bench compare`, idle scenario).
const READ_BUFFER: usize = 1024;
/// Frames are fed in batches and flushed once; this is the batch write size.
const WRITE_BUFFER: usize = 16 * 1024;

#[derive(Deserialize)]
pub struct WsQuery {
    token: Option<String>,
}

pub async fn upgrade(
    State(state): State<Arc<AppState>>,
    Query(query): Query<WsQuery>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Some(token) = bearer(&headers).map(str::to_owned).or(query.token) else {
        state.metrics.auth_failed("missing_token");
        return ApiError::unauthorized("missing token").into_response();
    };
    let claims = match state.jwt.verify(&token) {
        Ok(c) => c,
        Err(e) => {
            state.metrics.token_failed(&e);
            return ApiError::unauthorized("invalid or expired token").into_response();
        }
    };
    if let Err(e) = known_user(&state, &claims).await {
        return e.into_response();
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let allowed = origin.to_str().is_ok_and(|o| state.config.allowed_origins.allows(o, host));
        if !allowed {
            tracing::info!(origin = ?origin, "refused WebSocket from a disallowed Origin");
            return ApiError::new(StatusCode::FORBIDDEN, "forbidden", "origin not allowed").into_response();
        }
    }
    if state.shutdown.is_cancelled() {
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "shutting down").into_response();
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return ApiError::bad_request(rejection.body_text()).into_response(),
    };
    let guard = state.sessions.token();
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .on_upgrade(move |socket| async move {
            session::run(state, socket, claims).await;
            drop(guard);
        })
}
