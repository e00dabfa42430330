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
}
