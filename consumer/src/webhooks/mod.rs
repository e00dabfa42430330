//! Webhooks from the fan-out tier: the events topic this consumer writes after storing a
//! batch, one dispatcher per endpoint reading it, dead letters and their replay.

mod deliver;
mod dispatch;
pub mod metrics;
mod replay;

pub use replay::replay;

use anyhow::Context;
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use aurora_core::model::Message;
use aurora_core::webhooks::{record_headers, Event, WebhookFile, DEAD_LETTER_TOPIC, EVENTS_TOPIC};

use self::deliver::Target;
use self::metrics::WebhookMetrics;
use crate::config::ConsumerConfig;

/// An idempotent producer for the events and dead-letter topics.
fn producer(brokers: &str) -> anyhow::Result<FutureProducer> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "1")
        .set("compression.type", "lz4")
        .set("message.timeout.ms", "10000")
        .set("reconnect.backoff.max.ms", "1000")
        .create()
        .context("cannot create the Kafka producer for webhook events")
}

/// Both webhook topics, with the message log's partitions and replication.
pub async fn ensure_topics(config: &ConsumerConfig) -> anyhow::Result<()> {
    let s = &config.services;
    for topic in [EVENTS_TOPIC, DEAD_LETTER_TOPIC] {
        aurora_core::distributed::kafka::ensure_topic(&s.kafka_brokers, topic, s.kafka_partitions, s.kafka_replication)
            .await
            .with_context(|| format!("cannot create {topic}"))?;
    }
    Ok(())
}

/// Writes stored records to [`EVENTS_TOPIC`], each as its webhook body, keyed by room.
pub struct EventsWriter {
    producer: FutureProducer,
}

impl EventsWriter {
    pub fn new(brokers: &str) -> anyhow::Result<Self> {
        Ok(EventsWriter { producer: producer(brokers)? })
    }

    /// Ok once the broker has every record of `messages` (written in order per room).
    pub async fn write(&self, messages: &[Message]) -> anyhow::Result<()> {
        let mut pending = Vec::with_capacity(messages.len());
        for m in messages {
            let event = Event::of(m);
            let body = serde_json::to_vec(&event)?;
            let headers = OwnedHeaders::new()
                .insert(Header { key: record_headers::ID, value: Some(m.id.as_str()) })
                .insert(Header { key: record_headers::TYPE, value: Some(event.kind.as_str()) });
            // The record's timestamp is the gateway's accept time: the latency metric's start.
            let record =
                FutureRecord::to(EVENTS_TOPIC).key(m.room.as_bytes()).payload(&body).headers(headers).timestamp(m.ts);
            match self.producer.send_result(record) {
                Ok(delivery) => pending.push(delivery),
                Err((e, _)) => anyhow::bail!("cannot queue an event: {e}"),
            }
        }
        for delivery in pending {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => anyhow::bail!("event not written: {e}"),
                Err(_) => anyhow::bail!("the event producer stopped"),
            }
        }
        Ok(())
    }
}

/// Writes each stored batch's events, then stores the batch's offsets for commit, in batch order;
/// false when `shutdown` came before every batch was written (those are redelivered).
/// Batches queued meanwhile are written together: one broker round trip (and fsync) for
/// all of them.
pub async fn events_task(
    shared: Arc<crate::Shared>,
    writer: EventsWriter,
    mut batches: tokio::sync::mpsc::Receiver<(Vec<Message>, crate::Offsets)>,
    shutdown: CancellationToken,
) -> bool {
    while let Some((mut messages, mut offsets)) = batches.recv().await {
        while let Ok((more, more_offsets)) = batches.try_recv() {
            messages.extend(more);
            offsets.extend(more_offsets);
        }
        let mut backoff = aurora_core::backoff::Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        loop {
            // On shutdown, queued batches get a short grace; past it they stay uncommitted
            // and are redelivered, so a stopping consumer never lingers in its group while
            // Kafka is unreachable.
            let stopping = async {
                shutdown.cancelled().await;
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            };
            let result = tokio::select! {
                result = writer.write(&messages) => result,
                _ = stopping => return false,
            };
            match result {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %e, records = messages.len(), "cannot write webhook events; retrying");
                    if !backoff.wait(&shutdown).await {
                        return false;
                    }
                }
            }
        }
        shared.metrics.events_written.inc_by(messages.len() as u64);
        crate::store_offsets(&shared.consumer, &crate::merge_offsets(offsets));
    }
    true
}

/// Starts one dispatcher per endpoint of the webhooks file; they run until `shutdown`.
pub fn start(
    config: &ConsumerConfig,
    file: WebhookFile,
    metrics: &WebhookMetrics,
    shutdown: &CancellationToken,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let dead_letters = Arc::new(producer(&config.services.kafka_brokers)?);
    let mut tasks = Vec::new();
    for spec in file.endpoints {
        tracing::info!(endpoint = %spec.name, url = %spec.url, "delivering webhooks");
        let target = Arc::new(Target::new(spec, metrics)?);
        let dispatcher = dispatch::Dispatcher::new(target, &config.services.kafka_brokers, dead_letters.clone())?;
        tasks.push(tokio::spawn(dispatcher.run(shutdown.clone())));
    }
    Ok(tasks)
}

/// How long a stopping consumer still waits for its last events to be written.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// How long a dispatcher waits between attempts to park a dead letter while Kafka is down.
const PARK_RETRY: Duration = Duration::from_secs(1);
