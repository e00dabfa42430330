#![deny(unsafe_code)]

use anyhow::Context;
use clap::Parser;
use tokio_util::sync::CancellationToken;

use aurora_core::config::Config;

/// Each argon2id hash allocates 19 MiB. With glibc's dynamic mmap threshold those
/// blocks stay in per-thread arenas after use (~100 MiB RSS after a few logins);
/// a fixed threshold returns them to the OS.
#[allow(unsafe_code)]
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; called before any other thread exists.
        let ok = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20) };
        if ok != 1 {
            eprintln!("mallopt(M_MMAP_THRESHOLD) failed; memory after logins may stay high");
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("check") {
        // `aurora-gateway check URL [ROOM]`: the helm test's end-to-end smoke test.
        let Some(url) = args.get(2) else {
            eprintln!("usage: aurora-gateway check http://HOST:PORT [ROOM]");
            std::process::exit(2);
        };
        let room = args.get(3).map_or("general", String::as_str);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        return runtime.block_on(aurora_gateway::check::run(url, room));
    }
    if args.get(1).map(String::as_str) == Some("api-key") {
        return new_api_key(&args[1..]);
    }
    tune_allocator();
    let mut config = Config::parse();
    if let Err(e) = config.validate() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
    let result = runtime(config.workers())?.block_on(run(config));
    aurora_core::process::exit_with(result)
}

/// One worker runs tokio's current-thread scheduler (see `AURORA_WORKER_THREADS`).
fn runtime(workers: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if workers <= 1 {
        return tokio::runtime::Builder::new_current_thread().enable_all().build();
    }
    tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build()
}

async fn run(config: Config) -> anyhow::Result<()> {
    aurora_core::process::init_logging();
    // Embedded gateways own their data directory: never two on one port.
    let reuse_port = config.mode == aurora_core::config::Mode::Distributed;
    let listener = aurora_core::process::bind(config.listen, reuse_port)
        .with_context(|| format!("AURORA_LISTEN: cannot bind {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, mode = ?config.mode, workers = config.workers(), data_dir = %config.data_dir.display(), "listening");
    // Scripts and tests read this line to learn the port when listening on :0.
    println!("aurora-gateway listening on http://{addr}");
    let shutdown = CancellationToken::new();
    aurora_core::process::on_signal(shutdown.clone());
    aurora_gateway::serve(config, listener, shutdown).await
}

/// `aurora-gateway api-key NAME --scopes publish,rooms [--bot "Deploy Bot"]`: makes a key,
/// prints it once and the entry to add to `AURORA_API_KEYS_FILE` (its hash, not the key).
#[derive(clap::Parser)]
#[command(name = "aurora-gateway api-key")]
struct NewKey {
    /// The key's name (a-z, 0-9, -).
    name: String,
    /// What it may do.
    #[arg(long, value_delimiter = ',', required = true)]
    scopes: Vec<aurora_core::apikeys::Scope>,
    /// The name its bot posts under.
    #[arg(long)]
    bot: Option<String>,
}

fn new_api_key(args: &[String]) -> anyhow::Result<()> {
    use aurora_core::apikeys::{self, KeyFile, KeySpec};
    let a = NewKey::parse_from(args);
    let key = apikeys::generate();
    let spec =
        KeySpec { name: a.name, hashes: vec![apikeys::hash(&key)], scopes: a.scopes, bot: a.bot, rate_limit: None };
    if let Err(e) = apikeys::Keyring::from_specs(vec![spec.clone()]) {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
    println!("# The key (shown once; the backend sends it as `Authorization: Bearer <key>`):");
    println!("# {key}");
    println!("# Add this to AURORA_API_KEYS_FILE (it holds the key's SHA-256, not the key):");
    print!("{}", KeyFile { keys: vec![spec] }.to_yaml());
    Ok(())
}
