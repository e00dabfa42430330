//! Prometheus metrics, names prefixed `aurora_`.

use prometheus::{Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

pub struct Metrics {
    registry: Registry,
    pub connections: IntGauge,
    pub connections_total: IntCounter,
    pub disconnects: IntCounterVec,
    pub frames_received: IntCounterVec,
    pub errors: IntCounterVec,
    pub messages_accepted: IntCounter,
    pub frames_delivered: IntCounter,
    pub ack_seconds: Histogram,
    pub outbound_overflows: IntCounter,
    pub http_requests: IntCounterVec,
    /// Connections closed for breaking RFC 6455, by `reason`.
    pub protocol_errors: IntCounterVec,
    /// REST requests refused with 429, by `scope`.
    pub http_throttled: IntCounterVec,
    /// Connections refused (`per_address`) or served probes only (`file_reserve`).
    pub connections_refused: IntCounterVec,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: T) -> T {
    // Names are static and unique, so registration cannot collide.
    if let Err(e) = registry.register(Box::new(metric.clone())) {
        tracing::error!(error = %e, "metric registration failed");
    }
    metric
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let r = Registry::new();
        Ok(Metrics {
            connections: register(&r, IntGauge::new("aurora_ws_connections", "Open WebSocket connections")?),
            connections_total: register(
                &r,
                IntCounter::new("aurora_ws_connections_total", "WebSocket connections accepted")?,
            ),
            disconnects: register(
                &r,
                IntCounterVec::new(
                    Opts::new("aurora_ws_disconnects_total", "WebSocket connections ended, by reason"),
                    &["reason"],
                )?,
            ),
            frames_received: register(
                &r,
                IntCounterVec::new(
                    Opts::new("aurora_ws_frames_received_total", "Client frames received, by type"),
                    &["type"],
                )?,
            ),
            errors: register(
                &r,
                IntCounterVec::new(Opts::new("aurora_ws_errors_total", "Error frames sent, by code"), &["code"])?,
            ),
            messages_accepted: register(
                &r,
                IntCounter::new("aurora_messages_accepted_total", "Messages durably accepted and acked")?,
            ),
            frames_delivered: register(
                &r,
                IntCounter::new("aurora_frames_delivered_total", "Room frames written to sockets")?,
            ),
            ack_seconds: register(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new("aurora_send_ack_seconds", "Time from send to ack")
                        .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]),
                )?,
            ),
            outbound_overflows: register(
                &r,
                IntCounter::new("aurora_ws_outbound_overflows_total", "Connections whose outbound queue overflowed")?,
            ),
            connections_refused: register(
                &r,
                IntCounterVec::new(
                    Opts::new("aurora_http_connections_refused_total", "Connections refused or limited, by reason"),
                    &["reason"],
                )?,
            ),
            http_throttled: register(
                &r,
                IntCounterVec::new(
                    Opts::new("aurora_http_throttled_total", "REST requests refused with 429, by throttle"),
                    &["scope"],
                )?,
            ),
            protocol_errors: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "aurora_ws_protocol_errors_total",
                        "Connections closed for breaking the WebSocket protocol",
                    ),
                    &["reason"],
                )?,
            ),
            http_requests: register(
                &r,
                IntCounterVec::new(
                    Opts::new("aurora_http_requests_total", "HTTP API requests, by route and status"),
                    &["route", "status"],
                )?,
            ),
            registry: r,
        })
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}
