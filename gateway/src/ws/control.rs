//! A session's rare wake-ups: shutdown, outbound overflow, one timer for the heartbeat and
//! the token's expiry, and the client's next frame. They sit in one `FuturesUnordered`, which
//! polls a future only once its own waker fired, so a delivery wakes the session without
//! re-polling two cancellation tokens, two timers and a read (with `select!` over them, that
//! was ~7 % of the gateway's CPU per delivery: `./run.sh bench compare`, fixed load), and one
//! poll of the set covers them all.

use futures_util::future::{BoxFuture, FutureExt};
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::task::AtomicWaker;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

pub(super) enum Control<R> {
    Shutdown,
    Overflow,
    /// The timer fired: check the heartbeat and the expiry, then [`Controls::arm`] again.
    Timer,
    /// The read started by [`Controls::read`] finished.
    Read(R),
}

enum Event<R> {
    Shutdown,
    Overflow,
    Timer(u64),
    Read(R),
}

pub(super) struct Controls<R> {
    set: FuturesUnordered<BoxFuture<'static, Event<R>>>,
    /// Set when something in `set` woke: until then a poll does not look into the set, whose
    /// ready queue and stub are cache lines a delivery wake-up would otherwise touch.
    woken: Arc<Woken>,
    /// Only the newest timer counts; an older one that fires later is dropped.
    generation: u64,
    armed_at: Option<Instant>,
}

impl<R: Send + 'static> Controls<R> {
    pub fn new(shutdown: CancellationToken, overflow: CancellationToken) -> Self {
        let set = FuturesUnordered::new();
        set.push(shutdown.cancelled_owned().map(|_| Event::Shutdown).boxed());
        set.push(overflow.cancelled_owned().map(|_| Event::Overflow).boxed());
        let woken = Arc::new(Woken { flag: AtomicBool::new(true), task: AtomicWaker::new() });
        Controls { set, woken, generation: 0, armed_at: None }
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

    /// A new future is polled on the next [`Controls::poll_next`].
    fn push(&mut self, event: BoxFuture<'static, Event<R>>) {
        self.set.push(event);
        self.woken.flag.store(true, Ordering::Relaxed);
    }

    /// Waits for `read` (the client's next frame) along with the controls.
    pub fn read(&mut self, read: impl Future<Output = R> + Send + 'static) {
        self.push(read.map(Event::Read).boxed());
    }

    /// The next event; `Pending` registers the task's waker (an event is taken only when
    /// returned).
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Control<R>> {
        self.woken.task.register(cx.waker());
        if !self.woken.flag.swap(false, Ordering::Acquire) {
            return Poll::Pending;
        }
        let waker = Waker::from(self.woken.clone());
        let mut inner = Context::from_waker(&waker);
        loop {
            let event = match self.set.poll_next_unpin(&mut inner) {
                Poll::Ready(Some(event)) => event,
                Poll::Ready(None) | Poll::Pending => return Poll::Pending,
            };
            let control = match event {
                Event::Shutdown => Control::Shutdown,
                Event::Overflow => Control::Overflow,
                Event::Read(r) => Control::Read(r),
                Event::Timer(g) if g == self.generation => {
                    self.armed_at = None;
                    Control::Timer
                }
                Event::Timer(_) => continue,
            };
            // More may be ready: look again on the next poll.
            self.woken.flag.store(true, Ordering::Relaxed);
            return Poll::Ready(control);
        }
    }
}

/// The set's waker: notes that the set has work, then wakes the session's task.
struct Woken {
    flag: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Woken {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.flag.store(true, Ordering::Release);
        self.task.wake();
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

    async fn next(c: &mut Controls<&'static str>) -> Control<&'static str> {
        std::future::poll_fn(|cx| c.poll_next(cx)).await
    }

    #[tokio::test(start_paused = true)]
    async fn a_later_deadline_waits_for_the_armed_timer_and_an_earlier_one_replaces_it() {
        let (shutdown, overflow) = (CancellationToken::new(), CancellationToken::new());
        let mut c = Controls::new(shutdown.clone(), overflow);
        let start = Instant::now();
        c.arm(start + Duration::from_secs(10));
        c.arm(start + Duration::from_secs(20)); // later: ignored
        c.arm(start + Duration::from_secs(5)); // earlier: replaces the 10 s timer
        assert!(matches!(next(&mut c).await, Control::Timer));
        assert_eq!(Instant::now() - start, Duration::from_secs(5));
        // The stale 10 s timer is dropped when it fires; only the newly armed one counts.
        c.arm(start + Duration::from_secs(15));
        assert!(matches!(next(&mut c).await, Control::Timer));
        assert_eq!(Instant::now() - start, Duration::from_secs(15));
        c.read(async { "frame" });
        assert!(matches!(next(&mut c).await, Control::Read("frame")));
        shutdown.cancel();
        assert!(matches!(next(&mut c).await, Control::Shutdown));
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
