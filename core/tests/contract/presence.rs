//! Presence: a user counts once per room however many connections it has.

use std::time::Duration;

use aurora_core::distributed::RedisPresence;
use aurora_core::embedded::MemoryPresence;
use aurora_core::ports::Presence;

use crate::{unique, user};

async fn contract(presence: &dyn Presence) {
    let room = unique("room");
    let (ann, bob) = (user("ann"), user("bob"));
    assert_eq!(presence.online(&room).await.unwrap(), 0);
    assert!(presence.join(&room, &ann, 1).await.unwrap(), "ann's first connection");
    assert!(!presence.join(&room, &ann, 2).await.unwrap(), "a second tab is not a new member");
    assert!(presence.join(&room, &bob, 3).await.unwrap());
    assert_eq!(presence.online(&room).await.unwrap(), 2, "distinct users");
    let names: Vec<String> = presence.members(&room).await.unwrap().into_iter().map(|u| u.name.to_string()).collect();
    assert_eq!(names, ["ann", "bob"], "members sorted by name");

    assert!(!presence.leave(&room, &ann, 1).await.unwrap(), "ann still has a connection");
    assert_eq!(presence.online(&room).await.unwrap(), 2);
    assert!(presence.leave(&room, &ann, 2).await.unwrap(), "ann's last connection");
    assert!(!presence.leave(&room, &ann, 2).await.unwrap(), "leaving twice is not a second leave");
    assert!(!presence.leave(&room, &ann, 99).await.unwrap(), "an unknown connection");
    assert_eq!(presence.online(&room).await.unwrap(), 1);
    assert_eq!(presence.members(&room).await.unwrap(), vec![bob.clone()]);
    assert!(presence.leave(&room, &bob, 3).await.unwrap());
    assert_eq!(presence.online(&room).await.unwrap(), 0);
    assert!(presence.members(&unique("empty")).await.unwrap().is_empty());
}

#[tokio::test]
async fn embedded() {
    contract(&MemoryPresence::default()).await;
}

#[tokio::test]
async fn distributed() {
    let (presence, lease) = RedisPresence::new(crate::redis().await, unique("gw"), Duration::from_secs(10));
    let lease = tokio::spawn(lease);
    contract(presence.as_ref()).await;
    lease.abort();
}
