//! The ChatRoom operator against a real kube-apiserver (`dev/cluster.sh up`), with
//! real Kafka, Redis and the MongoDB-compatible server (`dev/services.sh up`);
//! `./run.sh test` starts both. Each test runs in a fresh namespace with its own
//! operator(s), a gateway and a consumer, one test at a time (they share the
//! consumer group).

use aurora_testkit as harness;
use aurora_testkit::cluster;

mod kube_env;

mod access;
mod apikeys;
mod chart;
mod ingress;
mod lifecycle;
mod load;
mod node;
mod observability;
mod resilience;
