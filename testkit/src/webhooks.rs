//! A real HTTP webhook receiver on `127.0.0.1:0` that checks every request's signature with
//! its own HMAC code (not AuroraChat's), can fail, answer slowly or go down, and a writer for
//! the webhooks file (`AURORA_WEBHOOKS_FILE`).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The secret every test endpoint signs with.
pub const SECRET: &str = "whsec_test_0123456789abcdef";

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub event: String,
    pub attempt: u32,
    pub timestamp: String,
    pub signature: String,
    pub raw: Vec<u8>,
    pub body: Value,
    /// The signature matched [`SECRET`] and the timestamp is within 5 minutes of now.
    pub valid: bool,
    /// What the receiver answered.
    pub status: u16,
    /// When it arrived (unix ms).
    pub at_ms: i64,
}

impl Delivery {
    pub fn room(&self) -> &str {
        self.body["room"].as_str().unwrap_or_default()
    }

    pub fn seq(&self) -> u64 {
        self.body["seq"].as_u64().unwrap_or_default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    Ok,
    /// Answers 500.
    Fail,
    /// Answers 200 after this long.
    Slow(Duration),
}

struct Inner {
    deliveries: Mutex<Vec<Delivery>>,
    mode: Mutex<Mode>,
}

pub struct Receiver {
    inner: Arc<Inner>,
    pub addr: SocketAddr,
    server: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

fn valid(headers: &HeaderMap, raw: &[u8]) -> bool {
    let get = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let (ts, header) = (get("aurora-webhook-timestamp"), get("aurora-webhook-signature"));
    let Ok(ts_n) = ts.parse::<i64>() else { return false };
    if (aurora_core::now_ms() / 1000 - ts_n).abs() > 300 {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("hmac key");
    mac.update(format!("{ts}.").as_bytes());
    mac.update(raw);
    let want = hex::encode(mac.finalize().into_bytes());
    header.split(',').any(|p| p.trim() == format!("v1={want}"))
}

async fn receive(State(inner): State<Arc<Inner>>, headers: HeaderMap, raw: Bytes) -> StatusCode {
    let mode = *inner.mode.lock().expect("mode");
    if let Mode::Slow(d) = mode {
        tokio::time::sleep(d).await;
    }
    let status = if mode == Mode::Fail { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::OK };
    let get = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let delivery = Delivery {
        id: get("aurora-webhook-id"),
        event: get("aurora-webhook-event"),
        attempt: get("aurora-webhook-attempt").parse().unwrap_or_default(),
        timestamp: get("aurora-webhook-timestamp"),
        signature: get("aurora-webhook-signature"),
        valid: valid(&headers, &raw),
        body: serde_json::from_slice(&raw).unwrap_or(Value::Null),
        raw: raw.to_vec(),
        status: status.as_u16(),
        at_ms: aurora_core::now_ms(),
    };
    inner.deliveries.lock().expect("deliveries").push(delivery);
    status
}

impl Receiver {
    pub async fn start() -> Receiver {
        let inner = Arc::new(Inner { deliveries: Mutex::new(Vec::new()), mode: Mutex::new(Mode::Ok) });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind receiver");
        let addr = listener.local_addr().expect("addr");
        let mut r = Receiver { inner, addr, server: None };
        r.serve(listener);
        r
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let app = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(self.inner.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        self.server = Some((tx, task));
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.inner.mode.lock().expect("mode") = mode;
    }

    /// Stops listening and closes its connections: requests are refused until [`Receiver::up`].
    pub async fn down(&mut self) {
        if let Some((tx, task)) = self.server.take() {
            let _ = tx.send(());
            let _ = task.await;
        }
    }

    /// Listens again on the same port.
    pub async fn up(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.expect("bind the receiver's port again");
        self.serve(listener);
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.inner.deliveries.lock().expect("deliveries").clone()
    }

    /// The requests answered 2xx.
    pub fn delivered(&self) -> Vec<Delivery> {
        self.deliveries().into_iter().filter(|d| d.status == 200).collect()
    }

    /// Waits until `check` holds for the deliveries so far, polling, up to `within`.
    pub async fn until(&self, what: &str, within: Duration, check: impl Fn(&[Delivery]) -> bool) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if check(&self.deliveries()) {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "{what}: not within {within:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// One endpoint of a test's webhooks file.
pub struct Hook<'a> {
    pub name: &'a str,
    pub url: String,
    pub rooms: &'a str,
    pub retry_for: &'a str,
}

/// The webhooks file a test's consumer delivers from.
pub struct HookFile {
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl HookFile {
    pub fn new(hooks: &[Hook<'_>]) -> HookFile {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("webhooks.yaml");
        let mut text = String::from("endpoints:\n");
        for h in hooks {
            text.push_str(&format!(
                "  - name: {}\n    url: {}\n    secrets: [{SECRET}]\n    rooms: [\"{}\"]\n    timeout: 30s\n    retry_for: {}\n",
                h.name, h.url, h.rooms, h.retry_for
            ));
        }
        std::fs::write(&path, text).expect("write webhooks file");
        HookFile { path, _dir: dir }
    }

    pub fn env(&self) -> (&'static str, String) {
        ("AURORA_WEBHOOKS_FILE", self.path.display().to_string())
    }
}
