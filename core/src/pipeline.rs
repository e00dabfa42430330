//! The fan-out pipeline: assign gap-free per-room `seq`, persist, then publish.
//! Embedded mode drives it from the in-process log; the consumer drives it from Kafka.

use std::collections::HashMap;
use std::sync::Arc;

use crate::model::{Message, Submission};
use crate::ports::{Bus, MessageStore, PortResult, RoomEvent};
use crate::protocol::ServerFrame;

pub struct Pipeline {
    store: Arc<dyn MessageStore>,
    bus: Arc<dyn Bus>,
    last_seq: HashMap<String, u64>,
}

impl Pipeline {
    pub fn new(store: Arc<dyn MessageStore>, bus: Arc<dyn Bus>) -> Self {
        Pipeline { store, bus, last_seq: HashMap::new() }
    }

    /// Processes a batch in order. On a storage error nothing of the batch is
    /// published and the cached sequence numbers are reloaded next time.
    pub async fn process(&mut self, batch: Vec<Submission>) -> PortResult<Vec<Message>> {
        let mut messages = Vec::with_capacity(batch.len());
        for sub in batch {
            let last = match self.last_seq.get(&sub.room) {
                Some(seq) => *seq,
                None => self.store.last_seq(&sub.room).await?,
            };
            self.last_seq.insert(sub.room.clone(), last + 1);
            messages.push(Message::from_submission(sub, last + 1));
        }
        if let Err(e) = self.store.insert(&messages).await {
            self.last_seq.clear();
            return Err(e);
        }
        for m in &messages {
            let event = RoomEvent {
                seq: Some(m.seq),
                skip_user: None,
                frame: ServerFrame::Message(m).encode().into(),
            };
            if let Err(e) = self.bus.publish(&m.room, event).await {
                // Stored already: members detect the gap and backfill from the store.
                tracing::warn!(room = %m.room, seq = m.seq, error = %e, "publish failed");
            }
        }
        Ok(messages)
    }
}
