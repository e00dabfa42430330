//! Apply, change, refuse and delete ChatRooms; the room as users meet it.

use serde_json::json;
use std::time::{Duration, Instant};

use crate::cluster::{exclusive, Proc};
use crate::harness::{eventually, register_at, unique, Client, Session};
use crate::kube_env::{listed, topic, until_reply, Ns};

/// One test's world: a namespace, an operator for it, a consumer and a gateway.
pub struct Stack {
    pub ns: Ns,
    pub operator: Proc,
    /// Kept running for the test; stopped (SIGTERM) when dropped.
    pub _consumer: Proc,
    pub gateway: Proc,
    pub http: reqwest::Client,
}

impl Stack {
    pub async fn start() -> Stack {
        let ns = Ns::new().await;
        let operator = ns.operator("aurora-operator").await;
        let consumer = Proc::consumer().await;
        let gateway = Proc::gateway(&[]).await;
        Stack { ns, operator, _consumer: consumer, gateway, http: reqwest::Client::new() }
    }

    pub async fn user(&self, prefix: &str) -> (Session, Client) {
        let session = register_at(&self.http, &self.gateway.base(), &unique(prefix)).await;
        let client = Client::connect(self.gateway.addr, &session.token).await;
        (session, client)
    }
}

pub fn room_name() -> String {
    unique("cr").to_lowercase()
}

#[tokio::test]
async fn an_applied_chatroom_becomes_a_managed_room_with_its_own_limits() {
    let _one = exclusive().await;
    let s = Stack::start().await;
    let name = room_name();
    let applied = Instant::now();
    s.ns.apply(
        &name,
        json!({
            "title": "Ops desk",
            "history": {"size": 2},
            "rateLimit": {"messages": 2, "period": "1m"},
            "maxMessageBytes": 16,
            "topic": {"partitions": 2, "retention": "12h"},
        }),
    )
    .await;
    let ready = s.ns.condition(&name, "Ready", "True").await;
    assert!(applied.elapsed() < Duration::from_secs(5), "Ready after {:?}", applied.elapsed());
    let status = ready.status.clone().expect("status");
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(status.topic.as_deref(), Some(format!("aurora.room.{name}").as_str()));
    for c in ["TopicReady", "Registered"] {
        assert_eq!(ready.condition(c).map(|c| c.status.as_str()), Some("True"), "{c}");
    }
    let t = topic(&name).await.expect("the room's topic exists");
    assert_eq!(t.partitions, 2);
    assert_eq!(t.retention_ms, Some(12 * 3600 * 1000));
    let ns = &s.ns;
    eventually("a Created event", || async { ns.events(&name).await.contains(&"Created".to_string()).then_some(()) })
        .await;

    let (alice, mut a) = s.user("alice").await;
    let (bob, mut b) = s.user("bob").await;
    let listing = listed(&s.gateway.base(), &alice.token, &name).await.expect("the room is listed");
    assert_eq!(listing["managed"], true);
    assert_eq!(listing["title"], "Ops desk");
    a.join(&name).await;
    b.join(&name).await;

    // Max bytes: 16.
    let big = a.request(json!({"type":"send","room":name,"body":"x".repeat(17)})).await;
    assert_eq!(big["code"], "too_large", "{big}");
    // Rate limit: 2 per minute per user.
    a.say(&name, "one").await;
    a.say(&name, "two").await;
    let limited = a.request(json!({"type":"send","room":name,"body":"three"})).await;
    assert_eq!(limited["code"], "rate_limited", "{limited}");
    b.say(&name, "from bob").await;
    let mut bodies = Vec::new();
    while bodies.len() < 3 {
        let m = b.recv_type("message").await;
        bodies.push(m["body"].as_str().expect("body").to_owned());
    }
    assert_eq!(bodies, ["one", "two", "from bob"], "messages in order");
    let records = crate::kube_env::topics().records(&format!("aurora.room.{name}"), 2).await.expect("watermarks");
    assert_eq!(records, 3, "the room's messages went through its own topic");

    // History size: 2 on join.
    let (_carol, mut c) = s.user("carol").await;
    let joined = c.join(&name).await;
    let history: Vec<&str> =
        joined["history"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(history, ["two", "from bob"]);
    drop(bob);
}

#[tokio::test]
async fn spec_changes_apply_live_and_partitions_never_shrink() {
    let _one = exclusive().await;
    let s = Stack::start().await;
    let name = room_name();
    s.ns.apply(&name, json!({"rateLimit": {"messages": 1, "period": "1h"}})).await;
    s.ns.condition(&name, "Ready", "True").await;
    let (_alice, mut a) = s.user("alice").await;
    a.join(&name).await;
    a.say(&name, "first").await;
    let limited = a.request(json!({"type":"send","room":name,"body":"second"})).await;
    assert_eq!(limited["code"], "rate_limited");

    // A larger bucket applies on the open connection, without restarting anything.
    s.ns.merge_spec(&name, json!({"rateLimit": {"messages": 50, "period": "1s"}, "topic": {"partitions": 3}})).await;
    s.ns.condition(&name, "Ready", "True").await;
    until_reply(&mut a, json!({"type":"send","room":name,"body":"again"}), "the new rate limit", |v| {
        v["type"] == "ack"
    })
    .await;
    assert_eq!(topic(&name).await.expect("topic").partitions, 3, "partitions raised");

    // Lowering is refused and the topic stays as it is.
    s.ns.merge_spec(&name, json!({"topic": {"partitions": 1}})).await;
    let refused = s.ns.condition(&name, "TopicReady", "False").await;
    let c = refused.condition("TopicReady").expect("condition");
    assert_eq!(c.reason, "PartitionsCannotDecrease");
    assert!(c.message.contains("3 partitions"), "{}", c.message);
    assert_eq!(topic(&name).await.expect("topic").partitions, 3, "topic unchanged");
    let ns = &s.ns;
    eventually("a PartitionsCannotDecrease event", || async {
        ns.events(&name).await.contains(&"PartitionsCannotDecrease".to_string()).then_some(())
    })
    .await;
}

#[tokio::test]
async fn invalid_chatrooms_are_rejected_by_the_apiserver_with_the_schemas_message() {
    let ns = Ns::new().await;
    let cases = [
        (json!({"topic": {"partitions": 0}}), "should be greater than or equal to 1"),
        (json!({"rateLimit": {"messages": 1, "period": "soon"}}), "period must be a duration such as"),
        (json!({"visibility": "secret"}), "supported values: \"public\", \"private\""),
        (json!({"members": ["alice"]}), "members can only be listed for a private room"),
        (json!({"visibility": "private", "members": ["a b"]}), "members must be usernames"),
        (json!({"maxMessageBytes": 70000}), "should be less than or equal to 65536"),
        (json!({"history": {"size": 501}}), "should be less than or equal to 500"),
        (json!({"deletionPolicy": "Shred"}), "supported values: \"Retain\", \"Delete\""),
    ];
    for (spec, expected) in cases {
        let err = ns.try_apply(&unique("bad").to_lowercase(), spec.clone()).await.expect_err("refused");
        assert!(err.contains(expected), "{spec}: {err}");
    }
    let err = ns.try_apply("Not_A_Room", json!({})).await.expect_err("refused");
    assert!(!err.is_empty());
}

#[tokio::test]
async fn delete_removes_topic_and_messages_while_retain_keeps_them() {
    let _one = exclusive().await;
    let s = Stack::start().await;
    let (alice, mut a) = s.user("alice").await;
    let (doomed, kept) = (room_name(), room_name());
    s.ns.apply(&doomed, json!({"deletionPolicy": "Delete"})).await;
    s.ns.apply(&kept, json!({"deletionPolicy": "Retain", "title": "Kept"})).await;
    for r in [&doomed, &kept] {
        s.ns.condition(r, "Ready", "True").await;
        a.join(r).await;
        a.say(r, "hello").await;
    }
    let (_bob, mut b) = s.user("bob").await;
    b.join(&doomed).await;
    let base = s.gateway.base();
    for r in [&doomed, &kept] {
        let token = alice.token.clone();
        eventually("the message is stored", || {
            let (base, token) = (base.clone(), token.clone());
            async move { (crate::harness::stored(&base, &token, r).await.len() == 1).then_some(()) }
        })
        .await;
    }

    s.ns.delete(&doomed).await;
    s.ns.gone(&doomed).await;
    let left = b.recv_type("left").await;
    assert_eq!((left["room"].as_str(), left["reason"].as_str()), (Some(doomed.as_str()), Some("deleted")));
    assert!(topic(&doomed).await.is_none(), "topic deleted");
    assert!(listed(&base, &alice.token, &doomed).await.is_none(), "room gone from the list");
    let (status, _) = get(&format!("{base}/api/rooms/{doomed}/messages"), &alice.token).await;
    assert_eq!(status, 404, "messages gone with the room");

    s.ns.delete(&kept).await;
    s.ns.gone(&kept).await;
    assert!(topic(&kept).await.is_some(), "topic kept");
    let token = alice.token.clone();
    let listing = eventually("the room is unmanaged", || {
        let (base, token, kept) = (base.clone(), token.clone(), kept.clone());
        async move { listed(&base, &token, &kept).await.filter(|r| r["managed"] == false) }
    })
    .await;
    assert_eq!(listing["title"], "Kept");
    assert_eq!(crate::harness::stored(&base, &alice.token, &kept).await.len(), 1, "messages kept");
    a.say(&kept, "still chatting").await;
}

pub async fn get(url: &str, token: &str) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new().get(url).bearer_auth(token).send().await.expect("GET");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}
