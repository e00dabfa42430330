use clap::Parser;
use tokio_util::sync::CancellationToken;

use aurora_operator::config::{Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Crd) = cli.command {
        print!("{}", aurora_operator::crd::crd_yaml()?);
        return Ok(());
    }
    aurora_core::process::init_logging();
    let shutdown = CancellationToken::new();
    aurora_core::process::on_signal(shutdown.clone());
    aurora_operator::run(cli.config, shutdown).await
}
