//! The server API (docs/server-api.md): what a platform's own backends call with an API key
//! on `/api/server/...` — publish as a bot, manage rooms and members, read presence and
//! history, disconnect users. Every call is checked against the key's scopes, rate limited
//! per key, counted and audited.

mod keys;
mod manage;
mod moderate;
mod publish;

pub use keys::KeyWatch;

use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::request::Parts;
use axum::routing::{get, post, put};
use axum::Router;
use std::sync::Arc;

use aurora_core::apikeys::{ApiKey, Scope};
use aurora_core::audit::{Action, AuditRecord};
use aurora_core::model::new_message_id;
use aurora_core::ratelimit::Decision;

use crate::http::error::{bearer, ApiError};
use crate::state::AppState;

/// Largest server API request body (a batch publish).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// The `op` label values of `aurora_server_api_requests_total`.
pub const OPS: [&str; 21] = [
    "publish",
    "publish_batch",
    "create_room",
    "room",
    "update_room",
    "delete_room",
    "history",
    "add_member",
    "remove_member",
    "presence",
    "disconnect",
    "deactivate",
    "reactivate",
    "audit",
    "ban",
    "unban",
    "mute",
    "unmute",
    "kick",
    "settings",
    "delete_message",
];

/// The audit log's "room" for server API calls.
pub const AUDIT_ROOM: &str = "*server";

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/server/messages", post(publish::batch))
        .route("/api/server/rooms", post(manage::create_room))
        .route("/api/server/rooms/{name}", get(manage::room).patch(manage::update_room).delete(manage::delete_room))
        .route("/api/server/rooms/{name}/messages", post(publish::one).get(manage::history))
        .route("/api/server/rooms/{name}/members/{username}", put(manage::add_member).delete(manage::remove_member))
        .route("/api/server/rooms/{name}/presence", get(manage::presence))
        .route("/api/server/rooms/{name}/messages/{id}", axum::routing::delete(moderate::delete_message))
        .route("/api/server/rooms/{name}/bans", post(moderate::ban))
        .route("/api/server/rooms/{name}/bans/{username}", axum::routing::delete(moderate::unban))
        .route("/api/server/rooms/{name}/mutes", post(moderate::mute))
        .route("/api/server/rooms/{name}/mutes/{username}", axum::routing::delete(moderate::unmute))
        .route("/api/server/rooms/{name}/kick", post(moderate::kick))
        .route("/api/server/rooms/{name}/settings", put(moderate::settings))
        .route("/api/server/users/{username}/disconnect", post(manage::disconnect))
        .route("/api/server/users/{username}/deactivate", post(manage::deactivate))
        .route("/api/server/users/{username}/reactivate", post(manage::reactivate))
        .route("/api/server/audit", get(manage::audit))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// The request's API key: declared now, and under its rate.
pub struct ServerKey(pub Arc<ApiKey>);

impl FromRequestParts<Arc<AppState>> for ServerKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let Some(presented) = bearer(&parts.headers) else {
            state.metrics.auth_failed("missing_api_key");
            return Err(ApiError::unauthorized("missing bearer API key"));
        };
        let Some(key) = state.keys.find(presented) else {
            state.metrics.auth_failed("unknown_api_key");
            return Err(ApiError::unauthorized("unknown or revoked API key"));
        };
        let bucket = format!("key:{}", key.name);
        match state.backend.limiter.acquire(&bucket, "server-api", key.rate_limit).await? {
            Decision::Allowed => Ok(ServerKey(key)),
            Decision::Limited { retry_after } => {
                state.metrics.server_api_requests.with_label_values(&["any", "rate_limited"]).inc();
                tracing::info!(key = %key.name, "server API key over its rate");
                Err(ApiError::rate_limited("this key's request rate is used up; wait", retry_after))
            }
        }
    }
}

impl ServerKey {
    /// Refuses (403) unless the key has `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.0.allows(scope) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("this key lacks the `{}` scope", scope.as_str())))
        }
    }

    /// Counts the call and, when it changed something, records it in the audit log.
    pub async fn done(&self, state: &AppState, op: &'static str, what: Option<String>) {
        debug_assert!(OPS.contains(&op), "{op} is not in OPS");
        state.metrics.server_api_requests.with_label_values(&[op, "ok"]).inc();
        let Some(what) = what else { return };
        tracing::info!(key = %self.0.name, op, what = %what, "server API");
        let entry = AuditRecord {
            id: new_message_id(),
            room: AUDIT_ROOM.to_owned(),
            at: aurora_core::now_ms(),
            actor: format!("key:{}", self.0.name),
            action: Action::ServerCall,
            target: Some(what),
            reason: None,
            until: None,
            interval_ms: None,
        };
        if let Err(e) = state.backend.audit.record(entry).await {
            tracing::warn!(key = %self.0.name, error = %e, "server API call not audited");
        }
    }
}
