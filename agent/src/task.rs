//! Task supervision: a cancellation token and a task tracker shared by every long-lived task,
//! and the signal handling that drives a graceful shutdown.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The handles every long-lived task gets.
#[derive(Debug, Clone, Default)]
pub struct Supervisor {
    /// Fired once to start shutting down.
    pub cancel: CancellationToken,
    /// Tracks spawned tasks so shutdown can wait for them.
    pub tracker: TaskTracker,
}

impl Supervisor {
    /// A fresh supervisor.
    pub fn new() -> Self {
        Self::default()
    }

    /// Spawns a named task that is tracked; the name shows in logs when it ends abnormally.
    pub fn spawn<F>(&self, name: &'static str, fut: F) -> tokio::task::JoinHandle<()>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(async move {
            fut.await;
            tracing::debug!(task = name, "task finished");
        })
    }

    /// Cancels everything and waits up to `grace` for tracked tasks to end. Returns whether
    /// they all ended in time.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.cancel.cancel();
        self.tracker.close();
        tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok()
    }
}

/// Waits for SIGTERM or SIGINT (from `signals`), then cancels `cancel`. A second signal exits
/// at once with status 130.
pub async fn watch_signals(cancel: CancellationToken, mut signals: Signals) {
    signals.recv().await;
    tracing::info!("shutdown signal received; draining (send again to exit at once)");
    cancel.cancel();
    signals.recv().await;
    tracing::warn!("second signal: exiting now");
    std::process::exit(130);
}

/// The SIGTERM and SIGINT listeners behind [`watch_signals`]. Install them before the process
/// says it is ready: until they exist a signal has its default action, so a supervisor (or a
/// test) that sends SIGTERM as soon as it reads the ready line would kill the process instead
/// of draining it.
#[derive(Debug)]
pub struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the listeners (needs a Tokio runtime with signals enabled).
    #[cfg(unix)]
    pub fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Installs the listeners (Ctrl-C only on this platform; it is installed when awaited).
    #[cfg(not(unix))]
    pub fn install() -> std::io::Result<Self> {
        Ok(Signals {})
    }

    /// The next SIGTERM or SIGINT.
    #[cfg(unix)]
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }

    /// The next Ctrl-C.
    #[cfg(not(unix))]
    pub async fn recv(&mut self) {
        let _ = tokio::signal::ctrl_c().await;
    }
}
