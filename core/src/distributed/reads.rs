//! Distributed read pointers: MongoDB collection `reads`, one document per user and room
//! (`_id` = `user id/room`), raised with `$max` so concurrent reports from two gateways
//! never lower it.

use async_trait::async_trait;
use futures_util::TryStreamExt;
use mongodb::bson::doc;
use mongodb::options::ReturnDocument;
use mongodb::{Collection, IndexModel};
use std::collections::HashMap;

use super::mongo::{is_duplicate, unavailable, MongoStore};
use crate::model::UserRef;
use crate::ports::PortResult;
use crate::reads::{ReadStore, Reader};

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct ReadDoc {
    #[serde(rename = "_id")]
    id: String,
    user: String,
    #[serde(default)]
    name: String,
    room: String,
    seq: i64,
}

#[derive(Clone)]
pub struct MongoReads {
    reads: Collection<ReadDoc>,
}

impl MongoReads {
    pub async fn new(store: &MongoStore) -> PortResult<Self> {
        let reads: Collection<ReadDoc> = store.database().collection("reads");
        reads.create_index(IndexModel::builder().keys(doc! {"user": 1}).build()).await.map_err(unavailable)?;
        reads
            .create_index(IndexModel::builder().keys(doc! {"room": 1, "seq": -1}).build())
            .await
            .map_err(unavailable)?;
        Ok(MongoReads { reads })
    }
}

impl MongoReads {
    /// Applies `update` to the user's pointer document (creating it), and returns the
    /// stored seq. Two first upserts at once: one inserts, the other fails on the key and
    /// is applied again as an update.
    async fn upsert(&self, user_id: &str, room: &str, update: mongodb::bson::Document) -> PortResult<u64> {
        let id = format!("{user_id}/{room}");
        let mut attempt = 0;
        loop {
            let result = self
                .reads
                .find_one_and_update(doc! {"_id": &id}, update.clone())
                .upsert(true)
                .return_document(ReturnDocument::After)
                .await;
            match result {
                Ok(stored) => return Ok(stored.map_or(0, |d| d.seq.max(0) as u64)),
                Err(e) if attempt == 0 && is_duplicate(&e) => attempt += 1,
                Err(e) => return Err(unavailable(e)),
            }
        }
    }
}

#[async_trait]
impl ReadStore for MongoReads {
    async fn mark_read(&self, user: &UserRef, room: &str, seq: u64) -> PortResult<u64> {
        let seq = i64::try_from(seq).unwrap_or(i64::MAX);
        let (id, name) = (&*user.id, &*user.name);
        let update = doc! {"$max": {"seq": seq}, "$setOnInsert": {"user": id, "name": name, "room": room}};
        self.upsert(id, room, update).await
    }

    async fn joined(&self, user: &UserRef, room: &str, seq: u64) -> PortResult<u64> {
        let seq = i64::try_from(seq).unwrap_or(i64::MAX);
        let (id, name) = (&*user.id, &*user.name);
        self.upsert(id, room, doc! {"$setOnInsert": {"user": id, "name": name, "room": room, "seq": seq}}).await
    }

    async fn read_pointers(&self, user_id: &str) -> PortResult<HashMap<String, u64>> {
        let docs: Vec<ReadDoc> = self
            .reads
            .find(doc! {"user": user_id})
            .await
            .map_err(unavailable)?
            .try_collect()
            .await
            .map_err(unavailable)?;
        Ok(docs.into_iter().map(|d| (d.room, d.seq.max(0) as u64)).collect())
    }

    async fn readers(&self, room: &str, limit: usize) -> PortResult<Vec<Reader>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let found =
            self.reads.find(doc! {"room": room}).sort(doc! {"seq": -1}).limit(limit).await.map_err(unavailable)?;
        let docs: Vec<ReadDoc> = found.try_collect().await.map_err(unavailable)?;
        let reader =
            |d: ReadDoc| Reader { user: UserRef { id: d.user.into(), name: d.name.into() }, seq: d.seq.max(0) as u64 };
        Ok(docs.into_iter().map(reader).collect())
    }
}
