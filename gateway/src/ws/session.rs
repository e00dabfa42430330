//! One WebSocket connection: a single task that reads client frames, writes
//! replies and room traffic (batched: feed, then one flush), runs the heartbeat
//! and watches the token's expiry.

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

use aurora_core::auth::Claims;
use aurora_core::model::UserRef;
use aurora_core::ports::{ConnId, RoomEvent};
use aurora_core::protocol::{close, ErrorCode, ServerFrame};

use super::control::{Beat, Control, Controls, Heartbeat};
use super::rooms::Rooms;
use super::sources::{read_next, Events, Incoming, Sources, Wake};
use super::wire::{ReadSide, Writer};
use crate::hub::{ConnHandle, Delivery};
use crate::metrics::SentKind;
use crate::outbox::Outbox;
use crate::state::AppState;

/// Most queued frames written per flush.
pub(super) const MAX_BATCH: usize = 64;
/// Sends awaiting their ack; at this many the session stops reading until one completes.
const MAX_PENDING_ACKS: usize = 256;
/// More `bad_request` frames than this within [`BAD_FRAME_WINDOW`] closes with 4008.
const MAX_BAD_FRAMES: usize = 20;
const BAD_FRAME_WINDOW: Duration = Duration::from_secs(60);

/// Why a session ends.
#[derive(Debug)]
pub(super) enum End {
    /// Send a close frame with this code.
    Close(u16, &'static str),
    /// The server drains: close 1001 with the reconnect hint (`AppState::drain_reason`).
    Drain,
    /// The token expired: `token_expired`, then close 4001.
    Expired,
    /// Drop the TCP connection without a close frame (heartbeat timeout, write stall).
    Drop(&'static str),
    /// The client sent a close frame: answer it (RFC 6455 §5.5.1).
    Closed,
    /// The client went away.
    Gone,
}

pub(super) type Pending = BoxFuture<'static, String>;

/// The connection's write half; the read half lives in [`read_next`].
pub(super) type Socket = Writer;

/// The read half: tungstenite parses the client's frames.
pub(super) type Stream = WebSocketStream<ReadSide>;

pub(super) struct Session {
    pub state: Arc<AppState>,
    pub conn: ConnId,
    pub user: UserRef,
    pub exp: u64,
    pub rooms: Rooms,
    pub handle: ConnHandle,
    /// Sends awaiting their ack; made on the first send (an idle connection holds none).
    pub pending: Option<FuturesUnordered<Pending>>,
    pub token_reset: bool,
    started: std::time::Instant,
    bad_frames: VecDeque<Instant>,
    /// Typing and join throttles per room (each join/leave may broadcast presence).
    pub throttles: HashMap<(Arc<str>, Throttle), aurora_core::ratelimit::Bucket>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Throttle {
    Typing,
    Join,
}

/// What [`Session::on_frame`] heard.
enum Heard {
    Frame,
    /// A pong: the heartbeat is answered.
    Pong,
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

fn expiry_instant(exp: u64) -> Instant {
    Instant::now() + Duration::from_secs(exp.saturating_sub(unix_now()))
}

pub async fn run(state: Arc<AppState>, stream: Stream, mut socket: Writer, claims: Claims) {
    let outbox = Outbox::new(state.config.outbound_queue);
    let mut session = Session {
        conn: state.next_conn_id(),
        user: claims.user(),
        exp: claims.exp,
        rooms: Rooms::default(),
        handle: outbox.clone(),
        pending: None,
        token_reset: false,
        started: std::time::Instant::now(),
        bad_frames: VecDeque::new(),
        throttles: HashMap::new(),
        state,
    };
    session.state.hub.attach_user(&session.user.id, session.conn, outbox.clone());
    let metrics = &session.state.metrics;
    metrics.connections.inc();
    metrics.connections_total.inc();
    tracing::debug!(conn = session.conn, user_id = %session.user.id, "session started");

    let end = session.serve(&mut socket, stream, &outbox).await;
    session.state.hub.detach_user(&session.user.id, session.conn);
    outbox.close();
    let reason = match &end {
        End::Close(code, _) if *code == close::GOING_AWAY => "shutdown",
        End::Drain => "shutdown",
        End::Close(code, _) if *code == close::POLICY => "policy",
        End::Close(code, _) if *code == close::TOO_BIG => "too_big",
        End::Close(code, _) if *code == close::DISCONNECTED => "disconnected",
        End::Close(_, _) => "protocol_error",
        End::Expired => "token_expired",
        End::Drop(why) => why,
        End::Closed | End::Gone => "client",
    };
    tracing::debug!(conn = session.conn, user_id = %session.user.id, reason, "session ended");
    session.finish(socket, end).await;
    session.leave_all().await;
    let metrics = &session.state.metrics;
    metrics.connections.dec();
    metrics.disconnects.with_label_values(&[reason]).inc();
}

impl Session {
    async fn serve(&mut self, socket: &mut Socket, stream: Stream, outbox: &Arc<Outbox>) -> End {
        let mut events: Events = Controls::new(self.state.shutdown.clone(), Waker::from(outbox.clone()));
        events.read(read_next(stream));
        // The read half while too many sends await their ack (boxed: an idle session's
        // future keeps no room for it).
        let mut parked: Option<Box<Stream>> = None;
        let interval = self.state.config.heartbeat_interval;
        let hello = ServerFrame::Hello { user: &self.user, heartbeat_ms: interval.as_millis() as u64 }.encode();
        if let Err(end) = self.send(socket, hello).await {
            return end;
        }
        let mut beat = Heartbeat::new(interval, self.state.config.heartbeat_timeout);
        let mut expires = expiry_instant(self.exp);
        events.arm(beat.next.min(expires));
        // Whether the next wait may poll only the outbound queue: right after a batch that was
        // written without yielding, every other source was already polled during this wake.
        let mut after_batch = false;
        loop {
            if self.token_reset {
                self.token_reset = false;
                expires = expiry_instant(self.exp);
                events.arm(beat.next.min(expires));
            }
            if parked.is_some() && self.awaiting_acks() < MAX_PENDING_ACKS {
                if let Some(stream) = parked.take() {
                    events.read(read_next(*stream));
                }
            }
            let sources = Sources { events: &mut events, pending: &mut self.pending, outbox };
            let wake = sources.next(std::mem::take(&mut after_batch)).await;
            let incoming = match wake {
                Wake::Event(Control::Shutdown) => return End::Drain,
                Wake::Overflow => return End::Close(close::POLICY, "outbound queue overflow"),
                Wake::Event(Control::Timer) => {
                    if let Err(end) = self.on_timer(socket, &mut beat, expires).await {
                        return end;
                    }
                    events.arm(beat.next.min(expires));
                    continue;
                }
                Wake::Reply(reply) => {
                    if let Err(end) = self.send_replies(socket, reply).await {
                        return end;
                    }
                    continue;
                }
                Wake::Deliver(first) => {
                    match self.deliver_in_one_poll(socket, outbox, first).await {
                        Ok(at_once) => after_batch = at_once,
                        Err(end) => return end,
                    }
                    continue;
                }
                Wake::Event(Control::Read((stream, incoming))) => {
                    // Handling a frame starts at most one send: read on now if that still
                    // leaves room, else once enough sends are acked.
                    if self.awaiting_acks() + 1 < MAX_PENDING_ACKS {
                        events.read(read_next(stream));
                    } else {
                        parked = Some(Box::new(stream));
                    }
                    incoming
                }
            };
            match self.on_frame(socket, incoming).await {
                Ok(Heard::Frame) => {}
                Ok(Heard::Pong) => {
                    beat.pong();
                    events.arm(beat.next.min(expires));
                }
                Err(end) => return end,
            }
        }
    }

    /// A timer wake-up: the token expired, the heartbeat timed out, or a ping is due.
    async fn on_timer(&mut self, socket: &mut Socket, beat: &mut Heartbeat, expires: Instant) -> Result<(), End> {
        let now = Instant::now();
        if now >= expires {
            return Err(End::Expired);
        }
        match beat.due(now) {
            Beat::TimedOut => Err(End::Drop("heartbeat_timeout")),
            Beat::Ping => {
                socket.ping();
                self.flush(socket).await
            }
            Beat::Wait => Ok(()),
        }
    }

    /// Writes a batch (see [`Session::deliver`]); whether it was written without yielding,
    /// so every other source was already polled during this wake.
    async fn deliver_in_one_poll(
        &mut self,
        socket: &mut Socket,
        outbox: &Outbox,
        first: Arc<Delivery>,
    ) -> Result<bool, End> {
        let mut polls = 0u32;
        let mut batch = std::pin::pin!(self.deliver(socket, outbox, first));
        std::future::poll_fn(|cx| {
            polls += 1;
            batch.as_mut().poll(cx)
        })
        .await?;
        Ok(polls == 1)
    }

    /// One client frame (or the end of the stream).
    async fn on_frame(&mut self, socket: &mut Socket, incoming: Incoming) -> Result<Heard, End> {
        match incoming {
            None => Err(End::Gone),
            Some(Err(e)) => Err(self.read_error(e)),
            // Boxed: the command handlers' state would otherwise sit in every idle
            // session's future (2,976 B inline, measured with size_of_val).
            Some(Ok(Message::Text(text))) => Box::pin(self.on_text(socket, text.as_str())).await.map(|()| Heard::Frame),
            Some(Ok(Message::Binary(_))) => {
                let message = "binary frames are not supported";
                self.error(socket, ErrorCode::BadRequest, message, None, None).await.map(|()| Heard::Frame)
            }
            Some(Ok(Message::Pong(_))) => Ok(Heard::Pong),
            Some(Ok(Message::Ping(payload))) => {
                socket.pong(payload);
                self.flush(socket).await.map(|()| Heard::Frame)
            }
            Some(Ok(Message::Close(_))) => Err(End::Closed),
            // Never read: tungstenite yields whole messages.
            Some(Ok(Message::Frame(_))) => Ok(Heard::Frame),
        }
    }

    fn awaiting_acks(&self) -> usize {
        self.pending.as_ref().map_or(0, FuturesUnordered::len)
    }

    fn write_timeout(&self) -> Duration {
        self.state.config.heartbeat_timeout
    }

    /// Writes the queued frames; only a write that cannot finish at once starts the stall
    /// timer (no timer or clock read per frame on the hot path).
    pub(super) async fn flush(&mut self, socket: &mut Socket) -> Result<(), End> {
        let first = std::future::poll_fn(|cx| Poll::Ready(socket.poll_flush(cx))).await;
        let done = match first {
            Poll::Ready(done) => done,
            Poll::Pending => {
                let rest = std::future::poll_fn(|cx| socket.poll_flush(cx));
                match tokio::time::timeout(self.write_timeout(), rest).await {
                    Ok(done) => done,
                    Err(_) => return Err(End::Drop("write_stalled")),
                }
            }
        };
        done.map_err(|_| End::Gone)
    }

    /// Writes a completed send's reply with every other one already completed: a
    /// log batch completes many sends at once, and they leave in one write.
    async fn send_replies(&mut self, socket: &mut Socket, first: String) -> Result<(), End> {
        socket.text(Bytes::from(first));
        let mut n = 1;
        if let Some(pending) = self.pending.as_mut() {
            std::future::poll_fn(|cx| {
                while n < MAX_BATCH {
                    match pending.poll_next_unpin(cx) {
                        Poll::Ready(Some(reply)) => {
                            socket.text(Bytes::from(reply));
                            n += 1;
                        }
                        Poll::Ready(None) | Poll::Pending => break,
                    }
                }
                Poll::Ready(())
            })
            .await;
        }
        self.state.metrics.sent(SentKind::Reply, n as u64);
        self.flush(socket).await
    }

    pub(super) async fn send(&mut self, socket: &mut Socket, text: String) -> Result<(), End> {
        self.state.metrics.sent(SentKind::Reply, 1);
        socket.text(Bytes::from(text));
        self.flush(socket).await
    }

    /// Sends an `error` frame; too many `bad_request`s in a minute end the session.
    pub(super) async fn error(
        &mut self,
        socket: &mut Socket,
        code: ErrorCode,
        message: &str,
        reference: Option<&str>,
        room: Option<&str>,
    ) -> Result<(), End> {
        self.state.metrics.errors.with_label_values(&[code.as_str()]).inc();
        let frame = ServerFrame::Error { code, message, reference, room, retry_after_ms: None }.encode();
        self.send(socket, frame).await?;
        if code == ErrorCode::BadRequest {
            let now = Instant::now();
            self.bad_frames.push_back(now);
            while self.bad_frames.front().is_some_and(|t| now.duration_since(*t) > BAD_FRAME_WINDOW) {
                self.bad_frames.pop_front();
            }
            if self.bad_frames.len() > MAX_BAD_FRAMES {
                return Err(End::Close(close::POLICY, "too many bad frames"));
            }
        }
        Ok(())
    }

    async fn finish(&mut self, mut socket: Socket, end: End) {
        let state = self.state.clone();
        let (code, reason) = match end {
            End::Close(code, reason) => (code, reason),
            End::Drain => (close::GOING_AWAY, state.drain_reason.as_str()),
            End::Expired => {
                let frame = ServerFrame::Error {
                    code: ErrorCode::TokenExpired,
                    message: "token expired; reconnect with a fresh token",
                    reference: None,
                    room: None,
                    retry_after_ms: None,
                }
                .encode();
                let _ = self.send(&mut socket, frame).await;
                (close::TOKEN_EXPIRED, "token expired")
            }
            End::Closed => (close::NORMAL, ""),
            End::Drop(_) | End::Gone => return,
        };
        socket.close(code, reason);
        let _ = tokio::time::timeout(Duration::from_secs(1), std::future::poll_fn(|cx| socket.poll_flush(cx))).await;
    }

    /// Leaves every joined room: local hub, presence, and `leaves` to the room.
    async fn leave_all(&mut self) {
        let rooms = self.rooms.drain();
        for room in rooms {
            self.part(&room).await;
        }
    }

    pub(super) async fn part(&mut self, room: &str) {
        self.state.metrics.leaves.inc();
        let backend = &self.state.backend;
        self.state.hub.leave(room, self.conn).await;
        match backend.presence.leave(room, &self.user, self.conn).await {
            Ok(true) => {
                if let Some(members) = &backend.members {
                    members.changed(room, &self.user, false);
                }
                let leaves = [self.user.clone()];
                let frame = ServerFrame::Presence { room, joins: &[], leaves: &leaves }.encode();
                let event = RoomEvent { seq: None, skip_user: None, frame: frame.into() };
                if let Err(e) = backend.bus.publish(room, event).await {
                    tracing::warn!(room, error = %e, "presence leave not published");
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(room, error = %e, "presence leave failed"),
        }
    }
}

impl Session {
    /// Takes a token from this connection's `kind` bucket for `room`; `Err` carries how
    /// long until the next one. Buckets of rooms not joined are dropped when many pile up.
    pub(super) fn throttle(&mut self, kind: Throttle, room: &str) -> Result<(), Duration> {
        use aurora_core::ratelimit::{Bucket, Decision};
        let limit = match kind {
            Throttle::Typing => self.state.config.typing_rate,
            Throttle::Join => self.state.config.join_rate,
        };
        let now = self.started.elapsed().as_secs_f64() * 1000.0;
        if self.throttles.len() > 4 * aurora_core::protocol::MAX_ROOMS_PER_CONNECTION {
            let joined = &self.rooms;
            self.throttles.retain(|(r, _), _| joined.contains_key(r));
        }
        let bucket = self.throttles.entry((room.into(), kind)).or_insert_with(|| Bucket::full(limit, now));
        match bucket.take(limit, now) {
            Decision::Allowed => Ok(()),
            Decision::Limited { retry_after } => Err(retry_after),
        }
    }

    /// A protocol violation closes with its code ([`super::wire::violation`]), logged at
    /// debug and counted; anything else (reset, EOF) is the client going away.
    fn read_error(&self, e: tungstenite::Error) -> End {
        let Some((code, message, reason)) = super::wire::violation(&e) else { return End::Gone };
        tracing::debug!(conn = self.conn, reason, error = %e, "closing a connection that broke the protocol");
        self.state.metrics.protocol_errors.with_label_values(&[reason]).inc();
        End::Close(code, message)
    }
}
