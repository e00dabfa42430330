//! Load generator for `./run.sh bench`.
//!
//!   loadgen idle    <base-url> <gateway-pid> <connections>
//!   loadgen latency <base-url> <messages>
//!
//! `idle` opens authenticated connections that wait for `hello` and then sit idle,
//! and reports the gateway's RSS before and after. `latency` measures the time from
//! `send` on one client to the `message` at a second client.

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

async fn register(base: &str, name: &str) -> String {
    let v: Value = reqwest::Client::new()
        .post(format!("{base}/api/auth/register"))
        .json(&json!({"username": name, "password": "benchmark-password"}))
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("json");
    v["token"].as_str().expect("token").to_owned()
}

async fn connect(base: &str, token: &str) -> Ws {
    let url = format!("{}/ws?token={token}", base.replacen("http", "ws", 1));
    let req = url.into_client_request().expect("request");
    let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(req, Some(config), true).await.expect("connect");
    loop {
        if let Some(Ok(Message::Text(t))) = ws.next().await {
            if t.contains("\"hello\"") {
                return ws;
            }
        }
    }
}

async fn recv_type(ws: &mut Ws, ty: &str) -> Value {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).expect("json");
                if v["type"] == ty {
                    return v;
                }
            }
            Some(Ok(_)) => {}
            other => panic!("connection ended: {other:?}"),
        }
    }
}

async fn idle(base: String, pid: u32, n: usize) {
    let users: Vec<String> = {
        let mut tokens = Vec::new();
        for i in 0..10 {
            tokens.push(register(&base, &format!("idle{}_{i}", std::process::id())).await);
        }
        tokens
    };
    let before = rss_kib(pid);
    let started = Instant::now();
    let mut conns = Vec::with_capacity(n);
    let mut batch = Vec::new();
    for i in 0..n {
        let (b, t) = (base.clone(), users[i % users.len()].clone());
        batch.push(tokio::spawn(async move { connect(&b, &t).await }));
        if batch.len() == 200 {
            for h in batch.drain(..) {
                conns.push(h.await.expect("connect task"));
            }
        }
    }
    for h in batch {
        conns.push(h.await.expect("connect task"));
    }
    let elapsed = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await; // let allocator settle before reading RSS
    let after = rss_kib(pid);
    println!("idle connections: {}", conns.len());
    println!("connect time: {:.1}s", elapsed.as_secs_f64());
    println!("gateway RSS before: {:.1} MiB", before as f64 / 1024.0);
    println!("gateway RSS with {} idle connections: {:.1} MiB", conns.len(), after as f64 / 1024.0);
    println!("per connection: {:.1} KiB", (after.saturating_sub(before)) as f64 / conns.len() as f64);
}

async fn latency(base: String, n: usize) {
    let ta = register(&base, &format!("lat_a{}", std::process::id())).await;
    let tb = register(&base, &format!("lat_b{}", std::process::id())).await;
    let mut a = connect(&base, &ta).await;
    let mut b = connect(&base, &tb).await;
    for ws in [&mut a, &mut b] {
        ws.send(Message::Text(json!({"type":"join","room":"general"}).to_string().into())).await.expect("join");
        recv_type(ws, "joined").await;
    }
    let mut samples = Vec::with_capacity(n);
    for i in 0..n + 50 {
        let frame = json!({"type":"send","room":"general","body":format!("latency probe {i}")}).to_string();
        let t0 = Instant::now();
        a.send(Message::Text(frame.into())).await.expect("send");
        recv_type(&mut b, "message").await;
        let dt = t0.elapsed();
        recv_type(&mut a, "ack").await;
        if i >= 50 {
            samples.push(dt); // the first 50 warm up
        }
    }
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    println!("send -> message at a second client, {} messages:", samples.len());
    println!("  p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms", ms(pct(0.50)), ms(pct(0.99)), ms(samples[samples.len() - 1]));
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("idle") => idle(args[2].clone(), args[3].parse().expect("pid"), args[4].parse().expect("count")).await,
        Some("latency") => latency(args[2].clone(), args[3].parse().expect("count")).await,
        _ => eprintln!("usage: loadgen idle <base> <pid> <n> | loadgen latency <base> <n>"),
    }
}
