use serde_json::{json, Value};

use crate::cluster::Proc;
use crate::harness::{register_at, unique, Client};

// Long by design: one conversation across two gateways, with every guarantee checked on it.
#[tokio::test]
async fn two_gateways_two_consumers_one_consistent_chat() {
    let _one_at_a_time = crate::cluster::exclusive().await;
    let c1 = Proc::consumer().await;
    let _c2 = Proc::consumer().await;
    let g1 = Proc::gateway(&[("AURORA_RATE_LIMIT", "30/1h")]).await;
    let g2 = Proc::gateway(&[("AURORA_RATE_LIMIT", "30/1h")]).await;
    let http = reqwest::Client::new();

    // Accounts are global: registered on one gateway, usable on the other.
    let alice = register_at(&http, &g1.base(), &unique("alice")).await;
    let bob = register_at(&http, &g2.base(), &unique("bob")).await;
    let me: Value =
        http.get(format!("{}/api/me", g2.base())).bearer_auth(&alice.token).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["id"], alice.id.as_str());
    let room = crate::cluster::room(&g1.base(), &alice.token).await;

    let mut a = Client::connect(g1.addr, &alice.token).await;
    let mut b = Client::connect(g2.addr, &bob.token).await;
    a.join(&room).await;
    b.join(&room).await;
    // Presence is global: alice on g1 sees bob who joined on g2.
    let p = a.recv_type("presence").await;
    assert_eq!(p["joins"][0]["id"], bob.id.as_str());
    let rooms: Value = http
        .get(format!("{}/api/rooms", g1.base()))
        .bearer_auth(&alice.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed = rooms["rooms"].as_array().unwrap().iter().find(|r| r["name"] == room.as_str()).cloned().unwrap();
    assert_eq!(listed["online"], 2, "online counts users on every gateway");

    // Both send at once; every member sees one order, gap-free from 1.
    for i in 0..10 {
        a.send(json!({"type":"send","room":room,"body":format!("a{i}")})).await;
        b.send(json!({"type":"send","room":room,"body":format!("b{i}")})).await;
    }
    let mut seen_a = Vec::new();
    let mut seen_b = Vec::new();
    while seen_a.len() < 20 {
        let m = a.recv_type("message").await;
        seen_a.push((m["seq"].as_u64().unwrap(), m["body"].as_str().unwrap().to_owned()));
    }
    while seen_b.len() < 20 {
        let m = b.recv_type("message").await;
        seen_b.push((m["seq"].as_u64().unwrap(), m["body"].as_str().unwrap().to_owned()));
    }
    assert_eq!(seen_a, seen_b, "same order on both gateways");
    assert_eq!(seen_a.iter().map(|(s, _)| *s).collect::<Vec<_>>(), (1..=20).collect::<Vec<_>>());
    let mine: Vec<&str> = seen_a.iter().filter(|(_, body)| body.starts_with('a')).map(|(_, b)| b.as_str()).collect();
    assert_eq!(mine, (0..10).map(|i| format!("a{i}")).collect::<Vec<_>>(), "a sender's order is kept");

    // The rate limit is shared: 10 of alice's 30 tokens are gone; 20 more across both
    // gateways succeed and the next is refused, wherever it is sent.
    let mut a2 = Client::connect(g2.addr, &alice.token).await;
    a2.join(&room).await;
    for i in 0..20 {
        let c = if i % 2 == 0 { &mut a } else { &mut a2 };
        c.say(&room, &format!("more {i}")).await;
    }
    let e = a2.request(json!({"type":"send","room":room,"body":"one too many"})).await;
    assert_eq!(e["code"], "rate_limited", "{e}");
    let e = a.request(json!({"type":"send","room":room,"body":"one too many"})).await;
    assert_eq!(e["code"], "rate_limited", "{e}");

    // A nonce retry through the other gateway gets the same id.
    let bob_first = b.request(json!({"type":"send","room":room,"body":"once","nonce":"bn-1"})).await;
    let mut b2 = Client::connect(g1.addr, &bob.token).await;
    b2.join(&room).await;
    let retry = b2.request(json!({"type":"send","room":room,"body":"once","nonce":"bn-1"})).await;
    assert_eq!(retry["id"], bob_first["id"]);

    // The consumer's probes and metrics.
    assert_eq!(crate::cluster::status(&format!("{}/readyz", c1.base())).await, 200);
    assert_eq!(crate::cluster::status(&format!("{}/healthz", c1.base())).await, 200);
    let metrics = http.get(format!("{}/metrics", c1.base())).send().await.unwrap().text().await.unwrap();
    for name in [
        "aurora_consumer_messages_total",
        "aurora_consumer_lag",
        "aurora_consumer_batch_size_bucket",
        "aurora_consumer_end_to_end_seconds_bucket",
    ] {
        assert!(metrics.contains(name), "consumer metric {name} missing");
    }
    g1.terminate().await;
    g2.terminate().await;
}

#[tokio::test]
async fn consumers_pick_up_new_room_topics_without_restart() {
    use aurora_core::distributed::kafka::{ensure_topic, KafkaLog, ROOM_TOPIC_PREFIX};
    use aurora_core::model::{new_message_id, Submission};

    let _one_at_a_time = crate::cluster::exclusive().await;
    let crate::cluster::Solo { consumer: _c, gateway: g, user: u, room, client: mut c, .. } =
        crate::cluster::solo("top").await;

    // A topic created after the consumer started (as the operator will for a ChatRoom).
    let brokers = std::env::var("AURORA_KAFKA_BROKERS").unwrap();
    let topic = format!("{ROOM_TOPIC_PREFIX}{room}");
    ensure_topic(&brokers, &topic, 1, 1).await.expect("topic");
    let log = KafkaLog::with_topic(&brokers, &topic).expect("producer");
    let id = new_message_id();
    let sub = Submission {
        id: id.clone(),
        room: room.clone(),
        user: aurora_core::model::UserRef { id: u.id.as_str().into(), name: u.name.as_str().into() },
        body: "via a room topic".into(),
        ts: aurora_core::now_ms(),
        nonce: None,
        managed: false,
        retry: false,
        ..Default::default()
    };
    aurora_core::ports::MessageLog::append(&log, sub).await.expect("produced");
    let m = tokio::time::timeout(std::time::Duration::from_secs(30), c.recv_type("message")).await.expect("picked up");
    assert_eq!((m["id"].as_str(), m["body"].as_str()), (Some(id.as_str()), Some("via a room topic")));
    g.terminate().await;
}
