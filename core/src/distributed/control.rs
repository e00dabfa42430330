//! Announcements (`crate::control`) on the Redis channel `aurora:control`.

use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use tokio::sync::mpsc;

use super::redis_bus::redis_err;
use crate::control::{Announcement, Announcer, ControlSignal, RoomChange, CONTROL_CHANNEL};
use crate::ports::PortResult;

/// Publishes `change` on the control channel.
pub async fn announce(conn: &ConnectionManager, change: &RoomChange) -> PortResult<()> {
    publish(conn, &Announcement::Room(change.clone())).await
}

/// Tells every gateway that the server API keys in the store changed.
pub async fn announce_keys(conn: &ConnectionManager) -> PortResult<()> {
    publish(conn, &Announcement::Keys(crate::control::KeysChange { op: crate::control::KeysOp::Keys })).await
}

async fn publish(conn: &ConnectionManager, announcement: &Announcement) -> PortResult<()> {
    let payload = serde_json::to_string(announcement).map_err(crate::ports::PortError::corrupt)?;
    let mut conn = conn.clone();
    redis::cmd("PUBLISH")
        .arg(CONTROL_CHANNEL)
        .arg(payload)
        .query_async::<i64>(&mut conn)
        .await
        .map(|_| ())
        .map_err(redis_err)
}

/// A gateway's announcements, heard by every gateway subscribed to the channel.
pub struct RedisAnnouncer {
    conn: ConnectionManager,
}

impl RedisAnnouncer {
    pub fn new(conn: ConnectionManager) -> Self {
        RedisAnnouncer { conn }
    }
}

#[async_trait::async_trait]
impl Announcer for RedisAnnouncer {
    async fn announce(&self, announcement: Announcement) -> PortResult<()> {
        publish(&self.conn, &announcement).await
    }
}

/// Subscribes to the control channel until `tx` is closed, reconnecting with backoff.
/// Sends [`ControlSignal::Resync`] after every (re)subscription.
pub async fn listen(client: redis::Client, tx: mpsc::Sender<ControlSignal>) {
    let mut backoff = crate::backoff::Backoff::reconnect();
    loop {
        let mut pubsub = match client.get_async_pubsub().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "control channel connection failed; retrying");
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
        };
        if let Err(e) = pubsub.subscribe(CONTROL_CHANNEL).await {
            tracing::warn!(error = %e, "control channel subscribe failed; retrying");
            tokio::time::sleep(backoff.next_delay()).await;
            continue;
        }
        backoff.reset();
        if tx.send(ControlSignal::Resync).await.is_err() {
            return;
        }
        let mut stream = pubsub.on_message();
        while let Some(msg) = stream.next().await {
            match serde_json::from_slice::<Announcement>(msg.get_payload_bytes()) {
                Ok(announcement) => {
                    if tx.send(announcement.into()).await.is_err() {
                        return;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "ignoring an unreadable control announcement"),
            }
        }
        tracing::warn!("control channel connection lost; reconnecting");
    }
}
