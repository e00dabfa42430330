//! Embedded sessions (in the redb file, so a restart keeps everyone signed in) and
//! tickets (in memory: they live 30 s).

use async_trait::async_trait;
use dashmap::DashMap;
use redb::{ReadableTable, TableDefinition};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

use super::store::{db_err, decode, encode, FileStore};
use crate::ports::PortResult;
use crate::sessions::{Rotation, SessionRecord, SessionStore, Ticket, TicketStore};

/// Session id → [`SessionRecord`] as JSON.
pub(super) const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");

/// Drops sessions that ended more than a day ago.
pub(super) fn prune_sessions(table: &mut redb::Table<&str, &[u8]>) -> PortResult<()> {
    let horizon = crate::now_ms() - 24 * 3600 * 1000;
    table
        .retain(|_, bytes| decode::<SessionRecord>(bytes).map(|s| s.expires_at > horizon).unwrap_or(false))
        .map_err(db_err)
}

#[async_trait]
impl SessionStore for FileStore {
    async fn create_session(&self, session: SessionRecord) -> PortResult<()> {
        let bytes = encode(&session)?;
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(db_err)?;
            tx.open_table(SESSIONS).map_err(db_err)?.insert(session.id.as_str(), bytes.as_slice()).map_err(db_err)?;
            tx.commit().map_err(db_err)
        })
        .await
    }

    async fn rotate_session(&self, id: &str, presented: &str, next: &str, now_ms: i64) -> PortResult<Rotation> {
        let (id, presented, next) = (id.to_owned(), presented.to_owned(), next.to_owned());
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(db_err)?;
            let outcome = {
                let mut table = tx.open_table(SESSIONS).map_err(db_err)?;
                let found = table.get(id.as_str()).map_err(db_err)?.map(|v| decode::<SessionRecord>(v.value()));
                let mut session = match found {
                    Some(s) => s?,
                    None => return Ok(Rotation::Ended),
                };
                if !session.live(now_ms) {
                    return Ok(Rotation::Ended);
                }
                let outcome = if session.secret_hash == presented {
                    session.secret_hash = next;
                    Rotation::Rotated(session.clone())
                } else {
                    session.revoked = true;
                    Rotation::Reused
                };
                table.insert(id.as_str(), encode(&session)?.as_slice()).map_err(db_err)?;
                outcome
            };
            tx.commit().map_err(db_err)?;
            Ok(outcome)
        })
        .await
    }

    async fn revoke_session(&self, id: &str) -> PortResult<bool> {
        let id = id.to_owned();
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(db_err)?;
            let was_live = {
                let mut table = tx.open_table(SESSIONS).map_err(db_err)?;
                let found = table.get(id.as_str()).map_err(db_err)?.map(|v| decode::<SessionRecord>(v.value()));
                match found {
                    Some(s) => {
                        let mut session = s?;
                        let was_live = session.live(crate::now_ms());
                        session.revoked = true;
                        table.insert(id.as_str(), encode(&session)?.as_slice()).map_err(db_err)?;
                        was_live
                    }
                    None => false,
                }
            };
            tx.commit().map_err(db_err)?;
            Ok(was_live)
        })
        .await
    }

    async fn session(&self, id: &str) -> PortResult<Option<SessionRecord>> {
        let id = id.to_owned();
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(db_err)?;
            let table = tx.open_table(SESSIONS).map_err(db_err)?;
            let found = table.get(id.as_str()).map_err(db_err)?;
            found.map(|v| decode(v.value())).transpose()
        })
        .await
    }
}

const SWEEP_EVERY: u64 = 256;

/// Tickets of this process; expired ones are swept every few hundred issues.
#[derive(Default)]
pub struct MemoryTickets {
    tickets: DashMap<String, (Ticket, Instant)>,
    issued: AtomicU64,
}

#[async_trait]
impl TicketStore for MemoryTickets {
    async fn issue_ticket(&self, hash: &str, ticket: &Ticket, ttl: Duration) -> PortResult<()> {
        let now = Instant::now();
        if self.issued.fetch_add(1, Ordering::Relaxed).is_multiple_of(SWEEP_EVERY) {
            self.tickets.retain(|_, (_, until)| *until > now);
        }
        self.tickets.insert(hash.to_owned(), (ticket.clone(), now + ttl));
        Ok(())
    }

    async fn redeem_ticket(&self, hash: &str) -> PortResult<Option<Ticket>> {
        let now = Instant::now();
        Ok(self.tickets.remove(hash).filter(|(_, (_, until))| *until > now).map(|(_, (t, _))| t))
    }
}
