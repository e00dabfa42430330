//! Connection hygiene: header-read and request timeouts, a per-address connection cap,
//! and a descriptor reserve that keeps the probes answering.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::harness::{data_dir, unique, Binary, Server, DEADLINE};

/// Reads until the server closes; returns what it sent (panics past the deadline).
async fn until_closed(tcp: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    tokio::time::timeout(DEADLINE, tcp.read_to_end(&mut got)).await.expect("closed by the server").ok();
    got
}

async fn connect_from(ip: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), 0)).unwrap();
    socket.connect(to).await.unwrap()
}

#[tokio::test]
async fn silent_dribbling_and_slow_body_connections_are_closed() {
    let s = Server::start_with(|c| {
        c.header_timeout = Duration::from_secs(1);
        c.request_timeout = Duration::from_secs(1);
    })
    .await;
    let u = s.register(&unique("slow")).await;
    // Silent sockets.
    let mut silent = Vec::new();
    for _ in 0..50 {
        silent.push(TcpStream::connect(s.addr).await.unwrap());
    }
    let started = Instant::now();
    for tcp in &mut silent {
        until_closed(tcp).await;
    }
    assert!(started.elapsed() < Duration::from_secs(5), "closed after {:?}", started.elapsed());

    // An upgrade whose headers dribble in a byte at a time.
    let mut dribble = TcpStream::connect(s.addr).await.unwrap();
    let request = format!("GET /ws HTTP/1.1\r\nAuthorization: Bearer {}\r\nHost: x\r\nUpgrade: websocket\r\n", u.token);
    let started = Instant::now();
    for b in request.bytes() {
        if dribble.write_all(&[b]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if started.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    until_closed(&mut dribble).await;
    assert!(started.elapsed() < Duration::from_secs(4), "dribbling upgrade closed after {:?}", started.elapsed());

    // A login whose body never completes: 408.
    let mut slow = TcpStream::connect(s.addr).await.unwrap();
    slow.write_all(b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    tokio::time::timeout(DEADLINE, slow.read_exact(&mut head)).await.expect("an answer in time").unwrap();
    assert_eq!(&head, b"HTTP/1.1 408", "{}", String::from_utf8_lossy(&head));
    s.stop().await;
}

#[tokio::test]
async fn connections_per_address_are_capped_with_a_clear_refusal() {
    let s = Server::start_with(|c| c.max_connections_per_address = 5).await;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(TcpStream::connect(s.addr).await.unwrap());
    }
    let mut sixth = TcpStream::connect(s.addr).await.unwrap();
    let answer = String::from_utf8_lossy(&until_closed(&mut sixth).await).to_string();
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(answer.contains("too many open connections"), "{answer}");
    // Another address is not affected; a freed place is usable again.
    let mut other = connect_from([127, 0, 0, 4], s.addr).await;
    other.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    assert!(String::from_utf8_lossy(&until_closed(&mut other).await).starts_with("HTTP/1.1 200"));
    drop(held.pop());
    let mut again = None;
    for _ in 0..50 {
        let mut tcp = TcpStream::connect(s.addr).await.unwrap();
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        let answer = String::from_utf8_lossy(&until_closed(&mut tcp).await).to_string();
        if answer.starts_with("HTTP/1.1 200") {
            again = Some(answer);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "a closed connection frees its place");
    assert!(s.metric("aurora_http_connections_refused_total").await >= 1.0);
    s.stop().await;
}

#[tokio::test]
async fn probes_answer_while_idle_sockets_exhaust_the_file_limit() {
    let (_keep, dir) = data_dir();
    let gw = Binary::start_limited(&dir, &[("AURORA_HEADER_TIMEOUT", "60s")], Some(256)).await;
    let mut idle = Vec::new();
    for _ in 0..300 {
        match TcpStream::connect(gw.addr).await {
            Ok(tcp) => idle.push(tcp),
            Err(_) => break,
        }
    }
    let deadline = Instant::now() + DEADLINE;
    let healthy = loop {
        let probe =
            reqwest::Client::new().get(format!("{}/healthz", gw.base())).timeout(Duration::from_secs(2)).send().await;
        if probe.as_ref().is_ok_and(|r| r.status() == 200) {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(healthy, "/healthz answers with {} idle sockets open against a 256-file limit", idle.len());
    drop(idle);
    assert!(gw.terminate().await.success());
}

#[tokio::test]
async fn upgrades_beyond_the_gateways_rate_wait_and_the_connected_carry_on() {
    let s = crate::harness::Server::start_with(|c| c.upgrade_rate = "3/1m".parse().unwrap()).await;
    let (_u, mut first) = s.user("up").await;
    let token = s.register(&crate::harness::unique("up")).await.token;
    let mut open = Vec::new();
    for _ in 0..2 {
        let (ws, _) = tokio_tungstenite::connect_async(crate::harness::ws_request(s.addr, &token))
            .await
            .expect("within the rate");
        open.push(ws);
    }
    match tokio_tungstenite::connect_async(crate::harness::ws_request(s.addr, &token)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 503);
            let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=20).contains(&retry), "Retry-After {retry}");
            let body: serde_json::Value = serde_json::from_slice(resp.body().as_deref().unwrap()).unwrap();
            assert_eq!(body["error"]["code"], "unavailable");
        }
        other => panic!("expected 503, got {:?}", other.map(|(_, r)| r.status())),
    }
    // The connection already open is not affected.
    first.join("general").await;
    assert_eq!(s.metric("aurora_http_connections_refused_total{reason=\"upgrade_rate\"}").await, 1.0);
    s.stop().await;
}
