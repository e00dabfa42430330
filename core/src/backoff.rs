//! The one retry delay every reconnect loop uses: exponential, capped, with "equal
//! jitter" (the n-th delay is uniform in [d/2, d], d = min(cap, base·2ⁿ)), so processes that
//! lost a dependency together do not all come back in the same instant.

use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Retry delays for one loop; [`Backoff::reset`] after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

/// The delay of `attempt` (0-based) for a uniform `unit` in [0, 1).
pub fn delay_for(base: Duration, cap: Duration, attempt: u32, unit: f64) -> Duration {
    let full = base.saturating_mul(1u32 << attempt.min(20)).min(cap);
    let half = full / 2;
    half + half.mul_f64(unit.clamp(0.0, 1.0))
}

/// A jittered delay of `attempt` (0-based), for loops that keep their own count.
pub fn jittered(base: Duration, cap: Duration, attempt: u32) -> Duration {
    use rand::Rng;
    delay_for(base, cap, attempt, rand::thread_rng().gen::<f64>())
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Backoff { base, cap: cap.max(base), attempt: 0 }
    }

    /// 100 ms doubling to 5 s: reconnecting to Redis, Kafka or MongoDB.
    pub fn reconnect() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(5))
    }

    /// The next delay; each call doubles the range up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let d = jittered(self.base, self.cap, self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        d
    }

    /// Failures since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Sleeps the next delay; false (at once) when `stop` is cancelled first.
    pub async fn wait(&mut self, stop: &CancellationToken) -> bool {
        let delay = self.next_delay();
        tokio::select! {
            _ = stop.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_within_their_jitter_and_stop_at_the_cap() {
        let (base, cap) = (Duration::from_millis(100), Duration::from_secs(5));
        assert_eq!(delay_for(base, cap, 0, 0.0), Duration::from_millis(50));
        assert_eq!(delay_for(base, cap, 0, 1.0), Duration::from_millis(100));
        assert_eq!(delay_for(base, cap, 3, 0.5), Duration::from_millis(600));
        assert_eq!(delay_for(base, cap, 30, 1.0), cap);
        assert_eq!(delay_for(base, cap, 30, 0.0), cap / 2);
    }

    #[test]
    fn consecutive_delays_spread_and_reset() {
        let mut b = Backoff::reconnect();
        let first: Vec<Duration> = (0..6).map(|_| b.next_delay()).collect();
        for (n, d) in first.iter().enumerate() {
            let full = Duration::from_millis(100 * (1 << n)).min(Duration::from_secs(5));
            assert!(*d >= full / 2 && *d <= full, "attempt {n}: {d:?}");
        }
        assert_eq!(b.attempts(), 6);
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
        // Jitter: a thousand first retries do not land on one instant.
        let distinct: std::collections::HashSet<u128> =
            (0..1000).map(|_| Backoff::reconnect().next_delay().as_micros()).collect();
        assert!(distinct.len() > 500, "{} distinct delays", distinct.len());
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_ends_at_once_on_cancel() {
        let stop = CancellationToken::new();
        let mut b = Backoff::new(Duration::from_secs(60), Duration::from_secs(60));
        let started = tokio::time::Instant::now();
        stop.cancel();
        assert!(!b.wait(&stop).await);
        assert_eq!(started.elapsed(), Duration::ZERO);
        let fresh = CancellationToken::new();
        assert!(b.wait(&fresh).await, "an uncancelled wait sleeps its delay");
        assert!(started.elapsed() >= Duration::from_secs(30));
    }
}
