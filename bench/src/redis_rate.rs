//! `aurora-bench redis-rate`: the raw baseline for the distributed stack's Redis fan-out. One
//! publisher PUBLISHes 100 B payloads at a fixed rate, round-robin over the cost scenario's
//! room channels and pipelined per millisecond (as the consumer pipelines a batch), to one
//! subscriber connection per gateway, each subscribed to every channel. Prints CPU µs per
//! published message: redis-server plus this process (publisher and subscribers).

use anyhow::Context;
use clap::Args;
use futures_util::StreamExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct RedisRate {
    #[arg(long, env = "AURORA_REDIS_URL")]
    pub url: String,
    /// redis-server's pid file (dev/services.sh's redis.pid).
    #[arg(long, env = "AURORA_BENCH_REDIS_PID_FILE")]
    pub pid_file: Option<std::path::PathBuf>,
    /// Messages per second over all channels.
    #[arg(long, default_value_t = 2000.0)]
    pub rate: f64,
    /// Subscriber connections (one per gateway).
    #[arg(long, default_value_t = 2)]
    pub subscribers: usize,
    /// Channels (rooms).
    #[arg(long, default_value_t = 50)]
    pub channels: usize,
    #[arg(long, default_value_t = 100)]
    pub body_bytes: usize,
    #[arg(long, default_value_t = 8.0)]
    pub seconds: f64,
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    #[arg(long, default_value_t = 1)]
    pub cpu: usize,
}

fn redis_cpu(args: &RedisRate) -> Option<f64> {
    let pid = std::fs::read_to_string(args.pid_file.as_ref()?).ok()?.trim().parse().ok()?;
    let (u, s) = crate::server::proc_cpu_seconds(pid);
    Some(u + s)
}

pub async fn run(args: RedisRate) -> anyhow::Result<()> {
    let client = redis::Client::open(args.url.as_str()).context("AURORA_REDIS_URL")?;
    let channels: Vec<String> =
        (0..args.channels).map(|i| format!("aurora:bench:{}:{i}", std::process::id())).collect();
    let received = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for _ in 0..args.subscribers {
        let mut sub = client.get_async_pubsub().await.context("subscriber connection")?;
        for c in &channels {
            sub.subscribe(c).await.context("SUBSCRIBE")?;
        }
        let received = received.clone();
        readers.push(tokio::spawn(async move {
            let mut messages = sub.on_message();
            while messages.next().await.is_some() {
                received.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let mut publisher = client.get_multiplexed_async_connection().await.context("publisher connection")?;
    let body = vec![b'x'; args.body_bytes];
    let mut costs = Vec::new();
    for repeat in 0..args.repeats {
        let stop = Arc::new(AtomicBool::new(false));
        let published = Arc::new(AtomicU64::new(0));
        let timer = {
            let stop = stop.clone();
            let secs = 2.0 + args.seconds;
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs_f64(secs)).await;
                stop.store(true, Ordering::Relaxed);
            })
        };
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let (start, mut sent) = (Instant::now(), 0u64);
        let mut measured: Option<(u64, u64, f64, Option<f64>, Instant)> = None;
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            if measured.is_none() && start.elapsed() >= Duration::from_secs(2) {
                let now = (published.load(Ordering::Relaxed), received.load(Ordering::Relaxed));
                measured = Some((now.0, now.1, crate::client::self_cpu_seconds(), redis_cpu(&args), Instant::now()));
            }
            let due = (start.elapsed().as_secs_f64() * args.rate) as u64;
            if sent >= due {
                continue;
            }
            let mut pipe = redis::pipe();
            while sent < due {
                pipe.cmd("PUBLISH").arg(&channels[sent as usize % channels.len()]).arg(&body[..]).ignore();
                sent += 1;
            }
            pipe.query_async::<()>(&mut publisher).await.context("PUBLISH")?;
            published.store(sent, Ordering::Relaxed);
        }
        timer.await.context("timer")?;
        let (p0, r0, own0, redis0, started) = measured.context("--seconds too short")?;
        let wall = started.elapsed().as_secs_f64();
        let (msgs, reads) = (published.load(Ordering::Relaxed) - p0, received.load(Ordering::Relaxed) - r0);
        let own = crate::client::self_cpu_seconds() - own0;
        let server = redis_cpu(&args).zip(redis0).map(|(a, b)| a - b);
        anyhow::ensure!(msgs > 0, "nothing was published");
        let us = |cpu: f64| cpu * 1e6 / msgs as f64;
        eprintln!(
            "  redis PUBLISH at {:.0}/s to {} subscribers, repeat {}: {:.0} received/s; µs per message: redis-server {}, publisher + subscribers {:.1}",
            args.rate,
            args.subscribers,
            repeat + 1,
            reads as f64 / wall,
            server.map_or("not measured".to_owned(), |s| format!("{:.1}", us(s))),
            us(own)
        );
        costs.push(us(own + server.unwrap_or(0.0)));
    }
    for r in readers {
        r.abort();
    }
    costs.sort_by(f64::total_cmp);
    let median = costs.get(costs.len() / 2).context("--repeats must be at least 1")?;
    println!("{median:.1}");
    Ok(())
}
