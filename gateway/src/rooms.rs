//! The room directory: room configuration read through a cache, kept current from
//! `aurora:control` announcements and a periodic re-read, and applied to joined
//! connections at once (config, access to private rooms, deletion).

use dashmap::DashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use aurora_core::control::{ControlSignal, UserChange, UserOp};
use aurora_core::model::Room;
use aurora_core::ports::{Backend, PortResult};
use aurora_core::protocol::ServerFrame;

use crate::blocks::Blocks;
use crate::hub::Hub;

pub struct RoomDirectory {
    cache: DashMap<String, Arc<Room>>,
    backend: Backend,
    hub: Arc<Hub>,
}

impl RoomDirectory {
    pub fn new(backend: Backend, hub: Arc<Hub>) -> Self {
        RoomDirectory { cache: DashMap::new(), backend, hub }
    }

    /// The room's configuration (from the cache when known).
    pub async fn get(&self, name: &str) -> PortResult<Option<Arc<Room>>> {
        if let Some(room) = self.cache.get(name) {
            return Ok(Some(room.clone()));
        }
        let found = self.backend.rooms.room(name).await?.map(Arc::new);
        if let Some(room) = &found {
            self.cache.insert(name.to_owned(), room.clone());
        }
        Ok(found)
    }

    /// The cached configuration, without a store lookup.
    pub fn cached(&self, name: &str) -> Option<Arc<Room>> {
        self.cache.get(name).map(|r| r.clone())
    }

    pub fn remember(&self, room: Room) {
        self.cache.insert(room.name.clone(), Arc::new(room));
    }

    /// Sets what the store says of `name` (`None`: deleted); connections in the room
    /// re-check their access when it changed.
    fn apply(&self, name: &str, room: Option<Room>) {
        let changed = match room {
            Some(room) => {
                let room = Arc::new(room);
                let old = self.cache.insert(name.to_owned(), room.clone());
                old.is_none_or(|o| *o != *room)
            }
            None => self.cache.remove(name).is_some() || self.hub.local_members(name) > 0,
        };
        if changed {
            tracing::info!(room = name, "room configuration changed");
            self.hub.recheck(name);
        }
    }

    /// Re-reads one room.
    pub async fn reload(&self, name: &str) -> PortResult<()> {
        let room = self.backend.rooms.room(name).await?;
        self.apply(name, room);
        Ok(())
    }

    /// Tells this gateway's connections of the user.
    fn notify(&self, change: &UserChange) {
        let frame = match (change.op, &change.room, change.seq) {
            (UserOp::Rooms, _, _) => ServerFrame::RoomsChanged.encode(),
            (UserOp::Read, Some(room), Some(seq)) => ServerFrame::Read { reference: None, room, seq }.encode(),
            (UserOp::Kick, Some(room), _) => {
                let told = self.hub.kick(&change.user, room);
                tracing::info!(user_id = %change.user, room = %room, connections = told, "kicked");
                return;
            }
            (UserOp::Disconnect, _, _) => {
                let told = self.hub.disconnect(&change.user);
                tracing::info!(user_id = %change.user, connections = told, "disconnected by the server API");
                return;
            }
            (UserOp::Read | UserOp::Kick | UserOp::Blocks, _, _) => return,
        };
        let told = self.hub.to_user(&change.user, frame.into());
        tracing::debug!(user_id = %change.user, op = ?change.op, connections = told, "user notice");
    }

    /// Re-reads every room; rooms gone from the store are dropped.
    pub async fn reload_all(&self) -> PortResult<()> {
        let rooms = self.backend.rooms.rooms().await?;
        let mut gone: std::collections::HashSet<String> = self.cache.iter().map(|e| e.key().clone()).collect();
        for room in rooms {
            gone.remove(&room.name);
            // Only rooms this gateway has looked at are cached; others load on demand.
            if self.cache.contains_key(&room.name) {
                let name = room.name.clone();
                self.apply(&name, Some(room));
            }
        }
        for name in gone {
            self.apply(&name, None);
        }
        Ok(())
    }
}

/// Applies announcements as they come (room changes, user notices, block list changes)
/// and re-reads every room each `every`, until `stop`.
pub async fn watch(
    (rooms, blocks, keys): (Arc<RoomDirectory>, Arc<Blocks>, mpsc::Sender<()>),
    mut control: mpsc::Receiver<ControlSignal>,
    every: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let result = tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => rooms.reload_all().await,
            signal = control.recv() => match signal {
                None => return,
                Some(ControlSignal::Resync) => {
                    let _ = keys.try_send(());
                    rooms.reload_all().await
                }
                Some(ControlSignal::Keys) => {
                    // Full: a reload is queued already.
                    let _ = keys.try_send(());
                    Ok(())
                }
                Some(ControlSignal::User(change)) => {
                    if change.op == UserOp::Blocks {
                        blocks.forget(&change.user);
                    }
                    rooms.notify(&change);
                    Ok(())
                }
                Some(ControlSignal::Room(change)) => {
                    tracing::debug!(room = %change.room, op = ?change.op, "room announcement");
                    rooms.reload(&change.room).await
                }
            },
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "room configuration not refreshed; retrying at the next tick");
        }
    }
}
