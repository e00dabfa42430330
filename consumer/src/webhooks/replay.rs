//! `aurora-consumer replay-webhooks --endpoint NAME`: delivers the endpoint's dead letters
//! again, in topic order, committing after each, and stops at the end of the topic as it
//! was when the command started.

use anyhow::{bail, Context};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use aurora_core::webhooks::{WebhookFile, DEAD_LETTER_TOPIC};

use super::deliver::{Outcome, Record, Target};
use crate::config::ConsumerConfig;

const KAFKA_TIMEOUT: Duration = Duration::from_secs(10);

/// Returns how many dead letters were delivered.
pub async fn replay(config: &ConsumerConfig, endpoint: &str, shutdown: CancellationToken) -> anyhow::Result<u64> {
    let path = config.webhooks_file.as_ref().context("AURORA_WEBHOOKS_FILE is required to replay webhooks")?;
    let file = WebhookFile::load(path)?;
    let Some(spec) = file.endpoints.into_iter().find(|e| e.name == endpoint) else {
        bail!("no endpoint named {endpoint:?} in {}", path.display());
    };
    super::ensure_topics(config).await?;
    let registry = prometheus::Registry::new();
    let metrics = super::metrics::WebhookMetrics::new(&registry)?;
    let target = Target::new(spec, &metrics)?;
    let consumer: Arc<BaseConsumer> = Arc::new(
        ClientConfig::new()
            .set("bootstrap.servers", &config.services.kafka_brokers)
            .set("group.id", target.spec.replay_group())
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create()
            .context("cannot create the replay consumer")?,
    );
    // Where each partition starts (the group's committed offset) and ends (now).
    let ends = blocking(&consumer, |c| {
        let metadata = c.fetch_metadata(Some(DEAD_LETTER_TOPIC), KAFKA_TIMEOUT)?;
        let partitions: Vec<i32> =
            metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
        let mut tpl = TopicPartitionList::new();
        for p in &partitions {
            tpl.add_partition(DEAD_LETTER_TOPIC, *p);
        }
        let committed = c.committed_offsets(tpl, KAFKA_TIMEOUT)?;
        let mut ranges = HashMap::new();
        for p in partitions {
            let (low, high) = c.fetch_watermarks(DEAD_LETTER_TOPIC, p, KAFKA_TIMEOUT)?;
            let start = match committed.find_partition(DEAD_LETTER_TOPIC, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o.max(low),
                _ => low,
            };
            ranges.insert(p, (start, high));
        }
        Ok::<_, rdkafka::error::KafkaError>(ranges)
    })
    .await??;
    let mut remaining: HashMap<i32, i64> =
        ends.iter().filter(|(_, (s, h))| s < h).map(|(p, (_, h))| (*p, *h)).collect();
    let mut assignment = TopicPartitionList::new();
    for (p, (start, _)) in &ends {
        assignment.add_partition_offset(DEAD_LETTER_TOPIC, *p, Offset::Offset(*start))?;
    }
    consumer.assign(&assignment)?;
    let mut delivered = 0;
    while !remaining.is_empty() {
        let polled = blocking(&consumer, |c| c.poll(Duration::from_millis(500)).map(|r| r.map(|m| m.detach()))).await?;
        let m = match polled {
            None if shutdown.is_cancelled() => bail!("stopped; {delivered} replayed, run again to resume"),
            None => continue,
            Some(m) => m.with_context(|| "cannot read the dead-letter topic")?,
        };
        let Some(&end) = remaining.get(&m.partition()) else { continue };
        if m.offset() >= end {
            remaining.remove(&m.partition());
            continue;
        }
        if Record::endpoint_of(&m) == Some(endpoint) {
            let Some(record) = Record::read(&m) else { bail!("unreadable dead letter at offset {}", m.offset()) };
            match target.deliver(&record, &shutdown).await {
                Outcome::Delivered => delivered += 1,
                Outcome::Stopped => bail!("stopped; {delivered} replayed, run again to resume"),
                Outcome::GaveUp(error) => {
                    bail!("{endpoint} still fails ({error}); {delivered} replayed, the rest stay parked")
                }
            }
        }
        let mut done = TopicPartitionList::new();
        done.add_partition_offset(DEAD_LETTER_TOPIC, m.partition(), Offset::Offset(m.offset() + 1))?;
        blocking(&consumer, move |c| c.commit(&done, CommitMode::Sync)).await??;
        if m.offset() + 1 >= end {
            remaining.remove(&m.partition());
        }
    }
    Ok(delivered)
}

/// Runs a blocking librdkafka call off the runtime.
async fn blocking<T: Send + 'static>(
    consumer: &Arc<BaseConsumer>,
    f: impl FnOnce(&BaseConsumer) -> T + Send + 'static,
) -> anyhow::Result<T> {
    let c = consumer.clone();
    tokio::task::spawn_blocking(move || f(&c)).await.context("a Kafka call panicked")
}
