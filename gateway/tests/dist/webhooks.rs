//! Webhooks from the fan-out tier against real HTTP receivers: signed, in room order, at
//! least once through an outage, a slow endpoint holding back nothing else, dead letters
//! and their replay (docs/server-api.md, Webhooks).

use reqwest::Method;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use crate::cluster::{self, Proc};
use crate::harness::moderation::call;
use crate::harness::reads::Gateway;
use crate::harness::server_api::{new_key, Declared, KeyFile};
use crate::harness::webhooks::{Delivery, Hook, HookFile, Mode, Receiver};
use crate::harness::{register_at, unique, Client};

/// A consumer delivering to `hooks`, two gateways and a key that publishes and makes rooms.
struct Stack {
    consumer: Proc,
    rooms: std::sync::Mutex<Vec<String>>,
    _gateways: (Proc, Proc),
    g1: Gateway,
    g2: Gateway,
    key: String,
    hooks: HookFile,
    _keys: KeyFile,
}

async fn stack(hooks: &[Hook<'_>]) -> Stack {
    let key = new_key();
    let keys =
        KeyFile::new(&[Declared { bot: Some("Hook Bot"), ..Declared::new("hooks", &["publish", "rooms"], &key) }]);
    let hooks = HookFile::new(hooks);
    let (hk, hv) = hooks.env();
    let consumer = Proc::consumer_with(&[(hk, hv.as_str())]).await;
    let (kk, kv) = keys.env();
    let env = [(kk, kv.as_str()), ("AURORA_RATE_LIMIT", "100000/1s")];
    let (p1, p2) = (Proc::gateway(&env).await, Proc::gateway(&env).await);
    let g1 = Gateway { base: p1.base(), addr: p1.addr };
    let g2 = Gateway { base: p2.base(), addr: p2.addr };
    Stack { consumer, rooms: Default::default(), _gateways: (p1, p2), g1, g2, key, hooks, _keys: keys }
}

impl Stack {
    async fn room(&self, name: &str) {
        let body = json!({"name": name, "visibility": "public"});
        let (status, answer) = call(&self.g1, Method::POST, "/api/server/rooms", &self.key, Some(body)).await;
        assert_eq!(status, 201, "{answer}");
        self.rooms.lock().expect("rooms").push(name.to_owned());
    }

    /// Deletes the test's rooms and their messages: the MongoDB-compatible server of the
    /// tests scans a room's whole collection for some reads, so the tests after this one
    /// stay as fast as without it.
    async fn clean_up(&self) {
        let rooms = std::mem::take(&mut *self.rooms.lock().expect("rooms"));
        for room in rooms {
            let (status, answer) =
                call(&self.g1, Method::DELETE, &format!("/api/server/rooms/{room}"), &self.key, None).await;
            assert_eq!(status, 204, "delete {room}: {answer}");
        }
    }

    /// Publishes `items` (room, body) in one batch call; the ids, in order.
    async fn publish(&self, g: &Gateway, items: &[(String, String)]) -> Vec<String> {
        let messages: Vec<Value> = items.iter().map(|(room, body)| json!({"room": room, "body": body})).collect();
        let body = json!({ "messages": messages });
        let (status, answer) = call(g, Method::POST, "/api/server/messages", &self.key, Some(body)).await;
        assert_eq!(status, 200, "{answer}");
        let results = answer["results"].as_array().expect("results");
        results.iter().map(|r| r["id"].as_str().unwrap_or_else(|| panic!("published: {r}")).to_owned()).collect()
    }

    /// Publishes into `<prefix>-warm` until every receiver has a delivery (each endpoint's
    /// group then holds its partitions: a new endpoint starts at the end of the topic), then
    /// waits for every warm-up message, so none is in flight when the test starts.
    async fn warm_up(&self, prefix: &str, receivers: &[&Receiver]) {
        let room = format!("{prefix}-warm");
        self.room(&room).await;
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut sent = Vec::new();
        while !receivers.iter().all(|r| !r.delivered().is_empty()) {
            assert!(Instant::now() < deadline, "no webhook delivered within 60 s");
            sent.extend(self.publish(&self.g1, &[(room.clone(), "warm up".into())]).await);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let last = sent.last().expect("a warm-up message").clone();
        for r in receivers {
            r.until("the last warm-up message", Duration::from_secs(60), |d| d.iter().any(|d| d.id == last)).await;
        }
    }

    /// The consumer's `aurora_webhook_deliveries_total` for `endpoint` and `outcome`.
    async fn deliveries(&self, endpoint: &str, outcome: &str) -> u64 {
        let text = reqwest::get(format!("{}/metrics", self.consumer.base())).await.expect("metrics");
        let text = text.text().await.expect("text");
        let labels = [format!("endpoint=\"{endpoint}\""), format!("outcome=\"{outcome}\"")];
        text.lines()
            .filter(|l| l.starts_with("aurora_webhook_deliveries_total{") && labels.iter().all(|x| l.contains(x)))
            .find_map(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0)
    }
}

/// The ids delivered 2xx, and a check that each room's records came in `seq` order
/// (redeliveries of earlier records aside) with a valid signature on every request.
fn in_room_order(deliveries: &[Delivery]) -> HashSet<String> {
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    let mut ids = HashSet::new();
    for d in deliveries {
        assert!(d.valid, "a request with a bad signature: {} {:?}", d.id, d.signature);
        // Member events are not records of the room: they have no seq.
        if d.status != 200 || !ids.insert(d.id.clone()) || d.body["seq"].is_null() {
            continue;
        }
        let seen = last.entry(d.room().to_owned()).or_default();
        assert!(d.seq() > *seen, "{} after seq {} in {}: out of room order", d.seq(), seen, d.room());
        *seen = d.seq();
    }
    ids
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::test]
async fn a_thousand_messages_arrive_signed_and_in_room_order() {
    let _one_at_a_time = cluster::exclusive().await;
    let rx = Receiver::start().await;
    let prefix = unique("wh").to_lowercase();
    let rooms = format!("{prefix}-*");
    let s = stack(&[Hook { name: &prefix, url: rx.url(), rooms: &rooms, retry_for: "1h" }]).await;
    s.warm_up(&prefix, &[&rx]).await;
    let (a, b) = (format!("{prefix}-a"), format!("{prefix}-b"));
    s.room(&a).await;
    s.room(&b).await;
    // Another room, not subscribed: its messages reach no endpoint.
    let other = unique("nohook").to_lowercase();
    s.room(&other).await;
    s.publish(&s.g1, &[(other.clone(), "not for the hook".into())]).await;

    let started = Instant::now();
    let mut sent = Vec::new();
    for batch in 0..10 {
        let items: Vec<(String, String)> = (0..100)
            .map(|i| (if i % 2 == 0 { a.clone() } else { b.clone() }, format!("message {}", batch * 100 + i)))
            .collect();
        let g = if batch % 2 == 0 { &s.g1 } else { &s.g2 };
        sent.extend(s.publish(g, &items).await);
    }
    let published = started.elapsed();
    rx.until("all 1,000 delivered", Duration::from_secs(60), |d| {
        let got: HashSet<&str> = d.iter().filter(|d| d.status == 200).map(|d| d.id.as_str()).collect();
        sent.iter().all(|id| got.contains(id.as_str()))
    })
    .await;
    let all = started.elapsed();
    let deliveries = rx.deliveries();
    in_room_order(&deliveries);
    assert!(deliveries.iter().all(|d| d.room().starts_with(&prefix)), "only the subscribed rooms");
    let first = deliveries.iter().find(|d| d.id == sent[0]).expect("the first message");
    assert_eq!((first.event.as_str(), first.body["type"].as_str()), ("message.created", Some("message.created")));
    assert_eq!(first.body["data"]["body"], "message 0");
    assert_eq!(first.body["data"]["user"]["name"], "Hook Bot");
    assert_eq!(first.attempt, 1);

    let sent: HashSet<&String> = sent.iter().collect();
    let mut latency: Vec<f64> = deliveries
        .iter()
        .filter(|d| sent.contains(&d.id))
        .map(|d| (d.at_ms - d.body["ts"].as_i64().unwrap_or_default()) as f64)
        .collect();
    latency.sort_by(f64::total_cmp);
    println!(
        "webhooks: 1000 messages published in {published:?}, all delivered {all:?} after the first publish ({:.0}/s); accept-to-delivery p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; {} requests",
        1000.0 / all.as_secs_f64(),
        percentile(&latency, 0.5),
        percentile(&latency, 0.99),
        percentile(&latency, 1.0),
        deliveries.len(),
    );
    s.clean_up().await;
}

#[tokio::test]
async fn an_endpoint_down_for_20_seconds_loses_nothing() {
    let _one_at_a_time = cluster::exclusive().await;
    let mut rx = Receiver::start().await;
    let prefix = unique("whdown").to_lowercase();
    let rooms = format!("{prefix}-*");
    let s = stack(&[Hook { name: &prefix, url: rx.url(), rooms: &rooms, retry_for: "10m" }]).await;
    s.warm_up(&prefix, &[&rx]).await;
    let room = format!("{prefix}-r");
    s.room(&room).await;

    rx.down().await;
    let down_at = Instant::now();
    let mut sent = Vec::new();
    for batch in 0..4 {
        let items: Vec<(String, String)> =
            (0..25).map(|i| (room.clone(), format!("during {}", batch * 25 + i))).collect();
        sent.extend(s.publish(if batch % 2 == 0 { &s.g1 } else { &s.g2 }, &items).await);
    }
    // The endpoint stays down for the outage's length; the consumer meanwhile retries.
    tokio::time::sleep(Duration::from_secs(20).saturating_sub(down_at.elapsed())).await;
    assert!(s.deliveries(&prefix, "failed").await > 0, "attempts failed while it was down");
    rx.up().await;
    rx.until("every message sent during the outage", Duration::from_secs(90), |d| {
        let got: HashSet<&str> = d.iter().filter(|d| d.status == 200).map(|d| d.id.as_str()).collect();
        sent.iter().all(|id| got.contains(id.as_str()))
    })
    .await;
    in_room_order(&rx.deliveries());
    let first = rx.deliveries().into_iter().find(|d| d.id == sent[0]).expect("first");
    assert!(first.attempt > 1, "delivered by a retry: attempt {}", first.attempt);
    assert_eq!(s.deliveries(&prefix, "dead_lettered").await, 0);
    s.clean_up().await;
}

/// Chat send → receive across gateways, `n` times; the latencies in ms, sorted.
async fn chat_latency(
    alice: &mut Client,
    bob: &mut Client,
    room: &str,
    n: usize,
    tag: &str,
) -> (Vec<f64>, Vec<String>) {
    let mut ms = Vec::with_capacity(n);
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        let ack = alice.request(json!({"type": "send", "room": room, "body": format!("{tag} {i}")})).await;
        assert_eq!(ack["type"], "ack", "{ack}");
        let m = bob.recv_type("message").await;
        assert_eq!(m["body"], format!("{tag} {i}"));
        ms.push(started.elapsed().as_secs_f64() * 1000.0);
        ids.push(m["id"].as_str().expect("id").to_owned());
    }
    ms.sort_by(f64::total_cmp);
    (ms, ids)
}

#[tokio::test]
async fn a_slow_endpoint_holds_back_neither_chat_nor_other_endpoints() {
    let _one_at_a_time = cluster::exclusive().await;
    let (slow, fast) = (Receiver::start().await, Receiver::start().await);
    let prefix = unique("whslow").to_lowercase();
    let rooms = format!("{prefix}-*");
    let (slow_name, fast_name) = (format!("{prefix}-slow"), format!("{prefix}-fast"));
    let s = stack(&[
        Hook { name: &slow_name, url: slow.url(), rooms: &rooms, retry_for: "1h" },
        Hook { name: &fast_name, url: fast.url(), rooms: &rooms, retry_for: "1h" },
    ])
    .await;
    s.warm_up(&prefix, &[&slow, &fast]).await;
    let room = format!("{prefix}-chat");
    s.room(&room).await;
    let http = reqwest::Client::new();
    let (ua, ub) =
        (register_at(&http, &s.g1.base, &unique("wa")).await, register_at(&http, &s.g2.base, &unique("wb")).await);
    let mut alice = Client::connect(s.g1.addr, &ua.token).await;
    let mut bob = Client::connect(s.g2.addr, &ub.token).await;
    alice.join(&room).await;
    bob.join(&room).await;

    let (before, _) = chat_latency(&mut alice, &mut bob, &room, 100, "before").await;
    slow.set_mode(Mode::Slow(Duration::from_secs(5)));
    let (during, ids) = chat_latency(&mut alice, &mut bob, &room, 100, "during").await;
    fast.until("the fast endpoint has every message", Duration::from_secs(30), |d| {
        let got: HashSet<&str> = d.iter().map(|d| d.id.as_str()).collect();
        ids.iter().all(|id| got.contains(id.as_str()))
    })
    .await;
    // The slow endpoint answers one request per 5 s: it is still far behind.
    let slow_got = slow.deliveries().iter().filter(|d| ids.contains(&d.id)).count();
    assert!(slow_got < ids.len() / 2, "the slow endpoint already has {slow_got} of {}", ids.len());
    in_room_order(&fast.deliveries());

    // Presence as member events: both joined; bob's last connection going is a leave.
    let member = |d: &Delivery, event: &str, name: &str| {
        d.event == event && d.room() == room && d.body["data"]["user"]["name"] == name
    };
    let joined = fast.deliveries();
    for name in [&ua.name, &ub.name] {
        assert!(joined.iter().any(|d| member(d, "member.joined", name)), "member.joined for {name}");
    }
    drop(bob);
    fast.until("member.left for bob", Duration::from_secs(10), |d| {
        d.iter().any(|d| member(d, "member.left", &ub.name))
    })
    .await;
    let mut hook_latency: Vec<f64> = fast
        .delivered()
        .iter()
        .filter(|d| ids.contains(&d.id))
        .map(|d| (d.at_ms - d.body["ts"].as_i64().unwrap_or_default()) as f64)
        .collect();
    hook_latency.sort_by(f64::total_cmp);
    println!(
        "the fast endpoint, one message at a time: accept-to-delivery p50 {:.0} ms, p99 {:.0} ms",
        percentile(&hook_latency, 0.5),
        percentile(&hook_latency, 0.99)
    );
    println!(
        "chat send->receive across gateways, 100 messages: without a slow endpoint p50 {:.1} ms p99 {:.1} ms; with one answering in 5 s p50 {:.1} ms p99 {:.1} ms (the slow endpoint had {slow_got} of them)",
        percentile(&before, 0.5),
        percentile(&before, 0.99),
        percentile(&during, 0.5),
        percentile(&during, 0.99),
    );
    s.clean_up().await;
}

#[tokio::test]
async fn dead_letters_are_parked_and_replayed() {
    let _one_at_a_time = cluster::exclusive().await;
    let rx = Receiver::start().await;
    let prefix = unique("whdlq").to_lowercase();
    let rooms = format!("{prefix}-*");
    let s = stack(&[Hook { name: &prefix, url: rx.url(), rooms: &rooms, retry_for: "2s" }]).await;
    s.warm_up(&prefix, &[&rx]).await;
    let room = format!("{prefix}-r");
    s.room(&room).await;

    rx.set_mode(Mode::Fail);
    let items: Vec<(String, String)> = (0..5).map(|i| (room.clone(), format!("parked {i}"))).collect();
    let sent = s.publish(&s.g1, &items).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while s.deliveries(&prefix, "dead_lettered").await < 5 {
        assert!(Instant::now() < deadline, "not all five parked within 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(rx.delivered().iter().all(|d| !sent.contains(&d.id)), "none delivered while failing");

    rx.set_mode(Mode::Ok);
    let out = replay(&s.hooks, &prefix).await;
    assert!(out.contains(&format!("replayed 5 dead letters to {prefix}")), "{out}");
    let delivered: Vec<String> = rx.delivered().into_iter().filter(|d| sent.contains(&d.id)).map(|d| d.id).collect();
    assert_eq!(delivered, sent, "each parked message once, in order");
    in_room_order(&rx.deliveries());
    // The replay committed its place: a second run has nothing left.
    let again = replay(&s.hooks, &prefix).await;
    assert!(again.contains("replayed 0 dead letters"), "{again}");
    s.clean_up().await;
}

/// `aurora-consumer replay-webhooks --endpoint <name>`; its output.
async fn replay(hooks: &HookFile, endpoint: &str) -> String {
    let (k, v) = hooks.env();
    let mut cmd = tokio::process::Command::new(cluster::consumer_binary());
    cmd.args(["replay-webhooks", "--endpoint", endpoint]).env(k, v).env("RUST_LOG", "error");
    for (k, v) in cluster::services() {
        cmd.env(k, v);
    }
    let out =
        tokio::time::timeout(Duration::from_secs(120), cmd.output()).await.expect("replay finishes").expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "replay-webhooks failed: {stdout} {}", String::from_utf8_lossy(&out.stderr));
    stdout
}
