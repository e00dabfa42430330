//! The embedded file store (redb): users, rooms, messages, sessions and the generated JWT key.

use async_trait::async_trait;
use redb::{Database, ReadableTable, TableDefinition};
use std::path::Path;
use std::sync::Arc;

use super::users::{BLOCKS, USERS, USER_IDS};
use crate::model::{Message, Room, Visibility};
use crate::moderation::Moderation;
use crate::ports::{Dependency, FailureKind, MessageStore, NotReady, PortError, PortResult, Readiness, RoomStore};

const ROOMS: TableDefinition<&str, &[u8]> = TableDefinition::new("rooms");
const MESSAGES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("messages");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Message id → (room, seq): an id is stored once.
const MESSAGE_IDS: TableDefinition<&str, (&str, u64)> = TableDefinition::new("message_ids");
/// `room \0 user id \0 nonce` → (message id, ts): dedupe that survives a restart.
const NONCES: TableDefinition<&str, (&str, i64)> = TableDefinition::new("nonces");

fn nonce_key(room: &str, user_id: &str, nonce: &str) -> String {
    format!("{room}\0{user_id}\0{nonce}")
}

pub(super) fn db_err(e: impl Into<redb::Error>) -> PortError {
    let e = e.into();
    let kind = match &e {
        redb::Error::Io(_) => FailureKind::Connection,
        redb::Error::DatabaseAlreadyOpen | redb::Error::LockPoisoned(_) => FailureKind::Timeout,
        _ => FailureKind::Error,
    };
    PortError::unavailable(Dependency::Store, kind, e)
}

pub(super) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> PortResult<T> {
    serde_json::from_slice(bytes).map_err(PortError::corrupt)
}

pub(super) fn encode<T: serde::Serialize>(value: &T) -> PortResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(PortError::corrupt)
}

/// One redb file holding everything; cheap to clone.
#[derive(Clone)]
pub struct FileStore {
    db: Arc<Database>,
    inserts: Arc<std::sync::atomic::AtomicU64>,
}

/// Nonce entries older than the dedupe window are dropped every this many inserts.
const PRUNE_NONCES_EVERY: u64 = 1024;

impl FileStore {
    pub fn open(dir: &Path) -> PortResult<Self> {
        std::fs::create_dir_all(dir).map_err(|e| {
            PortError::unavailable(
                Dependency::Store,
                FailureKind::Error,
                format!("cannot create {}: {e}", dir.display()),
            )
        })?;
        let db = Database::create(dir.join("aurora.redb")).map_err(db_err)?;
        let tx = db.begin_write().map_err(db_err)?;
        {
            tx.open_table(USERS).map_err(db_err)?;
            tx.open_table(USER_IDS).map_err(db_err)?;
            tx.open_table(ROOMS).map_err(db_err)?;
            tx.open_table(MESSAGES).map_err(db_err)?;
            tx.open_table(META).map_err(db_err)?;
            tx.open_table(MESSAGE_IDS).map_err(db_err)?;
            tx.open_table(BLOCKS).map_err(db_err)?;
            tx.open_table(super::reads::READS).map_err(db_err)?;
            tx.open_table(super::reads::READERS).map_err(db_err)?;
            tx.open_table(super::audit::AUDIT).map_err(db_err)?;
            let mut nonces = tx.open_table(NONCES).map_err(db_err)?;
            prune_nonces(&mut nonces)?;
            let mut sessions = tx.open_table(super::sessions::SESSIONS).map_err(db_err)?;
            super::sessions::prune_sessions(&mut sessions)?;
        }
        tx.commit().map_err(db_err)?;
        Ok(FileStore { db: Arc::new(db), inserts: Arc::default() })
    }

    pub(super) async fn blocking<T, F>(&self, f: F) -> PortResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> PortResult<T> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db)).await.map_err(|_| PortError::Stopped("embedded store task"))?
    }

    /// The stored JWT key, created on first use.
    pub fn jwt_secret_or_generate(&self) -> PortResult<Vec<u8>> {
        let tx = self.db.begin_write().map_err(db_err)?;
        let secret = {
            let mut meta = tx.open_table(META).map_err(db_err)?;
            let existing = meta.get("jwt_secret").map_err(db_err)?.map(|v| v.value().to_vec());
            match existing {
                Some(s) => s,
                None => {
                    let s = crate::auth::generate_secret();
                    meta.insert("jwt_secret", s.as_slice()).map_err(db_err)?;
                    s
                }
            }
        };
        tx.commit().map_err(db_err)?;
        Ok(secret)
    }
}

fn put_room(db: &Database, room: &Room, only_if_absent: bool) -> PortResult<()> {
    let bytes = encode(room)?;
    let tx = db.begin_write().map_err(db_err)?;
    {
        let mut rooms = tx.open_table(ROOMS).map_err(db_err)?;
        if rooms.get(room.name.as_str()).map_err(db_err)?.is_some() {
            return if only_if_absent { Ok(()) } else { Err(PortError::Conflict) };
        }
        rooms.insert(room.name.as_str(), bytes.as_slice()).map_err(db_err)?;
    }
    tx.commit().map_err(db_err)
}

#[async_trait]
impl RoomStore for FileStore {
    async fn create_room(&self, room: Room) -> PortResult<()> {
        self.blocking(move |db| put_room(db, &room, false)).await
    }

    async fn ensure_room(&self, room: Room) -> PortResult<()> {
        self.blocking(move |db| put_room(db, &room, true)).await
    }

    async fn room(&self, name: &str) -> PortResult<Option<Room>> {
        let name = name.to_owned();
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(db_err)?;
            let rooms = tx.open_table(ROOMS).map_err(db_err)?;
            let found = rooms.get(name.as_str()).map_err(db_err)?;
            found.map(|v| decode(v.value())).transpose()
        })
        .await
    }

    async fn rooms(&self) -> PortResult<Vec<Room>> {
        self.blocking(|db| {
            let tx = db.begin_read().map_err(db_err)?;
            let rooms = tx.open_table(ROOMS).map_err(db_err)?;
            let mut out = Vec::new();
            for entry in rooms.iter().map_err(db_err)? {
                let (_, v) = entry.map_err(db_err)?;
                out.push(decode(v.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn set_moderation(&self, room: &str, moderation: &Moderation, expected_rev: u64) -> PortResult<bool> {
        let (name, mut moderation) = (room.to_owned(), moderation.clone());
        moderation.rev = expected_rev + 1;
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(db_err)?;
            {
                let mut rooms = tx.open_table(ROOMS).map_err(db_err)?;
                let found = rooms.get(name.as_str()).map_err(db_err)?.map(|v| decode::<Room>(v.value())).transpose()?;
                let Some(mut room) = found.filter(|r| r.moderation.rev == expected_rev) else { return Ok(false) };
                room.moderation = moderation;
                rooms.insert(name.as_str(), encode(&room)?.as_slice()).map_err(db_err)?;
            }
            tx.commit().map_err(db_err)?;
            Ok(true)
        })
        .await
    }

    async fn remove_member(&self, room: &str, username: &str) -> PortResult<bool> {
        self.change_members(room, username, false).await
    }

    async fn add_member(&self, room: &str, username: &str) -> PortResult<bool> {
        self.change_members(room, username, true).await
    }

    async fn update_room(&self, name: &str, title: Option<&str>, visibility: Option<Visibility>) -> PortResult<bool> {
        let (name, title) = (name.to_owned(), title.map(str::to_owned));
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(db_err)?;
            {
                let mut rooms = tx.open_table(ROOMS).map_err(db_err)?;
                let found = rooms.get(name.as_str()).map_err(db_err)?.map(|v| decode::<Room>(v.value())).transpose()?;
                let Some(mut room) = found else { return Ok(false) };
                if let Some(t) = title {
                    room.title = t;
                }
                if let Some(v) = visibility {
                    room.visibility = v;
                }
                rooms.insert(name.as_str(), encode(&room)?.as_slice()).map_err(db_err)?;
            }
            tx.commit().map_err(db_err)?;
            Ok(true)
        })
        .await
    }

    async fn drop_room(&self, name: &str) -> PortResult<bool> {
        let name = name.to_owned();
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(db_err)?;
            let existed = {
                let mut rooms = tx.open_table(ROOMS).map_err(db_err)?;
                let existed = rooms.remove(name.as_str()).map_err(db_err)?.is_some();
                let mut messages = tx.open_table(MESSAGES).map_err(db_err)?;
                let mut stored = Vec::new();
                for entry in messages.range((name.as_str(), 0)..=(name.as_str(), u64::MAX)).map_err(db_err)? {
                    let m: Message = decode(entry.map_err(db_err)?.1.value())?;
                    stored.push((m.seq, m.id));
                }
                let mut ids = tx.open_table(MESSAGE_IDS).map_err(db_err)?;
                for (seq, id) in stored {
                    messages.remove((name.as_str(), seq)).map_err(db_err)?;
                    ids.remove(id.as_str()).map_err(db_err)?;
                }
                existed
            };
            tx.commit().map_err(db_err)?;
            Ok(existed)
        })
        .await
    }
}

impl FileStore {
    async fn change_members(&self, room: &str, username: &str, add: bool) -> PortResult<bool> {
        let (name, user) = (room.to_owned(), username.to_lowercase());
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(db_err)?;
            let removed = {
                let mut rooms = tx.open_table(ROOMS).map_err(db_err)?;
                let found = rooms.get(name.as_str()).map_err(db_err)?.map(|v| decode::<Room>(v.value())).transpose()?;
                let Some(mut room) = found else { return Ok(false) };
                let before = room.members.len();
                if add && !room.members.contains(&user) {
                    room.members.push(user);
                } else if !add {
                    room.members.retain(|m| *m != user);
                }
                if room.members.len() == before {
                    return Ok(false);
                }
                rooms.insert(name.as_str(), encode(&room)?.as_slice()).map_err(db_err)?;
                true
            };
            tx.commit().map_err(db_err)?;
            Ok(removed)
        })
        .await
    }
}

/// Drops nonce entries older than the dedupe window.
fn prune_nonces(nonces: &mut redb::Table<&str, (&str, i64)>) -> PortResult<()> {
    let oldest = crate::now_ms() - super::NONCE_TTL.as_millis() as i64;
    nonces.retain(|_, (_, ts)| ts >= oldest).map_err(db_err)
}

#[async_trait]
impl MessageStore for FileStore {
    async fn last_seq(&self, room: &str) -> PortResult<u64> {
        let room = room.to_owned();
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(db_err)?;
            let messages = tx.open_table(MESSAGES).map_err(db_err)?;
            let mut range = messages.range((room.as_str(), 0)..=(room.as_str(), u64::MAX)).map_err(db_err)?;
            match range.next_back() {
                Some(entry) => Ok(entry.map_err(db_err)?.0.value().1),
                None => Ok(0),
            }
        })
        .await
    }

    async fn insert(&self, batch: &[Message]) -> PortResult<()> {
        self.commit(batch, &[]).await
    }

    async fn update(&self, changed: &[Message]) -> PortResult<()> {
        self.commit(&[], changed).await
    }

    /// Stores a batch and its events' changes in one transaction. An id stored under
    /// another `(room, seq)`, or a `(room, seq)` taken by another id, is a
    /// [`PortError::Conflict`] and nothing is stored. A changed message replaces the stored
    /// one (a deleted message's body is gone from the file once redb reuses the page).
    async fn commit(&self, fresh: &[Message], changed: &[Message]) -> PortResult<()> {
        let encoded: Vec<(Message, Vec<u8>)> =
            fresh.iter().map(|m| Ok((m.clone(), encode(m)?))).collect::<PortResult<_>>()?;
        let changed: Vec<(Message, Vec<u8>)> =
            changed.iter().map(|m| Ok((m.clone(), encode(m)?))).collect::<PortResult<_>>()?;
        let prune = self.inserts.fetch_add(1, std::sync::atomic::Ordering::Relaxed).is_multiple_of(PRUNE_NONCES_EVERY);
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(db_err)?;
            {
                let mut messages = tx.open_table(MESSAGES).map_err(db_err)?;
                let mut ids = tx.open_table(MESSAGE_IDS).map_err(db_err)?;
                let mut nonces = tx.open_table(NONCES).map_err(db_err)?;
                for (m, bytes) in &changed {
                    let Some(at) = ids.get(m.id.as_str()).map_err(db_err)?.map(|v| v.value().1) else { continue };
                    messages.insert((m.room.as_str(), at), bytes.as_slice()).map_err(db_err)?;
                }
                for (m, bytes) in &encoded {
                    let at = (m.room.as_str(), m.seq);
                    if let Some(stored) = ids.get(m.id.as_str()).map_err(db_err)? {
                        let (room, seq) = stored.value();
                        if (room, seq) == at {
                            continue;
                        }
                        return Err(PortError::Conflict);
                    }
                    if messages.get(at).map_err(db_err)?.is_some() {
                        return Err(PortError::Conflict);
                    }
                    messages.insert(at, bytes.as_slice()).map_err(db_err)?;
                    ids.insert(m.id.as_str(), at).map_err(db_err)?;
                    if let Some(nonce) = &m.nonce {
                        let key = nonce_key(&m.room, &m.user.id, nonce);
                        nonces.insert(key.as_str(), (m.id.as_str(), m.ts)).map_err(db_err)?;
                    }
                }
                if prune {
                    prune_nonces(&mut nonces)?;
                }
            }
            tx.commit().map_err(db_err)
        })
        .await
    }

    async fn existing(&self, ids: &[String]) -> PortResult<std::collections::HashMap<String, Message>> {
        let ids = ids.to_vec();
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(db_err)?;
            let messages = tx.open_table(MESSAGES).map_err(db_err)?;
            let index = tx.open_table(MESSAGE_IDS).map_err(db_err)?;
            let mut found = std::collections::HashMap::new();
            for id in ids {
                let Some(at) = index.get(id.as_str()).map_err(db_err)? else { continue };
                if let Some(bytes) = messages.get(at.value()).map_err(db_err)? {
                    found.insert(id, decode(bytes.value())?);
                }
            }
            Ok(found)
        })
        .await
    }

    async fn id_by_nonce(&self, room: &str, user_id: &str, nonce: &str, since_ms: i64) -> PortResult<Option<String>> {
        let key = nonce_key(room, user_id, nonce);
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(db_err)?;
            let nonces = tx.open_table(NONCES).map_err(db_err)?;
            let found = nonces.get(key.as_str()).map_err(db_err)?.map(|v| {
                let (id, ts) = v.value();
                (id.to_owned(), ts)
            });
            Ok(found.filter(|(_, ts)| *ts >= since_ms).map(|(id, _)| id))
        })
        .await
    }

    async fn before(&self, room: &str, before: Option<u64>, limit: usize) -> PortResult<Vec<Message>> {
        let room = room.to_owned();
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(db_err)?;
            let messages = tx.open_table(MESSAGES).map_err(db_err)?;
            let end = before.unwrap_or(u64::MAX);
            let mut out = Vec::with_capacity(limit.min(128));
            for entry in messages.range((room.as_str(), 0)..(room.as_str(), end)).map_err(db_err)?.rev() {
                if out.len() == limit {
                    break;
                }
                let m: Message = decode(entry.map_err(db_err)?.1.value())?;
                // Messages (stored in their current state) and notices, not the events that changed them.
                if m.kind.in_history() {
                    out.push(m);
                }
            }
            out.reverse();
            Ok(out)
        })
        .await
    }

    async fn between(&self, room: &str, after: u64, before: u64, limit: usize) -> PortResult<Vec<Message>> {
        let room = room.to_owned();
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(db_err)?;
            let messages = tx.open_table(MESSAGES).map_err(db_err)?;
            let range =
                messages.range((room.as_str(), after.saturating_add(1))..(room.as_str(), before)).map_err(db_err)?;
            range.take(limit).map(|entry| decode(entry.map_err(db_err)?.1.value())).collect()
        })
        .await
    }

    async fn after(&self, room: &str, after: u64, limit: usize) -> PortResult<(Vec<Message>, bool)> {
        let room = room.to_owned();
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(db_err)?;
            let messages = tx.open_table(MESSAGES).map_err(db_err)?;
            let start = after.saturating_add(1);
            let mut out = Vec::with_capacity(limit.min(128));
            let mut range = messages.range((room.as_str(), start)..=(room.as_str(), u64::MAX)).map_err(db_err)?;
            let mut truncated = false;
            while let Some(entry) = range.next_back() {
                if out.len() == limit {
                    truncated = true;
                    break;
                }
                out.push(decode(entry.map_err(db_err)?.1.value())?);
            }
            out.reverse();
            Ok((out, truncated))
        })
        .await
    }
}

#[async_trait]
impl Readiness for FileStore {
    fn dependencies(&self) -> &'static [Dependency] {
        &[Dependency::Store]
    }

    async fn check(&self) -> Vec<NotReady> {
        match self.blocking(|db| db.begin_read().map(|_| ()).map_err(db_err)).await {
            Ok(()) => Vec::new(),
            Err(e) => vec![NotReady { dependency: Dependency::Store, cause: e.into() }],
        }
    }
}
