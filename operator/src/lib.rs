//! AuroraChat operator: reconciles `ChatRoom` resources into Kafka topics and room
//! configuration, one leader at a time (a `coordination.k8s.io` Lease).
//!
//! - [`crd`]: the `ChatRoom` type and its schema.
//! - [`apikey`]: `ChatApiKey` resources, copied to the store the gateways read keys from.
//! - [`reconcile`]: topic, registration, status, events, cleanup.
//! - [`topics`]: the Kafka admin calls.
//! - [`leader`]: leader election and the controller it runs while leading.

#![forbid(unsafe_code)]

pub mod apikey;
pub mod config;
pub mod crd;
pub mod error;
mod http;
pub mod jwt_secret;
pub mod leader;
pub mod metrics;
pub mod reconcile;
pub mod room;
pub mod status;
pub mod topics;

use anyhow::Context as _;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use aurora_core::distributed::connect_services;

use crate::config::OperatorConfig;
use crate::metrics::Metrics;
use crate::topics::Topics;

/// Runs until `shutdown`: probes at once, the controller only while leading.
pub async fn run(config: OperatorConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let client = kube::Client::try_default()
        .await
        .context("no Kubernetes API: set KUBECONFIG, or run in a pod with a service account")?;
    let (store, redis) = connect_services(&config.services).await?;
    let topics = Topics::new(&config.services.kafka_brokers).context("AURORA_KAFKA_BROKERS")?;
    let metrics = Metrics::new()?;

    let listener = aurora_core::process::bind(config.listen, true)
        .with_context(|| format!("AURORA_OPERATOR_LISTEN: cannot bind {}", config.listen))?;
    let addr = listener.local_addr()?;
    let probes = Arc::new(http::Probes {
        client: client.clone(),
        topics: topics.clone(),
        metrics: metrics.clone(),
        elected: AtomicBool::new(false),
    });
    let probe_stop = CancellationToken::new();
    let server = tokio::spawn(aurora_core::probes::serve(listener, probes.clone(), probe_stop.clone()));
    tracing::info!(%addr, "operator started");
    println!("aurora-operator listening on http://{addr}");

    let deps = leader::Deps { client, topics, store, redis, metrics };
    let result = leader::run(&config, deps, probes, shutdown).await;
    probe_stop.cancel();
    let _ = server.await;
    tracing::info!("operator stopped");
    result
}
