use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cluster::{room, solo, Outage, Proc, Solo};
use crate::harness::stored;
use crate::harness::{register_at, unique, Client};

async fn wait_for(what: &str, secs: u64, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[derive(Default)]
struct Sent {
    acked: Vec<String>,
    refused: usize,
}

async fn status_of(http: &reqwest::Client, base: &str) -> String {
    let v: Value = http.get(format!("{base}/readyz")).send().await.unwrap().json().await.unwrap();
    v["status"].as_str().unwrap_or_default().to_owned()
}

// Long by design: one outage scenario (traffic, restart, recovery, audit) read top to bottom.
#[tokio::test]
async fn redis_restart_during_traffic_loses_nothing_and_recovers() {
    let _one_at_a_time = crate::cluster::exclusive().await;
    let _c = Proc::consumer().await;
    let env = [("AURORA_PRESENCE_LEASE", "2s"), ("AURORA_RATE_LIMIT", "100/1s")];
    let g1 = Proc::gateway(&env).await;
    let g2 = Proc::gateway(&env).await;
    let http = reqwest::Client::new();
    let alice = register_at(&http, &g1.base(), &unique("ali")).await;
    let bob = register_at(&http, &g2.base(), &unique("bob")).await;
    let name = room(&g1.base(), &alice.token).await;
    let mut a = Client::connect(g1.addr, &alice.token).await;
    let mut b = Client::connect(g2.addr, &bob.token).await;
    a.join(&name).await;
    b.join(&name).await;

    // Alice keeps sending (about 50/s) through the outage; the task records what was acked.
    let sent = Arc::new(Mutex::new(Sent::default()));
    let stop = tokio_util::sync::CancellationToken::new();
    let sender = {
        let (sent, stop, name) = (sent.clone(), stop.clone(), name.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.is_cancelled() {
                let v = a.request(json!({"type":"send","room":name,"body":format!("t{i}")})).await;
                {
                    let mut s = sent.lock().unwrap();
                    match v["type"].as_str() {
                        Some("ack") => s.acked.push(v["id"].as_str().unwrap().to_owned()),
                        _ => s.refused += 1,
                    }
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            a
        })
    };
    wait_for("traffic", 30, async || sent.lock().unwrap().acked.len() >= 20).await;
    let outage = Outage::start("redis").await;
    wait_for("refusals during the outage", 30, async || sent.lock().unwrap().refused > 0).await;
    // Ten seconds into the outage both gateways are still Ready (they can serve; sends
    // answer `unavailable`), so a Redis blip never empties the Service.
    let outage_started = Instant::now();
    while outage_started.elapsed() < Duration::from_secs(10) {
        for g in [&g1, &g2] {
            let r = http.get(format!("{}/readyz", g.base())).send().await.expect("readyz answers");
            assert_eq!(r.status(), 200, "after {:?} of the outage", outage_started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(status_of(&http, &g1.base()).await, "degraded");
    outage.end().await;
    let after_restart = sent.lock().unwrap().acked.len();
    wait_for("sends after the restart", 60, async || sent.lock().unwrap().acked.len() >= after_restart + 30).await;
    stop.cancel();
    let mut a = sender.await.unwrap();
    let acked: HashSet<String> = sent.lock().unwrap().acked.iter().cloned().collect();

    // Bob, connected throughout on the other gateway, got every acked message, gap-free.
    let mut got: Vec<Value> = Vec::new();
    let mut ids = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !acked.is_subset(&ids) {
        assert!(Instant::now() < deadline, "bob is missing {} acked messages", acked.difference(&ids).count());
        let m = tokio::time::timeout(Duration::from_secs(30), b.recv_type("message")).await.expect("a message");
        ids.insert(m["id"].as_str().unwrap().to_owned());
        got.push(m);
    }
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m["seq"].as_u64(), Some(i as u64 + 1), "gap or duplicate at {i}");
    }

    // Presence recovers: both users are online again once the gateways re-register.
    wait_for("presence after the restart", 30, async || {
        let v: Value = http
            .get(format!("{}/api/rooms", g1.base()))
            .bearer_auth(&alice.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["rooms"].as_array().unwrap().iter().any(|r| r["name"] == name.as_str() && r["online"] == 2)
    })
    .await;
    // Rate limiting works again: of a burst far past 100/s, no more are accepted than the
    // bucket holds plus what it refilled while the burst lasted (however slow this machine).
    const BURST: usize = 1000;
    let burst_started = Instant::now();
    for i in 0..BURST {
        a.send(json!({"type":"send","room":name,"body":format!("burst {i}")})).await;
    }
    let (mut accepted, mut limited, mut answers) = (0usize, 0usize, 0usize);
    while answers < BURST {
        let v = a.recv().await;
        match v["type"].as_str() {
            Some("ack") => accepted += 1,
            Some("error") if v["code"] == "rate_limited" => limited += 1,
            Some("error") => {}
            _ => continue,
        }
        answers += 1;
    }
    let bound = 100 + (100.0 * burst_started.elapsed().as_secs_f64()).ceil() as usize;
    assert!(
        limited > 0 && accepted <= bound,
        "the limiter works after the restart: {accepted} accepted, bound {bound}"
    );
    g1.terminate().await;
    g2.terminate().await;
}

#[tokio::test]
async fn mongodb_restart_recovers_history_and_registration_without_loss() {
    let _one_at_a_time = crate::cluster::exclusive().await;
    let Solo { consumer, gateway: g, http, user: u, room: name, client: mut c } = solo("mon").await;
    c.say(&name, "before").await;
    assert_eq!(c.recv_type("message").await["body"], "before");

    let outage = Outage::start("mongodb").await;
    // Kafka still takes messages: acked now, stored once MongoDB is back.
    c.say(&name, "during").await;
    // The consumer retries the batch it cannot store; SIGTERM still stops it (without
    // committing the batch: the next consumer gets it).
    let metrics = format!("{}/metrics", consumer.base());
    wait_for("the consumer retrying its batch", 30, async || {
        let text = http.get(&metrics).send().await.unwrap().text().await.unwrap();
        text.lines().any(|l| l.starts_with("aurora_consumer_retries_total ") && !l.ends_with(" 0"))
    })
    .await;
    assert!(consumer.terminate_within(Duration::from_secs(10)).await, "SIGTERM stops a consumer while MongoDB is down");
    let r = http
        .post(format!("{}/api/auth/register", g.base()))
        .json(&json!({"username": unique("late"), "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503, "registration answers unavailable while MongoDB is down");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable");

    outage.end().await;
    // A consumer starts once MongoDB is back (start-up needs it) and gets the unstored batch.
    let _c = Proc::consumer().await;
    let m = c.recv_type_within("message", Duration::from_secs(60)).await;
    assert_eq!((m["body"].as_str(), m["seq"].as_u64()), (Some("during"), Some(2)));
    c.say(&name, "after").await;
    assert_eq!(c.recv_type("message").await["body"], "after");
    register_at(&http, &g.base(), &unique("late")).await;
    let bodies: Vec<String> =
        stored(&g.base(), &u.token, &name).await.iter().map(|m| m["body"].as_str().unwrap().to_owned()).collect();
    assert_eq!(bodies, ["before", "during", "after"]);
    g.terminate().await;
}

/// A gateway killed with acks outstanding; the client moves to the other gateway and
/// re-sends everything: each nonce is stored once and every ack names a stored message
/// (a claim whose first attempt never reached Kafka is appended again, not just acked).
#[tokio::test]
async fn resent_nonces_are_stored_once_when_the_client_moves_to_another_gateway() {
    use crate::harness::{assert_stored_once, burst, resend_all};
    let _one_at_a_time = crate::cluster::exclusive().await;
    let _c = Proc::consumer().await;
    let env = [("AURORA_RATE_LIMIT", "1000/1s")];
    let mut g1 = Proc::gateway(&env).await;
    let g2 = Proc::gateway(&env).await;
    let http = reqwest::Client::new();
    let u = register_at(&http, &g1.base(), &unique("mv")).await;
    let name = room(&g1.base(), &u.token).await;
    let mut c = Client::connect(g1.addr, &u.token).await;
    c.join(&name).await;
    let nonces = burst(&mut c, &name, &unique("n"), 300).await;
    let mut acks = 0;
    while acks < 20 {
        if c.recv().await["type"] == "ack" {
            acks += 1;
        }
    }
    g1.kill9().await;
    drop(c);

    let mut c = Client::connect(g2.addr, &u.token).await;
    c.join(&name).await;
    let acked = resend_all(&mut c, &name, &nonces).await;
    let (base, token) = (g2.base(), u.token.clone());
    let newest = format!("{base}/api/rooms/{name}/messages?limit=1");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v: Value = http.get(&newest).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        let last = v["messages"][0]["seq"].as_u64().unwrap_or(0);
        if last >= acked.len() as u64 {
            break;
        }
        assert!(Instant::now() < deadline, "{} of {} acked messages stored", last, acked.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_stored_once(&stored(&base, &token, &name).await, &acked);
}
