//! Users, rooms and messages: the redb file store and MongoDB.

use aurora_core::audit::{Action, AuditLog, AuditRecord, Notice};
use aurora_core::embedded::FileStore;
use aurora_core::model::{Kind, Message, Reaction, ReplyTo, Room, UserRecord, UserRef, Visibility};
use aurora_core::moderation::Moderation;
use aurora_core::ports::{MessageStore, PortError, RoomStore, UserStore};
use aurora_core::reads::ReadStore;

use crate::{unique, user};

async fn users(store: &dyn UserStore) {
    let name = unique("Ann");
    let record = UserRecord {
        id: unique("id"),
        name: name.clone(),
        password_hash: "h".into(),
        created_at: 1,
        deactivated: false,
    };
    store.create_user(record.clone()).await.unwrap();
    let found = store.user_by_name(&name.to_uppercase()).await.unwrap().expect("case-insensitive lookup");
    assert_eq!((found.id.as_str(), found.name.as_str()), (record.id.as_str(), name.as_str()));
    assert_eq!(store.user_by_id(&record.id).await.unwrap().map(|u| u.name), Some(name.clone()));
    let taken = UserRecord { id: unique("id"), name: name.to_lowercase(), ..record };
    assert_eq!(store.create_user(taken).await.unwrap_err(), PortError::Conflict, "names are case-insensitive");
    assert!(store.user_by_name(&unique("nobody")).await.unwrap().is_none());
    assert!(store.set_deactivated(&record.id, true).await.unwrap());
    assert!(store.user_by_name(&name).await.unwrap().is_some_and(|u| u.deactivated));
    assert!(store.set_deactivated(&record.id, false).await.unwrap());
    assert!(store.user_by_id(&record.id).await.unwrap().is_some_and(|u| !u.deactivated));
    assert!(!store.set_deactivated(&unique("nobody"), true).await.unwrap());

    // Blocks: per user, set and unset, idempotent.
    let (me, x, y) = (unique("me"), unique("x"), unique("y"));
    assert!(store.blocked(&me).await.unwrap().is_empty());
    store.set_blocked(&me, &x, true).await.unwrap();
    store.set_blocked(&me, &x, true).await.unwrap();
    store.set_blocked(&me, &y, true).await.unwrap();
    store.set_blocked(&x, &me, true).await.unwrap();
    let mut mine = store.blocked(&me).await.unwrap();
    mine.sort();
    let mut want = vec![x.clone(), y.clone()];
    want.sort();
    assert_eq!(mine, want);
    store.set_blocked(&me, &x, false).await.unwrap();
    store.set_blocked(&me, &x, false).await.unwrap();
    assert_eq!(store.blocked(&me).await.unwrap(), [y]);
    assert_eq!(store.blocked(&x).await.unwrap(), [me]);
}

fn room(name: &str, title: &str) -> Room {
    let mut r: Room = serde_json::from_value(serde_json::json!({"name": name, "title": title})).unwrap();
    r.name = name.to_owned();
    r
}

async fn rooms(store: &dyn RoomStore) {
    let name = unique("room");
    store.create_room(room(&name, "first")).await.unwrap();
    assert_eq!(store.create_room(room(&name, "again")).await.unwrap_err(), PortError::Conflict);
    store.ensure_room(room(&name, "ensured")).await.unwrap();
    assert_eq!(store.room(&name).await.unwrap().unwrap().title, "first", "ensure leaves an existing room");
    let other = unique("room");
    store.ensure_room(room(&other, "new")).await.unwrap();
    let all: Vec<String> = store.rooms().await.unwrap().into_iter().map(|r| r.name).collect();
    assert!(all.contains(&name) && all.contains(&other), "{all:?}");
    assert!(store.room(&unique("none")).await.unwrap().is_none());

    // Members leave atomically; moderation changes only over the revision they read.
    let private = unique("room");
    let mut r = room(&private, "p");
    r.members = vec!["ann".into(), "bob".into()];
    store.create_room(r).await.unwrap();
    assert!(store.remove_member(&private, "BOB").await.unwrap());
    assert!(!store.remove_member(&private, "bob").await.unwrap(), "not a member any more");
    assert!(!store.remove_member(&unique("none"), "ann").await.unwrap());
    assert_eq!(store.room(&private).await.unwrap().unwrap().members, ["ann"]);
    assert!(store.add_member(&private, "Bob").await.unwrap());
    assert!(!store.add_member(&private, "bob").await.unwrap(), "a member already");
    assert!(store.room(&private).await.unwrap().unwrap().members.contains(&"bob".to_owned()));
    assert!(!store.add_member(&unique("none"), "ann").await.unwrap());
    assert!(store.update_room(&private, Some("New title"), Some(Visibility::Public)).await.unwrap());
    let changed = store.room(&private).await.unwrap().unwrap();
    assert_eq!((changed.title.as_str(), changed.visibility), ("New title", Visibility::Public));
    assert_eq!(changed.members, ["ann", "bob"], "the rest stays");
    store.update_room(&private, None, Some(Visibility::Private)).await.unwrap();
    assert!(!store.update_room(&unique("none"), Some("x"), None).await.unwrap());
    let mut m = Moderation { frozen: true, ..Moderation::default() };
    assert!(store.set_moderation(&private, &m, 0).await.unwrap());
    assert!(!store.set_moderation(&private, &m, 0).await.unwrap(), "revision 0 is gone");
    m.slow_mode_ms = Some(5000);
    assert!(store.set_moderation(&private, &m, 1).await.unwrap());
    let stored = store.room(&private).await.unwrap().unwrap().moderation;
    assert_eq!((stored.rev, stored.frozen, stored.slow_mode_ms), (2, true, Some(5000)));
    assert!(!store.set_moderation(&unique("none"), &m, 0).await.unwrap());
}

async fn reads(store: &dyn ReadStore) {
    let (ann, room) = (UserRef { id: unique("id").into(), name: "ann".into() }, unique("room"));
    assert_eq!(store.joined(&ann, &room, 7).await.unwrap(), 7, "a first join starts the pointer");
    assert_eq!(store.joined(&ann, &room, 9).await.unwrap(), 7, "later joins leave it");
    assert_eq!(store.mark_read(&ann, &room, 12).await.unwrap(), 12);
    assert_eq!(store.mark_read(&ann, &room, 3).await.unwrap(), 12, "never lowered");
    let bob = UserRef { id: unique("id").into(), name: "bob".into() };
    store.mark_read(&bob, &room, 20).await.unwrap();
    let readers = store.readers(&room, 10).await.unwrap();
    let seen: Vec<(&str, u64)> = readers.iter().map(|r| (&*r.user.name, r.seq)).collect();
    assert_eq!(seen, [("bob", 20), ("ann", 12)], "furthest first");
    assert_eq!(store.readers(&room, 1).await.unwrap().len(), 1);
    assert_eq!(store.read_pointers(&ann.id).await.unwrap().get(&room), Some(&12));
}

async fn audit(log: &dyn AuditLog) {
    let room = unique("room");
    for (i, action) in [Action::Grant, Action::Ban, Action::Kick].into_iter().enumerate() {
        let entry = AuditRecord {
            id: unique("a"),
            room: room.clone(),
            at: 1_000 + i as i64,
            actor: "ann".into(),
            action,
            target: Some("bob".into()),
            reason: None,
            until: None,
            interval_ms: None,
        };
        log.record(entry).await.unwrap();
    }
    let got: Vec<Action> = log.audit(&room, 2).await.unwrap().into_iter().map(|e| e.action).collect();
    assert_eq!(got, [Action::Kick, Action::Ban], "newest first, limited");
}

fn message(room: &str, seq: u64, nonce: Option<&str>) -> Message {
    let author = user("ann");
    Message {
        id: unique("m"),
        room: room.to_owned(),
        seq,
        user: author,
        body: format!("body {seq}"),
        ts: aurora_core::now_ms(),
        nonce: nonce.map(str::to_owned),
        ..Default::default()
    }
}

async fn messages<S: MessageStore + RoomStore>(store: &S) {
    let room = unique("room");
    assert_eq!(store.last_seq(&room).await.unwrap(), 0);
    let batch: Vec<Message> = (1..=5).map(|s| message(&room, s, None)).collect();
    store.insert(&batch).await.unwrap();
    store.insert(&batch[3..]).await.unwrap(); // stored again: a no-op
    assert_eq!(store.last_seq(&room).await.unwrap(), 5);
    let seqs = |v: Vec<Message>| v.into_iter().map(|m| m.seq).collect::<Vec<_>>();
    assert_eq!(seqs(store.before(&room, None, 3).await.unwrap()), [3, 4, 5], "newest, oldest first");
    assert_eq!(seqs(store.before(&room, Some(3), 10).await.unwrap()), [1, 2]);
    let (after, truncated) = store.after(&room, 1, 2).await.unwrap();
    assert_eq!((seqs(after), truncated), (vec![4, 5], true), "the newest two after 1, older left out");
    let (after, truncated) = store.after(&room, 3, 10).await.unwrap();
    assert_eq!((seqs(after), truncated), (vec![4, 5], false));
    assert_eq!(store.before(&room, None, 10).await.unwrap()[0], batch[0], "a message reads back as stored");

    let ids: Vec<String> = vec![batch[1].id.clone(), unique("missing")];
    let existing = store.existing(&ids).await.unwrap();
    assert_eq!(existing.len(), 1);
    assert_eq!(existing[&batch[1].id].seq, 2);
    // A failover's re-sent batch: hundreds of ids, most stored, some not.
    let big = unique("room");
    let many: Vec<Message> = (1..=600).map(|s| message(&big, s, None)).collect();
    store.insert(&many).await.unwrap();
    let mut ids: Vec<String> = many.iter().map(|m| m.id.clone()).collect();
    ids.extend((0..50).map(|_| unique("missing")));
    let existing = store.existing(&ids).await.unwrap();
    assert_eq!(existing.len(), 600, "every stored id of a large lookup, none of the missing");
    assert!(many.iter().all(|m| existing.get(&m.id).is_some_and(|e| e.seq == m.seq)));

    let sent = message(&room, 6, Some("n-1"));
    store.insert(std::slice::from_ref(&sent)).await.unwrap();
    let since = sent.ts - 1000;
    assert_eq!(store.id_by_nonce(&room, &sent.user.id, "n-1", since).await.unwrap(), Some(sent.id.clone()));
    assert_eq!(store.id_by_nonce(&room, &sent.user.id, "n-2", since).await.unwrap(), None);
    assert_eq!(store.id_by_nonce(&room, "someone-else", "n-1", since).await.unwrap(), None);
    assert_eq!(store.id_by_nonce(&room, &sent.user.id, "n-1", sent.ts + 1000).await.unwrap(), None, "too old");

    // A dropped room takes its messages along.
    store.create_room(Room::new_api(&room, None)).await.unwrap();
    assert!(store.drop_room(&room).await.unwrap());
    assert!(store.room(&room).await.unwrap().is_none());
    assert!(store.before(&room, None, 10).await.unwrap().is_empty());
    assert!(store.existing(std::slice::from_ref(&batch[1].id)).await.unwrap().is_empty());
    assert!(!store.drop_room(&room).await.unwrap());
}

/// Events take seqs but `before` (history) skips those that change a message; `between` and `after` see them; a
/// changed message replaces the stored one, body and all.
async fn events(store: &dyn MessageStore) {
    let room = unique("room");
    let mut target = message(&room, 1, None);
    target.body = "a secret the author deletes".into();
    target.reply_to = None;
    let mut reaction = message(&room, 2, None);
    reaction.kind = Kind::React;
    reaction.target = Some(target.id.clone());
    reaction.emoji = Some("👍".into());
    reaction.body.clear();
    reaction.reactions = vec![Reaction { emoji: "👍".into(), users: vec![user("bob")] }];
    let mut reply = message(&room, 3, None);
    reply.reply_to = Some(ReplyTo { id: target.id.clone(), ..ReplyTo::default() });
    store.insert(&[target.clone(), reaction.clone()]).await.unwrap();
    let mut tombstone = target.clone();
    tombstone.body.clear();
    tombstone.deleted = true;
    let mut delete = message(&room, 4, None);
    delete.kind = Kind::Delete;
    delete.target = Some(target.id.clone());
    delete.body.clear();
    tombstone.moderator = true;
    let mut notice = message(&room, 5, None);
    notice.kind = Kind::Moderation;
    notice.body.clear();
    notice.notice = Some(Notice {
        action: Action::Mute,
        user: Some("bob".into()),
        reason: Some("calm down".into()),
        until: Some(notice.ts + 60_000),
        interval_ms: None,
    });
    store.commit(&[reply.clone(), delete.clone(), notice.clone()], std::slice::from_ref(&tombstone)).await.unwrap();

    let seqs = |v: &[Message]| v.iter().map(|m| m.seq).collect::<Vec<_>>();
    let history = store.before(&room, None, 10).await.unwrap();
    assert_eq!(seqs(&history), [1, 3, 5], "history holds messages and moderators' notices");
    assert_eq!(history[2], notice, "a notice reads back as stored");
    assert_eq!(history[0], tombstone, "in their current state");
    assert_eq!(history[1].reply_to.as_ref().map(|r| r.id.as_str()), Some(target.id.as_str()));
    assert_eq!(seqs(&store.before(&room, Some(3), 1).await.unwrap()), [1], "a page counts messages");
    assert_eq!(store.between(&room, 0, 4, 10).await.unwrap(), [tombstone.clone(), reaction.clone(), reply]);
    assert_eq!(seqs(&store.between(&room, 1, 5, 2).await.unwrap()), [2, 3], "the oldest of the range");
    let (all, _) = store.after(&room, 0, 10).await.unwrap();
    assert_eq!(seqs(&all), [1, 2, 3, 4, 5]);
    assert_eq!(all[1], reaction, "an event reads back as stored");
    assert_eq!(store.existing(std::slice::from_ref(&target.id)).await.unwrap()[&target.id].body, "");
}

#[tokio::test]
async fn embedded() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    users(&store).await;
    rooms(&store).await;
    messages(&store).await;
    events(&store).await;
    reads(&store).await;
    audit(&store).await;
}

#[tokio::test]
async fn distributed() {
    let store = crate::mongo().await;
    users(&store).await;
    rooms(&store).await;
    messages(&store).await;
    events(&store).await;
    reads(&aurora_core::distributed::reads::MongoReads::new(&store).await.unwrap()).await;
    audit(&aurora_core::distributed::audit::MongoAudit::new(&store).await.unwrap()).await;
}
