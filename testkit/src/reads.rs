//! Read state, the same scenario in both modes: a user reads on one connection, and their
//! other connection (on another gateway in distributed mode) clears its badge.

use reqwest::Client as Http;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::{register_at, unique, Client, Session};

/// A gateway to talk to: its HTTP base and WebSocket address.
pub struct Gateway {
    pub base: String,
    pub addr: SocketAddr,
}

/// Where a user's room list entry for `room` stands: `(read, unread, mentions)`.
pub async fn badge(gateway: &Gateway, token: &str, room: &str) -> (u64, u64, u64) {
    let r = Http::new().get(format!("{}/api/rooms", gateway.base)).bearer_auth(token).send().await.expect("GET");
    let list: Value = r.json().await.expect("JSON");
    let rooms = list["rooms"].as_array().expect("rooms");
    let entry = rooms.iter().find(|r| r["name"] == room).unwrap_or_else(|| panic!("{room} not listed: {list}"));
    let n = |k: &str| entry[k].as_u64().unwrap_or_else(|| panic!("{k} in {entry}"));
    (n("read"), n("unread"), n("mentions"))
}

/// Reads until the message with `seq` arrived.
async fn until_seq(c: &mut Client, seq: u64) {
    while c.recv().await["seq"].as_u64() != Some(seq) {}
}

/// Ann writes 50 messages (3 name `@bob`) from gateway 1, Bob 5 from his connection on
/// gateway 2; Bob's other connection, on gateway 1, reads them all. Checks the counts before
/// and after, that Bob's connection on gateway 2 gets `read` within a second and his
/// receipt, and that a lower `read` never moves the pointer back. Returns Bob and the room, read up to 55.
pub async fn read_on_one_gateway_clears_the_other(g1: &Gateway, g2: &Gateway) -> (Session, String) {
    let http = Http::new();
    let ann = register_at(&http, &g1.base, &unique("ann")).await;
    let bob = register_at(&http, &g2.base, &unique("bob")).await;
    let room = crate::cluster::room(&g1.base, &ann.token).await;
    let mut a = Client::connect(g1.addr, &ann.token).await;
    a.join(&room).await;
    let mut b1 = Client::connect(g1.addr, &bob.token).await;
    let joined = b1.join(&room).await;
    assert_eq!(joined["read"], 0, "{joined}");
    let mut b2 = Client::connect(g2.addr, &bob.token).await;
    b2.join(&room).await;
    for i in 0..50 {
        let body = if i % 17 == 0 { format!("look @{} {i}", bob.name) } else { format!("m{i}") };
        a.say(&room, &body).await;
        if i % 10 == 0 {
            b2.say(&room, "mine").await;
        }
    }
    until_seq(&mut b1, 55).await;
    assert_eq!(badge(g2, &bob.token, &room).await, (0, 50, 3), "before reading");

    let reply = b1.request(json!({"type":"read","room":room,"seq":55})).await;
    assert_eq!((reply["type"].as_str(), reply["seq"].as_u64()), (Some("read"), Some(55)), "{reply}");
    // Bob's other connection gets `read` within a second, and (as every member) his receipt
    // within the next second's `receipts`.
    let asked = Instant::now();
    let (mut pushed, mut receipt) = (None, None);
    while pushed.is_none() || receipt.is_none() {
        let v = b2.recv().await;
        match v["type"].as_str() {
            Some("read") => pushed = Some((v, asked.elapsed())),
            Some("receipts") => receipt = Some(v),
            _ => {}
        }
    }
    let (pushed, after) = pushed.unwrap_or_default();
    assert_eq!((pushed["room"].as_str(), pushed["seq"].as_u64()), (Some(room.as_str()), Some(55)));
    assert!(after < Duration::from_secs(1), "`read` reached the other gateway after {after:?}");
    let receipt = receipt.unwrap_or_default();
    let readers = receipt["readers"].as_array().cloned().unwrap_or_default();
    assert!(readers.iter().any(|r| r["user"]["id"] == bob.id.as_str() && r["seq"] == 55), "{receipt}");
    assert_eq!(badge(g2, &bob.token, &room).await, (55, 0, 0), "after reading");

    let lower = b2.request(json!({"type":"read","room":room,"seq":10})).await;
    assert_eq!(lower["seq"], 55, "a lower seq does not move the pointer back: {lower}");
    // Past what was sent: clamped to the last record the connection got.
    let beyond = b1.request(json!({"type":"read","room":room,"seq":900})).await;
    assert_eq!(beyond["seq"], 55, "{beyond}");
    let refused = b1.request(json!({"type":"read","room":"general","seq":1})).await;
    assert_eq!(refused["code"], "not_joined", "{refused}");
    (bob, room)
}
