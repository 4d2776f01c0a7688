//! Per-swarm scheduling: where each segment comes from, when to give up on peers, and whom we
//! upload to. A sans-IO state machine in the style of `quinn-proto`:
//!
//! ```text
//!   driver ──handle_*(now, input)──▶ Scheduler ──poll_action()──▶ Action (FetchOrigin, RequestPeer, …)
//!          ◀──────────────── poll_timeout() → Option<Instant>; handle_timeout(now)
//! ```
//!
//! The scheduler never sees a byte: the driver reassembles and hashes transfers, keeps the
//! cache and reports metadata (progress, verified/unverified completion, origin results). That
//! keeps one instance small enough for the simulator to run ten thousand of them.
//!
//! # Decisions (DESIGN.md, "How the agent decides where a segment comes from")
//!
//! * **Local first, single flight.** A player request for a segment we hold returns
//!   [`PlayerOutcome::Ready`]; otherwise it joins the one fetch of that segment.
//! * **Origin seeds.** Each new live segment is fetched from the origin at once by the agents
//!   that rendezvous hashing of `(seq, peer id)` elects (see below); everybody else waits for a
//!   `have` and pulls from the best-scoring holder, falling back to the origin at the segment's
//!   peer deadline.
//! * **Deadlines.** With no player information, a live segment first seen at `t` must have its
//!   origin fallback started by `t + peer_wait_budget` (default 1.5 × target duration: a player
//!   three segments behind the edge plays a new segment about two target durations after it
//!   appears; the last half duration is kept for the origin fetch). Player requests refine it.
//!   hls.js-like players load one fragment at a time, in order, so the request pattern reveals
//!   the playhead: the first request (startup or seek) gets `now + player_wait_budget`; once that
//!   segment is delivered the playhead is anchored, and every later segment's deadline becomes
//!   its inferred playback time minus the origin safety margin (later than the playlist default
//!   for a player that sits further behind, earlier for one that is about to stall). The
//!   anchor then moves forward with each sequential request, adding the durations of the
//!   segments it passes, so a need-by time adds only EXTINF durations of segments ahead of
//!   the playhead (a segment that has left the window used to count at the target duration;
//!   with segments shorter than the target, every need-by time, and the origin fallback with
//!   it, drifted later for as long as the player played). A stall
//!   (delivery after the inferred playback time) shifts the anchor. A request that skips
//!   segments we track is a seek and re-anchors; one that skips only untracked segments (a
//!   GAP) continues the playhead. The inference needs every player request to reach the
//!   scheduler: one served around it looks like a seek, and re-anchoring at the next request
//!   would misplace the playhead by the player's whole buffer. The margin is at least
//!   `origin_safety_margin` and at least twice the measured origin fetch time plus 250 ms.
//!   Past the deadline a segment with no transfer running may still ask a free holder, but only
//!   while the measured origin time (twice the fetch time plus 250 ms) still fits before the
//!   need-by time, and for no longer than that time past the deadline: a `Busy` answer is not a
//!   failed attempt, and without that bound an agent whose holders are all busy asked them in
//!   turn until its player stalled (in the simulator at 0.8× upload with 4 stripes: 40 % of
//!   watch time).
//! * **Hedging.** A peer transfer with no progress for `stall_timeout` is hedged to another
//!   holder while the deadline allows, else to the origin. A transfer whose projected end (from
//!   its measured rate) is past the segment's need-by time goes to the origin at once and is
//!   cancelled, so the holder's upload serves someone who can still make it; with chunk
//!   digests it keeps its head and the origin sends only the tail (see "Origin tails"). The first verified
//!   copy wins; the others are cancelled. A peer that disconnects mid-transfer is replaced at once.
//! * **Upload.** Concurrent uploads are *adaptive*: as many as the measured upload rate can feed
//!   at 0.4 of the stream rate each (`floor(upload ÷ (0.4 × stream))`), at least 1 and at most
//!   `upload_slots` (default 4); one until both rates are measured. An uplink below 0.8× the
//!   stream rate serves one peer at full rate; one at 0.8× serves two at once, at 1.5× three,
//!   from 1.6× four. More concurrent uploads mean fewer requesters refused while a unit
//!   spreads, and with cut-through every receiver relays as it receives anyway (in the
//!   simulator, 1,000 viewers: 95.9 % offload against 94.9 % with 3/4 of the stream rate per
//!   upload at 1.5× upload, 66.0 % against 62.8 % at 0.8×; a quarter of the stream rate, or 8
//!   slots, lost offload again; with origin cut-through, 0.4 against 0.5: 98.15 against
//!   97.97 % at 1.5×, and with six offers per freed slot 68.9 against 66.7 % at 0.8×). The upload rate is an EWMA over finished whole-segment uploads (bytes ÷ time ×
//!   uploads running), the stream rate over segment sizes ÷ durations. With an optional
//!   token-bucket rate cap; beyond that requests get `Busy`;
//!   requests for segments we do not hold (or hold with another digest) get `Absent`. Peers we
//!   refused for lack of a slot are offered the segment again (a targeted `have`, to a few of them
//!   per freed slot) so upload capacity does not idle while requesters wait. A refused requester
//!   asks the next holder at once only when the unit's peer deadline falls within
//!   `busy_backoff`; otherwise it waits for that offer, a new holder's `have` or the back-off's
//!   end (most holders of a spreading unit are busy, and asking them in turn mostly earned more
//!   `Busy` answers). Offers go to the
//!   requesters of the newest segment first: it has the fewest holders, and a copy of it made
//!   now can be relayed for longest before its deadline (in the simulator this lowered origin
//!   copies by about 4 % against first-refused-first).
//! * **Integrity.** Segments without a digest are origin-only unless `allow_unverified`; a
//!   transfer the driver reports as unverified bans the peer and refetches elsewhere.
//!
//! # Electing origin seeds in large swarms
//!
//! An agent knows its neighbours (8–20 peers), not the swarm. Ranking the known members and
//! taking the top `k` would elect about one fetcher per *neighbourhood* (`N·k/(d+1)` copies, the
//! p2p-media-loader behaviour). So the rule depends on how much of the swarm we see:
//!
//! * **Full view** (`swarm_size ≤ 1 + peers`, e.g. a small swarm in a full mesh): all agents see
//!   the same members and compute the same ranking; exactly `k` elect themselves.
//! * **Partial view**: each agent elects itself when its uniform rendezvous score falls in the top
//!   `k_eff / swarm_size` quantile. The driver feeds the swarm size from the tracker
//!   (`complete + incomplete`), so about `k_eff` agents fetch in the whole swarm whoever knows whom.
//!
//! `k_eff = max(k, ρ · swarm_size)`. The *seed fraction* `ρ` exists because every byte from a
//! peer must be verified against the segment digest before it is shared, so a live segment spreads
//! by store-and-forward of whole segments: with per-peer upload `u`, segment size `S` and budget
//! `B` (deadline minus the seeds' origin fetch), one origin copy reaches at most about
//! `2^(B·u/S)` agents before the deadline. If fewer than `N / 2^(B·u/S)` agents seed, everybody
//! else falls back at nearly the same moment and the origin serves almost all of them: far
//! worse than seeding a few more early. `ρ` is adapted per agent from what it observes: a
//! fallback for a segment that no neighbour even announced multiplies `ρ` by `seed_fraction_up`;
//! a fallback or late hedge although holders were known multiplies it by the gentler
//! `seed_fraction_up_scarce`; a segment delivered by a peer at least `seed_fraction_slack`
//! target durations (0.25) before its peer deadline decays it by `seed_fraction_down`, and a
//! close call leaves it as it is. When every peer delivery decayed `ρ`, it sank until a unit
//! whose few seeds spread slowly failed for a large part of the swarm at once (up to a third
//! at N = 1,000); in the simulator most fallbacks came from such bursts, and deliveries close
//! to their deadlines are the warning that comes before them (N = 10,000: 98.3 → 98.5 %
//! offload).
//!
//! An agent elected for a unit that a neighbour had already announced when its playlist showed
//! the unit does not seed it: the unit is spreading from an earlier seed, and an origin copy
//! started that late reaches few agents before their deadlines (N = 10,000: 98.2 → 98.3 %).
//!
//! # Backstop (partial view, few seeds)
//!
//! In a partial view each agent elects itself with probability `k_eff / N`, so with one or two
//! expected seeds (swarms of tens of agents) a segment gets no seed at all with probability about
//! `e^-k_eff` (36 % for `k_eff = 1`). Everybody then waits for the peer deadline and falls back to
//! the origin at about the same moment: a burst of origin copies. So while fewer than
//! `BACKSTOP_MAX_SEEDS` seeds are expected, every agent that was not elected gets a *backstop*
//! time: `step × (1 + r)` after the segment appeared, where `r` is the expected number of agents
//! whose rendezvous score lies between the election threshold and its own (a global order that
//! needs no shared view) and `step` is twice the measured origin fetch time plus 50 ms (0.1 s to a
//! quarter of the target duration). At its backstop time an agent that knows no holder fetches
//! from the origin (reason `backstop`) and announces it; agents that heard a `have` by then pull
//! from the holder instead. About one agent per `step` fires, so a seedless segment costs about one
//! extra origin copy instead of a fallback storm.
//!
//! # Cut-through
//!
//! When the sidecar publishes chunk digests for a segment ([`SegmentInfo::chunked`]), the driver
//! verifies a peer transfer chunk by chunk. As soon as it holds one verified chunk it calls
//! [`Scheduler::handle_partial_verified`] and we announce a *partial* `have`. Peers treat a
//! partial holder as a source when no complete holder is free (complete holders first), and we
//! accept their requests while our own fetch runs: the driver streams verified chunks as they
//! arrive ([`Action::ServePeer`]). A hop then costs about one chunk time instead of one segment
//! time, so a live segment reaches a swarm through a deep tree well before its deadline, where
//! store-and-forward of whole segments allowed about two hops. A downstream transfer whose
//! upstream stalls shows no progress and is hedged like any stalled transfer. Unverified bytes
//! still never leave the driver.
//!
//! Origin fetches of units of striped segments are cut through too: the driver verifies the
//! origin's bytes chunk by chunk as they arrive and calls the same
//! [`Scheduler::handle_partial_verified`], so a seed offers its unit after one chunk instead of
//! after the whole unit (in the simulator, 1,000 viewers at 1.5× upload: 97.75 → 97.97 %
//! offload; 10,000: 98.79 → 98.96 %). Whole segments (`p2p.stripes = 1`) come through the
//! cache, shared with players, and are not.
//!
//! # Origin tails
//!
//! A peer transfer of a chunked segment that is projected to miss its need-by time used to be
//! cancelled and replaced by a whole-segment origin fetch, throwing away what the peer had
//! sent and would still send. Instead (`origin_tails`, default on) the scheduler keeps the
//! transfer for its *head*: from its measured rate it computes how far the peer will get
//! before the origin margin (`received + 0.9 × rate × (need_by − margin − now)`, rounded down
//! to a chunk boundary) and asks the origin for the rest only ([`Action::FetchOriginTail`], an
//! HTTP range). The driver joins the verified head chunks with the tail, checks the
//! whole-segment digest and reports [`Scheduler::handle_tail_complete`]. A split is made only
//! when the head still brings at least an eighth of the segment. If the head stalls or falls
//! late again, or its peer leaves, the tail is cancelled and the origin sends the whole segment
//! (a hedge), as before; a failed tail (e.g. an origin that ignores `Range`) does the same,
//! and after three failed tails in a row the scheduler stops asking for them. A tail counts as
//! a scarcity fallback for `ρ`, like the hedge it replaces.
//!
//! A transfer that stopped short (no byte for `stall_timeout`) and is still without a
//! replacement at the peer deadline gets a tail too: its whole verified chunks are the head,
//! which is then complete, and the origin sends the rest. Before, the origin sent the whole
//! unit; in the simulator (N = 1,000) four in five such hedges became tails.
//!
//! # Stripes
//!
//! With `stripes > 1` the scheduler works on *units* (see [`crate::core::stripes`]): the driver
//! lists each segment with chunk digests as up to `stripes` units, consecutive runs of whole
//! chunks, each with its own id, digest, size and a share of the segment's duration. Every rule
//! above (election, backstop, deadlines, hedges, tails, uploads, haves) then applies per unit,
//! so a segment spreads as several small pieces through different trees at once: each unit
//! has its own seeds, and a unit crosses a link in a fraction of a whole segment's time, so it
//! reaches more agents before the deadline (in the simulator, 1,000 viewers with 8 peers each:
//! 79 % offload whole, 94.5 % with 4 stripes at 1.5× upload; 45 % and 63 % at 0.8×; the
//! agent's config defaults to 4, see `docs/operations.md`). Only the player side stays per
//! segment: a player request names a segment and is answered once every unit of it is held
//! ([`Scheduler::holds_segment`]), and every unit of a segment has that segment's playback
//! deadline. With one stripe a unit id is the segment's sequence number and nothing changes.
//!
//! # Bounded state
//!
//! Live segments older than the playlist window minus `keep_behind` are forgotten (their fetches
//! cancelled); VOD playlists are capped at `max_segments`; per-peer availability is a sliding
//! window; the queue of refused requesters and the ban list are capped.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::core::ids::{Digest, PeerId};
use crate::core::peer_proto::{BitSet, Message};
use crate::core::policy::{
    PeerStats, ScoreWeights, SeedControl, SeedOutcome, TokenBucket, adapt_seed_fraction,
    choose_peer, ewma, is_fetcher, mix64, projected_completion, rendezvous_rank, rendezvous_score,
    unit_interval,
};
use crate::core::stripes::Stripes;
use crate::core::swarm::{HAVE_WINDOW, SwarmView};

/// A transfer is judged late only after its rate was measured over this long (seconds).
const LATE_MIN_WINDOW: f64 = 0.2;

/// Refused requesters offered a segment per freed upload slot (6 against 3, in the simulator
/// with 1,000 viewers at 1.5× upload and origin cut-through: 98.07 against 97.97 % offload).
const OFFER_FANOUT: usize = 6;

/// Backstops apply while fewer origin seeds than this are expected per segment (the chance of
/// none is then `e^-k` ≥ 5 %).
const BACKSTOP_MAX_SEEDS: f64 = 3.0;
/// Shortest backstop step, seconds.
const BACKSTOP_STEP_MIN: f64 = 0.1;
/// A player request that skips at most this many segments, none of them tracked, still
/// continues the playhead (see [`Scheduler::handle_player_request`]).
const MAX_UNTRACKED_SKIP: u64 = 4;
/// Longest backstop step, as a fraction of the target duration.
const BACKSTOP_STEP_MAX_TD: f64 = 0.25;

/// Backstop position of `me` for `seq` in a swarm of `n` with `k` expected seeds: the expected
/// number of agents whose backstop comes before ours (our uniform rendezvous score's distance
/// below the election threshold `1 − k/n`, times `n`). `None` when `me` is elected or when
/// enough seeds are expected (`k ≥ BACKSTOP_MAX_SEEDS`).
fn backstop_rank(seq: u64, me: &PeerId, n: usize, k: f64) -> Option<f64> {
    if k.is_nan() || k >= BACKSTOP_MAX_SEEDS || n == 0 {
        return None;
    }
    let threshold = 1.0 - k / n as f64;
    let u = unit_interval(rendezvous_score(seq, me));
    (u < threshold).then_some((threshold - u) * n as f64)
}

/// `p` announced `seq`, whole or partial.
fn holds(p: &crate::core::swarm::PeerEntry, seq: u64) -> bool {
    p.have.contains(seq) || p.partial.contains(seq)
}

/// Scheduler configuration. `Default` gives the documented defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct SchedulerConfig {
    /// Origin copies wanted per new live segment per swarm (`k`, default 1).
    pub fetchers: u32,
    /// Initial seed fraction `ρ` (default 0.05). See the module docs.
    pub seed_fraction_init: f64,
    /// Lower bound of `ρ` (default 0: then only `k` seeds).
    pub seed_fraction_min: f64,
    /// Upper bound of `ρ` (default 0.5).
    pub seed_fraction_max: f64,
    /// Multiplier of `ρ` after a fallback nobody announced (default 1.5).
    pub seed_fraction_up: f64,
    /// Multiplier of `ρ` after a fallback or late hedge although holders were known (default 1.1).
    pub seed_fraction_up_scarce: f64,
    /// Multiplier of `ρ` after a peer delivery with slack (default 0.99).
    pub seed_fraction_down: f64,
    /// A peer delivery lowers `ρ` only if it came at least this many target durations before
    /// the unit's peer deadline (default 0.25, at most 10; see the module docs, "Electing
    /// origin seeds").
    pub seed_fraction_slack: f64,
    /// Time after a live segment first appears by which its origin fallback must start.
    /// `None` (default): 1.5 × the playlist's target duration.
    pub peer_wait_budget: Option<Duration>,
    /// Deadline of a startup or seek request for a segment we do not hold (default 1 s).
    pub player_wait_budget: Duration,
    /// Time kept for an origin fetch between a deadline and the moment the player needs the
    /// segment (default 1.5 s). The scheduler uses at least twice its measured origin fetch time
    /// (EWMA) plus 250 ms, so slow links get a wider margin.
    pub origin_safety_margin: Duration,
    /// A peer transfer with no progress for this long is hedged (default 500 ms; in the
    /// simulator that halves stall time against 1 s, at the same offload).
    pub stall_timeout: Duration,
    /// Live: on joining, prefetch only the newest this many segments of the window (default 3).
    pub join_prefetch: usize,
    /// VOD: segments fetched ahead of the last player request (default 3).
    pub vod_lookahead: usize,
    /// Most concurrent uploads to peers (default 4). Fewer are used while the measured upload
    /// rate cannot give each at least 0.4 of the stream rate (see the module docs, "Upload");
    /// 1 disables the adaptation, 0 disables uploading.
    pub upload_slots: usize,
    /// Upload rate cap in bytes/s (default none).
    pub upload_rate_cap: Option<u64>,
    /// Token-bucket burst of the upload cap, bytes (default 2 MiB).
    pub upload_burst: u64,
    /// Share segments that have no digest (`integrity = "off"`; default false).
    pub allow_unverified: bool,
    /// Announce and serve segments with chunk digests while still receiving them (default
    /// true; see the module docs, "Cut-through").
    pub cut_through: bool,
    /// A peer transfer of a chunked segment that is projected to finish late keeps its head and
    /// the origin sends only the tail (an HTTP range), instead of the whole segment (default
    /// true; see the module docs, "Origin tails").
    pub origin_tails: bool,
    /// Live: segments kept after they leave the playlist window (default 4).
    pub keep_behind: u64,
    /// Most segments tracked at once (VOD playlists beyond it are truncated; default 65 536).
    pub max_segments: usize,
    /// Peer requests per segment before going to the origin (default 6).
    pub max_peer_attempts: u32,
    /// Concurrent peer fetches of one segment, hedges included (default 2).
    pub max_parallel: usize,
    /// Concurrent requests to one peer (default 4).
    pub max_requests_per_peer: u32,
    /// Retries of a failed retryable origin fetch (default 2).
    pub origin_retries: u32,
    /// Delay before an origin retry (default 250 ms).
    pub origin_retry_backoff: Duration,
    /// A peer that answered `Busy` is not asked again for that segment for this long, unless it
    /// offers the segment again first (default 1 s). Within this long of the segment's peer
    /// deadline, a `Busy` makes us ask the next holder at once.
    pub busy_backoff: Duration,
    /// Refused requesters remembered for a re-offer (default 32).
    pub max_refused: usize,
    /// Peer score weights.
    pub weights: ScoreWeights,
    /// Units per segment (default 1, whole segments; the agent's `p2p.stripes` defaults to 4;
    /// see [`crate::core::stripes`]). Every
    /// segment-count knob above (`join_prefetch`, `vod_lookahead`, `keep_behind`,
    /// `max_segments`) still counts segments.
    pub stripes: Stripes,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            fetchers: 1,
            seed_fraction_init: 0.05,
            seed_fraction_min: 0.0,
            seed_fraction_max: 0.5,
            seed_fraction_up: 1.5,
            seed_fraction_up_scarce: 1.1,
            seed_fraction_down: 0.99,
            seed_fraction_slack: 0.25,
            peer_wait_budget: None,
            player_wait_budget: Duration::from_secs(1),
            origin_safety_margin: Duration::from_millis(1500),
            stall_timeout: Duration::from_millis(500),
            join_prefetch: 3,
            vod_lookahead: 3,
            upload_slots: 4,
            upload_rate_cap: None,
            upload_burst: 2 * 1024 * 1024,
            allow_unverified: false,
            cut_through: true,
            origin_tails: true,
            keep_behind: 4,
            max_segments: 65_536,
            max_peer_attempts: 6,
            max_parallel: 2,
            max_requests_per_peer: 4,
            origin_retries: 2,
            origin_retry_backoff: Duration::from_millis(250),
            busy_backoff: Duration::from_secs(1),
            max_refused: 32,
            weights: ScoreWeights::default(),
            stripes: Stripes::WHOLE,
        }
    }
}

/// Errors for configuration values that cannot work.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// A field is out of its valid range.
    #[error("scheduler config: {field} {reason}")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
}

impl SchedulerConfig {
    /// Checks ranges and relations between fields.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field, reason| Err(ConfigError::OutOfRange { field, reason });
        if self.fetchers == 0 {
            return bad("fetchers", "must be at least 1");
        }
        if !(0.0..=1.0).contains(&self.seed_fraction_min)
            || !(0.0..=1.0).contains(&self.seed_fraction_max)
            || self.seed_fraction_min > self.seed_fraction_max
        {
            return bad("seed_fraction_min/max", "must satisfy 0 <= min <= max <= 1");
        }
        if !(self.seed_fraction_min..=self.seed_fraction_max).contains(&self.seed_fraction_init) {
            return bad("seed_fraction_init", "must lie within [min, max]");
        }
        if self.seed_fraction_up < 1.0
            || self.seed_fraction_up_scarce < 1.0
            || !(0.0..=1.0).contains(&self.seed_fraction_down)
        {
            return bad(
                "seed_fraction_up/down",
                "up must be >= 1 and down within [0, 1]",
            );
        }
        if !(0.0..=10.0).contains(&self.seed_fraction_slack) {
            return bad(
                "seed_fraction_slack",
                "must lie within [0, 10] target durations",
            );
        }
        if self.stall_timeout.is_zero() {
            return bad("stall_timeout", "must be positive");
        }
        if self.max_parallel == 0 {
            return bad("max_parallel", "must be at least 1");
        }
        if self.max_requests_per_peer == 0 {
            return bad("max_requests_per_peer", "must be at least 1");
        }
        if self.upload_rate_cap == Some(0) {
            return bad(
                "upload_rate_cap",
                "must be positive when set (use upload_slots = 0 to disable upload)",
            );
        }
        Ok(())
    }

    fn seed_control(&self) -> SeedControl {
        SeedControl {
            min: self.seed_fraction_min,
            max: self.seed_fraction_max,
            up: self.seed_fraction_up,
            up_scarce: self.seed_fraction_up_scarce,
            down: self.seed_fraction_down,
        }
    }
}

/// One segment as listed by a media playlist (plus its digest from the sidecar).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Media sequence number (live) or index (VOD).
    pub seq: u64,
    /// SHA-256 from the origin's digest sidecar, if published.
    pub digest: Option<Digest>,
    /// `EXTINF` duration.
    pub duration: Duration,
    /// Size if known (byte range length), for projections.
    pub size_hint: Option<u64>,
    /// Chunk size of the sidecar's chunk digests for it, if it publishes them: then it can be
    /// served to peers chunk by verified chunk while it is still being received (cut-through),
    /// and a late peer transfer can be completed by an origin tail that starts at a chunk
    /// boundary.
    pub chunk_size: Option<u32>,
}

/// A fetched media playlist.
#[derive(Clone, Copy, Debug)]
pub struct PlaylistUpdate<'a> {
    /// Live (no `EXT-X-ENDLIST`) or VOD.
    pub live: bool,
    /// `EXT-X-TARGETDURATION`.
    pub target_duration: Duration,
    /// The segments in playlist order.
    pub segments: &'a [SegmentInfo],
}

/// Why an origin fetch was started (a metrics label).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OriginReason {
    /// We are an elected seed of a new live segment.
    Elected,
    /// The peer deadline passed without a peer copy.
    Fallback,
    /// A peer transfer stalled or would finish too late.
    Hedge,
    /// The segment has no digest and unverified sharing is off.
    Unverified,
    /// A player waits and no peer holds (or will soon hold) the segment.
    NoPeers,
    /// A retry after a failed origin fetch.
    Retry,
    /// Partial view with few expected seeds: no holder was announced by this agent's backstop
    /// time (see the module docs, "Backstop").
    Backstop,
    /// The tail of a segment whose late peer transfer delivers the head (see the module docs,
    /// "Origin tails").
    Tail,
}

impl OriginReason {
    /// Stable label value.
    pub fn as_label(self) -> &'static str {
        match self {
            OriginReason::Elected => "elected",
            OriginReason::Fallback => "fallback",
            OriginReason::Hedge => "hedge",
            OriginReason::Unverified => "unverified",
            OriginReason::NoPeers => "no_peers",
            OriginReason::Retry => "retry",
            OriginReason::Backstop => "backstop",
            OriginReason::Tail => "tail",
        }
    }
}

/// Why we refused a peer's request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefuseReason {
    /// No upload slot or rate budget.
    Busy,
    /// We do not hold that segment with that digest.
    Absent,
}

/// Why a segment could not be obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailReason {
    /// The origin failed and no peer holds it.
    Origin,
}

/// Outputs for the driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Fetch segment `seq` from the origin; report with [`Scheduler::handle_origin_result`].
    FetchOrigin {
        /// Segment.
        seq: u64,
        /// Why.
        reason: OriginReason,
    },
    /// Fetch bytes `from..` of segment `seq` from the origin: a late peer transfer (whose
    /// verified chunks the driver keeps) delivers the head. Once the head is verified up to
    /// `from` and the tail is in, join them, check the whole-segment digest and report with
    /// [`Scheduler::handle_tail_complete`]; report a failed fetch or a mismatch with
    /// [`Scheduler::handle_tail_failed`].
    FetchOriginTail {
        /// Segment.
        seq: u64,
        /// First byte wanted from the origin.
        from: u64,
    },
    /// Abort the origin fetch of `seq`, whole or tail (another copy won); no result needs to be
    /// reported.
    CancelOrigin {
        /// Segment.
        seq: u64,
    },
    /// Send `Request { req_id, seq, digest }` to `peer` and reassemble the answer.
    RequestPeer {
        /// Peer.
        peer: PeerId,
        /// Request id.
        req_id: u32,
        /// Segment.
        seq: u64,
        /// Expected digest.
        digest: Option<Digest>,
    },
    /// Send `Cancel { req_id }` to `peer` and drop the reassembly.
    CancelPeer {
        /// Peer.
        peer: PeerId,
        /// Request id.
        req_id: u32,
    },
    /// Send `Have { seq, digest, partial }` to every connected peer of the swarm (a partial
    /// one only to peers that announced the cut-through capability).
    SendHave {
        /// Segment.
        seq: u64,
        /// Digest.
        digest: Option<Digest>,
        /// We are still receiving it and serve its verified chunks as they arrive.
        partial: bool,
    },
    /// Send `Have { seq, digest, partial }` to one peer (we refused it earlier; a slot is free
    /// now).
    OfferHave {
        /// Peer.
        peer: PeerId,
        /// Segment.
        seq: u64,
        /// Digest.
        digest: Option<Digest>,
        /// As in [`Action::SendHave`].
        partial: bool,
    },
    /// Send `Bitfield { base_seq, bits }` to a newly connected peer.
    SendBitfield {
        /// Peer.
        peer: PeerId,
        /// Sequence number of bit 0.
        base_seq: u64,
        /// Bits.
        bits: BitSet,
    },
    /// Upload segment `seq` to `peer` as `Data` chunks of `req_id`; report the end with
    /// [`Scheduler::handle_upload_done`]. If we are still receiving `seq` (we announced it as
    /// partial), send its verified chunks as they arrive; if our copy is given up
    /// ([`Action::Failed`], or the segment is forgotten) answer `Absent` instead.
    ServePeer {
        /// Peer.
        peer: PeerId,
        /// Request id.
        req_id: u32,
        /// Segment.
        seq: u64,
    },
    /// Stop an upload (the peer cancelled it).
    StopServe {
        /// Peer.
        peer: PeerId,
        /// Request id.
        req_id: u32,
    },
    /// Answer `peer`'s request with `Busy` or `Absent`.
    Refuse {
        /// Peer.
        peer: PeerId,
        /// Request id.
        req_id: u32,
        /// Which answer.
        reason: RefuseReason,
    },
    /// Close the channel to `peer` and refuse it for the rest of the swarm session.
    Ban {
        /// Peer.
        peer: PeerId,
    },
    /// Segment `seq` cannot be obtained; answer waiting players with an error.
    Failed {
        /// Segment.
        seq: u64,
        /// Why.
        reason: FailReason,
    },
}

/// Answer to a player request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlayerOutcome {
    /// We hold it: serve from the cache.
    Ready,
    /// A fetch is under way (or scheduled); the driver parks the request until the segment
    /// arrives or `Failed` is emitted.
    Waiting,
    /// Not in any playlist we track (too old, or beyond the VOD cap): proxy it to the origin.
    Unknown,
}

/// Failure of an origin fetch as the driver classifies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OriginFailure {
    /// Worth retrying (timeouts, 5xx, connection resets, short bodies).
    pub retryable: bool,
}

/// Counters for metrics. Monotonic over the scheduler's life.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Origin fetches started, by any reason.
    pub origin_fetches: u64,
    /// … of which as elected seed.
    pub origin_elected: u64,
    /// … of which deadline fallbacks.
    pub origin_fallbacks: u64,
    /// … of which hedges of a slow/stalled peer transfer.
    pub origin_hedges: u64,
    /// … of which because the segment had no digest.
    pub origin_unverified: u64,
    /// … of which because a player waited and no peer held the segment.
    pub origin_no_peers: u64,
    /// … of which backstops of a segment nobody announced (partial view, few seeds).
    pub origin_backstops: u64,
    /// Origin tail fetches started (a late peer transfer delivers the head).
    pub origin_tails: u64,
    /// … of which completed a segment.
    pub origin_tails_done: u64,
    /// … of which failed (then the origin sends the whole segment).
    pub origin_tails_failed: u64,
    /// Segment bytes received from the origin.
    pub origin_bytes: u64,
    /// Origin fetches that failed.
    pub origin_failures: u64,
    /// Requests sent to peers.
    pub peer_requests: u64,
    /// … of which hedges.
    pub peer_hedges: u64,
    /// Verified segments received from peers.
    pub peer_fetches: u64,
    /// Verified segment bytes received from peers.
    pub peer_bytes: u64,
    /// Peer transfers lost with their peer.
    pub peer_lost: u64,
    /// Peer transfers that stalled.
    pub peer_stalls: u64,
    /// `Busy` answers received.
    pub busy_received: u64,
    /// `Absent` answers received.
    pub absent_received: u64,
    /// `Busy` answers sent.
    pub busy_sent: u64,
    /// `Absent` answers sent.
    pub absent_sent: u64,
    /// Uploads started.
    pub uploads: u64,
    /// … of which of a segment we were still receiving (cut-through).
    pub uploads_partial: u64,
    /// Partial `Have`s announced (segments we began to receive with chunk digests).
    pub partial_haves: u64,
    /// Uploads finished.
    pub uploads_done: u64,
    /// Bytes uploaded (finished uploads).
    pub uploaded_bytes: u64,
    /// Peers banned.
    pub bans: u64,
    /// Peer transfers that failed verification.
    pub integrity_failures: u64,
    /// Player requests.
    pub player_requests: u64,
    /// Player requests answered from the cache at once.
    pub player_hits: u64,
    /// Segments given up.
    pub failed: u64,
    /// Fetches cancelled because another copy won.
    pub cancelled: u64,
}

/// Lifecycle of one segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentStatus {
    /// Not held, no fetch running.
    Idle,
    /// At least one fetch running.
    Fetching,
    /// Held (verified).
    Have,
    /// Given up (until a player asks again).
    Failed,
}

/// Where a held copy came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The origin.
    Origin,
    /// A peer.
    Peer,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FetchFrom {
    Origin,
    Peer { peer: PeerId, req_id: u32 },
}

#[derive(Clone, Debug)]
struct Fetch {
    from: FetchFrom,
    started: Instant,
    last_progress: Instant,
    received: u64,
    total: Option<u64>,
    /// First progress report (time, bytes): the rate is measured from here, so the request's
    /// round trip and a cut-through source's first chunk do not count as slowness.
    first_progress: Option<(Instant, u64)>,
    /// Only bytes `..until` are needed (the origin sends the rest; see "Origin tails").
    until: Option<u64>,
}

impl Fetch {
    /// The head an origin tail waits for is in: nothing more is expected of this transfer.
    fn head_done(&self) -> bool {
        self.until.is_some_and(|u| self.received >= u)
    }
}

/// An origin tail fetch running beside the peer transfer that delivers the head.
#[derive(Clone, Copy, Debug)]
struct Tail {
    peer: PeerId,
    req_id: u32,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mark {
    Failed,
    BusyUntil(Instant),
}

#[derive(Clone, Debug)]
struct Seg {
    digest: Option<Digest>,
    chunk_size: Option<u32>,
    /// We announced it as partial (we hold verified chunks and serve them as they arrive).
    partial_sent: bool,
    duration: Duration,
    size: Option<u64>,
    peer_deadline: Option<Instant>,
    need_by: Option<Instant>,
    status: SegmentStatus,
    source: Option<Source>,
    wanted: bool,
    player_waiting: bool,
    elected: bool,
    is_new: bool,
    holder_seen: bool,
    /// Partial view, not elected: fetch from the origin at this time if nobody announced it.
    backstop_at: Option<Instant>,
    fetches: Vec<Fetch>,
    marks: Vec<(PeerId, Mark)>,
    peer_attempts: u32,
    origin_attempts: u32,
    origin_retry_at: Option<Instant>,
    tail: Option<Tail>,
    /// An origin tail of this segment failed: no second one.
    tail_failed: bool,
}

impl Seg {
    fn new(info: &SegmentInfo) -> Self {
        Seg {
            digest: info.digest,
            chunk_size: info.chunk_size,
            partial_sent: false,
            duration: info.duration,
            size: info.size_hint,
            peer_deadline: None,
            need_by: None,
            status: SegmentStatus::Idle,
            source: None,
            wanted: false,
            player_waiting: false,
            elected: false,
            is_new: false,
            holder_seen: false,
            backstop_at: None,
            fetches: Vec::new(),
            marks: Vec::new(),
            peer_attempts: 0,
            origin_attempts: 0,
            origin_retry_at: None,
            tail: None,
            tail_failed: false,
        }
    }

    fn is_final(&self) -> bool {
        matches!(self.status, SegmentStatus::Have | SegmentStatus::Failed)
    }

    fn has_origin_fetch(&self) -> bool {
        self.fetches.iter().any(|f| f.from == FetchFrom::Origin)
    }

    fn set_deadline(&mut self, peer_deadline: Instant, need_by: Instant) {
        self.peer_deadline = Some(
            self.peer_deadline
                .map_or(peer_deadline, |d| d.min(peer_deadline)),
        );
        self.need_by = Some(self.need_by.map_or(need_by, |d| d.min(need_by)));
    }
}

#[derive(Clone, Copy, Debug)]
struct Upload {
    peer: PeerId,
    req_id: u32,
    started: Instant,
    /// Served from a partial copy: paced by our own download, so not a measure of our uplink.
    partial: bool,
}

/// Smallest finished upload that counts as an upload-rate sample.
const UPLOAD_SAMPLE_MIN_BYTES: u64 = 64 * 1024;

/// Each concurrent upload should get at least this fraction of the stream rate (see the module
/// docs, "Upload").
const SLOT_STREAM_SHARE: f64 = 0.4;

#[derive(Clone, Copy, Debug)]
struct Outstanding {
    req_id: u32,
    peer: PeerId,
    seq: u64,
}

/// Playhead inferred from the player's requests (hls.js loads fragments one at a time, in order).
#[derive(Clone, Copy, Debug, Default)]
struct PlayerModel {
    last_seq: Option<u64>,
    /// Segment `.0` started (or will start) playing at `.1`.
    anchor: Option<(u64, Instant)>,
    /// Startup/seek request whose arrival fixes the anchor.
    pending: Option<u64>,
}

/// The tracked units, keyed by unit id. Every mutable access records the unit as *touched* so
/// [`Scheduler::poll_timeout`] recomputes only the wake-up times of units that changed (see
/// [`Timers`]); reads do not.
///
/// Kept as sorted deques rather than a `BTreeMap`: a live window is a run of consecutive ids
/// that grows at the back and is forgotten from the front, so a unit usually sits at its id's
/// offset from the first id, and a lookup reads one slot where a tree walks a node per level
/// (the simulator drives ten thousand schedulers, and its run time is mostly such memory
/// walks). Ids out of order or with gaps fall back to a binary search. Whether a unit has
/// timers (`Scheduler::activate`) is a flag beside its id, not a second set.
#[derive(Debug, Default)]
struct Units {
    /// The first id (meaningless while empty), so that the usual lookup goes straight to the
    /// unit's slot.
    base: u64,
    /// The ids in order, for range queries.
    ids: VecDeque<u64>,
    /// In the same order: has timers (`Scheduler::activate`). Apart from the units so that
    /// finding the few units with timers reads one line, not every unit.
    active: VecDeque<bool>,
    /// The units in the same order, each with its id (a lookup confirms it in the line it reads
    /// anyway).
    units: VecDeque<(u64, Seg)>,
    /// Units changed since the last `poll_timeout`.
    touched: std::cell::RefCell<Vec<u64>>,
}

impl Units {
    /// Where `seq` is (`Ok`) or would be inserted (`Err`).
    fn find(&self, seq: u64) -> Result<usize, usize> {
        if let Some(i) = seq
            .checked_sub(self.base)
            .and_then(|d| usize::try_from(d).ok())
            && self.units.get(i).is_some_and(|(id, _)| *id == seq)
        {
            return Ok(i);
        }
        self.ids.binary_search(&seq)
    }

    /// Index range of the ids within `r`.
    fn span(&self, r: &impl std::ops::RangeBounds<u64>) -> std::ops::Range<usize> {
        use std::ops::Bound;
        let lo = match r.start_bound() {
            Bound::Included(&a) => self.ids.partition_point(|&x| x < a),
            Bound::Excluded(&a) => self.ids.partition_point(|&x| x <= a),
            Bound::Unbounded => 0,
        };
        let hi = match r.end_bound() {
            Bound::Included(&b) => self.ids.partition_point(|&x| x <= b),
            Bound::Excluded(&b) => self.ids.partition_point(|&x| x < b),
            Bound::Unbounded => self.ids.len(),
        };
        lo..hi.max(lo)
    }

    fn len(&self) -> usize {
        self.ids.len()
    }

    fn contains_key(&self, seq: &u64) -> bool {
        self.find(*seq).is_ok()
    }

    fn get(&self, seq: &u64) -> Option<&Seg> {
        let i = self.find(*seq).ok()?;
        self.units.get(i).map(|(_, s)| s)
    }

    /// Units with ids in `r`, in id order.
    fn range(&self, r: impl std::ops::RangeBounds<u64>) -> impl Iterator<Item = (&u64, &Seg)> {
        self.units.range(self.span(&r)).map(|(id, s)| (id, s))
    }

    /// Units in id order.
    fn iter(&self) -> impl DoubleEndedIterator<Item = (&u64, &Seg)> {
        self.units.iter().map(|(id, s)| (id, s))
    }

    #[cfg(test)]
    fn keys(&self) -> impl Iterator<Item = &u64> {
        self.ids.iter()
    }

    fn values(&self) -> impl Iterator<Item = &Seg> {
        self.units.iter().map(|(_, s)| s)
    }

    /// Records that `seq`'s timers may have changed (also used when it enters or leaves the
    /// active set). Past [`TOUCHED_MAX`] entries the list stops growing: everything is then
    /// recomputed anyway.
    fn touch(&mut self, seq: u64) {
        let touched = self.touched.get_mut();
        if touched.len() <= TOUCHED_MAX {
            touched.push(seq);
        }
    }

    fn get_mut(&mut self, seq: &u64) -> Option<&mut Seg> {
        self.touch(*seq);
        let i = self.find(*seq).ok()?;
        self.units.get_mut(i).map(|(_, s)| s)
    }

    /// Adds or replaces unit `seq`.
    fn insert(&mut self, seq: u64, seg: Seg) {
        self.touch(seq);
        match self.find(seq) {
            Ok(i) => self.units[i].1 = seg,
            Err(i) => {
                self.ids.insert(i, seq);
                self.active.insert(i, false);
                self.units.insert(i, (seq, seg));
            }
        }
        self.rebase();
    }

    fn remove(&mut self, seq: &u64) -> Option<Seg> {
        self.touch(*seq);
        let i = self.find(*seq).ok()?;
        self.ids.remove(i);
        self.active.remove(i);
        let seg = self.units.remove(i).map(|(_, s)| s);
        self.rebase();
        seg
    }

    /// Marks `seq` as having timers (or not); either way it is touched.
    fn set_active(&mut self, seq: u64, active: bool) {
        self.touch(seq);
        if let Ok(i) = self.find(seq) {
            self.active[i] = active;
        }
    }

    /// Unit `seq` if it has timers.
    fn get_active(&self, seq: u64) -> Option<&Seg> {
        let i = self.find(seq).ok()?;
        if !self.active[i] {
            return None;
        }
        self.units.get(i).map(|(_, s)| s)
    }

    /// The units with timers and ids in `r`, in id order (the flags are read first, so units
    /// without timers are not touched).
    fn active_range(
        &self,
        r: impl std::ops::RangeBounds<u64>,
    ) -> impl Iterator<Item = (u64, &Seg)> {
        self.span(&r)
            .filter(|&i| self.active[i])
            .filter_map(|i| self.units.get(i).map(|(id, s)| (*id, s)))
    }

    fn rebase(&mut self) {
        self.base = self.ids.front().copied().unwrap_or(0);
    }
}

/// Wake-up times of the active units, kept between calls of `poll_timeout` so that an input
/// that changed one unit costs one recomputation, not one per active unit (in the simulator,
/// ten thousand agents, recomputing them all was a fifth of the run time).
///
/// A unit's wake-up time (`Scheduler::wake`) depends on the unit, on the current margin and on
/// the latest input time `last_now` (times already past are skipped). An entry therefore stays
/// valid while its unit is untouched, the margin unchanged and its time still ahead of
/// `last_now`; entries that fell behind are recomputed. Debug builds check every answer against
/// a full recomputation.
#[derive(Debug, Default)]
struct Timers {
    /// Margin the entries were computed with; `None` = recompute everything.
    margin: Option<Duration>,
    /// (unit, wake-up time) of the active units that have one.
    wakes: Vec<(u64, Instant)>,
}

/// More touched units than this since the last `poll_timeout`: recompute all.
const TOUCHED_MAX: usize = 64;

/// The per-swarm scheduler. See the module docs.
#[derive(Debug)]
pub struct Scheduler {
    cfg: SchedulerConfig,
    me: PeerId,
    swarm: SwarmView,
    segs: Units,
    actions: VecDeque<Action>,
    outstanding: Vec<Outstanding>,
    uploads: Vec<Upload>,
    refused: VecDeque<(PeerId, u64)>,
    bucket: Option<TokenBucket>,
    counters: Counters,
    player: PlayerModel,
    live: bool,
    target_duration: Duration,
    newest: Option<u64>,
    swarm_size: Option<usize>,
    rho: f64,
    origin_ewma: Option<f64>,
    /// Measured upload rate, bytes/s (EWMA).
    upload_rate: Option<f64>,
    /// Stream rate, bytes/s (EWMA of segment size ÷ duration).
    stream_rate: Option<f64>,
    next_req_id: u32,
    last_now: Instant,
    /// Origin tails that failed in a row; at [`TAIL_FAILURES_OFF`] tails stop (the origin
    /// probably ignores range requests).
    tail_failures_in_row: u32,
    /// Origin fetches running (whole segments; tails not included).
    origin_running: usize,
    /// Bumped by every input that may change a timer.
    timer_gen: u64,
    /// `poll_timeout`'s last answer and the `timer_gen` it was computed at.
    timeout_cache: std::cell::Cell<Option<(u64, Option<Instant>)>>,
    /// Per-unit wake-up times behind `poll_timeout`.
    timers: std::cell::RefCell<Timers>,
}

/// Consecutive failed origin tails after which this scheduler stops asking for tails.
const TAIL_FAILURES_OFF: u32 = 3;

impl Scheduler {
    /// A scheduler for one swarm, created at `now`, for local peer `me`.
    pub fn new(now: Instant, me: PeerId, cfg: SchedulerConfig) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let bucket = cfg
            .upload_rate_cap
            .map(|rate| TokenBucket::new(now, rate, cfg.upload_burst));
        let rho = cfg.seed_fraction_init;
        Ok(Scheduler {
            cfg,
            me,
            swarm: SwarmView::new(),
            segs: Units::default(),
            actions: VecDeque::new(),
            outstanding: Vec::new(),
            uploads: Vec::new(),
            refused: VecDeque::new(),
            bucket,
            counters: Counters::default(),
            player: PlayerModel::default(),
            live: true,
            target_duration: Duration::from_secs(6),
            newest: None,
            swarm_size: None,
            rho,
            origin_ewma: None,
            upload_rate: None,
            stream_rate: None,
            next_req_id: 1,
            last_now: now,
            tail_failures_in_row: 0,
            origin_running: 0,
            timer_gen: 0,
            timeout_cache: std::cell::Cell::new(None),
            timers: std::cell::RefCell::new(Timers::default()),
        })
    }

    // ----- queries -------------------------------------------------------------------------

    /// Our peer id.
    pub fn local_id(&self) -> PeerId {
        self.me
    }

    /// The configuration.
    pub fn config(&self) -> &SchedulerConfig {
        &self.cfg
    }

    /// Counters for metrics.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// True if we hold a verified copy of `seq`.
    pub fn has(&self, seq: u64) -> bool {
        self.segs
            .get(&seq)
            .is_some_and(|s| s.status == SegmentStatus::Have)
    }

    /// Status of `seq`, if tracked.
    pub fn status(&self, seq: u64) -> Option<SegmentStatus> {
        self.segs.get(&seq).map(|s| s.status)
    }

    /// Where our copy of `seq` came from.
    pub fn source(&self, seq: u64) -> Option<Source> {
        self.segs.get(&seq).and_then(|s| s.source)
    }

    /// Whether we were elected origin fetcher of `seq`.
    pub fn is_elected(&self, seq: u64) -> bool {
        self.segs.get(&seq).is_some_and(|s| s.elected)
    }

    /// Current seed fraction `ρ`.
    pub fn seed_fraction(&self) -> f64 {
        self.rho
    }

    /// The swarm view (peers, scores, bans).
    pub fn swarm(&self) -> &SwarmView {
        &self.swarm
    }

    /// Whether [`Action::SendHave`] for `seq` should reach `peer`: not if it announced the
    /// segment whole itself, nor, for a partial `have`, if it announced it partial (it is
    /// receiving it already). Shells filter their broadcast with this.
    pub fn needs_have(&self, peer: &PeerId, seq: u64, partial: bool) -> bool {
        self.swarm
            .get(peer)
            .is_none_or(|p| !(p.have.contains(seq) || (partial && p.partial.contains(seq))))
    }

    /// Upload slots in use now: see the module docs, "Upload".
    pub fn slots(&self) -> usize {
        let max = self.cfg.upload_slots;
        match (self.upload_rate, self.stream_rate) {
            (Some(up), Some(stream)) if stream > 0.0 && max > 1 => {
                ((up / (SLOT_STREAM_SHARE * stream)).floor() as usize).clamp(1, max)
            }
            _ => max.min(1),
        }
    }

    /// Number of segments tracked.
    pub fn tracked_segments(&self) -> usize {
        self.segs.len()
    }

    /// Uploads in progress.
    pub fn uploads_in_flight(&self) -> usize {
        self.uploads.len()
    }

    /// Newest live sequence number seen.
    pub fn newest(&self) -> Option<u64> {
        self.newest
    }

    // ----- outputs -------------------------------------------------------------------------

    /// Next action for the driver.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        // Cached while no input could have changed a timer (`timer_gen`) and the answer is
        // still ahead of the latest input: then recomputing gives the same instant.
        if let Some((generation, t)) = self.timeout_cache.get()
            && generation == self.timer_gen
            && t.is_none_or(|t| t > self.last_now)
        {
            debug_assert_eq!(t, self.compute_timeout());
            return t;
        }
        let t = self.update_timers();
        debug_assert_eq!(t, self.compute_timeout());
        self.timeout_cache.set(Some((self.timer_gen, t)));
        t
    }

    /// Adds `seq` to the units with timers (a change `poll_timeout` must see).
    fn activate(&mut self, seq: u64) {
        self.segs.set_active(seq, true);
    }

    /// Removes `seq` from the units with timers.
    fn deactivate(&mut self, seq: u64) {
        self.segs.set_active(seq, false);
    }

    /// Brings [`Timers`] up to date and returns the earliest wake-up time.
    fn update_timers(&self) -> Option<Instant> {
        let margin = self.margin_now();
        let mut timers = self.timers.borrow_mut();
        let mut touched = self.segs.touched.borrow_mut();
        let wake_of = |seq: u64| self.segs.get_active(seq).and_then(|s| self.wake(s, margin));
        if timers.margin != Some(margin) || touched.len() > TOUCHED_MAX {
            timers.margin = Some(margin);
            timers.wakes = self
                .segs
                .active_range(..)
                .filter_map(|(seq, s)| self.wake(s, margin).map(|t| (seq, t)))
                .collect();
        } else {
            touched.sort_unstable();
            touched.dedup();
            let wakes = &mut timers.wakes;
            let mut i = 0;
            while let Some(&(seq, t)) = wakes.get(i) {
                if t > self.last_now && touched.binary_search(&seq).is_err() {
                    i += 1;
                    continue;
                }
                match wake_of(seq) {
                    Some(t) => {
                        wakes[i].1 = t;
                        i += 1;
                    }
                    None => {
                        wakes.swap_remove(i);
                    }
                }
            }
            for &seq in touched.iter() {
                if !wakes.iter().any(|e| e.0 == seq)
                    && let Some(t) = wake_of(seq)
                {
                    wakes.push((seq, t));
                }
            }
        }
        touched.clear();
        timers.wakes.iter().map(|e| e.1).min()
    }

    fn compute_timeout(&self) -> Option<Instant> {
        let margin = self.margin_now();
        self.segs
            .active_range(..)
            .filter_map(|(_, s)| self.wake(s, margin))
            .min()
    }

    /// Runs the timers that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = now;
        self.timer_gen += 1;
        let margin = self.margin_now();
        let due: Vec<u64> = self
            .segs
            .active_range(..)
            .filter(|(_, s)| self.wake_raw(s, margin).is_some_and(|t| t <= now))
            .map(|(seq, _)| seq)
            .collect();
        for seq in due {
            self.drive(now, seq);
        }
    }

    // ----- inputs: playlists and player ------------------------------------------------------

    /// Most units tracked at once (`max_segments` segments' worth).
    fn max_units(&self) -> usize {
        self.cfg
            .max_segments
            .saturating_mul(usize::from(self.cfg.stripes.get()))
    }

    /// Units of segment `seq` we track, in order.
    /// True if no segment strictly between `from` and `to` (`from < to`, at most `max`
    /// apart) is tracked: a player that asks for `to` after `from` skipped only what we do not
    /// follow (an `EXT-X-GAP` segment, one it got elsewhere), and plays on.
    fn untracked_between(&self, from: u64, to: u64, max: u64) -> bool {
        to - from <= max
            && (from + 1..to).all(|s| self.segs.range(self.cfg.stripes.units(s)).next().is_none())
    }

    fn units_of(&self, seq: u64) -> Vec<u64> {
        self.segs
            .range(self.cfg.stripes.units(seq))
            .map(|(u, _)| *u)
            .collect()
    }

    /// A media playlist was fetched. With stripes, `update.segments` lists units (see
    /// [`crate::core::stripes`]), each with its own size, digest and a share of the segment's
    /// duration.
    pub fn handle_playlist(&mut self, now: Instant, update: &PlaylistUpdate<'_>) {
        self.last_now = now;
        self.timer_gen += 1;
        self.live = update.live;
        self.target_duration = update.target_duration;
        if update.live {
            self.playlist_live(now, update);
        } else {
            self.playlist_vod(update);
        }
    }

    /// Effective origin safety margin: the configured one, or twice the measured origin fetch
    /// time plus 250 ms if that is longer.
    fn margin(&self) -> Duration {
        self.cfg
            .origin_safety_margin
            .max(self.origin_time().unwrap_or_default())
    }

    /// Twice the measured origin fetch time plus 250 ms, once measured.
    fn origin_time(&self) -> Option<Duration> {
        self.origin_ewma
            .and_then(|s| Duration::try_from_secs_f64(2.0 * s + 0.25).ok())
    }

    /// The margin with the origin fetches already running: they share our download link, so
    /// each adds about one measured fetch time. A segment whose need-by time is closer than this
    /// goes to the origin even before its peer deadline.
    fn margin_now(&self) -> Duration {
        debug_assert_eq!(
            self.origin_running,
            self.segs
                .values()
                .flat_map(|s| &s.fetches)
                .filter(|f| f.from == FetchFrom::Origin)
                .count()
        );
        let running = self.origin_running as f64;
        let extra = self
            .origin_ewma
            .and_then(|s| Duration::try_from_secs_f64(running * s).ok())
            .unwrap_or_default();
        self.margin() + extra
    }

    /// True once the origin must be used for `seg`: its peer deadline passed, or its need-by
    /// time is closer than the current origin margin.
    fn past_deadline(&self, seg: &Seg, now: Instant) -> bool {
        seg.peer_deadline.is_some_and(|d| now >= d)
            || seg.need_by.is_some_and(|n| now + self.margin_now() >= n)
    }

    fn peer_wait_budget(&self) -> Duration {
        self.cfg
            .peer_wait_budget
            .unwrap_or_else(|| self.target_duration.mul_f64(1.5))
    }

    fn playlist_live(&mut self, now: Instant, update: &PlaylistUpdate<'_>) {
        let Some(max_seq) = update.segments.iter().map(|s| s.seq).max() else {
            return;
        };
        let min_seq = update
            .segments
            .iter()
            .map(|s| s.seq)
            .min()
            .unwrap_or(max_seq);
        let first = self.newest.is_none();
        let prev_newest = self.newest.unwrap_or(0);
        let want_from = if first {
            let st = self.cfg.stripes;
            st.unit(
                (st.seq_of(max_seq) + 1).saturating_sub(self.cfg.join_prefetch as u64),
                0,
            )
        } else {
            prev_newest + 1
        };
        let budget = self.peer_wait_budget();
        for info in update.segments {
            if self.segs.contains_key(&info.seq) || self.segs.len() >= self.max_units() {
                continue;
            }
            let mut seg = Seg::new(info);
            let fresh = !first && info.seq > prev_newest;
            seg.is_new = fresh;
            if info.seq >= want_from {
                seg.wanted = true;
                match self.player_deadline(now, info.seq) {
                    Some((deadline, need)) => {
                        seg.peer_deadline = Some(deadline);
                        seg.need_by = Some(need);
                    }
                    None => seg.set_deadline(now + budget, now + budget + self.margin()),
                }
            }
            let seen = self.swarm.peers().iter().any(|p| holds(p, info.seq));
            if fresh {
                seg.elected = !seen && self.elect(info.seq);
                if !seg.elected {
                    seg.backstop_at = self
                        .backstop_at(now, info.seq)
                        .filter(|t| seg.peer_deadline.is_none_or(|d| *t < d));
                }
            }
            let wanted = seg.wanted;
            // Peers may have announced it before our playlist showed it.
            seg.holder_seen = seen;
            self.segs.insert(info.seq, seg);
            if wanted {
                self.activate(info.seq);
                self.drive(now, info.seq);
            }
        }
        self.newest = Some(self.newest.map_or(max_seq, |n| n.max(max_seq)));
        // Forget what left the window.
        let st = self.cfg.stripes;
        let keep_from = st.unit(st.seq_of(min_seq).saturating_sub(self.cfg.keep_behind), 0);
        let old: Vec<u64> = self.segs.range(..keep_from).map(|(s, _)| *s).collect();
        for seq in old {
            self.forget(seq);
        }
    }

    fn playlist_vod(&mut self, update: &PlaylistUpdate<'_>) {
        for info in update.segments {
            if self.segs.len() >= self.max_units() {
                break;
            }
            if !self.segs.contains_key(&info.seq) {
                self.segs.insert(info.seq, Seg::new(info));
            }
        }
    }

    fn elect(&self, seq: u64) -> bool {
        let members = 1 + self.swarm.len();
        let n = self.swarm_size.unwrap_or(members).max(members);
        let k = f64::from(self.cfg.fetchers).max(self.rho * n as f64);
        let rank = if n <= members {
            rendezvous_rank(seq, &self.me, self.swarm.peers().iter().map(|p| &p.id))
        } else {
            0
        };
        is_fetcher(seq, &self.me, rank, members, n, k)
    }

    /// This agent's backstop time for a new live segment it was not elected for (see the module
    /// docs, "Backstop"), or `None` in a full view or when enough seeds are expected.
    fn backstop_at(&self, now: Instant, seq: u64) -> Option<Instant> {
        let members = 1 + self.swarm.len();
        let n = self.swarm_size.unwrap_or(members).max(members);
        if n <= members {
            return None;
        }
        let k = f64::from(self.cfg.fetchers).max(self.rho * n as f64);
        let rank = backstop_rank(seq, &self.me, n, k)?;
        let step = self
            .origin_ewma
            .map_or(BACKSTOP_STEP_MIN, |s| 2.0 * s + 0.05)
            .clamp(
                BACKSTOP_STEP_MIN,
                (self.target_duration.as_secs_f64() * BACKSTOP_STEP_MAX_TD).max(BACKSTOP_STEP_MIN),
            );
        Duration::try_from_secs_f64(step * (1.0 + rank))
            .ok()
            .map(|d| now + d)
    }

    /// Duration of segment `seq`: the sum of its units' shares, or the target duration if we
    /// do not track it.
    fn seg_duration(&self, seq: u64) -> Duration {
        let mut units = self.segs.range(self.cfg.stripes.units(seq)).peekable();
        if units.peek().is_none() {
            return self.target_duration;
        }
        units.map(|(_, x)| x.duration).sum()
    }

    /// Moves the playhead anchor forward to the player's last request, adding the durations
    /// of the segments it passes: the same inferred playhead, from a later segment. Called on
    /// each sequential player request, while the segments behind it are still in the window.
    /// Left at the startup segment, the anchor made [`Self::player_need_by`] count every
    /// segment that had left the window at the target duration, an upper bound (most live
    /// segments are shorter), so every later need-by time drifted later by the difference, one
    /// forgotten segment after another (and with it the origin fallback, past the moment the
    /// player needs the segment); and the walk from the startup segment cost more the longer
    /// the session.
    fn advance_anchor(&mut self) {
        let (Some((mut seq, mut t)), Some(last)) = (self.player.anchor, self.player.last_seq)
        else {
            return;
        };
        while seq < last {
            t += self.seg_duration(seq);
            seq += 1;
        }
        self.player.anchor = Some((seq, t));
    }

    /// When the player needs unit `unit`: when its segment starts playing (a segment is
    /// served to the player only whole).
    fn player_need_by(&self, unit: u64) -> Option<Instant> {
        let (a_seq, a_t) = self.player.anchor?;
        let seq = self.cfg.stripes.seq_of(unit);
        if seq < a_seq {
            return None;
        }
        let mut t = a_t;
        for s in a_seq..seq {
            t += self.seg_duration(s);
        }
        Some(t)
    }

    /// Deadline and need-by time of a unit whose segment the player has not asked for yet,
    /// from the inferred playhead (only once the player model is anchored).
    fn player_deadline(&self, now: Instant, unit: u64) -> Option<(Instant, Instant)> {
        let last = self.player.last_seq?;
        if self.cfg.stripes.seq_of(unit) <= last {
            return None;
        }
        let need = self.player_need_by(unit)?;
        let deadline = need.checked_sub(self.margin()).unwrap_or(now).max(now);
        Some((deadline, need))
    }

    /// Re-derives the deadlines of wanted segments ahead of the player after the inferred
    /// playhead moved (startup, stall).
    fn retarget_ahead(&mut self, now: Instant) {
        let Some(last) = self.player.last_seq else {
            return;
        };
        let ahead: Vec<u64> = self
            .segs
            .active_range(self.cfg.stripes.unit(last.saturating_add(1), 0)..)
            .map(|(seq, _)| seq)
            .collect();
        for seq in ahead {
            if let Some((deadline, need)) = self.player_deadline(now, seq)
                && let Some(seg) = self.segs.get_mut(&seq)
            {
                seg.peer_deadline = Some(deadline);
                seg.need_by = Some(need);
            }
        }
    }

    /// A local player asked for segment `seq` (a segment sequence number even with stripes:
    /// the player is answered once every unit of it is held).
    pub fn handle_player_request(&mut self, now: Instant, seq: u64) -> PlayerOutcome {
        self.last_now = now;
        self.timer_gen += 1;
        self.counters.player_requests += 1;
        let sequential = self.player.anchor.is_some()
            && self.player.last_seq.is_some_and(|l| {
                l == seq || (l < seq && self.untracked_between(l, seq, MAX_UNTRACKED_SKIP))
            });
        if !sequential {
            self.player.anchor = None;
            self.player.pending = Some(seq);
        }
        self.player.last_seq = Some(seq);
        if sequential {
            // The playhead from the newest request on: a need-by time then adds only the
            // durations of the segments ahead of it.
            self.advance_anchor();
        }
        let units = self.units_of(seq);
        if units.is_empty() {
            self.player.pending = None;
            return PlayerOutcome::Unknown;
        }
        if self.holds_segment(seq) {
            self.counters.player_hits += 1;
            if self.player.pending == Some(seq) {
                self.player.anchor = Some((seq, now));
                self.player.pending = None;
                self.retarget_ahead(now);
            }
            self.vod_lookahead(now, seq);
            return PlayerOutcome::Ready;
        }
        let pwb = self.cfg.player_wait_budget;
        let margin = self.margin();
        let need = if sequential {
            self.player_need_by(self.cfg.stripes.unit(seq, 0))
        } else {
            None
        };
        for unit in units {
            let Some(seg) = self.segs.get_mut(&unit) else {
                continue;
            };
            if seg.status == SegmentStatus::Have {
                continue;
            }
            match need {
                // The player holds the segments before this one: its real playback deadline
                // replaces the playlist-based default (it may be later, e.g. for a player that
                // sits further behind the edge).
                Some(need) if need > now + pwb + margin => {
                    seg.peer_deadline = Some(need - margin);
                    seg.need_by = Some(need);
                }
                // Startup, seek, or a player about to stall: at most `player_wait_budget`.
                _ => seg.set_deadline(now + pwb, now + pwb + margin),
            }
            seg.wanted = true;
            seg.player_waiting = true;
            if seg.status == SegmentStatus::Failed {
                seg.status = SegmentStatus::Idle;
                seg.origin_attempts = 0;
                seg.peer_attempts = 0;
                seg.marks.clear();
            }
            self.activate(unit);
            self.drive(now, unit);
        }
        self.vod_lookahead(now, seq);
        PlayerOutcome::Waiting
    }

    /// Every unit of segment `seq` we track is held (and we track at least one).
    pub fn holds_segment(&self, seq: u64) -> bool {
        let mut units = self.segs.range(self.cfg.stripes.units(seq)).peekable();
        units.peek().is_some() && units.all(|(_, s)| s.status == SegmentStatus::Have)
    }

    fn vod_lookahead(&mut self, now: Instant, seq: u64) {
        if self.live {
            return;
        }
        let margin = self.margin();
        let mut at = now;
        for s in seq..=seq.saturating_add(self.cfg.vod_lookahead as u64) {
            let units = self.units_of(s);
            if units.is_empty() {
                break;
            }
            at += self.seg_duration(s);
            if s == seq {
                continue;
            }
            for unit in units {
                let Some(seg) = self.segs.get(&unit) else {
                    continue;
                };
                if seg.is_final() || seg.wanted {
                    continue;
                }
                let need = self.player_need_by(unit).unwrap_or(at);
                if let Some(seg) = self.segs.get_mut(&unit) {
                    seg.wanted = true;
                    let deadline = need.checked_sub(margin).unwrap_or(now).max(now);
                    seg.set_deadline(deadline, need);
                }
                self.activate(unit);
                self.drive(now, unit);
            }
        }
    }

    /// The tracker reported the swarm size (`complete + incomplete`, us included).
    pub fn handle_swarm_size(&mut self, now: Instant, size: usize) {
        self.last_now = now;
        self.timer_gen += 1;
        self.swarm_size = Some(size.max(1));
    }

    /// The driver evicted `seq` from its cache; stop announcing and serving it.
    pub fn handle_evicted(&mut self, now: Instant, seq: u64) {
        self.last_now = now;
        self.timer_gen += 1;
        self.forget(seq);
    }

    // ----- inputs: peers ---------------------------------------------------------------------

    /// A data channel to `peer` completed its handshake. Returns `false` if the peer is banned
    /// (the driver closes the channel) or already connected.
    pub fn handle_peer_connected(&mut self, now: Instant, peer: PeerId) -> bool {
        self.last_now = now;
        self.timer_gen += 1;
        if peer == self.me || !self.swarm.connect(peer) {
            return false;
        }
        if let Some((base_seq, bits)) = self.bitfield() {
            self.actions.push_back(Action::SendBitfield {
                peer,
                base_seq,
                bits,
            });
        }
        true
    }

    fn bitfield(&self) -> Option<(u64, BitSet)> {
        let shareable = |s: &Seg| {
            s.status == SegmentStatus::Have && (s.digest.is_some() || self.cfg.allow_unverified)
        };
        let newest = self
            .segs
            .iter()
            .rev()
            .find(|(_, s)| shareable(s))
            .map(|(q, _)| *q)?;
        let base = newest.saturating_sub(HAVE_WINDOW - 1);
        let base = self
            .segs
            .range(base..)
            .find(|(_, s)| shareable(s))
            .map_or(newest, |(q, _)| *q);
        let len = u16::try_from(newest - base + 1).unwrap_or(u16::MAX);
        let mut bits = BitSet::new(len);
        for (q, s) in self.segs.range(base..=newest) {
            if shareable(s) {
                bits.set(u16::try_from(q - base).unwrap_or(u16::MAX));
            }
        }
        Some((base, bits))
    }

    /// The channel to `peer` closed. Its transfers are rescheduled at once.
    pub fn handle_peer_disconnected(&mut self, now: Instant, peer: PeerId) {
        self.last_now = now;
        self.timer_gen += 1;
        if self.swarm.disconnect(&peer).is_none() {
            return;
        }
        self.drop_peer_state(now, peer);
    }

    fn drop_peer_state(&mut self, now: Instant, peer: PeerId) {
        let lost: Vec<Outstanding> = self
            .outstanding
            .iter()
            .filter(|o| o.peer == peer)
            .copied()
            .collect();
        self.outstanding.retain(|o| o.peer != peer);
        self.uploads.retain(|u| u.peer != peer);
        self.refused.retain(|(p, _)| *p != peer);
        for o in &lost {
            self.counters.peer_lost += 1;
            if let Some(seg) = self.segs.get_mut(&o.seq) {
                seg.fetches.retain(|f| {
                    f.from
                        != FetchFrom::Peer {
                            peer,
                            req_id: o.req_id,
                        }
                });
            }
        }
        for o in lost {
            self.drive(now, o.seq);
        }
        self.offer_free_slots(now);
    }

    /// A control message from `peer` (`Have`, `Bitfield`, `Request`, `Cancel`, `Absent`,
    /// `Busy`). `Handshake`, `Keepalive` and `Data` belong to the session and the driver and
    /// are ignored here.
    pub fn handle_peer_message(&mut self, now: Instant, peer: PeerId, msg: &Message) {
        self.last_now = now;
        if self.swarm.get(&peer).is_none() {
            return;
        }
        // Which messages may move a timer: the common ones do not (every neighbour announces
        // every unit, mostly ones we hold; requests and cancels touch only uploads).
        let timers_unchanged = match msg {
            Message::Have { seq, .. } => self.segs.get(seq).is_none_or(|s| {
                s.is_final()
                    || !(s.wanted && s.fetches.is_empty()
                        || s.marks
                            .iter()
                            .any(|(p, m)| *p == peer && matches!(m, Mark::BusyUntil(_))))
            }),
            Message::Request { .. } | Message::Cancel { .. } => true,
            _ => false,
        };
        if !timers_unchanged {
            self.timer_gen += 1;
        }
        match msg {
            Message::Have {
                seq,
                digest,
                partial,
            } => self.on_have(now, peer, *seq, *digest, *partial),
            Message::Bitfield { base_seq, bits } => {
                let seqs: Vec<u64> = bits
                    .iter_set()
                    .map(|i| base_seq.saturating_add(u64::from(i)))
                    .collect();
                if let Some(p) = self.swarm.get_mut(&peer) {
                    for &s in &seqs {
                        p.have.insert(s);
                    }
                }
                for s in seqs {
                    self.on_available(now, s);
                }
            }
            Message::Request {
                req_id,
                seq,
                digest,
            } => self.on_request(now, peer, *req_id, *seq, *digest),
            Message::Cancel { req_id } => {
                let before = self.uploads.len();
                self.uploads
                    .retain(|u| !(u.peer == peer && u.req_id == *req_id));
                if self.uploads.len() != before {
                    if let Some(p) = self.swarm.get_mut(&peer) {
                        p.uploads = p.uploads.saturating_sub(1);
                    }
                    self.actions.push_back(Action::StopServe {
                        peer,
                        req_id: *req_id,
                    });
                    self.offer_free_slots(now);
                }
            }
            Message::Absent { req_id } => {
                if let Some(o) = self.take_outstanding(peer, *req_id) {
                    self.counters.absent_received += 1;
                    self.swarm.record_failure(&peer);
                    if let Some(p) = self.swarm.get_mut(&peer) {
                        p.have.remove(o.seq);
                        p.partial.remove(o.seq);
                    }
                    self.end_peer_fetch(o, Some(Mark::Failed));
                    self.drive(now, o.seq);
                }
            }
            Message::Busy { req_id } => {
                if let Some(o) = self.take_outstanding(peer, *req_id) {
                    self.counters.busy_received += 1;
                    self.swarm.record_busy(&peer);
                    // A refusal for lack of capacity is not a failed attempt: the holder offers
                    // the segment again (a targeted `have`) when a slot frees.
                    if let Some(seg) = self.segs.get_mut(&o.seq) {
                        seg.peer_attempts = seg.peer_attempts.saturating_sub(1);
                    }
                    // Nor is the next holder asked at once, unless the unit's peer deadline
                    // comes within the back-off: the holders of a unit that is spreading are
                    // mostly all busy, so asking them in turn mostly earns more `Busy`
                    // answers, while the refusing holder offers the unit when a slot frees
                    // and a new holder's `have` or the back-off's end drive it again. In the
                    // simulator (1,000 viewers) this removed 5–7 % of all events at the same
                    // or slightly better offload; never asking at once lost up to 0.9 points
                    // at 0.8× upload, where free holders are few and worth finding.
                    let backoff = self.cfg.busy_backoff;
                    self.end_peer_fetch(o, Some(Mark::BusyUntil(now + backoff)));
                    let urgent = self
                        .segs
                        .get(&o.seq)
                        .is_some_and(|s| s.peer_deadline.is_none_or(|d| now + backoff >= d));
                    if urgent {
                        self.drive(now, o.seq);
                    }
                }
            }
            Message::Handshake { .. } | Message::Keepalive | Message::Data { .. } => {}
        }
    }

    fn on_have(
        &mut self,
        now: Instant,
        peer: PeerId,
        seq: u64,
        digest: Option<Digest>,
        partial: bool,
    ) {
        if let Some(seg) = self.segs.get(&seq)
            && seg.digest.is_some()
            && digest != seg.digest
        {
            // Another copy than the origin's: not useful to us.
            return;
        }
        if let Some(p) = self.swarm.get_mut(&peer) {
            if !partial {
                p.have.insert(seq);
                p.partial.remove(seq);
            } else if p.have.contains(seq) {
                return;
            } else {
                p.partial.insert(seq);
            }
        }
        // A fresh announcement lifts an earlier busy mark from this peer. (Units are looked
        // up without `get_mut` first: most announcements are of units we hold, and a mutable
        // access would make `poll_timeout` recompute the unit's timers for nothing.)
        let busy_mark = |(p, m): &(PeerId, Mark)| *p == peer && matches!(m, Mark::BusyUntil(_));
        if self
            .segs
            .get(&seq)
            .is_some_and(|seg| seg.marks.iter().any(busy_mark))
            && let Some(seg) = self.segs.get_mut(&seq)
        {
            seg.marks.retain(|m| !busy_mark(m));
        }
        self.on_available(now, seq);
    }

    fn on_available(&mut self, now: Instant, seq: u64) {
        let Some(seg) = self.segs.get(&seq) else {
            return;
        };
        let drive = seg.wanted && !seg.is_final() && seg.fetches.is_empty();
        if !seg.holder_seen
            && let Some(seg) = self.segs.get_mut(&seq)
        {
            seg.holder_seen = true;
        }
        if drive {
            self.drive(now, seq);
        }
    }

    fn on_request(
        &mut self,
        now: Instant,
        peer: PeerId,
        req_id: u32,
        seq: u64,
        digest: Option<Digest>,
    ) {
        let mut partial = false;
        let holds = self.segs.get(&seq).is_some_and(|s| {
            partial = s.status != SegmentStatus::Have;
            (s.status == SegmentStatus::Have
                || (s.partial_sent && s.status != SegmentStatus::Failed))
                && s.digest == digest
                && (s.digest.is_some() || self.cfg.allow_unverified)
        });
        if !holds {
            self.counters.absent_sent += 1;
            self.actions.push_back(Action::Refuse {
                peer,
                req_id,
                reason: RefuseReason::Absent,
            });
            return;
        }
        let size = self.segs.get(&seq).and_then(|s| s.size).unwrap_or(0);
        let slot_free = self.uploads.len() < self.slots()
            && !self
                .uploads
                .iter()
                .any(|u| u.peer == peer && u.req_id == req_id);
        let budget_ok = slot_free && self.bucket.as_mut().is_none_or(|b| b.try_take(now, size));
        if !budget_ok {
            self.counters.busy_sent += 1;
            self.actions.push_back(Action::Refuse {
                peer,
                req_id,
                reason: RefuseReason::Busy,
            });
            if !self.refused.iter().any(|(p, s)| *p == peer && *s == seq) {
                if self.refused.len() >= self.cfg.max_refused {
                    self.refused.pop_front();
                }
                self.refused.push_back((peer, seq));
            }
            return;
        }
        self.uploads.push(Upload {
            peer,
            req_id,
            started: now,
            partial,
        });
        if let Some(p) = self.swarm.get_mut(&peer) {
            p.uploads += 1;
        }
        self.refused.retain(|(p, s)| !(*p == peer && *s == seq));
        self.counters.uploads += 1;
        if partial {
            self.counters.uploads_partial += 1;
        }
        self.actions
            .push_back(Action::ServePeer { peer, req_id, seq });
    }

    /// The upload of `req_id` to `peer` finished (all chunks handed to the channel) or failed.
    pub fn handle_upload_done(&mut self, now: Instant, peer: PeerId, req_id: u32, bytes_sent: u64) {
        // Uploads move no timer (no `timer_gen` bump).
        self.last_now = now;
        let running = self.uploads.len();
        let Some(i) = self
            .uploads
            .iter()
            .position(|u| u.peer == peer && u.req_id == req_id)
        else {
            return;
        };
        let up = self.uploads.swap_remove(i);
        let secs = now.saturating_duration_since(up.started).as_secs_f64();
        if !up.partial && bytes_sent >= UPLOAD_SAMPLE_MIN_BYTES && secs >= 0.01 {
            // The uplink was shared by the uploads running meanwhile (about `running`).
            let sample = bytes_sent as f64 / secs * running as f64;
            self.upload_rate = Some(ewma(self.upload_rate, sample, self.cfg.weights.ewma_alpha));
        }
        self.counters.uploads_done += 1;
        self.counters.uploaded_bytes += bytes_sent;
        if let Some(p) = self.swarm.get_mut(&peer) {
            p.uploads = p.uploads.saturating_sub(1);
            p.bytes_to += bytes_sent;
        }
        self.offer_free_slots(now);
    }

    fn offer_free_slots(&mut self, now: Instant) {
        // Offer to a few refused peers per free slot: some of them found another holder
        // meanwhile and will not ask again, and an unused slot is wasted upload. The newest
        // segment goes first (see the module docs, "Upload").
        let mut free = self.slots().saturating_sub(self.uploads.len()) * OFFER_FANOUT;
        if let Some(b) = self.bucket.as_mut()
            && b.balance(now) <= 0.0
        {
            free = 0;
        }
        while free > 0 {
            // Newest segment first (the earliest refusal among equals): it has the fewest
            // holders, and every copy of it made now can be relayed for longest. By segment,
            // not unit id: a segment's units share its deadline.
            let st = self.cfg.stripes;
            let newest = self
                .refused
                .iter()
                .enumerate()
                .max_by_key(|&(i, &(_, seq))| (st.seq_of(seq), std::cmp::Reverse(i)))
                .map(|(i, _)| i);
            let Some((peer, seq)) = newest.and_then(|i| self.refused.remove(i)) else {
                break;
            };
            let Some(seg) = self.segs.get(&seq) else {
                continue;
            };
            let Some(p) = self.swarm.get(&peer) else {
                continue;
            };
            let partial = seg.status != SegmentStatus::Have;
            if (partial && (!seg.partial_sent || seg.status == SegmentStatus::Failed))
                || p.have.contains(seq)
            {
                continue;
            }
            self.actions.push_back(Action::OfferHave {
                peer,
                seq,
                digest: seg.digest,
                partial,
            });
            free -= 1;
        }
    }

    /// Bytes of request `req_id` from `peer` arrived: `received` of `total` so far.
    pub fn handle_transfer_progress(
        &mut self,
        now: Instant,
        peer: PeerId,
        req_id: u32,
        received: u64,
        total: u64,
    ) {
        self.last_now = now;
        self.timer_gen += 1;
        let Some(o) = self
            .outstanding
            .iter()
            .find(|o| o.peer == peer && o.req_id == req_id)
            .copied()
        else {
            return;
        };
        if let Some(seg) = self.segs.get_mut(&o.seq)
            && let Some(f) = seg
                .fetches
                .iter_mut()
                .find(|f| f.from == FetchFrom::Peer { peer, req_id })
        {
            if received > f.received {
                f.received = received;
                f.last_progress = now;
                if f.first_progress.is_none() {
                    f.first_progress = Some((now, received));
                }
            }
            f.total = Some(total);
        }
        self.drive(now, o.seq);
    }

    /// We hold at least one verified chunk of `seq` (a peer transfer of a chunked segment is
    /// under way). The first call announces a partial `have`; see the module docs, "Cut-through".
    pub fn handle_partial_verified(&mut self, now: Instant, seq: u64) {
        self.last_now = now;
        self.timer_gen += 1;
        if !self.cfg.cut_through {
            return;
        }
        let Some(seg) = self.segs.get_mut(&seq) else {
            return;
        };
        if seg.partial_sent
            || seg.status != SegmentStatus::Fetching
            || seg.chunk_size.is_none()
            || seg.digest.is_none()
        {
            return;
        }
        seg.partial_sent = true;
        self.counters.partial_haves += 1;
        self.actions.push_back(Action::SendHave {
            seq,
            digest: seg.digest,
            partial: true,
        });
    }

    /// Request `req_id` from `peer` completed; `verified` = its SHA-256 matched the digest (or
    /// the stream runs without integrity). An unverified body bans the peer.
    pub fn handle_transfer_complete(
        &mut self,
        now: Instant,
        peer: PeerId,
        req_id: u32,
        bytes: u64,
        verified: bool,
    ) {
        self.last_now = now;
        self.timer_gen += 1;
        let Some(o) = self.take_outstanding(peer, req_id) else {
            return;
        };
        if !verified {
            self.counters.integrity_failures += 1;
            self.end_peer_fetch(o, Some(Mark::Failed));
            self.ban(now, peer);
            self.drive(now, o.seq);
            return;
        }
        let started = self.segs.get(&o.seq).and_then(|s| {
            s.fetches
                .iter()
                .find(|f| f.from == FetchFrom::Peer { peer, req_id })
                .map(|f| f.started)
        });
        if let Some(started) = started {
            let secs = now.saturating_duration_since(started).as_secs_f64();
            self.swarm
                .record_success(&peer, bytes, secs, &self.cfg.weights);
        }
        self.end_peer_fetch(o, None);
        self.counters.peer_fetches += 1;
        self.counters.peer_bytes += bytes;
        self.finish(now, o.seq, bytes, Source::Peer);
    }

    fn ban(&mut self, now: Instant, peer: PeerId) {
        if self.swarm.is_banned(&peer) {
            return;
        }
        self.counters.bans += 1;
        self.swarm.ban(peer);
        self.actions.push_back(Action::Ban { peer });
        self.drop_peer_state(now, peer);
    }

    /// The origin fetch of `seq` ended: `Ok(size)` with a complete body (Content-Length checked,
    /// digest verified when there is one), or a classified failure.
    pub fn handle_origin_result(
        &mut self,
        now: Instant,
        seq: u64,
        result: Result<u64, OriginFailure>,
    ) {
        self.last_now = now;
        self.timer_gen += 1;
        let Some(seg) = self.segs.get_mut(&seq) else {
            return;
        };
        let started = seg
            .fetches
            .iter()
            .find(|f| f.from == FetchFrom::Origin)
            .map(|f| f.started);
        let had = started.is_some();
        let before = seg.fetches.len();
        seg.fetches.retain(|f| f.from != FetchFrom::Origin);
        self.origin_running -= before - seg.fetches.len();
        match result {
            Ok(size) => {
                self.counters.origin_bytes += size;
                if let Some(t) = started {
                    let secs = now.saturating_duration_since(t).as_secs_f64();
                    self.origin_ewma =
                        Some(ewma(self.origin_ewma, secs, self.cfg.weights.ewma_alpha));
                }
                let seg = match self.segs.get_mut(&seq) {
                    Some(seg) => seg,
                    None => return,
                };
                if had && !seg.is_final() {
                    self.finish(now, seq, size, Source::Origin);
                }
            }
            Err(fail) => {
                if !had || seg.is_final() {
                    return;
                }
                self.counters.origin_failures += 1;
                if fail.retryable && seg.origin_attempts <= self.cfg.origin_retries {
                    seg.origin_retry_at = Some(now + self.cfg.origin_retry_backoff);
                    return;
                }
                let holders = self.swarm.peers().iter().any(|p| holds(p, seq));
                if holders && seg.peer_attempts < self.cfg.max_peer_attempts {
                    // Let peers try: clear the deadline-driven origin preference.
                    seg.elected = false;
                    seg.peer_deadline = None;
                    self.drive(now, seq);
                    return;
                }
                if seg.fetches.is_empty() {
                    seg.status = SegmentStatus::Failed;
                    seg.player_waiting = false;
                    self.deactivate(seq);
                    self.counters.failed += 1;
                    self.actions.push_back(Action::Failed {
                        seq,
                        reason: FailReason::Origin,
                    });
                }
            }
        }
    }

    // ----- internals -------------------------------------------------------------------------

    fn take_outstanding(&mut self, peer: PeerId, req_id: u32) -> Option<Outstanding> {
        let i = self
            .outstanding
            .iter()
            .position(|o| o.peer == peer && o.req_id == req_id)?;
        Some(self.outstanding.swap_remove(i))
    }

    fn end_peer_fetch(&mut self, o: Outstanding, mark: Option<Mark>) {
        if let Some(p) = self.swarm.get_mut(&o.peer) {
            p.in_flight = p.in_flight.saturating_sub(1);
        }
        if let Some(seg) = self.segs.get_mut(&o.seq) {
            seg.fetches.retain(|f| {
                f.from
                    != FetchFrom::Peer {
                        peer: o.peer,
                        req_id: o.req_id,
                    }
            });
            if let Some(m) = mark {
                seg.marks.retain(|(p, _)| *p != o.peer);
                seg.marks.push((o.peer, m));
            }
            if seg.fetches.is_empty() && seg.status == SegmentStatus::Fetching {
                seg.status = SegmentStatus::Idle;
            }
        }
    }

    fn finish(&mut self, now: Instant, seq: u64, size: u64, source: Source) {
        let Some(seg) = self.segs.get_mut(&seq) else {
            return;
        };
        let secs = seg.duration.as_secs_f64();
        if size > 0 && secs > 0.0 {
            self.stream_rate = Some(ewma(
                self.stream_rate,
                size as f64 / secs,
                self.cfg.weights.ewma_alpha,
            ));
        }
        seg.status = SegmentStatus::Have;
        seg.source = Some(source);
        seg.size = Some(size);
        let losers: Vec<Fetch> = std::mem::take(&mut seg.fetches);
        self.origin_running -= losers
            .iter()
            .filter(|f| f.from == FetchFrom::Origin)
            .count();
        if seg.tail.take().is_some() {
            self.actions.push_back(Action::CancelOrigin { seq });
        }
        let shareable = seg.digest.is_some() || self.cfg.allow_unverified;
        let digest = seg.digest;
        let was_waiting = std::mem::replace(&mut seg.player_waiting, false);
        // A close call (a peer delivery within the slack of the deadline) leaves ρ as it is.
        let slack = Duration::try_from_secs_f64(
            self.target_duration.as_secs_f64() * self.cfg.seed_fraction_slack,
        )
        .unwrap_or(Duration::MAX);
        let adapt = self.live
            && seg.is_new
            && !seg.elected
            && source == Source::Peer
            && seg
                .peer_deadline
                .is_none_or(|d| now.checked_add(slack).is_some_and(|t| t <= d));
        seg.marks.clear();
        self.deactivate(seq);
        for f in losers {
            self.counters.cancelled += 1;
            match f.from {
                FetchFrom::Origin => self.actions.push_back(Action::CancelOrigin { seq }),
                FetchFrom::Peer { peer, req_id } => {
                    if let Some(o) = self.take_outstanding(peer, req_id)
                        && let Some(p) = self.swarm.get_mut(&o.peer)
                    {
                        p.in_flight = p.in_flight.saturating_sub(1);
                    }
                    self.actions.push_back(Action::CancelPeer { peer, req_id });
                }
            }
        }
        if shareable {
            self.actions.push_back(Action::SendHave {
                seq,
                digest,
                partial: false,
            });
        }
        if adapt {
            self.rho =
                adapt_seed_fraction(self.rho, SeedOutcome::FromPeer, &self.cfg.seed_control());
        }
        let whole = self.cfg.stripes.seq_of(seq);
        if self.player.pending == Some(whole) && self.holds_segment(whole) {
            self.player.anchor = Some((whole, now));
            self.player.pending = None;
            self.retarget_ahead(now);
        } else if was_waiting
            && let Some(need) = self.player_need_by(seq)
            && now > need
            && let Some((a_seq, a_t)) = self.player.anchor
        {
            // The player stalled for about `now - need`: its playhead moved back by that much.
            self.player.anchor = Some((a_seq, a_t + (now - need)));
            self.retarget_ahead(now);
        }
    }

    fn forget(&mut self, seq: u64) {
        let Some(seg) = self.segs.remove(&seq) else {
            return;
        };
        self.origin_running -= seg
            .fetches
            .iter()
            .filter(|f| f.from == FetchFrom::Origin)
            .count();
        self.deactivate(seq);
        if seg.tail.is_some() {
            self.actions.push_back(Action::CancelOrigin { seq });
        }
        for f in seg.fetches {
            match f.from {
                FetchFrom::Origin => self.actions.push_back(Action::CancelOrigin { seq }),
                FetchFrom::Peer { peer, req_id } => {
                    if let Some(o) = self.take_outstanding(peer, req_id)
                        && let Some(p) = self.swarm.get_mut(&o.peer)
                    {
                        p.in_flight = p.in_flight.saturating_sub(1);
                    }
                    self.actions.push_back(Action::CancelPeer { peer, req_id });
                }
            }
        }
        if seg.player_waiting {
            self.counters.failed += 1;
            self.actions.push_back(Action::Failed {
                seq,
                reason: FailReason::Origin,
            });
        }
        self.refused.retain(|(_, s)| *s != seq);
    }

    fn start_origin(&mut self, now: Instant, seq: u64, reason: OriginReason) {
        let Some(seg) = self.segs.get_mut(&seq) else {
            return;
        };
        self.origin_running += 1;
        seg.fetches.push(Fetch {
            from: FetchFrom::Origin,
            started: now,
            last_progress: now,
            received: 0,
            total: seg.size,
            first_progress: None,
            until: None,
        });
        seg.status = SegmentStatus::Fetching;
        seg.origin_attempts += 1;
        seg.origin_retry_at = None;
        let adapt = self.live
            && seg.is_new
            && !seg.elected
            && seg.origin_attempts == 1
            && matches!(reason, OriginReason::Fallback | OriginReason::Hedge);
        if adapt {
            let outcome = if seg.holder_seen {
                SeedOutcome::ScarcityFallback
            } else {
                SeedOutcome::NoHolderFallback
            };
            self.rho = adapt_seed_fraction(self.rho, outcome, &self.cfg.seed_control());
        }
        let c = &mut self.counters;
        c.origin_fetches += 1;
        match reason {
            OriginReason::Elected => c.origin_elected += 1,
            OriginReason::Fallback => c.origin_fallbacks += 1,
            OriginReason::Hedge => c.origin_hedges += 1,
            OriginReason::Unverified => c.origin_unverified += 1,
            OriginReason::NoPeers => c.origin_no_peers += 1,
            OriginReason::Backstop => c.origin_backstops += 1,
            OriginReason::Retry | OriginReason::Tail => {}
        }
        self.actions.push_back(Action::FetchOrigin { seq, reason });
    }

    fn request_peer(&mut self, now: Instant, seq: u64, peer: PeerId, hedge: bool) {
        let Some(seg) = self.segs.get_mut(&seq) else {
            return;
        };
        let req_id = self.next_req_id;
        self.next_req_id = self.next_req_id.wrapping_add(1).max(1);
        seg.fetches.push(Fetch {
            from: FetchFrom::Peer { peer, req_id },
            started: now,
            last_progress: now,
            received: 0,
            total: seg.size,
            first_progress: None,
            until: None,
        });
        seg.status = SegmentStatus::Fetching;
        seg.peer_attempts += 1;
        let digest = seg.digest;
        self.outstanding.push(Outstanding { req_id, peer, seq });
        if let Some(p) = self.swarm.get_mut(&peer) {
            p.in_flight += 1;
        }
        self.counters.peer_requests += 1;
        if hedge {
            self.counters.peer_hedges += 1;
        }
        self.actions.push_back(Action::RequestPeer {
            peer,
            req_id,
            seq,
            digest,
        });
    }

    /// Best holder of `seq` we may ask now: complete holders first, then partial ones.
    fn pick_holder(&self, now: Instant, seq: u64) -> Option<PeerId> {
        let seg = self.segs.get(&seq)?;
        let mut cands: Vec<(PeerId, PeerStats)> = Vec::new();
        let mut partials: Vec<(PeerId, PeerStats)> = Vec::new();
        for p in self.swarm.peers() {
            let whole = p.have.contains(seq);
            if !(whole || p.partial.contains(seq)) || p.in_flight >= self.cfg.max_requests_per_peer
            {
                continue;
            }
            let marked = seg.marks.iter().any(|(id, m)| {
                *id == p.id
                    && match m {
                        Mark::Failed => true,
                        Mark::BusyUntil(t) => *t > now,
                    }
            });
            let fetching = seg
                .fetches
                .iter()
                .any(|f| matches!(f.from, FetchFrom::Peer { peer, .. } if peer == p.id));
            if marked || fetching {
                continue;
            }
            if whole {
                cands.push((p.id, p.stats()));
            } else {
                partials.push((p.id, p.stats()));
            }
        }
        if cands.is_empty() {
            cands = partials;
        }
        let key = mix64(seq ^ rendezvous_score(seq, &self.me));
        choose_peer(&cands, key, &self.cfg.weights).and_then(|i| cands.get(i).map(|c| c.0))
    }

    fn fetch_stalled(&self, f: &Fetch, now: Instant) -> bool {
        !f.head_done() && now >= f.last_progress + self.cfg.stall_timeout
    }

    fn fetch_late(&self, f: &Fetch, need_by: Option<Instant>) -> bool {
        let (Some(need), Some(total)) = (need_by, f.total) else {
            return false;
        };
        if f.head_done() {
            return false;
        }
        let Some(rate) = Self::fetch_rate(f) else {
            return false;
        };
        // Keep half the origin margin as slack for projection error: a transfer that would end
        // in the last half margin before the need-by time is already too risky to wait for.
        // A head whose tail comes from the origin must be in before the whole margin.
        let (target, keep) = match f.until {
            Some(u) => (u.min(total), self.margin()),
            None => (total, self.margin() / 2),
        };
        let limit = need.checked_sub(keep).unwrap_or(need);
        projected_completion(f.last_progress, target.saturating_sub(f.received), rate)
            .is_none_or(|end| end > limit)
    }

    /// Rate of a transfer measured from its first progress report (`None` until it has been
    /// moving for [`LATE_MIN_WINDOW`]).
    fn fetch_rate(f: &Fetch) -> Option<f64> {
        let (t0, r0) = f.first_progress?;
        let elapsed = f.last_progress.saturating_duration_since(t0).as_secs_f64();
        if elapsed < LATE_MIN_WINDOW || f.received <= r0 {
            return None;
        }
        Some((f.received - r0) as f64 / elapsed)
    }

    /// Where to split a late peer transfer of `seq`: the bytes it should still deliver before
    /// the origin margin, from its measured rate, if that is worth an origin tail (at least an
    /// eighth of the segment, and not all of it).
    fn tail_split(&self, now: Instant, seg: &Seg) -> Option<u64> {
        let (chunk, f, total) = self.tail_candidate(seg)?;
        let rate = Self::fetch_rate(f)?;
        let by = seg.need_by?.checked_sub(self.margin())?;
        let budget = by.checked_duration_since(now)?.as_secs_f64();
        // Aim a little short of the projection so the head is not late again, and start the
        // tail at a chunk boundary (the head is joined in whole verified chunks).
        let from = (f.received + (0.9 * rate * budget) as u64) / chunk * chunk;
        (from > 0 && from >= f.received + total / 8 && from < total).then_some(from)
    }

    /// The one peer transfer of `seg` an origin tail could complete, with the chunk size and
    /// the unit's length; `None` when tails are off or do not apply.
    fn tail_candidate<'s>(&self, seg: &'s Seg) -> Option<(u64, &'s Fetch, u64)> {
        let chunk = u64::from(seg.chunk_size?).max(1);
        if !self.cfg.origin_tails
            || seg.tail.is_some()
            || seg.tail_failed
            || self.tail_failures_in_row >= TAIL_FAILURES_OFF
        {
            return None;
        }
        let [f] = seg.fetches.as_slice() else {
            return None;
        };
        if !matches!(f.from, FetchFrom::Peer { .. }) {
            return None;
        }
        Some((chunk, f, f.total?))
    }

    /// Where the origin takes over a transfer that stopped short past the deadline: right after
    /// its verified head (the whole chunks received). `None` under one chunk.
    fn head_split(&self, seg: &Seg) -> Option<u64> {
        let (chunk, f, total) = self.tail_candidate(seg)?;
        let from = f.received / chunk * chunk;
        (from > 0 && from < total).then_some(from)
    }

    /// Keeps the late head transfer of `seq` and asks the origin for bytes `from..`.
    fn start_tail(&mut self, seq: u64, from: u64) {
        let Some(seg) = self.segs.get_mut(&seq) else {
            return;
        };
        let Some(f) = seg.fetches.first_mut() else {
            return;
        };
        let FetchFrom::Peer { peer, req_id } = f.from else {
            return;
        };
        f.until = Some(from);
        seg.tail = Some(Tail { peer, req_id });
        // Counted like a late hedge: seeding more is what makes transfers start earlier.
        let adapt = self.live && seg.is_new && !seg.elected && seg.origin_attempts == 0;
        if adapt {
            self.rho = adapt_seed_fraction(
                self.rho,
                SeedOutcome::ScarcityFallback,
                &self.cfg.seed_control(),
            );
        }
        self.counters.origin_fetches += 1;
        self.counters.origin_tails += 1;
        self.actions
            .push_back(Action::FetchOriginTail { seq, from });
    }

    /// Ends the origin tail of `seq` (if any) and lets its head transfer run to the end again.
    fn drop_tail(&mut self, seq: u64) {
        let Some(seg) = self.segs.get_mut(&seq) else {
            return;
        };
        if seg.tail.take().is_some() {
            for f in &mut seg.fetches {
                f.until = None;
            }
            self.actions.push_back(Action::CancelOrigin { seq });
        }
    }

    /// The origin tail of `seq` and its peer head are in, joined and verified whole (`size`
    /// bytes, of which `tail_bytes` from the origin).
    pub fn handle_tail_complete(&mut self, now: Instant, seq: u64, size: u64, tail_bytes: u64) {
        self.last_now = now;
        self.timer_gen += 1;
        let Some(seg) = self.segs.get_mut(&seq) else {
            return;
        };
        let Some(tail) = seg.tail.take() else {
            return;
        };
        if seg.is_final() {
            return;
        }
        self.tail_failures_in_row = 0;
        let head = size.saturating_sub(tail_bytes);
        let started = seg
            .fetches
            .iter()
            .find(|f| {
                f.from
                    == FetchFrom::Peer {
                        peer: tail.peer,
                        req_id: tail.req_id,
                    }
            })
            .map(|f| f.started);
        if let Some(started) = started {
            let secs = now.saturating_duration_since(started).as_secs_f64();
            self.swarm
                .record_success(&tail.peer, head, secs, &self.cfg.weights);
        }
        self.counters.origin_tails_done += 1;
        self.counters.origin_bytes += tail_bytes;
        self.counters.peer_bytes += head;
        // The head transfer is one of the fetches `finish` cancels (its peer may still be
        // sending the rest).
        self.finish(now, seq, size, Source::Peer);
    }

    /// The origin tail of `seq` failed, or the joined copy did not match the segment digest:
    /// its head transfer runs to the end again and the usual rules (whole-segment origin
    /// hedge) apply. After a few failures in a row no more tails are asked for.
    pub fn handle_tail_failed(&mut self, now: Instant, seq: u64) {
        self.last_now = now;
        self.timer_gen += 1;
        let Some(seg) = self.segs.get_mut(&seq) else {
            return;
        };
        if seg.tail.is_none() {
            return;
        }
        seg.tail_failed = true;
        self.counters.origin_tails_failed += 1;
        self.counters.origin_failures += 1;
        self.tail_failures_in_row += 1;
        self.drop_tail(seq);
        self.drive(now, seq);
    }

    /// Decides the next step for one segment. Idempotent: calling it twice in a row is harmless.
    fn drive(&mut self, now: Instant, seq: u64) {
        let Some(seg) = self.segs.get(&seq) else {
            return;
        };
        if seg.is_final() || !seg.wanted || seg.has_origin_fetch() {
            return;
        }
        if let Some(t) = seg.origin_retry_at {
            if now >= t {
                self.start_origin(now, seq, OriginReason::Retry);
            }
            return;
        }
        let shareable = seg.digest.is_some() || self.cfg.allow_unverified;
        if !shareable {
            self.start_origin(now, seq, OriginReason::Unverified);
            return;
        }
        if seg.elected && seg.origin_attempts == 0 {
            self.start_origin(now, seq, OriginReason::Elected);
            return;
        }
        if let Some(tail) = seg.tail {
            // An origin tail is running: its head must stay healthy, else the origin sends
            // the whole segment.
            let need_by = seg.need_by;
            let head = seg.fetches.iter().find(|f| {
                f.from
                    == FetchFrom::Peer {
                        peer: tail.peer,
                        req_id: tail.req_id,
                    }
            });
            let healthy = head.is_some_and(|f| {
                f.head_done() || (!self.fetch_stalled(f, now) && !self.fetch_late(f, need_by))
            });
            if healthy {
                return;
            }
            self.drop_tail(seq);
            if let Some(o) = self.take_outstanding(tail.peer, tail.req_id) {
                self.end_peer_fetch(o, Some(Mark::Failed));
                self.counters.cancelled += 1;
                self.actions.push_back(Action::CancelPeer {
                    peer: o.peer,
                    req_id: o.req_id,
                });
            }
            self.start_origin(now, seq, OriginReason::Hedge);
            return;
        }
        let past_deadline = self.past_deadline(seg, now);
        if seg.fetches.is_empty() {
            let exhausted = seg.peer_attempts >= self.cfg.max_peer_attempts;
            // Past the deadline a holder is still asked while the measured origin fetch time
            // (not the configured margin) fits before the need-by time, and for no longer
            // than that time past the deadline. Then only the origin: busy holders would
            // otherwise be tried in turn (a `Busy` is not an attempt) until the player stalls.
            let too_late = past_deadline && {
                let origin = self.origin_time().unwrap_or(self.cfg.origin_safety_margin);
                seg.need_by.is_none_or(|n| now + origin >= n)
                    || seg.peer_deadline.is_some_and(|d| now >= d + origin)
            };
            if !exhausted
                && !too_late
                && let Some(peer) = self.pick_holder(now, seq)
            {
                self.request_peer(now, seq, peer, false);
                return;
            }
            let holder_known = self.swarm.peers().iter().any(|p| holds(p, seq));
            if !holder_known
                && !past_deadline
                && seg.origin_attempts == 0
                && seg.backstop_at.is_some_and(|t| now >= t)
            {
                self.start_origin(now, seq, OriginReason::Backstop);
                return;
            }
            let nobody_will_have =
                seg.player_waiting && !seg.is_new && !holder_known && !self.swarm.is_empty();
            if past_deadline || exhausted || nobody_will_have {
                let reason = if past_deadline || exhausted {
                    OriginReason::Fallback
                } else {
                    OriginReason::NoPeers
                };
                self.start_origin(now, seq, reason);
            }
            return;
        }
        let need_by = seg.need_by;
        let any_late = seg.fetches.iter().any(|f| self.fetch_late(f, need_by));
        let on_time = seg
            .fetches
            .iter()
            .any(|f| !self.fetch_stalled(f, now) && !self.fetch_late(f, need_by));
        if on_time {
            return;
        }
        // No transfer is on time. A stalled one (no bytes for `stall_timeout`) is hedged to
        // another holder while the deadline allows; one that is moving but projected to finish
        // after the need-by time goes to the origin (another peer would not be faster on
        // average, and the origin fetch needs the remaining time).
        if !any_late
            && !past_deadline
            && seg.fetches.len() < self.cfg.max_parallel
            && let Some(peer) = self.pick_holder(now, seq)
        {
            self.counters.peer_stalls += 1;
            self.request_peer(now, seq, peer, true);
            return;
        }
        if any_late && let Some(from) = self.tail_split(now, seg) {
            self.start_tail(seq, from);
            return;
        }
        // Past the deadline no other holder is asked: a transfer that stopped short keeps what
        // it verified, and the origin sends the rest rather than the whole unit.
        if past_deadline && let Some(from) = self.head_split(seg) {
            self.start_tail(seq, from);
            return;
        }
        if past_deadline || any_late {
            if !any_late {
                self.counters.peer_stalls += 1;
            }
            // Transfers that cannot make it are cancelled at once (the holder's upload is better
            // spent on someone who can still make it), and their measured rate is remembered so
            // the slow holder is not picked first next time.
            let late: Vec<(Outstanding, f64)> = self
                .segs
                .get(&seq)
                .map(|seg| {
                    seg.fetches
                        .iter()
                        .filter(|f| self.fetch_late(f, need_by))
                        .filter_map(|f| match f.from {
                            FetchFrom::Peer { peer, req_id } => {
                                let secs = f
                                    .last_progress
                                    .saturating_duration_since(f.started)
                                    .as_secs_f64();
                                let rate = if secs > 0.0 {
                                    f.received as f64 / secs
                                } else {
                                    0.0
                                };
                                Some((Outstanding { req_id, peer, seq }, rate))
                            }
                            FetchFrom::Origin => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            for (o, rate) in late {
                if rate > 0.0 {
                    self.swarm.record_rate(&o.peer, rate, &self.cfg.weights);
                }
                if let Some(o) = self.take_outstanding(o.peer, o.req_id) {
                    self.end_peer_fetch(o, Some(Mark::Failed));
                    self.counters.cancelled += 1;
                    self.actions.push_back(Action::CancelPeer {
                        peer: o.peer,
                        req_id: o.req_id,
                    });
                }
            }
            // A holder expected to deliver in time (measured throughput, or the prior for a peer
            // we never downloaded from) replaces a late one while the deadline allows; else the
            // origin.
            if any_late
                && !past_deadline
                && let Some(peer) = self.pick_holder(now, seq)
            {
                let size = self.segs.get(&seq).and_then(|s| s.size);
                let tput = self
                    .swarm
                    .get(&peer)
                    .and_then(|e| e.throughput)
                    .unwrap_or(self.cfg.weights.unknown_throughput);
                // In time with the origin margin to spare, so a second disappointment can
                // still fall back to the origin.
                let by = need_by.and_then(|n| n.checked_sub(self.margin()));
                let in_time = match (size, by) {
                    (Some(size), Some(by)) => {
                        projected_completion(now, size, tput).is_some_and(|end| end <= by)
                    }
                    _ => false,
                };
                if in_time {
                    self.request_peer(now, seq, peer, true);
                    return;
                }
            }
            self.start_origin(now, seq, OriginReason::Hedge);
        }
    }

    /// Calls `consider` with every time at which `drive` has something to decide for this
    /// segment (deadlines, stall checks, busy back-offs, the backstop), whether past or not.
    /// `None` when nothing is pending; `Some(t)` with a retry time that overrides the rest.
    fn wake_times(
        &self,
        seg: &Seg,
        margin_now: Duration,
        mut consider: impl FnMut(Instant),
    ) -> Option<Option<Instant>> {
        if seg.is_final() || !seg.wanted || seg.has_origin_fetch() {
            return None;
        }
        if let Some(t) = seg.origin_retry_at {
            return Some(Some(t));
        }
        if seg.fetches.is_empty() {
            if seg.origin_attempts == 0
                && let Some(b) = seg.backstop_at
            {
                consider(b);
            }
            for (_, m) in &seg.marks {
                if let Mark::BusyUntil(t) = m {
                    consider(*t);
                }
            }
        } else {
            for f in seg.fetches.iter().filter(|f| !f.head_done()) {
                consider(f.last_progress + self.cfg.stall_timeout);
            }
        }
        if let Some(d) = seg.peer_deadline {
            consider(d);
        }
        if let Some(n) = seg.need_by {
            consider(n.checked_sub(margin_now).unwrap_or(n));
        }
        Some(None)
    }

    /// Next time `drive` has something to decide for this segment, even if already past.
    fn wake_raw(&self, seg: &Seg, margin_now: Duration) -> Option<Instant> {
        let mut best: Option<Instant> = None;
        let retry = self.wake_times(seg, margin_now, |t| {
            best = Some(best.map_or(t, |b| b.min(t)))
        })?;
        retry.or(best)
    }

    /// Like `wake_raw` but never in the past relative to the latest input, so drivers do not spin
    /// on a condition `drive` already handled (e.g. a passed deadline with a healthy transfer).
    fn wake(&self, seg: &Seg, margin_now: Duration) -> Option<Instant> {
        let mut best: Option<Instant> = None;
        let retry = self.wake_times(seg, margin_now, |t| {
            if t > self.last_now {
                best = Some(best.map_or(t, |b| b.min(t)));
            }
        })?;
        match retry {
            Some(t) => Some(t.max(self.last_now)),
            None => best,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TD: Duration = Duration::from_secs(4);

    fn pid(i: u8) -> PeerId {
        let mut b = [b'0' + i; 20];
        b[..8].copy_from_slice(b"-HC0001-");
        PeerId(b)
    }

    fn dig(seq: u64) -> Option<Digest> {
        Some(Digest([seq as u8; 32]))
    }

    fn infos(range: std::ops::RangeInclusive<u64>) -> Vec<SegmentInfo> {
        range
            .map(|seq| SegmentInfo {
                seq,
                digest: dig(seq),
                duration: TD,
                size_hint: Some(1_000_000),
                chunk_size: None,
            })
            .collect()
    }

    fn live(s: &mut Scheduler, now: Instant, range: std::ops::RangeInclusive<u64>) {
        live_with(s, now, range, None);
    }

    /// `Units` answers like the ordered map it replaced, for windows that slide (the usual
    /// case, found at their offset) and for ids that arrive out of order or with gaps (found
    /// by search), with every kind of range.
    #[test]
    fn units_behave_like_an_ordered_map() {
        use std::collections::BTreeMap;
        use std::ops::Bound;
        let info = |seq: u64| SegmentInfo {
            seq,
            digest: dig(seq),
            duration: Duration::from_millis(seq),
            size_hint: None,
            chunk_size: None,
        };
        let mut units = Units::default();
        let mut model: BTreeMap<u64, Duration> = BTreeMap::new();
        let mut active = std::collections::BTreeSet::new();
        let mut x = 7u64;
        let mut next = 1_000u64;
        for step in 0..20_000 {
            x = crate::core::policy::mix64(x);
            let seq = match x % 10 {
                // Mostly the next id of a sliding window...
                0..=5 => {
                    next += 1 + (x >> 20) % 2;
                    next
                }
                // ...some anywhere near it, some far off.
                6..=8 => next.saturating_sub((x >> 8) % 64),
                _ => (x >> 8) % 5_000,
            };
            if (x >> 40).is_multiple_of(3) || model.len() > 60 {
                // Forget the oldest now and then, or a random one.
                let victim = if (x >> 44).is_multiple_of(2) {
                    model.keys().next().copied()
                } else {
                    Some(seq)
                };
                if let Some(v) = victim {
                    assert_eq!(
                        units.remove(&v).map(|g| g.duration),
                        model.remove(&v),
                        "remove {v} at step {step}"
                    );
                    active.remove(&v);
                }
            } else if (x >> 50).is_multiple_of(4) {
                // Timers on or off, for a unit that may or may not be tracked.
                let on = (x >> 54).is_multiple_of(2);
                units.set_active(seq, on);
                if on && model.contains_key(&seq) {
                    active.insert(seq);
                } else {
                    active.remove(&seq);
                }
            } else {
                // A new unit, or a replaced one (which keeps its timers flag).
                units.insert(seq, Seg::new(&info(seq)));
                model.insert(seq, Duration::from_millis(seq));
            }
            assert_eq!(units.len(), model.len());
            let with_timers: Vec<u64> = units.active_range(..).map(|(k, _)| k).collect();
            assert_eq!(with_timers, active.iter().copied().collect::<Vec<_>>());
            let above: Vec<u64> = units.active_range(seq..).map(|(k, _)| k).collect();
            assert_eq!(above, active.range(seq..).copied().collect::<Vec<_>>());
            for probe in [seq, seq + 1, seq.saturating_sub(1), next, 0] {
                assert_eq!(units.get_active(probe).is_some(), active.contains(&probe));
                assert_eq!(units.contains_key(&probe), model.contains_key(&probe));
                assert_eq!(
                    units.get(&probe).map(|g| g.duration),
                    model.get(&probe).copied()
                );
            }
            let lo = seq.saturating_sub(5);
            let bounds = [
                (Bound::Included(lo), Bound::Excluded(seq + 5)),
                (Bound::Excluded(lo), Bound::Included(seq + 5)),
                (Bound::Unbounded, Bound::Excluded(seq)),
                (Bound::Included(seq), Bound::Unbounded),
                (Bound::Included(seq + 5), Bound::Excluded(lo)),
            ];
            for b in bounds {
                let got: Vec<u64> = units.range(b).map(|(k, _)| *k).collect();
                let want: Vec<u64> = if matches!(
                    (b.0, b.1),
                    (Bound::Included(a), Bound::Excluded(z)) if a > z
                ) {
                    Vec::new()
                } else {
                    model.range(b).map(|(k, _)| *k).collect()
                };
                assert_eq!(got, want, "range {b:?} at step {step}");
            }
        }
        let keys: Vec<u64> = units.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, model.keys().copied().collect::<Vec<_>>());
        assert!(
            units
                .iter()
                .all(|(k, g)| g.duration == Duration::from_millis(*k))
        );
    }

    /// A live playlist update with segments `range`, with chunk digests of `chunk` bytes if
    /// given.
    fn live_with(
        s: &mut Scheduler,
        now: Instant,
        range: std::ops::RangeInclusive<u64>,
        chunk: Option<u32>,
    ) {
        let mut segs = infos(range);
        for i in &mut segs {
            i.chunk_size = chunk;
        }
        s.handle_playlist(now, &live_update(&segs));
    }

    fn drain(s: &mut Scheduler) -> Vec<Action> {
        std::iter::from_fn(|| s.poll_action()).collect()
    }

    /// A scheduler that joined a live stream at `t0` (segments 0..=5, prefetching 3..=5) and
    /// got `peers` connected; prefetch decisions are drained.
    fn joined(t0: Instant, me: u8, peers: &[u8], cfg: SchedulerConfig) -> Scheduler {
        joined_with(t0, me, peers, cfg, None)
    }

    /// `joined`, with chunk digests of `chunk` bytes if given.
    fn joined_with(
        t0: Instant,
        me: u8,
        peers: &[u8],
        cfg: SchedulerConfig,
        chunk: Option<u32>,
    ) -> Scheduler {
        let mut s = Scheduler::new(t0, pid(me), cfg).unwrap();
        for &p in peers {
            assert!(s.handle_peer_connected(t0, pid(p)));
        }
        // A huge swarm: with ρ = 0 the k = 1 seed is practically never us.
        s.handle_swarm_size(t0, 1 << 40);
        live_with(&mut s, t0, 0..=5, chunk);
        drain(&mut s);
        s
    }

    /// Gets `seq` into the cache from the origin (player request, deadline, origin result).
    fn fetch_from_origin(s: &mut Scheduler, t: Instant, seq: u64) {
        s.handle_player_request(t, seq);
        s.handle_timeout(t + Duration::from_secs(1));
        assert!(origin(&drain(s)).iter().any(|o| o.0 == seq));
        s.handle_origin_result(t + Duration::from_secs(1), seq, Ok(10));
        assert!(s.has(seq));
    }

    fn have(s: &mut Scheduler, now: Instant, peer: u8, seq: u64) {
        s.handle_peer_message(
            now,
            pid(peer),
            &Message::Have {
                seq,
                digest: dig(seq),
                partial: false,
            },
        );
    }

    fn requests(actions: &[Action]) -> Vec<(PeerId, u32, u64)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::RequestPeer {
                    peer, req_id, seq, ..
                } => Some((*peer, *req_id, *seq)),
                _ => None,
            })
            .collect()
    }

    fn origin(actions: &[Action]) -> Vec<(u64, OriginReason)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::FetchOrigin { seq, reason } => Some((*seq, *reason)),
                _ => None,
            })
            .collect()
    }

    /// Config where we are never an elected seed unless the test says so.
    /// Defaults with no seed fraction (only `k` = 1 seed in the whole swarm) and a 1 s stall
    /// timeout, which the timelines below are written for.
    fn no_seed() -> SchedulerConfig {
        SchedulerConfig {
            seed_fraction_init: 0.0,
            stall_timeout: Duration::from_secs(1),
            ..SchedulerConfig::default()
        }
    }

    /// A live playlist update listing `segs`.
    fn live_update(segs: &[SegmentInfo]) -> PlaylistUpdate<'_> {
        PlaylistUpdate {
            live: true,
            target_duration: TD,
            segments: segs,
        }
    }

    /// A scheduler (no seed, one peer, a large swarm) that got `segs` as its first live
    /// playlist and whose player started with segment 3, from the origin, delivered 1 s after
    /// `t0`: the player plays from that moment, which is returned.
    fn playing_from_3(t0: Instant, segs: &[SegmentInfo]) -> (Scheduler, Instant) {
        let mut s = Scheduler::new(t0, pid(1), no_seed()).unwrap();
        assert!(s.handle_peer_connected(t0, pid(2)));
        s.handle_swarm_size(t0, 1 << 40);
        s.handle_playlist(t0, &live_update(segs));
        drain(&mut s);
        s.handle_player_request(t0, 3);
        drain(&mut s);
        let t1 = t0 + Duration::from_secs(1);
        s.handle_origin_result(t1, 3, Ok(1_000_000));
        drain(&mut s);
        (s, t1)
    }

    #[test]
    fn backstop_ranks_agents_globally_and_only_with_few_seeds() {
        // N = 16, k = 1: non-elected agents spread over ranks [0, 15); about one per unit.
        let mut below_one = 0;
        for seq in 0..200 {
            for me in 0..16u8 {
                let elected = is_fetcher(seq, &pid(me), 0, 2, 16, 1.0);
                let rank = backstop_rank(seq, &pid(me), 16, 1.0);
                assert_eq!(rank.is_none(), elected, "elected agents have no backstop");
                if let Some(r) = rank {
                    assert!((0.0..15.0 + 1e-9).contains(&r), "{r}");
                    below_one += usize::from(r < 1.0);
                }
            }
        }
        // 200 segments × 16 agents × 1/16.
        assert!((140..=260).contains(&below_one), "{below_one}");
        assert_eq!(backstop_rank(1, &pid(1), 1000, 3.0), None);
        assert_eq!(backstop_rank(1, &pid(1), 1000, f64::NAN), None);
    }

    /// A partial-view scheduler (N = 16, one connected peer, k = 1) that got segments up to the
    /// first one it is not elected for; returns it with that segment and its backstop time.
    fn backstop_case(t0: Instant) -> (Scheduler, u64, Instant) {
        let mut s = Scheduler::new(t0, pid(1), no_seed()).unwrap();
        assert!(s.handle_peer_connected(t0, pid(2)));
        s.handle_swarm_size(t0, 16);
        live(&mut s, t0, 0..=5);
        let seq = (6..200)
            .find(|q| !is_fetcher(*q, &pid(1), 0, 2, 16, 1.0))
            .expect("a segment we are not elected for");
        for q in 6..=seq {
            live(&mut s, t0, (q - 5)..=q);
        }
        drain(&mut s);
        let rank = backstop_rank(seq, &pid(1), 16, 1.0).expect("rank");
        // No origin fetch measured yet: the step is 0.1 s.
        let at = t0 + Duration::from_secs_f64(0.1 * (1.0 + rank));
        (s, seq, at)
    }

    #[test]
    fn backstop_fetches_a_segment_nobody_announced() {
        let t0 = Instant::now();
        let (mut s, seq, at) = backstop_case(t0);
        assert!(s.poll_timeout().is_some_and(|t| t <= at));
        s.handle_timeout(at - Duration::from_millis(5));
        assert!(!origin(&drain(&mut s)).contains(&(seq, OriginReason::Backstop)));
        s.handle_timeout(at);
        assert!(origin(&drain(&mut s)).contains(&(seq, OriginReason::Backstop)));
        assert_eq!(s.counters().origin_fallbacks, 0);
        assert!(s.counters().origin_backstops >= 1);
    }

    #[test]
    fn a_holder_announced_before_the_backstop_is_used_instead() {
        let t0 = Instant::now();
        let (mut s, seq, at) = backstop_case(t0);
        have(&mut s, at - Duration::from_millis(5), 2, seq);
        let acts = drain(&mut s);
        assert!(requests(&acts).iter().any(|r| r.2 == seq), "{acts:?}");
        s.handle_timeout(at);
        let later = drain(&mut s);
        assert!(!origin(&later).iter().any(|o| o.0 == seq), "{later:?}");
    }

    #[test]
    fn full_view_and_many_seeds_have_no_backstop() {
        let t0 = Instant::now();
        // Full view: the swarm is us and our peers.
        let mut s = Scheduler::new(t0, pid(1), no_seed()).unwrap();
        assert!(s.handle_peer_connected(t0, pid(2)));
        s.handle_swarm_size(t0, 2);
        live(&mut s, t0, 0..=5);
        live(&mut s, t0, 1..=6);
        drain(&mut s);
        assert!(s.segs.values().all(|g| g.backstop_at.is_none()));
        // Partial view with ρ·N ≥ 3 expected seeds.
        let cfg = SchedulerConfig {
            seed_fraction_init: 0.05,
            ..SchedulerConfig::default()
        };
        let mut s = Scheduler::new(t0, pid(1), cfg).unwrap();
        assert!(s.handle_peer_connected(t0, pid(2)));
        s.handle_swarm_size(t0, 100);
        live(&mut s, t0, 0..=5);
        live(&mut s, t0, 1..=6);
        drain(&mut s);
        assert!(s.segs.values().all(|g| g.backstop_at.is_none()));
    }

    #[test]
    fn config_validation() {
        assert!(SchedulerConfig::default().validate().is_ok());
        let bad = [
            SchedulerConfig {
                fetchers: 0,
                ..SchedulerConfig::default()
            },
            SchedulerConfig {
                seed_fraction_min: 0.6,
                ..SchedulerConfig::default()
            },
            SchedulerConfig {
                seed_fraction_init: 0.9,
                ..SchedulerConfig::default()
            },
            SchedulerConfig {
                seed_fraction_up: 0.5,
                ..SchedulerConfig::default()
            },
            SchedulerConfig {
                seed_fraction_slack: -0.5,
                ..SchedulerConfig::default()
            },
            SchedulerConfig {
                seed_fraction_slack: f64::NAN,
                ..SchedulerConfig::default()
            },
            SchedulerConfig {
                stall_timeout: Duration::ZERO,
                ..SchedulerConfig::default()
            },
            SchedulerConfig {
                max_parallel: 0,
                ..SchedulerConfig::default()
            },
            SchedulerConfig {
                max_requests_per_peer: 0,
                ..SchedulerConfig::default()
            },
            SchedulerConfig {
                upload_rate_cap: Some(0),
                ..SchedulerConfig::default()
            },
        ];
        for c in bad {
            let err = Scheduler::new(Instant::now(), pid(1), c).unwrap_err();
            assert!(err.to_string().starts_with("scheduler config:"));
        }
        let err = SchedulerConfig {
            seed_fraction_slack: f64::INFINITY,
            ..SchedulerConfig::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "scheduler config: seed_fraction_slack must lie within [0, 10] target durations"
        );
        assert_eq!(OriginReason::NoPeers.as_label(), "no_peers");
    }

    #[test]
    fn join_prefetches_only_the_newest_segments() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(t0, pid(1), no_seed()).unwrap();
        s.handle_peer_connected(t0, pid(2));
        s.handle_swarm_size(t0, 1 << 40);
        have(&mut s, t0, 2, 0);
        have(&mut s, t0, 2, 4);
        drain(&mut s);
        live(&mut s, t0, 0..=5);
        let acts = drain(&mut s);
        // Segment 4 is held by the peer and wanted: requested at once. 0 is not wanted.
        assert_eq!(
            requests(&acts).iter().map(|r| r.2).collect::<Vec<_>>(),
            vec![4]
        );
        assert_eq!(s.status(0), Some(SegmentStatus::Idle));
        assert_eq!(s.status(3), Some(SegmentStatus::Idle));
        assert_eq!(s.tracked_segments(), 6);
        // The request for 4 is watched for stalls; it completes.
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(1)));
        let (p, r, _) = requests(&acts)[0];
        s.handle_transfer_complete(t0 + Duration::from_millis(900), p, r, 1_000_000, true);
        drain(&mut s);
        // 3 and 5 wait until the peer deadline (1.5 × target duration), then go to the origin.
        assert_eq!(s.poll_timeout(), Some(t0 + TD.mul_f64(1.5)));
        s.handle_timeout(t0 + TD.mul_f64(1.5));
        let acts = drain(&mut s);
        assert_eq!(
            origin(&acts),
            vec![(3, OriginReason::Fallback), (5, OriginReason::Fallback)]
        );
        assert_eq!(s.counters().origin_fallbacks, 2);
    }

    #[test]
    fn local_first_and_single_flight() {
        let t0 = Instant::now();
        let mut s = joined(t0, 1, &[2], no_seed());
        have(&mut s, t0, 2, 5);
        let acts = drain(&mut s);
        let reqs = requests(&acts);
        assert_eq!(reqs.len(), 1);
        // Two player requests for the same segment join the one fetch.
        assert_eq!(s.handle_player_request(t0, 5), PlayerOutcome::Waiting);
        assert_eq!(s.handle_player_request(t0, 5), PlayerOutcome::Waiting);
        assert!(requests(&drain(&mut s)).is_empty());
        assert!(origin(&drain(&mut s)).is_empty());
        let (peer, req_id, _) = reqs[0];
        s.handle_transfer_complete(
            t0 + Duration::from_millis(500),
            peer,
            req_id,
            1_000_000,
            true,
        );
        let acts = drain(&mut s);
        assert!(acts.contains(&Action::SendHave {
            seq: 5,
            digest: dig(5),
            partial: false,
        }));
        assert!(s.has(5));
        assert_eq!(s.source(5), Some(Source::Peer));
        assert_eq!(
            s.handle_player_request(t0 + Duration::from_secs(1), 5),
            PlayerOutcome::Ready
        );
        assert_eq!(s.counters().player_hits, 1);
        assert_eq!(s.counters().peer_bytes, 1_000_000);
        assert_eq!(s.handle_player_request(t0, 999), PlayerOutcome::Unknown);
    }

    #[test]
    fn full_view_election_picks_exactly_k_fetchers() {
        let t0 = Instant::now();
        let ids = [1u8, 2, 3, 4];
        for k in [1u32, 2] {
            let cfg = SchedulerConfig {
                fetchers: k,
                ..no_seed()
            };
            let mut ss: Vec<Scheduler> = ids
                .iter()
                .map(|&me| {
                    let others: Vec<u8> = ids.iter().copied().filter(|&x| x != me).collect();
                    let mut s = joined(t0, me, &others, cfg.clone());
                    s.handle_swarm_size(t0, 4);
                    s
                })
                .collect();
            for seq in 6..40 {
                let mut elected = 0;
                for s in &mut ss {
                    live(s, t0, (seq - 5)..=seq);
                    let acts = drain(s);
                    let o = origin(&acts);
                    if o.contains(&(seq, OriginReason::Elected)) {
                        elected += 1;
                        assert!(s.is_elected(seq));
                    }
                }
                assert_eq!(elected, k, "seq {seq}");
            }
        }
    }

    #[test]
    fn partial_view_election_uses_swarm_size() {
        let t0 = Instant::now();
        // 10 000 agents, each knowing 3 peers: about k = 1 of them elects itself per segment.
        let mut total = 0;
        for me in 0..200u8 {
            let mut id = [0u8; 20];
            id[..8].copy_from_slice(b"-HC0001-");
            id[8] = me;
            let mut s = Scheduler::new(t0, PeerId(id), no_seed()).unwrap();
            for p in 1..=3 {
                s.handle_peer_connected(t0, pid(p));
            }
            s.handle_swarm_size(t0, 200);
            live(&mut s, t0, 0..=5);
            for seq in 6..56 {
                live(&mut s, t0, (seq - 5)..=seq);
                total += usize::from(s.is_elected(seq));
            }
        }
        // 50 segments × k = 1 expected fetchers among the 200 agents.
        assert!((25..=80).contains(&total), "{total}");
    }

    #[test]
    fn seed_fraction_scales_fetchers_and_adapts() {
        let t0 = Instant::now();
        let cfg = SchedulerConfig {
            seed_fraction_init: 0.5,
            seed_fraction_max: 0.5,
            ..SchedulerConfig::default()
        };
        let mut s = joined(t0, 1, &[2], cfg);
        s.handle_swarm_size(t0, 1000);
        let mut elected = 0;
        for seq in 6..206 {
            live(&mut s, t0, (seq - 5)..=seq);
            elected += usize::from(s.is_elected(seq));
        }
        assert!((70..=130).contains(&elected), "{elected}");
        // Peer deliveries decay ρ, a fallback nobody announced raises it.
        let mut s = joined(t0, 1, &[2], SchedulerConfig::default());
        s.handle_swarm_size(t0, 1000);
        let rho0 = s.seed_fraction();
        live(&mut s, t0, 1..=6);
        have(&mut s, t0, 2, 6);
        let acts = drain(&mut s);
        if let Some((peer, req_id, 6)) = requests(&acts).first().copied() {
            s.handle_transfer_complete(t0 + Duration::from_secs(1), peer, req_id, 10, true);
            assert!(s.seed_fraction() < rho0);
        }
        let rho1 = s.seed_fraction();
        live(&mut s, t0, 2..=7);
        drain(&mut s);
        if !s.is_elected(7) {
            s.handle_timeout(t0 + TD.mul_f64(1.5));
            assert!(origin(&drain(&mut s)).contains(&(7, OriginReason::Fallback)));
            assert!(s.seed_fraction() > rho1);
        }
    }

    #[test]
    fn an_elected_agent_does_not_seed_a_unit_a_neighbour_already_announced() {
        let t0 = Instant::now();
        // ρ = 1: every agent is elected for every new unit.
        let cfg = SchedulerConfig {
            seed_fraction_init: 1.0,
            seed_fraction_max: 1.0,
            ..SchedulerConfig::default()
        };
        let mut s = joined(t0, 1, &[2], cfg);
        // Peer 2 announced segment 6 before our playlist showed it: it is spreading already,
        // so we pull it instead of adding an origin copy this late.
        have(&mut s, t0, 2, 6);
        live(&mut s, t0, 1..=6);
        let acts = drain(&mut s);
        assert!(!s.is_elected(6));
        assert!(origin(&acts).is_empty(), "{acts:?}");
        let reqs = requests(&acts);
        assert_eq!(reqs.len(), 1, "{acts:?}");
        assert_eq!((reqs[0].0, reqs[0].2), (pid(2), 6));
        // Nobody announced segment 7 first: we seed it.
        live(&mut s, t0 + TD, 2..=7);
        assert!(s.is_elected(7));
        assert!(origin(&drain(&mut s)).contains(&(7, OriginReason::Elected)));
    }

    #[test]
    fn only_a_peer_delivery_with_slack_lowers_the_seed_fraction() {
        let t0 = Instant::now();
        // ρ tiny in a huge swarm: we are practically never a seed. The peer deadline of a new
        // unit is 1.5 target durations (6 s) after it appears; the slack is 0.25 (1 s).
        let cfg = SchedulerConfig {
            seed_fraction_init: 1e-6,
            ..SchedulerConfig::default()
        };
        let mut s = joined(t0, 1, &[2], cfg);
        let rho0 = s.seed_fraction();
        let deliver = |s: &mut Scheduler, appear: Instant, seq: u64, after: Duration| {
            live(s, appear, (seq - 5)..=seq);
            assert!(!s.is_elected(seq));
            have(s, appear, 2, seq);
            let (peer, req_id, _) = requests(&drain(s))[0];
            s.handle_transfer_complete(appear + after, peer, req_id, 10, true);
            assert!(s.has(seq));
        };
        // 1.2 s before the deadline: the swarm had time to spare, so fewer seeds will do.
        deliver(&mut s, t0, 6, Duration::from_millis(4_800));
        let rho1 = s.seed_fraction();
        assert!(rho1 < rho0, "{rho1} < {rho0}");
        // 0.5 s before it: a close call, no reason for fewer seeds (nor for more).
        deliver(&mut s, t0 + TD, 7, Duration::from_millis(5_500));
        assert_eq!(s.seed_fraction(), rho1);
        // With no slack required, the same close call lowers ρ as before.
        let cfg = SchedulerConfig {
            seed_fraction_init: 1e-6,
            seed_fraction_slack: 0.0,
            ..SchedulerConfig::default()
        };
        let mut s = joined(t0, 1, &[2], cfg);
        deliver(&mut s, t0, 6, Duration::from_millis(5_500));
        assert!(s.seed_fraction() < rho0);
    }

    #[test]
    fn non_fetcher_waits_for_have_and_picks_the_best_holder() {
        let t0 = Instant::now();
        let mut s = joined(t0, 1, &[2, 3], no_seed());
        // Peer 3 proved fast before.
        have(&mut s, t0, 3, 5);
        let acts = drain(&mut s);
        let (p, r, _) = requests(&acts)[0];
        assert_eq!(p, pid(3));
        s.handle_transfer_complete(t0 + Duration::from_millis(100), p, r, 1_000_000, true);
        drain(&mut s);
        live(&mut s, t0, 1..=6);
        assert!(requests(&drain(&mut s)).is_empty(), "waits for a holder");
        have(&mut s, t0, 2, 6);
        have(&mut s, t0, 3, 6);
        // The first have triggers the request (peer 2); a slow-or-fast choice needs both known:
        // check on the next segment where both announce before the playlist shows it.
        drain(&mut s);
        have(&mut s, t0, 2, 7);
        have(&mut s, t0, 3, 7);
        live(&mut s, t0, 2..=7);
        let reqs = requests(&drain(&mut s));
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].0, pid(3), "known fast peer preferred");
    }

    /// A scheduler with 4 stripes that joined a live stream at `t0` (segments 0..=5, each as 4
    /// units of a quarter of its duration), with no peers, in a huge swarm.
    fn striped(t0: Instant) -> Scheduler {
        let st = Stripes::new(4).unwrap();
        let cfg = SchedulerConfig {
            stripes: st,
            ..no_seed()
        };
        let mut s = Scheduler::new(t0, pid(1), cfg).unwrap();
        s.handle_swarm_size(t0, 1 << 40);
        striped_live(&mut s, t0, 0..=5);
        drain(&mut s);
        s
    }

    fn striped_live(s: &mut Scheduler, now: Instant, range: std::ops::RangeInclusive<u64>) {
        let st = Stripes::new(4).unwrap();
        let units: Vec<SegmentInfo> = range
            .flat_map(|seq| {
                (0..4).map(move |j| SegmentInfo {
                    seq: st.unit(seq, j),
                    digest: dig(st.unit(seq, j)),
                    duration: TD / 4,
                    size_hint: Some(250_000),
                    chunk_size: Some(65_536),
                })
            })
            .collect();
        s.handle_playlist(now, &live_update(&units));
    }

    #[test]
    fn striped_segment_is_ready_for_the_player_only_once_every_unit_is_in() {
        let st = Stripes::new(4).unwrap();
        let t0 = Instant::now();
        let mut s = striped(t0);
        // Joining prefetches the newest 3 segments: all their units, and nothing older.
        assert_eq!(s.tracked_segments(), 24);
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(s.handle_player_request(t1, 3), PlayerOutcome::Waiting);
        // Every unit of segment 3 has the startup deadline; each goes to the origin on its own.
        s.handle_timeout(t1 + Duration::from_secs(1));
        let mut fetched: Vec<u64> = origin(&drain(&mut s)).iter().map(|o| o.0).collect();
        fetched.sort_unstable();
        assert_eq!(fetched, st.units(3).collect::<Vec<_>>());
        for (i, unit) in st.units(3).enumerate() {
            assert!(!s.holds_segment(3));
            s.handle_origin_result(t1 + Duration::from_secs(1), unit, Ok(250_000));
            assert!(s.has(unit));
            assert_eq!(s.holds_segment(3), i == 3);
        }
        assert_eq!(
            s.handle_player_request(t1 + Duration::from_secs(1), 3),
            PlayerOutcome::Ready
        );
        // An unknown segment has no units.
        assert_eq!(
            s.handle_player_request(t1 + Duration::from_secs(1), 99),
            PlayerOutcome::Unknown
        );
    }

    /// [`striped`], whose player started on segment 3 and got it from the origin (after the
    /// startup wait) at the returned time: the playhead is anchored there, and the agent holds
    /// every unit of segment 3.
    fn striped_playing(t0: Instant) -> (Scheduler, Instant) {
        let st = Stripes::new(4).unwrap();
        let mut s = striped(t0);
        let t1 = t0 + Duration::from_millis(100);
        s.handle_player_request(t1, 3);
        let t2 = t1 + Duration::from_secs(1);
        s.handle_timeout(t2);
        drain(&mut s);
        for unit in st.units(3) {
            s.handle_origin_result(t2, unit, Ok(250_000));
        }
        drain(&mut s);
        (s, t2)
    }

    #[test]
    fn striped_units_share_their_segments_playback_deadline() {
        let st = Stripes::new(4).unwrap();
        let (mut s, t2) = striped_playing(Instant::now());
        // Segment 4 plays at t2 + TD. All four of its units must be in by then (a player gets
        // whole segments), so all four fall back to the origin at the same time: the origin
        // margin before t2 + TD, not staggered by a quarter duration each.
        let need = t2 + TD;
        let margin = s.cfg.origin_safety_margin;
        assert_eq!(s.poll_timeout(), Some(need - margin));
        s.handle_timeout(need - margin);
        let mut fetched: Vec<u64> = origin(&drain(&mut s)).iter().map(|o| o.0).collect();
        fetched.sort_unstable();
        assert_eq!(fetched, st.units(4).collect::<Vec<_>>());
    }

    #[test]
    fn striped_units_elect_their_seeds_independently() {
        // Rendezvous hashing runs per unit: over many agents each unit of a segment gets
        // seeds of its own, so a segment's origin copies are spread over different agents.
        let st = Stripes::new(4).unwrap();
        let t0 = Instant::now();
        let n = 400u32;
        let mut seeds = [0u32; 4];
        let mut agents_seeding_two = 0;
        for a in 0..n {
            let cfg = SchedulerConfig {
                stripes: st,
                seed_fraction_init: 0.05,
                ..SchedulerConfig::default()
            };
            let mut me = [0u8; 20];
            me[..4].copy_from_slice(&a.to_be_bytes());
            let mut s = Scheduler::new(t0, PeerId(me), cfg).unwrap();
            s.handle_swarm_size(t0, n as usize);
            striped_live(&mut s, t0, 0..=5);
            drain(&mut s);
            striped_live(&mut s, t0 + TD, 0..=6);
            let elected: Vec<u64> = origin(&drain(&mut s))
                .iter()
                .filter(|o| o.1 == OriginReason::Elected)
                .map(|o| o.0)
                .collect();
            for u in &elected {
                assert_eq!(st.seq_of(*u), 6);
                seeds[usize::from(st.index_of(*u))] += 1;
            }
            agents_seeding_two += u32::from(elected.len() >= 2);
        }
        // About 5 % of 400 = 20 seeds per unit, and few agents seed two units of one segment.
        for (j, k) in seeds.iter().enumerate() {
            assert!((8..=40).contains(k), "unit {j}: {k} seeds");
        }
        assert!(agents_seeding_two <= 12, "{agents_seeding_two}");
    }

    #[test]
    fn player_request_tightens_deadline() {
        let t0 = Instant::now();
        let mut s = joined(t0, 1, &[], no_seed());
        assert_eq!(s.poll_timeout(), Some(t0 + TD.mul_f64(1.5)));
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(s.handle_player_request(t1, 3), PlayerOutcome::Waiting);
        // Startup request: deadline now + player_wait_budget.
        assert_eq!(s.poll_timeout(), Some(t1 + Duration::from_secs(1)));
        s.handle_timeout(t1 + Duration::from_secs(1));
        assert_eq!(origin(&drain(&mut s)), vec![(3, OriginReason::Fallback)]);
    }

    #[test]
    fn zero_startup_wait_fetches_the_first_segment_from_the_origin_at_once() {
        let t0 = Instant::now();
        let cfg = SchedulerConfig {
            player_wait_budget: Duration::ZERO,
            ..no_seed()
        };
        let mut s = joined(t0, 1, &[], cfg);
        assert_eq!(s.handle_player_request(t0, 3), PlayerOutcome::Waiting);
        assert!(origin(&drain(&mut s)).iter().any(|o| o.0 == 3));
    }

    #[test]
    fn busy_holders_are_not_tried_in_turn_past_the_deadline() {
        let t0 = Instant::now();
        let mut s = joined(t0, 1, &[2, 3, 4], no_seed());
        live(&mut s, t0, 1..=6);
        // Startup request: deadline t0 + 1 s, need-by t0 + 2.5 s (no origin time measured
        // yet, so the configured 1.5 s margin counts).
        assert_eq!(s.handle_player_request(t0, 6), PlayerOutcome::Waiting);
        for p in [2, 3, 4] {
            have(&mut s, t0, p, 6);
        }
        let first = requests(&drain(&mut s));
        assert_eq!(first.len(), 1);
        // Busy before the deadline: the next holder is asked.
        let t1 = t0 + Duration::from_millis(100);
        s.handle_peer_message(t1, first[0].0, &Message::Busy { req_id: first[0].1 });
        let second = requests(&drain(&mut s));
        assert_eq!(second.len(), 1);
        assert_ne!(second[0].0, first[0].0);
        // Busy after it: the origin, not the third holder (a `Busy` is not a failed attempt,
        // so asking holders in turn could go on until the player stalls).
        let t2 = t0 + Duration::from_millis(1200);
        s.handle_peer_message(
            t2,
            second[0].0,
            &Message::Busy {
                req_id: second[0].1,
            },
        );
        let acts = drain(&mut s);
        assert!(requests(&acts).is_empty(), "{acts:?}");
        assert_eq!(origin(&acts), vec![(6, OriginReason::Fallback)]);
    }

    #[test]
    fn busy_far_from_the_deadline_waits_instead_of_asking_the_next_holder() {
        let t0 = Instant::now();
        let mut s = joined(t0, 1, &[2, 3], no_seed());
        // A new live segment: peer deadline t0 + 1.5 × 4 s, far beyond the 1 s back-off.
        live(&mut s, t0, 1..=6);
        for p in [2, 3] {
            have(&mut s, t0, p, 6);
        }
        let first = requests(&drain(&mut s));
        assert_eq!(first.len(), 1);
        let t1 = t0 + Duration::from_millis(100);
        s.handle_peer_message(t1, first[0].0, &Message::Busy { req_id: first[0].1 });
        assert!(
            requests(&drain(&mut s)).is_empty(),
            "the other holder is not asked at once"
        );
        // The refusing holder offers the segment again: asked at once.
        let offer_at = t1 + Duration::from_millis(300);
        let holder = first[0].0;
        s.handle_peer_message(
            offer_at,
            holder,
            &Message::Have {
                seq: 6,
                digest: dig(6),
                partial: false,
            },
        );
        let again = requests(&drain(&mut s));
        assert_eq!(again.len(), 1);
        // Refused again, and no offer: the back-off's end wakes us and a holder is asked.
        s.handle_peer_message(offer_at, again[0].0, &Message::Busy { req_id: again[0].1 });
        assert!(requests(&drain(&mut s)).is_empty());
        let wake = s.poll_timeout().expect("a back-off timer");
        assert!(wake <= offer_at + Duration::from_secs(1), "{wake:?}");
        s.handle_timeout(wake);
        assert_eq!(requests(&drain(&mut s)).len(), 1);
    }

    #[test]
    fn player_waiting_with_no_holder_goes_to_origin_at_once() {
        let t0 = Instant::now();
        let mut s = joined(t0, 1, &[2], no_seed());
        // Peer connected, nobody holds segment 3 (an old segment): no point waiting.
        assert_eq!(s.handle_player_request(t0, 3), PlayerOutcome::Waiting);
        assert_eq!(origin(&drain(&mut s)), vec![(3, OriginReason::NoPeers)]);
    }

    #[test]
    fn sequential_player_requests_use_the_inferred_playhead() {
        let t0 = Instant::now();
        let mut s = joined(t0, 1, &[2], no_seed());
        // Startup: segment 3 from the origin, delivered at t0 + 1 s: the player starts playing.
        s.handle_player_request(t0, 3);
        drain(&mut s);
        let t1 = t0 + Duration::from_secs(1);
        s.handle_origin_result(t1, 3, Ok(1_000_000));
        drain(&mut s);
        // Segment 5 is needed at t1 + 2 × TD; its deadline moves there minus the margin even
        // though the playlist default was t0 + 1.5 × TD.
        have(&mut s, t1, 2, 4);
        s.handle_player_request(t1, 4);
        let acts = drain(&mut s);
        let (p, r, _) = requests(&acts)[0];
        s.handle_transfer_complete(t1, p, r, 1_000_000, true);
        drain(&mut s);
        live(&mut s, t1, 1..=6);
        drain(&mut s);
        // The player holds 3 (playing since t1) and 4: it needs 5 at t1 + 2 × TD and 6 at
        // t1 + 3 × TD. The playlist default for 5 was t0 + 1.5 × TD, earlier. The origin
        // fetch took 1 s, so the safety margin is 2 × 1 s + 250 ms (above the 1.5 s default).
        let need = t1 + TD * 2;
        assert_eq!(s.poll_timeout(), Some(need - Duration::from_millis(2250)));
    }

    #[test]
    fn a_skip_over_untracked_segments_keeps_the_playhead() {
        let t0 = Instant::now();
        // Segment 5 is not tracked (a gap, or one the player got around the swarm).
        let mut segs = infos(0..=6);
        segs.retain(|i| i.seq != 5);
        let (mut s, t1) = playing_from_3(t0, &segs);
        for seq in [4, 6] {
            have(&mut s, t1, 2, seq);
            s.handle_player_request(t1, seq);
            let acts = drain(&mut s);
            let (p, r, _) = requests(&acts)[0];
            s.handle_transfer_complete(t1, p, r, 1_000_000, true);
            drain(&mut s);
        }
        // The player buffers 4 and 6 ahead: 7 is needed four durations after 3 started, not
        // one after 6 arrived (re-anchoring there would send 7 to the origin at once).
        segs.push(infos(7..=7)[0].clone());
        s.handle_playlist(t1, &live_update(&segs));
        assert!(origin(&drain(&mut s)).is_empty());
        // The origin fetch took 1 s: the margin is 2 × 1 s + 250 ms.
        assert_eq!(
            s.poll_timeout(),
            Some(t1 + TD * 4 - Duration::from_millis(2250))
        );
        // A real jump (segment 4 and 6 are tracked) re-anchors: the seek case.
        assert!(!s.untracked_between(3, 7, MAX_UNTRACKED_SKIP));
        assert!(s.untracked_between(4, 6, MAX_UNTRACKED_SKIP));
        assert!(!s.untracked_between(4, 6, 1));
    }

    #[test]
    fn the_playhead_keeps_real_durations_after_its_segments_leave_the_window() {
        // Segments of 3 s under a 4 s target duration: EXTINF below the target is the usual
        // live case (the target is the longest segment, rounded up).
        const D: Duration = Duration::from_secs(3);
        let window = |last: u64| -> Vec<SegmentInfo> {
            (last - 5..=last)
                .map(|seq| SegmentInfo {
                    duration: D,
                    ..infos(seq..=seq)[0].clone()
                })
                .collect()
        };
        let playlist = |s: &mut Scheduler, now: Instant, segs: &[SegmentInfo]| {
            s.handle_playlist(now, &live_update(segs));
        };
        let t0 = Instant::now();
        let (mut s, t1) = playing_from_3(t0, &window(5));
        // The stream goes on for 40 segments; each new one comes from the peer at once and the
        // player asks for each in turn (one segment ahead of its playhead). Segments 0..=32
        // leave the window and are forgotten on the way.
        let mut now = t1;
        for seq in 4..=40 {
            playlist(&mut s, now, &window(seq + 2));
            drain(&mut s);
            for new in seq..=seq + 2 {
                if s.status(new) != Some(SegmentStatus::Have) && s.status(new).is_some() {
                    have(&mut s, now, 2, new);
                    for (p, r, q) in requests(&drain(&mut s)) {
                        assert_eq!(q, new);
                        s.handle_transfer_complete(now, p, r, 1_000_000, true);
                    }
                    drain(&mut s);
                }
            }
            assert_eq!(s.handle_player_request(now, seq), PlayerOutcome::Ready);
            now += D;
        }
        assert_eq!(s.status(30), None, "forgotten");
        // Segment 43 appears with no holder: it is needed when the player reaches it, 40
        // real durations after segment 3 started, less the margin (2 × the 1 s origin fetch
        // + 250 ms). Counting forgotten segments at the target duration put it 30 s later
        // (a second for each forgotten segment after the startup one).
        playlist(&mut s, now, &window(43));
        assert!(origin(&drain(&mut s)).is_empty());
        assert_eq!(
            s.poll_timeout(),
            Some(t1 + D * 40 - Duration::from_millis(2250))
        );
    }

    #[test]
    fn vod_fetches_on_demand_with_lookahead() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(t0, pid(1), no_seed()).unwrap();
        s.handle_peer_connected(t0, pid(2));
        s.handle_swarm_size(t0, 1 << 40);
        have(&mut s, t0, 2, 11);
        drain(&mut s);
        let segs = infos(0..=99);
        s.handle_playlist(
            t0,
            &PlaylistUpdate {
                live: false,
                target_duration: TD,
                segments: &segs,
            },
        );
        assert!(
            drain(&mut s).is_empty(),
            "VOD fetches nothing before the player asks"
        );
        assert_eq!(s.handle_player_request(t0, 10), PlayerOutcome::Waiting);
        let acts = drain(&mut s);
        assert_eq!(origin(&acts), vec![(10, OriginReason::NoPeers)]);
        // Lookahead: 11 from the peer that has it; 12 and 13 wait for their deadlines.
        assert_eq!(
            requests(&acts).iter().map(|r| r.2).collect::<Vec<_>>(),
            vec![11]
        );
        assert_eq!(s.status(12), Some(SegmentStatus::Idle));
        assert!(s.poll_timeout().is_some());
        assert_eq!(s.status(14), Some(SegmentStatus::Idle));
        s.handle_timeout(t0 + Duration::from_secs(60));
        let later = origin(&drain(&mut s));
        assert!(later.contains(&(12, OriginReason::Fallback)), "{later:?}");
        assert!(later.contains(&(13, OriginReason::Fallback)), "{later:?}");
    }

    fn active_request(s: &mut Scheduler, t: Instant, peer: u8, seq: u64) -> (PeerId, u32) {
        have(s, t, peer, seq);
        let acts = drain(s);
        let (p, r, q) = requests(&acts)[0];
        assert_eq!(q, seq);
        (p, r)
    }

    #[test]
    fn stalled_transfer_is_hedged_to_another_peer_then_origin() {
        let t0 = Instant::now();
        let mut s = joined(t0, 1, &[2, 3], no_seed());
        let (p, r) = active_request(&mut s, t0, 2, 5);
        have(&mut s, t0, 3, 5);
        assert!(drain(&mut s).is_empty());
        s.handle_transfer_progress(t0 + Duration::from_millis(200), p, r, 300_000, 1_000_000);
        // No more bytes for stall_timeout: hedge to the other holder.
        let t1 = t0 + Duration::from_millis(1200);
        assert_eq!(s.poll_timeout(), Some(t1));
        s.handle_timeout(t1);
        let acts = drain(&mut s);
        assert_eq!(
            requests(&acts).iter().map(|x| x.0).collect::<Vec<_>>(),
            vec![pid(3)]
        );
        assert_eq!(s.counters().peer_hedges, 1);
        // Both stall; past the deadline the origin takes over.
        s.handle_timeout(t0 + TD.mul_f64(1.5));
        let acts = drain(&mut s);
        assert!(origin(&acts).contains(&(5, OriginReason::Hedge)));
        // The origin copy wins: both peer requests are cancelled.
        s.handle_origin_result(t0 + Duration::from_secs(7), 5, Ok(1_000_000));
        let acts = drain(&mut s);
        let cancels = acts
            .iter()
            .filter(|a| matches!(a, Action::CancelPeer { .. }))
            .count();
        assert_eq!(cancels, 2);
        assert_eq!(s.source(5), Some(Source::Origin));
    }

    #[test]
    fn late_projection_hedges_to_origin_and_cancels() {
        let t0 = Instant::now();
        let mut s = joined(t0, 1, &[2], no_seed());
        let (p, r) = active_request(&mut s, t0, 2, 5);
        // The rate is measured from the first progress report on, so the request's round trip
        // (here 0.5 s before the first bytes) does not count; one report alone judges nothing.
        s.handle_transfer_progress(t0 + Duration::from_millis(500), p, r, 5_000, 1_000_000);
        assert!(origin(&drain(&mut s)).is_empty());
        // Then 10 kB/s: 1 MB would take 100 s, far past need-by.
        s.handle_transfer_progress(t0 + Duration::from_millis(1500), p, r, 15_000, 1_000_000);
        let acts = drain(&mut s);
        assert_eq!(origin(&acts), vec![(5, OriginReason::Hedge)]);
        assert!(acts.contains(&Action::CancelPeer { peer: p, req_id: r }));
        assert_eq!(s.counters().origin_hedges, 1);
    }

    #[test]
    fn peer_copy_wins_over_origin_hedge() {
        let t0 = Instant::now();
        let mut s = joined(t0, 1, &[2], no_seed());
        let (p, r) = active_request(&mut s, t0, 2, 5);
        s.handle_timeout(t0 + TD.mul_f64(1.5));
        assert!(origin(&drain(&mut s)).contains(&(5, OriginReason::Hedge)));
        s.handle_transfer_complete(t0 + Duration::from_secs(7), p, r, 1_000_000, true);
        let acts = drain(&mut s);
        assert!(acts.contains(&Action::CancelOrigin { seq: 5 }));
        // A late origin result for it changes nothing.
        s.handle_origin_result(t0 + Duration::from_secs(8), 5, Ok(1_000_000));
        assert!(drain(&mut s).is_empty());
        assert_eq!(s.source(5), Some(Source::Peer));
    }

    #[test]
    fn peer_lost_mid_transfer_is_rescheduled_at_once() {
        let t0 = Instant::now();
        let mut s = joined(t0, 1, &[2, 3], no_seed());
        let (p, _) = active_request(&mut s, t0, 2, 5);
        have(&mut s, t0, 3, 5);
        drain(&mut s);
        s.handle_peer_disconnected(t0 + Duration::from_millis(300), p);
        let acts = drain(&mut s);
        assert_eq!(
            requests(&acts).iter().map(|x| x.0).collect::<Vec<_>>(),
            vec![pid(3)]
        );
        assert_eq!(s.counters().peer_lost, 1);
        // The last holder goes too: with no holder and a player waiting, the origin.
        s.handle_player_request(t0, 5);
        s.handle_peer_disconnected(t0 + Duration::from_millis(400), pid(3));
        // No peer left: wait the player budget for new peers, then the origin.
        assert!(origin(&drain(&mut s)).is_empty());
        s.handle_timeout(t0 + Duration::from_secs(1));
        assert_eq!(origin(&drain(&mut s)), vec![(5, OriginReason::Fallback)]);
    }

    #[test]
    fn corrupt_transfer_bans_and_refetches() {
        let t0 = Instant::now();
        let mut s = joined(t0, 1, &[2, 3], no_seed());
        let (p, r) = active_request(&mut s, t0, 2, 5);
        have(&mut s, t0, 3, 5);
        drain(&mut s);
        s.handle_transfer_complete(t0 + Duration::from_millis(500), p, r, 1_000_000, false);
        let acts = drain(&mut s);
        assert!(acts.contains(&Action::Ban { peer: p }));
        assert_eq!(
            requests(&acts).iter().map(|x| x.0).collect::<Vec<_>>(),
            vec![pid(3)]
        );
        assert_eq!(s.counters().bans, 1);
        assert_eq!(s.counters().integrity_failures, 1);
        assert!(s.swarm().is_banned(&p));
        assert!(
            !s.handle_peer_connected(t0, p),
            "banned for the swarm session"
        );
        // Messages from the banned peer are ignored.
        have(&mut s, t0, 2, 4);
        assert!(drain(&mut s).is_empty());
    }

    /// Chunk size of the chunk digests in the tests.
    const CHUNK: u32 = 65_536;

    /// Like `live`, with chunk digests published for every segment.
    fn live_chunked(s: &mut Scheduler, now: Instant, range: std::ops::RangeInclusive<u64>) {
        live_with(s, now, range, Some(CHUNK));
    }

    /// Like `joined`, with chunk digests published for every segment.
    fn joined_chunked(t0: Instant, me: u8, peers: &[u8], cfg: SchedulerConfig) -> Scheduler {
        joined_with(t0, me, peers, cfg, Some(CHUNK))
    }

    /// Player request and origin result: we hold `seq` (1 MB) from the origin.
    fn hold_from_origin(s: &mut Scheduler, t: Instant, seq: u64) {
        s.handle_player_request(t, seq);
        drain(s);
        s.handle_origin_result(t, seq, Ok(1_000_000));
        drain(s);
        assert!(s.has(seq));
    }

    fn partial_have(s: &mut Scheduler, now: Instant, peer: u8, seq: u64) {
        s.handle_peer_message(
            now,
            pid(peer),
            &Message::Have {
                seq,
                digest: dig(seq),
                partial: true,
            },
        );
    }

    fn req(seq: u64, req_id: u32) -> Message {
        Message::Request {
            req_id,
            seq,
            digest: dig(seq),
        }
    }

    #[test]
    fn cut_through_announces_a_partial_have_once_and_serves_it_while_receiving() {
        let t0 = Instant::now();
        let mut s = joined_chunked(t0, 1, &[2, 3], no_seed());
        // Not receiving anything yet: nothing to announce, and requests get `Absent`.
        s.handle_partial_verified(t0, 5);
        assert!(drain(&mut s).is_empty());
        s.handle_peer_message(t0, pid(3), &req(5, 1));
        assert!(matches!(
            drain(&mut s)[..],
            [Action::Refuse {
                reason: RefuseReason::Absent,
                ..
            }]
        ));
        let (p, r) = active_request(&mut s, t0, 2, 5);
        s.handle_transfer_progress(t0, p, r, 65_536, 1_000_000);
        s.handle_partial_verified(t0, 5);
        assert_eq!(
            drain(&mut s),
            vec![Action::SendHave {
                seq: 5,
                digest: dig(5),
                partial: true
            }]
        );
        // Announced once.
        s.handle_partial_verified(t0, 5);
        assert!(drain(&mut s).is_empty());
        assert_eq!(s.counters().partial_haves, 1);
        // A peer asks for it while we still receive it: served cut-through.
        s.handle_peer_message(t0, pid(3), &req(5, 2));
        assert_eq!(
            drain(&mut s),
            vec![Action::ServePeer {
                peer: pid(3),
                req_id: 2,
                seq: 5
            }]
        );
        assert_eq!(s.counters().uploads_partial, 1);
        // Whole: the full `have` follows.
        s.handle_transfer_complete(t0, p, r, 1_000_000, true);
        assert!(drain(&mut s).contains(&Action::SendHave {
            seq: 5,
            digest: dig(5),
            partial: false
        }));
    }

    #[test]
    fn no_partial_have_without_chunk_digests_or_with_cut_through_off() {
        let t0 = Instant::now();
        let mut s = joined(t0, 1, &[2], no_seed());
        let (p, r) = active_request(&mut s, t0, 2, 5);
        s.handle_transfer_progress(t0, p, r, 65_536, 1_000_000);
        s.handle_partial_verified(t0, 5);
        assert!(drain(&mut s).is_empty());
        let off = SchedulerConfig {
            cut_through: false,
            ..no_seed()
        };
        let mut s = joined_chunked(t0, 1, &[2], off);
        let (p, r) = active_request(&mut s, t0, 2, 5);
        s.handle_transfer_progress(t0, p, r, 65_536, 1_000_000);
        s.handle_partial_verified(t0, 5);
        assert!(drain(&mut s).is_empty());
        assert_eq!(s.counters().partial_haves, 0);
    }

    #[test]
    fn complete_holders_are_asked_before_partial_ones() {
        let t0 = Instant::now();
        let mut s = joined_chunked(t0, 1, &[2, 3], no_seed());
        // Both announced before our playlist lists segment 6.
        partial_have(&mut s, t0, 2, 6);
        have(&mut s, t0, 3, 6);
        live_chunked(&mut s, t0, 0..=6);
        let reqs = requests(&drain(&mut s));
        assert_eq!(reqs.len(), 1);
        assert_eq!((reqs[0].0, reqs[0].2), (pid(3), 6));
        // Only a partial holder: it is asked.
        let mut s = joined_chunked(t0, 1, &[2, 3], no_seed());
        partial_have(&mut s, t0, 2, 5);
        let reqs = requests(&drain(&mut s));
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].0, pid(2));
        // A partial `have` after a whole one does not downgrade the peer; `Absent` clears both.
        have(&mut s, t0, 3, 4);
        partial_have(&mut s, t0, 3, 4);
        let e = s.swarm().get(&pid(3)).unwrap();
        assert!(e.have.contains(4) && !e.partial.contains(4));
    }

    #[test]
    fn a_partial_copy_stays_shareable_while_the_segment_is_still_wanted() {
        let t0 = Instant::now();
        let mut s = joined_chunked(t0, 1, &[2, 3], no_seed());
        let (p, r) = active_request(&mut s, t0, 2, 5);
        s.handle_transfer_progress(t0, p, r, 65_536, 1_000_000);
        s.handle_partial_verified(t0, 5);
        drain(&mut s);
        // Our source answers `Absent` and nobody else holds it: still ours to finish (the
        // segment stays wanted), so a request is still served.
        s.handle_peer_message(t0, p, &Message::Absent { req_id: r });
        drain(&mut s);
        s.handle_peer_message(t0, pid(3), &req(5, 3));
        assert!(matches!(drain(&mut s)[..], [Action::ServePeer { .. }]));
        assert_eq!(
            s.status(5).map(|st| st == SegmentStatus::Failed),
            Some(false)
        );
    }

    #[test]
    fn upload_slots_busy_absent_and_reoffer() {
        let t0 = Instant::now();
        let mut s = joined(t0, 1, &[2, 3, 4], no_seed());
        hold_from_origin(&mut s, t0, 5);
        s.handle_peer_message(t0, pid(2), &req(5, 1));
        assert_eq!(
            drain(&mut s),
            vec![Action::ServePeer {
                peer: pid(2),
                req_id: 1,
                seq: 5
            }]
        );
        s.handle_peer_message(t0, pid(3), &req(5, 7));
        assert_eq!(
            drain(&mut s),
            vec![Action::Refuse {
                peer: pid(3),
                req_id: 7,
                reason: RefuseReason::Busy
            }]
        );
        // Unknown segment, or another digest: absent.
        s.handle_peer_message(t0, pid(4), &req(4, 9));
        s.handle_peer_message(
            t0,
            pid(4),
            &Message::Request {
                req_id: 10,
                seq: 5,
                digest: dig(6),
            },
        );
        let acts = drain(&mut s);
        assert!(acts.iter().all(|a| matches!(
            a,
            Action::Refuse {
                reason: RefuseReason::Absent,
                ..
            }
        )));
        assert_eq!(acts.len(), 2);
        assert_eq!(s.counters().busy_sent, 1);
        assert_eq!(s.counters().absent_sent, 2);
        // The slot frees: the refused peer is offered the segment again.
        s.handle_upload_done(t0 + Duration::from_secs(1), pid(2), 1, 1_000_000);
        assert_eq!(
            drain(&mut s),
            vec![Action::OfferHave {
                peer: pid(3),
                seq: 5,
                digest: dig(5),
                partial: false,
            }]
        );
        assert_eq!(s.counters().uploaded_bytes, 1_000_000);
        // A cancel stops an upload.
        s.handle_peer_message(t0, pid(3), &req(5, 8));
        drain(&mut s);
        s.handle_peer_message(t0, pid(3), &Message::Cancel { req_id: 8 });
        assert_eq!(
            drain(&mut s),
            vec![Action::StopServe {
                peer: pid(3),
                req_id: 8
            }]
        );
        assert_eq!(s.uploads_in_flight(), 0);
    }

    /// Peer 2 takes our one upload slot with a request for `served`; the `refused` requests
    /// (peer, unit, request id), in that order, get `Busy`; then the slot frees. Returns the
    /// offers made for it, in order.
    fn offers_after_busy(
        s: &mut Scheduler,
        now: Instant,
        served: u64,
        refused: &[(u8, u64, u32)],
    ) -> Vec<(PeerId, u64)> {
        s.handle_peer_message(now, pid(2), &req(served, 1));
        assert!(matches!(drain(s)[..], [Action::ServePeer { .. }]));
        for &(peer, seq, id) in refused {
            s.handle_peer_message(now, pid(peer), &req(seq, id));
            assert!(
                matches!(
                    drain(s)[..],
                    [Action::Refuse {
                        reason: RefuseReason::Busy,
                        ..
                    }]
                ),
                "peer {peer} refused"
            );
        }
        s.handle_upload_done(now + Duration::from_secs(1), pid(2), 1, 250_000);
        drain(s)
            .into_iter()
            .filter_map(|a| match a {
                Action::OfferHave { peer, seq, .. } => Some((peer, seq)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn freed_slot_is_offered_to_the_newest_segment_first() {
        let t0 = Instant::now();
        let mut s = joined(t0, 1, &[2, 3, 4, 5], no_seed());
        hold_from_origin(&mut s, t0, 4);
        hold_from_origin(&mut s, t0, 5);
        // Refused in this order: 4 (peer 3), 5 (peer 4), 4 (peer 5).
        let offers = offers_after_busy(&mut s, t0, 4, &[(3, 4, 2), (4, 5, 3), (5, 4, 4)]);
        // Newest segment first, then the earlier refusals of the older one, in order.
        assert_eq!(offers, vec![(pid(4), 5), (pid(3), 4), (pid(5), 4)]);
    }

    #[test]
    fn freed_slot_is_offered_by_segment_not_by_unit_id() {
        // The units of a segment share its playback deadline: among them the earliest refusal
        // goes first. Ranked by unit id, a segment's last unit always went first and its first
        // one last (in the simulator, N = 1,000: 2,384 fallbacks on first units, 1,328 on
        // last ones; 1,671 and 1,792 ranked by segment).
        let st = Stripes::new(4).unwrap();
        let (mut s, t2) = striped_playing(Instant::now());
        for p in 2..=5 {
            assert!(s.handle_peer_connected(t2, pid(p)));
        }
        drain(&mut s);
        let (first, last) = (st.unit(3, 0), st.unit(3, 3));
        let refused = [(3, first, 2), (4, last, 3), (5, first, 4)];
        let offers = offers_after_busy(&mut s, t2, first, &refused);
        assert_eq!(
            offers,
            vec![(pid(3), first), (pid(4), last), (pid(5), first)]
        );
    }

    #[test]
    fn busy_answer_is_not_a_failed_attempt_and_offer_retries() {
        let t0 = Instant::now();
        let mut s = joined(t0, 1, &[2], no_seed());
        let (p, r) = active_request(&mut s, t0, 2, 5);
        s.handle_peer_message(t0, p, &Message::Busy { req_id: r });
        assert!(drain(&mut s).is_empty(), "no other holder: wait");
        assert_eq!(s.counters().busy_received, 1);
        // The holder offers it again: request at once.
        have(&mut s, t0 + Duration::from_millis(100), 2, 5);
        assert_eq!(requests(&drain(&mut s)).len(), 1);
    }

    #[test]
    fn absent_answer_moves_on() {
        let t0 = Instant::now();
        let mut s = joined(t0, 1, &[2, 3], no_seed());
        let (p, r) = active_request(&mut s, t0, 2, 5);
        have(&mut s, t0, 3, 5);
        drain(&mut s);
        s.handle_peer_message(t0, p, &Message::Absent { req_id: r });
        let acts = drain(&mut s);
        assert_eq!(
            requests(&acts).iter().map(|x| x.0).collect::<Vec<_>>(),
            vec![pid(3)]
        );
        assert_eq!(s.counters().absent_received, 1);
    }

    #[test]
    fn upload_slots_follow_the_measured_upload_rate() {
        let t0 = Instant::now();
        let mut s = joined(t0, 1, &[2, 3, 4, 5], no_seed());
        // Nothing measured: one slot.
        assert_eq!(s.slots(), 1);
        // A 1 MB segment of 4 s: the stream runs at 250 kB/s.
        hold_from_origin(&mut s, t0, 5);
        s.handle_peer_message(t0, pid(2), &req(5, 1));
        drain(&mut s);
        // 1 MB went out in 4 s alone: 250 kB/s feeds floor(250 / 125) = 2 uploads.
        s.handle_upload_done(t0 + Duration::from_secs(4), pid(2), 1, 1_000_000);
        assert_eq!(s.slots(), 2);
        s.handle_peer_message(t0, pid(3), &req(5, 2));
        s.handle_peer_message(t0, pid(4), &req(5, 3));
        s.handle_peer_message(t0, pid(5), &req(5, 4));
        let acts = drain(&mut s);
        let served = acts
            .iter()
            .filter(|a| matches!(a, Action::ServePeer { .. }))
            .count();
        assert_eq!(served, 2, "{acts:?}");
        // Never above the configured maximum.
        let cfg = SchedulerConfig {
            upload_slots: 1,
            ..no_seed()
        };
        let mut s = joined(t0, 1, &[2], cfg);
        fetch_from_origin(&mut s, t0, 5);
        s.handle_peer_message(t0, pid(2), &req(5, 1));
        drain(&mut s);
        s.handle_upload_done(t0 + Duration::from_millis(100), pid(2), 1, 1_000_000);
        assert_eq!(s.slots(), 1);
    }

    #[test]
    fn upload_rate_cap_refuses_when_in_debt() {
        let t0 = Instant::now();
        let cfg = SchedulerConfig {
            upload_slots: 4,
            upload_rate_cap: Some(100_000),
            upload_burst: 100_000,
            ..no_seed()
        };
        let mut s = joined(t0, 1, &[2, 3], cfg);
        hold_from_origin(&mut s, t0, 5);
        s.handle_peer_message(t0, pid(2), &req(5, 1));
        assert!(matches!(drain(&mut s)[..], [Action::ServePeer { .. }]));
        s.handle_upload_done(t0 + Duration::from_secs(1), pid(2), 1, 1_000_000);
        drain(&mut s);
        // 1 MB admitted against a 100 kB burst: 9 s of debt at 100 kB/s (the slot is free).
        s.handle_peer_message(t0 + Duration::from_secs(5), pid(3), &req(5, 2));
        assert!(matches!(
            drain(&mut s)[..],
            [Action::Refuse {
                reason: RefuseReason::Busy,
                ..
            }]
        ));
        s.handle_peer_message(t0 + Duration::from_secs(10), pid(3), &req(5, 3));
        assert!(matches!(drain(&mut s)[..], [Action::ServePeer { .. }]));
    }

    #[test]
    fn segments_without_digest_are_origin_only_unless_allowed() {
        let t0 = Instant::now();
        for allow in [false, true] {
            let cfg = SchedulerConfig {
                allow_unverified: allow,
                ..no_seed()
            };
            let mut s = Scheduler::new(t0, pid(1), cfg).unwrap();
            s.handle_peer_connected(t0, pid(2));
            s.handle_peer_message(
                t0,
                pid(2),
                &Message::Have {
                    seq: 5,
                    digest: None,
                    partial: false,
                },
            );
            let mut segs = infos(0..=5);
            for x in &mut segs {
                x.digest = None;
            }
            s.handle_playlist(t0, &live_update(&segs));
            let acts = drain(&mut s);
            if allow {
                assert_eq!(
                    requests(&acts).iter().map(|x| x.2).collect::<Vec<_>>(),
                    vec![5]
                );
            } else {
                assert_eq!(
                    origin(&acts),
                    vec![
                        (3, OriginReason::Unverified),
                        (4, OriginReason::Unverified),
                        (5, OriginReason::Unverified)
                    ]
                );
                s.handle_origin_result(t0, 4, Ok(10));
                let acts = drain(&mut s);
                assert!(!acts.iter().any(|a| matches!(a, Action::SendHave { .. })));
                s.handle_peer_message(
                    t0,
                    pid(2),
                    &Message::Request {
                        req_id: 1,
                        seq: 4,
                        digest: None,
                    },
                );
                assert!(matches!(
                    drain(&mut s)[..],
                    [Action::Refuse {
                        reason: RefuseReason::Absent,
                        ..
                    }]
                ));
                assert_eq!(s.counters().origin_unverified, 3);
            }
        }
    }

    #[test]
    fn origin_failure_retries_then_fails() {
        let t0 = Instant::now();
        let mut s = joined(t0, 1, &[], no_seed());
        s.handle_player_request(t0, 3);
        s.handle_timeout(t0 + Duration::from_secs(1));
        assert_eq!(origin(&drain(&mut s)).len(), 1);
        let t1 = t0 + Duration::from_secs(2);
        s.handle_origin_result(t1, 3, Err(OriginFailure { retryable: true }));
        assert!(drain(&mut s).is_empty());
        assert_eq!(s.poll_timeout(), Some(t1 + Duration::from_millis(250)));
        s.handle_timeout(t1 + Duration::from_millis(250));
        assert_eq!(origin(&drain(&mut s)), vec![(3, OriginReason::Retry)]);
        s.handle_origin_result(t1, 3, Err(OriginFailure { retryable: false }));
        assert_eq!(
            drain(&mut s),
            vec![Action::Failed {
                seq: 3,
                reason: FailReason::Origin
            }]
        );
        assert_eq!(s.status(3), Some(SegmentStatus::Failed));
        assert_eq!(s.counters().origin_failures, 2);
        // A new player request tries again.
        assert_eq!(s.handle_player_request(t1, 3), PlayerOutcome::Waiting);
    }

    #[test]
    fn bitfield_on_connect_and_from_peer() {
        let t0 = Instant::now();
        let mut s = joined(t0, 1, &[], no_seed());
        for seq in [3, 5] {
            fetch_from_origin(&mut s, t0, seq);
        }
        drain(&mut s);
        assert!(s.handle_peer_connected(t0, pid(2)));
        let acts = drain(&mut s);
        let Some(Action::SendBitfield {
            peer,
            base_seq,
            bits,
        }) = acts.first()
        else {
            panic!("{acts:?}")
        };
        assert_eq!((*peer, *base_seq), (pid(2), 3));
        assert_eq!(bits.iter_set().collect::<Vec<_>>(), vec![0, 2]);
        // A peer's bitfield makes it a holder.
        let mut b = BitSet::new(3);
        b.set(1);
        s.handle_peer_message(
            t0,
            pid(2),
            &Message::Bitfield {
                base_seq: 3,
                bits: b,
            },
        );
        assert_eq!(
            requests(&drain(&mut s))
                .iter()
                .map(|x| x.2)
                .collect::<Vec<_>>(),
            vec![4]
        );
        assert!(!s.handle_peer_connected(t0, pid(1)), "not to ourselves");
    }

    #[test]
    fn old_segments_are_forgotten() {
        let t0 = Instant::now();
        let mut s = joined(t0, 1, &[2], no_seed());
        let (_p, r) = active_request(&mut s, t0, 2, 5);
        for n in 6..200 {
            live(&mut s, t0, (n - 5)..=n);
        }
        let acts = drain(&mut s);
        assert!(acts.contains(&Action::CancelPeer {
            peer: pid(2),
            req_id: r
        }));
        // Window 6 + keep_behind 4.
        assert_eq!(s.tracked_segments(), 10);
        assert_eq!(s.status(5), None);
        s.handle_evicted(t0, 199);
        assert_eq!(s.status(199), None);
    }

    /// A chunked segment `seq` whose transfer from `peer` runs at 100 kB/s of 1 MB: far too
    /// slow for its deadline. Returns the request and the actions after the second report.
    fn late_chunked(
        s: &mut Scheduler,
        t0: Instant,
        peer: u8,
        seq: u64,
    ) -> (PeerId, u32, Vec<Action>) {
        let (p, r) = active_request(s, t0, peer, seq);
        s.handle_transfer_progress(t0 + Duration::from_millis(500), p, r, 5_000, 1_000_000);
        assert!(origin(&drain(s)).is_empty());
        s.handle_transfer_progress(t0 + Duration::from_millis(1500), p, r, 105_000, 1_000_000);
        (p, r, drain(s))
    }

    fn tail_of(acts: &[Action]) -> Option<(u64, u64)> {
        acts.iter().find_map(|a| match a {
            Action::FetchOriginTail { seq, from } => Some((*seq, *from)),
            _ => None,
        })
    }

    #[test]
    fn late_chunked_transfer_keeps_its_head_and_the_origin_sends_the_tail() {
        let t0 = Instant::now();
        let mut s = joined_chunked(t0, 1, &[2], no_seed());
        let (p, r, acts) = late_chunked(&mut s, t0, 2, 5);
        let (seq, from) = tail_of(&acts).expect("an origin tail");
        assert_eq!(seq, 5);
        assert_eq!(
            from % u64::from(CHUNK),
            0,
            "the tail starts at a chunk boundary"
        );
        assert!(from > 105_000 && from < 1_000_000, "from {from}");
        // The head keeps running: no whole-segment fetch, no cancel.
        assert!(origin(&acts).is_empty(), "{acts:?}");
        assert!(!acts.iter().any(|a| matches!(a, Action::CancelPeer { .. })));
        assert_eq!(s.counters().origin_tails, 1);
        // On pace for the head: nothing happens.
        s.handle_transfer_progress(t0 + Duration::from_millis(2500), p, r, 205_000, 1_000_000);
        assert!(drain(&mut s).is_empty());
        // The head reached the split and the tail is in: the driver joined them.
        s.handle_transfer_progress(t0 + Duration::from_secs(4), p, r, from, 1_000_000);
        assert!(drain(&mut s).is_empty());
        // Nothing more is expected of the head, so it never counts as stalled.
        assert!(
            s.poll_timeout()
                .is_none_or(|t| t > t0 + Duration::from_secs(5))
        );
        s.handle_tail_complete(t0 + Duration::from_secs(4), 5, 1_000_000, 1_000_000 - from);
        let acts = drain(&mut s);
        assert!(s.has(5));
        assert_eq!(s.source(5), Some(Source::Peer));
        assert!(acts.contains(&Action::CancelPeer { peer: p, req_id: r }));
        assert!(acts.iter().any(|a| matches!(
            a,
            Action::SendHave {
                seq: 5,
                partial: false,
                ..
            }
        )));
        let c = s.counters();
        assert_eq!(c.origin_tails_done, 1);
        assert_eq!(c.origin_bytes, 1_000_000 - from);
        assert_eq!(c.peer_bytes, from);
        assert_eq!(c.origin_hedges, 0);
    }

    #[test]
    fn stalled_head_gives_up_the_tail_for_a_whole_origin_fetch() {
        let t0 = Instant::now();
        let mut s = joined_chunked(t0, 1, &[2], no_seed());
        let (p, r, acts) = late_chunked(&mut s, t0, 2, 5);
        assert!(tail_of(&acts).is_some());
        // No byte for `stall_timeout`.
        let t1 = t0 + Duration::from_millis(2500);
        assert_eq!(s.poll_timeout(), Some(t1));
        s.handle_timeout(t1);
        let acts = drain(&mut s);
        assert!(acts.contains(&Action::CancelOrigin { seq: 5 }), "{acts:?}");
        assert!(acts.contains(&Action::CancelPeer { peer: p, req_id: r }));
        assert_eq!(origin(&acts), vec![(5, OriginReason::Hedge)]);
        // The whole copy completes it; a late tail result changes nothing.
        s.handle_origin_result(t0 + Duration::from_secs(3), 5, Ok(1_000_000));
        s.handle_tail_complete(t0 + Duration::from_secs(3), 5, 1_000_000, 500_000);
        assert_eq!(s.source(5), Some(Source::Origin));
        assert_eq!(s.counters().origin_tails_done, 0);
    }

    #[test]
    fn transfer_stopped_short_past_its_deadline_keeps_its_verified_head() {
        let t0 = Instant::now();
        let mut s = joined_chunked(t0, 1, &[2], no_seed());
        let (p, r) = active_request(&mut s, t0, 2, 5);
        // 300 kB of 1 MB arrive at once, then nothing (the link stays up).
        s.handle_transfer_progress(t0 + Duration::from_millis(100), p, r, 300_000, 1_000_000);
        assert!(drain(&mut s).is_empty());
        // Until the deadline nobody else holds 5; then the origin sends what is missing.
        let mut acts = Vec::new();
        while acts.is_empty() {
            let t = s.poll_timeout().expect("a deadline is pending");
            assert!(t < t0 + Duration::from_secs(10), "nothing happened");
            s.handle_timeout(t);
            acts = drain(&mut s);
        }
        let chunk = u64::from(CHUNK);
        assert_eq!(
            tail_of(&acts),
            Some((5, 300_000 / chunk * chunk)),
            "{acts:?}"
        );
        // (3 and 4, wanted since the join and held by nobody, go to the origin whole.)
        assert!(
            origin(&acts).iter().all(|o| o.0 != 5),
            "no whole fetch of 5: {acts:?}"
        );
        assert!(!acts.iter().any(|a| matches!(a, Action::CancelPeer { .. })));
        // The head is done: it never counts as stalled again, and the joined copy completes 5.
        let t = t0 + Duration::from_secs(5);
        s.handle_timeout(t);
        assert!(origin(&drain(&mut s)).iter().all(|o| o.0 != 5));
        let from = 300_000 / chunk * chunk;
        s.handle_tail_complete(t, 5, 1_000_000, 1_000_000 - from);
        assert!(s.has(5));
        let c = s.counters();
        assert_eq!((c.origin_tails_done, c.origin_hedges), (1, 0));
        assert_eq!(c.peer_bytes, from);
    }

    #[test]
    fn failed_tails_fall_back_to_the_origin_and_three_in_a_row_stop_them() {
        let t0 = Instant::now();
        let mut s = joined_chunked(t0, 1, &[2], no_seed());
        for seq in 3..=5 {
            let (p, r, acts) = late_chunked(&mut s, t0, 2, seq);
            assert!(tail_of(&acts).is_some(), "seq {seq}: {acts:?}");
            // The origin refused the range: the late head goes the usual way, at once.
            s.handle_tail_failed(t0 + Duration::from_millis(1600), seq);
            let acts = drain(&mut s);
            assert_eq!(origin(&acts), vec![(seq, OriginReason::Hedge)], "{acts:?}");
            assert!(acts.contains(&Action::CancelPeer { peer: p, req_id: r }));
            assert!(tail_of(&acts).is_none());
        }
        assert_eq!(s.counters().origin_tails_failed, 3);
        // Tails are off now: the next late transfer is hedged whole.
        live_chunked(&mut s, t0, 0..=6);
        drain(&mut s);
        let (_, _, acts) = late_chunked(&mut s, t0, 2, 6);
        assert!(tail_of(&acts).is_none());
        assert_eq!(origin(&acts), vec![(6, OriginReason::Hedge)]);
    }

    #[test]
    fn no_origin_tail_without_chunk_digests_or_when_turned_off() {
        let t0 = Instant::now();
        let mut s = joined(t0, 1, &[2], no_seed());
        let (_, _, acts) = late_chunked(&mut s, t0, 2, 5);
        assert!(tail_of(&acts).is_none());
        assert_eq!(origin(&acts), vec![(5, OriginReason::Hedge)]);
        let off = SchedulerConfig {
            origin_tails: false,
            ..no_seed()
        };
        let mut s = joined_chunked(t0, 1, &[2], off);
        let (_, _, acts) = late_chunked(&mut s, t0, 2, 5);
        assert!(tail_of(&acts).is_none());
        assert_eq!(origin(&acts), vec![(5, OriginReason::Hedge)]);
    }

    /// Drives a scheduler with random inputs and checks after each one that the incremental
    /// wake-up times (`Timers`) give exactly what recomputing every active unit gives.
    mod timers {
        use super::*;
        use proptest::prelude::*;

        #[derive(Clone, Debug)]
        enum Op {
            Playlist,
            Connect(u8),
            Disconnect(u8),
            Have(u8, u8, bool),
            Busy(u8),
            Absent(u8),
            Progress(u8, u32),
            Complete(u8, bool),
            Partial(u8),
            Origin(u8, bool),
            Player(u8),
            Size(u16),
            Timeout,
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                Just(Op::Playlist),
                (0u8..6).prop_map(Op::Connect),
                (0u8..6).prop_map(Op::Disconnect),
                (0u8..6, 0u8..8, any::<bool>()).prop_map(|(p, o, x)| Op::Have(p, o, x)),
                any::<u8>().prop_map(Op::Busy),
                any::<u8>().prop_map(Op::Absent),
                (any::<u8>(), 0u32..1_000_000).prop_map(|(r, b)| Op::Progress(r, b)),
                (any::<u8>(), any::<bool>()).prop_map(|(r, v)| Op::Complete(r, v)),
                (0u8..8).prop_map(Op::Partial),
                (0u8..8, any::<bool>()).prop_map(|(o, ok)| Op::Origin(o, ok)),
                (0u8..8).prop_map(Op::Player),
                (1u16..400).prop_map(Op::Size),
                Just(Op::Timeout),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(96))]
            #[test]
            fn incremental_wake_times_match_a_full_recomputation(
                ops in proptest::collection::vec((op(), 0u64..900), 1..160),
                stripes in 1u8..=4,
                chunked in any::<bool>(),
            ) {
                let t0 = Instant::now();
                let cfg = SchedulerConfig {
                    stripes: Stripes::new(stripes).unwrap(),
                    ..SchedulerConfig::default()
                };
                let chunk = chunked.then_some(CHUNK);
                let mut s = Scheduler::new(t0, pid(9), cfg).unwrap();
                let mut now = t0;
                let mut newest = 3u64;
                // Requests the scheduler made: (peer, req id, unit).
                let mut reqs: Vec<(PeerId, u32, u64)> = Vec::new();
                for (op, step_ms) in ops {
                    now += Duration::from_millis(step_ms);
                    let units: Vec<u64> = s.segs.keys().copied().collect();
                    let unit = |o: u8| units.get(usize::from(o) % units.len().max(1)).copied();
                    let req = |r: u8| reqs.get(usize::from(r) % reqs.len().max(1)).copied();
                    match op {
                        Op::Playlist => {
                            newest += 1;
                            let st = Stripes::new(stripes).unwrap();
                            let mut list = Vec::new();
                            for seq in newest.saturating_sub(5)..=newest {
                                for j in 0..stripes {
                                    list.push(SegmentInfo {
                                        seq: st.unit(seq, j),
                                        digest: dig(seq * 8 + u64::from(j)),
                                        duration: TD / u32::from(stripes),
                                        size_hint: Some(250_000),
                                        chunk_size: chunk,
                                    });
                                }
                            }
                            s.handle_playlist(now, &live_update(&list));
                        }
                        Op::Connect(p) => {
                            s.handle_peer_connected(now, pid(p));
                        }
                        Op::Disconnect(p) => s.handle_peer_disconnected(now, pid(p)),
                        Op::Have(p, o, partial) => {
                            if let Some(u) = unit(o) {
                                let digest = s.segs.get(&u).and_then(|x| x.digest);
                                s.handle_peer_message(now, pid(p), &Message::Have {
                                    seq: u,
                                    digest,
                                    partial,
                                });
                            }
                        }
                        Op::Busy(r) => {
                            if let Some((p, id, _)) = req(r) {
                                s.handle_peer_message(now, p, &Message::Busy { req_id: id });
                            }
                        }
                        Op::Absent(r) => {
                            if let Some((p, id, _)) = req(r) {
                                s.handle_peer_message(now, p, &Message::Absent { req_id: id });
                            }
                        }
                        Op::Progress(r, b) => {
                            if let Some((p, id, _)) = req(r) {
                                s.handle_transfer_progress(now, p, id, u64::from(b) / 4, 250_000);
                            }
                        }
                        Op::Complete(r, ok) => {
                            if let Some((p, id, _)) = req(r) {
                                s.handle_transfer_complete(now, p, id, 250_000, ok);
                            }
                        }
                        Op::Partial(o) => {
                            if let Some(u) = unit(o) {
                                s.handle_partial_verified(now, u);
                            }
                        }
                        Op::Origin(o, ok) => {
                            if let Some(u) = unit(o) {
                                let result = if ok {
                                    Ok(250_000)
                                } else {
                                    Err(OriginFailure { retryable: true })
                                };
                                s.handle_origin_result(now, u, result);
                            }
                        }
                        Op::Player(o) => {
                            if let Some(u) = unit(o) {
                                let seq = s.cfg.stripes.seq_of(u);
                                s.handle_player_request(now, seq);
                            }
                        }
                        Op::Size(n) => s.handle_swarm_size(now, usize::from(n)),
                        Op::Timeout => {
                            if let Some(t) = s.poll_timeout() {
                                now = now.max(t);
                            }
                            s.handle_timeout(now);
                        }
                    }
                    for a in drain(&mut s) {
                        if let Action::RequestPeer { peer, req_id, seq, .. } = a {
                            reqs.push((peer, req_id, seq));
                        }
                    }
                    prop_assert_eq!(s.poll_timeout(), s.compute_timeout());
                    // Asked twice without an input in between: the same answer.
                    prop_assert_eq!(s.poll_timeout(), s.compute_timeout());
                }
            }
        }
    }
}
