//! Consumer configuration (env var or flag, parsed once at start-up).

use clap::Parser;
use std::net::SocketAddr;

#[derive(Debug, Clone, Parser)]
#[command(name = "aurora-consumer", version, about = "AuroraChat fan-out consumer")]
pub struct ConsumerConfig {
    #[command(flatten)]
    pub services: aurora_core::config::ServiceArgs,
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
