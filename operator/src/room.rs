//! A ChatRoom's spec as the room configuration the gateways apply.

use std::time::Duration;

use aurora_core::model::{Room, RoomSource, Visibility as RoomVisibility};
use aurora_core::ratelimit::RateLimit;

use crate::crd::{ChatRoom, Visibility};
use crate::error::{Result, SpecError};

fn duration(field: &'static str, value: &str) -> Result<Duration, SpecError> {
    let d = humantime::parse_duration(value).map_err(|source| SpecError::NotADuration {
        field,
        value: value.to_owned(),
        source,
    })?;
    if d.is_zero() {
        return Err(SpecError::ZeroDuration { field });
    }
    Ok(d)
}

/// `spec.topic.retention` in milliseconds.
pub fn retention_ms(value: &str) -> Result<i64> {
    Ok(duration("spec.topic.retention", value)?.as_millis().min(i64::MAX as u128) as i64)
}

/// The room registration for `room`, owned by `owner` (`namespace/name`).
pub fn desired_room(room: &ChatRoom, owner: &str) -> Result<Room> {
    let spec = &room.spec;
    let name = room.room_name();
    let rate_limit = match &spec.rate_limit {
        Some(r) => Some(RateLimit {
            messages: u32::try_from(r.messages).ok().filter(|m| *m >= 1).ok_or(SpecError::NoMessages)?,
            period: duration("spec.rateLimit.period", &r.period)?,
        }),
        None => None,
    };
    let visibility = match spec.visibility {
        Visibility::Public => RoomVisibility::Public,
        Visibility::Private => RoomVisibility::Private,
    };
    let members = match visibility {
        RoomVisibility::Private => spec.members.iter().map(|m| m.to_lowercase()).collect(),
        RoomVisibility::Public => Vec::new(),
    };
    let edit_window_ms = match &spec.edit_window {
        Some(w) => Some(duration("spec.editWindow", w)?.as_millis().min(u64::MAX as u128) as u64),
        None => None,
    };
    Ok(Room {
        title: spec.title.clone().filter(|t| !t.trim().is_empty()).unwrap_or_else(|| name.clone()),
        name,
        source: RoomSource::Operator,
        visibility,
        members,
        history_size: spec.history.as_ref().map(|h| h.size.clamp(0, 500) as usize),
        rate_limit,
        max_message_bytes: spec.max_message_bytes.map(|b| b.clamp(1, 65536) as usize),
        edit_window_ms,
        max_reactions: spec.max_reactions.map(|n| n.clamp(1, 100) as usize),
        created_at: aurora_core::now_ms(),
        created_by: None,
        owner: Some(owner.to_owned()),
        dm: false,
        read_receipts: spec.read_receipts,
        moderators: spec.moderators.iter().map(|m| m.to_lowercase()).collect(),
        moderation: Default::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{ChatRoomSpec, RateLimitSpec};

    fn room(spec: serde_json::Value) -> ChatRoom {
        let spec: ChatRoomSpec = serde_json::from_value(spec).unwrap();
        ChatRoom::new("ops", spec)
    }

    #[test]
    fn a_spec_becomes_the_room_config_gateways_apply() {
        let r = room(serde_json::json!({
            "title": "Ops", "visibility": "private", "members": ["Alice", "bob"],
            "history": {"size": 3}, "rateLimit": {"messages": 2, "period": "1m"}, "maxMessageBytes": 10
        }));
        let d = desired_room(&r, "ns/ops").unwrap();
        assert_eq!(d.title, "Ops");
        assert_eq!(d.members, ["alice", "bob"]);
        assert!(d.admits("ALICE") && !d.admits("carol"));
        assert_eq!(d.history_size, Some(3));
        assert_eq!(d.rate_limit, Some(RateLimit { messages: 2, period: Duration::from_secs(60) }));
        assert_eq!(d.max_message_bytes, Some(10));
        assert!(d.managed());
        assert_eq!(d.owner.as_deref(), Some("ns/ops"));
    }

    #[test]
    fn defaults_fall_back_to_the_gateway_config() {
        let d = desired_room(&room(serde_json::json!({})), "ns/ops").unwrap();
        assert_eq!(d.title, "ops");
        assert_eq!((d.history_size, d.rate_limit, d.max_message_bytes), (None, None, None));
        assert_eq!(retention_ms("7d").unwrap(), 7 * 24 * 3600 * 1000);
    }

    #[test]
    fn durations_the_schema_would_refuse_are_refused_here_too() {
        let mut r = room(serde_json::json!({}));
        r.spec.rate_limit = Some(RateLimitSpec { messages: 1, period: "soon".into() });
        assert!(matches!(desired_room(&r, "ns/ops"), Err(crate::error::Error::InvalidSpec(_))));
        assert!(retention_ms("0s").is_err());
    }
}
