//! `hivecast-demo`: the one-command demo (see `hivecast_demo::demo`), plus two helpers:
//! `hivecast-demo origin --root DIR` serves a directory with the HLS test origin, and
//! `hivecast-demo fixtures` generates the test streams and prints where they are.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hivecast_demo::demo::{self, DemoArgs, DemoError};
use hivecast_demo::fixtures::Fixtures;
use hivecast_demo::origin::{Origin, OriginConfig};

#[derive(Parser, Debug)]
#[command(
    name = "hivecast-demo",
    version,
    about = "hivecast demo: a live stream, a tracker, N agents and a page of players with live P2P stats"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    #[command(flatten)]
    demo: DemoArgs,
    /// Log filter (RUST_LOG syntax), e.g. info or hivecast_demo=debug.
    #[arg(long, default_value = "info", global = true)]
    log: String,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Serve a directory with the HLS test origin (Range, CORS, HLS MIME types) until Ctrl-C.
    Origin {
        /// Directory to serve.
        #[arg(long)]
        root: PathBuf,
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
    /// Generate the ffmpeg test fixtures (if needed) and print their directory.
    Fixtures,
    /// Run paced players against a playlist URL and print a JSON summary (for load tests).
    Play {
        /// Playlist URL (http://).
        url: String,
        /// Concurrent players.
        #[arg(long, default_value_t = 1)]
        players: usize,
        /// Seconds each player runs.
        #[arg(long, default_value_t = 20)]
        duration: u64,
        /// Print every player's full report instead of the summary.
        #[arg(long)]
        full: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&cli.log))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal as _;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    demo::procs::install_panic_hook();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hivecast-demo: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: anyhow::Result<()> = runtime.block_on(async {
        match cli.command {
            None => demo::run(cli.demo).await.map_err(|e| match e {
                DemoError::Usage(_) => anyhow::Error::new(e).context("usage"),
                other => anyhow::Error::new(other),
            }),
            Some(Cmd::Origin { root, listen }) => {
                let mut cfg = OriginConfig::new(root);
                cfg.bind = listen;
                let origin = Origin::start_with(cfg).await?;
                println!("hivecast-demo origin ready: {}/", origin.base_url());
                wait_signal().await;
                origin.stop().await;
                Ok(())
            }
            Some(Cmd::Play {
                url,
                players,
                duration,
                full,
            }) => {
                let summary = play_many(&url, players, duration, full).await?;
                println!("{summary}");
                Ok(())
            }
            Some(Cmd::Fixtures) => {
                let fx = Fixtures::ensure_async().await?;
                println!("{}", fx.root().display());
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hivecast-demo: {e:#}");
            if e.chain().any(|c| c.to_string() == "usage") {
                ExitCode::from(64)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Runs `players` paced players concurrently; returns a JSON summary (or all reports).
async fn play_many(url: &str, players: usize, duration: u64, full: bool) -> anyhow::Result<String> {
    use hivecast_demo::player::{PlayerConfig, play};
    anyhow::ensure!(
        (1..=1000).contains(&players),
        "--players must be between 1 and 1000"
    );
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..players {
        let mut cfg = PlayerConfig::new(url);
        cfg.max_duration = std::time::Duration::from_secs(duration);
        tasks.spawn(play(cfg));
    }
    let mut reports = Vec::new();
    while let Some(r) = tasks.join_next().await {
        reports.push(r??);
    }
    if full {
        return Ok(serde_json::to_string_pretty(&reports)?);
    }
    let n = reports.len() as f64;
    let startups: Vec<f64> = reports.iter().filter_map(|r| r.startup_seconds).collect();
    let summary = serde_json::json!({
        "players": reports.len(),
        "started": startups.len(),
        "startup_seconds_mean": startups.iter().sum::<f64>() / (startups.len().max(1) as f64),
        "startup_seconds_max": startups.iter().cloned().fold(0.0, f64::max),
        "stalls_total": reports.iter().map(|r| r.stalls).sum::<u64>(),
        "stall_seconds_total": reports.iter().map(|r| r.stall_seconds).sum::<f64>(),
        "played_seconds_mean": reports.iter().map(|r| r.played_seconds).sum::<f64>() / n,
        "segments_total": reports.iter().map(|r| r.segments.len()).sum::<usize>(),
        "failed_segments_total": reports.iter().map(|r| r.failed_segments).sum::<u64>(),
        "skipped_segments_total": reports.iter().map(|r| r.skipped_segments).sum::<u64>(),
        "bytes_downloaded_total": reports.iter().map(|r| r.bytes_downloaded).sum::<u64>(),
    });
    Ok(serde_json::to_string_pretty(&summary)?)
}

async fn wait_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
