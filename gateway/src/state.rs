//! Shared gateway state.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use aurora_core::auth::JwtKeys;
use aurora_core::config::Config;
use aurora_core::ports::{Backend, ConnId};

use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::rooms::RoomDirectory;

pub struct AppState {
    pub config: Config,
    pub backend: Backend,
    pub jwt: JwtKeys,
    pub hub: Arc<Hub>,
    pub rooms: Arc<RoomDirectory>,
    pub blocks: Arc<crate::blocks::Blocks>,
    /// Server API keys (`AURORA_API_KEYS_FILE`).
    pub keys: Arc<crate::server_api::KeyWatch>,
    pub metrics: Metrics,
    /// Cancelled on SIGTERM: sessions close with 1001.
    pub shutdown: CancellationToken,
    /// Every WebSocket session, so shutdown can wait for them.
    pub sessions: TaskTracker,
    /// WebSocket upgrades (`AURORA_UPGRADE_RATE`), on the monotonic clock of `started`.
    pub upgrades: std::sync::Mutex<aurora_core::ratelimit::Bucket>,
    pub started: std::time::Instant,
    /// The reason of the 1001 close on drain: when to come back.
    pub drain_reason: String,
    /// Since when some dependency has been failing readiness checks.
    pub unready_since: std::sync::Mutex<Option<std::time::Instant>>,
    /// Open connections per client address.
    pub census: Arc<crate::server::Census>,
    /// Bounds concurrent argon2 work to the number of cores.
    pub hashing: tokio::sync::Semaphore,
    next_conn: AtomicU64,
}

impl AppState {
    pub fn new(config: Config, backend: Backend, jwt: JwtKeys, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let metrics = Metrics::new()?;
        let mode = match config.mode {
            aurora_core::config::Mode::Embedded => "embedded",
            aurora_core::config::Mode::Distributed => "distributed",
        };
        metrics.describe(mode);
        let hub = Hub::new(backend.bus.clone(), metrics.outbound_overflows.clone());
        let drain_reason = serde_json::json!({
            "reason": "server shutting down",
            "reconnect_within_ms": config.reconnect_window.as_millis() as u64,
        })
        .to_string();
        let upgrades = aurora_core::ratelimit::Bucket::full(config.upgrade_rate, 0.0);
        Ok(AppState {
            rooms: Arc::new(RoomDirectory::new(backend.clone(), hub.clone())),
            blocks: Arc::default(),
            keys: Arc::new(crate::server_api::KeyWatch::load(config.api_keys_file.clone(), backend.api_keys.clone())?),
            hub,
            metrics,
            config,
            backend,
            jwt,
            shutdown,
            sessions: TaskTracker::new(),
            census: Arc::default(),
            unready_since: std::sync::Mutex::new(None),
            upgrades: std::sync::Mutex::new(upgrades),
            started: std::time::Instant::now(),
            drain_reason,
            hashing: tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())),
            next_conn: AtomicU64::new(1),
        })
    }

    /// Takes an upgrade token; `Err` says when the next one is available.
    pub fn admit_upgrade(&self) -> Result<(), std::time::Duration> {
        let now = self.started.elapsed().as_secs_f64() * 1000.0;
        let mut bucket = self.upgrades.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match bucket.take(self.config.upgrade_rate, now) {
            aurora_core::ratelimit::Decision::Allowed => Ok(()),
            aurora_core::ratelimit::Decision::Limited { retry_after } => Err(retry_after),
        }
    }

    pub fn next_conn_id(&self) -> ConnId {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }
}
