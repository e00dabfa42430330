//! Shared gateway state.

use dashmap::DashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use aurora_core::auth::JwtKeys;
use aurora_core::config::Config;
use aurora_core::model::Room;
use aurora_core::ports::{Backend, ConnId, PortResult};

use crate::hub::Hub;
use crate::metrics::Metrics;

pub struct AppState {
    pub config: Config,
    pub backend: Backend,
    pub jwt: JwtKeys,
    pub hub: Arc<Hub>,
    pub rooms: RoomDirectory,
    pub metrics: Metrics,
    /// Cancelled on SIGTERM: sessions close with 1001.
    pub shutdown: CancellationToken,
    /// Every WebSocket session, so shutdown can wait for them.
    pub sessions: TaskTracker,
    /// Bounds concurrent argon2 work to the number of cores.
    pub hashing: tokio::sync::Semaphore,
    next_conn: AtomicU64,
}

impl AppState {
    pub fn new(config: Config, backend: Backend, jwt: JwtKeys, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let metrics = Metrics::new()?;
        Ok(AppState {
            hub: Hub::new(backend.bus.clone(), metrics.outbound_overflows.clone()),
            rooms: RoomDirectory { cache: DashMap::new(), backend: backend.clone() },
            metrics,
            config,
            backend,
            jwt,
            shutdown,
            sessions: TaskTracker::new(),
            hashing: tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())),
            next_conn: AtomicU64::new(1),
        })
    }

    pub fn next_conn_id(&self) -> ConnId {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }
}

/// Room configuration, read through a cache (rooms are looked up on every join).
pub struct RoomDirectory {
    cache: DashMap<String, Arc<Room>>,
    backend: Backend,
}

impl RoomDirectory {
    pub async fn get(&self, name: &str) -> PortResult<Option<Arc<Room>>> {
        if let Some(room) = self.cache.get(name) {
            return Ok(Some(room.clone()));
        }
        let found = self.backend.rooms.room(name).await?.map(Arc::new);
        if let Some(room) = &found {
            self.cache.insert(name.to_owned(), room.clone());
        }
        Ok(found)
    }

    pub fn remember(&self, room: Room) {
        self.cache.insert(room.name.clone(), Arc::new(room));
    }
}
