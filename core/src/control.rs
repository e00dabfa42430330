//! Room configuration announcements: the operator announces that a room was created,
//! updated or deleted; gateways re-read that room from the store. Announcements are
//! hints, not the source of truth: a gateway also re-reads every room after
//! (re)connecting and periodically, so a missed announcement heals. Distributed mode
//! carries them on a Redis channel (`crate::distributed::control`).

use serde::{Deserialize, Serialize};

/// The Redis channel of announcements (docs/distributed.md).
pub const CONTROL_CHANNEL: &str = "aurora:control";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoomOp {
    Created,
    Updated,
    Deleted,
}

/// One announcement: `{"op":"updated","room":"announcements"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomChange {
    pub op: RoomOp,
    pub room: String,
}

/// What a listener hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlSignal {
    /// Re-read this room.
    Room(RoomChange),
    /// Announcements may have been missed (first connect, reconnect): re-read every room.
    Resync,
}
