#!/usr/bin/env bash
# Benchmarks on this machine (release builds, loopback):
#   dev/bench.sh               embedded: RSS with N idle authenticated connections (default
#                              10000) and send→message latency p50/p99 over 1000 messages
#   dev/bench.sh distributed   real Kafka/Redis/FerretDB, 2 gateways + 1 consumer: latency from
#                              a sender on one gateway to a receiver on the other, and
#                              sustained messages/s
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aurora/target}"
CONNS="${BENCH_CONNECTIONS:-10000}"
MESSAGES="${BENCH_MESSAGES:-1000}"
ROOMS="${BENCH_ROOMS:-8}"
SECONDS_OF_LOAD="${BENCH_SECONDS:-20}"
mode="${1:-embedded}"

cargo build --release -p aurora-gateway -p aurora-consumer --bins
cargo build --release -p aurora-gateway --example loadgen
bin="$CARGO_TARGET_DIR/release"
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
work="$(mktemp -d)"
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# Starts a binary in the background; sets $pid and $addr (from its "listening on" line).
start() { # name, binary, env...
  local name="$1" binary="$2"; shift 2
  env "$@" RUST_LOG=warn "$binary" >"$work/$name.out" 2>"$work/$name.err" &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 300); do grep -q listening "$work/$name.out" && break; sleep 0.1; done
  addr="$(grep -o 'http://[0-9.:]*' "$work/$name.out")"
}

case "$mode" in
  embedded)
    start gateway "$bin/aurora-gateway" AURORA_LISTEN=127.0.0.1:0 AURORA_DATA_DIR="$work/data" AURORA_RATE_LIMIT=1000000/1s \
      AURORA_REGISTER_RATE=1000000/1s AURORA_LOGIN_RATE=1000000/1s AURORA_MAX_CONNECTIONS_PER_ADDRESS=1000000
    echo "embedded gateway $addr (pid $pid)"
    "$bin/examples/loadgen" latency "$addr" "$MESSAGES"
    "$bin/examples/loadgen" idle "$addr" "$pid" "$CONNS"
    ;;
  distributed)
    eval "$(dev/services.sh up)"
    common=(AURORA_MODE=distributed AURORA_JWT_SECRET=benchmark-secret-benchmark-secret-0123 AURORA_RATE_LIMIT=1000000/1s
      AURORA_REGISTER_RATE=1000000/1s AURORA_LOGIN_RATE=1000000/1s AURORA_MAX_CONNECTIONS_PER_ADDRESS=1000000)
    start consumer "$bin/aurora-consumer" AURORA_CONSUMER_LISTEN=127.0.0.1:0 "${common[@]}"
    start gateway1 "$bin/aurora-gateway" AURORA_LISTEN=127.0.0.1:0 "${common[@]}"
    g1="$addr"
    start gateway2 "$bin/aurora-gateway" AURORA_LISTEN=127.0.0.1:0 "${common[@]}"
    g2="$addr"
    echo "distributed: gateways $g1 $g2, one consumer"
    "$bin/examples/loadgen" latency "$g1" "$MESSAGES" "$g2"
    "$bin/examples/loadgen" throughput "$g1,$g2" "$ROOMS" "$SECONDS_OF_LOAD"
    ;;
  *) echo "usage: $0 [embedded|distributed]" >&2; exit 2 ;;
esac
