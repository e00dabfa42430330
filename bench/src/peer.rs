//! Protocol adapters: how each server under test is connected to, joined, published to, and how
//! its frames are read (deliveries carry the body's timestamp marker, acks and pings are told
//! apart without parsing JSON).

use anyhow::{bail, Context};
use clap::ValueEnum;
use serde::Serialize;
use serde_json::json;
use std::time::Duration;

use crate::wire::Conn;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Peer {
    /// AuroraChat, embedded mode (one process, store on disk).
    Aurora,
    /// AuroraChat, distributed mode: two gateways, one consumer, Kafka, Redis, FerretDB.
    AuroraDistributed,
    /// Centrifugo v6 (memory engine, JSON protocol, client-side publish).
    Centrifugo,
    /// Socket.IO 4.8 on Node.js (rooms + `io.to(room).emit`).
    SocketIo,
    /// Minimal tokio-tungstenite broadcast server: the ceiling (queued frames fed, one flush).
    Raw,
    /// The same server writing every frame on its own (`write_buffer_size(0)`).
    RawUnbatched,
}

/// What a client needs to authenticate; made once per user before the connections.
#[derive(Clone, Debug)]
pub enum Credential {
    None,
    Token(String),
}

impl Peer {
    pub fn name(self) -> &'static str {
        match self {
            Peer::Aurora => "AuroraChat (embedded)",
            Peer::AuroraDistributed => "AuroraChat (distributed)",
            Peer::Centrifugo => "Centrifugo 6.9.1",
            Peer::SocketIo => "Socket.IO 4.8",
            Peer::Raw => "raw tokio-tungstenite",
            Peer::RawUnbatched => "raw, unbatched writes",
        }
    }

    pub fn url(self, base: &str, room: &str) -> String {
        let ws = base.replacen("http", "ws", 1);
        match self {
            Peer::Aurora | Peer::AuroraDistributed => format!("{ws}/ws"),
            Peer::Centrifugo => format!("{ws}/connection/websocket"),
            Peer::SocketIo => format!("{ws}/socket.io/?EIO=4&transport=websocket"),
            Peer::Raw | Peer::RawUnbatched => format!("{ws}/{room}"),
        }
    }

    /// Connects the session and joins `room`; returns once the server confirmed the join.
    pub async fn handshake(self, ws: &mut Conn, room: &str, cred: &Credential) -> anyhow::Result<()> {
        match self {
            Peer::Aurora | Peer::AuroraDistributed => {
                expect(ws, |f| f.contains("\"type\":\"hello\"")).await?;
                send(ws, json!({"type":"join","room":room,"ref":"j"}).to_string()).await?;
                expect(ws, |f| f.contains("\"type\":\"joined\"")).await
            }
            Peer::Centrifugo => {
                let Credential::Token(token) = cred else { bail!("centrifugo needs a token") };
                send(ws, json!({"id":1,"connect":{"token":token}}).to_string()).await?;
                expect(ws, |f| f.contains("\"id\":1,\"connect\"")).await?;
                send(ws, json!({"id":2,"subscribe":{"channel":room}}).to_string()).await?;
                expect(ws, |f| f.contains("\"id\":2,\"subscribe\"")).await
            }
            Peer::SocketIo => {
                expect(ws, |f| f.starts_with('0')).await?;
                send(ws, "40".to_owned()).await?;
                expect(ws, |f| f.starts_with("40")).await?;
                send(ws, format!("421{}", json!(["join", room]))).await?;
                expect(ws, |f| f.starts_with("431")).await
            }
            Peer::Raw | Peer::RawUnbatched => Ok(()),
        }
    }

    /// The frame that publishes `body` to `room` and asks for an ack.
    /// A publish frame; `id` counts the connection's publishes.
    pub fn publish(self, room: &str, body: &str, id: u64) -> String {
        match self {
            // With a nonce, as the web client sends every message (a claim per send).
            Peer::Aurora | Peer::AuroraDistributed => {
                json!({"type":"send","room":room,"body":body,"nonce":nonce()}).to_string()
            }
            Peer::Centrifugo => json!({"id": id + 10, "publish": {"channel": room, "data": body}}).to_string(),
            Peer::SocketIo => format!("42{}{}", id + 10, json!(["msg", room, body])),
            Peer::Raw | Peer::RawUnbatched => json!({"room": room, "body": body}).to_string(),
        }
    }

    /// Acks of our publishes in one frame (Centrifugo packs several replies into one frame).
    pub fn acks_in(self, frame: &[u8]) -> usize {
        let count = |needle: &[u8]| memchr::memmem::find_iter(frame, needle).count();
        match self {
            Peer::Aurora | Peer::AuroraDistributed => count(b"\"type\":\"ack\""),
            Peer::Centrifugo => count(b"\"publish\":{}"),
            Peer::SocketIo => usize::from(frame.starts_with(b"43")),
            Peer::Raw | Peer::RawUnbatched => usize::from(frame == b"{\"ack\":1}"),
        }
    }

    /// An application-level ping that must be answered (WebSocket pings are answered by
    /// tungstenite itself). Centrifugo's ping is an empty reply, `{}`, and it packs it into the
    /// same frame as pushes when a connection's queue holds several (one per line): a client
    /// that only answers a frame that is exactly `{}` misses those, and Centrifugo closes the
    /// connection after its pong timeout (the earlier runs' "connections closed" past ~500 msg/s).
    pub fn pong_for(self, frame: &[u8]) -> Option<&'static str> {
        match self {
            Peer::Centrifugo if frame.split(|b| *b == b'\n').any(|line| line == b"{}") => Some("{}"),
            Peer::SocketIo if frame == b"2" => Some("3"),
            _ => None,
        }
    }
}

/// Publishes `body` from a member of `room` and waits for it to come back as a delivery.
pub async fn round_trip(peer: Peer, ws: &mut Conn, room: &str, body: &str) -> anyhow::Result<Duration> {
    let started = tokio::time::Instant::now();
    send(ws, peer.publish(room, body, 0)).await?;
    expect(ws, |f| f.contains(body) && !f.contains("\"type\":\"ack\"")).await?;
    Ok(started.elapsed())
}

async fn send(ws: &mut Conn, text: String) -> anyhow::Result<()> {
    ws.send_text(&text).await.context("send")
}

async fn expect(ws: &mut Conn, want: impl Fn(&str) -> bool) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match ws.next_text(left).await.context("handshake")? {
            Some(t) if want(&t) => return Ok(()),
            Some(t) if t.contains("\"error\"") => bail!("server refused: {t}"),
            Some(_) => {}
            None => bail!("closed during handshake"),
        }
    }
}

/// A nonce unique in this run (users are registered per run, so across runs too).
fn nonce() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!("n{:x}", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}
