//! The server API, the same scenarios in both modes: keys declared in a file the gateways
//! watch, scopes, revocation and rotation, publishing as a bot, rooms, members, presence
//! and disconnecting users (docs/server-api.md).

use reqwest::Method;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aurora_core::apikeys;

use crate::moderation::call;
use crate::reads::Gateway;
use crate::{register_at, unique, Client, Ended};

/// Within this long of a change to the key file, every gateway applies it.
pub const KEYS_APPLIED_WITHIN: Duration = Duration::from_secs(5);

/// One declared key: its name, scopes, the keys (plain) whose hashes it lists, a rate.
pub struct Declared<'a> {
    pub name: &'a str,
    pub scopes: &'a [&'a str],
    pub keys: Vec<String>,
    pub rate: Option<&'a str>,
    pub bot: Option<&'a str>,
}

impl<'a> Declared<'a> {
    pub fn new(name: &'a str, scopes: &'a [&'a str], key: &str) -> Self {
        Declared { name, scopes, keys: vec![key.to_owned()], rate: None, bot: None }
    }
}

/// The key file the gateways under test watch (`AURORA_API_KEYS_FILE`).
pub struct KeyFile {
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl KeyFile {
    pub fn new(keys: &[Declared<'_>]) -> KeyFile {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = KeyFile { path: dir.path().join("keys.yaml"), _dir: dir };
        file.write(keys);
        file
    }

    /// Replaces the file at once (written aside, then renamed, as Kubernetes updates a
    /// mounted Secret).
    pub fn write(&self, keys: &[Declared<'_>]) {
        let mut text = String::from("keys:\n");
        for k in keys {
            text.push_str(&format!("- name: {}\n  scopes: [{}]\n  hashes:\n", k.name, k.scopes.join(", ")));
            for key in &k.keys {
                text.push_str(&format!("  - {}\n", apikeys::hash(key)));
            }
            if let Some(rate) = k.rate {
                text.push_str(&format!("  rate_limit: {rate}\n"));
            }
            if let Some(bot) = k.bot {
                text.push_str(&format!("  bot: {bot}\n"));
            }
        }
        let aside = self.path.with_extension("new");
        std::fs::write(&aside, text).expect("write key file");
        std::fs::rename(&aside, &self.path).expect("replace key file");
    }

    pub fn env(&self) -> (&'static str, String) {
        ("AURORA_API_KEYS_FILE", self.path.display().to_string())
    }
}

pub fn new_key() -> String {
    apikeys::generate()
}

async fn api(g: &Gateway, method: Method, path: &str, key: &str, body: Option<Value>) -> (u16, Value) {
    call(g, method, path, key, body).await
}

/// Polls `g` with `key` until the answer's status is `want`, within [`KEYS_APPLIED_WITHIN`].
pub async fn key_answers(g: &Gateway, key: &str, want: u16) {
    let start = Instant::now();
    loop {
        let (status, _) = api(g, Method::GET, "/api/server/audit?limit=1", key, None).await;
        if status == want {
            return;
        }
        assert!(
            start.elapsed() < KEYS_APPLIED_WITHIN,
            "still {status}, not {want}, {:?} after the change",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every call of the API with each single-scope key: exactly the scope's calls pass the
/// scope check (answer anything but 403), and without a key or with an unknown one, 401.
pub async fn scopes_allow_exactly_their_calls(g: &Gateway, keys: &[(&str, String)]) {
    let user = register_at(&reqwest::Client::new(), &g.base, &unique("scp")).await;
    let room = unique("srv").to_lowercase();
    let calls: Vec<(&str, Method, String, Option<Value>)> = vec![
        ("publish", Method::POST, "/api/server/rooms/general/messages".into(), Some(json!({"body": "hi"}))),
        (
            "publish",
            Method::POST,
            "/api/server/messages".into(),
            Some(json!({"messages": [{"room": "general", "body": "x"}]})),
        ),
        ("rooms", Method::POST, "/api/server/rooms".into(), Some(json!({"name": room, "visibility": "private"}))),
        ("rooms", Method::PUT, format!("/api/server/rooms/{room}/members/{}", user.name), None),
        ("rooms", Method::DELETE, format!("/api/server/rooms/{room}/members/{}", user.name), None),
        ("read", Method::GET, "/api/server/rooms/general".into(), None),
        ("read", Method::GET, "/api/server/rooms/general/messages".into(), None),
        ("read", Method::GET, "/api/server/rooms/general/presence".into(), None),
        ("read", Method::GET, "/api/server/audit".into(), None),
        ("users", Method::POST, format!("/api/server/users/{}/disconnect", user.name), None),
        ("moderate", Method::POST, format!("/api/server/rooms/{room}/kick"), Some(json!({"username": user.name}))),
        ("moderate", Method::PUT, format!("/api/server/rooms/{room}/settings"), Some(json!({"slow_mode_ms": 0}))),
        ("moderate", Method::POST, format!("/api/server/rooms/{room}/mutes"), Some(json!({"username": user.name}))),
        ("moderate", Method::DELETE, format!("/api/server/rooms/{room}/mutes/{}", user.name), None),
    ];
    for (scope, key) in keys {
        for (needed, method, path, body) in &calls {
            let (status, answer) = api(g, method.clone(), path, key, body.clone()).await;
            if scope == needed {
                assert!(matches!(status, 200..=299), "{scope} key, {method} {path}: {status} {answer}");
            } else {
                assert_eq!(status, 403, "{scope} key, {method} {path}: {answer}");
                assert_eq!(answer["error"]["code"], "forbidden", "{answer}");
            }
        }
    }
    let (status, answer) = api(g, Method::GET, "/api/server/audit", &new_key(), None).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (401, Some("unauthorized")), "{answer}");
    let r = reqwest::Client::new().get(format!("{}/api/server/audit", g.base)).send().await.expect("GET");
    assert_eq!(r.status().as_u16(), 401);
    let (status, _) = api(g, Method::GET, "/api/server/audit", &user.token, None).await;
    assert_eq!(status, 401, "a user's token is no API key");
}

/// A key with all scopes (`key`) publishes into a room where a member on `g2` listens and
/// another member on `g1` sends: the member gets every record in one order, the bot's
/// marked as a bot; a retried publish with its nonce is stored once; a batch goes out in
/// order; bad input answers the error shape and stores nothing.
pub async fn publish_reaches_members_in_order(g1: &Gateway, g2: &Gateway, key: &str, (name, bot): (&str, &str)) {
    let http = reqwest::Client::new();
    let ann = register_at(&http, &g1.base, &unique("ann")).await;
    let bob = register_at(&http, &g2.base, &unique("bob")).await;
    let room = crate::cluster::room(&g1.base, &ann.token).await;
    let mut listener = Client::connect(g2.addr, &bob.token).await;
    let start = listener.join(&room).await["last_seq"].as_u64().unwrap_or(0);
    let mut writer = Client::connect(g1.addr, &ann.token).await;
    writer.join(&room).await;
    let path = format!("/api/server/rooms/{room}/messages");
    let mut expected = Vec::new();
    let mut bot_ids = Vec::new();
    for i in 0..10 {
        writer.say(&room, &format!("user {i}")).await;
        expected.push(format!("user {i}"));
        let (status, answer) =
            api(g1, Method::POST, &path, key, Some(json!({"body": format!("bot {i}"), "nonce": format!("n{i}")})))
                .await;
        assert_eq!(status, 201, "{answer}");
        assert_eq!(answer["duplicate"], false);
        bot_ids.push(answer["id"].as_str().expect("id").to_owned());
        expected.push(format!("bot {i}"));
    }
    // The same nonce again, through the other gateway: the first id, nothing stored.
    let (status, again) = api(g2, Method::POST, &path, key, Some(json!({"body": "bot 3", "nonce": "n3"}))).await;
    assert_eq!(
        (status, again["id"].as_str(), again["duplicate"].as_bool()),
        (201, Some(bot_ids[3].as_str()), Some(true))
    );
    // A reply names a stored message: the first bot message is, once the fan-out tier has it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !crate::history::stored(&g1.base, &ann.token, &room).await.iter().any(|m| m["id"] == bot_ids[0].as_str()) {
        assert!(Instant::now() < deadline, "the first bot message is stored within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let batch = json!({"messages": [
        {"room": room, "body": "batch 1"},
        {"room": "no-such-room-here", "body": "lost"},
        {"room": room, "body": "batch 2", "reply_to": bot_ids[0]},
    ]});
    let (status, answer) = api(g1, Method::POST, "/api/server/messages", key, Some(batch)).await;
    assert_eq!(status, 200, "{answer}");
    let results = answer["results"].as_array().expect("results");
    assert!(results[0]["id"].is_string() && results[2]["id"].is_string(), "{answer}");
    assert_eq!(results[1]["error"]["code"], "not_found", "{answer}");
    expected.extend(["batch 1".to_owned(), "batch 2".to_owned()]);

    let mut got = Vec::new();
    let mut seq = start;
    while got.len() < expected.len() {
        let m = listener.recv_type("message").await;
        assert_eq!(m["seq"].as_u64(), Some(seq + 1), "one gap-free order: {m}");
        seq += 1;
        if m["body"].as_str().is_some_and(|b| b.starts_with("bot") || b.starts_with("batch")) {
            assert_eq!(
                (m["user"]["id"].as_str(), m["user"]["name"].as_str()),
                (Some(&*format!("bot:{name}")), Some(bot))
            );
        }
        got.push(m["body"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(got, expected, "user and bot messages in the order they were acked");

    for (body, code, status) in [
        (json!({"body": "  "}), "bad_request", 400),
        (json!({"body": "x", "colour": "red"}), "bad_request", 400),
        (json!({"body": "x".repeat(5000)}), "too_large", 413),
        (json!({"body": "x", "reply_to": "nope"}), "not_found", 404),
    ] {
        let (s, answer) = api(g1, Method::POST, &path, key, Some(body)).await;
        assert_eq!((s, answer["error"]["code"].as_str()), (status, Some(code)), "{answer}");
    }
    let (s, _) =
        api(g1, Method::POST, "/api/server/rooms/no-such-room-here/messages", key, Some(json!({"body": "x"}))).await;
    assert_eq!(s, 404);
    let (_, history) = api(g2, Method::GET, &format!("{path}?limit=100"), key, None).await;
    let bodies: Vec<&str> =
        history["messages"].as_array().expect("messages").iter().filter_map(|m| m["body"].as_str()).collect();
    assert_eq!(bodies, expected, "stored once each, nothing from refused calls");
}

/// Rooms, members, presence and disconnecting through the API, from `g1`, felt by users on
/// `g2` within a second.
pub async fn manage_rooms_members_and_users(g1: &Gateway, g2: &Gateway, key: &str) {
    let http = reqwest::Client::new();
    let (amy, ben) =
        (register_at(&http, &g2.base, &unique("amy")).await, register_at(&http, &g2.base, &unique("ben")).await);
    let room = unique("team").to_lowercase();
    let body = json!({"name": room, "title": "Team", "visibility": "private", "members": [amy.name.to_uppercase()]});
    let (status, made) = api(g1, Method::POST, "/api/server/rooms", key, Some(body.clone())).await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["members"], json!([amy.name.to_lowercase()]));
    let (status, again) = api(g1, Method::POST, "/api/server/rooms", key, Some(body)).await;
    assert_eq!((status, again["error"]["code"].as_str()), (409, Some("conflict")));
    for (bad, why) in [
        (json!({"name": "Bad Name!"}), "bad name"),
        (json!({"name": "dm-abc"}), "conversation prefix"),
        (json!({"name": unique("x"), "members": ["amy"]}), "members of a public room"),
        (json!({"name": unique("x"), "visibility": "secret"}), "unknown visibility"),
        (json!({"title": "no name"}), "no name"),
    ] {
        let (status, answer) = api(g1, Method::POST, "/api/server/rooms", key, Some(bad)).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (400, Some("bad_request")), "{why}: {answer}");
    }

    let mut a = Client::connect(g2.addr, &amy.token).await;
    a.join(&room).await;
    let mut b = Client::connect(g2.addr, &ben.token).await;
    assert_eq!(b.request(json!({"type":"join","room":room})).await["code"], "forbidden");
    let member = |who: &str| format!("/api/server/rooms/{room}/members/{who}");
    let (status, _) = api(g1, Method::PUT, &member(&ben.name), key, None).await;
    assert_eq!(status, 201);
    let (status, _) = api(g1, Method::PUT, &member(&ben.name), key, None).await;
    assert_eq!(status, 200, "a member already");
    let start = Instant::now();
    loop {
        if b.request(json!({"type":"join","room":room})).await["type"] == "joined" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(1), "not admitted {:?} after being added", start.elapsed());
    }
    let (status, _) = api(g1, Method::DELETE, &member(&amy.name), key, None).await;
    let removed = Instant::now();
    assert_eq!(status, 204);
    let left = a.recv_type_within("left", Duration::from_secs(1)).await;
    assert_eq!((left["room"].as_str(), left["reason"].as_str()), (Some(room.as_str()), Some("removed")), "{left}");
    assert!(removed.elapsed() < Duration::from_secs(1));
    let (status, _) = api(g1, Method::DELETE, &member(&amy.name), key, None).await;
    assert_eq!(status, 404, "not a member any more");
    let (status, _) = api(g1, Method::PUT, &member(&unique("ghost")), key, None).await;
    assert_eq!(status, 404);
    let (status, _) = api(g1, Method::PUT, "/api/server/rooms/general/members/x", key, None).await;
    assert_eq!(status, 409, "a public room has no member list");

    let (status, presence) = api(g1, Method::GET, &format!("/api/server/rooms/{room}/presence"), key, None).await;
    assert_eq!(status, 200, "{presence}");
    let names: Vec<&str> =
        presence["members"].as_array().expect("members").iter().filter_map(|m| m["name"].as_str()).collect();
    assert_eq!(names, [ben.name.as_str()], "{presence}");
    let (status, info) = api(g1, Method::GET, &format!("/api/server/rooms/{room}"), key, None).await;
    assert_eq!((status, info["online"].as_u64(), info["title"].as_str()), (200, Some(1), Some("Team")), "{info}");

    // Disconnect: every connection of Ben closes with 4003; Amy's stays.
    let mut b2 = Client::connect(g1.addr, &ben.token).await;
    b2.join("general").await;
    let (status, _) = api(g1, Method::POST, &format!("/api/server/users/{}/disconnect", ben.name), key, None).await;
    assert_eq!(status, 204);
    for c in [&mut b, &mut b2] {
        assert!(matches!(c.ended().await, Ended::Close(Some(4003))), "closed with 4003");
    }
    a.join("general").await;
    a.say("general", "still here").await;
    let (status, _) = api(g1, Method::POST, "/api/server/users/nobody-at-all/disconnect", key, None).await;
    assert_eq!(status, 404);

    // Deactivate: out now, and no way back in (login, refresh, REST, WebSocket) until reactivated.
    let mut a2 = Client::connect(g1.addr, &amy.token).await;
    a2.join("general").await;
    let (status, _) = api(g1, Method::POST, &format!("/api/server/users/{}/deactivate", amy.name), key, None).await;
    assert_eq!(status, 204);
    for c in [&mut a, &mut a2] {
        assert!(matches!(c.ended().await, Ended::Close(Some(4003))), "closed with 4003");
    }
    let login = |g: &Gateway| {
        let req = http.post(format!("{}/api/auth/login", g.base));
        req.json(&json!({"username": amy.name, "password": "correct horse battery"})).send()
    };
    let refused = login(g2).await.expect("login");
    assert_eq!(refused.status().as_u16(), 403);
    let body: Value = refused.json().await.expect("JSON");
    assert_eq!(body["error"]["message"], "this account is deactivated");
    let (status, _) = call(g2, Method::GET, "/api/me", &amy.token, None).await;
    assert_eq!(status, 403, "a token issued before is refused too");
    let upgrade = tokio_tungstenite::connect_async(crate::ws_request(g2.addr, &amy.token)).await;
    assert!(upgrade.is_err(), "no WebSocket for a deactivated account");
    let (status, _) = api(g1, Method::POST, &format!("/api/server/users/{}/reactivate", amy.name), key, None).await;
    assert_eq!(status, 204);
    assert_eq!(login(g1).await.expect("login").status().as_u16(), 200);

    // Update and delete: a public room made private keeps only its members; deleted, its
    // members leave it on every gateway.
    let open = unique("open").to_lowercase();
    let (status, _) = api(g1, Method::POST, "/api/server/rooms", key, Some(json!({"name": open}))).await;
    assert_eq!(status, 201);
    let mut c = Client::connect(g2.addr, &ben.token).await;
    c.join(&open).await;
    let at = format!("/api/server/rooms/{open}");
    let (status, changed) = api(g1, Method::PATCH, &at, key, Some(json!({"title": "Open plan"}))).await;
    assert_eq!((status, changed["title"].as_str()), (200, Some("Open plan")), "{changed}");
    let (status, _) = api(g1, Method::PATCH, &at, key, Some(json!({"visibility": "private"}))).await;
    assert_eq!(status, 200);
    let left = c.recv_type_within("left", Duration::from_secs(1)).await;
    assert_eq!((left["room"].as_str(), left["reason"].as_str()), (Some(open.as_str()), Some("removed")), "{left}");
    let (status, _) = api(g1, Method::PATCH, &at, key, Some(json!({"visibility": "public"}))).await;
    assert_eq!(status, 200);
    c.join(&open).await;
    for (bad, status) in [(json!({}), 400), (json!({"title": ""}), 400), (json!({"colour": "red"}), 400)] {
        assert_eq!(api(g1, Method::PATCH, &at, key, Some(bad)).await.0, status);
    }
    assert_eq!(api(g1, Method::PATCH, "/api/server/rooms/general", key, Some(json!({"title": "x"}))).await.0, 409);
    assert_eq!(api(g1, Method::DELETE, "/api/server/rooms/general", key, None).await.0, 409);
    let (status, _) = api(g1, Method::DELETE, &at, key, None).await;
    assert_eq!(status, 204);
    let left = c.recv_type_within("left", Duration::from_secs(1)).await;
    assert_eq!((left["room"].as_str(), left["reason"].as_str()), (Some(open.as_str()), Some("deleted")), "{left}");
    assert_eq!(api(g1, Method::GET, &at, key, None).await.0, 404);
    assert_eq!(api(g1, Method::DELETE, &at, key, None).await.0, 404);

    let (status, log) = api(g2, Method::GET, "/api/server/audit?limit=20", key, None).await;
    assert_eq!(status, 200, "{log}");
    let entries = log["entries"].as_array().expect("entries");
    let newest = &entries[0];
    assert_eq!(
        (newest["action"].as_str(), newest["target"].as_str()),
        (Some("server_call"), Some(&*format!("delete room {open}")))
    );
    assert!(newest["actor"].as_str().is_some_and(|a| a.starts_with("key:")), "{newest}");
    for what in [format!("create room {room}"), format!("disconnect {}", ben.name), format!("deactivate {}", amy.name)]
    {
        assert!(entries.iter().any(|e| e["target"] == what.as_str()), "{what} not in {log}");
    }
}

/// Revoking a key (taking it out of the file) stops it on every gateway within
/// [`KEYS_APPLIED_WITHIN`]; rotating (old and new both listed, then the old one taken
/// out) loses no request of a backend that publishes all the while.
pub async fn rotation_loses_nothing_and_revocation_stops_the_key(gateways: &[&Gateway], file: &KeyFile) {
    let (old, new) = (new_key(), new_key());
    let scopes = &["publish", "read"];
    file.write(&[Declared::new("rotating", scopes, &old)]);
    for g in gateways {
        key_answers(g, &old, 200).await;
    }
    let current = std::sync::Arc::new(std::sync::Mutex::new(old.clone()));
    let stop = tokio_util::sync::CancellationToken::new();
    let base = gateways[0].base.clone();
    let publisher = {
        let (current, stop) = (current.clone(), stop.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut answers = Vec::new();
            while !stop.is_cancelled() {
                let key = current.lock().expect("key").clone();
                let r = http
                    .post(format!("{base}/api/server/rooms/general/messages"))
                    .bearer_auth(&key)
                    .json(&json!({"body": "tick"}))
                    .send()
                    .await
                    .expect("publish");
                answers.push(r.status().as_u16());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            answers
        })
    };
    let both = Declared { keys: vec![old.clone(), new.clone()], ..Declared::new("rotating", scopes, &old) };
    file.write(&[both]);
    for g in gateways {
        key_answers(g, &new, 200).await;
    }
    *current.lock().expect("key") = new.clone();
    file.write(&[Declared::new("rotating", scopes, &new)]);
    for g in gateways {
        key_answers(g, &old, 401).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.cancel();
    let answers = publisher.await.expect("publisher");
    assert!(answers.len() > 20, "{} requests", answers.len());
    assert!(answers.iter().all(|s| *s == 201), "a request was lost in the rotation: {answers:?}");

    // Revoked: the file no longer lists it.
    file.write(&[]);
    for g in gateways {
        key_answers(g, &new, 401).await;
    }
}

/// A key over its rate gets 429 with `Retry-After`, and others are not affected.
pub async fn a_key_is_held_to_its_rate(g: &Gateway, slow: &str, other: &str) {
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(api(g, Method::GET, "/api/server/audit?limit=1", slow, None).await.0);
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
    let r = reqwest::Client::new()
        .get(format!("{}/api/server/audit?limit=1", g.base))
        .bearer_auth(slow)
        .send()
        .await
        .expect("GET");
    assert!(r.headers().get("retry-after").is_some(), "Retry-After");
    assert_eq!(api(g, Method::GET, "/api/server/audit?limit=1", other, None).await.0, 200);
}

/// The platform moderates through the API (`moderate` scope), as an owner would and on
/// anyone, under its bot's name: a message removed, a member muted and unmuted, the room's
/// owner banned; members on `g2` see each within a second.
pub async fn the_platform_moderates(g1: &Gateway, g2: &Gateway, key: &str, bot_id: &str) {
    let http = reqwest::Client::new();
    let (own, eve) =
        (register_at(&http, &g1.base, &unique("own")).await, register_at(&http, &g2.base, &unique("eve")).await);
    let room = crate::cluster::room(&g1.base, &own.token).await;
    let mut o = Client::connect(g1.addr, &own.token).await;
    o.join(&room).await;
    let mut e = Client::connect(g2.addr, &eve.token).await;
    e.join(&room).await;
    let id = e.say(&room, "buy cheap watches").await["id"].as_str().expect("id").to_owned();
    let at = |what: &str| format!("/api/server/rooms/{room}/{what}");
    let (status, _) = api(g1, Method::DELETE, &at(&format!("messages/{id}")), key, None).await;
    assert_eq!(status, 204);
    let deleted = loop {
        let v = e.recv_type_within("event", Duration::from_secs(1)).await;
        if v["kind"] == "delete" {
            break v;
        }
    };
    assert_eq!((deleted["target"].as_str(), deleted["moderator"].as_bool()), (Some(id.as_str()), Some(true)));
    assert_eq!(deleted["user"]["id"], bot_id);
    assert_eq!(api(g1, Method::DELETE, &at(&format!("messages/{id}")), key, None).await.0, 404, "deleted already");
    assert_eq!(api(g1, Method::DELETE, &at("messages/nope"), key, None).await.0, 404);

    let (status, _) =
        api(g1, Method::POST, &at("mutes"), key, Some(json!({"username": eve.name, "duration_s": 600}))).await;
    assert_eq!(status, 204);
    let notice = loop {
        let v = e.recv_type_within("event", Duration::from_secs(1)).await;
        if v["kind"] == "moderation" {
            break v;
        }
    };
    assert_eq!((notice["notice"]["action"].as_str(), notice["user"]["id"].as_str()), (Some("mute"), Some(bot_id)));
    let start = Instant::now();
    loop {
        let reply = e.request(json!({"type":"send","room":room,"body":"let me"})).await;
        if reply["code"] == "forbidden" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(1), "not muted: {reply}");
    }
    let (status, _) = api(g1, Method::DELETE, &at(&format!("mutes/{}", eve.name)), key, None).await;
    assert_eq!(status, 204);
    let start = Instant::now();
    while e.request(json!({"type":"send","room":room,"body":"thanks"})).await["type"] != "ack" {
        assert!(start.elapsed() < Duration::from_secs(1), "still muted");
    }

    // The owner is no shield from the platform.
    let (status, _) =
        api(g1, Method::POST, &at("bans"), key, Some(json!({"username": own.name, "reason": "abuse"}))).await;
    assert_eq!(status, 204);
    let left = o.recv_type_within("left", Duration::from_secs(1)).await;
    assert_eq!(left["reason"], "banned", "{left}");
    let (status, answer) = api(g1, Method::POST, &at("bans"), key, Some(json!({"username": unique("ghost")}))).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (404, Some("not_found")));
}
