//! A validated `send` from claim to ack (SPEC §5). It runs beside the session's read loop,
//! not inside it: the nonce claim and the rate-limit check are Redis round trips in
//! distributed mode, and awaiting them in the loop capped every connection at one send per
//! round trip (50 connections with 16 sends in flight each: ~7 k acked/s, gateways 16 % busy).
//! A turn passed from each send to the next keeps appends in the order the client sent them.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

use aurora_core::model::{new_message_id, Submission, UserRef};
use aurora_core::ports::{Claim, PortError};
use aurora_core::protocol::{ErrorCode, ServerFrame};
use aurora_core::ratelimit::{Decision, RateLimit};

use crate::state::AppState;

/// Held by the previous send until it has appended (or decided not to).
pub(super) type Turn = oneshot::Receiver<()>;
/// Released by this send once it has appended (or decided not to).
pub(super) type TurnDone = oneshot::Sender<()>;

pub(super) struct SendJob {
    pub state: Arc<AppState>,
    pub user: UserRef,
    pub room: String,
    pub reference: Option<String>,
    pub body: String,
    pub nonce: Option<String>,
    pub limit: RateLimit,
    pub managed: bool,
    pub received: Instant,
}

/// What the claim and the rate limit decided.
struct Admitted {
    id: String,
    retry: bool,
    /// The token returned when the log refuses the message.
    refund: Option<RateLimit>,
}

impl SendJob {
    /// Returns the reply frame: `ack`, or the error that says why nothing was accepted.
    pub async fn run(self, turn: Option<Turn>, done: TurnDone) -> String {
        let admitted = self.admit().await;
        if let Some(turn) = turn {
            // Err: the previous send is gone (its session ended), so nothing is before us.
            let _ = turn.await;
        }
        let Admitted { id, retry, refund } = match admitted {
            Ok(a) => a,
            Err(reply) => return reply,
        };
        let backend = &self.state.backend;
        let submission = Submission {
            id: id.clone(),
            room: self.room.clone(),
            user: self.user.clone(),
            body: self.body.clone(),
            ts: aurora_core::now_ms(),
            nonce: self.nonce.clone(),
            managed: self.managed,
            retry,
        };
        let accepted = backend.log.append(submission);
        drop(done);
        match accepted.await {
            Ok(()) => {
                self.state.metrics.messages_accepted.inc();
                self.state.metrics.ack_seconds.observe(self.received.elapsed().as_secs_f64());
                self.ack(&id)
            }
            Err(e) => {
                tracing::warn!(room = %self.room, error = %e, "message not accepted");
                if let Some(limit) = refund {
                    let _ = backend.limiter.refund(&self.user.id, &self.room, limit).await;
                }
                let message = "the message log is unavailable; nothing was accepted, try again";
                self.error(ErrorCode::Unavailable, message, None)
            }
        }
    }

    /// Claims the nonce and takes a rate-limit token; `Err` holds the reply of a refused send.
    async fn admit(&self) -> Result<Admitted, String> {
        let backend = &self.state.backend;
        let id = new_message_id();
        if let Some(n) = &self.nonce {
            match backend.nonces.claim(&self.user.id, &self.room, n, &id).await {
                Ok(Claim::New) => {}
                Ok(Claim::Stored(first)) => return Err(self.ack(&first)),
                // The first attempt may never have reached the log (its gateway died):
                // append again under the same id; the fan-out tier stores an id once.
                Ok(Claim::Existing(first)) => return Ok(Admitted { id: first, retry: true, refund: None }),
                Err(e) => return Err(self.unavailable(e)),
            }
        }
        let refused = match backend.limiter.acquire(&self.user.id, &self.room, self.limit).await {
            Ok(Decision::Allowed) => None,
            Ok(Decision::Limited { retry_after }) => Some(self.rate_limited(retry_after)),
            Err(e) => Some(self.unavailable(e)),
        };
        if let Some(reply) = refused {
            if let Some(n) = &self.nonce {
                let _ = backend.nonces.release(&self.user.id, &self.room, n).await;
            }
            return Err(reply);
        }
        // A failed append may still have reached the log (Kafka times out a request the
        // broker wrote before it died): a send with a nonce keeps its claim and its token,
        // so the retry re-appends under the same id and is stored once. Without a nonce the
        // client's retry is a new message anyway, and the token comes back.
        Ok(Admitted { id, retry: false, refund: self.nonce.is_none().then_some(self.limit) })
    }

    fn ack(&self, id: &str) -> String {
        ServerFrame::Ack { reference: self.reference.as_deref(), room: &self.room, id, nonce: self.nonce.as_deref() }
            .encode()
    }

    fn rate_limited(&self, retry_after: Duration) -> String {
        let message = "too many messages; wait before sending again";
        self.error(ErrorCode::RateLimited, message, Some(retry_after.as_millis().max(1) as u64))
    }

    fn unavailable(&self, e: PortError) -> String {
        if let PortError::Corrupt(_) = e {
            tracing::error!(room = %self.room, error = %e, "corrupt record");
            return self.error(ErrorCode::Internal, "internal error", None);
        }
        tracing::warn!(room = %self.room, error = %e, "dependency failed");
        self.error(ErrorCode::Unavailable, "a dependency is unavailable; nothing was accepted, try again", None)
    }

    fn error(&self, code: ErrorCode, message: &str, retry_after_ms: Option<u64>) -> String {
        self.state.metrics.errors.with_label_values(&[code.as_str()]).inc();
        let reference = self.reference.as_deref();
        ServerFrame::Error { code, message, reference, room: Some(&self.room), retry_after_ms }.encode()
    }
}
