//! Events on a room's stream: edits, deletes and reactions change an earlier message, and
//! replies point at one. Each is a record with its own `seq` (docs/protocol.md §3), so the
//! stream's guarantees (one order, acked when durable, stored once, replayed by `since`)
//! hold for them too. The fan-out tier applies an event to its target's stored state;
//! history is served in that state, so clients that load it never replay events.

use std::collections::HashMap;
use unicode_segmentation::UnicodeSegmentation;

use crate::model::{Kind, Message, Reaction, ReplyTo, Submission, UserRef};
use crate::ports::{MessageStore, PortResult};

/// Characters of a reply target's body shown with the reply.
pub const EXCERPT_CHARS: usize = 100;
/// Longest `:name:` reaction, in characters.
pub const MAX_EMOJI_NAME_CHARS: usize = 32;

/// Why an event (or a reply) cannot be applied; the gateway answers with its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no message with that id in this room")]
    NoSuchMessage,
    #[error("that message was deleted")]
    Deleted,
    #[error("only its author can change a message")]
    NotAuthor,
    #[error("the time to edit that message has passed")]
    WindowPassed,
    #[error("that message has as many different reactions as allowed")]
    TooManyReactions,
    #[error("a reaction is one emoji or a short :name:")]
    BadEmoji,
    #[error("nothing to change")]
    NoChange,
}

/// Whether `emoji` is one grapheme cluster that is not plain text (not ASCII, no letters
/// or digits), or a `:name:` of
/// ASCII letters, digits, `_`, `+` and `-`.
pub fn valid_emoji(emoji: &str) -> bool {
    if let Some(name) = emoji.strip_prefix(':').and_then(|e| e.strip_suffix(':')) {
        let n = name.chars().count();
        return (1..=MAX_EMOJI_NAME_CHARS - 2).contains(&n)
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-'));
    }
    let mut clusters = emoji.graphemes(true);
    match (clusters.next(), clusters.next()) {
        (Some(one), None) => {
            !one.is_ascii() && one.chars().all(|c| !c.is_alphanumeric() && !c.is_whitespace() && !c.is_control())
        }
        _ => false,
    }
}

/// What a reply shows of its target.
pub fn summary(target: &Message) -> ReplyTo {
    if target.deleted {
        return ReplyTo { id: target.id.clone(), user: Some(target.user.clone()), excerpt: None, deleted: true };
    }
    let excerpt = target.body.chars().take(EXCERPT_CHARS).collect();
    ReplyTo { id: target.id.clone(), user: Some(target.user.clone()), excerpt: Some(excerpt), deleted: false }
}

/// Checks an event (or a reply, `Kind::Message`) against its target's current state as the
/// gateway sees it. `edit_window_ms`: how long after sending its author may edit a message.
pub fn check(target: Option<&Message>, sub: &Submission, edit_window_ms: i64) -> Result<(), Refusal> {
    let target = target.filter(|t| t.room == sub.room && t.kind.is_message()).ok_or(Refusal::NoSuchMessage)?;
    if target.deleted {
        return Err(Refusal::Deleted);
    }
    match sub.kind {
        Kind::Message | Kind::Moderation => Ok(()),
        Kind::Delete if target.user.id != sub.user.id && sub.moderator => {
            if sub.shielded.as_ref().is_some_and(|owner| *owner == *target.user.id) {
                Err(Refusal::NotAuthor)
            } else {
                Ok(())
            }
        }
        Kind::Edit | Kind::Delete if target.user.id != sub.user.id => Err(Refusal::NotAuthor),
        Kind::Edit if sub.ts - target.ts > edit_window_ms => Err(Refusal::WindowPassed),
        Kind::Edit | Kind::Delete => Ok(()),
        Kind::React | Kind::Unreact => {
            let emoji = sub.emoji.as_deref().unwrap_or_default();
            if !valid_emoji(emoji) {
                return Err(Refusal::BadEmoji);
            }
            let known = target.reactions.iter().any(|r| r.emoji == emoji);
            let cap = sub.max_reactions.unwrap_or(usize::MAX);
            if sub.kind == Kind::React && !known && target.reactions.len() >= cap {
                return Err(Refusal::TooManyReactions);
            }
            Ok(())
        }
    }
}

/// Applies an event to its target (already [`check`]ed by the gateway, which may have seen
/// an older state) and fills in the event's record: an edit's body and time, a reaction's
/// users after it. Returns [`Refusal`] when it changes nothing; the event then gets no `seq`.
pub fn apply(target: &mut Message, event: &mut Message, sub: &Submission) -> Result<(), Refusal> {
    check(Some(target), sub, i64::MAX)?;
    let emoji = sub.emoji.clone().unwrap_or_default();
    match sub.kind {
        Kind::Message | Kind::Moderation => return Err(Refusal::NoChange),
        Kind::Edit => {
            target.body.clone_from(&sub.body);
            target.edited_at = Some(sub.ts);
            event.edited_at = Some(sub.ts);
        }
        Kind::Delete => {
            event.moderator = target.user.id != sub.user.id;
            target.moderator = event.moderator;
            target.body.clear();
            target.deleted = true;
            target.edited_at = None;
            target.reactions.clear();
        }
        Kind::React => {
            let users = match target.reactions.iter_mut().find(|r| r.emoji == emoji) {
                Some(r) if r.users.iter().any(|u| u.id == sub.user.id) => return Err(Refusal::NoChange),
                Some(r) => &mut r.users,
                None => {
                    target.reactions.push(Reaction { emoji: emoji.clone(), users: Vec::new() });
                    &mut target.reactions.last_mut().ok_or(Refusal::NoChange)?.users
                }
            };
            users.push(sub.user.clone());
            event.reactions = vec![Reaction { emoji, users: users.clone() }];
        }
        Kind::Unreact => {
            let at = target.reactions.iter().position(|r| r.emoji == emoji).ok_or(Refusal::NoChange)?;
            let users = &mut target.reactions[at].users;
            let before = users.len();
            users.retain(|u| u.id != sub.user.id);
            if users.len() == before {
                return Err(Refusal::NoChange);
            }
            let after = users.clone();
            if after.is_empty() {
                target.reactions.remove(at);
            }
            event.reactions = vec![Reaction { emoji, users: after }];
        }
    }
    Ok(())
}

/// Fills in what records leave out in the store: a reply's summary of its target and an
/// edit's body (the edited message's current body; flagged `deleted` when it is gone).
pub async fn hydrate(store: &dyn MessageStore, records: &mut [Message]) -> PortResult<()> {
    let wanted: Vec<String> = records
        .iter()
        .filter_map(|m| match m.kind {
            Kind::Message => m.reply_to.as_ref().map(|r| r.id.clone()),
            Kind::Edit => m.target.clone(),
            _ => None,
        })
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let mut known: HashMap<String, Message> = records
        .iter()
        .filter(|m| m.kind.is_message() && wanted.contains(&m.id))
        .map(|m| (m.id.clone(), m.clone()))
        .collect();
    let missing: Vec<String> = wanted.into_iter().filter(|id| !known.contains_key(id)).collect();
    if !missing.is_empty() {
        known.extend(store.existing(&missing).await?);
    }
    for m in records.iter_mut() {
        match m.kind {
            Kind::Message => {
                if let Some(reply) = m.reply_to.as_mut() {
                    if let Some(target) = known.get(&reply.id) {
                        *reply = summary(target);
                    }
                }
            }
            Kind::Edit => match m.target.as_ref().and_then(|t| known.get(t)) {
                Some(target) if !target.deleted => m.body.clone_from(&target.body),
                _ => m.deleted = true,
            },
            _ => {}
        }
    }
    Ok(())
}

/// Who reacted, for tests and clients written in Rust.
pub fn reactors<'a>(m: &'a Message, emoji: &str) -> &'a [UserRef] {
    m.reactions.iter().find(|r| r.emoji == emoji).map_or(&[], |r| r.users.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> UserRef {
        UserRef { id: id.into(), name: id.into() }
    }

    fn message(id: &str, author: &str) -> Message {
        Message {
            id: id.into(),
            room: "r".into(),
            seq: 1,
            user: user(author),
            body: "hello".into(),
            ..Message::default()
        }
    }

    fn event(kind: Kind, by: &str, emoji: Option<&str>) -> Submission {
        Submission {
            id: format!("e-{by}"),
            room: "r".into(),
            user: user(by),
            body: if kind == Kind::Edit { "changed".into() } else { String::new() },
            kind,
            target: Some("m".into()),
            emoji: emoji.map(str::to_owned),
            max_reactions: Some(2),
            ..Submission::default()
        }
    }

    fn run(target: &mut Message, sub: &Submission) -> Result<Message, Refusal> {
        let mut record = Message::from_submission(sub.clone(), 2);
        apply(target, &mut record, sub).map(|()| record)
    }

    #[test]
    fn emoji_are_one_grapheme_or_a_short_name() {
        for ok in ["👍", "❤️", "👩‍👩‍👧", "🇫🇷", ":thumbs_up:", ":+1:", "✅"] {
            assert!(valid_emoji(ok), "{ok}");
        }
        for bad in
            ["", "👍👍", "a", "ok", ":", "::", "é", "?", ":with space:", &format!(":{}:", "x".repeat(31)), " ", "1"]
        {
            assert!(!valid_emoji(bad), "{bad}");
        }
    }

    #[test]
    fn only_the_author_edits_or_deletes_and_never_a_deleted_message() {
        let mut m = message("m", "ann");
        assert_eq!(run(&mut m, &event(Kind::Edit, "bob", None)), Err(Refusal::NotAuthor));
        assert_eq!(m.body, "hello");
        let edit = run(&mut m, &event(Kind::Edit, "ann", None)).unwrap();
        assert_eq!((m.body.as_str(), m.edited_at.is_some(), edit.edited_at), ("changed", true, m.edited_at));
        assert_eq!(run(&mut m, &event(Kind::Delete, "bob", None)), Err(Refusal::NotAuthor));
        run(&mut m, &event(Kind::Delete, "ann", None)).unwrap();
        assert!(m.deleted && m.body.is_empty());
        assert_eq!(run(&mut m, &event(Kind::Edit, "ann", None)), Err(Refusal::Deleted));
        assert_eq!(run(&mut m, &event(Kind::React, "bob", Some("👍"))), Err(Refusal::Deleted));
    }

    #[test]
    fn reactions_are_sets_with_a_cap_on_distinct_emoji() {
        let mut m = message("m", "ann");
        let first = run(&mut m, &event(Kind::React, "bob", Some("👍"))).unwrap();
        assert_eq!(first.reactions[0].users, [user("bob")]);
        assert_eq!(run(&mut m, &event(Kind::React, "bob", Some("👍"))), Err(Refusal::NoChange));
        let second = run(&mut m, &event(Kind::React, "cat", Some("👍"))).unwrap();
        assert_eq!(second.reactions[0].users, [user("bob"), user("cat")]);
        run(&mut m, &event(Kind::React, "bob", Some(":tada:"))).unwrap();
        assert_eq!(run(&mut m, &event(Kind::React, "bob", Some("🎉"))), Err(Refusal::TooManyReactions));
        assert_eq!(run(&mut m, &event(Kind::React, "bob", Some("xx"))), Err(Refusal::BadEmoji));
        let gone = run(&mut m, &event(Kind::Unreact, "bob", Some(":tada:"))).unwrap();
        assert!(gone.reactions[0].users.is_empty());
        assert_eq!(reactors(&m, ":tada:").len(), 0);
        assert_eq!(m.reactions.len(), 1);
        assert_eq!(run(&mut m, &event(Kind::Unreact, "bob", Some(":tada:"))), Err(Refusal::NoChange));
    }

    #[test]
    fn the_edit_window_is_measured_from_the_send() {
        let m = message("m", "ann");
        let mut late = event(Kind::Edit, "ann", None);
        late.ts = m.ts + 1_001;
        assert_eq!(check(Some(&m), &late, 1_000), Err(Refusal::WindowPassed));
        assert_eq!(check(Some(&m), &late, 2_000), Ok(()));
    }

    #[test]
    fn events_and_replies_only_reach_messages_of_their_room() {
        let mut other = message("m", "ann");
        other.room = "elsewhere".into();
        let reply = Submission { kind: Kind::Message, reply_to: Some("m".into()), ..event(Kind::Message, "bob", None) };
        assert_eq!(check(Some(&other), &reply, 0), Err(Refusal::NoSuchMessage));
        assert_eq!(check(None, &event(Kind::React, "bob", Some("👍")), 0), Err(Refusal::NoSuchMessage));
        let summary = summary(&message("m", "ann"));
        assert_eq!((summary.excerpt.as_deref(), summary.deleted), (Some("hello"), false));
    }
}
