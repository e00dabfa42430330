//! Room moderation over REST (docs/moderation.md): roles, kick, ban, mute, slow mode,
//! freeze and the audit log. Every change is stored over the revision it was made from,
//! announced so every gateway applies it within a second, audited and counted, and put on
//! the room's stream as a `moderation` record (members see "alice muted bob").

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

use aurora_core::audit::{Action, AuditRecord};
use aurora_core::auth::Claims;
use aurora_core::control::{Announcement, RoomChange, RoomOp, UserChange, UserOp};
use aurora_core::model::{new_message_id, Kind, Room, Submission, UserRecord, UserRef};
use aurora_core::moderation::{Moderation, Role, Sanction};

use super::error::{ApiError, AuthUser, JsonBody};
use crate::state::AppState;

/// Longest ban or mute one can give (a year); none: until lifted.
const MAX_DURATION_S: u64 = 365 * 24 * 3600;
const MAX_REASON_CHARS: usize = 500;

/// Who acts: a member with a role in the room, or the platform's backend (a server API key
/// with the `moderate` scope), which may do what the room's owner may, to anyone.
pub struct Actor {
    pub id: String,
    pub name: String,
    pub platform: bool,
}

impl From<&Claims> for Actor {
    fn from(c: &Claims) -> Self {
        Actor { id: c.sub.clone(), name: c.name.clone(), platform: false }
    }
}

impl Actor {
    fn role(&self, room: &Room) -> Role {
        if self.platform {
            Role::Owner
        } else {
            room.role(&self.id, &self.name)
        }
    }
}

/// The room, if the caller holds at least `needed` in it.
async fn room_for(state: &AppState, claims: &Actor, name: &str, needed: Role) -> Result<Room, ApiError> {
    let room =
        state.backend.rooms.room(name).await?.filter(|r| !r.dm).ok_or_else(|| ApiError::not_found("no such room"))?;
    let role = claims.role(&room);
    if role < needed {
        let who = if needed == Role::Owner { "the room's owner" } else { "moderators" };
        return Err(ApiError::forbidden(format!("only {who} can do that")));
    }
    Ok(room)
}

/// The user an action is about: not the caller, not the owner (unless the owner acts).
async fn subject(state: &AppState, claims: &Actor, room: &Room, username: &str) -> Result<UserRecord, ApiError> {
    let user = state.backend.users.user_by_name(username).await?;
    let user = user.ok_or_else(|| ApiError::not_found(format!("no user named {username}")))?;
    if user.id == claims.id {
        return Err(ApiError::bad_request("you cannot act on yourself"));
    }
    if room.role(&user.id, &user.name) == Role::Owner && !claims.platform {
        return Err(ApiError::forbidden("moderators cannot act on the room's owner"));
    }
    Ok(user)
}

/// Applies `change` to the room's moderation, again over a newer revision when another
/// moderator changed it meanwhile; then every gateway re-reads the room.
async fn update(state: &AppState, name: &str, change: impl Fn(&mut Moderation)) -> Result<(), ApiError> {
    for _ in 0..10 {
        let room = state.backend.rooms.room(name).await?.ok_or_else(|| ApiError::not_found("no such room"))?;
        let mut moderation = room.moderation.clone();
        moderation.prune(aurora_core::now_ms());
        change(&mut moderation);
        if state.backend.rooms.set_moderation(name, &moderation, room.moderation.rev).await? {
            let announcement = Announcement::Room(RoomChange { op: RoomOp::Updated, room: name.to_owned() });
            if let Err(e) = state.backend.announcer.announce(announcement).await {
                // Gateways re-read every room each AURORA_ROOM_REFRESH anyway.
                tracing::warn!(room = name, error = %e, "moderation change not announced");
            }
            return Ok(());
        }
    }
    Err(ApiError::conflict("the room's moderation kept changing; try again"))
}

/// Records the action in the audit log and the metrics.
async fn audit_entry(
    state: &AppState,
    actor: &str,
    room: &str,
    action: Action,
    f: impl FnOnce(&mut AuditRecord),
) -> AuditRecord {
    let mut entry = AuditRecord {
        id: new_message_id(),
        room: room.to_owned(),
        at: aurora_core::now_ms(),
        actor: actor.to_owned(),
        action,
        target: None,
        reason: None,
        until: None,
        interval_ms: None,
    };
    f(&mut entry);
    state.metrics.moderation_actions.with_label_values(&[action.as_str()]).inc();
    tracing::info!(room, actor, action = action.as_str(), target = ?entry.target, "moderation");
    if let Err(e) = state.backend.audit.record(entry.clone()).await {
        tracing::warn!(room, error = %e, "audit entry not stored");
    }
    entry
}

/// [`audit_entry`], and the action as a `moderation` record on the room's stream: every
/// member gets it, and it stays in the room's history. Answers once that record is durable.
async fn audited(
    state: &AppState,
    claims: &Actor,
    room: &Room,
    action: Action,
    f: impl FnOnce(&mut AuditRecord),
) -> Result<(), ApiError> {
    let entry = audit_entry(state, &claims.name, &room.name, action, f).await;
    let actor = UserRef { id: claims.id.as_str().into(), name: claims.name.as_str().into() };
    let mut record = Submission::message(new_message_id(), room.name.clone(), actor, String::new(), None);
    record.kind = Kind::Moderation;
    record.notice = Some(entry.notice());
    record.managed = room.managed();
    state.backend.log.append(record).await?;
    Ok(())
}

fn reason(r: Option<String>) -> Result<Option<String>, ApiError> {
    match r.map(|r| r.trim().to_owned()).filter(|r| !r.is_empty()) {
        Some(r) if r.chars().count() > MAX_REASON_CHARS => {
            Err(ApiError::bad_request("reason must be at most 500 characters"))
        }
        other => Ok(other),
    }
}

#[derive(Deserialize)]
pub struct Target {
    pub username: String,
    /// How long a ban or mute lasts; none: until lifted.
    duration_s: Option<u64>,
    reason: Option<String>,
}

/// `GET /api/rooms/{name}/moderation`: owner, moderators, sanctions in force, settings.
pub async fn show(
    State(state): State<Arc<AppState>>,
    AuthUser(claims): AuthUser,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let room = room_for(&state, &Actor::from(&claims), &name, Role::Moderator).await?;
    let owner = match (&room.created_by, room.managed()) {
        (Some(id), false) => state.backend.users.user_by_id(id).await?.map(|u| u.name),
        _ => None,
    };
    let mut m = room.moderation.clone();
    m.prune(aurora_core::now_ms());
    let mut moderators: Vec<&String> = room.moderators.iter().chain(&m.moderators).collect();
    moderators.sort();
    moderators.dedup();
    Ok(Json(json!({
        "room": name,
        "owner": owner,
        "moderators": moderators,
        "bans": m.bans,
        "mutes": m.mutes,
        "slow_mode_ms": m.slow_mode_ms.unwrap_or(0),
        "frozen": m.frozen,
        "receipts": room.receipts(),
    })))
}

#[derive(Deserialize)]
pub struct Grantee {
    username: String,
}

/// `POST /api/rooms/{name}/moderators {username}`: the owner makes a member a moderator.
pub async fn grant(
    State(state): State<Arc<AppState>>,
    AuthUser(claims): AuthUser,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<Grantee>,
) -> Result<StatusCode, ApiError> {
    let room = room_for(&state, &Actor::from(&claims), &name, Role::Owner).await?;
    let user = subject(&state, &Actor::from(&claims), &room, &body.username).await?;
    let lower = user.name.to_lowercase();
    update(&state, &name, |m| {
        if !m.moderators.contains(&lower) {
            m.moderators.push(lower.clone());
        }
    })
    .await?;
    audited(&state, &Actor::from(&claims), &room, Action::Grant, |e| e.target = Some(user.name.clone())).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/rooms/{name}/moderators/{username}`.
pub async fn revoke(
    State(state): State<Arc<AppState>>,
    AuthUser(claims): AuthUser,
    Path((name, username)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let room = room_for(&state, &Actor::from(&claims), &name, Role::Owner).await?;
    let user = subject(&state, &Actor::from(&claims), &room, &username).await?;
    let lower = user.name.to_lowercase();
    update(&state, &name, |m| m.moderators.retain(|u| *u != lower)).await?;
    audited(&state, &Actor::from(&claims), &room, Action::Revoke, |e| e.target = Some(user.name.clone())).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Bans or mutes (`action`) a user, replacing an earlier one.
pub async fn sanction(
    state: &AppState,
    claims: &Actor,
    name: &str,
    body: Target,
    action: Action,
) -> Result<StatusCode, ApiError> {
    let room = room_for(state, claims, name, Role::Moderator).await?;
    let user = subject(state, claims, &room, &body.username).await?;
    if room.role(&user.id, &user.name) == Role::Moderator && claims.role(&room) != Role::Owner {
        return Err(ApiError::forbidden("only the owner can act on a moderator"));
    }
    let duration = body.duration_s.map(|s| s.clamp(1, MAX_DURATION_S));
    let now = aurora_core::now_ms();
    let s = Sanction {
        user: user.name.to_lowercase(),
        until: duration.map(|d| now + (d as i64) * 1000),
        by: claims.name.clone(),
        at: now,
        reason: reason(body.reason)?,
    };
    let lower = s.user.clone();
    update(state, name, |m| {
        let list = if action == Action::Ban { &mut m.bans } else { &mut m.mutes };
        list.retain(|x| x.user != lower);
        list.push(s.clone());
    })
    .await?;
    audited(state, claims, &room, action, |e| {
        e.target = Some(user.name.clone());
        e.until = s.until;
        e.reason = s.reason.clone();
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lifts a ban or mute.
pub async fn lift(
    state: &AppState,
    claims: &Actor,
    name: &str,
    username: &str,
    action: Action,
) -> Result<StatusCode, ApiError> {
    let room = room_for(state, claims, name, Role::Moderator).await?;
    let user = subject(state, claims, &room, username).await?;
    let lower = user.name.to_lowercase();
    update(state, name, |m| {
        let list = if action == Action::Unban { &mut m.bans } else { &mut m.mutes };
        list.retain(|x| x.user != lower);
    })
    .await?;
    audited(state, claims, &room, action, |e| e.target = Some(user.name.clone())).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/rooms/{name}/bans {username, duration_s?, reason?}`: the user cannot join,
/// send or read history; their connections leave the room (`left`, reason `banned`).
pub async fn ban(
    State(state): State<Arc<AppState>>,
    AuthUser(claims): AuthUser,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<Target>,
) -> Result<StatusCode, ApiError> {
    sanction(&state, &Actor::from(&claims), &name, body, Action::Ban).await
}

/// `DELETE /api/rooms/{name}/bans/{username}`.
pub async fn unban(
    State(state): State<Arc<AppState>>,
    AuthUser(claims): AuthUser,
    Path((name, username)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    lift(&state, &Actor::from(&claims), &name, &username, Action::Unban).await
}

/// `POST /api/rooms/{name}/mutes {username, duration_s?, reason?}`: the user reads but
/// cannot send (`forbidden`, with `retry_after_ms` until it ends).
pub async fn mute(
    State(state): State<Arc<AppState>>,
    AuthUser(claims): AuthUser,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<Target>,
) -> Result<StatusCode, ApiError> {
    sanction(&state, &Actor::from(&claims), &name, body, Action::Mute).await
}

/// `DELETE /api/rooms/{name}/mutes/{username}`.
pub async fn unmute(
    State(state): State<Arc<AppState>>,
    AuthUser(claims): AuthUser,
    Path((name, username)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    lift(&state, &Actor::from(&claims), &name, &username, Action::Unmute).await
}

/// `POST /api/rooms/{name}/kick {username, reason?}`: the user's connections leave the room
/// now, on every gateway (`left`, reason `kicked`); they may join again.
pub async fn kick(
    State(state): State<Arc<AppState>>,
    AuthUser(claims): AuthUser,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<Target>,
) -> Result<StatusCode, ApiError> {
    kick_from(&state, &Actor::from(&claims), &name, body).await
}

pub async fn kick_from(state: &AppState, actor: &Actor, name: &str, body: Target) -> Result<StatusCode, ApiError> {
    let room = room_for(state, actor, name, Role::Moderator).await?;
    let user = subject(state, actor, &room, &body.username).await?;
    let why = reason(body.reason)?;
    let change = UserChange { room: Some(name.to_owned()), ..UserChange::new(UserOp::Kick, user.id.clone()) };
    state.backend.announcer.announce(Announcement::User(change)).await?;
    audited(state, actor, &room, Action::Kick, |e| {
        e.target = Some(user.name.clone());
        e.reason = why;
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct Settings {
    /// Least time between two messages of one member; 0 turns slow mode off.
    slow_mode_ms: Option<u64>,
    frozen: Option<bool>,
    /// Read receipts on or off (API rooms).
    receipts: Option<bool>,
}

/// `PUT /api/rooms/{name}/settings {slow_mode_ms?, frozen?, receipts?}`.
pub async fn settings(
    State(state): State<Arc<AppState>>,
    AuthUser(claims): AuthUser,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<Settings>,
) -> Result<StatusCode, ApiError> {
    apply_settings(&state, &Actor::from(&claims), &name, body).await
}

pub async fn apply_settings(
    state: &AppState,
    claims: &Actor,
    name: &str,
    body: Settings,
) -> Result<StatusCode, ApiError> {
    let room = room_for(state, claims, name, Role::Moderator).await?;
    if body.slow_mode_ms.is_some_and(|ms| ms > 3_600_000) {
        return Err(ApiError::bad_request("slow_mode_ms must be at most 3600000 (an hour)"));
    }
    if body.slow_mode_ms.is_none() && body.frozen.is_none() && body.receipts.is_none() {
        return Err(ApiError::bad_request("nothing to change: give slow_mode_ms, frozen or receipts"));
    }
    if body.receipts.is_some() && room.managed() {
        return Err(ApiError::conflict("this room's read receipts are its ChatRoom's spec.readReceipts"));
    }
    update(state, name, |m| {
        if let Some(ms) = body.slow_mode_ms {
            m.slow_mode_ms = (ms > 0).then_some(ms);
        }
        if let Some(frozen) = body.frozen {
            m.frozen = frozen;
        }
        if body.receipts.is_some() {
            m.receipts = body.receipts;
        }
    })
    .await?;
    if let Some(ms) = body.slow_mode_ms {
        audited(state, claims, &room, Action::SlowMode, |e| e.interval_ms = Some(ms)).await?;
    }
    if let Some(frozen) = body.frozen {
        let action = if frozen { Action::Freeze } else { Action::Unfreeze };
        audited(state, claims, &room, action, |_| {}).await?;
    }
    if let Some(on) = body.receipts {
        let action = if on { Action::ReceiptsOn } else { Action::ReceiptsOff };
        audited(state, claims, &room, action, |_| {}).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/rooms/{name}/audit?limit=N`: the newest entries first (default 100, at most 500).
pub async fn audit(
    State(state): State<Arc<AppState>>,
    AuthUser(claims): AuthUser,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    room_for(&state, &Actor::from(&claims), &name, Role::Moderator).await?;
    let limit = match q.get("limit") {
        Some(l) => l.parse::<usize>().map_err(|_| ApiError::bad_request("`limit` must be 1-500"))?.clamp(1, 500),
        None => 100,
    };
    let entries = state.backend.audit.audit(&name, limit).await?;
    Ok(Json(json!({ "entries": entries })))
}

/// A moderator's delete of someone else's message, for the audit log (the delete itself is
/// an event on the room's stream, marked `moderator`).
pub async fn message_deleted(state: &AppState, actor: &str, room: &str, id: &str) {
    audit_entry(state, actor, room, Action::DeleteMessage, |e| e.target = Some(id.to_owned())).await;
}
