#![forbid(unsafe_code)]

use clap::Parser;
use tokio_util::sync::CancellationToken;

use aurora_consumer::config::{Command, ConsumerConfig};

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(run());
    aurora_core::process::exit_with(result)
}

async fn run() -> anyhow::Result<()> {
    let config = ConsumerConfig::parse();
    aurora_core::process::init_logging();
    let shutdown = CancellationToken::new();
    aurora_core::process::on_signal(shutdown.clone());
    match &config.command {
        Some(Command::ReplayWebhooks { endpoint }) => {
            let delivered = aurora_consumer::webhooks::replay(&config, endpoint, shutdown).await?;
            println!("replayed {delivered} dead letters to {endpoint}");
            Ok(())
        }
        None => aurora_consumer::run(config, shutdown).await,
    }
}
