//! Wiring and lifecycle: binds the listeners, starts the named tasks, supervises them,
//! and shuts down gracefully.
//!
//! Every task runs under a `tracing` span with its name and stops on a cancellation
//! token. Connection tasks run on one [`TaskTracker`], so shutdown can wait for them:
//!
//! 1. first SIGTERM or SIGINT: `/healthz` turns 503, the listener stops accepting, every
//!    client gets a WebSocket close (1001 "going away"), and the tracker waits up to
//!    `server.shutdown_grace` for the connection tasks to finish;
//! 2. a second signal during the drain exits at once;
//! 3. if a critical task (accept loop, admin listener, cleanup) dies, the process
//!    exits instead of limping on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::config::Config;
use crate::metrics::{Metrics, MetricsError};
use crate::server::Server;
use crate::server::admin::{self, AdminState};
use crate::server::tls::{self, TlsError};

/// Why the tracker could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TLS certificate or key is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Metrics could not be registered (a bug).
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// Signal handlers could not be installed.
    #[error("installing signal handlers: {0}")]
    Signals(std::io::Error),
}

impl AppError {
    /// Process exit code: 64 for configuration problems (TLS files), 69 when a port
    /// is unavailable, 70 for internal errors.
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Tls(_) => 64,
            AppError::Bind { .. } => 69,
            AppError::Metrics(_) | AppError::Signals(_) => 70,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// All connections closed within the grace period.
    Drained,
    /// The grace period ran out; remaining connections were cut.
    GraceExpired,
    /// A second signal arrived during the drain.
    Forced,
    /// A critical task died.
    Failed,
}

impl Stopped {
    /// Process exit code.
    pub fn exit_code(self) -> u8 {
        match self {
            Stopped::Drained | Stopped::GraceExpired => 0,
            Stopped::Forced => 130,
            Stopped::Failed => 70,
        }
    }
}

/// Cancels `fatal` if dropped while `shutdown` has not been requested (a task that
/// ended or panicked on its own).
struct Critical {
    name: &'static str,
    shutdown: CancellationToken,
    fatal: CancellationToken,
}

impl Drop for Critical {
    fn drop(&mut self) {
        if !self.shutdown.is_cancelled() {
            tracing::error!(task = self.name, "critical task ended unexpectedly");
            self.fatal.cancel();
        }
    }
}

/// A running tracker.
#[derive(Debug)]
pub struct App {
    ws_addr: SocketAddr,
    admin_addr: SocketAddr,
    tls: bool,
    metrics: Metrics,
    server: Server,
    grace: Duration,
    /// Stops accepting and closes client connections.
    shutdown: CancellationToken,
    /// Stops the admin listener and the cleanup task (after the drain).
    admin_stop: CancellationToken,
    fatal: CancellationToken,
    draining: Arc<AtomicBool>,
    connections: TaskTracker,
}

impl App {
    /// Binds both listeners (port 0 is fine), loads TLS, and starts every task.
    pub async fn bind(config: Config) -> Result<Self, AppError> {
        let config = Arc::new(config);
        let metrics = Metrics::new(env!("CARGO_PKG_VERSION"))?;
        let tls = match (&config.server.tls_cert_file, &config.server.tls_key_file) {
            (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
            _ => None,
        };
        let bind = |what: &'static str, addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| AppError::Bind { what, addr, source })
        };
        let ws_listener = bind("websocket", config.server.listen).await?;
        let admin_listener = bind("admin", config.admin.listen).await?;
        let local = |l: &TcpListener, what, addr| {
            l.local_addr()
                .map_err(|source| AppError::Bind { what, addr, source })
        };
        let ws_addr = local(&ws_listener, "websocket", config.server.listen)?;
        let admin_addr = local(&admin_listener, "admin", config.admin.listen)?;

        let server = Server::new(Arc::clone(&config), metrics.clone(), rand::random());
        let app = Self {
            ws_addr,
            admin_addr,
            tls: tls.is_some(),
            metrics: metrics.clone(),
            server: server.clone(),
            grace: config.server.shutdown_grace,
            shutdown: CancellationToken::new(),
            admin_stop: CancellationToken::new(),
            fatal: CancellationToken::new(),
            draining: Arc::new(AtomicBool::new(false)),
            connections: TaskTracker::new(),
        };

        let accept = {
            let guard = app.critical("accept", &app.shutdown);
            let (server, tasks, stop) = (
                server.clone(),
                app.connections.clone(),
                app.shutdown.clone(),
            );
            async move {
                let _guard = guard;
                server.run(ws_listener, tls, tasks, stop).await;
            }
        };
        tokio::spawn(accept.instrument(tracing::info_span!("accept", addr = %ws_addr)));

        let admin_task = {
            let guard = app.critical("admin", &app.admin_stop);
            let state = AdminState {
                metrics,
                draining: Arc::clone(&app.draining),
            };
            let stop = app.admin_stop.clone();
            async move {
                let _guard = guard;
                admin::serve(admin_listener, state, stop).await;
            }
        };
        tokio::spawn(admin_task.instrument(tracing::info_span!("admin", addr = %admin_addr)));

        let cleanup = {
            let guard = app.critical("cleanup", &app.admin_stop);
            let stop = app.admin_stop.clone();
            let every = config.swarm.cleanup_interval;
            async move {
                let _guard = guard;
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        now = tick.tick() => server.sweep(now.into_std()),
                    }
                }
            }
        };
        tokio::spawn(cleanup.instrument(tracing::info_span!("cleanup")));

        tracing::info!(
            listen = %ws_addr,
            admin = %admin_addr,
            tls = app.tls,
            policy = ?config.swarm.policy,
            "tracker listening"
        );
        Ok(app)
    }

    fn critical(&self, name: &'static str, stop: &CancellationToken) -> Critical {
        Critical {
            name,
            shutdown: stop.clone(),
            fatal: self.fatal.clone(),
        }
    }

    /// The bound WebSocket address.
    pub fn ws_addr(&self) -> SocketAddr {
        self.ws_addr
    }

    /// The bound admin address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The announce URL clients use (`ws://` or `wss://`).
    pub fn announce_url(&self) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{}/announce", self.ws_addr)
    }

    /// The metrics (for tests and embedding).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Connections admitted and not yet closed.
    pub fn open_connections(&self) -> usize {
        self.server.open_connections()
    }

    /// Graceful shutdown: stop accepting, close every client, wait up to the grace
    /// period, then stop the admin listener.
    pub async fn shutdown(self) -> Stopped {
        self.draining.store(true, Ordering::Relaxed);
        self.shutdown.cancel();
        self.connections.close();
        let drained = tokio::time::timeout(self.grace, self.connections.wait())
            .await
            .is_ok();
        self.admin_stop.cancel();
        if drained {
            tracing::info!("all connections closed");
            Stopped::Drained
        } else {
            tracing::warn!(
                open = self.connections.len(),
                "grace period expired; exiting"
            );
            Stopped::GraceExpired
        }
    }

    /// Serves until SIGTERM or SIGINT (from `signals`), then shuts down gracefully; a second
    /// signal during the drain exits at once.
    pub async fn run_until_signal(self, mut signals: Signals) -> Result<Stopped, AppError> {
        tokio::select! {
            () = signals.recv() => {}
            () = self.fatal.cancelled() => return Ok(Stopped::Failed),
        }
        tracing::info!(grace = ?self.grace, "shutting down; a second signal exits at once");
        tokio::select! {
            stopped = self.shutdown() => Ok(stopped),
            () = signals.recv() => Ok(Stopped::Forced),
        }
    }
}

/// The SIGTERM and SIGINT listeners behind [`App::run_until_signal`]. Install them before
/// [`App::bind`]: until they exist a signal has its default action, so a supervisor (or a
/// test) that sends SIGTERM as soon as it reads "tracker listening" would kill the process
/// instead of draining it.
#[derive(Debug)]
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs both listeners (needs a Tokio runtime with signals enabled).
    pub fn install() -> Result<Self, AppError> {
        Ok(Signals {
            term: signal(SignalKind::terminate()).map_err(AppError::Signals)?,
            int: signal(SignalKind::interrupt()).map_err(AppError::Signals)?,
        })
    }

    /// The next SIGTERM or SIGINT.
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
