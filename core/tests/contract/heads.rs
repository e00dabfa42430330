//! Recorded seqs (`room_heads` in MongoDB): what a writer meeting a room reads instead of
//! sorting the room's messages. They may trail the stored messages, never lead them, and a
//! writer that trusts one that trails still stores gap-free.

use std::sync::Arc;

use aurora_core::distributed::heads::COMPLETE;
use aurora_core::embedded::{FileStore, MemoryBus};
use aurora_core::model::{Message, Room, Submission};
use aurora_core::pipeline::{last_seqs, Pipeline};
use aurora_core::ports::{MessageStore, RoomStore};
use mongodb::bson::{doc, Document};

use crate::{unique, user};

fn submission(room: &str) -> Submission {
    let id = unique("m");
    Submission {
        body: id.clone(),
        id,
        room: room.to_owned(),
        user: user("ann"),
        ts: aurora_core::now_ms(),
        ..Default::default()
    }
}

/// Records the rooms' last seqs of a stored batch, as the consumer does.
async fn record(store: &dyn MessageStore, stored: &[Message]) {
    store.record_seqs(&last_seqs(stored)).await;
}

/// Five messages through the pipeline, as the consumer stores and records them.
async fn five<S: MessageStore + 'static>(store: Arc<S>, room: &str) -> Vec<Message> {
    let mut pipeline = Pipeline::new(store.clone(), Arc::new(MemoryBus::default()));
    let stored = pipeline.store((0..5).map(|_| submission(room)).collect()).await.unwrap();
    record(store.as_ref(), &stored).await;
    stored
}

async fn recorded<S: MessageStore + RoomStore + 'static>(store: Arc<S>) {
    let room = unique("room");
    assert_eq!(store.recorded_seq(&room).await.unwrap(), 0, "a new room starts at 0");
    let stored = five(store.clone(), &room).await;
    assert_eq!(store.recorded_seq(&room).await.unwrap(), 5);
    record(store.as_ref(), &stored[..3]).await;
    assert_eq!(store.recorded_seq(&room).await.unwrap(), 5, "a late, lower record does not lower it");
    // A deleted room starts again at 1, even when a record of its old life comes in late.
    store.create_room(Room::new_api(&room, None)).await.unwrap();
    assert!(store.drop_room(&room).await.unwrap());
    assert_eq!(store.recorded_seq(&room).await.unwrap(), 0);
    record(store.as_ref(), &stored).await;
    assert_eq!(store.recorded_seq(&room).await.unwrap(), 0, "a record of its old life is not taken");
    five(store.clone(), &room).await;
    let (all, _) = store.after(&room, 0, 10).await.unwrap();
    assert_eq!(all.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn embedded_recorded_seqs() {
    let dir = tempfile::tempdir().unwrap();
    recorded(Arc::new(FileStore::open(dir.path()).unwrap())).await;
}

#[tokio::test]
async fn distributed_recorded_seqs() {
    let store = Arc::new(crate::mongo().await);
    store.complete_heads().await.unwrap();
    recorded(store).await;
}

/// The raw `room_heads` collection of the test server.
async fn heads() -> mongodb::Collection<Document> {
    let client = mongodb::Client::with_uri_str(crate::env("AURORA_MONGODB_URI")).await.unwrap();
    client.database("aurora").collection(aurora_core::distributed::heads::COLLECTION)
}

/// A crash between a batch's insert and its record leaves the record behind: the next
/// message of the room still takes the next seq, none is skipped or taken twice.
#[tokio::test]
async fn a_record_that_trails_costs_a_retry_not_a_gap() {
    let store = Arc::new(crate::mongo().await);
    store.complete_heads().await.unwrap();
    let room = unique("room");
    let stored = five(store.clone(), &room).await;
    // The record as it was two messages into the room.
    heads().await.update_one(doc! {"_id": &room}, doc! {"$set": {"seq": 2_i64, "id": &stored[1].id}}).await.unwrap();
    assert_eq!(store.recorded_seq(&room).await.unwrap(), 2);

    // A consumer started after the crash: it meets the room through the trailing record.
    let mut restarted = Pipeline::new(store.clone(), Arc::new(MemoryBus::default()));
    let stored = restarted.store(vec![submission(&room), submission(&room)]).await.unwrap();
    assert_eq!(stored.iter().map(|m| m.seq).collect::<Vec<_>>(), [6, 7]);
    record(store.as_ref(), &stored).await;
    assert_eq!(store.recorded_seq(&room).await.unwrap(), 7, "the record caught up");
    let (all, _) = store.after(&room, 0, 10).await.unwrap();
    assert_eq!(all.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6, 7]);
}

/// Rooms stored before `room_heads` existed: looked up exactly until one pass has filled
/// their records in.
#[tokio::test]
async fn rooms_stored_before_the_records_are_filled_in() {
    let store = Arc::new(crate::mongo().await);
    store.complete_heads().await.unwrap();
    let room = unique("room");
    let stored = five(store.clone(), &room).await;
    // As a database written by a version without records: no record, no marker.
    let raw = heads().await;
    raw.delete_one(doc! {"_id": &room}).await.unwrap();
    raw.delete_one(doc! {"_id": COMPLETE}).await.unwrap();

    let upgraded = Arc::new(crate::mongo().await);
    assert_eq!(upgraded.recorded_seq(&room).await.unwrap(), 5, "no marker: the exact lookup");
    assert!(upgraded.complete_heads().await.unwrap() >= 1);
    let head = raw.find_one(doc! {"_id": &room}).await.unwrap().expect("filled in");
    assert_eq!(head.get_i64("seq").unwrap(), 5);
    assert_eq!(head.get_str("id").unwrap(), stored[4].id, "with its message");
    assert!(raw.find_one(doc! {"_id": COMPLETE}).await.unwrap().is_some(), "the marker is back");
    assert_eq!(upgraded.complete_heads().await.unwrap(), 0, "once per database");
}
