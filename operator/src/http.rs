//! The operator's probes: ready when the API server and Kafka answer and the lease
//! state is known.

use aurora_core::probes::{Check, Probes as ProbeServer};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::metrics::Metrics;
use crate::topics::Topics;

pub struct Probes {
    pub client: kube::Client,
    pub topics: Topics,
    pub metrics: Metrics,
    /// Set once this replica knows whether it leads (leader or standby).
    pub elected: AtomicBool,
}

#[async_trait::async_trait]
impl ProbeServer for Probes {
    async fn readiness(&self) -> Vec<Check> {
        let api_ok = self.client.apiserver_version().await.is_ok();
        let kafka_ok = self.topics.ping().await.is_ok();
        let role = if self.metrics.leader.get() == 1 { "leader" } else { "standby" };
        vec![
            Check::up("apiserver", api_ok),
            Check::up("kafka", kafka_ok),
            Check::up("lease", self.elected.load(Ordering::Relaxed)),
            Check::info("role", role),
        ]
    }

    fn metrics(&self) -> String {
        self.metrics.render()
    }
}
