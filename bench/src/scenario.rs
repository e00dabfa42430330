//! The scenarios: `idle` (memory per joined connection), `fanout` (stepped publish rate until
//! saturation), `ingest` (acked sends per second, closed loop).

use anyhow::Context;
use serde::Serialize;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;

use crate::client::{self, now_us, Role, Stats};
use crate::peer::Credential;
use crate::server::Server;

/// p99 above this is past the knee.
pub const KNEE_P99_MS: f64 = 50.0;

#[derive(Clone, Debug, Serialize)]
pub struct Shape {
    pub rooms: usize,
    pub members: usize,
    pub publishers: usize,
    pub body_bytes: usize,
    /// The pacer's tick: every tick sends what is due, so a longer tick sends bursts.
    pub pace_ms: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Step {
    /// Messages per second offered (all rooms).
    pub rate: f64,
    pub sent: u64,
    pub expected: u64,
    pub delivered: u64,
    pub deliveries_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    /// The slowest delivery: a stall shows here long before it moves p99.
    pub max_ms: f64,
    pub server_cpu_us_per_delivery: f64,
    /// The kernel's part of `server_cpu_us_per_delivery` (system time).
    pub server_sys_us_per_delivery: f64,
    pub server_cpu_share: f64,
    pub client_cpu_share: f64,
    pub closed: u64,
    /// Acks the publishers received during the step.
    pub acked: u64,
    /// Where the server's cores went: every process, the distributed stack's services included.
    pub processes: Vec<ProcessCost>,
}

/// One process's CPU during a step, per acked message and per delivery.
#[derive(Clone, Debug, Serialize)]
pub struct ProcessCost {
    pub name: String,
    pub cpu_seconds: f64,
    pub us_per_message: f64,
    pub us_per_delivery: f64,
}

impl Step {
    pub fn healthy(&self) -> bool {
        self.delivered as f64 >= 0.99 * self.expected as f64 && self.p99_ms <= KNEE_P99_MS
    }
}

/// Connections joined to rooms, one task each, stopped on drop.
pub struct Population {
    pub stats: Arc<Stats>,
    publishers: Vec<mpsc::Sender<String>>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Drop for Population {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.tasks.abort_all();
    }
}

pub struct Options {
    pub sources: usize,
    pub users: usize,
}

/// Room names carry the run's process id: a distributed run keeps its rooms' history (FerretDB)
/// and presence (Redis, left behind by killed gateways), and a later run must not join them.
fn room_name(prefix: &str, i: usize) -> String {
    format!("{prefix}{i}-{}", std::process::id())
}

pub fn room_names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| room_name(prefix, i)).collect()
}

/// Opens `rooms × members` connections; the first `roles(i)` decides each member's role.
pub async fn populate(
    server: &Server,
    prefix: &str,
    shape: &Shape,
    creds: &[Credential],
    opts: &Options,
    ingest_window: usize,
) -> anyhow::Result<Population> {
    let stats = Stats::new();
    let (stop, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut publishers = Vec::new();
    let gate = Arc::new(Semaphore::new(64));
    let mut opening = JoinSet::new();
    let total = shape.rooms * shape.members;
    for n in 0..total {
        let (room_i, member) = (n / shape.members, n % shape.members);
        let room = room_name(prefix, room_i);
        let base = server.bases[n % server.bases.len()].clone();
        let cred = creds[n % creds.len()].clone();
        let (peer, gate, sources) = (server.peer, gate.clone(), opts.sources);
        let role = if member < shape.publishers {
            if ingest_window > 0 {
                Role::Ingest { window: ingest_window, size: shape.body_bytes }
            } else {
                let (tx, rx) = mpsc::channel(4096);
                publishers.push(tx);
                Role::Publisher(rx)
            }
        } else {
            Role::Member
        };
        opening.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            let ws = client::open(peer, &base, &room, &cred, n, sources).await?;
            anyhow::Ok((ws, room, role))
        });
    }
    // Every connection runs only once all are open: ingest senders started as they joined kept
    // the distributed stack so busy that the last joins of 200 missed their 30 s deadline.
    let mut opened = Vec::with_capacity(total);
    while let Some(conn) = opening.join_next().await {
        opened.push(conn.context("open task")??);
    }
    for (ws, room, role) in opened {
        tasks.spawn(client::run(server.peer, ws, room, role, stats.clone(), stop_rx.clone()));
    }
    Ok(Population { stats, publishers, stop, tasks })
}

/// Offers `rate` messages/s round-robin over the publishers for `secs`; returns messages sent.
async fn pace(pop: &Population, rate: f64, secs: f64, shape: &Shape) -> u64 {
    let start = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(shape.pace_ms.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let (mut sent, mut next) = (0u64, 0usize);
    loop {
        tick.tick().await;
        let elapsed = start.elapsed().as_secs_f64();
        if elapsed >= secs {
            return sent;
        }
        let due = (elapsed * rate) as u64;
        while sent < due {
            let tx = &pop.publishers[next % pop.publishers.len()];
            next += 1;
            if tx.try_send(client::body(now_us(), shape.body_bytes)).is_ok() {
                sent += 1;
            }
        }
    }
}

/// Waits until deliveries stop arriving (or `max`), polling the counter.
async fn drain(stats: &Stats, expected: u64, max: Duration) {
    let deadline = tokio::time::Instant::now() + max;
    let mut last = u64::MAX;
    while tokio::time::Instant::now() < deadline {
        let now = stats.delivered.load(Ordering::Relaxed);
        if now >= expected || now == last {
            // Two equal readings 200 ms apart: nothing more is in flight.
            if now >= expected || last != u64::MAX {
                return;
            }
        }
        last = now;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One measured step: 1 s warm-up, `secs` measured, then the drain.
pub async fn step(server: &Server, pop: &Population, shape: &Shape, rate: f64, secs: f64) -> Step {
    pace(pop, rate, 1.0, shape).await;
    let (cpu0, self0) = (server.cpu_split(), client::self_cpu_seconds());
    let by_process0 = server.cpu_by_process();
    let closed0 = pop.stats.closed.load(Ordering::Relaxed);
    let from = now_us();
    pop.stats.open_window(from, from + (secs * 1e6) as u64);
    let started = std::time::Instant::now();
    let sent = pace(pop, rate, secs, shape).await;
    let expected = sent * shape.members as u64;
    drain(&pop.stats, expected, Duration::from_secs(5)).await;
    let wall = started.elapsed().as_secs_f64();
    let (user, sys) = server.cpu_split();
    let (sys, own) = (sys - cpu0.1, client::self_cpu_seconds() - self0);
    let cpu = user - cpu0.0 + sys;
    let delivered = pop.stats.delivered.load(Ordering::Relaxed);
    let acked = pop.stats.acks.load(Ordering::Relaxed);
    let processes = process_costs(server, &by_process0, acked, delivered);
    let (p50, p99, p999, max) = match pop.stats.latency.lock() {
        Ok(h) if !h.is_empty() => {
            (h.value_at_quantile(0.5), h.value_at_quantile(0.99), h.value_at_quantile(0.999), h.max())
        }
        _ => (0, 0, 0, 0),
    };
    if let Some(late) = pop.stats.late_summary() {
        eprint!("{late}");
    }
    let ms = |us: u64| us as f64 / 1000.0;
    Step {
        rate,
        sent,
        expected,
        delivered,
        deliveries_per_s: delivered as f64 / secs,
        p50_ms: ms(p50),
        p99_ms: if delivered == 0 { f64::INFINITY } else { ms(p99) },
        p999_ms: ms(p999),
        max_ms: ms(max),
        server_cpu_us_per_delivery: if delivered == 0 { 0.0 } else { cpu * 1e6 / delivered as f64 },
        server_sys_us_per_delivery: if delivered == 0 { 0.0 } else { sys * 1e6 / delivered as f64 },
        server_cpu_share: cpu / wall,
        client_cpu_share: own / wall,
        closed: pop.stats.closed.load(Ordering::Relaxed) - closed0,
        acked,
        processes,
    }
}

/// Every process's CPU since `before`, per acked message and per delivery.
fn process_costs(
    server: &Server,
    before: &[crate::server::ProcessCpu],
    acked: u64,
    delivered: u64,
) -> Vec<ProcessCost> {
    let per = |cpu: f64, n: u64| if n == 0 { 0.0 } else { cpu * 1e6 / n as f64 };
    server
        .cpu_by_process()
        .into_iter()
        .map(|p| {
            let start = before.iter().find(|b| b.name == p.name).map_or(p.cpu_seconds, |b| b.cpu_seconds);
            // A service restarted mid-step (never by design) reads lower than before.
            let cpu = (p.cpu_seconds - start).max(0.0);
            ProcessCost {
                name: p.name,
                cpu_seconds: cpu,
                us_per_message: per(cpu, acked),
                us_per_delivery: per(cpu, delivered),
            }
        })
        .collect()
}

/// The stepped ladder: `start`, ×`factor` each step, until saturation or `max_rate`.
pub async fn ladder(
    server: &Server,
    pop: &Population,
    shape: &Shape,
    start: f64,
    factor: f64,
    max_rate: f64,
    secs: f64,
) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut rate = start;
    while rate <= max_rate {
        let s = step(server, pop, shape, rate, secs).await;
        trace_step(server, &s);
        let saturated = (s.delivered as f64) < 0.9 * s.expected as f64 || s.p99_ms > 1000.0 || s.closed > 0;
        steps.push(s);
        if saturated {
            break;
        }
        rate = (rate * factor).round();
    }
    steps
}

pub fn trace_step(server: &Server, s: &Step) {
    eprintln!(
        "  {:<26} rate {:>7.0}/s  deliveries {:>9.0}/s ({}/{})  p50 {:>7.2} ms  p99 {:>7.2} ms  p999 {:>7.2} ms  max {:>7.1} ms  server cpu {:>4.0}% ({:.2} µs/delivery, {:.2} in the kernel)  client cpu {:>4.0}%{}",
        server.peer.name(),
        s.rate,
        s.deliveries_per_s,
        s.delivered,
        s.expected,
        s.p50_ms,
        s.p99_ms,
        s.p999_ms,
        s.max_ms,
        s.server_cpu_share * 100.0,
        s.server_cpu_us_per_delivery,
        s.server_sys_us_per_delivery,
        s.client_cpu_share * 100.0,
        if s.closed > 0 { format!("  {} connections closed", s.closed) } else { String::new() }
    );
}

/// One line per process: CPU share of a core, µs per acked message and per delivery.
pub fn trace_processes(s: &Step) {
    let wall = (s.sent as f64 / s.rate.max(1e-9)).max(1e-9);
    for p in &s.processes {
        eprintln!(
            "     {:<12} {:>5.1}% of a core  {:>8.2} µs/acked message  {:>7.3} µs/delivery",
            p.name,
            p.cpu_seconds / wall * 100.0,
            p.us_per_message,
            p.us_per_delivery
        );
    }
}

/// The highest offered rate whose step was healthy (p99 ≤ 50 ms, ≥ 99 % delivered).
pub fn knee(steps: &[Step]) -> f64 {
    steps.iter().filter(|s| s.healthy()).map(|s| s.rate).fold(0.0, f64::max)
}

/// The next rate to try between the knee and the lowest unhealthy rate above it (their
/// geometric mean), or `None` once the two are adjacent or there is no unhealthy step above.
pub fn refine_rate(steps: &[Step]) -> Option<f64> {
    let lo = knee(steps);
    let hi = steps.iter().filter(|s| !s.healthy() && s.rate > lo).map(|s| s.rate).fold(f64::INFINITY, f64::min);
    let mid = (lo.max(1.0) * hi).sqrt().round();
    (hi.is_finite() && mid > lo && mid < hi).then_some(mid)
}

#[derive(Clone, Debug, Serialize)]
pub struct Idle {
    pub connections: usize,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub kib_per_connection: f64,
    pub setup_seconds: f64,
}

/// Opens `n` connections, each joined to a room of `room_size`, and reads the server's RSS
/// once it has settled.
pub async fn idle(
    server: &Server,
    n: usize,
    room_size: usize,
    creds: &[Credential],
    opts: &Options,
) -> anyhow::Result<Idle> {
    let before = settled_rss(server).await;
    let started = std::time::Instant::now();
    let shape =
        Shape { rooms: n.div_ceil(room_size), members: room_size.min(n), publishers: 0, body_bytes: 0, pace_ms: 1 };
    let pop = populate(server, "i", &shape, creds, opts, 0).await?;
    let setup_seconds = started.elapsed().as_secs_f64();
    let after = settled_rss(server).await;
    let connections = shape.rooms * shape.members;
    drop(pop);
    Ok(Idle {
        connections,
        rss_before_kib: before,
        rss_after_kib: after,
        kib_per_connection: after.saturating_sub(before) as f64 / connections as f64,
        setup_seconds,
    })
}

/// Round trips through each gateway until five in a row take under 50 ms (at most 60 s): a
/// distributed stack restarted on emptied services stalls its first messages while the fresh
/// broker loads its internal topics and the consumer joins its group, and the first measured
/// step must not pay for that.
pub async fn warm_up(server: &Server, room: &str, cred: &Credential, opts: &Options) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for (g, base) in server.bases.iter().enumerate() {
        let mut ws =
            client::open(server.peer, base, room, cred, g, opts.sources).await.context("warm-up connection")?;
        let mut fast = 0;
        for n in 0.. {
            anyhow::ensure!(tokio::time::Instant::now() < deadline, "the stack did not warm up within 60 s");
            let took = crate::peer::round_trip(server.peer, &mut ws, room, &format!("warm-up {g}.{n}")).await?;
            fast = if took < Duration::from_millis(50) { fast + 1 } else { 0 };
            if fast == 5 {
                break;
            }
        }
    }
    Ok(())
}

/// Waits until the server uses under 5 % of a core over 500 ms (at most 60 s).
pub async fn settle(server: &Server) {
    for _ in 0..120 {
        let before = server.cpu_seconds();
        tokio::time::sleep(Duration::from_millis(500)).await;
        if server.cpu_seconds() - before < 0.025 {
            return;
        }
    }
}

/// RSS once two readings 500 ms apart differ by under 0.5 % (at most 10 s).
async fn settled_rss(server: &Server) -> u64 {
    let mut last = server.rss_kib();
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = server.rss_kib();
        if now.abs_diff(last) * 200 < last.max(1) {
            return now;
        }
        last = now;
    }
    last
}

#[derive(Clone, Debug, Serialize)]
pub struct Ingest {
    pub senders: usize,
    pub window: usize,
    pub acked_per_s: f64,
    /// Each sender's own messages coming back through the fan-out: below `acked_per_s`, the
    /// stack acked faster than it delivered (a backlog grew in the log).
    pub delivered_per_s: f64,
    pub server_cpu_share: f64,
    /// The load generator's own CPU, in cores: near 1, it was the limit.
    pub client_cpu_share: f64,
    /// Where the cores went per acked send (and per delivery: each sender, alone in its room,
    /// receives its own messages).
    pub processes: Vec<ProcessCost>,
}

/// Most 1 s warm-up windows before an ingest measurement.
const SETTLE_WINDOWS: usize = 15;

/// Runs the load in 1 s windows until two in a row ack within 10 % of each other (at most
/// [`SETTLE_WINDOWS`]): a distributed stack on a topic created moments ago, with a JIT-cold
/// broker, acks at a fraction of its steady rate for its first seconds.
async fn settle_acks(acks: &std::sync::atomic::AtomicU64) {
    let mut previous: Option<f64> = None;
    for _ in 0..SETTLE_WINDOWS {
        let before = acks.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rate = (acks.load(Ordering::Relaxed) - before) as f64;
        if let Some(p) = previous {
            if rate > 0.0 && (rate - p).abs() <= 0.1 * f64::max(rate, p) {
                return;
            }
        }
        previous = Some(rate);
    }
}

/// `senders` clients, each alone in its room, keep `window` sends in flight for `secs`,
/// once their ack rate has settled.
pub async fn ingest(
    server: &Server,
    senders: usize,
    window: usize,
    body_bytes: usize,
    secs: f64,
    creds: &[Credential],
    opts: &Options,
) -> anyhow::Result<Ingest> {
    let shape = Shape { rooms: senders, members: 1, publishers: 1, body_bytes, pace_ms: 1 };
    let pop = populate(server, "g", &shape, creds, opts, window).await?;
    settle_acks(&pop.stats.acks).await;
    // Counts every delivery from now on, whenever its message was sent (each sender gets its
    // own back): fewer delivered than acked per second means a backlog grew behind the acks.
    pop.stats.open_window(0, u64::MAX);
    let (a0, c0, self0) = (pop.stats.acks.load(Ordering::Relaxed), server.cpu_seconds(), client::self_cpu_seconds());
    let by_process0 = server.cpu_by_process();
    let started = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    let wall = started.elapsed().as_secs_f64();
    let acks = pop.stats.acks.load(Ordering::Relaxed) - a0;
    let delivered = pop.stats.delivered.load(Ordering::Relaxed);
    let (cpu, own) = (server.cpu_seconds() - c0, client::self_cpu_seconds() - self0);
    let processes = process_costs(server, &by_process0, acks, delivered);
    Ok(Ingest {
        senders,
        window,
        acked_per_s: acks as f64 / wall,
        delivered_per_s: delivered as f64 / wall,
        server_cpu_share: cpu / wall,
        client_cpu_share: own / wall,
        processes,
    })
}
