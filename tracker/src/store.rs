//! Where swarm state lives. Only an in-memory store exists: one [`Registry`] behind a
//! mutex, shared by all connection tasks.
//!
//! Every operation on the registry takes microseconds and never awaits while holding
//! the lock, so a single lock serves one process well (the benchmark figures in the
//! report come from this design). Scale-out across processes (a Redis or NATS
//! backplane, DESIGN.md pattern 2) does not exist yet; shard swarms across tracker
//! instances by `info_hash` instead (pattern 1).

use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::metrics::Metrics;
use crate::swarm::Registry;

/// The shared in-memory registry; updates the state gauges after every change.
#[derive(Debug)]
pub struct MemoryStore<C> {
    inner: Mutex<Registry<C>>,
    metrics: Metrics,
}

impl<C: Clone> MemoryStore<C> {
    /// Wraps a registry.
    pub fn new(registry: Registry<C>, metrics: Metrics) -> Self {
        Self {
            inner: Mutex::new(registry),
            metrics,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Registry<C>> {
        // A panic while holding the lock cannot leave the registry half-updated in a way
        // that breaks memory safety; keep serving rather than cascade the panic.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the registry under the lock, then refreshes the gauges.
    pub fn with<R>(&self, f: impl FnOnce(&mut Registry<C>) -> R) -> R {
        let mut reg = self.lock();
        let out = f(&mut reg);
        self.metrics
            .peers
            .set(i64::try_from(reg.peer_count()).unwrap_or(i64::MAX));
        self.metrics
            .swarms
            .set(i64::try_from(reg.swarm_count()).unwrap_or(i64::MAX));
        out
    }

    /// Read-only access under the lock.
    pub fn read<R>(&self, f: impl FnOnce(&Registry<C>) -> R) -> R {
        f(&self.lock())
    }
}
