use serde_json::json;

use crate::harness::{unique, Server};

#[tokio::test]
async fn register_login_and_me() {
    let s = Server::start().await;
    let name = unique("Ann");
    let (status, v) = s.post("/api/auth/register", None, json!({"username": name, "password": "hunter2hunter2"})).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["user"]["name"], name.as_str());
    assert!(v["expires_at"].as_u64().unwrap() > 1_700_000_000);
    let token = v["token"].as_str().unwrap();

    let (status, me) = s.get("/api/me", token).await;
    assert_eq!(status, 200);
    assert_eq!(me["id"], v["user"]["id"]);

    // Usernames are unique case-insensitively.
    let (status, e) =
        s.post("/api/auth/register", None, json!({"username": name.to_uppercase(), "password": "whatever123"})).await;
    assert_eq!(status, 409);
    assert_eq!(e["error"]["code"], "conflict");

    let (status, l) = s.post("/api/auth/login", None, json!({"username": name, "password": "hunter2hunter2"})).await;
    assert_eq!(status, 200);
    assert_eq!(l["user"]["id"], v["user"]["id"]);
    let (status, _) = s.get("/api/me", l["token"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    s.stop().await;
}

#[tokio::test]
async fn login_failures_look_alike() {
    let s = Server::start().await;
    let name = unique("bob");
    s.register(&name).await;
    let (st1, wrong) = s.post("/api/auth/login", None, json!({"username": name, "password": "wrong password"})).await;
    let (st2, unknown) =
        s.post("/api/auth/login", None, json!({"username": unique("nobody"), "password": "wrong password"})).await;
    assert_eq!((st1, st2), (401, 401));
    assert_eq!(wrong, unknown);
    assert_eq!(wrong["error"]["code"], "unauthorized");
    s.stop().await;
}

#[tokio::test]
async fn registration_input_is_validated() {
    let s = Server::start().await;
    for (username, password) in [("ab", "longenough"), ("has space", "longenough"), ("okname", "short"), ("", "")] {
        let (status, e) = s.post("/api/auth/register", None, json!({"username": username, "password": password})).await;
        assert_eq!(status, 400, "{username:?}/{password:?}");
        assert_eq!(e["error"]["code"], "bad_request");
        assert!(!e["error"]["message"].as_str().unwrap().is_empty());
    }
    // Not JSON, missing fields, wrong types.
    let r = s
        .http
        .post(s.url("/api/auth/register"))
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "bad_request");
    let (status, _) = s.post("/api/auth/register", None, json!({"username": "valid_name"})).await;
    assert_eq!(status, 400);
    let (status, _) = s.post("/api/auth/register", None, json!({"username": 5, "password": "x"})).await;
    assert_eq!(status, 400);
    // Oversized body.
    let big = json!({"username": "x".repeat(100_000), "password": "longenough"});
    let (status, e) = s.post("/api/auth/register", None, big).await;
    assert_eq!(status, 413);
    assert_eq!(e["error"]["code"], "too_large");
    s.stop().await;
}

#[tokio::test]
async fn rooms_can_be_listed_and_created() {
    let s = Server::start_with(|c| c.default_rooms = vec!["general".into(), "random".into()]).await;
    let u = s.register(&unique("carl")).await;
    let (status, v) = s.get("/api/rooms", &u.token).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = v["rooms"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["general", "random"]);
    assert_eq!(v["rooms"][0]["online"], 0);
    assert_eq!(v["rooms"][0]["managed"], false);

    let (status, r) = s.post("/api/rooms", Some(&u.token), json!({"name": "team-42", "title": "Team 42"})).await;
    assert_eq!(status, 201);
    assert_eq!(
        r,
        json!({"name": "team-42", "title": "Team 42", "online": 0, "managed": false, "receipts": true, "role": "owner"})
    );
    let (status, r) = s.post("/api/rooms", Some(&u.token), json!({"name": "plain"})).await;
    assert_eq!(status, 201);
    assert_eq!(r["title"], "plain", "title defaults to the name");
    let (status, e) = s.post("/api/rooms", Some(&u.token), json!({"name": "team-42"})).await;
    assert_eq!((status, e["error"]["code"].as_str()), (409, Some("conflict")));
    for bad in ["Team", "-x", "x-", "a b", ""] {
        let (status, e) = s.post("/api/rooms", Some(&u.token), json!({"name": bad})).await;
        assert_eq!((status, e["error"]["code"].as_str()), (400, Some("bad_request")), "{bad:?}");
    }
    let (status, _) = s.post("/api/rooms", None, json!({"name": "anon"})).await;
    assert_eq!(status, 401);

    // Online counts distinct users.
    let mut c1 = s.ws(&u.token).await;
    let mut c2 = s.ws(&u.token).await;
    c1.join("team-42").await;
    c2.join("team-42").await;
    let (_, v) = s.get("/api/rooms", &u.token).await;
    let team = v["rooms"].as_array().unwrap().iter().find(|r| r["name"] == "team-42").unwrap().clone();
    assert_eq!(team["online"], 1);
    s.stop().await;
}

#[tokio::test]
async fn message_history_pages_over_rest() {
    let s = Server::start_with(|c| c.rate_limit = "1000/1s".parse().unwrap()).await;
    let (u, mut c) = s.user("dora").await;
    c.join("general").await;
    for i in 1..=7 {
        c.say("general", &format!("m{i}")).await;
    }
    let (status, v) = s.get("/api/rooms/general/messages?limit=3", &u.token).await;
    assert_eq!(status, 200);
    let seqs: Vec<u64> = v["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [5, 6, 7], "newest page, oldest first");
    let (_, v) = s.get("/api/rooms/general/messages?before=5&limit=3", &u.token).await;
    let bodies: Vec<&str> = v["messages"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["m2", "m3", "m4"]);
    let (_, v) = s.get("/api/rooms/general/messages?limit=1000", &u.token).await;
    assert_eq!(v["messages"].as_array().unwrap().len(), 7, "limit is clamped, not rejected");
    let (status, e) = s.get("/api/rooms/nope/messages", &u.token).await;
    assert_eq!((status, e["error"]["code"].as_str()), (404, Some("not_found")));
    let (status, _) = s.get("/api/rooms/general/messages?before=x", &u.token).await;
    assert_eq!(status, 400);
    let (status, _) = s.get("/api/rooms/general/messages", "bad-token").await;
    assert_eq!(status, 401);
    s.stop().await;
}

#[tokio::test]
async fn probes_metrics_and_web_client() {
    let s = Server::start().await;
    let r = s.http.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = s.http.get(s.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let (_, mut c) = s.user("eve").await;
    c.join("general").await;
    c.say("general", "hello").await;
    assert_eq!(s.metric("aurora_ws_connections ").await, 1.0);
    assert!(s.metric("aurora_messages_accepted_total").await >= 1.0);
    let page = s.http.get(s.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-security-policy"].to_str().unwrap().contains("script-src 'self'"));
    assert!(page.text().await.unwrap().contains("AuroraChat"));
    let js = s.http.get(s.url("/app.js")).send().await.unwrap();
    assert!(js.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
    let app = js.text().await.unwrap();
    assert!(app.contains("from \"./js/state.js\""), "app.js is the entry module: {app}");
    // Every module app.js imports (and they import) is served as JavaScript.
    for module in ["state", "session", "socket", "compose", "render"] {
        let m = s.http.get(s.url(&format!("/js/{module}.js"))).send().await.unwrap();
        assert_eq!(m.status(), 200, "/js/{module}.js");
        assert!(m.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
    }
    assert_eq!(s.http.get(s.url("/js/nope.js")).send().await.unwrap().status(), 404);
    let r = s.http.get(s.url("/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    s.stop().await;
}

#[tokio::test]
async fn json_endpoints_take_only_a_json_object_with_a_json_content_type() {
    let s = Server::start().await;
    let body = r#"{"username":"formpost","password":"correct horse battery"}"#;
    for path in ["/api/auth/register", "/api/auth/login"] {
        for ct in [None, Some("text/plain"), Some("application/x-www-form-urlencoded"), Some("multipart/form-data")] {
            let mut req = s.http.post(s.url(path)).body(body);
            if let Some(ct) = ct {
                req = req.header("content-type", ct);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 415, "{path} with {ct:?}");
            let v: serde_json::Value = r.json().await.unwrap();
            assert_eq!(v["error"]["code"], "unsupported_media_type");
        }
    }
    let r = s
        .http
        .post(s.url("/api/auth/register"))
        .header("content-type", "application/json; charset=utf-8")
        .body(r#"["arrayname","correct horse battery"]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "an array is not an object");
    let (status, _) =
        s.post("/api/auth/login", None, json!({"username":"arrayname","password":"correct horse battery"})).await;
    assert_eq!(status, 401, "no user was registered from the array");
    let (status, _) =
        s.post("/api/auth/register", None, json!({"username":"formpost","password":"correct horse battery"})).await;
    assert_eq!(status, 201, "a JSON object with application/json works");
    s.stop().await;
}

#[tokio::test]
async fn every_response_carries_nosniff_and_the_page_a_strict_csp() {
    let s = Server::start().await;
    for path in ["/", "/app.js", "/js/state.js", "/style.css", "/healthz", "/api/me", "/nowhere", "/metrics"] {
        let r = s.http.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.headers().get("x-content-type-options").map(|v| v.to_str().unwrap()), Some("nosniff"), "{path}");
    }
    let r = s.http.get(s.url("/")).send().await.unwrap();
    let csp = r.headers().get("content-security-policy").expect("CSP").to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    s.stop().await;
}
