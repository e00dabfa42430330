//! An in-process gateway and the REST calls tests make to it.

use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

use aurora_core::config::Config;
use aurora_core::ratelimit::RateLimit;
use aurora_gateway::Wiring;

use crate::{unique, Client, DEADLINE};

/// Defaults on `data_dir`, listening on port 0, with the abuse throttles lifted (tests
/// register and log in many users from one address; the abuse tests set them back).
pub fn test_config(data_dir: PathBuf) -> Config {
    use clap::Parser;
    let mut c = Config::parse_from(["aurora-gateway", "--listen", "127.0.0.1:0"]);
    c.data_dir = data_dir;
    let plenty = RateLimit { messages: 100_000, period: std::time::Duration::from_secs(1) };
    (c.login_rate, c.login_failure_rate, c.register_rate, c.room_create_rate) = (plenty, plenty, plenty, plenty);
    c
}

pub struct Server {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    pub async fn start() -> Server {
        Self::start_with(|_| {}).await
    }

    /// Starts an in-process gateway with a fresh data dir; `tune` adjusts the config.
    pub async fn start_with(tune: impl FnOnce(&mut Config)) -> Server {
        Self::start_wired(tune, |_| {}).await
    }

    /// Like [`Server::start_with`]; `rewire` may wrap the ports (fault injection).
    pub async fn start_wired(tune: impl FnOnce(&mut Config), rewire: impl FnOnce(&mut Wiring)) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = test_config(dir.path().to_path_buf());
        tune(&mut config);
        config.validate().expect("valid config");
        let mut wiring = aurora_gateway::wire(&config).await.expect("wire");
        rewire(&mut wiring);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(aurora_gateway::serve_wired(config, wiring, listener, shutdown.clone()));
        Server { addr, http: reqwest::Client::new(), shutdown, task, _dir: dir }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let result = tokio::time::timeout(DEADLINE, self.task).await.expect("stops in time");
        result.expect("task").expect("serve ok");
    }

    pub async fn register(&self, name: &str) -> Session {
        register_at(&self.http, &self.url(""), name).await
    }

    pub async fn ws(&self, token: &str) -> Client {
        Client::connect(self.addr, token).await
    }

    /// Registers a new user and opens one connection, past `hello`.
    pub async fn user(&self, prefix: &str) -> (Session, Client) {
        let s = self.register(&unique(prefix)).await;
        let mut c = self.ws(&s.token).await;
        c.recv_type("hello").await;
        (s, c)
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let r = self.http.get(self.url(path)).bearer_auth(token).send().await.expect("GET");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut req = self.http.post(self.url(path)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.expect("POST");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn metric(&self, name: &str) -> f64 {
        let text = self.http.get(self.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
        metric_sum(&text, name)
    }
}

/// The sum of every series of `name` (all label sets) in a Prometheus text exposition.
pub(crate) fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[derive(Debug, Clone)]
pub struct Session {
    pub token: String,
    pub id: String,
    pub name: String,
    /// The refresh cookie's value (`aurora_refresh`), as `Set-Cookie` handed it out.
    pub refresh: String,
}

/// The value of the `aurora_refresh` cookie a response sets, if any.
pub fn refresh_cookie(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("aurora_refresh=")?.split(';').next().map(str::to_owned))
}

pub async fn register_at(http: &reqwest::Client, base: &str, name: &str) -> Session {
    let r = http
        .post(format!("{base}/api/auth/register"))
        .json(&json!({ "username": name, "password": "correct horse battery" }))
        .send()
        .await
        .expect("register");
    assert_eq!(r.status().as_u16(), 201, "register {name}");
    let refresh = refresh_cookie(&r).expect("register sets the refresh cookie");
    let v: Value = r.json().await.expect("json");
    Session {
        token: v["token"].as_str().expect("token").to_owned(),
        id: v["user"]["id"].as_str().expect("id").to_owned(),
        name: name.to_owned(),
        refresh,
    }
}
