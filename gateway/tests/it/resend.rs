//! Retried sends after a restart: the same nonce is stored once (docs/protocol.md §3), whether the
//! gateway was killed or stopped with SIGTERM while acks were outstanding.

use crate::harness::{assert_stored_once, burst, data_dir, register_at, resend_all, stored, unique, Binary, Client};

async fn resend_after_restart(kill: bool) {
    let (_keep, dir) = data_dir();
    let gw = Binary::start(&dir, &[("AURORA_RATE_LIMIT", "1000/1s")]).await;
    let http = reqwest::Client::new();
    let u = register_at(&http, &gw.base(), &unique("rs")).await;
    let mut c = Client::connect(gw.addr, &u.token).await;
    c.join("general").await;
    let nonces = burst(&mut c, "general", &unique("n"), 300).await;
    // Some acks are in, many are not: stop the gateway right there.
    let mut acks = 0;
    while acks < 20 {
        if c.recv().await["type"] == "ack" {
            acks += 1;
        }
    }
    let gw = if kill {
        let mut gw = gw;
        gw.child.start_kill().expect("kill -9");
        let _ = gw.child.wait().await;
        None
    } else {
        Some(gw.terminate().await)
    };
    assert!(gw.is_none_or(|status| status.success()));
    drop(c);

    let gw = Binary::start(&dir, &[("AURORA_RATE_LIMIT", "1000/1s")]).await;
    let mut c = Client::connect(gw.addr, &u.token).await;
    c.join("general").await;
    let acked = resend_all(&mut c, "general", &nonces).await;
    assert_stored_once(&stored(&gw.base(), &u.token, "general").await, &acked);
    assert!(gw.terminate().await.success());
}

#[tokio::test]
async fn resent_nonces_are_stored_once_after_sigkill() {
    resend_after_restart(true).await;
}

#[tokio::test]
async fn resent_nonces_are_stored_once_after_sigterm() {
    resend_after_restart(false).await;
}
