use serde_json::json;

use crate::harness::{close_code, data_dir, register_at, unique, Binary, Client};

#[tokio::test]
async fn restart_keeps_users_rooms_history_and_the_jwt_key() {
    let (_keep, dir) = data_dir();
    let gw = Binary::start(&dir, &[]).await;
    let http = reqwest::Client::new();
    let name = unique("rita");
    let u = register_at(&http, &gw.base(), &name).await;
    let r = http
        .post(format!("{}/api/rooms", gw.base()))
        .bearer_auth(&u.token)
        .json(&json!({"name":"kept","title":"Kept room"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let mut c = Client::connect(gw.addr, &u.token).await;
    c.join("kept").await;
    c.say("kept", "remember me").await;
    drop(c);
    assert!(gw.terminate().await.success());

    let gw = Binary::start(&dir, &[]).await;
    // The old token still verifies: the generated key was kept.
    let me = http.get(format!("{}/api/me", gw.base())).bearer_auth(&u.token).send().await.unwrap();
    assert_eq!(me.status(), 200);
    let login = http
        .post(format!("{}/api/auth/login", gw.base()))
        .json(&json!({"username": name, "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let rooms: serde_json::Value =
        http.get(format!("{}/api/rooms", gw.base())).bearer_auth(&u.token).send().await.unwrap().json().await.unwrap();
    assert!(rooms["rooms"].as_array().unwrap().iter().any(|r| r["name"] == "kept" && r["title"] == "Kept room"));
    let mut c = Client::connect(gw.addr, &u.token).await;
    let j = c.join("kept").await;
    assert_eq!(j["history"][0]["body"], "remember me");
    assert_eq!(j["last_seq"], 1);
    // Sequence numbers continue after the restart.
    c.say("kept", "again").await;
    assert_eq!(c.recv_type("message").await["seq"], 2);
    drop(c);
    assert!(gw.terminate().await.success());
}

#[tokio::test]
async fn sigterm_closes_clients_with_1001_and_exits_cleanly() {
    let (_keep, dir) = data_dir();
    let gw = Binary::start(&dir, &[]).await;
    let http = reqwest::Client::new();
    let u = register_at(&http, &gw.base(), &unique("sig")).await;
    let mut a = Client::connect(gw.addr, &u.token).await;
    let mut b = Client::connect(gw.addr, &u.token).await;
    a.join("general").await;
    b.join("general").await;
    let pid = gw.child.id().unwrap().to_string();
    let waiter = tokio::spawn(gw.terminate_later());
    assert_eq!(a.ended().await, close_code(1001));
    assert_eq!(b.ended().await, close_code(1001));
    let status = waiter.await.unwrap();
    assert!(status.success(), "pid {pid} exited with {status}");
}

#[tokio::test]
async fn bad_config_stops_start_up_naming_the_variable() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_aurora-gateway"))
        .env("AURORA_HEARTBEAT_INTERVAL", "often")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("AURORA_HEARTBEAT_INTERVAL"));
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_aurora-gateway"))
        .env("AURORA_JWT_SECRET", "too-short")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("AURORA_JWT_SECRET"));
}
