//! REST throttles: logins per address and per account+address, registrations per
//! address, room creation per user (rate and cap), and a paged room list.

use serde_json::{json, Value};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use aurora_core::ratelimit::RateLimit;

use crate::harness::{unique, Server};

fn per_minute(n: u32) -> RateLimit {
    RateLimit { messages: n, period: Duration::from_secs(60) }
}

/// An HTTP client whose requests come from another loopback address.
fn from(ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder().local_address(IpAddr::V4(Ipv4Addr::from(ip))).build().unwrap()
}

async fn post(http: &reqwest::Client, s: &Server, path: &str, body: Value) -> (u16, Option<u64>, Value) {
    let r = http.post(s.url(path)).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().parse().unwrap());
    (status, retry, r.json().await.unwrap_or_default())
}

#[tokio::test]
async fn failed_logins_are_throttled_per_account_and_address_without_locking_the_owner_out() {
    let s = Server::start_with(|c| c.login_failure_rate = per_minute(3)).await;
    let victim = s.register(&unique("vic")).await;
    let attacker = reqwest::Client::new();
    let wrong = json!({"username": victim.name, "password": "not the password"});
    for _ in 0..3 {
        assert_eq!(post(&attacker, &s, "/api/auth/login", wrong.clone()).await.0, 401);
    }
    let (status, retry, body) = post(&attacker, &s, "/api/auth/login", wrong.clone()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (429, Some("rate_limited")));
    assert!(retry.is_some_and(|r| (1..=60).contains(&r)), "Retry-After: {retry:?}");
    // The owner, from another address, still gets in.
    let right = json!({"username": victim.name, "password": "correct horse battery"});
    assert_eq!(post(&from([127, 0, 0, 2]), &s, "/api/auth/login", right).await.0, 200);
    s.stop().await;
}

#[tokio::test]
async fn logins_and_registrations_are_throttled_per_address() {
    let s = Server::start_with(|c| {
        c.login_rate = per_minute(5);
        c.register_rate = per_minute(2);
    })
    .await;
    let http = reqwest::Client::new();
    for i in 0..2 {
        let body = json!({"username": unique(&format!("r{i}")), "password": "correct horse battery"});
        assert_eq!(post(&http, &s, "/api/auth/register", body).await.0, 201);
    }
    let body = json!({"username": unique("r3"), "password": "correct horse battery"});
    let (status, retry, _) = post(&http, &s, "/api/auth/register", body.clone()).await;
    assert_eq!(status, 429, "third registration from one address");
    assert!(retry.is_some());
    assert_eq!(post(&from([127, 0, 0, 3]), &s, "/api/auth/register", body).await.0, 201, "another address");
    for i in 0..5 {
        let body = json!({"username": unique(&format!("nobody{i}")), "password": "whatever123"});
        assert_eq!(post(&http, &s, "/api/auth/login", body).await.0, 401);
    }
    let body = json!({"username": unique("nobody"), "password": "whatever123"});
    assert_eq!(post(&http, &s, "/api/auth/login", body).await.0, 429, "sixth login attempt from one address");
    s.stop().await;
}

#[tokio::test]
async fn room_creation_has_a_per_user_rate_and_cap() {
    let s = Server::start_with(|c| c.room_create_rate = per_minute(3)).await;
    let u = s.register(&unique("rc")).await;
    for i in 0..3 {
        assert_eq!(s.post("/api/rooms", Some(&u.token), json!({"name": format!("r{i}-{}", u.id)})).await.0, 201);
    }
    let (status, e) = s.post("/api/rooms", Some(&u.token), json!({"name": format!("r3-{}", u.id)})).await;
    assert_eq!((status, e["error"]["code"].as_str()), (429, Some("rate_limited")));
    s.stop().await;

    let s = Server::start_with(|c| c.max_rooms_per_user = 2).await;
    let u = s.register(&unique("cap")).await;
    for i in 0..2 {
        assert_eq!(s.post("/api/rooms", Some(&u.token), json!({"name": format!("c{i}-{}", u.id)})).await.0, 201);
    }
    let (status, e) = s.post("/api/rooms", Some(&u.token), json!({"name": format!("c2-{}", u.id)})).await;
    assert_eq!((status, e["error"]["code"].as_str()), (403, Some("forbidden")), "{e}");
    let other = s.register(&unique("cap")).await;
    assert_eq!(s.post("/api/rooms", Some(&other.token), json!({"name": format!("c2-{}", u.id)})).await.0, 201);
    s.stop().await;
}

#[tokio::test]
async fn the_room_list_comes_in_pages() {
    let s = Server::start().await;
    let u = s.register(&unique("pg")).await;
    for i in 0..7 {
        s.post("/api/rooms", Some(&u.token), json!({"name": format!("page-{i}")})).await;
    }
    let (_, everything) = s.get("/api/rooms?limit=500", &u.token).await;
    assert!(everything["next"].is_null());
    let all: Vec<&str> = everything["rooms"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(all.len(), 8, "7 rooms and general");
    let mut paged = Vec::new();
    let mut after = String::new();
    loop {
        let (status, page) = s.get(&format!("/api/rooms?limit=3&after={after}"), &u.token).await;
        assert_eq!(status, 200);
        let names: Vec<String> =
            page["rooms"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap().to_owned()).collect();
        assert!(names.len() <= 3);
        paged.extend(names);
        match page["next"].as_str() {
            Some(next) => after = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(paged, all);
    s.stop().await;
}
