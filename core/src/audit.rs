//! The moderation audit log: who did what to whom in a room, when and why; readable by the
//! room's owner and moderators (`GET /api/rooms/{name}/audit`).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::ports::PortResult;

/// What a moderator did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    DeleteMessage,
    Kick,
    Ban,
    Unban,
    Mute,
    Unmute,
    SlowMode,
    Freeze,
    Unfreeze,
    Grant,
    Revoke,
    ReceiptsOn,
    ReceiptsOff,
    /// A call of the server API (docs/server-api.md): `actor` is `key:<name>`, `target`
    /// what it did. Not a moderator's action (not in [`Action::ALL`]).
    ServerCall,
}

impl Action {
    /// Moderators' actions.
    pub const ALL: [Action; 13] = [
        Action::DeleteMessage,
        Action::Kick,
        Action::Ban,
        Action::Unban,
        Action::Mute,
        Action::Unmute,
        Action::SlowMode,
        Action::Freeze,
        Action::Unfreeze,
        Action::Grant,
        Action::Revoke,
        Action::ReceiptsOn,
        Action::ReceiptsOff,
    ];

    /// The `action` label of `aurora_moderation_actions_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::DeleteMessage => "delete_message",
            Action::Kick => "kick",
            Action::Ban => "ban",
            Action::Unban => "unban",
            Action::Mute => "mute",
            Action::Unmute => "unmute",
            Action::SlowMode => "slow_mode",
            Action::Freeze => "freeze",
            Action::Unfreeze => "unfreeze",
            Action::Grant => "grant",
            Action::Revoke => "revoke",
            Action::ReceiptsOn => "receipts_on",
            Action::ReceiptsOff => "receipts_off",
            Action::ServerCall => "server_call",
        }
    }
}

/// One entry of a room's audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub id: String,
    pub room: String,
    /// Unix ms.
    pub at: i64,
    /// Who acted (username).
    pub actor: String,
    pub action: Action,
    /// Whom or what it was done to: a username, or a message id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When a ban or mute ends (unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
    /// Slow mode's interval (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u64>,
}

impl AuditRecord {
    /// The action as members see it on the room's stream.
    pub fn notice(&self) -> Notice {
        Notice {
            action: self.action,
            user: self.target.clone(),
            reason: self.reason.clone(),
            until: self.until,
            interval_ms: self.interval_ms,
        }
    }
}

/// A moderator's action as the room's members see it: the `notice` of a `moderation`
/// record on the room's stream (docs/moderation.md). The record's `user` is who acted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub action: Action,
    /// Whom it was done to (username); none for room settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When a ban or mute ends (unix ms); none: until lifted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
    /// Slow mode's interval (ms); 0 turns it off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u64>,
}

#[async_trait]
pub trait AuditLog: Send + Sync {
    async fn record(&self, entry: AuditRecord) -> PortResult<()>;
    /// The room's newest `limit` entries, newest first.
    async fn audit(&self, room: &str, limit: usize) -> PortResult<Vec<AuditRecord>>;
}
