//! The Kafka topics the operator owns, through the admin API.

use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::RDKafkaErrorCode;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result, TopicOp};

const RETENTION: &str = "retention.ms";
const TIMEOUT: Duration = Duration::from_secs(10);

/// A topic as Kafka has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicState {
    pub partitions: usize,
    pub retention_ms: Option<i64>,
}

#[derive(Clone)]
pub struct Topics {
    admin: Arc<AdminClient<DefaultClientContext>>,
}

fn options() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(TIMEOUT)).request_timeout(Some(TIMEOUT))
}

impl Topics {
    pub fn new(brokers: &str) -> Result<Self> {
        let admin = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("reconnect.backoff.max.ms", "1000")
            .create()
            .map_err(Error::from)?;
        Ok(Topics { admin: Arc::new(admin) })
    }

    /// Whether the brokers answer a metadata request.
    pub async fn ping(&self) -> Result<()> {
        let admin = self.admin.clone();
        tokio::task::spawn_blocking(move || admin.inner().fetch_metadata(None, Duration::from_secs(2)).map(|_| ()))
            .await
            .map_err(Error::from)?
            .map_err(Error::from)
    }

    /// The topic's partitions and retention; `None` when it does not exist.
    pub async fn describe(&self, topic: &str) -> Result<Option<TopicState>> {
        let admin = self.admin.clone();
        let name = topic.to_owned();
        let partitions = tokio::task::spawn_blocking(move || {
            let md = admin.inner().fetch_metadata(Some(&name), TIMEOUT).map_err(Error::from)?;
            let found = md.topics().iter().find(|t| t.name() == name).and_then(|t| match t.error() {
                None => Some(t.partitions().len()),
                Some(_) => None,
            });
            Ok::<_, Error>(found)
        })
        .await
        .map_err(Error::from)??;
        let Some(partitions) = partitions else { return Ok(None) };
        let described =
            self.admin.describe_configs([&ResourceSpecifier::Topic(topic)], &options()).await.map_err(Error::from)?;
        let mut retention_ms = None;
        for r in described {
            match r {
                Ok(resource) => {
                    retention_ms = resource.get(RETENTION).and_then(|e| e.value.as_deref()?.parse().ok());
                }
                Err(RDKafkaErrorCode::UnknownTopicOrPartition) => return Ok(None),
                Err(code) => return Err(Error::topic(TopicOp::Describe, topic, code)),
            }
        }
        Ok(Some(TopicState { partitions, retention_ms }))
    }

    /// Records currently in the topic, over all partitions (high minus low watermark).
    pub async fn records(&self, topic: &str, partitions: usize) -> Result<i64> {
        let admin = self.admin.clone();
        let name = topic.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut total = 0;
            for p in 0..partitions as i32 {
                let (low, high) = admin.inner().fetch_watermarks(&name, p, TIMEOUT).map_err(Error::from)?;
                total += high - low;
            }
            Ok(total)
        })
        .await
        .map_err(Error::from)?
    }

    /// Creates the topic; an existing one is left as it is.
    pub async fn create(
        &self,
        topic: &str,
        partitions: i32,
        replication: i32,
        retention_ms: Option<i64>,
    ) -> Result<()> {
        let retention = retention_ms.map(|r| r.to_string());
        let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication));
        if let Some(r) = &retention {
            new = new.set(RETENTION, r);
        }
        for r in self.admin.create_topics([&new], &options()).await.map_err(Error::from)? {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((t, code)) => return Err(Error::topic(TopicOp::Create, &t, code)),
            }
        }
        Ok(())
    }

    /// Raises the partition count to `total`.
    pub async fn add_partitions(&self, topic: &str, total: usize) -> Result<()> {
        let np = NewPartitions::new(topic, total);
        for r in self.admin.create_partitions([&np], &options()).await.map_err(Error::from)? {
            if let Err((t, code)) = r {
                return Err(Error::topic(TopicOp::AddPartitions, &t, code));
            }
        }
        Ok(())
    }

    /// Sets `retention.ms` (the only topic setting the operator manages).
    pub async fn set_retention(&self, topic: &str, retention_ms: i64) -> Result<()> {
        let value = retention_ms.to_string();
        let alter = AlterConfig::new(ResourceSpecifier::Topic(topic)).set(RETENTION, &value);
        for r in self.admin.alter_configs([&alter], &options()).await.map_err(Error::from)? {
            if let Err((_, code)) = r {
                return Err(Error::topic(TopicOp::SetRetention, topic, code));
            }
        }
        Ok(())
    }

    /// Deletes the topic; a missing one is fine.
    pub async fn delete(&self, topic: &str) -> Result<()> {
        for r in self.admin.delete_topics(&[topic], &options()).await.map_err(Error::from)? {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
                Err((t, code)) => return Err(Error::topic(TopicOp::Delete, &t, code)),
            }
        }
        Ok(())
    }
}
