//! Consumer metrics, names prefixed `aurora_consumer_`.

use prometheus::{Encoder, Histogram, HistogramOpts, IntCounter, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

pub struct Metrics {
    registry: Registry,
    pub consumed: IntCounter,
    pub records: IntCounter,
    pub lag: IntGauge,
    pub partition_lag: IntGaugeVec,
    pub batch_size: Histogram,
    pub batch_seconds: Histogram,
    pub publish_seconds: Histogram,
    pub end_to_end_seconds: Histogram,
    pub retries: IntCounter,
    pub duplicates: IntCounter,
    pub events_ignored: IntCounter,
    pub rooms_active: IntGauge,
    pub events_written: IntCounter,
    pub webhooks: crate::webhooks::metrics::WebhookMetrics,
}

/// Latency buckets from 0.25 ms to 10 s (as the gateway's).
const LATENCY_BUCKETS: [f64; 15] =
    [0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let m = Metrics {
            consumed: IntCounter::new("aurora_consumer_messages_total", "Messages stored and published")?,
            records: IntCounter::new("aurora_consumer_records_total", "Kafka records consumed")?,
            lag: IntGauge::new("aurora_consumer_lag", "Records behind the log end, over assigned partitions")?,
            partition_lag: IntGaugeVec::new(
                Opts::new("aurora_consumer_partition_lag", "Records behind the log end, per assigned partition"),
                &["topic", "partition"],
            )?,
            batch_size: Histogram::with_opts(
                HistogramOpts::new("aurora_consumer_batch_size", "Records per batch")
                    .buckets(vec![1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0]),
            )?,
            batch_seconds: Histogram::with_opts(
                HistogramOpts::new("aurora_consumer_batch_seconds", "Time to store and publish a batch")
                    .buckets(LATENCY_BUCKETS.to_vec()),
            )?,
            publish_seconds: Histogram::with_opts(
                HistogramOpts::new("aurora_consumer_publish_seconds", "Time to publish a stored batch to the bus")
                    .buckets(LATENCY_BUCKETS.to_vec()),
            )?,
            end_to_end_seconds: Histogram::with_opts(
                HistogramOpts::new("aurora_consumer_end_to_end_seconds", "Time from send at the gateway to publish")
                    .buckets(LATENCY_BUCKETS.to_vec()),
            )?,
            retries: IntCounter::new("aurora_consumer_retries_total", "Batches retried after a dependency error")?,
            duplicates: IntCounter::new(
                "aurora_consumer_duplicates_total",
                "Records skipped as already stored (redeliveries, client retries)",
            )?,
            events_ignored: IntCounter::new(
                "aurora_consumer_events_ignored_total",
                "Edits, deletes and reactions that changed nothing (their message was gone, or a race made them moot): acked, given no seq",
            )?,
            rooms_active: IntGauge::new(
                "aurora_consumer_rooms_active",
                "Rooms written since the last partition assignment",
            )?,
            events_written: IntCounter::new(
                "aurora_consumer_events_written_total",
                "Stored records written to aurora.events for webhooks",
            )?,
            webhooks: crate::webhooks::metrics::WebhookMetrics::new(&registry)?,
            registry,
        };
        let r = &m.registry;
        r.register(Box::new(m.consumed.clone()))?;
        r.register(Box::new(m.records.clone()))?;
        r.register(Box::new(m.lag.clone()))?;
        r.register(Box::new(m.partition_lag.clone()))?;
        r.register(Box::new(m.batch_size.clone()))?;
        r.register(Box::new(m.batch_seconds.clone()))?;
        r.register(Box::new(m.publish_seconds.clone()))?;
        r.register(Box::new(m.end_to_end_seconds.clone()))?;
        r.register(Box::new(m.retries.clone()))?;
        r.register(Box::new(m.duplicates.clone()))?;
        r.register(Box::new(m.events_ignored.clone()))?;
        r.register(Box::new(m.rooms_active.clone()))?;
        r.register(Box::new(m.events_written.clone()))?;
        aurora_core::telemetry::register_shared(r, "consumer", &["kafka", "redis", "mongodb"])?;
        Ok(m)
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}
