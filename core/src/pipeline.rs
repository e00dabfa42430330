//! The fan-out pipeline: assign gap-free per-room `seq`, persist, then publish.
//! Embedded mode drives it from the in-process log; the consumer drives it from
//! Kafka, where a batch may be redelivered after a crash and a partition may
//! briefly have two writers during a rebalance.

use std::collections::HashMap;
use std::sync::Arc;

use crate::events;
use crate::model::{Kind, Message, Submission};
use crate::ports::{Bus, MessageStore, PortError, PortResult, RecordedSeq, RoomEvent};
use crate::protocol::ServerFrame;

/// Attempts when another writer took the `seq` we assigned.
const CONFLICT_RETRIES: usize = 5;

pub struct Pipeline {
    store: Arc<dyn MessageStore>,
    bus: Arc<dyn Bus>,
    last_seq: HashMap<String, u64>,
    /// Look ids up before assigning: from a start or reassignment until a batch holds
    /// nothing already stored. Redelivered records only come right after those, and a
    /// batch must never be inserted on the assumption that none of it is stored (a
    /// server need not stop an ordered insert at the first duplicate, and records
    /// after it would keep seqs that leave holes).
    verify: bool,
    /// Look a room met for the first time up exactly ([`MessageStore::last_seq`]) rather than
    /// by its recorded seq: after a conflict, until a batch is stored.
    exact: bool,
    /// Records found already stored (redeliveries, retries) since the last [`Pipeline::take_duplicates`].
    duplicates: u64,
    /// Events that changed nothing (their target was gone, or a race made them moot) since
    /// the last [`Pipeline::take_ignored`]: acked, but given no `seq`.
    ignored: u64,
}

impl Pipeline {
    pub fn new(store: Arc<dyn MessageStore>, bus: Arc<dyn Bus>) -> Self {
        Pipeline { store, bus, last_seq: HashMap::new(), verify: true, exact: false, duplicates: 0, ignored: 0 }
    }

    /// Where the pipeline publishes.
    pub fn bus(&self) -> Arc<dyn Bus> {
        self.bus.clone()
    }

    /// Records skipped as already stored since the last call.
    pub fn take_duplicates(&mut self) -> u64 {
        std::mem::take(&mut self.duplicates)
    }

    /// Events that changed nothing since the last call.
    pub fn take_ignored(&mut self) -> u64 {
        std::mem::take(&mut self.ignored)
    }

    /// Rooms this pipeline has written since its last reset (start or reassignment).
    pub fn active_rooms(&self) -> usize {
        self.last_seq.len()
    }

    /// Forgets cached sequence numbers and verifies ids again (after a rebalance or an error).
    pub fn reset(&mut self) {
        self.last_seq.clear();
        self.verify = true;
    }

    /// Stores a batch in order and returns its messages in `seq` order per room, for the
    /// caller to hand to [`publish`] once the whole batch is stored (embedded mode publishes
    /// from the runtime, not the commit thread; the consumer times the two apart).
    /// Messages already stored (same id) keep their `seq` and are published again.
    pub async fn store(&mut self, batch: Vec<Submission>) -> PortResult<Vec<Message>> {
        let mut attempt = 0;
        loop {
            match self.try_process(&batch, self.verify).await {
                Err(PortError::Conflict) if attempt < CONFLICT_RETRIES => {
                    attempt += 1;
                    tracing::info!(attempt, "batch overlaps stored messages; reloading and retrying");
                    self.reset();
                    self.exact = true;
                }
                Err(e) => {
                    self.reset();
                    return Err(e);
                }
                Ok((messages, found_stored)) => {
                    self.exact = false;
                    if !found_stored {
                        self.verify = false;
                    }
                    return Ok(messages);
                }
            }
        }
    }

    /// Returns the batch's records (to publish) and whether any of them was already stored.
    async fn try_process(&mut self, batch: &[Submission], look_up: bool) -> PortResult<(Vec<Message>, bool)> {
        // Re-sent retries carry the id of an earlier attempt that may be stored: always look those up.
        let ids: Vec<String> = batch.iter().filter(|s| look_up || s.retry).map(|s| s.id.clone()).collect();
        let mut stored = if ids.is_empty() { HashMap::new() } else { self.store.existing(&ids).await? };
        let found_stored = !stored.is_empty();
        let mut fresh: Vec<Message> = Vec::with_capacity(batch.len());
        let mut all = Vec::with_capacity(batch.len());
        let mut seen = std::collections::HashSet::with_capacity(batch.len());
        // Messages changed by this batch's events that were stored before it.
        let mut changed: HashMap<String, Message> = HashMap::new();
        for sub in batch {
            // The same id twice in one batch (an attempt and its retry): one record.
            if !seen.insert(sub.id.as_str()) {
                self.duplicates += 1;
                continue;
            }
            if let Some(mut m) = stored.remove(&sub.id) {
                self.duplicates += 1;
                // Published again as stored: an edit's body comes from its message.
                if m.kind == Kind::Edit {
                    events::hydrate(self.store.as_ref(), std::slice::from_mut(&mut m)).await?;
                }
                let last = self.last_seq.entry(m.room.clone()).or_insert(0);
                *last = (*last).max(m.seq);
                all.push(m);
                continue;
            }
            let mut record = Message::from_submission(sub.clone(), 0);
            if sub.kind.changes_target() {
                let Some(target) = self.target(sub.target.as_deref(), &mut fresh, &mut changed).await? else {
                    self.ignored += 1;
                    continue;
                };
                if let Err(why) = events::apply(target, &mut record, sub) {
                    tracing::debug!(id = %sub.id, target = ?sub.target, %why, "event changes nothing; not stored");
                    self.ignored += 1;
                    continue;
                }
            }
            let last = match self.last_seq.get(&sub.room) {
                Some(seq) => *seq,
                None if self.exact => self.store.last_seq(&sub.room).await?,
                None => self.store.recorded_seq(&sub.room).await?,
            };
            self.last_seq.insert(sub.room.clone(), last + 1);
            record.seq = last + 1;
            let mut published = record.clone();
            if let Some(reply) = published.reply_to.as_mut() {
                let id = reply.id.clone();
                let target = match fresh.iter().find(|m| m.id == id).or_else(|| changed.get(&id)) {
                    Some(t) => Some(t.clone()),
                    None => self.store.existing(std::slice::from_ref(&id)).await?.remove(&id),
                };
                if let Some(target) = target.filter(|t| t.room == sub.room) {
                    *reply = events::summary(&target);
                }
            }
            // An edit's body lives in its message; the record only says when.
            if record.kind == Kind::Edit {
                record.body.clear();
            }
            fresh.push(record);
            all.push(published);
        }
        let changed: Vec<Message> = changed.into_values().collect();
        self.store.commit(&fresh, &changed).await?;
        Ok((all, found_stored))
    }

    /// The current state of an event's target: from this batch if it changed or sent it,
    /// else from the store.
    async fn target<'a>(
        &self,
        id: Option<&str>,
        fresh: &'a mut [Message],
        changed: &'a mut HashMap<String, Message>,
    ) -> PortResult<Option<&'a mut Message>> {
        let Some(id) = id else { return Ok(None) };
        if let Some(at) = fresh.iter().position(|m| m.id == id) {
            return Ok(fresh.get_mut(at));
        }
        if !changed.contains_key(id) {
            let Some(found) = self.store.existing(&[id.to_owned()]).await?.remove(id) else { return Ok(None) };
            changed.insert(id.to_owned(), found);
        }
        Ok(changed.get_mut(id))
    }
}

/// The last message of each room in `messages`, to record.
pub fn last_seqs(messages: &[Message]) -> Vec<RecordedSeq> {
    let mut last: HashMap<&str, &Message> = HashMap::new();
    for m in messages {
        let at = last.entry(m.room.as_str()).or_insert(m);
        if m.seq > at.seq {
            *at = m;
        }
    }
    last.into_values().map(|m| RecordedSeq { room: m.room.clone(), seq: m.seq, id: m.id.clone() }).collect()
}

/// Publishes stored messages to their rooms, one shared frame per message.
pub async fn publish(bus: &dyn Bus, messages: &[Message]) {
    let events = messages
        .iter()
        .map(|m| {
            let event = RoomEvent { seq: Some(m.seq), skip_user: None, frame: ServerFrame::record(m).encode().into() };
            (m.room.clone(), event)
        })
        .collect();
    if let Err(e) = bus.publish_many(events).await {
        // Stored already: members detect the gap and backfill from the store.
        tracing::warn!(messages = messages.len(), error = %e, "publish failed");
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::embedded::MemoryBus;
    use crate::model::UserRef;
    use async_trait::async_trait;
    use std::sync::Mutex;

    /// Stores like a server that keeps inserting past a duplicate (FerretDB does).
    #[derive(Default)]
    struct LenientStore(Mutex<Vec<Message>>);

    #[async_trait]
    impl MessageStore for LenientStore {
        async fn last_seq(&self, room: &str) -> PortResult<u64> {
            Ok(self.0.lock().unwrap().iter().filter(|m| m.room == room).map(|m| m.seq).max().unwrap_or(0))
        }
        async fn insert(&self, messages: &[Message]) -> PortResult<()> {
            let mut all = self.0.lock().unwrap();
            let mut conflict = false;
            for m in messages {
                if all.iter().any(|s| s.id == m.id || (s.room == m.room && s.seq == m.seq)) {
                    conflict = true;
                } else {
                    all.push(m.clone());
                }
            }
            if conflict {
                Err(PortError::Conflict)
            } else {
                Ok(())
            }
        }
        async fn update(&self, messages: &[Message]) -> PortResult<()> {
            let mut all = self.0.lock().unwrap();
            for m in messages {
                if let Some(stored) = all.iter_mut().find(|s| s.id == m.id) {
                    *stored = m.clone();
                }
            }
            Ok(())
        }
        async fn before(&self, _: &str, _: Option<u64>, _: usize) -> PortResult<Vec<Message>> {
            Ok(Vec::new())
        }
        async fn after(&self, _: &str, _: u64, _: usize) -> PortResult<(Vec<Message>, bool)> {
            Ok((Vec::new(), false))
        }
        async fn between(&self, _: &str, _: u64, _: u64, _: usize) -> PortResult<Vec<Message>> {
            Ok(Vec::new())
        }
        async fn existing(&self, ids: &[String]) -> PortResult<HashMap<String, Message>> {
            let all = self.0.lock().unwrap();
            Ok(all.iter().filter(|m| ids.contains(&m.id)).map(|m| (m.id.clone(), m.clone())).collect())
        }
    }

    /// A plain submission to room `r` whose body is its id.
    pub(crate) fn sub(id: &str) -> Submission {
        Submission {
            id: id.into(),
            room: "r".into(),
            user: UserRef { id: "u".into(), name: "u".into() },
            body: id.into(),
            ts: 0,
            nonce: None,
            managed: false,
            retry: false,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn redelivery_after_a_reassignment_keeps_seqs_gap_free() {
        let store = Arc::new(LenientStore::default());
        let mut p = Pipeline::new(store.clone(), Arc::new(MemoryBus::default()));
        p.store(vec![sub("a"), sub("b"), sub("c")]).await.unwrap();
        p.store(vec![sub("d")]).await.unwrap();
        // A new owner after a crash: b, c, d were stored but not committed; e is new.
        let mut owner = Pipeline::new(store.clone(), Arc::new(MemoryBus::default()));
        let out = owner.store(vec![sub("b"), sub("c"), sub("d"), sub("e")]).await.unwrap();
        assert_eq!(out.iter().map(|m| m.seq).collect::<Vec<_>>(), [2, 3, 4, 5], "stored ones keep their seq");
        // The same on the old owner after a rebalance.
        p.reset();
        let out = p.store(vec![sub("e"), sub("f")]).await.unwrap();
        assert_eq!(out.iter().map(|m| m.seq).collect::<Vec<_>>(), [5, 6]);
        let mut seqs: Vec<u64> = store.0.lock().unwrap().iter().map(|m| m.seq).collect();
        seqs.sort();
        assert_eq!(seqs, (1..=6).collect::<Vec<_>>(), "no holes, no duplicates");
    }

    #[tokio::test]
    async fn retries_under_a_stored_id_leave_no_hole_and_no_duplicate() {
        let store = Arc::new(LenientStore::default());
        let mut p = Pipeline::new(store.clone(), Arc::new(MemoryBus::default()));
        p.store(vec![sub("a"), sub("b")]).await.unwrap();
        p.store(vec![sub("c")]).await.unwrap(); // past the first-batch verification
        let retry = |id: &str| Submission { retry: true, ..sub(id) };
        // A retry of a stored message between new ones, and an attempt with its retry in one batch.
        let out = p.store(vec![sub("d"), retry("b"), sub("e"), retry("e"), sub("f")]).await.unwrap();
        assert_eq!(
            out.iter().map(|m| (m.id.as_str(), m.seq)).collect::<Vec<_>>(),
            [("d", 4), ("b", 2), ("e", 5), ("f", 6)]
        );
        let mut seqs: Vec<u64> = store.0.lock().unwrap().iter().map(|m| m.seq).collect();
        seqs.sort();
        assert_eq!(seqs, (1..=6).collect::<Vec<_>>(), "no holes, no duplicates");
    }

    fn event(id: &str, kind: Kind, target: &str, by: &str) -> Submission {
        let user = UserRef { id: by.into(), name: by.into() };
        let emoji = matches!(kind, Kind::React | Kind::Unreact).then(|| "👍".to_owned());
        let body = if kind == Kind::Edit { format!("{id} body") } else { String::new() };
        Submission { kind, target: Some(target.into()), emoji, user, body, max_reactions: Some(20), ..sub(id) }
    }

    #[tokio::test]
    async fn events_change_their_target_take_a_seq_and_moot_ones_take_none() {
        let store = Arc::new(LenientStore::default());
        let mut p = Pipeline::new(store.clone(), Arc::new(MemoryBus::default()));
        let reply = Submission { reply_to: Some("a".into()), ..sub("b") };
        // An edit and a reaction in the batch that sends their target.
        let out = p
            .store(vec![sub("a"), reply, event("e1", Kind::Edit, "a", "u"), event("r1", Kind::React, "a", "v")])
            .await
            .unwrap();
        assert_eq!(out.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
        let summary = out[1].reply_to.as_ref().unwrap();
        assert_eq!((summary.excerpt.as_deref(), summary.user.as_ref().map(|u| &*u.name)), (Some("a"), Some("u")));
        assert_eq!(out[2].body, "e1 body", "the live edit carries its body");
        assert_eq!(out[3].reactions[0].users.len(), 1);
        let out = p
            .store(vec![
                event("e2", Kind::Edit, "a", "v"),    // not the author
                event("r2", Kind::React, "a", "v"),   // already reacted
                event("x1", Kind::Unreact, "b", "v"), // nothing to take back
                event("d1", Kind::Delete, "a", "u"),
                event("r3", Kind::React, "a", "w"), // the target is gone
                event("e3", Kind::Edit, "nope", "u"),
            ])
            .await
            .unwrap();
        assert_eq!(out.iter().map(|m| (m.id.as_str(), m.seq)).collect::<Vec<_>>(), [("d1", 5)]);
        assert_eq!(p.take_ignored(), 5);
        let all = store.0.lock().unwrap();
        let a = all.iter().find(|m| m.id == "a").unwrap();
        assert!(a.deleted && a.body.is_empty() && a.reactions.is_empty() && a.edited_at.is_none());
        assert!(all.iter().all(|m| !m.body.contains("e1")), "no copy of the edited body is left");
        assert_eq!(all.len(), 5);
    }
}
