//! Client addresses behind a trusted proxy (`AURORA_TRUSTED_PROXIES`): per-address limits
//! count real clients, and nobody else can choose their address with a header.

use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::harness::{unique, ws_request, Server};

async fn login_as(s: &Server, name: &str, forwarded_for: &str) -> u16 {
    s.http
        .post(s.url("/api/auth/login"))
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({"username": name, "password": "wrong password!"}))
        .send()
        .await
        .expect("login")
        .status()
        .as_u16()
}

#[tokio::test]
async fn throttles_count_the_forwarded_client_when_the_proxy_is_trusted() {
    let s = Server::start_with(|c| {
        c.trusted_proxies = "127.0.0.1/32".parse().unwrap();
        c.login_rate = "2/1m".parse().unwrap();
    })
    .await;
    let name = unique("px");
    // Two clients behind the proxy: one uses up its throttle, the other is not affected.
    assert_eq!(login_as(&s, &name, "198.51.100.1").await, 401);
    assert_eq!(login_as(&s, &name, "198.51.100.1").await, 401);
    assert_eq!(login_as(&s, &name, "198.51.100.1").await, 429, "the first client is throttled");
    assert_eq!(login_as(&s, &name, "203.0.113.9, 198.51.100.2").await, 401, "the second is not");
    // A client that forges an entry in front of what the proxy appended is still itself.
    assert_eq!(login_as(&s, &name, "198.51.100.2, 198.51.100.1").await, 429);
    s.stop().await;
}

#[tokio::test]
async fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
    let s = Server::start_with(|c| c.login_rate = "2/1m".parse().unwrap()).await;
    let name = unique("px");
    assert_eq!(login_as(&s, &name, "198.51.100.1").await, 401);
    assert_eq!(login_as(&s, &name, "198.51.100.2").await, 401);
    assert_eq!(login_as(&s, &name, "198.51.100.3").await, 429, "every attempt counted on the real address");
    let r = s
        .http
        .post(s.url("/api/auth/login"))
        .header("forwarded", "for=192.0.2.77")
        .json(&json!({"username": name, "password": "wrong password!"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429, "Forwarded too");
    s.stop().await;
}

/// Opens a WebSocket as if through a proxy for `client`: the status of the upgrade.
async fn open_for(s: &Server, token: &str, client: &str) -> (u16, Option<crate::harness::Ws>) {
    let mut req = ws_request(s.addr, token);
    req.headers_mut().insert("x-forwarded-for", HeaderValue::from_str(client).unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, resp)) => (resp.status().as_u16(), Some(ws)),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let body: Value = resp.body().as_ref().and_then(|b| serde_json::from_slice(b).ok()).unwrap_or_default();
            assert_eq!(body["error"]["code"], "rate_limited", "{body}");
            (resp.status().as_u16(), None)
        }
        Err(e) => panic!("unexpected upgrade error {e}"),
    }
}

#[tokio::test]
async fn the_per_address_cap_counts_clients_behind_the_proxy() {
    let s = Server::start_with(|c| {
        c.trusted_proxies = "127.0.0.1".parse().unwrap();
        c.max_connections_per_address = 3;
    })
    .await;
    let u = s.register(&unique("cap")).await;
    let mut open = Vec::new();
    // Ten WebSockets from one proxy address: more than the cap, all admitted.
    for i in 0..10 {
        let (status, ws) = open_for(&s, &u.token, &format!("198.51.100.{}", i % 5)).await;
        assert_eq!(status, 101, "connection {i}");
        open.push(ws.unwrap());
    }
    // Client .0 has two open: one more fits, the next does not.
    let third = open_for(&s, &u.token, "198.51.100.0").await;
    assert_eq!(third.0, 101);
    assert_eq!(open_for(&s, &u.token, "198.51.100.0").await.0, 429);
    let other = open_for(&s, &u.token, "198.51.100.1").await;
    assert_eq!(other.0, 101, "other clients are unaffected");
    drop((third, other));
    // A closed socket gives its client's place back.
    drop(open);
    crate::harness::eventually("places given back", || async {
        let (status, ws) = open_for(&s, &u.token, "198.51.100.0").await;
        drop(ws);
        (status == 101).then_some(())
    })
    .await;
    s.stop().await;
}
