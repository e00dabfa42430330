//! The fan-out tier: reads the message log from Kafka and, per batch, assigns
//! `seq`, stores in MongoDB, publishes to Redis, and only then marks offsets for commit.

#![forbid(unsafe_code)]

pub mod config;
mod http;
pub mod metrics;
mod receive;
pub mod records;
pub mod webhooks;

use anyhow::Context;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{Message as _, OwnedMessage};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use aurora_core::distributed::{connect_services, kafka, MongoStore, RedisPublisher};
use aurora_core::model::{Message, Submission};
use aurora_core::pipeline::Pipeline;

use crate::config::ConsumerConfig;
use crate::metrics::Metrics;

/// The Kafka client's callbacks: notes rebalances (so cached sequence numbers are reloaded
/// for new partitions) and turns librdkafka's statistics into the lag gauges.
pub struct KafkaContext {
    rebalanced: AtomicBool,
    lag: prometheus::IntGauge,
    partition_lag: prometheus::IntGaugeVec,
}

impl ClientContext for KafkaContext {
    /// Every `statistics.interval.ms`: librdkafka's own per-partition lag (log end minus
    /// committed offset, from its fetch responses: no extra broker round trips).
    fn stats(&self, statistics: rdkafka::Statistics) {
        self.partition_lag.reset();
        let mut total = 0;
        for (topic, t) in &statistics.topics {
            for (id, p) in &t.partitions {
                // -1 is librdkafka's internal UA partition; a lag of -1 means not known yet.
                if *id < 0 || !p.desired || p.consumer_lag < 0 {
                    continue;
                }
                self.partition_lag.with_label_values(&[topic.as_str(), &id.to_string()]).set(p.consumer_lag);
                total += p.consumer_lag;
            }
        }
        self.lag.set(total);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        // The `aurora.room.*` pattern matches nothing until a ChatRoom topic exists.
        use rdkafka::types::RDKafkaErrorCode as Code;
        match error.rdkafka_error_code() {
            Some(Code::UnknownTopicOrPartition) => tracing::debug!(%error, reason, "no topic matches yet"),
            Some(Code::BrokerTransportFailure | Code::AllBrokersDown) => {
                tracing::warn!(%error, reason, "kafka unreachable; retrying")
            }
            _ => tracing::error!(%error, reason, "kafka client error"),
        }
    }
}

impl ConsumerContext for KafkaContext {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => tracing::info!(partitions = tpl.count(), "partitions assigned"),
            Rebalance::Revoke(tpl) => tracing::info!(partitions = tpl.count(), "partitions revoked"),
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance failed"),
        }
        self.rebalanced.store(true, Ordering::SeqCst);
    }
}

type Kafka = StreamConsumer<KafkaContext>;

/// What every consumer group of this binary sets (the fan-out group and each webhook
/// endpoint's): offsets committed after processing, quick failure detection and failover.
pub(crate) fn group_config(brokers: &str, group: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "1000")
        .set("reconnect.backoff.max.ms", "1000")
        // While the group coordinator is down it is looked up again every tenth of this:
        // 1 s. With the default (10 min / 10) a broker failover stopped consumption for a
        // minute when the dead broker led the group's offsets partition.
        .set("coordinator.query.interval.ms", "10000")
        .set("statistics.interval.ms", "5000");
    c
}

pub struct Shared {
    pub metrics: Metrics,
    pub consumer: Arc<Kafka>,
    pub mongo: MongoStore,
    pub redis: redis::aio::ConnectionManager,
}

/// Runs until `shutdown`, finishing and committing the batch in hand.
// Long by design: the start-up and shutdown order of the consumer's tasks, in one place.
pub async fn run(config: ConsumerConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let (mongo, redis) = connect_services(&config.services).await?;
    let metrics = Metrics::new()?;
    let hooks = match &config.webhooks_file {
        Some(path) => aurora_core::webhooks::WebhookFile::load(path)?,
        None => aurora_core::webhooks::WebhookFile::default(),
    };
    let events = if config.writes_events() {
        webhooks::ensure_topics(&config).await?;
        Some(webhooks::EventsWriter::new(&config.services.kafka_brokers)?)
    } else {
        None
    };
    let dispatchers = webhooks::start(&config, hooks, &metrics.webhooks, &shutdown)?;
    let context = KafkaContext {
        rebalanced: AtomicBool::new(false),
        lag: metrics.lag.clone(),
        partition_lag: metrics.partition_lag.clone(),
    };
    let consumer: Kafka = group_config(&config.services.kafka_brokers, &config.group)
        .set("auto.offset.reset", "earliest")
        // At least once, without a broker write per batch: a stored batch's offsets are
        // stored locally (`store_offsets`) and librdkafka commits them once a second, on a revoke and
        // on close. A commit is an append to `__consumer_offsets`, fsynced like any other where
        // the broker flushes every append; one per batch was one broker write for every ten
        // messages at 600 msg/s. A crash redelivers at most that second, stored once by id.
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.commit.interval.ms", "1000")
        // A new ChatRoom topic matches the pattern subscription at the next refresh: within
        // a second, so a room is usable within seconds of its `kubectl apply`.
        .set("topic.metadata.refresh.interval.ms", "1000")
        .create_with_context(context)
        .context("cannot create the Kafka consumer")?;
    let pattern = format!("^{}.*", kafka::ROOM_TOPIC_PREFIX.replace('.', "\\."));
    consumer.subscribe(&[kafka::SHARED_TOPIC, pattern.as_str()]).context("cannot subscribe")?;
    let shared = Arc::new(Shared { metrics, consumer: Arc::new(consumer), mongo, redis });

    let listener = aurora_core::process::bind(config.listen, true)
        .with_context(|| format!("AURORA_CONSUMER_LISTEN: cannot bind {}", config.listen))?;
    tracing::info!(addr = %listener.local_addr()?, group = %config.group, "consumer started");
    println!("aurora-consumer listening on http://{}", listener.local_addr()?);
    let server = tokio::spawn(aurora_core::probes::serve(listener, shared.clone(), shutdown.clone()));

    // Rooms stored before `room_heads` existed are looked up exactly until this pass is done.
    let heads = shared.mongo.clone();
    tokio::spawn(async move {
        if let Err(e) = heads.complete_heads().await {
            tracing::warn!(error = %e, "room heads not filled in; rooms are looked up exactly");
        }
    });
    let records = records::Records::default();
    let recorder = tokio::spawn(records.clone().run(Arc::new(shared.mongo.clone()), shutdown.clone()));
    let bus = Arc::new(RedisPublisher::new(shared.redis.clone()));
    let mut pipeline = Pipeline::new(Arc::new(shared.mongo.clone()), bus);
    let mut batch: Vec<OwnedMessage> = Vec::with_capacity(config.batch);
    let mut unstored = false;
    // Records in the previous batch: more than one means traffic is steady enough to linger.
    let mut previous = 0;
    // With events on, a task writes each stored batch's events and then stores its offsets,
    // so this loop keeps polling (and the group can rebalance) while Kafka recovers.
    let (events_tx, events_task) = match events {
        Some(writer) => {
            let (tx, rx) = tokio::sync::mpsc::channel(16);
            let task = tokio::spawn(webhooks::events_task(shared.clone(), writer, rx, shutdown.clone()));
            (Some(tx), Some(task))
        }
        None => (None, None),
    };
    let mut retry = aurora_core::backoff::Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            first = receive::next(&shared.consumer) => match first {
                Ok(m) => {
                    retry.reset();
                    batch.push(m.detach());
                }
                Err(e) => {
                    if e.rdkafka_error_code() != Some(rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition) {
                        tracing::warn!(error = %e, "kafka receive failed");
                    }
                    if !retry.wait(&shutdown).await {
                        break;
                    }
                    continue;
                }
            },
        }
        let linger = receive::linger(previous, Duration::from_millis(config.linger_ms));
        receive::fill(&mut batch, config.batch, linger, || async { shared.consumer.recv().await.map(|m| m.detach()) })
            .await;
        previous = batch.len();
        if shared.consumer.context().rebalanced.swap(false, Ordering::SeqCst) {
            pipeline.reset();
        }
        let Some(messages) = process(&shared, &mut pipeline, &batch, &shutdown).await else {
            // Not stored, so not committed: the group hands these records to the next consumer.
            tracing::warn!(records = batch.len(), "stopping with an unstored batch; it will be redelivered");
            unstored = true;
            break;
        };
        records.note(&messages);
        let offsets = next_offsets(&batch);
        batch.clear();
        match &events_tx {
            None => store_offsets(&shared.consumer, &offsets),
            Some(tx) => {
                if tx.send((messages, offsets)).await.is_err() {
                    tracing::warn!("stopping before a batch's events were written; it will be redelivered");
                    unstored = true;
                    break;
                }
            }
        }
    }
    drop(events_tx);
    let written = match events_task {
        Some(task) => task.await.unwrap_or(false),
        None => true,
    };
    if !unstored && written {
        if let Err(e) = shared.consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::debug!(error = %e, "final commit");
        }
    }
    let _ = recorder.await;
    records.flush(&shared.mongo).await;
    for d in dispatchers {
        let _ = d.await;
    }
    let _ = server.await;
    tracing::info!("consumer stopped");
    Ok(())
}

pub(crate) fn futures_now<F: std::future::Future>(f: F) -> Option<F::Output> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}

/// Stores and publishes a batch, retrying (with backoff) until it succeeds or `shutdown`
/// (None: not stored; the caller must not commit its offsets).
async fn process(
    shared: &Shared,
    pipeline: &mut Pipeline,
    batch: &[OwnedMessage],
    shutdown: &CancellationToken,
) -> Option<Vec<Message>> {
    let submissions: Vec<Submission> = batch
        .iter()
        .filter_map(|m| {
            let parsed = m.payload().map(serde_json::from_slice::<Submission>);
            match parsed {
                Some(Ok(s)) => Some(s),
                _ => {
                    tracing::error!(
                        topic = m.topic(),
                        partition = m.partition(),
                        offset = m.offset(),
                        "skipping an unreadable record"
                    );
                    None
                }
            }
        })
        .collect();
    shared.metrics.records.inc_by(batch.len() as u64);
    if submissions.is_empty() {
        return Some(Vec::new());
    }
    let timer = shared.metrics.batch_seconds.start_timer();
    let mut backoff = aurora_core::backoff::Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    loop {
        // Stored, then published (`Pipeline::process`), with the publish timed on its own.
        match pipeline.store(submissions.clone()).await {
            Ok(messages) => {
                let publishing = shared.metrics.publish_seconds.start_timer();
                aurora_core::pipeline::publish(pipeline.bus().as_ref(), &messages).await;
                publishing.observe_duration();
                let now = aurora_core::now_ms();
                for m in &messages {
                    shared.metrics.end_to_end_seconds.observe((now - m.ts).max(0) as f64 / 1000.0);
                }
                shared.metrics.consumed.inc_by(messages.len() as u64);
                shared.metrics.duplicates.inc_by(pipeline.take_duplicates());
                shared.metrics.events_ignored.inc_by(pipeline.take_ignored());
                shared.metrics.rooms_active.set(pipeline.active_rooms() as i64);
                shared.metrics.batch_size.observe(messages.len() as f64);
                timer.observe_duration();
                return Some(messages);
            }
            Err(e) => {
                shared.metrics.retries.inc();
                tracing::warn!(error = %e, records = submissions.len(), attempt = backoff.attempts(), "batch failed; retrying");
                if !backoff.wait(shutdown).await {
                    return None;
                }
            }
        }
    }
}

/// Where each (topic, partition) of a batch resumes: its last offset + 1.
pub type Offsets = Vec<(String, i32, i64)>;

fn next_offsets(batch: &[OwnedMessage]) -> Offsets {
    let mut next: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for m in batch {
        let e = next.entry((m.topic(), m.partition())).or_insert(0);
        *e = (*e).max(m.offset() + 1);
    }
    next.into_iter().map(|((t, p), o)| (t.to_owned(), p, o)).collect()
}

/// The furthest offset per (topic, partition) of several batches.
pub(crate) fn merge_offsets(offsets: Offsets) -> Offsets {
    let mut next: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for (t, p, o) in offsets {
        let e = next.entry((t, p)).or_insert(o);
        *e = (*e).max(o);
    }
    next.into_iter().map(|((t, p), o)| (t, p, o)).collect()
}

/// Marks a stored batch's offsets for the next automatic commit.
pub(crate) fn store_offsets(consumer: &Kafka, offsets: &Offsets) {
    let mut tpl = TopicPartitionList::new();
    for (topic, partition, offset) in offsets {
        if let Err(e) = tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset)) {
            tracing::warn!(error = %e, "bad offset");
        }
    }
    // Refused for a partition this consumer no longer owns: its new owner redelivers.
    if let Err(e) = consumer.store_offsets(&tpl) {
        tracing::warn!(error = %e, "offsets not stored; records may be redelivered (deduplicated by id)");
    }
}
