//! One endpoint's dispatcher: its own consumer group on the events topic. A batch is split
//! by room; rooms are delivered side by side, each room's events one after another, and
//! the batch's offsets are committed only when every event is delivered or parked.

use anyhow::Context;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::message::{Header, Message as _, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use aurora_core::webhooks::{record_headers, DEAD_LETTER_TOPIC, EVENTS_TOPIC};

use super::deliver::{Outcome, Record, Target};
use super::PARK_RETRY;

/// Most events read as one batch.
const BATCH: usize = 256;

/// Turns librdkafka's statistics into the endpoint's backlog gauge.
pub struct BacklogContext {
    backlog: prometheus::IntGauge,
}

impl ClientContext for BacklogContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        let lag = statistics
            .topics
            .get(EVENTS_TOPIC)
            .map(|t| t.partitions.iter().filter(|(id, p)| **id >= 0 && p.desired && p.consumer_lag > 0))
            .map(|ps| ps.map(|(_, p)| p.consumer_lag).sum())
            .unwrap_or(0);
        self.backlog.set(lag);
    }
}

impl ConsumerContext for BacklogContext {}

pub struct Dispatcher {
    target: Arc<Target>,
    consumer: StreamConsumer<BacklogContext>,
    dead_letters: Arc<FutureProducer>,
}

impl Dispatcher {
    pub fn new(target: Arc<Target>, brokers: &str, dead_letters: Arc<FutureProducer>) -> anyhow::Result<Self> {
        let context = BacklogContext { backlog: target.metrics().backlog.with_label_values(&[&target.spec.name]) };
        let consumer: StreamConsumer<BacklogContext> = crate::group_config(brokers, &target.spec.group())
            // A new endpoint starts with the events written after it first joined.
            .set("auto.offset.reset", "latest")
            .create_with_context(context)
            .context("cannot create the webhook consumer")?;
        consumer.subscribe(&[EVENTS_TOPIC]).context("cannot subscribe to aurora.events")?;
        Ok(Dispatcher { target, consumer, dead_letters })
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let name = self.target.spec.name.clone();
        let mut batch: Vec<OwnedMessage> = Vec::with_capacity(BATCH);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                first = crate::receive::next(&self.consumer) => match first {
                    Ok(m) => batch.push(m.detach()),
                    Err(e) => {
                        tracing::warn!(endpoint = %name, error = %e, "webhook consumer");
                        tokio::select! {
                            _ = shutdown.cancelled() => break,
                            _ = tokio::time::sleep(PARK_RETRY) => continue,
                        }
                    }
                },
            }
            while batch.len() < BATCH {
                match crate::futures_now(self.consumer.recv()) {
                    Some(Ok(m)) => batch.push(m.detach()),
                    _ => break,
                }
            }
            if !self.deliver_batch(&batch, &shutdown).await {
                // Not all delivered: the group hands these to the next dispatcher.
                break;
            }
            self.commit(&batch);
            batch.clear();
        }
        tracing::info!(endpoint = %name, "webhook dispatcher stopped");
    }

    /// True when every event of the batch is delivered or parked.
    async fn deliver_batch(&self, batch: &[OwnedMessage], shutdown: &CancellationToken) -> bool {
        let mut rooms: Vec<Vec<Record>> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for m in batch {
            let Some(r) = Record::read(m) else {
                tracing::error!(partition = m.partition(), offset = m.offset(), "skipping an unreadable event");
                continue;
            };
            if !self.target.spec.wants(r.kind, &r.room) {
                continue;
            }
            let i = *index.entry(r.room.clone()).or_insert_with(|| {
                rooms.push(Vec::new());
                rooms.len() - 1
            });
            rooms[i].push(r);
        }
        let deliveries = rooms.iter().map(|records| self.deliver_room(records, shutdown));
        futures_util::future::join_all(deliveries).await.into_iter().all(|ok| ok)
    }

    async fn deliver_room(&self, records: &[Record], shutdown: &CancellationToken) -> bool {
        for r in records {
            match self.target.deliver(r, shutdown).await {
                Outcome::Delivered => {}
                Outcome::Stopped => return false,
                Outcome::GaveUp(error) => {
                    if !self.park(r, &error, shutdown).await {
                        return false;
                    }
                }
            }
        }
        true
    }

    /// Writes `r` to the dead-letter topic, retrying while Kafka is down.
    async fn park(&self, r: &Record, error: &str, shutdown: &CancellationToken) -> bool {
        let name = self.target.spec.name.as_str();
        loop {
            let headers = OwnedHeaders::new()
                .insert(Header { key: record_headers::ID, value: Some(r.id.as_str()) })
                .insert(Header { key: record_headers::TYPE, value: Some(r.kind.as_str()) })
                .insert(Header { key: record_headers::ENDPOINT, value: Some(name) })
                .insert(Header { key: record_headers::ERROR, value: Some(error) });
            let record = FutureRecord::to(DEAD_LETTER_TOPIC)
                .key(r.room.as_bytes())
                .payload(&r.body)
                .headers(headers)
                .timestamp(r.ts);
            match self.dead_letters.send(record, PARK_RETRY).await {
                Ok(_) => {
                    self.target.metrics().deliveries.with_label_values(&[name, "dead_lettered"]).inc();
                    tracing::warn!(endpoint = name, id = %r.id, room = %r.room, %error, "webhook parked in the dead-letter topic");
                    return true;
                }
                Err((e, _)) => {
                    tracing::warn!(endpoint = name, error = %e, "cannot park a dead letter; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return false,
                        _ = tokio::time::sleep(PARK_RETRY) => {}
                    }
                }
            }
        }
    }

    fn commit(&self, batch: &[OwnedMessage]) {
        let mut next: BTreeMap<i32, i64> = BTreeMap::new();
        for m in batch {
            let e = next.entry(m.partition()).or_insert(0);
            *e = (*e).max(m.offset() + 1);
        }
        let mut tpl = TopicPartitionList::new();
        for (partition, offset) in next {
            if let Err(e) = tpl.add_partition_offset(EVENTS_TOPIC, partition, Offset::Offset(offset)) {
                tracing::warn!(error = %e, "bad offset");
            }
        }
        if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
            tracing::warn!(error = %e, "webhook offsets not committed; events may be delivered again");
        }
    }
}
