//! `hivecast-bench`: whole-system benchmarks and load generators.
//!
//! A thin dispatcher: each subcommand lives in its own module.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};

mod datachannel;
mod sim;
mod swarm;
mod tracker_load;

/// hivecast benchmarks and load generators.
#[derive(Debug, Parser)]
#[command(name = "hivecast-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// WebSocket load on a hivecast (or any WebTorrent) tracker: N peers announcing
    /// with offers and answering the offers relayed to them.
    TrackerLoad(tracker_load::Args),
    /// Discrete-event simulation of a live swarm running the agent's own scheduler for
    /// every viewer (virtual time).
    Sim(sim::Args),
    /// A whole swarm from real processes on this machine: origin with a synthetic live
    /// stream, tracker, N agents, N paced players; optional churn and upload cap.
    Swarm(swarm::Args),
    /// WebRTC data-channel throughput and segment transfer time vs plain TCP on loopback.
    Datachannel(datachannel::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::TrackerLoad(args) => tracker_load::run(args),
        Command::Sim(args) => sim::run(args),
        Command::Swarm(args) => swarm::run(args),
        Command::Datachannel(args) => datachannel::run(args),
    }
}
