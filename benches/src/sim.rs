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
    /// 16384, what `publish-digests` uses for live playlists); 0 = whole-segment digests only
    /// (store-and-forward).
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
    /// Leave glibc's heap on ordinary 4 KiB pages (see [`huge_pages`]).
    #[arg(long)]
    no_huge_pages: bool,
}

/// Built for Linux with glibc, where [`HUGE_PAGES_TUNABLE`] applies.
const GLIBC_LINUX: bool = cfg!(all(target_os = "linux", target_env = "gnu"));

/// The glibc tunable that backs malloc's heap with transparent huge pages (glibc 2.35+; older
/// versions ignore it).
const HUGE_PAGES_TUNABLE: &str = "glibc.malloc.hugetlb=1";

/// Huge pages for the simulator's heap, by running it again with glibc's tunable set.
///
/// Ten thousand schedulers hold about 350 MB, and nearly every event touches a different
/// agent's state, so on 4 KiB pages most memory reads also miss the TLB. Many Linux systems
/// (this project's CI machine too) run transparent huge pages in `madvise` mode, where a heap
/// gets them only if malloc asks, which glibc does only under this tunable. glibc reads it at
/// start-up, hence the re-exec (the workspace forbids the `unsafe` a direct `madvise` would
/// need). Measured as pairs of 10,000-agent runs sharing the machine: about 9 % less wall
/// time, identical reports (BENCHMARKS.md). Skipped when `GLIBC_TUNABLES` is already set (the
/// caller chose) or with `--no-huge-pages`; returns only if no re-exec happened.
fn huge_pages(a: &Args) {
    if a.no_huge_pages || !GLIBC_LINUX || std::env::var_os("GLIBC_TUNABLES").is_some() {
        return;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let err = std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env("GLIBC_TUNABLES", HUGE_PAGES_TUNABLE)
            .exec();
        eprintln!(
            "note: running on ordinary pages; re-running with {HUGE_PAGES_TUNABLE} failed: {err}"
        );
    }
}

/// True if this process runs with glibc's huge-page tunable (reported as `malloc_huge_pages`).
fn on_huge_pages() -> bool {
    GLIBC_LINUX
        && std::env::var("GLIBC_TUNABLES")
            .is_ok_and(|v| v.split(':').any(|t| t == HUGE_PAGES_TUNABLE))
}

/// Runs one simulation and prints the report.
pub fn run(a: Args) -> anyhow::Result<()> {
    huge_pages(&a);
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
        obj.insert(
            "malloc_huge_pages".into(),
            serde_json::json!(on_huge_pages()),
        );
    }
    let text = serde_json::to_string_pretty(&value)?;
    if let Some(p) = &a.json {
        std::fs::write(p, &text).with_context(|| format!("writing {}", p.display()))?;
    }
    println!("{text}");
    Ok(())
}
