#!/usr/bin/env python3
"""The capacity model of docs/capacity.md, fitted to this machine's measurements.

  dev/capacity.py BASE.json CHECK.json [IDLE_KIB]

BASE.json: a results.json of `./run.sh bench distributed` (2 gateways, 1 consumer: the fan-out
ladders, the `fixed` step and the `cost` step, with CPU by process). CHECK.json: the same
`fixed` and `cost` steps with more gateways and consumers (`aurora-bench compare --gateways 4
--consumers 2 --scenarios fixed,cost`). The model is fitted on BASE, predicts CHECK's CPU by
tier, and answers the sizing questions. IDLE_KIB: memory per idle joined connection (the
compare's `idle` scenario for the embedded gateway, the same connection code; default 6.7).
"""
import json
import statistics
import sys

TIERS = ("gateway", "consumer", "kafka", "redis", "ferretdb")


def tier_of(name):
    return next((t for t in TIERS if name.startswith(t)), None)


def healthy(steps):
    return [s for s in steps if s["expected"] and s["delivered"] >= 0.99 * s["expected"]]


def med(values):
    values = list(values)
    return statistics.median(values) if values else float("nan")


def tier_cpu(steps, tier):
    """Median CPU seconds of a tier over healthy steps (all of its processes)."""
    return med(sum(p["cpu_seconds"] for p in s["processes"] if tier_of(p["name"]) == tier) for s in healthy(steps))


def per_process_cpu(steps, tier):
    return med(
        med(p["cpu_seconds"] for p in s["processes"] if tier_of(p["name"]) == tier) for s in healthy(steps)
    )


def load(path):
    with open(path) as f:
        r = json.load(f)
    p = r["peers"][0]
    names = {q["name"] for s in p["fixed"] + p["cost"] for q in s["processes"]}
    return {
        "procs": {t: sum(1 for n in names if tier_of(n) == t) for t in TIERS},
        "members": r["shape"]["members"],
        "fixed_rate": r["fixed_rate"],
        "cost_rate": r["cost_rate"],
        "fixed": p["fixed"],
        "cost": p["cost"],
        "lowest": [lad[0] for lad in p["fanout"] if lad],
        "messages": {k: med(s["acked"] for s in healthy(p[k])) for k in ("fixed", "cost")},
    }


def fit(base):
    """CPU of every tier in BASE's steps, split into per-process idle and per-unit costs."""
    idle = {t: per_process_cpu(base["lowest"], t) for t in TIERS} if base["lowest"] else dict.fromkeys(TIERS, 0.0)
    n = base["procs"]
    m_fixed, m_cost = base["messages"]["fixed"], base["messages"]["cost"]
    # Gateways: Gc = n·idle + Mc·(g_msg + g_del); Gf = n·idle + Mf·g_msg + Mf·members·g_del.
    gc = tier_cpu(base["cost"], "gateway") - n["gateway"] * idle["gateway"]
    gf = tier_cpu(base["fixed"], "gateway") - n["gateway"] * idle["gateway"]
    members = base["members"]
    g_del = (gf / m_fixed - gc / m_cost) / (members - 1)
    g_msg = gc / m_cost - g_del
    units = {"gateway per message (µs)": g_msg * 1e6, "gateway per delivery (µs)": g_del * 1e6}
    for t in TIERS[1:]:
        for k, m in (("fixed", m_fixed), ("cost", m_cost)):
            units[f"{t} per message at {base[k + '_rate']:.0f} msg/s (µs)"] = (
                (tier_cpu(base[k], t) - n[t] * idle[t]) / m * 1e6
            )
    return idle, units


def check(base, target, idle):
    """Predicts TARGET's CPU by tier from BASE: the same work per message and delivery at the
    same rates, plus each added process's idle cost (and, for Redis, one PUBLISH delivery per
    added subscribed gateway, from BASE's per-message Redis cost at s = BASE's gateways)."""
    rows, worst = [], 0.0
    for k in ("fixed", "cost"):
        scale = target["messages"][k] / base["messages"][k]
        for t in TIERS:
            extra = (target["procs"][t] - base["procs"][t]) * idle[t]
            predicted = tier_cpu(base[k], t) * scale + extra
            measured = tier_cpu(target[k], t)
            dev = measured / predicted - 1 if predicted else float("nan")
            worst = max(worst, abs(dev))
            rows.append((k, t, predicted, measured, dev))
        p_all = sum(r[2] for r in rows if r[0] == k)
        m_all = sum(r[3] for r in rows if r[0] == k)
        rows.append((k, "**all**", p_all, m_all, m_all / p_all - 1))
    return rows, worst


# Sizing: (share of messages, members per room) and the load per user.
MIX = ((0.6, 5), (0.3, 50), (0.1, 1000))
MESSAGES_PER_USER_PER_S = 1 / 60
CONNECTIONS_PER_GATEWAY = 20_000
# redis-server CPU per PUBLISH: ~45 µs with one subscriber plus ~4.4 µs per further subscribed
# connection (`aurora-bench redis-rate --rate 500 --subscribers 1|2|8|50 --seconds 4 --repeats 2`,
# 2026-12-06: 40-50, 50-60, 80-85, 260-265 µs).
REDIS_PER_SUBSCRIBER_US = 4.4
REDIS_ONE_SUBSCRIBER_US = 45.0


def gateways_hit(members, gateways):
    """Expected gateways hosting at least one of `members` spread at random over `gateways`."""
    return gateways * (1 - (1 - 1 / gateways) ** members)


def size(units, users, idle_kib, step_seconds):
    gateways = max(1, -(-users // CONNECTIONS_PER_GATEWAY))
    rate = users * MESSAGES_PER_USER_PER_S
    deliveries = rate * sum(share * s for share, s in MIX)
    hit = rate * sum(share * gateways_hit(s, gateways) for share, s in MIX)
    cores = {
        "gateway": (rate * units["gateway per message (µs)"] + deliveries * units["gateway per delivery (µs)"]) / 1e6,
        # The busier of the two measured rates: per-message costs fall with batching.
        "consumer": rate * units["consumer per message at 2000 msg/s (µs)"] / 1e6,
        "kafka": rate * units["kafka per message at 2000 msg/s (µs)"] / 1e6,
        # A send's admission and its PUBLISH to one gateway, then each further gateway.
        "redis": (rate * units["redis per message at 2000 msg/s (µs)"] + (hit - rate) * REDIS_PER_SUBSCRIBER_US) / 1e6,
        "ferretdb": rate * units["ferretdb per message at 2000 msg/s (µs)"] / 1e6,
    }
    return gateways, rate, deliveries, cores, users * idle_kib / 2**20


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    base, target = load(sys.argv[1]), load(sys.argv[2])
    idle_kib = float(sys.argv[3]) if len(sys.argv) > 3 else 6.7
    idle, units = fit(base)
    print("## Fitted on the 2-gateway run\n")
    print("| unit | value |\n|---|---|")
    for t in TIERS:
        print(f"| {t}: CPU s per process in a near-idle step (5 msg/s) | {idle[t]:.3f} |")
    for k, v in units.items():
        print(f"| {k} | {v:.1f} |")
    rows, worst = check(base, target, idle)
    procs = ", ".join(f"{target['procs'][t]} {t}" for t in TIERS if target["procs"][t])
    print(f"\n## Check: {procs}, predicted from the 2-gateway run\n")
    print("| step | tier | predicted CPU s | measured CPU s | deviation |\n|---|---|---|---|---|")
    for k, t, p, m, d in rows:
        rate = base[k + "_rate"]
        print(f"| {k} ({rate:.0f} msg/s) | {t} | {p:.2f} | {m:.2f} | {d:+.0%} |")
    print(f"\nLargest deviation of one tier: {worst:.0%}.")
    print("\n## Sizing (cores of this machine)\n")
    print("| users | gateways | messages/s | deliveries/s | " + " | ".join(TIERS) + " | gateway memory GiB |")
    print("|---|---|---|---|" + "---|" * len(TIERS) + "---|")
    for users in (10_000, 100_000, 1_000_000):
        g, rate, d, cores, mem = size(units, users, idle_kib, 3.0)
        print(f"| {users:,} | {g} | {rate:,.0f} | {d:,.0f} | " + " | ".join(f"{cores[t]:.1f}" for t in TIERS) + f" | {mem:.1f} |")
    per_gw = units["gateway per message (µs)"] + 2000 * units["gateway per delivery (µs)"]
    redis_msg = units["redis per message at 2000 msg/s (µs)"] + 49 * REDIS_PER_SUBSCRIBER_US
    print("\n## One room of 100,000 members over 50 gateways\n")
    print(f"- a gateway: {per_gw:.0f} µs per message (2,000 local members) → {1e6 / per_gw:.0f} messages/s per core, unbatched")
    print(f"- Redis: {redis_msg:.0f} µs per message (admission, one PUBLISH to 50 subscribed gateways) → {1e6 / redis_msg:.0f} messages/s on its one thread")


if __name__ == "__main__":
    main()
