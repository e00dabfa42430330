//! Steady chat load through installed gateways, as impatient real clients make it: each
//! client sends one message at a time with a nonce and waits for its ack; when the
//! connection ends (1001 on a drain, a reset, a refused connect) it reconnects, rejoins
//! and re-sends the unacked message with the same nonce, as the web client does.

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::harness::{Session, Ws};

/// What one client saw.
pub struct ClientLog {
    pub room: String,
    /// Nonces in the order they were acked, with the ids the acks named.
    pub acked: Vec<(String, String)>,
    /// Longest time between two acks (a reconnect shows here).
    pub longest_gap: Duration,
    pub reconnects: usize,
}

/// What a client is doing now, for failure messages.
type Doing = std::sync::Arc<std::sync::Mutex<String>>;

pub struct Load {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<ClientLog>>,
    progress: Vec<std::sync::Arc<std::sync::atomic::AtomicUsize>>,
    doing: Vec<Doing>,
}

impl Load {
    /// One client per session, in `rooms` round-robin, each sending every `pace`.
    pub fn start(addr: SocketAddr, sessions: Vec<Session>, rooms: &[String], pace: Duration) -> Load {
        let stop = CancellationToken::new();
        let mut tasks = Vec::new();
        let mut progress = Vec::new();
        let mut doing = Vec::new();
        for (i, session) in sessions.into_iter().enumerate() {
            let counter = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            progress.push(counter.clone());
            let now: Doing = Default::default();
            doing.push(now.clone());
            let room = rooms[i % rooms.len()].clone();
            tasks.push(tokio::spawn(client(addr, session, room, pace, stop.clone(), counter, now)));
        }
        Load { stop, tasks, progress, doing }
    }

    /// Acks so far, per client.
    pub fn acks(&self) -> Vec<usize> {
        self.progress.iter().map(|c| c.load(std::sync::atomic::Ordering::Relaxed)).collect()
    }

    /// Waits until every client has `more` acks beyond what it had when called.
    pub async fn every_client_gets(&self, more: usize, what: &str, limit: Duration) {
        let start = self.acks();
        let deadline = Instant::now() + limit;
        loop {
            let now = self.acks();
            let behind: Vec<usize> = (0..now.len()).filter(|&i| now[i] < start[i] + more).collect();
            if behind.is_empty() {
                return;
            }
            if Instant::now() > deadline {
                let doing: Vec<String> = behind
                    .iter()
                    .take(5)
                    .map(|&i| self.doing[i].lock().map(|d| d.clone()).unwrap_or_default())
                    .collect();
                panic!("{what}: {} clients did not resume within {limit:?}; some were: {doing:#?}", behind.len());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn finish(self) -> Vec<ClientLog> {
        self.stop.cancel();
        let mut logs = Vec::new();
        for t in self.tasks {
            logs.push(t.await.expect("load client"));
        }
        logs
    }
}

async fn connect(addr: SocketAddr, token: &str, room: &str) -> Option<Ws> {
    let mut request = format!("ws://{addr}/ws").into_client_request().expect("request");
    request.headers_mut().insert("authorization", format!("Bearer {token}").parse().expect("header"));
    let (mut ws, _) =
        match tokio::time::timeout(Duration::from_secs(10), tokio_tungstenite::connect_async(request)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                eprintln!("load client: connect failed: {e}");
                return None;
            }
            Err(_) => {
                eprintln!("load client: connect timed out");
                return None;
            }
        };
    ws.send(Message::Text(json!({"type":"join","room":room,"ref":"j"}).to_string().into())).await.ok()?;
    loop {
        let v = next_json(&mut ws, Duration::from_secs(10)).await?;
        match v["type"].as_str() {
            Some("joined") => return Some(ws),
            Some("error") => {
                eprintln!("load client: join refused: {v}");
                return None;
            }
            _ => {}
        }
    }
}

async fn next_json(ws: &mut Ws, limit: Duration) -> Option<Value> {
    loop {
        match tokio::time::timeout(limit, ws.next()).await.ok()?? {
            Ok(Message::Text(t)) => return serde_json::from_str(&t).ok(),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

enum Outcome {
    Acked(String),
    Retry(Duration),
    Lost,
}

/// Sends `nonce` and waits for its ack (other frames skipped).
async fn send_once(ws: &mut Ws, room: &str, nonce: &str) -> Outcome {
    let frame = json!({"type":"send","room":room,"body":format!("load {nonce}"),"nonce":nonce,"ref":nonce});
    if ws.send(Message::Text(frame.to_string().into())).await.is_err() {
        return Outcome::Lost;
    }
    loop {
        let Some(v) = next_json(ws, Duration::from_secs(10)).await else { return Outcome::Lost };
        if v["ref"] != nonce {
            continue;
        }
        return match v["type"].as_str() {
            Some("ack") => Outcome::Acked(v["id"].as_str().unwrap_or_default().to_owned()),
            Some("error") if matches!(v["code"].as_str(), Some("rate_limited" | "unavailable")) => {
                Outcome::Retry(Duration::from_millis(v["retry_after_ms"].as_u64().unwrap_or(200)))
            }
            _ => panic!("send {nonce} refused: {v}"),
        };
    }
}

async fn client(
    addr: SocketAddr,
    session: Session,
    room: String,
    pace: Duration,
    stop: CancellationToken,
    counter: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    doing: Doing,
) -> ClientLog {
    let note = |what: String| {
        if let Ok(mut d) = doing.lock() {
            *d = what;
        }
    };
    let mut log = ClientLog { room: room.clone(), acked: Vec::new(), longest_gap: Duration::ZERO, reconnects: 0 };
    let mut ws: Option<Ws> = None;
    let mut last_ack = Instant::now();
    let mut i = 0usize;
    let mut backoff = Duration::from_millis(100);
    while !stop.is_cancelled() {
        let Some(socket) = ws.as_mut() else {
            note(format!("{}: connecting (reconnects {})", session.name, log.reconnects));
            ws = connect(addr, &session.token, &room).await;
            if ws.is_none() {
                // Exponential backoff with jitter, as the web client reconnects.
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .subsec_nanos();
                let jitter = Duration::from_millis(u64::from(nanos % 100));
                tokio::time::sleep(backoff + jitter).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            } else {
                backoff = Duration::from_millis(100);
            }
            continue;
        };
        let nonce = format!("{}-{i}", session.name);
        note(format!("{}: sending {nonce}", session.name));
        match send_once(socket, &room, &nonce).await {
            Outcome::Acked(id) => {
                log.longest_gap = log.longest_gap.max(last_ack.elapsed());
                last_ack = Instant::now();
                log.acked.push((nonce, id));
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                i += 1;
                tokio::time::sleep(pace).await;
            }
            Outcome::Retry(after) => {
                note(format!("{}: told to retry {nonce} after {after:?}", session.name));
                tokio::time::sleep(after).await
            }
            Outcome::Lost => {
                // The same nonce goes again on the next connection.
                ws = None;
                log.reconnects += 1;
            }
        }
    }
    log
}

/// Every acked message is stored exactly once under its id, each room gap-free from 1,
/// and each client's messages in the order it sent them.
pub fn assert_nothing_lost(logs: &[ClientLog], stored: &HashMap<String, Vec<Value>>) {
    for (room, messages) in stored {
        let acked: HashMap<String, String> =
            logs.iter().filter(|l| &l.room == room).flat_map(|l| l.acked.iter().cloned()).collect();
        crate::harness::assert_stored_once(messages, &acked);
        let position: HashMap<&str, usize> =
            messages.iter().enumerate().map(|(i, m)| (m["nonce"].as_str().unwrap_or_default(), i)).collect();
        for l in logs.iter().filter(|l| &l.room == room) {
            let order: Vec<usize> = l.acked.iter().map(|(n, _)| position[n.as_str()]).collect();
            assert!(order.windows(2).all(|w| w[0] < w[1]), "a client's messages are stored in its send order");
        }
    }
}
