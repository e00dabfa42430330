//! Operator metrics, names prefixed `aurora_operator_`.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `result`: `success` or `error`.
    pub reconciles: IntCounterVec,
    pub reconcile_seconds: Histogram,
    /// `reason`: kafka, store, redis, kubernetes, invalid_spec, finalizer.
    pub errors: IntCounterVec,
    /// 1 while this replica holds the lease.
    pub leader: IntGauge,
    /// ChatRooms by `condition` and `status`, as last reconciled by this replica.
    pub rooms: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let reconciles = IntCounterVec::new(
            Opts::new("aurora_operator_reconciles_total", "ChatRoom reconciles by result"),
            &["result"],
        )?;
        let reconcile_seconds = Histogram::with_opts(
            HistogramOpts::new("aurora_operator_reconcile_seconds", "Time to reconcile one ChatRoom")
                .buckets(prometheus::exponential_buckets(0.001, 2.0, 15)?),
        )?;
        let errors =
            IntCounterVec::new(Opts::new("aurora_operator_errors_total", "Failed reconciles by reason"), &["reason"])?;
        let leader = IntGauge::new("aurora_operator_leader", "1 while this replica is the leader")?;
        let rooms = IntGaugeVec::new(
            Opts::new("aurora_operator_chatrooms", "ChatRooms by condition and status"),
            &["condition", "status"],
        )?;
        registry.register(Box::new(reconciles.clone()))?;
        registry.register(Box::new(reconcile_seconds.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(leader.clone()))?;
        registry.register(Box::new(rooms.clone()))?;
        // Every bounded label value exists from the start (a rate over it is 0, not absent).
        for result in ["success", "error"] {
            reconciles.with_label_values(&[result]);
        }
        for reason in ["kafka", "store", "redis", "kubernetes", "invalid_spec", "finalizer"] {
            errors.with_label_values(&[reason]);
        }
        Ok(Metrics { registry, reconciles, reconcile_seconds, errors, leader, rooms })
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}
