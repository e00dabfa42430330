//! Embedded read pointers: `user id \0 room` → seq, and for receipts `room \0 user id` →
//! (name, seq), in the redb file, written in one transaction.

use async_trait::async_trait;
use redb::{ReadableTable, TableDefinition};
use std::collections::HashMap;

use super::store::{db_err, FileStore};
use crate::model::UserRef;
use crate::ports::PortResult;
use crate::reads::{ReadStore, Reader};

pub(super) const READS: TableDefinition<&str, u64> = TableDefinition::new("reads");
pub(super) const READERS: TableDefinition<&str, (&str, u64)> = TableDefinition::new("readers");

/// Sets the pointer of `user` in `room` to `seq` if `replace` says so given the old one;
/// returns the stored pointer.
fn store(
    db: &redb::Database,
    user: &UserRef,
    room: &str,
    seq: u64,
    replace: fn(Option<u64>, u64) -> bool,
) -> PortResult<u64> {
    let key = format!("{}\0{room}", user.id);
    let tx = db.begin_write().map_err(db_err)?;
    let stored = {
        let mut reads = tx.open_table(READS).map_err(db_err)?;
        let old = reads.get(key.as_str()).map_err(db_err)?.map(|v| v.value());
        if !replace(old, seq) {
            return Ok(old.unwrap_or(0));
        }
        reads.insert(key.as_str(), seq).map_err(db_err)?;
        let mut readers = tx.open_table(READERS).map_err(db_err)?;
        readers.insert(format!("{room}\0{}", user.id).as_str(), (&*user.name, seq)).map_err(db_err)?;
        seq
    };
    tx.commit().map_err(db_err)?;
    Ok(stored)
}

#[async_trait]
impl ReadStore for FileStore {
    async fn mark_read(&self, user: &UserRef, room: &str, seq: u64) -> PortResult<u64> {
        let (user, room) = (user.clone(), room.to_owned());
        self.blocking(move |db| store(db, &user, &room, seq, |old, seq| old.is_none_or(|old| seq > old))).await
    }

    async fn joined(&self, user: &UserRef, room: &str, seq: u64) -> PortResult<u64> {
        let key = format!("{}\0{room}", user.id);
        let found = self
            .blocking(move |db| {
                let tx = db.begin_read().map_err(db_err)?;
                let reads = tx.open_table(READS).map_err(db_err)?;
                Ok(reads.get(key.as_str()).map_err(db_err)?.map(|v| v.value()))
            })
            .await?;
        if let Some(found) = found {
            return Ok(found);
        }
        let (user, room) = (user.clone(), room.to_owned());
        self.blocking(move |db| store(db, &user, &room, seq, |old, _| old.is_none())).await
    }

    async fn read_pointers(&self, user_id: &str) -> PortResult<HashMap<String, u64>> {
        let (from, to) = (format!("{user_id}\0"), format!("{user_id}\u{1}"));
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(db_err)?;
            let reads = tx.open_table(READS).map_err(db_err)?;
            let mut out = HashMap::new();
            for entry in reads.range(from.as_str()..to.as_str()).map_err(db_err)? {
                let (k, v) = entry.map_err(db_err)?;
                if let Some((_, room)) = k.value().split_once('\0') {
                    out.insert(room.to_owned(), v.value());
                }
            }
            Ok(out)
        })
        .await
    }

    async fn readers(&self, room: &str, limit: usize) -> PortResult<Vec<Reader>> {
        let (from, to) = (format!("{room}\0"), format!("{room}\u{1}"));
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(db_err)?;
            let readers = tx.open_table(READERS).map_err(db_err)?;
            let mut out = Vec::new();
            for entry in readers.range(from.as_str()..to.as_str()).map_err(db_err)? {
                let (k, v) = entry.map_err(db_err)?;
                let (name, seq) = v.value();
                if let Some((_, id)) = k.value().split_once('\0') {
                    out.push(Reader { user: UserRef { id: id.into(), name: name.into() }, seq });
                }
            }
            out.sort_by_key(|r| std::cmp::Reverse(r.seq));
            out.truncate(limit);
            Ok(out)
        })
        .await
    }
}
