//! The distributed audit log: MongoDB collection `audit`, indexed by room and time.

use async_trait::async_trait;
use futures_util::TryStreamExt;
use mongodb::bson::doc;
use mongodb::{Collection, IndexModel};

use super::mongo::{unavailable, MongoStore};
use crate::audit::{AuditLog, AuditRecord};
use crate::ports::PortResult;

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct AuditDoc {
    #[serde(rename = "_id")]
    id: String,
    #[serde(flatten)]
    entry: AuditRecord,
}

#[derive(Clone)]
pub struct MongoAudit {
    audit: Collection<AuditDoc>,
}

impl MongoAudit {
    pub async fn new(store: &MongoStore) -> PortResult<Self> {
        let audit: Collection<AuditDoc> = store.database().collection("audit");
        audit
            .create_index(IndexModel::builder().keys(doc! {"room": 1, "at": -1}).build())
            .await
            .map_err(unavailable)?;
        Ok(MongoAudit { audit })
    }
}

#[async_trait]
impl AuditLog for MongoAudit {
    async fn record(&self, entry: AuditRecord) -> PortResult<()> {
        self.audit.insert_one(AuditDoc { id: entry.id.clone(), entry }).await.map(|_| ()).map_err(unavailable)
    }

    async fn audit(&self, room: &str, limit: usize) -> PortResult<Vec<AuditRecord>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let found = self
            .audit
            .find(doc! {"room": room})
            .sort(doc! {"at": -1, "_id": -1})
            .limit(limit)
            .await
            .map_err(unavailable)?;
        let docs: Vec<AuditDoc> = found.try_collect().await.map_err(unavailable)?;
        Ok(docs.into_iter().map(|d| d.entry).collect())
    }
}
