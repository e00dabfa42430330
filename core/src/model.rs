//! Domain types shared by every component.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

use crate::audit::Notice;
use crate::ratelimit::RateLimit;

/// A user as other users see it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
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
    /// Deactivated through the server API: cannot log in, refresh or connect.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deactivated: bool,
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
    /// How long after sending its author may edit a message (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edit_window_ms: Option<u64>,
    /// Distinct reactions one message may have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_reactions: Option<usize>,
    #[serde(default)]
    pub created_at: i64,
    /// The id of the user who created it through the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// The ChatRoom that manages the room (`namespace/name`), for operator rooms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// A direct conversation (`POST /api/dms`): private to `members`; `title` lists their
    /// names, and each member sees the others'.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dm: bool,
    /// Whether members see who has read what (`receipts`); `None`: on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_receipts: Option<bool>,
    /// Lower-cased usernames of moderators named by the ChatRoom (`spec.moderators`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub moderators: Vec<String>,
    /// Moderators granted by the owner, sanctions and settings (API only).
    #[serde(default, skip_serializing_if = "crate::moderation::Moderation::is_empty")]
    pub moderation: crate::moderation::Moderation,
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
            edit_window_ms: None,
            max_reactions: None,
            created_at: crate::now_ms(),
            created_by: None,
            owner: None,
            dm: false,
            read_receipts: None,
            moderators: Vec::new(),
            moderation: Default::default(),
        }
    }

    /// A direct conversation between `names` (display names, the opener's included).
    pub fn new_dm(names: &[String]) -> Self {
        let mut sorted: Vec<String> = names.to_vec();
        sorted.sort_by_key(|n| n.to_lowercase());
        let members: Vec<String> = sorted.iter().map(|n| n.to_lowercase()).collect();
        let mut room = Room::new_api(&dm_name(&members), Some(&sorted.join(", ")));
        room.visibility = Visibility::Private;
        room.members = members;
        room.dm = true;
        room
    }

    /// What `username` sees as the room's title: a DM is titled by its other (current)
    /// members.
    pub fn title_for(&self, username: &str) -> String {
        if !self.dm {
            return self.title.clone();
        }
        let me = username.to_lowercase();
        let others: Vec<&str> = self
            .title
            .split(", ")
            .filter(|n| {
                let lower = n.to_lowercase();
                lower != me && self.members.contains(&lower)
            })
            .collect();
        if others.is_empty() {
            self.title.clone()
        } else {
            others.join(", ")
        }
    }

    /// A conversation opened by three or more people: members may leave it. (`title` keeps
    /// the names it was opened with.)
    pub fn group_dm(&self) -> bool {
        self.dm && self.title.split(", ").count() > 2
    }

    /// Whether members see read receipts (conversations always do).
    pub fn receipts(&self) -> bool {
        self.dm || self.moderation.receipts.or(self.read_receipts).unwrap_or(true)
    }

    pub fn managed(&self) -> bool {
        self.source == RoomSource::Operator
    }

    /// Whether `username` may join (and read, and stay): a member of a private room, not
    /// banned.
    pub fn admits(&self, username: &str) -> bool {
        if self.banned(username, crate::now_ms()).is_some() {
            return false;
        }
        match self.visibility {
            Visibility::Public => true,
            Visibility::Private => {
                let lower = username.to_lowercase();
                self.members.iter().any(|m| m.to_lowercase() == lower)
            }
        }
    }
}

/// What a record on a room's stream does. Every change to a room is a record with its own
/// `seq`: a new message, or an event on an earlier one (its `target`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    #[default]
    Message,
    /// The author replaced the target's body.
    Edit,
    /// The target's body was removed (a tombstone stays).
    Delete,
    /// The sender added `emoji` to the target's reactions.
    React,
    /// The sender took `emoji` back.
    Unreact,
    /// A moderator acted in the room (its `notice` says how); no target.
    Moderation,
}

impl Kind {
    pub fn is_message(&self) -> bool {
        *self == Kind::Message
    }

    /// The events that change an earlier message (their `target`).
    pub const CHANGES: [Kind; 4] = [Kind::Edit, Kind::Delete, Kind::React, Kind::Unreact];

    pub fn changes_target(&self) -> bool {
        Kind::CHANGES.contains(self)
    }

    /// Kept in a room's history: messages (in their current state) and moderators' notices.
    pub fn in_history(&self) -> bool {
        !self.changes_target()
    }
}

/// Who reacted to a message with one emoji.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    pub emoji: String,
    pub users: Vec<UserRef>,
}

/// The message a message replies to. Stored as the id alone; the rest is filled in when
/// the record is sent (author and opening of the target's current state).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReplyTo {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserRef>,
    /// The first 100 characters of the target's body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excerpt: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

/// A record accepted by a gateway, before the fan-out tier gives it a `seq`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Submission {
    pub id: String,
    pub room: String,
    pub user: UserRef,
    /// The message's body, or an edit's new body; empty for other events.
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
    #[serde(default, skip_serializing_if = "Kind::is_message")]
    pub kind: Kind,
    /// The message an event changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// A message's reply target (its id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emoji: Option<String>,
    /// A reaction's cap on distinct emoji per message, as the gateway resolved it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_reactions: Option<usize>,
    /// A delete by a moderator of the room (the gateway checked the role): any author's
    /// message may go.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub moderator: bool,
    /// Whose messages a moderator may not delete (the room's owner), for the gateway's check.
    #[serde(skip)]
    pub shielded: Option<String>,
    /// A `moderation` record's action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<Notice>,
}

impl Submission {
    /// A plain message.
    pub fn message(id: String, room: String, user: UserRef, body: String, nonce: Option<String>) -> Self {
        Submission {
            id,
            room,
            user,
            body,
            ts: crate::now_ms(),
            nonce,
            managed: false,
            retry: false,
            kind: Kind::Message,
            target: None,
            reply_to: None,
            emoji: None,
            max_reactions: None,
            moderator: false,
            shielded: None,
            notice: None,
        }
    }
}

/// A stored record with its place in the room: a message in its current state (edited,
/// deleted, reacted to), or an event.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Message {
    pub id: String,
    pub room: String,
    pub seq: u64,
    pub user: UserRef,
    /// Empty for a deleted message and for events other than edits.
    #[serde(default)]
    pub body: String,
    pub ts: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(default, skip_serializing_if = "Kind::is_message")]
    pub kind: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<ReplyTo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emoji: Option<String>,
    /// When the body was last edited (unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<i64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// A message's reactions; a reaction event's emoji with who has it after the event.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<Reaction>,
    /// A delete event by a moderator, not the author; a message a moderator removed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub moderator: bool,
    /// A `moderation` record's action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<Notice>,
}

impl Message {
    pub fn from_submission(s: Submission, seq: u64) -> Self {
        Message {
            id: s.id,
            room: s.room,
            seq,
            user: s.user,
            body: s.body,
            ts: s.ts,
            nonce: s.nonce,
            kind: s.kind,
            target: s.target,
            reply_to: s.reply_to.map(|id| ReplyTo { id, ..ReplyTo::default() }),
            emoji: s.emoji,
            edited_at: None,
            deleted: false,
            reactions: Vec::new(),
            moderator: false,
            notice: s.notice,
        }
    }
}

/// Room names starting with this are direct conversations'.
pub const DM_PREFIX: &str = "dm-";
/// Other users one direct conversation may have.
pub const MAX_DM_OTHERS: usize = 9;

/// The room name of the direct conversation of `members` (lower-cased usernames): the same
/// people always get the same conversation.
pub fn dm_name(members: &[String]) -> String {
    use sha2::{Digest, Sha256};
    let mut sorted: Vec<&str> = members.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let digest = Sha256::digest(sorted.join("\n").as_bytes());
    let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("{DM_PREFIX}{hex}")
}

/// When a message id made by [`new_message_id`] was made (unix ms): its first 48 bits.
pub fn message_id_time_ms(id: &str) -> Option<i64> {
    let hex = id.get(..12)?;
    i64::from_str_radix(hex, 16).ok()
}

/// A new, time-ordered message id.
pub fn new_message_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_same_people_get_the_same_conversation_titled_by_the_others() {
        let a = super::Room::new_dm(&["Cat".into(), "ann".into(), "Bob".into()]);
        let b = super::Room::new_dm(&["bob".into(), "CAT".into(), "Ann".into()]);
        assert_eq!(a.name, b.name);
        assert!(a.name.starts_with(super::DM_PREFIX) && crate::validate::room_name(&a.name).is_ok());
        assert_eq!(a.members, ["ann", "bob", "cat"]);
        assert_eq!(a.title_for("BOB"), "ann, Cat");
        assert!(!a.admits("dan") && a.admits("Ann"));
        assert_ne!(a.name, super::Room::new_dm(&["ann".into(), "bob".into()]).name);
        assert!(a.group_dm() && !super::Room::new_dm(&["ann".into(), "bob".into()]).group_dm());
    }

    #[test]
    fn a_member_who_left_drops_out_of_the_title() {
        let mut a = super::Room::new_dm(&["Cat".into(), "ann".into(), "Bob".into()]);
        a.members.retain(|m| m != "cat");
        assert_eq!(a.title_for("bob"), "ann");
        assert!(!a.admits("cat") && a.group_dm());
    }

    #[test]
    fn a_message_id_tells_when_it_was_made() {
        let before = crate::now_ms();
        let made = super::message_id_time_ms(&super::new_message_id()).unwrap();
        assert!((before..=crate::now_ms()).contains(&made));
        assert_eq!(super::message_id_time_ms("not hex at all"), None);
    }
}
