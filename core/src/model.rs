//! Domain types shared by every component.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

use crate::ratelimit::RateLimit;

/// A user as other users see it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UserRef {
    pub id: Arc<str>,
    pub name: Arc<str>,
}

/// A stored account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: String,
    pub name: String,
    pub password_hash: String,
    pub created_at: i64,
}

impl UserRecord {
    pub fn user_ref(&self) -> UserRef {
        UserRef { id: self.id.as_str().into(), name: self.name.as_str().into() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    #[default]
    Public,
    Private,
}

/// Where a room came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoomSource {
    /// Created through `POST /api/rooms` or a default room.
    #[default]
    Api,
    /// Reconciled from a ChatRoom custom resource.
    Operator,
}

/// A room and its configuration; `None` overrides fall back to the global config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Room {
    pub name: String,
    pub title: String,
    #[serde(default)]
    pub source: RoomSource,
    #[serde(default)]
    pub visibility: Visibility,
    /// Lower-cased usernames allowed in a private room.
    #[serde(default)]
    pub members: Vec<String>,
    #[serde(default)]
    pub history_size: Option<usize>,
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    #[serde(default)]
    pub max_message_bytes: Option<usize>,
    #[serde(default)]
    pub created_at: i64,
    /// The id of the user who created it through the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// The ChatRoom that manages the room (`namespace/name`), for operator rooms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

impl Room {
    pub fn new_api(name: &str, title: Option<&str>) -> Self {
        Room {
            name: name.to_owned(),
            title: title.filter(|t| !t.trim().is_empty()).unwrap_or(name).to_owned(),
            source: RoomSource::Api,
            visibility: Visibility::Public,
            members: Vec::new(),
            history_size: None,
            rate_limit: None,
            max_message_bytes: None,
            created_at: crate::now_ms(),
            created_by: None,
            owner: None,
        }
    }

    pub fn managed(&self) -> bool {
        self.source == RoomSource::Operator
    }

    /// Whether `username` may join.
    pub fn admits(&self, username: &str) -> bool {
        match self.visibility {
            Visibility::Public => true,
            Visibility::Private => {
                let lower = username.to_lowercase();
                self.members.iter().any(|m| m.to_lowercase() == lower)
            }
        }
    }
}

/// A message accepted by a gateway, before the fan-out tier gives it a `seq`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Submission {
    pub id: String,
    pub room: String,
    pub user: UserRef,
    pub body: String,
    pub ts: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The room is managed by a ChatRoom resource: the log routes it to the room's own topic.
    #[serde(skip)]
    pub managed: bool,
    /// A re-send under the id of an earlier attempt (same nonce): the fan-out tier checks
    /// whether that id is stored before giving it a `seq`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retry: bool,
}

/// A stored message with its place in the room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: String,
    pub room: String,
    pub seq: u64,
    pub user: UserRef,
    pub body: String,
    pub ts: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

impl Message {
    pub fn from_submission(s: Submission, seq: u64) -> Self {
        Message { id: s.id, room: s.room, seq, user: s.user, body: s.body, ts: s.ts, nonce: s.nonce }
    }
}

/// A new, time-ordered message id.
pub fn new_message_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}
