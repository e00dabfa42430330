//! A WebSocket client whose every read has a deadline.

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::{unique, DEADLINE};

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
