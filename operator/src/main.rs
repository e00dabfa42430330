#![forbid(unsafe_code)]

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
    if let Some(Command::JwtSecret { name, namespace, labels }) = cli.command {
        let labels = aurora_operator::jwt_secret::parse_labels(&labels).map_err(anyhow::Error::msg)?;
        let client = kube::Client::try_default().await?;
        let created = aurora_operator::jwt_secret::ensure(client, &namespace, &name, labels).await?;
        tracing::info!(%namespace, secret = %name, created, "JWT key Secret ensured");
        return Ok(());
    }
    let shutdown = CancellationToken::new();
    aurora_core::process::on_signal(shutdown.clone());
    aurora_operator::run(cli.config, shutdown).await
}
