//! Sign-in sessions and WebSocket tickets (docs/protocol.md §1–§2).
//!
//! A session is what a refresh token stands for: it lasts `AURORA_REFRESH_TTL`, and every
//! refresh spends the presented token and hands out the next one. The store keeps only a
//! hash of the one live token, so a token presented twice (stolen, replayed) no longer
//! matches: the store then revokes the whole session. A ticket is a single-use, short-lived
//! secret a browser puts on the `/ws` URL instead of its access token.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::Duration;

use crate::model::UserRef;
use crate::ports::PortResult;

/// How long a ticket from `POST /api/ws-ticket` may wait for its upgrade.
pub const TICKET_TTL: Duration = Duration::from_secs(30);

/// The stored side of a session; the refresh token itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub id: String,
    pub user_id: String,
    /// [`digest`] of the live refresh secret.
    pub secret_hash: String,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms; the session ends then whatever happens.
    pub expires_at: i64,
    pub revoked: bool,
}

impl SessionRecord {
    pub fn live(&self, now_ms: i64) -> bool {
        !self.revoked && self.expires_at > now_ms
    }
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The token was the live one: it is spent and the session goes on under the next one.
    Rotated(SessionRecord),
    /// The session is live but the token is not its live one (a spent token presented
    /// again): the session is revoked now.
    Reused,
    /// No such session, or it ended (expired or revoked).
    Ended,
}

/// The sessions of every user, shared by every gateway.
#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn create_session(&self, session: SessionRecord) -> PortResult<()>;
    /// Atomically replaces the live secret `presented` (a hash) with `next` (a hash).
    async fn rotate_session(&self, id: &str, presented: &str, next: &str, now_ms: i64) -> PortResult<Rotation>;
    /// Ends the session; true when it was live.
    async fn revoke_session(&self, id: &str) -> PortResult<bool>;
    async fn session(&self, id: &str) -> PortResult<Option<SessionRecord>>;
}

/// Who a ticket lets in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    pub user: UserRef,
    /// The session the ticket was issued under, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The access token's expiry (unix seconds): the connection must renew by then.
    pub exp: u64,
}

/// Single-use tickets, shared by every gateway (issued on one, redeemed on another).
#[async_trait]
pub trait TicketStore: Send + Sync {
    /// Stores `ticket` under `hash` for `ttl`.
    async fn issue_ticket(&self, hash: &str, ticket: &Ticket, ttl: Duration) -> PortResult<()>;
    /// The ticket the first time it is redeemed within its lifetime, `None` after that.
    async fn redeem_ticket(&self, hash: &str) -> PortResult<Option<Ticket>>;
}

/// A new random secret: 32 bytes from the OS, as 64 hex digits.
pub fn new_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex(&bytes)
}

/// A new session id: 16 random bytes, as 32 hex digits.
pub fn new_session_id() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex(&bytes)
}

/// SHA-256 of a secret, as hex: what the stores keep (a leaked store holds no usable token).
pub fn digest(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

/// A refresh token as the cookie carries it: `<session id>.<secret>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    pub sid: String,
    pub secret: String,
}

impl RefreshToken {
    pub fn parse(raw: &str) -> Option<Self> {
        let (sid, secret) = raw.trim().split_once('.')?;
        let hexy = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
        (hexy(sid, 32) && hexy(secret, 64)).then(|| RefreshToken { sid: sid.to_owned(), secret: secret.to_owned() })
    }

    pub fn encode(&self) -> String {
        format!("{}.{}", self.sid, self.secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_round_trip_and_reject_junk() {
        let t = RefreshToken { sid: new_session_id(), secret: new_secret() };
        assert_eq!(RefreshToken::parse(&t.encode()), Some(t.clone()));
        assert_eq!(RefreshToken::parse("abc.def"), None);
        assert_eq!(RefreshToken::parse(&t.sid), None);
        let bad = format!("{}.{}", t.sid, "z".repeat(64));
        assert_eq!(RefreshToken::parse(&bad), None);
    }

    #[test]
    fn secrets_are_fresh_and_digests_stable() {
        assert_ne!(new_secret(), new_secret());
        assert_eq!(digest("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
