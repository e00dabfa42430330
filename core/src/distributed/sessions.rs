//! Distributed sessions (MongoDB collection `sessions`, `_id` = session id) and tickets
//! (Redis `aurora:ticket:<hash>` with a TTL, taken with GETDEL so a ticket works once on
//! whichever gateway redeems it).

use async_trait::async_trait;
use mongodb::bson::doc;
use mongodb::options::ReturnDocument;
use mongodb::Collection;
use redis::aio::ConnectionManager;
use std::time::Duration;

use super::mongo::{unavailable, MongoStore};
use super::redis_bus::redis_err;
use crate::ports::{PortError, PortResult};
use crate::sessions::{Rotation, SessionRecord, SessionStore, Ticket, TicketStore};

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct SessionDoc {
    #[serde(rename = "_id")]
    id: String,
    user_id: String,
    secret_hash: String,
    created_at: i64,
    expires_at: i64,
    revoked: bool,
}

impl From<SessionDoc> for SessionRecord {
    fn from(d: SessionDoc) -> Self {
        SessionRecord {
            id: d.id,
            user_id: d.user_id,
            secret_hash: d.secret_hash,
            created_at: d.created_at,
            expires_at: d.expires_at,
            revoked: d.revoked,
        }
    }
}

/// Sessions in MongoDB; a rotation is one conditional find-and-modify, so two gateways
/// presenting the same token cannot both win.
#[derive(Clone)]
pub struct MongoSessions {
    sessions: Collection<SessionDoc>,
}

impl MongoSessions {
    pub fn new(store: &MongoStore) -> Self {
        MongoSessions { sessions: store.database().collection("sessions") }
    }
}

#[async_trait]
impl SessionStore for MongoSessions {
    async fn create_session(&self, s: SessionRecord) -> PortResult<()> {
        let doc = SessionDoc {
            id: s.id,
            user_id: s.user_id,
            secret_hash: s.secret_hash,
            created_at: s.created_at,
            expires_at: s.expires_at,
            revoked: s.revoked,
        };
        self.sessions.insert_one(doc).await.map(|_| ()).map_err(unavailable)
    }

    async fn rotate_session(&self, id: &str, presented: &str, next: &str, now_ms: i64) -> PortResult<Rotation> {
        let live = doc! {"_id": id, "revoked": false, "expires_at": {"$gt": now_ms}};
        let mut spend = live.clone();
        spend.insert("secret_hash", presented);
        let rotated = self
            .sessions
            .find_one_and_update(spend, doc! {"$set": {"secret_hash": next}})
            .return_document(ReturnDocument::After)
            .await
            .map_err(unavailable)?;
        if let Some(doc) = rotated {
            return Ok(Rotation::Rotated(doc.into()));
        }
        // Not the live secret: a live session was handed a spent (or forged) token.
        let revoked = self.sessions.update_one(live, doc! {"$set": {"revoked": true}}).await.map_err(unavailable)?;
        Ok(if revoked.modified_count > 0 { Rotation::Reused } else { Rotation::Ended })
    }

    async fn revoke_session(&self, id: &str) -> PortResult<bool> {
        let filter = doc! {"_id": id, "revoked": false, "expires_at": {"$gt": crate::now_ms()}};
        let r = self.sessions.update_one(filter, doc! {"$set": {"revoked": true}}).await.map_err(unavailable)?;
        Ok(r.modified_count > 0)
    }

    async fn session(&self, id: &str) -> PortResult<Option<SessionRecord>> {
        Ok(self.sessions.find_one(doc! {"_id": id}).await.map_err(unavailable)?.map(Into::into))
    }
}

/// Tickets in Redis.
pub struct RedisTickets {
    conn: ConnectionManager,
}

impl RedisTickets {
    pub fn new(conn: ConnectionManager) -> Self {
        RedisTickets { conn }
    }
}

fn ticket_key(hash: &str) -> String {
    format!("aurora:ticket:{hash}")
}

#[async_trait]
impl TicketStore for RedisTickets {
    async fn issue_ticket(&self, hash: &str, ticket: &Ticket, ttl: Duration) -> PortResult<()> {
        let value = serde_json::to_string(ticket).map_err(PortError::corrupt)?;
        let mut conn = self.conn.clone();
        redis::cmd("SET")
            .arg(ticket_key(hash))
            .arg(value)
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async::<()>(&mut conn)
            .await
            .map_err(redis_err)
    }

    async fn redeem_ticket(&self, hash: &str) -> PortResult<Option<Ticket>> {
        let mut conn = self.conn.clone();
        let taken: Option<String> =
            redis::cmd("GETDEL").arg(ticket_key(hash)).query_async(&mut conn).await.map_err(redis_err)?;
        taken.map(|v| serde_json::from_str(&v).map_err(PortError::corrupt)).transpose()
    }
}
