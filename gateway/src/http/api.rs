//! REST handlers (docs/protocol.md §1).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

use aurora_core::model::{Room, Visibility};
use aurora_core::ports::PortError;
use aurora_core::protocol::{DEFAULT_HISTORY_PAGE, MAX_HISTORY_PAGE};
use aurora_core::reads::{self, Unread};
use aurora_core::validate;

use super::abuse;
use super::error::{ApiError, AuthUser, JsonBody};
use crate::state::AppState;

pub async fn me(State(state): State<Arc<AppState>>, AuthUser(claims): AuthUser) -> Result<impl IntoResponse, ApiError> {
    let user =
        state.backend.users.user_by_id(&claims.sub).await?.ok_or_else(|| ApiError::unauthorized("unknown user"))?;
    Ok(Json(json!({ "id": user.id, "name": user.name })))
}

/// A room as `viewer` (a username) sees it: a conversation is titled by its other members.
pub(super) async fn room_json(state: &AppState, room: &Room, viewer: &str) -> Result<Value, ApiError> {
    let online = state.backend.presence.online(&room.name).await?;
    let mut v = json!({
        "name": room.name,
        "title": room.title_for(viewer),
        "online": online,
        "managed": room.managed(),
        "receipts": room.receipts(),
    });
    if room.dm {
        v["dm"] = Value::Bool(true);
        v["members"] = json!(room.members);
        // Opened by three or more: members may leave it.
        v["group"] = Value::Bool(room.group_dm());
    }
    Ok(v)
}

/// One page of rooms.
const DEFAULT_ROOM_PAGE: usize = 100;
const MAX_ROOM_PAGE: usize = 500;

/// `GET /api/rooms?limit=N&after=NAME`: rooms the caller may join, by name, a page at a
/// time; `next` is the `after` of the next page (`null` on the last).
pub async fn list_rooms(
    State(state): State<Arc<AppState>>,
    AuthUser(claims): AuthUser,
    Query(q): Query<HashMap<String, String>>,
) -> Result<impl IntoResponse, ApiError> {
    let limit = query_u64(&q, "limit")?.map_or(DEFAULT_ROOM_PAGE, |l| (l as usize).clamp(1, MAX_ROOM_PAGE));
    let after = q.get("after").map(String::as_str).unwrap_or("");
    let mut rooms = state.backend.rooms.rooms().await?;
    rooms.retain(|r| r.admits(&claims.name) && r.name.as_str() > after);
    rooms.sort_by(|a, b| a.name.cmp(&b.name));
    let next = (rooms.len() > limit).then(|| rooms[limit - 1].name.clone());
    rooms.truncate(limit);
    let pointers = state.backend.reads.read_pointers(&claims.sub).await?;
    let mut out = Vec::with_capacity(rooms.len());
    for room in &rooms {
        let mut v = room_json(&state, room, &claims.name).await?;
        // Counted from the read pointer; a public room never read counts nothing (only rooms
        // one is a member of start unread).
        let read = pointers.get(&room.name).copied();
        let counts = match (read, room.visibility) {
            (None, Visibility::Public) => Unread::default(),
            (read, _) => {
                let messages = state.backend.messages.as_ref();
                reads::unread(messages, &room.name, read.unwrap_or(0), &claims.sub, &claims.name).await?
            }
        };
        v["read"] = json!(read.unwrap_or(0));
        v["role"] = json!(room.role(&claims.sub, &claims.name).as_str());
        v["unread"] = json!(counts.unread);
        v["mentions"] = json!(counts.mentions);
        out.push(v);
    }
    Ok(Json(json!({ "rooms": out, "next": next })))
}

#[derive(Deserialize)]
pub struct NewRoom {
    name: String,
    title: Option<String>,
    /// Whether members see read receipts (default true).
    receipts: Option<bool>,
}

pub async fn create_room(
    State(state): State<Arc<AppState>>,
    AuthUser(claims): AuthUser,
    JsonBody(body): JsonBody<NewRoom>,
) -> Result<impl IntoResponse, ApiError> {
    validate::room_name(&body.name).map_err(ApiError::bad_request)?;
    if body.name.starts_with(aurora_core::model::DM_PREFIX) {
        return Err(ApiError::bad_request("room names starting with dm- are kept for conversations (POST /api/dms)"));
    }
    if body.title.as_ref().is_some_and(|t| t.chars().count() > validate::MAX_TITLE_CHARS) {
        return Err(ApiError::bad_request("title must be at most 200 characters"));
    }
    let what = "rooms created; wait before creating another";
    abuse::take(&state, "room-create", &claims.sub, state.config.room_create_rate, what).await?;
    let max = state.config.max_rooms_per_user;
    let mine =
        state.backend.rooms.rooms().await?.iter().filter(|r| r.created_by.as_deref() == Some(&claims.sub)).count();
    if mine >= max {
        return Err(ApiError::forbidden(format!("you have created {max} rooms, the most one user may")));
    }
    let mut room = Room::new_api(&body.name, body.title.as_deref().map(str::trim));
    room.created_by = Some(claims.sub.clone());
    room.read_receipts = body.receipts;
    match state.backend.rooms.create_room(room.clone()).await {
        Ok(()) => {}
        Err(PortError::Conflict) => return Err(ApiError::conflict("room exists")),
        Err(e) => return Err(e.into()),
    }
    tracing::info!(room = %room.name, user_id = %claims.sub, "room created");
    state.rooms.remember(room.clone());
    let mut v = room_json(&state, &room, &claims.name).await?;
    v["role"] = json!(room.role(&claims.sub, &claims.name).as_str());
    Ok((StatusCode::CREATED, Json(v)))
}

fn query_u64(q: &HashMap<String, String>, key: &str) -> Result<Option<u64>, ApiError> {
    q.get(key)
        .map(|v| v.parse::<u64>().map_err(|_| ApiError::bad_request(format!("`{key}` must be a non-negative integer"))))
        .transpose()
}

pub async fn messages(
    State(state): State<Arc<AppState>>,
    AuthUser(claims): AuthUser,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<impl IntoResponse, ApiError> {
    let room = state.rooms.get(&name).await?.ok_or_else(|| ApiError::not_found("no such room"))?;
    if !room.admits(&claims.name) {
        return Err(ApiError::forbidden("private room"));
    }
    let before = query_u64(&q, "before")?;
    let limit =
        query_u64(&q, "limit")?.map(|l| l.clamp(1, MAX_HISTORY_PAGE as u64) as usize).unwrap_or(DEFAULT_HISTORY_PAGE);
    let mut messages = state.backend.messages.before(&name, before, limit).await?;
    aurora_core::events::hydrate(state.backend.messages.as_ref(), &mut messages).await?;
    Ok(Json(json!({ "messages": messages })))
}
