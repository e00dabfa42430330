//! Sign-in sessions (refresh-token rotation with reuse detection) and single-use tickets.

use std::time::Duration;

use aurora_core::distributed::{MongoSessions, RedisTickets};
use aurora_core::embedded::{FileStore, MemoryTickets};
use aurora_core::sessions::{digest, SessionRecord, SessionStore, Ticket, TicketStore};
use aurora_core::{now_ms, sessions::Rotation};

use crate::{unique, user};

fn session(ttl_ms: i64) -> SessionRecord {
    let now = now_ms();
    SessionRecord {
        id: unique("sid"),
        user_id: unique("uid"),
        secret_hash: digest("first"),
        created_at: now,
        expires_at: now + ttl_ms,
        revoked: false,
    }
}

async fn contract(store: &dyn SessionStore) {
    let s = session(60_000);
    store.create_session(s.clone()).await.unwrap();
    assert_eq!(store.session(&s.id).await.unwrap(), Some(s.clone()));
    assert_eq!(store.session(&unique("none")).await.unwrap(), None);

    let now = now_ms();
    let Rotation::Rotated(next) = store.rotate_session(&s.id, &digest("first"), &digest("second"), now).await.unwrap()
    else {
        panic!("the live token rotates");
    };
    assert_eq!(next.secret_hash, digest("second"));
    assert!(!next.revoked);
    // The spent token again: theft is assumed and the whole session ends.
    assert_eq!(store.rotate_session(&s.id, &digest("first"), &digest("third"), now).await.unwrap(), Rotation::Reused);
    assert!(store.session(&s.id).await.unwrap().unwrap().revoked);
    assert_eq!(
        store.rotate_session(&s.id, &digest("second"), &digest("third"), now).await.unwrap(),
        Rotation::Ended,
        "not even the live token works after a reuse"
    );
    assert_eq!(store.rotate_session(&unique("none"), "x", "y", now).await.unwrap(), Rotation::Ended);

    // Revocation (logout), once.
    let s2 = session(60_000);
    store.create_session(s2.clone()).await.unwrap();
    assert!(store.revoke_session(&s2.id).await.unwrap());
    assert!(!store.revoke_session(&s2.id).await.unwrap(), "already revoked");
    assert_eq!(store.rotate_session(&s2.id, &digest("first"), "n", now_ms()).await.unwrap(), Rotation::Ended);

    // An expired session does not rotate, even with its live token.
    let s3 = session(1_000);
    store.create_session(s3.clone()).await.unwrap();
    let later = s3.expires_at + 1;
    assert_eq!(store.rotate_session(&s3.id, &digest("first"), "n", later).await.unwrap(), Rotation::Ended);
}

async fn tickets(store: &dyn TicketStore) {
    let ticket = Ticket { user: user("ann"), sid: Some(unique("sid")), exp: 4_000_000_000 };
    let hash = digest(&unique("ticket"));
    store.issue_ticket(&hash, &ticket, Duration::from_secs(30)).await.unwrap();
    assert_eq!(store.redeem_ticket(&hash).await.unwrap(), Some(ticket.clone()));
    assert_eq!(store.redeem_ticket(&hash).await.unwrap(), None, "single use");
    assert_eq!(store.redeem_ticket(&digest("never issued")).await.unwrap(), None);

    let short = digest(&unique("short"));
    store.issue_ticket(&short, &ticket, Duration::from_millis(100)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(store.redeem_ticket(&short).await.unwrap(), None, "expired");
}

#[tokio::test]
async fn embedded() {
    let dir = tempfile::tempdir().unwrap();
    contract(&FileStore::open(dir.path()).unwrap()).await;
    tickets(&MemoryTickets::default()).await;
}

#[tokio::test]
async fn distributed() {
    contract(&MongoSessions::new(&crate::mongo().await)).await;
    tickets(&RedisTickets::new(crate::redis().await)).await;
}
