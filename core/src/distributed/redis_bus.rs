//! Room fan-out over Redis pub/sub: channel `aurora:room:<name>` carries
//! ready-to-send server frames. One task owns the subscriber connection,
//! reconnects with backoff, resubscribes, and asks the hub to resync each room
//! (members then backfill anything published while the connection was down).

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use serde::Deserialize;
use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

use crate::ports::{Bus, BusSink, PortError, PortResult, RoomEvent};

pub const ROOM_CHANNEL_PREFIX: &str = "aurora:room:";

pub fn room_channel(room: &str) -> String {
    format!("{ROOM_CHANNEL_PREFIX}{room}")
}

pub(crate) fn redis_err(e: redis::RedisError) -> PortError {
    PortError::Unavailable(format!("redis: {e}"))
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

async fn subscriber(client: redis::Client, mut commands: mpsc::Receiver<Command>, sink: Sink) {
    let wanted: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut backoff = Duration::from_millis(100);
    let mut reconnecting = false;
    loop {
        let pubsub = match client.get_async_pubsub().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "redis subscriber connection failed; retrying");
                // Refuse subscriptions while down, so joins answer `unavailable`.
                let deadline = tokio::time::sleep(backoff);
                tokio::pin!(deadline);
                loop {
                    tokio::select! {
                        _ = &mut deadline => break,
                        cmd = commands.recv() => match cmd {
                            None => return,
                            Some(Command::Subscribe(_, reply)) => {
                                let _ = reply.send(Err(PortError::Unavailable("redis pub/sub is down".into())));
                            }
                            Some(Command::Unsubscribe(room)) => { wanted.lock().map(|mut w| w.remove(&room)).ok(); }
                        }
                    }
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                reconnecting = true;
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        let (mut subs, mut stream) = pubsub.split();
        let rooms: Vec<String> = wanted.lock().map(|w| w.iter().cloned().collect()).unwrap_or_default();
        let mut ok = true;
        for room in &rooms {
            if let Err(e) = subs.subscribe(room_channel(room)).await {
                tracing::warn!(room, error = %e, "resubscribe failed");
                ok = false;
                break;
            }
        }
        if !ok {
            continue;
        }
        if reconnecting {
            tracing::info!(rooms = rooms.len(), "redis subscriber reconnected; resyncing rooms");
            if let Some(s) = sink.get() {
                for room in &rooms {
                    s.resync(room);
                }
            }
        }
        reconnecting = true;
        loop {
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    None => return,
                    Some(Command::Subscribe(room, reply)) => {
                        let r = subs.subscribe(room_channel(&room)).await.map_err(redis_err);
                        if r.is_ok() {
                            wanted.lock().map(|mut w| w.insert(room)).ok();
                        }
                        let failed = r.is_err();
                        let _ = reply.send(r);
                        if failed {
                            break;
                        }
                    }
                    Some(Command::Unsubscribe(room)) => {
                        wanted.lock().map(|mut w| w.remove(&room)).ok();
                        if subs.unsubscribe(room_channel(&room)).await.is_err() {
                            break;
                        }
                    }
                },
                msg = stream.next() => match msg {
                    None => {
                        tracing::warn!("redis subscriber connection lost; reconnecting");
                        break;
                    }
                    Some(msg) => {
                        let channel = msg.get_channel_name();
                        let Some(room) = channel.strip_prefix(ROOM_CHANNEL_PREFIX) else { continue };
                        match (event_from_frame(msg.get_payload_bytes()), sink.get()) {
                            (Some(event), Some(s)) => s.deliver(room, event),
                            (None, _) => tracing::warn!(room, "dropping an unreadable room frame"),
                            _ => {}
                        }
                    }
                },
            }
        }
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
        let mut conn = self.publisher.clone();
        redis::cmd("PUBLISH")
            .arg(room_channel(room))
            .arg(event.frame.as_ref())
            .query_async::<i64>(&mut conn)
            .await
            .map(|_| ())
            .map_err(redis_err)
    }

    async fn subscribe(&self, room: &str) -> PortResult<()> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Subscribe(room.to_owned(), tx))
            .await
            .map_err(|_| PortError::Unavailable("redis subscriber stopped".into()))?;
        rx.await.map_err(|_| PortError::Unavailable("redis subscriber stopped".into()))?
    }

    async fn unsubscribe(&self, room: &str) -> PortResult<()> {
        self.commands
            .send(Command::Unsubscribe(room.to_owned()))
            .await
            .map_err(|_| PortError::Unavailable("redis subscriber stopped".into()))
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
        let mut conn = self.conn.clone();
        redis::cmd("PUBLISH")
            .arg(room_channel(room))
            .arg(event.frame.as_ref())
            .query_async::<i64>(&mut conn)
            .await
            .map(|_| ())
            .map_err(redis_err)
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
        Err(PortError::Unavailable("the consumer's bus only publishes".into()))
    }

    async fn unsubscribe(&self, _room: &str) -> PortResult<()> {
        Ok(())
    }
}
