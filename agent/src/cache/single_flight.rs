//! Single-flight: concurrent callers asking for the same key share one execution.
//!
//! The leader's work runs in its own task, so a player that disconnects does not cancel a
//! fetch that other players (or the cache) are waiting for.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

type Slot<V, E> = watch::Receiver<Option<Result<V, E>>>;

/// Deduplicates concurrent work by key.
pub struct SingleFlight<K, V, E> {
    inflight: Arc<Mutex<HashMap<K, Slot<V, E>>>>,
}

impl<K, V, E> std::fmt::Debug for SingleFlight<K, V, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SingleFlight { .. }")
    }
}

impl<K, V, E> Default for SingleFlight<K, V, E> {
    fn default() -> Self {
        Self {
            inflight: Arc::new(Mutex::new(HashMap::new())),
        }
    }
}

/// Whether a call started the work or joined work already under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// This call started the work.
    Leader,
    /// This call joined an in-flight execution.
    Joined,
}

/// Removes the in-flight slot when the leader task ends, even by panic.
struct SlotGuard<K: Hash + Eq, V, E> {
    map: Arc<Mutex<HashMap<K, Slot<V, E>>>>,
    key: Option<K>,
}

impl<K: Hash + Eq, V, E> Drop for SlotGuard<K, V, E> {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            self.map
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&k);
        }
    }
}

impl<K, V, E> SingleFlight<K, V, E>
where
    K: Hash + Eq + Clone + Send + 'static,
    V: Clone + Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
{
    /// A new, empty group.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of keys in flight.
    pub fn in_flight(&self) -> usize {
        self.inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Runs `make()` for `key` unless it is already running, and returns its result.
    /// `lost` is returned to joiners if the leader task dies without a result.
    pub async fn run<F, Fut>(&self, key: K, make: F, lost: E) -> (Result<V, E>, Role)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
    {
        let (mut rx, role) = {
            let mut map = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(rx) = map.get(&key) {
                (rx.clone(), Role::Joined)
            } else {
                let (tx, rx) = watch::channel(None);
                map.insert(key.clone(), rx.clone());
                let fut = make();
                let guard = SlotGuard {
                    map: self.inflight.clone(),
                    key: Some(key),
                };
                tokio::spawn(async move {
                    let result = fut.await;
                    // Remove the slot before publishing, so a caller arriving after the
                    // result starts fresh work rather than reading a stale slot.
                    drop(guard);
                    let _ = tx.send(Some(result));
                });
                (rx, Role::Leader)
            }
        };
        let result = match rx.wait_for(Option::is_some).await {
            Ok(v) => v.clone().unwrap_or(Err(lost)),
            Err(_) => Err(lost),
        };
        (result, role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn fifty_callers_one_execution() {
        let sf: Arc<SingleFlight<&'static str, u32, String>> = Arc::new(SingleFlight::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Notify::new());
        let mut handles = Vec::new();
        for _ in 0..50 {
            let sf = sf.clone();
            let runs = runs.clone();
            let gate = gate.clone();
            handles.push(tokio::spawn(async move {
                sf.run(
                    "k",
                    move || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        gate.notified().await;
                        Ok(42)
                    },
                    "lost".to_string(),
                )
                .await
            }));
        }
        // Wait until every caller is attached (the slot exists and the leader runs).
        tokio::time::timeout(Duration::from_secs(5), async {
            while runs.load(Ordering::SeqCst) == 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("leader started");
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        gate.notify_one();
        let mut leaders = 0;
        for h in handles {
            let (r, role) = h.await.expect("task");
            assert_eq!(r, Ok(42));
            if role == Role::Leader {
                leaders += 1;
            }
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(leaders, 1);
        assert_eq!(sf.in_flight(), 0);
    }

    #[tokio::test]
    async fn leader_cancellation_does_not_cancel_work() {
        let sf: Arc<SingleFlight<u8, u8, String>> = Arc::new(SingleFlight::new());
        let sf2 = sf.clone();
        let leader = tokio::spawn(async move {
            sf2.run(
                1,
                || async {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok(9)
                },
                "lost".into(),
            )
            .await
        });
        tokio::task::yield_now().await;
        while sf.in_flight() == 0 {
            tokio::task::yield_now().await;
        }
        leader.abort();
        let (r, role) = sf.run(1, || async { Ok(0) }, "lost".into()).await;
        assert_eq!(role, Role::Joined);
        assert_eq!(r, Ok(9));
    }

    #[tokio::test]
    async fn errors_are_shared_and_not_sticky() {
        let sf: SingleFlight<u8, u8, String> = SingleFlight::new();
        let (r, _) = sf
            .run(1, || async { Err("boom".to_string()) }, "lost".into())
            .await;
        assert_eq!(r, Err("boom".into()));
        let (r, role) = sf.run(1, || async { Ok(1) }, "lost".into()).await;
        assert_eq!((r, role), (Ok(1), Role::Leader));
    }
}
