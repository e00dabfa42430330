//! AuroraChat core: everything the gateway and the consumer share.
//!
//! - [`protocol`]: client frame decoding and server frame encoding (SPEC §5).
//! - [`config`]: the typed configuration parsed once at start-up (SPEC §3).
//! - [`model`]: users, rooms, messages.
//! - [`ports`]: the small traits the chat logic talks to (log, bus, presence,
//!   rate limiter, nonce cache, stores), with [`embedded`] implementations.
//! - [`pipeline`]: the fan-out pipeline (assign `seq`, persist, publish).
//! - [`auth`]: argon2id passwords and HS256 JWTs.

pub mod auth;
pub mod backoff;
pub mod config;
pub mod distributed;
pub mod embedded;
pub mod model;
pub mod nonces;
pub mod pipeline;
pub mod ports;
pub mod process;
pub mod protocol;
pub mod ratelimit;
pub mod sessions;
pub mod telemetry;
pub mod validate;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}
