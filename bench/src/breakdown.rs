//! Where the distributed stack's cores go: CPU per acked message and per delivery for every
//! process (gateways, consumers, Kafka, Redis, FerretDB), next to the raw baselines.

use std::fmt::Write as _;

use crate::compare::{PeerResult, Results};
use crate::report::spread;
use crate::scenario::Step;

/// The median of one process's figure over the repeats.
fn median_of(steps: &[Step], name: &str, f: impl Fn(&crate::scenario::ProcessCost) -> f64) -> Option<f64> {
    spread(steps.iter().filter_map(|s| s.processes.iter().find(|p| p.name == name).map(&f)).collect()).map(|s| s.median)
}

fn total(steps: &[Step], f: impl Fn(&crate::scenario::ProcessCost) -> f64) -> Option<f64> {
    spread(steps.iter().map(|s| s.processes.iter().map(&f).sum()).collect()).map(|s| s.median)
}

fn cell(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.digits$}"))
}

/// The breakdown table of one peer, or nothing when it runs as one process.
pub fn table(r: &Results, p: &PeerResult) -> String {
    let best = crate::report::best_ingest(p);
    let ingest_processes = best.iter().flat_map(|i| i.processes.iter());
    let names: Vec<String> = p
        .fixed
        .iter()
        .chain(&p.cost)
        .flat_map(|s| s.processes.iter())
        .chain(ingest_processes)
        .map(|c| c.name.clone())
        .fold(Vec::new(), |mut v, n| {
            if !v.contains(&n) {
                v.push(n);
            }
            v
        });
    if names.len() < 2 {
        return String::new();
    }
    let share = |steps: &[Step], name: &str| {
        spread(
            steps
                .iter()
                .filter_map(|s| {
                    let wall = s.sent as f64 / s.rate.max(1e-9);
                    s.processes.iter().find(|c| c.name == name).map(|c| 100.0 * c.cpu_seconds / wall.max(1e-9))
                })
                .collect(),
        )
        .map(|s| s.median)
    };
    // Ingest keeps no wall time: a process's share is its CPU per acked send times the rate.
    let ingest = |name: &str, f: &dyn Fn(&crate::scenario::ProcessCost, f64) -> f64| {
        spread(
            best.iter()
                .filter_map(|i| i.processes.iter().find(|c| c.name == name).map(|c| f(c, i.acked_per_s)))
                .collect(),
        )
        .map(|s| s.median)
    };
    let ingest_total = spread(best.iter().map(|i| i.processes.iter().map(|c| c.us_per_message).sum()).collect())
        .map(|s| s.median)
        .filter(|_| best.iter().any(|i| !i.processes.is_empty()));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{}: CPU by process. Fan-out at {:.0} msg/s ({} members per room); `cost`: {:.0} msg/s from senders alone in their rooms; ingest: as many sends as the stack acks, at its best sends in flight. Medians over the repeats.\n",
        p.name, r.fixed_rate, r.shape.members, r.cost_rate
    );
    let _ = writeln!(out, "| process | fan-out: % of a core | fan-out: µs per acked message | fan-out: µs per delivery | cost: % of a core | cost: µs per acked message | ingest: % of a core | ingest: µs per acked send |");
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    for name in &names {
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {} | {} | {} |",
            cell(share(&p.fixed, name), 1),
            cell(median_of(&p.fixed, name, |c| c.us_per_message), 1),
            cell(median_of(&p.fixed, name, |c| c.us_per_delivery), 3),
            cell(share(&p.cost, name), 1),
            cell(median_of(&p.cost, name, |c| c.us_per_message), 1),
            cell(ingest(name, &|c, rate| c.us_per_message * rate / 1e4), 1),
            cell(ingest(name, &|c, _| c.us_per_message), 1),
        );
    }
    let cost_total = total(&p.cost, |c| c.us_per_message);
    let _ = writeln!(
        out,
        "| **all** | | {} | {} | | {} | | {} |",
        cell(total(&p.fixed, |c| c.us_per_message), 1),
        cell(total(&p.fixed, |c| c.us_per_delivery), 3),
        cell(cost_total, 1),
        cell(ingest_total, 1),
    );
    if let (Some(t), Some(raw)) = (cost_total, r.raw_kafka_us_per_message) {
        let _ = writeln!(
            out,
            "\nRaw keyed Kafka producer + consumer doing nothing else, at the same rate (`aurora-bench kafka-rate --rate {:.0} --consume`): {raw:.1} µs per message (the bench process and the broker). Distributed CPU per acked message: {:.2}× that.",
            r.cost_rate,
            t / raw
        );
    }
    if let Some(raw) = r.raw_redis_us_per_message {
        let _ = writeln!(
            out,
            "\nRaw Redis PUBLISH to one subscriber per gateway, at the same rate (`aurora-bench redis-rate`): {raw:.1} µs per message (redis-server, publisher and subscribers)."
        );
    }
    out
}
