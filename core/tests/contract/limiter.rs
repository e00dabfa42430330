//! The per-user per-room token bucket: Rust in embedded mode, a Lua script in Redis.

use std::time::Duration;

use aurora_core::distributed::RedisRateLimiter;
use aurora_core::embedded::MemoryRateLimiter;
use aurora_core::ports::RateLimiter;
use aurora_core::ratelimit::{Decision, RateLimit};

use crate::unique;

async fn contract(limiter: &dyn RateLimiter) {
    let (user, room) = (unique("u"), unique("r"));
    let limit = RateLimit { messages: 3, period: Duration::from_secs(30) };
    for i in 0..3 {
        assert_eq!(limiter.acquire(&user, &room, limit).await.unwrap(), Decision::Allowed, "token {i} of 3");
    }
    let Decision::Limited { retry_after } = limiter.acquire(&user, &room, limit).await.unwrap() else {
        panic!("the fourth message within the period is limited");
    };
    // One token refills every period / messages = 10 s.
    assert!(retry_after > Duration::from_secs(9) && retry_after <= Duration::from_secs(10), "{retry_after:?}");

    // Buckets are per user and per room.
    assert_eq!(limiter.acquire(&unique("other"), &room, limit).await.unwrap(), Decision::Allowed);
    assert_eq!(limiter.acquire(&user, &unique("elsewhere"), limit).await.unwrap(), Decision::Allowed);

    // A refund gives the token back, once.
    limiter.refund(&user, &room, limit).await.unwrap();
    assert_eq!(limiter.acquire(&user, &room, limit).await.unwrap(), Decision::Allowed, "the refunded token");
    assert!(matches!(limiter.acquire(&user, &room, limit).await.unwrap(), Decision::Limited { .. }));

    // A refund never fills a bucket beyond its size.
    let (fresh, limit2) = (unique("f"), RateLimit { messages: 2, period: Duration::from_secs(60) });
    limiter.refund(&fresh, &room, limit2).await.unwrap();
    for _ in 0..2 {
        assert_eq!(limiter.acquire(&fresh, &room, limit2).await.unwrap(), Decision::Allowed);
    }
    assert!(matches!(limiter.acquire(&fresh, &room, limit2).await.unwrap(), Decision::Limited { .. }));
}

async fn refills(limiter: &dyn RateLimiter) {
    let (user, room) = (unique("u"), unique("r"));
    let limit = RateLimit { messages: 2, period: Duration::from_millis(400) };
    limiter.acquire(&user, &room, limit).await.unwrap();
    limiter.acquire(&user, &room, limit).await.unwrap();
    let Decision::Limited { retry_after } = limiter.acquire(&user, &room, limit).await.unwrap() else {
        panic!("limited");
    };
    assert!(retry_after <= Duration::from_millis(200), "{retry_after:?}");
    // Waiting the announced time is enough: the bucket refills continuously.
    tokio::time::sleep(retry_after + Duration::from_millis(20)).await;
    assert_eq!(limiter.acquire(&user, &room, limit).await.unwrap(), Decision::Allowed, "after retry_after");
}

#[tokio::test]
async fn embedded() {
    let limiter = MemoryRateLimiter::default();
    contract(&limiter).await;
    refills(&limiter).await;
}

#[tokio::test]
async fn distributed() {
    let limiter = RedisRateLimiter::new(crate::redis().await);
    contract(&limiter).await;
    refills(&limiter).await;
}
