//! A drained gateway's clients come back spread over the window its close frame names,
//! and the gateway they come to admits upgrades at its configured rate.

use futures_util::StreamExt;
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

use crate::cluster::Proc;
use crate::harness::{register_at, unique, ws_request};

const CLIENTS: usize = 500;
const WINDOW_MS: u64 = 4000;

/// What one client saw: the close hint, when it was back, and how many 503s it met.
struct Back {
    hint_ms: u64,
    back_after: Duration,
    refused: usize,
}

/// Connects to `addr` until it gets in, waiting `Retry-After` after each 503.
async fn reconnect(addr: std::net::SocketAddr, token: &str) -> usize {
    let mut refused = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match tokio_tungstenite::connect_async(ws_request(addr, token)).await {
            Ok((mut ws, _)) => {
                let hello = ws.next().await.expect("hello").expect("frame");
                assert!(hello.to_text().unwrap_or_default().contains("hello"));
                return refused;
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) if resp.status() == 503 => {
                refused += 1;
                let secs: u64 = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()?.parse().ok())
                    .expect("a 503 says when to retry");
                // A client spreads its retry too, within the hinted second(s).
                tokio::time::sleep(Duration::from_millis(rand_below(secs * 1000))).await;
            }
            Err(e) => panic!("reconnect failed: {e}"),
        }
        assert!(Instant::now() < deadline, "never got back in");
    }
}

fn rand_below(ms: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.finish() % ms.max(1)
}

#[tokio::test]
async fn a_drained_gateways_clients_return_spread_over_the_hinted_window() {
    let _one_at_a_time = crate::cluster::exclusive().await;
    let window = format!("{}ms", WINDOW_MS);
    let g1 = Proc::gateway(&[("AURORA_RECONNECT_WINDOW", &window)]).await;
    let g2 = Proc::gateway(&[("AURORA_UPGRADE_RATE", "80/1s")]).await;
    let http = reqwest::Client::new();
    let u = register_at(&http, &g1.base(), &unique("drain")).await;

    let mut sockets = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        let (mut ws, _) = tokio_tungstenite::connect_async(ws_request(g1.addr, &u.token)).await.expect("connect");
        ws.next().await.expect("hello").expect("frame");
        sockets.push(ws);
    }
    let drained = Instant::now();
    let g2_addr = g2.addr;
    let tasks: Vec<_> = sockets
        .into_iter()
        .map(|mut ws| {
            let token = u.token.clone();
            tokio::spawn(async move {
                let hint_ms = loop {
                    match ws.next().await {
                        Some(Ok(Message::Close(Some(frame)))) => {
                            assert_eq!(u16::from(frame.code), 1001);
                            let reason: Value = serde_json::from_str(&frame.reason).expect("the reason is JSON");
                            break reason["reconnect_within_ms"].as_u64().expect("a reconnect hint");
                        }
                        Some(Ok(_)) => continue,
                        other => panic!("expected a close frame, got {other:?}"),
                    }
                };
                // The documented client behaviour: come back at a uniform moment in the window.
                tokio::time::sleep(Duration::from_millis(rand_below(hint_ms))).await;
                let refused = reconnect(g2_addr, &token).await;
                Back { hint_ms, back_after: drained.elapsed(), refused }
            })
        })
        .collect();
    g1.terminate().await;
    let mut back = Vec::with_capacity(CLIENTS);
    for t in tasks {
        back.push(t.await.expect("client"));
    }

    assert!(back.iter().all(|b| b.hint_ms == WINDOW_MS), "every client got the gateway's window");
    let mut buckets = vec![0usize; (WINDOW_MS / 500 + 4) as usize];
    for b in &back {
        let last_bucket = buckets.len() - 1;
        buckets[((b.back_after.as_millis() / 500) as usize).min(last_bucket)] += 1;
    }
    let refused: usize = back.iter().map(|b| b.refused).sum();
    let last = back.iter().map(|b| b.back_after).max().unwrap_or_default();
    println!(
        "{CLIENTS} clients of a drained gateway back on the other within {last:?}; per 500 ms: {buckets:?}; \
         {refused} upgrades answered 503 (80/s limit) and retried"
    );
    let busiest = *buckets.iter().max().unwrap_or(&0);
    assert!(busiest <= CLIENTS / 4, "no half-second holds a quarter of the reconnects: {buckets:?}");
    assert!(last < Duration::from_millis(WINDOW_MS) + Duration::from_secs(10), "all back in time: {last:?}");
    // 500 returns in 4 s are more than 80/s: the rest waited their Retry-After, and got in.
    assert!(refused > 0, "the upgrade limit held back part of the wave");
    g2.terminate().await;
}
