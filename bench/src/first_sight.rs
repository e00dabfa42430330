//! `aurora-bench first-sight`: what a consumer pays to meet a room for the first time (after a
//! start, a rebalance, or a room's first message), against the MongoDB-compatible server of
//! `AURORA_MONGODB_URI`: the exact lookup (the room's messages sorted by `seq`) against its
//! recorded seq (`room_heads`), over a `messages` collection of at least `--messages`.

use anyhow::{ensure, Context};
use aurora_core::distributed::MongoStore;
use aurora_core::model::{Message, UserRef};
use aurora_core::pipeline::last_seqs;
use aurora_core::ports::MessageStore;
use clap::Args;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct FirstSight {
    #[arg(long, env = "AURORA_MONGODB_URI")]
    pub uri: String,
    /// Messages stored before the lookups (over 200 rooms), as recorded by a consumer.
    #[arg(long, default_value_t = 50_000)]
    pub messages: u64,
    /// Rooms looked up each way: as many with messages, as many new.
    #[arg(long, default_value_t = 10)]
    pub rooms: usize,
}

async fn timed<F: std::future::Future<Output = aurora_core::ports::PortResult<u64>>>(
    f: F,
) -> anyhow::Result<(u64, Duration)> {
    let start = Instant::now();
    let seq = f.await.context("lookup")?;
    Ok((seq, start.elapsed()))
}

pub async fn run(args: FirstSight) -> anyhow::Result<()> {
    let store = MongoStore::connect(&args.uri).await.context("AURORA_MONGODB_URI")?;
    store.complete_heads().await.context("room heads")?;
    let tag = format!("fs-{}-{}", std::process::id(), aurora_core::now_ms());
    let user = UserRef { id: "bench".into(), name: "bench".into() };
    let started = Instant::now();
    let mut batch = Vec::with_capacity(1000);
    for i in 0..args.messages {
        batch.push(Message {
            id: format!("{tag}-{i}"),
            room: format!("{tag}-old-{}", i % 200),
            seq: i / 200 + 1,
            user: user.clone(),
            body: "x".repeat(100),
            ts: aurora_core::now_ms(),
            ..Default::default()
        });
        if batch.len() == 1000 || i + 1 == args.messages {
            store.insert(&batch).await.context("insert")?;
            store.record_seqs(&last_seqs(&batch)).await;
            batch.clear();
        }
    }
    println!("stored and recorded {} messages in {:.1} s", args.messages, started.elapsed().as_secs_f64());
    let mut rows = Vec::new();
    for (kind, rooms) in [
        ("with messages", (0..args.rooms).map(|i| format!("{tag}-old-{i}")).collect::<Vec<_>>()),
        ("new", (0..args.rooms).map(|i| format!("{tag}-new-{i}")).collect()),
    ] {
        let (mut exact, mut recorded) = (Duration::ZERO, Duration::ZERO);
        for room in &rooms {
            let (e, te) = timed(store.last_seq(room)).await?;
            let (r, tr) = timed(store.recorded_seq(room)).await?;
            ensure!(e == r, "room {room}: exact {e}, recorded {r}");
            exact += te;
            recorded += tr;
        }
        let n = rooms.len() as f64;
        rows.push((kind, exact.as_secs_f64() * 1e3 / n, recorded.as_secs_f64() * 1e3 / n));
    }
    println!("| rooms | exact lookup, ms per room | recorded seq, ms per room |");
    println!("|---|---|---|");
    for (kind, e, r) in rows {
        println!("| {kind} | {e:.1} | {r:.2} |");
    }
    Ok(())
}
