//! The accept loop: hyper with a header-read timeout (silent, dribbling and idle
//! keep-alive sockets are closed), a cap on open connections per client address (a trusted
//! proxy's clients are counted by their forwarded address at the WebSocket upgrade), and a
//! descriptor reserve: near the process's file limit, new connections get a short
//! timeout, no keep-alive and only the probes, so `/healthz` keeps answering.

use axum::extract::ConnectInfo;
use axum::Router;
use dashmap::DashMap;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// Connection limits, from the config, and the census they are kept in.
#[derive(Clone)]
pub struct Limits {
    pub header_timeout: Duration,
    pub per_address: usize,
    pub fd_reserve: usize,
    /// Peers whose connections carry many clients (the ingress): not capped per address
    /// at accept; their WebSocket upgrades are counted per forwarded client instead.
    pub trusted: aurora_core::config::TrustedProxies,
    pub census: Arc<Census>,
}

/// Open connections, in all and per client address.
#[derive(Default)]
pub struct Census {
    open: AtomicUsize,
    per_address: DashMap<IpAddr, usize>,
}

/// Holds a place in the census until dropped (with the socket, HTTP or upgraded, or
/// with the WebSocket session of a client behind a proxy).
pub struct Seat {
    census: Arc<Census>,
    ip: IpAddr,
    /// A TCP socket (counts towards the descriptor reserve); not for a forwarded client.
    socket: bool,
}

impl Census {
    /// A place for a connection from `ip`, unless `cap` of them are open.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, cap: usize) -> Option<Seat> {
        self.seat(ip, Some(cap), true)
    }

    /// A place for a WebSocket of a client behind a trusted proxy (its socket is the proxy's).
    pub fn admit_forwarded(self: &Arc<Self>, ip: IpAddr, cap: usize) -> Option<Seat> {
        self.seat(ip, Some(cap), false)
    }

    fn seat(self: &Arc<Self>, ip: IpAddr, cap: Option<usize>, socket: bool) -> Option<Seat> {
        let mut n = self.per_address.entry(ip).or_insert(0);
        if cap.is_some_and(|cap| *n >= cap) {
            return None;
        }
        *n += 1;
        if socket {
            self.open.fetch_add(1, Ordering::Relaxed);
        }
        Some(Seat { census: self.clone(), ip, socket })
    }

    /// Open connections from `ip` (forwarded clients by their own address).
    pub fn open_from(&self, ip: IpAddr) -> usize {
        self.per_address.get(&ip).map_or(0, |n| *n)
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        if self.socket {
            self.census.open.fetch_sub(1, Ordering::Relaxed);
        }
        if let Some(mut n) = self.census.per_address.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
        }
        self.census.per_address.remove_if(&self.ip, |_, n| *n == 0);
    }
}

/// A socket that keeps its [`Seat`] for as long as it lives.
pub(crate) struct Counted {
    tcp: TcpStream,
    _seat: Seat,
}

/// The I/O type hyper hands back on upgrade (`Upgraded::downcast`).
pub(crate) type ServedIo = TokioIo<Counted>;

impl Counted {
    /// The socket, and the seat its new owner must keep while it is open.
    pub(crate) fn into_parts(self) -> (TcpStream, Seat) {
        (self.tcp, self._seat)
    }
}

impl AsyncRead for Counted {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }
}

/// The soft limit on open files, if known.
#[allow(unsafe_code)]
fn file_limit() -> Option<usize> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit only writes the struct it is given.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    (ok && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur as usize)
}

const REFUSAL: &str = r#"{"error":{"code":"rate_limited","message":"too many open connections from this address"}}"#;

/// Serves `app` until `shutdown`, then lets in-flight requests finish (up to `drain`).
/// `scarce` is what new connections get while descriptors run short (the probes).
// Long by design: the accept loop and its drain, whose order the shutdown relies on.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    scarce: Router,
    limits: Limits,
    shutdown: CancellationToken,
    refused: prometheus::IntCounterVec,
    drain: Duration,
) {
    let census = limits.census.clone();
    let short_of_files = file_limit().map(|l| l.saturating_sub(limits.fd_reserve));
    let connections = TaskTracker::new();
    let mut last_warning: Option<std::time::Instant> = None;
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning; closing sockets frees descriptors.
                    if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                        tracing::warn!(error = %e, "accept failed; retrying (logged once per 10 s)");
                        last_warning = Some(std::time::Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        let peer_ip = aurora_core::config::canonical(peer.ip());
        let seat = if limits.trusted.contains(peer_ip) {
            census.seat(peer_ip, None, true)
        } else {
            census.admit(peer_ip, limits.per_address)
        };
        let Some(seat) = seat else {
            refused.with_label_values(&["per_address"]).inc();
            tokio::spawn(refuse(tcp));
            continue;
        };
        let scarce_now = short_of_files.is_some_and(|limit| census.open.load(Ordering::Relaxed) >= limit);
        let router = if scarce_now {
            refused.with_label_values(&["file_reserve"]).inc();
            scarce.clone()
        } else {
            app.clone()
        };
        let service = router.map_request(move |mut req: axum::extract::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            req
        });
        let timeout = if scarce_now { Duration::from_secs(1) } else { limits.header_timeout };
        let mut builder = http1::Builder::new();
        builder.timer(TokioTimer::new()).header_read_timeout(timeout).keep_alive(!scarce_now);
        let io: ServedIo = TokioIo::new(Counted { tcp, _seat: seat });
        let conn = builder.serve_connection(io, TowerToHyperService::new(service)).with_upgrades();
        let stop = shutdown.clone();
        connections.spawn(async move {
            let mut conn = std::pin::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = stop.cancelled() => {
                    // Finish the request in hand, then close (upgraded sockets are not ours any more).
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(drain, connections.wait()).await.is_err() {
        tracing::warn!("shutdown timeout: some HTTP requests did not finish");
    }
}

/// Over the per-address cap: a clear 429 and close.
async fn refuse(mut tcp: TcpStream) {
    let response = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         x-content-type-options: nosniff\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{REFUSAL}",
        REFUSAL.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), tcp.write_all(response.as_bytes())).await;
    let _ = tcp.shutdown().await;
}
