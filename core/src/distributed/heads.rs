//! `room_heads`: the last message the consumer tier stored per room (`_id` = room name, its
//! `seq` and message `id`), so a writer that meets a room for the first time reads one
//! document by id instead of sorting the room's messages (a MongoDB index serves that sort;
//! FerretDB on SQLite reads the whole collection for it: 5–6 s at 200,000 messages).
//!
//! A head is a hint. The consumer raises the heads of the rooms it stored every few seconds
//! and when it stops, so they trail the messages after a crash, behind an older consumer, or
//! while two writers overlap in a rebalance: a writer that trusts one assigns a `seq` that is
//! taken, the unique `(room, seq)` index refuses the insert, and the pipeline retries with
//! [`MessageStore::last_seq`], the exact lookup. A deleted room's head is buried (marked, not
//! removed) before its messages go, so a raise racing the deletion cannot bring it back
//! ahead of a recreated room's messages; a buried room is looked up exactly.
//!
//! Rooms stored before the heads existed have none: until a writer has filled them in from the
//! messages (once per database, [`MongoStore::complete_heads`]) and written the marker, a room
//! without a head is looked up exactly.

use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::atomic::Ordering;

use super::mongo::{is_duplicate, unavailable, MongoStore};
use crate::ports::{MessageStore, PortResult, RecordedSeq};

/// Collection name.
pub const COLLECTION: &str = "room_heads";
/// The marker's `_id`: not a room name (those are lower-case letters, digits and `-`).
pub const COMPLETE: &str = "#complete";

/// `id` (the message's id) is kept for whoever reads the collection.
#[derive(Debug, Deserialize)]
pub(super) struct HeadDoc {
    #[serde(default)]
    seq: i64,
    #[serde(default)]
    deleted: bool,
}

impl MongoStore {
    /// The room's head; the exact lookup while heads are incomplete or after the room was
    /// deleted.
    pub(super) async fn head(&self, room: &str) -> PortResult<u64> {
        if !self.heads_complete().await? {
            return self.last_seq(room).await;
        }
        match self.heads.find_one(doc! {"_id": room}).await.map_err(unavailable)? {
            None => Ok(0),
            Some(head) if head.deleted => self.last_seq(room).await,
            Some(head) => Ok(head.seq.max(0) as u64),
        }
    }

    /// Marks a room's head deleted, before its messages go: a raise from its old life that
    /// comes in late (a consumer's periodic record) then leaves it alone.
    pub(super) async fn bury_head(&self, room: &str) -> PortResult<()> {
        self.heads
            .update_one(doc! {"_id": room}, doc! {"$set": {"seq": 0_i64, "deleted": true}, "$unset": {"id": ""}})
            .upsert(true)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    /// Raises each room's head to its given message, one `update` per room: FerretDB 1.24
    /// hung (and stopped answering anyone) on one `update` command of 200 upserts over
    /// existing heads. A failure is logged and ignored: a head that trails costs a refused
    /// insert and an exact lookup later.
    pub(super) async fn raise_heads(&self, last: &[RecordedSeq]) {
        for r in last {
            let seq = r.seq as i64;
            let raised = self
                .heads
                .update_one(
                    doc! {"_id": &r.room, "seq": {"$lt": seq}, "deleted": {"$ne": true}},
                    doc! {"$set": {"seq": seq, "id": &r.id}},
                )
                .upsert(true)
                .await;
            match raised {
                Ok(_) => {}
                // The head is at this seq or above already, or buried (the upsert's insert met it).
                Err(e) if is_duplicate(&e) => {}
                Err(e) => {
                    tracing::warn!(room = %r.room, error = %e, "room heads not raised");
                    return;
                }
            }
        }
    }

    /// Whether every room with messages has a head (the marker is written); cached once true.
    async fn heads_complete(&self) -> PortResult<bool> {
        if self.heads_known.load(Ordering::Acquire) {
            return Ok(true);
        }
        let marker = self.heads.find_one(doc! {"_id": COMPLETE}).await.map_err(unavailable)?;
        if marker.is_some() {
            self.heads_known.store(true, Ordering::Release);
        }
        Ok(marker.is_some())
    }

    /// Fills in the head of every room stored before heads existed, then writes the marker:
    /// one pass over the messages, once per database (a writer calls it at start; nothing to
    /// read on a new database). Returns how many rooms it filled in.
    pub async fn complete_heads(&self) -> PortResult<usize> {
        if self.heads_complete().await? {
            return Ok(0);
        }
        let mut last: HashMap<String, RecordedSeq> = HashMap::new();
        let mut cursor = self
            .database()
            .collection::<Document>("messages")
            .find(doc! {})
            .projection(doc! {"_id": 1, "room": 1, "seq": 1})
            .await
            .map_err(unavailable)?;
        while let Some(d) = cursor.try_next().await.map_err(unavailable)? {
            let (Ok(id), Ok(room), Some(seq)) =
                (d.get_str("_id"), d.get_str("room"), d.get("seq").and_then(Bson::as_i64))
            else {
                continue;
            };
            let seq = seq.max(0) as u64;
            match last.get_mut(room) {
                Some(head) if head.seq >= seq => {}
                Some(head) => {
                    head.seq = seq;
                    id.clone_into(&mut head.id);
                }
                None => {
                    last.insert(room.to_owned(), RecordedSeq { room: room.to_owned(), seq, id: id.to_owned() });
                }
            }
        }
        let heads: Vec<RecordedSeq> = last.into_values().collect();
        self.raise_heads(&heads).await;
        let marked = self.heads.update_one(doc! {"_id": COMPLETE}, doc! {"$set": {"seq": 0_i64}}).upsert(true).await;
        match marked {
            // Another writer's pass wrote it first.
            Err(e) if !is_duplicate(&e) => return Err(unavailable(e)),
            _ => {}
        }
        self.heads_known.store(true, Ordering::Release);
        tracing::info!(rooms = heads.len(), "room heads filled in from the stored messages");
        Ok(heads.len())
    }
}
