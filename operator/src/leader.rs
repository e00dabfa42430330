//! Leader election through a Lease, and the ChatRoom controller the leader runs.

use anyhow::Context as _;
use futures_util::StreamExt;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{watcher, Controller};
use kube::Api;
use kube_lease_manager::LeaseManagerBuilder;
use redis::aio::ConnectionManager;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use aurora_core::distributed::apikeys::MongoApiKeys;
use aurora_core::distributed::MongoStore;

use crate::apikey::{ChatApiKey, KeyContext};

use crate::config::OperatorConfig;
use crate::crd::ChatRoom;
use crate::http::Probes;
use crate::metrics::Metrics;
use crate::reconcile::{error_policy, reconcile, Context};
use crate::topics::Topics;

pub struct Deps {
    pub client: kube::Client,
    pub topics: Topics,
    pub store: MongoStore,
    pub redis: ConnectionManager,
    pub metrics: Metrics,
}

/// Campaigns for the Lease; runs the controller while leading, stops it at once when
/// the Lease is lost, and releases the Lease on shutdown.
pub async fn run(
    config: &OperatorConfig,
    deps: Deps,
    probes: Arc<Probes>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let identity = config.identity();
    let namespace = config.lease_namespace();
    let manager = LeaseManagerBuilder::new(deps.client.clone(), &config.lease_name)
        .with_namespace(&namespace)
        .with_identity(&identity)
        .with_duration(config.lease_duration.as_secs().max(2))
        .with_grace(config.lease_grace.as_secs().max(1))
        .build()
        .await
        .with_context(|| format!("cannot use Lease {namespace}/{}", config.lease_name))?;
    let (mut leading, lease_task) = manager.watch().await;
    probes.elected.store(true, Ordering::Relaxed);
    tracing::info!(%identity, lease = %config.lease_name, %namespace, "campaigning for leadership");

    let reporter = Reporter { controller: "aurora-operator".into(), instance: Some(identity.clone()) };
    let ctx = Arc::new(Context::new(
        deps.client.clone(),
        deps.topics,
        deps.store,
        deps.redis,
        Recorder::new(deps.client.clone(), reporter),
        deps.metrics.clone(),
    ));
    let api: Api<ChatRoom> = if config.watch_namespace.is_empty() {
        Api::all(deps.client.clone())
    } else {
        Api::namespaced(deps.client.clone(), &config.watch_namespace)
    };
    let key_reporter = Reporter { controller: "aurora-operator".into(), instance: Some(identity.clone()) };
    let key_ctx = Arc::new(KeyContext {
        client: deps.client.clone(),
        keys: MongoApiKeys::new(&ctx.store),
        redis: ctx.redis.clone(),
        recorder: Recorder::new(deps.client.clone(), key_reporter),
    });
    let key_api: Api<ChatApiKey> = if config.watch_namespace.is_empty() {
        Api::all(deps.client.clone())
    } else {
        Api::namespaced(deps.client.clone(), &config.watch_namespace)
    };

    'campaign: loop {
        while !*leading.borrow_and_update() {
            tokio::select! {
                _ = shutdown.cancelled() => break 'campaign,
                changed = leading.changed() => if changed.is_err() {
                    break 'campaign;
                },
            }
        }
        tracing::info!(%identity, "leading: starting the ChatRoom controller");
        deps.metrics.leader.set(1);
        let stop = CancellationToken::new();
        let controller = tokio::spawn(control(api.clone(), ctx.clone(), stop.clone()));
        let keys = tokio::spawn(crate::apikey::control(key_api.clone(), key_ctx.clone(), stop.clone()));
        let lost = tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = lost(&mut leading) => true,
        };
        stop.cancel();
        if let Err(e) = keys.await {
            tracing::error!(error = %e, "ChatApiKey controller task failed");
        }
        if let Err(e) = controller.await {
            tracing::error!(error = %e, "controller task failed");
        }
        deps.metrics.leader.set(0);
        if !lost {
            break;
        }
        tracing::warn!(%identity, "lost the lease: controller stopped");
    }
    // Closing the channel makes the manager release the Lease.
    drop(leading);
    match tokio::time::timeout(Duration::from_secs(5), lease_task).await {
        Ok(Ok(Ok(_))) => tracing::info!("lease released"),
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "lease not released"),
        Ok(Err(e)) => tracing::warn!(error = %e, "lease task failed"),
        Err(_) => tracing::warn!("lease release timed out"),
    }
    Ok(())
}

async fn lost(leading: &mut watch::Receiver<bool>) {
    loop {
        if leading.changed().await.is_err() || !*leading.borrow_and_update() {
            return;
        }
    }
}

/// The controller, until `stop`; also keeps the ChatRoom-by-condition gauges.
async fn control(api: Api<ChatRoom>, ctx: Arc<Context>, stop: CancellationToken) {
    let controller = Controller::new(api, watcher::Config::default().any_semantic());
    let store = controller.store();
    let gauges = {
        let metrics = ctx.metrics.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let mut counts: HashMap<(String, String), i64> = HashMap::new();
                for room in store.state() {
                    for c in room.status.iter().flat_map(|s| s.conditions.iter()) {
                        *counts.entry((c.type_.clone(), c.status.clone())).or_default() += 1;
                    }
                }
                metrics.rooms.reset();
                for ((condition, status), n) in counts {
                    metrics.rooms.with_label_values(&[&condition, &status]).set(n);
                }
            }
        })
    };
    let trigger = stop.clone();
    controller
        .graceful_shutdown_on(async move { trigger.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => tracing::debug!(room = %object.name, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile error"),
            }
        })
        .await;
    gauges.abort();
}
