//! Room fan-out over Redis pub/sub: channel `aurora:room:<name>` carries
//! ready-to-send server frames. One task owns the subscriber connection,
//! reconnects with backoff, resubscribes, and asks the hub to resync each room
//! (members then backfill anything published while the connection was down).

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, PubSubSink, PubSubStream};
use serde::Deserialize;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use tokio::sync::{mpsc, oneshot};

use crate::ports::{Bus, BusSink, Dependency, FailureKind, PortError, PortResult, RoomEvent};

pub const ROOM_CHANNEL_PREFIX: &str = "aurora:room:";

pub fn room_channel(room: &str) -> String {
    format!("{ROOM_CHANNEL_PREFIX}{room}")
}

pub(crate) fn redis_err(e: redis::RedisError) -> PortError {
    let kind = if e.is_timeout() {
        FailureKind::Timeout
    } else if e.is_connection_refusal() || e.is_connection_dropped() || e.is_io_error() {
        FailureKind::Connection
    } else {
        FailureKind::Error
    };
    PortError::unavailable(Dependency::Redis, kind, e)
}

enum Command {
    Subscribe(String, oneshot::Sender<PortResult<()>>),
    Unsubscribe(String),
}

type Sink = Arc<OnceLock<Arc<dyn BusSink>>>;

pub struct RedisBus {
    publisher: ConnectionManager,
    commands: mpsc::Sender<Command>,
    sink: Sink,
}

impl RedisBus {
    /// The bus and its subscriber task (to spawn; runs until aborted).
    pub fn new(client: redis::Client, publisher: ConnectionManager) -> (Arc<Self>, impl Future<Output = ()> + Send) {
        let (tx, rx) = mpsc::channel(1024);
        let sink: Sink = Arc::new(OnceLock::new());
        let task = subscriber(client, rx, sink.clone());
        (Arc::new(RedisBus { publisher, commands: tx, sink }), task)
    }
}

#[derive(Deserialize)]
struct PeekUser<'a> {
    #[serde(borrow)]
    id: &'a str,
}

#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    seq: Option<u64>,
    #[serde(borrow)]
    user: Option<PeekUser<'a>>,
    #[serde(borrow, default)]
    joins: Vec<PeekUser<'a>>,
    #[serde(borrow, default)]
    leaves: Vec<PeekUser<'a>>,
}

/// Reads what the hub needs from a frame: its `seq`, and whose own
/// connections skip it (typing, and a user's own presence join).
pub fn event_from_frame(payload: &[u8]) -> Option<RoomEvent> {
    let peek: Peek = serde_json::from_slice(payload).ok()?;
    let skip_user = match peek.kind {
        "typing" => peek.user.map(|u| Arc::from(u.id)),
        "presence" if peek.joins.len() == 1 && peek.leaves.is_empty() => Some(Arc::from(peek.joins[0].id)),
        _ => None,
    };
    Some(RoomEvent { seq: peek.seq, skip_user, frame: Bytes::copy_from_slice(payload) })
}

async fn subscriber(client: redis::Client, commands: mpsc::Receiver<Command>, sink: Sink) {
    let subscriber =
        Subscriber { client, commands, sink, wanted: HashMap::new(), backoff: crate::backoff::Backoff::reconnect() };
    subscriber.run().await;
}

/// What the subscriber does after a connection ended or failed.
enum Flow {
    Reconnect,
    /// The bus was dropped: stop.
    Stop,
}

/// The one pub/sub connection of a gateway, reconnected with backoff; the rooms it carries
/// are resubscribed and resynced after every reconnect.
struct Subscriber {
    client: redis::Client,
    commands: mpsc::Receiver<Command>,
    sink: Sink,
    /// Subscriptions per room, counted: the hub subscribes on a room's first local member
    /// and unsubscribes on its last, and the two commands of a quick leave + join may
    /// arrive in either order; counting keeps the channel while anyone wants it.
    wanted: HashMap<String, usize>,
    backoff: crate::backoff::Backoff,
}

impl Subscriber {
    async fn run(mut self) {
        let mut reconnecting = false;
        loop {
            let pubsub = match self.client.get_async_pubsub().await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "redis subscriber connection failed; retrying");
                    if let Flow::Stop = self.refuse_until_retry().await {
                        return;
                    }
                    reconnecting = true;
                    continue;
                }
            };
            self.backoff.reset();
            let (mut subs, stream) = pubsub.split();
            let Some(rooms) = self.resubscribe(&mut subs).await else { continue };
            if reconnecting {
                tracing::info!(rooms = rooms.len(), "redis subscriber reconnected; resyncing rooms");
                if let Some(s) = self.sink.get() {
                    for room in &rooms {
                        s.resync(room);
                    }
                }
            }
            reconnecting = true;
            if let Flow::Stop = self.serve(subs, stream).await {
                return;
            }
        }
    }

    /// Waits out the backoff delay, refusing subscriptions meanwhile so joins answer
    /// `unavailable`.
    async fn refuse_until_retry(&mut self) -> Flow {
        let deadline = tokio::time::sleep(self.backoff.next_delay());
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => return Flow::Reconnect,
                cmd = self.commands.recv() => match cmd {
                    None => return Flow::Stop,
                    Some(Command::Subscribe(_, reply)) => {
                        let down = PortError::unavailable(Dependency::Redis, FailureKind::Connection, "pub/sub is down");
                        let _ = reply.send(Err(down));
                    }
                    Some(Command::Unsubscribe(room)) => {
                        release(&mut self.wanted, &room);
                    }
                }
            }
        }
    }

    /// Subscribes the new connection to every wanted room; `None` when one failed.
    async fn resubscribe(&self, subs: &mut PubSubSink) -> Option<Vec<String>> {
        let rooms: Vec<String> = self.wanted.keys().cloned().collect();
        for room in &rooms {
            if let Err(e) = subs.subscribe(room_channel(room)).await {
                tracing::warn!(room, error = %e, "resubscribe failed");
                return None;
            }
        }
        Some(rooms)
    }

    /// Carries commands and room traffic until the connection breaks or the bus is dropped.
    async fn serve(&mut self, mut subs: PubSubSink, mut stream: PubSubStream) -> Flow {
        loop {
            tokio::select! {
                cmd = self.commands.recv() => match cmd {
                    None => return Flow::Stop,
                    Some(Command::Subscribe(room, reply)) => {
                        let r = self.subscribe(&mut subs, room).await;
                        let failed = r.is_err();
                        let _ = reply.send(r);
                        if failed {
                            return Flow::Reconnect;
                        }
                    }
                    Some(Command::Unsubscribe(room)) => {
                        if release(&mut self.wanted, &room) && subs.unsubscribe(room_channel(&room)).await.is_err() {
                            return Flow::Reconnect;
                        }
                    }
                },
                msg = stream.next() => match msg {
                    None => {
                        tracing::warn!("redis subscriber connection lost; reconnecting");
                        return Flow::Reconnect;
                    }
                    Some(msg) => self.deliver(&msg),
                },
            }
        }
    }

    async fn subscribe(&mut self, subs: &mut PubSubSink, room: String) -> PortResult<()> {
        if let Some(n) = self.wanted.get_mut(&room) {
            *n += 1;
            return Ok(());
        }
        subs.subscribe(room_channel(&room)).await.map_err(redis_err)?;
        self.wanted.insert(room, 1);
        Ok(())
    }

    fn deliver(&self, msg: &redis::Msg) {
        let channel = msg.get_channel_name();
        let Some(room) = channel.strip_prefix(ROOM_CHANNEL_PREFIX) else { return };
        match (event_from_frame(msg.get_payload_bytes()), self.sink.get()) {
            (Some(event), Some(s)) => s.deliver(room, event),
            (None, _) => tracing::warn!(room, "dropping an unreadable room frame"),
            _ => {}
        }
    }
}

async fn publish(conn: &ConnectionManager, room: &str, event: &RoomEvent) -> PortResult<()> {
    let mut conn = conn.clone();
    redis::cmd("PUBLISH")
        .arg(room_channel(room))
        .arg(event.frame.as_ref())
        .query_async::<i64>(&mut conn)
        .await
        .map(|_| ())
        .map_err(redis_err)
}

/// Drops one subscription to `room`; true when it was the last.
fn release(wanted: &mut HashMap<String, usize>, room: &str) -> bool {
    match wanted.get_mut(room) {
        Some(n) if *n > 1 => {
            *n -= 1;
            false
        }
        Some(_) => {
            wanted.remove(room);
            true
        }
        None => false,
    }
}

#[async_trait]
impl Bus for RedisBus {
    fn attach(&self, sink: Arc<dyn BusSink>) {
        if self.sink.set(sink).is_err() {
            tracing::warn!("bus sink attached twice; keeping the first");
        }
    }

    async fn publish(&self, room: &str, event: RoomEvent) -> PortResult<()> {
        publish(&self.publisher, room, &event).await
    }

    async fn subscribe(&self, room: &str) -> PortResult<()> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Subscribe(room.to_owned(), tx))
            .await
            .map_err(|_| PortError::Stopped("redis subscriber"))?;
        rx.await.map_err(|_| PortError::Stopped("redis subscriber"))?
    }

    async fn unsubscribe(&self, room: &str) -> PortResult<()> {
        self.commands
            .send(Command::Unsubscribe(room.to_owned()))
            .await
            .map_err(|_| PortError::Stopped("redis subscriber"))
    }
}

/// Publish-only bus for the consumer tier.
pub struct RedisPublisher {
    conn: ConnectionManager,
}

impl RedisPublisher {
    pub fn new(conn: ConnectionManager) -> Self {
        RedisPublisher { conn }
    }
}

#[async_trait]
impl Bus for RedisPublisher {
    fn attach(&self, _sink: Arc<dyn BusSink>) {}

    async fn publish(&self, room: &str, event: RoomEvent) -> PortResult<()> {
        publish(&self.conn, room, &event).await
    }

    async fn publish_many(&self, events: Vec<(String, RoomEvent)>) -> PortResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (room, event) in &events {
            pipe.cmd("PUBLISH").arg(room_channel(room)).arg(event.frame.as_ref()).ignore();
        }
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn).await.map_err(redis_err)
    }

    async fn subscribe(&self, _room: &str) -> PortResult<()> {
        Err(PortError::Unsupported("the consumer's bus only publishes"))
    }

    async fn unsubscribe(&self, _room: &str) -> PortResult<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_are_counted_so_a_late_unsubscribe_keeps_the_channel() {
        let mut wanted = HashMap::from([("r".to_owned(), 1)]);
        // A new first member subscribed before the last one's unsubscribe arrived.
        *wanted.get_mut("r").unwrap() += 1;
        assert!(!release(&mut wanted, "r"), "still wanted");
        assert!(release(&mut wanted, "r"), "the last release unsubscribes");
        assert!(!release(&mut wanted, "r"), "nothing left to release");
    }

    #[test]
    fn frames_tell_the_hub_their_seq_and_who_skips_them() {
        let m = event_from_frame(br#"{"type":"message","room":"r","seq":7,"user":{"id":"u1","name":"a"}}"#).unwrap();
        assert_eq!((m.seq, m.skip_user), (Some(7), None));
        let t = event_from_frame(br#"{"type":"typing","room":"r","user":{"id":"u1","name":"a"}}"#).unwrap();
        assert_eq!(t.skip_user.as_deref(), Some("u1"));
        let j = event_from_frame(br#"{"type":"presence","room":"r","joins":[{"id":"u2","name":"b"}],"leaves":[]}"#)
            .unwrap();
        assert_eq!(j.skip_user.as_deref(), Some("u2"), "a user's own join");
        let l = event_from_frame(br#"{"type":"presence","room":"r","joins":[],"leaves":[{"id":"u2","name":"b"}]}"#)
            .unwrap();
        assert_eq!(l.skip_user, None);
        assert!(event_from_frame(b"not json").is_none());
    }
}
