//! The embedded file store's users and blocks (redb tables `users`, `user_ids`, `blocks`).

use async_trait::async_trait;
use redb::{ReadableTable, TableDefinition};

use super::store::{db_err, decode, encode, FileStore};
use crate::model::UserRecord;
use crate::ports::{PortError, PortResult, UserStore};

/// Lower-cased user name → the user's record.
pub(super) const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
/// User id → lower-cased user name.
pub(super) const USER_IDS: TableDefinition<&str, &str> = TableDefinition::new("user_ids");
/// `user id \0 blocked user id` → when: who blocks whom.
pub(super) const BLOCKS: TableDefinition<&str, i64> = TableDefinition::new("blocks");

#[async_trait]
impl UserStore for FileStore {
    async fn create_user(&self, user: UserRecord) -> PortResult<()> {
        self.blocking(move |db| {
            let key = user.name.to_lowercase();
            let bytes = encode(&user)?;
            let tx = db.begin_write().map_err(db_err)?;
            {
                let mut users = tx.open_table(USERS).map_err(db_err)?;
                if users.get(key.as_str()).map_err(db_err)?.is_some() {
                    return Err(PortError::Conflict);
                }
                users.insert(key.as_str(), bytes.as_slice()).map_err(db_err)?;
                let mut ids = tx.open_table(USER_IDS).map_err(db_err)?;
                ids.insert(user.id.as_str(), key.as_str()).map_err(db_err)?;
            }
            tx.commit().map_err(db_err)
        })
        .await
    }

    async fn user_by_name(&self, name: &str) -> PortResult<Option<UserRecord>> {
        let key = name.to_lowercase();
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(db_err)?;
            let users = tx.open_table(USERS).map_err(db_err)?;
            let found = users.get(key.as_str()).map_err(db_err)?;
            found.map(|v| decode(v.value())).transpose()
        })
        .await
    }

    async fn set_deactivated(&self, user_id: &str, deactivated: bool) -> PortResult<bool> {
        let id = user_id.to_owned();
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(db_err)?;
            let found = {
                let ids = tx.open_table(USER_IDS).map_err(db_err)?;
                let name = ids.get(id.as_str()).map_err(db_err)?.map(|v| v.value().to_owned());
                let Some(name) = name else { return Ok(false) };
                let mut users = tx.open_table(USERS).map_err(db_err)?;
                let user = users.get(name.as_str()).map_err(db_err)?.map(|v| decode::<UserRecord>(v.value()));
                let Some(mut user) = user.transpose()? else { return Ok(false) };
                user.deactivated = deactivated;
                users.insert(name.as_str(), encode(&user)?.as_slice()).map_err(db_err)?;
                true
            };
            tx.commit().map_err(db_err)?;
            Ok(found)
        })
        .await
    }

    async fn set_blocked(&self, user_id: &str, other_id: &str, blocked: bool) -> PortResult<()> {
        let key = format!("{user_id}\0{other_id}");
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(db_err)?;
            {
                let mut blocks = tx.open_table(BLOCKS).map_err(db_err)?;
                if blocked {
                    blocks.insert(key.as_str(), crate::now_ms()).map_err(db_err)?;
                } else {
                    blocks.remove(key.as_str()).map_err(db_err)?;
                }
            }
            tx.commit().map_err(db_err)
        })
        .await
    }

    async fn blocked(&self, user_id: &str) -> PortResult<Vec<String>> {
        let (from, to) = (format!("{user_id}\0"), format!("{user_id}\u{1}"));
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(db_err)?;
            let blocks = tx.open_table(BLOCKS).map_err(db_err)?;
            let mut out = Vec::new();
            for entry in blocks.range(from.as_str()..to.as_str()).map_err(db_err)? {
                let (key, _) = entry.map_err(db_err)?;
                out.extend(key.value().split_once('\0').map(|(_, other)| other.to_owned()));
            }
            Ok(out)
        })
        .await
    }

    async fn user_by_id(&self, id: &str) -> PortResult<Option<UserRecord>> {
        let id = id.to_owned();
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(db_err)?;
            let ids = tx.open_table(USER_IDS).map_err(db_err)?;
            let Some(name) = ids.get(id.as_str()).map_err(db_err)?.map(|v| v.value().to_owned()) else {
                return Ok(None);
            };
            let users = tx.open_table(USERS).map_err(db_err)?;
            let found = users.get(name.as_str()).map_err(db_err)?;
            found.map(|v| decode(v.value())).transpose()
        })
        .await
    }
}
