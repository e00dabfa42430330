//! Consumer metrics, names prefixed `aurora_consumer_`.

use prometheus::{Encoder, Histogram, HistogramOpts, IntCounter, IntGauge, Registry, TextEncoder};

pub struct Metrics {
    registry: Registry,
    pub consumed: IntCounter,
    pub lag: IntGauge,
    pub batch_size: Histogram,
    pub batch_seconds: Histogram,
    pub end_to_end_seconds: Histogram,
    pub retries: IntCounter,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let consumed = IntCounter::new("aurora_consumer_messages_total", "Messages stored and published")?;
        let lag = IntGauge::new("aurora_consumer_lag", "Records behind the log end, over assigned partitions")?;
        let batch_size = Histogram::with_opts(
            HistogramOpts::new("aurora_consumer_batch_size", "Records per batch")
                .buckets(vec![1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0]),
        )?;
        let batch_seconds = Histogram::with_opts(
            HistogramOpts::new("aurora_consumer_batch_seconds", "Time to store and publish a batch")
                .buckets(prometheus::exponential_buckets(0.0005, 2.0, 14)?),
        )?;
        let end_to_end_seconds = Histogram::with_opts(
            HistogramOpts::new("aurora_consumer_end_to_end_seconds", "Time from send at the gateway to publish")
                .buckets(prometheus::exponential_buckets(0.0005, 2.0, 16)?),
        )?;
        let retries = IntCounter::new("aurora_consumer_retries_total", "Batches retried after a dependency error")?;
        registry.register(Box::new(consumed.clone()))?;
        registry.register(Box::new(lag.clone()))?;
        registry.register(Box::new(batch_size.clone()))?;
        registry.register(Box::new(batch_seconds.clone()))?;
        registry.register(Box::new(end_to_end_seconds.clone()))?;
        registry.register(Box::new(retries.clone()))?;
        Ok(Metrics { registry, consumed, lag, batch_size, batch_seconds, end_to_end_seconds, retries })
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}
