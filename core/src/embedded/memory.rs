//! In-process bus, presence, rate limiter and nonce cache for embedded mode.

use async_trait::async_trait;
use dashmap::DashMap;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::time::Instant;

use crate::model::UserRef;
use crate::ports::{Bus, BusSink, Claim, ConnId, NonceCache, PortResult, Presence, RateLimiter, RoomEvent};
use crate::ratelimit::{Bucket, Decision, RateLimit};

/// How long a `(user, room, nonce)` is remembered.
pub use crate::ports::NONCE_TTL;
const SWEEP_EVERY: u64 = 4096;

/// Hands published events straight to the local hub.
#[derive(Default)]
pub struct MemoryBus {
    sink: OnceLock<Arc<dyn BusSink>>,
}

#[async_trait]
impl Bus for MemoryBus {
    fn attach(&self, sink: Arc<dyn BusSink>) {
        if self.sink.set(sink).is_err() {
            tracing::warn!("bus sink attached twice; keeping the first");
        }
    }

    async fn publish(&self, room: &str, event: RoomEvent) -> PortResult<()> {
        if let Some(sink) = self.sink.get() {
            sink.deliver(room, event);
        }
        Ok(())
    }

    async fn subscribe(&self, _room: &str) -> PortResult<()> {
        Ok(())
    }

    async fn unsubscribe(&self, _room: &str) -> PortResult<()> {
        Ok(())
    }
}

struct Online {
    user: UserRef,
    conns: HashSet<ConnId>,
}

/// Per room, each present user with the set of its connections.
#[derive(Default)]
pub struct MemoryPresence {
    rooms: DashMap<String, HashMap<Arc<str>, Online>>,
}

#[async_trait]
impl Presence for MemoryPresence {
    async fn join(&self, room: &str, user: &UserRef, conn: ConnId) -> PortResult<bool> {
        let mut users = self.rooms.entry(room.to_owned()).or_default();
        let online =
            users.entry(user.id.clone()).or_insert_with(|| Online { user: user.clone(), conns: HashSet::new() });
        let first = online.conns.is_empty();
        online.conns.insert(conn);
        Ok(first)
    }

    async fn leave(&self, room: &str, user: &UserRef, conn: ConnId) -> PortResult<bool> {
        let Some(mut users) = self.rooms.get_mut(room) else { return Ok(false) };
        let Some(online) = users.get_mut(&user.id) else { return Ok(false) };
        if !online.conns.remove(&conn) {
            return Ok(false);
        }
        let last = online.conns.is_empty();
        if last {
            users.remove(&user.id);
        }
        let empty = users.is_empty();
        drop(users);
        if empty {
            self.rooms.remove_if(room, |_, u| u.is_empty());
        }
        Ok(last)
    }

    async fn members(&self, room: &str) -> PortResult<Vec<UserRef>> {
        let mut members: Vec<UserRef> =
            self.rooms.get(room).map(|users| users.values().map(|o| o.user.clone()).collect()).unwrap_or_default();
        members.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(members)
    }

    async fn online(&self, room: &str) -> PortResult<usize> {
        Ok(self.rooms.get(room).map(|u| u.len()).unwrap_or(0))
    }
}

/// Token buckets keyed by `(user, room)`.
pub struct MemoryRateLimiter {
    buckets: DashMap<(String, String), Bucket>,
    epoch: Instant,
    ops: AtomicU64,
}

impl Default for MemoryRateLimiter {
    fn default() -> Self {
        MemoryRateLimiter { buckets: DashMap::new(), epoch: Instant::now(), ops: AtomicU64::new(0) }
    }
}

impl MemoryRateLimiter {
    fn now_ms(&self) -> f64 {
        self.epoch.elapsed().as_secs_f64() * 1000.0
    }

    fn sweep(&self, limit: RateLimit, now: f64) {
        if self.ops.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            let idle_ms = limit.period.as_secs_f64() * 1000.0;
            self.buckets.retain(|_, b| now - b.at_ms < idle_ms);
        }
    }
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn acquire(&self, user_id: &str, room: &str, limit: RateLimit) -> PortResult<Decision> {
        let now = self.now_ms();
        self.sweep(limit, now);
        let mut bucket =
            self.buckets.entry((user_id.to_owned(), room.to_owned())).or_insert_with(|| Bucket::full(limit, now));
        Ok(bucket.take(limit, now))
    }

    async fn refund(&self, user_id: &str, room: &str, limit: RateLimit) -> PortResult<()> {
        let now = self.now_ms();
        if let Some(mut bucket) = self.buckets.get_mut(&(user_id.to_owned(), room.to_owned())) {
            bucket.refund(limit, now);
        }
        Ok(())
    }
}

/// Remembers nonces for [`NONCE_TTL`].
pub struct MemoryNonces {
    seen: DashMap<(String, String, String), (String, Instant)>,
    ops: AtomicU64,
    started: Instant,
}

impl Default for MemoryNonces {
    fn default() -> Self {
        MemoryNonces { seen: DashMap::new(), ops: AtomicU64::new(0), started: Instant::now() }
    }
}

#[async_trait]
impl NonceCache for MemoryNonces {
    async fn claim(&self, user_id: &str, room: &str, nonce: &str, id: &str) -> PortResult<Claim> {
        let now = Instant::now();
        if self.ops.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.seen.retain(|_, (_, at)| now.duration_since(*at) < NONCE_TTL);
        }
        let key = (user_id.to_owned(), room.to_owned(), nonce.to_owned());
        let mut entry = self.seen.entry(key).or_insert_with(|| (id.to_owned(), now));
        if entry.0 == id {
            return Ok(Claim::New);
        }
        if now.duration_since(entry.1) >= NONCE_TTL {
            *entry = (id.to_owned(), now);
            return Ok(Claim::New);
        }
        Ok(Claim::Existing(entry.0.clone()))
    }

    async fn release(&self, user_id: &str, room: &str, nonce: &str) -> PortResult<()> {
        self.seen.remove(&(user_id.to_owned(), room.to_owned(), nonce.to_owned()));
        Ok(())
    }

    async fn cold(&self) -> bool {
        self.started.elapsed() < NONCE_TTL
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn user(id: &str) -> UserRef {
        UserRef { id: id.into(), name: id.into() }
    }

    #[tokio::test]
    async fn presence_counts_users_not_connections() {
        let p = MemoryPresence::default();
        assert!(p.join("r", &user("a"), 1).await.unwrap());
        assert!(!p.join("r", &user("a"), 2).await.unwrap());
        assert!(p.join("r", &user("b"), 3).await.unwrap());
        assert_eq!(p.online("r").await.unwrap(), 2);
        assert!(!p.leave("r", &user("a"), 1).await.unwrap());
        assert!(p.leave("r", &user("a"), 2).await.unwrap());
        assert!(!p.leave("r", &user("a"), 2).await.unwrap(), "a second leave is not a leave");
        assert_eq!(p.members("r").await.unwrap(), vec![user("b")]);
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limiter_refills_over_time() {
        let l = MemoryRateLimiter::default();
        let limit: RateLimit = "2/10s".parse().unwrap();
        assert_eq!(l.acquire("u", "r", limit).await.unwrap(), Decision::Allowed);
        assert_eq!(l.acquire("u", "r", limit).await.unwrap(), Decision::Allowed);
        let Decision::Limited { retry_after } = l.acquire("u", "r", limit).await.unwrap() else {
            panic!("third message should be limited")
        };
        assert_eq!(retry_after, Duration::from_secs(5));
        assert_eq!(l.acquire("u", "other", limit).await.unwrap(), Decision::Allowed, "per room");
        tokio::time::advance(retry_after).await;
        assert_eq!(l.acquire("u", "r", limit).await.unwrap(), Decision::Allowed);
    }

    #[tokio::test(start_paused = true)]
    async fn nonces_dedupe_for_five_minutes() {
        let n = MemoryNonces::default();
        assert_eq!(n.claim("u", "r", "x", "id1").await.unwrap(), Claim::New);
        assert_eq!(n.claim("u", "r", "x", "id2").await.unwrap(), Claim::Existing("id1".into()));
        assert_eq!(n.claim("v", "r", "x", "id3").await.unwrap(), Claim::New, "per user");
        tokio::time::advance(NONCE_TTL).await;
        assert_eq!(n.claim("u", "r", "x", "id4").await.unwrap(), Claim::New);
        n.release("u", "r", "x").await.unwrap();
        assert_eq!(n.claim("u", "r", "x", "id5").await.unwrap(), Claim::New);
    }
}
