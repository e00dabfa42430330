//! What a room's moderation holds back before a record is admitted (docs/moderation.md):
//! a mute, a frozen room, slow mode. Moderators and the owner are held back by none.

use std::time::Duration;

use aurora_core::model::{Kind, Room, Submission};
use aurora_core::moderation::Role;
use aurora_core::protocol::{ErrorCode, ServerFrame};
use aurora_core::ratelimit::{Decision, RateLimit};

use super::session::{End, Session, Socket};

impl Session {
    /// `Some` (the refusal sent) when the room's moderation refuses `sub`.
    pub(super) async fn held_back(
        &mut self,
        socket: &mut Socket,
        r: Option<&str>,
        sub: &Submission,
        config: &Room,
    ) -> Option<Result<(), End>> {
        if config.role(&self.user.id, &self.user.name) >= Role::Moderator {
            return None;
        }
        let now = aurora_core::now_ms();
        if let Some(mute) = config.muted(&self.user.name, now) {
            let msg = match mute.until {
                Some(until) => format!("you are muted in this room for another {} s", (until - now).max(1000) / 1000),
                None => "you are muted in this room".to_owned(),
            };
            let retry_after_ms = mute.until.map(|u| (u - now).max(1) as u64);
            let frame = ServerFrame::Error {
                code: ErrorCode::Forbidden,
                message: &msg,
                reference: r,
                room: Some(&sub.room),
                retry_after_ms,
            };
            self.state.metrics.errors.with_label_values(&["forbidden"]).inc();
            return Some(self.send(socket, frame.encode()).await);
        }
        if config.moderation.frozen {
            let msg = "the room is frozen: only moderators can write";
            return Some(self.error(socket, ErrorCode::Forbidden, msg, r, Some(&sub.room)).await);
        }
        let slow = config.moderation.slow_mode_ms.filter(|ms| *ms > 0 && sub.kind == Kind::Message)?;
        let limit = RateLimit { messages: 1, period: Duration::from_millis(slow) };
        let key = format!("{}:slow", sub.room);
        match self.state.backend.limiter.acquire(&self.user.id, &key, limit).await {
            Ok(Decision::Allowed) => None,
            Ok(Decision::Limited { retry_after }) => {
                self.state.metrics.errors.with_label_values(&["rate_limited"]).inc();
                let msg = format!("slow mode: one message every {} s", slow.div_ceil(1000));
                let frame = ServerFrame::Error {
                    code: ErrorCode::RateLimited,
                    message: &msg,
                    reference: r,
                    room: Some(&sub.room),
                    retry_after_ms: Some(retry_after.as_millis().max(1) as u64),
                };
                Some(self.send(socket, frame.encode()).await)
            }
            Err(e) => Some(self.unavailable(socket, r, &sub.room, e).await),
        }
    }
}
