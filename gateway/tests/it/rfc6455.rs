//! RFC 6455 failures close the connection with the right code instead of a bare FIN:
//! 1007 for invalid UTF-8 in a text message, 1002 for protocol violations.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{unique, Server, DEADLINE};

/// A WebSocket client speaking raw bytes, after the handshake and the `hello` frame.
async fn raw(s: &Server, token: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(s.addr).await.expect("connect");
    tcp.write_all(upgrade_request(s, token).as_bytes()).await.expect("handshake");
    expect_101(&mut tcp).await;
    let (opcode, payload) = frame(&mut tcp).await.expect("hello");
    assert_eq!(opcode, 1);
    assert!(String::from_utf8_lossy(&payload).contains("hello"));
    tcp
}

/// The opening handshake's request for `token`.
fn upgrade_request(s: &Server, token: &str) -> String {
    format!(
        "GET /ws HTTP/1.1\r\nAuthorization: Bearer {token}\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        s.addr
    )
}

/// Reads the response head and asserts it is `101 Switching Protocols`.
async fn expect_101(tcp: &mut TcpStream) {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(tcp.read_u8().await.expect("response"));
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
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

/// A client may send frames right after its upgrade request, without waiting for the 101:
/// bytes that arrive with the request are the session's first frames, not lost.
#[tokio::test]
async fn a_frame_sent_with_the_upgrade_request_is_answered() {
    let s = Server::start().await;
    let u = s.register(&unique("rfc")).await;
    let mut tcp = TcpStream::connect(s.addr).await.expect("connect");
    let mut bytes = upgrade_request(&s, &u.token).into_bytes();
    bytes.extend(client_frame(0x81, br#"{"type":"join","room":"general","ref":"early"}"#, false));
    tcp.write_all(&bytes).await.expect("request and frame in one write");
    expect_101(&mut tcp).await;
    let hello = next_of(&mut tcp, 1).await;
    assert!(String::from_utf8_lossy(&hello).contains("hello"));
    let joined = String::from_utf8(next_of(&mut tcp, 1).await).expect("UTF-8");
    assert!(joined.contains("joined") && joined.contains("early"), "{joined}");
    s.stop().await;
}

/// The next frame with `opcode`, skipping room traffic (presence, pushes).
async fn next_of(tcp: &mut TcpStream, opcode: u8) -> Vec<u8> {
    loop {
        let (op, payload) = tokio::time::timeout(DEADLINE, frame(tcp)).await.expect("answer in time").expect("open");
        if op == opcode {
            return payload;
        }
    }
}

#[tokio::test]
async fn pings_get_their_pong_closes_their_close_and_fragments_are_one_message() {
    let s = Server::start().await;
    let u = s.register(&unique("rfc")).await;
    let mut tcp = raw(&s, &u.token).await;
    // §5.5.2: a pong echoes the ping's application data.
    tcp.write_all(&client_frame(0x89, b"are-you-there", false)).await.unwrap();
    assert_eq!(next_of(&mut tcp, 0xA).await, b"are-you-there");
    // §5.4: a text message in three fragments, a ping between two of them.
    let join = br#"{"type":"join","room":"general","ref":"frag"}"#;
    tcp.write_all(&client_frame(0x01, &join[..10], false)).await.unwrap();
    tcp.write_all(&client_frame(0x89, b"mid", false)).await.unwrap();
    tcp.write_all(&client_frame(0x00, &join[10..20], false)).await.unwrap();
    tcp.write_all(&client_frame(0x80, &join[20..], false)).await.unwrap();
    assert_eq!(next_of(&mut tcp, 0xA).await, b"mid");
    let joined = String::from_utf8(next_of(&mut tcp, 0x1).await).unwrap();
    assert!(joined.contains(r#""type":"joined""#) && joined.contains(r#""ref":"frag""#), "{joined}");
    // §5.5.1: the server answers a close frame with one, then closes the TCP connection.
    tcp.write_all(&client_frame(0x88, &1000u16.to_be_bytes(), false)).await.unwrap();
    let reply = next_of(&mut tcp, 0x8).await;
    assert_eq!(u16::from_be_bytes([reply[0], reply[1]]), 1000);
    let eof = tokio::time::timeout(DEADLINE, frame(&mut tcp)).await.expect("closed in time");
    assert!(eof.is_none(), "nothing after the close frame");
    s.stop().await;
}

#[tokio::test]
async fn a_bad_opening_handshake_is_refused_with_400_and_no_upgrade() {
    let s = Server::start().await;
    let u = s.register(&unique("rfc")).await;
    let good = [
        ("Upgrade", "websocket"),
        ("Connection", "keep-alive, Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
    ];
    let http = reqwest::Client::new();
    for (i, (what, _)) in good.iter().enumerate() {
        let mut req = http.get(s.url("/ws")).bearer_auth(&u.token);
        for (j, (name, value)) in good.iter().enumerate() {
            if i != j {
                req = req.header(*name, *value);
            }
        }
        let resp = req.send().await.expect("answer");
        assert_eq!(resp.status().as_u16(), 400, "without {what}");
        assert!(resp.headers().get("sec-websocket-accept").is_none(), "without {what}");
    }
    let resp = http
        .get(s.url("/ws"))
        .bearer_auth(&u.token)
        .header("Upgrade", "websocket")
        .header("Connection", "Upgrade")
        .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("Sec-WebSocket-Version", "8")
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status().as_u16(), 400, "an old protocol version");
    // RFC 6455 §1.3's sample key and its accept value.
    let mut tcp = TcpStream::connect(s.addr).await.unwrap();
    let request = format!(
        "GET /ws HTTP/1.1\r\nAuthorization: Bearer {}\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        u.token, s.addr
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(tcp.read_u8().await.expect("response"));
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="), "{head}");
    s.stop().await;
}
