#!/usr/bin/env python3
"""Draws the dashboard's headline panels as SVG from a real Prometheus.

Reads `/api/v1/query_range` for the last few minutes of one namespace and writes one
line chart per panel, so docs/metrics.md shows what the queries return. The observability
test (`./run.sh test`) runs it after its load; by hand:

    python3 dev/panels.py --prometheus http://127.0.0.1:19090 --namespace stack --out docs/metrics
"""
import argparse
import json
import math
import os
import time
import urllib.parse
import urllib.request

PANELS = [
    ("connections", "Open WebSockets", "", ['sum(aurora_ws_connections{namespace="NS"})']),
    ("messages", "Messages/s: accepted, delivered", "/s", [
        'sum(rate(aurora_messages_accepted_total{namespace="NS"}[30s]))',
        'sum(rate(aurora_frames_delivered_total{namespace="NS"}[30s]))']),
    ("ack_latency", "Send → ack latency: p50, p99", "ms", [
        'histogram_quantile(0.5, sum by (le) (rate(aurora_send_ack_seconds_bucket{namespace="NS"}[30s]))) * 1000',
        'histogram_quantile(0.99, sum by (le) (rate(aurora_send_ack_seconds_bucket{namespace="NS"}[30s]))) * 1000']),
    ("delivery_latency", "Bus → socket delivery latency: p50, p99", "ms", [
        'histogram_quantile(0.5, sum by (le) (rate(aurora_delivery_seconds_bucket{namespace="NS"}[30s]))) * 1000',
        'histogram_quantile(0.99, sum by (le) (rate(aurora_delivery_seconds_bucket{namespace="NS"}[30s]))) * 1000']),
    ("consumer_lag", "Consumer lag (records)", "", ['sum(aurora_consumer_lag{namespace="NS"})']),
]
COLOURS = ["#1f77b4", "#d62728", "#2ca02c"]
W, H, PAD_L, PAD_B, PAD_T = 480, 200, 56, 28, 28


def query_range(base, expr, start, end, step):
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{base}/api/v1/query_range?{params}", timeout=10) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise SystemExit(f"{expr}: {body}")
    points = []
    for series in body["data"]["result"]:
        for t, v in series["values"]:
            f = float(v)
            if math.isfinite(f):
                points.append((float(t), f))
    return sorted(points)


def svg(title, unit, lines, start, end):
    top = max([v for pts in lines for _, v in pts] + [1e-9]) * 1.1
    x = lambda t: PAD_L + (t - start) / max(end - start, 1) * (W - PAD_L - 8)
    y = lambda v: H - PAD_B - v / top * (H - PAD_B - PAD_T)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
           f'<rect width="{W}" height="{H}" fill="white" stroke="#ccc"/>',
           f'<text x="8" y="17" font-size="13" font-weight="bold">{title}</text>']
    for i in range(5):
        v = top * i / 4
        out.append(f'<line x1="{PAD_L}" x2="{W - 8}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eee"/>')
        out.append(f'<text x="{PAD_L - 4}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.3g}{unit}</text>')
    out.append(f'<text x="{PAD_L}" y="{H - 8}">-{(end - start) / 60:.0f} min</text>')
    out.append(f'<text x="{W - 8}" y="{H - 8}" text-anchor="end">now</text>')
    for i, pts in enumerate(lines):
        if pts:
            path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in pts)
            out.append(f'<polyline fill="none" stroke="{COLOURS[i % 3]}" stroke-width="1.6" points="{path}"/>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prometheus", required=True)
    p.add_argument("--namespace", required=True)
    p.add_argument("--minutes", type=float, default=5)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    end = time.time()
    start = end - a.minutes * 60
    step = max(1, int(a.minutes * 60 / 120))
    for name, title, unit, exprs in PANELS:
        lines = [query_range(a.prometheus, e.replace("NS", a.namespace), start, end, step) for e in exprs]
        if not any(lines):
            raise SystemExit(f"{name}: no data for namespace {a.namespace}")
        with open(os.path.join(a.out, f"{name}.svg"), "w") as f:
            f.write(svg(title, unit, lines, start, end))
        print(f"{name}: {sum(len(l) for l in lines)} points")


if __name__ == "__main__":
    main()
