//! `aurora-bench kafka-rate --rate R [--consume]`: the raw baseline for the distributed
//! stack's CPU per acked message. The gateways' own producer sends at a fixed rate, keyed over
//! the cost scenario's rooms; with `--consume` a plain consumer in this process reads every
//! record and does nothing else. Prints CPU µs per acked message: this process plus the broker.

use anyhow::Context;
use aurora_core::distributed::kafka::{ensure_topic, KafkaLog};
use aurora_core::ports::MessageLog;
use futures_util::stream::{FuturesUnordered, StreamExt};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::kafka_rate::{submission, KafkaRate};

fn broker_cpu(args: &KafkaRate) -> Option<f64> {
    let file = args.broker_pid_file.as_ref()?;
    let pid = std::fs::read_to_string(file).ok()?.trim().parse().ok()?;
    let (u, s) = crate::server::proc_cpu_seconds(pid);
    Some(u + s)
}

pub async fn run(args: &KafkaRate, rate: f64) -> anyhow::Result<()> {
    let mut costs = Vec::with_capacity(args.repeats);
    for repeat in 0..args.repeats {
        let topic = format!("aurora.bench.cost{}-{repeat}", std::process::id());
        ensure_topic(&args.brokers, &topic, args.partitions, 1).await.context("create the topic")?;
        let log = Arc::new(KafkaLog::with_topic(&args.brokers, &topic).context("create the producer")?);
        let consumed = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let reader = if args.consume {
            let consumer: StreamConsumer = ClientConfig::new()
                .set("bootstrap.servers", &args.brokers)
                .set("group.id", format!("aurora-bench-cost-{}-{repeat}", std::process::id()))
                .set("auto.offset.reset", "earliest")
                .create()
                .context("create the consumer")?;
            consumer.subscribe(&[topic.as_str()]).context("subscribe")?;
            let (consumed, stop) = (consumed.clone(), stop.clone());
            Some(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(200), consumer.recv()).await {
                        consumed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }))
        } else {
            None
        };
        let acked = Arc::new(AtomicU64::new(0));
        let pacer = tokio::spawn(pace(log, args.rooms, args.body_bytes, rate, acked.clone(), stop.clone()));
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (a0, c0) = (acked.load(Ordering::Relaxed), consumed.load(Ordering::Relaxed));
        let (own0, broker0, started) = (crate::client::self_cpu_seconds(), broker_cpu(args), Instant::now());
        tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
        let (own, broker, wall) = (crate::client::self_cpu_seconds() - own0, broker_cpu(args), started.elapsed());
        let (acks, reads) = (acked.load(Ordering::Relaxed) - a0, consumed.load(Ordering::Relaxed) - c0);
        stop.store(true, Ordering::Relaxed);
        pacer.await.context("pacer")?;
        if let Some(r) = reader {
            r.await.context("consumer")?;
        }
        anyhow::ensure!(acks > 0, "no send was acked");
        let broker = broker.zip(broker0).map(|(b, b0)| b - b0);
        let us = |cpu: f64| cpu * 1e6 / acks as f64;
        eprintln!(
            "  keyed producer{} at {rate:.0}/s, repeat {}: {:.0} acked/s, {:.0} consumed/s; µs per acked message: this process {:.1}, broker {}",
            if args.consume { " + consumer" } else { "" },
            repeat + 1,
            acks as f64 / wall.as_secs_f64(),
            reads as f64 / wall.as_secs_f64(),
            us(own),
            broker.map_or("not measured".to_owned(), |b| format!("{:.1}", us(b))),
        );
        costs.push(us(own + broker.unwrap_or(0.0)));
    }
    costs.sort_by(f64::total_cmp);
    let median = costs.get(costs.len() / 2).context("--repeats must be at least 1")?;
    println!("{median:.1}");
    Ok(())
}

/// Sends `rate` records per second round-robin over `rooms` keys until `stop`.
async fn pace(
    log: Arc<KafkaLog>,
    rooms: usize,
    body_bytes: usize,
    rate: f64,
    acked: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    let body = "x".repeat(body_bytes);
    let mut in_flight = FuturesUnordered::new();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let (start, mut sent) = (Instant::now(), 0u64);
    while !stop.load(Ordering::Relaxed) {
        tokio::select! {
            _ = tick.tick() => {
                let due = (start.elapsed().as_secs_f64() * rate) as u64;
                while sent < due {
                    sent += 1;
                    let room = format!("c{}-{}", sent as usize % rooms.max(1), std::process::id());
                    in_flight.push(log.append(submission(sent.into(), room, &body)));
                }
            }
            Some(done) = in_flight.next(), if !in_flight.is_empty() => {
                if done.is_ok() {
                    acked.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}
