//! Room traffic to one connection: a batch of queued deliveries written with one flush,
//! with the gaps, resyncs and room re-checks the hub asks for.

use std::sync::Arc;

use aurora_core::events;
use aurora_core::protocol::{close, ServerFrame, MAX_SINCE_MESSAGES};

use super::session::{End, Session, Socket, MAX_BATCH};
use crate::hub::{Carries, Delivery};
use crate::metrics::SentKind;
use crate::outbox::Outbox;

impl Session {
    /// Writes a queued batch: the first delivery and whatever else is waiting, one flush.
    pub(super) async fn deliver(
        &mut self,
        socket: &mut Socket,
        outbox: &Outbox,
        first: Arc<Delivery>,
    ) -> Result<(), End> {
        let oldest = first.arrived;
        let mut next = Some(first);
        let mut count = 0usize;
        let mut written = 0u64;
        let mut by_kind = [0u64; 4];
        while let Some(d) = next.take() {
            let n = self.feed_delivery(socket, &d).await?;
            written += n;
            by_kind[d.kind as usize] += n;
            count += 1;
            if count < MAX_BATCH {
                next = outbox.try_next();
            }
        }
        self.flush(socket).await?;
        let metrics = &self.state.metrics;
        metrics.frames_delivered.inc_by(written);
        if written > 0 {
            // The batch's oldest frame: its wait bounds every other frame's in the batch.
            metrics.delivery_seconds.observe(oldest.elapsed().as_secs_f64());
        }
        for kind in [SentKind::Message, SentKind::Presence, SentKind::Typing, SentKind::Reply] {
            if by_kind[kind as usize] > 0 {
                metrics.sent(kind, by_kind[kind as usize]);
            }
        }
        Ok(())
    }

    /// Feeds one delivery, after any messages missing before it (gap backfill).
    async fn feed_delivery(&mut self, socket: &mut Socket, d: &Delivery) -> Result<u64, End> {
        if d.skip_user.as_ref().is_some_and(|u| *u == self.user.id) {
            return Ok(0);
        }
        match d.carries {
            Carries::User => {
                socket.framed(d.frame.clone());
                return Ok(1);
            }
            Carries::Disconnect => return Err(End::Close(close::DISCONNECTED, "disconnected by the server")),
            _ => {}
        }
        let Some(joined) = self.rooms.get_mut(&d.room) else { return Ok(0) };
        match d.carries {
            Carries::Resync => return Box::pin(self.catch_up(socket, &d.room)).await,
            Carries::Recheck => return Box::pin(self.recheck(socket, &d.room)).await,
            Carries::Kick => return Box::pin(self.taken_out(socket, &d.room, "kicked")).await,
            Carries::Room | Carries::User | Carries::Disconnect => {}
        }
        let mut written = 0;
        if let Some(seq) = d.seq {
            if seq <= joined.last_seq {
                return Ok(0);
            }
            let missing = seq - joined.last_seq - 1;
            if missing == 0 {
                joined.last_seq = seq;
            } else {
                let wanted = (missing as usize).min(MAX_SINCE_MESSAGES);
                tracing::warn!(room = %d.room, from = joined.last_seq, to = seq, "gap in room stream; backfilling");
                let last = joined.last_seq;
                let backfill = self.state.backend.messages.between(&d.room, last, seq, wanted).await;
                let mut backfill = backfill.unwrap_or_default();
                let store = self.state.backend.messages.clone();
                if let Err(e) = events::hydrate(store.as_ref(), &mut backfill).await {
                    tracing::warn!(room = %d.room, error = %e, "reply summaries not filled in");
                }
                for m in backfill {
                    socket.text(ServerFrame::record(&m).encode().into());
                    written += 1;
                }
                if let Some(joined) = self.rooms.get_mut(&d.room) {
                    joined.last_seq = seq;
                }
            }
        }
        socket.framed(d.frame.clone());
        Ok(written + 1)
    }

    /// Sends every stored message after the last one this client got.
    async fn catch_up(&mut self, socket: &mut Socket, room: &Arc<str>) -> Result<u64, End> {
        let Some(last) = self.rooms.get(room).map(|j| j.last_seq) else { return Ok(0) };
        self.state.metrics.resyncs.inc();
        let backend = &self.state.backend;
        let missed = match backend.messages.after(room, last, MAX_SINCE_MESSAGES).await {
            Ok((mut missed, _)) => {
                if let Err(e) = events::hydrate(backend.messages.as_ref(), &mut missed).await {
                    tracing::warn!(room = %room, error = %e, "reply summaries not filled in");
                }
                missed
            }
            Err(e) => {
                tracing::warn!(room = %room, error = %e, "resync failed");
                return Ok(0);
            }
        };
        let mut written = 0;
        for m in missed {
            if let Some(joined) = self.rooms.get_mut(room) {
                if m.seq <= joined.last_seq {
                    continue;
                }
                joined.last_seq = m.seq;
            }
            socket.text(ServerFrame::record(&m).encode().into());
            written += 1;
        }
        Ok(written)
    }

    /// Applies a changed room configuration; a user who may no longer be in the room
    /// (removed from a private room's members, or the room was deleted) leaves it with
    /// a `left` push carrying the reason, and gets nothing more from it.
    async fn recheck(&mut self, socket: &mut Socket, room: &Arc<str>) -> Result<u64, End> {
        let current = match self.state.rooms.get(room).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(room = %room, error = %e, "room re-check failed; keeping the old configuration");
                return Ok(0);
            }
        };
        let reason = match current {
            Some(config) if config.banned(&self.user.name, aurora_core::now_ms()).is_some() => "banned",
            Some(config) if config.admits(&self.user.name) => {
                if let Some(joined) = self.rooms.get_mut(room) {
                    joined.config = config;
                }
                return Ok(0);
            }
            Some(_) => "removed",
            None => "deleted",
        };
        self.taken_out(socket, room, reason).await
    }

    /// Leaves `room` (if joined) and tells the client why with a `left` push.
    async fn taken_out(&mut self, socket: &mut Socket, room: &str, reason: &str) -> Result<u64, End> {
        if self.rooms.remove(room).is_none() {
            return Ok(0);
        }
        self.part(room).await;
        tracing::info!(room = %room, user_id = %self.user.id, reason, "taken out of the room");
        let frame = ServerFrame::Left { reference: None, room, reason: Some(reason) }.encode();
        socket.text(frame.into());
        Ok(1)
    }
}
