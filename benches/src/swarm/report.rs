//! The swarm report: pure arithmetic over what the harness recorded (player sessions, agent
//! process samples, the origin's per-path byte counters), so it is unit-tested without
//! processes.
//!
//! Definitions (the same keys as `hivecast_agent::sim::REPORT_KEYS`):
//! * Counted segments: segments some player received whose media sequence number is above
//!   the last one published when the warm-up ended. Byte figures cover these only, so the
//!   start (every agent alone, no peer yet) and the tail (segments published after the
//!   players stopped) do not blur the steady state.
//! * `origin_segment_bytes`: origin body bytes sent for counted segments (all agents, retries
//!   and partial transfers included).
//! * `unique_segment_bytes`: one copy of each counted segment.
//! * `offload_ratio`: `1 − origin_segment_bytes / bytes of counted segments the players got`.
//! * `stalls`, `stall_seconds`: every stall of every session, warm-up included (stricter
//!   than the byte figures).
//! * `agent_cpu_percent_mean`: mean over agent processes of CPU time ÷ their wall time (100 =
//!   one core).

use std::collections::BTreeMap;

use hivecast_agent::sim::SwarmFigures;
use serde::Serialize;

/// One segment a player received.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// Media sequence number.
    pub sequence: u64,
    /// Origin path of the segment (e.g. `/live/seg_00042.ts`).
    pub path: String,
    /// Body bytes.
    pub bytes: u64,
}

/// One viewer session: an agent process and the player reading through it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Session {
    /// Seconds from the player's start to its first segment (`None`: never started).
    pub startup_seconds: Option<f64>,
    /// Stalls after startup.
    pub stalls: u64,
    /// Seconds stalled.
    pub stall_seconds: f64,
    /// Media seconds played.
    pub played_seconds: f64,
    /// Segments received, in order.
    pub received: Vec<Received>,
    /// Segments the player skipped or gave up.
    pub lost_segments: u64,
    /// Segments the player got whose SHA-256 differs from the origin's.
    pub corrupt_segments: u64,
    /// Agent CPU seconds (user + system) over the session.
    pub agent_cpu_seconds: f64,
    /// Agent process wall seconds over the session.
    pub agent_wall_seconds: f64,
    /// Largest agent RSS sampled, bytes.
    pub agent_rss_max: u64,
    /// Segment bytes the agent got from peers (its metrics).
    pub peer_bytes: u64,
    /// Peer transfers that failed verification (its metrics).
    pub integrity_failures: u64,
    /// Uploads of segments it was still receiving (cut-through; its metrics).
    pub cut_through_uploads: u64,
    /// Origin segment fetches the agent's scheduler started, by reason (its metrics).
    pub origin_fetches: BTreeMap<String, u64>,
}

/// Run-wide inputs besides the sessions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFacts {
    /// Concurrent agents (N).
    pub agents: usize,
    /// Stream bitrate, bit/s.
    pub bitrate_bps: f64,
    /// Upload cap per agent, bit/s (`None`: no cap).
    pub upload_cap_bps: Option<f64>,
    /// Last media sequence published when the warm-up ended.
    pub warm_sequence: u64,
    /// Origin body bytes by request path.
    pub origin_bytes_by_path: BTreeMap<String, u64>,
    /// Largest tracker RSS sampled, bytes.
    pub tracker_rss_max: u64,
    /// Agents that joined after the start (churn).
    pub joins: u64,
    /// Agents that left before the end (churn).
    pub leaves: u64,
}

/// The JSON report: [`SwarmFigures`] (the keys every measurement reports), then extras.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SwarmReport {
    /// The figures every measurement reports; the process figures are always present here.
    #[serde(flatten)]
    pub figures: SwarmFigures,
    /// Viewer sessions (N + joins).
    pub sessions: usize,
    /// Churn joins.
    pub joins: u64,
    /// Churn leaves.
    pub leaves: u64,
    /// Media seconds played, all sessions.
    pub watch_seconds: f64,
    /// `stall_seconds / watch_seconds`.
    pub stall_ratio: f64,
    /// Bytes of counted segments the players got.
    pub delivered_segment_bytes: u64,
    /// Segment bytes agents got from peers (whole run).
    pub peer_bytes: u64,
    /// Peer transfers that failed verification (must be 0 without hostile peers).
    pub integrity_failures: u64,
    /// Uploads of segments the uploader was still receiving (cut-through).
    pub cut_through_uploads: u64,
    /// Segments players skipped or gave up.
    pub lost_segments: u64,
    /// Segments players got that differ from the origin's bytes (must be 0).
    pub corrupt_segments: u64,
    /// Sessions whose player never started.
    pub failed_startups: u64,
    /// Origin segment fetches the agents' schedulers started, by reason (whole run; see
    /// `hivecast_agent_p2p_origin_fetches_total` in docs/metrics.md).
    pub origin_fetches: BTreeMap<String, u64>,
}

const MIB: f64 = 1024.0 * 1024.0;

/// Nearest-rank percentile of sorted values (`p` in 0..=100); 0 for none.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// Builds the report.
pub fn build(facts: &RunFacts, sessions: &[Session]) -> SwarmReport {
    let mut counted: BTreeMap<&str, u64> = BTreeMap::new();
    let mut delivered = 0u64;
    for r in sessions
        .iter()
        .flat_map(|s| &s.received)
        .filter(|r| r.sequence > facts.warm_sequence)
    {
        counted.insert(&r.path, r.bytes);
        delivered += r.bytes;
    }
    let unique: u64 = counted.values().sum();
    let origin: u64 = counted
        .keys()
        .map(|p| facts.origin_bytes_by_path.get(*p).copied().unwrap_or(0))
        .sum();
    let mut startups: Vec<f64> = sessions
        .iter()
        .filter_map(|s| s.startup_seconds)
        .map(|s| s * 1000.0)
        .collect();
    startups.sort_by(f64::total_cmp);
    let cpu: Vec<f64> = sessions
        .iter()
        .filter(|s| s.agent_wall_seconds > 0.0)
        .map(|s| 100.0 * s.agent_cpu_seconds / s.agent_wall_seconds)
        .collect();
    let watch: f64 = sessions.iter().map(|s| s.played_seconds).sum();
    let stall_seconds: f64 = sessions.iter().map(|s| s.stall_seconds).sum();
    let n = facts.agents.max(1) as f64;
    SwarmReport {
        figures: SwarmFigures {
            agents: facts.agents,
            segments: counted.len() as u64,
            origin_segment_bytes: origin,
            unique_segment_bytes: unique,
            origin_copies_per_segment: ratio(origin as f64, unique as f64),
            offload_ratio: if delivered > 0 {
                1.0 - origin as f64 / delivered as f64
            } else {
                0.0
            },
            ideal_offload: 1.0 - 1.0 / n,
            upload_bound: facts
                .upload_cap_bps
                .map_or(1.0, |cap| (cap / facts.bitrate_bps).min(1.0)),
            stalls: sessions.iter().map(|s| s.stalls).sum(),
            stall_seconds,
            startup_ms_p50: percentile(&startups, 50.0),
            startup_ms_p95: percentile(&startups, 95.0),
            agent_cpu_percent_mean: Some(ratio(cpu.iter().sum(), cpu.len() as f64)),
            agent_rss_mb_max: Some(
                sessions.iter().map(|s| s.agent_rss_max).max().unwrap_or(0) as f64 / MIB,
            ),
            tracker_rss_mb: Some(facts.tracker_rss_max as f64 / MIB),
        },
        sessions: sessions.len(),
        joins: facts.joins,
        leaves: facts.leaves,
        watch_seconds: watch,
        stall_ratio: ratio(stall_seconds, watch),
        delivered_segment_bytes: delivered,
        peer_bytes: sessions.iter().map(|s| s.peer_bytes).sum(),
        integrity_failures: sessions.iter().map(|s| s.integrity_failures).sum(),
        cut_through_uploads: sessions.iter().map(|s| s.cut_through_uploads).sum(),
        lost_segments: sessions.iter().map(|s| s.lost_segments).sum(),
        corrupt_segments: sessions.iter().map(|s| s.corrupt_segments).sum(),
        failed_startups: sessions
            .iter()
            .filter(|s| s.startup_seconds.is_none())
            .count() as u64,
        origin_fetches: sessions.iter().flat_map(|s| &s.origin_fetches).fold(
            BTreeMap::new(),
            |mut m, (k, v)| {
                *m.entry(k.clone()).or_insert(0) += v;
                m
            },
        ),
    }
}

/// The report as an aligned two-column text table, with the limits beside the results.
pub fn table(r: &SwarmReport) -> String {
    let mib = |b: u64| format!("{:.1} MiB", b as f64 / MIB);
    let rows: Vec<(&str, String)> = vec![
        ("agents (N)", r.figures.agents.to_string()),
        (
            "sessions (joins / leaves)",
            format!("{} ({} / {})", r.sessions, r.joins, r.leaves),
        ),
        ("counted segments", r.figures.segments.to_string()),
        ("origin segment bytes", mib(r.figures.origin_segment_bytes)),
        ("unique segment bytes", mib(r.figures.unique_segment_bytes)),
        (
            "origin copies per segment",
            format!("{:.2}  (ideal 1.00)", r.figures.origin_copies_per_segment),
        ),
        (
            "offload",
            format!(
                "{:.1} %  (ideal 1 − 1/N = {:.1} %, upload bound {:.1} %)",
                100.0 * r.figures.offload_ratio,
                100.0 * r.figures.ideal_offload,
                100.0 * r.figures.upload_bound
            ),
        ),
        (
            "stalls",
            format!(
                "{} ({:.2} s of {:.0} s watched)",
                r.figures.stalls, r.figures.stall_seconds, r.watch_seconds
            ),
        ),
        (
            "startup p50 / p95",
            format!(
                "{:.0} / {:.0} ms",
                r.figures.startup_ms_p50, r.figures.startup_ms_p95
            ),
        ),
        (
            "agent CPU mean",
            format!(
                "{:.1} % of a core",
                r.figures.agent_cpu_percent_mean.unwrap_or(0.0)
            ),
        ),
        (
            "agent RSS max",
            format!("{:.1} MiB", r.figures.agent_rss_mb_max.unwrap_or(0.0)),
        ),
        (
            "tracker RSS",
            format!("{:.1} MiB", r.figures.tracker_rss_mb.unwrap_or(0.0)),
        ),
        ("peer bytes", mib(r.peer_bytes)),
        (
            "origin fetches by reason",
            r.origin_fetches
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ("integrity failures", r.integrity_failures.to_string()),
        ("cut-through uploads", r.cut_through_uploads.to_string()),
        ("lost segments", r.lost_segments.to_string()),
        ("corrupt segments", r.corrupt_segments.to_string()),
    ];
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{k:<width$}  {v}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(sequence: u64, bytes: u64) -> Received {
        Received {
            sequence,
            path: format!("/live/seg_{sequence:05}.ts"),
            bytes,
        }
    }

    fn session(startup: f64, received: Vec<Received>) -> Session {
        Session {
            startup_seconds: Some(startup),
            played_seconds: 30.0,
            received,
            agent_cpu_seconds: 3.0,
            agent_wall_seconds: 30.0,
            agent_rss_max: 20 * 1024 * 1024,
            ..Session::default()
        }
    }

    #[test]
    fn two_agents_one_origin_copy_each_segment() {
        // Segments 1..=4; the warm-up ended after 1, so 2..=4 count. The origin sent one copy
        // of 2 and 3, two copies of 4, and 3 copies of the warm-up segment 1.
        let mut facts = RunFacts {
            agents: 2,
            bitrate_bps: 1_000_000.0,
            warm_sequence: 1,
            tracker_rss_max: 8 * 1024 * 1024,
            ..RunFacts::default()
        };
        for (seq, b) in [(1, 300), (2, 100), (3, 100), (4, 200)] {
            facts
                .origin_bytes_by_path
                .insert(format!("/live/seg_{seq:05}.ts"), b);
        }
        let all = || (1..=4).map(|s| rec(s, 100)).collect::<Vec<_>>();
        let mut sessions = [session(0.5, all()), session(1.5, all())];
        sessions[0].origin_fetches.insert("elected".into(), 3);
        sessions[1].origin_fetches.insert("elected".into(), 1);
        sessions[1].origin_fetches.insert("fallback".into(), 1);
        let r = build(&facts, &sessions);
        assert_eq!(r.figures.segments, 3);
        assert_eq!(r.figures.unique_segment_bytes, 300);
        assert_eq!(r.figures.origin_segment_bytes, 400);
        assert!((r.figures.origin_copies_per_segment - 4.0 / 3.0).abs() < 1e-9);
        assert_eq!(r.delivered_segment_bytes, 600);
        assert!((r.figures.offload_ratio - (1.0 - 400.0 / 600.0)).abs() < 1e-9);
        assert!((r.figures.ideal_offload - 0.5).abs() < 1e-9);
        assert_eq!(r.figures.upload_bound, 1.0);
        assert_eq!(r.figures.startup_ms_p50, 500.0);
        assert_eq!(r.figures.startup_ms_p95, 1500.0);
        assert!((r.figures.agent_cpu_percent_mean.expect("measured") - 10.0).abs() < 1e-9);
        assert!((r.figures.agent_rss_mb_max.expect("measured") - 20.0).abs() < 1e-9);
        assert!((r.figures.tracker_rss_mb.expect("measured") - 8.0).abs() < 1e-9);
        assert_eq!(r.origin_fetches["elected"], 4);
        assert_eq!(r.origin_fetches["fallback"], 1);
        let t = table(&r);
        assert!(t.contains("origin copies per segment  1.33"), "{t}");
    }

    #[test]
    fn upload_cap_bounds_and_empty_runs_do_not_divide_by_zero() {
        let facts = RunFacts {
            agents: 3,
            bitrate_bps: 2_000_000.0,
            upload_cap_bps: Some(1_600_000.0),
            ..RunFacts::default()
        };
        let r = build(&facts, &[Session::default()]);
        assert!((r.figures.upload_bound - 0.8).abs() < 1e-9);
        assert_eq!(r.figures.offload_ratio, 0.0);
        assert_eq!(r.figures.origin_copies_per_segment, 0.0);
        assert_eq!(r.failed_startups, 1);
        assert_eq!(r.figures.startup_ms_p50, 0.0);
        let capped = RunFacts {
            upload_cap_bps: Some(4_000_000.0),
            ..facts
        };
        assert_eq!(build(&capped, &[]).figures.upload_bound, 1.0);
    }

    #[test]
    fn json_carries_every_sim_key() {
        let r = build(&RunFacts::default(), &[]);
        let v = serde_json::to_value(&r).expect("json");
        for k in hivecast_agent::sim::REPORT_KEYS {
            assert!(v.get(k).is_some(), "missing {k}");
        }
    }
}
