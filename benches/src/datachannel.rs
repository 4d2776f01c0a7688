//! `hivecast-bench datachannel`: WebRTC data-channel throughput, CPU per GB and 2 MB segment
//! transfer time between two endpoints on loopback, against a plain TCP copy of the same bytes
//! in the same run (`hivecast_agent::transport::bench`).

use anyhow::Context;
use hivecast_agent::transport::bench::{BenchOptions, datachannel_bench};

/// Flags of `hivecast-bench datachannel`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// MiB moved in the bulk phase (each transport).
    #[arg(long, default_value_t = 128)]
    mib: u64,
    /// Frame size in KiB (at most 64).
    #[arg(long, default_value_t = 64)]
    frame_kib: usize,
    /// Bytes of one segment in the latency phase.
    #[arg(long, default_value_t = 2_000_000)]
    segment_bytes: u64,
    /// Timed segment transfers.
    #[arg(long, default_value_t = 15)]
    runs: usize,
    /// Idle link pairs opened for the memory-per-connection figure (0 skips it).
    #[arg(long, default_value_t = 10)]
    idle_pairs: usize,
}

/// Runs the benchmark and prints its report.
pub fn run(a: Args) -> anyhow::Result<()> {
    let options = BenchOptions {
        total_bytes: a.mib * 1024 * 1024,
        frame_size: a.frame_kib * 1024,
        segment_bytes: a.segment_bytes,
        segment_runs: a.runs,
        idle_pairs: a.idle_pairs,
        ..BenchOptions::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let report = rt
        .block_on(datachannel_bench(&options))
        .context("data-channel benchmark")?;
    print!("{report}");
    Ok(())
}
