//! `hivecast-bench swarm`: a whole swarm on this machine, from real processes.
//!
//! ```text
//!  synthetic source ─▶ live packager ─▶ origin (127.0.0.1, in process) ◀─ HTTP ─┐
//!  (bitrate × segment length, digests written with every playlist)              │
//!                                                                               │
//!  paced player 1..N (in process) ─▶ hivecast-agent 1..N (child processes) ─────┘
//!                                        ▲ WebRTC on 127.0.0.1 ▲
//!                                        └─ hivecast-tracker ──┘ (child process)
//! ```
//!
//! Every viewer is a *slot*: an agent process and a paced player reading the live stream
//! through it. With churn, a slot's viewer leaves at a planned time (player stops, agent gets
//! `SIGTERM`) and a new viewer (new agent, new player) takes its place at once, so N stays
//! constant. The plan is drawn from the seed before anything starts ([`plan_sessions`]).
//! While players run, the harness samples each agent's RSS every second and the tracker's;
//! at the end of a session it reads the agent's CPU time from `/proc` and its counters from
//! `/metrics`, and checks every segment the player got against the packager's SHA-256. The
//! report ([`report`]) is printed as a table and written as JSON.
//!
//! Every child runs in its own process group (`hivecast_demo::demo::procs`); Ctrl-C, the end
//! of the run, an error or a panic stop all of them. Logs go to `WORK/logs/` (kept with
//! `--work-dir`).

mod procstat;
pub mod report;
mod synth;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use hivecast_demo::client::HttpClient;
use hivecast_demo::demo::procs::{self, Managed};
use hivecast_demo::demo::{DEFAULT_AGENT_ARGS, agent_env, expand_template, free_addr, mirror_url};
use hivecast_demo::live::{DigestTable, LiveConfig, LivePackager};
use hivecast_demo::origin::{Origin, OriginConfig};
use hivecast_demo::player::{self, PlayerConfig};
use hivecast_demo::prom::metric_sum as metric;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use report::{Received, RunFacts, Session};

/// Flags of `hivecast-bench swarm`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Concurrent viewers (agent processes and players).
    #[arg(long, default_value_t = 8)]
    pub agents: usize,
    /// Run length in seconds (players stop then).
    #[arg(long, default_value_t = 60)]
    pub duration: u64,
    /// Stream bitrate, kbit/s (sets the segment sizes).
    #[arg(long, default_value_t = 3000.0)]
    pub bitrate: f64,
    /// Segment duration, seconds.
    #[arg(long, default_value_t = 2.0)]
    pub segment_secs: f64,
    /// Write the report here as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Seconds at the start whose segments are not counted in the byte figures (stalls are
    /// always counted). Default: 10, or a third of a shorter run.
    #[arg(long, value_name = "SECS")]
    pub warmup: Option<f64>,
    /// Fraction of viewers leaving (and replaced at once) per minute, e.g. 0.1.
    #[arg(long, default_value_t = 0.0)]
    pub churn: f64,
    /// Upload cap per agent, kbit/s (0 = no cap).
    #[arg(long, default_value_t = 0.0, value_name = "KBPS")]
    pub upload_cap: f64,
    /// RNG seed (segment sizes, churn plan).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Players start this many segments behind the live edge.
    #[arg(long, default_value_t = 3)]
    pub live_start_behind: usize,
    /// Directory holding hivecast-agent and hivecast-tracker (default: next to this binary).
    #[arg(long, env = "HIVECAST_BIN_DIR", value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
    /// Working directory for the stream and logs (kept); default a temporary directory that
    /// is removed afterwards.
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// Extra environment variable for every agent (KEY=VALUE), e.g.
    /// HIVECAST_AGENT__P2P__UPLOAD_SLOTS=4; repeatable.
    #[arg(long = "agent-env", value_name = "KEY=VALUE", value_parser = hivecast_demo::demo::parse_env_pair)]
    pub agent_env: Vec<(String, String)>,
    /// Seconds each child gets to accept connections.
    #[arg(long, default_value_t = 30)]
    pub ready_timeout: u64,
}

impl Args {
    fn warmup_secs(&self) -> f64 {
        self.warmup
            .unwrap_or_else(|| (self.duration as f64 / 3.0).min(10.0))
    }

    /// Every problem with the flags, one per line.
    fn check(&self) -> anyhow::Result<()> {
        let mut problems = Vec::new();
        if !(1..=64).contains(&self.agents) {
            problems.push(format!("--agents {}: must be 1..=64", self.agents));
        }
        if !(10..=3600).contains(&self.duration) {
            problems.push(format!(
                "--duration {}: must be 10..=3600 seconds",
                self.duration
            ));
        }
        if !(self.bitrate.is_finite() && (10.0..=100_000.0).contains(&self.bitrate)) {
            problems.push(format!(
                "--bitrate {}: must be 10..=100000 kbit/s",
                self.bitrate
            ));
        }
        if !(self.segment_secs.is_finite() && (0.5..=20.0).contains(&self.segment_secs)) {
            problems.push(format!(
                "--segment-secs {}: must be 0.5..=20",
                self.segment_secs
            ));
        }
        let w = self.warmup_secs();
        if !(w.is_finite() && w >= 0.0 && w < self.duration as f64) {
            problems.push(format!(
                "--warmup {w}: must be at least 0 and less than --duration"
            ));
        }
        if !(self.churn.is_finite() && (0.0..=1.0).contains(&self.churn)) {
            problems.push(format!("--churn {}: must be 0..=1 per minute", self.churn));
        }
        if !(self.upload_cap.is_finite() && self.upload_cap >= 0.0) {
            problems.push(format!("--upload-cap {}: must be ≥ 0", self.upload_cap));
        }
        if !(1..=10).contains(&self.live_start_behind) {
            problems.push(format!(
                "--live-start-behind {}: must be 1..=10",
                self.live_start_behind
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            bail!("invalid flags:\n  {}", problems.join("\n  "))
        }
    }
}

/// Planned viewer sessions of one slot: `(start, end)` in seconds from the start of the run.
pub type SlotPlan = Vec<(f64, f64)>;

/// Shortest planned session: a viewer is not churned again within this many seconds.
const MIN_SESSION_S: f64 = 8.0;

/// Draws the session plan: leaves form a Poisson process of rate `churn × agents` per
/// minute; each leave ends the current session of a random slot (one that has run at least
/// [`MIN_SESSION_S`], and not within the last [`MIN_SESSION_S`] of the run) and starts a new
/// one there at the same moment.
pub fn plan_sessions(
    agents: usize,
    duration_s: f64,
    churn_per_min: f64,
    seed: u64,
) -> Vec<SlotPlan> {
    let mut plans: Vec<SlotPlan> = vec![vec![(0.0, duration_s)]; agents];
    let rate = churn_per_min * agents as f64 / 60.0;
    if rate <= 0.0 || agents == 0 {
        return plans;
    }
    let mut rng = StdRng::seed_from_u64(seed ^ 0xc4u64);
    let mut t = 0.0;
    loop {
        let u: f64 = rng.random_range(f64::EPSILON..1.0);
        t += -u.ln() / rate;
        if t >= duration_s - MIN_SESSION_S {
            return plans;
        }
        let slot = rng.random_range(0..agents);
        let plan = &mut plans[slot];
        let last = plan.len() - 1;
        if t - plan[last].0 < MIN_SESSION_S {
            continue;
        }
        plan[last].1 = t;
        plan.push((t, duration_s));
    }
}

/// Everything a slot task needs.
struct Ctx {
    agent_bin: PathBuf,
    origin_base: String,
    stream_url: String,
    tracker_url: String,
    env: Vec<(String, String)>,
    logs: PathBuf,
    ready: Duration,
    live_start_behind: usize,
    t0: Instant,
    ticks: f64,
    /// SHA-256 of every segment the packager publishes, to check what players got.
    digests: DigestTable,
}

/// Runs the benchmark.
pub fn run(args: Args) -> anyhow::Result<()> {
    args.check()?;
    procs::install_panic_hook();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(async {
        tokio::select! {
            r = run_swarm(&args) => r,
            _ = tokio::signal::ctrl_c() => {
                procs::kill_all_groups();
                bail!("interrupted; every child process was killed")
            }
        }
    })
}

fn find_binaries(flag: Option<&Path>) -> anyhow::Result<(PathBuf, PathBuf)> {
    let dir = hivecast_demo::demo::bin_dir(flag);
    let find = |name: &str| {
        let p = dir.join(name);
        if p.is_file() {
            Ok(p)
        } else {
            bail!(
                "{name} not found at {} (build it: cargo build --release -p {name}; or pass --bin-dir DIR)",
                p.display()
            )
        }
    };
    Ok((find("hivecast-agent")?, find("hivecast-tracker")?))
}

async fn run_swarm(args: &Args) -> anyhow::Result<()> {
    let (agent_bin, tracker_bin) = find_binaries(args.bin_dir.as_deref())?;
    let (work, temporary) = match &args.work_dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("hivecast-swarm-{}", std::process::id())),
            true,
        ),
    };
    let result = swarm_in(args, &agent_bin, &tracker_bin, &work).await;
    if temporary {
        let _ = std::fs::remove_dir_all(&work);
    } else {
        eprintln!("work directory kept: {} (logs in logs/)", work.display());
    }
    let r = result?;
    let text = serde_json::to_string_pretty(&r)?;
    if let Some(p) = &args.json {
        std::fs::write(p, &text).with_context(|| format!("writing {}", p.display()))?;
    }
    print!("{}", report::table(&r));
    Ok(())
}

async fn swarm_in(
    args: &Args,
    agent_bin: &Path,
    tracker_bin: &Path,
    work: &Path,
) -> anyhow::Result<report::SwarmReport> {
    let logs = work.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let duration = args.duration as f64;
    let warmup = args.warmup_secs();

    // The stream: enough distinct segments for the whole run (no loop), at most 120.
    let window = (args.live_start_behind + 3).max(6);
    let spec = synth::SynthSpec {
        bitrate_bps: args.bitrate * 1000.0,
        segment_secs: args.segment_secs,
        segments: ((duration / args.segment_secs).ceil() as usize + window + 2).min(120),
        seed: args.seed,
    };
    let source = synth::write_source(&work.join("source"), &spec)
        .with_context(|| format!("writing the synthetic source under {}", work.display()))?;
    let origin_root = work.join("origin");
    let mut live_cfg = LiveConfig::new(source, origin_root.join("live"));
    live_cfg.window = window;
    live_cfg.write_digests = true;
    let packager = LivePackager::new(live_cfg)?;
    let digests = packager.digests();
    let live = packager.spawn_realtime();
    let origin = Origin::start_with(OriginConfig::new(&origin_root)).await?;
    let stream_url = origin.url("/live/index.m3u8");

    // The tracker.
    let ready = Duration::from_secs(args.ready_timeout);
    let (t_listen, t_admin) = (free_addr()?, free_addr()?);
    let mut tracker = Managed::spawn(
        "tracker",
        tracker_bin,
        &["run".into(), "--listen".into(), t_listen.to_string()],
        &[(
            "HIVECAST_TRACKER__ADMIN__LISTEN".to_string(),
            t_admin.to_string(),
        )],
        &logs.join("tracker.log"),
    )?;
    tracker.wait_listening(t_listen, ready).await?;

    let mut extra = args.agent_env.clone();
    if args.upload_cap > 0.0 {
        let bytes_per_s = (args.upload_cap * 1000.0 / 8.0).round() as u64;
        extra.insert(
            0,
            (
                "HIVECAST_AGENT__P2P__UPLOAD_RATE_CAP".into(),
                format!("{bytes_per_s} B"),
            ),
        );
    }
    let plans = plan_sessions(args.agents, duration, args.churn, args.seed);
    let ctx = Arc::new(Ctx {
        agent_bin: agent_bin.to_path_buf(),
        origin_base: origin.base_url(),
        stream_url,
        tracker_url: format!("ws://{t_listen}/announce"),
        env: agent_env(|k| std::env::var_os(k).is_some(), &extra),
        logs,
        ready,
        live_start_behind: args.live_start_behind,
        t0: Instant::now(),
        ticks: procstat::clock_ticks(),
        digests,
    });
    eprintln!(
        "swarm: {} agents, {} s, {} kbit/s, {} s segments, churn {}/min, {} sessions planned",
        args.agents,
        args.duration,
        args.bitrate,
        args.segment_secs,
        args.churn,
        plans.iter().map(Vec::len).sum::<usize>()
    );
    let mut slots = tokio::task::JoinSet::new();
    for (slot, plan) in plans.iter().cloned().enumerate() {
        let ctx = ctx.clone();
        slots.spawn(async move { run_slot(&ctx, slot, &plan).await });
    }

    // Warm-up mark and tracker memory while the slots run.
    let warm_at = ctx.t0 + Duration::from_secs_f64(warmup);
    let mut warm_sequence = None;
    let mut tracker_rss = 0u64;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut sessions = Vec::new();
    let mut failure = None;
    while !slots.is_empty() {
        tokio::select! {
            done = slots.join_next() => match done {
                Some(Ok(Ok(mut s))) => sessions.append(&mut s),
                Some(Ok(Err(e))) => {
                    failure.get_or_insert(e);
                }
                Some(Err(e)) => {
                    failure.get_or_insert(anyhow::anyhow!("slot task failed: {e}"));
                }
                None => {}
            },
            _ = tick.tick() => {
                if let Some(pid) = tracker.pid() {
                    tracker_rss = tracker_rss.max(procstat::rss_bytes(pid).unwrap_or(0));
                }
                if warm_sequence.is_none() && Instant::now() >= warm_at {
                    warm_sequence = Some(live.status().last_sequence);
                }
                if let Some(status) = tracker.try_exited() {
                    failure.get_or_insert(anyhow::anyhow!(
                        "the tracker exited ({status}); last log lines:\n{}",
                        procs::log_tail(tracker.log_path(), 20)
                    ));
                    slots.abort_all();
                }
            }
        }
    }
    procs::shutdown_all(std::slice::from_mut(&mut tracker), Duration::from_secs(5)).await;
    if let Some(e) = failure {
        return Err(e);
    }
    let stats = origin.stats();
    let _ = live.stop().await;
    origin.stop().await;
    let joins = sessions.len().saturating_sub(args.agents) as u64;
    let facts = RunFacts {
        agents: args.agents,
        bitrate_bps: args.bitrate * 1000.0,
        upload_cap_bps: (args.upload_cap > 0.0).then_some(args.upload_cap * 1000.0),
        warm_sequence: warm_sequence.unwrap_or(u64::MAX),
        origin_bytes_by_path: stats
            .by_path
            .iter()
            .map(|(p, c)| (p.clone(), c.bytes))
            .collect(),
        tracker_rss_max: tracker_rss,
        joins,
        leaves: joins,
    };
    Ok(report::build(&facts, &sessions))
}

/// One slot: its planned sessions one after the other.
async fn run_slot(ctx: &Ctx, slot: usize, plan: &SlotPlan) -> anyhow::Result<Vec<Session>> {
    let mut out = Vec::new();
    for (generation, (start, end)) in plan.iter().enumerate() {
        tokio::time::sleep_until(ctx.t0 + Duration::from_secs_f64(*start)).await;
        out.push(
            run_session(
                ctx,
                slot,
                generation,
                ctx.t0 + Duration::from_secs_f64(*end),
            )
            .await?,
        );
    }
    Ok(out)
}

/// One viewer: starts an agent, plays through it until `end`, measures, stops the agent.
async fn run_session(
    ctx: &Ctx,
    slot: usize,
    generation: usize,
    end: Instant,
) -> anyhow::Result<Session> {
    let (listen, admin) = (free_addr()?, free_addr()?);
    let args = expand_template(
        DEFAULT_AGENT_ARGS,
        &[
            ("listen", listen.to_string()),
            ("admin", admin.to_string()),
            ("origin", ctx.origin_base.clone()),
            ("tracker", ctx.tracker_url.clone()),
            ("stream", ctx.stream_url.clone()),
        ],
    )?;
    let name = format!("agent-{}-{}", slot + 1, generation + 1);
    let mut agent = Managed::spawn(
        &name,
        &ctx.agent_bin,
        &args,
        &ctx.env,
        &ctx.logs.join(format!("{name}.log")),
    )?;
    let spawned = Instant::now();
    agent.wait_listening(listen, ctx.ready).await?;
    let pid = agent.pid().context("agent has no pid")?;

    let mut pc = PlayerConfig::new(mirror_url(listen, &ctx.stream_url));
    pc.max_duration = end.saturating_duration_since(Instant::now());
    pc.live_start_behind = ctx.live_start_behind;
    let play = player::play(pc);
    tokio::pin!(play);
    let mut rss_max = 0u64;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let played = loop {
        tokio::select! {
            r = &mut play => break r,
            _ = tick.tick() => rss_max = rss_max.max(procstat::rss_bytes(pid).unwrap_or(0)),
        }
    };
    if let Some(status) = agent.try_exited() {
        bail!(
            "{name} exited during the run ({status}); last log lines:\n{}",
            procs::log_tail(agent.log_path(), 20)
        );
    }
    rss_max = rss_max.max(procstat::rss_bytes(pid).unwrap_or(0));
    let cpu = procstat::cpu_seconds(pid, ctx.ticks).unwrap_or(0.0);
    let wall = spawned.elapsed().as_secs_f64();
    let metrics = HttpClient::new(Duration::from_secs(5))
        .get(&format!("http://{admin}/metrics"), &[])
        .await
        .map(|f| String::from_utf8_lossy(&f.body).into_owned())
        .with_context(|| format!("scraping {name}'s metrics"))?;
    procs::shutdown_all(std::slice::from_mut(&mut agent), Duration::from_secs(5)).await;

    let mut session = Session {
        agent_cpu_seconds: cpu,
        agent_wall_seconds: wall,
        agent_rss_max: rss_max,
        peer_bytes: metric(
            &metrics,
            "hivecast_agent_downloaded_bytes_total",
            "source=\"peer\"",
        ) as u64,
        integrity_failures: metric(&metrics, "hivecast_agent_integrity_failures_total", "") as u64,
        cut_through_uploads: metric(&metrics, "hivecast_agent_p2p_cut_through_uploads_total", "")
            as u64,
        origin_fetches: origin_fetch_reasons(&metrics),
        ..Session::default()
    };
    match played {
        Ok(r) => {
            session.startup_seconds = r.startup_seconds;
            session.stalls = r.stalls;
            session.stall_seconds = r.stall_seconds;
            session.played_seconds = r.played_seconds;
            session.lost_segments = r.skipped_segments + r.failed_segments;
            session.corrupt_segments = r
                .segments
                .iter()
                .filter(|s| ctx.digests.get(s.sequence) != Some(s.sha256.as_str()))
                .count() as u64;
            session.received = r
                .segments
                .iter()
                .map(|s| Received {
                    sequence: s.sequence,
                    path: format!("/live/{}", s.uri),
                    bytes: s.bytes,
                })
                .collect();
        }
        Err(e) => eprintln!("{name}: the player never started: {e}"),
    }
    Ok(session)
}

/// `hivecast_agent_p2p_origin_fetches_total` by its `reason` label.
fn origin_fetch_reasons(page: &str) -> std::collections::BTreeMap<String, u64> {
    const NAME: &str = "hivecast_agent_p2p_origin_fetches_total{";
    page.lines()
        .filter_map(|l| l.strip_prefix(NAME))
        .filter_map(|rest| {
            let reason = rest.split("reason=\"").nth(1)?.split('"').next()?;
            let value: f64 = rest.rsplit(' ').next()?.parse().ok()?;
            Some((reason.to_string(), value as u64))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_churn_is_one_session_per_slot() {
        let p = plan_sessions(4, 60.0, 0.0, 1);
        assert_eq!(p, vec![vec![(0.0, 60.0)]; 4]);
    }

    #[test]
    fn churn_plans_are_contiguous_seeded_and_near_the_rate() {
        let p = plan_sessions(10, 600.0, 0.1, 3);
        assert_eq!(p, plan_sessions(10, 600.0, 0.1, 3));
        let leaves: usize = p.iter().map(|s| s.len() - 1).sum();
        // Expected 0.1 × 10 × 10 min = 10 leaves (Poisson; a few are skipped as too soon).
        assert!((4..=18).contains(&leaves), "{leaves} leaves");
        for slot in &p {
            assert_eq!(slot[0].0, 0.0);
            assert_eq!(slot.last().expect("session").1, 600.0);
            for w in slot.windows(2) {
                assert_eq!(w[0].1, w[1].0, "sessions follow each other");
            }
            for (s, e) in slot {
                assert!(e - s >= MIN_SESSION_S, "{s}..{e}");
            }
        }
    }

    #[test]
    fn flags_are_checked_all_at_once() {
        let mut a = Args {
            agents: 0,
            duration: 5,
            bitrate: -1.0,
            segment_secs: 0.1,
            json: None,
            warmup: Some(100.0),
            churn: 2.0,
            upload_cap: f64::NAN,
            seed: 1,
            live_start_behind: 0,
            bin_dir: None,
            work_dir: None,
            agent_env: vec![],
            ready_timeout: 30,
        };
        let e = a.check().expect_err("bad flags").to_string();
        for flag in [
            "--agents",
            "--duration",
            "--bitrate",
            "--segment-secs",
            "--warmup",
            "--churn",
            "--upload-cap",
            "--live-start-behind",
        ] {
            assert!(e.contains(flag), "{flag} not reported in {e}");
        }
        a = Args {
            agents: 3,
            duration: 30,
            bitrate: 1000.0,
            segment_secs: 1.0,
            warmup: None,
            churn: 0.0,
            upload_cap: 0.0,
            live_start_behind: 3,
            ..a
        };
        a.check().expect("good flags");
        assert_eq!(a.warmup_secs(), 10.0);
    }

    #[test]
    fn origin_fetch_reasons_by_label() {
        let page = "# TYPE hivecast_agent_p2p_origin_fetches_total counter\nhivecast_agent_p2p_origin_fetches_total{reason=\"elected\"} 12\nhivecast_agent_p2p_origin_fetches_total{reason=\"fallback\"} 3\nhivecast_agent_peers 2\n";
        let m = origin_fetch_reasons(page);
        assert_eq!(m.len(), 2);
        assert_eq!(m["elected"], 12);
        assert_eq!(m["fallback"], 3);
    }
}
