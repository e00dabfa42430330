//! The rooms' recorded seqs ([`MessageStore::record_seqs`]): raised every few seconds off the
//! batch path, and once more when the consumer stops, so a restarted or newly assigned
//! consumer starts a room from its record instead of sorting its messages.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aurora_core::model::Message;
use aurora_core::ports::{MessageStore, RecordedSeq};
use tokio_util::sync::CancellationToken;

/// How often the records are raised: at most this much of a room's traffic is looked up
/// exactly after a crash.
pub const INTERVAL: Duration = Duration::from_secs(2);

/// The rooms' last published seqs not yet recorded.
#[derive(Clone, Default)]
pub struct Records {
    pending: Arc<Mutex<HashMap<String, RecordedSeq>>>,
}

impl Records {
    /// Notes a published batch.
    pub fn note(&self, messages: &[Message]) {
        let last = aurora_core::pipeline::last_seqs(messages);
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        for r in last {
            match pending.get_mut(&r.room) {
                Some(at) if at.seq >= r.seq => {}
                Some(at) => *at = r,
                None => {
                    pending.insert(r.room.clone(), r);
                }
            }
        }
    }

    /// Records what was noted since the last flush.
    pub async fn flush(&self, store: &dyn MessageStore) {
        let heads: Vec<RecordedSeq> =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner)).into_values().collect();
        if !heads.is_empty() {
            store.record_seqs(&heads).await;
        }
    }

    /// Flushes every [`INTERVAL`] until `shutdown` (the caller flushes once more after its
    /// last batch).
    pub async fn run(self, store: Arc<dyn MessageStore>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => self.flush(store.as_ref()).await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(room: &str, seq: u64) -> Message {
        Message { id: format!("{room}-{seq}"), room: room.into(), seq, ..Default::default() }
    }

    /// A store that keeps what it was asked to record.
    #[derive(Default)]
    struct Recorded {
        seen: Mutex<Vec<(String, u64, String)>>,
    }

    #[async_trait::async_trait]
    impl MessageStore for Recorded {
        async fn last_seq(&self, _room: &str) -> aurora_core::ports::PortResult<u64> {
            Ok(0)
        }
        async fn insert(&self, _m: &[Message]) -> aurora_core::ports::PortResult<()> {
            Ok(())
        }
        async fn update(&self, _m: &[Message]) -> aurora_core::ports::PortResult<()> {
            Ok(())
        }
        async fn before(&self, _r: &str, _b: Option<u64>, _l: usize) -> aurora_core::ports::PortResult<Vec<Message>> {
            Ok(Vec::new())
        }
        async fn after(&self, _r: &str, _a: u64, _l: usize) -> aurora_core::ports::PortResult<(Vec<Message>, bool)> {
            Ok((Vec::new(), false))
        }
        async fn between(&self, _r: &str, _a: u64, _b: u64, _l: usize) -> aurora_core::ports::PortResult<Vec<Message>> {
            Ok(Vec::new())
        }
        async fn record_seqs(&self, last: &[RecordedSeq]) {
            self.seen.lock().unwrap().extend(last.iter().map(|r| (r.room.clone(), r.seq, r.id.clone())));
        }
    }

    #[tokio::test]
    async fn each_room_is_recorded_once_per_flush_at_its_highest_seq() {
        let records = Records::default();
        records.note(&[message("a", 1), message("b", 1), message("a", 2)]);
        records.note(&[message("a", 3)]);
        let store = Recorded::default();
        records.flush(&store).await;
        let mut seen = store.seen.lock().unwrap().clone();
        seen.sort();
        assert_eq!(seen, [("a".to_owned(), 3, "a-3".to_owned()), ("b".to_owned(), 1, "b-1".to_owned())]);
        records.flush(&store).await;
        assert_eq!(store.seen.lock().unwrap().len(), 2, "nothing new, nothing recorded again");
    }
}
