//! A session's rare wake-ups: shutdown, one timer for the heartbeat and the token's expiry,
//! and the client's next frame. They sit in one `FuturesUnordered` whose waker is the
//! connection's [`Outbox`]: a wake-up marks the outbox, and the set is polled only then (or
//! right after a new future joined it). A delivery wake-up thus re-polls none of them (with
//! `select!` over them, that was ~7 % of the gateway's CPU per delivery: `./run.sh bench
//! compare`, fixed load), and does not even look at the set's own ready queue.
//!
//! [`Outbox`]: crate::outbox::Outbox

use futures_util::future::{BoxFuture, FutureExt};
use futures_util::stream::{FuturesUnordered, StreamExt};
use std::future::Future;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

pub(super) enum Control<R> {
    Shutdown,
    /// The timer fired: check the heartbeat and the expiry, then [`Controls::arm`] again.
    Timer,
    /// The read started by [`Controls::read`] finished.
    Read(R),
}

enum Event<R> {
    Shutdown,
    Timer(u64),
    Read(R),
}

pub(super) struct Controls<R> {
    set: FuturesUnordered<BoxFuture<'static, Event<R>>>,
    /// Wakes the session through its outbox, which then answers [`Next::Control`].
    ///
    /// [`Next::Control`]: crate::outbox::Next::Control
    waker: Waker,
    /// The set has something to poll: it woke, or a future joined it.
    dirty: bool,
    /// Only the newest timer counts; an older one that fires later is dropped.
    generation: u64,
    armed_at: Option<Instant>,
}

impl<R: Send + 'static> Controls<R> {
    pub fn new(shutdown: CancellationToken, waker: Waker) -> Self {
        let set = FuturesUnordered::new();
        set.push(shutdown.cancelled_owned().map(|_| Event::Shutdown).boxed());
        Controls { set, waker, dirty: true, generation: 0, armed_at: None }
    }

    /// Makes the timer fire no later than `at` (a later `at` waits for the armed one to fire).
    pub fn arm(&mut self, at: Instant) {
        if self.armed_at.is_some_and(|armed| armed <= at) {
            return;
        }
        self.generation += 1;
        let generation = self.generation;
        self.armed_at = Some(at);
        self.push(
            async move {
                sleep_until(at).await;
                Event::Timer(generation)
            }
            .boxed(),
        );
    }

    fn push(&mut self, event: BoxFuture<'static, Event<R>>) {
        self.set.push(event);
        self.dirty = true;
    }

    /// Waits for `read` (the client's next frame) along with the controls.
    pub fn read(&mut self, read: impl Future<Output = R> + Send + 'static) {
        self.push(read.map(Event::Read).boxed());
    }

    /// Something in the set woke (the outbox said [`Next::Control`]).
    ///
    /// [`Next::Control`]: crate::outbox::Next::Control
    pub fn woke(&mut self) {
        self.dirty = true;
    }

    /// The next event, if the set has anything to poll and something in it is ready.
    pub fn poll(&mut self) -> Option<Control<R>> {
        if !std::mem::take(&mut self.dirty) {
            return None;
        }
        let mut cx = Context::from_waker(&self.waker);
        loop {
            let event = match self.set.poll_next_unpin(&mut cx) {
                Poll::Ready(Some(event)) => event,
                Poll::Ready(None) | Poll::Pending => return None,
            };
            let control = match event {
                Event::Shutdown => Control::Shutdown,
                Event::Read(r) => Control::Read(r),
                Event::Timer(g) if g == self.generation => {
                    self.armed_at = None;
                    Control::Timer
                }
                Event::Timer(_) => continue,
            };
            // More may be ready: look again next time.
            self.dirty = true;
            return Some(control);
        }
    }
}

/// Protocol-level ping/pong: a ping every `interval`; no pong within `timeout` drops the
/// connection.
pub(super) struct Heartbeat {
    interval: Duration,
    timeout: Duration,
    /// When [`Heartbeat::due`] next has something to do.
    pub next: Instant,
    awaiting_pong: bool,
    last_ping: Instant,
}

pub(super) enum Beat {
    Ping,
    TimedOut,
    Wait,
}

impl Heartbeat {
    pub fn new(interval: Duration, timeout: Duration) -> Self {
        let now = Instant::now();
        Heartbeat { interval, timeout, next: now + interval, awaiting_pong: false, last_ping: now }
    }

    pub fn due(&mut self, now: Instant) -> Beat {
        if now < self.next {
            return Beat::Wait;
        }
        if self.awaiting_pong {
            return Beat::TimedOut;
        }
        self.last_ping = now;
        self.awaiting_pong = true;
        self.next = now + self.timeout;
        Beat::Ping
    }

    pub fn pong(&mut self) {
        if self.awaiting_pong {
            self.awaiting_pong = false;
            self.next = self.last_ping + self.interval;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::outbox::{Next, Outbox};
    use std::sync::Arc;

    /// The session's wait, without deliveries: the set, woken through the outbox.
    async fn next(c: &mut Controls<&'static str>, outbox: &Arc<Outbox>) -> Control<&'static str> {
        std::future::poll_fn(|cx| loop {
            if let Some(control) = c.poll() {
                return Poll::Ready(control);
            }
            match outbox.poll_next(cx) {
                Poll::Ready(Next::Control) => c.woke(),
                Poll::Ready(other) => panic!("unexpected {other:?}"),
                Poll::Pending => return Poll::Pending,
            }
        })
        .await
    }

    #[tokio::test(start_paused = true)]
    async fn a_later_deadline_waits_for_the_armed_timer_and_an_earlier_one_replaces_it() {
        let shutdown = CancellationToken::new();
        let outbox = Outbox::new(4);
        let mut c = Controls::new(shutdown.clone(), Waker::from(outbox.clone()));
        let start = Instant::now();
        c.arm(start + Duration::from_secs(10));
        c.arm(start + Duration::from_secs(20)); // later: ignored
        c.arm(start + Duration::from_secs(5)); // earlier: replaces the 10 s timer
        assert!(matches!(next(&mut c, &outbox).await, Control::Timer));
        assert_eq!(Instant::now() - start, Duration::from_secs(5));
        // The stale 10 s timer is dropped when it fires; only the newly armed one counts.
        c.arm(start + Duration::from_secs(15));
        assert!(matches!(next(&mut c, &outbox).await, Control::Timer));
        assert_eq!(Instant::now() - start, Duration::from_secs(15));
        c.read(async { "frame" });
        assert!(matches!(next(&mut c, &outbox).await, Control::Read("frame")));
        shutdown.cancel();
        assert!(matches!(next(&mut c, &outbox).await, Control::Shutdown));
    }

    #[tokio::test(start_paused = true)]
    async fn a_missing_pong_times_out_and_a_pong_schedules_the_next_ping() {
        let (interval, timeout) = (Duration::from_secs(25), Duration::from_secs(10));
        let mut h = Heartbeat::new(interval, timeout);
        let start = Instant::now();
        assert!(matches!(h.due(start), Beat::Wait));
        assert!(matches!(h.due(start + interval), Beat::Ping));
        h.pong();
        assert_eq!(h.next, start + 2 * interval);
        assert!(matches!(h.due(start + interval + timeout), Beat::Wait));
        assert!(matches!(h.due(start + 2 * interval), Beat::Ping));
        assert!(matches!(h.due(start + 2 * interval + timeout), Beat::TimedOut));
    }
}
