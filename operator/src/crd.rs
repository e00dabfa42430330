//! The `ChatRoom` custom resource (`aurorachat.dev/v1alpha1`, docs/operator.md).
//!
//! Doc comments here are the CRD's documentation: `kubectl explain chatroom.spec`
//! prints them, so they are written for the person writing the object.

pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A chat room run by AuroraChat. The object name is the room name users see and
/// join (lower-case letters, digits and '-'). The operator gives the room its own
/// Kafka topic `aurora.room.<name>`, registers its configuration with every gateway,
/// and reports progress in `status.conditions`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "aurorachat.dev",
    version = "v1alpha1",
    kind = "ChatRoom",
    doc = "A chat room run by AuroraChat: its own Kafka topic and a room configuration every gateway applies. See spec.",
    plural = "chatrooms",
    shortname = "room",
    namespaced,
    status = "ChatRoomStatus",
    printcolumn(name = "Title", type_ = "string", description = "Room title", json_path = ".spec.title"),
    printcolumn(name = "Visibility", type_ = "string", description = "public or private", json_path = ".spec.visibility"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        description = "Whether the room is usable",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.metadata.name.matches('^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$')").message(
        "the ChatRoom name is the room name: 1-63 lower-case letters, digits or '-', starting and ending with a letter or digit"
    )
)]
#[x_kube(validation = Rule::new(
    "(has(self.visibility) && self.visibility == 'private') || !has(self.members) || size(self.members) == 0"
).message("members can only be listed for a private room: set visibility: private or remove members"))]
#[serde(rename_all = "camelCase")]
pub struct ChatRoomSpec {
    /// Title shown in room lists. Defaults to the room name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 200))]
    pub title: Option<String>,

    /// Who may see and join the room: `public` (every signed-in user) or `private`
    /// (only the users listed in `members`).
    #[serde(default)]
    pub visibility: Visibility,

    /// Usernames allowed into a private room (case-insensitive). Only for
    /// `visibility: private`. Removing a name takes that user out of the room at once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000), inner(length(max = 32)))]
    #[x_kube(validation = Rule::new("self.all(m, m.matches('^[A-Za-z0-9_.-]{3,32}$'))")
        .message("members must be usernames: 3-32 letters, digits, '_', '.' or '-'"))]
    pub members: Vec<String>,

    /// Messages a user gets when joining. Defaults to the gateways' AURORA_HISTORY_SIZE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<HistorySpec>,

    /// Per-user message rate in this room. Defaults to the gateways' AURORA_RATE_LIMIT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSpec>,

    /// Largest message body in UTF-8 bytes (1-65536). Defaults to the gateways'
    /// AURORA_MAX_MESSAGE_BYTES.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65536))]
    pub max_message_bytes: Option<i32>,

    /// How long after sending a message its author may still edit it, as a duration
    /// (`15m`, `24h`). Defaults to the gateways' AURORA_EDIT_WINDOW.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(
        validation = Rule::new("self.matches('^([0-9]+(ms|s|m|h|d))+$')")
            .message("editWindow must be a duration such as 15m or 24h"),
        validation = Rule::new("!self.matches('^(0+(ms|s|m|h|d))+$')").message("editWindow must be longer than zero")
    )]
    pub edit_window: Option<String>,

    /// Different reactions one message may have (1-100). Defaults to the gateways'
    /// AURORA_MAX_REACTIONS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub max_reactions: Option<i32>,

    /// Whether members see who has read up to which message ("seen by"). Default true;
    /// large public rooms may turn it off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_receipts: Option<bool>,

    /// Usernames who moderate the room: they may delete anyone's message, kick, ban and
    /// mute members, and set slow mode and freeze. Applied on every gateway within a
    /// second of a change, without a restart.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub moderators: Vec<String>,

    /// The room's Kafka topic `aurora.room.<name>`.
    #[serde(default)]
    pub topic: TopicSpec,

    /// What deleting this ChatRoom does. `Retain` (default) keeps the topic and the
    /// stored messages and leaves the room as an ordinary, unmanaged room; `Delete`
    /// removes the topic, every stored message and the room.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// Who may see and join the room.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Every signed-in user.
    #[default]
    Public,
    /// Only the users in `members`.
    Private,
}

/// What happens to the topic and messages when the ChatRoom is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Keep the topic and messages; the room stays as an unmanaged room.
    #[default]
    Retain,
    /// Remove the topic, the stored messages and the room.
    Delete,
}

/// Messages delivered on join.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct HistorySpec {
    /// How many of the newest messages a user gets when joining (0-500).
    #[schemars(range(min = 0, max = 500))]
    pub size: i32,
}

/// A token bucket per user: up to `messages` at once, refilled at `messages` per `period`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
pub struct RateLimitSpec {
    /// Messages per period (at least 1).
    #[schemars(range(min = 1))]
    pub messages: i32,
    /// The period, as a duration such as `500ms`, `10s`, `1m` or `2h`.
    #[schemars(length(max = 32))]
    #[x_kube(
        validation = Rule::new("self.matches('^([0-9]+(ms|s|m|h|d))+$')")
            .message("period must be a duration such as 500ms, 10s, 1m or 2h"),
        validation = Rule::new("!self.matches('^(0+(ms|s|m|h|d))+$')").message("period must be longer than zero")
    )]
    pub period: String,
}

/// The room's Kafka topic.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopicSpec {
    /// Partitions (at least 1). Can be raised later, never lowered: a lower value is
    /// refused with condition TopicReady=False, reason PartitionsCannotDecrease.
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub partitions: i32,
    /// Replicas of each partition (at least 1, at most the number of brokers).
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub replication_factor: i32,
    /// How long Kafka keeps the room's records, as a duration such as `12h` or `7d`.
    /// Stored history in MongoDB is not affected.
    #[serde(default = "seven_days")]
    #[schemars(length(max = 32))]
    #[x_kube(
        validation = Rule::new("self.matches('^([0-9]+(ms|s|m|h|d))+$')")
            .message("retention must be a duration such as 12h or 7d"),
        validation = Rule::new("!self.matches('^(0+(ms|s|m|h|d))+$')").message("retention must be longer than zero")
    )]
    pub retention: String,
}

fn one() -> i32 {
    1
}

fn seven_days() -> String {
    "7d".into()
}

impl Default for TopicSpec {
    fn default() -> Self {
        TopicSpec { partitions: 1, replication_factor: 1, retention: seven_days() }
    }
}

/// What the operator observed and did.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatRoomStatus {
    /// The `metadata.generation` these conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The room's Kafka topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// `Ready` (the room is usable), `TopicReady` (the Kafka topic matches the spec)
    /// and `Registered` (the gateways have the room's configuration); each with a
    /// CamelCase `reason` such as `Reconciled` or `PartitionsCannotDecrease` and a
    /// `message` saying what happened and what to do about it.
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

impl ChatRoom {
    /// The room's Kafka topic.
    pub fn topic_name(&self) -> String {
        aurora_core::distributed::room_topic(&self.room_name())
    }

    pub fn room_name(&self) -> String {
        self.metadata.name.clone().unwrap_or_default()
    }

    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.status.as_ref()?.conditions.iter().find(|c| c.type_ == type_)
    }
}

/// The ChatApiKey CRD as YAML, as `aurora-operator api-key-crd` prints it.
pub fn apikey_crd_yaml() -> Result<String, serde_yaml::Error> {
    let yaml = serde_yaml::to_string(&crate::apikey::ChatApiKey::crd())?;
    Ok(format!("# Generated by `aurora-operator api-key-crd`; do not edit.\n{yaml}"))
}

/// The CRD as YAML, as `aurora-operator crd` prints it and the chart ships it.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    let yaml = serde_yaml::to_string(&ChatRoom::crd())?;
    Ok(format!("# Generated by `aurora-operator crd`; do not edit.\n{yaml}"))
}
