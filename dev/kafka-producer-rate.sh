#!/usr/bin/env bash
# The raw Kafka producer rate on this machine: Kafka's ProducerPerformance, 100 B records,
# acks=all, idempotent (what the gateways use), to a fresh 1-partition topic, pinned to core 1
# like the load generator. Prints messages/s (the median of 3 runs).
#   dev/kafka-producer-rate.sh BROKERS [RECORDS]
set -euo pipefail
cd "$(dirname "$0")/.."
brokers="$1" records="${2:-300000}"
libs="$HOME/.cache/aurora/kafka-tools"
stamp="$libs/.complete-$(sha1sum bench/peers/kafka/pom.xml | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  rm -rf "$libs"
  mvn -q -B -f bench/peers/kafka/pom.xml dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$libs" >&2
  touch "$stamp"
fi
rates=()
for i in 1 2 3; do
  topic="aurora.bench.raw$RANDOM$i"
  # The dev broker does not create topics on first use.
  java -cp "$libs/*" org.apache.kafka.tools.TopicCommand --bootstrap-server "$brokers" --create --topic "$topic" \
    --partitions 1 --replication-factor 1 >/dev/null
  line="$(taskset -c 1 java -cp "$libs/*" org.apache.kafka.tools.ProducerPerformance --topic "$topic" \
    --num-records "$records" --record-size 100 --throughput -1 \
    --producer-props bootstrap.servers="$brokers" acks=all enable.idempotence=true linger.ms=5 | tail -1)"
  echo "  $line" >&2
  rates+=("$(sed -n 's/.* records sent, \([0-9.]*\) records\/sec.*/\1/p' <<<"$line")")
done
printf '%s\n' "${rates[@]}" | sort -n | sed -n 2p
