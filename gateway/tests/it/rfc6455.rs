//! RFC 6455 failures close the connection with the right code instead of a bare FIN:
//! 1007 for invalid UTF-8 in a text message, 1002 for protocol violations.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{unique, Server, DEADLINE};

/// A WebSocket client speaking raw bytes, after the handshake and the `hello` frame.
async fn raw(s: &Server, token: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(s.addr).await.expect("connect");
    let request = format!(
        "GET /ws?token={token} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        s.addr
    );
    tcp.write_all(request.as_bytes()).await.expect("handshake");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(tcp.read_u8().await.expect("response"));
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    let (opcode, payload) = frame(&mut tcp).await.expect("hello");
    assert_eq!(opcode, 1);
    assert!(String::from_utf8_lossy(&payload).contains("hello"));
    tcp
}

/// One server frame (unmasked): opcode and payload; `None` at EOF.
async fn frame(tcp: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let b0 = tcp.read_u8().await.ok()?;
    let b1 = tcp.read_u8().await.ok()?;
    let len = match b1 & 0x7f {
        126 => tcp.read_u16().await.ok()? as usize,
        127 => tcp.read_u64().await.ok()? as usize,
        n => n as usize,
    };
    let mut payload = vec![0; len];
    tcp.read_exact(&mut payload).await.ok()?;
    Some((b0 & 0x0f, payload))
}

/// A client frame with the given first byte, masked unless `unmasked`.
fn client_frame(b0: u8, payload: &[u8], unmasked: bool) -> Vec<u8> {
    let mut out = vec![b0];
    let mask_bit = if unmasked { 0 } else { 0x80 };
    if payload.len() < 126 {
        out.push(mask_bit | payload.len() as u8);
    } else {
        out.push(mask_bit | 126);
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    if unmasked {
        out.extend_from_slice(payload);
    } else {
        let key = [0x11, 0x22, 0x33, 0x44];
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    }
    out
}

/// Sends `bytes` and returns the code of the server's close frame (`None`: no close frame).
async fn close_code_after(tcp: &mut TcpStream, bytes: &[u8]) -> Option<u16> {
    tcp.write_all(bytes).await.expect("write");
    loop {
        let (opcode, payload) = tokio::time::timeout(DEADLINE, frame(tcp)).await.expect("answer in time")?;
        if opcode == 8 {
            return Some(u16::from_be_bytes([payload[0], payload[1]]));
        }
    }
}

#[tokio::test]
async fn protocol_violations_close_with_1002_and_bad_utf8_with_1007() {
    let s = Server::start().await;
    let u = s.register(&unique("rfc")).await;
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("invalid UTF-8 in a text frame", client_frame(0x81, &[0x68, 0xff, 0xfe], false), 1007),
        ("unmasked client frame", client_frame(0x81, b"hi", true), 1002),
        ("RSV1 without an extension", client_frame(0xC1, b"hi", false), 1002),
        ("unknown opcode", client_frame(0x83, b"hi", false), 1002),
        ("continuation without a start", client_frame(0x80, b"hi", false), 1002),
        ("control frame over 125 bytes", client_frame(0x89, &[0; 126], false), 1002),
        ("fragmented control frame", client_frame(0x09, b"hi", false), 1002),
        ("1-byte close payload", client_frame(0x88, &[3], false), 1002),
    ];
    for (what, bytes, expected) in &cases {
        let mut tcp = raw(&s, &u.token).await;
        assert_eq!(close_code_after(&mut tcp, bytes).await, Some(*expected), "{what}");
    }
    let counted = s.metric("aurora_ws_protocol_errors_total").await;
    assert_eq!(counted, cases.len() as f64, "each violation is counted");
    // A well-formed frame on a fresh connection still works.
    let mut tcp = raw(&s, &u.token).await;
    tcp.write_all(&client_frame(0x81, br#"{"type":"join","room":"general"}"#, false)).await.unwrap();
    let (opcode, payload) = frame(&mut tcp).await.expect("joined");
    assert_eq!(opcode, 1);
    assert!(String::from_utf8_lossy(&payload).contains("joined"));
    s.stop().await;
}
