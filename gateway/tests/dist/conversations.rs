//! Replies, edits, deletes and reactions across two gateways, through Kafka, the fan-out
//! tier and MongoDB: the same guarantees as messages (docs/protocol.md §3).

use serde_json::json;

use crate::cluster::Proc;
use crate::harness::conversation::{mixed_events, order, Member, RoomView};
use crate::harness::{register_at, unique, Client};

async fn member(g: &Proc, token: &str, room: &str) -> Member {
    let mut c = Client::connect(g.addr, token).await;
    c.recv_type("hello").await;
    c.join(room).await;
    Member::new(c)
}

/// One consumer and two gateways, the cluster to themselves.
struct TwoGateways {
    g1: Proc,
    g2: Proc,
    http: reqwest::Client,
    _consumer: Proc,
    _one_at_a_time: tokio::sync::MutexGuard<'static, ()>,
}

async fn two_gateways() -> TwoGateways {
    let one_at_a_time = crate::cluster::exclusive().await;
    let consumer = Proc::consumer().await;
    let (g1, g2) = (Proc::gateway(&[]).await, Proc::gateway(&[]).await);
    TwoGateways { g1, g2, http: reqwest::Client::new(), _consumer: consumer, _one_at_a_time: one_at_a_time }
}

#[tokio::test]
async fn events_reach_the_other_gateway_in_order_and_a_resumed_member_catches_up() {
    let _one_at_a_time = crate::cluster::exclusive().await;
    let _c = Proc::consumer().await;
    let env = [("AURORA_RATE_LIMIT", "1000/1s")];
    let g1 = Proc::gateway(&env).await;
    let g2 = Proc::gateway(&env).await;
    let http = reqwest::Client::new();
    let ann = register_at(&http, &g1.base(), &unique("ann")).await;
    let bob = register_at(&http, &g2.base(), &unique("bob")).await;
    let cat = register_at(&http, &g1.base(), &unique("cat")).await;
    let room = crate::cluster::room(&g1.base(), &ann.token).await;
    let mut a = member(&g1, &ann.token, &room).await;
    let mut b = member(&g2, &bob.token, &room).await;
    let mut old = Vec::new();
    for body in ["one", "two", "three"] {
        old.push(a.acked(json!({"type":"send","room":room,"body":body})).await);
    }
    a.records_until(3).await;
    b.records_until(3).await;
    // Cat reads the first three on gateway 1, then goes offline.
    let mut c = Client::connect(g1.addr, &cat.token).await;
    let joined = c.join(&room).await;
    let mut offline = RoomView::from_records(joined["history"].as_array().unwrap());
    assert_eq!(joined["last_seq"], 3);
    drop(c);

    mixed_events(&mut a, &mut b, &room, &old).await;
    a.records_until(23).await;
    b.records_until(23).await;
    assert_eq!(order(&a.records), order(&b.records), "one order on both gateways");
    let seqs: Vec<u64> = b.records.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=23).collect::<Vec<_>>());
    let live = RoomView::from_records(&b.records);
    assert_eq!(live, RoomView::from_records(&a.records));

    // Cat resumes on the other gateway.
    let mut c = Client::connect(g2.addr, &cat.token).await;
    c.recv_type("hello").await;
    let resumed = c.request(json!({"type":"join","room":room,"since":3})).await;
    offline.apply_all(resumed["history"].as_array().unwrap());
    assert_eq!(offline, live, "resumed with since = stayed online");
    let fresh = c.request(json!({"type":"history","room":room,"before":24,"limit":100})).await;
    assert_eq!(RoomView::from_records(fresh["messages"].as_array().unwrap()), live, "history in its current state");

    // The deleted bodies are gone from MongoDB itself.
    let uri = std::env::var("AURORA_MONGODB_URI").unwrap();
    let store = aurora_core::distributed::MongoStore::connect(&uri).await.unwrap();
    let (stored, _) = aurora_core::ports::MessageStore::after(&store, &room, 0, 500).await.unwrap();
    assert_eq!(stored.len(), 23);
    for gone in ["three", "two, edited", "two, edited twice", "five"] {
        assert!(stored.iter().all(|m| m.body != gone), "{gone:?} is still stored");
    }
    assert!(stored.iter().filter(|m| m.kind.is_message()).all(|m| m.deleted == m.body.is_empty()));
}

/// An edit acked by a gateway that is then killed, retried with its nonce on the other
/// gateway behind a later edit: stored once, and the later edit stays.
#[tokio::test]
async fn an_event_retried_on_another_gateway_after_a_kill_changes_nothing_twice() {
    let _one_at_a_time = crate::cluster::exclusive().await;
    let _c = Proc::consumer().await;
    let mut g1 = Proc::gateway(&[]).await;
    let g2 = Proc::gateway(&[]).await;
    let http = reqwest::Client::new();
    let u = register_at(&http, &g1.base(), &unique("rt")).await;
    let room = crate::cluster::room(&g1.base(), &u.token).await;
    let mut a = member(&g1, &u.token, &room).await;
    let id = a.acked(json!({"type":"send","room":room,"body":"v1"})).await;
    let first = json!({"type":"edit","room":room,"id":id,"body":"v2","nonce":"edit-1"});
    let edit_id = a.acked(first.clone()).await;
    a.acked(json!({"type":"edit","room":room,"id":id,"body":"v3","nonce":"edit-2"})).await;
    a.records_until(3).await;
    g1.kill9().await;

    let mut b = member(&g2, &u.token, &room).await;
    assert_eq!(b.acked(first).await, edit_id, "the retry gets the first id");
    b.acked(json!({"type":"send","room":room,"body":"after"})).await;
    b.records_until(1).await;
    let after = b.records.iter().find(|r| r["body"] == "after").unwrap_or_else(|| panic!("{:?}", b.records));
    assert_eq!(after["seq"], 4, "the retry added no record: {:?}", b.records);
    let page = b.act(json!({"type":"history","room":room,"before":10})).await;
    let view = RoomView::from_records(page["messages"].as_array().unwrap());
    assert_eq!(view.0[&id].body, "v3", "the retried edit did not undo the later one");
}

/// Twenty clients, half on each gateway, open the conversation of the same two users at
/// once: one conversation, and it works across the gateways.
#[tokio::test]
async fn twenty_clients_on_two_gateways_opening_one_conversation_get_one() {
    let TwoGateways { g1, g2, http, .. } = &two_gateways().await;
    let ann = register_at(http, &g1.base(), &unique("ann")).await;
    let bob = register_at(http, &g2.base(), &unique("bob")).await;
    let mut opening = tokio::task::JoinSet::new();
    for i in 0..20 {
        let (me, other) = if i % 2 == 0 { (ann.clone(), bob.name.clone()) } else { (bob.clone(), ann.name.clone()) };
        let base = if i % 4 < 2 { g1.base() } else { g2.base() };
        let http = http.clone();
        opening.spawn(async move {
            let r = http
                .post(format!("{base}/api/dms"))
                .bearer_auth(&me.token)
                .json(&json!({"users":[other]}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().await.unwrap()["name"].as_str().unwrap_or_default().to_owned())
        });
    }
    let answers = opening.join_all().await;
    let names: std::collections::HashSet<&str> = answers.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(names.len(), 1, "{answers:?}");
    assert_eq!(answers.iter().filter(|(status, _)| *status == 201).count(), 1, "{answers:?}");
    let name = answers[0].1.clone();
    let mut a = member(g1, &ann.token, &name).await;
    let mut b = member(g2, &bob.token, &name).await;
    a.acked(json!({"type":"send","room":name,"body":"hello across gateways"})).await;
    b.records_until(1).await;
    assert_eq!(b.records[0]["body"], "hello across gateways");
}

#[tokio::test]
async fn conversation_lists_follow_live_across_gateways_and_a_member_who_leaves_is_taken_out_everywhere() {
    let TwoGateways { g1, g2, http, .. } = &two_gateways().await;
    let ann = register_at(http, &g1.base(), &unique("ann")).await;
    let bob = register_at(http, &g2.base(), &unique("bob")).await;
    let cat = register_at(http, &g2.base(), &unique("cat")).await;
    let mut b = Client::connect(g2.addr, &bob.token).await;
    b.recv_type("hello").await;
    let mut c = Client::connect(g2.addr, &cat.token).await;
    c.recv_type("hello").await;

    let r = http
        .post(format!("{}/api/dms", g1.base()))
        .bearer_auth(&ann.token)
        .json(&json!({"users":[bob.name, cat.name]}))
        .send()
        .await
        .expect("open");
    assert_eq!(r.status(), 201);
    let name = r.json::<serde_json::Value>().await.expect("json")["name"].as_str().expect("name").to_owned();
    b.recv_type("rooms_changed").await;
    c.recv_type("rooms_changed").await;

    c.join(&name).await;
    let mut a = member(g1, &ann.token, &name).await;
    a.acked(json!({"type":"send","room":name,"body":"hello both"})).await;
    assert_eq!(c.recv_type("message").await["body"], "hello both");
    // Cat leaves through the other gateway: her connection here leaves the room.
    let r =
        http.post(format!("{}/api/dms/{name}/leave", g1.base())).bearer_auth(&cat.token).send().await.expect("leave");
    assert_eq!(r.status(), 204);
    let left = c.recv_type("left").await;
    assert_eq!(left["reason"], "removed", "{left}");
    b.recv_type("rooms_changed").await;
    let refused = c.request(json!({"type":"join","room":name})).await;
    assert_eq!(refused["code"], "forbidden", "{refused}");
    let r = http.get(format!("{}/api/rooms", g2.base())).bearer_auth(&bob.token).send().await.expect("list");
    let listed: serde_json::Value = r.json().await.expect("json");
    let dm = listed["rooms"].as_array().expect("rooms").iter().find(|r| r["name"] == name.as_str()).cloned();
    assert_eq!(dm.expect("listed")["title"], ann.name.as_str());

    // Bob writes from gateway 2 (which now holds Ann's block list: empty); Ann blocks him on
    // gateway 1: gateway 2 refuses him long before its cached list would expire.
    let mut b = Member::new(b);
    b.client.join(&name).await;
    b.acked(json!({"type":"send","room":name,"body":"before"})).await;
    let r = http.post(format!("{}/api/blocks", g1.base())).bearer_auth(&ann.token).json(&json!({"username": bob.name}));
    assert_eq!(r.send().await.expect("block").status(), 204);
    let blocked_at = std::time::Instant::now();
    loop {
        let reply = b.act(json!({"type":"send","room":name,"body":"are you there?"})).await;
        if reply["code"] == "forbidden" {
            break;
        }
        assert_eq!(reply["type"], "ack", "{reply}");
        let waited = blocked_at.elapsed();
        assert!(waited < aurora_gateway::blocks::LIST_TTL / 10, "still admitted after {waited:?}: not announced");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
