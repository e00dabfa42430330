#!/usr/bin/env bash
# Measures the embedded gateway (release build) on this machine:
#  - RSS with N idle authenticated WebSocket connections (default 10000)
#  - time from `send` to `message` at a second client, p50/p99 over 1000 messages
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aurora/target}"
CONNS="${BENCH_CONNECTIONS:-10000}"
MESSAGES="${BENCH_MESSAGES:-1000}"

cargo build --release -p aurora-gateway --example loadgen
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
data="$(mktemp -d)"
out="$(mktemp)"
AURORA_LISTEN=127.0.0.1:0 AURORA_DATA_DIR="$data" AURORA_RATE_LIMIT=1000000/1s RUST_LOG=warn \
  "$CARGO_TARGET_DIR/release/aurora-gateway" >"$out" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data" "$out"' EXIT
for _ in $(seq 100); do grep -q listening "$out" && break; sleep 0.1; done
base="$(grep -o 'http://[0-9.:]*' "$out")"
echo "gateway $base (pid $pid)"
"$CARGO_TARGET_DIR/release/examples/loadgen" latency "$base" "$MESSAGES"
"$CARGO_TARGET_DIR/release/examples/loadgen" idle "$base" "$pid" "$CONNS"
