//! `read`: how far the user has read a room (docs/protocol.md §3). The pointer is stored
//! (never lowered) and announced, so every connection of the user, on every gateway, gets
//! `read` and clears its badge.

use aurora_core::control::{Announcement, UserChange, UserOp};
use aurora_core::ports::RoomEvent;
use aurora_core::protocol::ServerFrame;

use super::session::{End, Session, Socket};

impl Session {
    pub(super) async fn read(
        &mut self,
        socket: &mut Socket,
        r: Option<&str>,
        room: String,
        seq: u64,
    ) -> Result<(), End> {
        let Some(joined) = self.rooms.get(room.as_str()) else { return self.not_joined(socket, r, &room).await };
        // Nothing past what this connection was sent can have been read.
        let seq = if joined.last_seq == u64::MAX { seq } else { seq.min(joined.last_seq) };
        let before = joined.read;
        let stored = if seq > before {
            match self.state.backend.reads.mark_read(&self.user, &room, seq).await {
                Ok(stored) => stored,
                Err(e) => return self.unavailable(socket, r, &room, e).await,
            }
        } else {
            before
        };
        let mut receipts = false;
        if let Some(joined) = self.rooms.get_mut(room.as_str()) {
            joined.read = joined.read.max(stored);
            receipts = joined.config.receipts();
        }
        if stored == seq && seq > before {
            if receipts {
                // Members hear it aggregated (`crate::receipts`).
                let frame = ServerFrame::Receipt { room: &room, user: &self.user, read: seq }.encode();
                let event = RoomEvent { seq: None, skip_user: None, frame: frame.into() };
                if let Err(e) = self.state.backend.bus.publish(&room, event).await {
                    tracing::warn!(room = %room, error = %e, "read receipt not published");
                }
            }
            let change = UserChange {
                room: Some(room.clone()),
                seq: Some(seq),
                ..UserChange::new(UserOp::Read, &*self.user.id)
            };
            if let Err(e) = self.state.backend.announcer.announce(Announcement::User(change)).await {
                // Stored: the user's other devices see it in their next room list.
                tracing::warn!(room = %room, error = %e, "read pointer not announced");
            }
        }
        match r {
            Some(reference) => {
                let frame = ServerFrame::Read { reference: Some(reference), room: &room, seq: stored };
                self.send(socket, frame.encode()).await
            }
            None => Ok(()),
        }
    }
}
