//! Per-endpoint webhook metrics, names prefixed `aurora_webhook_` (docs/metrics.md, Webhooks).

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

#[derive(Clone)]
pub struct WebhookMetrics {
    pub deliveries: IntCounterVec,
    pub latency: HistogramVec,
    pub backlog: IntGaugeVec,
}

/// What became of one attempt or delivery.
pub const OUTCOMES: [&str; 3] = ["delivered", "failed", "dead_lettered"];

/// From 5 ms to 1 h: a delivery's age includes its retries.
const BUCKETS: [f64; 14] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 600.0, 3600.0];

impl WebhookMetrics {
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let m = WebhookMetrics {
            deliveries: IntCounterVec::new(
                Opts::new(
                    "aurora_webhook_deliveries_total",
                    "Webhook requests by outcome: delivered (2xx), failed (an attempt that will be retried), dead_lettered",
                ),
                &["endpoint", "outcome"],
            )?,
            latency: HistogramVec::new(
                HistogramOpts::new(
                    "aurora_webhook_delivery_seconds",
                    "From the gateway accepting a record to its endpoint answering 2xx, retries included",
                )
                .buckets(BUCKETS.to_vec()),
                &["endpoint"],
            )?,
            backlog: IntGaugeVec::new(
                Opts::new("aurora_webhook_backlog", "Events not yet delivered (or parked) to an endpoint"),
                &["endpoint"],
            )?,
        };
        registry.register(Box::new(m.deliveries.clone()))?;
        registry.register(Box::new(m.latency.clone()))?;
        registry.register(Box::new(m.backlog.clone()))?;
        Ok(m)
    }

    /// Every series of `endpoint` exported from the start.
    pub fn init(&self, endpoint: &str) {
        for outcome in OUTCOMES {
            self.deliveries.with_label_values(&[endpoint, outcome]);
        }
        self.latency.with_label_values(&[endpoint]);
        self.backlog.with_label_values(&[endpoint]).set(0);
    }
}
