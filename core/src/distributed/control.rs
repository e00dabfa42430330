//! Room configuration announcements on the Redis channel `aurora:control`.
//!
//! The operator announces that a room was created, updated or deleted; gateways
//! re-read that room from the store. Announcements are hints, not the source of
//! truth: a gateway also re-reads every room after (re)connecting and periodically,
//! so a missed announcement heals.

use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use tokio::sync::mpsc;

use super::redis_bus::redis_err;
use crate::control::{ControlSignal, RoomChange, CONTROL_CHANNEL};
use crate::ports::PortResult;

/// Publishes `change` on the control channel.
pub async fn announce(conn: &ConnectionManager, change: &RoomChange) -> PortResult<()> {
    let payload = serde_json::to_string(change).map_err(crate::ports::PortError::corrupt)?;
    let mut conn = conn.clone();
    redis::cmd("PUBLISH")
        .arg(CONTROL_CHANNEL)
        .arg(payload)
        .query_async::<i64>(&mut conn)
        .await
        .map(|_| ())
        .map_err(redis_err)
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
            match serde_json::from_slice::<RoomChange>(msg.get_payload_bytes()) {
                Ok(change) => {
                    if tx.send(ControlSignal::Room(change)).await.is_err() {
                        return;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "ignoring an unreadable control announcement"),
            }
        }
        tracing::warn!("control channel connection lost; reconnecting");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::RoomOp;

    #[test]
    fn announcements_have_a_stable_wire_form() {
        let change = RoomChange { op: RoomOp::Deleted, room: "ops".into() };
        let text = serde_json::to_string(&change).unwrap();
        assert_eq!(text, r#"{"op":"deleted","room":"ops"}"#);
        assert_eq!(serde_json::from_str::<RoomChange>(&text).unwrap(), change);
    }
}
