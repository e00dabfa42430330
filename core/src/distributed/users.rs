//! MongoDB `users` and `blocks` (database `aurora`).

use async_trait::async_trait;
use futures_util::TryStreamExt;
use mongodb::bson::doc;
use serde::{Deserialize, Serialize};

use super::mongo::{is_duplicate, unavailable, MongoStore};
use crate::model::UserRecord;
use crate::ports::{PortError, PortResult, UserStore};

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct UserDoc {
    #[serde(rename = "_id")]
    id: String,
    name: String,
    name_lower: String,
    password_hash: String,
    created_at: i64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    deactivated: bool,
}

/// `blocks`: one document per (user, blocked user), `_id` = `user:blocked`.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct BlockDoc {
    #[serde(rename = "_id")]
    id: String,
    user: String,
    blocked: String,
    at: i64,
}

#[async_trait]
impl UserStore for MongoStore {
    async fn create_user(&self, user: UserRecord) -> PortResult<()> {
        let doc = UserDoc {
            name_lower: user.name.to_lowercase(),
            id: user.id,
            name: user.name,
            password_hash: user.password_hash,
            created_at: user.created_at,
            deactivated: user.deactivated,
        };
        match self.users.insert_one(doc).await {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate(&e) => Err(PortError::Conflict),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn user_by_name(&self, name: &str) -> PortResult<Option<UserRecord>> {
        let found = self.users.find_one(doc! {"name_lower": name.to_lowercase()}).await.map_err(unavailable)?;
        Ok(found.map(user_record))
    }

    async fn user_by_id(&self, id: &str) -> PortResult<Option<UserRecord>> {
        let found = self.users.find_one(doc! {"_id": id}).await.map_err(unavailable)?;
        Ok(found.map(user_record))
    }

    async fn set_deactivated(&self, user_id: &str, deactivated: bool) -> PortResult<bool> {
        let update = doc! {"$set": {"deactivated": deactivated}};
        let result = self.users.update_one(doc! {"_id": user_id}, update).await.map_err(unavailable)?;
        Ok(result.matched_count > 0)
    }

    async fn set_blocked(&self, user_id: &str, other_id: &str, blocked: bool) -> PortResult<()> {
        let id = format!("{user_id}:{other_id}");
        if blocked {
            let doc = BlockDoc { id: id.clone(), user: user_id.into(), blocked: other_id.into(), at: crate::now_ms() };
            self.blocks.replace_one(doc! {"_id": &id}, doc).upsert(true).await.map_err(unavailable)?;
        } else {
            self.blocks.delete_one(doc! {"_id": &id}).await.map_err(unavailable)?;
        }
        Ok(())
    }

    async fn blocked(&self, user_id: &str) -> PortResult<Vec<String>> {
        let docs: Vec<BlockDoc> = self
            .blocks
            .find(doc! {"user": user_id})
            .await
            .map_err(unavailable)?
            .try_collect()
            .await
            .map_err(unavailable)?;
        Ok(docs.into_iter().map(|d| d.blocked).collect())
    }
}

fn user_record(d: UserDoc) -> UserRecord {
    UserRecord {
        id: d.id,
        name: d.name,
        password_hash: d.password_hash,
        created_at: d.created_at,
        deactivated: d.deactivated,
    }
}
