//! A send's admission in Redis: its nonce claim and its rate-limit token in one script, and
//! the sends a gateway admits at the same moment in one call of it.

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::Script;
use std::sync::LazyLock;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

use super::redis_bus::redis_err;
use super::redis_state::{bucket_key, nonce_key, BUCKET_FN};
use crate::ports::{Admission, Admit, Claim, PortError, PortResult, NONCE_TTL};
use crate::ratelimit::{Decision, RateLimit};

/// Most sends in one script call: Redis runs a script alone, and 128 of them take it well
/// under a millisecond.
const MAX_BATCH: usize = 128;

/// Admissions waiting for the batcher; a full queue answers `overloaded` at once.
const QUEUE: usize = 8192;

/// Sends in order, two keys each (`KEYS[2i-1]` the bucket, `KEYS[2i]` the nonce or `''`) and
/// four arguments (capacity, period ms, offered id, nonce TTL s). For each, `1, first id` for a
/// retry of a known nonce (no token taken) or `0, wait ms` for a new one (0: allowed; a
/// limited send's claim is released). One after the other, so two sends of one bucket in a
/// call see each other's token.
static ADMIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{BUCKET_FN}{}",
        r"
local out, now = {}, now_ms()
for i = 1, #KEYS / 2 do
  local bkey, nonce, a = KEYS[2 * i - 1], KEYS[2 * i], 4 * (i - 1)
  local id = ARGV[a + 3]
  local first = nil
  if nonce ~= '' and not redis.call('SET', nonce, id, 'NX', 'EX', tonumber(ARGV[a + 4])) then
    first = redis.call('GET', nonce)
    if first == id then first = nil end
  end
  if first then
    out[#out + 1] = 1
    out[#out + 1] = first
  else
    local wait = bucket(bkey, tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), 'take', now)
    if wait > 0 and nonce ~= '' then redis.call('DEL', nonce) end
    out[#out + 1] = 0
    out[#out + 1] = tostring(wait)
  end
end
return out
"
    ))
});

struct Request {
    bucket: String,
    nonce: Option<String>,
    id: String,
    limit: RateLimit,
    reply: oneshot::Sender<PortResult<Admit>>,
}

/// [`Admission`] in Redis, shared by every gateway ([`super::RedisNonces`]'s and
/// [`super::RedisRateLimiter`]'s keys, so the three agree; a single Redis, not a cluster).
/// One task sends the admissions: whatever queued while its previous call was out goes in the
/// next one, so a busy gateway makes one round trip for many sends and an idle one still one
/// per send, without waiting.
pub struct RedisAdmission {
    queue: mpsc::Sender<Request>,
}

impl RedisAdmission {
    /// Starts the batching task on the current runtime; it ends with the last handle.
    pub fn new(conn: ConnectionManager) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(batches(conn, rx));
        RedisAdmission { queue }
    }
}

async fn batches(conn: ConnectionManager, mut rx: mpsc::Receiver<Request>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let answers = admit_all(conn.clone(), &batch).await;
        for (request, answer) in batch.drain(..).zip(answers) {
            let _ = request.reply.send(answer);
        }
    }
}

/// One script call for `batch`: an answer per send, in order.
async fn admit_all(mut conn: ConnectionManager, batch: &[Request]) -> Vec<PortResult<Admit>> {
    let mut call = ADMIT.prepare_invoke();
    for r in batch {
        call.key(&r.bucket)
            .key(r.nonce.as_deref().unwrap_or(""))
            .arg(r.limit.messages)
            .arg(period_ms(r.limit))
            .arg(&r.id)
            .arg(NONCE_TTL.as_secs());
    }
    let flat: Vec<redis::Value> = match call.invoke_async(&mut conn).await {
        Ok(v) => v,
        Err(e) => return vec![Err(redis_err(e)); batch.len()],
    };
    let mut answers: Vec<_> = flat.chunks(2).map(answer).collect();
    answers.resize_with(batch.len(), || Err(PortError::corrupt("the admission script answered fewer sends")));
    answers
}

fn period_ms(limit: RateLimit) -> u64 {
    limit.period.as_millis().max(1) as u64
}

fn answer(pair: &[redis::Value]) -> PortResult<Admit> {
    let [retry, value] = pair else { return Err(PortError::corrupt("odd admission answer")) };
    let retry: i64 = redis::from_redis_value(retry).map_err(PortError::corrupt)?;
    let value: String = redis::from_redis_value(value).map_err(PortError::corrupt)?;
    if retry == 1 {
        return Ok(Admit::Retry(Claim::Existing(value)));
    }
    let wait: u64 = value.parse().map_err(PortError::corrupt)?;
    Ok(Admit::New(match wait {
        0 => Decision::Allowed,
        ms => Decision::Limited { retry_after: Duration::from_millis(ms) },
    }))
}

#[async_trait]
impl Admission for RedisAdmission {
    async fn admit(
        &self,
        user_id: &str,
        room: &str,
        nonce: Option<&str>,
        id: &str,
        limit: RateLimit,
    ) -> PortResult<Admit> {
        let (reply, answer) = oneshot::channel();
        let request = Request {
            bucket: bucket_key(user_id, room),
            nonce: nonce.map(|n| nonce_key(user_id, room, n)),
            id: id.to_owned(),
            limit,
            reply,
        };
        self.queue.try_send(request).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => PortError::Overloaded("admission queue"),
            mpsc::error::TrySendError::Closed(_) => PortError::Stopped("admission batcher"),
        })?;
        answer.await.map_err(|_| PortError::Stopped("admission batcher"))?
    }
}
