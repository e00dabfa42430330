//! Embedded mode: every port in one process, storage in a redb file.

mod audit;
mod log;
mod memory;
mod reads;
mod sessions;
mod store;
mod users;

pub use log::{EmbeddedLog, PipelineTasks};
pub use memory::{MemoryBus, MemoryNonces, MemoryPresence, MemoryRateLimiter, NONCE_TTL};
pub use sessions::MemoryTickets;
pub use store::FileStore;

use std::path::Path;
use std::sync::Arc;

use crate::nonces::DurableNonces;
use crate::pipeline::Pipeline;
use crate::ports::{Backend, PortResult};

/// The embedded ports, the store under them, the pipeline's stages to run (they end once
/// the backend's log handles are dropped), and what the backend's announcer announces.
pub struct Embedded {
    pub backend: Backend,
    pub store: FileStore,
    pub pipeline: PipelineTasks,
    pub control: tokio::sync::mpsc::Receiver<crate::control::ControlSignal>,
}

/// Opens the store in `data_dir` and wires every port.
pub fn open(data_dir: &Path) -> PortResult<Embedded> {
    let store = FileStore::open(data_dir)?;
    let bus = Arc::new(MemoryBus::default());
    let (log, pipeline) = EmbeddedLog::new(Pipeline::new(Arc::new(store.clone()), bus.clone()));
    let limiter: Arc<dyn crate::ports::RateLimiter> = Arc::new(MemoryRateLimiter::default());
    let nonces: Arc<dyn crate::ports::NonceCache> =
        Arc::new(DurableNonces::new(Arc::new(MemoryNonces::default()), Arc::new(store.clone())));
    let (announcer, control) = crate::control::LocalAnnouncer::new();
    let backend = Backend {
        users: Arc::new(store.clone()),
        rooms: Arc::new(store.clone()),
        messages: Arc::new(store.clone()),
        log,
        bus,
        presence: Arc::new(MemoryPresence::default()),
        admission: Arc::new(crate::ports::Sequential { nonces: nonces.clone(), limiter: limiter.clone() }),
        limiter,
        nonces,
        sessions: Arc::new(store.clone()),
        reads: Arc::new(store.clone()),
        audit: Arc::new(store.clone()),
        tickets: Arc::new(MemoryTickets::default()),
        readiness: Arc::new(store.clone()),
        announcer: Arc::new(announcer),
        api_keys: None,
        members: None,
    };
    Ok(Embedded { backend, store, pipeline, control })
}
