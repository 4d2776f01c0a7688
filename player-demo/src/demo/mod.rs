//! The one-command demo: a live test stream on an embedded origin, a tracker, N agents, and a
//! web page with one hls.js player per agent and live P2P charts.
//!
//! ```text
//!  fixtures ──▶ live packager ──▶ work/origin/live/ ──▶ test origin (127.0.0.1:0)
//!                                    ▲                        ▲
//!                 hivecast-agent publish-digests DIR --watch  │ HTTP
//!                                                             │
//!  page (127.0.0.1:8080) ── hls.js ──▶ agent 1..N ────────────┘
//!          │ polls /api/stats            │ ▲ WebRTC
//!          └─────────────────────────────┘ └── hivecast-tracker (ws://127.0.0.1:PORT/announce)
//! ```
//!
//! In `--origin-direct` mode there are no agents and no tracker: the players load the origin
//! URL directly (to try the page and the browser harness without the agent).
//!
//! Child command lines are templates ([`DEFAULT_AGENT_ARGS`], [`DEFAULT_TRACKER_ARGS`],
//! [`DEFAULT_DIGESTS_ARGS`]) that can be replaced from the command line; agents also get
//! [`DEFAULT_AGENT_ENV`] (WebRTC on loopback). Ports ([`plan_ports`]): with the page on a
//! fixed port `P` (default 8080) the agents listen on `P+1..=P+N` and the origin on `P+100`,
//! so player URLs are stable for ffplay, mpv or VLC; with the page on port 0 every port is a
//! free one (tests). Readiness: the digest publisher has written its first sidecar; the
//! tracker and each agent accept TCP connections.
//! Every child runs in its own process group; Ctrl-C, `SIGTERM`, `--duration` or a panic
//! stop all of them (see [`procs`]).

pub mod procs;
pub mod web;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::signal::unix::{SignalKind, signal};

use crate::fixtures::{self, FixtureError, Fixtures};
use crate::live::{LiveConfig, LiveError, LivePackager};
use crate::origin::{Origin, OriginConfig, OriginError};
use procs::{Managed, ProcError};
use web::{AgentEntry, DemoLayout, WebContent, WebError, WebServer};

/// Agent command line. Placeholders: `{listen}` (player listener), `{admin}` (admin
/// listener), `{origin}` (origin base URL), `{tracker}` (tracker URL), `{stream}` (origin URL
/// of the live playlist), `{index}` (0-based agent number), `{work}` (the agent's work dir).
pub const DEFAULT_AGENT_ARGS: &str = "run --listen {listen} --admin-listen {admin} --allow-origin {origin} --tracker {tracker} --stream live={stream}";
/// Tracker command line. Placeholders: `{listen}`, `{admin}` (the admin listener is also
/// passed as `HIVECAST_TRACKER__ADMIN__LISTEN`).
pub const DEFAULT_TRACKER_ARGS: &str = "run --listen {listen}";
/// Digest publisher command line. Placeholder: `{dir}` (the live output directory). The
/// short poll interval publishes a new segment's digest well before players ask for it.
pub const DEFAULT_DIGESTS_ARGS: &str = "publish-digests {dir} --watch --interval 100ms";
/// Environment every agent gets unless the variable is already set in the demo's own
/// environment (then the inherited value wins) or given with `--agent-env`: WebRTC on
/// loopback only (all agents run on this host), no mDNS sockets, quick re-announces so the
/// agents find each other within seconds, and quiet WebRTC logs.
pub const DEFAULT_AGENT_ENV: [(&str, &str); 4] = [
    ("HIVECAST_AGENT__P2P__WEBRTC__UDP_BIND", "127.0.0.1:0"),
    ("HIVECAST_AGENT__P2P__WEBRTC__MDNS", "disabled"),
    ("HIVECAST_AGENT__P2P__HUNGRY_ANNOUNCE_INTERVAL", "1s"),
    (
        "RUST_LOG",
        "info,webrtc=warn,webrtc_ice=warn,webrtc_sctp=warn,webrtc_dtls=warn,rtc=warn",
    ),
];

/// Segment format of the demo stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// MPEG-TS segments.
    Ts,
    /// fMP4 segments with an init section.
    Fmp4,
}

/// Command-line options of the demo.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Number of agents (one player each).
    #[arg(long, default_value_t = 4)]
    pub agents: usize,
    /// Address of the demo page.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Directory holding hivecast-agent and hivecast-tracker (default: next to this binary).
    #[arg(long, env = "HIVECAST_BIN_DIR", value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
    /// Stop after this many seconds (default: until Ctrl-C or SIGTERM).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<u64>,
    /// Players load the origin directly: no agents, no tracker.
    #[arg(long)]
    pub origin_direct: bool,
    /// Segment format of the live stream.
    #[arg(long, value_enum, default_value = "ts")]
    pub format: Format,
    /// Path of hls.min.js (default: node_modules/hls.js/dist/hls.min.js of the workspace).
    #[arg(long, env = "HIVECAST_HLS_JS", value_name = "FILE")]
    pub hls_js: Option<PathBuf>,
    /// Serve index.html, app.js and style.css from this directory instead of the built-in
    /// copies (for editing the page).
    #[arg(long, value_name = "DIR")]
    pub web_dir: Option<PathBuf>,
    /// Working directory for origin files and logs (kept); default a temporary directory
    /// that is removed on exit.
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// Address of the embedded origin (default: 127.0.0.1, port of --listen + 100, so 8180;
    /// a free port when --listen has port 0).
    #[arg(long, value_name = "ADDR")]
    pub origin_listen: Option<SocketAddr>,
    /// Player port of agent 1; agent N listens on this + N − 1 (default: port of --listen
    /// + 1, so 8081..; free ports when --listen has port 0). 0 = free ports.
    #[arg(long, value_name = "PORT")]
    pub agent_port_base: Option<u16>,
    /// Agent command-line template (see the docs for placeholders).
    #[arg(long, default_value = DEFAULT_AGENT_ARGS)]
    pub agent_args: String,
    /// Tracker command-line template.
    #[arg(long, default_value = DEFAULT_TRACKER_ARGS)]
    pub tracker_args: String,
    /// Digest publisher command-line template.
    #[arg(long, default_value = DEFAULT_DIGESTS_ARGS)]
    pub digests_args: String,
    /// Extra environment variable for every agent (KEY=VALUE); repeatable. Overrides the
    /// built-in agent environment (loopback WebRTC, no mDNS, 1 s hungry re-announce).
    #[arg(long = "agent-env", value_name = "KEY=VALUE", value_parser = parse_env_pair)]
    pub agent_env: Vec<(String, String)>,
    /// Write digest sidecars from the packager instead of running `publish-digests`.
    #[arg(long)]
    pub self_digests: bool,
    /// Seconds to wait for each child process to accept connections.
    #[arg(long, default_value_t = 30)]
    pub ready_timeout: u64,
    /// Seconds children get to exit after SIGTERM before SIGKILL.
    #[arg(long, default_value_t = 5)]
    pub grace: u64,
}

/// Why the demo could not run.
#[derive(Debug, Error)]
pub enum DemoError {
    /// Bad options.
    #[error("{0}")]
    Usage(String),
    /// Fixture generation failed.
    #[error(transparent)]
    Fixtures(#[from] FixtureError),
    /// The live packager failed.
    #[error(transparent)]
    Live(#[from] LiveError),
    /// The origin failed to start.
    #[error(transparent)]
    Origin(#[from] OriginError),
    /// The web server failed.
    #[error(transparent)]
    Web(#[from] WebError),
    /// A child process failed.
    #[error(transparent)]
    Proc(#[from] ProcError),
    /// A needed binary is missing.
    #[error(
        "{name} not found at {path} (build it: cargo build -p {name}; or pass --bin-dir DIR; or run with --origin-direct)"
    )]
    MissingBinary {
        /// Binary name.
        name: &'static str,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// hls.js was not found.
    #[error(
        "hls.min.js not found (looked in: {searched}); run `npm ci` in the workspace or pass --hls-js FILE"
    )]
    HlsJsNotFound {
        /// The candidates tried.
        searched: String,
    },
    /// A fixed port is taken.
    #[error(
        "cannot use {addr} for {what}: {source} (stop what uses it, change {option}, or pass --listen 127.0.0.1:0 for free ports everywhere)"
    )]
    PortInUse {
        /// What the port was for.
        what: String,
        /// The address.
        addr: SocketAddr,
        /// The option that sets it.
        option: String,
        /// The bind error.
        source: std::io::Error,
    },
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Expands `{name}` placeholders in a whitespace-separated command template.
pub fn expand_template(template: &str, vars: &[(&str, String)]) -> Result<Vec<String>, DemoError> {
    let mut out = Vec::new();
    for word in template.split_whitespace() {
        let mut w = word.to_string();
        for (k, v) in vars {
            w = w.replace(&format!("{{{k}}}"), v);
        }
        if let (Some(open), Some(_)) = (w.find('{'), w.find('}'))
            && w[open..].contains('}')
        {
            return Err(DemoError::Usage(format!(
                "unknown placeholder in command template word {word:?} (known: {})",
                vars.iter()
                    .map(|(k, _)| format!("{{{k}}}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )));
        }
        out.push(w);
    }
    if out.is_empty() {
        return Err(DemoError::Usage("empty command template".into()));
    }
    Ok(out)
}

/// Parses `KEY=VALUE` (non-empty key without `=` or NUL; the value may be empty).
pub fn parse_env_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && !k.contains('\0') && !v.contains('\0') => {
            Ok((k.to_string(), v.to_string()))
        }
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// The environment given to each agent: [`DEFAULT_AGENT_ENV`] minus the variables already in
/// `inherited` (the demo's own environment, which children inherit), then `extra` (later
/// entries win).
pub fn agent_env(
    inherited: impl Fn(&str) -> bool,
    extra: &[(String, String)],
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = DEFAULT_AGENT_ENV
        .iter()
        .filter(|(k, _)| !inherited(k))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (k, v) in extra {
        env.retain(|(ek, _)| ek != k);
        env.push((k.clone(), v.clone()));
    }
    env
}

/// A free TCP port on 127.0.0.1 (bound and released; a race with other processes is possible
/// but unlikely).
pub fn free_addr() -> Result<SocketAddr, DemoError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|source| DemoError::Io {
        path: PathBuf::from("127.0.0.1:0"),
        source,
    })?;
    l.local_addr().map_err(|source| DemoError::Io {
        path: PathBuf::from("127.0.0.1:0"),
        source,
    })
}

/// Where the origin and the agents' player listeners go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortPlan {
    /// The origin's listen address (port 0 = any free port).
    pub origin: SocketAddr,
    /// Player listener per agent: `Some` fixed address, or `None` for a free port.
    pub agents: Vec<Option<SocketAddr>>,
}

/// Offset of the default origin port from the page's port.
pub const ORIGIN_PORT_OFFSET: u16 = 100;

/// Plans the listen addresses: explicit options win; otherwise, with a page on a fixed port
/// `P`, the agents get `P+1..=P+N` and the origin `P+100` (stable URLs for other players);
/// with a page on port 0, everything gets free ports.
pub fn plan_ports(
    page: SocketAddr,
    agents: usize,
    origin_listen: Option<SocketAddr>,
    agent_port_base: Option<u16>,
) -> Result<PortPlan, DemoError> {
    let ip = std::net::Ipv4Addr::LOCALHOST.into();
    let fixed = page.port() != 0;
    let origin = match origin_listen {
        Some(a) => a,
        None if fixed => {
            let port = page.port().checked_add(ORIGIN_PORT_OFFSET).ok_or_else(|| {
                DemoError::Usage(format!(
                    "no room for the origin port above --listen {page}; pass --origin-listen"
                ))
            })?;
            SocketAddr::new(ip, port)
        }
        None => SocketAddr::new(ip, 0),
    };
    let base = match agent_port_base {
        Some(0) => None,
        Some(b) => Some(b),
        None if fixed => Some(page.port().checked_add(1).ok_or_else(|| {
            DemoError::Usage(format!(
                "no room for agent ports above --listen {page}; pass --agent-port-base"
            ))
        })?),
        None => None,
    };
    let agents = (0..agents)
        .map(|i| match base {
            None => Ok(None),
            Some(b) => u16::try_from(i)
                .ok()
                .and_then(|i| b.checked_add(i))
                .map(|port| Some(SocketAddr::new(ip, port)))
                .ok_or_else(|| {
                    DemoError::Usage(format!(
                        "agent ports from {b} for {agents} agents pass 65535; pick a lower --agent-port-base"
                    ))
                }),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut used: Vec<u16> = agents.iter().flatten().map(SocketAddr::port).collect();
    used.extend([page.port(), origin.port()].into_iter().filter(|p| *p != 0));
    let n = used.len();
    used.sort_unstable();
    used.dedup();
    if used.len() != n {
        return Err(DemoError::Usage(format!(
            "the page ({page}), the origin ({origin}) and the agent ports overlap; change --listen, --origin-listen or --agent-port-base"
        )));
    }
    Ok(PortPlan { origin, agents })
}

/// Fails early, with the option to change, when a fixed port is taken.
fn check_port_free(addr: SocketAddr, what: &str, option: &str) -> Result<(), DemoError> {
    if addr.port() == 0 {
        return Ok(());
    }
    std::net::TcpListener::bind(addr)
        .map(drop)
        .map_err(|source| DemoError::PortInUse {
            what: what.to_string(),
            addr,
            option: option.to_string(),
            source,
        })
}

/// Candidate locations of hls.min.js, in order.
pub fn hls_js_candidates() -> Vec<PathBuf> {
    let rel = Path::new("node_modules/hls.js/dist/hls.min.js");
    let mut c = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)];
    if let Ok(cwd) = std::env::current_dir() {
        c.extend(cwd.ancestors().map(|a| a.join(rel)));
    }
    if let Ok(exe) = std::env::current_exe() {
        c.extend(exe.ancestors().skip(1).map(|a| a.join(rel)));
    }
    c
}

fn find_hls_js(flag: Option<&Path>) -> Result<PathBuf, DemoError> {
    if let Some(p) = flag {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(DemoError::HlsJsNotFound {
                searched: p.display().to_string(),
            })
        };
    }
    let candidates = hls_js_candidates();
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| DemoError::HlsJsNotFound {
            searched: candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// The directory holding the hivecast binaries: `flag` if given, else the directory of the
/// running executable (the cargo profile directory in a build tree).
pub fn bin_dir(flag: Option<&Path>) -> PathBuf {
    if let Some(d) = flag {
        return d.to_path_buf();
    }
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."))
}

fn find_binary(dir: &Path, name: &'static str) -> Result<PathBuf, DemoError> {
    let p = dir.join(name);
    if p.is_file() {
        Ok(p)
    } else {
        Err(DemoError::MissingBinary { name, path: p })
    }
}

/// The mirror URL of an origin URL on an agent (DESIGN.md "Local URL scheme").
pub fn mirror_url(agent: SocketAddr, origin_url: &str) -> String {
    let rest = origin_url
        .strip_prefix("http://")
        .map(|r| format!("http/{r}"))
        .or_else(|| {
            origin_url
                .strip_prefix("https://")
                .map(|r| format!("https/{r}"))
        })
        .unwrap_or_else(|| origin_url.to_string());
    format!("http://{agent}/{rest}")
}

/// Runs the demo until Ctrl-C, SIGTERM or `--duration`. Prints
/// `hivecast-demo ready: http://ADDR/ ...` on stdout once the page is served.
pub async fn run(args: DemoArgs) -> Result<(), DemoError> {
    if args.agents == 0 || args.agents > 32 {
        return Err(DemoError::Usage("--agents must be between 1 and 32".into()));
    }
    let hls_js = find_hls_js(args.hls_js.as_deref())?;
    let ports = plan_ports(
        args.listen,
        args.agents,
        args.origin_listen,
        args.agent_port_base,
    )?;
    // Fixed ports are checked before anything starts (the page binds last).
    check_port_free(args.listen, "the page", "--listen")?;
    check_port_free(ports.origin, "the origin", "--origin-listen")?;
    if !args.origin_direct {
        for (i, a) in ports.agents.iter().flatten().enumerate() {
            check_port_free(*a, &format!("agent-{}", i + 1), "--agent-port-base")?;
        }
    }
    // Signal handlers first: a Ctrl-C during startup must stop the children started so far
    // instead of killing the demo and orphaning them.
    let mut signals = StopSignals::new()?;
    let (work, temporary) = match &args.work_dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("hivecast-demo-{}", std::process::id())),
            true,
        ),
    };
    let logs = work.join("logs");
    std::fs::create_dir_all(&logs).map_err(|source| DemoError::Io {
        path: logs.clone(),
        source,
    })?;

    let mut children: Vec<Managed> = Vec::new();
    let started = tokio::select! {
        r = startup(&args, &ports, &hls_js, &work, &mut children) => Ok(r),
        reason = signals.recv() => Err(reason),
    };
    let (reason, running, result) = match started {
        Ok(Ok(running)) => {
            announce(&running);
            let reason = wait_for_stop(args.duration, &mut signals, &mut children).await;
            (reason, Some(running), Ok(()))
        }
        Ok(Err(e)) => (String::from("startup failed"), None, Err(e)),
        Err(reason) => (format!("{reason} (during startup)"), None, Ok(())),
    };
    tracing::info!(%reason, "shutting down");
    // A second signal during shutdown kills everything at once.
    let second = tokio::spawn(async move {
        signals.recv().await;
        procs::kill_all_groups();
        std::process::exit(130);
    });
    let (live, origin) = match running {
        Some(Running {
            live, origin, web, ..
        }) => {
            web.stop().await;
            (Some(live), Some(origin))
        }
        None => (None, None),
    };
    let statuses = procs::shutdown_all(&mut children, Duration::from_secs(args.grace)).await;
    for (name, status) in statuses {
        tracing::info!(%name, %status, "child stopped");
    }
    if let Some(live) = live
        && let Err(e) = live.stop().await
    {
        tracing::warn!(error = %e, "live packager had stopped with an error");
    }
    if let Some(origin) = origin
        && let Ok(origin) = Arc::try_unwrap(origin)
    {
        origin.stop().await;
    }
    second.abort();
    if temporary {
        let _ = std::fs::remove_dir_all(&work);
    } else {
        tracing::info!(dir = %work.display(), "work directory kept (logs in logs/)");
    }
    if result.is_ok() {
        println!("hivecast-demo stopped: {reason}");
    }
    result
}

/// Ctrl-C (SIGINT) and SIGTERM, listened to from the start of the demo.
struct StopSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn new() -> Result<StopSignals, DemoError> {
        let install = |kind| {
            signal(kind).map_err(|source| DemoError::Io {
                path: PathBuf::from("<signal handler>"),
                source,
            })
        };
        Ok(StopSignals {
            interrupt: install(SignalKind::interrupt())?,
            terminate: install(SignalKind::terminate())?,
        })
    }

    /// Waits for the next signal; returns its name for the `stopped:` line.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "Ctrl-C",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

/// What runs once the demo is up.
struct Running {
    live: crate::live::LiveHandle<LivePackager>,
    origin: Arc<Origin>,
    web: WebServer,
    layout: DemoLayout,
}

/// Starts the live stream, the origin, the children (pushed to `children` as they start)
/// and the page.
async fn startup(
    args: &DemoArgs,
    ports: &PortPlan,
    hls_js: &Path,
    work: &Path,
    children: &mut Vec<Managed>,
) -> Result<Running, DemoError> {
    // Resolve binaries before starting anything.
    let bins = if args.origin_direct {
        None
    } else {
        let dir = bin_dir(args.bin_dir.as_deref());
        Some((
            find_binary(&dir, "hivecast-agent")?,
            find_binary(&dir, "hivecast-tracker")?,
        ))
    };

    let fx = Fixtures::ensure_async().await?;
    let source = match args.format {
        Format::Ts => fixtures::LIVE_SOURCE_TS,
        Format::Fmp4 => fixtures::LIVE_SOURCE_FMP4,
    };
    let origin_root = work.join("origin");
    let live_dir = origin_root.join("live");
    let run_publisher = bins.is_some() && !args.self_digests;
    let mut live_cfg = LiveConfig::new(fx.path(source), &live_dir);
    live_cfg.write_digests = !run_publisher;
    let packager = LivePackager::new(live_cfg)?;
    let live = packager.spawn_realtime();
    let mut ocfg = OriginConfig::new(&origin_root);
    ocfg.bind = ports.origin;
    let origin = Arc::new(Origin::start_with(ocfg).await?);
    let stream_url = origin.url("/live/index.m3u8");
    tracing::info!(origin = %origin.base_url(), stream = %stream_url, "origin serving the live stream");

    let agents = start_children(
        args,
        ports,
        bins.as_ref(),
        &origin,
        &live_dir,
        work,
        children,
    )
    .await?;

    let layout = DemoLayout {
        mode: if args.origin_direct {
            "origin-direct"
        } else {
            "p2p"
        }
        .into(),
        origin: origin.base_url(),
        stream_url: stream_url.clone(),
        poll_ms: 1000,
        agents,
    };
    let stats_origin = origin.clone();
    let content = WebContent::new(
        args.web_dir.as_deref(),
        hls_js,
        &layout,
        Arc::new(move || serde_json::to_string(&stats_origin.stats()).unwrap_or_default()),
    )?;
    let web = WebServer::start(args.listen, content).await?;
    Ok(Running {
        live,
        origin,
        web,
        layout,
    })
}

/// Prints the readiness line and one line per player URL on stdout.
fn announce(running: &Running) {
    let (web, layout) = (&running.web, &running.layout);
    println!(
        "hivecast-demo ready: http://{}/ mode={} origin={} players={}",
        web.addr(),
        layout.mode,
        layout.origin,
        layout.agents.len()
    );
    // Player URLs for other players (ffplay, mpv, VLC): the agent URL, and the short
    // redirect on the page's listener.
    for (i, a) in layout.agents.iter().enumerate() {
        println!(
            "  {}: {}  (or http://{}{})",
            a.name,
            a.player_url,
            web.addr(),
            web::play_path(i + 1)
        );
        tracing::info!(name = %a.name, player = %a.player_url, stats = ?a.stats_url, "player");
    }
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
}

async fn start_children(
    args: &DemoArgs,
    ports: &PortPlan,
    bins: Option<&(PathBuf, PathBuf)>,
    origin: &Origin,
    live_dir: &Path,
    work: &Path,
    children: &mut Vec<Managed>,
) -> Result<Vec<AgentEntry>, DemoError> {
    let stream_url = origin.url("/live/index.m3u8");
    let stream_url = stream_url.as_str();
    let logs = work.join("logs");
    let ready = Duration::from_secs(args.ready_timeout);
    let Some((agent_bin, tracker_bin)) = bins else {
        return Ok((0..args.agents)
            .map(|i| AgentEntry {
                name: format!("player-{}", i + 1),
                player_url: stream_url.to_string(),
                stats_url: None,
                metrics_url: None,
            })
            .collect());
    };

    if !args.self_digests {
        let a = expand_template(
            &args.digests_args,
            &[("dir", live_dir.display().to_string())],
        )?;
        let mut publisher = Managed::spawn(
            "publish-digests",
            agent_bin,
            &a,
            &[],
            &logs.join("publish-digests.log"),
        )?;
        // Agents started before the first sidecar exists would see a stream without
        // digests; readiness of the publisher = its first sidecar.
        let sidecar = crate::digest::sidecar_path(&live_dir.join("index.m3u8"));
        let r = publisher.wait_for_file(&sidecar, ready).await;
        children.push(publisher);
        r?;
    }

    let t_listen = free_addr()?;
    let t_admin = free_addr()?;
    let a = expand_template(
        &args.tracker_args,
        &[
            ("listen", t_listen.to_string()),
            ("admin", t_admin.to_string()),
        ],
    )?;
    let env = [(
        "HIVECAST_TRACKER__ADMIN__LISTEN".to_string(),
        t_admin.to_string(),
    )];
    let mut tracker = Managed::spawn("tracker", tracker_bin, &a, &env, &logs.join("tracker.log"))?;
    let r = tracker.wait_listening(t_listen, ready).await;
    children.push(tracker);
    r?;
    let tracker_url = format!("ws://{t_listen}/announce");
    tracing::info!(%tracker_url, "tracker ready");

    let env = agent_env(|k| std::env::var_os(k).is_some(), &args.agent_env);
    let mut entries = Vec::new();
    for i in 0..args.agents {
        let listen = match ports.agents.get(i).copied().flatten() {
            Some(fixed) => fixed,
            None => free_addr()?,
        };
        let admin = free_addr()?;
        let agent_work = work.join(format!("agent-{}", i + 1));
        std::fs::create_dir_all(&agent_work).map_err(|source| DemoError::Io {
            path: agent_work.clone(),
            source,
        })?;
        let a = expand_template(
            &args.agent_args,
            &[
                ("listen", listen.to_string()),
                ("admin", admin.to_string()),
                ("origin", origin.base_url()),
                ("tracker", tracker_url.clone()),
                ("stream", stream_url.to_string()),
                ("index", i.to_string()),
                ("work", agent_work.display().to_string()),
            ],
        )?;
        let name = format!("agent-{}", i + 1);
        let mut child = Managed::spawn(
            &name,
            agent_bin,
            &a,
            &env,
            &logs.join(format!("{name}.log")),
        )?;
        let r = child.wait_listening(listen, ready).await;
        children.push(child);
        r?;
        entries.push(AgentEntry {
            name,
            player_url: mirror_url(listen, stream_url),
            stats_url: Some(format!("http://{listen}/api/stats")),
            metrics_url: Some(format!("http://{admin}/metrics")),
        });
    }
    Ok(entries)
}

/// Waits for Ctrl-C, SIGTERM or the duration; logs children that exit on their own.
async fn wait_for_stop(
    duration: Option<u64>,
    signals: &mut StopSignals,
    children: &mut [Managed],
) -> String {
    let until = duration.map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut reported = vec![false; children.len()];
    loop {
        tokio::select! {
            reason = signals.recv() => return reason.into(),
            _ = async {
                match until {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            } => return "duration elapsed".into(),
            _ = tick.tick() => {
                for (i, c) in children.iter_mut().enumerate() {
                    if !reported[i] && let Some(status) = c.try_exited() {
                        reported[i] = true;
                        tracing::warn!(
                            name = c.name(),
                            %status,
                            log = %c.log_path().display(),
                            tail = %procs::log_tail(c.log_path(), 10),
                            "child exited on its own"
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_expand_and_reject_unknown_placeholders() {
        let v = expand_template(
            "run --listen {listen} --stream live={stream}",
            &[
                ("listen", "127.0.0.1:1".into()),
                ("stream", "http://o/x.m3u8".into()),
            ],
        )
        .expect("expand");
        assert_eq!(
            v,
            [
                "run",
                "--listen",
                "127.0.0.1:1",
                "--stream",
                "live=http://o/x.m3u8"
            ]
        );
        assert!(matches!(
            expand_template("run --x {nope}", &[("listen", "a".into())]),
            Err(DemoError::Usage(_))
        ));
        assert!(matches!(
            expand_template("   ", &[]),
            Err(DemoError::Usage(_))
        ));
        let d = expand_template(
            DEFAULT_AGENT_ARGS,
            &[
                ("listen", "L".into()),
                ("admin", "A".into()),
                ("origin", "O".into()),
                ("tracker", "T".into()),
                ("stream", "S".into()),
            ],
        )
        .expect("defaults expand");
        assert_eq!(d[0], "run");
    }

    #[test]
    fn agent_env_defaults_inheritance_and_overrides() {
        let all = agent_env(|_| false, &[]);
        assert_eq!(all.len(), DEFAULT_AGENT_ENV.len());
        assert!(all.contains(&(
            "HIVECAST_AGENT__P2P__WEBRTC__UDP_BIND".into(),
            "127.0.0.1:0".into()
        )));
        // An inherited variable is not overridden by the default.
        let inherited = agent_env(|k| k == "RUST_LOG", &[]);
        assert!(inherited.iter().all(|(k, _)| k != "RUST_LOG"));
        // --agent-env replaces a default and adds new ones; the last one wins.
        let extra = [
            (
                "HIVECAST_AGENT__P2P__HUNGRY_ANNOUNCE_INTERVAL".to_string(),
                "2s".to_string(),
            ),
            ("X".to_string(), "1".to_string()),
            ("X".to_string(), "2".to_string()),
        ];
        let env = agent_env(|_| false, &extra);
        let get = |k: &str| {
            env.iter()
                .filter(|(ek, _)| ek == k)
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(get("HIVECAST_AGENT__P2P__HUNGRY_ANNOUNCE_INTERVAL"), ["2s"]);
        assert_eq!(get("X"), ["2"]);
    }

    #[test]
    fn env_pairs_parse_or_fail_clearly() {
        assert_eq!(
            parse_env_pair("A=b=c"),
            Ok(("A".to_string(), "b=c".to_string()))
        );
        assert_eq!(parse_env_pair("A="), Ok(("A".to_string(), String::new())));
        for bad in ["", "=x", "novalue", "A\0=b"] {
            let e = parse_env_pair(bad).expect_err(bad);
            assert!(e.contains("KEY=VALUE"), "{e}");
        }
    }

    #[test]
    fn port_plans() {
        let a = |s: &str| -> SocketAddr { s.parse().expect("addr") };
        // Fixed page port: stable neighbours.
        let p = plan_ports(a("127.0.0.1:8080"), 4, None, None).expect("plan");
        assert_eq!(p.origin, a("127.0.0.1:8180"));
        assert_eq!(
            p.agents,
            ["8081", "8082", "8083", "8084"]
                .iter()
                .map(|port| Some(a(&format!("127.0.0.1:{port}"))))
                .collect::<Vec<_>>()
        );
        // Page on port 0: free ports everywhere.
        let p = plan_ports(a("127.0.0.1:0"), 2, None, None).expect("plan");
        assert_eq!(p.origin.port(), 0);
        assert_eq!(p.agents, [None, None]);
        // Explicit options win; base 0 = free ports.
        let p =
            plan_ports(a("127.0.0.1:8080"), 2, Some(a("127.0.0.1:9000")), Some(0)).expect("plan");
        assert_eq!(
            (p.origin, p.agents),
            (a("127.0.0.1:9000"), vec![None, None])
        );
        let p = plan_ports(a("127.0.0.1:0"), 2, None, Some(7000)).expect("plan");
        assert_eq!(
            p.agents,
            [Some(a("127.0.0.1:7000")), Some(a("127.0.0.1:7001"))]
        );
        // Errors: overlaps and overflow.
        for (page, agents, origin, base) in [
            ("127.0.0.1:8080", 4, Some("127.0.0.1:8082"), None),
            ("127.0.0.1:8080", 4, None, Some(8077)),
            ("127.0.0.1:65500", 1, None, None),
            ("127.0.0.1:65535", 1, Some("127.0.0.1:1000"), None),
            ("127.0.0.1:0", 3, None, Some(65534)),
        ] {
            let r = plan_ports(a(page), agents, origin.map(a), base);
            assert!(
                matches!(r, Err(DemoError::Usage(_))),
                "{page} {agents} {origin:?} {base:?}: {r:?}"
            );
        }
    }

    #[test]
    fn taken_ports_are_reported_with_the_option() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let e = check_port_free(addr, "agent-1", "--agent-port-base").expect_err("taken");
        let msg = e.to_string();
        assert!(
            msg.contains("agent-1") && msg.contains("--agent-port-base"),
            "{msg}"
        );
        drop(l);
        assert!(check_port_free(a0(), "x", "y").is_ok());
    }

    fn a0() -> SocketAddr {
        "127.0.0.1:0".parse().expect("addr")
    }

    #[test]
    fn mirror_urls() {
        let agent: SocketAddr = "127.0.0.1:8585".parse().expect("addr");
        assert_eq!(
            mirror_url(agent, "http://127.0.0.1:9000/live/index.m3u8"),
            "http://127.0.0.1:8585/http/127.0.0.1:9000/live/index.m3u8"
        );
        assert_eq!(
            mirror_url(agent, "https://cdn.example.com/live/master.m3u8"),
            "http://127.0.0.1:8585/https/cdn.example.com/live/master.m3u8"
        );
    }

    #[test]
    fn missing_binaries_and_hls_js_are_clear_errors() {
        let dir = std::env::temp_dir().join(format!("hivecast-demo-nobin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let err = find_binary(&dir, "hivecast-agent").expect_err("missing");
        assert!(err.to_string().contains("--origin-direct"), "{err}");
        let err = find_hls_js(Some(&dir.join("nope.js"))).expect_err("missing");
        assert!(err.to_string().contains("--hls-js"), "{err}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
        assert!(
            find_hls_js(None).is_ok(),
            "workspace node_modules has hls.js"
        );
    }
}
