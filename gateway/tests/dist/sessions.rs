//! Sessions and tickets are shared by every gateway (MongoDB `sessions`, Redis tickets).

use serde_json::{json, Value};

use crate::cluster::Proc;
use crate::harness::{refresh_cookie, register_at, unique};

async fn refresh(http: &reqwest::Client, base: &str, cookie: &str) -> (u16, Option<String>) {
    let r = http
        .post(format!("{base}/api/auth/refresh"))
        .header("cookie", format!("aurora_refresh={cookie}"))
        .send()
        .await
        .expect("refresh");
    (r.status().as_u16(), refresh_cookie(&r))
}

async fn ws_status(base: &str, query: &str) -> u16 {
    let url = format!("{}/ws?{query}", base.replacen("http", "ws", 1));
    match tokio_tungstenite::connect_async(url).await {
        Ok((_, resp)) => resp.status().as_u16(),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("unexpected upgrade error {e}"),
    }
}

#[tokio::test]
async fn a_session_and_its_tickets_work_on_every_gateway_and_logout_ends_it_everywhere() {
    let _one_at_a_time = crate::cluster::exclusive().await;
    let g1 = Proc::gateway(&[]).await;
    let g2 = Proc::gateway(&[]).await;
    let http = reqwest::Client::new();
    let u = register_at(&http, &g1.base(), &unique("dsess")).await;

    // A ticket issued by one gateway is redeemed once, on the other.
    let t: Value = http
        .post(format!("{}/api/ws-ticket", g1.base()))
        .bearer_auth(&u.token)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let query = format!("ticket={}", t["ticket"].as_str().expect("ticket"));
    assert_eq!(ws_status(&g2.base(), &query).await, 101);
    assert_eq!(ws_status(&g1.base(), &query).await, 401, "a ticket works once, on any gateway");

    // Refresh rotates on either gateway; the spent token replayed on the other revokes.
    let (status, second) = refresh(&http, &g2.base(), &u.refresh).await;
    assert_eq!(status, 200);
    let second = second.unwrap();
    let (status, third) = refresh(&http, &g1.base(), &second).await;
    assert_eq!(status, 200);
    assert_eq!(refresh(&http, &g2.base(), &second).await.0, 401, "replay of a spent token");
    assert_eq!(refresh(&http, &g1.base(), &third.unwrap()).await.0, 401, "the session is revoked");

    // Logout on one gateway is honoured by the other.
    let r = http
        .post(format!("{}/api/auth/login", g1.base()))
        .json(&json!({"username": u.name, "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    let cookie = refresh_cookie(&r).unwrap();
    let token = r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
    let r = http.post(format!("{}/api/auth/logout", g2.base())).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(refresh(&http, &g1.base(), &cookie).await.0, 401);
    let r = http.post(format!("{}/api/ws-ticket", g1.base())).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 401, "no tickets for an ended session");
    g1.terminate().await;
    g2.terminate().await;
}
