//! What a session waits on and the order it looks at them in.
//!
//! A session is one task. It waits on four kinds of source:
//! - **events** ([`Controls`]): the shutdown signal, the heartbeat/expiry timer and the
//!   client's next frame. Rare; they wake the task through the outbox's waker, which sets
//!   the outbox's `control` flag.
//! - **pending sends**: sends awaiting their ack (a [`FuturesUnordered`] with its own waker).
//! - **the outbox** ([`Outbox`]): room traffic the hub queued, and its overflow flag.
//!
//! [`Sources::next`] decides what the session does next. One poll runs this state machine
//! (`E` = the events, `P` = the pending sends, `O` = the outbox):
//!
//! ```text
//!                  after_batch?
//!                 /            \
//!               no              yes (E and P were polled earlier in this wake
//!               |                |    and still hold its waker: skip them once)
//!               v                |
//!   E ready? ──yes──> Event      |
//!      | no                      |
//!   P ready? ──yes──> Reply      |
//!      | no                      |
//!      v                         v
//!   O.poll_next ──Overflow──> Overflow   (before anything queued)
//!      |  ├─────Control───> E woke: loop back to "E ready?" (not skipped now)
//!      |  └─────Deliver───> Deliver(first of a batch)
//!      └─Pending (the outbox stored the task's waker and set `waiting`)
//! ```
//!
//! So a delivery wake-up costs one lock of the outbox and nothing else, and a control
//! wake-up is never lost: the outbox keeps the `control` flag until `poll_next` takes it,
//! and it wakes the task whenever it sets the flag or queues while `waiting` (see the
//! model test in `outbox.rs`).

use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use std::sync::Arc;
use std::task::Poll;
use tokio_tungstenite::tungstenite::{self, Message};

use super::control::{Control, Controls};
use super::session::{Pending, Stream};
use crate::hub::Delivery;
use crate::outbox::{Next, Outbox};

pub(super) type Incoming = Option<Result<Message, tungstenite::Error>>;
/// The session's rare wake-ups, the client's next frame among them.
pub(super) type Events = Controls<(Stream, Incoming)>;

/// The next client frame, waited on among the [`Events`]: the set polls it again only once
/// its waker fired, so an outbound wake-up does not cost a read attempt.
pub(super) async fn read_next(mut stream: Stream) -> (Stream, Incoming) {
    let incoming = stream.next().await;
    (stream, incoming)
}

/// What woke the session.
#[allow(clippy::large_enum_variant, reason = "a client frame's read half passes through; never stored")]
pub(super) enum Wake {
    Event(Control<(Stream, Incoming)>),
    /// A send completed: its reply.
    Reply(String),
    Deliver(Arc<Delivery>),
    Overflow,
}

/// Everything a session waits on.
pub(super) struct Sources<'a> {
    pub events: &'a mut Events,
    pub pending: &'a mut Option<FuturesUnordered<Pending>>,
    pub outbox: &'a Outbox,
}

impl Sources<'_> {
    /// The next thing to do, in priority order (the diagram in the module docs): an event
    /// (control or client frame), completed sends, then the outbox (its overflow before
    /// anything queued). The events are polled only once their waker marked the outbox, or
    /// after a new one joined them. With `after_batch`, the events and completed sends are
    /// not polled until the outbox says something else woke: they were polled earlier in this
    /// wake, before the batch, and still hold its waker.
    pub async fn next(self, after_batch: bool) -> Wake {
        let Sources { events, pending, outbox } = self;
        let mut skip_rare = after_batch;
        std::future::poll_fn(move |cx| loop {
            if !std::mem::take(&mut skip_rare) {
                if let Some(event) = events.poll() {
                    return Poll::Ready(Wake::Event(event));
                }
                if let Some(p) = pending.as_mut().filter(|p| !p.is_empty()) {
                    if let Poll::Ready(Some(reply)) = p.poll_next_unpin(cx) {
                        return Poll::Ready(Wake::Reply(reply));
                    }
                }
            }
            match outbox.poll_next(cx) {
                Poll::Ready(Next::Overflow) => return Poll::Ready(Wake::Overflow),
                Poll::Ready(Next::Control) => events.woke(),
                Poll::Ready(Next::Deliver(d)) => return Poll::Ready(Wake::Deliver(d)),
                Poll::Pending => return Poll::Pending,
            }
        })
        .await
    }
}
