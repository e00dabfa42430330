//! The `ChatApiKey` custom resource (`aurorachat.dev/v1alpha1`, docs/server-api.md): a
//! server API key declared in Kubernetes. The operator copies it into MongoDB
//! (`api_keys`) and announces the change, so every gateway applies it within seconds;
//! deleting the resource revokes the key the same way.
//!
//! Doc comments here are the CRD's documentation (`kubectl explain chatapikey.spec`).

use futures_util::StreamExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder};
use kube::runtime::finalizer::{finalizer, Event};
use kube::runtime::{watcher, Controller};
use kube::{CustomResource, Resource, ResourceExt};
use redis::aio::ConnectionManager;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use aurora_core::apikeys::{KeySpec, Keyring, Scope};
use aurora_core::distributed::apikeys::MongoApiKeys;
use aurora_core::distributed::control;

use crate::error::{Error, Result};
use crate::reconcile::FINALIZER;

/// A server API key for AuroraChat: what a platform's backend presents on
/// `/api/server/...` (docs/server-api.md). Only the key's SHA-256 is declared here. The
/// object name is the key's name in the audit log and metrics; its bot posts as
/// `spec.bot`. Deleting the object revokes the key on every gateway within seconds.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "aurorachat.dev",
    version = "v1alpha1",
    kind = "ChatApiKey",
    doc = "A server API key for AuroraChat: its scopes and the SHA-256 of each valid key. See spec.",
    plural = "chatapikeys",
    shortname = "apikey",
    namespaced,
    printcolumn(name = "Bot", type_ = "string", description = "The bot's name", json_path = ".spec.bot"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.metadata.name.matches('^[a-z0-9-]{1,40}$')").message(
        "the ChatApiKey name is the key's name: 1-40 lower-case letters, digits or '-'"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ChatApiKeySpec {
    /// What the key may do: `publish` (post as the bot), `rooms` (create, change, delete
    /// rooms and members), `users` (disconnect, deactivate), `moderate` (delete, ban, mute,
    /// kick), `read` (rooms, history, presence, audit). `read` and `publish` together also
    /// let the bot connect to the WebSocket.
    #[schemars(length(min = 1, max = 5))]
    pub scopes: Vec<ApiScope>,
    /// SHA-256 of each valid key, 64 hex digits (`printf %s "$KEY" | sha256sum`). List two
    /// while rotating; remove one to revoke it.
    #[schemars(length(min = 1, max = 4), inner(regex(pattern = "^(sha256:)?[0-9a-f]{64}$")))]
    pub hashes: Vec<String>,
    /// The name the key's bot posts under. Defaults to the object name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub bot: Option<String>,
    /// Requests per period for this key, such as `100/1s` (the default) or `600/1m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^[0-9]+/[0-9]+(ms|s|m|h)$"))]
    pub rate_limit: Option<String>,
}

/// One scope of a key.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ApiScope {
    Publish,
    Rooms,
    Users,
    Moderate,
    Read,
}

impl From<ApiScope> for Scope {
    fn from(s: ApiScope) -> Scope {
        match s {
            ApiScope::Publish => Scope::Publish,
            ApiScope::Rooms => Scope::Rooms,
            ApiScope::Users => Scope::Users,
            ApiScope::Moderate => Scope::Moderate,
            ApiScope::Read => Scope::Read,
        }
    }
}

impl ChatApiKey {
    /// The key as gateways read it.
    pub fn key_spec(&self) -> KeySpec {
        KeySpec {
            name: self.name_any(),
            hashes: self.spec.hashes.clone(),
            scopes: self.spec.scopes.iter().map(|s| Scope::from(*s)).collect(),
            bot: self.spec.bot.clone(),
            rate_limit: self.spec.rate_limit.clone(),
        }
    }
}

pub struct KeyContext {
    pub client: kube::Client,
    pub keys: MongoApiKeys,
    pub redis: ConnectionManager,
    pub recorder: Recorder,
}

fn id(key: &ChatApiKey) -> String {
    format!("{}/{}", key.namespace().unwrap_or_default(), key.name_any())
}

async fn event(ctx: &KeyContext, key: &ChatApiKey, type_: EventType, reason: &str, note: String) {
    let event = KubeEvent { type_, reason: reason.into(), note: Some(note), action: reason.into(), secondary: None };
    if let Err(e) = ctx.recorder.publish(&event, &key.object_ref(&())).await {
        tracing::warn!(key = %id(key), error = %e, "event not published");
    }
}

async fn apply(key: &ChatApiKey, ctx: &KeyContext) -> Result<Action> {
    let spec = key.key_spec();
    if let Err(e) = Keyring::from_specs(vec![spec.clone()]) {
        event(ctx, key, EventType::Warning, "Invalid", e.to_string()).await;
        return Ok(Action::await_change());
    }
    ctx.keys.put(&id(key), &spec).await?;
    control::announce_keys(&ctx.redis).await.map_err(Error::Redis)?;
    tracing::info!(key = %id(key), "API key applied");
    event(ctx, key, EventType::Normal, "Applied", "every gateway accepts this key within seconds".into()).await;
    Ok(Action::requeue(Duration::from_secs(300)))
}

async fn cleanup(key: &ChatApiKey, ctx: &KeyContext) -> Result<Action> {
    ctx.keys.delete(&id(key)).await?;
    control::announce_keys(&ctx.redis).await.map_err(Error::Redis)?;
    tracing::info!(key = %id(key), "API key revoked");
    Ok(Action::await_change())
}

pub async fn reconcile(key: Arc<ChatApiKey>, ctx: Arc<KeyContext>) -> Result<Action> {
    let api: Api<ChatApiKey> = Api::namespaced(ctx.client.clone(), &key.namespace().unwrap_or_default());
    finalizer(&api, FINALIZER, key, |event| async {
        match event {
            Event::Apply(key) => apply(&key, &ctx).await,
            Event::Cleanup(key) => cleanup(&key, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

pub fn error_policy(key: Arc<ChatApiKey>, error: &Error, _ctx: Arc<KeyContext>) -> Action {
    tracing::warn!(key = %id(&key), error = %error, "ChatApiKey reconcile failed");
    Action::requeue(Duration::from_secs(2))
}

/// The ChatApiKey controller, until `stop`.
pub async fn control(api: Api<ChatApiKey>, ctx: Arc<KeyContext>, stop: CancellationToken) {
    Controller::new(api, watcher::Config::default().any_semantic())
        .graceful_shutdown_on(async move { stop.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "ChatApiKey reconcile error");
            }
        })
        .await;
}
