#!/usr/bin/env bash
# Distributed mode on one machine: the real services on loopback, one consumer,
# two gateways (http://127.0.0.1:8080 and :8081) serving one chat. Ctrl-C stops
# the gateways and the consumer; `./run.sh services down` stops the services.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aurora/target}"
eval "$(dev/services.sh up)"
cargo build --release -p aurora-gateway -p aurora-consumer
secret_file="$HOME/.cache/aurora/stack-jwt-secret"
[ -s "$secret_file" ] || head -c 48 /dev/urandom | base64 | tr -d '\n' > "$secret_file"
export AURORA_MODE=distributed AURORA_JWT_SECRET_FILE="$secret_file"
bin="$CARGO_TARGET_DIR/release"
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM
AURORA_CONSUMER_LISTEN=127.0.0.1:9100 "$bin/aurora-consumer" & pids+=($!)
AURORA_LISTEN=127.0.0.1:8080 "$bin/aurora-gateway" & pids+=($!)
AURORA_LISTEN=127.0.0.1:8081 "$bin/aurora-gateway" & pids+=($!)
echo "AuroraChat stack: http://127.0.0.1:8080 and http://127.0.0.1:8081 (consumer metrics: http://127.0.0.1:9100/metrics). Ctrl-C stops."
wait -n "${pids[@]}"
