//! Starting the servers under test, pinned to their cores, and reading their cost from /proc.

use anyhow::{bail, Context};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::peer::{Credential, Peer};

/// Where the peers' programs are; filled from flags by `main`.
#[derive(Clone, Debug)]
pub struct Programs {
    pub gateway: PathBuf,
    pub consumer: PathBuf,
    pub centrifugo: PathBuf,
    pub node: PathBuf,
    pub socketio_dir: PathBuf,
    pub work: PathBuf,
    /// `taskset -c` list for the servers.
    pub server_cpus: String,
    /// Distributed mode: gateways and consumers to start.
    pub gateways: usize,
    pub consumers: usize,
    /// Folder of the services' pid files (`kafka.pid`, `redis.pid`, `ferretdb.pid`, `postgresql.pid`), whose CPU
    /// time the per-process breakdown reads (dev/services.sh writes them).
    pub service_pids: Option<PathBuf>,
}

/// Services of the distributed stack, by the pid file dev/services.sh writes.
const SERVICES: [(&str, &str); 4] = [
    ("kafka", "kafka.pid"),
    ("redis", "redis.pid"),
    ("ferretdb", "ferretdb.pid"),
    // FerretDB's store when dev/services.sh runs it on PostgreSQL: a process per connection.
    ("postgresql", "postgresql.pid"),
];

/// CPU seconds of one named process.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ProcessCpu {
    pub name: String,
    pub cpu_seconds: f64,
}

pub const JWT_SECRET: &str = "benchmark-secret-benchmark-secret-0123456789";

/// Running server processes; killed on drop.
pub struct Server {
    pub peer: Peer,
    pub bases: Vec<String>,
    children: Vec<Child>,
    /// A name per child: `gateway-1`, `consumer-1`, or the peer's name.
    names: Vec<String>,
    service_pids: Option<PathBuf>,
}

impl Server {
    /// Kills every process of the server.
    pub fn stop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.children.clear();
        self.names.clear();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn pinned(cpus: &str, program: &Path) -> Command {
    let mut c = Command::new("taskset");
    c.arg("-c").arg(cpus).arg(program);
    c.stdin(Stdio::null()).stderr(Stdio::inherit());
    die_with_parent(&mut c);
    c
}

/// The child (and what it execs: `taskset` and `chrt` exec their program) gets SIGKILL when
/// the bench dies, even by a signal that runs no destructor. Children are started from the
/// thread that runs `compare` to its end (the kernel signals when the forking thread exits).
#[allow(unsafe_code)]
fn die_with_parent(c: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        c.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The bench died before the prctl took effect.
            if libc::getppid() as u32 != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

/// Spawns and waits for the "listening on http://ADDR" line; returns the base URL.
fn spawn_listening(mut cmd: Command, children: &mut Vec<Child>) -> anyhow::Result<String> {
    cmd.stdout(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| format!("start {cmd:?}"))?;
    let stdout = child.stdout.take().context("stdout")?;
    children.push(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(i) = line.find("http://") {
                let _ = tx.send(line[i..].trim().to_owned());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60)).context("server did not print its address")
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_port(port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("nothing listens on {port}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn aurora_env(cmd: &mut Command, rooms: &[String]) {
    for (k, v) in [
        ("AURORA_LISTEN", "127.0.0.1:0"),
        ("AURORA_JWT_SECRET", JWT_SECRET),
        ("AURORA_RATE_LIMIT", "100000000/1s"),
        ("AURORA_JOIN_RATE", "100000000/1s"),
        ("AURORA_REGISTER_RATE", "100000000/1s"),
        ("AURORA_LOGIN_RATE", "100000000/1s"),
        ("AURORA_MAX_CONNECTIONS_PER_ADDRESS", "10000000"),
        ("AURORA_UPGRADE_RATE", "100000000/1s"),
        ("RUST_LOG", "warn"),
    ] {
        cmd.env(k, v);
    }
    cmd.env("AURORA_DEFAULT_ROOMS", rooms.join(","));
}

impl Server {
    pub fn start(peer: Peer, p: &Programs, rooms: &[String]) -> anyhow::Result<Server> {
        let mut children = Vec::new();
        let mut bases = Vec::new();
        let mut names = Vec::new();
        match peer {
            Peer::Aurora => {
                let data = p.work.join("aurora-data");
                let _ = std::fs::remove_dir_all(&data);
                let mut cmd = pinned(&p.server_cpus, &p.gateway);
                aurora_env(&mut cmd, rooms);
                cmd.env("AURORA_DATA_DIR", &data);
                bases.push(spawn_listening(cmd, &mut children)?);
            }
            Peer::AuroraDistributed => {
                for n in 1..=p.consumers.max(1) {
                    let mut cmd = pinned(&p.server_cpus, &p.consumer);
                    aurora_env(&mut cmd, rooms);
                    cmd.env("AURORA_MODE", "distributed").env("AURORA_CONSUMER_LISTEN", "127.0.0.1:0");
                    let base = spawn_listening(cmd, &mut children)?;
                    eprintln!("   consumer-{n} at {base}");
                    names.push(format!("consumer-{n}"));
                }
                for n in 1..=p.gateways.max(1) {
                    let mut cmd = pinned(&p.server_cpus, &p.gateway);
                    aurora_env(&mut cmd, rooms);
                    cmd.env("AURORA_MODE", "distributed");
                    let base = spawn_listening(cmd, &mut children)?;
                    eprintln!("   gateway-{n} at {base}");
                    bases.push(base);
                    names.push(format!("gateway-{n}"));
                }
            }
            Peer::Centrifugo => {
                let port = free_port()?;
                let config = p.work.join("centrifugo.json");
                let body = serde_json::json!({
                    "http_server": {"address": "127.0.0.1", "port": port},
                    "log": {"level": "error"},
                    "client": {"token": {"hmac_secret_key": JWT_SECRET}},
                    "channel": {"without_namespace": {
                        "allow_subscribe_for_client": true,
                        "allow_publish_for_subscriber": true
                    }}
                });
                std::fs::write(&config, serde_json::to_vec_pretty(&body)?)?;
                let mut cmd = pinned(&p.server_cpus, &p.centrifugo);
                cmd.arg("--config").arg(&config).stdout(Stdio::null());
                children.push(cmd.spawn().context("start centrifugo")?);
                wait_port(port)?;
                bases.push(format!("http://127.0.0.1:{port}"));
            }
            Peer::SocketIo => {
                let mut cmd = pinned(&p.server_cpus, &p.node);
                cmd.arg(p.socketio_dir.join("server.js")).arg("0");
                bases.push(spawn_listening(cmd, &mut children)?);
            }
            Peer::Raw | Peer::RawUnbatched => {
                let me = std::env::current_exe()?;
                let mut cmd = pinned(&p.server_cpus, &me);
                cmd.arg("ceiling").arg("--listen").arg("127.0.0.1:0");
                if peer == Peer::RawUnbatched {
                    cmd.arg("--unbatched");
                }
                bases.push(spawn_listening(cmd, &mut children)?);
            }
        }
        names.resize(children.len(), peer.name().to_owned());
        let service_pids = if peer == Peer::AuroraDistributed { p.service_pids.clone() } else { None };
        Ok(Server { peer, bases, children, names, service_pids })
    }

    /// CPU seconds of every process of the server, the services of the distributed stack
    /// included (their pids are read each time: a reset restarts them).
    pub fn cpu_by_process(&self) -> Vec<ProcessCpu> {
        let mut out: Vec<ProcessCpu> = self
            .names
            .iter()
            .zip(self.pids())
            .map(|(name, pid)| {
                let (u, s) = proc_cpu_seconds(pid);
                ProcessCpu { name: name.clone(), cpu_seconds: u + s }
            })
            .collect();
        if let Some(dir) = &self.service_pids {
            for (name, file) in SERVICES {
                let pid = std::fs::read_to_string(dir.join(file)).ok().and_then(|p| p.trim().parse::<u32>().ok());
                if let Some(pid) = pid {
                    out.push(ProcessCpu { name: name.to_owned(), cpu_seconds: tree_cpu_seconds(pid) });
                }
            }
        }
        out
    }

    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    /// Resident memory of every server process, KiB.
    pub fn rss_kib(&self) -> u64 {
        self.pids().into_iter().map(|pid| status_field(pid, "VmRSS:")).sum()
    }

    /// CPU seconds (user + system) of every server process.
    pub fn cpu_seconds(&self) -> f64 {
        let (user, sys) = self.cpu_split();
        user + sys
    }

    /// CPU seconds of every server process: (user, system).
    pub fn cpu_split(&self) -> (f64, f64) {
        self.pids().into_iter().map(proc_cpu_seconds).fold((0.0, 0.0), |(u, s), (pu, ps)| (u + pu, s + ps))
    }

    /// One credential per user: registered (AuroraChat), minted (Centrifugo), none (others).
    pub async fn credentials(&self, users: usize) -> anyhow::Result<Vec<Credential>> {
        let run = std::process::id();
        let mut out = Vec::with_capacity(users);
        match self.peer {
            Peer::Aurora | Peer::AuroraDistributed => {
                let http = reqwest::Client::new();
                for i in 0..users {
                    let resp = http
                        .post(format!("{}/api/auth/register", self.bases[0]))
                        .json(&serde_json::json!({"username": format!("b{run}_{i}"), "password": "benchmark-password"}))
                        .send()
                        .await?;
                    if !resp.status().is_success() {
                        bail!("register: {}", resp.status());
                    }
                    let v: serde_json::Value = resp.json().await?;
                    out.push(Credential::Token(v["token"].as_str().context("token")?.to_owned()));
                }
            }
            Peer::Centrifugo => {
                let key = jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes());
                let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() + 86_400;
                for i in 0..users {
                    let claims = serde_json::json!({"sub": format!("u{i}"), "exp": exp});
                    out.push(Credential::Token(jsonwebtoken::encode(&Default::default(), &claims, &key)?));
                }
            }
            Peer::SocketIo | Peer::Raw | Peer::RawUnbatched => out.resize(users, Credential::None),
        }
        Ok(out)
    }
}

fn status_field(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// A process's /proc stat fields after its command name (which may hold spaces).
fn stat_fields(pid: u32) -> Vec<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    rest.split_whitespace().map(str::to_owned).collect()
}

#[allow(unsafe_code)]
fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        hz if hz > 0 => hz as f64,
        _ => 100.0, // Linux's USER_HZ when sysconf cannot say
    }
}

/// The given stat fields of a process, in seconds.
fn stat_seconds<const N: usize>(pid: u32, fields: [usize; N]) -> [f64; N] {
    let stat = stat_fields(pid);
    let hz = clock_ticks_per_second();
    fields.map(|i| stat.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / hz)
}

/// (user, system) CPU seconds of one process.
pub fn proc_cpu_seconds(pid: u32) -> (f64, f64) {
    // utime and stime are fields 14 and 15 of the line: 11 and 12 after the name.
    let [user, system] = stat_seconds(pid, [11, 12]);
    (user, system)
}

/// CPU seconds of a process and its children, those it has reaped included (cutime and cstime,
/// fields 16 and 17 of the line).
fn tree_cpu_seconds(pid: u32) -> f64 {
    let own: f64 = stat_seconds(pid, [11, 12, 13, 14]).iter().sum();
    let children: f64 = child_pids(pid)
        .into_iter()
        .map(|c| {
            let (u, s) = proc_cpu_seconds(c);
            u + s
        })
        .sum();
    own + children
}

fn child_pids(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        // The parent's pid is field 4 of the line: 1 after the name.
        .filter(|&pid| stat_fields(pid).get(1).and_then(|p| p.parse::<u32>().ok()) == Some(parent))
        .collect()
}

/// Idle-priority busy loops on the given cores: this VM's idle cores add multi-millisecond
/// wake-ups; a SCHED_IDLE spinner keeps them awake and yields to any real work.
pub struct Spinners(Vec<Child>);

impl Spinners {
    pub fn start(cpus: &[usize]) -> Spinners {
        let mut out = Vec::new();
        for cpu in cpus {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", &cpu.to_string(), "chrt", "-i", "0", "sh", "-c", "while :; do :; done"])
                .stdin(Stdio::null());
            die_with_parent(&mut cmd);
            let child = cmd.spawn();
            if let Ok(c) = child {
                out.push(c);
            }
        }
        Spinners(out)
    }
}

impl Drop for Spinners {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
