#!/usr/bin/env bash
# The fast check lane (`./run.sh check`), first in CI: style, lints and static checks that
# need no service. Under 5 minutes warm; a style break fails here, not after the cluster suite.
#   rustfmt, clippy (-D warnings, the workspace lints in Cargo.toml), the feature split
#   (aurora-core alone and an embedded-only gateway build), helm lint --strict,
#   the ShellCheck linter on every script, and ESLint on every JavaScript file.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aurora/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

log() { printf '\n==> %s\n' "$*"; }
started=$(date +%s)

# apt_install (the helpers every dev script shares).
# shellcheck source=dev/lib.sh
. dev/lib.sh

log "tools"
command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup) first" >&2; exit 1; }
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt
command -v shellcheck >/dev/null || apt_install shellcheck
command -v node >/dev/null || apt_install nodejs npm
# librdkafka (bundled) is built with cmake even for clippy.
apt_install cmake pkg-config g++ make libssl-dev zlib1g-dev libcurl4-openssl-dev

log "rustfmt"
cargo fmt --all --check

log "clippy (-D warnings, workspace lints)"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "feature split: aurora-core without features, the gateway without distributed mode"
cargo check -p aurora-core --lib --locked
cargo check -p aurora-gateway --no-default-features --bins --locked
cargo clippy -p aurora-gateway --features loom --lib --tests --locked -- -D warnings

log "shellcheck"
scripts=(run.sh .ci/run)
while IFS= read -r f; do scripts+=("$f"); done < <(find dev -name '*.sh' -not -path '*/node_modules/*' | sort)
shellcheck -x -e SC1091 "${scripts[@]}"

log "ESLint (web client modules, browser tests, the Socket.IO peer; eslint.config.mjs)"
(cd dev/e2e && if [ ! -x node_modules/.bin/eslint ]; then npm ci --no-audit --no-fund; fi)
dev/e2e/node_modules/.bin/eslint web dev/e2e bench/peers/socketio eslint.config.mjs

log "helm lint --strict"
helm="$(dev/cluster.sh helm)"
"$helm" lint --strict charts/aurora
"$helm" lint --strict charts/aurora -f charts/aurora/ci/full-values.yaml
"$helm" lint --strict charts/aurora -f manifests/dev-values.yaml

log "check lane passed in $(( $(date +%s) - started )) s"
