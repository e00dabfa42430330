//! The nonce cache: a retried send (same user, room and nonce) keeps its first id.

use aurora_core::distributed::RedisNonces;
use aurora_core::embedded::MemoryNonces;
use aurora_core::ports::{Claim, NonceCache};

use crate::unique;

async fn contract(nonces: &dyn NonceCache) {
    let (user, room, nonce) = (unique("u"), unique("r"), unique("n"));
    assert_eq!(nonces.claim(&user, &room, &nonce, "id-1").await.unwrap(), Claim::New);
    assert_eq!(
        nonces.claim(&user, &room, &nonce, "id-2").await.unwrap(),
        Claim::Existing("id-1".into()),
        "a retry gets the first id"
    );
    // The same nonce from another user or in another room is another message.
    assert_eq!(nonces.claim(&unique("u2"), &room, &nonce, "id-3").await.unwrap(), Claim::New);
    assert_eq!(nonces.claim(&user, &unique("r2"), &nonce, "id-4").await.unwrap(), Claim::New);

    // A released claim (the message was refused) can be claimed again with a new id.
    nonces.release(&user, &room, &nonce).await.unwrap();
    assert_eq!(nonces.claim(&user, &room, &nonce, "id-5").await.unwrap(), Claim::New);
    assert_eq!(nonces.claim(&user, &room, &nonce, "id-6").await.unwrap(), Claim::Existing("id-5".into()));
    // Releasing what was never claimed is fine.
    nonces.release(&user, &room, &unique("never")).await.unwrap();
}

#[tokio::test]
async fn embedded() {
    contract(&MemoryNonces::default()).await;
}

#[tokio::test]
async fn distributed() {
    contract(&RedisNonces::new(crate::redis().await)).await;
}
