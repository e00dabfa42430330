//! The load generator's connections: opened from several 127.0.0.x source addresses, one task
//! each, reading frames in place (`wire`). A delivery is found by its body's marker (`@@` and 16
//! digits of microseconds since the run started) without parsing the frame; its latency is
//! recorded when its send time falls inside the measured window.

use anyhow::Context;
use hdrhistogram::Histogram;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;
use tokio::net::TcpSocket;
use tokio::sync::mpsc;

use crate::peer::{Credential, Peer};
use crate::wire::{Conn, Frame};

const MARK: &str = "@@";
const TS_DIGITS: usize = 16;

fn epoch() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// Microseconds since the run started.
pub fn now_us() -> u64 {
    epoch().elapsed().as_micros() as u64
}

/// A message body of `size` bytes carrying its send time.
pub fn body(ts_us: u64, size: usize) -> String {
    let mut b = format!("{MARK}{ts_us:0width$}", width = TS_DIGITS);
    while b.len() < size {
        b.push('x');
    }
    b
}

/// Counters and the latency histogram shared by every connection of a run.
pub struct Stats {
    pub latency: Mutex<Histogram<u64>>,
    pub delivered: AtomicU64,
    pub acks: AtomicU64,
    pub closed: AtomicU64,
    window_from: AtomicU64,
    window_to: AtomicU64,
    /// `AURORA_BENCH_LATE_MS`: deliveries later than this (µs) are kept, as (send time,
    /// latency), for [`Stats::late_summary`]: which messages were late, and for how many members.
    late_us: Option<u64>,
    late: Mutex<Vec<(u64, u64)>>,
}

impl Stats {
    pub fn new() -> Arc<Self> {
        let late_ms = std::env::var("AURORA_BENCH_LATE_MS").ok().and_then(|v| v.parse::<u64>().ok());
        Self::with_late(late_ms.map(|ms| ms * 1000))
    }

    fn with_late(late_us: Option<u64>) -> Arc<Self> {
        Arc::new(Stats {
            latency: Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")),
            delivered: AtomicU64::new(0),
            acks: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            window_from: AtomicU64::new(u64::MAX),
            window_to: AtomicU64::new(u64::MAX),
            late_us,
            late: Mutex::new(Vec::new()),
        })
    }

    /// The late deliveries of the window, one line per late message (send time relative to
    /// the window's start, members it reached late, worst latency), worst first.
    pub fn late_summary(&self) -> Option<String> {
        self.late_us?;
        let from = self.window_from.load(Ordering::Relaxed);
        let mut late = self.late.lock().ok()?;
        let mut by_message = std::collections::BTreeMap::<u64, (u64, u64)>::new();
        for (ts, lat) in late.drain(..) {
            let e = by_message.entry(ts).or_default();
            e.0 += 1;
            e.1 = e.1.max(lat);
        }
        let mut rows: Vec<_> = by_message.into_iter().collect();
        rows.sort_by_key(|(_, (_, worst))| std::cmp::Reverse(*worst));
        // Unix time of a send time, to line the late messages up with the servers' logs.
        let unix_now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        let now = now_us();
        let mut out = format!("  late messages: {}\n", rows.len());
        for (ts, (n, worst)) in rows.iter().take(40) {
            let at = ts.saturating_sub(from) as f64 / 1e6;
            let unix = unix_now - now.saturating_sub(*ts) as f64 / 1e6;
            let worst = *worst as f64 / 1e3;
            out += &format!("    sent at +{at:.3} s (unix {unix:.3}): {n} members late, worst {worst:.1} ms\n");
        }
        Some(out)
    }

    /// Counts deliveries and acks of messages sent in [from, to) from now on.
    pub fn open_window(&self, from: u64, to: u64) {
        if let Ok(mut h) = self.latency.lock() {
            h.reset();
        }
        self.delivered.store(0, Ordering::Relaxed);
        self.acks.store(0, Ordering::Relaxed);
        self.window_to.store(to, Ordering::Relaxed);
        self.window_from.store(from, Ordering::Relaxed);
    }

    fn record(&self, frame: &[u8], now: u64) {
        let (from, to) = (self.window_from.load(Ordering::Relaxed), self.window_to.load(Ordering::Relaxed));
        let mut found = [0u64; 32];
        let mut n = 0;
        for i in memchr::memmem::find_iter(frame, MARK.as_bytes()) {
            let digits = frame.get(i + MARK.len()..i + MARK.len() + TS_DIGITS);
            if let Some(ts) = digits.and_then(parse_digits) {
                if ts >= from && ts < to && n < found.len() {
                    found[n] = now.saturating_sub(ts).max(1);
                    n += 1;
                }
            }
        }
        if n == 0 {
            return;
        }
        self.delivered.fetch_add(n as u64, Ordering::Relaxed);
        if let Ok(mut h) = self.latency.lock() {
            for v in &found[..n] {
                let _ = h.record(*v);
            }
        }
        if let Some(limit) = self.late_us {
            if let Ok(mut late) = self.late.lock() {
                for v in &found[..n] {
                    if *v > limit && late.len() < 1_000_000 {
                        late.push((now - v, *v));
                    }
                }
            }
        }
    }
}

fn parse_digits(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |n, d| d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0')))
}

/// What a connection does besides reading.
pub enum Role {
    /// Reads only.
    Member,
    /// Sends the bodies the pacer hands it.
    Publisher(mpsc::Receiver<String>),
    /// Keeps `window` sends in flight, sending the next one on each ack (closed loop).
    Ingest { window: usize, size: usize },
}

/// Opens a WebSocket from source address 127.0.0.(2 + n % sources), joins `room`.
pub async fn open(
    peer: Peer,
    base: &str,
    room: &str,
    cred: &Credential,
    n: usize,
    sources: usize,
) -> anyhow::Result<Conn> {
    let url = peer.url(base, room);
    let rest = url.strip_prefix("ws://").context("a ws:// url")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let addr: SocketAddr = authority.parse().with_context(|| format!("{authority}: not IP:port"))?;
    let (host, port) = (addr.ip(), addr.port());
    let mut headers = Vec::new();
    if let (Peer::Aurora | Peer::AuroraDistributed, Credential::Token(token)) = (peer, cred) {
        headers.push(format!("Authorization: Bearer {token}"));
    }
    let socket = TcpSocket::new_v4()?;
    if host.is_loopback() && sources > 0 {
        let src = Ipv4Addr::new(127, 0, 0, (2 + n % sources.min(250)) as u8);
        socket.bind(SocketAddr::new(IpAddr::V4(src), 0))?;
    }
    let stream = socket.connect(SocketAddr::new(host, port)).await.with_context(|| format!("connect {url}"))?;
    stream.set_nodelay(true)?;
    let path = if path.is_empty() { "/" } else { path };
    let mut ws = Conn::upgrade(stream, authority, path, &headers).await.with_context(|| format!("upgrade {url}"))?;
    peer.handshake(&mut ws, room, cred).await?;
    Ok(ws)
}

/// Runs one connection until the server closes it or `stop` fires.
pub async fn run(
    peer: Peer,
    mut ws: Conn,
    room: String,
    role: Role,
    stats: Arc<Stats>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let (mut publish, mut window, size) = match role {
        Role::Member => (None, 0, 0),
        Role::Publisher(rx) => (Some(rx), 0, 0),
        Role::Ingest { window, size } => (None, window, size),
    };
    let mut next_id = 0u64;
    let mut pending: Vec<String> = Vec::new();
    loop {
        while window > 0 {
            next_id += 1;
            pending.push(peer.publish(&room, &body(now_us(), size), next_id));
            window -= 1;
        }
        for frame in pending.drain(..) {
            ws.queue_text(frame.as_bytes());
        }
        if ws.flush().await.is_err() {
            break;
        }
        tokio::select! {
            more = ws.read_more() => {
                if !matches!(more, Ok(true)) {
                    stats.closed.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                let now = now_us();
                let (mut acks, mut pong, mut closed) = (0, None, false);
                loop {
                    match ws.frame() {
                        Ok(Some(Frame::Data(t))) => {
                            stats.record(t, now);
                            acks += peer.acks_in(t);
                            if let Some(p) = peer.pong_for(t) {
                                pong = Some(p);
                            }
                        }
                        Ok(Some(Frame::Ping(p))) => {
                            let p = p.to_vec();
                            ws.queue_pong(&p);
                        }
                        Ok(Some(Frame::Other)) => {}
                        Ok(None) => break,
                        Ok(Some(Frame::Close)) | Err(_) => {
                            closed = true;
                            break;
                        }
                    }
                }
                if acks > 0 {
                    stats.acks.fetch_add(acks as u64, Ordering::Relaxed);
                    if size > 0 {
                        window += acks;
                    }
                }
                if let Some(p) = pong {
                    pending.push(p.to_owned());
                }
                if closed {
                    stats.closed.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            },
            body = recv(&mut publish) => match body {
                Some(b) => {
                    next_id += 1;
                    pending.push(peer.publish(&room, &b, next_id));
                    while let Some(rx) = publish.as_mut() {
                        match rx.try_recv() {
                            Ok(b) => { next_id += 1; pending.push(peer.publish(&room, &b, next_id)); }
                            Err(_) => break,
                        }
                    }
                }
                None => publish = None,
            },
            _ = stop.changed() => break,
        }
    }
    ws.close().await;
}

async fn recv(rx: &mut Option<mpsc::Receiver<String>>) -> Option<String> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// CPU seconds (user + system) this process has used.
#[allow(unsafe_code)]
pub fn self_cpu_seconds() -> f64 {
    // SAFETY: rusage is plain data; all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return f64::NAN;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_deliveries_are_listed_per_message_worst_first() {
        let stats = Stats::with_late(Some(50_000));
        stats.open_window(1_000_000, 9_000_000);
        let (early, late) = (body(2_000_000, 40), body(3_000_000, 40));
        stats.record(early.as_bytes(), 2_010_000);
        for member in 0..3u64 {
            stats.record(late.as_bytes(), 3_100_000 + member * 100_000);
        }
        let summary = stats.late_summary().expect("tracing on");
        assert!(summary.contains("late messages: 1\n"), "{summary}");
        assert!(summary.contains("sent at +2.000 s"), "{summary}");
        assert!(summary.contains("3 members late, worst 300.0 ms"), "{summary}");
        assert_eq!(stats.late_summary().as_deref(), Some("  late messages: 0\n"), "drained");
        assert!(Stats::with_late(None).late_summary().is_none());
    }
}
