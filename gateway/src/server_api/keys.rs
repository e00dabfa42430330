//! The declared server API keys, read again when their file changes: a key removed from the
//! file stops working within [`WATCH_EVERY`] plus the time to read it.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use aurora_core::apikeys::{ApiKey, KeyError, Keyring};

/// How often the key file is compared with what was read.
pub const WATCH_EVERY: Duration = Duration::from_secs(1);

pub struct KeyWatch {
    path: Option<PathBuf>,
    ring: RwLock<Arc<Keyring>>,
    /// The file's contents as last read.
    read: RwLock<Option<String>>,
}

impl KeyWatch {
    /// Reads `path` (`AURORA_API_KEYS_FILE`); a missing or invalid file fails the start.
    pub fn load(path: Option<PathBuf>) -> Result<KeyWatch, KeyError> {
        let watch = KeyWatch { path, ring: RwLock::default(), read: RwLock::default() };
        watch.reload()?;
        Ok(watch)
    }

    /// The key `presented` is, if declared now.
    pub fn find(&self, presented: &str) -> Option<Arc<ApiKey>> {
        self.ring.read().unwrap_or_else(std::sync::PoisonError::into_inner).find(presented)
    }

    /// Reads the file again if it changed; true when the keys changed. A file that is gone
    /// revokes every key; an unreadable or invalid one keeps the keys read before (an
    /// editor's half-written save), and is reported.
    pub fn reload(&self) -> Result<bool, KeyError> {
        let Some(path) = &self.path else { return Ok(false) };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.read_before() => String::new(),
            Err(source) => return Err(KeyError::Read { path: path.display().to_string(), source }),
        };
        if self.read.read().unwrap_or_else(std::sync::PoisonError::into_inner).as_deref() == Some(text.as_str()) {
            return Ok(false);
        }
        let ring = Keyring::parse(&text, &path.display().to_string())?;
        tracing::info!(path = %path.display(), hashes = ring.len(), "server API keys read");
        *self.ring.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(ring);
        *self.read.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(text);
        Ok(true)
    }

    fn read_before(&self) -> bool {
        self.read.read().unwrap_or_else(std::sync::PoisonError::into_inner).is_some()
    }

    fn names(&self) -> std::collections::HashSet<String> {
        self.ring.read().unwrap_or_else(std::sync::PoisonError::into_inner).names()
    }

    /// Watches the file until `shutdown`; the bot connections of a key no longer declared
    /// close (4003).
    pub async fn run(self: Arc<Self>, hub: Arc<crate::hub::Hub>, shutdown: CancellationToken) {
        if self.path.is_none() {
            return;
        }
        let mut tick = tokio::time::interval(WATCH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let before = self.names();
            let watch = self.clone();
            match tokio::task::spawn_blocking(move || watch.reload()).await {
                Ok(Ok(true)) => {
                    let now = self.names();
                    for gone in before.difference(&now) {
                        let closed = hub.disconnect(&format!("bot:{gone}"));
                        tracing::info!(key = %gone, connections = closed, "API key revoked; its bot connections closed");
                    }
                }
                Ok(Ok(false)) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "server API keys not read again; the previous ones stay"),
                Err(e) => tracing::error!(error = %e, "server API key reader failed"),
            }
        }
    }
}
