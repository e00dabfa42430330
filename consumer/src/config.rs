//! Consumer configuration (env var or flag, parsed once at start-up).

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

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
    /// Milliseconds a batch waits for more records after its first one, up to `batch`,
    /// while traffic is steady (the previous batch held more than one record); 0 (off): a
    /// batch is what has arrived by then. Larger batches cost the store and the gateways
    /// less per message (docs/benchmarks.md), at up to this much latency; a lone message
    /// never waits.
    #[arg(long, env = "AURORA_CONSUMER_LINGER_MS", default_value_t = 0)]
    pub linger_ms: u64,
    /// Webhook endpoints (docs/server-api.md, Webhooks): this consumer delivers to them.
    /// Read at start-up; a change takes a restart (the chart rolls the pods).
    #[arg(long, env = "AURORA_WEBHOOKS_FILE")]
    pub webhooks_file: Option<PathBuf>,
    /// Write every stored record to `aurora.events`, the topic webhooks are delivered from.
    /// On whenever a webhooks file is given; every consumer of a group must agree.
    #[arg(long, env = "AURORA_CONSUMER_EVENTS", default_value_t = false)]
    pub events: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Delivers an endpoint's dead letters (`aurora.webhooks.dlq`) again, in order, and
    /// exits once it has reached the end of the topic; run it again to resume.
    ReplayWebhooks {
        /// The endpoint's name in the webhooks file.
        #[arg(long)]
        endpoint: String,
    },
}

impl ConsumerConfig {
    pub fn writes_events(&self) -> bool {
        self.events || self.webhooks_file.is_some()
    }
}
