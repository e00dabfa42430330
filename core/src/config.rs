//! Configuration, parsed once at start-up from env vars and CLI flags (README, "Configuration").

use clap::{Parser, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::ratelimit::RateLimit;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// One process: in-process log and bus, embedded file store.
    Embedded,
    /// Kafka, Redis and MongoDB.
    Distributed,
}

/// Which browser origins may open `/ws`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// The Origin's host:port must equal the request's Host.
    SameHost,
    Any,
    List(Vec<String>),
}

impl AllowedOrigins {
    fn parse(s: &str) -> Self {
        let s = s.trim();
        if s.is_empty() {
            return AllowedOrigins::SameHost;
        }
        let items: Vec<String> =
            s.split(',').map(|o| o.trim().trim_end_matches('/').to_owned()).filter(|o| !o.is_empty()).collect();
        if items.iter().any(|o| o == "*") {
            AllowedOrigins::Any
        } else {
            AllowedOrigins::List(items)
        }
    }

    /// Whether a browser request with `origin` to `host` may upgrade.
    pub fn allows(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.trim_end_matches('/');
        match self {
            AllowedOrigins::Any => true,
            AllowedOrigins::List(list) => list.iter().any(|o| o.eq_ignore_ascii_case(origin)),
            AllowedOrigins::SameHost => {
                let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or(origin);
                host.is_some_and(|h| h.eq_ignore_ascii_case(origin_host))
            }
        }
    }
}

/// The proxies whose forwarding headers are believed (`AURORA_TRUSTED_PROXIES`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<ipnet::IpNet>);

impl std::str::FromStr for TrustedProxies {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut nets = Vec::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let net = match item.parse::<ipnet::IpNet>() {
                Ok(net) => net,
                Err(_) => item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from).map_err(|_| {
                    format!("AURORA_TRUSTED_PROXIES: {item:?} is not a CIDR like 10.0.0.0/8 or an address")
                })?,
            };
            nets.push(net.trunc());
        }
        Ok(TrustedProxies(nets))
    }
}

impl TrustedProxies {
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// An IPv4 address mapped into IPv6 (`::ffff:a.b.c.d`, a dual-stack socket's peer) as IPv4.
pub fn canonical(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
        v4 => v4,
    }
}

fn duration(var: &'static str) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    move |s| match humantime::parse_duration(s) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(format!("{var}: expected a positive duration like 500ms, 25s or 12h")),
    }
}

fn positive(var: &'static str) -> impl Fn(&str) -> Result<usize, String> + Clone + Send + Sync + 'static {
    move |s| match s.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{var}: expected a positive whole number")),
    }
}

fn rate(var: &'static str) -> impl Fn(&str) -> Result<RateLimit, String> + Clone + Send + Sync + 'static {
    move |s| s.parse().map_err(|e| format!("{var}: {e}"))
}

fn listen(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| "AURORA_LISTEN: expected host:port like 127.0.0.1:8080".to_owned())
}

fn proxies(s: &str) -> Result<TrustedProxies, String> {
    s.parse()
}

fn origins(s: &str) -> Result<AllowedOrigins, String> {
    Ok(AllowedOrigins::parse(s))
}

#[derive(Debug, Clone, Parser)]
#[command(name = "aurora-gateway", version, about = "AuroraChat gateway")]
pub struct Config {
    /// embedded (one process, file store) or distributed (Kafka, Redis, MongoDB).
    #[arg(long, env = "AURORA_MODE", value_enum, default_value_t = Mode::Embedded)]
    pub mode: Mode,
    /// HTTP + WebSocket listen address.
    #[arg(long, env = "AURORA_LISTEN", default_value = "127.0.0.1:8080", value_parser = listen)]
    pub listen: SocketAddr,
    /// Embedded mode storage directory.
    #[arg(long, env = "AURORA_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// HS256 key, at least 32 bytes.
    #[arg(long, env = "AURORA_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// File holding the HS256 key.
    #[arg(long, env = "AURORA_JWT_SECRET_FILE")]
    pub jwt_secret_file: Option<PathBuf>,
    /// Access-token lifetime; a live connection renews with the `auth` frame.
    #[arg(long, env = "AURORA_JWT_TTL", default_value = "15m", value_parser = duration("AURORA_JWT_TTL"))]
    pub jwt_ttl: Duration,
    /// Session lifetime: how long a refresh token keeps a user signed in.
    #[arg(long, env = "AURORA_REFRESH_TTL", default_value = "30d", value_parser = duration("AURORA_REFRESH_TTL"))]
    pub refresh_ttl: Duration,
    /// Comma list of CIDRs (or addresses) of the proxies in front of the gateway (the
    /// ingress): only their `X-Forwarded-For`/`Forwarded` headers are believed.
    #[arg(long, env = "AURORA_TRUSTED_PROXIES", default_value = "", value_parser = proxies)]
    pub trusted_proxies: TrustedProxies,
    /// Accept `/ws?token=<jwt>` (old clients); browsers use `?ticket=` instead.
    #[arg(long, env = "AURORA_ALLOW_TOKEN_IN_URL", default_value_t = false, action = clap::ArgAction::Set)]
    pub allow_token_in_url: bool,
    #[arg(long, env = "AURORA_HEARTBEAT_INTERVAL", default_value = "25s", value_parser = duration("AURORA_HEARTBEAT_INTERVAL"))]
    pub heartbeat_interval: Duration,
    #[arg(long, env = "AURORA_HEARTBEAT_TIMEOUT", default_value = "20s", value_parser = duration("AURORA_HEARTBEAT_TIMEOUT"))]
    pub heartbeat_timeout: Duration,
    /// Per user per room token bucket, `messages/period`.
    #[arg(long, env = "AURORA_RATE_LIMIT", default_value = "10/10s", value_parser = rate("AURORA_RATE_LIMIT"))]
    pub rate_limit: RateLimit,
    /// Per connection per room: `typing` frames beyond this are dropped silently.
    #[arg(long, env = "AURORA_TYPING_RATE", default_value = "1/2s", value_parser = rate("AURORA_TYPING_RATE"))]
    pub typing_rate: RateLimit,
    /// Per connection per room: `join`s beyond this (each may broadcast presence) get `rate_limited`.
    #[arg(long, env = "AURORA_JOIN_RATE", default_value = "10/10s", value_parser = rate("AURORA_JOIN_RATE"))]
    pub join_rate: RateLimit,
    /// A connection must send a request's headers within this (also the idle keep-alive limit).
    #[arg(long, env = "AURORA_HEADER_TIMEOUT", default_value = "10s", value_parser = duration("AURORA_HEADER_TIMEOUT"))]
    pub header_timeout: Duration,
    /// A REST request (reading its body included) must finish within this, else 408.
    #[arg(long, env = "AURORA_REQUEST_TIMEOUT", default_value = "30s", value_parser = duration("AURORA_REQUEST_TIMEOUT"))]
    pub request_timeout: Duration,
    /// Open connections (HTTP and WebSocket) per source address; more get 429 and a close.
    #[arg(long, env = "AURORA_MAX_CONNECTIONS_PER_ADDRESS", default_value = "1000", value_parser = positive("AURORA_MAX_CONNECTIONS_PER_ADDRESS"))]
    pub max_connections_per_address: usize,
    /// File descriptors kept for probes: within this of the open-file limit, new
    /// connections only get `/healthz` and `/readyz`, with a 1 s header timeout.
    #[arg(long, env = "AURORA_FD_RESERVE", default_value = "64")]
    pub fd_reserve: usize,
    /// Login attempts per source address.
    #[arg(long, env = "AURORA_LOGIN_RATE", default_value = "30/1m", value_parser = rate("AURORA_LOGIN_RATE"))]
    pub login_rate: RateLimit,
    /// Failed logins per account per source address (a correct password takes no token),
    /// so a guesser is slowed without locking the owner out from elsewhere.
    #[arg(long, env = "AURORA_LOGIN_FAILURE_RATE", default_value = "5/1m", value_parser = rate("AURORA_LOGIN_FAILURE_RATE"))]
    pub login_failure_rate: RateLimit,
    /// Registrations per source address.
    #[arg(long, env = "AURORA_REGISTER_RATE", default_value = "10/1m", value_parser = rate("AURORA_REGISTER_RATE"))]
    pub register_rate: RateLimit,
    /// `POST /api/rooms` per user.
    #[arg(long, env = "AURORA_ROOM_CREATE_RATE", default_value = "10/1m", value_parser = rate("AURORA_ROOM_CREATE_RATE"))]
    pub room_create_rate: RateLimit,
    /// Rooms one user may create in all.
    #[arg(long, env = "AURORA_MAX_ROOMS_PER_USER", default_value = "100", value_parser = positive("AURORA_MAX_ROOMS_PER_USER"))]
    pub max_rooms_per_user: usize,
    /// Messages delivered on join (K).
    #[arg(long, env = "AURORA_HISTORY_SIZE", default_value = "50", value_parser = positive("AURORA_HISTORY_SIZE"))]
    pub history_size: usize,
    /// Max UTF-8 bytes of a message body.
    #[arg(long, env = "AURORA_MAX_MESSAGE_BYTES", default_value = "4096", value_parser = positive("AURORA_MAX_MESSAGE_BYTES"))]
    pub max_message_bytes: usize,
    /// How long after sending its author may edit a message (a ChatRoom's `editWindow`
    /// replaces it for that room).
    #[arg(long, env = "AURORA_EDIT_WINDOW", default_value = "24h", value_parser = duration("AURORA_EDIT_WINDOW"))]
    pub edit_window: Duration,
    /// Distinct reactions one message may have (a ChatRoom's `maxReactions` replaces it).
    #[arg(long, env = "AURORA_MAX_REACTIONS", default_value = "20", value_parser = positive("AURORA_MAX_REACTIONS"))]
    pub max_reactions: usize,
    /// Comma list of allowed Origins for /ws; `*` allows all; empty: same host.
    #[arg(long, env = "AURORA_ALLOWED_ORIGINS", default_value = "", value_parser = origins)]
    pub allowed_origins: AllowedOrigins,
    /// Server API keys (docs/server-api.md): a YAML file of names, scopes and key hashes,
    /// read again within 2 s of a change. Unset: `/api/server/...` answers 401.
    #[arg(long, env = "AURORA_API_KEYS_FILE")]
    pub api_keys_file: Option<PathBuf>,
    /// Rooms that always exist.
    #[arg(long, env = "AURORA_DEFAULT_ROOMS", default_value = "general", value_delimiter = ',')]
    pub default_rooms: Vec<String>,
    /// Per-connection outbound queue length; overflow closes with 4008. Slots hold
    /// pointers to shared frames and are allocated as used, so idle sockets pay nothing.
    #[arg(long, env = "AURORA_OUTBOUND_QUEUE", default_value = "4096", value_parser = positive("AURORA_OUTBOUND_QUEUE"))]
    pub outbound_queue: usize,
    /// Threads that run connections (tokio workers); unset = one per core the process may
    /// use (its CPU affinity and cgroup quota). With one, the gateway runs tokio's current-thread
    /// scheduler: a broadcast's wake-ups then queue in one list instead of overflowing a
    /// worker's local queue (256) into the shared one, which cut the p99 at 800 msg/s × 1,000
    /// members by about a quarter on one core (docs/benchmarks.md).
    #[arg(long, env = "AURORA_WORKER_THREADS", value_parser = positive("AURORA_WORKER_THREADS"))]
    pub worker_threads: Option<usize>,
    /// On drain (SIGTERM) each client is told to reconnect at a random moment within this
    /// (the close reason of 1001 carries it), so a gateway's clients do not all return at once.
    #[arg(long, env = "AURORA_RECONNECT_WINDOW", default_value = "10s", value_parser = duration("AURORA_RECONNECT_WINDOW"))]
    pub reconnect_window: Duration,
    /// WebSocket upgrades this gateway accepts, `n/period`; beyond it 503 with
    /// `Retry-After`, so a mass reconnect cannot starve the connected clients.
    #[arg(long, env = "AURORA_UPGRADE_RATE", default_value = "1000/1s", value_parser = rate("AURORA_UPGRADE_RATE"))]
    pub upgrade_rate: RateLimit,
    /// How long a dependency may be unreachable before `/readyz` answers 503: a blip keeps
    /// every gateway in the Service (sends answer `unavailable` meanwhile).
    #[arg(long, env = "AURORA_READY_GRACE", default_value = "30s", value_parser = duration("AURORA_READY_GRACE"))]
    pub ready_grace: Duration,
    /// How long SIGTERM waits for connections to close.
    #[arg(long, env = "AURORA_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = duration("AURORA_SHUTDOWN_TIMEOUT"))]
    pub shutdown_timeout: Duration,
    #[arg(long, env = "AURORA_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub kafka_brokers: String,
    /// Partitions of the shared topic `aurora.messages` when it is created.
    #[arg(long, env = "AURORA_KAFKA_PARTITIONS", default_value = "12", value_parser = positive("AURORA_KAFKA_PARTITIONS"))]
    pub kafka_partitions: usize,
    /// Replication factor of `aurora.messages` when it is created (3 on a three-broker cluster).
    #[arg(long, env = "AURORA_KAFKA_REPLICATION", default_value = "1", value_parser = positive("AURORA_KAFKA_REPLICATION"))]
    pub kafka_replication: usize,
    /// Write `member.joined` / `member.left` (a user's first connection into a room, their
    /// last one out) to `aurora.events` for webhooks. Distributed mode; the chart turns it
    /// on with webhooks.
    #[arg(long, env = "AURORA_MEMBER_EVENTS", default_value_t = false)]
    pub member_events: bool,
    /// A gateway's presence lease in Redis; a dead gateway's users leave within 2x this.
    #[arg(long, env = "AURORA_PRESENCE_LEASE", default_value = "10s", value_parser = duration("AURORA_PRESENCE_LEASE"))]
    pub presence_lease: Duration,
    /// How often a gateway re-reads every room's configuration (announcements on
    /// `aurora:control` apply at once; this heals a missed one).
    #[arg(long, env = "AURORA_ROOM_REFRESH", default_value = "30s", value_parser = duration("AURORA_ROOM_REFRESH"))]
    pub room_refresh: Duration,
    #[arg(long, env = "AURORA_REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    #[arg(long, env = "AURORA_MONGODB_URI", default_value = "mongodb://127.0.0.1:27017")]
    pub mongodb_uri: String,
}

/// Where the distributed services are: flags shared by the consumer and the operator.
#[derive(Debug, Clone, clap::Args)]
pub struct ServiceArgs {
    #[arg(long, env = "AURORA_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub kafka_brokers: String,
    #[arg(long, env = "AURORA_REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    #[arg(long, env = "AURORA_MONGODB_URI", default_value = "mongodb://127.0.0.1:27017")]
    pub mongodb_uri: String,
    /// Partitions of `aurora.messages` when it is created.
    #[arg(long, env = "AURORA_KAFKA_PARTITIONS", default_value_t = 12)]
    pub kafka_partitions: i32,
    /// Replication factor of `aurora.messages` when it is created (3 on a three-broker cluster).
    #[arg(long, env = "AURORA_KAFKA_REPLICATION", default_value_t = 1)]
    pub kafka_replication: i32,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("AURORA_JWT_SECRET must be at least 32 bytes")]
    ShortSecret,
    #[error("AURORA_JWT_SECRET_FILE: cannot read {path}: {source}")]
    SecretFile { path: PathBuf, source: std::io::Error },
    #[error("AURORA_JWT_SECRET or AURORA_JWT_SECRET_FILE is required in distributed mode")]
    MissingSecret,
    #[error("AURORA_DEFAULT_ROOMS: {0:?} is not a valid room name")]
    BadDefaultRoom(String),
}

impl Config {
    /// Checks rules that span fields; call once after parsing.
    pub fn validate(&mut self) -> Result<(), ConfigError> {
        self.default_rooms.retain(|r| !r.trim().is_empty());
        for r in &mut self.default_rooms {
            *r = r.trim().to_owned();
            if crate::validate::room_name(r).is_err() {
                return Err(ConfigError::BadDefaultRoom(r.clone()));
            }
        }
        if self.mode == Mode::Distributed && self.configured_secret()?.is_none() {
            return Err(ConfigError::MissingSecret);
        }
        self.configured_secret()?;
        Ok(())
    }

    /// Worker threads to run: `AURORA_WORKER_THREADS`, or the cores this process may use.
    pub fn workers(&self) -> usize {
        self.worker_threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// The key from `AURORA_JWT_SECRET` or `AURORA_JWT_SECRET_FILE`, if set.
    pub fn configured_secret(&self) -> Result<Option<Vec<u8>>, ConfigError> {
        let secret = if let Some(s) = &self.jwt_secret {
            s.as_bytes().to_vec()
        } else if let Some(path) = &self.jwt_secret_file {
            let raw = std::fs::read(path).map_err(|source| ConfigError::SecretFile { path: path.clone(), source })?;
            raw.trim_ascii().to_vec()
        } else {
            return Ok(None);
        };
        if secret.len() < 32 {
            return Err(ConfigError::ShortSecret);
        }
        Ok(Some(secret))
    }

    #[cfg(feature = "distributed")]
    pub fn endpoints(&self) -> crate::distributed::Endpoints {
        crate::distributed::Endpoints {
            kafka_brokers: self.kafka_brokers.clone(),
            redis_url: self.redis_url.clone(),
            mongodb_uri: self.mongodb_uri.clone(),
            partitions: self.kafka_partitions.min(i32::MAX as usize) as i32,
            replication: self.kafka_replication.min(i32::MAX as usize) as i32,
            member_events: self.member_events,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_spec() {
        let c = Config::try_parse_from(["x"]).unwrap();
        assert_eq!(c.mode, Mode::Embedded);
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.heartbeat_interval, Duration::from_secs(25));
        assert_eq!(c.heartbeat_timeout, Duration::from_secs(20));
        assert_eq!(c.jwt_ttl, Duration::from_secs(15 * 60));
        assert_eq!(c.refresh_ttl, Duration::from_secs(30 * 24 * 3600));
        assert!(c.trusted_proxies.is_empty());
        assert!(!c.allow_token_in_url);
        assert_eq!(c.rate_limit.to_string(), "10/10s");
        assert_eq!(c.history_size, 50);
        assert_eq!(c.max_message_bytes, 4096);
        assert_eq!(c.default_rooms, vec!["general"]);
        assert_eq!(c.allowed_origins, AllowedOrigins::SameHost);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = Config::try_parse_from(["x", "--heartbeat-interval", "soon"]).unwrap_err().to_string();
        assert!(e.contains("AURORA_HEARTBEAT_INTERVAL"), "{e}");
        let e = Config::try_parse_from(["x", "--rate-limit", "lots"]).unwrap_err().to_string();
        assert!(e.contains("AURORA_RATE_LIMIT"), "{e}");
        let e = Config::try_parse_from(["x", "--typing-rate", "lots"]).unwrap_err().to_string();
        assert!(e.contains("AURORA_TYPING_RATE") && !e.contains("AURORA_RATE_LIMIT"), "{e}");
        let e = Config::try_parse_from(["x", "--listen", "nowhere"]).unwrap_err().to_string();
        assert!(e.contains("AURORA_LISTEN"), "{e}");
        let mut c = Config::try_parse_from(["x", "--jwt-secret", "short"]).unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("AURORA_JWT_SECRET"));
        let mut c = Config::try_parse_from(["x", "--mode", "distributed"]).unwrap();
        assert!(matches!(c.validate(), Err(ConfigError::MissingSecret)));
        let mut c = Config::try_parse_from(["x", "--default-rooms", "ok,Not Ok"]).unwrap();
        assert!(matches!(c.validate(), Err(ConfigError::BadDefaultRoom(_))));
    }

    #[test]
    fn worker_threads_default_to_the_cores_the_process_may_use() {
        let c = Config::try_parse_from(["x"]).unwrap();
        let cores = std::thread::available_parallelism().unwrap().get();
        assert_eq!(c.workers(), cores);
        let c = Config::try_parse_from(["x", "--worker-threads", "3"]).unwrap();
        assert_eq!(c.workers(), 3);
        for bad in ["many", "0"] {
            let e = Config::try_parse_from(["x", "--worker-threads", bad]).unwrap_err().to_string();
            assert!(e.contains("AURORA_WORKER_THREADS"), "{e}");
        }
    }

    #[test]
    fn trusted_proxies_parse_cidrs_and_addresses() {
        let t: TrustedProxies = "10.0.0.0/8, 127.0.0.1,::1".parse().unwrap();
        assert!(t.contains("10.1.2.3".parse().unwrap()));
        assert!(t.contains("127.0.0.1".parse().unwrap()));
        assert!(t.contains("::ffff:10.9.9.9".parse().unwrap()), "IPv4-mapped peers match IPv4 ranges");
        assert!(t.contains("::1".parse().unwrap()));
        assert!(!t.contains("127.0.0.2".parse().unwrap()));
        assert!(!t.contains("192.168.1.1".parse().unwrap()));
        let e = Config::try_parse_from(["x", "--trusted-proxies", "10.0.0.0/33"]).unwrap_err().to_string();
        assert!(e.contains("AURORA_TRUSTED_PROXIES"), "{e}");
        let c = Config::try_parse_from(["x", "--allow-token-in-url", "true"]).unwrap();
        assert!(c.allow_token_in_url);
    }

    #[test]
    fn origin_rules() {
        let same = AllowedOrigins::SameHost;
        assert!(same.allows("http://127.0.0.1:8080", Some("127.0.0.1:8080")));
        assert!(!same.allows("http://evil.example", Some("127.0.0.1:8080")));
        assert!(!same.allows("http://127.0.0.1:8080", None));
        assert!(AllowedOrigins::parse("*").allows("http://x", None));
        let list = AllowedOrigins::parse("https://chat.example.com, http://localhost:3000/");
        assert!(list.allows("https://chat.example.com", Some("whatever")));
        assert!(list.allows("http://localhost:3000", None));
        assert!(!list.allows("https://other.example.com", None));
    }
}
