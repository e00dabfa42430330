//! The consumer's probes: ready when Kafka, Redis and MongoDB answer.

use aurora_core::probes::{Check, Probes};
use rdkafka::consumer::Consumer;
use std::time::Duration;

use crate::Shared;

#[async_trait::async_trait]
impl Probes for Shared {
    async fn readiness(&self) -> Vec<Check> {
        let mut redis = self.redis.clone();
        let redis_ok = redis::cmd("PING").query_async::<String>(&mut redis).await.is_ok();
        let mongo_ok = self.mongo.ping().await.is_ok();
        let consumer = self.consumer.clone();
        let kafka_ok =
            tokio::task::spawn_blocking(move || consumer.fetch_metadata(None, Duration::from_secs(2)).is_ok())
                .await
                .unwrap_or(false);
        vec![Check::up("kafka", kafka_ok), Check::up("redis", redis_ok), Check::up("mongodb", mongo_ok)]
    }

    fn metrics(&self) -> String {
        self.metrics.render()
    }
}
