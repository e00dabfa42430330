//! The fan-out pipeline: assign gap-free per-room `seq`, persist, then publish.
//! Embedded mode drives it from the in-process log; the consumer drives it from
//! Kafka, where a batch may be redelivered after a crash and a partition may
//! briefly have two writers during a rebalance.

use std::collections::HashMap;
use std::sync::Arc;

use crate::model::{Message, Submission};
use crate::ports::{Bus, MessageStore, PortError, PortResult, RoomEvent};
use crate::protocol::ServerFrame;

/// Attempts when another writer took the `seq` we assigned.
const CONFLICT_RETRIES: usize = 5;

pub struct Pipeline {
    store: Arc<dyn MessageStore>,
    bus: Arc<dyn Bus>,
    last_seq: HashMap<String, u64>,
}

impl Pipeline {
    pub fn new(store: Arc<dyn MessageStore>, bus: Arc<dyn Bus>) -> Self {
        Pipeline { store, bus, last_seq: HashMap::new() }
    }

    /// Forgets cached sequence numbers (after a rebalance or an error).
    pub fn reset(&mut self) {
        self.last_seq.clear();
    }

    /// Processes a batch in order and returns its messages in `seq` order per room.
    /// Messages already stored (same id) keep their `seq` and are published again;
    /// nothing is published unless the whole batch is stored.
    pub async fn process(&mut self, batch: Vec<Submission>) -> PortResult<Vec<Message>> {
        let mut attempt = 0;
        loop {
            // The fast path assumes nothing of the batch is stored yet; a conflict (a
            // redelivered id, or a seq another writer took) switches to looking ids up.
            match self.try_process(&batch, attempt > 0).await {
                Err(PortError::Conflict) if attempt < CONFLICT_RETRIES => {
                    attempt += 1;
                    tracing::info!(attempt, "batch overlaps stored messages; reloading and retrying");
                    self.reset();
                }
                Err(e) => {
                    self.reset();
                    return Err(e);
                }
                Ok(messages) => {
                    self.publish(&messages).await;
                    return Ok(messages);
                }
            }
        }
    }

    async fn try_process(&mut self, batch: &[Submission], look_up: bool) -> PortResult<Vec<Message>> {
        let mut stored = if look_up {
            let ids: Vec<String> = batch.iter().map(|s| s.id.clone()).collect();
            self.store.existing(&ids).await?
        } else {
            HashMap::new()
        };
        let mut fresh = Vec::with_capacity(batch.len());
        let mut all = Vec::with_capacity(batch.len());
        for sub in batch {
            if let Some(m) = stored.remove(&sub.id) {
                let last = self.last_seq.entry(m.room.clone()).or_insert(0);
                *last = (*last).max(m.seq);
                all.push(m);
                continue;
            }
            let last = match self.last_seq.get(&sub.room) {
                Some(seq) => *seq,
                None => self.store.last_seq(&sub.room).await?,
            };
            self.last_seq.insert(sub.room.clone(), last + 1);
            let m = Message::from_submission(sub.clone(), last + 1);
            fresh.push(m.clone());
            all.push(m);
        }
        self.store.insert(&fresh).await?;
        Ok(all)
    }

    async fn publish(&self, messages: &[Message]) {
        let events = messages
            .iter()
            .map(|m| {
                let event =
                    RoomEvent { seq: Some(m.seq), skip_user: None, frame: ServerFrame::Message(m).encode().into() };
                (m.room.clone(), event)
            })
            .collect();
        if let Err(e) = self.bus.publish_many(events).await {
            // Stored already: members detect the gap and backfill from the store.
            tracing::warn!(messages = messages.len(), error = %e, "publish failed");
        }
    }
}
