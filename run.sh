#!/usr/bin/env bash
# AuroraChat entry point.
#   ./run.sh            build (release) and start the embedded gateway on AURORA_LISTEN (127.0.0.1:8080)
#   ./run.sh test       install what the tests need, then run every test
#   ./run.sh test faults   the replicated-Kafka fault tests (three brokers; CI runs both)
#   ./run.sh stack [replicated]   Kafka (1 or 3 brokers) + Redis + FerretDB on loopback, 2 gateways (8080, 8081), 1 consumer
#   ./run.sh services up|down|status   only the services; prints the AURORA_* env
#   ./run.sh cluster up|down|status    a real Kubernetes control plane on 127.0.0.1 with the ChatRoom CRD
#   ./run.sh bench      measure idle-connection memory and send→message latency
set -euo pipefail
cd "$(dirname "$0")"
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aurora/target}"

usage() {
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
}

cmd="${1:-run}"
[ $# -gt 0 ] && shift
case "$cmd" in
  run)
    cargo build --release -p aurora-gateway
    exec "$CARGO_TARGET_DIR/release/aurora-gateway" "$@"
    ;;
  test) exec dev/test.sh "$@" ;;
  bench) exec dev/bench.sh "$@" ;;
  services) exec dev/services.sh "$@" ;;
  cluster) exec dev/cluster.sh "$@" ;;
  stack) exec dev/stack.sh "$@" ;;
  -h|--help|help) usage ;;
  *) echo "unknown command: $cmd" >&2; usage >&2; exit 2 ;;
esac
