//! Throttles for the REST endpoints an attacker would hammer: logins per address and
//! per account+address, registrations per address, room creation per user. They use
//! the shared rate limiter (Redis in distributed mode, so every gateway counts).

use std::time::Duration;

use aurora_core::ratelimit::{Decision, RateLimit};

use super::error::ApiError;
use crate::state::AppState;

/// Takes a token from the `scope`/`key` bucket; an empty bucket is a 429 with `Retry-After`.
pub async fn take(state: &AppState, scope: &str, key: &str, limit: RateLimit, what: &str) -> Result<(), ApiError> {
    match state.backend.limiter.acquire(scope, key, limit).await? {
        Decision::Allowed => Ok(()),
        Decision::Limited { retry_after } => {
            state.metrics.http_throttled.with_label_values(&[scope]).inc();
            tracing::info!(scope, retry_after_ms = retry_after.as_millis() as u64, "throttled");
            Err(ApiError::rate_limited(
                format!("too many {what}; try again later"),
                retry_after.max(Duration::from_millis(1)),
            ))
        }
    }
}

/// Returns a token (a login that succeeded does not count as a failure).
pub async fn give_back(state: &AppState, scope: &str, key: &str, limit: RateLimit) {
    if let Err(e) = state.backend.limiter.refund(scope, key, limit).await {
        tracing::debug!(scope, error = %e, "refund failed");
    }
}
