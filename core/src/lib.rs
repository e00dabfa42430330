//! AuroraChat core: everything the gateway, the consumer and the operator share.
//!
//! - `protocol`: client frame decoding and server frame encoding (docs/protocol.md).
//! - `config`: the typed configuration parsed once at start-up (README, Configuration).
//! - `model`: users, rooms, messages.
//! - `ports`: the small traits the chat logic talks to (log, bus, presence, rate
//!   limiter, nonce cache, stores, sessions).
//! - `pipeline`: the fan-out pipeline (assign `seq`, persist, publish).
//!
//! Behind features, so each binary links what it runs:
//! - `embedded`: the one-process adapters (memory bus, redb file store).
//! - `distributed`: Kafka, Redis and MongoDB adapters (docs/distributed.md).
//! - `auth`: argon2id passwords and HS256 JWTs.
//! - `probes`: the `/healthz`, `/readyz`, `/metrics` server of the consumer and operator.

#![forbid(unsafe_code)]

pub mod apikeys;
pub mod audit;
#[cfg(feature = "auth")]
pub mod auth;
pub mod backoff;
pub mod config;
pub mod control;
#[cfg(feature = "distributed")]
pub mod distributed;
#[cfg(feature = "embedded")]
pub mod embedded;
pub mod events;
pub mod model;
pub mod moderation;
pub mod nonces;
pub mod pipeline;
pub mod ports;
#[cfg(feature = "probes")]
pub mod probes;
pub mod process;
pub mod protocol;
pub mod ratelimit;
pub mod reads;
pub mod sessions;
pub mod telemetry;
pub mod validate;
pub mod webhooks;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}
