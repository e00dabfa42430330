//! Distributed mode: Kafka (message log), Redis (bus, presence, rate limits,
//! nonces) and MongoDB (users, rooms, messages) behind the same ports.

pub mod admission;
pub mod apikeys;
pub mod audit;
pub mod control;
pub mod heads;
pub mod kafka;
pub mod mongo;
pub mod reads;
pub mod redis_bus;
pub mod redis_state;
pub mod sessions;
pub mod users;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::ports::{Backend, Dependency, NotReady, NotReadyCause, PortError, PortResult, Readiness};

pub use crate::control::{ControlSignal, RoomChange, RoomOp, CONTROL_CHANNEL};
pub use admission::RedisAdmission;
pub use kafka::{room_topic, KafkaLog, SHARED_TOPIC};
pub use mongo::MongoStore;
pub use redis_bus::{RedisBus, RedisPublisher};
pub use redis_state::{RedisNonces, RedisPresence, RedisRateLimiter};
pub use sessions::{MongoSessions, RedisTickets};

/// Where the services are.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub kafka_brokers: String,
    pub redis_url: String,
    pub mongodb_uri: String,
    pub partitions: i32,
    pub replication: i32,
    /// Write `member.joined` / `member.left` to `aurora.events`.
    pub member_events: bool,
}

pub type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

pub async fn redis_manager(url: &str) -> PortResult<(redis::Client, ConnectionManager)> {
    let client = redis::Client::open(url).map_err(redis_bus::redis_err)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Duration::from_secs(2))
        .set_response_timeout(Duration::from_secs(2))
        .set_number_of_retries(1)
        .set_max_delay(1000);
    let manager = ConnectionManager::new_with_config(client.clone(), config).await.map_err(redis_bus::redis_err)?;
    Ok((client, manager))
}

struct Ready {
    kafka: Arc<KafkaLog>,
    redis: ConnectionManager,
    mongo: MongoStore,
}

/// How long one dependency may take to answer a readiness check.
const CHECK_TIMEOUT: Duration = Duration::from_millis(700);

async fn bounded<F>(dependency: Dependency, check: F) -> Option<NotReady>
where
    F: Future<Output = PortResult<()>>,
{
    let cause = match tokio::time::timeout(CHECK_TIMEOUT, check).await {
        Ok(Ok(())) => return None,
        Ok(Err(e)) => NotReadyCause::Failed(e),
        Err(_) => NotReadyCause::NoAnswer(CHECK_TIMEOUT),
    };
    Some(NotReady { dependency, cause })
}

#[async_trait]
impl Readiness for Ready {
    fn dependencies(&self) -> &'static [Dependency] {
        &[Dependency::Kafka, Dependency::Redis, Dependency::MongoDb]
    }

    async fn check(&self) -> Vec<NotReady> {
        let mut conn = self.redis.clone();
        let redis = bounded(Dependency::Redis, async move {
            redis::cmd("PING").query_async::<String>(&mut conn).await.map(|_| ()).map_err(redis_bus::redis_err)
        });
        let mongo = bounded(Dependency::MongoDb, self.mongo.ping());
        let kafka = bounded(Dependency::Kafka, self.kafka.ping());
        let (redis, mongo, kafka) = tokio::join!(redis, mongo, kafka);
        [redis, mongo, kafka].into_iter().flatten().collect()
    }
}

/// A service that did not answer at start-up, named by its variable.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("AURORA_KAFKA_BROKERS: cannot reach Kafka: {0}")]
    Kafka(PortError),
    #[error("AURORA_MONGODB_URI: cannot reach MongoDB: {0}")]
    Mongo(PortError),
    #[error("AURORA_REDIS_URL: cannot reach Redis: {0}")]
    Redis(PortError),
}

/// What the consumer and the operator connect to first: `aurora.messages` ensured,
/// MongoDB and Redis connected.
pub async fn connect_services(s: &crate::config::ServiceArgs) -> Result<(MongoStore, ConnectionManager), StartupError> {
    kafka::ensure_topic(&s.kafka_brokers, SHARED_TOPIC, s.kafka_partitions, s.kafka_replication)
        .await
        .map_err(StartupError::Kafka)?;
    let mongo = MongoStore::connect(&s.mongodb_uri).await.map_err(StartupError::Mongo)?;
    let (_, redis) = redis_manager(&s.redis_url).await.map_err(StartupError::Redis)?;
    Ok((mongo, redis))
}

/// A gateway's ports, the tasks that serve them (pub/sub subscriber, presence lease,
/// control listener; they run until aborted) and the room announcements they hear.
pub struct GatewayBackend {
    pub backend: Backend,
    pub tasks: Vec<Task>,
    pub control: tokio::sync::mpsc::Receiver<ControlSignal>,
}

/// Connects every port for a gateway.
pub async fn gateway_backend(ep: &Endpoints, gateway_id: &str, lease: Duration) -> PortResult<GatewayBackend> {
    kafka::ensure_topic(&ep.kafka_brokers, SHARED_TOPIC, ep.partitions, ep.replication).await?;
    if ep.member_events {
        kafka::ensure_topic(&ep.kafka_brokers, crate::webhooks::EVENTS_TOPIC, ep.partitions, ep.replication).await?;
    }
    let mongo = MongoStore::connect(&ep.mongodb_uri).await?;
    let (client, redis) = redis_manager(&ep.redis_url).await?;
    let log = Arc::new(KafkaLog::new(&ep.kafka_brokers)?);
    let (bus, subscriber) = RedisBus::new(client.clone(), redis.clone());
    let (presence, lease_task) = RedisPresence::new(redis.clone(), gateway_id.to_owned(), lease);
    let backend = Backend {
        users: Arc::new(mongo.clone()),
        rooms: Arc::new(mongo.clone()),
        messages: Arc::new(mongo.clone()),
        log: log.clone(),
        bus,
        presence,
        limiter: Arc::new(RedisRateLimiter::new(redis.clone())),
        nonces: Arc::new(RedisNonces::new(redis.clone())),
        admission: Arc::new(RedisAdmission::new(redis.clone())),
        sessions: Arc::new(MongoSessions::new(&mongo)),
        reads: Arc::new(reads::MongoReads::new(&mongo).await?),
        audit: Arc::new(audit::MongoAudit::new(&mongo).await?),
        tickets: Arc::new(RedisTickets::new(redis.clone())),
        announcer: Arc::new(control::RedisAnnouncer::new(redis.clone())),
        api_keys: Some(Arc::new(apikeys::MongoApiKeys::new(&mongo))),
        members: ep.member_events.then(|| Arc::new(log.member_events()) as Arc<dyn crate::webhooks::MemberEvents>),
        readiness: Arc::new(Ready { kafka: log, redis, mongo }),
    };
    let (control_tx, control) = tokio::sync::mpsc::channel(256);
    let listener = control::listen(client, control_tx);
    Ok(GatewayBackend { backend, tasks: vec![Box::pin(subscriber), Box::pin(lease_task), Box::pin(listener)], control })
}
