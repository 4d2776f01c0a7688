//! `hivecast-agent` command line. Thin: parsing, logging setup, exit codes; the rest is in
//! the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hivecast_agent::config::{self, AgentConfig, Overrides};

/// Exit code for bad configuration (EX_USAGE).
const EXIT_CONFIG: u8 = 64;

#[derive(Parser, Debug)]
#[command(
    name = "hivecast-agent",
    version,
    about = "hivecast edge agent: a local HLS endpoint that shares verified segments with peers"
)]
struct Cli {
    /// Print the default configuration (documented TOML) and exit.
    #[arg(long)]
    print_default_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the agent.
    Run {
        /// TOML configuration file.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Player endpoint address (default 127.0.0.1:8585).
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
        /// Admin endpoint address for /metrics and /healthz (default 127.0.0.1:9585).
        #[arg(long, value_name = "ADDR")]
        admin_listen: Option<std::net::SocketAddr>,
        /// Allow an origin (scheme://host[:port]); repeatable.
        #[arg(long = "allow-origin", value_name = "URL")]
        allow_origin: Vec<String>,
        /// A named stream served at /streams/NAME.m3u8; repeatable.
        #[arg(long = "stream", value_name = "NAME=URL")]
        stream: Vec<String>,
        /// Tracker URL (ws:// or wss://); enables peer-to-peer sharing.
        #[arg(long, value_name = "URL")]
        tracker: Option<String>,
    },
    /// Write digest sidecars (NAME.sha256.json) for every media playlist in DIR.
    PublishDigests {
        /// Directory holding playlists and segments (searched recursively).
        dir: PathBuf,
        /// Keep watching and re-publish when playlists change (for live packagers).
        #[arg(long)]
        watch: bool,
        /// Poll interval in watch mode.
        #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
        interval: std::time::Duration,
        /// Also publish a SHA-256 per chunk of this many bytes of each segment (4096 to
        /// 16777216), so agents can forward verified chunks before the whole segment has
        /// arrived; 0 = whole-segment digests only (for agents older than chunk digests).
        /// Default: 16384 for live playlists, 65536 for VOD and EVENT playlists.
        #[arg(long, value_name = "BYTES")]
        chunk_size: Option<u32>,
    },
}

fn init_logging(level: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.print_default_config {
        print!("{}", AgentConfig::default_toml());
        return ExitCode::SUCCESS;
    }
    let Some(command) = cli.command else {
        eprintln!("hivecast-agent: a command is required (run, publish-digests); see --help");
        return ExitCode::from(EXIT_CONFIG);
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hivecast-agent: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match command {
        Command::Run {
            config,
            listen,
            admin_listen,
            allow_origin,
            stream,
            tracker,
        } => {
            let overrides = Overrides {
                listen,
                admin_listen,
                allow_origins: allow_origin,
                streams: stream,
                tracker,
            };
            let cfg = match config::load(config.as_deref(), std::env::vars(), &overrides) {
                Ok(c) => c,
                Err(e) => {
                    eprint!("hivecast-agent: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            init_logging(&cfg.log.level, cfg.log.json);
            runtime.block_on(run(cfg))
        }
        Command::PublishDigests {
            dir,
            watch,
            interval,
            chunk_size,
        } => {
            if let Some(Err(e)) =
                chunk_size.map(hivecast_agent::integrity::publish::check_chunk_size)
            {
                eprintln!("hivecast-agent publish-digests: --chunk-size: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
            init_logging("info", false);
            runtime.block_on(async move {
                match hivecast_agent::integrity::publish::run(&dir, watch, interval, chunk_size)
                    .await
                {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("hivecast-agent publish-digests: {e}");
                        ExitCode::FAILURE
                    }
                }
            })
        }
    }
}

async fn run(cfg: AgentConfig) -> ExitCode {
    let grace = cfg.server.shutdown_grace;
    if cfg.origin.allow.is_empty() {
        tracing::warn!(
            "origin.allow is empty: every proxied request will be refused (use --allow-origin)"
        );
    }
    // Before starting: the ready line must find SIGTERM handled.
    let signals = match hivecast_agent::task::Signals::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hivecast-agent: installing signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let running = match hivecast_agent::app::start(cfg, &[]).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hivecast-agent: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Readiness line for supervisors and tests (stdout; logs go to stderr).
    println!(
        "hivecast-agent ready listen={} admin={}",
        running.listen, running.admin
    );
    tracing::info!(listen = %running.listen, admin = %running.admin, "agent started");
    let cancel = running.supervisor.cancel.clone();
    tokio::spawn(hivecast_agent::task::watch_signals(cancel.clone(), signals));
    cancel.cancelled().await;
    if running.shutdown(grace).await {
        tracing::info!("shut down cleanly");
    } else {
        tracing::warn!("tasks still running after the grace period");
    }
    ExitCode::SUCCESS
}
