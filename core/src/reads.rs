//! Read state: how far each user has read each room (a `seq`, never lowered), and what
//! that leaves unread (docs/protocol.md §1, §3).

use async_trait::async_trait;
use std::collections::HashMap;

use crate::model::{Message, UserRef};
use crate::ports::{MessageStore, PortResult};

/// Counts stop here; a client shows "999+".
pub const MAX_UNREAD: usize = 999;

/// Read pointers, one per user per room.
#[async_trait]
pub trait ReadStore: Send + Sync {
    /// Raises the user's pointer in `room` to `seq` (a lower `seq` changes nothing);
    /// returns the pointer as stored afterwards.
    async fn mark_read(&self, user: &UserRef, room: &str, seq: u64) -> PortResult<u64>;
    /// The user's pointer in `room`, set to `seq` first when they have none (on joining a
    /// public room, its end: what was there before one first came does not count as unread).
    async fn joined(&self, user: &UserRef, room: &str, seq: u64) -> PortResult<u64>;
    /// Every pointer of the user: room → seq.
    async fn read_pointers(&self, user_id: &str) -> PortResult<HashMap<String, u64>>;
    /// The `limit` users who have read furthest in `room`, furthest first.
    async fn readers(&self, room: &str, limit: usize) -> PortResult<Vec<Reader>>;
}

/// How far one user has read a room (a read receipt).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reader {
    pub user: UserRef,
    pub seq: u64,
}

/// Most readers a `joined` lists (the furthest); later receipts arrive live.
pub const MAX_JOIN_READERS: usize = 100;

/// What a user has not read in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Unread {
    /// Messages from others after the pointer (at most [`MAX_UNREAD`]).
    pub unread: usize,
    /// Those of them that name `@username`.
    pub mentions: usize,
}

/// Whether `body` names `@name` (case-insensitive, as a whole name).
pub fn mentions(body: &str, name: &str) -> bool {
    let (body, name) = (body.to_lowercase(), name.to_lowercase());
    let name_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    body.match_indices('@').any(|(at, _)| {
        let starts = body[..at].chars().next_back().is_none_or(|c| !name_char(c));
        let Some(after) = body[at + 1..].strip_prefix(name.as_str()) else { return false };
        let mut next = after.chars();
        let ends = match next.next() {
            None => true,
            // "@bob." ends a sentence; "@bob.smith" is someone else.
            Some('.') => next.next().is_none_or(|c| !name_char(c)),
            Some(c) => !name_char(c),
        };
        starts && ends
    })
}

/// Counts what `user_id` (named `name`) has not read in `room` after `after`.
pub async fn unread(
    messages: &dyn MessageStore,
    room: &str,
    after: u64,
    user_id: &str,
    name: &str,
) -> PortResult<Unread> {
    let mut counts = Unread::default();
    let mut from = after;
    loop {
        let (page, more) = messages.after(room, from, 500).await?;
        for m in &page {
            from = from.max(m.seq);
            if counts_as_unread(m, user_id) {
                counts.unread += 1;
                if mentions(&m.body, name) {
                    counts.mentions += 1;
                }
                if counts.unread >= MAX_UNREAD {
                    return Ok(counts);
                }
            }
        }
        if !more || page.is_empty() {
            return Ok(counts);
        }
    }
}

fn counts_as_unread(m: &Message, user_id: &str) -> bool {
    m.kind.is_message() && !m.deleted && &*m.user.id != user_id
}

#[cfg(test)]
mod tests {
    use super::mentions;

    #[test]
    fn a_mention_is_the_whole_name_after_an_at() {
        for (body, hit) in [
            ("@bob hi", true),
            ("hi @Bob", true),
            ("hi @bob.", true),
            ("(@bob)", true),
            ("hi @bobby", false),
            ("mail bob@bob.io", false),
            ("hi @bob.smith", false),
            ("bob", false),
            ("@bo", false),
        ] {
            assert_eq!(mentions(body, "bob"), hit, "{body}");
        }
        assert!(mentions("ping @b.o-b_", "B.O-B_"));
    }
}
