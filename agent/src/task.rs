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

/// Waits for SIGTERM or SIGINT, then cancels `cancel`. A second signal exits at once with
/// status 130.
pub async fn watch_signals(cancel: CancellationToken) {
    wait_for_signal().await;
    tracing::info!("shutdown signal received; draining (send again to exit at once)");
    cancel.cancel();
    wait_for_signal().await;
    tracing::warn!("second signal: exiting now");
    std::process::exit(130);
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot install SIGTERM handler");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
