//! What the server sends: frames, error codes, close codes (docs/protocol.md §4–§6).

use serde::Serialize;

use crate::model::{Message, UserRef};
use crate::reads::Reader;

/// Error codes (docs/protocol.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    NotFound,
    NotJoined,
    TooLarge,
    RateLimited,
    Forbidden,
    Unavailable,
    TokenExpired,
    Internal,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 10] = [
        ErrorCode::BadRequest,
        ErrorCode::Unauthorized,
        ErrorCode::NotFound,
        ErrorCode::NotJoined,
        ErrorCode::TooLarge,
        ErrorCode::RateLimited,
        ErrorCode::Forbidden,
        ErrorCode::Unavailable,
        ErrorCode::TokenExpired,
        ErrorCode::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::NotFound => "not_found",
            ErrorCode::NotJoined => "not_joined",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::Internal => "internal",
        }
    }
}

/// WebSocket close codes (docs/protocol.md §6).
pub mod close {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const INVALID_PAYLOAD: u16 = 1007;
    pub const TOO_BIG: u16 = 1009;
    pub const TOKEN_EXPIRED: u16 = 4001;
    /// The platform's backend disconnected the user (server API), or deactivated them.
    pub const DISCONNECTED: u16 = 4003;
    pub const POLICY: u16 = 4008;
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Every frame the server sends.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame<'a> {
    Hello {
        user: &'a UserRef,
        heartbeat_ms: u64,
    },
    Joined {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
        room: &'a str,
        members: &'a [UserRef],
        history: &'a [Message],
        last_seq: u64,
        /// The user's read pointer in the room.
        read: u64,
        /// How far members have read (the furthest first), when the room shows receipts.
        #[serde(skip_serializing_if = "Option::is_none")]
        receipts: Option<&'a [Reader]>,
        #[serde(skip_serializing_if = "is_false")]
        truncated: bool,
    },
    Left {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
        room: &'a str,
        /// Set on a push the client did not ask for: `removed` (no longer a member of a
        /// private room) or `deleted` (the room was deleted).
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'a str>,
    },
    Ack {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
        room: &'a str,
        id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        nonce: Option<&'a str>,
    },
    History {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
        room: &'a str,
        messages: &'a [Message],
    },
    Authed {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
        exp: u64,
    },
    Message(&'a Message),
    /// A record with a `kind` (edit, delete, react, unreact): see [`ServerFrame::record`].
    Event(&'a Message),
    Presence {
        room: &'a str,
        joins: &'a [UserRef],
        leaves: &'a [UserRef],
    },
    Typing {
        room: &'a str,
        user: &'a UserRef,
    },
    /// How far the user has read `room` (the answer to `read`, and a push to every
    /// connection of the user when the pointer rose).
    Read {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
        room: &'a str,
        seq: u64,
    },
    /// A member's read pointer rose: between gateways on the room's bus only; members get
    /// [`ServerFrame::Receipts`].
    Receipt {
        room: &'a str,
        user: &'a UserRef,
        read: u64,
    },
    /// Who has read how far, at most once a second per room.
    Receipts {
        room: &'a str,
        readers: &'a [Reader],
    },
    /// The rooms the user may see changed (a conversation was opened with them, a member
    /// left one): re-read `GET /api/rooms`.
    RoomsChanged,
    Error {
        code: ErrorCode,
        message: &'a str,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
}

impl<'a> ServerFrame<'a> {
    /// A stored record as a push: `message` for a message, `event` for an event.
    pub fn record(m: &'a Message) -> Self {
        if m.kind.is_message() {
            ServerFrame::Message(m)
        } else {
            ServerFrame::Event(m)
        }
    }

    /// Serializes the frame; done once per broadcast.
    pub fn encode(&self) -> String {
        // Serializing these types cannot fail: no maps with non-string keys, no custom errors.
        serde_json::to_string(self)
            .unwrap_or_else(|_| String::from(r#"{"type":"error","code":"internal","message":"encoding failed"}"#))
    }
}
