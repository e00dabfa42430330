//! The message log on Kafka: an idempotent producer (`acks=all`), key = room so a
//! room stays in one partition and keeps its order.

use futures_util::FutureExt;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use std::time::Duration;

use crate::model::Submission;
use crate::ports::{Accepted, Dependency, FailureKind, MessageLog, PortError, PortResult};

/// The shared topic for rooms created through the API.
pub const SHARED_TOPIC: &str = "aurora.messages";
/// Topics of rooms managed by ChatRoom resources: `aurora.room.<name>`.
pub const ROOM_TOPIC_PREFIX: &str = "aurora.room.";

/// The topic of a room managed by a ChatRoom resource.
pub fn room_topic(room: &str) -> String {
    format!("{ROOM_TOPIC_PREFIX}{room}")
}

/// How long a send may wait for the broker before it answers `unavailable`.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);

fn kafka_err(e: KafkaError) -> PortError {
    use rdkafka::types::RDKafkaErrorCode as Code;
    let kind = match e.rdkafka_error_code() {
        Some(Code::MessageTimedOut | Code::RequestTimedOut | Code::OperationTimedOut) => FailureKind::Timeout,
        Some(
            Code::BrokerTransportFailure
            | Code::AllBrokersDown
            | Code::BrokerNotAvailable
            | Code::NetworkException
            | Code::Resolve,
        ) => FailureKind::Connection,
        _ => FailureKind::Error,
    };
    PortError::unavailable(Dependency::Kafka, kind, e)
}

pub struct KafkaLog {
    producer: FutureProducer,
    topic: String,
}

impl KafkaLog {
    /// A log producing to the shared topic.
    pub fn new(brokers: &str) -> PortResult<Self> {
        Self::with_topic(brokers, SHARED_TOPIC)
    }

    pub fn with_topic(brokers: &str, topic: &str) -> PortResult<Self> {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // One request in flight, sent at once: the broker serves a connection's requests
            // one at a time, and what queues meanwhile leaves as the next batch. Waiting
            // (linger) or pipelining only splits batches (each costs the broker an append,
            // and an fsync per partition where it flushes every message).
            .set("linger.ms", "0")
            .set("max.in.flight.requests.per.connection", "1")
            .set("compression.type", "lz4")
            // A send answers within DELIVERY_TIMEOUT: queued records time out after it and
            // an in-flight request (broker died mid-request) after request.timeout.ms.
            .set("message.timeout.ms", DELIVERY_TIMEOUT.as_millis().to_string())
            .set("request.timeout.ms", "3000")
            .set("reconnect.backoff.max.ms", "1000")
            .set("queue.buffering.max.messages", "100000")
            .set("socket.keepalive.enable", "true")
            .create()
            .map_err(kafka_err)?;
        Ok(KafkaLog { producer, topic: topic.to_owned() })
    }

    /// Member events through this log's producer.
    pub fn member_events(&self) -> KafkaMemberEvents {
        KafkaMemberEvents { producer: self.producer.clone() }
    }

    /// Whether the brokers answer a metadata request.
    pub async fn ping(&self) -> PortResult<()> {
        let client = self.producer.clone();
        tokio::task::spawn_blocking(move || {
            client.client().fetch_metadata(None, Duration::from_millis(600)).map(|_| ())
        })
        .await
        .map_err(|_| PortError::Stopped("kafka metadata task"))?
        .map_err(kafka_err)
    }
}

impl MessageLog for KafkaLog {
    fn append(&self, submission: Submission) -> Accepted {
        let payload = match serde_json::to_vec(&submission) {
            Ok(p) => p,
            Err(e) => return futures_util::future::ready(Err(PortError::corrupt(e))).boxed(),
        };
        let own_topic = submission.managed.then(|| room_topic(&submission.room));
        let topic = own_topic.as_deref().unwrap_or(&self.topic);
        let record = FutureRecord::to(topic).key(submission.room.as_bytes()).payload(&payload);
        match self.producer.send_result(record) {
            Ok(delivery) => async move {
                match delivery.await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err((e, _))) => Err(kafka_err(e)),
                    Err(_) => Err(PortError::Stopped("kafka producer")),
                }
            }
            .boxed(),
            Err((e, _)) => futures_util::future::ready(Err(kafka_err(e))).boxed(),
        }
    }
}

/// Creates `topic` with `partitions` unless it exists.
pub async fn ensure_topic(brokers: &str, topic: &str, partitions: i32, replication: i32) -> PortResult<()> {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).create().map_err(kafka_err)?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin.create_topics([&new], &options).await.map_err(kafka_err)?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => {
                let detail = format!("cannot create topic {t}: {code}");
                return Err(PortError::unavailable(Dependency::Kafka, FailureKind::Error, detail));
            }
        }
    }
    Ok(())
}

/// `member.joined` / `member.left` on `aurora.events`, keyed by room like the records the
/// fan-out tier writes there.
pub struct KafkaMemberEvents {
    producer: FutureProducer,
}

impl crate::webhooks::MemberEvents for KafkaMemberEvents {
    fn changed(&self, room: &str, user: &crate::model::UserRef, joined: bool) {
        use crate::webhooks::{record_headers, Event, EVENTS_TOPIC};
        use rdkafka::message::{Header, OwnedHeaders};
        let event = Event::member(room, user, joined);
        let Ok(body) = serde_json::to_vec(&event) else { return };
        let headers = OwnedHeaders::new()
            .insert(Header { key: record_headers::ID, value: Some(event.id.as_str()) })
            .insert(Header { key: record_headers::TYPE, value: Some(event.kind.as_str()) });
        let record = FutureRecord::to(EVENTS_TOPIC).key(room.as_bytes()).payload(&body).headers(headers);
        // The delivery future is dropped: librdkafka still delivers (and retries) the record.
        if let Err((e, _)) = self.producer.send_result(record) {
            tracing::warn!(room, error = %e, "member event not queued");
        }
    }
}
