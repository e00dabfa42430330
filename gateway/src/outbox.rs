//! A connection's outbound queue: the hub offers room traffic to it, the session drains it.
//!
//! It is one small lock-guarded block per connection instead of a `tokio::sync::mpsc`
//! channel: a delivery then touches one cache line of the connection's state (the lock, the
//! queue's head and the waiting task) rather than the channel's separately padded sender,
//! receiver, waker and semaphore lines and its slot block. With 1,000 members per room each
//! of those lines was evicted by 999 other connections since the last message, so each one
//! was a cache miss per delivery. The same line carries the session's other wake-ups
//! (`control`, set through [`Outbox`]'s [`Wake`] impl) and the overflow flag, so a delivery
//! wake-up looks at nothing else to know that nothing else happened.

use std::collections::VecDeque;
use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

// The `loom` feature swaps the lock for loom's, whose model test below explores every
// interleaving of a session's poll with the hub's offers and the other wake-ups.
#[cfg(feature = "loom")]
use loom::sync::{Mutex, MutexGuard};
#[cfg(not(feature = "loom"))]
use std::sync::{Mutex, MutexGuard};

use crate::hub::Delivery;

/// A queue that grew past this many slots is freed once drained (an idle connection keeps
/// only a small one).
const KEEP_CAPACITY: usize = 16;

pub struct Outbox {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    queue: VecDeque<Arc<Delivery>>,
    /// The session's task; woken only while `waiting`.
    task: Option<Waker>,
    waiting: bool,
    /// Something else the session waits on woke (its timer, its read, shutdown).
    control: bool,
    overflowed: bool,
    closed: bool,
}

/// What [`Outbox::offer`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer {
    Queued,
    /// The queue was full: the session closes with 4008. Reported once per connection.
    Overflowed,
    /// The session already overflowed or ended; the delivery is not queued.
    Dropped,
}

/// What the session does next, in priority order.
#[derive(Debug)]
pub enum Next {
    Overflow,
    /// Poll the sources that woke through [`Outbox`]'s waker.
    Control,
    Deliver(Arc<Delivery>),
}

impl Outbox {
    /// An empty outbox holding at most `capacity` deliveries.
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Outbox { capacity: capacity.max(1), inner: Mutex::new(Inner::default()) })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing under the lock can panic half-way through an update.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a delivery without blocking (the hub's fan-out never waits for one slow client).
    pub fn offer(&self, delivery: &Arc<Delivery>) -> Offer {
        let mut inner = self.lock();
        if inner.closed || inner.overflowed {
            return Offer::Dropped;
        }
        let offer = if inner.queue.len() < self.capacity {
            inner.queue.push_back(delivery.clone());
            Offer::Queued
        } else {
            inner.overflowed = true;
            Offer::Overflowed
        };
        inner.wake();
        offer
    }

    /// The next thing for the session to do; `Pending` stores the task's waker.
    pub fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Next> {
        let mut inner = self.lock();
        let next = if inner.overflowed {
            Next::Overflow
        } else if std::mem::take(&mut inner.control) {
            Next::Control
        } else if let Some(delivery) = inner.queue.pop_front() {
            Next::Deliver(delivery)
        } else {
            if inner.queue.capacity() > KEEP_CAPACITY {
                inner.queue = VecDeque::new();
            }
            if !inner.task.as_ref().is_some_and(|task| task.will_wake(cx.waker())) {
                inner.task = Some(cx.waker().clone());
            }
            inner.waiting = true;
            return Poll::Pending;
        };
        inner.waiting = false;
        Poll::Ready(next)
    }

    /// The next queued delivery, for a batch; none once anything of higher priority is waiting.
    pub fn try_next(&self) -> Option<Arc<Delivery>> {
        let mut inner = self.lock();
        if inner.overflowed || inner.control {
            return None;
        }
        inner.queue.pop_front()
    }

    /// The session ended: drop what is queued and refuse more.
    pub fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        inner.queue = VecDeque::new();
        inner.task = None;
    }
}

impl Inner {
    fn wake(&mut self) {
        if std::mem::take(&mut self.waiting) {
            if let Some(task) = &self.task {
                task.wake_by_ref();
            }
        }
    }
}

/// The waker of the session's other sources: marks `control` and wakes the session.
impl Wake for Outbox {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let mut inner = self.lock();
        inner.control = true;
        inner.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::SentKind;
    use std::sync::atomic::{AtomicUsize, Ordering};

    pub(super) fn delivery(seq: u64) -> Arc<Delivery> {
        Arc::new(Delivery {
            room: "r".into(),
            carries: crate::hub::Carries::Room,
            seq: Some(seq),
            skip_user: None,
            frame: bytes::Bytes::new(),
            kind: SentKind::Message,
            arrived: std::time::Instant::now(),
        })
    }

    /// A waker that counts its wakes.
    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn seq(next: Poll<Next>) -> Option<u64> {
        match next {
            Poll::Ready(Next::Deliver(d)) => d.seq,
            _ => None,
        }
    }

    #[test]
    fn deliveries_come_out_in_order_and_a_waiting_session_is_woken_once() {
        let outbox = Outbox::new(8);
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(outbox.poll_next(&mut cx).is_pending());
        for s in 1..=3 {
            assert_eq!(outbox.offer(&delivery(s)), Offer::Queued);
        }
        // One wake for the three: the session drains them in one batch.
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(seq(outbox.poll_next(&mut cx)), Some(1));
        assert_eq!(outbox.try_next().and_then(|d| d.seq), Some(2));
        assert_eq!(outbox.try_next().and_then(|d| d.seq), Some(3));
        assert!(outbox.try_next().is_none());
        assert!(outbox.poll_next(&mut cx).is_pending());
        outbox.offer(&delivery(4));
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_full_queue_overflows_once_and_the_overflow_comes_before_queued_traffic() {
        let outbox = Outbox::new(2);
        assert_eq!(outbox.offer(&delivery(1)), Offer::Queued);
        assert_eq!(outbox.offer(&delivery(2)), Offer::Queued);
        assert_eq!(outbox.offer(&delivery(3)), Offer::Overflowed);
        assert_eq!(outbox.offer(&delivery(4)), Offer::Dropped);
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(matches!(outbox.poll_next(&mut cx), Poll::Ready(Next::Overflow)));
        assert!(outbox.try_next().is_none());
    }

    #[test]
    fn a_control_wake_wakes_the_session_and_is_seen_before_deliveries() {
        let outbox = Outbox::new(8);
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(outbox.poll_next(&mut cx).is_pending());
        outbox.offer(&delivery(1));
        Waker::from(outbox.clone()).wake_by_ref();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        // A batch stops at a control wake-up; the control is handled first.
        assert!(outbox.try_next().is_none());
        assert!(matches!(outbox.poll_next(&mut cx), Poll::Ready(Next::Control)));
        assert_eq!(seq(outbox.poll_next(&mut cx)), Some(1));
    }

    #[test]
    fn a_closed_outbox_drops_its_queue_and_refuses_more() {
        let outbox = Outbox::new(8);
        outbox.offer(&delivery(1));
        outbox.close();
        assert!(outbox.lock().queue.is_empty());
        assert_eq!(outbox.offer(&delivery(2)), Offer::Dropped);
        assert!(outbox.lock().queue.is_empty());
    }

    #[test]
    fn a_drained_queue_that_grew_is_freed() {
        let outbox = Outbox::new(1024);
        for s in 0..200 {
            outbox.offer(&delivery(s));
        }
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        while let Poll::Ready(Next::Deliver(_)) = outbox.poll_next(&mut cx) {}
        assert!(outbox.lock().queue.capacity() <= KEEP_CAPACITY);
    }
}

/// The outbox under every interleaving `loom` can find (`cargo test -p aurora-gateway
/// --features loom --lib outbox::model`, part of `./run.sh test`): no wake-up is lost.
#[cfg(all(test, feature = "loom"))]
mod model {
    use super::tests::delivery;
    use super::*;
    use loom::sync::atomic::{AtomicUsize, Ordering};

    /// The session task's waker: counts its wakes.
    struct Task(AtomicUsize);
    impl Wake for Task {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn task() -> (Arc<Task>, Waker) {
        let task = Arc::new(Task(AtomicUsize::new(0)));
        let waker = Waker::from(task.clone());
        (task, waker)
    }

    /// Everything the session takes until the outbox is empty.
    fn drain(outbox: &Outbox, cx: &mut Context<'_>) -> Vec<String> {
        let mut seen = Vec::new();
        while let Poll::Ready(next) = outbox.poll_next(cx) {
            seen.push(match next {
                Next::Overflow => "overflow".to_owned(),
                Next::Control => "control".to_owned(),
                Next::Deliver(d) => format!("deliver {}", d.seq.unwrap_or_default()),
            });
        }
        seen
    }

    #[test]
    fn an_offer_racing_the_sessions_poll_is_delivered_or_wakes_it() {
        loom::model(|| {
            let outbox = Outbox::new(4);
            let hub = {
                let outbox = outbox.clone();
                loom::thread::spawn(move || assert_eq!(outbox.offer(&delivery(1)), Offer::Queued))
            };
            let (task, waker) = task();
            let mut cx = Context::from_waker(&waker);
            let mut seen = drain(&outbox, &mut cx);
            hub.join().expect("hub thread");
            if seen.is_empty() {
                // The session went to sleep before the offer: the offer must have woken it.
                assert_eq!(task.0.load(Ordering::SeqCst), 1, "lost wake-up");
            }
            seen.extend(drain(&outbox, &mut cx));
            assert_eq!(seen, ["deliver 1"]);
        });
    }

    #[test]
    fn a_control_wake_and_an_offer_racing_the_poll_are_both_seen() {
        loom::model(|| {
            let outbox = Outbox::new(4);
            let hub = {
                let outbox = outbox.clone();
                loom::thread::spawn(move || outbox.offer(&delivery(7)))
            };
            let timer = {
                let control = Waker::from(outbox.clone());
                loom::thread::spawn(move || control.wake())
            };
            let (task, waker) = task();
            let mut cx = Context::from_waker(&waker);
            let first = drain(&outbox, &mut cx);
            let wakes_before = task.0.load(Ordering::SeqCst);
            hub.join().expect("hub thread");
            timer.join().expect("timer thread");
            let rest = drain(&outbox, &mut cx);
            if !rest.is_empty() {
                // Something arrived after the session slept: it was woken for it.
                assert!(task.0.load(Ordering::SeqCst) > wakes_before || wakes_before > 0, "lost wake-up");
            }
            let mut seen: Vec<String> = first.into_iter().chain(rest).collect();
            seen.sort();
            assert_eq!(seen, ["control", "deliver 7"]);
        });
    }

    #[test]
    fn an_overflow_racing_the_poll_is_reported_before_anything_queued() {
        loom::model(|| {
            let outbox = Outbox::new(1);
            outbox.offer(&delivery(1));
            let hub = {
                let outbox = outbox.clone();
                loom::thread::spawn(move || outbox.offer(&delivery(2)))
            };
            let (_task, waker) = task();
            let mut cx = Context::from_waker(&waker);
            let first = outbox.poll_next(&mut cx);
            let offer = hub.join().expect("hub thread");
            match (first, offer) {
                // The poll took seq 1 first; then seq 2 fit.
                (Poll::Ready(Next::Deliver(d)), Offer::Queued) => assert_eq!(d.seq, Some(1)),
                // The offer overflowed first: the session sees the overflow, nothing queued.
                (_, Offer::Overflowed) => {
                    assert!(matches!(outbox.poll_next(&mut cx), Poll::Ready(Next::Overflow)));
                    assert!(outbox.try_next().is_none());
                }
                (first, offer) => panic!("poll {first:?} with offer {offer:?}"),
            }
        });
    }
}
