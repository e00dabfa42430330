//! The WebSocket protocol (docs/protocol.md): client frame decoding and server frame encoding.

use serde_json::{Map, Value};

use crate::model::Kind;
use crate::validate::{MAX_NONCE_CHARS, MAX_REF_CHARS};

/// Largest accepted WebSocket frame/message; bigger closes with 1009.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Rooms one connection may join.
pub const MAX_ROOMS_PER_CONNECTION: usize = 100;
/// Most messages a `join` with `since` returns.
pub const MAX_SINCE_MESSAGES: usize = 500;
/// Most messages per `history` page.
pub const MAX_HISTORY_PAGE: usize = 100;
pub const DEFAULT_HISTORY_PAGE: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Join {
        room: String,
        since: Option<u64>,
    },
    Leave {
        room: String,
    },
    Send {
        room: String,
        body: String,
        nonce: Option<String>,
        reply_to: Option<String>,
    },
    /// `edit`, `delete`, `react` or `unreact` on the message `target`.
    Change {
        room: String,
        change: Change,
        nonce: Option<String>,
    },
    Typing {
        room: String,
    },
    History {
        room: String,
        before: u64,
        limit: usize,
    },
    Auth {
        token: String,
    },
    /// The user has read the room up to `seq`.
    Read {
        room: String,
        seq: u64,
    },
}

impl Command {
    pub fn room(&self) -> Option<&str> {
        match self {
            Command::Join { room, .. }
            | Command::Leave { room }
            | Command::Send { room, .. }
            | Command::Change { room, .. }
            | Command::Typing { room }
            | Command::History { room, .. }
            | Command::Read { room, .. } => Some(room),
            Command::Auth { .. } => None,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Command::Join { .. } => "join",
            Command::Leave { .. } => "leave",
            Command::Send { .. } => "send",
            Command::Change { change, .. } => match change.kind {
                Kind::Edit => "edit",
                Kind::Delete => "delete",
                Kind::React => "react",
                Kind::Unreact => "unreact",
                Kind::Message | Kind::Moderation => "send",
            },
            Command::Typing { .. } => "typing",
            Command::History { .. } => "history",
            Command::Auth { .. } => "auth",
            Command::Read { .. } => "read",
        }
    }
}

/// An event on an earlier message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: Kind,
    pub target: String,
    /// An edit's new body.
    pub body: Option<String>,
    /// A reaction's emoji.
    pub emoji: Option<String>,
}

/// A decoded client frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub reference: Option<String>,
    pub command: Command,
}

/// Why a frame was refused; always answered with `bad_request`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DecodeError {
    /// The frame's `ref`, when it could be read.
    pub reference: Option<String>,
    pub message: String,
}

fn err(reference: &Option<String>, message: impl Into<String>) -> DecodeError {
    DecodeError { reference: reference.clone(), message: message.into() }
}

fn string(obj: &Map<String, Value>, key: &str, r: &Option<String>) -> Result<String, DecodeError> {
    match obj.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(err(r, format!("field `{key}` must be a string"))),
        None => Err(err(r, format!("missing field `{key}`"))),
    }
}

fn opt_string(obj: &Map<String, Value>, key: &str, r: &Option<String>) -> Result<Option<String>, DecodeError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(err(r, format!("field `{key}` must be a string"))),
    }
}

fn opt_u64(obj: &Map<String, Value>, key: &str, r: &Option<String>) -> Result<Option<u64>, DecodeError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| err(r, format!("field `{key}` must be a non-negative integer"))),
    }
}

/// Longest message id a client may name (ids the server makes are 32 hex characters).
pub const MAX_ID_CHARS: usize = 64;

fn body(obj: &Map<String, Value>, r: &Option<String>) -> Result<String, DecodeError> {
    let body = string(obj, "body", r)?;
    if body.trim().is_empty() {
        return Err(err(r, "`body` must not be empty"));
    }
    Ok(body)
}

fn nonce(obj: &Map<String, Value>, r: &Option<String>) -> Result<Option<String>, DecodeError> {
    let nonce = opt_string(obj, "nonce", r)?;
    if nonce.as_ref().is_some_and(|n| n.is_empty() || n.chars().count() > MAX_NONCE_CHARS) {
        return Err(err(r, "`nonce` must be 1-64 characters"));
    }
    Ok(nonce)
}

/// Decodes one text frame. Never panics, whatever the input.
pub fn decode(text: &str) -> Result<Request, DecodeError> {
    let none = None;
    let value: Value = serde_json::from_str(text).map_err(|_| err(&none, "frame is not valid JSON"))?;
    let Value::Object(obj) = value else {
        return Err(err(&none, "frame must be a JSON object"));
    };
    let reference = match obj.get("ref") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() <= MAX_REF_CHARS => Some(s.clone()),
        Some(Value::String(_)) => return Err(err(&none, "`ref` must be at most 64 characters")),
        Some(_) => return Err(err(&none, "`ref` must be a string")),
    };
    let r = &reference;
    let kind = match obj.get("type") {
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(err(r, "`type` must be a string")),
        None => return Err(err(r, "missing field `type`")),
    };
    let command = match kind {
        "join" => Command::Join { room: string(&obj, "room", r)?, since: opt_u64(&obj, "since", r)? },
        "leave" => Command::Leave { room: string(&obj, "room", r)? },
        "send" => {
            let room = string(&obj, "room", r)?;
            let body = body(&obj, r)?;
            let nonce = nonce(&obj, r)?;
            let reply_to = opt_string(&obj, "reply_to", r)?;
            if reply_to.as_ref().is_some_and(|id| id.is_empty() || id.len() > MAX_ID_CHARS) {
                return Err(err(r, "`reply_to` must be a message id"));
            }
            Command::Send { room, body, nonce, reply_to }
        }
        "edit" | "delete" | "react" | "unreact" => {
            let kind = match kind {
                "edit" => Kind::Edit,
                "delete" => Kind::Delete,
                "react" => Kind::React,
                _ => Kind::Unreact,
            };
            let room = string(&obj, "room", r)?;
            let target = string(&obj, "id", r)?;
            if target.is_empty() || target.len() > MAX_ID_CHARS {
                return Err(err(r, "`id` must be a message id"));
            }
            let body = if kind == Kind::Edit { Some(body(&obj, r)?) } else { None };
            let emoji = match kind {
                Kind::React | Kind::Unreact => {
                    let e = string(&obj, "emoji", r)?;
                    if !crate::events::valid_emoji(&e) {
                        return Err(err(r, "`emoji` must be one emoji or a :name: of at most 32 characters"));
                    }
                    Some(e)
                }
                _ => None,
            };
            Command::Change { room, change: Change { kind, target, body, emoji }, nonce: nonce(&obj, r)? }
        }
        "typing" => Command::Typing { room: string(&obj, "room", r)? },
        "history" => {
            let room = string(&obj, "room", r)?;
            let before = opt_u64(&obj, "before", r)?.ok_or_else(|| err(r, "missing field `before`"))?;
            let limit = opt_u64(&obj, "limit", r)?.unwrap_or(DEFAULT_HISTORY_PAGE as u64);
            if limit == 0 || limit > MAX_HISTORY_PAGE as u64 {
                return Err(err(r, "`limit` must be 1-100"));
            }
            Command::History { room, before, limit: limit as usize }
        }
        "auth" => Command::Auth { token: string(&obj, "token", r)? },
        "read" => {
            let room = string(&obj, "room", r)?;
            let seq = opt_u64(&obj, "seq", r)?.ok_or_else(|| err(r, "missing field `seq`"))?;
            Command::Read { room, seq }
        }
        other => {
            let shown: String = other.chars().take(32).collect();
            return Err(err(r, format!("unknown frame type `{shown}`")));
        }
    };
    Ok(Request { reference, command })
}

mod frames;
pub use frames::{close, ErrorCode, ServerFrame};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Message, UserRef};
    use proptest::prelude::*;

    #[test]
    fn decodes_every_command() {
        let r = decode(r#"{"type":"join","room":"general","since":4,"ref":"a"}"#).unwrap();
        assert_eq!(r.reference.as_deref(), Some("a"));
        assert_eq!(r.command, Command::Join { room: "general".into(), since: Some(4) });
        let r = decode(r#"{"type":"send","room":"g","body":"hi","nonce":"n1"}"#).unwrap();
        assert_eq!(
            r.command,
            Command::Send { room: "g".into(), body: "hi".into(), nonce: Some("n1".into()), reply_to: None }
        );
        let r = decode(r#"{"type":"react","room":"g","id":"m1","emoji":"👍","nonce":"n2"}"#).unwrap();
        let change = Change { kind: Kind::React, target: "m1".into(), body: None, emoji: Some("👍".into()) };
        assert_eq!(r.command, Command::Change { room: "g".into(), change, nonce: Some("n2".into()) });
        let r = decode(r#"{"type":"edit","room":"g","id":"m1","body":"new"}"#).unwrap();
        assert!(matches!(r.command, Command::Change { change: Change { kind: Kind::Edit, body: Some(_), .. }, .. }));
        let r = decode(r#"{"type":"history","room":"g","before":10}"#).unwrap();
        assert_eq!(r.command, Command::History { room: "g".into(), before: 10, limit: 50 });
        assert!(matches!(decode(r#"{"type":"auth","token":"t"}"#).unwrap().command, Command::Auth { .. }));
        assert!(matches!(decode(r#"{"type":"typing","room":"g"}"#).unwrap().command, Command::Typing { .. }));
        assert!(matches!(decode(r#"{"type":"leave","room":"g"}"#).unwrap().command, Command::Leave { .. }));
        let r = decode(r#"{"type":"read","room":"g","seq":7}"#).unwrap();
        assert_eq!(r.command, Command::Read { room: "g".into(), seq: 7 });
        assert!(decode(r#"{"type":"read","room":"g","seq":-1}"#).is_err());
        assert!(decode(r#"{"type":"read","room":"g"}"#).is_err());
    }

    #[test]
    fn rejects_malformed_frames_and_keeps_ref() {
        assert!(decode("not json").unwrap_err().message.contains("JSON"));
        assert!(decode("[1,2]").is_err());
        let e = decode(r#"{"type":"dance","ref":"r1"}"#).unwrap_err();
        assert_eq!(e.reference.as_deref(), Some("r1"));
        assert!(e.message.contains("unknown"));
        let e = decode(r#"{"type":"send","room":"g","ref":"r2"}"#).unwrap_err();
        assert_eq!(e.reference.as_deref(), Some("r2"));
        assert!(e.message.contains("body"));
        assert!(decode(r#"{"type":"send","room":"g","body":"  \n "}"#).is_err());
        assert!(decode(r#"{"type":"send","room":"g","body":"x","nonce":""}"#).is_err());
        assert!(decode(&format!(r#"{{"type":"join","room":"g","ref":"{}"}}"#, "r".repeat(65))).is_err());
        assert!(decode(r#"{"type":"join","room":"g","since":-1}"#).is_err());
        assert!(decode(r#"{"type":"history","room":"g","before":1,"limit":101}"#).is_err());
        assert!(decode(r#"{"room":"g"}"#).is_err());
        assert!(decode(r#"{"type":"edit","room":"g","id":"m1","body":" "}"#).is_err());
        assert!(decode(r#"{"type":"delete","room":"g"}"#).is_err());
        assert!(decode(r#"{"type":"react","room":"g","id":"m1","emoji":"thumbs up"}"#)
            .unwrap_err()
            .message
            .contains("emoji"));
        assert!(decode(r#"{"type":"send","room":"g","body":"x","reply_to":7}"#).is_err());
        assert!(decode(r#"{"type":7}"#).is_err());
    }

    #[test]
    fn encodes_message_frames_as_specified() {
        let m = Message {
            id: "m1".into(),
            room: "general".into(),
            seq: 3,
            user: UserRef { id: "u1".into(), name: "ann".into() },
            body: "<b>hi</b>".into(),
            ts: 1700000000000,
            nonce: None,
            ..Default::default()
        };
        let v: Value = serde_json::from_str(&ServerFrame::Message(&m).encode()).unwrap();
        assert_eq!(v["type"], "message");
        assert_eq!(v["seq"], 3);
        assert_eq!(v["user"]["name"], "ann");
        assert_eq!(v["body"], "<b>hi</b>");
        assert!(v.get("nonce").is_none());
        let e = ServerFrame::Error {
            code: ErrorCode::RateLimited,
            message: "slow down",
            reference: Some("x"),
            room: Some("general"),
            retry_after_ms: Some(250),
        };
        let v: Value = serde_json::from_str(&e.encode()).unwrap();
        assert_eq!(v["code"], "rate_limited");
        assert_eq!(v["retry_after_ms"], 250);
        assert_eq!(v["ref"], "x");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]
        #[test]
        fn decoder_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let text = String::from_utf8_lossy(&bytes);
            let _ = decode(&text);
        }

        #[test]
        fn decoder_never_panics_on_near_valid_frames(
            kind in prop_oneof![Just("join".to_owned()), Just("send".to_owned()), Just("history".to_owned()), Just("auth".to_owned()), Just("typing".to_owned()), Just("leave".to_owned()), ".*"],
            room in proptest::option::of(any::<String>()),
            body in proptest::option::of(any::<String>()),
            num in proptest::option::of(any::<i64>()),
            reference in proptest::option::of(".{0,80}"),
        ) {
            let mut obj = Map::new();
            obj.insert("type".into(), Value::String(kind));
            if let Some(r) = room { obj.insert("room".into(), Value::String(r)); }
            if let Some(b) = body { obj.insert("body".into(), Value::String(b)); }
            if let Some(n) = num {
                obj.insert("since".into(), n.into());
                obj.insert("before".into(), n.into());
                obj.insert("limit".into(), n.into());
            }
            if let Some(r) = reference { obj.insert("ref".into(), Value::String(r)); }
            let text = Value::Object(obj).to_string();
            match decode(&text) {
                Ok(req) => prop_assert!(req.reference.is_none_or(|r| r.chars().count() <= 64)),
                Err(e) => prop_assert!(!e.message.is_empty()),
            }
        }
    }
}
