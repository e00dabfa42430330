//! One contract per port (store, bus, presence, rate limiter, nonces, sessions, tickets),
//! run against both adapter sets: the embedded ones (memory,
//! redb) and the distributed ones against the real Redis and MongoDB-compatible server
//! that `./run.sh test` starts (`AURORA_REDIS_URL`, `AURORA_MONGODB_URI`). Each
//! contract is a generic function of the port's trait: what one implementation does,
//! the other must do too.

mod admission;
mod bus;
mod heads;
mod limiter;
mod nonces;
mod presence;
mod sessions;
mod store;

use std::sync::atomic::{AtomicU32, Ordering};

use aurora_core::model::UserRef;

/// A key no other test (or earlier run against the same server) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let now = aurora_core::now_ms();
    format!("{prefix}-{now}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

pub fn user(name: &str) -> UserRef {
    UserRef { id: unique(name).into(), name: name.into() }
}

pub fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: start the services with `eval \"$(dev/services.sh up)\"` or use ./run.sh test")
    })
}

/// A Redis connection to the test services.
pub async fn redis() -> redis::aio::ConnectionManager {
    let (_, conn) = aurora_core::distributed::redis_manager(&env("AURORA_REDIS_URL")).await.expect("redis");
    conn
}

/// The MongoDB-compatible test server.
pub async fn mongo() -> aurora_core::distributed::MongoStore {
    aurora_core::distributed::MongoStore::connect(&env("AURORA_MONGODB_URI")).await.expect("mongodb")
}
