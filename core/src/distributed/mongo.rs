//! MongoDB stores (database `aurora`): `rooms`, `messages` (`users` and `blocks` are in
//! [`super::users`], `sessions` in [`super::sessions`], `room_heads` in [`super::heads`]).
//! Uses no transactions and no change streams, so FerretDB serves it too.

use async_trait::async_trait;
use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, Collection, Database, IndexModel};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use crate::model::{Kind, Message, Reaction, ReplyTo, Room, Visibility};
use crate::moderation::Moderation;
use crate::ports::{Dependency, FailureKind, MessageStore, PortError, PortResult, RecordedSeq, RoomStore};

const DUPLICATE_KEY: i32 = 11000;

/// [`MessageStore::existing`] looks up to this many ids one by one, more with `$in`.
const ONE_BY_ONE: usize = 8;
/// Ids per `$in` query.
const IN_CHUNK: usize = 500;

pub(super) fn is_duplicate(e: &mongodb::error::Error) -> bool {
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(we)) => we.code == DUPLICATE_KEY,
        ErrorKind::InsertMany(im) => {
            im.write_errors.as_ref().is_some_and(|errs| errs.iter().any(|w| w.code == DUPLICATE_KEY))
        }
        ErrorKind::Command(c) => c.code == DUPLICATE_KEY,
        _ => false,
    }
}

pub(super) fn unavailable(e: mongodb::error::Error) -> PortError {
    let kind = match e.kind.as_ref() {
        ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => FailureKind::Timeout,
        // No server answered within the selection timeout.
        ErrorKind::ServerSelection { .. } => FailureKind::Timeout,
        ErrorKind::Io(_) | ErrorKind::ConnectionPoolCleared { .. } | ErrorKind::DnsResolve { .. } => {
            FailureKind::Connection
        }
        _ => FailureKind::Error,
    };
    PortError::unavailable(Dependency::MongoDb, kind, e)
}

#[derive(Debug, Serialize, Deserialize)]
struct RoomDoc {
    #[serde(rename = "_id")]
    id: String,
    #[serde(flatten)]
    room: Room,
}

#[derive(Debug, Serialize, Deserialize)]
struct MessageDoc {
    #[serde(rename = "_id")]
    id: String,
    room: String,
    seq: i64,
    user: crate::model::UserRef,
    #[serde(default)]
    body: String,
    ts: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
    #[serde(default, skip_serializing_if = "Kind::is_message")]
    kind: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    /// The reply target's id (the summary is filled in when sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reply_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    emoji: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    edited_at: Option<i64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    deleted: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    reactions: Vec<Reaction>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    moderator: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    notice: Option<crate::audit::Notice>,
}

impl From<&Message> for MessageDoc {
    fn from(m: &Message) -> Self {
        MessageDoc {
            id: m.id.clone(),
            room: m.room.clone(),
            seq: m.seq as i64,
            user: m.user.clone(),
            body: m.body.clone(),
            ts: m.ts,
            nonce: m.nonce.clone(),
            kind: m.kind,
            target: m.target.clone(),
            reply_to: m.reply_to.as_ref().map(|r| r.id.clone()),
            emoji: m.emoji.clone(),
            edited_at: m.edited_at,
            deleted: m.deleted,
            reactions: m.reactions.clone(),
            moderator: m.moderator,
            notice: m.notice.clone(),
        }
    }
}

impl From<MessageDoc> for Message {
    fn from(d: MessageDoc) -> Self {
        Message {
            id: d.id,
            room: d.room,
            seq: d.seq.max(0) as u64,
            user: d.user,
            body: d.body,
            ts: d.ts,
            nonce: d.nonce,
            kind: d.kind,
            target: d.target,
            reply_to: d.reply_to.map(|id| ReplyTo { id, ..ReplyTo::default() }),
            emoji: d.emoji,
            edited_at: d.edited_at,
            deleted: d.deleted,
            reactions: d.reactions,
            moderator: d.moderator,
            notice: d.notice,
        }
    }
}

/// Users, rooms and messages in one MongoDB database; cheap to clone.
#[derive(Clone)]
pub struct MongoStore {
    db: Database,
    pub(super) users: Collection<super::users::UserDoc>,
    pub(super) blocks: Collection<super::users::BlockDoc>,
    rooms: Collection<RoomDoc>,
    messages: Collection<MessageDoc>,
    pub(super) heads: Collection<super::heads::HeadDoc>,
    /// Every room with messages has a head ([`super::heads`]); once true, stays true.
    pub(super) heads_known: Arc<AtomicBool>,
}

impl MongoStore {
    /// Connects (lazily) and makes sure the indexes exist.
    pub async fn connect(uri: &str) -> PortResult<Self> {
        let mut options = ClientOptions::parse(uri).await.map_err(unavailable)?;
        options.app_name = Some("aurora".into());
        options.server_selection_timeout = Some(Duration::from_secs(3));
        options.connect_timeout = Some(Duration::from_secs(3));
        let client = Client::with_options(options).map_err(unavailable)?;
        let db = client.database("aurora");
        let store = MongoStore {
            users: db.collection("users"),
            blocks: db.collection("blocks"),
            rooms: db.collection("rooms"),
            messages: db.collection("messages"),
            heads: db.collection(super::heads::COLLECTION),
            heads_known: Arc::new(AtomicBool::new(false)),
            db,
        };
        store.ensure_indexes().await?;
        Ok(store)
    }

    async fn ensure_indexes(&self) -> PortResult<()> {
        let unique = || IndexOptions::builder().unique(true).build();
        self.users
            .create_index(IndexModel::builder().keys(doc! {"name_lower": 1}).options(unique()).build())
            .await
            .map_err(unavailable)?;
        self.messages
            .create_index(IndexModel::builder().keys(doc! {"room": 1, "seq": 1}).options(unique()).build())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    pub(super) fn database(&self) -> &Database {
        &self.db
    }

    pub async fn ping(&self) -> PortResult<()> {
        self.db.run_command(doc! {"ping": 1}).await.map(|_| ()).map_err(unavailable)
    }
}

#[async_trait]
impl RoomStore for MongoStore {
    async fn create_room(&self, room: Room) -> PortResult<()> {
        match self.rooms.insert_one(RoomDoc { id: room.name.clone(), room }).await {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate(&e) => Err(PortError::Conflict),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn ensure_room(&self, room: Room) -> PortResult<()> {
        match self.create_room(room).await {
            Ok(()) | Err(PortError::Conflict) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn room(&self, name: &str) -> PortResult<Option<Room>> {
        let found = self.rooms.find_one(doc! {"_id": name}).await.map_err(unavailable)?;
        Ok(found.map(|d| d.room))
    }

    async fn rooms(&self) -> PortResult<Vec<Room>> {
        let docs: Vec<RoomDoc> =
            self.rooms.find(doc! {}).await.map_err(unavailable)?.try_collect().await.map_err(unavailable)?;
        Ok(docs.into_iter().map(|d| d.room).collect())
    }

    async fn set_moderation(&self, room: &str, moderation: &Moderation, expected_rev: u64) -> PortResult<bool> {
        let mut moderation = moderation.clone();
        moderation.rev = expected_rev + 1;
        let value = mongodb::bson::to_bson(&moderation).map_err(PortError::corrupt)?;
        let result = self
            .rooms
            .update_one(at_rev(room, expected_rev), doc! {"$set": {"moderation": value}})
            .await
            .map_err(unavailable)?;
        Ok(result.matched_count > 0)
    }

    async fn remove_member(&self, room: &str, username: &str) -> PortResult<bool> {
        let user = username.to_lowercase();
        let filter = doc! {"_id": room, "members": &user};
        let result = self.rooms.update_one(filter, doc! {"$pull": {"members": &user}}).await.map_err(unavailable)?;
        Ok(result.modified_count > 0)
    }

    async fn update_room(&self, name: &str, title: Option<&str>, visibility: Option<Visibility>) -> PortResult<bool> {
        let mut set = Document::new();
        if let Some(t) = title {
            set.insert("title", t);
        }
        if let Some(v) = visibility {
            set.insert("visibility", mongodb::bson::to_bson(&v).map_err(PortError::corrupt)?);
        }
        if set.is_empty() {
            return Ok(self.room(name).await?.is_some());
        }
        let result = self.rooms.update_one(doc! {"_id": name}, doc! {"$set": set}).await.map_err(unavailable)?;
        Ok(result.matched_count > 0)
    }

    async fn drop_room(&self, name: &str) -> PortResult<bool> {
        let existed = self.room(name).await?.is_some();
        if existed {
            self.delete_room(name).await?;
        }
        Ok(existed)
    }

    async fn add_member(&self, room: &str, username: &str) -> PortResult<bool> {
        let user = username.to_lowercase();
        let filter = doc! {"_id": room, "members": {"$ne": &user}};
        let result = self.rooms.update_one(filter, doc! {"$push": {"members": &user}}).await.map_err(unavailable)?;
        Ok(result.modified_count > 0)
    }
}

#[async_trait]
impl MessageStore for MongoStore {
    async fn last_seq(&self, room: &str) -> PortResult<u64> {
        let last = self.messages.find_one(doc! {"room": room}).sort(doc! {"seq": -1}).await.map_err(unavailable)?;
        Ok(last.map_or(0, |d| d.seq.max(0) as u64))
    }

    async fn recorded_seq(&self, room: &str) -> PortResult<u64> {
        self.head(room).await
    }

    async fn record_seqs(&self, last: &[RecordedSeq]) {
        self.raise_heads(last).await;
    }

    async fn insert(&self, messages: &[Message]) -> PortResult<()> {
        if messages.is_empty() {
            return Ok(());
        }
        let docs: Vec<MessageDoc> = messages.iter().map(MessageDoc::from).collect();
        match self.messages.insert_many(docs).ordered(true).await {
            Ok(_) => Ok(()),
            // Retried batches: already-stored ids are fine, a (room, seq) taken by another id is not.
            Err(e) if is_duplicate(&e) => self.insert_one_by_one(messages).await,
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Replaces each message by id (its new state after events). A delete's tombstone
    /// replaces the whole document, so the body is gone from the store.
    async fn update(&self, messages: &[Message]) -> PortResult<()> {
        for m in messages {
            self.messages.replace_one(doc! {"_id": &m.id}, MessageDoc::from(m)).await.map_err(unavailable)?;
        }
        Ok(())
    }

    async fn before(&self, room: &str, before: Option<u64>, limit: usize) -> PortResult<Vec<Message>> {
        // Messages (stored in their current state) and notices, not the events that changed them.
        let changes: Vec<Bson> = Kind::CHANGES.iter().filter_map(|k| mongodb::bson::to_bson(k).ok()).collect();
        let events = doc! {"$nin": changes};
        let filter = match before {
            Some(b) => doc! {"room": room, "seq": {"$lt": b as i64}, "kind": events},
            None => doc! {"room": room, "kind": events},
        };
        let docs: Vec<MessageDoc> = self
            .messages
            .find(filter)
            .sort(doc! {"seq": -1})
            .limit(limit as i64)
            .await
            .map_err(unavailable)?
            .try_collect()
            .await
            .map_err(unavailable)?;
        Ok(docs.into_iter().rev().map(Message::from).collect())
    }

    async fn between(&self, room: &str, after: u64, before: u64, limit: usize) -> PortResult<Vec<Message>> {
        let docs: Vec<MessageDoc> = self
            .messages
            .find(doc! {"room": room, "seq": {"$gt": after as i64, "$lt": before as i64}})
            .sort(doc! {"seq": 1})
            .limit(limit as i64)
            .await
            .map_err(unavailable)?
            .try_collect()
            .await
            .map_err(unavailable)?;
        Ok(docs.into_iter().map(Message::from).collect())
    }

    async fn after(&self, room: &str, after: u64, limit: usize) -> PortResult<(Vec<Message>, bool)> {
        let mut docs: Vec<MessageDoc> = self
            .messages
            .find(doc! {"room": room, "seq": {"$gt": after as i64}})
            .sort(doc! {"seq": -1})
            .limit(limit as i64 + 1)
            .await
            .map_err(unavailable)?
            .try_collect()
            .await
            .map_err(unavailable)?;
        let truncated = docs.len() > limit;
        docs.truncate(limit);
        Ok((docs.into_iter().rev().map(Message::from).collect(), truncated))
    }

    async fn existing(&self, ids: &[String]) -> PortResult<HashMap<String, Message>> {
        // MongoDB serves both shapes from the `_id` index. FerretDB 1.24 on SQLite serves
        // neither (its `_id` pushdown does not match its index's expression), so each query
        // reads the collection: a few ids one by one (a found one stops early), a batch of
        // re-sent ids (after a gateway failover: hundreds) in one `$in` per chunk, one read
        // of the collection instead of one per id.
        let mut found = HashMap::new();
        if ids.len() <= ONE_BY_ONE {
            for id in ids {
                if let Some(d) = self.messages.find_one(doc! {"_id": id}).await.map_err(unavailable)? {
                    found.insert(id.clone(), Message::from(d));
                }
            }
            return Ok(found);
        }
        for chunk in ids.chunks(IN_CHUNK) {
            let mut cursor = self.messages.find(doc! {"_id": {"$in": chunk}}).await.map_err(unavailable)?;
            while let Some(d) = cursor.try_next().await.map_err(unavailable)? {
                found.insert(d.id.clone(), Message::from(d));
            }
        }
        Ok(found)
    }

    async fn id_by_nonce(&self, room: &str, user_id: &str, nonce: &str, since_ms: i64) -> PortResult<Option<String>> {
        // Distributed mode dedupes through Redis (`RedisNonces`); this is the store's
        // side of the same port contract as the embedded store's.
        let filter = doc! {"room": room, "nonce": nonce, "user.id": user_id, "ts": {"$gte": since_ms}};
        let found = self.messages.find_one(filter).await.map_err(unavailable)?;
        Ok(found.map(|d| d.id))
    }
}

/// The room `name` while its moderation is at revision `rev` (0: never changed).
fn at_rev(name: &str, rev: u64) -> mongodb::bson::Document {
    let rev = i64::try_from(rev).unwrap_or(i64::MAX);
    if rev == 0 {
        doc! {"_id": name, "$or": [{"moderation.rev": 0_i64}, {"moderation.rev": {"$exists": false}}]}
    } else {
        doc! {"_id": name, "moderation.rev": rev}
    }
}

impl MongoStore {
    /// Creates or replaces the registration of a room (the operator's copy of a ChatRoom),
    /// keeping the room's [`Moderation`] (the API's): a replace applies only over the
    /// moderation revision it read, and is tried again when a moderator acted meanwhile.
    pub async fn put_room(&self, room: &Room) -> PortResult<()> {
        loop {
            let existing = self.room(&room.name).await?;
            let mut desired = room.clone();
            let filter = match &existing {
                Some(e) => {
                    desired.moderation = e.moderation.clone();
                    at_rev(&room.name, e.moderation.rev)
                }
                None => doc! {"_id": &room.name},
            };
            let doc = RoomDoc { id: room.name.clone(), room: desired };
            match self.rooms.replace_one(filter, doc).upsert(existing.is_none()).await {
                Ok(r) if existing.is_none() || r.matched_count > 0 => return Ok(()),
                Ok(_) => {}
                Err(e) if is_duplicate(&e) => {}
                Err(e) => return Err(unavailable(e)),
            }
        }
    }

    /// Deletes a room and every stored message of it; returns how many messages went.
    pub async fn delete_room(&self, name: &str) -> PortResult<u64> {
        // The head first: one left ahead of its messages would start the room's next life above 1.
        self.bury_head(name).await?;
        let gone = self.messages.delete_many(doc! {"room": name}).await.map_err(unavailable)?.deleted_count;
        self.rooms.delete_one(doc! {"_id": name}).await.map_err(unavailable)?;
        Ok(gone)
    }

    async fn insert_one_by_one(&self, messages: &[Message]) -> PortResult<()> {
        for m in messages {
            match self.messages.insert_one(MessageDoc::from(m)).await {
                Ok(_) => {}
                Err(e) if is_duplicate(&e) => {
                    let stored = self.messages.find_one(doc! {"_id": &m.id}).await.map_err(unavailable)?;
                    match stored {
                        Some(d) if d.seq as u64 == m.seq => {}
                        // The same id stored under another seq, or the seq taken by another id.
                        other => {
                            tracing::debug!(id = %m.id, room = %m.room, seq = m.seq, stored_seq = other.map(|d| d.seq), "insert conflict");
                            return Err(PortError::Conflict);
                        }
                    }
                }
                Err(e) => return Err(unavailable(e)),
            }
        }
        Ok(())
    }
}
