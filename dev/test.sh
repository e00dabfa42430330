#!/usr/bin/env bash
# Installs what the tests need (Chromium from apt, npm packages, the real
# services: Kafka, Redis, FerretDB via dev/services.sh, and a Kubernetes control
# plane with a kubelet node via dev/cluster.sh, images via ./run.sh images), then runs
# unit and integration tests (cargo: embedded, distributed, operator, chart), the
# browser test and the benchmark smoke (dev/bench.sh smoke).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aurora/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# A failure's message, not a 30-frame backtrace, is what the end of a CI log should show.
export RUST_BACKTRACE=0

log() { printf '\n==> %s\n' "$*"; }

# `./run.sh test faults`: the replicated-Kafka fault tests (three brokers on loopback).
if [ "${1:-}" = faults ]; then
  command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup) first" >&2; exit 1; }
  log "fault tests: three replicated Kafka brokers, Redis, FerretDB"
  eval "$(dev/services.sh up redis mongodb)"
  eval "$(dev/services.sh reset kafka3)"
  trap 'dev/services.sh down kafka3 redis mongodb' EXIT
  cargo build --workspace --bins --locked
  cargo test -p aurora-gateway --locked --test faults -- --ignored --nocapture
  log "fault tests passed"
  exit 0
fi

apt_updated=0
apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  if [ $apt_updated -eq 0 ]; then $sudo apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

log "tools"
command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup) first" >&2; exit 1; }
command -v node >/dev/null || apt_install nodejs npm
# The webhook signature snippets of docs/server-api.md run under bash+openssl, python3 and node.
command -v python3 >/dev/null || apt_install python3
command -v openssl >/dev/null || apt_install openssl
# Native build deps of librdkafka (bundled, built with cmake) and libcurl.
apt_install cmake pkg-config g++ make libssl-dev zlib1g-dev libcurl4-openssl-dev
apt_install chromium
command -v chromium >/dev/null
(cd dev/e2e && if [ ! -d node_modules/playwright-core ] || [ ! -x node_modules/.bin/eslint ]; then npm ci --no-audit --no-fund; fi)

log "services (Kafka, Redis, FerretDB on loopback)"
eval "$(dev/services.sh up redis mongodb kafka)"
trap 'dev/cluster.sh down; dev/services.sh down' EXIT
# FerretDB's SQLite backend scans for most queries: start each run from an empty store; and
# from an empty Kafka, whose log and consumer-group offsets an earlier run or benchmark left
# (a benchmark's leftover broker state once kept the consumer from storing anything).
dev/services.sh reset mongodb kafka >/dev/null

log "build"
cargo build --workspace --bins --locked

log "Kubernetes: control plane and a kubelet node on 127.0.0.1"
apt_install openssl
started=$(date +%s)
eval "$(dev/cluster.sh up)"
echo "cluster up (control plane + node Ready): $(( $(date +%s) - started )) s"
# `down` leaves nothing behind, and a second `up` after a `down` works.
dev/cluster.sh down
dev/cluster.sh leftovers
eval "$(dev/cluster.sh up)"

log "Prometheus on loopback (the tests' processes and the cluster's pods)"
eval "$(dev/services.sh reset prometheus)"

log "release build and images (imported into the node's containerd)"
cargo build --release --locked -p aurora-gateway -p aurora-consumer -p aurora-operator
./run.sh images

log "unit and integration tests (cargo test; distributed tests use the services above)"
cargo test --workspace --locked --exclude aurora-gateway --exclude aurora-operator
operator_tests=()
for t in operator/tests/*.rs; do operator_tests+=(--test "$(basename "$t" .rs)"); done
cargo test -p aurora-operator --locked --lib --bins "${operator_tests[@]}"
# The gateway's test targets, the operator/chart suite last on a fresh store: FerretDB scans
# the whole messages collection for every history read, and the distributed tests leave
# thousands of messages behind (the chart test reconnects 50 clients at once).
gateway_tests=()
for t in gateway/tests/*.rs gateway/tests/*/main.rs; do
  gateway_tests+=(--test "$(basename "${t%/main.rs}" .rs)")
done
cargo test -p aurora-gateway --locked --lib --bins "${gateway_tests[@]}"
cargo test -p aurora-gateway --locked --doc
# The outbox's loom model: every interleaving of a poll with offers and wake-ups.
cargo test -p aurora-gateway --locked --features loom --lib outbox::model
dev/services.sh reset mongodb >/dev/null
# --show-output: the figures the chart, operator and observability tests print.
cargo test -p aurora-operator --locked --test cluster -- --show-output

log "browser test (Playwright + Chromium against the release binary)"
(cd dev/e2e && AURORA_BIN="$CARGO_TARGET_DIR/release/aurora-gateway" npm test --silent)

log "benchmark smoke (aurora-bench against every peer, tiny loads, no timing asserted)"
dev/bench.sh smoke

log "all tests passed"
