//! The I/O shell around the sans-IO `core`: one task per swarm feeds the scheduler its inputs
//! (playlist updates, player requests, peer frames, fetch results, timers) and executes its
//! outputs (origin fetches, peer requests, uploads, `have` announcements, bans). It makes no
//! decisions of its own.
//!
//! Integrity lives here because the bytes do: a peer transfer is reassembled by the core's
//! `PeerSession`, then its SHA-256 is checked against the digest from the origin's sidecar
//! before it is cached, served to a player or announced to anyone. A mismatch bans the peer.

mod partial;
mod swarm;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use url::Url;

use crate::app::Proxy;
use crate::cache::Entry;
use crate::config::{AgentConfig, IntegrityMode};
use crate::core::ids::{InfoHash, PeerId};
use crate::metrics::Metrics;
use crate::playlist::MediaInfo;
use crate::task::Supervisor;
use crate::tracker_client::{self, TrackerClientConfig, TrackerEvent, TrackerHandle};
use crate::transport::{Transport, WebRtcTransport};

pub use swarm::SwarmInput;

/// Answer to a player request routed through a swarm.
#[derive(Debug)]
pub enum PlayerAnswer {
    /// The verified segment.
    Ready(Entry),
    /// The swarm does not track it: fetch it the plain way.
    Unknown,
    /// It could not be obtained.
    Failed(String),
}

/// A segment known to a swarm.
#[derive(Debug, Clone, Copy)]
struct IndexEntry {
    info_hash: [u8; 20],
    seq: u64,
}

struct SwarmHandle {
    tx: mpsc::Sender<SwarmInput>,
}

/// Bound on the segment index (URL → swarm, seq).
const MAX_INDEX: usize = 200_000;

/// The P2P runtime: swarms, the tracker client and the segment index.
pub struct P2p {
    cfg: Arc<AgentConfig>,
    peer_id: PeerId,
    transport: Arc<dyn Transport>,
    tracker: TrackerHandle,
    swarms: Mutex<HashMap<[u8; 20], SwarmHandle>>,
    index: Mutex<HashMap<String, IndexEntry>>,
    proxy: Weak<Proxy>,
    metrics: Metrics,
    supervisor: Supervisor,
}

impl std::fmt::Debug for P2p {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("P2p")
            .field("peer_id", &self.peer_id)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Error starting P2P.
#[derive(Debug, thiserror::Error)]
pub enum P2pError {
    /// The transport could not be set up.
    #[error("WebRTC transport: {0}")]
    Transport(String),
    /// The tracker URL is unusable.
    #[error("tracker URL: {0}")]
    Tracker(String),
}

impl P2p {
    /// Starts the tracker client and the event router. Swarms start on demand.
    pub fn start(
        cfg: Arc<AgentConfig>,
        proxy: Weak<Proxy>,
        metrics: Metrics,
        supervisor: Supervisor,
    ) -> Result<Arc<Self>, P2pError> {
        let url = Url::parse(&cfg.p2p.tracker).map_err(|e| P2pError::Tracker(e.to_string()))?;
        let transport: Arc<dyn Transport> = Arc::new(
            WebRtcTransport::new(cfg.p2p.webrtc.clone())
                .map_err(|e| P2pError::Transport(e.to_string()))?,
        );
        let peer_id = PeerId::random(&mut rand::rng());
        let (ev_tx, ev_rx) = mpsc::channel(256);
        let tracker = tracker_client::spawn(
            TrackerClientConfig {
                url,
                offers_per_announce: cfg.p2p.offers_per_announce,
                max_peers: cfg.p2p.max_peers,
                accept_peers: cfg.p2p.accept_peers,
                max_announce_interval: cfg.p2p.announce_interval,
                hungry_announce_interval: cfg.p2p.hungry_announce_interval,
                reconnect_min: Duration::from_millis(250),
                reconnect_max: Duration::from_secs(10),
                connect_timeout: Duration::from_secs(5),
            },
            peer_id.0,
            transport.clone(),
            ev_tx,
            supervisor.cancel.clone(),
            &supervisor.tracker,
        );
        let p2p = Arc::new(Self {
            cfg,
            peer_id,
            transport,
            tracker,
            swarms: Mutex::new(HashMap::new()),
            index: Mutex::new(HashMap::new()),
            proxy,
            metrics,
            supervisor: supervisor.clone(),
        });
        let router = p2p.clone();
        supervisor.spawn(
            "tracker-events",
            async move { router.route_events(ev_rx).await },
        );
        tracing::info!(peer_id = %p2p.peer_id, "peer-to-peer sharing on");
        Ok(p2p)
    }

    /// This agent's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    async fn route_events(self: Arc<Self>, mut rx: mpsc::Receiver<TrackerEvent>) {
        let cancel = self.supervisor.cancel.clone();
        loop {
            let ev = tokio::select! {
                _ = cancel.cancelled() => return,
                ev = rx.recv() => match ev { Some(e) => e, None => return },
            };
            match ev {
                TrackerEvent::Link {
                    info_hash,
                    peer,
                    link,
                    offerer,
                } => {
                    let tx = lock(&self.swarms).get(&info_hash).map(|h| h.tx.clone());
                    match tx {
                        Some(tx) => {
                            let input = SwarmInput::Link {
                                peer: PeerId(peer),
                                link,
                                offerer,
                            };
                            if let Err(mpsc::error::SendError(SwarmInput::Link { link, .. })) =
                                tx.send(input).await
                            {
                                link.handle.close().await;
                            }
                        }
                        None => {
                            link.handle.close().await;
                        }
                    }
                }
                TrackerEvent::SwarmSize { info_hash, size } => {
                    let tx = lock(&self.swarms).get(&info_hash).map(|h| h.tx.clone());
                    if let Some(tx) = tx {
                        let _ = tx.try_send(SwarmInput::SwarmSize(size));
                    }
                }
                TrackerEvent::Connected(up) => {
                    tracing::debug!(up, "tracker connection state");
                }
            }
        }
    }

    /// Called with every media playlist the proxy serves. Starts (or refreshes) its swarm.
    /// `swarm_url` is the requested origin URL of the media playlist (its swarm key is that
    /// URL without query); `final_url` is where it was fetched from after redirects.
    pub fn observe_media_playlist(
        self: &Arc<Self>,
        swarm_url: &Url,
        final_url: &Url,
        info: Arc<MediaInfo>,
    ) {
        let mut key_url = swarm_url.clone();
        key_url.set_query(None);
        key_url.set_fragment(None);
        let key = key_url.as_str().to_string();
        let info_hash = InfoHash::from_swarm_key(&key).0;
        // The player gets this playlist as soon as we return and may ask for its newest segment
        // at once. Indexed now, that request reaches the swarm task queued behind this playlist;
        // indexed by the task, it could arrive first, go around the swarm to the origin, and
        // leave a gap in the request pattern that the scheduler reads the playhead from.
        self.index_segments(
            info_hash,
            info.segments
                .iter()
                .filter(|s| !s.gap)
                .map(|s| (swarm::segment_index_key(s), s.seq)),
            0,
        );
        let existing = lock(&self.swarms).get(&info_hash).map(|h| h.tx.clone());
        if let Some(tx) = existing {
            if tx
                .try_send(SwarmInput::Playlist {
                    info: info.clone(),
                    final_url: final_url.clone(),
                    own: false,
                })
                .is_ok()
            {
                return;
            }
            if !tx.is_closed() {
                return; // Busy; the swarm follows the playlist itself anyway.
            }
            lock(&self.swarms).remove(&info_hash);
        }
        let Some(proxy) = self.proxy.upgrade() else {
            return;
        };
        let integrity = self
            .cfg
            .streams
            .iter()
            .find(|s| {
                Url::parse(&s.url)
                    .ok()
                    .is_some_and(|u| u.as_str().split('?').next() == Some(key.as_str()))
            })
            .and_then(|s| s.integrity)
            .unwrap_or(self.cfg.integrity.mode);
        let (tx, rx) = mpsc::channel(1024);
        lock(&self.swarms).insert(info_hash, SwarmHandle { tx: tx.clone() });
        let task = swarm::SwarmTask::new(swarm::SwarmSetup {
            info_hash,
            playlist_url: swarm_url.clone(),
            final_url: final_url.clone(),
            info,
            allow_unverified: integrity == IntegrityMode::Off,
            cfg: self.cfg.clone(),
            me: self.peer_id,
            proxy,
            p2p: Arc::downgrade(self),
            metrics: self.metrics.clone(),
            tx,
            rx,
            cancel: self.supervisor.cancel.child_token(),
        });
        let tracker = self.tracker.clone();
        let me = self.clone();
        self.supervisor.spawn("swarm", async move {
            tracker.join(info_hash).await;
            task.run().await;
            tracker.leave(info_hash).await;
            lock(&me.swarms).remove(&info_hash);
            lock(&me.index).retain(|_, e| e.info_hash != info_hash);
        });
        tracing::info!(swarm = %crate::origin::redact(&key_url), "joined swarm");
    }

    /// Records which swarm segment a URL key is.
    fn index_segments(
        &self,
        info_hash: [u8; 20],
        entries: impl IntoIterator<Item = (String, u64)>,
        forget_below: u64,
    ) {
        let mut index = lock(&self.index);
        if forget_below > 0 {
            index.retain(|_, e| e.info_hash != info_hash || e.seq >= forget_below);
        }
        for (k, seq) in entries {
            if index.len() >= MAX_INDEX {
                break;
            }
            index.insert(k, IndexEntry { info_hash, seq });
        }
    }

    /// Whether a player request for `seg` goes to a swarm (rather than the plain proxy path).
    pub fn routes(&self, seg: &crate::playlist::SegmentRef) -> bool {
        let Some(entry) = lock(&self.index)
            .get(&swarm::segment_index_key(seg))
            .copied()
        else {
            return false;
        };
        lock(&self.swarms).contains_key(&entry.info_hash)
    }

    /// Routes a player request for `key` (origin URL, plus `@offset-length` for ranges) to its
    /// swarm. `None`: no swarm knows it.
    pub async fn player_request(&self, key: &str) -> Option<PlayerAnswer> {
        let entry = *lock(&self.index).get(key)?;
        let tx = lock(&self.swarms).get(&entry.info_hash)?.tx.clone();
        let (reply, rx) = oneshot::channel();
        tx.send(SwarmInput::Player {
            seq: entry.seq,
            reply,
        })
        .await
        .ok()?;
        // The swarm answers by its deadlines; this bound only protects against a lost task.
        match tokio::time::timeout(self.cfg.origin.total_timeout * 3, rx).await {
            Ok(Ok(a)) => Some(a),
            _ => Some(PlayerAnswer::Unknown),
        }
    }

    /// Connected peers over all swarms (for `/api/stats`).
    pub fn swarm_count(&self) -> usize {
        lock(&self.swarms).len()
    }

    /// The transport (for tests).
    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.transport
    }

    /// Tells the tracker client how many peers a swarm has.
    fn set_peers(&self, info_hash: [u8; 20], peers: Vec<[u8; 20]>, banned: Vec<[u8; 20]>) {
        self.tracker.set_peers(info_hash, peers, banned);
    }
}
