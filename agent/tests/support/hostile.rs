//! A misbehaving peer for tests: it joins a swarm through the real tracker with the agent's own
//! transport and tracker client, speaks the peer protocol correctly (striped like the agents:
//! [`Split`]), announces `have` for every unit of every segment of the live
//! playlist (with the ids and digests the agents derive from the origin's), and then answers
//! requests badly: corrupted bytes, half a segment and a dropped link, or the real segment with
//! one byte flipped in its second chunk and then silence (only chunk digests can catch that
//! before the transfer ends).
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use hivecast_agent::core::ids::{Digest, InfoHash, PeerId};
use hivecast_agent::core::peer_proto::{
    Capabilities, Message, PeerSession, SessionConfig, SessionEvent, encode,
};
use hivecast_agent::core::stripes::{self, Stripes};
use hivecast_agent::playlist::{self, PlaylistInfo, Variables};
use hivecast_agent::tracker_client::{self, TrackerClientConfig, TrackerEvent};
use hivecast_agent::transport::{FrameSender, TransportConfig, WebRtcTransport};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use url::Url;

/// How the stream is split: the swarm's stripe count and the chunk size of the stream's
/// published chunk digests.
#[derive(Debug, Clone, Copy)]
pub struct Split {
    pub stripes: Stripes,
    pub chunk: u32,
}

impl Split {
    /// Units a segment of `len` bytes is shared as.
    fn units_of(self, len: usize) -> u8 {
        self.stripes
            .count_for(Some(len.div_ceil(self.chunk as usize)))
    }
}

/// The real bytes of `unit` of a segment body.
fn unit_bytes(body: &Bytes, unit: u64, split: Split) -> Option<Bytes> {
    let (st, chunk) = (split.stripes, split.chunk);
    let k = split.units_of(body.len());
    let j = st.index_of(unit);
    if j >= k {
        return None;
    }
    let r = stripes::byte_range(body.len() as u64, chunk, j, k);
    Some(body.slice(r.start as usize..r.end as usize))
}

/// How the peer misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Sends a full-length segment of wrong bytes.
    Corrupt,
    /// Sends the first half of the segment, then closes the link.
    DropMidTransfer,
    /// Sends the real segment's first chunk, then its second chunk with one byte flipped, then
    /// nothing more (the link stays open).
    CorruptChunk,
    /// Honest but slow: sends the real segment at a quarter of the stream rate, so the agent
    /// projects the transfer late.
    Slow,
    /// Sends the real segment's first half at once, then nothing more (the link stays open).
    Stall,
}

/// Counters the test reads.
#[derive(Debug, Default)]
pub struct Stats {
    pub links: AtomicU64,
    pub requests: AtomicU64,
    pub bad_answers: AtomicU64,
}

pub struct Hostile {
    pub stats: Arc<Stats>,
    cancel: CancellationToken,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn enc(m: &Message) -> Bytes {
    let mut b = BytesMut::new();
    encode(m, &mut b).expect("encodable");
    b.freeze()
}

/// Answers request `req_id` with `body[..limit]` (announced as `body.len()` bytes) in `Data`
/// frames of at most `frame` bytes, pausing `gap` after each; `false` once the link is closed.
async fn send_data(
    sender: &FrameSender,
    req_id: u32,
    body: &Bytes,
    limit: usize,
    frame: usize,
    gap: Duration,
) -> bool {
    let total_len = body.len() as u32;
    let mut off = 0usize;
    while off < limit {
        let end = (off + frame).min(limit);
        let m = Message::Data {
            req_id,
            offset: off as u32,
            total_len,
            payload: body.slice(off..end),
        };
        if sender.send(enc(&m)).await.is_err() {
            return false;
        }
        off = end;
        if !gap.is_zero() {
            tokio::time::sleep(gap).await;
        }
    }
    true
}

/// Starts a hostile peer in the swarm of `playlist_url` (the origin URL of the media playlist).
/// `digest_of(seq)` gives the origin's digest (hex) of a segment; `split` is how the swarm
/// splits segments into units.
pub fn start(
    tracker_url: &str,
    playlist_url: &str,
    mode: Mode,
    split: Split,
    digest_of: impl Fn(u64) -> Option<String> + Send + Sync + 'static,
) -> Hostile {
    let cancel = CancellationToken::new();
    let stats = Arc::new(Stats::default());
    let me = PeerId::random(&mut rand::rng());
    let key = playlist_url
        .split('?')
        .next()
        .unwrap_or(playlist_url)
        .to_string();
    let info_hash = InfoHash::from_swarm_key(&key);
    let transport = Arc::new(WebRtcTransport::new(TransportConfig::loopback()).expect("transport"));
    let (ev_tx, mut ev_rx) = mpsc::channel(64);
    let tasks = tokio_util::task::TaskTracker::new();
    let handle = tracker_client::spawn(
        TrackerClientConfig {
            url: Url::parse(tracker_url).expect("tracker url"),
            offers_per_announce: 2,
            max_peers: 4,
            accept_peers: 4,
            max_announce_interval: Duration::from_secs(5),
            hungry_announce_interval: Duration::from_secs(1),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(5),
        },
        me.0,
        transport,
        ev_tx,
        cancel.clone(),
        &tasks,
    );
    let digest_of = Arc::new(digest_of);
    let playlist_url = Url::parse(playlist_url).expect("playlist url");
    let c2 = cancel.clone();
    let st = stats.clone();
    tokio::spawn(async move {
        handle.join(info_hash.0).await;
        loop {
            let ev = tokio::select! {
                _ = c2.cancelled() => return,
                ev = ev_rx.recv() => match ev { Some(e) => e, None => return },
            };
            if let TrackerEvent::Link { peer, link, .. } = ev {
                st.links.fetch_add(1, Ordering::Relaxed);
                let digest_of = digest_of.clone();
                let url = playlist_url.clone();
                let st = st.clone();
                let cancel = c2.clone();
                tokio::spawn(async move {
                    serve_link(
                        me,
                        info_hash,
                        PeerId(peer),
                        link,
                        url,
                        mode,
                        split,
                        digest_of,
                        st,
                        cancel,
                    )
                    .await;
                });
            }
        }
    });
    Hostile { stats, cancel }
}

#[allow(clippy::too_many_arguments)]
async fn serve_link(
    me: PeerId,
    info_hash: InfoHash,
    peer: PeerId,
    link: hivecast_agent::transport::PeerLink,
    playlist_url: Url,
    mode: Mode,
    split: Split,
    digest_of: Arc<impl Fn(u64) -> Option<String> + Send + Sync>,
    stats: Arc<Stats>,
    cancel: CancellationToken,
) {
    let (sender, mut receiver, handle) = link.into_parts();
    let mut session = PeerSession::new(
        Instant::now(),
        info_hash,
        me,
        Capabilities::UPLOAD.with_stripes(split.stripes),
        Some(peer),
        SessionConfig::default(),
    );
    let _ = sender.send(enc(&session.handshake())).await;
    let client = hivecast_demo::client::HttpClient::new(Duration::from_secs(5));
    let mut announced = std::collections::BTreeSet::new();
    let mut urls = std::collections::HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(300));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {
                // Claim every segment of the live window, with the origin's real digests.
                let Ok(f) = client.get(playlist_url.as_str(), &[]).await else { continue };
                let Ok(PlaylistInfo::Media(m)) =
                    playlist::parse(&f.body, &playlist_url, &Variables::default(), &playlist::Limits::default())
                else {
                    continue;
                };
                for s in &m.segments {
                    urls.insert(s.seq, (s.url.clone(), s.duration));
                    if !announced.insert(s.seq) {
                        continue;
                    }
                    let Some(d) = digest_of(s.seq).and_then(|h| h.parse::<Digest>().ok()) else {
                        continue;
                    };
                    // The unit split follows from the segment's length.
                    let Ok(f) = client.get(s.url.as_str(), &[]).await else { continue };
                    let k = split.units_of(f.body.len());
                    for j in 0..k {
                        let have = Message::Have {
                            seq: split.stripes.unit(s.seq, j),
                            digest: Some(stripes::unit_digest(&d, j, k, split.chunk)),
                            partial: false,
                        };
                        let _ = sender.send(enc(&have)).await;
                    }
                }
            }
            frame = receiver.recv() => {
                let Ok(frame) = frame else { break };
                match session.handle_frame(Instant::now(), frame) {
                    Ok(SessionEvent::Control(Message::Request { req_id, seq: unit, .. })) if mode == Mode::CorruptChunk => {
                        stats.requests.fetch_add(1, Ordering::Relaxed);
                        let Some((url, _)) = urls.get(&split.stripes.seq_of(unit)) else { continue };
                        let Ok(f) = client.get(url.as_str(), &[]).await else { continue };
                        let Some(body) = unit_bytes(&f.body, unit, split) else { continue };
                        let mut body = body.to_vec();
                        let chunk = split.chunk as usize;
                        // Corrupt the second chunk when there is a third, else the first; send
                        // up to the end of the corrupted chunk only.
                        let bad = if body.len() > 2 * chunk { 1 } else { 0 };
                        if body.len() <= chunk {
                            continue;
                        }
                        body[bad * chunk + 10] ^= 0x55;
                        let limit = (bad + 1) * chunk;
                        send_data(&sender, req_id, &Bytes::from(body), limit, 60_000, Duration::ZERO).await;
                        stats.bad_answers.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(SessionEvent::Control(Message::Request { req_id, seq: unit, .. })) if mode == Mode::Slow => {
                        stats.requests.fetch_add(1, Ordering::Relaxed);
                        let Some((url, secs)) = urls.get(&split.stripes.seq_of(unit)).cloned() else { continue };
                        let (sender, client, st) = (sender.clone(), client.clone(), stats.clone());
                        tokio::spawn(async move {
                            let Ok(f) = client.get(url.as_str(), &[]).await else { return };
                            let Some(body) = unit_bytes(&f.body, unit, split) else { return };
                            // A unit is a share of the segment; its duration share sets the pace.
                            let secs = secs * body.len() as f64 / f.body.len().max(1) as f64;
                            let total = body.len();
                            let frame = 4 * 1024;
                            // A quarter of the stream rate: the whole body takes four segment
                            // durations.
                            let gap = Duration::from_secs_f64(4.0 * secs * frame as f64 / total.max(1) as f64);
                            if send_data(&sender, req_id, &body, total, frame, gap).await {
                                st.bad_answers.fetch_add(1, Ordering::Relaxed);
                            }
                        });
                    }
                    Ok(SessionEvent::Control(Message::Request { req_id, seq: unit, .. })) if mode == Mode::Stall => {
                        stats.requests.fetch_add(1, Ordering::Relaxed);
                        let Some((url, _)) = urls.get(&split.stripes.seq_of(unit)).cloned() else { continue };
                        let (sender, client, st) = (sender.clone(), client.clone(), stats.clone());
                        tokio::spawn(async move {
                            let Ok(f) = client.get(url.as_str(), &[]).await else { return };
                            let Some(body) = unit_bytes(&f.body, unit, split) else { return };
                            if send_data(&sender, req_id, &body, body.len() / 2, 16 * 1024, Duration::ZERO).await {
                                st.bad_answers.fetch_add(1, Ordering::Relaxed);
                            }
                        });
                    }
                    Ok(SessionEvent::Control(Message::Request { req_id, .. })) => {
                        stats.requests.fetch_add(1, Ordering::Relaxed);
                        let total: u32 = 200_000;
                        let chunk = 60_000usize;
                        let limit = match mode {
                            Mode::Corrupt | Mode::CorruptChunk | Mode::Slow | Mode::Stall => total as usize,
                            Mode::DropMidTransfer => total as usize / 2,
                        };
                        let body = Bytes::from(vec![0xA5u8; total as usize]);
                        send_data(&sender, req_id, &body, limit, chunk, Duration::ZERO).await;
                        stats.bad_answers.fetch_add(1, Ordering::Relaxed);
                        if mode == Mode::DropMidTransfer {
                            handle.close().await;
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }
    }
    handle.close().await;
}
