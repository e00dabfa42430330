//! Replies, edits, deletes and reactions (docs/protocol.md §3): events on the room's stream.

use serde_json::{json, Value};
use std::time::Duration;

use crate::harness::conversation::{mixed_events, order, Member, RoomView};
use crate::harness::{data_dir, register_at, unique, Binary, Client, Server};

async fn member(s: &Server, token: &str, room: &str) -> Member {
    let mut c = s.ws(token).await;
    c.recv_type("hello").await;
    c.join(room).await;
    Member::new(c)
}

#[tokio::test]
async fn every_member_sees_events_in_one_order_and_a_resumed_member_ends_in_the_same_state() {
    let s = Server::start_with(|c| c.rate_limit = "1000/1s".parse().unwrap()).await;
    let room = "general";
    let (ann, bob, cat) =
        (s.register(&unique("ann")).await, s.register(&unique("bob")).await, s.register(&unique("cat")).await);
    let mut a = member(&s, &ann.token, room).await;
    let mut b = member(&s, &bob.token, room).await;
    let mut old = Vec::new();
    for body in ["one", "two", "three"] {
        old.push(a.acked(json!({"type":"send","room":room,"body":body})).await);
    }
    // Cat reads the first three, then goes offline.
    let mut c = s.ws(&cat.token).await;
    c.recv_type("hello").await;
    let joined = c.join(room).await;
    let mut offline = RoomView::from_records(joined["history"].as_array().unwrap());
    let last_seen = joined["last_seq"].as_u64().unwrap();
    assert_eq!(last_seen, 3);
    drop(c);

    mixed_events(&mut a, &mut b, room, &old).await;
    a.records_until(23).await;
    b.records_until(23).await;
    assert_eq!(order(&a.records), order(&b.records), "one order for every member");
    let seqs: Vec<u64> = b.records.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=23).collect::<Vec<_>>(), "events take gap-free seqs like messages");
    let live = RoomView::from_records(&b.records);
    assert_eq!(live, RoomView::from_records(&a.records));
    let m1 = &live.0[&old[0]];
    assert!(m1.reactions[&"👍".to_owned()].contains(&bob.id) && !m1.reactions[&"👍".to_owned()].contains(&ann.id));
    assert!(live.0[&old[1]].deleted && live.0[&old[1]].body.is_empty());
    let reply = b.records.iter().find(|r| r["body"] == "four, replying to one").unwrap();
    assert_eq!(reply["reply_to"]["excerpt"], "one", "a reply carries its target's summary: {reply}");
    assert_eq!(reply["reply_to"]["user"]["id"], ann.id.as_str());

    // Cat comes back with `since` and ends where everyone else is.
    let mut c = s.ws(&cat.token).await;
    c.recv_type("hello").await;
    let resumed = c.request(json!({"type":"join","room":room,"since":last_seen})).await;
    offline.apply_all(resumed["history"].as_array().unwrap());
    assert_eq!(offline, live, "resumed with since = stayed online");

    // History holds messages in their current state: no replaying needed.
    let dan = s.register(&unique("dan")).await;
    let mut d = s.ws(&dan.token).await;
    d.recv_type("hello").await;
    let fresh = d.join(room).await;
    let history = fresh["history"].as_array().unwrap();
    assert!(history.iter().all(|m| m.get("kind").is_none()), "messages only: {fresh}");
    assert_eq!(RoomView::from_records(history), live);
    let tombstone = history.iter().find(|m| m["id"] == old[1].as_str()).unwrap();
    assert!(tombstone["deleted"] == true && tombstone.get("body").is_none_or(|b| b == ""), "{tombstone}");
    let six = history.iter().find(|m| m["body"] == "six, replying to two").unwrap();
    assert_eq!(six["reply_to"]["deleted"], true, "a reply to a deleted message says so: {six}");
    let (status, rest) = s.get(&format!("/api/rooms/{room}/messages"), &dan.token).await;
    assert_eq!(status, 200);
    assert_eq!(RoomView::from_records(rest["messages"].as_array().unwrap()), live);
    let page = d.request(json!({"type":"history","room":room,"before":24,"limit":100})).await;
    assert_eq!(RoomView::from_records(page["messages"].as_array().unwrap()), live);
    s.stop().await;
}

async fn refused(m: &mut Member, frame: Value, code: &str) {
    let what = frame.to_string();
    let v = m.act(frame).await;
    assert_eq!((v["type"].as_str(), v["code"].as_str()), (Some("error"), Some(code)), "{what}: {v}");
}

#[tokio::test]
async fn bad_events_get_their_error_change_nothing_and_keep_the_connection() {
    let s = Server::start_with(|c| {
        c.rate_limit = "8/1m".parse().unwrap();
        c.max_reactions = 2;
        c.max_message_bytes = 64;
        c.default_rooms = vec!["general".into(), "elsewhere".into()];
    })
    .await;
    let room = "general";
    let (ann, bob) = (s.register(&unique("ann")).await, s.register(&unique("bob")).await);
    let mut a = member(&s, &ann.token, room).await;
    a.client.join("elsewhere").await;
    let mut b = member(&s, &bob.token, room).await;
    let send = |body: &str| json!({"type":"send","room":room,"body":body});
    let (m1, m2) = (a.acked(send("one")).await, a.acked(send("two")).await);
    let away = a.acked(json!({"type":"send","room":"elsewhere","body":"over there"})).await;
    let edit = |id: &str, body: &str| json!({"type":"edit","room":room,"id":id,"body":body});
    let react = |id: &str, emoji: &str| json!({"type":"react","room":room,"id":id,"emoji":emoji});

    refused(&mut b, edit(&m1, "not yours"), "forbidden").await;
    refused(&mut b, json!({"type":"delete","room":room,"id":m1}), "forbidden").await;
    refused(&mut b, json!({"type":"send","room":room,"body":"hi","reply_to":away}), "not_found").await;
    refused(&mut b, react(&unique("nope"), "👍"), "not_found").await;
    refused(&mut b, react(&m1, &format!(":{}:", "x".repeat(40))), "bad_request").await;
    refused(&mut b, react(&m1, "👍👍"), "bad_request").await;
    refused(&mut a, edit(&m1, &"x".repeat(65)), "too_large").await;
    refused(&mut a, edit(&m1, "  "), "bad_request").await;
    refused(&mut a, json!({"type":"react","room":"nowhere","id":m1,"emoji":"👍"}), "not_found").await;
    b.acked(react(&m2, "👍")).await;
    b.acked(react(&m2, "❤️")).await;
    refused(&mut b, react(&m2, "🎉"), "forbidden").await;
    b.acked(react(&m2, "👍")).await; // again: idempotent
    a.acked(json!({"type":"delete","room":room,"id":m1})).await;
    refused(&mut a, edit(&m1, "too late"), "not_found").await;
    refused(&mut a, react(&m1, "👍"), "not_found").await;

    // Refusals took no tokens: Bob still has 8 - 3 = 5; a burst past them is limited.
    for i in 0..5 {
        b.acked(send(&format!("b{i}"))).await;
    }
    let limited = b.act(react(&m2, "👍")).await;
    assert_eq!(limited["code"], "rate_limited", "{limited}");
    assert!(limited["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0));

    // Nothing refused changed anything, and both connections still work.
    let (_, page) = s.get(&format!("/api/rooms/{room}/messages"), &ann.token).await;
    let view = RoomView::from_records(page["messages"].as_array().unwrap());
    assert!(view.0[&m1].deleted);
    let two = &view.0[&m2];
    assert_eq!((two.body.as_str(), two.edited, two.reactions.len()), ("two", false, 2));
    assert_eq!(two.reactions[&"👍".to_owned()].len(), 1);
    a.client.join(room).await;
    b.client.join(room).await;
    s.stop().await;
}

#[tokio::test]
async fn the_edit_window_closes_edits_but_not_deletes() {
    let s = Server::start_with(|c| c.edit_window = Duration::from_millis(1)).await;
    let ann = s.register(&unique("ann")).await;
    let mut a = member(&s, &ann.token, "general").await;
    let id = a.acked(json!({"type":"send","room":"general","body":"typo"})).await;
    let sent = aurora_core::now_ms();
    crate::harness::eventually("the window to pass", || async { (aurora_core::now_ms() > sent + 2).then_some(()) })
        .await;
    refused(&mut a, json!({"type":"edit","room":"general","id":id,"body":"fixed"}), "forbidden").await;
    a.acked(json!({"type":"delete","room":"general","id":id})).await;
    s.stop().await;
}

/// An edit retried with its nonce after a restart, behind a later edit: stored once, and
/// the later edit stays.
#[tokio::test]
async fn events_retried_with_their_nonce_after_a_restart_change_nothing_twice() {
    let (_keep, dir) = data_dir();
    let gw = Binary::start(&dir, &[]).await;
    let http = reqwest::Client::new();
    let u = register_at(&http, &gw.base(), &unique("rt")).await;
    let mut c = Member::new(Client::connect(gw.addr, &u.token).await);
    c.client.join("general").await;
    let id = c.acked(json!({"type":"send","room":"general","body":"v1"})).await;
    let first = json!({"type":"edit","room":"general","id":id,"body":"v2","nonce":"edit-1"});
    let edit_id = c.acked(first.clone()).await;
    c.acked(json!({"type":"react","room":"general","id":id,"emoji":"👍","nonce":"react-1"})).await;
    c.acked(json!({"type":"edit","room":"general","id":id,"body":"v3","nonce":"edit-2"})).await;
    assert!(gw.terminate().await.success());

    let gw = Binary::start(&dir, &[]).await;
    let mut c = Member::new(Client::connect(gw.addr, &u.token).await);
    let joined = c.client.join("general").await;
    let last = joined["last_seq"].as_u64().unwrap();
    assert_eq!(c.acked(first).await, edit_id, "the retry gets the first id");
    c.acked(json!({"type":"react","room":"general","id":id,"emoji":"👍","nonce":"react-1"})).await;
    c.acked(json!({"type":"send","room":"general","body":"after"})).await;
    c.records_until(1).await;
    let after = c.records.iter().find(|r| r["body"] == "after").unwrap_or_else(|| panic!("{:?}", c.records));
    assert_eq!(after["seq"].as_u64(), Some(last + 1), "the retries added no record: {:?}", c.records);
    let joined = c.client.join("general").await;
    let view = RoomView::from_records(joined["history"].as_array().unwrap());
    assert_eq!(view.0[&id].body, "v3", "the retried edit did not undo the later one");
    assert_eq!(view.0[&id].reactions[&"👍".to_owned()].len(), 1);
    assert!(gw.terminate().await.success());
}

/// A deleted message's body is gone from the file, not hidden: read the store itself.
#[tokio::test]
async fn a_deleted_body_is_gone_from_the_embedded_store() {
    let (_keep, dir) = data_dir();
    let gw = Binary::start(&dir, &[]).await;
    let http = reqwest::Client::new();
    let u = register_at(&http, &gw.base(), &unique("del")).await;
    let mut c = Member::new(Client::connect(gw.addr, &u.token).await);
    c.client.join("general").await;
    let secret = unique("secret-body-");
    let id = c.acked(json!({"type":"send","room":"general","body":secret})).await;
    c.acked(json!({"type":"edit","room":"general","id":id,"body":format!("{secret} edited")})).await;
    c.acked(json!({"type":"delete","room":"general","id":id})).await;
    assert!(gw.terminate().await.success());

    let store = aurora_core::embedded::FileStore::open(&dir).unwrap();
    let (records, _) = aurora_core::ports::MessageStore::after(&store, "general", 0, 500).await.unwrap();
    assert_eq!(records.len(), 3, "the message, its edit and its delete");
    assert!(records.iter().all(|m| !m.body.contains(&secret)), "{records:?}");
    assert!(records[0].deleted);
}
