//! Moderation, the same scenario in both modes: a moderator on gateway 1 acts on a member
//! connected to gateway 2 (in embedded mode both are the one gateway).

use reqwest::{Client as Http, Method};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

use crate::reads::Gateway;
use crate::{register_at, unique, Client, Session};

/// Within this long of the moderator's call, every gateway applies an action.
pub const APPLIED_WITHIN: Duration = Duration::from_secs(1);

pub async fn call(g: &Gateway, method: Method, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = Http::new().request(method, format!("{}{path}", g.base)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn post(g: &Gateway, path: &str, token: &str, body: Value) -> (u16, Value) {
    call(g, Method::POST, path, token, Some(body)).await
}

/// Sends until the reply is not an `ack` (the action reached this gateway), within
/// [`APPLIED_WITHIN`] of `since`; returns that reply.
async fn refused_within(c: &mut Client, room: &str, since: Instant) -> Value {
    loop {
        let reply = c.request(json!({"type":"send","room":room,"body":"still here?"})).await;
        if reply["type"] != "ack" {
            return reply;
        }
        assert!(since.elapsed() < APPLIED_WITHIN, "still admitted {:?} after the action", since.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends until acked again (a ban or mute ended), up to `limit`.
async fn admitted_again(c: &mut Client, room: &str, limit: Duration) {
    let start = Instant::now();
    loop {
        let reply = c.request(json!({"type":"send","room":room,"body":"back"})).await;
        if reply["type"] == "ack" {
            return;
        }
        assert!(start.elapsed() < limit, "not admitted again after {limit:?}: {reply}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub struct Cast {
    pub owner: Session,
    pub moderator: Session,
    pub member: Session,
    pub bystander: Session,
    pub room: String,
}

/// The owner makes a room on gateway 1 and a moderator of `moderator`.
pub async fn cast(g1: &Gateway) -> Cast {
    let http = Http::new();
    let owner = register_at(&http, &g1.base, &unique("own")).await;
    let moderator = register_at(&http, &g1.base, &unique("mod")).await;
    let member = register_at(&http, &g1.base, &unique("eve")).await;
    let bystander = register_at(&http, &g1.base, &unique("pat")).await;
    let room = crate::cluster::room(&g1.base, &owner.token).await;
    let (status, body) =
        post(g1, &format!("/api/rooms/{room}/moderators"), &owner.token, json!({"username": moderator.name})).await;
    assert_eq!(status, 204, "{body}");
    Cast { owner, moderator, member, bystander, room }
}

/// Every action of a plain member answers 403 and changes nothing.
pub async fn a_member_can_do_none_of_it(g: &Gateway, c: &Cast) {
    let (room, pat, eve) = (&c.room, &c.bystander.token, &c.member.name);
    for (path, body) in [
        ("bans", json!({"username": eve})),
        ("mutes", json!({"username": eve})),
        ("kick", json!({"username": eve})),
        ("moderators", json!({"username": eve})),
    ] {
        let (status, err) = post(g, &format!("/api/rooms/{room}/{path}"), pat, body).await;
        assert_eq!((status, err["error"]["code"].as_str()), (403, Some("forbidden")), "{path}: {err}");
    }
    let (status, _) =
        call(g, Method::PUT, &format!("/api/rooms/{room}/settings"), pat, Some(json!({"frozen": true}))).await;
    assert_eq!(status, 403);
    let (status, _) = call(g, Method::GET, &format!("/api/rooms/{room}/audit"), pat, None).await;
    assert_eq!(status, 403);
    // The moderator may not grant (the owner's), nor act on the owner or on themselves.
    let (status, _) =
        post(g, &format!("/api/rooms/{room}/moderators"), &c.moderator.token, json!({"username": eve})).await;
    assert_eq!(status, 403);
    let (status, _) =
        post(g, &format!("/api/rooms/{room}/bans"), &c.moderator.token, json!({"username": c.owner.name})).await;
    assert_eq!(status, 403, "nobody acts on the owner");
    let (status, _) =
        post(g, &format!("/api/rooms/{room}/mutes"), &c.moderator.token, json!({"username": c.moderator.name})).await;
    assert_eq!(status, 400, "nobody acts on themselves");
    let (status, _) =
        post(g, &format!("/api/rooms/{room}/bans"), &c.moderator.token, json!({"username": unique("ghost")})).await;
    assert_eq!(status, 404);
    let (status, _) = post(g, "/api/rooms/no-such-room-here/bans", &c.moderator.token, json!({"username": eve})).await;
    assert_eq!(status, 404);
}

/// The moderator (on `g1`) deletes, kicks, mutes, bans, slows and freezes; the member (on
/// `g2`) sees each within [`APPLIED_WITHIN`]; bans and mutes end on time; every member sees
/// each action on the room's stream.
pub async fn every_action_reaches_the_other_gateway(g1: &Gateway, g2: &Gateway, c: &Cast) {
    let (room, md) = (&c.room, &c.moderator.token);
    let at = |what: &str| format!("/api/rooms/{room}/{what}");
    let mut eve = Client::connect(g2.addr, &c.member.token).await;
    eve.join(room).await;
    let mut m = Client::connect(g1.addr, md).await;
    m.join(room).await;
    let mut pat = Client::connect(g2.addr, &c.bystander.token).await;
    pat.join(room).await;

    // Delete anyone's message: the same tombstone event, marked as a moderator's.
    let id = eve.say(room, "something rude").await["id"].as_str().expect("id").to_owned();
    let refused = pat.request(json!({"type":"delete","room":room,"id":id})).await;
    assert_eq!(refused["code"], "forbidden", "a member deletes only their own: {refused}");
    let acked = m.request(json!({"type":"delete","room":room,"id":id})).await;
    assert_eq!(acked["type"], "ack", "{acked}");
    // (The grant of `cast` may still be on its way: a notice, skipped here.)
    let event = loop {
        let e = eve.recv_type("event").await;
        if e["kind"] != "moderation" {
            break e;
        }
    };
    assert_eq!(
        (event["kind"].as_str(), event["target"].as_str(), event["moderator"].as_bool()),
        (Some("delete"), Some(id.as_str()), Some(true))
    );
    let mut owner = Client::connect(g1.addr, &c.owner.token).await;
    owner.join(room).await;
    let owners = owner.say(room, "house rules").await["id"].as_str().expect("id").to_owned();
    let shielded = m.request(json!({"type":"delete","room":room,"id":owners})).await;
    assert_eq!(shielded["code"], "forbidden", "the owner's messages are not the moderators': {shielded}");

    // Kick: out now, may come back.
    let (status, _) = post(g1, &at("kick"), md, json!({"username": c.member.name, "reason": "cool off"})).await;
    let kicked = Instant::now();
    assert_eq!(status, 204);
    let left = eve.recv_type_within("left", APPLIED_WITHIN).await;
    assert_eq!((left["room"].as_str(), left["reason"].as_str()), (Some(room.as_str()), Some("kicked")), "{left}");
    assert!(kicked.elapsed() < APPLIED_WITHIN);
    eve.join(room).await;

    // Mute for 2 s: reads, cannot send, told until when; then sends again.
    let (status, _) = post(g1, &at("mutes"), md, json!({"username": c.member.name, "duration_s": 2})).await;
    assert_eq!(status, 204);
    let muted = refused_within(&mut eve, room, Instant::now()).await;
    assert_eq!(muted["code"], "forbidden", "{muted}");
    assert!(muted["retry_after_ms"].as_u64().is_some_and(|ms| ms <= 2000), "{muted}");
    m.say(room, "you can still read this").await;
    assert_eq!(eve.recv_type("message").await["body"], "you can still read this");
    admitted_again(&mut eve, room, Duration::from_secs(4)).await;

    // Ban for 2 s: out now, cannot join, read history or send, also on the other gateway.
    let (status, _) =
        post(g1, &at("bans"), md, json!({"username": c.member.name, "duration_s": 2, "reason": "spam"})).await;
    assert_eq!(status, 204);
    let left = eve.recv_type_within("left", APPLIED_WITHIN).await;
    assert_eq!(left["reason"], "banned", "{left}");
    let refused = eve.request(json!({"type":"join","room":room})).await;
    assert_eq!(refused["code"], "forbidden", "{refused}");
    let (status, _) = call(g2, Method::GET, &format!("/api/rooms/{room}/messages"), &c.member.token, None).await;
    assert_eq!(status, 403, "a banned user reads no history");
    let mut elsewhere = Client::connect(g1.addr, &c.member.token).await;
    assert_eq!(elsewhere.request(json!({"type":"join","room":room})).await["code"], "forbidden");
    let start = Instant::now();
    loop {
        let reply = eve.request(json!({"type":"join","room":room})).await;
        if reply["type"] == "joined" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(4), "the ban did not end: {reply}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Slow mode: one message a minute for members, moderators exempt.
    let (status, _) = call(g1, Method::PUT, &at("settings"), md, Some(json!({"slow_mode_ms": 60000}))).await;
    assert_eq!(status, 204);
    let slowed = Instant::now();
    let first = loop {
        let reply = eve.request(json!({"type":"send","room":room,"body":"one"})).await;
        let second = eve.request(json!({"type":"send","room":room,"body":"two"})).await;
        if second["code"] == "rate_limited" {
            break (reply, second);
        }
        assert!(slowed.elapsed() < APPLIED_WITHIN, "slow mode not applied: {second}");
    };
    assert!(first.1["retry_after_ms"].as_u64().is_some_and(|ms| ms > 50_000), "{}", first.1);
    m.say(room, "mods are not slowed").await;
    m.say(room, "at all").await;
    let (status, _) = call(g1, Method::PUT, &at("settings"), md, Some(json!({"slow_mode_ms": 0}))).await;
    assert_eq!(status, 204);

    // Freeze: read-only for all but moderators.
    let (status, _) = call(g1, Method::PUT, &at("settings"), md, Some(json!({"frozen": true}))).await;
    assert_eq!(status, 204);
    let frozen = refused_within(&mut eve, room, Instant::now()).await;
    assert_eq!(frozen["code"], "forbidden", "{frozen}");
    m.say(room, "announcement while frozen").await;
    let (status, _) = call(g1, Method::PUT, &at("settings"), md, Some(json!({"frozen": false}))).await;
    assert_eq!(status, 204);
    admitted_again(&mut eve, room, Duration::from_secs(2)).await;

    // The audit log, newest first, for the owner and moderators.
    let (status, log) = call(g2, Method::GET, &at("audit"), &c.owner.token, None).await;
    assert_eq!(status, 200, "{log}");
    let actions: Vec<&str> =
        log["entries"].as_array().expect("entries").iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(
        actions,
        ["unfreeze", "freeze", "slow_mode", "slow_mode", "ban", "mute", "kick", "delete_message", "grant"]
    );
    let ban = &log["entries"][4];
    assert_eq!(
        (ban["actor"].as_str(), ban["target"].as_str(), ban["reason"].as_str()),
        (Some(c.moderator.name.as_str()), Some(c.member.name.as_str()), Some("spam"))
    );
    assert!(ban["until"].as_i64().is_some());

    notices_on_the_stream(g1, c, &mut pat, &id).await;
}

/// Every action but the delete (its own event) is a `moderation` record on the room's
/// stream: pushed live to a member who watched it all (on `g2`), kept in history.
async fn notices_on_the_stream(g1: &Gateway, c: &Cast, pat: &mut Client, deleted: &str) {
    let eve = Some(c.member.name.as_str());
    let expected = [
        ("kick", eve),
        ("mute", eve),
        ("ban", eve),
        ("slow_mode", None),
        ("slow_mode", None),
        ("freeze", None),
        ("unfreeze", None),
    ];
    let mut live = Vec::new();
    while live.len() < expected.len() {
        let e = pat.recv_type("event").await;
        if e["kind"] == "moderation" && e["notice"]["action"] != "grant" {
            live.push(e);
        }
    }
    let seen: Vec<(&str, Option<&str>)> =
        live.iter().map(|e| (e["notice"]["action"].as_str().unwrap_or("?"), e["notice"]["user"].as_str())).collect();
    assert_eq!(seen, expected);
    for e in &live {
        assert_eq!(e["user"]["name"], c.moderator.name.as_str(), "the actor: {e}");
        assert_eq!(e["room"], c.room.as_str());
    }
    assert!(live.windows(2).all(|w| w[0]["seq"].as_u64() < w[1]["seq"].as_u64()), "in room order");
    assert_eq!(live[0]["notice"]["reason"], "cool off");
    assert_eq!((live[2]["notice"]["reason"].as_str(), live[2]["notice"]["until"].is_i64()), (Some("spam"), true));
    assert_eq!(
        (live[3]["notice"]["interval_ms"].as_u64(), live[4]["notice"]["interval_ms"].as_u64()),
        (Some(60000), Some(0))
    );

    let path = format!("/api/rooms/{}/messages?limit=200", c.room);
    let (status, history) = call(g1, Method::GET, &path, &c.bystander.token, None).await;
    assert_eq!(status, 200, "{history}");
    let records = history["messages"].as_array().expect("messages");
    let kept: Vec<&str> = records
        .iter()
        .filter(|m| m["kind"] == "moderation")
        .map(|m| m["notice"]["action"].as_str().unwrap_or("?"))
        .collect();
    let mut all = vec!["grant"];
    all.extend(expected.iter().map(|(a, _)| *a));
    assert_eq!(kept, all, "history keeps the notices");
    assert!(records.iter().all(|m| m["kind"].is_null() || m["kind"] == "moderation"), "no other events in history");
    let tombstone = records.iter().find(|m| m["id"] == deleted).expect("the removed message");
    assert_eq!((tombstone["deleted"].as_bool(), tombstone["moderator"].as_bool()), (Some(true), Some(true)));
}
