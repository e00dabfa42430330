//! Room fan-out: what one gateway publishes reaches the subscribed sink with the same bytes,
//! in publish order, with `seq` and the typing sender to skip read from the frame.

use bytes::Bytes;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aurora_core::distributed::RedisBus;
use aurora_core::embedded::MemoryBus;
use aurora_core::model::Message;
use aurora_core::ports::{Bus, BusSink, RoomEvent};
use aurora_core::protocol::ServerFrame;

use crate::{unique, user};

#[derive(Default)]
struct Sink(Mutex<Vec<(String, RoomEvent)>>);

impl BusSink for Sink {
    fn deliver(&self, room: &str, event: RoomEvent) {
        self.0.lock().unwrap().push((room.to_owned(), event));
    }
}

impl Sink {
    /// What `room` received, once `n` events arrived (or the deadline passed).
    async fn received(&self, room: &str, n: usize) -> Vec<RoomEvent> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let got: Vec<RoomEvent> =
                self.0.lock().unwrap().iter().filter(|(r, _)| r == room).map(|(_, e)| e.clone()).collect();
            if got.len() >= n || tokio::time::Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn message(room: &str, seq: u64) -> RoomEvent {
    let m = Message {
        id: unique("m"),
        room: room.to_owned(),
        seq,
        user: user("ann"),
        body: format!("body {seq}"),
        ts: 1,
        nonce: None,
        ..Default::default()
    };
    RoomEvent { seq: Some(seq), skip_user: None, frame: Bytes::from(ServerFrame::Message(&m).encode()) }
}

async fn contract(bus: &dyn Bus, sink: &Sink) {
    let room = unique("room");
    bus.subscribe(&room).await.unwrap();
    let first = message(&room, 1);
    bus.publish(&room, first.clone()).await.unwrap();
    let batch: Vec<(String, RoomEvent)> = (2..=20).map(|s| (room.clone(), message(&room, s))).collect();
    bus.publish_many(batch.clone()).await.unwrap();
    let got = sink.received(&room, 20).await;
    let seqs: Vec<Option<u64>> = got.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=20).map(Some).collect::<Vec<_>>(), "every event once, in publish order");
    assert_eq!(got[0].frame, first.frame, "the frame's bytes arrive as published");
    assert!(got.iter().all(|e| e.skip_user.is_none()), "messages go to every member");

    // A typing frame skips its sender's own connections.
    let ann = user("ann");
    let typing = ServerFrame::Typing { room: &room, user: &ann }.encode();
    let skip = Some(Arc::<str>::from(ann.id.as_ref()));
    bus.publish(&room, RoomEvent { seq: None, skip_user: skip.clone(), frame: Bytes::from(typing) }).await.unwrap();
    let got = sink.received(&room, 21).await;
    assert_eq!(got.len(), 21);
    assert_eq!((got[20].seq, got[20].skip_user.clone()), (None, skip));
    bus.unsubscribe(&room).await.unwrap();
}

#[tokio::test]
async fn embedded() {
    let bus = MemoryBus::default();
    let sink = Arc::new(Sink::default());
    bus.attach(sink.clone());
    contract(&bus, &sink).await;
}

#[tokio::test]
async fn distributed() {
    let client = redis::Client::open(crate::env("AURORA_REDIS_URL")).expect("a redis:// URL");
    let (bus, subscriber) = RedisBus::new(client, crate::redis().await);
    let subscriber = tokio::spawn(subscriber);
    let sink = Arc::new(Sink::default());
    bus.attach(sink.clone());
    contract(bus.as_ref(), &sink).await;
    subscriber.abort();
}
