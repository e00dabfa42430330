#![forbid(unsafe_code)]

use clap::Parser;
use tokio_util::sync::CancellationToken;

use aurora_operator::config::{Cli, Command};

/// How long shutdown may take before the process exits anyway (the Lease release alone
/// gives up after 5 s).
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(15);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Crd) = cli.command {
        print!("{}", aurora_operator::crd::crd_yaml()?);
        return Ok(());
    }
    if let Some(Command::ApiKeyCrd) = cli.command {
        print!("{}", aurora_operator::crd::apikey_crd_yaml()?);
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
    let work = aurora_operator::run(cli.config, shutdown.clone());
    match aurora_core::process::within_grace(work, shutdown, SHUTDOWN_GRACE).await {
        Some(done) => done,
        None => anyhow::bail!("shutdown took longer than {SHUTDOWN_GRACE:?}; exiting"),
    }
}
