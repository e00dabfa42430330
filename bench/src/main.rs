//! `aurora-bench`: AuroraChat against Centrifugo, Socket.IO and a raw tokio-tungstenite ceiling,
//! on the same machine in the same run. `./run.sh bench` builds the peers and calls it.

#![deny(unsafe_code)]

mod breakdown;
mod ceiling;
mod client;
mod compare;
mod first_sight;
mod kafka_cost;
mod kafka_rate;
mod peer;
mod redis_rate;
mod report;
mod scenario;
mod server;
mod wire;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "aurora-bench", about = "Chat server benchmarks: AuroraChat and its peers side by side")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
// Parsed once at start-up; the size of the `Compare` plan does not matter.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Run the raw broadcast server (the ceiling) on --listen.
    Ceiling {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
        /// Write every frame on its own (`write_buffer_size(0)`) instead of batching.
        #[arg(long)]
        unbatched: bool,
    },
    /// Every scenario for every peer; writes results.json, table.md and SVG charts to --out.
    Compare(compare::Plan),
    /// The gateways' Kafka producer without a gateway: acked sends/s keyed like `ingest`.
    KafkaRate(kafka_rate::KafkaRate),
    /// Redis PUBLISH at a fixed rate to N subscribers: CPU µs per message.
    RedisRate(redis_rate::RedisRate),
    /// A consumer meeting a room: the exact lookup against the recorded seq.
    FirstSight(first_sight::FirstSight),
}

/// Where the servers under test are and which cores they get.
#[derive(Args, Clone, Debug)]
pub struct ProgramArgs {
    #[arg(long, env = "AURORA_BENCH_GATEWAY")]
    gateway: PathBuf,
    #[arg(long, env = "AURORA_BENCH_CONSUMER")]
    consumer: PathBuf,
    #[arg(long, env = "AURORA_BENCH_CENTRIFUGO")]
    centrifugo: PathBuf,
    #[arg(long, env = "AURORA_BENCH_NODE", default_value = "node")]
    node: PathBuf,
    /// Folder holding the Socket.IO server.js and its node_modules.
    #[arg(long, env = "AURORA_BENCH_SOCKETIO")]
    socketio: PathBuf,
    /// Scratch folder on disk (AuroraChat's data directory lives here).
    #[arg(long, env = "AURORA_BENCH_WORK")]
    work: PathBuf,
    /// Cores for the servers (`taskset -c` list).
    #[arg(long, default_value = "0")]
    server_cpus: String,
    /// The core the load generator pins itself to.
    #[arg(long, default_value_t = 1)]
    client_cpu: usize,
    /// Distributed mode: gateways to start.
    #[arg(long, default_value_t = 2)]
    gateways: usize,
    /// Distributed mode: consumers to start (one consumer group).
    #[arg(long, default_value_t = 1)]
    consumers: usize,
    /// Folder of the services' pid files (dev/services.sh's run folder), for the per-process
    /// CPU breakdown of the distributed stack.
    #[arg(long, env = "AURORA_BENCH_SERVICE_PIDS")]
    service_pids: Option<PathBuf>,
}

impl ProgramArgs {
    fn programs(&self) -> server::Programs {
        server::Programs {
            gateway: self.gateway.clone(),
            consumer: self.consumer.clone(),
            centrifugo: self.centrifugo.clone(),
            node: self.node.clone(),
            socketio_dir: self.socketio.clone(),
            work: self.work.clone(),
            server_cpus: self.server_cpus.clone(),
            gateways: self.gateways,
            consumers: self.consumers,
            service_pids: self.service_pids.clone(),
        }
    }
}

#[allow(unsafe_code)]
fn pin_self(cpu: usize) {
    // SAFETY: the set is zeroed and then filled through the libc macros.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            eprintln!("could not pin the load generator to cpu {cpu}");
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Ceiling { listen, unbatched } => {
            // The ceiling's strongest version on its one core: every task on the thread that
            // polls the sockets. With tokio's multi-thread scheduler (one worker) the 1,000 wakes
            // of a broadcast overflow the worker's local queue into the shared injection queue:
            // knee 675 msg/s instead of ≥ 2,280 in one A/B (docs/benchmarks.md).
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(ceiling::serve(&listen, unbatched))
        }
        Command::Compare(plan) => {
            pin_self(plan.programs.client_cpu);
            raise_fd_limit();
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
            rt.block_on(compare::run(plan))
        }
        Command::KafkaRate(args) => {
            pin_self(args.cpu);
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
            rt.block_on(kafka_rate::run(args))
        }
        Command::FirstSight(args) => {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(first_sight::run(args))
        }
        Command::RedisRate(args) => {
            pin_self(args.cpu);
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
            rt.block_on(redis_rate::run(args))
        }
    }
}

#[allow(unsafe_code)]
fn raise_fd_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct we own.
    let raised = unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0
        }
    };
    if !raised {
        eprintln!("could not raise the open-file limit: {}", std::io::Error::last_os_error());
    }
}
