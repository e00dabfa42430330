//! Real gateway and consumer processes against the services named by the
//! `AURORA_*` env (see `dev/services.sh`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use serde_json::json;

use crate::{register_at, sibling_binary, unique, Client, Session, DEADLINE};

/// These tests stop and restart shared services: one at a time.
pub async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// Tests register and log in many users from 127.0.0.1: lift the abuse throttles.
pub const TEST_LIMITS: [(&str, &str); 4] = [
    ("AURORA_LOGIN_RATE", "100000/1s"),
    ("AURORA_LOGIN_FAILURE_RATE", "100000/1s"),
    ("AURORA_REGISTER_RATE", "100000/1s"),
    ("AURORA_ROOM_CREATE_RATE", "100000/1s"),
];

pub const SECRET: &str = "distributed-tests-secret-0123456789abcdef";

/// The services' env; tests fail with a clear message when it is missing.
pub fn services() -> Vec<(&'static str, String)> {
    ["AURORA_KAFKA_BROKERS", "AURORA_REDIS_URL", "AURORA_MONGODB_URI"]
        .into_iter()
        .map(|k| {
            let v = std::env::var(k).unwrap_or_else(|_| {
                panic!("{k} is not set: start the services with `eval \"$(dev/services.sh up)\"` or use ./run.sh test")
            });
            (k, v)
        })
        .collect()
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn consumer_binary() -> PathBuf {
    sibling_binary("aurora-consumer")
}

pub struct Proc {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Proc {
    pub async fn spawn(mut cmd: Command, extra: &[(&str, &str)]) -> Proc {
        for (k, v) in services() {
            cmd.env(k, v);
        }
        // A server's panic in a test log comes with where it was.
        cmd.env("AURORA_JWT_SECRET", SECRET)
            .env("RUST_BACKTRACE", std::env::var("RUST_BACKTRACE").unwrap_or_else(|_| "1".into()))
            .env(
                "RUST_LOG",
                std::env::var("AURORA_TEST_LOG").unwrap_or_else(|_| {
                    "error,aurora_gateway=warn,aurora_consumer=warn,aurora_core=warn,aurora_operator=warn".into()
                }),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        // If the test process dies (a timeout kills it), its servers go with it instead of
        // staying in the consumer group with old code.
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        #[allow(unsafe_code)]
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("spawn");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let line = tokio::time::timeout(DEADLINE * 3, lines.next_line())
            .await
            .expect("process prints its address")
            .expect("stdout")
            .expect("a line");
        let addr = line.rsplit("http://").next().expect("address").parse().expect("socket address");
        Proc { child, addr }
    }

    pub async fn gateway(extra: &[(&str, &str)]) -> Proc {
        let mut cmd = Command::new(sibling_binary("aurora-gateway"));
        cmd.env("AURORA_MODE", "distributed").env("AURORA_LISTEN", "127.0.0.1:0").env("AURORA_MEMBER_EVENTS", "true");
        for (k, v) in TEST_LIMITS {
            cmd.env(k, v);
        }
        Proc::spawn(cmd, extra).await
    }

    /// Every test consumer writes `aurora.events`: any of them may own a webhook test's room.
    pub async fn consumer() -> Proc {
        Proc::consumer_with(&[]).await
    }

    pub async fn consumer_with(extra: &[(&str, &str)]) -> Proc {
        let mut cmd = Command::new(consumer_binary());
        cmd.env("AURORA_CONSUMER_LISTEN", "127.0.0.1:0").env("AURORA_CONSUMER_EVENTS", "true");
        Proc::spawn(cmd, extra).await
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The sum of every series of the metric `name` on this process's `/metrics`.
    pub async fn metric(&self, name: &str) -> f64 {
        let url = format!("{}/metrics", self.base());
        let text = reqwest::get(url).await.expect("metrics").text().await.expect("text");
        crate::server::metric_sum(&text, name)
    }

    /// SIGKILL: no cleanup of any kind.
    pub async fn kill9(&mut self) {
        self.child.start_kill().expect("kill -9");
        let _ = self.child.wait().await;
    }

    /// SIGTERM; whether the process exited within `limit`.
    pub async fn terminate_within(mut self, limit: Duration) -> bool {
        self.sigterm();
        tokio::time::timeout(limit, self.child.wait()).await.is_ok()
    }

    pub async fn terminate(mut self) {
        self.sigterm();
        let _ = tokio::time::timeout(DEADLINE, self.child.wait()).await;
    }

    fn sigterm(&self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        }
    }
}

/// A process left at the end of a test gets SIGTERM, so a consumer leaves its
/// group at once instead of holding partitions until its session times out.
impl Drop for Proc {
    fn drop(&mut self) {
        self.sigterm();
    }
}

/// Stops a service; brings it back when dropped, even if the test panics.
pub struct Outage(&'static str);

impl Outage {
    pub async fn start(name: &'static str) -> Outage {
        service("down", name).await;
        Outage(name)
    }

    pub async fn end(self) {
        service("up", self.0).await;
        std::mem::forget(self);
    }
}

impl Drop for Outage {
    fn drop(&mut self) {
        let _ = std::process::Command::new(repo().join("dev/services.sh"))
            .args(["up", self.0])
            .stdout(Stdio::null())
            .status();
    }
}

/// `dev/services.sh up|down <name>`.
pub async fn service(action: &str, name: &str) {
    let status = Command::new(repo().join("dev/services.sh"))
        .arg(action)
        .args(name.split_whitespace())
        .stdout(Stdio::null())
        .status()
        .await
        .expect("services.sh");
    assert!(status.success(), "services.sh {action} {name}");
}

pub async fn status(url: &str) -> u16 {
    match reqwest::Client::new().get(url).timeout(Duration::from_secs(10)).send().await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

/// A room created over REST by `token`'s user.
pub async fn room(base: &str, token: &str) -> String {
    let name = unique("room").to_lowercase();
    let r = reqwest::Client::new()
        .post(format!("{base}/api/rooms"))
        .bearer_auth(token)
        .json(&json!({"name": name}))
        .send()
        .await
        .expect("create room");
    assert_eq!(r.status(), 201);
    name
}

/// The common start of a single-gateway test: one consumer, one gateway, and a
/// new user whose client has joined a new room.
pub struct Solo {
    pub consumer: Proc,
    pub gateway: Proc,
    pub http: reqwest::Client,
    pub user: Session,
    pub room: String,
    pub client: Client,
}

pub async fn solo(prefix: &str) -> Solo {
    let consumer = Proc::consumer().await;
    let gateway = Proc::gateway(&[]).await;
    let http = reqwest::Client::new();
    let user = register_at(&http, &gateway.base(), &unique(prefix)).await;
    let room = room(&gateway.base(), &user.token).await;
    let mut client = Client::connect(gateway.addr, &user.token).await;
    client.join(&room).await;
    Solo { consumer, gateway, http, user, room, client }
}
