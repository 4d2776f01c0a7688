//! `hivecast-tracker`: command line entry point. Parses flags, loads the config, starts
//! the runtime and maps outcomes to exit codes; everything else lives in the library.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use hivecast_tracker::app::{App, Signals};
use hivecast_tracker::config::{self, Overrides};
use tracing_subscriber::EnvFilter;

/// Exit code for usage and configuration errors (EX_USAGE).
const EX_USAGE: u8 = 64;

/// hivecast tracker: WebTorrent-compatible WebSocket signalling tracker.
#[derive(Debug, Parser)]
#[command(name = "hivecast-tracker", version, about)]
struct Cli {
    /// Print the documented default configuration (TOML) and exit.
    #[arg(long)]
    print_default_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the tracker.
    Run {
        /// TOML configuration file (layered over the defaults, under the environment).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// WebSocket listen address (overrides `server.listen`).
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EX_USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    if cli.print_default_config {
        print!("{}", config::DEFAULT_TOML);
        return ExitCode::SUCCESS;
    }
    let Some(Command::Run { config, listen }) = cli.command else {
        eprintln!(
            "usage: hivecast-tracker run [--config FILE] [--listen ADDR] | --print-default-config"
        );
        return ExitCode::from(EX_USAGE);
    };
    let cfg = match config::load(&Overrides {
        config_file: config,
        listen,
    }) {
        Ok(cfg) => cfg,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(EX_USAGE);
        }
    };
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.log.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout())
        && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .init();

    match run(cfg) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("hivecast-tracker: {e:#}");
            let code = e
                .downcast_ref::<hivecast_tracker::app::AppError>()
                .map_or(1, hivecast_tracker::app::AppError::exit_code);
            ExitCode::from(code)
        }
    }
}

fn run(cfg: config::Config) -> anyhow::Result<u8> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async {
        // Before binding: the "tracker listening" line must find SIGTERM handled.
        let signals = Signals::install()?;
        let app = App::bind(cfg).await?;
        let stopped = app.run_until_signal(signals).await?;
        tracing::info!(?stopped, "tracker stopped");
        Ok(stopped.exit_code())
    })
}
