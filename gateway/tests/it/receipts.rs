//! Read receipts (docs/protocol.md §4 `receipts`): aggregated per room per second.

use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::harness::{register_at, unique, Client, Server};

async fn room(s: &Server, token: &str, receipts: bool) -> String {
    let name = unique("rr").to_lowercase();
    let (status, body) = s.post("/api/rooms", Some(token), json!({"name": name, "receipts": receipts})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["receipts"], receipts);
    name
}

/// Reads frames until `done` says so, returning every `receipts` frame of `room` and when
/// it came.
async fn receipts_until(c: &mut Client, room: &str, mut done: impl FnMut(&[Value]) -> bool) -> Vec<(Instant, Value)> {
    let mut got = Vec::new();
    let mut frames = Vec::new();
    while !done(&frames) {
        let v = c.recv().await;
        if v["type"] == "receipts" && v["room"] == room {
            frames.push(v.clone());
            got.push((Instant::now(), v));
        }
    }
    got
}

#[tokio::test]
async fn two_hundred_readers_at_once_reach_each_member_at_most_once_a_second() {
    let s = Server::start().await;
    let (owner, mut w) = s.user("own").await;
    let room = room(&s, &owner.token, true).await;
    w.join(&room).await;

    let mut joining = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let (http, base, addr, room) = (s.http.clone(), s.url(""), s.addr, room.clone());
        joining.spawn(async move {
            let u = register_at(&http, &base, &unique("rd")).await;
            let mut c = Client::connect(addr, &u.token).await;
            c.join(&room).await;
            (u, c)
        });
    }
    let readers = joining.join_all().await;
    let ids: HashSet<String> = readers.iter().map(|(u, _)| u.id.clone()).collect();
    // A message after everyone joined (a public room's pointer starts at the end); each
    // reader reads it as soon as it arrives.
    w.say(&room, "read me").await;
    let started = Instant::now();
    let mut reading = tokio::task::JoinSet::new();
    for (_, mut c) in readers {
        let room = room.clone();
        reading.spawn(async move {
            while c.recv().await["seq"] != 1 {}
            c.send(json!({"type":"read","room":room,"seq":1})).await;
            c
        });
    }
    let seen = |frames: &[Value]| -> HashSet<String> {
        frames
            .iter()
            .flat_map(|f| f["readers"].as_array().cloned().unwrap_or_default())
            .map(|r| r["user"]["id"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let got = receipts_until(&mut w, &room, |frames| ids.is_subset(&seen(frames))).await;
    let elapsed = started.elapsed().as_secs_f64();
    assert!(got.len() as f64 <= elapsed.ceil() + 1.0, "{} receipts frames in {elapsed:.1} s", got.len());
    for pair in got.windows(2) {
        let gap = pair[1].0 - pair[0].0;
        assert!(gap > Duration::from_millis(800), "two receipts frames {gap:?} apart");
    }
    let _readers = reading.join_all().await;
    let last = &got.last().expect("a frame").1;
    assert!(last["readers"].as_array().expect("readers").iter().all(|r| r["seq"] == 1), "{last}");

    // A newcomer sees the furthest readers in `joined` (at most 100).
    let (_, mut late) = s.user("late").await;
    let joined = late.join(&room).await;
    assert_eq!(joined["receipts"].as_array().expect("receipts").len(), 100);
    s.stop().await;
}

#[tokio::test]
async fn a_room_without_receipts_sends_none() {
    let s = Server::start().await;
    let (owner, mut w) = s.user("own").await;
    let (on, off) = (room(&s, &owner.token, true).await, room(&s, &owner.token, false).await);
    let (_, mut r) = s.user("rdr").await;
    for name in [&on, &off] {
        w.join(name).await;
        let joined = r.join(name).await;
        assert_eq!(joined["receipts"].is_array(), name == &on, "{joined}");
        w.say(name, "one").await;
        while r.recv().await["seq"] != 1 {}
    }
    // The quiet room's read goes first; each flush covers every room, so once two flushes
    // of the other room's receipts came, the quiet room's would have too.
    for (name, seq) in [(&off, 1), (&on, 1)] {
        let reply = r.request(json!({"type":"read","room":name,"seq":seq})).await;
        assert_eq!(reply["seq"], seq);
    }
    let mut quiet = Vec::new();
    let mut seen_on = 0;
    while seen_on < 2 {
        let v = w.recv().await;
        if v["type"] == "receipts" && v["room"] == off.as_str() {
            quiet.push(v.clone());
        }
        if v["type"] == "receipts" && v["room"] == on.as_str() {
            seen_on += 1;
            if seen_on == 1 {
                w.send(json!({"type":"send","room":on,"body":"two"})).await;
                while r.recv().await["seq"] != 2 {}
                let reply = r.request(json!({"type":"read","room":on,"seq":2})).await;
                assert_eq!(reply["seq"], 2);
            }
        }
    }
    assert!(quiet.is_empty(), "{quiet:?}");
    s.stop().await;
}

/// The owner (or a moderator) turns receipts off and on again later; members cannot.
#[tokio::test]
async fn receipts_can_be_turned_off_later() {
    let s = Server::start().await;
    let (owner, mut w) = s.user("own").await;
    let name = room(&s, &owner.token, true).await;
    let (reader, mut r) = s.user("rdr").await;
    let settings = |token: &str, on: bool| {
        let req = reqwest::Client::new().put(s.url(&format!("/api/rooms/{name}/settings"))).bearer_auth(token);
        async move { req.json(&json!({"receipts": on})).send().await.expect("settings").status().as_u16() }
    };
    w.join(&name).await;
    assert_eq!(settings(&reader.token, false).await, 403, "a member cannot");
    assert_eq!(settings(&owner.token, false).await, 204);
    let notice = loop {
        let v = w.recv_type("event").await;
        if v["kind"] == "moderation" {
            break v;
        }
    };
    assert_eq!(notice["notice"]["action"], "receipts_off", "{notice}");
    let (_, rooms) = s.get("/api/rooms", &reader.token).await;
    let listed = rooms["rooms"].as_array().expect("rooms").iter().find(|x| x["name"] == name.as_str()).cloned();
    assert_eq!(listed.expect("listed")["receipts"], false);
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let joined = r.join(&name).await;
        if !joined["receipts"].is_array() {
            break;
        }
        assert!(Instant::now() < deadline, "receipts still on: {joined}");
        r.request(json!({"type":"leave","room":name})).await;
    }
    assert_eq!(settings(&owner.token, true).await, 204);
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        r.request(json!({"type":"leave","room":name})).await;
        let joined = r.join(&name).await;
        if joined["receipts"].is_array() {
            break;
        }
        assert!(Instant::now() < deadline, "receipts still off: {joined}");
    }
    s.stop().await;
}
