//! Server API keys from `ChatApiKey` resources: MongoDB collection `api_keys`, one document
//! per resource (`_id` = `<namespace>/<name>`), written by the operator, read by gateways.

use async_trait::async_trait;
use futures_util::TryStreamExt;
use mongodb::bson::doc;
use mongodb::Collection;

use super::mongo::{unavailable, MongoStore};
use crate::apikeys::{ApiKeyStore, KeySpec};
use crate::ports::PortResult;

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct KeyDoc {
    #[serde(rename = "_id")]
    id: String,
    #[serde(flatten)]
    spec: KeySpec,
}

#[derive(Clone)]
pub struct MongoApiKeys {
    keys: Collection<KeyDoc>,
}

impl MongoApiKeys {
    pub fn new(store: &MongoStore) -> Self {
        MongoApiKeys { keys: store.database().collection("api_keys") }
    }

    /// Creates or replaces the key of the resource `id` (`namespace/name`).
    pub async fn put(&self, id: &str, spec: &KeySpec) -> PortResult<()> {
        let doc = KeyDoc { id: id.to_owned(), spec: spec.clone() };
        self.keys.replace_one(doc! {"_id": id}, doc).upsert(true).await.map_err(unavailable)?;
        Ok(())
    }

    /// Deletes the key of the resource `id`; false when there was none.
    pub async fn delete(&self, id: &str) -> PortResult<bool> {
        let gone = self.keys.delete_one(doc! {"_id": id}).await.map_err(unavailable)?;
        Ok(gone.deleted_count > 0)
    }
}

#[async_trait]
impl ApiKeyStore for MongoApiKeys {
    async fn api_keys(&self) -> PortResult<Vec<KeySpec>> {
        let docs: Vec<KeyDoc> = self
            .keys
            .find(doc! {})
            .sort(doc! {"_id": 1})
            .await
            .map_err(unavailable)?
            .try_collect()
            .await
            .map_err(unavailable)?;
        Ok(docs.into_iter().map(|d| d.spec).collect())
    }
}
