//! Test harness: a gateway on 127.0.0.1:0 (in-process or as the real binary),
//! an HTTP client and a WebSocket client with deadlines.

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use aurora_core::config::Config;
use aurora_gateway::Wiring;

pub const DEADLINE: Duration = Duration::from_secs(10);

/// A name no other test uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}{}x{}", std::process::id() % 10000, N.fetch_add(1, Ordering::Relaxed))
}

/// Waits for `check` to return `Some`, polling, up to `DEADLINE`.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub struct Server {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    pub async fn start() -> Server {
        Self::start_with(|_| {}).await
    }

    /// Starts an in-process gateway with a fresh data dir; `tune` adjusts the config.
    pub async fn start_with(tune: impl FnOnce(&mut Config)) -> Server {
        Self::start_wired(tune, |_| {}).await
    }

    /// Like [`Server::start_with`]; `rewire` may wrap the ports (fault injection).
    pub async fn start_wired(tune: impl FnOnce(&mut Config), rewire: impl FnOnce(&mut Wiring)) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::for_tests(dir.path().to_path_buf());
        tune(&mut config);
        config.validate().expect("valid config");
        let mut wiring = aurora_gateway::wire(&config).await.expect("wire");
        rewire(&mut wiring);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(aurora_gateway::serve_wired(config, wiring, listener, shutdown.clone()));
        Server { addr, http: reqwest::Client::new(), shutdown, task, _dir: dir }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let result = tokio::time::timeout(DEADLINE, self.task).await.expect("stops in time");
        result.expect("task").expect("serve ok");
    }

    pub async fn register(&self, name: &str) -> Session {
        register_at(&self.http, &self.url(""), name).await
    }

    pub async fn ws(&self, token: &str) -> Client {
        Client::connect(self.addr, token).await
    }

    /// Registers a new user and opens one connection, past `hello`.
    pub async fn user(&self, prefix: &str) -> (Session, Client) {
        let s = self.register(&unique(prefix)).await;
        let mut c = self.ws(&s.token).await;
        c.recv_type("hello").await;
        (s, c)
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let r = self.http.get(self.url(path)).bearer_auth(token).send().await.expect("GET");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut req = self.http.post(self.url(path)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.expect("POST");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn metric(&self, name: &str) -> f64 {
        let text = self.http.get(self.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
        text.lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

#[derive(Debug, Clone)]
pub struct Session {
    pub token: String,
    pub id: String,
    pub name: String,
    /// The refresh cookie's value (`aurora_refresh`), as `Set-Cookie` handed it out.
    pub refresh: String,
}

/// The value of the `aurora_refresh` cookie a response sets, if any.
pub fn refresh_cookie(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("aurora_refresh=")?.split(';').next().map(str::to_owned))
}

pub async fn register_at(http: &reqwest::Client, base: &str, name: &str) -> Session {
    let r = http
        .post(format!("{base}/api/auth/register"))
        .json(&json!({ "username": name, "password": "correct horse battery" }))
        .send()
        .await
        .expect("register");
    assert_eq!(r.status().as_u16(), 201, "register {name}");
    let refresh = refresh_cookie(&r).expect("register sets the refresh cookie");
    let v: Value = r.json().await.expect("json");
    Session {
        token: v["token"].as_str().expect("token").to_owned(),
        id: v["user"]["id"].as_str().expect("id").to_owned(),
        name: name.to_owned(),
        refresh,
    }
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct Client {
    pub ws: Ws,
    /// Pings seen while reading.
    pub pings: usize,
}

/// How a connection ended.
#[derive(Debug, PartialEq)]
pub enum Ended {
    Close(Option<u16>),
    /// TCP closed without a close frame.
    Dropped,
}

impl Client {
    pub async fn connect(addr: SocketAddr, token: &str) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(ws_request(addr, token)).await.expect("ws connect");
        Client { ws, pings: 0 }
    }

    pub async fn send(&mut self, frame: Value) {
        self.ws.send(Message::Text(frame.to_string().into())).await.expect("ws send");
    }

    pub async fn send_raw(&mut self, msg: Message) {
        self.ws.send(msg).await.expect("ws send raw");
    }

    /// The next text frame as JSON.
    pub async fn recv(&mut self) -> Value {
        self.recv_within(DEADLINE).await
    }

    /// The next text frame as JSON, waiting up to `limit`.
    pub async fn recv_within(&mut self, limit: Duration) -> Value {
        loop {
            let next = tokio::time::timeout(limit, self.ws.next()).await.expect("frame within deadline");
            match next {
                Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).expect("server sends JSON"),
                Some(Ok(Message::Ping(_))) => self.pings += 1,
                Some(Ok(Message::Pong(_))) => {}
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Skips frames until one of type `ty`.
    pub async fn recv_type(&mut self, ty: &str) -> Value {
        loop {
            let v = self.recv().await;
            if v["type"] == ty {
                return v;
            }
        }
    }

    /// The next frame of type `ty`, waiting up to `limit` for each frame.
    #[allow(dead_code)] // the distributed suite's
    pub async fn recv_type_within(&mut self, ty: &str, limit: Duration) -> Value {
        loop {
            let v = self.recv_within(limit).await;
            if v["type"] == ty {
                return v;
            }
        }
    }

    /// Sends a frame and returns the reply that echoes `ref`.
    pub async fn request(&mut self, mut frame: Value) -> Value {
        let r = unique("ref");
        frame["ref"] = Value::String(r.clone());
        self.send(frame).await;
        loop {
            let v = self.recv().await;
            if v["ref"] == r.as_str() {
                return v;
            }
        }
    }

    pub async fn join(&mut self, room: &str) -> Value {
        let v = self.request(json!({"type":"join","room":room})).await;
        assert_eq!(v["type"], "joined", "join {room}: {v}");
        v
    }

    /// Sends a message and waits for its ack.
    pub async fn say(&mut self, room: &str, body: &str) -> Value {
        let v = self.request(json!({"type":"send","room":room,"body":body})).await;
        assert_eq!(v["type"], "ack", "send: {v}");
        v
    }

    /// Reads until the connection ends, ignoring frames.
    pub async fn ended(&mut self) -> Ended {
        loop {
            let next = tokio::time::timeout(DEADLINE * 2, self.ws.next()).await.expect("ends within deadline");
            match next {
                Some(Ok(Message::Close(frame))) => return Ended::Close(frame.map(|f| u16::from(f.code))),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Ended::Dropped,
            }
        }
    }
}

/// The upgrade request of a non-browser client: `GET /ws` with `Authorization: Bearer`.
pub fn ws_request(addr: SocketAddr, token: &str) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut req = format!("ws://{addr}/ws").into_client_request().expect("request");
    req.headers_mut().insert("authorization", format!("Bearer {token}").parse().expect("header"));
    req
}

pub fn close_code(code: u16) -> Ended {
    Ended::Close(Some(u16::from(CloseCode::from(code))))
}

/// Connects with a tiny receive buffer and a small read buffer, for slow-consumer tests.
pub async fn connect_small(addr: SocketAddr, token: &str) -> Ws {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let stream = socket.connect(addr).await.expect("connect");
    let req = ws_request(addr, token);
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let (ws, _) = tokio_tungstenite::client_async_with_config(req, MaybeTlsStream::Plain(stream), Some(config))
        .await
        .expect("handshake");
    ws
}

/// The real `aurora-gateway` binary, for restart and signal tests.
pub struct Binary {
    pub child: tokio::process::Child,
    pub addr: SocketAddr,
}

impl Binary {
    pub async fn start(data_dir: &Path, extra_env: &[(&str, &str)]) -> Binary {
        Self::start_limited(data_dir, extra_env, None).await
    }

    /// Like [`Binary::start`], with the open-file limit set to `files`.
    pub async fn start_limited(data_dir: &Path, extra_env: &[(&str, &str)], files: Option<u64>) -> Binary {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_aurora-gateway"));
        cmd.env("AURORA_LISTEN", "127.0.0.1:0")
            .env("AURORA_REGISTER_RATE", "100000/1s")
            .env("AURORA_LOGIN_RATE", "100000/1s")
            .env("AURORA_DATA_DIR", data_dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        if let Some(files) = files {
            // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    let limit = libc::rlimit { rlim_cur: files, rlim_max: files };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let mut child = cmd.spawn().expect("spawn gateway binary");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(DEADLINE, lines.next_line())
            .await
            .expect("gateway prints its address")
            .expect("read stdout")
            .expect("a line");
        let addr = line.rsplit("http://").next().expect("address").parse().expect("socket address");
        Binary { child, addr }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sends SIGTERM and waits for the exit.
    pub async fn terminate_later(self) -> std::process::ExitStatus {
        self.terminate().await
    }

    /// Sends SIGTERM and waits for the exit.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("pid").to_string();
        let status = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
        assert!(status.success());
        tokio::time::timeout(DEADLINE * 2, self.child.wait()).await.expect("exits in time").expect("wait")
    }
}

pub fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().to_path_buf();
    (dir, path)
}

/// Every stored message of a room, oldest first, paged over REST.
pub async fn stored(base: &str, token: &str, room: &str) -> Vec<Value> {
    let http = reqwest::Client::new();
    let mut all = Vec::new();
    let mut before: Option<u64> = None;
    loop {
        let url = match before {
            Some(b) => format!("{base}/api/rooms/{room}/messages?limit=100&before={b}"),
            None => format!("{base}/api/rooms/{room}/messages?limit=100"),
        };
        let v: Value = http.get(url).bearer_auth(token).send().await.unwrap().json().await.unwrap();
        let page = v["messages"].as_array().unwrap().clone();
        if page.is_empty() {
            break;
        }
        before = page[0]["seq"].as_u64();
        all.splice(0..0, page);
    }
    all
}

/// Sends `count` messages with nonces `<prefix>-<i>` without waiting; returns the nonces.
pub async fn burst(client: &mut Client, room: &str, prefix: &str, count: usize) -> Vec<String> {
    let nonces: Vec<String> = (0..count).map(|i| format!("{prefix}-{i}")).collect();
    for n in &nonces {
        client.send(json!({"type":"send","room":room,"body":format!("body {n}"),"nonce":n,"ref":n})).await;
    }
    nonces
}

/// Re-sends every nonce with its body, as a client does after reconnecting, and
/// waits for an `ack` to each; returns nonce → id.
pub async fn resend_all(
    client: &mut Client,
    room: &str,
    nonces: &[String],
) -> std::collections::HashMap<String, String> {
    for n in nonces {
        client.send(json!({"type":"send","room":room,"body":format!("body {n}"),"nonce":n,"ref":n})).await;
    }
    let mut acked = std::collections::HashMap::new();
    while acked.len() < nonces.len() {
        let v = client.recv().await;
        match v["type"].as_str() {
            Some("ack") => {
                acked.insert(v["nonce"].as_str().unwrap().to_owned(), v["id"].as_str().unwrap().to_owned());
            }
            Some("error") => panic!("re-send refused: {v}"),
            _ => {}
        }
    }
    acked
}

/// Every nonce is stored exactly once, under the id its ack named, with gap-free seq from 1.
pub fn assert_stored_once(all: &[Value], acked: &std::collections::HashMap<String, String>) {
    let seqs: Vec<u64> = all.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=all.len() as u64).collect::<Vec<_>>(), "gap-free seq");
    let mut seen = std::collections::HashMap::new();
    for m in all {
        let n = m["nonce"].as_str().expect("stored with its nonce").to_owned();
        assert!(seen.insert(n.clone(), m["id"].as_str().unwrap().to_owned()).is_none(), "nonce {n} stored twice");
    }
    assert_eq!(seen.len(), acked.len(), "every acked nonce stored, nothing else");
    for (n, id) in acked {
        assert_eq!(seen.get(n), Some(id), "nonce {n}: the ack names the stored id");
    }
}
