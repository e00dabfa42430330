#!/usr/bin/env bash
# Real services on loopback for distributed mode and its tests, installed from the
# registries and cached under ~/.cache/aurora/:
#   Apache Kafka 4.x (KRaft) from Maven Central, Redis from Debian, FerretDB 1.24 (MongoDB wire
#   protocol) and Prometheus (+ promtool) built through the Go module proxy. FerretDB stores into
#   SQLite, or into Debian's PostgreSQL with AURORA_DEV_MONGO_BACKEND=postgresql (FerretDB's own
#   recommended backend; on SQLite it reads a whole collection for any query not by `_id`).
# Usage: dev/services.sh up|down|status|reset [kafka|kafka3|redis|mongodb|prometheus ...]
#        kafka3: three replicated brokers instead of one (RF 3, min.insync.replicas 2)
#        kill kafka3 N: kill -9 broker N of the three (fault tests)
#        reset: stop, delete the data of the services this script runs, start again
#        (prints the AURORA_* env on `up` and `status`; no names means all three)
# A variable that already points at a running server (AURORA_REDIS_URL,
# AURORA_KAFKA_BROKERS, AURORA_MONGODB_URI) is used instead of starting our own.
# The single broker flushes every append (acked = on disk); AURORA_DEV_KAFKA_FLUSH_MESSAGES
# sets its log.flush.interval.messages for measurements (docs/benchmarks.md).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
CACHE="${AURORA_CACHE:-$HOME/.cache/aurora}"
RUN="$CACHE/run"
KAFKA_PORT="${AURORA_KAFKA_PORT:-19092}"
REDIS_PORT="${AURORA_REDIS_PORT:-16379}"
MONGO_PORT="${AURORA_MONGO_PORT:-27018}"
MONGO_BACKEND="${AURORA_DEV_MONGO_BACKEND:-sqlite}"
PG_PORT="${AURORA_PG_PORT:-15432}"
# PostgreSQL runs as the postgres user when this script runs as root; its data must be where
# that user can reach it (not under /root), and on disk like every service's.
PG_DIR="$RUN/postgresql"
[ "$(id -u)" -eq 0 ] && PG_DIR="${AURORA_DEV_PG_DIR:-/var/tmp/aurora-postgresql}"
PROM_PORT="${AURORA_PROMETHEUS_PORT:-19090}"
mkdir -p "$RUN" "$CACHE/bin"

log() { printf '[services] %s\n' "$*" >&2; }
PIDDIR="$RUN"
# shellcheck source=dev/lib.sh
. "$here/lib.sh"

host_of() { local hp="${1#*://}"; hp="${hp%%/*}"; hp="${hp##*@}"; echo "${hp%%:*}"; }
port_of() { local hp="${1#*://}"; hp="${hp%%/*}"; hp="${hp##*@}"; echo "${hp##*:}"; }

# ---------- Redis ----------
redis_up() {
  if [ -n "${AURORA_REDIS_URL:-}" ] && port_open "$(host_of "$AURORA_REDIS_URL")" "$(port_of "$AURORA_REDIS_URL")"; then
    REDIS_URL="$AURORA_REDIS_URL"; log "redis: using $REDIS_URL"; return
  fi
  REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
  running redis && return
  apt_install redis-server
  mkdir -p "$RUN/redis"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
    --dir "$RUN/redis" --pidfile "$RUN/redis.pid" --logfile "$RUN/redis/redis.log"
  wait_until 20 redis redis-cli -p "$REDIS_PORT" ping
  log "redis: started on $REDIS_PORT"
}

# ---------- Kafka ----------
kafka_libs() {
  local libs="$CACHE/kafka/libs"
  local stamp; stamp="$libs/.complete-$(sha1sum "$here/services/kafka/pom.xml" | cut -c1-12)"
  if [ ! -f "$stamp" ]; then
    command -v mvn >/dev/null || apt_install maven
    log "kafka: fetching the broker from Maven Central (first run only)"
    rm -rf "$libs"
    mvn -q -B -f "$here/services/kafka/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$libs" >&2
    touch "$stamp"
  fi
  echo "$libs"
}

kafka_up() {
  if [ -n "${AURORA_KAFKA_BROKERS:-}" ] && port_open "$(host_of "${AURORA_KAFKA_BROKERS%%,*}")" "$(port_of "${AURORA_KAFKA_BROKERS%%,*}")"; then
    KAFKA_BROKERS="$AURORA_KAFKA_BROKERS"; log "kafka: using $KAFKA_BROKERS"; return
  fi
  KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"
  running kafka && return
  command -v java >/dev/null || apt_install openjdk-17-jre-headless
  local libs; libs="$(kafka_libs)"
  local dir="$RUN/kafka" cport=$((KAFKA_PORT + 1))
  mkdir -p "$dir"
  cat > "$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=12
offsets.topic.replication.factor=1
offsets.topic.num.partitions=12
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.flush.interval.messages=${AURORA_DEV_KAFKA_FLUSH_MESSAGES:-1}
PROPS
  if [ ! -f "$dir/data/meta.properties" ]; then
    local id; id="$(java -cp "$libs/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)"
    java -cp "$libs/*" kafka.tools.StorageTool format -t "$id" -c "$dir/server.properties" >"$dir/format.log" 2>&1
  fi
  # The JVM as Kafka's own start scripts run it (kafka-server-start.sh's 1 GiB heap,
  # kafka-run-class.sh's G1 flags). A 256 MiB serial-GC heap paused the broker 409-475 ms per
  # probe, 37 ms at worst; this one 225-249 ms, 25 ms at worst (docs/benchmarks.md).
  # AURORA_DEV_KAFKA_JVM replaces them for a measurement. GC pauses stall every producer and
  # consumer: keep them on record (gc.log).
  local jvm="-Xms1g -Xmx1g -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent"
  # shellcheck disable=SC2086 # word-split on purpose: JVM flags
  nohup java ${AURORA_DEV_KAFKA_JVM:-$jvm} -Xlog:gc:file="$dir/gc.log":uptime,time \
    -Dorg.slf4j.simpleLogger.defaultLogLevel=info \
    -cp "$libs/*" kafka.Kafka "$dir/server.properties" >"$dir/kafka.log" 2>&1 &
  echo $! > "$RUN/kafka.pid"
  wait_until 90 kafka port_open 127.0.0.1 "$KAFKA_PORT"
  log "kafka: started on $KAFKA_PORT"
}

# ---------- Kafka, three brokers (replicated; for the fault tests) ----------
# KRaft, every node broker + controller, RF 3, min.insync.replicas 2, on
# 127.0.0.1:$KAFKA3_PORT, +2, +4 (controllers on the odd ports above each).
KAFKA3_PORT="${AURORA_KAFKA3_PORT:-19192}"
kafka3_node_port() { echo $((KAFKA3_PORT + 2 * ($1 - 1))); }
kafka3_brokers() { echo "127.0.0.1:$(kafka3_node_port 1),127.0.0.1:$(kafka3_node_port 2),127.0.0.1:$(kafka3_node_port 3)"; }

kafka3_up() {
  command -v java >/dev/null || apt_install openjdk-17-jre-headless
  local libs; libs="$(kafka_libs)"
  local base="$RUN/kafka3" voters="" i
  mkdir -p "$base"
  for i in 1 2 3; do voters+="$i@127.0.0.1:$(( $(kafka3_node_port $i) + 1 )),"; done
  voters="${voters%,}"
  [ -s "$base/cluster.id" ] || java -cp "$libs/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1 > "$base/cluster.id"
  for i in 1 2 3; do
    running "kafka3-$i" && continue
    local port; port="$(kafka3_node_port "$i")"
    local dir="$base/n$i"
    mkdir -p "$dir"
    cat > "$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$((port + 1))
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=3
default.replication.factor=3
min.insync.replicas=2
offsets.topic.replication.factor=3
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
broker.session.timeout.ms=3000
broker.heartbeat.interval.ms=500
unclean.leader.election.enable=false
PROPS
    if [ ! -f "$dir/data/meta.properties" ]; then
      java -cp "$libs/*" kafka.tools.StorageTool format -t "$(cat "$base/cluster.id")" -c "$dir/server.properties" \
        >"$dir/format.log" 2>&1
    fi
    nohup java -Xms192m -Xmx512m -XX:+UseSerialGC -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
      -cp "$libs/*" kafka.Kafka "$dir/server.properties" >"$dir/kafka.log" 2>&1 &
    echo $! > "$RUN/kafka3-$i.pid"
  done
  for i in 1 2 3; do wait_until 120 "kafka3 node $i" port_open 127.0.0.1 "$(kafka3_node_port "$i")"; done
  log "kafka3: three brokers on $(kafka3_brokers)"
}

# ---------- FerretDB (MongoDB wire protocol), on SQLite or PostgreSQL ----------
ferretdb_bin() {
  # The launcher's source is in the name: a changed launcher is built again.
  local bin; bin="$CACHE/bin/ferretdb-1.24.2-$(sha1sum < "$here/services/ferretdb/main.go" | cut -c1-8)"
  if [ ! -x "$bin" ]; then
    log "ferretdb: building v1.24.2 through the Go module proxy (first run only)"
    (cd "$here/services/ferretdb" && GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0 \
      go build -o "$bin.tmp" . >&2 && mv "$bin.tmp" "$bin")
  fi
  echo "$bin"
}

pg_bindir() { find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -1; }
# PostgreSQL refuses to run as root.
as_postgres() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

postgres_up() {
  running postgresql && return
  local bindir; bindir="$(pg_bindir)"
  if [ ! -x "$bindir/postgres" ]; then apt_install postgresql; bindir="$(pg_bindir)"; fi
  local dir="$PG_DIR"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
    as_postgres "$bindir/initdb" -D "$dir/data" -A trust -U postgres >"$RUN/postgresql-initdb.log" 2>&1
  fi
  as_postgres "$bindir/pg_ctl" -D "$dir/data" -w -l "$dir/postgres.log" \
    -o "-p $PG_PORT -k $dir -c listen_addresses=127.0.0.1" start >/dev/null
  head -1 "$dir/data/postmaster.pid" > "$RUN/postgresql.pid"
  as_postgres psql -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = 'ferretdb'" | grep -q 1 \
    || as_postgres psql -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -c "CREATE DATABASE ferretdb"
  log "postgresql: started on $PG_PORT"
}

postgres_down() {
  if running postgresql; then
    as_postgres "$(pg_bindir)/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null || stop postgresql
    log "postgresql: stopped"
  fi
  rm -f "$RUN/postgresql.pid"
}

mongo_up() {
  if [ -n "${AURORA_MONGODB_URI:-}" ] && port_open "$(host_of "$AURORA_MONGODB_URI")" "$(port_of "$AURORA_MONGODB_URI")"; then
    MONGODB_URI="$AURORA_MONGODB_URI"; log "mongodb: using $MONGODB_URI"; return
  fi
  MONGODB_URI="mongodb://127.0.0.1:$MONGO_PORT"
  running ferretdb && return
  local bin; bin="$(ferretdb_bin)"
  local dir="$RUN/ferretdb"
  mkdir -p "$dir/data"
  local store=(--sqlite-url="file:$dir/data/")
  case "$MONGO_BACKEND" in
    sqlite) ;;
    postgresql) postgres_up; store=(--postgresql-url="postgres://postgres@127.0.0.1:$PG_PORT/ferretdb") ;;
    *) echo "AURORA_DEV_MONGO_BACKEND: sqlite or postgresql, not $MONGO_BACKEND" >&2; exit 2 ;;
  esac
  nohup "$bin" "${store[@]}" --listen-addr="127.0.0.1:$MONGO_PORT" >"$dir/ferretdb.log" 2>&1 &
  echo $! > "$RUN/ferretdb.pid"
  wait_until 30 ferretdb port_open 127.0.0.1 "$MONGO_PORT"
  log "ferretdb: started on $MONGO_PORT ($MONGO_BACKEND)"
}

mongo_down() { stop ferretdb; postgres_down; }

# ---------- Prometheus (scrapes the stack, test processes, and the cluster's pods) ----------
PROMETHEUS_VERSION=v0.316.0   # the Go module version of Prometheus 3.16.0
PROM_DIR="$CACHE/bin/prometheus-$PROMETHEUS_VERSION"

prometheus_bin() {
  if [ ! -x "$PROM_DIR/prometheus" ] || [ ! -x "$PROM_DIR/promtool" ]; then
    log "prometheus: building $PROMETHEUS_VERSION and promtool through the Go module proxy (first run only, ~12 min)"
    mkdir -p "$PROM_DIR"
    (cd "$here/services/prometheus" && GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0 \
      go build -trimpath -ldflags "-s -w -X github.com/prometheus/common/version.Version=3.16.0" \
      -o "$PROM_DIR/" github.com/prometheus/prometheus/cmd/prometheus github.com/prometheus/prometheus/cmd/promtool >&2)
  fi
}

prometheus_config() {
  local dir="$RUN/prometheus" kubeconfig="$CACHE/cluster/kubeconfig"
  cat > "$dir/prometheus.yml" <<YAML
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  # ./run.sh stack: gateways on 8080/8081, the consumer on 9100, the operator on 9200.
  - job_name: aurora-stack
    static_configs:
      - targets: [127.0.0.1:8080, 127.0.0.1:8081, 127.0.0.1:9100, 127.0.0.1:9200]
        labels: {namespace: stack}
  # Anything that writes a target file here (the tests do, with namespace and pod labels).
  - job_name: aurora-files
    file_sd_configs:
      - files: ['$dir/targets/*.json']
        refresh_interval: 1s
YAML
  if [ -f "$kubeconfig" ]; then
    # The cluster of dev/cluster.sh: the chart's pods, on the port their annotations name.
    cat >> "$dir/prometheus.yml" <<YAML
  - job_name: kubernetes-pods
    kubernetes_sd_configs:
      - role: pod
        kubeconfig_file: $kubeconfig
    relabel_configs:
      - {source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape], regex: "true", action: keep}
      # Loopback only: hostNetwork pods on this node have IP 127.0.0.1.
      - {source_labels: [__meta_kubernetes_pod_ip], regex: '127\\..*', action: keep}
      - source_labels: [__meta_kubernetes_pod_ip, __meta_kubernetes_pod_annotation_prometheus_io_port]
        regex: (.+);(.+)
        replacement: \$1:\$2
        target_label: __address__
      - {source_labels: [__meta_kubernetes_namespace], target_label: namespace}
      - {source_labels: [__meta_kubernetes_pod_name], target_label: pod}
YAML
  fi
}

prometheus_up() {
  running prometheus && return
  prometheus_bin
  local dir="$RUN/prometheus"
  mkdir -p "$dir/targets" "$dir/data"
  prometheus_config
  nohup "$PROM_DIR/prometheus" --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
    --web.listen-address="127.0.0.1:$PROM_PORT" --storage.tsdb.retention.time=1d \
    >"$dir/prometheus.log" 2>&1 &
  echo $! > "$RUN/prometheus.pid"
  wait_until 60 prometheus port_open 127.0.0.1 "$PROM_PORT"
  log "prometheus: started on $PROM_PORT"
}

print_env() {
  echo "export AURORA_KAFKA_BROKERS=${KAFKA_BROKERS:-127.0.0.1:$KAFKA_PORT}"
  echo "export AURORA_REDIS_URL=${REDIS_URL:-redis://127.0.0.1:$REDIS_PORT}"
  echo "export AURORA_MONGODB_URI=${MONGODB_URI:-mongodb://127.0.0.1:$MONGO_PORT}"
  if [ -n "${KAFKA_REPLICATION:-}" ]; then echo "export AURORA_KAFKA_REPLICATION=$KAFKA_REPLICATION"; fi
  if running prometheus; then
    echo "export AURORA_PROMETHEUS_URL=http://127.0.0.1:$PROM_PORT"
    echo "export AURORA_PROMETHEUS_TARGETS=$RUN/prometheus/targets"
    echo "export AURORA_PROMTOOL=$PROM_DIR/promtool"
  fi
}

cmd="${1:-status}"
[ $# -gt 0 ] && shift
names=("$@")
[ ${#names[@]} -eq 0 ] && names=(redis mongodb kafka prometheus)
case "$cmd" in
  up)
    for n in "${names[@]}"; do
      case "$n" in
        redis) redis_up ;; mongodb) mongo_up ;; kafka) kafka_up ;; prometheus) prometheus_up ;;
        kafka3) kafka3_up; KAFKA_BROKERS="$(kafka3_brokers)"; KAFKA_REPLICATION=3 ;;
        *) echo "unknown service $n" >&2; exit 2 ;;
      esac
    done
    print_env
    ;;
  down)
    for n in "${names[@]}"; do
      case "$n" in
        redis) stop redis ;; mongodb) mongo_down ;; kafka) stop kafka ;; prometheus) stop prometheus ;;
        kafka3) stop kafka3-1; stop kafka3-2; stop kafka3-3 ;;
        *) echo "unknown service $n" >&2; exit 2 ;;
      esac
    done
    ;;
  kill) # kill -9 one node of the three-broker cluster: kill kafka3 <node id>
    if [ "${names[0]:-}" != kafka3 ] || [ -z "${names[1]:-}" ]; then echo "usage: $0 kill kafka3 <1|2|3>" >&2; exit 2; fi
    if running "kafka3-${names[1]}"; then kill -9 "$(cat "$RUN/kafka3-${names[1]}.pid")"; rm -f "$RUN/kafka3-${names[1]}.pid"; fi
    ;;
  reset)
    for n in "${names[@]}"; do
      case "$n" in
        redis) stop redis; rm -rf "$RUN/redis"; redis_up ;;
        mongodb) mongo_down; rm -rf "$RUN/ferretdb" "$PG_DIR"; mongo_up ;;
        kafka) stop kafka; rm -rf "$RUN/kafka"; kafka_up ;;
        prometheus) stop prometheus; rm -rf "$RUN/prometheus"; prometheus_up ;;
        kafka3) stop kafka3-1; stop kafka3-2; stop kafka3-3; rm -rf "$RUN/kafka3"; kafka3_up; KAFKA_BROKERS="$(kafka3_brokers)"; KAFKA_REPLICATION=3 ;;
        *) echo "unknown service $n" >&2; exit 2 ;;
      esac
    done
    print_env
    ;;
  status)
    for s in kafka redis ferretdb postgresql prometheus; do
      if running "$s"; then log "$s: running (pid $(cat "$RUN/$s.pid"))"; else log "$s: not running"; fi
    done
    print_env
    ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
