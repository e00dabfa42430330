//! Prometheus metrics, names prefixed `aurora_`.

use prometheus::{Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

/// Latency buckets from 0.25 ms to 10 s: the benchmarks' figures range from sub-millisecond
/// (embedded, loopback) to seconds (a failover).
pub const LATENCY_BUCKETS: [f64; 15] =
    [0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The `reason` values of `aurora_auth_failures_total`.
pub const AUTH_FAILURES: [&str; 13] = [
    "missing_token",
    "invalid_token",
    "expired_token",
    "unknown_user",
    "wrong_password",
    "other_user",
    "invalid_ticket",
    "token_in_url",
    "refresh_reused",
    "session_ended",
    "deactivated",
    "missing_api_key",
    "unknown_api_key",
];

/// The `reason` values of `aurora_ws_protocol_errors_total`.
pub const PROTOCOL_ERRORS: [&str; 10] = [
    "too_big",
    "invalid_utf8",
    "unmasked_frame",
    "reserved_bits",
    "unknown_opcode",
    "bad_fragmentation",
    "fragmented_control_frame",
    "control_frame_too_big",
    "invalid_close",
    "other",
];

/// The `type` label of `aurora_ws_frames_sent_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SentKind {
    /// Room traffic: a `message` push.
    Message,
    /// Room traffic: a `presence` push.
    Presence,
    /// Room traffic: a `typing` push.
    Typing,
    /// A frame for this connection only: hello, joined, ack, error, history, left, auth.
    Reply,
}

pub struct Metrics {
    registry: Registry,
    pub connections: IntGauge,
    pub connections_total: IntCounter,
    pub disconnects: IntCounterVec,
    pub frames_received: IntCounterVec,
    pub errors: IntCounterVec,
    /// Moderator actions applied, by `action`.
    pub moderation_actions: IntCounterVec,
    /// Server API calls, by `op` and `status` (which key: the audit log and the logs).
    pub server_api_requests: IntCounterVec,
    pub messages_accepted: IntCounter,
    pub frames_delivered: IntCounter,
    pub ack_seconds: Histogram,
    /// A record's admission: its nonce claim and rate-limit token (one Redis call distributed).
    pub admission_seconds: Histogram,
    pub outbound_overflows: IntCounter,
    pub http_requests: IntCounterVec,
    /// Connections closed for breaking RFC 6455, by `reason`.
    pub protocol_errors: IntCounterVec,
    /// REST requests refused with 429, by `scope`.
    pub http_throttled: IntCounterVec,
    /// Connections refused (`per_address`) or served probes only (`file_reserve`).
    pub connections_refused: IntCounterVec,
    pub joins: IntCounter,
    pub leaves: IntCounter,
    /// Frames written, by [`SentKind`] (resolved once: no label lookup per frame).
    frames_sent: [IntCounter; 4],
    /// Time from a room frame reaching this gateway (bus) to its flush to a socket.
    pub delivery_seconds: Histogram,
    /// Refused credentials, by `reason`.
    pub auth_failures: IntCounterVec,
    /// Room resyncs (traffic may have been lost: re-read from the store).
    pub resyncs: IntCounter,
    /// 1 when the dependency answered the last readiness check.
    pub dependency_up: prometheus::IntGaugeVec,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: T) -> T {
    // Names are static and unique, so registration cannot collide.
    if let Err(e) = registry.register(Box::new(metric.clone())) {
        tracing::error!(error = %e, "metric registration failed");
    }
    metric
}

impl Metrics {
    // Long by design: one registration per metric, read as the table of docs/metrics.md.
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
            moderation_actions: register(
                &r,
                IntCounterVec::new(
                    Opts::new("aurora_moderation_actions_total", "Moderator actions applied, by action"),
                    &["action"],
                )?,
            ),
            server_api_requests: register(
                &r,
                IntCounterVec::new(
                    Opts::new("aurora_server_api_requests_total", "Server API calls, by operation and status"),
                    &["op", "status"],
                )?,
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
                    HistogramOpts::new("aurora_send_ack_seconds", "Time from a record's append to the log to its ack")
                        .buckets(LATENCY_BUCKETS.to_vec()),
                )?,
            ),
            admission_seconds: register(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "aurora_admission_seconds",
                        "Time to admit a record: its nonce claim and rate-limit token",
                    )
                    .buckets(LATENCY_BUCKETS.to_vec()),
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
            joins: register(&r, IntCounter::new("aurora_ws_joins_total", "Rooms joined")?),
            leaves: register(&r, IntCounter::new("aurora_ws_leaves_total", "Rooms left (leave, close, removal)")?),
            frames_sent: {
                let sent = register(
                    &r,
                    IntCounterVec::new(Opts::new("aurora_ws_frames_sent_total", "Frames written, by type"), &["type"])?,
                );
                ["message", "presence", "typing", "reply"].map(|t| sent.with_label_values(&[t]))
            },
            delivery_seconds: register(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "aurora_delivery_seconds",
                        "Time from a room frame arriving from the bus to its socket flush",
                    )
                    .buckets(LATENCY_BUCKETS.to_vec()),
                )?,
            ),
            auth_failures: register(
                &r,
                IntCounterVec::new(
                    Opts::new("aurora_auth_failures_total", "Refused credentials, by reason"),
                    &["reason"],
                )?,
            ),
            resyncs: register(&r, IntCounter::new("aurora_resyncs_total", "Room resyncs from the store")?),
            dependency_up: register(
                &r,
                prometheus::IntGaugeVec::new(
                    Opts::new("aurora_dependency_up", "1 when the dependency answered the last readiness check"),
                    &["dependency"],
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

    /// Registers the adapters' shared counters and `aurora_build_info{version,mode}`,
    /// and creates every bounded label value up front: a rate over a label that never
    /// happened is then 0 on the dashboards, not missing.
    pub fn describe(&self, mode: &str) {
        let ports: &[&str] = if mode == "embedded" { &["embedded"] } else { &["kafka", "redis", "mongodb"] };
        if let Err(e) = aurora_core::telemetry::register_shared(&self.registry, mode, ports) {
            tracing::error!(error = %e, "metric registration failed");
        }
        let reasons = [
            "client",
            "shutdown",
            "policy",
            "too_big",
            "protocol_error",
            "token_expired",
            "heartbeat_timeout",
            "write_stalled",
        ];
        for reason in reasons {
            self.disconnects.with_label_values(&[reason]);
        }
        for kind in ["join", "leave", "send", "typing", "history", "auth", "read", "invalid"] {
            self.frames_received.with_label_values(&[kind]);
        }
        for op in crate::server_api::OPS {
            self.server_api_requests.with_label_values(&[op, "ok"]);
        }
        self.server_api_requests.with_label_values(&["any", "rate_limited"]);
        for action in aurora_core::audit::Action::ALL {
            self.moderation_actions.with_label_values(&[action.as_str()]);
        }
        for code in aurora_core::protocol::ErrorCode::ALL {
            self.errors.with_label_values(&[code.as_str()]);
        }
        for reason in PROTOCOL_ERRORS {
            self.protocol_errors.with_label_values(&[reason]);
        }
        for scope in ["login", "login-failures", "register", "room-create"] {
            self.http_throttled.with_label_values(&[scope]);
        }
        for reason in ["per_address", "file_reserve", "upgrade_rate"] {
            self.connections_refused.with_label_values(&[reason]);
        }
        for reason in AUTH_FAILURES {
            self.auth_failures.with_label_values(&[reason]);
        }
    }

    /// Counts refused credentials: missing_token, invalid_token, expired_token,
    /// unknown_user, wrong_password, other_user.
    pub fn auth_failed(&self, reason: &'static str) {
        self.auth_failures.with_label_values(&[reason]).inc();
    }

    /// The `reason` of a token that did not verify.
    pub fn token_failed(&self, e: &aurora_core::auth::AuthError) {
        self.auth_failed(match e {
            aurora_core::auth::AuthError::Expired => "expired_token",
            _ => "invalid_token",
        });
    }

    pub fn sent(&self, kind: SentKind, n: u64) {
        self.frames_sent[kind as usize].inc_by(n);
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}
