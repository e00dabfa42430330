//! Announcements between processes, on one channel:
//! - room changes: the operator (a ChatRoom) or a gateway (a member left a conversation)
//!   announces that a room was created, updated or deleted; gateways re-read that room
//!   from the store;
//! - user notices: a gateway announces that something of one user changed (their room
//!   list); every gateway with a connection of that user tells it;
//! - key changes: the operator announces that `ChatApiKey` resources changed; gateways
//!   read the server API keys again.
//!
//! Announcements are hints, not the source of truth: a gateway also re-reads every room
//! after (re)connecting and periodically, so a missed room announcement heals, and a
//! client re-reads its room list on every (re)connect. Distributed mode carries them on
//! a Redis channel (`crate::distributed::control`); embedded mode in process
//! ([`LocalAnnouncer`]).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::ports::PortResult;

/// The Redis channel of announcements (docs/distributed.md).
pub const CONTROL_CHANNEL: &str = "aurora:control";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoomOp {
    Created,
    Updated,
    Deleted,
}

/// One room announcement: `{"op":"updated","room":"announcements"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomChange {
    pub op: RoomOp,
    pub room: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserOp {
    /// The rooms the user may see changed (a conversation opened, a member left one):
    /// their connections get `rooms_changed`.
    Rooms,
    /// The user's block list changed: gateways read it again.
    Blocks,
    /// The user's read pointer in `room` rose to `seq`: their connections get `read`.
    Read,
    /// A moderator kicked the user out of `room`: their connections leave it.
    Kick,
    /// The server API disconnected the user (or deactivated them): their connections close
    /// with 4003.
    Disconnect,
}

/// One user notice: `{"op":"rooms","user":"<user id>"}`,
/// `{"op":"read","user":"<user id>","room":"general","seq":42}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserChange {
    pub op: UserOp,
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

impl UserChange {
    pub fn new(op: UserOp, user: impl Into<String>) -> Self {
        UserChange { op, user: user.into(), room: None, seq: None }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeysOp {
    Keys,
}

/// `{"op":"keys"}`: the server API keys in the store changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeysChange {
    pub op: KeysOp,
}

/// Anything on the channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Announcement {
    Room(RoomChange),
    User(UserChange),
    Keys(KeysChange),
}

/// What a listener hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlSignal {
    /// Re-read this room.
    Room(RoomChange),
    /// Tell this user's connections.
    User(UserChange),
    /// Read the server API keys again.
    Keys,
    /// Announcements may have been missed (first connect, reconnect): re-read every room.
    Resync,
}

impl From<Announcement> for ControlSignal {
    fn from(a: Announcement) -> Self {
        match a {
            Announcement::Room(r) => ControlSignal::Room(r),
            Announcement::User(u) => ControlSignal::User(u),
            Announcement::Keys(_) => ControlSignal::Keys,
        }
    }
}

/// Where a gateway announces: every gateway (itself included) hears it.
#[async_trait]
pub trait Announcer: Send + Sync {
    async fn announce(&self, announcement: Announcement) -> PortResult<()>;
}

/// Embedded mode: the one gateway hears its own announcements.
pub struct LocalAnnouncer {
    tx: mpsc::Sender<ControlSignal>,
}

impl LocalAnnouncer {
    pub fn new() -> (Self, mpsc::Receiver<ControlSignal>) {
        let (tx, rx) = mpsc::channel(256);
        (LocalAnnouncer { tx }, rx)
    }
}

#[async_trait]
impl Announcer for LocalAnnouncer {
    async fn announce(&self, announcement: Announcement) -> PortResult<()> {
        // No listener (the gateway is stopping): nobody is left to tell.
        let _ = self.tx.send(announcement.into()).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_have_a_stable_wire_form() {
        let room = Announcement::Room(RoomChange { op: RoomOp::Deleted, room: "ops".into() });
        let text = serde_json::to_string(&room).unwrap();
        assert_eq!(text, r#"{"op":"deleted","room":"ops"}"#);
        assert_eq!(serde_json::from_str::<Announcement>(&text).unwrap(), room);
        let user = Announcement::User(UserChange::new(UserOp::Rooms, "u1"));
        let text = serde_json::to_string(&user).unwrap();
        assert_eq!(text, r#"{"op":"rooms","user":"u1"}"#);
        assert_eq!(serde_json::from_str::<Announcement>(&text).unwrap(), user);
        let read = Announcement::User(UserChange {
            room: Some("g".into()),
            seq: Some(4),
            ..UserChange::new(UserOp::Read, "u1")
        });
        let text = serde_json::to_string(&read).unwrap();
        assert_eq!(text, r#"{"op":"read","user":"u1","room":"g","seq":4}"#);
        assert_eq!(serde_json::from_str::<Announcement>(&text).unwrap(), read);
        // An operator of this version still speaks the room form only.
        assert!(serde_json::from_str::<Announcement>(r#"{"op":"rooms","room":"x"}"#).is_err());
        let keys = Announcement::Keys(KeysChange { op: KeysOp::Keys });
        let text = serde_json::to_string(&keys).unwrap();
        assert_eq!(text, r#"{"op":"keys"}"#);
        assert_eq!(serde_json::from_str::<Announcement>(&text).unwrap(), keys);
        assert!(serde_json::from_str::<Announcement>(r#"{"op":"updated"}"#).is_err(), "a room change names its room");
    }
}
