//! Consumer configuration (env var or flag, parsed once at start-up).

use clap::Parser;
use std::net::SocketAddr;

#[derive(Debug, Clone, Parser)]
#[command(name = "aurora-consumer", version, about = "AuroraChat fan-out consumer")]
pub struct ConsumerConfig {
    #[arg(long, env = "AURORA_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub kafka_brokers: String,
    #[arg(long, env = "AURORA_REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    #[arg(long, env = "AURORA_MONGODB_URI", default_value = "mongodb://127.0.0.1:27017")]
    pub mongodb_uri: String,
    /// Partitions of `aurora.messages` when the consumer creates it.
    #[arg(long, env = "AURORA_KAFKA_PARTITIONS", default_value_t = 12)]
    pub kafka_partitions: i32,
    /// Consumer group; every consumer of one deployment shares it.
    #[arg(long, env = "AURORA_CONSUMER_GROUP", default_value = "aurora-fanout")]
    pub group: String,
    /// `/healthz`, `/readyz`, `/metrics`.
    #[arg(long, env = "AURORA_CONSUMER_LISTEN", default_value = "127.0.0.1:9100")]
    pub listen: SocketAddr,
    /// Most records processed as one batch.
    #[arg(long, env = "AURORA_CONSUMER_BATCH", default_value_t = 500)]
    pub batch: usize,
}
