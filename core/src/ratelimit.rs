//! Token-bucket rate limits: `n` messages, refilled continuously at `n` per `period`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A limit of `messages` per `period`, written `10/10s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub messages: u32,
    pub period: Duration,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("expected a rate like 10/10s (messages/period, messages >= 1, period > 0)")]
pub struct ParseRateLimitError;

impl FromStr for RateLimit {
    type Err = ParseRateLimitError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (n, p) = s.trim().split_once('/').ok_or(ParseRateLimitError)?;
        let messages: u32 = n.trim().parse().map_err(|_| ParseRateLimitError)?;
        let period = humantime::parse_duration(p.trim()).map_err(|_| ParseRateLimitError)?;
        if messages == 0 || period.is_zero() {
            return Err(ParseRateLimitError);
        }
        Ok(RateLimit { messages, period })
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.messages, humantime::format_duration(self.period))
    }
}

impl Serialize for RateLimit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RateLimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The outcome of asking for one token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// No token; one will be available after this long.
    Limited {
        retry_after: Duration,
    },
}

/// Bucket state; time is in milliseconds on any monotonic clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub tokens: f64,
    pub at_ms: f64,
}

impl Bucket {
    pub fn full(limit: RateLimit, now_ms: f64) -> Self {
        Bucket { tokens: f64::from(limit.messages), at_ms: now_ms }
    }

    fn refill(&mut self, limit: RateLimit, now_ms: f64) {
        let cap = f64::from(limit.messages);
        let rate = cap / limit.period.as_secs_f64() / 1000.0; // tokens per ms
        let elapsed = (now_ms - self.at_ms).max(0.0);
        self.tokens = (self.tokens + elapsed * rate).min(cap);
        self.at_ms = now_ms;
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, limit: RateLimit, now_ms: f64) -> Decision {
        self.refill(limit, now_ms);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Decision::Allowed
        } else {
            let rate = f64::from(limit.messages) / limit.period.as_secs_f64() / 1000.0;
            let wait_ms = ((1.0 - self.tokens) / rate).ceil().max(1.0);
            Decision::Limited { retry_after: Duration::from_millis(wait_ms as u64) }
        }
    }

    /// Gives back a token taken for a message that was not accepted after all.
    pub fn refund(&mut self, limit: RateLimit, now_ms: f64) {
        self.refill(limit, now_ms);
        self.tokens = (self.tokens + 1.0).min(f64::from(limit.messages));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let r: RateLimit = "10/10s".parse().unwrap();
        assert_eq!(r, RateLimit { messages: 10, period: Duration::from_secs(10) });
        assert_eq!(r.to_string(), "10/10s");
        assert!("0/10s".parse::<RateLimit>().is_err());
        assert!("10/0s".parse::<RateLimit>().is_err());
        assert!("10".parse::<RateLimit>().is_err());
        assert!("x/1s".parse::<RateLimit>().is_err());
    }

    #[test]
    fn bucket_limits_and_refills_continuously() {
        let limit: RateLimit = "2/1s".parse().unwrap();
        let mut b = Bucket::full(limit, 0.0);
        assert_eq!(b.take(limit, 0.0), Decision::Allowed);
        assert_eq!(b.take(limit, 0.0), Decision::Allowed);
        assert_eq!(b.take(limit, 0.0), Decision::Limited { retry_after: Duration::from_millis(500) });
        // Half a period later one token is back.
        assert_eq!(b.take(limit, 500.0), Decision::Allowed);
        assert!(matches!(b.take(limit, 600.0), Decision::Limited { .. }));
        b.refund(limit, 600.0);
        assert_eq!(b.take(limit, 600.0), Decision::Allowed);
        // Never more than capacity.
        let mut b = Bucket::full(limit, 0.0);
        b.refund(limit, 10_000.0);
        assert_eq!(b.tokens, 2.0);
    }
}
