//! Publishing as the key's bot: the same record as a member's send (acked once durable,
//! one order per room, `seq` from the fan-out tier, stored once per `nonce`, also after a
//! restart or on another gateway).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

use aurora_core::apikeys::Scope;
use aurora_core::events::Refusal;
use aurora_core::model::{new_message_id, Submission, UserRef};
use aurora_core::ports::Claim;
use aurora_core::validate::MAX_NONCE_CHARS;

use super::ServerKey;
use crate::http::error::{ApiError, JsonBody};
use crate::state::AppState;

/// Most messages in one batch call.
pub const MAX_BATCH: usize = 100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Post {
    body: String,
    /// Makes a retry safe: the same nonce from the same key in the same room within five
    /// minutes is stored once.
    nonce: Option<String>,
    /// The id of the message this one replies to.
    reply_to: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    room: String,
    body: String,
    nonce: Option<String>,
    reply_to: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    messages: Vec<Item>,
}

/// `POST /api/server/rooms/{name}/messages {body, nonce?, reply_to?}` → 201 `{id, room,
/// nonce?, duplicate}` once the message is durable.
pub async fn one(
    State(state): State<Arc<AppState>>,
    key: ServerKey,
    Path(room): Path<String>,
    JsonBody(post): JsonBody<Post>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    key.require(Scope::Publish)?;
    let answer = publish(&state, &key, room, post).await?;
    key.done(&state, "publish", None).await;
    Ok((StatusCode::CREATED, Json(answer)))
}

/// `POST /api/server/messages {messages:[{room, body, nonce?, reply_to?}]}` → 200
/// `{results:[…]}`, one per message in order: what [`one`] answers, or `{error}`. Messages
/// to one room keep their order.
pub async fn batch(
    State(state): State<Arc<AppState>>,
    key: ServerKey,
    JsonBody(batch): JsonBody<Batch>,
) -> Result<Json<Value>, ApiError> {
    key.require(Scope::Publish)?;
    if batch.messages.is_empty() || batch.messages.len() > MAX_BATCH {
        return Err(ApiError::bad_request(format!("`messages` holds 1-{MAX_BATCH} messages")));
    }
    let mut results = Vec::with_capacity(batch.messages.len());
    for item in batch.messages {
        let post = Post { body: item.body, nonce: item.nonce, reply_to: item.reply_to };
        results.push(match publish(&state, &key, item.room, post).await {
            Ok(v) => v,
            Err(e) => json!({"error": {"code": e.code, "message": e.message}}),
        });
    }
    key.done(&state, "publish_batch", None).await;
    Ok(Json(json!({ "results": results })))
}

async fn publish(state: &AppState, key: &ServerKey, room: String, post: Post) -> Result<Value, ApiError> {
    let config = state.rooms.get(&room).await?.ok_or_else(|| ApiError::not_found("no such room"))?;
    if config.dm {
        return Err(ApiError::forbidden("conversations are their members' own"));
    }
    if post.body.trim().is_empty() {
        return Err(ApiError::bad_request("`body` must not be empty"));
    }
    let max = config.max_message_bytes.unwrap_or(state.config.max_message_bytes);
    if post.body.len() > max {
        return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", format!("`body` is over {max} bytes")));
    }
    if post.nonce.as_ref().is_some_and(|n| n.is_empty() || n.chars().count() > MAX_NONCE_CHARS) {
        return Err(ApiError::bad_request("`nonce` must be 1-64 characters"));
    }
    let bot = UserRef { id: key.0.bot_id().into(), name: key.0.bot.as_str().into() };
    let mut sub = Submission::message(new_message_id(), room.clone(), bot, post.body, post.nonce.clone());
    sub.managed = config.managed();
    sub.reply_to = post.reply_to;
    if sub.reply_to.is_some() {
        let window = state.config.edit_window;
        match crate::ws::check_target(state.backend.messages.as_ref(), &sub, window).await {
            Ok(_) => {}
            Err(Ok(Refusal::NoSuchMessage | Refusal::Deleted)) => {
                return Err(ApiError::not_found("`reply_to` is no message of this room"))
            }
            Err(Ok(refusal)) => return Err(ApiError::bad_request(refusal.to_string())),
            Err(Err(e)) => return Err(e.into()),
        }
    }
    let answer =
        |id: &str, duplicate: bool| json!({"id": id, "room": room, "nonce": post.nonce, "duplicate": duplicate});
    if let Some(nonce) = &post.nonce {
        match state.backend.nonces.claim(&sub.user.id, &room, nonce, &sub.id).await? {
            Claim::New => {}
            Claim::Stored(first) => return Ok(answer(&first, true)),
            // The first attempt may not have reached the log: append again under its id;
            // the fan-out tier stores an id once.
            Claim::Existing(first) => {
                sub.id = first;
                sub.retry = true;
            }
        }
    }
    let (id, retry) = (sub.id.clone(), sub.retry);
    // A failed append keeps the nonce claim: the retry re-appends under the same id.
    state.backend.log.append(sub).await?;
    state.metrics.messages_accepted.inc();
    Ok(answer(&id, retry))
}
