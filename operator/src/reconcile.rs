//! The ChatRoom reconciler: topic, registration, status, events; cleanup on delete.

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder};
use kube::runtime::finalizer::{finalizer, Event};
use kube::{Resource, ResourceExt};
use redis::aio::ConnectionManager;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aurora_core::distributed::{control, MongoStore, RoomChange, RoomOp};
use aurora_core::model::{Room, RoomSource};
use aurora_core::ports::RoomStore;

use crate::crd::{ChatRoom, ChatRoomStatus, DeletionPolicy};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::room::{desired_room, retention_ms};
use crate::status::{Conditions, Outcome};
use crate::topics::Topics;

/// Kept on every ChatRoom until its cleanup has succeeded.
pub const FINALIZER: &str = "aurorachat.dev/cleanup";
/// Field manager for server-side apply of the status.
pub const MANAGER: &str = "aurora-operator";
/// Healthy rooms are checked again this often (drift in Kafka or MongoDB heals).
const RESYNC: Duration = Duration::from_secs(300);

pub struct Context {
    pub client: kube::Client,
    pub topics: Topics,
    pub store: MongoStore,
    pub redis: ConnectionManager,
    pub recorder: Recorder,
    pub metrics: Metrics,
    /// Consecutive failures per object, for the error backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(
        client: kube::Client,
        topics: Topics,
        store: MongoStore,
        redis: ConnectionManager,
        recorder: Recorder,
        metrics: Metrics,
    ) -> Self {
        Context { client, topics, store, redis, recorder, metrics, failures: Mutex::new(HashMap::new()) }
    }

    fn with_failures<T>(&self, op: impl FnOnce(&mut HashMap<String, u32>) -> T) -> T {
        let mut map = self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        op(&mut map)
    }

    async fn announce(&self, op: RoomOp, room: &str) -> Result<()> {
        control::announce(&self.redis, &RoomChange { op, room: room.to_owned() }).await.map_err(Error::Redis)
    }

    async fn event(&self, room: &ChatRoom, type_: EventType, reason: &str, note: String) {
        let event =
            KubeEvent { type_, reason: reason.into(), note: Some(note), action: reason.into(), secondary: None };
        if let Err(e) = self.recorder.publish(&event, &room.object_ref(&())).await {
            tracing::warn!(room = %room.name_any(), error = %e, "event not published");
        }
    }
}

fn key(room: &ChatRoom) -> String {
    format!("{}/{}", room.namespace().unwrap_or_default(), room.name_any())
}

/// The controller's reconcile function.
pub async fn reconcile(room: Arc<ChatRoom>, ctx: Arc<Context>) -> Result<Action> {
    let timer = ctx.metrics.reconcile_seconds.start_timer();
    let ns = room.namespace().unwrap_or_default();
    let api: Api<ChatRoom> = Api::namespaced(ctx.client.clone(), &ns);
    let object = key(&room);
    let result = finalizer(&api, FINALIZER, room, |event| async {
        match event {
            Event::Apply(room) => apply(&room, &ctx, &api).await,
            Event::Cleanup(room) => cleanup(&room, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    timer.observe_duration();
    if result.is_ok() {
        ctx.metrics.reconciles.with_label_values(&["success"]).inc();
        ctx.with_failures(|m| m.remove(&object));
    }
    result
}

/// Requeues a failed object with jittered exponential backoff (1 s doubling to 2 min).
pub fn error_policy(room: Arc<ChatRoom>, error: &Error, ctx: Arc<Context>) -> Action {
    let object = key(&room);
    let n = ctx.with_failures(|m| {
        let n = m.entry(object.clone()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    });
    let delay = aurora_core::backoff::jittered(Duration::from_secs(1), Duration::from_secs(120), n.saturating_sub(1));
    ctx.metrics.reconciles.with_label_values(&["error"]).inc();
    ctx.metrics.errors.with_label_values(&[error.reason()]).inc();
    tracing::warn!(room = %object, error = %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

async fn apply(room: &ChatRoom, ctx: &Context, api: &Api<ChatRoom>) -> Result<Action> {
    let name = room.name_any();
    let owner = key(room);
    let topic = room.topic_name();
    let generation = room.metadata.generation;
    let previous = room.status.clone().unwrap_or_default();
    let first = previous.observed_generation.is_none();
    let changed = previous.observed_generation != generation;
    let mut conditions = Conditions::from(&previous);

    let desired = match desired_room(room, &owner) {
        Ok(d) => d,
        Err(e) => {
            conditions.set("Registered", Outcome::no("InvalidSpec", e.to_string()));
            conditions.set("Ready", Outcome::no("InvalidSpec", e.to_string()));
            patch_status(api, &name, generation, &topic, conditions).await?;
            return Ok(Action::requeue(RESYNC));
        }
    };

    // A room of the same name owned by another ChatRoom is not touched, nor is its topic.
    let existing = ctx.store.room(&name).await?;
    if let Some(other) = existing.as_ref().and_then(|r| r.owner.as_ref()).filter(|o| **o != owner) {
        let msg = format!("room {name} is already managed by ChatRoom {other}; room names are cluster-wide");
        if conditions.set("Registered", Outcome::no("NameTaken", msg.clone())) {
            ctx.event(room, EventType::Warning, "NameTaken", msg.clone()).await;
        }
        conditions.set("Ready", Outcome::no("NameTaken", msg));
        patch_status(api, &name, generation, &topic, conditions).await?;
        return Ok(Action::requeue(RESYNC));
    }

    let topic_outcome = ensure_topic(room, ctx, &topic).await?;
    let refused = !topic_outcome.ok;
    if conditions.set("TopicReady", topic_outcome.clone()) && refused {
        ctx.event(room, EventType::Warning, &topic_outcome.reason, topic_outcome.message.clone()).await;
    }

    let registered_before = existing.as_ref().is_some_and(|r| r.source == RoomSource::Operator);
    let unchanged = existing.as_ref().is_some_and(|r| same_config(r, &desired));
    if !unchanged {
        ctx.store.put_room(&desired).await?;
        let op = if registered_before { RoomOp::Updated } else { RoomOp::Created };
        ctx.announce(op, &name).await?;
        tracing::info!(room = %name, ?op, "room registered");
    }
    conditions.set("Registered", Outcome::yes("Registered", format!("gateways serve room {name}")));
    let ready = if refused {
        Outcome::yes("ReconciledWithWarnings", "the room is usable; the topic does not match the spec (see TopicReady)")
    } else {
        Outcome::yes("Reconciled", "")
    };
    conditions.set("Ready", ready);
    patch_status(api, &name, generation, &topic, conditions).await?;

    if first {
        let note = format!("topic {topic} ({} partitions) and room {name} are ready", room.spec.topic.partitions);
        ctx.event(room, EventType::Normal, "Created", note).await;
    } else if changed {
        let note = format!("applied generation {}", generation.unwrap_or_default());
        ctx.event(room, EventType::Normal, "Updated", note).await;
    }
    Ok(Action::requeue(RESYNC))
}

/// Whether the stored room already has the desired configuration.
fn same_config(stored: &Room, desired: &Room) -> bool {
    let mut a = stored.clone();
    a.created_at = desired.created_at;
    a == *desired
}

/// Creates the topic, raises partitions and applies retention; never lowers partitions.
async fn ensure_topic(room: &ChatRoom, ctx: &Context, topic: &str) -> Result<Outcome> {
    let spec = &room.spec.topic;
    let retention = retention_ms(&spec.retention)?;
    let wanted = spec.partitions.max(1) as usize;
    match ctx.topics.describe(topic).await? {
        None => {
            ctx.topics.create(topic, spec.partitions, spec.replication_factor, Some(retention)).await?;
            Ok(Outcome::yes("TopicCreated", format!("{topic} has {wanted} partitions")))
        }
        Some(state) if wanted < state.partitions => Ok(Outcome::no(
            "PartitionsCannotDecrease",
            format!(
                "spec.topic.partitions is {wanted} but {topic} has {} partitions and Kafka cannot remove partitions; \
                 set partitions to {} or more (the topic was left unchanged)",
                state.partitions, state.partitions
            ),
        )),
        Some(state) => {
            if wanted > state.partitions {
                ctx.topics.add_partitions(topic, wanted).await?;
                tracing::info!(topic, from = state.partitions, to = wanted, "partitions raised");
            }
            if state.retention_ms != Some(retention) {
                ctx.topics.set_retention(topic, retention).await?;
                tracing::info!(topic, retention_ms = retention, "retention applied");
            }
            Ok(Outcome::yes("TopicReady", format!("{topic} has {wanted} partitions")))
        }
    }
}

async fn patch_status(
    api: &Api<ChatRoom>,
    name: &str,
    generation: Option<i64>,
    topic: &str,
    conditions: Conditions,
) -> Result<()> {
    let status = ChatRoomStatus {
        observed_generation: generation,
        topic: Some(topic.to_owned()),
        conditions: conditions.into_vec(generation),
    };
    let patch = serde_json::json!({
        "apiVersion": "aurorachat.dev/v1alpha1",
        "kind": "ChatRoom",
        "status": status,
    });
    api.patch_status(name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&patch)).await?;
    Ok(())
}

/// Honours `deletionPolicy`; the finalizer is removed only after this succeeds.
async fn cleanup(room: &ChatRoom, ctx: &Context) -> Result<Action> {
    let name = room.name_any();
    let owner = key(room);
    let ours = match ctx.store.room(&name).await? {
        Some(r) => r.owner.as_deref() == Some(owner.as_str()),
        None => false,
    };
    match room.spec.deletion_policy {
        DeletionPolicy::Delete => {
            if ours || ctx.store.room(&name).await?.is_none() {
                ctx.topics.delete(&room.topic_name()).await?;
            }
            if ours {
                let gone = ctx.store.delete_room(&name).await?;
                ctx.announce(RoomOp::Deleted, &name).await?;
                tracing::info!(room = %name, messages = gone, "room deleted with its topic and messages");
            }
            let note = format!("deleted topic {} and the room's messages", room.topic_name());
            ctx.event(room, EventType::Normal, "Deleted", note).await;
        }
        DeletionPolicy::Retain => {
            if ours {
                if let Some(mut kept) = ctx.store.room(&name).await? {
                    kept.source = RoomSource::Api;
                    kept.owner = None;
                    kept.visibility = Default::default();
                    kept.members.clear();
                    kept.history_size = None;
                    kept.rate_limit = None;
                    kept.max_message_bytes = None;
                    kept.edit_window_ms = None;
                    kept.max_reactions = None;
                    kept.read_receipts = None;
                    ctx.store.put_room(&kept).await?;
                    ctx.announce(RoomOp::Updated, &name).await?;
                }
            }
            let note = format!("kept topic {} and the messages; {name} is now an unmanaged room", room.topic_name());
            ctx.event(room, EventType::Normal, "Retained", note).await;
        }
    }
    Ok(Action::await_change())
}
