//! Distributed mode against real Kafka, Redis and a MongoDB-compatible server on
//! loopback (`dev/services.sh up`; `./run.sh test` does that first). Gateways and
//! consumers run as real processes so they can be killed with SIGKILL.

use aurora_testkit as harness;
use aurora_testkit::cluster;

mod conversations;
mod drain;

mod failures;
mod fanout;
mod moderation;
mod reads;
mod restarts;
mod server_api;
mod sessions;
mod webhooks;
