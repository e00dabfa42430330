//! The AuroraChat gateway: REST API, WebSocket sessions, the local room hub and
//! the embedded web client.

#![deny(unsafe_code)]

pub mod blocks;
pub mod check;
pub mod http;
pub mod hub;
pub mod metrics;
pub mod outbox;
pub mod receipts;
pub mod rooms;
pub mod server;
pub mod server_api;
pub mod state;
pub mod ws;

use anyhow::Context;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use aurora_core::auth::JwtKeys;
use aurora_core::config::{Config, Mode};
use aurora_core::model::Room;
use aurora_core::ports::Backend;
use tokio::task::JoinHandle;

use crate::state::AppState;

/// The ports for the configured mode, the JWT key, and the background tasks
/// that must finish after the server stops.
pub struct Wiring {
    pub backend: Backend,
    pub jwt_secret: Vec<u8>,
    /// Tasks that finish by themselves once the ports are dropped (the embedded pipeline).
    pub background: Vec<JoinHandle<()>>,
    /// Tasks that run until aborted at shutdown (pub/sub subscriber, presence lease).
    pub daemons: Vec<JoinHandle<()>>,
    /// Room and user announcements; every room is also re-read periodically.
    pub control: tokio::sync::mpsc::Receiver<aurora_core::control::ControlSignal>,
}

/// Opens storage and wires every port for `config.mode`.
pub async fn wire(config: &Config) -> anyhow::Result<Wiring> {
    if config.mode == Mode::Distributed {
        return wire_distributed(config).await;
    }
    let aurora_core::embedded::Embedded { backend, store, pipeline, control } =
        aurora_core::embedded::open(&config.data_dir).context("AURORA_DATA_DIR: cannot open the embedded store")?;
    let jwt_secret = match config.configured_secret()? {
        Some(s) => s,
        None => store.jwt_secret_or_generate().context("cannot load or create the JWT key")?,
    };
    // The commit stage gets a thread of its own (see `PipelineTasks`); the fan-out stage
    // ends after it, so waiting for the fan-out waits for both.
    let handle = tokio::runtime::Handle::current();
    std::thread::Builder::new()
        .name("aurora-commit".into())
        .spawn(move || handle.block_on(pipeline.commit))
        .context("cannot start the commit thread")?;
    let background = vec![tokio::spawn(pipeline.fan_out)];
    Ok(Wiring { backend, jwt_secret, background, daemons: Vec::new(), control })
}

#[cfg(feature = "distributed")]
async fn wire_distributed(config: &Config) -> anyhow::Result<Wiring> {
    let jwt_secret = config.configured_secret()?.context("AURORA_JWT_SECRET is required in distributed mode")?;
    let gateway_id = uuid::Uuid::new_v4().simple().to_string();
    let wired = aurora_core::distributed::gateway_backend(&config.endpoints(), &gateway_id, config.presence_lease)
        .await
        .context("cannot reach Kafka, Redis or MongoDB (AURORA_KAFKA_BROKERS, AURORA_REDIS_URL, AURORA_MONGODB_URI)")?;
    tracing::info!(gateway_id, "distributed mode");
    let daemons = wired.tasks.into_iter().map(tokio::spawn).collect();
    Ok(Wiring { backend: wired.backend, jwt_secret, background: Vec::new(), daemons, control: wired.control })
}

#[cfg(not(feature = "distributed"))]
async fn wire_distributed(_: &Config) -> anyhow::Result<Wiring> {
    anyhow::bail!("AURORA_MODE=distributed: this gateway was built without the `distributed` feature")
}

/// Wires the configured mode and serves until `shutdown` is cancelled.
pub async fn serve(config: Config, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let wiring = wire(&config).await?;
    serve_wired(config, wiring, listener, shutdown).await
}

/// Serves until `shutdown` is cancelled, then closes every session with 1001,
/// waits up to `AURORA_SHUTDOWN_TIMEOUT` for them, and lets background tasks finish.
pub async fn serve_wired(
    config: Config,
    wiring: Wiring,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let Wiring { backend, jwt_secret, background, mut daemons, control } = wiring;
    for name in &config.default_rooms {
        backend.rooms.ensure_room(Room::new_api(name, None)).await.context("cannot create default rooms")?;
    }
    let jwt = JwtKeys::new(&jwt_secret, config.jwt_ttl);
    let timeout = config.shutdown_timeout;
    let refresh = config.room_refresh;
    let state = Arc::new(AppState::new(config, backend, jwt, shutdown.clone())?);
    daemons.push(tokio::spawn(state.hub.clone().flush_receipts(receipts::FLUSH_EVERY, shutdown.clone())));
    let (keys_changed, keys_heard) = tokio::sync::mpsc::channel(16);
    daemons.push(tokio::spawn(state.keys.clone().run(state.hub.clone(), keys_heard, shutdown.clone())));
    let watched = (state.rooms.clone(), state.blocks.clone(), keys_changed);
    daemons.push(tokio::spawn(rooms::watch(watched, control, refresh, shutdown.clone())));
    // `aurora_dependency_up` has a sample from the start, not only after the first probe.
    let first_check = state.clone();
    daemons.push(tokio::spawn(async move {
        http::check_dependencies(&first_check).await;
    }));
    let app = http::router(state.clone());
    let scarce = http::probes_only(state.clone());
    let limits = server::Limits {
        header_timeout: state.config.header_timeout,
        per_address: state.config.max_connections_per_address,
        fd_reserve: state.config.fd_reserve,
        trusted: state.config.trusted_proxies.clone(),
        census: state.census.clone(),
    };
    let refused = state.metrics.connections_refused.clone();
    server::serve(listener, app, scarce, limits, shutdown.clone(), refused, timeout).await;

    state.sessions.close();
    if tokio::time::timeout(timeout, state.sessions.wait()).await.is_err() {
        tracing::warn!(left = state.sessions.len(), "shutdown timeout: some sessions did not close");
    }
    // Aborted and awaited, so none is mid-request to a store while the runtime shuts down
    // (the MongoDB driver panics when a request meets its pool's worker already dropped).
    for daemon in &daemons {
        daemon.abort();
    }
    for daemon in daemons {
        let _ = daemon.await;
    }
    drop(state);
    // Background tasks (the embedded pipeline) end once the last port handle is gone.
    for task in background {
        if tokio::time::timeout(timeout, task).await.is_err() {
            tracing::warn!("shutdown timeout: a background task is still busy");
        }
    }
    tracing::info!("stopped");
    Ok(())
}
