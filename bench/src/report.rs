//! results.json, the Markdown table with ratios, and SVG charts.

use std::fmt::Write as _;
use std::path::Path;

use crate::compare::{PeerResult, Results};
use crate::peer::Peer;
use crate::scenario::{knee, Ingest, Step};

pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpu}, {cores} core(s) visible to the load generator, Linux {}", kernel.trim())
}

/// Median and range of a sample.
#[derive(Clone, Copy, Debug, Default)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

pub fn spread(mut v: Vec<f64>) -> Option<Spread> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(Spread { median: v[v.len() / 2], min: v[0], max: v[v.len() - 1] })
}

/// One ingest shape's repeats (senders × window sends in flight) and its acked median and range.
pub struct IngestShape<'a> {
    pub senders: usize,
    pub window: usize,
    pub repeats: Vec<&'a Ingest>,
    pub acked: Spread,
}

/// Ingest by shape (senders, window), in the order measured.
pub fn ingest_shapes(p: &PeerResult) -> Vec<IngestShape<'_>> {
    let mut groups: Vec<(usize, usize, Vec<&Ingest>)> = Vec::new();
    for i in &p.ingest {
        match groups.iter_mut().find(|(s, w, _)| (*s, *w) == (i.senders, i.window)) {
            Some((_, _, repeats)) => repeats.push(i),
            None => groups.push((i.senders, i.window, vec![i])),
        }
    }
    groups
        .into_iter()
        .filter_map(|(senders, window, repeats)| {
            let acked = spread(repeats.iter().map(|i| i.acked_per_s).collect())?;
            Some(IngestShape { senders, window, repeats, acked })
        })
        .collect()
}

/// The repeats of the peer's best ingest shape (highest median): its ingest.
pub fn best_ingest(p: &PeerResult) -> Vec<&Ingest> {
    let best = ingest_shapes(p).into_iter().max_by(|a, b| a.acked.median.total_cmp(&b.acked.median));
    best.map(|shape| shape.repeats).unwrap_or_default()
}

pub struct Summary {
    pub knee: Option<Spread>,
    pub cpu_us: Option<Spread>,
    pub fixed_p99: Option<Spread>,
    pub idle_kib: Option<f64>,
    pub ingest: Option<Spread>,
    pub peak_deliveries: Option<Spread>,
}

pub fn summarize(p: &PeerResult) -> Summary {
    Summary {
        knee: spread(p.fanout.iter().map(|l| knee(l)).collect()),
        cpu_us: spread(p.fixed.iter().map(|s| s.server_cpu_us_per_delivery).collect()),
        fixed_p99: spread(p.fixed.iter().map(|s| s.p99_ms).collect()),
        idle_kib: p.idle.as_ref().map(|i| i.kib_per_connection),
        ingest: spread(best_ingest(p).iter().map(|i| i.acked_per_s).collect()),
        peak_deliveries: spread(
            p.fanout.iter().map(|l| l.iter().map(|s| s.deliveries_per_s).fold(0.0, f64::max)).collect(),
        ),
    }
}

/// What the broker's flush setting made an ack mean in this run.
fn broker_flush(messages: u64) -> String {
    match messages {
        1 => "Broker: `log.flush.interval.messages=1`, an fsync before every ack (an acked message is on the broker's disk).".to_owned(),
        n if n >= i64::MAX as u64 => "Broker: Kafka's default flush, no fsync before an ack (an acked message is in the broker's page cache: it survives the broker process, not the machine; Kafka's docs leave durability to replication).".to_owned(),
        n => format!("Broker: `log.flush.interval.messages={n}`, an fsync every {n} appends."),
    }
}

fn fmt_spread(s: Option<Spread>, digits: usize) -> String {
    match s {
        Some(s) if s.min == s.max => format!("{:.*}", digits, s.median),
        Some(s) => format!("{:.*} ({:.*}–{:.*})", digits, s.median, digits, s.min, digits, s.max),
        None => "–".to_owned(),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 && a.is_finite() => format!("{:.2}×", a / b),
        _ => "–".to_owned(),
    }
}

pub fn table(r: &Results) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Fan-out: {} room(s) × {} members ({} publishing), {} B bodies; CPU per delivery at {:.0} msg/s; idle: joined connections; {} repeat(s), median (min–max).\n",
        r.shape.rooms, r.shape.members, r.shape.publishers, r.shape.body_bytes, r.fixed_rate, r.repeats
    );
    let _ = writeln!(out, "| server | knee msg/s (p99 ≤ 50 ms) | peak deliveries/s | server CPU µs/delivery | p99 ms at fixed load | KiB per idle joined conn | acked sends/s |");
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for p in &r.peers {
        let s = summarize(p);
        let idle = match (&p.idle, s.idle_kib) {
            (Some(i), Some(k)) => format!("{k:.1} (at {})", i.connections),
            _ => "–".to_owned(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            p.name,
            fmt_spread(s.knee, 0),
            fmt_spread(s.peak_deliveries, 0),
            fmt_spread(s.cpu_us, 3),
            fmt_spread(s.fixed_p99, 2),
            idle,
            fmt_spread(s.ingest, 0),
        );
    }
    for p in r.peers.iter().filter(|p| !p.ingest.is_empty()) {
        let shapes: Vec<String> = ingest_shapes(p)
            .into_iter()
            .map(|shape| {
                let delivered = spread(shape.repeats.iter().map(|i| i.delivered_per_s).collect());
                format!(
                    "{} senders × {}: {} acked, {} delivered",
                    shape.senders,
                    shape.window,
                    fmt_spread(Some(shape.acked), 0),
                    fmt_spread(delivered, 0)
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "\n{} ingest by sends in flight (per second; its best acked is its ingest; delivered below acked: a backlog grew behind the acks): {}.",
            p.name,
            shapes.join("; ")
        );
    }
    if let Some(k) = r.kafka_producer_rate {
        let _ = writeln!(
            out,
            "\nRaw Kafka producer on this machine (acks=all, {} B records): {k:.0} msg/s.",
            r.shape.body_bytes
        );
    }
    if let Some(k) = r.kafka_keyed_rate {
        let _ = writeln!(
            out,
            "\nThe gateways' own Kafka producer without a gateway, keyed and in flight like the ingest scenario \
             (`aurora-bench kafka-rate`): {k:.0} acked sends/s."
        );
    }
    if let Some(n) = r.kafka_flush_messages {
        let _ = writeln!(out, "\n{}", broker_flush(n));
    }
    if let Some(store) = &r.store {
        let _ = writeln!(out, "\nThe distributed stack's store: {store}.");
    }
    let distributed = r.peers.iter().find(|p| p.peer == Peer::AuroraDistributed).map(summarize);
    if let Some(ingest) = distributed.as_ref().and_then(|d| d.ingest) {
        let m = Some(ingest.median);
        let _ = writeln!(
            out,
            "\nDistributed ingest relative to the raw producer: {}; to the keyed producer: {}.",
            ratio(m, r.kafka_producer_rate),
            ratio(m, r.kafka_keyed_rate)
        );
    }
    let aurora = r.peers.iter().find(|p| p.peer == Peer::Aurora).map(summarize);
    if let (Some(d), Some(a)) = (&distributed, &aurora) {
        let _ = writeln!(
            out,
            "\nDistributed relative to embedded in this run: knee {}, ingest {}.",
            ratio(d.knee.map(|k| k.median), a.knee.map(|k| k.median)),
            ratio(d.ingest.map(|i| i.median), a.ingest.map(|i| i.median))
        );
    }
    for p in &r.peers {
        out.push_str(&crate::breakdown::table(r, p));
    }
    if let Some(a) = aurora {
        let _ = writeln!(out, "\nAuroraChat (embedded) relative to each peer (knee: higher is better; CPU and memory: lower is better):\n");
        let _ = writeln!(
            out,
            "| versus | knee ratio | CPU per delivery ratio | memory per connection ratio | ingest ratio |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|");
        for p in r.peers.iter().filter(|p| p.peer != Peer::Aurora) {
            let s = summarize(p);
            let m = |x: Option<Spread>| x.map(|x| x.median);
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                p.name,
                ratio(m(a.knee), m(s.knee)),
                ratio(m(a.cpu_us), m(s.cpu_us)),
                ratio(a.idle_kib, s.idle_kib),
                ratio(m(a.ingest), m(s.ingest)),
            );
        }
    }
    out
}

pub fn write(out: &Path, r: &Results) -> anyhow::Result<()> {
    std::fs::write(out.join("results.json"), serde_json::to_vec_pretty(r)?)?;
    std::fs::write(out.join("table.md"), table(r))?;
    std::fs::write(out.join("fanout-p99.svg"), chart(r, "p99 latency (ms) by offered rate", |s| s.p99_ms, true))?;
    std::fs::write(
        out.join("fanout-deliveries.svg"),
        chart(r, "deliveries/s by offered rate", |s| s.deliveries_per_s, false),
    )?;
    Ok(())
}

const COLOURS: [&str; 5] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd"];

/// Log-x line chart of the first repeat's ladder per peer.
fn chart(r: &Results, title: &str, y: impl Fn(&Step) -> f64, log_y: bool) -> String {
    let (w, h, left, bottom, top, right) = (720.0, 400.0, 70.0, 50.0, 30.0, 190.0);
    let series: Vec<(&str, Vec<(f64, f64)>)> = r
        .peers
        .iter()
        .filter_map(|p| {
            let ladder = p.fanout.first()?;
            let pts: Vec<(f64, f64)> =
                ladder.iter().map(|s| (s.rate, y(s))).filter(|(x, v)| *x > 0.0 && v.is_finite() && *v > 0.0).collect();
            Some((p.name, pts))
        })
        .collect();
    let all: Vec<(f64, f64)> = series.iter().flat_map(|(_, p)| p.iter().copied()).collect();
    let mut svg = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{left}\" y=\"18\" font-size=\"14\">{title}</text>\n");
    if all.is_empty() {
        svg.push_str("</svg>\n");
        return svg;
    }
    let (x0, x1) = (
        all.iter().map(|p| p.0).fold(f64::MAX, f64::min).log10(),
        all.iter().map(|p| p.0).fold(0.0, f64::max).log10().max(1e-9),
    );
    let ty = |v: f64| if log_y { v.log10() } else { v };
    let (y0, y1) = (
        if log_y { all.iter().map(|p| ty(p.1)).fold(f64::MAX, f64::min).floor() } else { 0.0 },
        all.iter().map(|p| ty(p.1)).fold(f64::MIN, f64::max),
    );
    let (x1, y1) = (if x1 > x0 { x1 } else { x0 + 1.0 }, if y1 > y0 { y1 } else { y0 + 1.0 });
    let px = |x: f64| left + (x.log10() - x0) / (x1 - x0) * (w - left - right);
    let py = |v: f64| h - bottom - (ty(v) - y0) / (y1 - y0) * (h - top - bottom);
    let _ = writeln!(
        svg,
        "<line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>",
        h - bottom,
        w - right,
        h - bottom
    );
    let _ = writeln!(svg, "<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{}\" stroke=\"black\"/>", h - bottom);
    for i in 0..=4 {
        let xv = 10f64.powf(x0 + (x1 - x0) * i as f64 / 4.0);
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{:.0}</text>",
            px(xv),
            h - bottom + 16.0,
            xv
        );
        let t = y0 + (y1 - y0) * i as f64 / 4.0;
        let yv = if log_y { 10f64.powf(t) } else { t };
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left - 6.0,
            py(yv) + 4.0,
            short(yv)
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">offered messages/s (log)</text>",
        (left + w - right) / 2.0,
        h - 12.0
    );
    if log_y && y0 <= 50f64.log10() && 50f64.log10() <= y1 {
        let _ = writeln!(svg, "<line x1=\"{left}\" y1=\"{0:.1}\" x2=\"{1}\" y2=\"{0:.1}\" stroke=\"grey\" stroke-dasharray=\"4 3\"/><text x=\"{2}\" y=\"{3:.1}\" fill=\"grey\">50 ms</text>", py(50.0), w - right, left + 4.0, py(50.0) - 4.0);
    }
    for (i, (name, pts)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let path: Vec<String> = pts.iter().map(|&(x, v)| format!("{:.1},{:.1}", px(x), py(v))).collect();
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
            path.join(" ")
        );
        let ly = top + 16.0 * i as f64 + 10.0;
        let _ = writeln!(svg, "<rect x=\"{}\" y=\"{:.1}\" width=\"12\" height=\"3\" fill=\"{colour}\"/><text x=\"{}\" y=\"{:.1}\">{name}</text>", w - right + 10.0, ly - 4.0, w - right + 26.0, ly);
    }
    svg.push_str("</svg>\n");
    svg
}

fn short(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::PeerResult;
    use crate::scenario::{Ingest, Shape};

    fn step(rate: f64, p99_ms: f64) -> Step {
        Step {
            rate,
            sent: 100,
            expected: 1000,
            delivered: 1000,
            deliveries_per_s: rate * 10.0,
            p50_ms: p99_ms / 2.0,
            p99_ms,
            p999_ms: p99_ms,
            max_ms: p99_ms,
            server_cpu_us_per_delivery: 1.0,
            server_sys_us_per_delivery: 0.5,
            server_cpu_share: 0.5,
            client_cpu_share: 0.5,
            closed: 0,
            acked: 100,
            processes: Vec::new(),
        }
    }

    fn ingest(senders: usize, acked_per_s: f64) -> Ingest {
        Ingest {
            senders,
            window: 16,
            acked_per_s,
            delivered_per_s: acked_per_s,
            server_cpu_share: 0.5,
            client_cpu_share: 0.5,
            processes: Vec::new(),
        }
    }

    fn peer(peer: Peer, ladder: &[(f64, f64)], acked_per_s: f64) -> PeerResult {
        PeerResult {
            peer,
            name: peer.name(),
            idle: None,
            fanout: vec![ladder.iter().map(|&(rate, p99)| step(rate, p99)).collect()],
            fixed: Vec::new(),
            ingest: vec![ingest(50, acked_per_s)],
            cost: Vec::new(),
            errors: Vec::new(),
        }
    }

    fn results(peers: Vec<PeerResult>) -> Results {
        Results {
            machine: "test".into(),
            shape: Shape { rooms: 1, members: 10, publishers: 1, body_bytes: 100, pace_ms: 1 },
            fixed_rate: 50.0,
            cost_rate: 100.0,
            repeats: 1,
            kafka_producer_rate: None,
            kafka_keyed_rate: None,
            raw_kafka_us_per_message: None,
            raw_redis_us_per_message: None,
            kafka_flush_messages: None,
            store: None,
            peers,
        }
    }

    #[test]
    fn the_distributed_knee_and_ingest_are_given_against_the_embedded_ones_of_the_same_run() {
        let embedded = peer(Peer::Aurora, &[(100.0, 10.0), (400.0, 40.0), (800.0, 90.0)], 20_000.0);
        let distributed = peer(Peer::AuroraDistributed, &[(100.0, 30.0), (200.0, 70.0)], 5_000.0);
        let table = table(&results(vec![embedded, distributed]));
        assert!(table.contains("Distributed relative to embedded in this run: knee 0.25×, ingest 0.25×."), "{table}");
    }

    #[test]
    fn the_table_says_what_an_ack_meant_on_the_broker() {
        let distributed = peer(Peer::AuroraDistributed, &[(100.0, 30.0)], 5_000.0);
        let mut r = results(vec![distributed]);
        r.kafka_flush_messages = Some(1);
        assert!(table(&r).contains("an fsync before every ack"));
        r.kafka_flush_messages = Some(i64::MAX as u64);
        assert!(table(&r).contains("Kafka's default flush, no fsync before an ack"));
        r.kafka_flush_messages = None;
        assert!(!table(&r).contains("Broker:"));
    }

    #[test]
    fn a_run_without_the_embedded_gateway_gives_no_such_ratio() {
        let distributed = peer(Peer::AuroraDistributed, &[(100.0, 30.0)], 5_000.0);
        let table = table(&results(vec![distributed]));
        assert!(!table.contains("relative to embedded"), "{table}");
    }

    #[test]
    fn a_peer_measured_at_several_sends_in_flight_is_judged_by_its_best() {
        let mut embedded = peer(Peer::Aurora, &[(100.0, 10.0)], 20_000.0);
        embedded.ingest.extend([ingest(50, 22_000.0), ingest(50, 21_000.0)]);
        embedded.ingest.extend([ingest(200, 19_000.0), ingest(200, 21_000.0), ingest(200, 20_000.0)]);
        let mut distributed = peer(Peer::AuroraDistributed, &[(100.0, 30.0)], 10_000.0);
        distributed.ingest.extend([ingest(200, 16_000.0), ingest(200, 18_000.0), ingest(200, 17_000.0)]);
        let mut r = results(vec![embedded, distributed]);
        r.kafka_producer_rate = Some(50_000.0);
        let table = table(&r);
        assert!(table.contains("knee 1.00×, ingest 0.81×"), "{table}");
        assert!(table.contains("relative to the raw producer: 0.34×"), "{table}");
        assert!(
            table.contains(
                "50 senders × 16: 21000 (20000–22000) acked, 21000 (20000–22000) delivered; 200 senders × 16: 20000 (19000–21000) acked"
            ),
            "{table}"
        );
        assert!(
            table
                .contains("50 senders × 16: 10000 acked, 10000 delivered; 200 senders × 16: 17000 (16000–18000) acked"),
            "{table}"
        );
    }
}
