//! Dependency outages: the embedded ports wrapped so a test can make them fail.

use async_trait::async_trait;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aurora_core::embedded::MemoryNonces;
use aurora_core::model::Submission;
use aurora_core::ports::{
    Accepted, Dependency, FailureKind, MessageLog, NotReady, NotReadyCause, PortError, Readiness,
};

use crate::harness::{eventually, Server};

#[derive(Default)]
struct Switch(AtomicBool);

impl Switch {
    fn down(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
    fn set(&self, down: bool) {
        self.0.store(down, Ordering::SeqCst);
    }
}

struct FlakyLog {
    inner: Arc<dyn MessageLog>,
    switch: Arc<Switch>,
}

impl MessageLog for FlakyLog {
    fn append(&self, submission: Submission) -> Accepted {
        if self.switch.down() {
            return Box::pin(async {
                Err(PortError::unavailable(Dependency::Kafka, FailureKind::Connection, "log is down (test)"))
            });
        }
        self.inner.append(submission)
    }
}

/// A log whose broker writes the record and then fails to confirm it (the ambiguous
/// failure of a Kafka request timing out after the leader wrote it).
struct LostAcks {
    inner: Arc<dyn MessageLog>,
    switch: Arc<Switch>,
}

impl MessageLog for LostAcks {
    fn append(&self, submission: Submission) -> Accepted {
        let written = self.inner.append(submission);
        let lose = self.switch.down();
        Box::pin(async move {
            written.await?;
            if lose {
                return Err(PortError::unavailable(Dependency::Redis, FailureKind::Timeout, "no answer (test)"));
            }
            Ok(())
        })
    }
}

struct FlakyReady {
    inner: Arc<dyn Readiness>,
    switch: Arc<Switch>,
}

#[async_trait]
impl Readiness for FlakyReady {
    fn dependencies(&self) -> &'static [Dependency] {
        &[Dependency::Kafka, Dependency::Store]
    }

    async fn check(&self) -> Vec<NotReady> {
        let mut failing = self.inner.check().await;
        if self.switch.down() {
            failing.push(NotReady {
                dependency: Dependency::Kafka,
                cause: NotReadyCause::NoAnswer(Duration::from_millis(700)),
            });
        }
        failing
    }
}

async fn readyz(s: &Server) -> (u16, Value) {
    let r = s.http.get(s.url("/readyz")).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn readiness_outlasts_a_blip_and_fails_a_lasting_outage() {
    let switch = Arc::new(Switch::default());
    let s = Server::start_wired(
        |c| c.ready_grace = std::time::Duration::from_millis(300),
        |w| w.backend.readiness = Arc::new(FlakyReady { inner: w.backend.readiness.clone(), switch: switch.clone() }),
    )
    .await;
    switch.set(true);
    let (status, body) = readyz(&s).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("degraded")), "{body}");
    assert_eq!(body["down"]["kafka"], "no answer within 700ms");
    assert_eq!(s.metric("aurora_dependency_up{dependency=\"kafka\"}").await, 0.0);
    assert_eq!(s.metric("aurora_dependency_up{dependency=\"store\"}").await, 1.0);
    let body = eventually("503 once the outage outlasts the grace", || async {
        let (status, body) = readyz(&s).await;
        (status == 503).then_some(body)
    })
    .await;
    assert_eq!(body["status"], "not ready");
    switch.set(false);
    let (status, body) = readyz(&s).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ready")), "{body}");
    assert_eq!(s.metric("aurora_dependency_up{dependency=\"kafka\"}").await, 1.0);
    s.stop().await;
}

#[tokio::test]
async fn a_log_outage_answers_unavailable_accepts_nothing_and_recovers() {
    let switch = Arc::new(Switch::default());
    let s = Server::start_wired(
        |c| c.rate_limit = "1/1h".parse().unwrap(),
        |w| {
            w.backend.log = Arc::new(FlakyLog { inner: w.backend.log.clone(), switch: switch.clone() });
            w.backend.readiness = Arc::new(FlakyReady { inner: w.backend.readiness.clone(), switch: switch.clone() });
        },
    )
    .await;
    let (u, mut c) = s.user("out").await;
    c.join("general").await;
    assert_eq!(s.http.get(s.url("/readyz")).send().await.unwrap().status(), 200);

    switch.set(true);
    let (status, body) = readyz(&s).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("degraded")), "a blip keeps the gateway ready: {body}");
    let e = c.request(json!({"type":"send","room":"general","body":"during outage","nonce":"n1"})).await;
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str(), e["room"].as_str()),
        (Some("error"), Some("unavailable"), Some("general"))
    );
    let (_, v) = s.get("/api/rooms/general/messages", &u.token).await;
    assert_eq!(v["messages"], json!([]), "nothing was accepted");

    switch.set(false);
    assert_eq!(s.http.get(s.url("/readyz")).send().await.unwrap().status(), 200);
    // The retry with the same nonce is accepted under the token the failed attempt took.
    let ack = c.request(json!({"type":"send","room":"general","body":"during outage","nonce":"n1"})).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let m = c.recv_type("message").await;
    assert_eq!((m["id"].as_str(), m["seq"].as_u64()), (ack["id"].as_str(), Some(1)));
    let (_, v) = s.get("/api/rooms/general/messages", &u.token).await;
    assert_eq!(v["messages"].as_array().unwrap().len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn a_send_whose_ack_was_lost_is_stored_once_when_retried() {
    let switch = Arc::new(Switch::default());
    let s = Server::start_wired(
        |c| c.rate_limit = "2/1h".parse().unwrap(),
        |w| {
            w.backend.log = Arc::new(LostAcks { inner: w.backend.log.clone(), switch: switch.clone() });
            // Nonces kept as Redis keeps them, with no look-up in the store behind them.
            w.backend.nonces = Arc::new(MemoryNonces::default());
        },
    )
    .await;
    let (u, mut c) = s.user("lost").await;
    c.join("general").await;

    switch.set(true);
    let send = json!({"type":"send","room":"general","body":"maybe written","nonce":"n1"});
    let e = c.request(send.clone()).await;
    assert_eq!((e["type"].as_str(), e["code"].as_str()), (Some("error"), Some("unavailable")), "{e}");
    switch.set(false);
    let ack = c.request(send).await;
    assert_eq!(ack["type"], "ack", "{ack}");

    // One message took one token of two: one more send passes, the next is limited.
    let next = c.request(json!({"type":"send","room":"general","body":"second","nonce":"n2"})).await;
    assert_eq!(next["type"], "ack", "{next}");
    // The pipeline stores in log order: once the second message is stored, a duplicate
    // of the first would be too.
    let v = eventually("the second message stored", || async {
        let (_, v) = s.get("/api/rooms/general/messages", &u.token).await;
        let last = v["messages"].as_array()?.last()?.clone();
        (last["id"] == next["id"]).then_some(v)
    })
    .await;
    let ids: Vec<&Value> = v["messages"].as_array().unwrap().iter().map(|m| &m["id"]).collect();
    assert_eq!(ids, [&ack["id"], &next["id"]], "one message for one nonce, under the id its ack named");
    let over = c.request(json!({"type":"send","room":"general","body":"third","nonce":"n3"})).await;
    assert_eq!(over["code"], "rate_limited", "{over}");
    s.stop().await;
}
