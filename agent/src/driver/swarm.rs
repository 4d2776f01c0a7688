//! One swarm (one media playlist): the task that owns its `Scheduler`, its peer sessions and
//! its waiting players.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::partial::{OriginPrefix, PartialSegment, Verified};
use super::{P2p, PlayerAnswer};
use crate::app::{Proxy, SegmentKey};
use crate::cache::Entry;
use crate::config::AgentConfig;
use crate::core::edge::EdgeClock;
use crate::core::ids::{Digest, PeerId};
use crate::core::peer_proto::{
    Capabilities, DATA_HEADER_LEN, Message, PeerSession, SessionConfig, SessionEvent, encode,
};
use crate::core::policy::next_reload;
use crate::core::scheduler::{
    Action, OriginFailure, PlayerOutcome, PlaylistUpdate, RefuseReason, Scheduler, SchedulerConfig,
    SegmentInfo, SegmentStatus,
};
use crate::core::stripes::{self, Stripes};
use crate::integrity::{self, ChunkDigests, Digests};
use crate::metrics::{Metrics, Source};
use crate::origin::{BodyTap, ByteRange, OriginError, redact};
use crate::playlist::{self, MediaInfo};
use crate::transport::{FrameSender, LinkHandle, PeerLink};

/// Inputs of a swarm task.
pub enum SwarmInput {
    /// The proxy served (or the follower fetched) this media playlist.
    Playlist {
        /// Parsed playlist.
        info: Arc<MediaInfo>,
        /// URL after redirects.
        final_url: Url,
        /// Fetched by this swarm's own reload (`false`: a playlist the proxy served a player,
        /// possibly from its cache, which says nothing about when the origin published).
        own: bool,
    },
    /// A digest sidecar arrived (`None`: absent or rejected); `latest`: the short one that
    /// lists only the newest segments.
    Digests {
        latest: bool,
        digests: Option<Arc<Digests>>,
    },
    /// A player wants segment `seq`.
    Player {
        /// Segment.
        seq: u64,
        /// Where to answer.
        reply: oneshot::Sender<PlayerAnswer>,
    },
    /// A data channel to a peer opened.
    Link {
        /// The peer id the tracker gave.
        peer: PeerId,
        /// The link.
        link: PeerLink,
        /// Whether we made the offer.
        offerer: bool,
    },
    /// A frame from a peer (`conn` identifies the link).
    Frame {
        /// Link id.
        conn: u64,
        /// The frame.
        frame: Bytes,
    },
    /// A link closed.
    Closed {
        /// Link id.
        conn: u64,
    },
    /// An origin fetch ended.
    OriginDone {
        /// Segment.
        seq: u64,
        /// Bytes or failure.
        result: Result<Entry, OriginError>,
    },
    /// Bytes of an origin fetch of one unit arrived (its body tap): `data` at `offset` in the
    /// body, whose announced length is `announced`.
    OriginBytes {
        /// Unit id.
        unit: u64,
        /// Offset of `data` in the body of the current attempt.
        offset: u64,
        /// The frame.
        data: Bytes,
        /// The body's `Content-Length`, if announced.
        announced: Option<u64>,
    },
    /// An origin fetch of one unit of a striped segment ended.
    UnitOriginDone {
        /// Unit id.
        unit: u64,
        /// Bytes or failure.
        result: Result<Bytes, OriginError>,
    },
    /// An origin tail fetch ended (bytes `from..` of segment `seq`).
    TailDone {
        /// Segment.
        seq: u64,
        /// First byte fetched.
        from: u64,
        /// Bytes or failure.
        result: Result<Bytes, OriginError>,
    },
    /// An upload ended.
    UploadDone {
        /// Peer.
        peer: PeerId,
        /// Request.
        req_id: u32,
        /// Bytes sent.
        bytes: u64,
    },
    /// The tracker's count of peers in the swarm.
    SwarmSize(usize),
    /// A playlist reload by the follower failed.
    PollFailed,
}

/// Everything a swarm task needs.
pub struct SwarmSetup {
    pub info_hash: [u8; 20],
    pub playlist_url: Url,
    pub final_url: Url,
    pub info: Arc<MediaInfo>,
    pub allow_unverified: bool,
    pub cfg: Arc<AgentConfig>,
    pub me: PeerId,
    pub proxy: Arc<Proxy>,
    pub p2p: Weak<P2p>,
    pub metrics: Metrics,
    pub tx: mpsc::Sender<SwarmInput>,
    pub rx: mpsc::Receiver<SwarmInput>,
    pub cancel: CancellationToken,
}

struct Seg {
    url: Url,
    range: Option<ByteRange>,
    digest: Option<Digest>,
    /// Chunk digests from the sidecar: peer transfers are verified chunk by chunk and served
    /// onwards cut-through.
    chunks: Option<ChunkDigests>,
    /// Origin bytes did not match the published digest: never offered to peers.
    unshareable: bool,
    /// Units it is shared as (fixed when the scheduler first hears of it; 1 = whole).
    units: u8,
    /// The scheduler has been told about it.
    fed: bool,
}

struct Conn {
    peer: PeerId,
    session: PeerSession,
    sender: FrameSender,
    handle: LinkHandle,
    offerer: bool,
    established: bool,
    /// The peer understands partial `Have`s.
    cut_through: bool,
    /// Our outstanding requests on this link: req_id → (seq, started).
    requests: HashMap<u32, (u64, Instant)>,
}

pub struct SwarmTask {
    s: SwarmSetup,
    sched: Scheduler,
    segs: BTreeMap<u64, Seg>,
    digests: Option<Arc<Digests>>,
    digests_pending: bool,
    digests_missing_logged: bool,
    conns: HashMap<u64, Conn>,
    by_peer: HashMap<PeerId, u64>,
    next_conn: u64,
    waiters: HashMap<u64, Vec<oneshot::Sender<PlayerAnswer>>>,
    origin_tasks: HashMap<u64, AbortHandle>,
    /// Origin tails in flight.
    tail_tasks: HashMap<u64, AbortHandle>,
    /// Origin tails that arrived before their head was verified that far: (from, bytes).
    tails: HashMap<u64, (u64, Bytes)>,
    uploads: HashMap<(PeerId, u32), AbortHandle>,
    /// Units being received with chunk digests (from peers, or from the origin): their
    /// verified prefix.
    partials: HashMap<u64, PartialSegment>,
    /// Origin fetches of units, as their bytes arrive: the source their partial copies are
    /// verified from (cut-through of origin fetches).
    origin_prefixes: HashMap<u64, OriginPrefix>,
    /// Verified units of striped segments not yet whole: body and whether a peer sent it.
    unit_bodies: HashMap<u64, (Bytes, bool)>,
    last_player: Instant,
    next_poll: Option<Instant>,
    poll_in_flight: bool,
    /// When the playlist load in flight was sent.
    poll_sent: Option<Instant>,
    /// Learns when the origin publishes, to aim reloads (`playlist.align_reloads`).
    edge: EdgeClock,
    last_media_sequence: Option<u64>,
    /// Player requests for segments the scheduler has not been told about yet (the digest
    /// sidecar is on its way); re-dispatched when it arrives.
    parked: Vec<(u64, oneshot::Sender<PlayerAnswer>)>,
    /// Peers banned in this swarm session (bounded).
    banned: std::collections::HashSet<PeerId>,
    /// Sidecar re-fetches since the playlist last changed.
    digest_retries: u32,
    /// The latest sidecar (newest segments only) is not used before this instant: it was
    /// missing, unreadable or short of a segment the playlist lists.
    latest_off_until: Option<Instant>,
    latest: Arc<MediaInfo>,
    final_url: Url,
}

/// After the latest sidecar failed us (missing, unreadable, or short of a listed segment),
/// the full one is fetched for this long.
const LATEST_OFF: Duration = Duration::from_secs(60);

/// Live segments are kept (indexed, cached) this many sequence numbers before the first
/// segment of the current playlist, then dropped from the index and the segment cache.
const KEEP_BEHIND_WINDOW: u64 = 8;

fn encode_msg(m: &Message) -> Option<Bytes> {
    let mut b = BytesMut::new();
    encode(m, &mut b).ok()?;
    Some(b.freeze())
}

impl SwarmTask {
    pub fn new(s: SwarmSetup) -> Self {
        let now = Instant::now();
        let p = &s.cfg.p2p;
        let sched_cfg = SchedulerConfig {
            fetchers: p.fetchers,
            upload_slots: p.upload_slots,
            upload_rate_cap: (p.upload_rate_cap.as_u64() > 0).then(|| p.upload_rate_cap.as_u64()),
            peer_wait_budget: (!p.peer_wait_budget.is_zero()).then_some(p.peer_wait_budget),
            stall_timeout: p.stall_timeout,
            player_wait_budget: p.startup_wait,
            allow_unverified: s.allow_unverified,
            max_segments: 65_536,
            stripes: Stripes::new(p.stripes).unwrap_or_default(),
            ..SchedulerConfig::default()
        };
        let sched = match Scheduler::new(now, s.me, sched_cfg.clone()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "scheduler config rejected; using defaults");
                Scheduler::new(
                    now,
                    s.me,
                    SchedulerConfig {
                        allow_unverified: sched_cfg.allow_unverified,
                        ..SchedulerConfig::default()
                    },
                )
                .unwrap_or_else(|_| unreachable_default(now, s.me))
            }
        };
        let latest = s.info.clone();
        let final_url = s.final_url.clone();
        Self {
            sched,
            segs: BTreeMap::new(),
            digests: None,
            digests_pending: false,
            digests_missing_logged: false,
            conns: HashMap::new(),
            by_peer: HashMap::new(),
            next_conn: 1,
            waiters: HashMap::new(),
            origin_tasks: HashMap::new(),
            tail_tasks: HashMap::new(),
            tails: HashMap::new(),
            uploads: HashMap::new(),
            partials: HashMap::new(),
            origin_prefixes: HashMap::new(),
            unit_bodies: HashMap::new(),
            last_player: now,
            next_poll: None,
            poll_in_flight: false,
            poll_sent: None,
            edge: EdgeClock::new(now),
            last_media_sequence: None,
            parked: Vec::new(),
            banned: std::collections::HashSet::new(),
            digest_retries: 0,
            latest_off_until: None,
            latest,
            final_url,
            s,
        }
    }

    pub async fn run(mut self) {
        let info = self.latest.clone();
        self.on_playlist(info, true, false);
        let idle = self.s.cfg.p2p.swarm_idle_timeout;
        loop {
            let now = Instant::now();
            if now.duration_since(self.last_player) > idle && self.waiters.is_empty() {
                tracing::info!(swarm = %redact(&self.s.playlist_url), "no player for a while; leaving swarm");
                break;
            }
            let mut wake = now + Duration::from_secs(1);
            if let Some(t) = self.sched.poll_timeout() {
                wake = wake.min(t);
            }
            for c in self.conns.values() {
                wake = wake.min(c.session.poll_timeout());
            }
            if let Some(p) = self.next_poll {
                wake = wake.min(p);
            }
            let input = tokio::select! {
                _ = self.s.cancel.cancelled() => break,
                i = self.s.rx.recv() => i,
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake.max(now))) => None,
            };
            let now = Instant::now();
            if let Some(i) = input {
                self.on_input(now, i);
            }
            self.on_timers(now);
            self.drain_actions();
        }
        self.shutdown().await;
    }

    async fn shutdown(&mut self) {
        for (_, a) in self.origin_tasks.drain() {
            a.abort();
        }
        for (_, a) in self.uploads.drain() {
            a.abort();
        }
        for (_, w) in self.waiters.drain() {
            for r in w {
                let _ = r.send(PlayerAnswer::Unknown);
            }
        }
        let handles: Vec<LinkHandle> = self
            .conns
            .drain()
            .map(|(_, c)| {
                if c.established {
                    self.s.metrics.peers.dec();
                }
                c.handle
            })
            .collect();
        for h in handles {
            h.close().await;
        }
    }

    fn on_input(&mut self, now: Instant, input: SwarmInput) {
        match input {
            SwarmInput::Playlist {
                info,
                final_url,
                own,
            } => {
                self.final_url = final_url;
                if own {
                    self.poll_in_flight = false;
                }
                self.on_playlist(info, false, own);
            }
            SwarmInput::Digests { latest, digests } => {
                self.digests_pending = false;
                let mut retry = false;
                let missing_latest = latest && digests.is_none();
                match digests {
                    Some(d) => {
                        self.digests = Some(match (latest, &self.digests) {
                            // The newest segments' digests join those we hold for the rest of
                            // the window (entries the playlist no longer lists are dropped).
                            (true, Some(held)) => {
                                let keys: std::collections::HashSet<String> = self
                                    .latest
                                    .segments
                                    .iter()
                                    .map(playlist::SegmentRef::digest_key)
                                    .collect();
                                Arc::new(held.merged(&d, |k| keys.contains(k)))
                            }
                            _ => d,
                        });
                        // A live packager's sidecar can trail its playlist by a moment: ask
                        // again shortly rather than treat the newest segments as unverified.
                        let lacking = self
                            .latest
                            .segments
                            .iter()
                            .any(|s| self.digest_of(s).is_none());
                        if lacking && self.digest_retries < 8 {
                            retry = true;
                        }
                        if self.digest_retries == 1 {
                            // The first sidecar fetch after a reload that found new segments:
                            // reloads aimed at the playlist's publication should not outrun
                            // the sidecar's (see `core::edge`, "Digests").
                            self.edge.note_digests(lacking);
                        }
                        if lacking && latest && self.digest_retries >= 2 {
                            // Short of a segment twice: it may be a stale file that nothing
                            // updates; the full sidecar decides for a while.
                            self.latest_off_until = Some(now + LATEST_OFF);
                        }
                    }
                    None if latest => {
                        // An older publisher (no latest sidecar) or a transient error: the full
                        // sidecar, now and for a while.
                        tracing::debug!(
                            swarm = %redact(&self.s.playlist_url),
                            "no latest digest sidecar; fetching the full one"
                        );
                        self.latest_off_until = Some(now + LATEST_OFF);
                        retry = self.digest_retries < 8;
                    }
                    None if !self.digests_missing_logged && !self.s.allow_unverified => {
                        self.digests_missing_logged = true;
                        tracing::warn!(
                            swarm = %redact(&self.s.playlist_url),
                            "no digest sidecar for this stream: it plays from the origin only"
                        );
                    }
                    None => {}
                }
                let info = self.latest.clone();
                self.feed_scheduler(now, &info, retry);
                if retry {
                    // A missing latest sidecar: the full one at once; a short sidecar trails
                    // the playlist (or is stale): ask again shortly.
                    let delay = if missing_latest {
                        Duration::ZERO
                    } else {
                        Duration::from_millis(250)
                    };
                    self.fetch_digests_after(now, delay);
                }
                for (seq, reply) in std::mem::take(&mut self.parked) {
                    self.on_player(now, seq, reply);
                }
            }
            SwarmInput::Player { seq, reply } => self.on_player(now, seq, reply),
            SwarmInput::Link {
                peer,
                link,
                offerer,
            } => self.on_link(now, peer, link, offerer),
            SwarmInput::Frame { conn, frame } => self.on_frame(now, conn, frame),
            SwarmInput::Closed { conn } => self.drop_conn(now, conn),
            SwarmInput::OriginDone { seq: unit, result } => {
                self.origin_tasks.remove(&unit);
                let seq = self.stripes().seq_of(unit);
                match result {
                    Ok(entry) => {
                        if let Some(seg) = self.segs.get_mut(&seq)
                            && let Some(d) = seg.digest
                            && !d.verify(&entry.body)
                        {
                            seg.unshareable = true;
                            tracing::warn!(
                                seq,
                                "origin bytes do not match the published digest; not sharing this segment"
                            );
                        }
                        let size = entry.body.len() as u64;
                        self.sched.handle_origin_result(now, unit, Ok(size));
                        if self.segs.get(&seq).is_some_and(|s| !s.unshareable) {
                            self.complete_partial(unit, &entry.body);
                        }
                        self.wake(seq, Some(entry));
                    }
                    Err(e) => {
                        tracing::debug!(seq, error = %e, "origin fetch failed");
                        let retryable = e.is_retryable();
                        self.sched.handle_origin_result(
                            now,
                            unit,
                            Err(OriginFailure { retryable }),
                        );
                    }
                }
            }
            SwarmInput::OriginBytes {
                unit,
                offset,
                data,
                announced,
            } => self.on_origin_bytes(now, unit, offset, &data, announced),
            SwarmInput::UnitOriginDone { unit, result } => {
                self.origin_tasks.remove(&unit);
                self.origin_prefixes.remove(&unit);
                self.on_unit_origin(now, unit, result);
            }
            SwarmInput::TailDone { seq, from, result } => {
                self.tail_tasks.remove(&seq);
                match result {
                    Ok(bytes) => {
                        self.tails.insert(seq, (from, bytes));
                        self.try_join_tail(now, seq);
                    }
                    Err(e) => {
                        if matches!(e, OriginError::BadRange(_)) {
                            tracing::info!(seq, error = %e, "origin tail refused; the origin may not serve byte ranges");
                        } else {
                            tracing::debug!(seq, error = %e, "origin tail failed");
                        }
                        self.tail_failed(now, seq);
                    }
                }
            }
            SwarmInput::UploadDone {
                peer,
                req_id,
                bytes,
            } => {
                self.uploads.remove(&(peer, req_id));
                self.sched.handle_upload_done(now, peer, req_id, bytes);
            }
            SwarmInput::SwarmSize(n) => self.sched.handle_swarm_size(now, n),
            SwarmInput::PollFailed => self.poll_in_flight = false,
        }
    }

    fn on_player(&mut self, now: Instant, seq: u64, reply: oneshot::Sender<PlayerAnswer>) {
        self.last_player = now;
        if self.digests_pending && !self.segs.contains_key(&seq) && self.parked.len() < 256 {
            self.parked.push((seq, reply));
            return;
        }
        match self.sched.handle_player_request(now, seq) {
            PlayerOutcome::Ready => match self.cached(seq) {
                Some(e) => {
                    let _ = reply.send(PlayerAnswer::Ready(e));
                }
                None => {
                    for unit in self.stripes().units(seq) {
                        self.sched.handle_evicted(now, unit);
                    }
                    let _ = reply.send(PlayerAnswer::Unknown);
                }
            },
            PlayerOutcome::Waiting => self.waiters.entry(seq).or_default().push(reply),
            PlayerOutcome::Unknown => {
                let _ = reply.send(PlayerAnswer::Unknown);
            }
        }
    }

    fn cached(&self, seq: u64) -> Option<Entry> {
        let seg = self.segs.get(&seq)?;
        self.s.proxy.segment_cache().peek(&SegmentKey {
            url: strip(&seg.url),
            range: seg.range,
        })
    }

    fn wake(&mut self, seq: u64, entry: Option<Entry>) {
        let Some(waiters) = self.waiters.remove(&seq) else {
            return;
        };
        let entry = entry.or_else(|| self.cached(seq));
        for w in waiters {
            let _ = w.send(match &entry {
                Some(e) => PlayerAnswer::Ready(e.clone()),
                None => PlayerAnswer::Unknown,
            });
        }
    }

    fn on_playlist(&mut self, info: Arc<MediaInfo>, first: bool, own: bool) {
        let now = Instant::now();
        let changed =
            self.last_media_sequence != Some(info.media_sequence + info.segments.len() as u64);
        self.last_media_sequence = Some(info.media_sequence + info.segments.len() as u64);
        self.latest = info.clone();
        let target = Duration::from_secs(info.target_duration.max(1));
        let align = self.s.cfg.playlist.align_reloads;
        // Our own reload: when it was sent, and whether it found a new segment (the clock
        // learns from it when aligning; the rule alone goes by the media sequence).
        let mut own_load = None;
        if own && !info.endlist {
            let sent = self.poll_sent.take().unwrap_or(now);
            let found = if align {
                let listed: Vec<(u64, f64)> =
                    info.segments.iter().map(|s| (s.seq, s.duration)).collect();
                self.edge.observe(sent, now, &listed)
            } else {
                changed
            };
            let result = if found { "new_segment" } else { "unchanged" };
            self.s
                .metrics
                .playlist_reloads
                .with_label_values(&[result])
                .inc();
            own_load = Some((sent, found));
        }
        if info.endlist {
            self.next_poll = None;
        } else if let (true, Some((sent, found))) = (align, own_load) {
            // Aim the next reload just after the next segment's expected publication, never
            // sooner than RFC 8216 §6.3.4 allows (see `core::edge`).
            let next = self.edge.next_reload(sent, found, target);
            tracing::trace!(
                swarm = %redact(&self.s.playlist_url),
                next_reload_ms = next.saturating_duration_since(now).as_millis() as u64,
                phase_uncertainty_ms = self.edge.uncertainty().map(|u| (u * 1000.0) as u64),
                "live playlist reload scheduled"
            );
            self.next_poll = Some(next);
        } else if align {
            // A playlist a player got: our own reloads keep their schedule (the first one a
            // target duration from now).
            if self.next_poll.is_none() {
                self.next_poll = Some(next_reload(now, true, target));
            }
        } else {
            // RFC 8216 §6.3.4: a target duration after a changed (or first) load, half of one
            // after an unchanged load.
            self.next_poll = Some(next_reload(now, changed || first, target));
        }
        // New segments without digests: get the sidecar first, then feed the scheduler, so
        // the scheduler does not treat them as origin-only.
        let lacks = info.segments.iter().any(|s| self.digest_of(s).is_none());
        if lacks && !self.s.allow_unverified {
            if changed {
                self.digest_retries = 0;
            }
            if !self.digests_pending && self.digest_retries < 8 {
                // Route player requests for these segments here already; they wait for the
                // sidecar (parked) instead of going to the origin around the scheduler.
                if let Some(p2p) = self.s.p2p.upgrade() {
                    let index = info.segments.iter().map(|s| (segment_index_key(s), s.seq));
                    p2p.index_segments(self.s.info_hash, index, 0);
                }
                self.fetch_digests_after(now, Duration::ZERO);
            }
            if self.digests_pending {
                self.feed_scheduler(now, &info, true);
                return;
            }
        }
        self.feed_scheduler(now, &info, false);
    }

    fn digest_of(&self, s: &playlist::SegmentRef) -> Option<Digest> {
        self.digests.as_ref()?.get(&s.digest_key()).map(Digest)
    }

    /// Tells the scheduler about the playlist. With `skip_unverified`, segments whose digest
    /// has not been published yet are left out for now (a sidecar re-fetch is pending).
    fn feed_scheduler(&mut self, now: Instant, info: &MediaInfo, skip_unverified: bool) {
        let st = self.stripes();
        let mut infos = Vec::with_capacity(info.segments.len());
        let mut index = Vec::with_capacity(info.segments.len());
        for s in &info.segments {
            if s.gap {
                continue;
            }
            let digest = self.digest_of(s);
            if skip_unverified && digest.is_none() && !self.segs.contains_key(&s.seq) {
                continue;
            }

            let range = s.byterange.map(|r| ByteRange {
                start: r.offset,
                len: r.length,
            });
            let chunks = digest.and_then(|_| self.digests.as_ref()?.chunks(&s.digest_key()));
            let entry = self.segs.entry(s.seq).or_insert_with(|| Seg {
                url: s.url.clone(),
                range,
                digest,
                chunks: None,
                unshareable: false,
                units: 1,
                fed: false,
            });
            if entry.digest.is_none() {
                entry.digest = digest;
            }
            if entry.chunks.is_none() && entry.digest == digest {
                entry.chunks = chunks;
            }
            if !entry.fed {
                // The split is fixed here: unit ids must not change under the scheduler. Every
                // agent derives the same split from the same sidecar.
                entry.fed = true;
                entry.units = st.count_for(entry.chunks.as_ref().map(ChunkDigests::count));
            }
            let duration = Duration::from_secs_f64(s.duration.max(0.0));
            let k = entry.units;
            for j in 0..k {
                let size_hint = match (&entry.chunks, s.byterange) {
                    (Some(c), Some(r)) if k > 1 => {
                        let b = stripes::byte_range(r.length, c.chunk_size(), j, k);
                        Some(b.end - b.start)
                    }
                    (_, r) => r.map(|r| r.length),
                };
                infos.push(SegmentInfo {
                    seq: st.unit(s.seq, j),
                    digest: entry.digest.map(|d| {
                        let chunk = entry.chunks.as_ref().map_or(0, ChunkDigests::chunk_size);
                        stripes::unit_digest(&d, j, k, chunk)
                    }),
                    duration: duration / u32::from(k),
                    size_hint,
                    chunk_size: entry.chunks.as_ref().map(|c| c.chunk_size()),
                });
            }
            index.push((index_key(&s.url, range), s.seq));
        }
        let first = info.segments.first().map_or(0, |s| s.seq);
        let keep_from = first.saturating_sub(KEEP_BEHIND_WINDOW);
        let expired: Vec<u64> = self.segs.range(..keep_from).map(|(seq, _)| *seq).collect();
        for seq in expired {
            let Some(seg) = self.segs.remove(&seq) else {
                continue;
            };
            for unit in self.stripes().units(seq) {
                self.unit_bodies.remove(&unit);
            }
            // A live segment this far behind the window is no longer listed to any player
            // and peers no longer ask for it: free its bytes now rather than when the byte
            // budget forces it, so a viewer's memory stays near one playlist window.
            if !info.endlist {
                self.s.proxy.segment_cache().remove(&SegmentKey {
                    url: strip(&seg.url),
                    range: seg.range,
                });
            }
        }
        if let Some(p2p) = self.s.p2p.upgrade() {
            p2p.index_segments(self.s.info_hash, index, keep_from);
        }
        let update = PlaylistUpdate {
            live: !info.endlist,
            target_duration: Duration::from_secs(info.target_duration.max(1)),
            segments: &infos,
        };
        self.sched.handle_playlist(now, &update);
    }

    /// Fetches a digest sidecar after `delay`: the latest one (newest segments only) when we
    /// hold the digests of everything else the playlist lists, else the full one.
    fn fetch_digests_after(&mut self, now: Instant, delay: Duration) {
        let latest = self.wants_latest_sidecar(now);
        let url = if latest {
            integrity::latest_sidecar_url(&self.final_url)
        } else {
            integrity::sidecar_url(&self.final_url)
        };
        let Some(url) = url else {
            return;
        };
        self.digests_pending = true;
        self.digest_retries += 1;
        let proxy = self.s.proxy.clone();
        let tx = self.s.tx.clone();
        tokio::spawn(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let d = proxy.fetch_digests(&url).await;
            let digests = d.map(Arc::new);
            let _ = tx.send(SwarmInput::Digests { latest, digests }).await;
        });
    }

    /// Whether the latest sidecar covers what we lack: we hold the digests of all but the
    /// newest [`integrity::LATEST_SEGMENTS`] segments of a live playlist, and it has not
    /// failed us lately.
    fn wants_latest_sidecar(&self, now: Instant) -> bool {
        let segs = &self.latest.segments;
        let older = segs.len().saturating_sub(integrity::LATEST_SEGMENTS);
        !self.latest.endlist
            && self.digests.is_some()
            && self.latest_off_until.is_none_or(|t| now >= t)
            && segs
                .get(..older)
                .is_some_and(|old| old.iter().all(|s| s.gap || self.digest_of(s).is_some()))
    }

    fn on_timers(&mut self, now: Instant) {
        self.sched.handle_timeout(now);
        // Partial copies of segments the scheduler gave up or forgot: their uploads end.
        let sched = &self.sched;
        self.partials.retain(|seq, _| {
            sched
                .status(*seq)
                .is_some_and(|st| !matches!(st, SegmentStatus::Have | SegmentStatus::Failed))
        });
        let mut dead = Vec::new();
        let mut keepalives = Vec::new();
        for (&id, c) in &mut self.conns {
            match c.session.handle_timeout(now) {
                Ok(Some(m)) => keepalives.push((id, m)),
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(peer = %c.peer, error = %e, "peer session ended");
                    dead.push(id);
                }
            }
        }
        for (id, m) in keepalives {
            self.send_conn(id, &m);
        }
        for id in dead {
            self.close_conn(now, id);
        }
        if self.next_poll.is_some_and(|t| t <= now) && !self.poll_in_flight {
            self.poll_in_flight = true;
            self.poll_sent = Some(now);
            let target = Duration::from_secs(self.latest.target_duration.max(1));
            self.next_poll = Some(now + target / 2);
            // Players get the playlist we fetch from the proxy's cache. Once our reloads are
            // aligned, each one lands just after a publication, so the copy stays as fresh as
            // the origin's until our next reload, a target duration later: players need not
            // fetch in between (else the origin would see their reloads besides ours).
            let aligned = self.s.cfg.playlist.align_reloads && self.edge.aligned(target);
            // A quarter more, so the copy is still there when our next reload replaces it.
            let ttl = if aligned {
                target + target / 4
            } else {
                target / 2
            };
            let proxy = self.s.proxy.clone();
            let tx = self.s.tx.clone();
            let url = self.s.playlist_url.clone();
            tokio::spawn(async move {
                match proxy.fetch_media_info(&url, ttl).await {
                    Some((info, final_url)) => {
                        let _ = tx
                            .send(SwarmInput::Playlist {
                                info: Arc::new(info),
                                final_url,
                                own: true,
                            })
                            .await;
                    }
                    None => {
                        // Keep the previous view; the next poll tries again.
                        let _ = tx.send(SwarmInput::PollFailed).await;
                    }
                }
            });
        }
    }

    fn on_link(&mut self, now: Instant, peer: PeerId, link: PeerLink, offerer: bool) {
        if peer == self.s.me || self.banned.contains(&peer) {
            tokio::spawn(async move {
                link.handle.close().await;
            });
            return;
        }
        // Two links to one peer (both sides offered): keep the one offered by the smaller id,
        // a rule both ends evaluate the same way.
        if let Some(&old) = self.by_peer.get(&peer) {
            let keep_new = offerer == (self.s.me.0 < peer.0);
            let old_is_preferred = self
                .conns
                .get(&old)
                .is_some_and(|c| c.offerer == (self.s.me.0 < peer.0));
            if !keep_new || old_is_preferred {
                tokio::spawn(async move {
                    link.handle.close().await;
                });
                return;
            }
            self.close_conn(now, old);
        }
        // The config guarantees accept_peers >= max_peers.
        if self.conns.len() >= self.s.cfg.p2p.accept_peers * 2 {
            tokio::spawn(async move {
                link.handle.close().await;
            });
            return;
        }
        let id = self.next_conn;
        self.next_conn += 1;
        let caps = if self.s.allow_unverified {
            Capabilities::UPLOAD.union(Capabilities::UNVERIFIED)
        } else {
            Capabilities::UPLOAD
        }
        .union(Capabilities::CUT_THROUGH)
        .with_stripes(self.stripes());
        let mut session_cfg = SessionConfig::default();
        session_cfg.limits.max_frame = link
            .sender
            .max_frame_size()
            .min(session_cfg.limits.max_frame);
        session_cfg.limits.max_segment_size =
            u32::try_from(self.s.cfg.origin.max_segment_size.as_u64()).unwrap_or(u32::MAX);
        let session = PeerSession::new(
            now,
            crate::core::ids::InfoHash(self.s.info_hash),
            self.s.me,
            caps,
            Some(peer),
            session_cfg,
        );
        let PeerLink {
            sender,
            mut receiver,
            handle,
        } = link;
        let tx = self.s.tx.clone();
        tokio::spawn(async move {
            while let Ok(frame) = receiver.recv().await {
                if tx
                    .send(SwarmInput::Frame { conn: id, frame })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            let _ = tx.send(SwarmInput::Closed { conn: id }).await;
        });
        let hs = session.handshake();
        self.conns.insert(
            id,
            Conn {
                peer,
                session,
                sender,
                handle,
                offerer,
                established: false,
                cut_through: false,
                requests: HashMap::new(),
            },
        );
        self.by_peer.insert(peer, id);
        self.send_conn(id, &hs);
    }

    fn on_frame(&mut self, now: Instant, id: u64, frame: Bytes) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let peer = c.peer;
        let ev = match c.session.handle_frame(now, frame) {
            Ok(ev) => ev,
            Err(e) => {
                tracing::info!(peer = %peer, error = %e, "peer broke the protocol; disconnecting");
                self.close_conn(now, id);
                return;
            }
        };
        match ev {
            SessionEvent::Established { capabilities, .. } => {
                if let Some(c) = self.conns.get_mut(&id) {
                    c.established = true;
                    c.cut_through = capabilities.contains(Capabilities::CUT_THROUGH);
                }
                self.s.metrics.peers.inc();
                if !self.sched.handle_peer_connected(now, peer) {
                    // Banned or refused by the scheduler.
                    self.close_conn(now, id);
                    return;
                }
                self.report_peers();
            }
            SessionEvent::Control(m) => self.sched.handle_peer_message(now, peer, &m),
            SessionEvent::Progress {
                req_id,
                received,
                total,
            } => {
                self.sched.handle_transfer_progress(
                    now,
                    peer,
                    req_id,
                    u64::from(received),
                    u64::from(total),
                );
                self.verify_chunks(now, id, req_id, u64::from(total));
            }
            SessionEvent::Complete { req_id, body } => self.on_transfer(now, id, req_id, body),
            SessionEvent::Nothing => {}
        }
    }

    fn on_transfer(&mut self, now: Instant, id: u64, req_id: u32, body: Bytes) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let peer = c.peer;
        let Some((unit, started)) = c.requests.remove(&req_id) else {
            return;
        };
        let Some((seq, _, _)) = self.locate(unit) else {
            self.sched
                .handle_transfer_complete(now, peer, req_id, body.len() as u64, true);
            return;
        };
        if !self.verify_unit(unit, &body) {
            // Not one byte of it goes anywhere.
            self.s.metrics.integrity_failures.inc();
            tracing::warn!(peer = %peer, seq, unit, "peer sent a segment that fails verification; banning it");
            self.sched
                .handle_transfer_complete(now, peer, req_id, body.len() as u64, false);
            return;
        }
        let len = body.len();
        self.s.metrics.segment_downloaded(
            Source::Peer,
            len,
            now.duration_since(started).as_secs_f64(),
        );
        self.sched
            .handle_transfer_complete(now, peer, req_id, len as u64, true);
        self.peer_copy_in(unit, body);
    }

    /// A verified copy of `unit` that came (at least partly) from a peer is in, and the
    /// scheduler knows: it completes the partial copy's uploads, then is cached and handed to
    /// the players (a whole segment) or kept until its segment's other units are in.
    fn peer_copy_in(&mut self, unit: u64, body: Bytes) {
        let Some((seq, _, k)) = self.locate(unit) else {
            return;
        };
        self.complete_partial(unit, &body);
        if k > 1 {
            self.store_unit(unit, body, true);
        } else if let Some(seg) = self.segs.get(&seq) {
            let entry = self.cache_copy(seg, body, Source::Peer);
            self.wake(seq, Some(entry));
        }
    }

    /// The swarm's stripe count (the scheduler's).
    fn stripes(&self) -> Stripes {
        self.sched.config().stripes
    }

    /// Segment, unit index and unit count of scheduler id `unit` (with one stripe a unit is
    /// its segment).
    fn locate(&self, unit: u64) -> Option<(u64, u8, u8)> {
        let seq = self.stripes().seq_of(unit);
        let j = self.stripes().index_of(unit);
        let seg = self.segs.get(&seq)?;
        (j < seg.units).then_some((seq, j, seg.units))
    }

    /// The chunk digests of `unit` (its segment's, or their share for a striped unit).
    fn unit_chunks(&self, unit: u64) -> Option<ChunkDigests> {
        let (seq, j, k) = self.locate(unit)?;
        let chunks = self.segs.get(&seq)?.chunks.as_ref()?;
        if k == 1 {
            return Some(chunks.clone());
        }
        chunks.slice(stripes::chunk_range(chunks.count(), j, k))
    }

    /// True if `body` is `unit`: the whole-segment digest for a unit that is its segment, the
    /// chunk digests of its share for a striped unit (or no digest at all in a stream running
    /// with `allow_unverified`).
    fn verify_unit(&self, unit: u64, body: &[u8]) -> bool {
        let Some((seq, _, k)) = self.locate(unit) else {
            return false;
        };
        let Some(seg) = self.segs.get(&seq) else {
            return false;
        };
        if k > 1 {
            return self.unit_chunks(unit).is_some_and(|c| c.verify_all(body));
        }
        match seg.digest {
            Some(d) => d.verify(body),
            None => self.s.allow_unverified,
        }
    }

    /// Keeps a verified unit of a striped segment; once every unit is in, the segment is
    /// joined, checked against its whole-segment digest, cached and handed to its players.
    fn store_unit(&mut self, unit: u64, body: Bytes, from_peer: bool) {
        let Some((seq, _, k)) = self.locate(unit) else {
            return;
        };
        self.unit_bodies.insert(unit, (body, from_peer));
        if self.cached(seq).is_some() {
            self.drop_units(seq);
            self.wake(seq, None);
            return;
        }
        let units: Vec<u64> = (0..k).map(|j| self.stripes().unit(seq, j)).collect();
        if !units.iter().all(|u| self.unit_bodies.contains_key(u)) {
            return;
        }
        let len: usize = units
            .iter()
            .filter_map(|u| self.unit_bodies.get(u))
            .map(|(b, _)| b.len())
            .sum();
        let mut whole = BytesMut::with_capacity(len);
        let mut any_peer = false;
        for u in &units {
            if let Some((b, p)) = self.unit_bodies.get(u) {
                whole.extend_from_slice(b);
                any_peer |= *p;
            }
        }
        let whole = whole.freeze();
        self.drop_units(seq);
        let Some(seg) = self.segs.get(&seq) else {
            return;
        };
        if seg.digest.is_some_and(|d| !d.verify(&whole)) {
            // Every unit matched its chunk digests, so the sidecar contradicts itself (or the
            // origin changed the segment between units). Nothing is cached; players fetch it
            // the plain way.
            self.s.metrics.integrity_failures.inc();
            tracing::warn!(
                seq,
                "units that match their chunk digests do not join into the segment's digest; the sidecar is inconsistent"
            );
            self.wake(seq, None);
            return;
        }
        let source = if any_peer {
            Source::Peer
        } else {
            Source::Origin
        };
        let entry = self.cache_copy(seg, whole, source);
        self.s.metrics.p2p_striped_segments.inc();
        self.wake(seq, Some(entry));
    }

    fn drop_units(&mut self, seq: u64) {
        for u in self.stripes().units(seq) {
            self.unit_bodies.remove(&u);
        }
    }

    /// Bytes `unit` covers in its segment's body: its first byte and its length in whole
    /// chunks, which is exact except for the last unit (its last chunk may be short).
    fn unit_span(&self, unit: u64) -> Option<(u64, u64)> {
        let (seq, j, k) = self.locate(unit)?;
        let seg = self.segs.get(&seq)?;
        let chunks = seg.chunks.as_ref()?;
        let c = u64::from(chunks.chunk_size());
        let r = stripes::chunk_range(chunks.count(), j, k);
        let start = r.start as u64 * c;
        let mut len = (r.end - r.start) as u64 * c;
        if let Some(br) = seg.range {
            len = len.min(br.len.saturating_sub(start));
        }
        Some((start, len))
    }

    /// Bytes of the origin fetch of `unit` arrived. Whole chunks that match their digests
    /// extend the unit's partial copy, and the first one makes us a partial holder: we announce
    /// the unit and serve it as it arrives, as for a peer transfer (see the scheduler docs,
    /// "Cut-through"). The origin's bytes get the same check as a peer's: a chunk that fails
    /// its digest ends this, and the whole body decides what happens to the unit.
    fn on_origin_bytes(
        &mut self,
        now: Instant,
        unit: u64,
        offset: u64,
        data: &[u8],
        announced: Option<u64>,
    ) {
        if !self.origin_prefixes.contains_key(&unit) || self.sched.has(unit) {
            return;
        }
        let Some((seq, j, k)) = self.locate(unit) else {
            return;
        };
        if self.segs.get(&seq).is_none_or(|s| s.unshareable) {
            return;
        }
        let (Some(chunks), Some((_, span))) = (self.unit_chunks(unit), self.unit_span(unit)) else {
            return;
        };
        // The unit's length: its span in whole chunks, except for a segment's last unit,
        // whose last chunk may be short: there the origin's announced length.
        let total = match announced {
            Some(n) if n <= span => n,
            None if j + 1 < k => span,
            _ => {
                self.origin_prefixes.remove(&unit);
                return;
            }
        };
        let Some(prefix) = self.origin_prefixes.get_mut(&unit) else {
            return;
        };
        if !prefix.feed(offset, data, usize::try_from(total).unwrap_or(usize::MAX)) {
            return;
        }
        let partial = partial_copy(&mut self.partials, unit, chunks, total);
        // No partial copy of this length (a peer announced another one): the whole body
        // completes the unit.
        let Some(p) = partial.filter(|p| p.total() as u64 == total) else {
            return;
        };
        let before = p.verified_len();
        match p.extend_from(prefix.bytes()) {
            Ok(0) => {}
            Ok(_) => {
                if before == 0 {
                    self.s.metrics.p2p_origin_cut_through.inc();
                }
                self.sched.handle_partial_verified(now, unit);
            }
            Err(m) => {
                self.partials.remove(&unit);
                self.origin_prefixes.remove(&unit);
                tracing::debug!(
                    seq,
                    unit,
                    chunk = m.index,
                    "origin bytes fail their chunk digest; not sharing the unit before it is whole"
                );
            }
        }
    }

    /// The origin's bytes of one unit of a striped segment arrived (or not).
    fn on_unit_origin(&mut self, now: Instant, unit: u64, result: Result<Bytes, OriginError>) {
        let seq = self.stripes().seq_of(unit);
        match result {
            Ok(body) if self.verify_unit(unit, &body) => {
                self.sched
                    .handle_origin_result(now, unit, Ok(body.len() as u64));
                self.complete_partial(unit, &body);
                self.store_unit(unit, body, false);
            }
            Ok(_) => {
                // The origin's bytes do not match its own chunk digests (a stale sidecar):
                // nothing of this segment is shared; players fetch it the plain way.
                if let Some(seg) = self.segs.get_mut(&seq) {
                    seg.unshareable = true;
                }
                tracing::warn!(
                    seq,
                    unit,
                    "origin bytes do not match the published chunk digests; not sharing this segment"
                );
                // Its players fetch it the plain way.
                self.wake(seq, None);
                self.sched
                    .handle_origin_result(now, unit, Err(OriginFailure { retryable: false }));
            }
            Err(e) => {
                tracing::debug!(seq, unit, error = %e, "origin fetch of a unit failed");
                let retryable = e.is_retryable();
                self.sched
                    .handle_origin_result(now, unit, Err(OriginFailure { retryable }));
            }
        }
    }

    fn report_peers(&self) {
        if let Some(p2p) = self.s.p2p.upgrade() {
            let peers = self
                .conns
                .values()
                .filter(|c| c.established)
                .map(|c| c.peer.0)
                .collect();
            p2p.set_peers(
                self.s.info_hash,
                peers,
                self.banned.iter().map(|p| p.0).collect(),
            );
        }
    }

    fn drop_conn(&mut self, now: Instant, id: u64) {
        let Some(c) = self.conns.remove(&id) else {
            return;
        };
        if self.by_peer.get(&c.peer) == Some(&id) {
            self.by_peer.remove(&c.peer);
        }
        if c.established {
            self.s.metrics.peers.dec();
            self.sched.handle_peer_disconnected(now, c.peer);
        }
        let peer = c.peer;
        self.uploads.retain(|(p, _), a| {
            if *p == peer {
                a.abort();
                false
            } else {
                true
            }
        });
        self.report_peers();
    }

    fn close_conn(&mut self, now: Instant, id: u64) {
        if let Some(c) = self.conns.get(&id) {
            let h = c.handle.clone();
            tokio::spawn(async move {
                h.close().await;
            });
        }
        self.drop_conn(now, id);
    }

    /// Queues a control frame without waiting: a peer whose send buffer is full is too slow
    /// to keep; the frame is sent from a short task so the swarm loop never blocks.
    fn send_conn(&mut self, id: u64, m: &Message) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let Some(frame) = encode_msg(m) else { return };
        c.session.on_sent(Instant::now());
        let sender = c.sender.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(5), sender.send(frame)).await;
        });
    }

    fn send_peer(&mut self, peer: PeerId, m: &Message) {
        if let Some(&id) = self.by_peer.get(&peer) {
            self.send_conn(id, m);
        }
    }

    fn drain_actions(&mut self) {
        let now = Instant::now();
        while let Some(a) = self.sched.poll_action() {
            match a {
                Action::FetchOrigin { seq, reason } => {
                    self.s
                        .metrics
                        .p2p_origin_fetches
                        .with_label_values(&[reason.as_label()])
                        .inc();
                    tracing::debug!(seq, reason = reason.as_label(), "origin fetch");
                    self.start_origin(seq);
                }
                Action::FetchOriginTail { seq, from } => {
                    self.s
                        .metrics
                        .p2p_origin_fetches
                        .with_label_values(&[crate::core::scheduler::OriginReason::Tail.as_label()])
                        .inc();
                    tracing::debug!(seq, from, "origin tail");
                    self.start_tail(now, seq, from);
                }
                Action::CancelOrigin { seq } => {
                    if let Some(h) = self.tail_tasks.remove(&seq) {
                        h.abort();
                    }
                    self.tails.remove(&seq);
                    // The fetch is shared with players through single-flight; let it finish
                    // into the cache rather than abort it.
                    self.origin_tasks.remove(&seq);
                    self.origin_prefixes.remove(&seq);
                }
                Action::RequestPeer {
                    peer,
                    req_id,
                    seq,
                    digest,
                } => {
                    let Some(&id) = self.by_peer.get(&peer) else {
                        self.sched.handle_peer_disconnected(now, peer);
                        continue;
                    };
                    let ok = match self.conns.get_mut(&id) {
                        Some(c) => {
                            let started = c.session.start_transfer(req_id).is_ok();
                            if started {
                                c.requests.insert(req_id, (seq, now));
                            }
                            started
                        }
                        None => false,
                    };
                    if ok {
                        self.send_conn(
                            id,
                            &Message::Request {
                                req_id,
                                seq,
                                digest,
                            },
                        );
                    } else {
                        self.sched
                            .handle_peer_message(now, peer, &Message::Busy { req_id });
                    }
                }
                Action::CancelPeer { peer, req_id } => {
                    if let Some(&id) = self.by_peer.get(&peer) {
                        if let Some(c) = self.conns.get_mut(&id) {
                            c.session.end_transfer(req_id);
                            c.requests.remove(&req_id);
                        }
                        self.send_conn(id, &Message::Cancel { req_id });
                    }
                }
                Action::SendHave {
                    seq,
                    digest,
                    partial,
                } => {
                    if self
                        .segs
                        .get(&self.stripes().seq_of(seq))
                        .is_some_and(|s| s.unshareable)
                    {
                        continue;
                    }
                    let sched = &self.sched;
                    let ids: Vec<u64> = self
                        .conns
                        .iter()
                        .filter(|(_, c)| {
                            c.established
                                && (c.cut_through || !partial)
                                && sched.needs_have(&c.peer, seq, partial)
                        })
                        .map(|(i, _)| *i)
                        .collect();
                    for id in ids {
                        self.send_conn(
                            id,
                            &Message::Have {
                                seq,
                                digest,
                                partial,
                            },
                        );
                    }
                }
                Action::OfferHave {
                    peer,
                    seq,
                    digest,
                    partial,
                } => {
                    let able = self
                        .by_peer
                        .get(&peer)
                        .and_then(|id| self.conns.get(id))
                        .is_some_and(|c| c.cut_through);
                    if !partial || able {
                        self.send_peer(
                            peer,
                            &Message::Have {
                                seq,
                                digest,
                                partial,
                            },
                        )
                    }
                }
                Action::SendBitfield {
                    peer,
                    base_seq,
                    bits,
                } => self.send_peer(peer, &Message::Bitfield { base_seq, bits }),
                Action::ServePeer { peer, req_id, seq } => {
                    self.start_upload(now, peer, req_id, seq)
                }
                Action::StopServe { peer, req_id } => {
                    if let Some(a) = self.uploads.remove(&(peer, req_id)) {
                        a.abort();
                    }
                }
                Action::Refuse {
                    peer,
                    req_id,
                    reason,
                } => {
                    let m = match reason {
                        RefuseReason::Busy => Message::Busy { req_id },
                        RefuseReason::Absent => Message::Absent { req_id },
                    };
                    self.send_peer(peer, &m);
                }
                Action::Ban { peer } => {
                    if self.banned.len() < 4096 {
                        self.banned.insert(peer);
                    }
                    if let Some(&id) = self.by_peer.get(&peer) {
                        self.close_conn(now, id);
                    }
                    self.report_peers();
                }
                Action::Failed { seq: unit, .. } => {
                    // Uploads serving our partial copy end with `Absent`.
                    self.partials.remove(&unit);
                    if let Some(ws) = self.waiters.remove(&self.stripes().seq_of(unit)) {
                        for w in ws {
                            let _ =
                                w.send(PlayerAnswer::Failed("segment could not be fetched".into()));
                        }
                    }
                }
            }
        }
    }

    /// Fetches `unit` from the origin: a whole segment through the cache, or one unit of a
    /// striped segment as a byte range.
    fn start_origin(&mut self, unit: u64) {
        let located = self.locate(unit);
        let span = self.unit_span(unit);
        let Some((seg, k)) = located.and_then(|(seq, _, k)| Some((self.segs.get(&seq)?, k))) else {
            self.sched.handle_origin_result(
                Instant::now(),
                unit,
                Err(OriginFailure { retryable: false }),
            );
            return;
        };
        if self.origin_tasks.contains_key(&unit) {
            return;
        }
        let proxy = self.s.proxy.clone();
        let tx = self.s.tx.clone();
        let url = seg.url.clone();
        let range = seg.range;
        let h = match (k, span) {
            (2.., Some((start, len))) => {
                // Share the unit chunk by verified chunk while it arrives (see
                // `on_origin_bytes`). A frame the full queue cannot take is dropped: the partial
                // copy then waits for the whole body.
                let tap_tx = self.s.tx.clone();
                let tap = BodyTap::new(move |offset, data, announced| {
                    let _ = tap_tx.try_send(SwarmInput::OriginBytes {
                        unit,
                        offset,
                        data: data.clone(),
                        announced,
                    });
                });
                self.origin_prefixes.insert(unit, OriginPrefix::default());
                tokio::spawn(async move {
                    let result = fetch_unit(&proxy, &url, range, start, len, Some(tap)).await;
                    let _ = tx.send(SwarmInput::UnitOriginDone { unit, result }).await;
                })
            }
            _ => tokio::spawn(async move {
                let result = proxy.origin_segment(&url, range).await;
                let _ = tx.send(SwarmInput::OriginDone { seq: unit, result }).await;
            }),
        };
        self.origin_tasks.insert(unit, h.abort_handle());
    }

    /// A whole verified copy of `unit` we can send: a unit of its own, or its share of the
    /// cached segment.
    fn unit_copy(&self, unit: u64) -> Option<Bytes> {
        let (seq, j, k) = self.locate(unit)?;
        if let Some((b, _)) = self.unit_bodies.get(&unit) {
            return Some(b.clone());
        }
        let body = self.cached(seq)?.body;
        if k == 1 {
            return Some(body);
        }
        let c = self.segs.get(&seq)?.chunks.as_ref()?.chunk_size();
        let r = stripes::byte_range(body.len() as u64, c, j, k);
        let r = usize::try_from(r.start).ok()?..usize::try_from(r.end).ok()?;
        (!r.is_empty()).then(|| body.slice(r))
    }

    fn start_upload(&mut self, now: Instant, peer: PeerId, req_id: u32, seq: u64) {
        let shareable = self
            .segs
            .get(&self.stripes().seq_of(seq))
            .is_some_and(|s| !s.unshareable);
        let entry = if shareable { self.unit_copy(seq) } else { None };
        let partial = match (&entry, shareable) {
            (None, true) => self
                .partials
                .get(&seq)
                .map(|p| (p.subscribe(), p.chunk_size())),
            _ => None,
        };
        let Some(&id) = self.by_peer.get(&peer) else {
            self.sched.handle_upload_done(now, peer, req_id, 0);
            return;
        };
        if let Some((rx, chunk_size)) = partial {
            self.s.metrics.p2p_cut_through_uploads.inc();
            self.spawn_upload(id, peer, req_id, rx, chunk_size);
            return;
        }
        let Some(entry) = entry else {
            self.send_peer(peer, &Message::Absent { req_id });
            self.sched.handle_upload_done(now, peer, req_id, 0);
            return;
        };
        // A whole body is a verified prefix of one chunk whose source is already gone.
        let len = entry.len();
        let (_, rx) = tokio::sync::watch::channel(Verified {
            chunks: Arc::new(vec![entry]),
            len,
            total: len,
        });
        self.spawn_upload(id, peer, req_id, rx, len.max(1));
    }
}

impl SwarmTask {
    /// Uploads a segment as `Data` frames of `req_id`: its verified chunks as they arrive
    /// (whole at once for a cached body; see `partial.rs` for a segment still being received).
    /// If a partial copy is given up before it is whole, the peer gets `Absent`.
    fn spawn_upload(
        &mut self,
        id: u64,
        peer: PeerId,
        req_id: u32,
        mut rx: tokio::sync::watch::Receiver<Verified>,
        chunk_size: usize,
    ) {
        let Some(c) = self.conns.get(&id) else {
            self.sched
                .handle_upload_done(Instant::now(), peer, req_id, 0);
            return;
        };
        let sender = c.sender.clone();
        let frame = c
            .session
            .max_send_frame()
            .saturating_sub(DATA_HEADER_LEN)
            .max(1024);
        let tx = self.s.tx.clone();
        let metrics = self.s.metrics.clone();
        let h = tokio::spawn(async move {
            let mut sent = 0usize;
            // Some(true): all sent; Some(false): our copy was given up; None: the link failed.
            let outcome = 'serve: loop {
                let v = rx.borrow_and_update().clone();
                let total = u32::try_from(v.total).unwrap_or(u32::MAX);
                while let Some(payload) = v.slice(sent, frame, chunk_size) {
                    let n = payload.len();
                    let m = Message::Data {
                        req_id,
                        offset: sent as u32,
                        total_len: total,
                        payload,
                    };
                    let Some(f) = encode_msg(&m) else {
                        break 'serve None;
                    };
                    if sender.send(f).await.is_err() {
                        break 'serve None;
                    }
                    metrics.uploaded_bytes.inc_by(n as u64);
                    sent += n;
                }
                if v.is_whole() && sent >= v.len {
                    break Some(true);
                }
                if rx.changed().await.is_err() && rx.borrow().len <= sent {
                    break Some(false);
                }
            };
            if outcome == Some(false)
                && let Some(f) = encode_msg(&Message::Absent { req_id })
            {
                let _ = sender.send(f).await;
            }
            let _ = tx
                .send(SwarmInput::UploadDone {
                    peer,
                    req_id,
                    bytes: sent as u64,
                })
                .await;
        });
        self.uploads.insert((peer, req_id), h.abort_handle());
    }

    /// Verifies the chunks of transfer `req_id` (link `id`) that became whole, when the
    /// segment has chunk digests. Verified chunks extend the segment's partial copy, which
    /// makes us a partial holder; a chunk that fails its digest ends the transfer as
    /// unverified, so the scheduler bans the peer, and nothing of it is kept.
    fn verify_chunks(&mut self, now: Instant, id: u64, req_id: u32, total: u64) {
        let Some(c) = self.conns.get(&id) else { return };
        let peer = c.peer;
        let Some(&(seq, _)) = c.requests.get(&req_id) else {
            return;
        };
        let Some(chunks) = self.unit_chunks(seq) else {
            return;
        };
        if self.sched.has(seq) {
            return;
        }
        let Some(prefix) = c.session.received_bytes(req_id) else {
            return;
        };
        let received = prefix.len() as u64;
        let partial = partial_copy(&mut self.partials, seq, chunks, total);
        let result = match partial {
            Some(p) if p.total() as u64 == total => p
                .extend_from(prefix)
                .map_err(|m| format!("chunk {} fails its digest", m.index)),
            // Another transfer announced another length that also fits the chunk list: one of
            // them lies, and its last chunk will show which. Not cut through; this body is
            // still verified whole when it completes.
            Some(_) => Ok(0),
            None => Err(format!(
                "announced length {total} does not match the published chunk digests"
            )),
        };
        match result {
            Ok(0) => {}
            Ok(_) => {
                self.sched.handle_partial_verified(now, seq);
                if self.tails.contains_key(&seq) {
                    self.try_join_tail(now, seq);
                }
            }
            Err(why) => {
                // The partial copy may have taken its length from this peer: start it afresh
                // (its uploads end with `Absent`; the next transfer rebuilds it).
                self.partials.remove(&seq);
                self.s.metrics.integrity_failures.inc();
                tracing::warn!(peer = %peer, seq, reason = %why, "peer sent data that fails verification; banning it");
                if let Some(c) = self.conns.get_mut(&id) {
                    c.requests.remove(&req_id);
                    c.session.end_transfer(req_id);
                }
                self.sched
                    .handle_transfer_complete(now, peer, req_id, received, false);
            }
        }
    }

    /// Asks the origin for bytes `from..` of `seq`; a peer transfer delivers the head into the
    /// segment's partial copy (see the scheduler docs, "Origin tails").
    fn start_tail(&mut self, now: Instant, seq: u64, from: u64) {
        let unit_start = match self.locate(seq) {
            Some((_, _, 1)) => Some(0),
            Some(_) => self.unit_span(seq).map(|(start, _)| start),
            None => None,
        };
        let (Some(seg), Some(p), Some(unit_start)) = (
            self.segs.get(&self.stripes().seq_of(seq)),
            self.partials.get(&seq),
            unit_start,
        ) else {
            // No verified chunk yet, so no length we trust: let the scheduler go the usual way.
            self.sched.handle_tail_failed(now, seq);
            return;
        };
        let total = p.total() as u64;
        let base = seg.range.map_or(0, |r| r.start) + unit_start;
        // The scheduler splits at a chunk boundary (the head joins in whole verified chunks).
        if from == 0 || from >= total || self.tail_tasks.contains_key(&seq) {
            self.sched.handle_tail_failed(now, seq);
            return;
        }
        let range = ByteRange {
            start: base + from,
            len: total - from,
        };
        let proxy = self.s.proxy.clone();
        let tx = self.s.tx.clone();
        let url = seg.url.clone();
        let h = tokio::spawn(async move {
            let result = proxy.origin_range(&url, range, None).await;
            let _ = tx.send(SwarmInput::TailDone { seq, from, result }).await;
        });
        self.tail_tasks.insert(seq, h.abort_handle());
    }

    /// Joins the verified head of `seq` with its origin tail once both are in; checks the
    /// whole-segment digest, stores and announces the copy.
    fn try_join_tail(&mut self, now: Instant, seq: u64) {
        let (Some(&(from, ref tail)), Some(p)) = (self.tails.get(&seq), self.partials.get(&seq))
        else {
            return;
        };
        let Ok(from_us) = usize::try_from(from) else {
            return;
        };
        if p.verified_len() < from_us {
            return;
        }
        let joined = p.join_tail(from_us, tail);
        let tail_len = tail.len() as u64;
        self.tails.remove(&seq);
        if self.locate(seq).is_none() {
            return;
        }
        let body = match joined {
            Some(b) if self.verify_unit(seq, &b) => Bytes::from(b),
            joined => {
                // The head's chunks were verified, so the origin's tail is what disagrees (a
                // wrong length, or bytes that changed since the sidecar was written).
                tracing::warn!(
                    seq,
                    length_ok = joined.is_some(),
                    "origin tail does not complete the segment's digest; fetching it whole"
                );
                self.tail_failed(now, seq);
                return;
            }
        };
        // The head's bytes and time, for the per-source byte counters (the tail's were counted
        // by the origin fetch).
        let head_started = self
            .conns
            .values()
            .flat_map(|c| c.requests.values())
            .filter(|(s, _)| *s == seq)
            .map(|(_, t)| *t)
            .min();
        self.s.metrics.segment_downloaded(
            Source::Peer,
            from as usize,
            head_started.map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64()),
        );
        self.s
            .metrics
            .p2p_origin_tails
            .with_label_values(&["joined"])
            .inc();
        let size = body.len() as u64;
        tracing::debug!(
            seq,
            head = from,
            tail = tail_len,
            "joined a peer head and an origin tail"
        );
        self.sched.handle_tail_complete(now, seq, size, tail_len);
        self.peer_copy_in(seq, body);
    }

    /// The origin tail of `seq` did not complete it: the scheduler falls back to a whole fetch.
    fn tail_failed(&mut self, now: Instant, seq: u64) {
        self.s
            .metrics
            .p2p_origin_tails
            .with_label_values(&["failed"])
            .inc();
        self.sched.handle_tail_failed(now, seq);
    }

    /// Stores a verified copy of `seg` that we assembled (from peers, or from units) in the
    /// segment cache, where players find it.
    fn cache_copy(&self, seg: &Seg, body: Bytes, source: Source) -> Entry {
        let key = SegmentKey {
            url: strip(&seg.url),
            range: seg.range,
        };
        let entry = Entry {
            body,
            content_type: crate::server::mime::content_type_for_path(seg.url.path()),
            source,
            stored_at: Instant::now(),
            resource_len: None,
        };
        self.s.proxy.segment_cache().insert(key, entry.clone());
        entry
    }

    /// `seq` is whole and verified: uploads serving our partial copy send the rest.
    fn complete_partial(&mut self, seq: u64, body: &[u8]) {
        if let Some(mut p) = self.partials.remove(&seq) {
            if p.total() != body.len() {
                // Its length came from a peer that announced a wrong one: drop it (its
                // uploads end with `Absent`).
                tracing::debug!(seq, "partial copy had a wrong announced length; dropped");
                return;
            }
            // The body matched the whole-segment digest; re-checking its chunks costs one
            // more hash of the remainder and keeps `PartialSegment` the only way in.
            if p.extend_from(body).is_err() {
                tracing::warn!(
                    seq,
                    "a segment that matches its digest does not match its chunk digests; the sidecar is inconsistent"
                );
            }
        }
    }
}

/// Bytes `start..start + len` of a segment (`seg_range` of `url`) from the origin, or up to
/// the segment's end when it ends sooner (the last unit of a striped segment asks for whole
/// chunks). An origin that ignores `Range` costs one whole fetch through the cache, shared with
/// the segment's other units and its players, cut to the unit.
async fn fetch_unit(
    proxy: &Proxy,
    url: &Url,
    seg_range: Option<ByteRange>,
    start: u64,
    len: u64,
    tap: Option<BodyTap>,
) -> Result<Bytes, OriginError> {
    let base = seg_range.map_or(0, |r| r.start);
    let range = ByteRange {
        start: base + start,
        len: len.max(1),
    };
    match proxy.origin_range(url, range, tap).await {
        Err(OriginError::BadRange(why)) => {
            tracing::debug!(url = %redact(url), why, "origin ignored a unit range; fetching the segment whole");
            let whole = proxy.origin_segment(url, seg_range).await?.body;
            let from = usize::try_from(start)
                .unwrap_or(usize::MAX)
                .min(whole.len());
            let to = usize::try_from(start.saturating_add(len))
                .unwrap_or(usize::MAX)
                .min(whole.len());
            Ok(whole.slice(from..to))
        }
        other => other,
    }
}

/// The partial copy of `unit`, started from its chunk list and length if there is none yet
/// (`None` if that length does not fit the list). Peer transfers and origin fetches both feed it.
fn partial_copy(
    partials: &mut HashMap<u64, PartialSegment>,
    unit: u64,
    chunks: ChunkDigests,
    total: u64,
) -> Option<&mut PartialSegment> {
    match partials.entry(unit) {
        std::collections::hash_map::Entry::Occupied(e) => Some(e.into_mut()),
        std::collections::hash_map::Entry::Vacant(v) => {
            PartialSegment::new(chunks, total).map(|p| v.insert(p))
        }
    }
}

/// The URL without fragment, as the cache keys it.
fn strip(u: &Url) -> String {
    let mut u = u.clone();
    u.set_fragment(None);
    u.as_str().to_string()
}

/// The index key of a playlist segment (see [`index_key`]).
pub fn segment_index_key(s: &playlist::SegmentRef) -> String {
    let range = s.byterange.map(|r| ByteRange {
        start: r.offset,
        len: r.length,
    });
    index_key(&s.url, range)
}

/// The key under which the proxy looks a player request up: URL, plus `@offset-length` for a
/// byte range.
pub fn index_key(url: &Url, range: Option<ByteRange>) -> String {
    match range {
        None => strip(url),
        Some(r) => format!("{}@{}-{}", strip(url), r.start, r.len),
    }
}

fn unreachable_default(now: Instant, me: PeerId) -> Scheduler {
    // The default configuration always validates (a unit test in `core` checks it).
    match Scheduler::new(now, me, SchedulerConfig::default()) {
        Ok(s) => s,
        Err(e) => panic!("default scheduler config is invalid: {e}"),
    }
}
