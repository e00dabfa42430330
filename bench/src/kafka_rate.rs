//! `aurora-bench kafka-rate`: the gateways' own Kafka producer (aurora-core's `KafkaLog`, the
//! same settings and record encoding) with no gateway in front of it. Sends are keyed over as
//! many rooms as the `ingest` scenario uses, with as many in flight, into a fresh topic with
//! the gateways' partition count: the Kafka ceiling for `ingest` through the distributed stack.
//! Kafka's own ProducerPerformance (`dev/kafka-producer-rate.sh`) writes one unkeyed partition
//! in large batches, which is not the load the gateways put on the broker.

use anyhow::Context;
use aurora_core::distributed::kafka::{ensure_topic, KafkaLog};
use aurora_core::model::{Submission, UserRef};
use aurora_core::ports::MessageLog;
use clap::Args;
use futures_util::stream::{FuturesUnordered, StreamExt};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct KafkaRate {
    #[arg(long, env = "AURORA_KAFKA_BROKERS")]
    pub brokers: String,
    /// Partitions of each fresh topic (the gateways' AURORA_KAFKA_PARTITIONS default).
    #[arg(long, default_value_t = 12)]
    pub partitions: i32,
    /// Record keys (rooms), as the ingest scenario's senders.
    #[arg(long, default_value_t = 50)]
    pub rooms: usize,
    /// Sends in flight per room, as the ingest scenario's window.
    #[arg(long, default_value_t = 16)]
    pub window: usize,
    #[arg(long, default_value_t = 100)]
    pub body_bytes: usize,
    /// Seconds measured per repeat (after 1 s of warm-up).
    #[arg(long, default_value_t = 8.0)]
    pub seconds: f64,
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// The core this process pins itself to (the load generator's).
    #[arg(long, default_value_t = 1)]
    pub cpu: usize,
    /// Offer this many sends per second (over all rooms) instead of a closed loop, and print
    /// CPU µs per acked message (this process and the broker) instead of the rate.
    #[arg(long)]
    pub rate: Option<f64>,
    /// With --rate: also consume the topic in this process (a consumer doing nothing else).
    #[arg(long)]
    pub consume: bool,
    /// The broker's pid file, whose CPU time --rate counts (dev/services.sh's kafka.pid).
    #[arg(long, env = "AURORA_BENCH_KAFKA_PID_FILE")]
    pub broker_pid_file: Option<std::path::PathBuf>,
}

/// Prints the median acked sends per second over the repeats.
pub async fn run(args: KafkaRate) -> anyhow::Result<()> {
    if let Some(rate) = args.rate {
        return crate::kafka_cost::run(&args, rate).await;
    }
    let mut rates = Vec::with_capacity(args.repeats);
    for repeat in 0..args.repeats {
        let topic = format!("aurora.bench.keyed{}-{repeat}", std::process::id());
        ensure_topic(&args.brokers, &topic, args.partitions, 1).await.context("create the topic")?;
        let log = Arc::new(KafkaLog::with_topic(&args.brokers, &topic).context("create the producer")?);
        let acked = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut senders = tokio::task::JoinSet::new();
        for room in 0..args.rooms {
            let counts = Counts { acked: acked.clone(), failed: failed.clone() };
            let (log, stop) = (log.clone(), stop.clone());
            let (window, body) = (args.window, "x".repeat(args.body_bytes));
            senders.spawn(send_loop(log, format!("g{room}-{}", std::process::id()), window, body, counts, stop));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (a0, started) = (acked.load(Ordering::Relaxed), Instant::now());
        tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
        let rate = (acked.load(Ordering::Relaxed) - a0) as f64 / started.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        while let Some(done) = senders.join_next().await {
            done.context("sender task")?;
        }
        let failed = failed.load(Ordering::Relaxed);
        eprintln!("  keyed producer, repeat {}: {rate:.0} acked sends/s ({failed} failed)", repeat + 1);
        anyhow::ensure!(rate > 0.0, "no send was acked");
        rates.push(rate);
    }
    rates.sort_by(f64::total_cmp);
    let median = rates.get(rates.len() / 2).context("--repeats must be at least 1")?;
    println!("{median:.0}");
    Ok(())
}

struct Counts {
    acked: Arc<AtomicU64>,
    /// Sends the producer gave up on (a broker just started may refuse the first ones).
    failed: Arc<AtomicU64>,
}

/// Keeps `window` sends to one room in flight until `stop`.
async fn send_loop(
    log: Arc<KafkaLog>,
    room: String,
    window: usize,
    body: String,
    counts: Counts,
    stop: Arc<AtomicBool>,
) {
    let mut in_flight = FuturesUnordered::new();
    let mut n: u128 = 0;
    loop {
        while in_flight.len() < window && !stop.load(Ordering::Relaxed) {
            n += 1;
            in_flight.push(log.append(submission(n, room.clone(), &body)));
        }
        match in_flight.next().await {
            Some(Ok(())) => counts.acked.fetch_add(1, Ordering::Relaxed),
            Some(Err(_)) => counts.failed.fetch_add(1, Ordering::Relaxed),
            None => return,
        };
    }
}

/// Record `n` of a raw-producer baseline as a gateway submits a plain message, with an id as
/// long as the gateways' (a simple UUID), so records are the same size.
pub(crate) fn submission(n: u128, room: String, body: &str) -> Submission {
    Submission {
        id: format!("{n:032x}"),
        room,
        user: UserRef { id: format!("{:032x}", 7u128).into(), name: "bench".into() },
        body: body.to_owned(),
        ts: aurora_core::now_ms(),
        ..Default::default()
    }
}
