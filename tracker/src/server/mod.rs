//! The WebSocket server: accept loop, admission limits, TLS, and one task per client.
//!
//! ```text
//!  TcpListener ─accept─▶ admission (max connections, per-address connections)
//!       │                    │ refused: handshake, `failure reason`, close (bounded count)
//!       ▼                    ▼ admitted
//!  [TLS handshake] ─▶ WebSocket handshake (path/query → access token) ─▶ session task
//!                                                                     │
//!   session: decode (proto) → limits → registry (store) → relay (signal) → reply
//!            bounded outbound queue; full queue or slow write = dropped slow reader
//! ```
//!
//! The server knows neither swarm rules nor the peer-choice policy: it decodes,
//! enforces limits, calls the registry and encodes. Every refusal is a
//! `failure reason` message; access tokens are never logged (the request path and
//! query are never logged at all).

pub mod admin;
mod conn;
pub mod limits;
pub mod tls;

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::config::{Config, Secret};
use crate::metrics::{Metrics, RefusalReason};
use crate::proto::InfoHash;
use crate::signal::{Outbox, Undelivered};
use crate::store::MemoryStore;
use crate::swarm::Registry;
use limits::{IpLimiter, canonical};

/// At most this many refused connections are kept open at once to tell the client
/// why; beyond it, refused connections are closed without a handshake.
const MAX_REFUSING: usize = 256;

/// Frames are written to the socket as they are queued (no extra buffering in
/// tungstenite): the out buffer then only ever holds one frame, which keeps idle
/// connections small. Batches still end with one flush.
const WRITE_BUFFER: usize = 0;

/// Outbound bytes fed to one socket before a flush.
const WRITE_BATCH: usize = 64 * 1024;

/// Read buffer per connection (grows only for large messages).
const READ_BUFFER: usize = 4 * 1024;

/// The handle by which others reach one connection: a bounded queue, and a token that
/// drops the connection when its queue overflows.
#[derive(Debug, Clone)]
pub struct ConnHandle {
    tx: mpsc::Sender<String>,
    kick: CancellationToken,
}

impl Outbox for ConnHandle {
    fn deliver(&self, text: String) -> Result<(), Undelivered> {
        match self.tx.try_send(text) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.kick.cancel();
                Err(Undelivered::QueueFull)
            }
            Err(TrySendError::Closed(_)) => Err(Undelivered::Gone),
        }
    }
}

/// State shared by the accept loop and all sessions.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Arc<Config>,
    pub(crate) metrics: Metrics,
    pub(crate) store: MemoryStore<ConnHandle>,
    pub(crate) limiter: Mutex<IpLimiter>,
    pub(crate) allow: HashSet<InfoHash>,
    pub(crate) tokens: Vec<Secret>,
    pub(crate) ws_config: WebSocketConfig,
    next_conn: AtomicU64,
    /// Admitted connections (including those still in their handshake).
    open: AtomicUsize,
    /// Refused connections still being told why.
    refusing: AtomicUsize,
}

impl Shared {
    pub(crate) fn limiter(&self) -> std::sync::MutexGuard<'_, IpLimiter> {
        self.limiter.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }
}

/// Whether a new connection may proceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Counted in the limits; released when the session ends.
    Admitted,
    /// Gets a `failure reason` and is closed.
    Refused(RefusalReason),
}

/// Releases an admitted connection's counts when its task ends, however it ends.
pub(crate) struct AdmissionGuard {
    shared: Arc<Shared>,
    ip: IpAddr,
    admitted: bool,
}

impl Drop for AdmissionGuard {
    fn drop(&mut self) {
        if self.admitted {
            self.shared.open.fetch_sub(1, Ordering::Relaxed);
            let now = tokio::time::Instant::now().into_std();
            self.shared.limiter().disconnect(self.ip, now);
        } else {
            self.shared.refusing.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// The WebSocket side of the tracker.
#[derive(Debug, Clone)]
pub struct Server {
    shared: Arc<Shared>,
}

impl Server {
    /// Builds the shared state from the config; `seed` seeds peer choice.
    pub fn new(config: Arc<Config>, metrics: Metrics, seed: u64) -> Self {
        let registry = Registry::new(config.registry(), config.swarm.policy.build(), seed);
        let max_msg =
            usize::try_from(config.limits.max_message_size.as_u64()).unwrap_or(usize::MAX);
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            .write_buffer_size(WRITE_BUFFER)
            .max_write_buffer_size(WRITE_BUFFER + WRITE_BATCH + 2 * max_msg)
            .max_message_size(Some(max_msg))
            .max_frame_size(Some(max_msg));
        let l = &config.limits;
        let shared = Shared {
            limiter: Mutex::new(IpLimiter::new(
                l.max_connections_per_ip,
                l.announce_rate_per_ip,
                l.announce_burst_per_ip,
            )),
            allow: config.allow_list(),
            tokens: config.access.tokens.clone(),
            store: MemoryStore::new(registry, metrics.clone()),
            metrics,
            ws_config,
            next_conn: AtomicU64::new(1),
            open: AtomicUsize::new(0),
            refusing: AtomicUsize::new(0),
            config,
        };
        Self {
            shared: Arc::new(shared),
        }
    }

    /// Decides admission for a new connection from `ip` and counts it.
    fn admit(&self, ip: IpAddr) -> Option<(AdmissionGuard, Admission)> {
        let s = &self.shared;
        let now = tokio::time::Instant::now().into_std();
        let refused = if s.open.load(Ordering::Relaxed) >= s.config.limits.max_connections {
            Some(RefusalReason::TooManyConnections)
        } else if !s.limiter().try_connect(ip, now) {
            Some(RefusalReason::TooManyConnectionsPerIp)
        } else {
            None
        };
        match refused {
            None => {
                s.open.fetch_add(1, Ordering::Relaxed);
                let guard = AdmissionGuard {
                    shared: Arc::clone(s),
                    ip,
                    admitted: true,
                };
                Some((guard, Admission::Admitted))
            }
            Some(reason) => {
                s.metrics.refused(reason);
                if s.refusing.fetch_add(1, Ordering::Relaxed) >= MAX_REFUSING {
                    s.refusing.fetch_sub(1, Ordering::Relaxed);
                    return None;
                }
                let guard = AdmissionGuard {
                    shared: Arc::clone(s),
                    ip,
                    admitted: false,
                };
                Some((guard, Admission::Refused(reason)))
            }
        }
    }

    /// Accepts clients until `shutdown` is cancelled; each runs on `tasks`.
    pub async fn run(
        &self,
        listener: TcpListener,
        tls: Option<TlsAcceptor>,
        tasks: TaskTracker,
        shutdown: CancellationToken,
    ) {
        loop {
            let accepted = tokio::select! {
                () = shutdown.cancelled() => return,
                r = listener.accept() => r,
            };
            let (tcp, peer) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and similar: back off briefly, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            let ip = canonical(peer.ip());
            let Some((guard, admission)) = self.admit(ip) else {
                drop(tcp);
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let shared = Arc::clone(&self.shared);
            let shutdown = shutdown.clone();
            let tls = tls.clone();
            let span = tracing::debug_span!("conn", %peer);
            // Plain and TLS connections are separate tasks so that a plain
            // connection's task is not sized for the (much larger) TLS states: the
            // task is allocated at the size of its largest state.
            match tls {
                None => {
                    let task = conn::run(shared, tcp, peer, admission, guard, shutdown);
                    tasks.spawn(task.instrument(span));
                }
                Some(acceptor) => {
                    let task = async move {
                        let timeout = shared.config.server.handshake_timeout;
                        let accepted = tokio::select! {
                            () = shutdown.cancelled() => return,
                            r = tokio::time::timeout(timeout, acceptor.accept(tcp)) => r,
                        };
                        match accepted {
                            Ok(Ok(stream)) => {
                                conn::run(shared, stream, peer, admission, guard, shutdown).await
                            }
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed")
                            }
                            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                        }
                    };
                    tasks.spawn(task.instrument(span));
                }
            }
        }
    }

    /// Sweeps idle peers, stale offers and idle per-address entries (call
    /// periodically). `now` comes from the caller's clock.
    pub fn sweep(&self, now: std::time::Instant) {
        let expired = self.shared.store.with(|r| r.expire(now));
        self.shared.metrics.expired(expired.peers, expired.offers);
        self.shared.limiter().sweep(now);
        if expired.peers > 0 || expired.offers > 0 {
            tracing::debug!(
                peers = expired.peers,
                offers = expired.offers,
                swarms = expired.swarms,
                "expired"
            );
        }
    }

    /// Connections admitted and not yet closed.
    pub fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::Relaxed)
    }
}
