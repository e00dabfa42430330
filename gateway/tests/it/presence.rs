use serde_json::json;
use std::time::Duration;

use crate::harness::{Ended, Server};

#[tokio::test]
async fn presence_counts_a_user_once_across_tabs() {
    let s = Server::start().await;
    let (a, mut tab1) = s.user("oli").await;
    let (b, mut watcher) = s.user("pam").await;
    watcher.join("general").await;

    tab1.join("general").await;
    let p = watcher.recv_type("presence").await;
    assert_eq!(p["joins"], json!([{"id": a.id, "name": a.name}]));
    assert_eq!(p["leaves"], json!([]));

    let mut tab2 = s.ws(&a.token).await;
    let j = tab2.join("general").await;
    let ids: Vec<&str> = j["members"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2, "members lists users once: {ids:?}");
    assert!(ids.contains(&a.id.as_str()) && ids.contains(&b.id.as_str()));

    // Closing one tab is no leave; the next presence frame is the leave of the last tab.
    drop(tab1);
    tab2.say("general", "still here").await;
    assert_eq!(watcher.recv_type("message").await["body"], "still here");
    tab2.request(json!({"type":"leave","room":"general"})).await;
    let p = watcher.recv_type("presence").await;
    assert_eq!(p["leaves"], json!([{"id": a.id, "name": a.name}]));
    assert_eq!(p["joins"], json!([]));
    let (_, rooms) = s.get("/api/rooms", &b.token).await;
    assert_eq!(rooms["rooms"][0]["online"], 1);
    s.stop().await;
}

#[tokio::test]
async fn a_client_that_stops_answering_pings_is_dropped_and_leaves() {
    let s = Server::start_with(|c| {
        c.heartbeat_interval = Duration::from_millis(200);
        c.heartbeat_timeout = Duration::from_millis(300);
    })
    .await;
    let (stale_user, mut stale) = s.user("quin").await;
    let (_, mut watcher) = s.user("rae").await;
    watcher.join("general").await;
    stale.join("general").await;
    assert_eq!(watcher.recv_type("presence").await["joins"][0]["id"], stale_user.id.as_str());

    // `stale` stops reading, so it never answers a ping. The watcher keeps reading
    // (tungstenite answers pings) and sees the leave.
    let p = watcher.recv_type("presence").await;
    assert_eq!(p["leaves"][0]["id"], stale_user.id.as_str());
    assert!(watcher.pings >= 1, "the server pings");
    // The stale connection was dropped without a close frame.
    assert_eq!(stale.ended().await, Ended::Dropped);
    // The watcher, answering pings, is still connected several intervals later.
    let before = watcher.pings;
    let deadline = tokio::time::Instant::now() + crate::harness::DEADLINE;
    while watcher.pings < before + 3 {
        assert!(tokio::time::Instant::now() < deadline, "pings stopped");
        let _ = tokio::time::timeout(Duration::from_millis(50), watcher.recv()).await;
    }
    watcher.say("general", "alive").await;
    s.stop().await;
}
