//! The local hub: which connections of this gateway are in which room and whose they
//! are, and delivery of bus traffic and user notices to them without blocking.

use bytes::Bytes;
use dashmap::DashMap;
use std::collections::HashMap;
use std::sync::Arc;

use aurora_core::ports::{Bus, BusSink, ConnId, PortResult, RoomEvent};

use crate::metrics::SentKind;
use crate::outbox::{Offer, Outbox};

/// What a [`Delivery`] asks of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carries {
    /// Room traffic: write the frame if the connection is in the room.
    Room,
    /// No frame: traffic may have been lost; compare `last_seq` with the store.
    Resync,
    /// No frame: the room's configuration changed; check access and apply it.
    Recheck,
    /// A frame for the user, not of a room (`room` is empty): write it.
    User,
    /// No frame: a moderator kicked the user out of `room`.
    Kick,
    /// No frame: the server API disconnected the user; close the connection.
    Disconnect,
}

/// One frame for one room (or one user), shared by every local recipient.
#[derive(Debug)]
pub struct Delivery {
    pub room: Arc<str>,
    pub carries: Carries,
    pub seq: Option<u64>,
    pub skip_user: Option<Arc<str>>,
    /// The serialized frame (UTF-8 JSON) as a whole WebSocket text frame
    /// ([`crate::ws::text_frame`]), shared by every recipient.
    pub frame: Bytes,
    pub kind: crate::metrics::SentKind,
    /// When the frame reached this gateway (for `aurora_delivery_seconds`).
    pub arrived: std::time::Instant,
}

/// How the hub reaches a connection: its bounded outbound queue (overflowing it closes the
/// session with 4008).
pub type ConnHandle = Arc<Outbox>;

pub struct Hub {
    rooms: DashMap<Arc<str>, HashMap<ConnId, ConnHandle>>,
    /// Connections by user id.
    users: DashMap<Arc<str>, HashMap<ConnId, ConnHandle>>,
    receipts: crate::receipts::Pending,
    bus: Arc<dyn Bus>,
    overflows: prometheus::IntCounter,
}

impl Hub {
    pub fn new(bus: Arc<dyn Bus>, overflows: prometheus::IntCounter) -> Arc<Self> {
        let hub = Arc::new(Hub {
            rooms: DashMap::new(),
            users: DashMap::new(),
            receipts: Default::default(),
            bus: bus.clone(),
            overflows,
        });
        bus.attach(hub.clone());
        hub
    }

    /// Adds a local member; the first one subscribes this gateway to the room. Returns the
    /// room's name as the hub holds it, which every [`Delivery::room`] shares: a session
    /// keyed by it finds its room by pointer, and keeps no copy of the name.
    pub async fn join(&self, room: &str, conn: ConnId, handle: ConnHandle) -> PortResult<Arc<str>> {
        let (name, first) = {
            let mut members = self.rooms.entry(room.into()).or_default();
            let first = members.is_empty();
            members.insert(conn, handle);
            (members.key().clone(), first)
        };
        if first {
            if let Err(e) = self.bus.subscribe(room).await {
                self.remove(room, conn);
                return Err(e);
            }
        }
        Ok(name)
    }

    /// Removes a local member; the last one unsubscribes.
    pub async fn leave(&self, room: &str, conn: ConnId) {
        if self.remove(room, conn) {
            if let Err(e) = self.bus.unsubscribe(room).await {
                tracing::warn!(room, error = %e, "unsubscribe failed");
            }
        }
    }

    /// Returns true when the room has no local members left.
    fn remove(&self, room: &str, conn: ConnId) -> bool {
        let empty = match self.rooms.get_mut(room) {
            Some(mut members) => {
                members.remove(&conn);
                members.is_empty()
            }
            None => false,
        };
        empty && self.rooms.remove_if(room, |_, m| m.is_empty()).is_some()
    }

    pub fn local_members(&self, room: &str) -> usize {
        self.rooms.get(room).map(|m| m.len()).unwrap_or(0)
    }

    /// Tells every local member of `room` that its configuration changed.
    pub fn recheck(&self, room: &str) {
        self.signal(room, Carries::Recheck);
    }

    /// Queues a frameless notice (resync or recheck) to every local member of `room`.
    fn signal(&self, room: &str, carries: Carries) {
        let Some(members) = self.rooms.get(room) else { return };
        let kind = if carries == Carries::Resync { SentKind::Message } else { SentKind::Reply };
        let delivery = Arc::new(Delivery {
            room: members.key().clone(),
            carries,
            seq: None,
            skip_user: None,
            frame: Bytes::new(),
            kind,
            arrived: std::time::Instant::now(),
        });
        for handle in members.values() {
            self.offer(handle, &delivery);
        }
    }

    /// Registers a connection of `user` (a user id) for [`Hub::to_user`].
    pub fn attach_user(&self, user: &str, conn: ConnId, handle: ConnHandle) {
        self.users.entry(user.into()).or_default().insert(conn, handle);
    }

    pub fn detach_user(&self, user: &str, conn: ConnId) {
        if let Some(mut conns) = self.users.get_mut(user) {
            conns.remove(&conn);
        }
        self.users.remove_if(user, |_, conns| conns.is_empty());
    }

    /// Sends each room's receipts heard since the last flush to its local members, one frame
    /// per room, every `every`, until `stop`.
    pub async fn flush_receipts(
        self: Arc<Self>,
        every: std::time::Duration,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            for (room, readers) in self.receipts.take() {
                let Some(members) = self.rooms.get(&room) else { continue };
                let frame = aurora_core::protocol::ServerFrame::Receipts { room: &room, readers: &readers }.encode();
                let delivery = Arc::new(Delivery {
                    room: members.key().clone(),
                    carries: Carries::Room,
                    seq: None,
                    skip_user: None,
                    frame: crate::ws::text_frame(frame.as_bytes()),
                    kind: SentKind::Presence,
                    arrived: std::time::Instant::now(),
                });
                for handle in members.values() {
                    self.offer(handle, &delivery);
                }
            }
        }
    }

    /// Takes every local connection of `user` out of `room`; returns how many were told.
    pub fn kick(&self, user: &str, room: &str) -> usize {
        self.signal_user(user, room, Carries::Kick)
    }

    /// Closes every local connection of `user`; returns how many.
    pub fn disconnect(&self, user: &str) -> usize {
        self.signal_user(user, "", Carries::Disconnect)
    }

    fn signal_user(&self, user: &str, room: &str, carries: Carries) -> usize {
        let Some(conns) = self.users.get(user) else { return 0 };
        let delivery = Arc::new(Delivery {
            room: Arc::from(room),
            carries,
            seq: None,
            skip_user: None,
            frame: Bytes::new(),
            kind: SentKind::Reply,
            arrived: std::time::Instant::now(),
        });
        for handle in conns.values() {
            self.offer(handle, &delivery);
        }
        conns.len()
    }

    /// Queues `frame` to every local connection of `user`; returns how many.
    pub fn to_user(&self, user: &str, frame: Bytes) -> usize {
        let Some(conns) = self.users.get(user) else { return 0 };
        let delivery = Arc::new(Delivery {
            room: Arc::from(""),
            carries: Carries::User,
            seq: None,
            skip_user: None,
            frame: crate::ws::text_frame(&frame),
            kind: SentKind::Reply,
            arrived: std::time::Instant::now(),
        });
        for handle in conns.values() {
            self.offer(handle, &delivery);
        }
        conns.len()
    }
}

impl Hub {
    fn offer(&self, handle: &ConnHandle, delivery: &Arc<Delivery>) {
        if handle.offer(delivery) == Offer::Overflowed {
            self.overflows.inc();
        }
    }
}

impl BusSink for Hub {
    fn resync(&self, room: &str) {
        self.signal(room, Carries::Resync);
    }

    fn deliver(&self, room: &str, event: RoomEvent) {
        let Some(members) = self.rooms.get(room) else { return };
        if let Err(e) = std::str::from_utf8(&event.frame) {
            tracing::error!(room, error = %e, "dropping a non-UTF-8 room frame");
            return;
        }
        let frame = event.frame;
        if event.seq.is_none() && frame.starts_with(br#"{"type":"receipt""#) {
            self.receipts.add(members.key(), &frame);
            return;
        }
        let kind = if event.seq.is_some() {
            SentKind::Message
        } else if frame.starts_with(br#"{"type":"typing""#) {
            SentKind::Typing
        } else {
            SentKind::Presence
        };
        let delivery = Arc::new(Delivery {
            room: members.key().clone(),
            carries: Carries::Room,
            seq: event.seq,
            skip_user: event.skip_user,
            frame: crate::ws::text_frame(&frame),
            kind,
            arrived: std::time::Instant::now(),
        });
        for handle in members.values() {
            self.offer(handle, &delivery);
        }
    }
}
