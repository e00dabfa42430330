//! Direct conversations (docs/protocol.md §1): private rooms of 2 to 10 users, one per set
//! of people, opened by username.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

use aurora_core::control::{Announcement, RoomChange, RoomOp, UserChange, UserOp};
use aurora_core::model::{Room, MAX_DM_OTHERS};
use aurora_core::ports::PortError;
use aurora_core::validate;

use super::abuse;
use super::api::room_json;
use super::error::{ApiError, AuthUser, JsonBody};
use crate::state::AppState;

#[derive(Deserialize)]
pub struct NewDm {
    users: Vec<String>,
}

/// `POST /api/dms {"users":["bob"]}`: the conversation of the caller and `users` (1 to 9
/// others, by username): 201 when it is new, 200 with the same room when it exists.
pub async fn open(
    State(state): State<Arc<AppState>>,
    AuthUser(claims): AuthUser,
    JsonBody(body): JsonBody<NewDm>,
) -> Result<impl IntoResponse, ApiError> {
    let me =
        state.backend.users.user_by_id(&claims.sub).await?.ok_or_else(|| ApiError::unauthorized("unknown user"))?;
    if body.users.len() > 4 * MAX_DM_OTHERS {
        return Err(ApiError::bad_request(format!("a conversation has 1 to {MAX_DM_OTHERS} other users")));
    }
    let mut others = BTreeMap::new();
    for name in &body.users {
        validate::username(name).map_err(ApiError::bad_request)?;
        if name.to_lowercase() != me.name.to_lowercase() {
            others.insert(name.to_lowercase(), name.clone());
        }
    }
    if others.is_empty() || others.len() > MAX_DM_OTHERS {
        return Err(ApiError::bad_request(format!("a conversation has 1 to {MAX_DM_OTHERS} other users")));
    }
    let mut names = vec![me.name.clone()];
    let mut ids = vec![me.id.clone()];
    for lower in others.keys() {
        let user = state.backend.users.user_by_name(lower).await?;
        let user = user.ok_or_else(|| ApiError::not_found(format!("no user named {}", others[lower])))?;
        names.push(user.name);
        ids.push(user.id);
    }
    let room = Room { created_by: Some(me.id.clone()), ..Room::new_dm(&names) };
    if let Some(existing) = state.backend.rooms.room(&room.name).await? {
        return existing_dm(&state, existing, &me.name).await;
    }
    let what = "conversations opened; wait before opening another";
    abuse::take(&state, "room-create", &claims.sub, state.config.room_create_rate, what).await?;
    match state.backend.rooms.create_room(room.clone()).await {
        Ok(()) => {}
        // Opened at the same moment by someone else: the same conversation.
        Err(PortError::Conflict) => {
            let existing = state.backend.rooms.room(&room.name).await?.ok_or(PortError::Conflict)?;
            return existing_dm(&state, existing, &me.name).await;
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(room = %room.name, user_id = %claims.sub, members = room.members.len(), "conversation opened");
    state.rooms.remember(room.clone());
    rooms_changed(&state, ids).await;
    Ok((StatusCode::CREATED, Json(room_json(&state, &room, &me.name).await?)))
}

async fn existing_dm(
    state: &AppState,
    room: Room,
    me: &str,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    if !room.dm {
        return Err(ApiError::conflict("that name is taken by a room that is not a conversation"));
    }
    if !room.admits(me) {
        return Err(ApiError::forbidden("you left this conversation"));
    }
    Ok((StatusCode::OK, Json(room_json(state, &room, me).await?)))
}

/// Tells the users' connections, on every gateway, that their room lists changed. A notice
/// that does not go out is not an error: clients re-read the list when they reconnect.
async fn rooms_changed(state: &AppState, user_ids: Vec<String>) {
    for user in user_ids {
        let notice = Announcement::User(UserChange::new(UserOp::Rooms, user));
        if let Err(e) = state.backend.announcer.announce(notice).await {
            tracing::warn!(error = %e, "room list notice not announced");
        }
    }
}

/// Applies a changed block list here at once and on every other gateway by announcement
/// (or within `blocks::LIST_TTL` when that is lost).
async fn blocks_changed(state: &AppState, user: &str) {
    state.blocks.forget(user);
    let notice = Announcement::User(UserChange::new(UserOp::Blocks, user));
    if let Err(e) = state.backend.announcer.announce(notice).await {
        tracing::warn!(error = %e, "block list change not announced");
    }
}

/// `POST /api/dms/{name}/leave`: the caller leaves a conversation opened by three or more
/// people; their connections leave the room on every gateway (`left`, reason `removed`),
/// and the others see it titled without them. A conversation of two cannot be left
/// (block the other user instead): 409.
pub async fn leave(
    State(state): State<Arc<AppState>>,
    AuthUser(claims): AuthUser,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let hidden = || ApiError::not_found(format!("no conversation named {name}"));
    let room = state.backend.rooms.room(&name).await?.filter(|r| r.dm && r.admits(&claims.name)).ok_or_else(hidden)?;
    if !room.group_dm() {
        return Err(ApiError::conflict("a conversation of two cannot be left; block the other user instead"));
    }
    if !state.backend.rooms.remove_member(&name, &claims.name).await? {
        return Err(hidden());
    }
    tracing::info!(room = %name, user_id = %claims.sub, "left a conversation");
    let change = Announcement::Room(RoomChange { op: RoomOp::Updated, room: name.clone() });
    if let Err(e) = state.backend.announcer.announce(change).await {
        // Gateways re-read every room periodically (`AURORA_ROOM_REFRESH`).
        tracing::warn!(room = %name, error = %e, "room change not announced");
    }
    let mut ids = vec![claims.sub.clone()];
    for member in &room.members {
        if let Some(user) = state.backend.users.user_by_name(member).await? {
            ids.push(user.id);
        }
    }
    ids.sort();
    ids.dedup();
    rooms_changed(&state, ids).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct Block {
    username: String,
}

async fn other_user(state: &AppState, me: &str, name: &str) -> Result<aurora_core::model::UserRecord, ApiError> {
    validate::username(name).map_err(ApiError::bad_request)?;
    let user = state.backend.users.user_by_name(name).await?;
    let user = user.ok_or_else(|| ApiError::not_found(format!("no user named {name}")))?;
    if user.id == me {
        return Err(ApiError::bad_request("you cannot block yourself"));
    }
    Ok(user)
}

/// `POST /api/blocks {"username":"bob"}`: bob's sends to the conversations he shares with
/// the caller are refused (`forbidden`, the same answer as any refusal: nothing tells him why).
pub async fn block(
    State(state): State<Arc<AppState>>,
    AuthUser(claims): AuthUser,
    JsonBody(body): JsonBody<Block>,
) -> Result<StatusCode, ApiError> {
    let other = other_user(&state, &claims.sub, &body.username).await?;
    state.backend.users.set_blocked(&claims.sub, &other.id, true).await?;
    tracing::info!(user_id = %claims.sub, blocked = %other.id, "user blocked");
    blocks_changed(&state, &claims.sub).await;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/blocks/{username}`.
pub async fn unblock(
    State(state): State<Arc<AppState>>,
    AuthUser(claims): AuthUser,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Result<StatusCode, ApiError> {
    let other = other_user(&state, &claims.sub, &name).await?;
    state.backend.users.set_blocked(&claims.sub, &other.id, false).await?;
    blocks_changed(&state, &claims.sub).await;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/blocks`: `{"blocked":["bob"]}`.
pub async fn blocked(
    State(state): State<Arc<AppState>>,
    AuthUser(claims): AuthUser,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mut names = Vec::new();
    for id in state.backend.users.blocked(&claims.sub).await? {
        if let Some(user) = state.backend.users.user_by_id(&id).await? {
            names.push(user.name);
        }
    }
    names.sort_by_key(|n| n.to_lowercase());
    Ok(Json(serde_json::json!({ "blocked": names })))
}
