//! An example bot for AuroraChat (docs/server-api.md): it connects with a server API key
//! (scopes `read` and `publish`) over the same WebSocket protocol as the web client, joins
//! rooms, and answers commands as a reply:
//!
//! - `!echo <text>` → `<text>`
//! - `!time` → the server's time (unix ms of the command)
//!
//! ```sh
//! AURORA_URL=ws://127.0.0.1:8080/ws AURORA_API_KEY=ak_… AURORA_BOT_ROOMS=general aurora-echo-bot
//! ```
//!
//! It reconnects (with a growing pause) whenever the connection ends.

#![forbid(unsafe_code)]

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

/// The answer to one message, if it is a command (never to a bot, itself included).
fn answer(m: &Value) -> Option<String> {
    if m["user"]["id"].as_str().is_none_or(|id| id.starts_with("bot:")) {
        return None;
    }
    let body = m["body"].as_str()?.trim();
    if let Some(text) = body.strip_prefix("!echo ") {
        return Some(text.trim().to_owned()).filter(|t| !t.is_empty());
    }
    (body == "!time").then(|| format!("it is {} (unix ms)", m["ts"]))
}

async fn session(url: &str, key: &str, rooms: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let mut request = url.into_client_request()?;
    request.headers_mut().insert("authorization", HeaderValue::from_str(&format!("Bearer {key}"))?);
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await?;
    for room in rooms {
        ws.send(Message::text(json!({"type": "join", "room": room}).to_string())).await?;
    }
    println!("echo-bot connected, joining {rooms:?}");
    while let Some(frame) = ws.next().await {
        let Message::Text(text) = frame? else { continue };
        let m: Value = serde_json::from_str(&text)?;
        match m["type"].as_str() {
            Some("joined") => println!("echo-bot joined {}", m["room"]),
            Some("message") => {
                if let Some(reply) = answer(&m) {
                    let send = json!({"type": "send", "room": m["room"], "body": reply, "reply_to": m["id"]});
                    ws.send(Message::text(send.to_string())).await?;
                }
            }
            Some("error") => eprintln!("echo-bot: {m}"),
            _ => {}
        }
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    let (url, key) = (var("AURORA_URL"), var("AURORA_API_KEY"));
    if url.is_empty() || key.is_empty() {
        eprintln!("set AURORA_URL (ws://host:port/ws) and AURORA_API_KEY (a key with read and publish)");
        std::process::exit(2);
    }
    let rooms: Vec<String> =
        var("AURORA_BOT_ROOMS").split(',').map(str::trim).filter(|r| !r.is_empty()).map(str::to_owned).collect();
    let rooms = if rooms.is_empty() { vec!["general".to_owned()] } else { rooms };
    let mut pause = Duration::from_millis(250);
    loop {
        match session(&url, &key, &rooms).await {
            Ok(()) => eprintln!("echo-bot: connection closed"),
            Err(e) => eprintln!("echo-bot: {e}"),
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(10));
    }
}
