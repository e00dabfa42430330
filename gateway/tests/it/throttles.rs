//! Typing and join/leave churn are throttled per connection per room, so one user
//! cannot flood a room's members with `typing` or `presence` frames.

use serde_json::json;

use crate::harness::Server;

/// Frames of type `ty` bob receives before the message `marker` arrives.
async fn count_before(bob: &mut crate::harness::Client, ty: &str, marker: &str) -> usize {
    let mut n = 0;
    loop {
        let v = bob.recv().await;
        if v["type"] == "message" && v["body"] == marker {
            return n;
        }
        if v["type"] == ty {
            n += 1;
        }
    }
}

#[tokio::test]
async fn a_typing_flood_reaches_others_as_a_trickle() {
    let s = Server::start().await;
    let (_a, mut alice) = s.user("ty").await;
    let (_b, mut bob) = s.user("ty").await;
    alice.join("general").await;
    bob.join("general").await;
    let started = std::time::Instant::now();
    for _ in 0..2000 {
        alice.send(json!({"type":"typing","room":"general"})).await;
    }
    alice.say("general", "done typing").await;
    // One token, refilled every 2 s (AURORA_TYPING_RATE 1/2s).
    let allowed = 1 + (started.elapsed().as_secs_f64() / 2.0).ceil() as usize;
    let typing = count_before(&mut bob, "typing", "done typing").await;
    assert!((1..=allowed).contains(&typing), "bob got {typing} typing frames for 2000 sent (at most {allowed})");
    s.stop().await;
}

#[tokio::test]
async fn join_leave_churn_is_refused_before_it_floods_presence() {
    let s = Server::start().await;
    let (_a, mut alice) = s.user("ch").await;
    let (_b, mut bob) = s.user("ch").await;
    bob.join("general").await;
    let mut limited = None;
    let started = std::time::Instant::now();
    for _ in 0..500 {
        let j = alice.request(json!({"type":"join","room":"general"})).await;
        if j["type"] == "error" {
            limited = Some(j);
        }
        alice.request(json!({"type":"leave","room":"general"})).await;
    }
    let limited = limited.expect("joins beyond the rate are refused");
    assert_eq!(limited["code"], "rate_limited");
    assert!(limited["retry_after_ms"].as_u64().unwrap() > 0);
    // Ten joins at once, then one a second (AURORA_JOIN_RATE 10/10s); each join and leave is one frame.
    let joins = 10 + started.elapsed().as_secs_f64().ceil() as usize;
    bob.say("general", "marker").await;
    let presence = count_before(&mut bob, "presence", "marker").await;
    assert!(
        presence <= 2 * joins,
        "bob got {presence} presence frames for 1000 joins and leaves (at most {})",
        2 * joins
    );
    s.stop().await;
}
