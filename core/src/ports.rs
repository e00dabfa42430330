//! The ports the chat logic talks to. Embedded implementations live in
//! `crate::embedded`; distributed ones (Kafka, Redis, MongoDB) implement the same traits.

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use std::sync::Arc;

use crate::model::{Message, Room, Submission, UserRecord, UserRef};
use crate::ratelimit::{Decision, RateLimit};

/// A connection id, unique within one gateway process.
pub type ConnId = u64;

/// How a call to a backing service failed: the `kind` of `aurora_backend_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The service could not be reached or the connection broke.
    Connection,
    /// The service did not answer in time.
    Timeout,
    /// The service answered with an error.
    Error,
}

impl FailureKind {
    pub const ALL: [FailureKind; 3] = [FailureKind::Connection, FailureKind::Timeout, FailureKind::Error];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Connection => "connection",
            FailureKind::Timeout => "timeout",
            FailureKind::Error => "error",
        }
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a port call failed. Every variant but `Conflict` means "try again later" to a
/// client (`unavailable`), except `Corrupt`, which is a bug or a damaged record.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PortError {
    #[error("already exists")]
    Conflict,
    /// A call to a backing service failed.
    #[error("{dependency} {kind} failure: {detail}")]
    Unavailable { dependency: Dependency, kind: FailureKind, detail: String },
    /// A task of the adapter itself (a producer, a subscriber, the log writer) is gone.
    #[error("{0} stopped")]
    Stopped(&'static str),
    /// The operation is not offered by this adapter (the consumer's bus only publishes).
    #[error("not supported: {0}")]
    Unsupported(&'static str),
    #[error("overloaded: {0}")]
    Overloaded(&'static str),
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

impl PortError {
    /// A failed call to `dependency`, counted in `aurora_backend_errors_total`.
    pub fn unavailable(dependency: Dependency, kind: FailureKind, detail: impl std::fmt::Display) -> PortError {
        crate::telemetry::backend_error(dependency, kind);
        PortError::Unavailable { dependency, kind, detail: detail.to_string() }
    }

    /// A record that cannot be encoded or decoded.
    pub fn corrupt(e: impl std::fmt::Display) -> PortError {
        PortError::Corrupt(e.to_string())
    }
}

pub type PortResult<T> = Result<T, PortError>;

#[async_trait]
pub trait UserStore: Send + Sync {
    /// Fails with [`PortError::Conflict`] when the lower-cased name is taken.
    async fn create_user(&self, user: UserRecord) -> PortResult<()>;
    /// Case-insensitive lookup.
    async fn user_by_name(&self, name: &str) -> PortResult<Option<UserRecord>>;
    async fn user_by_id(&self, id: &str) -> PortResult<Option<UserRecord>>;
    /// Records that `user_id` blocks (or no longer blocks) `other_id`: the blocked user's
    /// sends to the conversations they share are refused.
    async fn set_blocked(&self, user_id: &str, other_id: &str, blocked: bool) -> PortResult<()>;
    /// Marks the user (in)active; false when there is no such user.
    async fn set_deactivated(&self, user_id: &str, deactivated: bool) -> PortResult<bool>;
    /// The ids of the users `user_id` blocks.
    async fn blocked(&self, user_id: &str) -> PortResult<Vec<String>>;
}

#[async_trait]
pub trait RoomStore: Send + Sync {
    /// Fails with [`PortError::Conflict`] when the name is taken.
    async fn create_room(&self, room: Room) -> PortResult<()>;
    /// Creates the room unless it exists; existing rooms are left as they are.
    async fn ensure_room(&self, room: Room) -> PortResult<()>;
    async fn room(&self, name: &str) -> PortResult<Option<Room>>;
    async fn rooms(&self) -> PortResult<Vec<Room>>;
    /// Takes `username` (lower-cased) out of a private room's members, atomically;
    /// false when the room is unknown or the user was not a member.
    async fn remove_member(&self, room: &str, username: &str) -> PortResult<bool>;
    /// Changes a room's title and visibility (those given); false when the room is unknown.
    async fn update_room(
        &self,
        name: &str,
        title: Option<&str>,
        visibility: Option<crate::model::Visibility>,
    ) -> PortResult<bool>;
    /// Deletes a room and its stored messages; false when the room is unknown.
    async fn drop_room(&self, name: &str) -> PortResult<bool>;
    /// Adds `username` (lower-cased) to a private room's members, atomically; false when
    /// the room is unknown or the user was a member already.
    async fn add_member(&self, room: &str, username: &str) -> PortResult<bool>;
    /// Stores `moderation` (with `rev` = `expected_rev + 1`) if the room's is still at
    /// `expected_rev`; false when the room is unknown or someone changed it meanwhile.
    async fn set_moderation(
        &self,
        room: &str,
        moderation: &crate::moderation::Moderation,
        expected_rev: u64,
    ) -> PortResult<bool>;
}

/// A room's last stored message, as [`MessageStore::record_seqs`] records it: the id lets a
/// reader check that the message is still there (a room deleted after the record was taken).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedSeq {
    pub room: String,
    pub seq: u64,
    pub id: String,
}

#[async_trait]
pub trait MessageStore: Send + Sync {
    /// The highest stored `seq` of the room, 0 when empty.
    async fn last_seq(&self, room: &str) -> PortResult<u64>;
    /// The room's last `seq` as its writers recorded it ([`MessageStore::record_seqs`]), for
    /// a writer meeting the room: never above [`MessageStore::last_seq`], and below it after a
    /// crash or while two writers overlap (the insert of a taken `seq` then conflicts, and the
    /// writer looks the room up exactly). Stores whose `last_seq` is cheap answer with it.
    async fn recorded_seq(&self, room: &str) -> PortResult<u64> {
        self.last_seq(room).await
    }
    /// Records rooms' last stored `seq` once a batch is out; best effort (a record that trails
    /// costs a conflict and an exact lookup later).
    async fn record_seqs(&self, _last: &[RecordedSeq]) {}
    /// Stores messages; storing one that exists (same room and seq) is a no-op.
    async fn insert(&self, messages: &[Message]) -> PortResult<()>;
    /// Replaces stored messages (same id, room and seq) with their state after events.
    async fn update(&self, messages: &[Message]) -> PortResult<()>;
    /// Stores a batch's new records and the new state of the messages its events changed.
    /// The changes are written first: a batch redelivered after a crash between the two
    /// applies its events again, and applying an event twice changes nothing.
    async fn commit(&self, fresh: &[Message], changed: &[Message]) -> PortResult<()> {
        if !changed.is_empty() {
            self.update(changed).await?;
        }
        self.insert(fresh).await
    }
    /// The newest `limit` messages (not events) with `seq < before` (all when `None`),
    /// oldest first, in their current state.
    async fn before(&self, room: &str, before: Option<u64>, limit: usize) -> PortResult<Vec<Message>>;
    /// Records (messages and events) with `seq > after`, oldest first: the newest `limit`
    /// of them, and whether older ones were left out.
    async fn after(&self, room: &str, after: u64, limit: usize) -> PortResult<(Vec<Message>, bool)>;
    /// Records (messages and events) with `after < seq < before`, oldest first: the oldest
    /// `limit` of them (a gap's backfill).
    async fn between(&self, room: &str, after: u64, before: u64, limit: usize) -> PortResult<Vec<Message>>;
    /// Stored messages among `ids` (a log redelivers after a consumer crash, and a
    /// retried send is appended again under its first id).
    async fn existing(&self, _ids: &[String]) -> PortResult<std::collections::HashMap<String, Message>> {
        Ok(std::collections::HashMap::new())
    }
    /// The id of a stored message that `user_id` sent to `room` with `nonce` at or after
    /// `since_ms` (unix ms), if any: dedupe that survives a lost nonce cache.
    async fn id_by_nonce(
        &self,
        _room: &str,
        _user_id: &str,
        _nonce: &str,
        _since_ms: i64,
    ) -> PortResult<Option<String>> {
        Ok(None)
    }
}

/// A ready-to-send server frame for one room.
#[derive(Debug, Clone)]
pub struct RoomEvent {
    /// The message `seq`, for ordering and gap detection; `None` for presence and typing.
    pub seq: Option<u64>,
    /// Connections of this user do not get the frame (typing).
    pub skip_user: Option<Arc<str>>,
    /// The serialized frame, shared by every recipient.
    pub frame: Bytes,
}

/// Receives room traffic from the bus; must not block.
pub trait BusSink: Send + Sync {
    fn deliver(&self, room: &str, event: RoomEvent);
    /// Traffic for `room` may have been lost (the bus reconnected): members should
    /// compare their last `seq` with the store.
    fn resync(&self, _room: &str) {}
}

/// Room fan-out between the pipeline and the gateways.
#[async_trait]
pub trait Bus: Send + Sync {
    /// Sets where subscribed traffic goes; called once at start-up.
    fn attach(&self, sink: Arc<dyn BusSink>);
    async fn publish(&self, room: &str, event: RoomEvent) -> PortResult<()>;
    /// Publishes in order; implementations may send them in one round trip.
    async fn publish_many(&self, events: Vec<(String, RoomEvent)>) -> PortResult<()> {
        for (room, event) in events {
            self.publish(&room, event).await?;
        }
        Ok(())
    }
    async fn subscribe(&self, room: &str) -> PortResult<()>;
    async fn unsubscribe(&self, room: &str) -> PortResult<()>;
}

/// Resolves once the message is durably accepted.
pub type Accepted = BoxFuture<'static, PortResult<()>>;

/// The ordered message log between gateways and the fan-out tier.
pub trait MessageLog: Send + Sync {
    /// Enqueues before returning, so calls from one task keep their order;
    /// the future resolves when the message is durable.
    fn append(&self, submission: Submission) -> Accepted;
}

/// Who is online in which room; a user counts once however many connections it has.
#[async_trait]
pub trait Presence: Send + Sync {
    /// Returns true when this is the user's first connection in the room.
    async fn join(&self, room: &str, user: &UserRef, conn: ConnId) -> PortResult<bool>;
    /// Returns true when this was the user's last connection in the room.
    async fn leave(&self, room: &str, user: &UserRef, conn: ConnId) -> PortResult<bool>;
    async fn members(&self, room: &str) -> PortResult<Vec<UserRef>>;
    async fn online(&self, room: &str) -> PortResult<usize>;
}

#[async_trait]
pub trait RateLimiter: Send + Sync {
    async fn acquire(&self, user_id: &str, room: &str, limit: RateLimit) -> PortResult<Decision>;
    /// Returns a token for a message that was not accepted after all.
    async fn refund(&self, user_id: &str, room: &str, limit: RateLimit) -> PortResult<()>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First use of the nonce: the message goes ahead with the offered id.
    New,
    /// A retry of a send that may still be in flight (or whose gateway died): append it
    /// again under this first id (the fan-out tier stores an id once) and ack when durable.
    Existing(String),
    /// A retry of a message that is stored: ack with this id at once.
    Stored(String),
}

/// How long a nonce is remembered: a retry within this is stored once.
pub const NONCE_TTL: std::time::Duration = std::time::Duration::from_secs(300);

/// Remembers `(user, room, nonce)` for [`NONCE_TTL`].
#[async_trait]
pub trait NonceCache: Send + Sync {
    async fn claim(&self, user_id: &str, room: &str, nonce: &str, id: &str) -> PortResult<Claim>;
    /// Forgets a claim whose message was not accepted.
    async fn release(&self, user_id: &str, room: &str, nonce: &str) -> PortResult<()>;
    /// True while the cache may have forgotten nonces of the last five minutes (it
    /// started, or its server restarted, less than five minutes ago).
    async fn cold(&self) -> bool {
        false
    }
}

/// What a send may do after its nonce claim and its rate-limit check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admit {
    /// A retry of a known nonce ([`Claim::Existing`] or [`Claim::Stored`]): no token was taken.
    Retry(Claim),
    /// A new message (or one without a nonce): allowed with a token taken, or limited with
    /// its nonce claim released.
    New(Decision),
}

/// A send's admission: its nonce claim and its rate-limit token in one step (one Redis round
/// trip in distributed mode instead of two, or three for a limited send).
#[async_trait]
pub trait Admission: Send + Sync {
    async fn admit(
        &self,
        user_id: &str,
        room: &str,
        nonce: Option<&str>,
        id: &str,
        limit: RateLimit,
    ) -> PortResult<Admit>;
}

/// [`Admission`] from a [`NonceCache`] and a [`RateLimiter`], one call after the other.
pub struct Sequential {
    pub nonces: Arc<dyn NonceCache>,
    pub limiter: Arc<dyn RateLimiter>,
}

#[async_trait]
impl Admission for Sequential {
    async fn admit(
        &self,
        user_id: &str,
        room: &str,
        nonce: Option<&str>,
        id: &str,
        limit: RateLimit,
    ) -> PortResult<Admit> {
        if let Some(n) = nonce {
            match self.nonces.claim(user_id, room, n, id).await? {
                Claim::New => {}
                retry => return Ok(Admit::Retry(retry)),
            }
        }
        let decision = match self.limiter.acquire(user_id, room, limit).await {
            Ok(d) => d,
            Err(e) => {
                if let Some(n) = nonce {
                    let _ = self.nonces.release(user_id, room, n).await;
                }
                return Err(e);
            }
        };
        if let (Decision::Limited { .. }, Some(n)) = (&decision, nonce) {
            self.nonces.release(user_id, room, n).await?;
        }
        Ok(Admit::New(decision))
    }
}

/// A service a process depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dependency {
    Kafka,
    Redis,
    MongoDb,
    /// The embedded file store.
    Store,
}

impl Dependency {
    /// The `port` label of `aurora_backend_errors_total` (the file store counts as `embedded`).
    pub fn port_label(self) -> &'static str {
        match self {
            Dependency::Store => "embedded",
            other => other.as_str(),
        }
    }

    /// The `dependency` label of `aurora_dependency_up`.
    pub fn as_str(self) -> &'static str {
        match self {
            Dependency::Kafka => "kafka",
            Dependency::Redis => "redis",
            Dependency::MongoDb => "mongodb",
            Dependency::Store => "store",
        }
    }
}

impl std::fmt::Display for Dependency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a dependency failed a readiness check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotReadyCause {
    #[error("no answer within {0:?}")]
    NoAnswer(std::time::Duration),
    #[error(transparent)]
    Failed(#[from] PortError),
}

/// A dependency that did not answer a readiness check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{dependency}: {cause}")]
pub struct NotReady {
    pub dependency: Dependency,
    pub cause: NotReadyCause,
}

/// Reports whether every dependency answers.
#[async_trait]
pub trait Readiness: Send + Sync {
    /// The dependencies this checks, for metrics.
    fn dependencies(&self) -> &'static [Dependency];
    /// Every dependency that does not answer (empty: all do). Each check is bounded well
    /// under a second, so a probe with a 1 s timeout gets an answer.
    async fn check(&self) -> Vec<NotReady>;
}

/// Every port, wired for one mode.
#[derive(Clone)]
pub struct Backend {
    pub users: Arc<dyn UserStore>,
    pub rooms: Arc<dyn RoomStore>,
    pub messages: Arc<dyn MessageStore>,
    pub log: Arc<dyn MessageLog>,
    pub bus: Arc<dyn Bus>,
    pub presence: Arc<dyn Presence>,
    pub limiter: Arc<dyn RateLimiter>,
    pub nonces: Arc<dyn NonceCache>,
    pub admission: Arc<dyn Admission>,
    pub sessions: Arc<dyn crate::sessions::SessionStore>,
    /// Read pointers (docs/protocol.md §3 `read`).
    pub reads: Arc<dyn crate::reads::ReadStore>,
    /// The moderation audit log.
    pub audit: Arc<dyn crate::audit::AuditLog>,
    pub tickets: Arc<dyn crate::sessions::TicketStore>,
    pub readiness: Arc<dyn Readiness>,
    /// Tells every gateway (this one included) of a room or user change.
    pub announcer: Arc<dyn crate::control::Announcer>,
    /// Server API keys from `ChatApiKey` resources (distributed mode).
    pub api_keys: Option<Arc<dyn crate::apikeys::ApiKeyStore>>,
    /// `member.joined` / `member.left` for webhooks (distributed mode, `AURORA_MEMBER_EVENTS`).
    pub members: Option<Arc<dyn crate::webhooks::MemberEvents>>,
}
