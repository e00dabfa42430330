//! The path users take: the chart on the node behind a real ingress controller (Traefik
//! v2.11, started by `dev/cluster.sh up`), reached by host name. A browser registers,
//! chats and reloads through it; no token reaches the controller's access log or the
//! gateways' logs; 1,500 WebSockets from many client addresses pass one gateway's
//! per-address cap; clients behind the proxy have their own login throttles.

use futures_util::StreamExt;
use serde_json::{json, Value};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::chart::{repo, run};
use crate::kube_env::Ns;
use crate::node::install_dev;

const RELEASE: &str = "dev";
const GATEWAY: &str = "http://127.0.0.1:18080";
const SOCKETS: usize = 1500;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name}: run `dev/cluster.sh up` (./run.sh test does)"))
}

/// A TCP connection to the ingress from `source` (any 127/8 address is this machine).
async fn tcp_from(source: Ipv4Addr, ingress: SocketAddr) -> tokio::net::TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::from((source, 0))).expect("bind a loopback source address");
    socket.connect(ingress).await.expect("connect to the ingress")
}

/// `POST /api/auth/login` through the ingress from `source`, with a wrong password.
async fn failed_login(ingress: SocketAddr, host: &str, source: Ipv4Addr, name: &str, forged: Option<&str>) -> u16 {
    let client = reqwest::Client::builder().local_address(std::net::IpAddr::V4(source)).build().expect("client");
    let mut req = client
        .post(format!("http://{ingress}/api/auth/login"))
        .header("host", host)
        .json(&json!({"username": name, "password": "not the password"}));
    if let Some(f) = forged {
        req = req.header("x-forwarded-for", f);
    }
    req.send().await.expect("login through the ingress").status().as_u16()
}

/// Opens a WebSocket through the ingress from `source`; retries after a 503 (upgrade rate).
async fn open(ingress: SocketAddr, host: &str, source: Ipv4Addr, token: &str) -> crate::harness::Ws {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut req = format!("ws://{host}/ws").into_client_request().expect("request");
        req.headers_mut().insert("authorization", format!("Bearer {token}").parse().expect("header"));
        let tcp = tcp_from(source, ingress).await;
        match tokio_tungstenite::client_async(req, tokio_tungstenite::MaybeTlsStream::Plain(tcp)).await {
            Ok((mut ws, _)) => {
                let hello = ws.next().await.expect("hello").expect("frame");
                assert!(hello.to_text().unwrap_or_default().contains("\"hello\""), "{hello:?}");
                return ws;
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 503 => {
                assert!(Instant::now() < deadline, "still refused after a minute");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("WebSocket from {source} through the ingress: {e}"),
        }
    }
}

// Long by design: one user path through the ingress, then what its logs show.
#[tokio::test]
async fn browsers_reach_the_chart_through_the_ingress_with_real_client_addresses() {
    let _one = crate::cluster::exclusive().await;
    let ingress_url = env("AURORA_INGRESS_URL");
    let host_name = env("AURORA_INGRESS_HOST");
    let ingress: SocketAddr = ingress_url.trim_start_matches("http://").parse().expect("ingress address");
    let port = ingress.port();
    let host = format!("{host_name}:{port}");
    let ns = Ns::new().await;
    // One gateway takes every socket: its per-address cap (1,000) must count clients.
    let (_installed, installed_after) =
        install_dev(&ns.name, &["gateway.replicas=1", "gateway.env.AURORA_LOGIN_RATE=3/1m"]);

    // The Ingress is served by the controller (status from its ingressendpoint).
    let status = run(
        "kubectl",
        &["get", "ingress", &format!("{RELEASE}-aurora"), "-n", &ns.name, "-o", "jsonpath={.spec.rules[0].host}"],
    );
    assert_eq!(status, host_name);
    // The controller picks the Ingress up within moments of its creation.
    let probe = reqwest::Client::new();
    crate::harness::eventually("the ingress routes to the gateway", || async {
        let r = probe.get(format!("{ingress_url}/healthz")).header("host", &host).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;

    // A person in a browser: register, chat, reload and still be signed in.
    let browser = std::process::Command::new("node")
        .args(["dev/e2e/ingress.mjs", &ingress_url, &host_name])
        .current_dir(repo())
        .output()
        .expect("node");
    let out = String::from_utf8_lossy(&browser.stdout);
    assert!(browser.status.success(), "browser through the ingress: {out}{}", String::from_utf8_lossy(&browser.stderr));
    let report: Value = serde_json::from_str(out.lines().last().unwrap_or_default()).expect("the browser's report");
    let chatted = installed_after + Duration::from_millis(report["chatted_ms"].as_u64().unwrap_or_default());
    println!(
        "helm install -> two browsers chatted through Traefik at {host}: {chatted:?} (install {installed_after:?})"
    );
    let tokens: Vec<&str> = report["tokens"].as_array().expect("tokens").iter().filter_map(Value::as_str).collect();
    assert!(tokens.len() >= 3, "register x2 and the reload's refresh: {report}");
    for url in report["sockets"].as_array().expect("sockets") {
        assert_eq!(url.as_str(), Some(format!("ws://{host}/ws").as_str()), "no credential in a WebSocket URL");
    }
    let tickets: Vec<&str> = report["tickets"].as_array().expect("tickets").iter().filter_map(Value::as_str).collect();
    assert!(tickets.len() >= 3, "a ticket per socket: {report}");

    // No access token in the controller's access log or the gateways' logs.
    // Traefik writes a WebSocket's line (status 0: hijacked) when the connection ends.
    let access = crate::harness::eventually("the upgrades in the access log", || async {
        let log = std::fs::read_to_string(env("AURORA_INGRESS_ACCESS_LOG")).ok()?;
        (log.matches("\"GET /ws HTTP/1.1\"").count() >= tickets.len()).then_some(log)
    })
    .await;
    let selector = format!("app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=gateway");
    let gateway_logs = run("kubectl", &["logs", "-n", &ns.name, "-l", &selector, "--tail=-1"]);
    assert!(gateway_logs.contains("registered"), "the gateway logged the registrations");
    for t in tokens.iter().chain(&tickets) {
        assert!(!access.contains(t), "a JWT or ticket in the ingress access log");
        assert!(!gateway_logs.contains(t), "a JWT or ticket in the gateway log");
    }
    assert!(!access.contains("token=") && !access.contains("ticket="), "no credential in any URL");

    // Clients behind the proxy have their own login throttles; a forged X-Forwarded-For
    // changes nothing (the controller replaces it).
    let (a, b) = (Ipv4Addr::new(127, 0, 2, 1), Ipv4Addr::new(127, 0, 2, 2));
    let victim = crate::harness::unique("thr");
    for _ in 0..3 {
        assert_eq!(failed_login(ingress, &host, a, &victim, None).await, 401);
    }
    assert_eq!(failed_login(ingress, &host, a, &victim, None).await, 429, "client A is throttled");
    assert_eq!(failed_login(ingress, &host, a, &victim, Some("198.51.100.7")).await, 429, "forging does not help");
    assert_eq!(failed_login(ingress, &host, b, &victim, None).await, 401, "client B is not");

    // 1,500 WebSockets through the ingress into the one gateway, from 250 client addresses.
    let http = reqwest::Client::new();
    let user = crate::harness::register_at(&http, GATEWAY, &crate::harness::unique("many")).await;
    let opening = Instant::now();
    let mut sockets = Vec::with_capacity(SOCKETS);
    let mut batch = Vec::new();
    for i in 0..SOCKETS {
        let source = Ipv4Addr::new(127, 0, 1, 1 + (i % 250) as u8);
        let (host, token) = (host.clone(), user.token.clone());
        batch.push(tokio::spawn(async move { open(ingress, &host, source, &token).await }));
        if batch.len() == 50 {
            for t in batch.drain(..) {
                sockets.push(t.await.expect("client"));
            }
        }
    }
    for t in batch {
        sockets.push(t.await.expect("client"));
    }
    let metrics = http.get(format!("{GATEWAY}/metrics")).send().await.unwrap().text().await.unwrap();
    let open_now: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("aurora_ws_connections ")?.parse().ok())
        .expect("aurora_ws_connections");
    println!(
        "{SOCKETS} WebSockets through the ingress into one gateway in {:?}; it counts {open_now}",
        opening.elapsed()
    );
    assert!(open_now >= SOCKETS as f64, "every socket is open on the gateway: {open_now}");
    drop(sockets);
}
