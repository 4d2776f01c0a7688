//! Pure decision helpers: rendezvous hashing, peer scoring and choice, seed-fraction adaptation
//! and the upload token bucket. No state beyond what is passed in; everything is unit-tested.
//!
//! # Rendezvous hash
//!
//! Every agent must rank the swarm members for a segment the same way, whatever its build, so
//! the hash is defined here rather than borrowed from `std` (whose `DefaultHasher` output may
//! change between Rust releases): the 20 peer-id bytes are read as three little-endian words
//! (8, 8 and 4 bytes) and folded with the sequence number through the SplitMix64 finaliser.
//! Changing this function changes who fetches from the origin, so it is versioned with the
//! peer protocol.

use std::time::{Duration, Instant};

use crate::core::ids::PeerId;

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64 finaliser: a bijective 64-bit mix with full avalanche.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn words(peer: &PeerId) -> [u64; 3] {
    let b = &peer.0;
    let mut w0 = [0u8; 8];
    let mut w1 = [0u8; 8];
    let mut w2 = [0u8; 8];
    w0.copy_from_slice(&b[0..8]);
    w1.copy_from_slice(&b[8..16]);
    w2[..4].copy_from_slice(&b[16..20]);
    [
        u64::from_le_bytes(w0),
        u64::from_le_bytes(w1),
        u64::from_le_bytes(w2),
    ]
}

/// Rendezvous (highest-random-weight) score of `peer` for segment `seq`. Higher wins.
pub fn rendezvous_score(seq: u64, peer: &PeerId) -> u64 {
    let mut h = mix64(seq.wrapping_add(GOLDEN));
    for w in words(peer) {
        h = mix64(h ^ w).wrapping_add(GOLDEN);
    }
    h
}

/// The score mapped to `[0, 1)`, uniformly distributed over peers and segments.
pub fn unit_interval(score: u64) -> f64 {
    (score >> 11) as f64 / (1u64 << 53) as f64
}

/// Rank of `me` among `me` plus `others` for `seq` (0 = highest score). Ties (identical ids)
/// count against `me`, so duplicates never make two agents believe they are both first.
pub fn rendezvous_rank<'a>(
    seq: u64,
    me: &PeerId,
    others: impl IntoIterator<Item = &'a PeerId>,
) -> usize {
    let mine = rendezvous_score(seq, me);
    others
        .into_iter()
        .filter(|p| *p != me)
        .filter(|p| rendezvous_score(seq, p) >= mine)
        .count()
}

/// Whether `me` is one of the origin fetchers of `seq`.
///
/// * `members_known` = 1 + connected peers, `swarm_size` = the best estimate of the whole swarm
///   (tracker counts), `k` = wanted origin copies per swarm (may be fractional-adapted).
/// * **Full view** (`swarm_size <= members_known`): every agent knows every member, so all agents
///   compute the same ranking and exactly `ceil(k)` of them elect themselves.
/// * **Partial view** (large swarm, each agent knows a neighbourhood only): top-k among a
///   neighbourhood would elect about one agent *per neighbourhood* (`N·k/(d+1)` copies). Instead
///   each agent compares its own uniform score against the quantile `k / N`, which elects `k`
///   agents in expectation across the whole swarm regardless of who knows whom.
pub fn is_fetcher(
    seq: u64,
    me: &PeerId,
    rank_among_known: usize,
    members_known: usize,
    swarm_size: usize,
    k: f64,
) -> bool {
    let n = swarm_size.max(members_known).max(1);
    let k = k.max(0.0);
    if n <= members_known {
        (rank_among_known as f64) < k.ceil()
    } else {
        let u = unit_interval(rendezvous_score(seq, me));
        u >= 1.0 - k / n as f64
    }
}

/// Weights of the peer score. See [`peer_score`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreWeights {
    /// Throughput assumed for a peer we never downloaded from, bytes/s.
    pub unknown_throughput: f64,
    /// Score divisor per recent failure (timeouts, absent answers, stalls).
    pub failure_penalty: f64,
    /// Score divisor per recent busy refusal.
    pub busy_penalty: f64,
    /// Score divisor per request we already have in flight to the peer.
    pub load_penalty: f64,
    /// Relative jitter (deterministic per requester, peer and segment) that spreads requesters
    /// over equally good holders.
    pub jitter: f64,
    /// EWMA weight of a new throughput sample.
    pub ewma_alpha: f64,
}

impl Default for ScoreWeights {
    fn default() -> Self {
        ScoreWeights {
            unknown_throughput: 250_000.0,
            failure_penalty: 1.0,
            busy_penalty: 0.5,
            load_penalty: 1.0,
            jitter: 0.3,
            ewma_alpha: 0.3,
        }
    }
}

/// What the scorer knows about one candidate peer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PeerStats {
    /// Throughput EWMA in bytes/s, if any transfer from the peer finished.
    pub throughput: Option<f64>,
    /// Recent failures (decays on success).
    pub failures: f64,
    /// Recent busy refusals (decays on success).
    pub busy: f64,
    /// Requests we have in flight to this peer.
    pub in_flight: u32,
}

/// Score of a candidate holder: expected throughput divided by penalties. Higher is better.
pub fn peer_score(s: &PeerStats, w: &ScoreWeights) -> f64 {
    let tput = s.throughput.unwrap_or(w.unknown_throughput).max(1.0);
    tput / (1.0 + w.failure_penalty * s.failures)
        / (1.0 + w.busy_penalty * s.busy)
        / (1.0 + w.load_penalty * f64::from(s.in_flight))
}

/// Index of the best candidate, or `None` if there are none. `jitter_key` (derived from the
/// requester and segment) spreads many requesters over holders with similar scores.
pub fn choose_peer(
    candidates: &[(PeerId, PeerStats)],
    jitter_key: u64,
    w: &ScoreWeights,
) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, (peer, stats)) in candidates.iter().enumerate() {
        let j = unit_interval(rendezvous_score(jitter_key, peer));
        let s = peer_score(stats, w) * (1.0 + w.jitter * j);
        if best.is_none_or(|(_, b)| s > b) {
            best = Some((i, s));
        }
    }
    best.map(|(i, _)| i)
}

/// When to reload a live media playlist (RFC 8216 §6.3.4, the rule hls.js follows too): one
/// target duration after starting a load that found the playlist changed (or loaded it for the
/// first time), half a target duration after one that found it unchanged. Reloading every half
/// target duration regardless finds a new segment a quarter target duration sooner on average
/// (its lag behind publication is uniform over half a target duration instead of a whole one),
/// but doubles the origin's playlist requests and breaks the RFC's MUST; the simulator puts
/// the cost of complying at under a point of offload (BENCHMARKS.md).
pub fn next_reload(load_started: Instant, changed: bool, target: Duration) -> Instant {
    load_started + if changed { target } else { target / 2 }
}

/// Exponentially weighted moving average.
pub fn ewma(prev: Option<f64>, sample: f64, alpha: f64) -> f64 {
    match prev {
        Some(p) => p + alpha * (sample - p),
        None => sample,
    }
}

/// Throughput a transfer would need to finish `remaining` bytes by `deadline`, or `None` if the
/// transfer looks on time. `rate` is the measured rate in bytes/s.
pub fn projected_completion(now: Instant, remaining: u64, rate: f64) -> Option<Instant> {
    if remaining == 0 {
        return Some(now);
    }
    if rate <= 0.0 || !rate.is_finite() {
        return None;
    }
    let secs = remaining as f64 / rate;
    Duration::try_from_secs_f64(secs).ok().map(|d| now + d)
}

/// How a live segment ended up in our cache, for the seed-fraction controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeedOutcome {
    /// A peer delivered it: seeding around us was dense enough.
    FromPeer,
    /// We reached the deadline and no peer had even announced it: too few seeds near us.
    NoHolderFallback,
    /// We went to the origin although peers had it (busy, or too slow for the deadline): the
    /// segment spread too slowly around us. More seeds help only up to the upload limit, so the
    /// increase is gentler.
    ScarcityFallback,
}

/// Parameters of [`adapt_seed_fraction`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SeedControl {
    /// Lower bound of the fraction.
    pub min: f64,
    /// Upper bound of the fraction.
    pub max: f64,
    /// Multiplier after a no-holder fallback (≥ 1).
    pub up: f64,
    /// Multiplier after a fallback although holders were known (≥ 1).
    pub up_scarce: f64,
    /// Multiplier after a peer delivery (< 1).
    pub down: f64,
}

/// Multiplicative control of the fraction of agents that fetch each new
/// live segment from the origin at once. See the scheduler module docs for why.
pub fn adapt_seed_fraction(rho: f64, outcome: SeedOutcome, c: &SeedControl) -> f64 {
    let next = match outcome {
        SeedOutcome::FromPeer => rho * c.down,
        SeedOutcome::NoHolderFallback => rho * c.up,
        SeedOutcome::ScarcityFallback => rho * c.up_scarce,
    };
    next.clamp(c.min, c.max)
}

/// Upload rate limiter: a token bucket refilled from `now`. Admission takes a whole segment at
/// once and may drive the bucket negative (debt), so the long-run rate never exceeds the cap
/// while a single segment is never split.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket of `burst` bytes refilled at `rate` bytes/s.
    pub fn new(now: Instant, rate: u64, burst: u64) -> Self {
        TokenBucket {
            rate: rate as f64,
            burst: burst as f64,
            tokens: burst as f64,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        self.last = now;
    }

    /// Takes `bytes` if the bucket is not in debt. Returns whether the upload may start.
    pub fn try_take(&mut self, now: Instant, bytes: u64) -> bool {
        self.refill(now);
        if self.tokens <= 0.0 {
            return false;
        }
        self.tokens -= bytes as f64;
        true
    }

    /// Current balance in bytes (negative = debt).
    pub fn balance(&mut self, now: Instant) -> f64 {
        self.refill(now);
        self.tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid(i: u32) -> PeerId {
        let mut b = [b'x'; 20];
        b[..8].copy_from_slice(b"-HC0001-");
        b[8..12].copy_from_slice(&i.to_le_bytes());
        PeerId(b)
    }

    #[test]
    fn rendezvous_is_stable_and_spread() {
        // Golden value: guards against accidental changes of the election function.
        assert_eq!(rendezvous_score(1, &pid(1)), rendezvous_score(1, &pid(1)));
        assert_ne!(rendezvous_score(1, &pid(1)), rendezvous_score(2, &pid(1)));
        assert_ne!(rendezvous_score(1, &pid(1)), rendezvous_score(1, &pid(2)));
        // Winner distribution over 8 peers and 8000 segments is roughly uniform.
        let peers: Vec<PeerId> = (0..8).map(pid).collect();
        let mut wins = [0u32; 8];
        for seq in 0..8000 {
            let (i, _) = peers
                .iter()
                .enumerate()
                .max_by_key(|(_, p)| rendezvous_score(seq, p))
                .unwrap();
            wins[i] += 1;
        }
        for w in wins {
            assert!((850..1150).contains(&w), "{wins:?}");
        }
    }

    #[test]
    fn unit_interval_bounds() {
        assert_eq!(unit_interval(0), 0.0);
        assert!(unit_interval(u64::MAX) < 1.0);
    }

    #[test]
    fn rank_and_full_view_election_picks_exactly_k() {
        let peers: Vec<PeerId> = (0..6).map(pid).collect();
        for seq in 0..200 {
            for k in [1.0, 2.0] {
                let elected = peers
                    .iter()
                    .filter(|me| {
                        let rank = rendezvous_rank(seq, me, peers.iter());
                        is_fetcher(seq, me, rank, 6, 6, k)
                    })
                    .count();
                assert_eq!(elected, k as usize, "seq {seq}");
            }
        }
        // Fractional k rounds up.
        let me = &peers[0];
        let rank = rendezvous_rank(3, me, peers.iter());
        assert_eq!(is_fetcher(3, me, rank, 6, 6, 0.2), rank == 0);
    }

    #[test]
    fn partial_view_election_is_k_in_expectation() {
        // 10_000 agents each knowing only a neighbourhood: expected fetchers = k.
        let n = 10_000usize;
        let mut total = 0usize;
        let segs = 200u64;
        for seq in 0..segs {
            total += (0..n as u32)
                .filter(|&i| is_fetcher(seq, &pid(i), 0, 21, n, 3.0))
                .count();
        }
        let mean = total as f64 / segs as f64;
        assert!((2.5..3.5).contains(&mean), "mean fetchers {mean}");
    }

    #[test]
    fn score_prefers_fast_unloaded_reliable_peers() {
        let w = ScoreWeights::default();
        let base = PeerStats {
            throughput: Some(1e6),
            failures: 0.0,
            busy: 0.0,
            in_flight: 0,
        };
        let slow = PeerStats {
            throughput: Some(1e5),
            ..base
        };
        let failing = PeerStats {
            failures: 2.0,
            ..base
        };
        let busy = PeerStats { busy: 3.0, ..base };
        let loaded = PeerStats {
            in_flight: 2,
            ..base
        };
        let unknown = PeerStats {
            throughput: None,
            ..base
        };
        let s = |x: &PeerStats| peer_score(x, &w);
        assert!(s(&base) > s(&slow));
        assert!(s(&base) > s(&failing));
        assert!(s(&base) > s(&busy));
        assert!(s(&base) > s(&loaded));
        assert_eq!(s(&unknown), w.unknown_throughput);
        let cands = vec![(pid(1), slow), (pid(2), base), (pid(3), failing)];
        assert_eq!(choose_peer(&cands, 5, &w), Some(1));
        assert_eq!(choose_peer(&[], 5, &w), None);
    }

    #[test]
    fn jitter_spreads_equal_holders() {
        let w = ScoreWeights::default();
        let st = PeerStats {
            throughput: None,
            failures: 0.0,
            busy: 0.0,
            in_flight: 0,
        };
        let cands: Vec<_> = (0..4).map(|i| (pid(i), st)).collect();
        let mut hits = [0; 4];
        for key in 0..400 {
            hits[choose_peer(&cands, key, &w).unwrap()] += 1;
        }
        assert!(hits.iter().all(|&h| h > 50), "{hits:?}");
    }

    #[test]
    fn ewma_and_projection() {
        assert_eq!(ewma(None, 10.0, 0.5), 10.0);
        assert_eq!(ewma(Some(10.0), 20.0, 0.5), 15.0);
        let t = Instant::now();
        assert_eq!(
            projected_completion(t, 1000, 500.0),
            Some(t + Duration::from_secs(2))
        );
        assert_eq!(projected_completion(t, 0, 0.0), Some(t));
        assert_eq!(projected_completion(t, 10, 0.0), None);
        assert_eq!(projected_completion(t, 10, f64::NAN), None);
    }

    #[test]
    fn seed_fraction_control() {
        let c = SeedControl {
            min: 0.01,
            max: 0.5,
            up: 2.0,
            up_scarce: 1.5,
            down: 0.5,
        };
        assert_eq!(
            adapt_seed_fraction(0.1, SeedOutcome::NoHolderFallback, &c),
            0.2
        );
        assert_eq!(
            adapt_seed_fraction(0.4, SeedOutcome::NoHolderFallback, &c),
            0.5
        );
        assert_eq!(adapt_seed_fraction(0.1, SeedOutcome::FromPeer, &c), 0.05);
        assert_eq!(adapt_seed_fraction(0.015, SeedOutcome::FromPeer, &c), 0.01);
        assert!((adapt_seed_fraction(0.1, SeedOutcome::ScarcityFallback, &c) - 0.15).abs() < 1e-12);
    }

    #[test]
    fn token_bucket_caps_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(t0, 1000, 500);
        assert!(b.try_take(t0, 2000)); // burst admits one segment, into debt
        assert!(!b.try_take(t0, 1));
        assert!(!b.try_take(t0 + Duration::from_millis(1400), 1)); // -1500 + 1400 = -100
        assert!(b.try_take(t0 + Duration::from_millis(1600), 1));
        let mut b = TokenBucket::new(t0, 1000, 500);
        assert_eq!(b.balance(t0 + Duration::from_secs(10)), 500.0); // capped at burst
    }

    #[test]
    fn reload_waits_a_target_duration_after_a_change_and_half_after_none() {
        let t = Instant::now();
        let td = Duration::from_secs(4);
        assert_eq!(next_reload(t, true, td), t + td);
        assert_eq!(next_reload(t, false, td), t + Duration::from_secs(2));
    }
}
