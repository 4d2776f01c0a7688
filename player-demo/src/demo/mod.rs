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
//! [`DEFAULT_DIGESTS_ARGS`]) that can be replaced from the command line; ports are chosen by
//! the demo (bind `127.0.0.1:0`, read, release) and readiness is "accepts TCP connections".
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
/// Digest publisher command line. Placeholder: `{dir}` (the live output directory).
pub const DEFAULT_DIGESTS_ARGS: &str = "publish-digests {dir} --watch";

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
    /// Address of the embedded origin.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub origin_listen: SocketAddr,
    /// Agent command-line template (see the docs for placeholders).
    #[arg(long, default_value = DEFAULT_AGENT_ARGS)]
    pub agent_args: String,
    /// Tracker command-line template.
    #[arg(long, default_value = DEFAULT_TRACKER_ARGS)]
    pub tracker_args: String,
    /// Digest publisher command-line template.
    #[arg(long, default_value = DEFAULT_DIGESTS_ARGS)]
    pub digests_args: String,
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

fn bin_dir(flag: Option<&Path>) -> PathBuf {
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
    let (work, temporary) = match &args.work_dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("hivecast-demo-{}", std::process::id())),
            true,
        ),
    };
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DemoError::Io { path, source }
    };
    let logs = work.join("logs");
    std::fs::create_dir_all(&logs).map_err(io(&logs))?;

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
    ocfg.bind = args.origin_listen;
    let origin = Arc::new(Origin::start_with(ocfg).await?);
    let stream_url = origin.url("/live/index.m3u8");
    tracing::info!(origin = %origin.base_url(), stream = %stream_url, "origin serving the live stream");

    let mut children: Vec<Managed> = Vec::new();
    let result = start_children(
        &args,
        bins.as_ref(),
        &origin,
        &stream_url,
        &live_dir,
        &work,
        &mut children,
    )
    .await;
    let agents = match result {
        Ok(a) => a,
        Err(e) => {
            procs::shutdown_all(&mut children, Duration::from_secs(args.grace)).await;
            return Err(e);
        }
    };

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
        &hls_js,
        &layout,
        Arc::new(move || serde_json::to_string(&stats_origin.stats()).unwrap_or_default()),
    )?;
    let web = match WebServer::start(args.listen, content).await {
        Ok(w) => w,
        Err(e) => {
            procs::shutdown_all(&mut children, Duration::from_secs(args.grace)).await;
            return Err(e.into());
        }
    };
    println!(
        "hivecast-demo ready: http://{}/ mode={} origin={} players={}",
        web.addr(),
        layout.mode,
        layout.origin,
        layout.agents.len()
    );
    for a in &layout.agents {
        tracing::info!(name = %a.name, player = %a.player_url, stats = ?a.stats_url, "player");
    }
    use std::io::Write as _;
    let _ = std::io::stdout().flush();

    let reason = wait_for_stop(args.duration, &mut children).await;
    tracing::info!(%reason, "shutting down");
    // A second signal during shutdown kills everything at once.
    let second = tokio::spawn(async {
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            procs::kill_all_groups();
            std::process::exit(130);
        }
    });
    web.stop().await;
    let statuses = procs::shutdown_all(&mut children, Duration::from_secs(args.grace)).await;
    for (name, status) in statuses {
        tracing::info!(%name, %status, "child stopped");
    }
    if let Err(e) = live.stop().await {
        tracing::warn!(error = %e, "live packager had stopped with an error");
    }
    if let Ok(origin) = Arc::try_unwrap(origin) {
        origin.stop().await;
    }
    second.abort();
    if temporary {
        let _ = std::fs::remove_dir_all(&work);
    } else {
        tracing::info!(dir = %work.display(), "work directory kept (logs in logs/)");
    }
    println!("hivecast-demo stopped: {reason}");
    Ok(())
}

async fn start_children(
    args: &DemoArgs,
    bins: Option<&(PathBuf, PathBuf)>,
    origin: &Origin,
    stream_url: &str,
    live_dir: &Path,
    work: &Path,
    children: &mut Vec<Managed>,
) -> Result<Vec<AgentEntry>, DemoError> {
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
        children.push(Managed::spawn(
            "publish-digests",
            agent_bin,
            &a,
            &[],
            &logs.join("publish-digests.log"),
        )?);
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

    let mut entries = Vec::new();
    for i in 0..args.agents {
        let listen = free_addr()?;
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
        let mut child =
            Managed::spawn(&name, agent_bin, &a, &[], &logs.join(format!("{name}.log")))?;
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
async fn wait_for_stop(duration: Option<u64>, children: &mut [Managed]) -> String {
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => return format!("cannot install SIGTERM handler: {e}"),
    };
    let until = duration.map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut reported = vec![false; children.len()];
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return "Ctrl-C".into(),
            _ = term.recv() => return "SIGTERM".into(),
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
