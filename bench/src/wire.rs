//! The load generator's WebSocket client: just enough of RFC 6455 to read a server's frames in
//! place. A read fills a per-connection buffer and every complete frame in it is handed out as a
//! borrowed slice: no allocation, no copy and no UTF-8 check per frame (tokio-tungstenite does all
//! three, and at ~1 M deliveries/s that made the load generator, not the server, the limit: it
//! ran at 90–98 % of its core while the raw server sat at 76–88 % of its own).
//!
//! Frames to the server are masked with an all-zero key (a valid key: the payload goes out as
//! is). Servers here never fragment their frames; a continuation frame is read like any other.

use anyhow::{bail, Context};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bytes read per `read()` at least; a frame larger than the free space grows the buffer.
const READ_CHUNK: usize = 16 * 1024;

const OP_TEXT: u8 = 0x1;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// One frame from the server.
pub enum Frame<'a> {
    /// Text, binary or continuation payload.
    Data(&'a [u8]),
    Ping(&'a [u8]),
    Close,
    /// A pong or another control frame: nothing to do.
    Other,
}

pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Unparsed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// Frames waiting for [`Conn::flush`].
    out: Vec<u8>,
}

impl Conn {
    /// Upgrades `stream` with a GET of `path` (and `headers`, `name: value` each).
    pub async fn upgrade(mut stream: TcpStream, host: &str, path: &str, headers: &[String]) -> anyhow::Result<Conn> {
        let mut req = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: YXVyb3JhLWJlbmNoLWtleQ==\r\nSec-WebSocket-Version: 13\r\n"
        );
        for h in headers {
            req.push_str(h);
            req.push_str("\r\n");
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes()).await.context("send the upgrade request")?;
        let mut conn = Conn { stream, buf: vec![0; READ_CHUNK], start: 0, end: 0, out: Vec::new() };
        loop {
            if let Some(at) = memchr::memmem::find(&conn.buf[..conn.end], b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&conn.buf[..at]).into_owned();
                let status = head.lines().next().unwrap_or_default();
                if !status.starts_with("HTTP/1.1 101") {
                    bail!("upgrade refused: {status}");
                }
                conn.start = at + 4;
                return Ok(conn);
            }
            if conn.fill().await? == 0 {
                bail!("closed during the upgrade");
            }
        }
    }

    /// Reads once more into the buffer; returns the bytes read (0: closed).
    async fn fill(&mut self) -> anyhow::Result<usize> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        }
        if self.buf.len() - self.end < READ_CHUNK {
            // Move what is unparsed to the front, and grow if that is not enough.
            self.buf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
            if self.buf.len() - self.end < READ_CHUNK {
                self.buf.resize(self.end + READ_CHUNK, 0);
            }
        }
        let n = self.stream.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n)
    }

    /// Waits for more bytes (cancel safe: nothing is lost if the future is dropped). `false`
    /// once the server closed the connection.
    pub async fn read_more(&mut self) -> anyhow::Result<bool> {
        Ok(self.fill().await? > 0)
    }

    /// The next complete frame already read, if any.
    pub fn frame(&mut self) -> anyhow::Result<Option<Frame<'_>>> {
        let avail = &self.buf[self.start..self.end];
        if avail.len() < 2 {
            return Ok(None);
        }
        let (b0, b1) = (avail[0], avail[1]);
        if b1 & 0x80 != 0 {
            bail!("the server sent a masked frame");
        }
        let (len, header) = match b1 & 0x7F {
            126 if avail.len() >= 4 => (u64::from(u16::from_be_bytes([avail[2], avail[3]])), 4),
            127 if avail.len() >= 10 => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&avail[2..10]);
                (u64::from_be_bytes(n), 10)
            }
            126 | 127 => return Ok(None),
            n => (u64::from(n), 2),
        };
        let len = usize::try_from(len).context("frame length")?;
        if avail.len() < header + len {
            return Ok(None);
        }
        let at = self.start + header;
        self.start = at + len;
        let payload = &self.buf[at..at + len];
        Ok(Some(match b0 & 0x0F {
            OP_PING => Frame::Ping(payload),
            OP_CLOSE => Frame::Close,
            OP_PONG => Frame::Other,
            op if op < 0x8 => Frame::Data(payload),
            _ => Frame::Other,
        }))
    }

    /// Queues a text frame for the next [`Conn::flush`].
    pub fn queue_text(&mut self, payload: &[u8]) {
        self.queue(OP_TEXT, payload);
    }

    /// Queues the pong that answers a ping with `payload`.
    pub fn queue_pong(&mut self, payload: &[u8]) {
        self.queue(OP_PONG, payload);
    }

    fn queue(&mut self, op: u8, payload: &[u8]) {
        self.out.push(0x80 | op);
        match payload.len() {
            n if n < 126 => self.out.push(0x80 | n as u8),
            n if n <= usize::from(u16::MAX) => {
                self.out.push(0x80 | 126);
                self.out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                self.out.push(0x80 | 127);
                self.out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        self.out.extend_from_slice(&[0; 4]); // the masking key: all zero, so no XOR
        self.out.extend_from_slice(payload);
    }

    /// Writes every queued frame in one `write_all`.
    pub async fn flush(&mut self) -> anyhow::Result<()> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await.context("write")?;
            self.out.clear();
        }
        Ok(())
    }

    pub async fn send_text(&mut self, text: &str) -> anyhow::Result<()> {
        self.queue_text(text.as_bytes());
        self.flush().await
    }

    /// The next text frame, answering pings on the way; `None` once the server closed.
    pub async fn next_text(&mut self, within: Duration) -> anyhow::Result<Option<String>> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let mut pong = None;
            match self.frame()? {
                Some(Frame::Data(p)) => return Ok(Some(String::from_utf8_lossy(p).into_owned())),
                Some(Frame::Ping(p)) => pong = Some(p.to_vec()),
                Some(Frame::Close) => return Ok(None),
                Some(Frame::Other) => continue,
                None => {}
            }
            if let Some(p) = pong {
                self.queue_pong(&p);
                self.flush().await?;
                continue;
            }
            let read = tokio::time::timeout_at(deadline, self.fill()).await.context("no frame in time")?;
            if read? == 0 {
                return Ok(None);
            }
        }
    }

    /// Sends a close frame (best effort).
    pub async fn close(&mut self) {
        self.queue(OP_CLOSE, &[]);
        let _ = self.flush().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    /// A tokio-tungstenite server echoes what the client sends and sends a ping, a 70 KiB
    /// frame (past the read chunk, 8-byte length) and a close: the client reads each whole.
    #[tokio::test]
    async fn talks_to_a_tungstenite_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
            let Some(Ok(Message::Text(t))) = ws.next().await else { panic!("no text") };
            ws.send(Message::Text(format!("echo {t}").into())).await.unwrap();
            ws.send(Message::Ping(b"p".to_vec().into())).await.unwrap();
            ws.send(Message::Text("x".repeat(70_000).into())).await.unwrap();
            let Some(Ok(Message::Pong(p))) = ws.next().await else { panic!("no pong") };
            assert_eq!(&p[..], b"p");
            ws.send(Message::Close(None)).await.unwrap();
        });
        let stream = TcpStream::connect(addr).await.unwrap();
        let mut conn = Conn::upgrade(stream, &addr.to_string(), "/", &[]).await.unwrap();
        conn.send_text("hello").await.unwrap();
        let within = Duration::from_secs(5);
        assert_eq!(conn.next_text(within).await.unwrap().as_deref(), Some("echo hello"));
        assert_eq!(conn.next_text(within).await.unwrap().map(|t| t.len()), Some(70_000));
        assert_eq!(conn.next_text(within).await.unwrap(), None, "the close ends the stream");
        server.await.unwrap();
    }
}
