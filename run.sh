#!/usr/bin/env bash
# AuroraChat entry point.
#   ./run.sh            build (release) and start the embedded gateway on AURORA_LISTEN (127.0.0.1:8080)
#   ./run.sh check      the fast lane: fmt, clippy -D warnings, feature builds, shellcheck, JS syntax, helm lint
#   ./run.sh test       install what the tests need, then run every test
#   ./run.sh test faults   the replicated-Kafka fault tests (three brokers; CI runs both)
#   ./run.sh stack [replicated]   Kafka (1 or 3 brokers) + Redis + FerretDB on loopback, 2 gateways (8080, 8081), 1 consumer
#   ./run.sh services up|down|status   only the services; prints the AURORA_* env
#   ./run.sh cluster up|down|status    a real Kubernetes control plane on 127.0.0.1 with the ChatRoom CRD
#   ./run.sh bench compare|distributed|probe|smoke   AuroraChat vs Centrifugo, Socket.IO and a raw ceiling; the distributed stack by process and by hop (docs/benchmarks.md)
#   ./run.sh images     build aurorachat/{gateway,consumer,operator} image archives without Docker
set -euo pipefail
cd "$(dirname "$0")"
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aurora/target}"

usage() {
  sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
}

cmd="${1:-run}"
[ $# -gt 0 ] && shift
case "$cmd" in
  run)
    cargo build --release -p aurora-gateway
    exec "$CARGO_TARGET_DIR/release/aurora-gateway" "$@"
    ;;
  check) exec dev/check.sh "$@" ;;
  test) exec dev/test.sh "$@" ;;
  bench) exec dev/bench.sh "$@" ;;
  services) exec dev/services.sh "$@" ;;
  cluster) exec dev/cluster.sh "$@" ;;
  stack) exec dev/stack.sh "$@" ;;
  images)
    cargo build --release --locked -p aurora-gateway -p aurora-consumer -p aurora-operator
    version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
    out="$HOME/.cache/aurora/images"
    python3 dev/images.py --bin-dir "$CARGO_TARGET_DIR/release" --version "$version" --out "$out"
    # Into the node's containerd when one runs here (pods use imagePullPolicy: Never).
    sock="$HOME/.cache/aurora/cluster/node/containerd.sock"
    if command -v ctr >/dev/null && [ -S "$sock" ]; then
      for f in "$out"/*-"$version".tar; do ctr --address "$sock" -n k8s.io images import "$f"; done
    fi
    ;;
  -h|--help|help) usage ;;
  *) echo "unknown command: $cmd" >&2; usage >&2; exit 2 ;;
esac
