use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::harness::{close_code, unique, Server};

const SECRET: &str = "0123456789abcdef0123456789abcdef-test";

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn sign(claims: Value, secret: &str, alg: Algorithm) -> String {
    encode(&Header::new(alg), &claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

/// Upgrade attempt: the HTTP status and JSON body of a refusal, or 101.
async fn upgrade_status(s: &Server, token: &str, origin: Option<&str>) -> (u16, Value) {
    let mut req = format!("ws://{}/ws", s.addr).into_client_request().unwrap();
    req.headers_mut().insert("authorization", HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
    if let Some(o) = origin {
        req.headers_mut().insert("origin", HeaderValue::from_str(o).unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((_, resp)) => (resp.status().as_u16(), Value::Null),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let body = resp.body().as_ref().map(|b| serde_json::from_slice(b).unwrap_or(Value::Null));
            (resp.status().as_u16(), body.unwrap_or(Value::Null))
        }
        Err(e) => panic!("unexpected upgrade error {e}"),
    }
}

#[tokio::test]
async fn bad_tokens_are_refused_before_upgrade_and_on_rest() {
    let s = Server::start_with(|c| c.jwt_secret = Some(SECRET.into())).await;
    let u = s.register(&unique("tok")).await;
    let claims = |iss: &str, aud: &str, exp: u64| json!({"sub": u.id, "name": u.name, "iat": now(), "exp": exp, "iss": iss, "aud": aud});
    let good = sign(claims("aurora", "aurora", now() + 600), SECRET, Algorithm::HS256);
    assert_eq!(upgrade_status(&s, &good, None).await.0, 101, "a token we signed ourselves is valid");

    let mut tampered = u.token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims("aurora", "aurora", now() + 600).to_string());
    let cases = [
        ("tampered", tampered),
        ("expired", sign(claims("aurora", "aurora", now() - 5), SECRET, Algorithm::HS256)),
        ("alg none", format!("{header}.{payload}.")),
        ("wrong audience", sign(claims("aurora", "someone-else", now() + 600), SECRET, Algorithm::HS256)),
        ("wrong issuer", sign(claims("mallory", "aurora", now() + 600), SECRET, Algorithm::HS256)),
        (
            "other key",
            sign(claims("aurora", "aurora", now() + 600), "another-secret-another-secret-xx", Algorithm::HS256),
        ),
        ("HS512", sign(claims("aurora", "aurora", now() + 600), SECRET, Algorithm::HS512)),
        ("garbage", "not.a.jwt".into()),
    ];
    for (what, token) in &cases {
        let (status, body) = upgrade_status(&s, token, None).await;
        assert_eq!(status, 401, "{what} on /ws");
        assert_eq!(body["error"]["code"], "unauthorized", "{what}");
        let (status, body) = s.get("/api/me", token).await;
        assert_eq!(status, 401, "{what} on /api/me");
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    // No token at all.
    let r = s.http.get(s.url("/ws")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    s.stop().await;
}

#[tokio::test]
async fn origin_is_checked_on_upgrade() {
    let s = Server::start().await;
    let u = s.register(&unique("ori")).await;
    let same = format!("http://{}", s.addr);
    assert_eq!(upgrade_status(&s, &u.token, Some(&same)).await.0, 101);
    assert_eq!(upgrade_status(&s, &u.token, None).await.0, 101, "non-browser clients send no Origin");
    let (status, body) = upgrade_status(&s, &u.token, Some("http://evil.example")).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "forbidden");
    s.stop().await;

    let s = Server::start_with(|c| {
        c.allowed_origins = aurora_core::config::AllowedOrigins::List(vec!["https://chat.example.com".into()])
    })
    .await;
    let u = s.register(&unique("ori")).await;
    assert_eq!(upgrade_status(&s, &u.token, Some("https://chat.example.com")).await.0, 101);
    assert_eq!(upgrade_status(&s, &u.token, Some(&format!("http://{}", s.addr))).await.0, 403);
    s.stop().await;
}

#[tokio::test]
async fn auth_refreshes_the_token_and_expiry_closes_4001() {
    let s = Server::start_with(|c| c.jwt_ttl = std::time::Duration::from_secs(3)).await;
    let u = s.register(&unique("ref")).await;
    let mut refreshed = s.ws(&u.token).await;
    refreshed.recv_type("hello").await;
    let mut lapsing = s.ws(&u.token).await;
    lapsing.recv_type("hello").await;

    // An invalid token is refused and the connection carries on.
    let v = refreshed.request(json!({"type":"auth","token":"bogus"})).await;
    assert_eq!(v["code"], "unauthorized");
    // A token for another user is refused too.
    let other = s.register(&unique("oth")).await;
    let v = refreshed.request(json!({"type":"auth","token": other.token})).await;
    assert_eq!(v["code"], "unauthorized");

    // Wait one second so the new token's exp is later than the first one's.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (_, l) =
        s.post("/api/auth/login", None, json!({"username": u.name, "password": "correct horse battery"})).await;
    let v = refreshed.request(json!({"type":"auth","token": l["token"]})).await;
    assert_eq!(v["type"], "authed");
    assert_eq!(v["exp"], l["expires_at"]);

    // The connection that did not refresh gets token_expired, then 4001.
    let e = lapsing.recv_type("error").await;
    assert_eq!(e["code"], "token_expired");
    assert_eq!(lapsing.ended().await, close_code(4001));
    // The refreshed one outlived the first token.
    refreshed.join("general").await;
    assert_eq!(refreshed.ended().await, close_code(4001), "and expires with its new token");
    s.stop().await;
}

#[tokio::test]
async fn a_signed_token_of_a_user_that_does_not_exist_is_refused_everywhere() {
    let s = Server::start_with(|c| c.jwt_secret = Some(SECRET.into())).await;
    let ghost = json!({"sub": "no-such-user", "name": "ghost", "iat": now(), "exp": now() + 600, "iss": "aurora", "aud": "aurora"});
    let token = sign(ghost, SECRET, Algorithm::HS256);
    let (status, body) = upgrade_status(&s, &token, None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")), "/ws");
    for path in ["/api/me", "/api/rooms", "/api/rooms/general/messages"] {
        let (status, body) = s.get(path, &token).await;
        assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")), "{path}");
    }
    let (status, _) = s.post("/api/rooms", Some(&token), json!({"name": "ghost-room"})).await;
    assert_eq!(status, 401, "POST /api/rooms");
    s.stop().await;
}
