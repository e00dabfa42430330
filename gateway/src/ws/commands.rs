//! Client commands (docs/protocol.md §3).

use futures_util::stream::FuturesUnordered;
use futures_util::FutureExt;
use std::sync::Arc;
use std::time::Instant;

use aurora_core::events::{self, Refusal};
use aurora_core::model::{new_message_id, Kind, Room, Submission, Visibility};
use aurora_core::moderation::Role;
use aurora_core::ports::{Admit, Claim, MessageStore, PortError, RoomEvent};
use aurora_core::protocol::{
    decode, Change, Command, ErrorCode, ServerFrame, MAX_ROOMS_PER_CONNECTION, MAX_SINCE_MESSAGES,
};
use aurora_core::ratelimit::Decision;
use aurora_core::reads::MAX_JOIN_READERS;

use super::rooms::JoinedRoom;
use super::session::{End, Session, Socket, Throttle};

type Step = Result<(), End>;

impl Session {
    pub(super) async fn on_text(&mut self, socket: &mut Socket, text: &str) -> Step {
        let request = match decode(text) {
            Ok(r) => r,
            Err(e) => {
                self.state.metrics.frames_received.with_label_values(&["invalid"]).inc();
                return self.error(socket, ErrorCode::BadRequest, &e.message, e.reference.as_deref(), None).await;
            }
        };
        self.state.metrics.frames_received.with_label_values(&[request.command.kind()]).inc();
        let r = request.reference.as_deref();
        match request.command {
            Command::Join { room, since } => self.join(socket, r, room, since).await,
            Command::Leave { room } => self.leave(socket, r, room).await,
            Command::Send { room, body, nonce, reply_to } => {
                self.send_message(socket, r, room, body, nonce, reply_to).await
            }
            Command::Change { room, change, nonce } => self.change(socket, r, room, change, nonce).await,
            Command::Typing { room } => self.typing(socket, r, room).await,
            Command::History { room, before, limit } => self.history(socket, r, room, before, limit).await,
            Command::Auth { token } => self.auth(socket, r, token).await,
            Command::Read { room, seq } => self.read(socket, r, room, seq).await,
        }
    }

    pub(super) async fn unavailable(&mut self, socket: &mut Socket, r: Option<&str>, room: &str, e: PortError) -> Step {
        if let PortError::Corrupt(_) = e {
            tracing::error!(room, error = %e, "corrupt record");
            return self.error(socket, ErrorCode::Internal, "internal error", r, Some(room)).await;
        }
        tracing::warn!(room, error = %e, "dependency failed");
        let message = "a dependency is unavailable; nothing was accepted, try again";
        self.error(socket, ErrorCode::Unavailable, message, r, Some(room)).await
    }

    /// `not_joined` for an existing room, `not_found` otherwise.
    pub(super) async fn not_joined(&mut self, socket: &mut Socket, r: Option<&str>, room: &str) -> Step {
        match self.state.rooms.get(room).await {
            Ok(Some(_)) => self.error(socket, ErrorCode::NotJoined, "join the room first", r, Some(room)).await,
            Ok(None) => self.error(socket, ErrorCode::NotFound, "no such room", r, Some(room)).await,
            Err(e) => self.unavailable(socket, r, room, e).await,
        }
    }

    async fn join(&mut self, socket: &mut Socket, r: Option<&str>, room: String, since: Option<u64>) -> Step {
        let config = match self.state.rooms.get(&room).await {
            Ok(Some(c)) => c,
            Ok(None) => return self.error(socket, ErrorCode::NotFound, "no such room", r, Some(&room)).await,
            Err(e) => return self.unavailable(socket, r, &room, e).await,
        };
        if !config.admits(&self.user.name) {
            let msg = match config.banned(&self.user.name, aurora_core::now_ms()) {
                Some(_) => "you are banned from this room",
                None => "this room is private",
            };
            return self.error(socket, ErrorCode::Forbidden, msg, r, Some(&room)).await;
        }
        if let Err(retry_after) = self.throttle(Throttle::Join, &room) {
            let frame = ServerFrame::Error {
                code: ErrorCode::RateLimited,
                message: "joining too often; wait before joining again",
                reference: r,
                room: Some(&room),
                retry_after_ms: Some(retry_after.as_millis().max(1) as u64),
            };
            self.state.metrics.errors.with_label_values(&["rate_limited"]).inc();
            return self.send(socket, frame.encode()).await;
        }
        let already = self.rooms.contains_key(room.as_str());
        if !already && self.rooms.len() >= MAX_ROOMS_PER_CONNECTION {
            let msg = "at most 100 rooms per connection";
            return self.error(socket, ErrorCode::Forbidden, msg, r, Some(&room)).await;
        }
        if !already {
            let name = match self.enter(&room).await {
                Ok(name) => name,
                Err(e) => return self.unavailable(socket, r, &room, e).await,
            };
            // Track the room now: from here on live frames for it are accepted,
            // and anything already in history is filtered by `last_seq` below.
            self.rooms.insert(name, JoinedRoom { config: config.clone(), last_seq: u64::MAX, read: 0 });
        }
        let backend = &self.state.backend;
        let snapshot = async {
            let members = backend.presence.members(&room).await?;
            let k = config.history_size.unwrap_or(self.state.config.history_size);
            // The room's last seq (events included: history holds messages only), read before
            // the history: a record stored between the two reads is then in the history, and
            // one stored after both arrives live with a newer seq. (Read after the history,
            // such a record was in neither: its live frame fell under `last_seq` and was dropped.)
            let last = backend.messages.last_seq(&room).await?;
            // A public room's pointer starts where one first joined; a private room's or a
            // conversation's at its start (all of it was meant for its members).
            let start = if config.visibility == Visibility::Public { last } else { 0 };
            let read = backend.reads.joined(&self.user, &room, start).await?;
            let receipts =
                if config.receipts() { Some(backend.reads.readers(&room, MAX_JOIN_READERS).await?) } else { None };
            let (mut history, truncated) = match since {
                Some(after) => backend.messages.after(&room, after, MAX_SINCE_MESSAGES).await?,
                None => (backend.messages.before(&room, None, k).await?, false),
            };
            events::hydrate(backend.messages.as_ref(), &mut history).await?;
            Ok::<_, PortError>((members, last, read, receipts, history, truncated))
        };
        let (members, last, read, receipts, history, truncated) = match snapshot.await {
            Ok(s) => s,
            Err(e) => {
                if !already {
                    self.rooms.remove(room.as_str());
                    self.part(&room).await;
                }
                return self.unavailable(socket, r, &room, e).await;
            }
        };
        let last_seq = history.last().map_or(last, |m| m.seq.max(last));
        if let Some(joined) = self.rooms.get_mut(room.as_str()) {
            joined.last_seq = last_seq;
            joined.read = joined.read.max(read);
            joined.config = config;
        }
        let frame = ServerFrame::Joined {
            reference: r,
            room: &room,
            members: &members,
            history: &history,
            last_seq,
            read,
            receipts: receipts.as_deref(),
            truncated,
        };
        self.send(socket, frame.encode()).await
    }

    /// Subscribes locally and registers presence; the user's first connection announces `joins`.
    /// Returns the room's name as the hub shares it.
    async fn enter(&mut self, room: &str) -> Result<Arc<str>, PortError> {
        let backend = &self.state.backend;
        let name = self.state.hub.join(room, self.conn, self.handle.clone()).await?;
        self.state.metrics.joins.inc();
        match backend.presence.join(room, &self.user, self.conn).await {
            Ok(true) => {
                if let Some(members) = &backend.members {
                    members.changed(room, &self.user, true);
                }
                let joins = [self.user.clone()];
                let frame = ServerFrame::Presence { room, joins: &joins, leaves: &[] }.encode();
                // A first connection has no other tab in the room to tell; `joined` lists the user.
                let event = RoomEvent { seq: None, skip_user: Some(self.user.id.clone()), frame: frame.into() };
                if let Err(e) = backend.bus.publish(room, event).await {
                    tracing::warn!(room, error = %e, "presence join not published");
                }
                Ok(name)
            }
            Ok(false) => Ok(name),
            Err(e) => {
                self.state.hub.leave(room, self.conn).await;
                Err(e)
            }
        }
    }

    async fn leave(&mut self, socket: &mut Socket, r: Option<&str>, room: String) -> Step {
        if self.rooms.remove(room.as_str()).is_some() {
            self.part(&room).await;
        }
        self.send(socket, ServerFrame::Left { reference: r, room: &room, reason: None }.encode()).await
    }

    async fn send_message(
        &mut self,
        socket: &mut Socket,
        r: Option<&str>,
        room: String,
        body: String,
        nonce: Option<String>,
        reply_to: Option<String>,
    ) -> Step {
        let Some(config) = self.joined_config(&room) else {
            return self.not_joined(socket, r, &room).await;
        };
        if let Some(step) = self.too_large(socket, r, &room, &body, &config).await {
            return step;
        }
        let mut sub = Submission::message(new_message_id(), room, self.user.clone(), body, nonce);
        sub.managed = config.managed();
        sub.reply_to = reply_to;
        self.submit(socket, r, sub, &config).await
    }

    /// An edit, delete or reaction: an event on the room's stream, admitted like a send.
    async fn change(
        &mut self,
        socket: &mut Socket,
        r: Option<&str>,
        room: String,
        change: Change,
        nonce: Option<String>,
    ) -> Step {
        let Some(config) = self.joined_config(&room) else {
            return self.not_joined(socket, r, &room).await;
        };
        if let Some(body) = &change.body {
            if let Some(step) = self.too_large(socket, r, &room, body, &config).await {
                return step;
            }
        }
        let max_reactions = config.max_reactions.unwrap_or(self.state.config.max_reactions);
        let body = change.body.unwrap_or_default();
        let mut sub = Submission::message(new_message_id(), room, self.user.clone(), body, nonce);
        sub.managed = config.managed();
        sub.kind = change.kind;
        sub.target = Some(change.target);
        sub.emoji = change.emoji;
        sub.max_reactions = (change.kind == Kind::React).then_some(max_reactions);
        // A moderator may delete anyone's message but the owner's.
        sub.moderator = change.kind == Kind::Delete && config.role(&self.user.id, &self.user.name) >= Role::Moderator;
        sub.shielded = config.created_by.clone().filter(|_| !config.managed());
        self.submit(socket, r, sub, &config).await
    }

    /// The configuration of a joined room: the directory holds the newest (a ChatRoom may
    /// change it live).
    fn joined_config(&self, room: &str) -> Option<Arc<Room>> {
        let joined = self.rooms.get(room)?;
        Some(self.state.rooms.cached(room).unwrap_or_else(|| joined.config.clone()))
    }

    async fn too_large(
        &mut self,
        socket: &mut Socket,
        r: Option<&str>,
        room: &str,
        body: &str,
        config: &Room,
    ) -> Option<Step> {
        let max = config.max_message_bytes.unwrap_or(self.state.config.max_message_bytes);
        if body.len() <= max {
            return None;
        }
        let msg = format!("message body is over {max} bytes");
        Some(self.error(socket, ErrorCode::TooLarge, &msg, r, Some(room)).await)
    }

    /// Admits a record (its nonce claim and rate-limit token), checks what it points at,
    /// and appends it to the log; the `ack` follows once it is durable.
    async fn submit(&mut self, socket: &mut Socket, r: Option<&str>, mut sub: Submission, config: &Room) -> Step {
        let backend = self.state.backend.clone();
        let user_id = self.user.id.clone();
        let room = sub.room.clone();
        let nonce = sub.nonce.clone();
        let limit = config.rate_limit.unwrap_or(self.state.config.rate_limit);
        if let Some(step) = self.held_back(socket, r, &sub, config).await {
            return step;
        }
        if config.dm {
            match self.state.blocks.blocked_in(backend.users.as_ref(), config, &self.user.id).await {
                Ok(false) => {}
                Ok(true) => {
                    let msg = "you cannot send to this conversation";
                    return self.error(socket, ErrorCode::Forbidden, msg, r, Some(&room)).await;
                }
                Err(e) => return self.unavailable(socket, r, &room, e).await,
            }
        }
        let timer = self.state.metrics.admission_seconds.start_timer();
        let admitted = backend.admission.admit(&user_id, &room, nonce.as_deref(), &sub.id, limit).await;
        timer.observe_duration();
        let refused = match admitted {
            Ok(Admit::New(Decision::Allowed) | Admit::Retry(Claim::New)) => None,
            Ok(Admit::New(Decision::Limited { retry_after })) => Some(Ok(retry_after)),
            Ok(Admit::Retry(Claim::Stored(first))) => {
                let ack = ServerFrame::Ack { reference: r, room: &room, id: &first, nonce: nonce.as_deref() };
                return self.send(socket, ack.encode()).await;
            }
            // The first attempt may never have reached the log (its gateway died): append
            // again under the same id; the fan-out tier stores an id once.
            Ok(Admit::Retry(Claim::Existing(first))) => {
                sub.id.clone_from(&first);
                sub.retry = true;
                self.await_accepted(r, room, first, nonce, sub, None);
                return Ok(());
            }
            Err(e) => Some(Err(e)),
        };
        // A limited send's nonce claim was released by the admission.
        if let Some(outcome) = refused {
            return match outcome {
                Ok(retry_after) => {
                    self.state.metrics.errors.with_label_values(&["rate_limited"]).inc();
                    let frame = ServerFrame::Error {
                        code: ErrorCode::RateLimited,
                        message: "too many messages; wait before sending again",
                        reference: r,
                        room: Some(&room),
                        retry_after_ms: Some(retry_after.as_millis().max(1) as u64),
                    };
                    self.send(socket, frame.encode()).await
                }
                Err(e) => self.unavailable(socket, r, &room, e).await,
            };
        }
        if sub.target.is_some() || sub.reply_to.is_some() {
            let window = config.edit_window_ms.map_or(self.state.config.edit_window, std::time::Duration::from_millis);
            let checked = check_target(backend.messages.as_ref(), &sub, window).await;
            if checked.is_err() {
                // Refused: the claim and the token go back, as for a limited send.
                if let Some(n) = &nonce {
                    let _ = backend.nonces.release(&user_id, &room, n).await;
                }
                let _ = backend.limiter.refund(&user_id, &room, limit).await;
            }
            match checked {
                Ok(author) => {
                    if sub.moderator && author.is_some_and(|a| a != self.user.id) {
                        let target = sub.target.as_deref().unwrap_or_default();
                        crate::http::moderation::message_deleted(&self.state, &self.user.name, &room, target).await;
                    }
                }
                Err(Err(e)) => return self.unavailable(socket, r, &room, e).await,
                Err(Ok(refusal)) => {
                    let code = match refusal {
                        Refusal::NoSuchMessage | Refusal::Deleted => ErrorCode::NotFound,
                        Refusal::BadEmoji | Refusal::NoChange => ErrorCode::BadRequest,
                        Refusal::NotAuthor | Refusal::WindowPassed | Refusal::TooManyReactions => ErrorCode::Forbidden,
                    };
                    return self.error(socket, code, &refusal.to_string(), r, Some(&room)).await;
                }
            }
        }
        // A failed append may still have reached the log (Kafka times out a request the
        // broker wrote before it died): a send with a nonce keeps its claim and its token,
        // so the retry re-appends under the same id and is stored once. Without a nonce the
        // client's retry is a new message anyway, and the token comes back.
        let refund = nonce.is_none().then_some(limit);
        let id = sub.id.clone();
        self.await_accepted(r, room, id, nonce, sub, refund);
        Ok(())
    }

    /// Appends to the log and queues the `ack` (or `unavailable`) for when it is durable.
    /// `refund`: the rate-limit token returned when the log refuses the message.
    fn await_accepted(
        &mut self,
        r: Option<&str>,
        room: String,
        id: String,
        nonce: Option<String>,
        submission: Submission,
        refund: Option<aurora_core::ratelimit::RateLimit>,
    ) {
        let backend = self.state.backend.clone();
        let user_id = self.user.id.clone();
        let accepted = backend.log.append(submission);
        let reference = r.map(str::to_owned);
        let state = self.state.clone();
        let started = Instant::now();
        self.pending.get_or_insert_with(FuturesUnordered::new).push(
            async move {
                match accepted.await {
                    Ok(()) => {
                        state.metrics.messages_accepted.inc();
                        state.metrics.ack_seconds.observe(started.elapsed().as_secs_f64());
                        let ack = ServerFrame::Ack {
                            reference: reference.as_deref(),
                            room: &room,
                            id: &id,
                            nonce: nonce.as_deref(),
                        };
                        ack.encode()
                    }
                    Err(e) => {
                        tracing::warn!(room, error = %e, "message not accepted");
                        if let Some(limit) = refund {
                            let _ = backend.limiter.refund(&user_id, &room, limit).await;
                        }
                        state.metrics.errors.with_label_values(&["unavailable"]).inc();
                        ServerFrame::Error {
                            code: ErrorCode::Unavailable,
                            message: "the message log is unavailable; nothing was accepted, try again",
                            reference: reference.as_deref(),
                            room: Some(&room),
                            retry_after_ms: None,
                        }
                        .encode()
                    }
                }
            }
            .boxed(),
        );
    }

    async fn typing(&mut self, socket: &mut Socket, r: Option<&str>, room: String) -> Step {
        if !self.rooms.contains_key(room.as_str()) {
            return self.not_joined(socket, r, &room).await;
        }
        if self.throttle(Throttle::Typing, &room).is_err() {
            return Ok(());
        }
        let frame = ServerFrame::Typing { room: &room, user: &self.user }.encode();
        let event = RoomEvent { seq: None, skip_user: Some(self.user.id.clone()), frame: frame.into() };
        if let Err(e) = self.state.backend.bus.publish(&room, event).await {
            tracing::debug!(room, error = %e, "typing not published");
        }
        Ok(())
    }

    async fn history(&mut self, socket: &mut Socket, r: Option<&str>, room: String, before: u64, limit: usize) -> Step {
        if !self.rooms.contains_key(room.as_str()) {
            return self.not_joined(socket, r, &room).await;
        }
        let messages = self.state.backend.messages.clone();
        let page = async {
            let mut page = messages.before(&room, Some(before), limit).await?;
            events::hydrate(messages.as_ref(), &mut page).await?;
            Ok::<_, PortError>(page)
        };
        match page.await {
            Ok(messages) => {
                let frame = ServerFrame::History { reference: r, room: &room, messages: &messages };
                self.send(socket, frame.encode()).await
            }
            Err(e) => self.unavailable(socket, r, &room, e).await,
        }
    }

    async fn auth(&mut self, socket: &mut Socket, r: Option<&str>, token: String) -> Step {
        match self.state.jwt.verify(&token) {
            Ok(claims) if claims.sub.as_str() == &*self.user.id => {
                self.exp = claims.exp;
                self.token_reset = true;
                self.send(socket, ServerFrame::Authed { reference: r, exp: claims.exp }.encode()).await
            }
            Ok(_) => {
                self.state.metrics.auth_failed("other_user");
                self.error(socket, ErrorCode::Unauthorized, "token is for another user", r, None).await
            }
            Err(e) => {
                self.state.metrics.token_failed(&e);
                self.error(socket, ErrorCode::Unauthorized, "invalid or expired token", r, None).await
            }
        }
    }
}

/// Checks an event's target (or a reply's) as stored now; the fan-out tier checks again
/// when it applies the event. In distributed mode a message is acked once Kafka has it and
/// stored a few milliseconds later, so a target made in the last seconds that is not stored
/// yet is looked up again, with backoff, for up to [`FRESH_TARGET_WAIT`].
pub(crate) async fn check_target(
    messages: &dyn MessageStore,
    sub: &Submission,
    edit_window: std::time::Duration,
) -> Result<Option<Arc<str>>, Result<Refusal, PortError>> {
    let Some(id) = sub.target.as_deref().or(sub.reply_to.as_deref()) else { return Ok(None) };
    let made = aurora_core::model::message_id_time_ms(id);
    let fresh = made.is_some_and(|t| (aurora_core::now_ms() - t).abs() < FRESH_TARGET_AGE_MS);
    let deadline = Instant::now() + FRESH_TARGET_WAIT;
    let mut pause = std::time::Duration::from_millis(5);
    let target = loop {
        let found = messages.existing(&[id.to_owned()]).await.map_err(Err)?.remove(id);
        if found.is_some() || !fresh || Instant::now() + pause > deadline {
            break found;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_millis(200));
    };
    let window_ms = i64::try_from(edit_window.as_millis()).unwrap_or(i64::MAX);
    events::check(target.as_ref(), sub, window_ms).map_err(Ok)?;
    Ok(target.map(|t| t.user.id))
}

/// How long a just-made target that is not stored yet is waited for.
const FRESH_TARGET_WAIT: std::time::Duration = std::time::Duration::from_secs(3);
/// Targets made this recently (by their id's clock) may still be on their way to the store.
const FRESH_TARGET_AGE_MS: i64 = 30_000;
