//! The embedded audit log: `room \0 at (20 digits) \0 id` → record, in the redb file.

use async_trait::async_trait;
use redb::TableDefinition;

use super::store::{db_err, decode, encode, FileStore};
use crate::audit::{AuditLog, AuditRecord};
use crate::ports::PortResult;

pub(super) const AUDIT: TableDefinition<&str, &[u8]> = TableDefinition::new("audit");

#[async_trait]
impl AuditLog for FileStore {
    async fn record(&self, entry: AuditRecord) -> PortResult<()> {
        let key = format!("{}\0{:020}\0{}", entry.room, entry.at.max(0), entry.id);
        let bytes = encode(&entry)?;
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(db_err)?;
            tx.open_table(AUDIT).map_err(db_err)?.insert(key.as_str(), bytes.as_slice()).map_err(db_err)?;
            tx.commit().map_err(db_err)
        })
        .await
    }

    async fn audit(&self, room: &str, limit: usize) -> PortResult<Vec<AuditRecord>> {
        let (from, to) = (format!("{room}\0"), format!("{room}\u{1}"));
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(db_err)?;
            let table = tx.open_table(AUDIT).map_err(db_err)?;
            let mut out = Vec::new();
            for entry in table.range(from.as_str()..to.as_str()).map_err(db_err)?.rev().take(limit) {
                let (_, v) = entry.map_err(db_err)?;
                out.push(decode(v.value())?);
            }
            Ok(out)
        })
        .await
    }
}
