//! Shared state in Redis: token buckets, nonces and presence with gateway leases.
//! Keys are prefixed `aurora:`.

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::Script;
use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use super::redis_bus::{redis_err, room_channel};
use crate::model::UserRef;
use crate::ports::{Claim, ConnId, NonceCache, PortResult, Presence, RateLimiter};
use crate::protocol::ServerFrame;
use crate::ratelimit::{Decision, RateLimit};

/// The token bucket in Lua: `bucket(key, capacity, period ms, 'take' | 'refund', now)` returns
/// the wait in ms (0 when allowed); `now_ms()` is Redis's clock.
pub(super) const BUCKET_FN: &str = r"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function bucket(key, cap, period, op, now)
  local rate = cap / period
  local b = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(b[1])
  local ts = tonumber(b[2])
  if tokens == nil or ts == nil then tokens = cap; ts = now end
  tokens = math.min(cap, tokens + math.max(0, now - ts) * rate)
  local wait = 0
  if op == 'refund' then
    tokens = math.min(cap, tokens + 1)
  elseif tokens >= 1 then
    tokens = tokens - 1
  else
    wait = math.max(1, math.ceil((1 - tokens) / rate))
  end
  redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', tostring(now))
  redis.call('PEXPIRE', key, period * 2)
  return wait
end
";

/// One atomic token-bucket check (or refund): KEYS[1], ARGV capacity, period (ms), op.
static BUCKET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{BUCKET_FN}return bucket(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], now_ms())\n"
    ))
});

pub struct RedisRateLimiter {
    conn: ConnectionManager,
}

impl RedisRateLimiter {
    pub fn new(conn: ConnectionManager) -> Self {
        RedisRateLimiter { conn }
    }

    async fn run(&self, user_id: &str, room: &str, limit: RateLimit, op: &str) -> PortResult<u64> {
        let mut conn = self.conn.clone();
        BUCKET
            .key(bucket_key(user_id, room))
            .arg(limit.messages)
            .arg(limit.period.as_millis().max(1) as u64)
            .arg(op)
            .invoke_async::<u64>(&mut conn)
            .await
            .map_err(redis_err)
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn acquire(&self, user_id: &str, room: &str, limit: RateLimit) -> PortResult<Decision> {
        Ok(match self.run(user_id, room, limit, "take").await? {
            0 => Decision::Allowed,
            ms => Decision::Limited { retry_after: Duration::from_millis(ms) },
        })
    }

    async fn refund(&self, user_id: &str, room: &str, limit: RateLimit) -> PortResult<()> {
        self.run(user_id, room, limit, "refund").await.map(|_| ())
    }
}

/// Nonces in Redis (`aurora:nonce:*`, 5 min TTL): shared by every gateway and kept
/// across gateway restarts; keep Redis persistent (AOF) to keep them across its restarts.
pub struct RedisNonces {
    conn: ConnectionManager,
}

impl RedisNonces {
    pub fn new(conn: ConnectionManager) -> Self {
        RedisNonces { conn }
    }
}

pub(super) fn nonce_key(user_id: &str, room: &str, nonce: &str) -> String {
    format!("aurora:nonce:{room}:{user_id}:{nonce}")
}

pub(super) fn bucket_key(user_id: &str, room: &str) -> String {
    format!("aurora:rl:{room}:{user_id}")
}

#[async_trait]
impl NonceCache for RedisNonces {
    async fn claim(&self, user_id: &str, room: &str, nonce: &str, id: &str) -> PortResult<Claim> {
        let mut conn = self.conn.clone();
        let key = nonce_key(user_id, room, nonce);
        let set: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(id)
            .arg("NX")
            .arg("EX")
            .arg(300)
            .query_async(&mut conn)
            .await
            .map_err(redis_err)?;
        if set.is_some() {
            return Ok(Claim::New);
        }
        let first: Option<String> = redis::cmd("GET").arg(&key).query_async(&mut conn).await.map_err(redis_err)?;
        Ok(match first {
            Some(first) if first != id => Claim::Existing(first),
            _ => Claim::New,
        })
    }

    async fn release(&self, user_id: &str, room: &str, nonce: &str) -> PortResult<()> {
        let mut conn = self.conn.clone();
        redis::cmd("DEL")
            .arg(nonce_key(user_id, room, nonce))
            .query_async::<i64>(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(())
    }
}

// Presence: HASH aurora:presence:<room>, field `<gateway>:<conn>`, value `<user id>\t<name>`.
// Each gateway keeps `aurora:gw:<id>` alive (a lease) and lists its rooms in
// `aurora:gwrooms:<id>`; any gateway reaps the entries of a gateway whose lease lapsed.

static JOIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local prefix = ARGV[2] .. '\t'
local first = 1
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do
  if string.sub(v, 1, #prefix) == prefix then first = 0; break end
end
redis.call('HSET', KEYS[1], ARGV[1], prefix .. ARGV[3])
redis.call('SADD', KEYS[2], KEYS[1])
return first
",
    )
});

static LEAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
local prefix = ARGV[2] .. '\t'
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do
  if string.sub(v, 1, #prefix) == prefix then return 0 end
end
return 1
",
    )
});

/// Removes a dead gateway's entries; returns the users who are now gone from the room.
static REAP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local all = redis.call('HGETALL', KEYS[1])
local removed = {}
for i = 1, #all, 2 do
  if string.sub(all[i], 1, #ARGV[1]) == ARGV[1] then
    redis.call('HDEL', KEYS[1], all[i])
    removed[all[i + 1]] = true
  end
end
local still = {}
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do still[string.match(v, '^[^\t]*')] = true end
local gone = {}
for v, _ in pairs(removed) do
  local uid = string.match(v, '^[^\t]*')
  if not still[uid] then table.insert(gone, v); still[uid] = true end
end
return gone
",
    )
});

const GATEWAYS: &str = "aurora:gateways";
const PRESENCE_PREFIX: &str = "aurora:presence:";

fn presence_key(room: &str) -> String {
    format!("{PRESENCE_PREFIX}{room}")
}

fn parse_member(v: &str) -> Option<UserRef> {
    let (id, name) = v.split_once('\t')?;
    Some(UserRef { id: id.into(), name: name.into() })
}

pub struct RedisPresence {
    conn: ConnectionManager,
    gateway: String,
    lease: Duration,
    /// This gateway's entries (presence key → field → value), to re-register
    /// after Redis lost them (a restart without persistence).
    local: std::sync::Mutex<std::collections::HashMap<String, std::collections::HashMap<String, String>>>,
}

impl RedisPresence {
    /// Presence for gateway `gateway`, and the task that renews its lease and reaps
    /// dead gateways (to spawn; runs until aborted).
    pub fn new(
        conn: ConnectionManager,
        gateway: String,
        lease: Duration,
    ) -> (Arc<Self>, impl Future<Output = ()> + Send) {
        let presence = Arc::new(RedisPresence { conn, gateway, lease, local: Default::default() });
        let task = presence.clone().maintain();
        (presence, task)
    }

    fn field(&self, conn: ConnId) -> String {
        format!("{}:{conn}", self.gateway)
    }

    fn rooms_key(gateway: &str) -> String {
        format!("aurora:gwrooms:{gateway}")
    }

    /// Renews the lease; when the lease key was gone, Redis lost our entries (or
    /// another gateway reaped us after a stall), so they are written again.
    async fn renew(&self) -> PortResult<()> {
        let mut conn = self.conn.clone();
        let alive: bool = redis::cmd("EXISTS")
            .arg(format!("aurora:gw:{}", self.gateway))
            .query_async(&mut conn)
            .await
            .map_err(redis_err)?;
        if !alive {
            let entries: Vec<(String, Vec<(String, String)>)> = self
                .local
                .lock()
                .map(|l| {
                    l.iter()
                        .map(|(k, f)| (k.clone(), f.iter().map(|(a, b)| (a.clone(), b.clone())).collect()))
                        .collect()
                })
                .unwrap_or_default();
            if !entries.is_empty() {
                tracing::warn!(
                    rooms = entries.len(),
                    "presence lease was gone; re-registering this gateway's connections"
                );
            }
            let rooms_key = Self::rooms_key(&self.gateway);
            for (key, fields) in entries {
                let mut pipe = redis::pipe();
                for (field, value) in fields {
                    pipe.cmd("HSET").arg(&key).arg(field).arg(value).ignore();
                }
                pipe.cmd("SADD").arg(&rooms_key).arg(&key).ignore();
                pipe.query_async::<()>(&mut conn).await.map_err(redis_err)?;
            }
        }
        redis::pipe()
            .cmd("SET")
            .arg(format!("aurora:gw:{}", self.gateway))
            .arg(1)
            .arg("PX")
            .arg(self.lease.as_millis() as u64)
            .ignore()
            .cmd("SADD")
            .arg(GATEWAYS)
            .arg(&self.gateway)
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(redis_err)
    }

    /// Removes the entries of every gateway whose lease lapsed and announces the leaves.
    pub async fn reap(&self) -> PortResult<usize> {
        let mut conn = self.conn.clone();
        let gateways: Vec<String> =
            redis::cmd("SMEMBERS").arg(GATEWAYS).query_async(&mut conn).await.map_err(redis_err)?;
        let mut reaped = 0;
        for gw in gateways.into_iter().filter(|g| *g != self.gateway) {
            let alive: bool =
                redis::cmd("EXISTS").arg(format!("aurora:gw:{gw}")).query_async(&mut conn).await.map_err(redis_err)?;
            if alive {
                continue;
            }
            let rooms_key = Self::rooms_key(&gw);
            let keys: Vec<String> =
                redis::cmd("SMEMBERS").arg(&rooms_key).query_async(&mut conn).await.map_err(redis_err)?;
            for key in keys {
                let gone: Vec<String> =
                    REAP.key(&key).arg(format!("{gw}:")).invoke_async(&mut conn).await.map_err(redis_err)?;
                let leaves: Vec<UserRef> = gone.iter().filter_map(|v| parse_member(v)).collect();
                let Some(room) = key.strip_prefix(PRESENCE_PREFIX) else { continue };
                if !leaves.is_empty() {
                    let frame = ServerFrame::Presence { room, joins: &[], leaves: &leaves }.encode();
                    redis::cmd("PUBLISH")
                        .arg(room_channel(room))
                        .arg(frame)
                        .query_async::<i64>(&mut conn)
                        .await
                        .map_err(redis_err)?;
                    reaped += leaves.len();
                }
            }
            redis::pipe()
                .cmd("DEL")
                .arg(&rooms_key)
                .ignore()
                .cmd("SREM")
                .arg(GATEWAYS)
                .arg(&gw)
                .ignore()
                .query_async::<()>(&mut conn)
                .await
                .map_err(redis_err)?;
            tracing::info!(gateway = %gw, users = reaped, "reaped presence of a gateway whose lease lapsed");
        }
        Ok(reaped)
    }

    async fn maintain(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.lease / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.renew().await {
                tracing::warn!(error = %e, "presence lease not renewed");
                continue;
            }
            if let Err(e) = self.reap().await {
                tracing::warn!(error = %e, "presence reaping failed");
            }
        }
    }
}

#[async_trait]
impl Presence for RedisPresence {
    async fn join(&self, room: &str, user: &UserRef, conn: ConnId) -> PortResult<bool> {
        let mut c = self.conn.clone();
        let first: i64 = JOIN
            .key(presence_key(room))
            .key(Self::rooms_key(&self.gateway))
            .arg(self.field(conn))
            .arg(&*user.id)
            .arg(&*user.name)
            .invoke_async(&mut c)
            .await
            .map_err(redis_err)?;
        if let Ok(mut local) = self.local.lock() {
            local
                .entry(presence_key(room))
                .or_default()
                .insert(self.field(conn), format!("{}\t{}", user.id, user.name));
        }
        Ok(first == 1)
    }

    async fn leave(&self, room: &str, user: &UserRef, conn: ConnId) -> PortResult<bool> {
        if let Ok(mut local) = self.local.lock() {
            let key = presence_key(room);
            if let Some(fields) = local.get_mut(&key) {
                fields.remove(&self.field(conn));
                if fields.is_empty() {
                    local.remove(&key);
                }
            }
        }
        let mut c = self.conn.clone();
        let last: i64 = LEAVE
            .key(presence_key(room))
            .arg(self.field(conn))
            .arg(&*user.id)
            .invoke_async(&mut c)
            .await
            .map_err(redis_err)?;
        Ok(last == 1)
    }

    async fn members(&self, room: &str) -> PortResult<Vec<UserRef>> {
        let mut c = self.conn.clone();
        let values: Vec<String> =
            redis::cmd("HVALS").arg(presence_key(room)).query_async(&mut c).await.map_err(redis_err)?;
        let mut seen = HashSet::new();
        let mut members: Vec<UserRef> =
            values.iter().filter_map(|v| parse_member(v)).filter(|u| seen.insert(u.id.clone())).collect();
        members.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(members)
    }

    async fn online(&self, room: &str) -> PortResult<usize> {
        Ok(self.members(room).await?.len())
    }
}
