//! Process plumbing shared by the binaries: logging and SIGTERM / Ctrl-C.

use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// Logs to stderr, filtered by `RUST_LOG` (default `info`); JSON when `AURORA_LOG_FORMAT=json`.
pub fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if std::env::var("AURORA_LOG_FORMAT").is_ok_and(|f| f == "json") {
        tracing_subscriber::fmt().json().with_env_filter(filter).with_writer(std::io::stderr).init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    }
}

/// Cancels `token` on SIGTERM or Ctrl-C.
pub fn on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    let _ = ctrl_c.await;
                    token.cancel();
                    return;
                }
            };
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown signal received; stopping");
        token.cancel();
    });
}

/// Runs `work` to its end, or, once `shutdown` is cancelled, for at most `grace` more: a
/// shutdown step stuck on an unreachable dependency (an API server gone, a broker down)
/// must not keep the process alive. Returns `None` when the grace ran out.
pub async fn within_grace<T>(
    work: impl std::future::Future<Output = T>,
    shutdown: CancellationToken,
    grace: std::time::Duration,
) -> Option<T> {
    let deadline = async move {
        shutdown.cancelled().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        done = work => Some(done),
        _ = deadline => None,
    }
}

/// Binds a listening socket. With `reuse_port` (`SO_REUSEPORT`) a replacement process can
/// listen on the same address while the old one drains (host-network pods in a rolling
/// update); each process closes its listener when it starts to drain, so new connections
/// go to the other.
pub fn bind(addr: std::net::SocketAddr, reuse_port: bool) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    #[cfg(unix)]
    socket.set_reuseport(reuse_port)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Ends a server process once its `run` has returned (sessions drained, batches committed,
/// tasks awaited), without tearing its runtime down: a teardown drops the MongoDB driver's pool
/// workers while another task may still be polled, and the driver then panics
/// (`connection_requester.rs`: `unwrap()` on a closed channel). Exits 1 with the error, as a
/// `main` returning `Err` would.
pub fn exit_with<E: std::fmt::Debug>(result: Result<(), E>) -> ! {
    match result {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("Error: {e:?}");
            std::process::exit(1)
        }
    }
}
