//! Load generator for `./run.sh bench`.
//!
//!   loadgen idle       <base-url> <gateway-pid> <connections>
//!   loadgen latency    <base-url> <messages> [<receiver-base-url>]
//!   loadgen throughput <base-url>,<base-url>… <rooms> <seconds>
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

async fn create_room(base: &str, token: &str, name: &str) {
    let r = reqwest::Client::new()
        .post(format!("{base}/api/rooms"))
        .bearer_auth(token)
        .json(&json!({"name": name}))
        .send()
        .await
        .expect("create room");
    assert!(r.status().is_success() || r.status().as_u16() == 409, "create room: {}", r.status());
}

async fn join(ws: &mut Ws, room: &str) {
    ws.send(Message::Text(json!({"type":"join","room":room}).to_string().into())).await.expect("join");
    recv_type(ws, "joined").await;
}

async fn latency(base: String, n: usize, receiver_base: String) {
    let ta = register(&base, &format!("lat_a{}", std::process::id())).await;
    let tb = register(&base, &format!("lat_b{}", std::process::id())).await;
    let room = format!("latency-{}", std::process::id());
    create_room(&base, &ta, &room).await;
    let mut a = connect(&base, &ta).await;
    let mut b = connect(&receiver_base, &tb).await;
    join(&mut a, &room).await;
    join(&mut b, &room).await;
    let mut samples = Vec::with_capacity(n);
    for i in 0..n + 50 {
        let frame = json!({"type":"send","room":room,"body":format!("latency probe {i}")}).to_string();
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
    println!(
        "  p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
        ms(pct(0.50)),
        ms(pct(0.99)),
        ms(samples[samples.len() - 1])
    );
}

/// Pipelined senders (50 in flight each), one room per sender, spread over the
/// gateways; a receiver per room on the next gateway counts deliveries.
async fn throughput(bases: Vec<String>, rooms: usize, secs: u64) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    const WINDOW: usize = 50;
    let pid = std::process::id();
    let acked = Arc::new(AtomicU64::new(0));
    let delivered = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let first_delivery: Arc<std::sync::OnceLock<Instant>> = Arc::default();
    let (go_tx, go_rx) = tokio::sync::watch::channel(None::<Instant>);
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for r in 0..rooms {
        let (sb, rb) = (bases[r % bases.len()].clone(), bases[(r + 1) % bases.len()].clone());
        let ts = register(&sb, &format!("tp_s{pid}_{r}")).await;
        let tr = register(&rb, &format!("tp_r{pid}_{r}")).await;
        let room = format!("tp-{pid}-{r}");
        create_room(&sb, &ts, &room).await;
        let mut s = connect(&sb, &ts).await;
        let mut rx = connect(&rb, &tr).await;
        join(&mut s, &room).await;
        join(&mut rx, &room).await;
        let (d, first) = (delivered.clone(), first_delivery.clone());
        receivers.push(tokio::spawn(async move {
            loop {
                recv_type(&mut rx, "message").await;
                first.get_or_init(Instant::now);
                d.fetch_add(1, Ordering::Relaxed);
            }
        }));
        let (a, f) = (acked.clone(), refused.clone());
        let mut go = go_rx.clone();
        senders.push(tokio::spawn(async move {
            let deadline = loop {
                if let Some(d) = *go.borrow_and_update() {
                    break d;
                }
                go.changed().await.expect("start signal");
            };
            let mut i = 0u64;
            while Instant::now() < deadline {
                for _ in 0..WINDOW {
                    let frame = json!({"type":"send","room":room,"body":format!("load {i}")}).to_string();
                    s.send(Message::Text(frame.into())).await.expect("send");
                    i += 1;
                }
                let mut answers = 0;
                while answers < WINDOW {
                    let Some(Ok(Message::Text(t))) = s.next().await else { panic!("sender lost") };
                    if t.contains("\"type\":\"ack\"") {
                        answers += 1;
                        a.fetch_add(1, Ordering::Relaxed);
                    } else if t.contains("\"type\":\"error\"") {
                        answers += 1;
                        f.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let started = Instant::now();
    go_tx.send(Some(started + Duration::from_secs(secs))).expect("start");
    for s in senders {
        s.await.expect("sender");
    }
    let send_secs = started.elapsed().as_secs_f64();
    let total_acked = acked.load(Ordering::Relaxed);
    // Drain: until everything acked arrived, or nothing arrived for 15 s.
    let (mut last_count, mut last_change) = (0, Instant::now());
    loop {
        let now = delivered.load(Ordering::Relaxed);
        if now >= total_acked {
            break;
        }
        if now != last_count {
            (last_count, last_change) = (now, Instant::now());
        } else if last_change.elapsed() > Duration::from_secs(15) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let total_delivered = delivered.load(Ordering::Relaxed);
    let delivery_secs = first_delivery.get().map_or(f64::NAN, |t| t.elapsed().as_secs_f64());
    for r in receivers {
        r.abort();
    }
    println!("throughput over {} gateways, {rooms} rooms, {secs}s of sending:", bases.len());
    println!(
        "  acked (in Kafka) {total_acked}: {:.0} msg/s; refused {}",
        total_acked as f64 / send_secs,
        refused.load(Ordering::Relaxed)
    );
    println!(
        "  delivered {total_delivered} of them to receivers on the other gateway: {:.0} msg/s sustained end to end",
        total_delivered as f64 / delivery_secs
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("idle") => idle(args[2].clone(), args[3].parse().expect("pid"), args[4].parse().expect("count")).await,
        Some("latency") => {
            let receiver = args.get(4).cloned().unwrap_or_else(|| args[2].clone());
            latency(args[2].clone(), args[3].parse().expect("count"), receiver).await
        }
        Some("throughput") => {
            let bases = args[2].split(',').map(str::to_owned).collect();
            throughput(bases, args[3].parse().expect("rooms"), args[4].parse().expect("seconds")).await
        }
        _ => eprintln!("usage: loadgen idle <base> <pid> <n> | loadgen latency <base> <n>"),
    }
}
