//! Roles and sanctions in a room (docs/moderation.md). The owner is the creator of an API
//! room (ChatRoom rooms have none); moderators are named by a ChatRoom's `spec.moderators`
//! or granted by the owner. Sanctions and settings live in the room's [`Moderation`], which
//! only the API changes (the operator keeps it as it is), so every gateway applies them
//! from its room cache, refreshed by an announcement within a second.

use serde::{Deserialize, Serialize};

use crate::model::Room;

/// What a user may do in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Member,
    Moderator,
    Owner,
}

impl Role {
    /// As `GET /api/rooms` names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Moderator => "moderator",
            Role::Owner => "owner",
        }
    }
}

/// A ban or a mute of one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sanction {
    /// The lower-cased username.
    pub user: String,
    /// When it ends (unix ms); `None`: until lifted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
    /// Who imposed it (username).
    pub by: String,
    pub at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Sanction {
    pub fn active(&self, now_ms: i64) -> bool {
        self.until.is_none_or(|u| u > now_ms)
    }
}

/// A room's moderators granted through the API, its sanctions and settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Moderation {
    /// Grows with every change; a change is stored only over the revision it was made from.
    #[serde(default)]
    pub rev: u64,
    /// Lower-cased usernames the owner made moderators.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub moderators: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bans: Vec<Sanction>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mutes: Vec<Sanction>,
    /// Least time between two messages of one user (moderators are exempt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_mode_ms: Option<u64>,
    /// Read-only for everyone but moderators.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub frozen: bool,
    /// Read receipts turned on or off by the room's moderators (API rooms; a ChatRoom's are
    /// its `spec.readReceipts`); none: as the room was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipts: Option<bool>,
}

impl Moderation {
    pub fn is_empty(&self) -> bool {
        *self == Moderation::default()
    }

    /// Drops sanctions that have ended.
    pub fn prune(&mut self, now_ms: i64) {
        self.bans.retain(|s| s.active(now_ms));
        self.mutes.retain(|s| s.active(now_ms));
    }
}

fn find<'a>(list: &'a [Sanction], username: &str, now_ms: i64) -> Option<&'a Sanction> {
    let lower = username.to_lowercase();
    list.iter().find(|s| s.user == lower && s.active(now_ms))
}

impl Room {
    /// The role of the user `user_id`, named `username`.
    pub fn role(&self, user_id: &str, username: &str) -> Role {
        if self.created_by.as_deref() == Some(user_id) && !self.managed() && !self.dm {
            return Role::Owner;
        }
        let lower = username.to_lowercase();
        if self.moderators.contains(&lower) || self.moderation.moderators.contains(&lower) {
            Role::Moderator
        } else {
            Role::Member
        }
    }

    pub fn banned(&self, username: &str, now_ms: i64) -> Option<&Sanction> {
        find(&self.moderation.bans, username, now_ms)
    }

    pub fn muted(&self, username: &str, now_ms: i64) -> Option<&Sanction> {
        find(&self.moderation.mutes, username, now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sanction(user: &str, until: Option<i64>) -> Sanction {
        Sanction { user: user.into(), until, by: "mod".into(), at: 0, reason: None }
    }

    #[test]
    fn roles_and_sanctions_follow_the_room() {
        let mut room = Room::new_api("r", None);
        room.created_by = Some("u-own".into());
        room.moderators = vec!["cat".into()];
        room.moderation.moderators = vec!["dan".into()];
        assert_eq!(room.role("u-own", "own"), Role::Owner);
        assert_eq!(room.role("u-cat", "Cat"), Role::Moderator);
        assert_eq!(room.role("u-dan", "dan"), Role::Moderator);
        assert_eq!(room.role("u-eve", "eve"), Role::Member);
        room.moderation.bans = vec![sanction("eve", Some(1_000)), sanction("fay", None)];
        assert!(room.banned("EVE", 999).is_some() && room.banned("eve", 1_000).is_none(), "a ban ends on time");
        assert!(room.banned("fay", i64::MAX).is_some());
        assert!(!room.admits("fay") && room.admits("eve"));
        room.moderation.prune(crate::now_ms());
        assert_eq!(room.moderation.bans.len(), 1);
    }
}
