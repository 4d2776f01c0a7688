//! `hivecast-bench sim`: the discrete-event simulator (`hivecast_agent::sim`), which runs the
//! agent's own sans-IO scheduler for every simulated viewer in virtual time.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use hivecast_agent::sim::{self, SimConfig};

/// Flags of `hivecast-bench sim`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Concurrent viewers (N).
    #[arg(long, default_value_t = 100)]
    agents: usize,
    /// Simulated stream time, seconds.
    #[arg(long, default_value_t = 120.0)]
    duration: f64,
    /// Stream bitrate, kbit/s.
    #[arg(long, default_value_t = 3000.0)]
    bitrate: f64,
    /// Segment duration, seconds.
    #[arg(long, default_value_t = 2.0)]
    segment_secs: f64,
    /// Mean upload as a multiple of the bitrate.
    #[arg(long, default_value_t = 1.5)]
    upload: f64,
    /// Fraction of viewers leaving (and replaced) per minute, e.g. 0.02.
    #[arg(long, default_value_t = 0.02)]
    churn: f64,
    /// Chunk size of the published chunk digests, bytes (default: the simulator config's,
    /// 65536); 0 = whole-segment digests only (store-and-forward).
    #[arg(long)]
    chunk_size: Option<u64>,
    /// Segments the agent withholds from its players (`playlist.live_hold_back`): players sit
    /// that many segments further behind the live edge.
    #[arg(long, default_value_t = 0)]
    live_hold_back: usize,
    /// Units each segment is shared as (`p2p.stripes`; default: the simulator config's, 4, the
    /// agent's default; 1 = whole segments).
    #[arg(long)]
    stripes: Option<u8>,
    /// RNG seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Full simulator config as JSON (the flags above override its fields).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Write the report here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Runs one simulation and prints the report.
pub fn run(a: Args) -> anyhow::Result<()> {
    let mut cfg: SimConfig = match &a.config {
        Some(p) => serde_json::from_slice(
            &std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
        )
        .with_context(|| format!("parsing {}", p.display()))?,
        None => SimConfig::default(),
    };
    cfg.agents = a.agents;
    cfg.duration_s = a.duration;
    cfg.bitrate_bps = a.bitrate * 1000.0;
    cfg.segment_duration_s = a.segment_secs;
    cfg.upload_mean_x = a.upload;
    cfg.churn_per_min = a.churn;
    cfg.seed = a.seed;
    cfg.live_hold_back = a.live_hold_back;
    if let Some(c) = a.chunk_size {
        cfg.chunk_size = c;
    }
    if let Some(s) = a.stripes {
        cfg.stripes = s;
    }
    sim::validate(&cfg).map_err(|e| anyhow::anyhow!("invalid simulation config:\n{e}"))?;
    let t0 = Instant::now();
    let report = sim::run(&cfg);
    let wall = t0.elapsed().as_secs_f64();
    let mut value = serde_json::to_value(&report)?;
    if let Some(obj) = value.as_object_mut() {
        obj.insert("wall_seconds".into(), serde_json::json!(wall));
    }
    let text = serde_json::to_string_pretty(&value)?;
    if let Some(p) = &a.json {
        std::fs::write(p, &text).with_context(|| format!("writing {}", p.display()))?;
    }
    println!("{text}");
    Ok(())
}
