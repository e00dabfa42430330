//! Replicated Kafka under failure: three brokers (`dev/services.sh up kafka3`), RF 3,
//! `min.insync.replicas` 2. Run by `./run.sh test faults` (ignored in the default run,
//! which has one broker).

use aurora_testkit as harness;
use aurora_testkit::cluster;

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster::{room, service, services, Proc};
use harness::{assert_stored_once, register_at, stored, unique, Client};

fn brokers() -> String {
    services().into_iter().find(|(k, _)| *k == "AURORA_KAFKA_BROKERS").expect("brokers").1
}

/// Brokers in the cluster, and partition 0 of `aurora.messages` (leader, in-sync replicas) once it exists.
fn cluster_state() -> Option<(usize, Option<(i32, usize)>)> {
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", brokers()).create().ok()?;
    let md = producer.client().fetch_metadata(Some("aurora.messages"), Duration::from_secs(3)).ok()?;
    let partition = md
        .topics()
        .iter()
        .find(|t| t.name() == "aurora.messages")
        .and_then(|t| t.partitions().iter().find(|p| p.id() == 0))
        .filter(|p| p.leader() >= 0)
        .map(|p| (p.leader(), p.isr().len()));
    Some((md.brokers().len(), partition))
}

/// The leader of partition 0 when it has `isr` in-sync replicas.
fn leader_with(isr: usize) -> Option<i32> {
    cluster_state()?.1.filter(|p| p.1 == isr).map(|p| p.0)
}

async fn wait_until<T>(what: &str, secs: u64, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sends numbered messages with nonces until `stop`, re-sending each (same nonce) until
/// it is acked, as a client does; records nonce → id and the longest wait for an ack.
async fn sender(
    mut c: Client,
    room: String,
    prefix: String,
    stop: Arc<Mutex<bool>>,
) -> (HashMap<String, String>, Duration) {
    let mut acked = HashMap::new();
    let mut longest = Duration::ZERO;
    let mut i = 0;
    while !*stop.lock().unwrap() {
        let nonce = format!("{prefix}-{i}");
        let started = Instant::now();
        loop {
            let v = c.request(json!({"type":"send","room":room,"body":nonce,"nonce":nonce})).await;
            if v["type"] == "ack" {
                acked.insert(nonce.clone(), v["id"].as_str().unwrap().to_owned());
                break;
            }
            assert_eq!(v["code"], "unavailable", "only an outage may refuse a send: {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        longest = longest.max(started.elapsed());
        i += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (acked, longest)
}

#[tokio::test]
#[ignore = "needs three brokers: ./run.sh test faults"]
async fn killing_the_partition_leader_loses_and_duplicates_nothing() {
    wait_until("three brokers", 60, || cluster_state().filter(|s| s.0 == 3)).await;
    let env = [("AURORA_KAFKA_PARTITIONS", "1"), ("AURORA_RATE_LIMIT", "1000/1s")];
    let _consumer = Proc::consumer().await;
    let g1 = Proc::gateway(&env).await;
    let g2 = Proc::gateway(&env).await;
    let leader = wait_until("a leader with three in-sync replicas", 60, || leader_with(3)).await;

    let http = reqwest::Client::new();
    let a = register_at(&http, &g1.base(), &unique("fa")).await;
    let b = register_at(&http, &g2.base(), &unique("fb")).await;
    let name = room(&g1.base(), &a.token).await;
    let mut ca = Client::connect(g1.addr, &a.token).await;
    let mut cb = Client::connect(g2.addr, &b.token).await;
    ca.join(&name).await;
    cb.join(&name).await;
    let stop = Arc::new(Mutex::new(false));
    let ta = tokio::spawn(sender(ca, name.clone(), unique("a"), stop.clone()));
    let tb = tokio::spawn(sender(cb, name.clone(), unique("b"), stop.clone()));

    tokio::time::sleep(Duration::from_secs(2)).await;
    service("kill", &format!("kafka3 {leader}")).await;
    let killed = Instant::now();
    let new_leader = wait_until("a new leader", 30, || cluster_state()?.1.map(|p| p.0).filter(|l| *l != leader)).await;
    println!("leader {leader} killed; broker {new_leader} leads after {:?}", killed.elapsed());
    tokio::time::sleep(Duration::from_secs(4)).await;
    *stop.lock().unwrap() = true;
    let (acked_a, pause_a) = ta.await.unwrap();
    let (acked_b, pause_b) = tb.await.unwrap();
    println!("longest wait for an ack during the failover: {:?}", pause_a.max(pause_b));

    let mut acked = acked_a;
    acked.extend(acked_b);
    let base = g1.base();
    wait_until_stored(&base, &a.token, &name, acked.len()).await;
    let all = stored(&base, &a.token, &name).await;
    assert_stored_once(&all, &acked);

    // The killed broker comes back and rejoins the in-sync replicas.
    service("up", "kafka3").await;
    wait_until("three in-sync replicas again", 90, || leader_with(3)).await;
}

async fn wait_until_stored(base: &str, token: &str, room: &str, count: usize) {
    let http = reqwest::Client::new();
    let url = format!("{base}/api/rooms/{room}/messages?limit=1");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v: Value = http.get(&url).bearer_auth(token).send().await.unwrap().json().await.unwrap();
        let last = v["messages"][0]["seq"].as_u64().unwrap_or(0) as usize;
        if last >= count {
            return;
        }
        assert!(Instant::now() < deadline, "{last} of {count} acked messages stored");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
