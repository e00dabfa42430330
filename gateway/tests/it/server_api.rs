//! The server API in embedded mode (docs/server-api.md): the gateway binary watching a key
//! file.

use reqwest::Method;
use serde_json::json;

use crate::harness::moderation::call;
use crate::harness::reads::Gateway;
use crate::harness::server_api::{
    a_key_is_held_to_its_rate, manage_rooms_members_and_users, new_key, publish_reaches_members_in_order,
    rotation_loses_nothing_and_revocation_stops_the_key, scopes_allow_exactly_their_calls, the_platform_moderates,
    Declared, KeyFile,
};
use crate::harness::{data_dir, Binary};

const ALL: &[&str] = &["publish", "rooms", "users", "moderate", "read"];

fn gateway(b: &Binary) -> Gateway {
    Gateway { base: b.base(), addr: b.addr }
}

#[tokio::test]
async fn keys_scopes_rates_and_rotation() {
    let scoped: Vec<(&str, String)> =
        ["publish", "rooms", "users", "read", "moderate"].iter().map(|s| (*s, new_key())).collect();
    let (slow, all) = (new_key(), new_key());
    let mut declared: Vec<Declared<'_>> =
        scoped.iter().map(|(s, k)| Declared::new(s, std::slice::from_ref(s), k)).collect();
    declared.push(Declared { rate: Some("3/1m"), ..Declared::new("slow", ALL, &slow) });
    declared.push(Declared::new("all", ALL, &all));
    let file = KeyFile::new(&declared);
    let (_keep, dir) = data_dir();
    let (k, v) = file.env();
    let gw = Binary::start(&dir, &[(k, &v), ("AURORA_RATE_LIMIT", "1000/1s")]).await;
    let g = gateway(&gw);
    scopes_allow_exactly_their_calls(&g, &scoped).await;
    // A bot connection needs read and publish: one of them, or an unknown key, is refused.
    for key in [&scoped[0].1, &scoped[3].1, &new_key()] {
        let upgrade = tokio_tungstenite::connect_async(crate::harness::ws_request(g.addr, key)).await;
        assert!(upgrade.is_err(), "a bot connection with a key lacking a scope");
    }
    let upgrade = tokio_tungstenite::connect_async(crate::harness::ws_request(g.addr, &all)).await;
    assert!(upgrade.is_ok(), "a key with read and publish connects as its bot");
    a_key_is_held_to_its_rate(&g, &slow, &all).await;
    rotation_loses_nothing_and_revocation_stops_the_key(&[&g], &file).await;
    assert!(gw.terminate().await.success());
}

#[tokio::test]
async fn publish_and_manage_and_a_nonce_survives_a_restart() {
    let key = new_key();
    let file = KeyFile::new(&[Declared { bot: Some("Deploy Bot"), ..Declared::new("deploy", ALL, &key) }]);
    let (_keep, dir) = data_dir();
    let (k, v) = file.env();
    let env = [(k, v.as_str()), ("AURORA_RATE_LIMIT", "1000/1s")];
    let gw = Binary::start(&dir, &env).await;
    let g = gateway(&gw);
    publish_reaches_members_in_order(&g, &g, &key, ("deploy", "Deploy Bot")).await;
    manage_rooms_members_and_users(&g, &g, &key).await;
    the_platform_moderates(&g, &g, &key, "bot:deploy").await;

    let post = || Some(json!({"body": "deployed v42", "nonce": "deploy-42"}));
    let (status, first) = call(&g, Method::POST, "/api/server/rooms/general/messages", &key, post()).await;
    assert_eq!(status, 201, "{first}");
    assert!(gw.terminate().await.success());
    let gw = Binary::start(&dir, &env).await;
    let g = gateway(&gw);
    let (status, again) = call(&g, Method::POST, "/api/server/rooms/general/messages", &key, post()).await;
    assert_eq!((status, &again["id"], again["duplicate"].as_bool()), (201, &first["id"], Some(true)), "{again}");
    let (_, history) = call(&g, Method::GET, "/api/server/rooms/general/messages?limit=200", &key, None).await;
    let copies =
        history["messages"].as_array().expect("messages").iter().filter(|m| m["body"] == "deployed v42").count();
    assert_eq!(copies, 1, "stored once");
    assert!(gw.terminate().await.success());
}

#[tokio::test]
async fn a_bad_key_file_stops_the_start() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("keys.yaml");
    std::fs::write(&path, "keys:\n- name: Not Valid\n  scopes: [publish]\n  hashes: [abc]\n").expect("write");
    let out = std::process::Command::new(crate::harness::sibling_binary("aurora-gateway"))
        .env("AURORA_API_KEYS_FILE", &path)
        .env("AURORA_LISTEN", "127.0.0.1:0")
        .env("AURORA_DATA_DIR", dir.path())
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Not Valid"), "{err}");
}

/// `examples/echo-bot` connects with its key and answers `!echo` within a second, as a
/// reply; taking its key out of the file closes its connection.
#[tokio::test]
async fn the_example_bot_answers_within_a_second() {
    let key = new_key();
    let file = KeyFile::new(&[Declared { bot: Some("Echo"), ..Declared::new("echo", &["read", "publish"], &key) }]);
    let (_keep, dir) = data_dir();
    let (k, v) = file.env();
    let gw = Binary::start(&dir, &[(k, &v)]).await;
    let g = gateway(&gw);
    let mut bot = tokio::process::Command::new(crate::harness::sibling_binary("aurora-echo-bot"))
        .env("AURORA_URL", format!("ws://{}/ws", gw.addr))
        .env("AURORA_API_KEY", &key)
        .env("AURORA_BOT_ROOMS", "general")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the example bot");
    let user = crate::harness::register_at(&reqwest::Client::new(), &g.base, &crate::harness::unique("ask")).await;
    let mut c = crate::harness::Client::connect(gw.addr, &user.token).await;
    c.join("general").await;
    crate::harness::eventually("the bot in general", || async {
        let (_, p) = call(&g, Method::GET, "/api/server/rooms/general/presence", &key, None).await;
        p["members"].as_array().is_some_and(|m| m.iter().any(|u| u["id"] == "bot:echo")).then_some(())
    })
    .await;
    let asked = std::time::Instant::now();
    let id = c.say("general", "!echo hello there").await["id"].as_str().expect("id").to_owned();
    let reply = loop {
        let m = c.recv_type_within("message", std::time::Duration::from_secs(1)).await;
        if m["user"]["id"] == "bot:echo" {
            break m;
        }
    };
    assert!(asked.elapsed() < std::time::Duration::from_secs(1), "answered after {:?}", asked.elapsed());
    assert_eq!((reply["body"].as_str(), reply["reply_to"]["id"].as_str()), (Some("hello there"), Some(id.as_str())));
    assert_eq!(reply["user"]["name"], "Echo");

    // Revoked: the bot's connection closes and it cannot come back.
    file.write(&[]);
    let presence = loop {
        let p = c.recv_type_within("presence", crate::harness::server_api::KEYS_APPLIED_WITHIN).await;
        if p["leaves"].as_array().is_some_and(|l| l.iter().any(|u| u["id"] == "bot:echo")) {
            break p;
        }
    };
    assert_eq!(presence["room"], "general");
    assert!(bot.try_wait().expect("bot").is_none(), "the bot keeps trying");
    drop(bot);
    assert!(gw.terminate().await.success());
}
