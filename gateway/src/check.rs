//! `aurora-gateway check URL`: an end-to-end smoke test of a running installation (the
//! chart's `helm test` pod). Registers two users, joins both to a room over `/ws`, sends
//! one message from the first and waits for it at the second. Exits non-zero, saying
//! which step failed, otherwise.

use anyhow::{anyhow, bail, Context};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const STEP: Duration = Duration::from_secs(10);

/// `base` is `http://host:port`; `room` must exist (a default room such as `general`).
pub async fn run(base: &str, room: &str) -> anyhow::Result<()> {
    let authority = base.strip_prefix("http://").ok_or_else(|| anyhow!("URL must start with http://"))?;
    let authority = authority.trim_end_matches('/');
    let suffix = uuid::Uuid::now_v7().simple().to_string();
    let alice = register(authority, &format!("check-a-{}", &suffix[20..])).await.context("register the first user")?;
    let bob = register(authority, &format!("check-b-{}", &suffix[20..])).await.context("register the second user")?;
    let mut a = connect(authority, &alice).await.context("open /ws for the first user")?;
    let mut b = connect(authority, &bob).await.context("open /ws for the second user")?;
    for ws in [&mut a, &mut b] {
        send(ws, json!({"type": "join", "room": room})).await?;
        until(ws, "joined", |v| v["type"] == "joined" && v["room"] == room).await.context("join the room")?;
    }
    let body = format!("helm test {suffix}");
    send(&mut a, json!({"type": "send", "room": room, "body": body, "nonce": suffix})).await?;
    until(&mut a, "ack", |v| v["type"] == "ack").await.context("the send was not acknowledged")?;
    until(&mut b, "message", |v| v["type"] == "message" && v["body"] == body)
        .await
        .context("the message did not reach the second user")?;
    println!("ok: two users exchanged a message in {room} through {base}");
    Ok(())
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// `POST /api/auth/register` over a plain HTTP/1.1 connection; returns the token.
async fn register(authority: &str, username: &str) -> anyhow::Result<String> {
    let body = json!({"username": username, "password": "helm test password 1"}).to_string();
    let request = format!(
        "POST /api/auth/register HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let response = tokio::time::timeout(STEP, async {
        let mut tcp = TcpStream::connect(authority).await?;
        tcp.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        tcp.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    })
    .await
    .context("timed out")??;
    let text = String::from_utf8_lossy(&response);
    let (head, payload) = text.split_once("\r\n\r\n").ok_or_else(|| anyhow!("not an HTTP response"))?;
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "201" {
        bail!("status {status}: {payload}");
    }
    let v: Value = serde_json::from_str(payload).context("response is not JSON")?;
    v["token"].as_str().map(str::to_owned).ok_or_else(|| anyhow!("no token in {payload}"))
}

async fn connect(authority: &str, token: &str) -> anyhow::Result<Ws> {
    let mut request = format!("ws://{authority}/ws").into_client_request()?;
    request.headers_mut().insert("authorization", format!("Bearer {token}").parse()?);
    let (ws, _) =
        tokio::time::timeout(STEP, tokio_tungstenite::connect_async(request)).await.context("timed out")??;
    Ok(ws)
}

async fn send(ws: &mut Ws, frame: Value) -> anyhow::Result<()> {
    ws.send(Message::Text(frame.to_string().into())).await.context("WebSocket send")
}

/// Reads frames until one matches; an `error` frame fails the step.
async fn until(ws: &mut Ws, what: &str, matches: impl Fn(&Value) -> bool) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let next = tokio::time::timeout_at(deadline, ws.next()).await.with_context(|| format!("no {what} in time"))?;
        let text = match next {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(c))) => bail!("closed by the server: {c:?}"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e).context("WebSocket read"),
            None => bail!("connection closed"),
        };
        let v: Value = serde_json::from_str(&text).context("server frame is not JSON")?;
        if v["type"] == "error" {
            bail!("server error while waiting for {what}: {text}");
        }
        if matches(&v) {
            return Ok(());
        }
    }
}
