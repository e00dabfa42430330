#!/usr/bin/env python3
"""Per-hop latency of the distributed path from /metrics snapshots (`dev/bench.sh probe`).

  dev/latency-probe.py SNAPSHOT_DIR

Each file in SNAPSHOT_DIR holds lines `<process> <metric> <value>`, one file per second. Prints
each histogram's count, mean and bucket bounds of p50 and p99 between the first snapshot with a
send and the last one.
"""
import collections
import os
import re
import sys

HOPS = (
    ("aurora_admission_seconds", "gateway: admission (Redis: nonce claim + rate-limit token)"),
    ("aurora_send_ack_seconds", "gateway: append → ack (Kafka append acknowledged)"),
    ("aurora_consumer_end_to_end_seconds", "gateway accept → consumer publish"),
    ("aurora_consumer_batch_seconds", "consumer: store + publish one batch"),
    ("aurora_consumer_publish_seconds", "consumer: publish one stored batch"),
    ("aurora_delivery_seconds", "gateway: bus → socket flush"),
)


def parse(path):
    out = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3:
                out[(parts[0], parts[1])] = float(parts[2])
    return out


def main():
    d = sys.argv[1]
    files = sorted(f for f in os.listdir(d) if f.isdigit() and os.path.getsize(os.path.join(d, f)) > 0)
    snaps = [parse(os.path.join(d, f)) for f in files]

    def sent(s):
        return sum(v for (_, n), v in s.items() if n == "aurora_send_ack_seconds_count")

    start = next((s for s in snaps if sent(s) > 0), None)
    if start is None:
        sys.exit("no send in the snapshots")
    end = snaps[-1]
    print("| hop | observations | mean ms | p50 ≤ ms | p99 ≤ ms |\n|---|---|---|---|---|")
    for metric, label in HOPS:
        delta = {k: v - start.get(k, 0.0) for k, v in end.items()}
        count = sum(v for (_, n), v in delta.items() if n == metric + "_count")
        total = sum(v for (_, n), v in delta.items() if n == metric + "_sum")
        buckets = collections.defaultdict(float)
        for (_, n), v in delta.items():
            m = re.fullmatch(re.escape(metric) + r'_bucket\{le="([^"]+)"\}', n)
            if m:
                buckets[float(m.group(1))] += v

        def quantile(q):
            return next((le for le in sorted(buckets) if buckets[le] >= q * count), float("inf"))

        mean = 1000 * total / count if count else float("nan")
        print(f"| {label} | {count:.0f} | {mean:.1f} | {1000 * quantile(0.5):g} | {1000 * quantile(0.99):g} |")


if __name__ == "__main__":
    main()
