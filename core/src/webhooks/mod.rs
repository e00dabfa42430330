//! Webhooks: HTTP endpoints of the platform's own backends that receive a room's events,
//! signed, at least once and in room order (docs/server-api.md, Webhooks).
//!
//! The fan-out tier writes every stored record to [`EVENTS_TOPIC`] (key = room) before it
//! commits its offsets; each endpoint is a consumer group of that topic, so a slow or dead
//! endpoint holds back only itself. Deliveries that outlive their retry budget are parked in
//! [`DEAD_LETTER_TOPIC`] until replayed.

mod config;
mod sign;

pub use config::{glob_match, Endpoint, WebhookError, WebhookFile};
pub use sign::{sign, signature_header, verify, VerifyError};

use serde::{Deserialize, Serialize};

use crate::model::{Kind, Message, UserRef};

/// Every stored record, as the webhook payload, keyed by room.
pub const EVENTS_TOPIC: &str = "aurora.events";
/// Deliveries that failed for their whole retry budget, with the endpoint's name.
pub const DEAD_LETTER_TOPIC: &str = "aurora.webhooks.dlq";

/// Request headers of a delivery.
pub mod headers {
    /// The event's id: the same on every attempt and redelivery (deduplicate on it).
    pub const ID: &str = "aurora-webhook-id";
    /// Unix seconds when this attempt was signed.
    pub const TIMESTAMP: &str = "aurora-webhook-timestamp";
    /// `v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`, one per secret, comma-separated.
    pub const SIGNATURE: &str = "aurora-webhook-signature";
    /// The event type, e.g. `message.created`.
    pub const EVENT: &str = "aurora-webhook-event";
    /// 1 for the first attempt.
    pub const ATTEMPT: &str = "aurora-webhook-attempt";
}

/// Kafka record headers on the events and dead-letter topics.
pub mod record_headers {
    pub const ID: &str = "id";
    pub const TYPE: &str = "type";
    /// Dead-letter records: the endpoint that gave up, and why.
    pub const ENDPOINT: &str = "endpoint";
    pub const ERROR: &str = "error";
}

/// What happened in a room, as an endpoint subscribes to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "message.created")]
    MessageCreated,
    #[serde(rename = "message.edited")]
    MessageEdited,
    #[serde(rename = "message.deleted")]
    MessageDeleted,
    #[serde(rename = "reaction.added")]
    ReactionAdded,
    #[serde(rename = "reaction.removed")]
    ReactionRemoved,
    /// A moderator's action (kick, ban, mute, slow mode, …): the record's `notice`.
    #[serde(rename = "moderation")]
    Moderation,
    /// A user's first connection entered the room (distributed mode, `AURORA_MEMBER_EVENTS`).
    #[serde(rename = "member.joined")]
    MemberJoined,
    /// A user's last connection left the room (leave, disconnect, kick, ban).
    #[serde(rename = "member.left")]
    MemberLeft,
}

impl EventType {
    pub const ALL: [EventType; 8] = [
        EventType::MessageCreated,
        EventType::MessageEdited,
        EventType::MessageDeleted,
        EventType::ReactionAdded,
        EventType::ReactionRemoved,
        EventType::Moderation,
        EventType::MemberJoined,
        EventType::MemberLeft,
    ];

    pub fn of(kind: Kind) -> Self {
        match kind {
            Kind::Message => EventType::MessageCreated,
            Kind::Edit => EventType::MessageEdited,
            Kind::Delete => EventType::MessageDeleted,
            Kind::React => EventType::ReactionAdded,
            Kind::Unreact => EventType::ReactionRemoved,
            Kind::Moderation => EventType::Moderation,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::MessageCreated => "message.created",
            EventType::MessageEdited => "message.edited",
            EventType::MessageDeleted => "message.deleted",
            EventType::ReactionAdded => "reaction.added",
            EventType::ReactionRemoved => "reaction.removed",
            EventType::Moderation => "moderation",
            EventType::MemberJoined => "member.joined",
            EventType::MemberLeft => "member.left",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// The body of a delivery: serialized once, when the record is written to [`EVENTS_TOPIC`].
#[derive(Debug, Serialize, Deserialize)]
pub struct Event<M> {
    /// The record's id (a message's id, or an event's own id).
    pub id: String,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub room: String,
    /// The record's position in the room (gap-free); none for member events, which are
    /// not records of the room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// When the gateway accepted it (unix ms).
    pub ts: i64,
    /// The record as the WebSocket protocol's `message`/`event` frames carry it.
    pub data: M,
}

impl<'a> Event<&'a Message> {
    pub fn of(m: &'a Message) -> Self {
        Event {
            id: m.id.clone(),
            kind: EventType::of(m.kind),
            room: m.room.clone(),
            seq: Some(m.seq),
            ts: m.ts,
            data: m,
        }
    }
}

/// The `data` of a member event.
#[derive(Debug, Serialize, Deserialize)]
pub struct Member {
    pub user: UserRef,
}

impl Event<Member> {
    pub fn member(room: &str, user: &UserRef, joined: bool) -> Self {
        Event {
            id: uuid::Uuid::now_v7().simple().to_string(),
            kind: if joined { EventType::MemberJoined } else { EventType::MemberLeft },
            room: room.to_owned(),
            seq: None,
            ts: crate::now_ms(),
            data: Member { user: user.clone() },
        }
    }
}

/// Where a gateway reports a user's first connection into a room and last one out, for
/// webhooks. Fire and forget: presence never waits on it.
pub trait MemberEvents: Send + Sync {
    fn changed(&self, room: &str, user: &UserRef, joined: bool);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_type_that_round_trips() {
        for kind in [Kind::Message, Kind::Edit, Kind::Delete, Kind::React, Kind::Unreact, Kind::Moderation] {
            let t = EventType::of(kind);
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
        }
        assert_eq!(EventType::parse("member.joined"), Some(EventType::MemberJoined));
        assert_eq!(EventType::parse("member.kicked"), None);
    }
}
