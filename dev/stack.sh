#!/usr/bin/env bash
# Distributed mode on one machine: the real services on loopback, one consumer,
# two gateways (http://127.0.0.1:8080 and :8081) serving one chat, Prometheus scraping
# them (http://127.0.0.1:19090), and, while
# `./run.sh cluster up` runs, the ChatRoom operator (probes on :9200). Ctrl-C stops
# what this started; `./run.sh services down` stops the services.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aurora/target}"
# `./run.sh stack replicated`: three Kafka brokers (RF 3, min.insync.replicas 2) instead of one.
if [ "${1:-}" = replicated ]; then
  eval "$(dev/services.sh up redis mongodb kafka3 prometheus)"
else
  eval "$(dev/services.sh up)"
fi
cargo build --release -p aurora-gateway -p aurora-consumer -p aurora-operator
secret_file="$HOME/.cache/aurora/stack-jwt-secret"
[ -s "$secret_file" ] || head -c 48 /dev/urandom | base64 | tr -d '\n' > "$secret_file"
export AURORA_MODE=distributed AURORA_JWT_SECRET_FILE="$secret_file"
bin="$CARGO_TARGET_DIR/release"
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM
AURORA_CONSUMER_LISTEN=127.0.0.1:9100 "$bin/aurora-consumer" & pids+=($!)
if kubeconfig="$(dev/cluster.sh env 2>/dev/null | sed -n 's/^export KUBECONFIG=//p')" && [ -f "$kubeconfig" ] \
   && dev/cluster.sh status 2>&1 | grep -q 'kube-apiserver: running'; then
  KUBECONFIG="$kubeconfig" AURORA_OPERATOR_LISTEN=127.0.0.1:9200 "$bin/aurora-operator" & pids+=($!)
  echo "operator: watching ChatRooms in every namespace (KUBECONFIG=$kubeconfig)"
fi
AURORA_LISTEN=127.0.0.1:8080 "$bin/aurora-gateway" & pids+=($!)
AURORA_LISTEN=127.0.0.1:8081 "$bin/aurora-gateway" & pids+=($!)
echo "AuroraChat stack: http://127.0.0.1:8080 and http://127.0.0.1:8081 (consumer metrics: http://127.0.0.1:9100/metrics)."
echo "Prometheus: $AURORA_PROMETHEUS_URL (HTTP API; it scrapes all of the above). Ctrl-C stops."
wait -n "${pids[@]}"
