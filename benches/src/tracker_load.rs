//! `hivecast-bench tracker-load`: a WebTorrent-protocol load generator.
//!
//! N WebSocket clients join `--swarms` swarms (`started`), then for `--duration` each
//! announces (`update`) with `--offers` offers, waits for the response (closed loop,
//! optionally paced by `--rate`), and answers every offer the tracker relays to it.
//! Each SDP carries its send time (nanoseconds since the run started, same process
//! clock), so the receiver measures relay latency directly.
//!
//! Reported: announces/s, relayed offers/s and answers/s, p50/p99 of announce→response
//! and of offer/answer relay latency, tracker RSS (idle, with N peers joined, after
//! load; `VmRSS` from `/proc/<pid>/status`) and per peer, and tracker and generator CPU
//! (`utime + stime` from `/proc/<pid>/stat`) over the measured window.
//!
//! The tracker is either already running (`--url` + `--tracker-pid`) or spawned
//! (`--spawn PATH`, optionally under `taskset -c CPUS` with `--spawn-cpus`), with
//! limits raised for the test via environment variables. Everything is bounded:
//! connect phase by `--connect-timeout`, load by `--duration` (≤ 10 min), latency
//! samples by a cap.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use hivecast_tracker::proto::{
    AnnounceEvent, AnnounceRequest, AnswerRequest, ClientMessage, InfoHash, Offer, OfferId, PeerId,
    SdpType, ServerMessage, SessionDescription,
};
use serde::Serialize;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;

/// Longest allowed load phase.
const MAX_DURATION: Duration = Duration::from_secs(600);
/// Latency samples kept per client and kind (bounds generator memory).
const MAX_SAMPLES_PER_CLIENT: usize = 4096;

/// Command-line arguments of `tracker-load`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Tracker URL (`ws://host:port/announce`); ignored with `--spawn`.
    #[arg(long, default_value = "ws://127.0.0.1:8000/announce")]
    url: String,
    /// Number of peers (one WebSocket each).
    #[arg(long, default_value_t = 1000)]
    peers: usize,
    /// Number of swarms; peer i joins swarm i % swarms.
    #[arg(long, default_value_t = 10)]
    swarms: usize,
    /// Offers per announce.
    #[arg(long, default_value_t = 5)]
    offers: usize,
    /// Length of the measured load phase (humantime, e.g. 30s).
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Load before measuring starts (excluded from the figures).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Total announces per second over all peers; 0 = closed loop, as fast as the
    /// tracker answers (one announce in flight per peer).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Bytes of (opaque) SDP per offer and answer.
    #[arg(long, default_value_t = 600)]
    sdp_bytes: usize,
    /// Connections opened concurrently during the connect phase.
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
    /// Upper bound for the connect phase.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    connect_timeout: Duration,
    /// Spread clients over this many loopback source addresses (127.0.0.1..).
    #[arg(long, default_value_t = 1)]
    source_ips: u8,
    /// PID of the tracker, for RSS and CPU figures.
    #[arg(long)]
    tracker_pid: Option<u32>,
    /// Spawn this tracker binary (`PATH run --listen 127.0.0.1:0`) with benchmark
    /// limits, and measure it.
    #[arg(long, value_name = "PATH")]
    spawn: Option<PathBuf>,
    /// Run the spawned tracker under `taskset -c CPUS`.
    #[arg(long, value_name = "CPUS")]
    spawn_cpus: Option<String>,
    /// Write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Default, Serialize)]
struct Percentiles {
    samples: usize,
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
}

impl Percentiles {
    fn of(mut v: Vec<u32>) -> Self {
        if v.is_empty() {
            return Self::default();
        }
        v.sort_unstable();
        let at = |q: f64| {
            let i = ((v.len() as f64 - 1.0) * q).round() as usize;
            u64::from(v.get(i).copied().unwrap_or(0))
        };
        Self {
            samples: v.len(),
            p50_us: at(0.50),
            p99_us: at(0.99),
            max_us: u64::from(v.last().copied().unwrap_or(0)),
        }
    }
}

/// Resident memory of the tracker at the three phases.
#[derive(Debug, Clone, Default, Serialize)]
struct Memory {
    idle_kib: Option<u64>,
    connected_kib: Option<u64>,
    after_load_kib: Option<u64>,
    peak_kib: Option<u64>,
    /// RSS with all peers joined divided by the peers.
    per_peer_bytes: Option<f64>,
    /// (RSS with peers − idle RSS) / peers.
    per_peer_delta_bytes: Option<f64>,
}

/// The run's figures (also written as JSON).
#[derive(Debug, Clone, Default, Serialize)]
struct Report {
    url: String,
    peers_requested: usize,
    peers_connected: usize,
    connect_failures: usize,
    connect_seconds: f64,
    swarms: usize,
    offers_per_announce: usize,
    sdp_bytes: usize,
    rate_target: f64,
    measured_seconds: f64,
    announces: u64,
    announces_per_sec: f64,
    offers_relayed: u64,
    offer_relays_per_sec: f64,
    answers_relayed: u64,
    answer_relays_per_sec: f64,
    failure_reasons: u64,
    disconnects: u64,
    announce_latency: Percentiles,
    offer_relay_latency: Percentiles,
    answer_relay_latency: Percentiles,
    tracker_pid: Option<u32>,
    tracker_memory: Memory,
    /// Tracker CPU over the measured window, in cores (1.0 = one core busy).
    tracker_cpu_cores: Option<f64>,
    /// Generator CPU over the measured window, in cores.
    generator_cpu_cores: Option<f64>,
    generator_threads: usize,
}

#[derive(Debug, Default)]
struct ClientStats {
    announces: u64,
    offers: u64,
    answers: u64,
    failures: u64,
    disconnected: bool,
    announce_us: Vec<u32>,
    offer_us: Vec<u32>,
    answer_us: Vec<u32>,
}

fn push_sample(v: &mut Vec<u32>, d: u64) {
    if v.len() < MAX_SAMPLES_PER_CLIENT {
        v.push(u32::try_from(d).unwrap_or(u32::MAX));
    }
}

/// Fields 14 and 15 (utime, stime) of /proc/<pid>/stat, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; fields resume after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so utime (14) is index 11.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn clock_ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// A spawned tracker; killed on drop.
struct Spawned {
    child: Child,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_tracker(
    path: &PathBuf,
    cpus: Option<&str>,
    peers: usize,
) -> anyhow::Result<(Spawned, String)> {
    let mut cmd = match cpus {
        Some(c) => {
            let mut t = Command::new("taskset");
            t.args(["-c", c]).arg(path);
            t
        }
        None => Command::new(path),
    };
    let big = (peers * 2 + 1000).to_string();
    cmd.args(["run", "--listen", "127.0.0.1:0"])
        .env("HIVECAST_TRACKER__ADMIN__LISTEN", "127.0.0.1:0")
        .env("HIVECAST_TRACKER__LIMITS__MAX_CONNECTIONS", &big)
        .env("HIVECAST_TRACKER__LIMITS__MAX_CONNECTIONS_PER_IP", &big)
        .env(
            "HIVECAST_TRACKER__LIMITS__ANNOUNCE_RATE_PER_IP",
            "1000000000",
        )
        .env(
            "HIVECAST_TRACKER__LIMITS__ANNOUNCE_BURST_PER_IP",
            "1000000000",
        )
        .env("HIVECAST_TRACKER__LIMITS__MAX_OFFERS_PER_ANNOUNCE", "100")
        .env("HIVECAST_TRACKER__SERVER__OUTBOUND_QUEUE", "1024")
        .env("HIVECAST_TRACKER__LOG__FILTER", "info")
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("spawning {}", path.display()))?;
    let stdout = child.stdout.take().context("tracker stdout")?;
    let spawned = Spawned { child };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if !sent && line.contains("tracker listening") {
                let addr = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("listen="))
                    .map(str::to_owned);
                let _ = tx.send(addr);
                sent = true;
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(20))
        .context("the spawned tracker did not report its address")?
        .context("no listen= in the tracker's start line")?;
    Ok((spawned, format!("ws://{addr}/announce")))
}

fn id_from(seed: u64, salt: u8) -> [u8; 20] {
    let mut b = [0u8; 20];
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(salt);
    for slot in b.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *slot = x as u8;
    }
    b
}

fn stamped_sdp(kind: SdpType, base: Instant, pad: &str) -> SessionDescription {
    let t = base.elapsed().as_nanos();
    SessionDescription {
        kind,
        sdp: format!("t={t}\r\n{pad}"),
    }
}

fn latency_us(base: Instant, sdp: &str) -> Option<u64> {
    let sent: u128 = sdp.strip_prefix("t=")?.split("\r\n").next()?.parse().ok()?;
    let now = base.elapsed().as_nanos();
    u64::try_from(now.saturating_sub(sent) / 1000).ok()
}

type Ws = WebSocketStream<TcpStream>;

async fn connect(
    url: &str,
    addr: SocketAddr,
    source: Option<std::net::Ipv4Addr>,
) -> anyhow::Result<Ws> {
    let tcp = match source {
        Some(ip) => {
            let s = TcpSocket::new_v4()?;
            s.bind(SocketAddr::from((ip, 0)))?;
            s.connect(addr).await?
        }
        None => TcpStream::connect(addr).await?,
    };
    tcp.set_nodelay(true)?;
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(Some(1 << 20));
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, tcp, Some(config)).await?;
    Ok(ws)
}

/// Shared run state.
struct Run {
    base: Instant,
    measuring: AtomicBool,
    stop: CancellationToken,
    offers: usize,
    pad: String,
    pacing: Option<Duration>,
    announces_sent: AtomicU64,
}

async fn join(ws: &mut Ws, info_hash: InfoHash, peer_id: PeerId) -> anyhow::Result<()> {
    let msg = ClientMessage::Announce(AnnounceRequest {
        info_hash,
        peer_id,
        event: AnnounceEvent::Started,
        numwant: Some(0),
        uploaded: Some(0),
        downloaded: Some(0),
        left: Some(1_000_000),
        offers: Vec::new(),
        trackerid: None,
    });
    ws.send(Message::text(msg.to_json())).await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => match ServerMessage::from_json(t.as_bytes()) {
                Ok(ServerMessage::AnnounceResponse(_)) => return Ok(()),
                Ok(ServerMessage::Error(e)) => bail!("join refused: {}", e.failure_reason),
                _ => continue,
            },
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => bail!("closed during join"),
        }
    }
}

async fn client(
    mut ws: Ws,
    index: usize,
    info_hash: InfoHash,
    peer_id: PeerId,
    run: Arc<Run>,
) -> ClientStats {
    let mut stats = ClientStats::default();
    let mut offer_counter: u64 = 0;
    let mut outstanding: Option<Instant> = None;
    // Spread the first announces over one pacing period (or 50 ms when unpaced).
    let spread = run.pacing.unwrap_or(Duration::from_millis(50));
    let phase = spread.mul_f64((index % 1000) as f64 / 1000.0);
    let timer = tokio::time::sleep(phase);
    tokio::pin!(timer);
    loop {
        tokio::select! {
            biased;
            () = run.stop.cancelled() => break,
            msg = ws.next() => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                        stats.disconnected = true;
                        break;
                    }
                    Some(Ok(_)) => continue,
                };
                let measuring = run.measuring.load(Ordering::Relaxed);
                match ServerMessage::from_json(text.as_bytes()) {
                    Ok(ServerMessage::AnnounceResponse(_)) => {
                        if let Some(t0) = outstanding.take() {
                            if measuring {
                                stats.announces += 1;
                                push_sample(&mut stats.announce_us, t0.elapsed().as_micros() as u64);
                            }
                            let next = match run.pacing {
                                Some(p) => (t0 + p).max(Instant::now()),
                                None => Instant::now(),
                            };
                            timer.as_mut().reset(next.into());
                        }
                    }
                    Ok(ServerMessage::Offer(o)) => {
                        if measuring {
                            stats.offers += 1;
                            if let Some(us) = latency_us(run.base, &o.offer.sdp) {
                                push_sample(&mut stats.offer_us, us);
                            }
                        }
                        let answer = ClientMessage::Answer(AnswerRequest {
                            info_hash: o.info_hash,
                            peer_id,
                            to_peer_id: o.peer_id,
                            offer_id: o.offer_id,
                            answer: stamped_sdp(SdpType::Answer, run.base, &run.pad),
                        });
                        if ws.send(Message::text(answer.to_json())).await.is_err() {
                            stats.disconnected = true;
                            break;
                        }
                    }
                    Ok(ServerMessage::Answer(a)) => {
                        if measuring {
                            stats.answers += 1;
                            if let Some(us) = latency_us(run.base, &a.answer.sdp) {
                                push_sample(&mut stats.answer_us, us);
                            }
                        }
                    }
                    Ok(ServerMessage::Error(_)) => {
                        stats.failures += 1;
                        if outstanding.take().is_some() {
                            let back_off = run.pacing.unwrap_or(Duration::from_millis(100));
                            timer.as_mut().reset((Instant::now() + back_off).into());
                        }
                    }
                    Ok(ServerMessage::Scrape(_)) | Err(_) => {}
                }
            }
            () = &mut timer, if outstanding.is_none() => {
                let offers = (0..run.offers)
                    .map(|_| {
                        offer_counter += 1;
                        Offer {
                            offer: stamped_sdp(SdpType::Offer, run.base, &run.pad),
                            offer_id: OfferId(id_from(offer_counter, index as u8)),
                        }
                    })
                    .collect();
                let msg = ClientMessage::Announce(AnnounceRequest {
                    info_hash,
                    peer_id,
                    event: AnnounceEvent::Update,
                    numwant: Some(run.offers as u64),
                    uploaded: Some(0),
                    downloaded: Some(0),
                    left: Some(1_000_000),
                    offers,
                    trackerid: None,
                });
                outstanding = Some(Instant::now());
                run.announces_sent.fetch_add(1, Ordering::Relaxed);
                if ws.send(Message::text(msg.to_json())).await.is_err() {
                    stats.disconnected = true;
                    break;
                }
                // Re-armed when the response arrives; park the timer far away.
                timer.as_mut().reset((Instant::now() + Duration::from_secs(3600)).into());
            }
        }
    }
    let _ = ws.close(None).await;
    stats
}

/// Runs the load generator.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.duration > MAX_DURATION {
        bail!("--duration is limited to {MAX_DURATION:?}");
    }
    if args.peers == 0 || args.swarms == 0 {
        bail!("--peers and --swarms must be at least 1");
    }
    if args.source_ips == 0 || args.source_ips > 250 {
        bail!("--source-ips must be 1..=250");
    }
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    let report = runtime.block_on(run_async(args.clone(), threads))?;
    print_report(&report);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("report written to {}", path.display());
    }
    Ok(())
}

async fn run_async(args: Args, threads: usize) -> anyhow::Result<Report> {
    let (spawned, url) = match &args.spawn {
        Some(path) => {
            let (s, url) = spawn_tracker(path, args.spawn_cpus.as_deref(), args.peers)?;
            (Some(s), url)
        }
        None => (None, args.url.clone()),
    };
    let pid = spawned.as_ref().map(|s| s.child.id()).or(args.tracker_pid);
    let host_port = url
        .strip_prefix("ws://")
        .context("only ws:// URLs are supported")?
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let addr: SocketAddr = tokio::net::lookup_host(&host_port)
        .await?
        .next()
        .context("tracker address does not resolve")?;

    let mut report = Report {
        url: url.clone(),
        peers_requested: args.peers,
        swarms: args.swarms,
        offers_per_announce: args.offers,
        sdp_bytes: args.sdp_bytes,
        rate_target: args.rate,
        tracker_pid: pid,
        generator_threads: threads,
        ..Report::default()
    };
    report.tracker_memory.idle_kib = pid.and_then(|p| status_kib(p, "VmRSS:"));

    let run = Arc::new(Run {
        base: Instant::now(),
        measuring: AtomicBool::new(false),
        stop: CancellationToken::new(),
        offers: args.offers,
        pad: "a".repeat(args.sdp_bytes.saturating_sub(24)),
        pacing: (args.rate > 0.0).then(|| Duration::from_secs_f64(args.peers as f64 / args.rate)),
        announces_sent: AtomicU64::new(0),
    });

    // Connect phase: bounded concurrency and time.
    println!("connecting {} peers to {url} ...", args.peers);
    let connect_start = Instant::now();
    let permits = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let mut joins = tokio::task::JoinSet::new();
    for i in 0..args.peers {
        let permits = Arc::clone(&permits);
        let url = url.clone();
        let source = (args.source_ips > 1).then(|| {
            std::net::Ipv4Addr::new(127, 0, 0, 1 + (i % usize::from(args.source_ips)) as u8)
        });
        let info_hash = InfoHash(id_from((i % args.swarms) as u64 + 1, 0xAA));
        let peer_id = PeerId(id_from(i as u64 + 1, 0x55));
        joins.spawn(async move {
            let _permit = permits.acquire_owned().await.ok()?;
            let mut ws = connect(&url, addr, source).await.ok()?;
            join(&mut ws, info_hash, peer_id).await.ok()?;
            Some((i, ws, info_hash, peer_id))
        });
    }
    let mut connected = Vec::with_capacity(args.peers);
    let collect = async {
        while let Some(r) = joins.join_next().await {
            if let Ok(Some(c)) = r {
                connected.push(c);
            } else {
                report.connect_failures += 1;
            }
        }
    };
    if tokio::time::timeout(args.connect_timeout, collect)
        .await
        .is_err()
    {
        joins.abort_all();
        println!("connect phase hit --connect-timeout");
    }
    report.peers_connected = connected.len();
    report.connect_seconds = connect_start.elapsed().as_secs_f64();
    println!(
        "{} peers joined in {:.1} s ({} failed)",
        report.peers_connected, report.connect_seconds, report.connect_failures
    );
    if connected.is_empty() {
        bail!("no peer could connect");
    }
    report.tracker_memory.connected_kib = pid.and_then(|p| status_kib(p, "VmRSS:"));

    // Load phase.
    let mut clients = tokio::task::JoinSet::new();
    for (i, ws, ih, peer) in connected {
        clients.spawn(client(ws, i, ih, peer, Arc::clone(&run)));
    }
    tokio::time::sleep(args.warmup).await;
    let ticks = clock_ticks_per_sec();
    let cpu0 = pid.and_then(cpu_ticks);
    let gen0 = cpu_ticks(std::process::id());
    let t0 = Instant::now();
    run.measuring.store(true, Ordering::Relaxed);
    println!("measuring for {:?} ...", args.duration);
    tokio::time::sleep(args.duration).await;
    run.measuring.store(false, Ordering::Relaxed);
    let measured = t0.elapsed().as_secs_f64();
    let cpu1 = pid.and_then(cpu_ticks);
    let gen1 = cpu_ticks(std::process::id());
    report.tracker_memory.after_load_kib = pid.and_then(|p| status_kib(p, "VmRSS:"));
    report.tracker_memory.peak_kib = pid.and_then(|p| status_kib(p, "VmHWM:"));
    run.stop.cancel();

    let mut all = ClientStats::default();
    let drain = async {
        while let Some(r) = clients.join_next().await {
            if let Ok(s) = r {
                all.announces += s.announces;
                all.offers += s.offers;
                all.answers += s.answers;
                all.failures += s.failures;
                all.disconnected |= s.disconnected;
                if s.disconnected {
                    report.disconnects += 1;
                }
                all.announce_us.extend(s.announce_us);
                all.offer_us.extend(s.offer_us);
                all.answer_us.extend(s.answer_us);
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(30), drain)
        .await
        .is_err()
    {
        clients.abort_all();
    }

    report.measured_seconds = measured;
    report.announces = all.announces;
    report.announces_per_sec = all.announces as f64 / measured;
    report.offers_relayed = all.offers;
    report.offer_relays_per_sec = all.offers as f64 / measured;
    report.answers_relayed = all.answers;
    report.answer_relays_per_sec = all.answers as f64 / measured;
    report.failure_reasons = all.failures;
    report.announce_latency = Percentiles::of(all.announce_us);
    report.offer_relay_latency = Percentiles::of(all.offer_us);
    report.answer_relay_latency = Percentiles::of(all.answer_us);
    report.tracker_cpu_cores = match (cpu0, cpu1) {
        (Some(a), Some(b)) => Some((b.saturating_sub(a)) as f64 / ticks / measured),
        _ => None,
    };
    report.generator_cpu_cores = match (gen0, gen1) {
        (Some(a), Some(b)) => Some((b.saturating_sub(a)) as f64 / ticks / measured),
        _ => None,
    };
    let m = &mut report.tracker_memory;
    if let Some(c) = m.connected_kib {
        let peers = report.peers_connected as f64;
        m.per_peer_bytes = Some(c as f64 * 1024.0 / peers);
        m.per_peer_delta_bytes = m
            .idle_kib
            .map(|i| (c.saturating_sub(i)) as f64 * 1024.0 / peers);
    }
    drop(spawned);
    Ok(report)
}

fn print_report(r: &Report) {
    println!("--- tracker-load report ---");
    println!("url                  {}", r.url);
    println!(
        "peers                {} connected of {} ({} failed), {} swarms, {} offers/announce, {} B SDP",
        r.peers_connected,
        r.peers_requested,
        r.connect_failures,
        r.swarms,
        r.offers_per_announce,
        r.sdp_bytes
    );
    println!(
        "measured             {:.1} s (rate target {})",
        r.measured_seconds,
        if r.rate_target > 0.0 {
            format!("{:.0}/s", r.rate_target)
        } else {
            "closed loop".to_owned()
        }
    );
    println!(
        "announces            {} ({:.0}/s)",
        r.announces, r.announces_per_sec
    );
    println!(
        "offer relays         {} ({:.0}/s)",
        r.offers_relayed, r.offer_relays_per_sec
    );
    println!(
        "answer relays        {} ({:.0}/s)",
        r.answers_relayed, r.answer_relays_per_sec
    );
    println!(
        "failure reasons      {}, disconnects {}",
        r.failure_reasons, r.disconnects
    );
    let p = |n: &str, x: &Percentiles| {
        println!(
            "{n:<20} p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  ({} samples)",
            x.p50_us as f64 / 1000.0,
            x.p99_us as f64 / 1000.0,
            x.max_us as f64 / 1000.0,
            x.samples
        );
    };
    p("announce latency", &r.announce_latency);
    p("offer relay latency", &r.offer_relay_latency);
    p("answer relay latency", &r.answer_relay_latency);
    let m = &r.tracker_memory;
    let mib = |k: Option<u64>| {
        k.map_or("n/a".to_owned(), |k| {
            format!("{:.1} MiB", k as f64 / 1024.0)
        })
    };
    println!(
        "tracker RSS          idle {}, with peers {}, after load {}, peak {}",
        mib(m.idle_kib),
        mib(m.connected_kib),
        mib(m.after_load_kib),
        mib(m.peak_kib)
    );
    if let (Some(pp), Some(pd)) = (m.per_peer_bytes, m.per_peer_delta_bytes) {
        println!(
            "RSS per peer         {:.0} B total/peer, {:.0} B above idle",
            pp, pd
        );
    }
    let cores = |c: Option<f64>| {
        c.map_or("n/a".to_owned(), |c| {
            format!("{:.0}% of one core", c * 100.0)
        })
    };
    println!("tracker CPU          {}", cores(r.tracker_cpu_cores));
    println!(
        "generator CPU        {} ({} threads)",
        cores(r.generator_cpu_cores),
        r.generator_threads
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let p = Percentiles::of((1..=100).collect());
        assert_eq!(
            (p.samples, p.p50_us, p.p99_us, p.max_us),
            (100, 51, 99, 100)
        );
        assert_eq!(Percentiles::of(Vec::new()).samples, 0);
    }

    #[test]
    fn sdp_timestamps_round_trip() {
        let base = Instant::now();
        let s = stamped_sdp(SdpType::Offer, base, "pad");
        assert!(latency_us(base, &s.sdp).is_some());
        assert_eq!(latency_us(base, "garbage"), None);
    }

    #[test]
    fn proc_parsing_of_self() {
        let me = std::process::id();
        assert!(cpu_ticks(me).is_some());
        assert!(status_kib(me, "VmRSS:").is_some_and(|k| k > 0));
        assert_eq!(cpu_ticks(u32::MAX), None);
    }

    #[test]
    fn ids_differ() {
        assert_ne!(id_from(1, 0), id_from(2, 0));
        assert_ne!(id_from(1, 0), id_from(1, 1));
    }
}
