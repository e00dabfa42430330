//! Moderation through the server API (`moderate` scope): the platform's backend acts as
//! the room's owner may, on anyone, under its bot's name (docs/moderation.md applies: the
//! same records on the room's stream, audit entries and metrics).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use std::sync::Arc;

use aurora_core::apikeys::Scope;
use aurora_core::audit::Action;
use aurora_core::events::Refusal;
use aurora_core::model::{new_message_id, Kind, Submission, UserRef};

use super::ServerKey;
use crate::http::error::{ApiError, JsonBody};
use crate::http::moderation::{self as m, Actor, Settings, Target};
use crate::state::AppState;

fn actor(key: &ServerKey) -> Actor {
    Actor { id: key.0.bot_id(), name: key.0.bot.clone(), platform: true }
}

async fn done(state: &AppState, key: &ServerKey, op: &'static str, what: String) -> Result<StatusCode, ApiError> {
    key.done(state, op, Some(what)).await;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/server/rooms/{name}/bans {username, duration_s?, reason?}` → 204.
pub async fn ban(
    State(state): State<Arc<AppState>>,
    key: ServerKey,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<Target>,
) -> Result<StatusCode, ApiError> {
    key.require(Scope::Moderate)?;
    let what = format!("ban {} in {name}", body.username);
    m::sanction(&state, &actor(&key), &name, body, Action::Ban).await?;
    done(&state, &key, "ban", what).await
}

/// `DELETE /api/server/rooms/{name}/bans/{username}` → 204.
pub async fn unban(
    State(state): State<Arc<AppState>>,
    key: ServerKey,
    Path((name, username)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    key.require(Scope::Moderate)?;
    m::lift(&state, &actor(&key), &name, &username, Action::Unban).await?;
    done(&state, &key, "unban", format!("unban {username} in {name}")).await
}

/// `POST /api/server/rooms/{name}/mutes {username, duration_s?, reason?}` → 204.
pub async fn mute(
    State(state): State<Arc<AppState>>,
    key: ServerKey,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<Target>,
) -> Result<StatusCode, ApiError> {
    key.require(Scope::Moderate)?;
    let what = format!("mute {} in {name}", body.username);
    m::sanction(&state, &actor(&key), &name, body, Action::Mute).await?;
    done(&state, &key, "mute", what).await
}

/// `DELETE /api/server/rooms/{name}/mutes/{username}` → 204.
pub async fn unmute(
    State(state): State<Arc<AppState>>,
    key: ServerKey,
    Path((name, username)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    key.require(Scope::Moderate)?;
    m::lift(&state, &actor(&key), &name, &username, Action::Unmute).await?;
    done(&state, &key, "unmute", format!("unmute {username} in {name}")).await
}

/// `POST /api/server/rooms/{name}/kick {username, reason?}` → 204.
pub async fn kick(
    State(state): State<Arc<AppState>>,
    key: ServerKey,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<Target>,
) -> Result<StatusCode, ApiError> {
    key.require(Scope::Moderate)?;
    let what = format!("kick {} from {name}", body.username);
    m::kick_from(&state, &actor(&key), &name, body).await?;
    done(&state, &key, "kick", what).await
}

/// `PUT /api/server/rooms/{name}/settings {slow_mode_ms?, frozen?, receipts?}` → 204.
pub async fn settings(
    State(state): State<Arc<AppState>>,
    key: ServerKey,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<Settings>,
) -> Result<StatusCode, ApiError> {
    key.require(Scope::Moderate)?;
    m::apply_settings(&state, &actor(&key), &name, body).await?;
    done(&state, &key, "settings", format!("settings of {name}")).await
}

/// `DELETE /api/server/rooms/{name}/messages/{id}` → 204 once the tombstone is durable: the
/// same `delete` event as a moderator's (`moderator: true`), by the key's bot.
pub async fn delete_message(
    State(state): State<Arc<AppState>>,
    key: ServerKey,
    Path((name, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    key.require(Scope::Moderate)?;
    let room = state.rooms.get(&name).await?.ok_or_else(|| ApiError::not_found("no such room"))?;
    let bot = UserRef { id: key.0.bot_id().into(), name: key.0.bot.as_str().into() };
    let mut sub = Submission::message(new_message_id(), name.clone(), bot, String::new(), None);
    sub.kind = Kind::Delete;
    sub.target = Some(id.clone());
    sub.moderator = true;
    sub.managed = room.managed();
    match crate::ws::check_target(state.backend.messages.as_ref(), &sub, state.config.edit_window).await {
        Ok(_) => {}
        Err(Ok(Refusal::NoSuchMessage | Refusal::Deleted)) => {
            return Err(ApiError::not_found("no message with that id in this room"))
        }
        Err(Ok(refusal)) => return Err(ApiError::bad_request(refusal.to_string())),
        Err(Err(e)) => return Err(e.into()),
    }
    state.backend.log.append(sub).await?;
    m::message_deleted(&state, &key.0.bot, &name, &id).await;
    done(&state, &key, "delete_message", format!("delete message {id} in {name}")).await
}
