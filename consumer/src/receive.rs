//! Receiving from a group consumer without parking on a missed wake-up.

use rdkafka::consumer::{ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::message::BorrowedMessage;
use std::future::Future;
use std::time::Duration;

/// How often a waiting receive polls the consumer's queue again by itself.
const REPOLL: Duration = Duration::from_millis(250);

/// The next record or error, never parked for long on a missed wake-up.
///
/// rust-rdkafka wakes a waiting `recv` from librdkafka's "queue non-empty" callback, which
/// fires on the queue's empty → non-empty edge only; a missed edge parks the stream until its
/// own fallback wake-up at `max.poll.interval.ms` / 2, 2½ minutes (fede1024/rust-rdkafka#665,
/// #840). A fan-out consumer seen in the Kafka-outage test neither reported the outage nor
/// read again for over a minute after the broker came back. Polling again is safe: a `recv`
/// dropped before it returns takes nothing off the queue.
pub(crate) async fn next<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
) -> KafkaResult<BorrowedMessage<'_>> {
    repolled(|| consumer.recv()).await
}

/// `recv()`'s output, asking again every [`REPOLL`] whether or not it was woken.
async fn repolled<F: Future>(mut recv: impl FnMut() -> F) -> F::Output {
    loop {
        if let Ok(next) = tokio::time::timeout(REPOLL, recv()).await {
            return next;
        }
        if let Some(next) = crate::futures_now(recv()) {
            tracing::debug!("the consumer's queue held a record its wake-up missed");
            return next;
        }
    }
}

/// How long the next batch lingers: `configured` while traffic is steady (the previous
/// batch held more than one record), else not at all, so a lone message never waits.
pub(crate) fn linger(previous: usize, configured: Duration) -> Duration {
    if previous > 1 {
        configured
    } else {
        Duration::ZERO
    }
}

/// Adds to `batch`, up to `max` records, what `recv` has ready and, for `linger` from now,
/// what arrives: a batch that waits a little is one store write instead of several.
/// Stops at the first error; the caller's next receive reports it.
pub(crate) async fn fill<T, E, F: Future<Output = Result<T, E>>>(
    batch: &mut Vec<T>,
    max: usize,
    linger: Duration,
    mut recv: impl FnMut() -> F,
) {
    let until = tokio::time::Instant::now() + linger;
    while batch.len() < max {
        let next = match crate::futures_now(recv()) {
            Some(next) => next,
            None if linger.is_zero() => return,
            None => match tokio::time::timeout_at(until, recv()).await {
                Ok(next) => next,
                Err(_) => return,
            },
        };
        match next {
            Ok(record) => batch.push(record),
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::task::Poll;

    /// A receive on a queue whose record arrives without waking anyone: the lost edge.
    struct Silent(Arc<AtomicBool>);

    impl Future for Silent {
        type Output = u32;
        fn poll(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> Poll<u32> {
            if self.0.load(Ordering::SeqCst) {
                Poll::Ready(7)
            } else {
                Poll::Pending
            }
        }
    }

    fn silent_queue(ready: &Arc<AtomicBool>) -> impl FnMut() -> Silent + '_ {
        || Silent(ready.clone())
    }

    #[tokio::test(start_paused = true)]
    async fn a_record_whose_wake_up_was_lost_is_read_at_the_next_repoll() {
        let ready = Arc::new(AtomicBool::new(false));
        let arrives = tokio::time::Instant::now() + Duration::from_secs(3);
        let setter = ready.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(arrives).await;
            setter.store(true, Ordering::SeqCst);
        });
        let got = tokio::time::timeout(Duration::from_secs(60), repolled(silent_queue(&ready))).await;
        assert_eq!(got, Ok(7), "parked for good on the lost wake-up");
        let late = tokio::time::Instant::now() - arrives;
        assert!(late <= REPOLL, "read {late:?} after it arrived");
    }

    #[tokio::test(start_paused = true)]
    async fn a_record_that_is_there_is_read_at_once() {
        let ready = Arc::new(AtomicBool::new(true));
        let start = tokio::time::Instant::now();
        assert_eq!(repolled(silent_queue(&ready)).await, 7);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    /// A queue whose records arrive at the given milliseconds from the start; a receive
    /// dropped before it returns takes nothing, as with the consumer's.
    fn timed_queue(arrivals: &[u64]) -> impl FnMut() -> std::pin::Pin<Box<dyn Future<Output = Result<u64, ()>>>> {
        let start = tokio::time::Instant::now();
        let queue = std::rc::Rc::new(std::cell::RefCell::new(
            arrivals.iter().copied().collect::<std::collections::VecDeque<u64>>(),
        ));
        move || {
            let queue = queue.clone();
            Box::pin(async move {
                let Some(ms) = queue.borrow().front().copied() else { return std::future::pending().await };
                let at = start + Duration::from_millis(ms);
                if tokio::time::Instant::now() < at {
                    tokio::time::sleep_until(at).await;
                }
                queue.borrow_mut().pop_front();
                Ok(ms)
            })
        }
    }

    #[test]
    fn only_steady_traffic_lingers() {
        let configured = Duration::from_millis(5);
        assert_eq!(linger(0, configured), Duration::ZERO, "the first batch");
        assert_eq!(linger(1, configured), Duration::ZERO, "after a lone message");
        assert_eq!(linger(2, configured), configured);
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_linger_a_batch_is_what_has_arrived() {
        let mut recv = timed_queue(&[0, 0, 3]);
        let mut batch = Vec::new();
        fill(&mut batch, 10, Duration::ZERO, &mut recv).await;
        assert_eq!(batch, vec![0, 0], "took a record that had not arrived");
    }

    #[tokio::test(start_paused = true)]
    async fn a_lingering_batch_takes_what_arrives_within_the_linger_and_no_more() {
        let start = tokio::time::Instant::now();
        let mut recv = timed_queue(&[0, 2, 4, 9]);
        let mut batch = Vec::new();
        fill(&mut batch, 10, Duration::from_millis(5), &mut recv).await;
        assert_eq!(batch, vec![0, 2, 4]);
        assert_eq!(start.elapsed(), Duration::from_millis(5), "waited past the linger");
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_does_not_wait_out_the_linger() {
        let start = tokio::time::Instant::now();
        let mut recv = timed_queue(&[0, 1, 2, 3]);
        let mut batch = Vec::new();
        fill(&mut batch, 3, Duration::from_millis(50), &mut recv).await;
        assert_eq!(batch, vec![0, 1, 2]);
        assert_eq!(start.elapsed(), Duration::from_millis(2));
    }
}
