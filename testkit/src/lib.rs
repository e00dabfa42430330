//! What AuroraChat's integration tests share: a gateway on `127.0.0.1:0` (in-process
//! with [`Server`] or as the real binary with [`Binary`]), an HTTP session helper, a
//! WebSocket [`Client`] whose reads have deadlines, history checks, and in [`cluster`]
//! real gateway and consumer processes against the services `dev/services.sh` starts.

#![deny(unsafe_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

mod binary;
mod client;
pub mod cluster;
pub mod conversation;
mod history;
pub mod moderation;
pub mod reads;
mod server;
pub mod server_api;
pub mod webhooks;

pub use binary::{sibling_binary, Binary};
pub use client::{close_code, connect_small, ws_request, Client, Ended, Ws};
pub use history::{assert_stored_once, burst, resend_all, stored};
pub use server::{refresh_cookie, register_at, test_config, Server, Session};

pub const DEADLINE: Duration = Duration::from_secs(10);

/// A name no other test uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}{}x{}", std::process::id() % 10000, N.fetch_add(1, Ordering::Relaxed))
}

/// Waits for `check` to return `Some`, polling, up to `DEADLINE`.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A fresh temporary directory and its path; the directory goes when the guard drops.
pub fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().to_path_buf();
    (dir, path)
}
