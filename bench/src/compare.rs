//! `aurora-bench compare`: every scenario for every peer in one run, each point repeated.

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use std::path::PathBuf;

use crate::peer::Peer;
use crate::report;
use crate::scenario::{self, Idle, Ingest, Options, Shape, Step};
use crate::server::{Server, Spinners};
use crate::ProgramArgs;

/// The parts of a peer's measurement plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    Idle,
    Fanout,
    Fixed,
    Ingest,
    /// Sends at --cost-rate from --cost-senders clients, each alone in its room: the CPU of
    /// every process per acked message, with (almost) no fan-out.
    Cost,
}

#[derive(Args, Clone, Debug)]
pub struct Plan {
    #[command(flatten)]
    pub programs: ProgramArgs,
    /// Peers to run, in order.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "raw,raw-unbatched,aurora,centrifugo,socket-io")]
    pub peers: Vec<Peer>,
    /// Scenarios to run for each peer (`fixed` with `--repeats 10` is the stall probe at one rate).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "idle,fanout,fixed,ingest")]
    pub scenarios: Vec<Scenario>,
    /// Idle scenario: joined connections.
    #[arg(long, default_value_t = 19_000)]
    pub idle_connections: usize,
    /// Idle scenario: members per room.
    #[arg(long, default_value_t = 100)]
    pub idle_room_size: usize,
    #[arg(long, default_value_t = 1)]
    pub rooms: usize,
    #[arg(long, default_value_t = 1000)]
    pub members: usize,
    /// Publishing members per room.
    #[arg(long, default_value_t = 10)]
    pub publishers: usize,
    #[arg(long, default_value_t = 100)]
    pub body_bytes: usize,
    /// The pacer's tick in ms: each tick sends every message due, round-robin over the
    /// publishers, so 10 sends bursts of rate/100 (some load generators pace that way).
    #[arg(long, default_value_t = 1)]
    pub pace_ms: u64,
    /// First offered rate (messages/s over all rooms); each step multiplies it by --factor.
    #[arg(long, default_value_t = 50.0)]
    pub start_rate: f64,
    #[arg(long, default_value_t = 1.5)]
    pub factor: f64,
    #[arg(long, default_value_t = 20_000.0)]
    pub max_rate: f64,
    /// Seconds measured per step (after 1 s of warm-up).
    #[arg(long, default_value_t = 3.0)]
    pub step_seconds: f64,
    /// Extra steps per repeat that bisect (geometrically) between the knee and the first
    /// unhealthy rate above it, each on fresh connections: 2 narrow a ×1.5 ladder to ×1.11.
    #[arg(long, default_value_t = 2)]
    pub refine: usize,
    /// The fixed load (messages/s) at which CPU per delivery is compared.
    #[arg(long, default_value_t = 100.0)]
    pub fixed_rate: f64,
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Ingest: senders, each alone in its room, each keeping --ingest-window sends in flight.
    /// A list (`50,200`) measures every peer at each count, and a peer's ingest is its best:
    /// a stack that acks later needs more sends in flight to be saturated.
    #[arg(long, value_delimiter = ',', default_value = "50")]
    pub ingest_senders: Vec<usize>,
    #[arg(long, default_value_t = 16)]
    pub ingest_window: usize,
    #[arg(long, default_value_t = 5.0)]
    pub ingest_seconds: f64,
    /// The `cost` scenario's offered rate (messages/s over all its rooms).
    #[arg(long, default_value_t = 2000.0)]
    pub cost_rate: f64,
    /// The `cost` scenario's senders, each alone in its room.
    #[arg(long, default_value_t = 50)]
    pub cost_senders: usize,
    /// 127.0.0.x source addresses for the client side of the connections.
    #[arg(long, default_value_t = 8)]
    pub sources: usize,
    /// Registered users per peer (connections share them round-robin).
    #[arg(long, default_value_t = 100)]
    pub users: usize,
    /// Skip the idle-priority spinners on both cores (they run through the fan-out and fixed
    /// steps only).
    #[arg(long)]
    pub no_spinners: bool,
    /// Where results.json, table.md and the charts go.
    #[arg(long)]
    pub out: PathBuf,
    /// Raw Kafka producer rate measured on this machine (messages/s), shown next to ingest.
    #[arg(long)]
    pub kafka_producer_rate: Option<f64>,
    /// The gateways' own Kafka producer keyed like the ingest scenario, with no gateway
    /// (`aurora-bench kafka-rate`; acked sends/s), shown next to ingest.
    #[arg(long)]
    pub kafka_keyed_rate: Option<f64>,
    /// CPU µs per message of a keyed Kafka producer + consumer doing nothing else, at
    /// --cost-rate (`aurora-bench kafka-rate --rate R --consume`), shown next to `cost`.
    #[arg(long)]
    pub raw_kafka_us_per_message: Option<f64>,
    /// CPU µs per message of Redis PUBLISH to one subscriber per gateway, at --cost-rate
    /// (`aurora-bench redis-rate`), shown next to `cost`.
    #[arg(long)]
    pub raw_redis_us_per_message: Option<f64>,
    /// The broker's `log.flush.interval.messages` in this run (1: fsync before every ack),
    /// stated with the distributed results since it sets what an ack means and what it costs.
    #[arg(long)]
    pub kafka_flush_messages: Option<u64>,
    /// The distributed stack's MongoDB-compatible server in this run (`dev/bench.sh` names it:
    /// FerretDB on SQLite or on PostgreSQL), stated with the results: it sets the stack's
    /// store pace.
    #[arg(long)]
    pub store: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct PeerResult {
    pub peer: Peer,
    pub name: &'static str,
    pub idle: Option<Idle>,
    /// One ladder per repeat.
    pub fanout: Vec<Vec<Step>>,
    /// One step at --fixed-rate per repeat.
    pub fixed: Vec<Step>,
    pub ingest: Vec<Ingest>,
    /// One step at --cost-rate per repeat.
    pub cost: Vec<Step>,
    pub errors: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Results {
    pub machine: String,
    pub shape: Shape,
    pub fixed_rate: f64,
    pub cost_rate: f64,
    pub repeats: usize,
    pub kafka_producer_rate: Option<f64>,
    pub kafka_keyed_rate: Option<f64>,
    pub raw_kafka_us_per_message: Option<f64>,
    pub raw_redis_us_per_message: Option<f64>,
    pub kafka_flush_messages: Option<u64>,
    pub store: Option<String>,
    pub peers: Vec<PeerResult>,
}

impl Plan {
    fn max_ingest_senders(&self) -> usize {
        self.ingest_senders.iter().copied().max().unwrap_or(0)
    }
}

pub async fn run(plan: Plan) -> anyhow::Result<()> {
    std::fs::create_dir_all(&plan.out)?;
    std::fs::create_dir_all(&plan.programs.work)?;
    let programs = plan.programs.programs();
    let shape = Shape {
        rooms: plan.rooms,
        members: plan.members,
        publishers: plan.publishers,
        body_bytes: plan.body_bytes,
        pace_ms: plan.pace_ms,
    };
    let opts = Options { sources: plan.sources, users: plan.users };
    let mut results = Results {
        machine: report::machine(),
        shape: shape.clone(),
        fixed_rate: plan.fixed_rate,
        cost_rate: plan.cost_rate,
        repeats: plan.repeats,
        kafka_producer_rate: plan.kafka_producer_rate,
        kafka_keyed_rate: plan.kafka_keyed_rate,
        raw_kafka_us_per_message: plan.raw_kafka_us_per_message,
        raw_redis_us_per_message: plan.raw_redis_us_per_message,
        kafka_flush_messages: plan.kafka_flush_messages,
        store: plan.store.clone(),
        peers: Vec::new(),
    };
    for &peer in &plan.peers {
        eprintln!("== {}", peer.name());
        let mut r = PeerResult {
            peer,
            name: peer.name(),
            idle: None,
            fanout: Vec::new(),
            fixed: Vec::new(),
            ingest: Vec::new(),
            cost: Vec::new(),
            errors: Vec::new(),
        };
        if let Err(e) = measure(peer, &plan, &programs, &shape, &opts, &mut r).await {
            eprintln!("   {} failed: {e:#}", peer.name());
            r.errors.push(format!("{e:#}"));
        }
        results.peers.push(r);
        // Each peer's table is written as soon as it is done: a long run can be read midway.
        report::write(&plan.out, &results)?;
    }
    report::write(&plan.out, &results)?;
    let failed: Vec<_> = results
        .peers
        .iter()
        .filter(|p| {
            let steps = || p.fanout.iter().flatten().chain(&p.fixed);
            !p.errors.is_empty() || (steps().next().is_some() && steps().all(|s| s.delivered == 0))
        })
        .map(|p| p.name)
        .collect();
    anyhow::ensure!(failed.is_empty(), "no result from: {}", failed.join(", "));
    Ok(())
}

/// Every room the runs use, and the warm-up room. Every fan-out population joins rooms of its
/// own: a join reads the room's history, and a room that earlier ladders filled would charge
/// the next population's joins for it.
fn bench_rooms(plan: &Plan, shape: &Shape, populations: usize) -> (Vec<String>, String) {
    let mut rooms: Vec<String> =
        (0..populations).flat_map(|n| scenario::room_names(&format!("f{n}-"), shape.rooms)).collect();
    rooms.extend(scenario::room_names("g", plan.max_ingest_senders()));
    rooms.extend(scenario::room_names("c", plan.cost_senders));
    rooms.extend(scenario::room_names("i", plan.idle_connections.div_ceil(plan.idle_room_size)));
    let warm_room = scenario::room_names("w", 1).remove(0);
    rooms.push(warm_room.clone());
    (rooms, warm_room)
}

/// Memory per idle joined connection, on a fresh server.
async fn measure_idle(
    peer: Peer,
    plan: &Plan,
    programs: &crate::server::Programs,
    rooms: &[String],
    opts: &Options,
) -> anyhow::Result<scenario::Idle> {
    let server = Server::start(peer, programs, rooms)?;
    let creds = server.credentials(opts.users.min(plan.idle_room_size)).await?;
    let idle =
        scenario::idle(&server, plan.idle_connections, plan.idle_room_size, &creds, opts).await.context("idle")?;
    eprintln!(
        "   idle: {} joined connections, {:.2} KiB each (RSS {} → {} KiB, set up in {:.1} s)",
        idle.connections, idle.kib_per_connection, idle.rss_before_kib, idle.rss_after_kib, idle.setup_seconds
    );
    Ok(idle)
}

// Long by design: the measurement plan of one peer (fan-out ladders, fixed rate, ingest) in
// the order docs/benchmarks.md reports it.
async fn measure(
    peer: Peer,
    plan: &Plan,
    programs: &crate::server::Programs,
    shape: &Shape,
    opts: &Options,
    r: &mut PeerResult,
) -> anyhow::Result<()> {
    // The spinners keep the fan-out steps' cores awake. `cost` and `ingest` keep both cores
    // busy themselves, and with a spinner on each as well this VM froze for ~4 s at a time
    // (docs/benchmarks.md); the raw baselines they are judged against run without them too.
    let spinners = (!plan.no_spinners).then(|| Spinners::start(&[0, plan.programs.client_cpu]));
    let populations = plan.repeats * (plan.refine + 2);
    let fanout_prefix = |n: usize| format!("f{n}-");
    let (rooms, warm_room) = bench_rooms(plan, shape, populations);
    // Idle first, on a fresh server: its RSS is the baseline.
    let runs = |s: Scenario| plan.scenarios.contains(&s);
    if plan.idle_connections > 0 && runs(Scenario::Idle) {
        r.idle = Some(measure_idle(peer, plan, programs, &rooms, opts).await?);
    }
    let users = opts.users.min(shape.members.max(plan.max_ingest_senders()).max(plan.cost_senders));
    let mut server = Server::start(peer, programs, &rooms)?;
    let mut creds = server.credentials(users).await?;
    // FerretDB (the MongoDB stand-in) filters and sorts every query but `{_id}` in Go over the
    // whole collection, so a join's history read grows with everything stored so far, and a
    // consumer that fell behind at saturation leaves a backlog in Kafka for the next one. With
    // AURORA_BENCH_RESET set, the distributed servers restart on emptied services before each
    // population (fresh users, the same rooms), so each ladder measures fan-out alone.
    let reset = std::env::var("AURORA_BENCH_RESET").ok().filter(|_| peer == Peer::AuroraDistributed);
    let mut fresh = true;
    let restart = async |cmd: &str, server: &mut Server, creds: &mut Vec<crate::peer::Credential>| {
        server.stop();
        let status = unpinned("sh").arg("-c").arg(cmd).status()?;
        anyhow::ensure!(status.success(), "AURORA_BENCH_RESET failed: {status}");
        *server = Server::start(peer, programs, &rooms)?;
        *creds = server.credentials(users).await?;
        anyhow::Ok(())
    };
    let mut renew = async |server: &mut Server, creds: &mut Vec<crate::peer::Credential>| -> anyhow::Result<()> {
        if let Some(cmd) = &reset {
            if !std::mem::take(&mut fresh) {
                restart(cmd, server, creds).await?;
            }
            if let Some(cred) = creds.first().cloned() {
                // A restarted stack that did not answer its warm-up handshake within 30 s (in
                // the runs of 2026-12-07 04:11 and 07:53, with nothing in its logs) gets one
                // more reset; the log says so, and a second failure ends the peer.
                if let Err(e) = scenario::warm_up(server, &warm_room, &cred, opts).await {
                    eprintln!("   warm-up failed ({e:#}): resetting the services once more");
                    restart(cmd, server, creds).await?;
                    let cred = creds.first().context("no credentials")?;
                    scenario::warm_up(server, &warm_room, cred, opts).await.context("warm-up")?;
                }
            }
        }
        scenario::settle(server).await;
        Ok(())
    };
    let mut next_population = 0..populations;
    let mut prefix = move || fanout_prefix(next_population.next().unwrap_or(populations - 1));
    let repeats = |s: Scenario| if runs(s) { plan.repeats } else { 0 };
    for rep in 0..repeats(Scenario::Fanout) {
        renew(&mut server, &mut creds).await?;
        let pop = scenario::populate(&server, &prefix(), shape, &creds, opts, 0).await.context("fanout connections")?;
        eprintln!("   fanout, repeat {}", rep + 1);
        let mut steps =
            scenario::ladder(&server, &pop, shape, plan.start_rate, plan.factor, plan.max_rate, plan.step_seconds)
                .await;
        drop(pop);
        for _ in 0..plan.refine {
            let Some(rate) = scenario::refine_rate(&steps) else { break };
            renew(&mut server, &mut creds).await?;
            let pop =
                scenario::populate(&server, &prefix(), shape, &creds, opts, 0).await.context("fanout connections")?;
            steps.push(scenario::step(&server, &pop, shape, rate, plan.step_seconds).await);
            scenario::trace_step(&server, steps.last().expect("just pushed"));
        }
        steps.sort_by(|a, b| a.rate.total_cmp(&b.rate));
        r.fanout.push(steps);
    }
    for _ in 0..repeats(Scenario::Fixed) {
        renew(&mut server, &mut creds).await?;
        let pop = scenario::populate(&server, &prefix(), shape, &creds, opts, 0).await.context("fanout connections")?;
        let s = scenario::step(&server, &pop, shape, plan.fixed_rate, plan.step_seconds).await;
        eprintln!(
            "   fixed {:.0}/s: {:.3} µs server CPU per delivery ({:.3} in the kernel), p99 {:.2} ms, max {:.1} ms, {}/{} delivered",
            plan.fixed_rate, s.server_cpu_us_per_delivery, s.server_sys_us_per_delivery, s.p99_ms, s.max_ms, s.delivered, s.expected
        );
        scenario::trace_processes(&s);
        r.fixed.push(s);
    }
    drop(spinners);
    for _ in 0..repeats(Scenario::Cost) {
        renew(&mut server, &mut creds).await?;
        let alone =
            Shape { rooms: plan.cost_senders, members: 1, publishers: 1, body_bytes: shape.body_bytes, pace_ms: 1 };
        let pop = scenario::populate(&server, "c", &alone, &creds, opts, 0).await.context("cost connections")?;
        let s = scenario::step(&server, &pop, &alone, plan.cost_rate, plan.step_seconds).await;
        eprintln!(
            "   cost {:.0}/s: {} acked, {}/{} delivered, p99 {:.2} ms",
            plan.cost_rate, s.acked, s.delivered, s.expected, s.p99_ms
        );
        scenario::trace_processes(&s);
        r.cost.push(s);
    }
    let ingest_shapes: &[usize] = if runs(Scenario::Ingest) { &plan.ingest_senders } else { &[] };
    for &senders in ingest_shapes {
        for _ in 0..plan.repeats {
            renew(&mut server, &mut creds).await?;
            let i = scenario::ingest(
                &server,
                senders,
                plan.ingest_window,
                shape.body_bytes,
                plan.ingest_seconds,
                &creds,
                opts,
            )
            .await
            .context("ingest")?;
            eprintln!(
                "   ingest: {:.0} acked sends/s, {:.0} delivered/s ({} senders, window {}), load generator {:.0}% of a core",
                i.acked_per_s,
                i.delivered_per_s,
                i.senders,
                i.window,
                i.client_cpu_share * 100.0
            );
            for p in &i.processes {
                eprintln!(
                    "     {:<12} {:>5.1}% of a core  {:>8.2} µs/acked send",
                    p.name,
                    p.us_per_message * i.acked_per_s / 1e4,
                    p.us_per_message
                );
            }
            r.ingest.push(i);
        }
    }
    Ok(())
}

/// A command allowed on every online core. The load generator pinned itself to its own core,
/// and children inherit that: services restarted by `AURORA_BENCH_RESET` would otherwise share
/// the load generator's core (Redis then sat runnable for 4.3 s without running while a
/// saturating step kept that core busy).
fn unpinned(program: &str) -> std::process::Command {
    match std::fs::read_to_string("/sys/devices/system/cpu/online") {
        Ok(cpus) => {
            let mut cmd = std::process::Command::new("taskset");
            cmd.args(["-c", cpus.trim(), program]);
            cmd
        }
        Err(_) => std::process::Command::new(program),
    }
}
