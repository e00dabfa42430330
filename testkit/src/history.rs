//! What a room stored, read back over REST, and bursts of sends with nonces.

use serde_json::{json, Value};

use crate::Client;

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
