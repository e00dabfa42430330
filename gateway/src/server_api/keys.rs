//! The declared server API keys: from `AURORA_API_KEYS_FILE` (read again when it changes)
//! and, in distributed mode, from `ChatApiKey` resources the operator copies into MongoDB
//! (read again on a `keys` announcement, and every [`STORE_EVERY`] in case one was missed).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use aurora_core::apikeys::{ApiKey, ApiKeyStore, KeyError, KeyFile, KeySpec, Keyring};

/// How often the key file is compared with what was read.
pub const WATCH_EVERY: Duration = Duration::from_secs(1);
/// How often the store's keys are read without an announcement.
pub const STORE_EVERY: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Sources {
    /// The file's contents as last read, and its keys.
    text: Option<String>,
    file: Vec<KeySpec>,
    store: Vec<KeySpec>,
}

pub struct KeyWatch {
    path: Option<PathBuf>,
    store: Option<Arc<dyn ApiKeyStore>>,
    ring: RwLock<Arc<Keyring>>,
    sources: RwLock<Sources>,
}

impl KeyWatch {
    /// Reads `path` (`AURORA_API_KEYS_FILE`); a missing or invalid file fails the start.
    pub fn load(path: Option<PathBuf>, store: Option<Arc<dyn ApiKeyStore>>) -> Result<KeyWatch, KeyError> {
        let watch = KeyWatch { path, store, ring: RwLock::default(), sources: RwLock::default() };
        watch.reload_file()?;
        Ok(watch)
    }

    /// The key `presented` is, if declared now.
    pub fn find(&self, presented: &str) -> Option<Arc<ApiKey>> {
        self.ring.read().unwrap_or_else(std::sync::PoisonError::into_inner).find(presented)
    }

    fn names(&self) -> HashSet<String> {
        self.ring.read().unwrap_or_else(std::sync::PoisonError::into_inner).names()
    }

    fn rebuild(&self, sources: &Sources) -> Result<(), KeyError> {
        let ring = Keyring::from_sources(sources.file.clone(), sources.store.clone())?;
        tracing::info!(hashes = ring.len(), "server API keys");
        *self.ring.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(ring);
        Ok(())
    }

    /// Reads the file again if it changed; true when the keys changed. A file that is gone
    /// revokes its keys; an unreadable or invalid one keeps the keys read before (an
    /// editor's half-written save), and is reported.
    pub fn reload_file(&self) -> Result<bool, KeyError> {
        let Some(path) = &self.path else { return Ok(false) };
        let shown = path.display().to_string();
        let mut sources = self.sources.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && sources.text.is_some() => String::new(),
            Err(source) => return Err(KeyError::Read { path: shown, source }),
        };
        if sources.text.as_deref() == Some(text.as_str()) {
            return Ok(false);
        }
        let file = KeyFile::parse(&text, &shown)?.keys;
        Keyring::from_specs(file.clone())?;
        let previous = std::mem::replace(&mut sources.file, file);
        if let Err(e) = self.rebuild(&sources) {
            sources.file = previous;
            return Err(e);
        }
        sources.text = Some(text);
        Ok(true)
    }

    /// Reads the store's keys again; true when they changed.
    pub async fn reload_store(&self) -> bool {
        let Some(store) = &self.store else { return false };
        let specs = match store.api_keys().await {
            Ok(specs) => specs,
            Err(e) => {
                tracing::warn!(error = %e, "ChatApiKey keys not read; the previous ones stay");
                return false;
            }
        };
        let mut sources = self.sources.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if sources.store == specs {
            return false;
        }
        sources.store = specs;
        match self.rebuild(&sources) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, "server API keys not rebuilt");
                false
            }
        }
    }

    /// Watches the file and the store until `shutdown` (`changed`: a `keys` announcement);
    /// the bot connections of a key no longer declared close (4003).
    pub async fn run(
        self: Arc<Self>,
        hub: Arc<crate::hub::Hub>,
        mut changed: tokio::sync::mpsc::Receiver<()>,
        shutdown: CancellationToken,
    ) {
        let mut file_tick = tokio::time::interval(WATCH_EVERY);
        file_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut store_tick = tokio::time::interval(STORE_EVERY);
        store_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let before = self.names();
            let reloaded = tokio::select! {
                () = shutdown.cancelled() => return,
                _ = file_tick.tick(), if self.path.is_some() => {
                    let watch = self.clone();
                    match tokio::task::spawn_blocking(move || watch.reload_file()).await {
                        Ok(Ok(changed)) => changed,
                        Ok(Err(e)) => {
                            tracing::error!(error = %e, "server API keys not read again; the previous ones stay");
                            false
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "server API key reader failed");
                            false
                        }
                    }
                }
                _ = store_tick.tick(), if self.store.is_some() => self.reload_store().await,
                Some(()) = changed.recv() => self.reload_store().await,
            };
            if reloaded {
                for gone in before.difference(&self.names()) {
                    let closed = hub.disconnect(&format!("bot:{gone}"));
                    tracing::info!(key = %gone, connections = closed, "API key revoked; its bot connections closed");
                }
            }
        }
    }
}
