//! A send's admission: its nonce claim and its rate-limit token together. Embedded mode runs
//! the two ports one after the other; distributed mode one Redis script, for every send a
//! gateway admits at the same moment. Both must agree with
//! the nonce and limiter ports they share keys (or state) with.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;

use aurora_core::distributed::{RedisAdmission, RedisNonces, RedisRateLimiter};
use aurora_core::embedded::{MemoryNonces, MemoryRateLimiter};
use aurora_core::ports::{Admission, Admit, Claim, NonceCache, RateLimiter, Sequential};
use aurora_core::ratelimit::{Decision, RateLimit};

use crate::unique;

async fn contract(admission: &dyn Admission, nonces: &dyn NonceCache, limiter: &dyn RateLimiter) {
    let (user, room) = (unique("u"), unique("r"));
    let limit = RateLimit { messages: 2, period: Duration::from_secs(60) };
    let allowed = Admit::New(Decision::Allowed);
    assert_eq!(admission.admit(&user, &room, Some("n1"), "id-1", limit).await.unwrap(), allowed);
    // A retry of the same nonce gets the first id and takes no token.
    assert_eq!(
        admission.admit(&user, &room, Some("n1"), "id-2", limit).await.unwrap(),
        Admit::Retry(Claim::Existing("id-1".into()))
    );
    // Without a nonce, only the token.
    assert_eq!(admission.admit(&user, &room, None, "id-3", limit).await.unwrap(), allowed);
    // Bucket empty: limited, and the new nonce is not kept (a later retry is a new message).
    let Admit::New(Decision::Limited { retry_after }) =
        admission.admit(&user, &room, Some("n2"), "id-4", limit).await.unwrap()
    else {
        panic!("the third message within the period is limited");
    };
    assert!(retry_after > Duration::from_secs(29) && retry_after <= Duration::from_secs(30), "{retry_after:?}");
    assert_eq!(
        nonces.claim(&user, &room, "n2", "id-5").await.unwrap(),
        Claim::New,
        "a limited send's claim is released"
    );
    // The nonce the admission claimed is the nonce port's, and the bucket is the limiter's.
    assert_eq!(nonces.claim(&user, &room, "n1", "id-6").await.unwrap(), Claim::Existing("id-1".into()));
    limiter.refund(&user, &room, limit).await.unwrap();
    assert_eq!(admission.admit(&user, &room, Some("n3"), "id-7", limit).await.unwrap(), allowed, "the refunded token");
    assert!(matches!(limiter.acquire(&user, &room, limit).await.unwrap(), Decision::Limited { .. }));
    // Other users and rooms have their own buckets and nonces.
    assert_eq!(admission.admit(&unique("u2"), &room, Some("n1"), "id-8", limit).await.unwrap(), allowed);
    assert_eq!(admission.admit(&user, &unique("r2"), Some("n1"), "id-9", limit).await.unwrap(), allowed);
}

/// Sends admitted at the same moment (the Redis adapter takes them in one script call, up to
/// a batch's worth each) count as if one after the other.
async fn concurrent(admission: &dyn Admission) {
    let limit = RateLimit { messages: 3, period: Duration::from_secs(60) };
    let allowed = Admit::New(Decision::Allowed);
    // More senders than one call takes: each has its own bucket.
    let users: Vec<String> = (0..300).map(|i| unique(&format!("c{i}"))).collect();
    let room = unique("r");
    let answers = join_all(users.iter().map(|u| admission.admit(u, &room, Some("n"), "id", limit))).await;
    assert!(answers.iter().all(|a| a.as_ref() == Ok(&allowed)), "{answers:?}");
    // One user's twenty sends at once: three tokens, seventeen limited.
    let user = unique("u");
    let ids: Vec<String> = (0..20).map(|i| format!("id-{i}")).collect();
    let answers = join_all(ids.iter().map(|id| admission.admit(&user, &room, None, id, limit))).await;
    let taken = answers.iter().filter(|a| a.as_ref() == Ok(&allowed)).count();
    let limited = answers.iter().filter(|a| matches!(a, Ok(Admit::New(Decision::Limited { .. })))).count();
    assert_eq!((taken, limited), (3, 17), "{answers:?}");
    // One nonce offered by ten sends at once: one new message, nine retries of it.
    let user = unique("u");
    let answers = join_all(ids[..10].iter().map(|id| admission.admit(&user, &room, Some("same"), id, limit))).await;
    let first: Vec<&String> =
        ids[..10].iter().zip(&answers).filter(|(_, a)| a.as_ref() == Ok(&allowed)).map(|(id, _)| id).collect();
    assert_eq!(first.len(), 1, "{answers:?}");
    let retries = answers.iter().filter(|a| a.as_ref() == Ok(&Admit::Retry(Claim::Existing(first[0].clone())))).count();
    assert_eq!(retries, 9, "{answers:?}");
}

#[tokio::test]
async fn embedded() {
    let nonces: Arc<dyn NonceCache> = Arc::new(MemoryNonces::default());
    let limiter: Arc<dyn RateLimiter> = Arc::new(MemoryRateLimiter::default());
    let admission = Sequential { nonces: nonces.clone(), limiter: limiter.clone() };
    contract(&admission, nonces.as_ref(), limiter.as_ref()).await;
    concurrent(&admission).await;
}

#[tokio::test]
async fn distributed() {
    let redis = crate::redis().await;
    let admission = RedisAdmission::new(redis.clone());
    contract(&admission, &RedisNonces::new(redis.clone()), &RedisRateLimiter::new(redis)).await;
    concurrent(&admission).await;
}
