//! Sessions (refresh cookie, rotation, reuse detection, logout) and WebSocket tickets.

use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::harness::{refresh_cookie, unique, Client, Server};

/// `POST /api/auth/refresh` with `cookie`: the status, the body and the next cookie.
async fn refresh(s: &Server, cookie: &str) -> (u16, Value, Option<String>) {
    let r = s
        .http
        .post(s.url("/api/auth/refresh"))
        .header("cookie", format!("aurora_refresh={cookie}"))
        .send()
        .await
        .expect("refresh");
    let status = r.status().as_u16();
    let next = refresh_cookie(&r);
    (status, r.json().await.unwrap_or(Value::Null), next)
}

async fn ticket(s: &Server, token: &str) -> (u16, Value) {
    s.post("/api/ws-ticket", Some(token), json!({})).await
}

/// An upgrade with `query` (and an Origin): 101, or the refusal's status and body.
async fn upgrade(s: &Server, query: &str, origin: Option<&str>) -> Result<Client, (u16, Value)> {
    let mut req = format!("ws://{}/ws?{query}", s.addr).into_client_request().unwrap();
    if let Some(o) = origin {
        req.headers_mut().insert("origin", HeaderValue::from_str(o).unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(Client { ws, pings: 0 }),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let body = resp.body().as_ref().map(|b| serde_json::from_slice(b).unwrap_or(Value::Null));
            Err((resp.status().as_u16(), body.unwrap_or(Value::Null)))
        }
        Err(e) => panic!("unexpected upgrade error {e}"),
    }
}

#[tokio::test]
async fn register_and_login_set_a_refresh_cookie_scripts_cannot_read() {
    let s = Server::start().await;
    let name = unique("ck");
    let r = s
        .http
        .post(s.url("/api/auth/register"))
        .json(&json!({"username": name, "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let set: Vec<String> =
        r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_ascii_lowercase()).collect();
    assert_eq!(set.len(), 1, "{set:?}");
    for part in ["httponly", "samesite=strict", "path=/api/auth", "max-age=2592000"] {
        assert!(set[0].contains(part), "{part} in {}", set[0]);
    }
    assert!(!set[0].contains("secure"), "no Secure over plain HTTP: {}", set[0]);
    let body: Value = r.json().await.unwrap();
    assert!(body["token"].is_string() && body["expires_at"].is_u64());

    // Behind a trusted proxy that terminated TLS the cookie is Secure.
    let s2 = Server::start_with(|c| c.trusted_proxies = "127.0.0.1".parse().unwrap()).await;
    let r = s2
        .http
        .post(s2.url("/api/auth/login"))
        .header("x-forwarded-proto", "https")
        .json(&json!({"username": "nobody-here", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let u = s2.register(&unique("tls")).await;
    let r = s2
        .http
        .post(s2.url("/api/auth/login"))
        .header("x-forwarded-proto", "https")
        .json(&json!({"username": u.name, "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers().get("set-cookie").unwrap().to_str().unwrap().to_ascii_lowercase();
    assert!(cookie.contains("; secure"), "{cookie}");
    s.stop().await;
    s2.stop().await;
}

#[tokio::test]
async fn refresh_rotates_and_a_replayed_token_revokes_the_session() {
    let s = Server::start().await;
    let u = s.register(&unique("rot")).await;
    let (status, body, second) = refresh(&s, &u.refresh).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["user"]["id"].as_str(), body["user"]["name"].as_str()), (Some(&*u.id), Some(&*u.name)));
    let second = second.expect("a new cookie");
    assert_ne!(second, u.refresh, "the token rotates");
    let (status, me) = s.get("/api/me", body["token"].as_str().unwrap()).await;
    assert_eq!((status, me["id"].as_str()), (200, Some(&*u.id)), "the new access token works");
    let (status, _, third) = refresh(&s, &second).await;
    assert_eq!(status, 200);
    let third = third.unwrap();

    // The first token, spent, presented again: refused, and the whole session ends.
    let (status, body, cleared) = refresh(&s, &u.refresh).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")), "{body}");
    assert_eq!(cleared.as_deref(), Some(""), "the cookie is cleared");
    let (status, _, _) = refresh(&s, &third).await;
    assert_eq!(status, 401, "the live token of a revoked session is refused too");
    assert_eq!(s.metric("aurora_auth_failures_total{reason=\"refresh_reused\"}").await, 1.0);

    // Another session of the same user (another device) is untouched.
    let r = s
        .http
        .post(s.url("/api/auth/login"))
        .json(&json!({"username": u.name, "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    let other = refresh_cookie(&r).unwrap();
    assert_eq!(refresh(&s, &other).await.0, 200);

    // No cookie, a malformed one, an unknown session.
    let r = s.http.post(s.url("/api/auth/refresh")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(refresh(&s, "junk").await.0, 401);
    let forged = format!("{}.{}", "a".repeat(32), "b".repeat(64));
    assert_eq!(refresh(&s, &forged).await.0, 401);
    s.stop().await;
}

#[tokio::test]
async fn logout_ends_the_session_and_its_tickets() {
    let s = Server::start().await;
    let u = s.register(&unique("out")).await;
    let r = s.http.post(s.url("/api/auth/logout")).bearer_auth(&u.token).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(refresh_cookie(&r).as_deref(), Some(""), "the cookie is cleared");
    assert_eq!(refresh(&s, &u.refresh).await.0, 401, "the refresh token no longer works");
    let (status, body) = ticket(&s, &u.token).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")), "no tickets for it either");

    // With the cookie alone (a tab whose access token lapsed).
    let v = s.register(&unique("out")).await;
    let r = s
        .http
        .post(s.url("/api/auth/logout"))
        .header("cookie", format!("aurora_refresh={}", v.refresh))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(refresh(&s, &v.refresh).await.0, 401);

    let r = s.http.post(s.url("/api/auth/logout")).send().await.unwrap();
    assert_eq!(r.status(), 401, "nothing to log out");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    s.stop().await;
}

#[tokio::test]
async fn a_ticket_opens_one_websocket_and_tokens_stay_out_of_urls() {
    let s = Server::start().await;
    let u = s.register(&unique("tk")).await;
    let (status, t) = ticket(&s, &u.token).await;
    assert_eq!(status, 201, "{t}");
    assert_eq!(t["expires_in"], 30);
    let t = t["ticket"].as_str().unwrap().to_owned();
    assert!(!t.contains(&u.token) && t.len() >= 32);

    let origin = format!("http://{}", s.addr);
    // A disallowed Origin is refused before the ticket is spent.
    let refused = upgrade(&s, &format!("ticket={t}"), Some("http://evil.example")).await.err();
    assert_eq!(refused.map(|(s, _)| s), Some(403));
    let mut c = upgrade(&s, &format!("ticket={t}"), Some(&origin)).await.expect("the ticket works");
    let hello = c.recv_type("hello").await;
    assert_eq!(hello["user"]["id"], u.id.as_str());
    c.join("general").await;

    let (status, body) = upgrade(&s, &format!("ticket={t}"), Some(&origin)).await.err().expect("single use");
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")));
    let (status, _) = upgrade(&s, "ticket=not-a-ticket", None).await.err().expect("unknown ticket");
    assert_eq!(status, 401);
    let (status, _) = ticket(&s, "not.a.jwt").await;
    assert_eq!(status, 401, "a ticket needs a valid access token");

    // `?token=` is off by default, and says what to do instead.
    let (status, body) = upgrade(&s, &format!("token={}", u.token), None).await.err().expect("token in URL");
    assert_eq!(status, 401);
    assert!(body["error"]["message"].as_str().unwrap().contains("ws-ticket"), "{body}");
    s.stop().await;

    let old = Server::start_with(|c| c.allow_token_in_url = true).await;
    let u = old.register(&unique("tk")).await;
    let mut c = upgrade(&old, &format!("token={}", u.token), None).await.expect("allowed for old clients");
    c.recv_type("hello").await;
    old.stop().await;
}

#[tokio::test]
async fn a_ticket_expires_after_thirty_seconds() {
    let s = Server::start().await;
    let u = s.register(&unique("tx")).await;
    let (_, t) = ticket(&s, &u.token).await;
    let t = t["ticket"].as_str().unwrap().to_owned();
    // The ticket store runs on tokio's clock: jump past the lifetime.
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(31)).await;
    tokio::time::resume();
    let (status, _) = upgrade(&s, &format!("ticket={t}"), None).await.err().expect("expired");
    assert_eq!(status, 401);
    s.stop().await;
}

#[tokio::test]
async fn a_client_keeps_chatting_across_access_token_expiries() {
    // 5 s access tokens; the client refreshes and renews its socket, as the web client does.
    let s = Server::start_with(|c| c.jwt_ttl = Duration::from_secs(5)).await;
    let u = s.register(&unique("long")).await;
    let (_, t) = ticket(&s, &u.token).await;
    let mut c = upgrade(&s, &format!("ticket={}", t["ticket"].as_str().unwrap()), None).await.unwrap();
    c.recv_type("hello").await;
    c.join("general").await;
    let mut cookie = u.refresh.clone();
    let mut exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 5;
    let started = tokio::time::Instant::now();
    let mut sent = 0;
    while started.elapsed() < Duration::from_secs(30) {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        if exp <= now + 2 {
            let (status, body, next) = refresh(&s, &cookie).await;
            assert_eq!(status, 200, "refresh after {:?}: {body}", started.elapsed());
            cookie = next.unwrap();
            exp = body["expires_at"].as_u64().unwrap();
            let authed = c.request(json!({"type":"auth","token": body["token"]})).await;
            assert_eq!(authed["type"], "authed", "{authed}");
        }
        sent += 1;
        let ack = c
            .request(json!({"type":"send","room":"general","body": format!("tick {sent}"),"nonce": format!("n{sent}")}))
            .await;
        assert_eq!(ack["type"], "ack", "message {sent} after {:?}: {ack}", started.elapsed());
        // Pacing, not synchronisation: one message a second for the 30 s.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(sent >= 25, "{sent} messages");
    let (status, v) = s.get("/api/rooms/general/messages?limit=100", &u.token).await;
    assert_eq!(status, 401, "the first access token has long expired");
    assert_eq!(v["error"]["code"], "unauthorized");
    let (_, body, _) = refresh(&s, &cookie).await;
    let (_, v) = s.get("/api/rooms/general/messages?limit=100", body["token"].as_str().unwrap()).await;
    assert_eq!(v["messages"].as_array().unwrap().len(), sent);
    s.stop().await;
}

#[tokio::test]
async fn a_browser_can_offer_its_ticket_as_a_subprotocol_and_keep_urls_clean() {
    let s = Server::start().await;
    let u = s.register(&unique("sp")).await;
    let (_, t) = ticket(&s, &u.token).await;
    let t = t["ticket"].as_str().unwrap().to_owned();
    let mut req = format!("ws://{}/ws", s.addr).into_client_request().unwrap();
    let offered = format!("aurora, aurora.ticket.{t}");
    req.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_str(&offered).unwrap());
    let (ws, resp) = tokio_tungstenite::connect_async(req.clone()).await.expect("the ticket works");
    assert_eq!(resp.headers().get("sec-websocket-protocol").map(|v| v.to_str().unwrap()), Some("aurora"));
    let mut c = Client { ws, pings: 0 };
    assert_eq!(c.recv_type("hello").await["user"]["id"], u.id.as_str());
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401, "single use"),
        other => panic!("a spent ticket must be refused: {:?}", other.map(|(_, r)| r.status())),
    }
    s.stop().await;
}
