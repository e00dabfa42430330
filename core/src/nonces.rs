//! Nonce dedupe that survives restarts.
//!
//! Embedded mode keeps nonces in memory. For the first five minutes after a start, a
//! first-seen nonce is also looked up in the store, where every stored message keeps
//! its nonce: a client re-sending after a restart (SIGKILL, or SIGTERM closing sessions
//! before their acks) gets the stored id, not a second message. (Distributed mode keeps
//! nonces in Redis, which outlives gateway restarts.)

use async_trait::async_trait;
use std::sync::Arc;

use crate::ports::{Claim, MessageStore, NonceCache, PortResult, NONCE_TTL};

pub struct DurableNonces {
    cache: Arc<dyn NonceCache>,
    store: Arc<dyn MessageStore>,
}

impl DurableNonces {
    pub fn new(cache: Arc<dyn NonceCache>, store: Arc<dyn MessageStore>) -> Self {
        DurableNonces { cache, store }
    }
}

#[async_trait]
impl NonceCache for DurableNonces {
    async fn claim(&self, user_id: &str, room: &str, nonce: &str, id: &str) -> PortResult<Claim> {
        let claim = self.cache.claim(user_id, room, nonce, id).await?;
        if claim != Claim::New || !self.cache.cold().await {
            return Ok(claim);
        }
        let since = crate::now_ms() - NONCE_TTL.as_millis() as i64;
        match self.store.id_by_nonce(room, user_id, nonce, since).await? {
            Some(stored) => {
                tracing::debug!(room, user_id, "nonce found in the store after a restart");
                Ok(Claim::Stored(stored))
            }
            None => Ok(Claim::New),
        }
    }

    async fn release(&self, user_id: &str, room: &str, nonce: &str) -> PortResult<()> {
        self.cache.release(user_id, room, nonce).await
    }

    async fn cold(&self) -> bool {
        self.cache.cold().await
    }
}
