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
use crate::ports::{Admission, Admit, Claim, ConnId, NonceCache, PortResult, Presence, RateLimiter};
use crate::protocol::ServerFrame;
use crate::ratelimit::{Decision, RateLimit};

/// One atomic token-bucket check (or refund) using the server's clock.
/// The token bucket in Lua, on the key `KEYS[bucket]` with ARGV[1] capacity, ARGV[2] period
/// (ms) and ARGV[3] `take` or `refund`; sets `wait` (ms, 0 when allowed). Uses Redis's clock.
macro_rules! bucket_lua {
    ($bucket:literal) => {
        concat!(
            "local t = redis.call('TIME')\n",
            "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n",
            "local cap = tonumber(ARGV[1])\n",
            "local period = tonumber(ARGV[2])\n",
            "local rate = cap / period\n",
            "local b = redis.call('HMGET', KEYS[",
            $bucket,
            "], 'tokens', 'ts')\n",
            "local tokens = tonumber(b[1])\n",
            "local ts = tonumber(b[2])\n",
            "if tokens == nil or ts == nil then tokens = cap; ts = now end\n",
            "tokens = math.min(cap, tokens + math.max(0, now - ts) * rate)\n",
            "local wait = 0\n",
            "if ARGV[3] == 'refund' then\n",
            "  tokens = math.min(cap, tokens + 1)\n",
            "elseif tokens >= 1 then\n",
            "  tokens = tokens - 1\n",
            "else\n",
            "  wait = math.max(1, math.ceil((1 - tokens) / rate))\n",
            "end\n",
            "redis.call('HSET', KEYS[",
            $bucket,
            "], 'tokens', tostring(tokens), 'ts', tostring(now))\n",
            "redis.call('PEXPIRE', KEYS[",
            $bucket,
            "], period * 2)\n",
        )
    };
}

/// One atomic token-bucket check (or refund).
static BUCKET: LazyLock<Script> = LazyLock::new(|| Script::new(concat!(bucket_lua!("1"), "return wait\n")));

/// A send's nonce claim (KEYS[2], ARGV[4] the offered id, ARGV[5] the TTL in seconds) and its
/// token (KEYS[1]) in one atomic step. Returns `{1, first id}` for a retry of a known nonce
/// (no token taken), or `{0, wait}` for a new one (a limited send's claim is released).
static ADMIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        "if KEYS[2] then\n",
        "  if not redis.call('SET', KEYS[2], ARGV[4], 'NX', 'EX', tonumber(ARGV[5])) then\n",
        "    local first = redis.call('GET', KEYS[2])\n",
        "    if first and first ~= ARGV[4] then return {1, first} end\n",
        "  end\n",
        "end\n",
        bucket_lua!("1"),
        "if wait > 0 and KEYS[2] then redis.call('DEL', KEYS[2]) end\n",
        "return {0, tostring(wait)}\n",
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

fn nonce_key(user_id: &str, room: &str, nonce: &str) -> String {
    format!("aurora:nonce:{room}:{user_id}:{nonce}")
}

fn bucket_key(user_id: &str, room: &str) -> String {
    format!("aurora:rl:{room}:{user_id}")
}

/// A send's nonce claim and rate-limit token in one script: one round trip per send. The keys
/// are [`RedisNonces`]'s and [`RedisRateLimiter`]'s, so the three agree (a single Redis, not a
/// cluster: the two keys of a script would have to share a slot there).
pub struct RedisAdmission {
    conn: ConnectionManager,
}

impl RedisAdmission {
    pub fn new(conn: ConnectionManager) -> Self {
        RedisAdmission { conn }
    }
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
        let mut conn = self.conn.clone();
        let mut call = ADMIT.key(bucket_key(user_id, room));
        if let Some(n) = nonce {
            call.key(nonce_key(user_id, room, n));
        }
        let (retry, value): (i64, String) = call
            .arg(limit.messages)
            .arg(limit.period.as_millis().max(1) as u64)
            .arg("take")
            .arg(id)
            .arg(crate::ports::NONCE_TTL.as_secs())
            .invoke_async(&mut conn)
            .await
            .map_err(redis_err)?;
        if retry == 1 {
            return Ok(Admit::Retry(Claim::Existing(value)));
        }
        let wait: u64 = value.parse().map_err(crate::ports::PortError::corrupt)?;
        Ok(Admit::New(match wait {
            0 => Decision::Allowed,
            ms => Decision::Limited { retry_after: Duration::from_millis(ms) },
        }))
    }
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
