//! Rooms, members, presence, history and users through the server API.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

use aurora_core::apikeys::Scope;
use aurora_core::control::{Announcement, RoomChange as Announced, RoomOp, UserChange, UserOp};
use aurora_core::model::{Room, UserRecord, Visibility, DM_PREFIX};
use aurora_core::ports::PortError;
use aurora_core::validate;

use super::{ServerKey, AUDIT_ROOM};
use crate::http::error::{ApiError, JsonBody};
use crate::state::AppState;

/// Most members a room may be created with in one call.
const MAX_MEMBERS: usize = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRoom {
    name: String,
    title: Option<String>,
    #[serde(default)]
    visibility: Visibility,
    /// Usernames allowed in a private room.
    #[serde(default)]
    members: Vec<String>,
    receipts: Option<bool>,
}

fn room_json(room: &Room) -> Value {
    json!({
        "name": room.name,
        "title": room.title,
        "visibility": room.visibility,
        "members": room.members,
        "managed": room.managed(),
        "receipts": room.receipts(),
    })
}

/// A room the server API may manage: not a conversation.
async fn room_of(state: &AppState, name: &str) -> Result<Arc<Room>, ApiError> {
    let room = state.rooms.get(name).await?.filter(|r| !r.dm);
    room.ok_or_else(|| ApiError::not_found("no such room"))
}

async fn user_named(state: &AppState, username: &str) -> Result<UserRecord, ApiError> {
    let user = state.backend.users.user_by_name(username).await?;
    user.ok_or_else(|| ApiError::not_found(format!("no user named {username}")))
}

/// Every gateway re-reads the room and re-checks its connections in it.
async fn announce(state: &AppState, announcement: Announcement) {
    if let Err(e) = state.backend.announcer.announce(announcement).await {
        // Gateways re-read every room each AURORA_ROOM_REFRESH anyway.
        tracing::warn!(error = %e, "server API change not announced");
    }
}

/// `POST /api/server/rooms {name, title?, visibility?, members?, receipts?}` → 201, the room.
pub async fn create_room(
    State(state): State<Arc<AppState>>,
    key: ServerKey,
    JsonBody(body): JsonBody<NewRoom>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    key.require(Scope::Rooms)?;
    validate::room_name(&body.name).map_err(ApiError::bad_request)?;
    if body.name.starts_with(DM_PREFIX) {
        return Err(ApiError::bad_request("room names starting with dm- are kept for conversations"));
    }
    if body.title.as_ref().is_some_and(|t| t.chars().count() > validate::MAX_TITLE_CHARS) {
        return Err(ApiError::bad_request("title must be at most 200 characters"));
    }
    if body.visibility == Visibility::Public && !body.members.is_empty() {
        return Err(ApiError::bad_request("`members` is for private rooms"));
    }
    if body.members.len() > MAX_MEMBERS {
        return Err(ApiError::bad_request(format!("at most {MAX_MEMBERS} members at creation; add more one by one")));
    }
    let mut room = Room::new_api(&body.name, body.title.as_deref().map(str::trim));
    room.visibility = body.visibility;
    room.members = body.members.iter().map(|m| m.to_lowercase()).collect();
    room.members.sort();
    room.members.dedup();
    room.read_receipts = body.receipts;
    match state.backend.rooms.create_room(room.clone()).await {
        Ok(()) => {}
        Err(PortError::Conflict) => return Err(ApiError::conflict("room exists")),
        Err(e) => return Err(e.into()),
    }
    state.rooms.remember(room.clone());
    announce(&state, Announcement::Room(Announced { op: RoomOp::Created, room: room.name.clone() })).await;
    key.done(&state, "create_room", Some(format!("create room {}", room.name))).await;
    Ok((StatusCode::CREATED, Json(room_json(&room))))
}

/// `GET /api/server/rooms/{name}` → the room.
pub async fn room(
    State(state): State<Arc<AppState>>,
    key: ServerKey,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    key.require(Scope::Read)?;
    let room = room_of(&state, &name).await?;
    let mut v = room_json(&room);
    v["online"] = json!(state.backend.presence.online(&name).await?);
    key.done(&state, "room", None).await;
    Ok(Json(v))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomEdit {
    title: Option<String>,
    visibility: Option<Visibility>,
}

/// A room the API may change or delete: not a ChatRoom's (the operator's), not a default room.
fn changeable(state: &AppState, room: &Room) -> Result<(), ApiError> {
    if room.managed() {
        return Err(ApiError::conflict("this room is a ChatRoom resource's: change it with kubectl"));
    }
    if state.config.default_rooms.contains(&room.name) {
        return Err(ApiError::conflict("a default room (AURORA_DEFAULT_ROOMS) stays as configured"));
    }
    Ok(())
}

/// `PATCH /api/server/rooms/{name} {title?, visibility?}` → the room. Made private, only
/// its `members` stay in it: others' connections get `left` within a second.
pub async fn update_room(
    State(state): State<Arc<AppState>>,
    key: ServerKey,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<RoomEdit>,
) -> Result<Json<Value>, ApiError> {
    key.require(Scope::Rooms)?;
    let room = room_of(&state, &name).await?;
    changeable(&state, &room)?;
    let title = body.title.as_deref().map(str::trim);
    if title.is_some_and(|t| t.is_empty() || t.chars().count() > validate::MAX_TITLE_CHARS) {
        return Err(ApiError::bad_request("title must be 1-200 characters"));
    }
    if title.is_none() && body.visibility.is_none() {
        return Err(ApiError::bad_request("nothing to change: give title or visibility"));
    }
    if !state.backend.rooms.update_room(&name, title, body.visibility).await? {
        return Err(ApiError::not_found("no such room"));
    }
    announce(&state, Announcement::Room(Announced { op: RoomOp::Updated, room: name.clone() })).await;
    state.rooms.reload(&name).await?;
    let room = room_of(&state, &name).await?;
    key.done(&state, "update_room", Some(format!("update room {name}"))).await;
    Ok(Json(room_json(&room)))
}

/// `DELETE /api/server/rooms/{name}` → 204: the room and its messages are gone; members'
/// connections get `left {reason: "deleted"}` within a second.
pub async fn delete_room(
    State(state): State<Arc<AppState>>,
    key: ServerKey,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    key.require(Scope::Rooms)?;
    let room = room_of(&state, &name).await?;
    changeable(&state, &room)?;
    if !state.backend.rooms.drop_room(&name).await? {
        return Err(ApiError::not_found("no such room"));
    }
    announce(&state, Announcement::Room(Announced { op: RoomOp::Deleted, room: name.clone() })).await;
    key.done(&state, "delete_room", Some(format!("delete room {name}"))).await;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/server/rooms/{name}/messages?before=SEQ&limit=N`: history, as members read it.
pub async fn history(
    State(state): State<Arc<AppState>>,
    key: ServerKey,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    key.require(Scope::Read)?;
    room_of(&state, &name).await?;
    let number = |k: &str| -> Result<Option<u64>, ApiError> {
        q.get(k)
            .map(|v| v.parse::<u64>().map_err(|_| ApiError::bad_request(format!("`{k}` must be a number"))))
            .transpose()
    };
    let before = number("before")?;
    let limit = number("limit")?.map_or(50, |l| l.clamp(1, 200) as usize);
    let mut messages = state.backend.messages.before(&name, before, limit).await?;
    aurora_core::events::hydrate(state.backend.messages.as_ref(), &mut messages).await?;
    key.done(&state, "history", None).await;
    Ok(Json(json!({ "messages": messages })))
}

/// Adds or removes a member of a private room; every gateway applies it within a second
/// (a removed member's connections get `left`, reason `removed`).
async fn membership(
    state: &AppState,
    key: &ServerKey,
    name: &str,
    username: &str,
    add: bool,
) -> Result<bool, ApiError> {
    key.require(Scope::Rooms)?;
    let room = room_of(state, name).await?;
    if room.visibility != Visibility::Private {
        return Err(ApiError::conflict("a public room has no member list"));
    }
    if room.managed() {
        return Err(ApiError::conflict("this room's members are its ChatRoom's spec.members"));
    }
    let user = user_named(state, username).await?;
    let rooms = &state.backend.rooms;
    let changed =
        if add { rooms.add_member(name, &user.name).await? } else { rooms.remove_member(name, &user.name).await? };
    if changed {
        announce(state, Announcement::Room(Announced { op: RoomOp::Updated, room: name.to_owned() })).await;
        announce(state, Announcement::User(UserChange::new(UserOp::Rooms, user.id.clone()))).await;
    }
    let verb = if add { "add" } else { "remove" };
    key.done(state, if add { "add_member" } else { "remove_member" }, Some(format!("{verb} {} in {name}", user.name)))
        .await;
    Ok(changed)
}

/// `PUT /api/server/rooms/{name}/members/{username}` → 201 added, 200 a member already.
pub async fn add_member(
    State(state): State<Arc<AppState>>,
    key: ServerKey,
    Path((name, username)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let added = membership(&state, &key, &name, &username, true).await?;
    Ok(if added { StatusCode::CREATED } else { StatusCode::OK })
}

/// `DELETE /api/server/rooms/{name}/members/{username}` → 204; 404 when not a member.
pub async fn remove_member(
    State(state): State<Arc<AppState>>,
    key: ServerKey,
    Path((name, username)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if membership(&state, &key, &name, &username, false).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("{username} is not a member")))
    }
}

/// `GET /api/server/rooms/{name}/presence` → `{room, online, members:[{id,name}]}`.
pub async fn presence(
    State(state): State<Arc<AppState>>,
    key: ServerKey,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    key.require(Scope::Read)?;
    room_of(&state, &name).await?;
    let members = state.backend.presence.members(&name).await?;
    key.done(&state, "presence", None).await;
    Ok(Json(json!({"room": name, "online": members.len(), "members": members})))
}

/// `POST /api/server/users/{username}/disconnect` → 204: every connection of the user, on
/// every gateway, closes with 4003 within a second. They may connect again.
pub async fn disconnect(
    State(state): State<Arc<AppState>>,
    key: ServerKey,
    Path(username): Path<String>,
) -> Result<StatusCode, ApiError> {
    key.require(Scope::Users)?;
    let user = user_named(&state, &username).await?;
    let change = UserChange::new(UserOp::Disconnect, user.id.clone());
    state.backend.announcer.announce(Announcement::User(change)).await?;
    key.done(&state, "disconnect", Some(format!("disconnect {}", user.name))).await;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/server/users/{username}/deactivate` → 204: the user cannot log in, refresh a
/// session, call the API or connect (403 "this account is deactivated"), and every
/// connection of theirs closes with 4003 within a second. `…/reactivate` undoes it.
pub async fn deactivate(
    State(state): State<Arc<AppState>>,
    key: ServerKey,
    Path(username): Path<String>,
) -> Result<StatusCode, ApiError> {
    set_deactivated(&state, &key, &username, true).await
}

/// `POST /api/server/users/{username}/reactivate` → 204.
pub async fn reactivate(
    State(state): State<Arc<AppState>>,
    key: ServerKey,
    Path(username): Path<String>,
) -> Result<StatusCode, ApiError> {
    set_deactivated(&state, &key, &username, false).await
}

async fn set_deactivated(
    state: &AppState,
    key: &ServerKey,
    username: &str,
    deactivated: bool,
) -> Result<StatusCode, ApiError> {
    key.require(Scope::Users)?;
    let user = user_named(state, username).await?;
    if !state.backend.users.set_deactivated(&user.id, deactivated).await? && deactivated {
        return Err(ApiError::not_found(format!("no user named {username}")));
    }
    let op = if deactivated { "deactivate" } else { "reactivate" };
    if deactivated {
        let change = UserChange::new(UserOp::Disconnect, user.id.clone());
        state.backend.announcer.announce(Announcement::User(change)).await?;
    }
    key.done(state, op, Some(format!("{op} {}", user.name))).await;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/server/audit?limit=N`: the server API's calls that changed something, newest
/// first (default 100, at most 500).
pub async fn audit(
    State(state): State<Arc<AppState>>,
    key: ServerKey,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    key.require(Scope::Read)?;
    let limit = match q.get("limit") {
        Some(l) => l.parse::<usize>().map_err(|_| ApiError::bad_request("`limit` must be 1-500"))?.clamp(1, 500),
        None => 100,
    };
    let entries = state.backend.audit.audit(AUDIT_ROOM, limit).await?;
    key.done(&state, "audit", None).await;
    Ok(Json(json!({ "entries": entries })))
}
