//! When to reload a live media playlist so that a new segment is seen soon after the origin
//! publishes it, within RFC 8216 §6.3.4.
//!
//! The RFC's rule alone (one target duration after a load that found the playlist changed,
//! half of one after a load that did not) locks an agent to whatever phase its first load
//! had: an agent learns of each new segment a uniform 0 to 1 target duration after its
//! publication, half a target duration on average. In a swarm that delay is paid before the
//! spreading even starts (in the simulator at N = 1,000: an agent's first request for a new
//! unit came 1.9 s after publication at the median, with 2 s segments).
//!
//! [`EdgeClock`] learns the origin's publication phase from the loads themselves and aims each
//! reload just after the next segment's expected publication. It never reloads earlier than
//! the RFC allows; waiting *longer* than the rule is always allowed, so an agent whose phase
//! is late waits one segment longer once and is early ever after.
//!
//! # Model
//!
//! A live encoder publishes segment `n` when it is complete, so `publish(n) = M(n) + θ`, where
//! `M(n)` is the running sum of `EXTINF` durations up to and including `n` and `θ` is an
//! unknown constant offset on the agent's clock. Every load that was sent at `S`, answered at
//! `R`, and listed `n` as its newest segment says:
//! * `θ ≤ R − M(n)` (segment `n` was there), and
//! * `θ > S − M(n + 1)` (segment `n + 1` was not; known once `n + 1`'s duration is).
//!
//! The clock keeps the interval `(θ_lo, θ_hi]` from these. While it is wider than
//! [`RESOLUTION`], the next reload probes its middle: a probe that finds the segment lowers
//! `θ_hi`, one that does not raises `θ_lo` (and the RFC's half target duration passes before
//! the next try). Once it is narrow, reloads go [`GUARD`] after the latest possible
//! publication, `M(n + 1) + θ_hi`. The lower bound relaxes by [`DRIFT_PER_SEGMENT`] per segment,
//! so a clock drifting between the encoder and the agent (or `EXTINF` values rounded by the
//! packager) is probed again now and then; bounds that contradict each other (a segment later
//! than the model allows: publishing jitter, an encoder restart) restart the estimate from the
//! newest load. The next segment's duration is taken as the newest one's.
//!
//! # Digests
//!
//! A segment is of use to the swarm only once its digest is published too, and a digest
//! publisher (`publish-digests --watch`) writes the sidecar a moment after the packager
//! writes the playlist (up to its scan interval, 200 ms by default). A reload aimed at the
//! playlist alone would then find the sidecar without the new segment and fetch it twice. So
//! the driver reports whether the first sidecar fetch after a reload lacked the new segment
//! ([`EdgeClock::note_digests`]), and the aim moves later by [`DIGEST_STEP`] each time it did
//! (up to [`DIGEST_LAG_MAX`]) and earlier by a fifth of that each time it did not: the reloads
//! settle where the sidecar is nearly always ready.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Probe until the publication phase is known to within this many seconds.
pub const RESOLUTION: f64 = 0.1;

/// Reload this long after the latest possible publication (seconds): origins and CDNs take a
/// moment to make a new segment visible everywhere.
pub const GUARD: f64 = 0.05;

/// The lower bound of the phase relaxes by this many seconds per new segment.
pub const DRIFT_PER_SEGMENT: f64 = 0.0005;

/// Wait one more segment to move the phase when the rule's reload would land this fraction of a
/// target duration or more after the aimed time (below it the shift is not worth a late
/// segment).
const SHIFT_MIN: f64 = 0.1;

/// The aim moves this much later when the sidecar lacked the new segment (seconds).
pub const DIGEST_STEP: f64 = 0.05;

/// The largest delay for the sidecar (seconds).
pub const DIGEST_LAG_MAX: f64 = 0.5;

/// Segments at least this fraction of the target duration long count as steady (see
/// [`EdgeClock::next_reload`]).
const STEADY: f64 = 0.95;

/// Loads in a row whose newest segment is older than one seen before that mean a new encoder
/// session rather than a stale copy.
const STALE_RESTART: u8 = 3;

/// Media ends remembered (newest segments).
const KEEP: usize = 16;

/// Learns the publication phase of one live media playlist. See the module docs.
#[derive(Clone, Debug)]
pub struct EdgeClock {
    base: Instant,
    /// `(seq, M(seq))` of the newest segments, oldest first.
    ends: VecDeque<(u64, f64)>,
    /// Duration of the newest segment (the estimate for the next one), seconds.
    last_dur: f64,
    theta_lo: f64,
    theta_hi: f64,
    /// The newest load: when it started and its newest segment, to bound `θ` from below once
    /// the following segment's duration is known.
    pending: Option<(f64, u64)>,
    /// How long after the playlist the digests of a new segment are published (seconds, as
    /// learned from [`EdgeClock::note_digests`]).
    digest_lag: f64,
    /// Loads in a row that listed an older newest segment than we knew.
    stale: u8,
}

impl EdgeClock {
    /// A clock with no observations; `base` is any instant not later than the first load.
    pub fn new(base: Instant) -> Self {
        EdgeClock {
            base,
            ends: VecDeque::new(),
            last_dur: 0.0,
            theta_lo: f64::NEG_INFINITY,
            theta_hi: f64::INFINITY,
            pending: None,
            digest_lag: 0.0,
            stale: 0,
        }
    }

    /// The first digest-sidecar fetch after a reload that listed a new segment `lacked` its
    /// digest or not. See the module docs, "Digests".
    pub fn note_digests(&mut self, lacked: bool) {
        self.digest_lag = if lacked {
            (self.digest_lag + DIGEST_STEP).min(DIGEST_LAG_MAX)
        } else {
            (self.digest_lag - DIGEST_STEP / 5.0).max(0.0)
        };
    }

    fn secs(&self, t: Instant) -> f64 {
        t.saturating_duration_since(self.base).as_secs_f64()
    }

    fn end_of(&self, seq: u64) -> Option<f64> {
        self.ends.iter().find(|(s, _)| *s == seq).map(|(_, m)| *m)
    }

    /// The newest segment seen.
    pub fn newest(&self) -> Option<u64> {
        self.ends.back().map(|(s, _)| *s)
    }

    fn restart(&mut self) {
        self.stale = 0;
        self.ends.clear();
        self.theta_lo = f64::NEG_INFINITY;
        self.theta_hi = f64::INFINITY;
        self.pending = None;
    }

    /// A load sent at `sent` and answered at `answered` returned a live playlist whose
    /// segments are `segments` (`(media sequence number, EXTINF seconds)`, in playlist order).
    /// Returns whether it listed a segment newer than any seen before (the RFC's "changed").
    pub fn observe(&mut self, sent: Instant, answered: Instant, segments: &[(u64, f64)]) -> bool {
        let Some(&(newest, newest_dur)) = segments.last() else {
            return false;
        };
        let p = self.secs(sent);
        let r = self.secs(answered).max(p);
        if self.newest().is_none_or(|known| newest >= known) {
            self.stale = 0;
        }
        let dur = |d: f64| if d.is_finite() && d > 0.0 { d } else { 0.0 };
        match self.newest() {
            Some(known) if newest < known => {
                // An older copy (a CDN edge behind another) says nothing about the
                // publication; the sequence going back on several loads in a row is a new
                // encoder session.
                self.stale += 1;
                if self.stale < STALE_RESTART {
                    return false;
                }
                self.restart();
            }
            Some(known) if newest == known => {
                // Unchanged: nothing new is known about `newest + 1` beyond the lower bound.
                self.bound_below(p, newest);
                return false;
            }
            Some(known) => {
                // Extend the running sum over the new segments; a hole (the playlist moved on
                // by more than its window since we last saw it) restarts the estimate.
                if segments.first().is_none_or(|&(s, _)| s > known + 1) {
                    self.restart();
                } else {
                    let mut m = self.ends.back().map_or(0.0, |(_, m)| *m);
                    for &(s, d) in segments.iter().filter(|(s, _)| *s > known) {
                        m += dur(d);
                        self.push_end(s, m);
                    }
                }
            }
            None => {}
        }
        if self.ends.is_empty() {
            self.push_end(newest, 0.0);
            self.theta_lo = f64::NEG_INFINITY;
            self.theta_hi = f64::INFINITY;
        } else {
            // New segments: the lower bound relaxes a little (drift between the clocks).
            self.theta_lo -= DRIFT_PER_SEGMENT;
        }
        self.last_dur = dur(newest_dur);
        // The previous load's newest successor is now known: it was published after that load.
        if let Some((pp, pn)) = self.pending.take()
            && let Some(m_next) = self.end_of(pn + 1)
        {
            self.theta_lo = self.theta_lo.max(pp - m_next);
        }
        let m = self.end_of(newest).unwrap_or(0.0);
        self.theta_hi = self.theta_hi.min(r - m);
        if self.theta_lo >= self.theta_hi {
            // Contradiction: restart from this load's evidence alone.
            self.theta_lo = f64::NEG_INFINITY;
            self.theta_hi = r - m;
        }
        self.pending = Some((p, newest));
        true
    }

    /// An unchanged load at `p`: `newest + 1` was not published yet.
    fn bound_below(&mut self, p: f64, newest: u64) {
        let Some(m) = self.end_of(newest) else {
            return;
        };
        // Its duration is not known yet; the newest one's is the estimate, which keeps the
        // bound from claiming more than the load showed when durations are steady.
        let lo = p - (m + self.last_dur);
        if lo >= self.theta_hi {
            // Later than the model allows (drift, jitter, a stalled encoder). Assume the
            // smallest shift that explains it; if the shift was larger, the next aimed load
            // finds nothing again and the bound moves up once more.
            self.theta_lo = lo;
            self.theta_hi = lo + RESOLUTION;
        } else {
            self.theta_lo = self.theta_lo.max(lo);
        }
        self.pending = Some((p, newest));
    }

    fn push_end(&mut self, seq: u64, m: f64) {
        if self.ends.len() == KEEP {
            self.ends.pop_front();
        }
        self.ends.push_back((seq, m));
    }

    /// When to reload next, after a load that started at `load_started` and found the
    /// playlist `changed` or not: never before the RFC's rule ([`crate::core::policy::next_reload`]),
    /// at the next segment's expected publication when that is later.
    pub fn next_reload(&self, load_started: Instant, changed: bool, target: Duration) -> Instant {
        let rule = crate::core::policy::next_reload(load_started, changed, target);
        let Some(aim) = self.aim() else {
            return rule;
        };
        let td = target.as_secs_f64();
        let rule_s = self.secs(rule);
        let mut at = aim;
        if at < rule_s {
            // Too early for the rule. After a changed load, wait for the following segment
            // instead when the rule would land far past the aim: the phase moves early once
            // and stays there. After an unchanged load, take the rule's retry.
            // Only with segments about a target duration long: shorter ones arrive faster
            // than the rule lets us reload, so no phase can be kept.
            if changed && rule_s - at >= SHIFT_MIN * td && self.last_dur >= STEADY * td {
                at += self.last_dur;
            } else {
                return rule;
            }
        }
        // Never more than a target duration past the rule (a model gone wrong costs little).
        let at = at.min(rule_s + td).max(rule_s);
        Duration::try_from_secs_f64(at).map_or(rule, |d| self.base + d)
    }

    /// Aimed reload time (seconds after `base`) for the segment after the newest, if known.
    fn aim(&self) -> Option<f64> {
        let &(_, m) = self.ends.back()?;
        let lo = self.lower()?;
        let m_next = m + self.last_dur;
        let theta = if self.theta_hi - lo > RESOLUTION {
            (lo + self.theta_hi) / 2.0
        } else {
            self.theta_hi + GUARD + self.digest_lag
        };
        Some(m_next + theta)
    }

    /// The effective lower bound of the phase: without one yet, the phase lies within one
    /// segment duration below `θ_hi`. `None` until `θ_hi` and a duration are known.
    fn lower(&self) -> Option<f64> {
        (self.theta_hi.is_finite() && self.last_dur > 0.0)
            .then(|| self.theta_lo.max(self.theta_hi - self.last_dur))
    }

    /// Whether reloads now land just after each publication: the phase is known to within
    /// [`RESOLUTION`] and segments last about a `target` duration (shorter ones keep the RFC
    /// rule alone, see [`EdgeClock::next_reload`]).
    pub fn aligned(&self, target: Duration) -> bool {
        self.uncertainty().is_some_and(|u| u <= RESOLUTION)
            && self.last_dur >= STEADY * target.as_secs_f64()
    }

    /// Width of the phase interval, seconds (`None` before two observations bound it).
    pub fn uncertainty(&self) -> Option<f64> {
        self.lower().map(|lo| self.theta_hi - lo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An origin publishing segment `n` at `offset + Σ durations`, and an agent reloading by
    /// the clock. Returns, per segment, how long after its publication the agent first saw it,
    /// and checks the RFC's minimum gaps on every reload.
    fn run(
        use_clock: bool,
        offset: f64,
        durs: impl Fn(u64) -> f64,
        segments: u64,
        first_load: f64,
        visibility_jitter: impl Fn(u64) -> f64,
    ) -> (Vec<f64>, usize) {
        let base = Instant::now();
        let at = |s: f64| base + Duration::from_secs_f64(s);
        let target = Duration::from_secs(2);
        // publish[n]: when segment n appears (n = 0 is there from the start).
        let mut publish = vec![offset];
        for n in 1..segments {
            let p = publish[n as usize - 1] + durs(n);
            publish.push(p);
        }
        let visible = |n: u64| publish[n as usize] + visibility_jitter(n);
        let mut clock = EdgeClock::new(base);
        let mut t = first_load;
        let mut seen = vec![f64::NAN; segments as usize];
        let mut unchanged = 0;
        while t < publish[segments as usize - 1] {
            let newest = (0..segments).rev().find(|&n| visible(n) <= t).unwrap_or(0);
            let lo = newest.saturating_sub(5);
            let list: Vec<(u64, f64)> = (lo..=newest).map(|n| (n, durs(n))).collect();
            let changed = clock.observe(at(t), at(t), &list);
            if !changed {
                unchanged += 1;
            }
            for n in lo..=newest {
                if seen[n as usize].is_nan() {
                    seen[n as usize] = t - publish[n as usize];
                }
            }
            let next = if use_clock {
                clock.next_reload(at(t), changed, target)
            } else {
                crate::core::policy::next_reload(at(t), changed, target)
            };
            let next_s = next.duration_since(base).as_secs_f64();
            let min_gap = if changed { 2.0 } else { 1.0 };
            assert!(
                next_s - t >= min_gap - 1e-6,
                "reload {next_s:.3} only {:.3} s after the load at {t:.3} (changed: {changed})",
                next_s - t
            );
            t = next_s;
        }
        (seen, unchanged)
    }

    fn late_lag(seen: &[f64], from: usize) -> f64 {
        seen[from..seen.len() - 1]
            .iter()
            .copied()
            .filter(|x| !x.is_nan())
            .fold(0.0, f64::max)
    }

    #[test]
    fn a_late_phase_moves_to_just_after_publication() {
        // The first load lands 0.9 s after a publication: the RFC rule alone would see every
        // segment 0.9 s late.
        let (seen, unchanged) = run(true, 0.0, |_| 2.0, 200, 0.9, |_| 0.0);
        let lag = late_lag(&seen, 20);
        assert!(lag <= RESOLUTION + GUARD + 1e-6, "worst lag {lag:.3} s");
        assert!(unchanged <= 8, "{unchanged} unchanged loads");
    }

    #[test]
    fn every_starting_phase_converges() {
        for k in 0..20 {
            let first = 0.001 + 0.1 * f64::from(k);
            let (seen, _) = run(true, 0.37, |_| 2.0, 120, 0.37 + first, |_| 0.0);
            let lag = late_lag(&seen, 30);
            assert!(
                lag <= RESOLUTION + GUARD + 0.01,
                "first load {first:.2} s after: worst lag {lag:.3} s"
            );
        }
    }

    fn mean(v: &[f64]) -> f64 {
        v.iter().sum::<f64>() / v.len() as f64
    }

    #[test]
    fn clock_drift_is_followed() {
        // The encoder's segments last 1 ms more than their EXTINF says, so every publication
        // is a little later than the model predicts.
        let drift = |n: u64| n as f64 * 0.001;
        let (seen, unchanged) = run(true, 0.0, |_| 2.0, 400, 1.3, drift);
        let (rule, _) = run(false, 0.0, |_| 2.0, 400, 1.3, drift);
        let (late, base) = (mean(&seen[50..399]), mean(&rule[50..399]));
        let over = seen[50..399].iter().filter(|&&x| x > 0.5).count();
        assert!(
            late < 0.4 && late < base / 2.0,
            "mean lag {late:.3} s, rule alone {base:.3} s"
        );
        assert!(over < 20, "{over} of 349 segments more than 0.5 s late");
        assert!(unchanged <= 40, "{unchanged} unchanged loads");
    }

    #[test]
    fn jittery_publication_keeps_a_bounded_lag() {
        // Visibility jitters by up to 300 ms per segment (a CDN edge, a busy packager).
        let jitter = |n: u64| (crate::core::policy::mix64(n) % 300) as f64 / 1000.0;
        let (seen, _) = run(true, 0.2, |_| 2.0, 300, 1.1, jitter);
        let (rule, _) = run(false, 0.2, |_| 2.0, 300, 1.1, jitter);
        let (late, base) = (mean(&seen[20..299]), mean(&rule[20..299]));
        assert!(
            late < 0.6 && late < base,
            "mean lag {late:.3} s, rule alone {base:.3} s"
        );
    }

    #[test]
    fn segments_shorter_than_the_target_leave_the_rule() {
        // EXTINF between 1.6 and 2.0 s (keyframe-aligned segments under a 2 s target): they
        // come faster than the rule lets an agent reload, so no phase can be kept, and the
        // clock must not make it worse.
        let durs = |n: u64| 1.6 + (crate::core::policy::mix64(n ^ 7) % 400) as f64 / 1000.0;
        let (seen, _) = run(true, 0.0, durs, 300, 0.5, |_| 0.0);
        let (rule, _) = run(false, 0.0, durs, 300, 0.5, |_| 0.0);
        let (late, base) = (mean(&seen[20..299]), mean(&rule[20..299]));
        assert!(
            late <= base + 0.05,
            "mean lag {late:.3} s, rule alone {base:.3} s"
        );
    }

    proptest::proptest! {
        /// Whatever the origin does (phase, durations up to the target, visibility jitter),
        /// no reload comes sooner than RFC 8216 §6.3.4 allows (`run` checks every gap).
        #[test]
        fn never_sooner_than_the_rule(
            offset in 0.0..2.0f64,
            first in 0.0..2.0f64,
            shortest in 1.0..2.0f64,
            jitter in 0.0..0.8f64,
            seed in proptest::prelude::any::<u64>(),
        ) {
            let frac = |x: u64| (x % 1000) as f64 / 1000.0;
            let mix = crate::core::policy::mix64;
            let durs = |n: u64| shortest + (2.0 - shortest) * frac(mix(n ^ seed));
            let (seen, _) = run(true, offset, durs, 120, offset + first, |n| jitter * frac(mix(n.wrapping_add(seed))));
            // Every segment is seen, and none later than two target durations (a reload
            // cycle and a phase move), a retry after an unchanged load and the jitter.
            for lag in &seen[1..100] {
                proptest::prop_assert!(lag.is_finite() && *lag <= 2.0 * 2.0 + 1.0 + jitter + 0.01, "lag {lag}");
            }
        }
    }

    #[test]
    fn reloads_wait_for_a_sidecar_that_trails_the_playlist() {
        let base = Instant::now();
        let at = |s: f64| base + Duration::from_secs_f64(s);
        let t = Duration::from_secs(2);
        let mut c = EdgeClock::new(base);
        // Segments publish at 2k s; loads found them 10 ms and, unchanged, missed them 10 ms
        // before: the phase is known.
        assert!(c.observe(at(0.01), at(0.01), &[(0, 2.0)]));
        assert!(!c.observe(at(1.99), at(1.99), &[(0, 2.0)]));
        assert!(c.observe(at(2.01), at(2.01), &[(0, 2.0), (1, 2.0)]));
        // The phase is known to 20 ms: aligned, for segments of about the target duration
        // only (3 s targets with 2 s segments keep the rule alone).
        assert!(c.aligned(t));
        assert!(!c.aligned(Duration::from_secs(3)));
        let aimed = c.next_reload(at(2.01), true, t);
        assert!(
            aimed >= at(4.01) && aimed <= at(4.0 + GUARD + 0.011),
            "{aimed:?}"
        );
        // The sidecar lagged three times: the aim moves 3 steps later.
        for _ in 0..3 {
            c.note_digests(true);
        }
        let later = c.next_reload(at(2.01), true, t);
        let moved = later.duration_since(aimed).as_secs_f64();
        assert!(
            (moved - 3.0 * DIGEST_STEP).abs() < 0.011,
            "moved {moved:.3} s"
        );
        // It never waits more than the cap for the sidecar …
        for _ in 0..100 {
            c.note_digests(true);
        }
        let capped = c.next_reload(at(2.01), true, t);
        assert!(capped <= at(4.0 + GUARD + DIGEST_LAG_MAX + 0.011));
        // … and comes back when the sidecar keeps up.
        for _ in 0..100 {
            c.note_digests(false);
        }
        assert_eq!(c.next_reload(at(2.01), true, t), aimed);
    }

    #[test]
    fn a_sequence_going_back_restarts_the_estimate() {
        let base = Instant::now();
        let at = |s: f64| base + Duration::from_secs_f64(s);
        let mut c = EdgeClock::new(base);
        assert!(c.observe(at(0.5), at(0.55), &[(100, 2.0), (101, 2.0)]));
        assert!(c.observe(at(2.5), at(2.55), &[(101, 2.0), (102, 2.0)]));
        assert!(c.uncertainty().is_some());
        // One older copy (a lagging CDN edge) is ignored …
        assert!(!c.observe(at(3.0), at(3.05), &[(100, 2.0), (101, 2.0)]));
        assert_eq!(c.newest(), Some(102));
        assert!(!c.observe(at(3.5), at(3.55), &[(101, 2.0), (102, 2.0)]));
        // … an encoder restart (numbering starts again, load after load) restarts the clock.
        assert!(!c.observe(at(4.5), at(4.55), &[(0, 2.0)]));
        assert!(!c.observe(at(5.5), at(5.55), &[(0, 2.0)]));
        assert!(c.observe(at(6.5), at(6.55), &[(0, 2.0)]));
        assert_eq!(c.newest(), Some(0));
        assert!(c.uncertainty().is_none_or(|u| u <= 2.0));
        let t = Duration::from_secs(2);
        assert!(c.next_reload(at(6.5), true, t) >= at(8.5));
    }

    #[test]
    fn an_empty_or_endless_playlist_falls_back_to_the_rule() {
        let base = Instant::now();
        let t = Duration::from_secs(2);
        let mut c = EdgeClock::new(base);
        assert!(!c.observe(base, base, &[]));
        assert_eq!(c.next_reload(base, true, t), base + t);
        // One observation and zero durations: no aim, the rule.
        assert!(c.observe(base, base, &[(5, 0.0)]));
        assert_eq!(c.next_reload(base, false, t), base + t / 2);
    }
}
