//! The raw ceiling: the least a WebSocket broadcast server can do. The request path names the
//! room; every text frame a member sends is acked to the sender (`{"ack":1}`) and its bytes are
//! shared, unchanged, with every member of the room. Each connection has a bounded queue
//! (overflow: the frame is dropped for that member) drained by a writer that feeds every queued
//! frame and flushes once. Read buffers are 4 KiB.
//!
//! Batched (the ceiling) keeps tungstenite's write buffer, so the frames fed between two flushes
//! leave in one `write()`. Unbatched (`--unbatched`, a second row) sets `write_buffer_size(0)`:
//! every frame is its own `write()`, which is what a server that writes as it goes pays.

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

const QUEUE: usize = 4096;

type Member = (u64, mpsc::Sender<Utf8Bytes>);

#[derive(Default)]
struct Rooms {
    rooms: Mutex<HashMap<String, Vec<Member>>>,
}

impl Rooms {
    fn join(&self, room: &str, id: u64, tx: mpsc::Sender<Utf8Bytes>) {
        let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        rooms.entry(room.to_owned()).or_default().push((id, tx));
    }

    fn leave(&self, room: &str, id: u64) {
        let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(members) = rooms.get_mut(room) {
            members.retain(|(m, _)| *m != id);
        }
    }

    fn broadcast(&self, room: &str, frame: &Utf8Bytes) {
        let rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        for (_, tx) in rooms.get(room).into_iter().flatten() {
            let _ = tx.try_send(frame.clone());
        }
    }
}

pub async fn serve(listen: &str, unbatched: bool) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).await.with_context(|| format!("bind {listen}"))?;
    println!("listening on http://{}", listener.local_addr()?);
    let rooms = Arc::new(Rooms::default());
    let mut next_id = 0u64;
    loop {
        let (stream, _) = listener.accept().await?;
        next_id += 1;
        tokio::spawn(session(stream, next_id, rooms.clone(), unbatched));
    }
}

// The handshake callback's error type (an HTTP response) is tokio-tungstenite's.
#[allow(clippy::result_large_err)]
async fn session(stream: TcpStream, id: u64, rooms: Arc<Rooms>, unbatched: bool) {
    let _ = stream.set_nodelay(true);
    let mut path = String::new();
    let mut config = WebSocketConfig::default().read_buffer_size(4096);
    if unbatched {
        config = config.write_buffer_size(0);
    }
    let callback = |req: &Request, resp: Response| {
        path = req.uri().path().trim_start_matches('/').to_owned();
        Ok(resp)
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await else {
        return;
    };
    let room = path;
    let (mut sink, mut source) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Utf8Bytes>(QUEUE);
    rooms.join(&room, id, tx.clone());
    let writer = tokio::spawn(async move {
        let mut batch = Vec::with_capacity(64);
        while rx.recv_many(&mut batch, 256).await > 0 {
            for frame in batch.drain(..) {
                if sink.feed(Message::Text(frame)).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    let ack = Utf8Bytes::from_static("{\"ack\":1}");
    while let Some(Ok(msg)) = source.next().await {
        if let Message::Text(frame) = msg {
            let _ = tx.try_send(ack.clone());
            rooms.broadcast(&room, &frame);
        }
    }
    rooms.leave(&room, id);
    drop(tx);
    writer.abort();
}
