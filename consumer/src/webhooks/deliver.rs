//! One endpoint's HTTP deliveries: signed, retried with jittered exponential backoff until
//! a 2xx or the endpoint's `retry_for` budget is spent.

use anyhow::Context;
use rdkafka::message::{Headers, Message as _, OwnedMessage};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use aurora_core::backoff::Backoff;
use aurora_core::webhooks::{headers, record_headers, signature_header, Endpoint, EventType};

use super::metrics::WebhookMetrics;

/// A record of the events (or dead-letter) topic, as delivered.
pub struct Record {
    pub id: String,
    pub kind: EventType,
    pub room: String,
    pub body: Vec<u8>,
    /// When the gateway accepted it (unix ms), for the latency metric.
    pub ts: i64,
}

fn header<'a>(m: &'a OwnedMessage, key: &str) -> Option<&'a str> {
    let hs = m.headers()?;
    hs.iter().find(|h| h.key == key).and_then(|h| std::str::from_utf8(h.value?).ok())
}

impl Record {
    /// None for a record without the headers this consumer writes (logged by the caller).
    pub fn read(m: &OwnedMessage) -> Option<Record> {
        let id = header(m, record_headers::ID)?.to_owned();
        let kind = EventType::parse(header(m, record_headers::TYPE)?)?;
        let room = String::from_utf8(m.key()?.to_vec()).ok()?;
        let body = m.payload()?.to_vec();
        let ts = m.timestamp().to_millis().unwrap_or_else(aurora_core::now_ms);
        Some(Record { id, kind, room, body, ts })
    }

    /// The endpoint a dead letter was parked for.
    pub fn endpoint_of(m: &OwnedMessage) -> Option<&str> {
        header(m, record_headers::ENDPOINT)
    }
}

pub enum Outcome {
    Delivered,
    /// The budget is spent; the last error.
    GaveUp(String),
    /// Shutdown came first: not delivered, not given up.
    Stopped,
}

pub struct Target {
    pub spec: Endpoint,
    client: reqwest::Client,
    metrics: WebhookMetrics,
}

/// First retry after about this; doubling up to [`MAX_DELAY`].
const FIRST_DELAY: Duration = Duration::from_millis(500);
const MAX_DELAY: Duration = Duration::from_secs(60);

impl Target {
    pub fn new(spec: Endpoint, metrics: &WebhookMetrics) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(spec.timeout)
            .connect_timeout(spec.timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("AuroraChat-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot build the webhook HTTP client")?;
        metrics.init(&spec.name);
        Ok(Target { spec, client, metrics: metrics.clone() })
    }

    pub fn metrics(&self) -> &WebhookMetrics {
        &self.metrics
    }

    async fn attempt(&self, r: &Record, attempt: u32) -> Result<(), String> {
        let timestamp = aurora_core::now_ms() / 1000;
        let response = self
            .client
            .post(&self.spec.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(headers::ID, &r.id)
            .header(headers::TIMESTAMP, timestamp.to_string())
            .header(headers::SIGNATURE, signature_header(&self.spec.secrets, timestamp, &r.body))
            .header(headers::EVENT, r.kind.as_str())
            .header(headers::ATTEMPT, attempt.to_string())
            .body(r.body.clone())
            .send()
            .await
            .map_err(|e| format!("{e}"))?;
        let status = response.status();
        // Read the (small) answer so the connection is kept for the next request.
        let _ = response.bytes().await;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {status}"))
        }
    }

    /// Delivers `r`, retrying until a 2xx, the budget is spent or `shutdown`.
    pub async fn deliver(&self, r: &Record, shutdown: &CancellationToken) -> Outcome {
        let name = self.spec.name.as_str();
        let started = Instant::now();
        let mut backoff = Backoff::new(FIRST_DELAY, MAX_DELAY);
        let mut attempt = 1;
        loop {
            let result = tokio::select! {
                _ = shutdown.cancelled() => return Outcome::Stopped,
                result = self.attempt(r, attempt) => result,
            };
            match result {
                Ok(()) => {
                    self.metrics.deliveries.with_label_values(&[name, "delivered"]).inc();
                    let age = (aurora_core::now_ms() - r.ts).max(0) as f64 / 1000.0;
                    self.metrics.latency.with_label_values(&[name]).observe(age);
                    return Outcome::Delivered;
                }
                Err(error) => {
                    self.metrics.deliveries.with_label_values(&[name, "failed"]).inc();
                    let delay = backoff.next_delay();
                    if started.elapsed() + delay > self.spec.retry_for {
                        tracing::warn!(endpoint = name, id = %r.id, attempt, %error, "webhook retry budget spent");
                        return Outcome::GaveUp(error);
                    }
                    tracing::info!(endpoint = name, id = %r.id, attempt, %error, ?delay, "webhook attempt failed; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return Outcome::Stopped,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    attempt += 1;
                }
            }
        }
    }
}
