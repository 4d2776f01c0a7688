//! Peer-to-peer end to end: real agent processes, real WebRTC on 127.0.0.1, a real tracker
//! process, an origin serving a live stream made from ffmpeg segments, digests published by
//! `hivecast-agent publish-digests --watch`, and paced players that fetch like real players.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use hivecast_agent::core::stripes::Stripes;
use hivecast_demo::fixtures::{self, Fixtures};
use hivecast_demo::live::{DigestTable, LiveConfig, LivePackager};
use hivecast_demo::origin::Origin;
use hivecast_demo::player::{self, PlayerConfig, PlayerReport};
use support::procs::{AgentProc, Proc, metric, spawn_agent, spawn_tracker};
use support::{get, hostile};

/// A live stream on a test origin, with digests published by the real `publish-digests`.
struct LiveOrigin {
    origin: Origin,
    digests: DigestTable,
    _live: hivecast_demo::live::LiveHandle<LivePackager>,
    _publisher: Option<Proc>,
    dir: PathBuf,
}

impl Drop for LiveOrigin {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn live_origin(tag: &str, with_digests: bool) -> LiveOrigin {
    live_origin_with(tag, with_digests, &[]).await
}

/// `live_origin` with extra `publish-digests` arguments.
async fn live_origin_with(tag: &str, with_digests: bool, publish_args: &[&str]) -> LiveOrigin {
    let fx = Fixtures::ensure_async()
        .await
        .expect("fixtures (is ffmpeg installed?)");
    let dir = std::env::temp_dir().join(format!("hivecast-p2p-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let mut cfg = LiveConfig::new(fx.path(fixtures::LIVE_SOURCE_TS), dir.join("live"));
    cfg.window = 6;
    let packager = LivePackager::new(cfg).expect("live packager");
    let digests = packager.digests();
    let publisher = with_digests
        .then(|| support::procs::spawn_publish_digests_with(&dir.join("live"), publish_args));
    let live = packager.spawn_realtime();
    if with_digests {
        // Readiness: the first sidecar exists.
        let sidecar = dir.join("live/index.sha256.json");
        tokio::time::timeout(Duration::from_secs(10), async {
            while !sidecar.is_file() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("publish-digests wrote the sidecar");
    }
    let origin = Origin::start(dir.clone()).await.expect("origin");
    LiveOrigin {
        origin,
        digests,
        _live: live,
        _publisher: publisher,
        dir,
    }
}

fn live_url(agent: &AgentProc, origin: &Origin) -> String {
    format!(
        "http://{}/http/{}/live/index.m3u8",
        agent.listen,
        origin.authority()
    )
}

async fn play(url: String, secs: u64) -> PlayerReport {
    let mut pc = PlayerConfig::new(url);
    pc.max_duration = Duration::from_secs(secs);
    player::play(pc).await.expect("player ran")
}

async fn metrics_of(agent: &AgentProc) -> String {
    get(&format!("http://{}/metrics", agent.admin)).await.text()
}

/// Every segment a player got is the origin's, byte for byte (by SHA-256).
fn assert_identical(r: &PlayerReport, digests: &DigestTable) {
    assert!(
        !r.segments.is_empty(),
        "player got no segments: {:?}",
        r.errors
    );
    for s in &r.segments {
        assert_eq!(
            digests.get(s.sequence),
            Some(s.sha256.as_str()),
            "segment {} differs from the origin's",
            s.sequence
        );
    }
}

/// Segment sizes by file name, from what the players received. Origin requests are not a
/// measure of them: striped agents fetch units of a segment as byte ranges.
fn segment_sizes(reports: &[PlayerReport]) -> std::collections::HashMap<String, u64> {
    reports
        .iter()
        .flat_map(|r| &r.segments)
        .map(|s| (file_name(&s.uri).to_string(), s.bytes))
        .collect()
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// (origin segment bytes, bytes of distinct segments) for the segments the players got, from
/// the origin's per-path counters.
fn origin_segment_bytes(
    origin: &Origin,
    sizes: &std::collections::HashMap<String, u64>,
) -> (u64, u64) {
    let stats = origin.stats();
    let mut total = 0;
    let mut unique = 0;
    for (path, c) in &stats.by_path {
        if let Some(size) = sizes.get(file_name(path))
            && path.ends_with(".ts")
            && c.requests > 0
        {
            total += c.bytes;
            unique += size;
        }
    }
    (total, unique)
}

/// These tests run real-time players; running two at once on a 2-core machine would measure
/// the machine, not the agent.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// One 60 s run of 4 agents and 4 paced players; asserts byte identity, no stalls and peer
/// traffic, and returns the origin copies per segment.
async fn four_agent_run() -> f64 {
    // 16 KiB chunk digests: the test stream's ~130 kB segments have about 8 chunks, so agents
    // with `p2p.stripes = 4` share each as 4 units of 2 chunks.
    let live = live_origin_with("baseline", true, &["--chunk-size", "16384"]).await;
    let tracker = spawn_tracker(0);
    let agents: Vec<AgentProc> = (0..4)
        .map(|_| {
            spawn_agent(
                &live.origin.base_url(),
                Some(&tracker.url()),
                &[("HIVECAST_AGENT__P2P__STRIPES", "4")],
            )
        })
        .collect();
    let mut tasks = Vec::new();
    for a in &agents {
        tasks.push(tokio::spawn(play(live_url(a, &live.origin), 62)));
    }
    let mut reports = Vec::new();
    for t in tasks {
        reports.push(t.await.expect("player task"));
    }
    let mut peer_bytes = 0.0;
    let mut striped = 0.0;
    let mut origin_cut = 0.0;
    let mut failures = 0.0;
    let mut cache_max: f64 = 0.0;
    for (a, r) in agents.iter().zip(&reports) {
        assert_identical(r, &live.digests);
        assert_eq!(
            r.stalls,
            0,
            "player stalled: {r:?}\nagent log:\n{}",
            a.proc_.log()
        );
        assert!(
            r.played_seconds >= 40.0,
            "played only {} s",
            r.played_seconds
        );
        let m = metrics_of(a).await;
        for l in m
            .lines()
            .filter(|l| l.starts_with("hivecast_agent_p2p_origin_fetches_total"))
        {
            eprintln!("agent {}: {l}", a.listen);
        }
        peer_bytes += metric(
            &m,
            "hivecast_agent_downloaded_bytes_total",
            "source=\"peer\"",
        );
        failures += metric(&m, "hivecast_agent_integrity_failures_total", "");
        // Aligned reloads (`playlist.align_reloads`, on by default): about one reload per new
        // segment, and the timing probes that come early stay few.
        let found = metric(
            &m,
            "hivecast_agent_playlist_reloads_total",
            "result=\"new_segment\"",
        );
        let early = metric(
            &m,
            "hivecast_agent_playlist_reloads_total",
            "result=\"unchanged\"",
        );
        eprintln!(
            "agent {}: reloads {found} new segment, {early} unchanged",
            a.listen
        );
        assert!(
            found >= 15.0,
            "only {found} reloads found a new segment in 62 s"
        );
        assert!(
            early <= found / 2.0,
            "{early} unchanged reloads against {found} that found a segment"
        );
        striped += metric(&m, "hivecast_agent_p2p_striped_segments_total", "");
        origin_cut += metric(&m, "hivecast_agent_p2p_origin_cut_through_total", "");
        cache_max = cache_max.max(metric(&m, "hivecast_agent_cache_bytes", ""));
    }
    // Live segments 8 behind the window are freed: the cache holds about one window (6) + 8,
    // not the whole run (31 segments in 62 s).
    let sizes = segment_sizes(&reports);
    let largest = sizes.values().copied().max().unwrap_or(0);
    assert!(
        cache_max <= 16.0 * largest as f64,
        "an agent caches {cache_max} bytes; largest segment {largest}"
    );
    // The agents' own aligned reloads refresh the playlist their players get, so the origin
    // sees about one playlist request per agent per segment, not the players' on top.
    let (playlist_requests, _) = served(&live.origin, "/live/index.m3u8");
    eprintln!("origin playlist requests: {playlist_requests} from 4 agents in 62 s");
    let (origin_bytes, unique) = origin_segment_bytes(&live.origin, &sizes);
    let ratio = origin_bytes as f64 / unique as f64;
    eprintln!(
        "origin segment bytes {origin_bytes}, distinct {unique}, copies per segment {ratio:.2}, peer bytes {peer_bytes}, largest agent cache {cache_max} bytes (largest segment {largest})"
    );
    assert!(peer_bytes > 0.0, "agents shared nothing");
    assert!(
        striped > 0.0,
        "no segment was assembled from units (striping did not happen)"
    );
    // Seeds offer a unit to peers while its origin bytes still arrive (verified chunk by
    // chunk), not only once it is whole.
    assert!(
        origin_cut > 0.0,
        "no unit fetched from the origin was offered to peers before it was whole"
    );
    assert_eq!(failures, 0.0);
    ratio
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_agents_share_a_live_stream_verified_without_stalls() {
    let _serial = serial().await;
    tokio::time::timeout(Duration::from_secs(300), async {
        // Offload depends on timing, and this machine is shared: a run that misses the bound
        // is repeated once; both runs must be byte-identical and stall-free.
        let mut ratio = four_agent_run().await;
        if ratio > 1.5 {
            eprintln!("first run: {ratio:.2} origin copies per segment; running again");
            ratio = four_agent_run().await;
        }
        assert!(
            ratio <= 1.5,
            "origin served {ratio:.2} copies per segment (limit 1.5)"
        );
    })
    .await
    .expect("test timed out");
}

fn digest_lookup(t: &DigestTable) -> impl Fn(u64) -> Option<String> + Send + Sync + 'static {
    let t = t.clone();
    move |seq| t.get(seq).map(str::to_string)
}

async fn hostile_case(mode: hostile::Mode) {
    hostile_case_with(mode, false).await
}

/// A hostile case; `striped` publishes 16 KiB chunk digests, so the test stream's segments
/// (about 8 chunks) are shared as 4 units and the hostile peer answers unit requests.
async fn hostile_case_with(mode: hostile::Mode, striped: bool) {
    // The test stream's segments are about 130 kB. Unstriped (`p2p.stripes = 1`) with the
    // default 64 KiB chunk digests, except the slow case: 16 KiB chunks, so a late transfer can
    // be split at a fine grain for an origin tail. Striped: `p2p.stripes = 4` (the default) and
    // 16 KiB chunks, so each segment (about 8 chunks) is shared as 4 units.
    let (publish_args, split, agent_env): (&[&str], hostile::Split, &[(&str, &str)]) = match mode {
        _ if striped => (
            &["--chunk-size", "16384"],
            hostile::Split {
                stripes: Stripes::new(4).expect("valid"),
                chunk: 16384,
            },
            &[("HIVECAST_AGENT__P2P__STRIPES", "4")],
        ),
        hostile::Mode::Slow | hostile::Mode::Stall => (
            &["--chunk-size", "16384"],
            hostile::Split {
                stripes: Stripes::WHOLE,
                chunk: 16384,
            },
            &[("HIVECAST_AGENT__P2P__STRIPES", "1")],
        ),
        _ => (
            &[],
            hostile::Split {
                stripes: Stripes::WHOLE,
                chunk: hivecast_agent::integrity::LIVE_CHUNK_SIZE,
            },
            &[("HIVECAST_AGENT__P2P__STRIPES", "1")],
        ),
    };
    let live = live_origin_with(
        match mode {
            hostile::Mode::Corrupt => "corrupt",
            hostile::Mode::CorruptChunk if striped => "corrupt-unit",
            hostile::Mode::CorruptChunk => "corrupt-chunk",
            hostile::Mode::DropMidTransfer => "drop",
            hostile::Mode::Slow => "slow",
            hostile::Mode::Stall => "stall",
        },
        true,
        publish_args,
    )
    .await;
    let tracker = spawn_tracker(0);
    let agent = spawn_agent(&live.origin.base_url(), Some(&tracker.url()), agent_env);
    let bad = hostile::start(
        &tracker.url(),
        &live.origin.url("/live/index.m3u8"),
        mode,
        split,
        digest_lookup(&live.digests),
    );
    let r = play(live_url(&agent, &live.origin), 36).await;
    assert_identical(&r, &live.digests);
    assert_eq!(
        r.stalls,
        0,
        "player stalled: {r:?}\nagent log:\n{}",
        agent.proc_.log()
    );
    let m = metrics_of(&agent).await;
    let requests = bad
        .stats
        .requests
        .load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "{mode:?}: hostile links {}, requests {requests}, integrity failures {}",
        bad.stats.links.load(std::sync::atomic::Ordering::Relaxed),
        metric(&m, "hivecast_agent_integrity_failures_total", "")
    );
    assert!(
        requests >= 1,
        "the agent never asked the hostile peer (test did not exercise the path)"
    );
    if striped {
        assert!(
            metric(&m, "hivecast_agent_p2p_striped_segments_total", "") >= 1.0,
            "no segment was assembled from units"
        );
    }
    match mode {
        hostile::Mode::Corrupt | hostile::Mode::CorruptChunk => {
            let failures = metric(&m, "hivecast_agent_integrity_failures_total", "");
            assert!(failures >= 1.0, "corrupt segment not detected");
            // Banned for the swarm session after its first bad segment: only requests already
            // in flight then (at most 4 per peer) reached it, and it was not let back in.
            assert!(
                requests <= 4,
                "the agent kept asking a banned peer ({requests} requests)"
            );
            let links = bad.stats.links.load(std::sync::atomic::Ordering::Relaxed);
            assert!(
                links <= 3,
                "the banned peer was let back in ({links} links)"
            );
        }
        hostile::Mode::DropMidTransfer => {
            assert_eq!(
                metric(&m, "hivecast_agent_integrity_failures_total", ""),
                0.0
            );
        }
        hostile::Mode::Slow | hostile::Mode::Stall => {
            assert_eq!(
                metric(&m, "hivecast_agent_integrity_failures_total", ""),
                0.0
            );
            let joined = metric(
                &m,
                "hivecast_agent_p2p_origin_tails_total",
                "outcome=\"joined\"",
            );
            let tails = metric(
                &m,
                "hivecast_agent_p2p_origin_fetches_total",
                "reason=\"tail\"",
            );
            let peer = metric(
                &m,
                "hivecast_agent_downloaded_bytes_total",
                "source=\"peer\"",
            );
            eprintln!("{mode:?}: origin tails {tails}, joined {joined}, peer bytes {peer}");
            for l in m
                .lines()
                .filter(|l| l.contains("p2p_origin") && !l.starts_with('#'))
            {
                eprintln!("  {l}");
            }
            assert!(
                joined >= 1.0,
                "no late or stalled peer transfer was completed by an origin tail ({tails} started)\nagent log:\n{}",
                agent.proc_.log()
            );
            assert!(peer > 0.0, "the slow peer's heads were not counted");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_peer_is_detected_banned_and_routed_around() {
    let _serial = serial().await;
    tokio::time::timeout(
        Duration::from_secs(120),
        hostile_case(hostile::Mode::Corrupt),
    )
    .await
    .expect("test timed out");
}

/// The peer sends the real segment with one byte flipped in a chunk and then nothing more: the
/// chunk digests catch it mid-transfer (without them the transfer would just stall).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_chunk_is_caught_mid_transfer_and_the_peer_banned() {
    let _serial = serial().await;
    tokio::time::timeout(
        Duration::from_secs(120),
        hostile_case(hostile::Mode::CorruptChunk),
    )
    .await
    .expect("test timed out");
}

/// The same with striped segments: the hostile peer answers a request for one unit with a
/// corrupt chunk of it; the unit's chunk digests catch it, only that sender is banned, and the
/// segment is completed from elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_chunk_of_a_unit_is_caught_and_the_peer_banned() {
    let _serial = serial().await;
    tokio::time::timeout(
        Duration::from_secs(120),
        hostile_case_with(hostile::Mode::CorruptChunk, true),
    )
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_lost_mid_transfer_falls_back_in_time() {
    let _serial = serial().await;
    tokio::time::timeout(
        Duration::from_secs(120),
        hostile_case(hostile::Mode::DropMidTransfer),
    )
    .await
    .expect("test timed out");
}

/// An honest peer that sends at a quarter of the stream rate: the agent keeps what it sends before the
/// deadline and takes only the rest of the segment from the origin (an HTTP range), and the
/// player gets byte-identical segments without a stall.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_peer_transfer_is_completed_by_an_origin_tail() {
    let _serial = serial().await;
    tokio::time::timeout(Duration::from_secs(120), hostile_case(hostile::Mode::Slow))
        .await
        .expect("test timed out");
}

/// An honest peer that sends half of each segment and then nothing, with the link up: past
/// the deadline the agent keeps the verified half and takes only the rest from the origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_peer_transfer_keeps_its_head_and_the_origin_sends_the_rest() {
    let _serial = serial().await;
    tokio::time::timeout(Duration::from_secs(120), hostile_case(hostile::Mode::Stall))
        .await
        .expect("test timed out");
}

/// (requests, bytes) the origin served for `path`.
fn served(origin: &Origin, path: &str) -> (u64, u64) {
    origin
        .stats()
        .by_path
        .get(path)
        .map_or((0, 0), |c| (c.requests, c.bytes))
}

/// Agents fetch the window's digests once, then only the newest segments' (the latest
/// sidecar); without that file (a publisher that does not write it) they fetch the full
/// sidecar instead and lose nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_use_the_latest_digest_sidecar_and_do_without_it() {
    const FULL: &str = "/live/index.sha256.json";
    const LATEST: &str = "/live/index.sha256.latest.json";
    let _serial = serial().await;
    tokio::time::timeout(Duration::from_secs(180), async {
        let live = live_origin("latest", true).await;
        let tracker = spawn_tracker(0);
        let agents: Vec<AgentProc> = (0..2)
            .map(|_| spawn_agent(&live.origin.base_url(), Some(&tracker.url()), &[]))
            .collect();
        let first = tokio::spawn(play(live_url(&agents[0], &live.origin), 40));
        tokio::time::sleep(Duration::from_secs(16)).await;
        let (full_n, full_bytes) = served(&live.origin, FULL);
        let (latest_n, latest_bytes) = served(&live.origin, LATEST);
        eprintln!("full sidecar: {full_n} fetches, {full_bytes} bytes; latest: {latest_n} fetches, {latest_bytes} bytes");
        assert!(
            latest_n >= 4 && latest_n > full_n,
            "the latest sidecar should carry the new segments: {latest_n} latest against {full_n} full fetches"
        );
        assert!(
            latest_bytes / latest_n <= full_bytes / full_n.max(1) / 2,
            "a latest sidecar should be much smaller than the full one"
        );
        // The publisher stops writing it (or never did): the full sidecar takes over.
        live.origin
            .set_fault(LATEST, hivecast_demo::origin::Fault::Status(404));
        let second = tokio::spawn(play(live_url(&agents[1], &live.origin), 20));
        let reports = [
            first.await.expect("player"),
            second.await.expect("player"),
        ];
        for (a, r) in agents.iter().zip(&reports) {
            assert_identical(r, &live.digests);
            assert_eq!(r.stalls, 0, "agent log:\n{}", a.proc_.log());
            let m = metrics_of(a).await;
            assert_eq!(metric(&m, "hivecast_agent_integrity_failures_total", ""), 0.0);
        }
        let (full_after, _) = served(&live.origin, FULL);
        let (latest_after, _) = served(&live.origin, LATEST);
        assert!(
            full_after >= full_n + 4,
            "without a latest sidecar the full one carries new segments ({full_n} → {full_after} fetches)"
        );
        assert!(
            latest_after <= latest_n + 4,
            "a missing latest sidecar is not asked for again and again ({latest_n} → {latest_after})"
        );
        let peer: f64 = {
            let mut sum = 0.0;
            for a in &agents {
                sum += metric(
                    &metrics_of(a).await,
                    "hivecast_agent_downloaded_bytes_total",
                    "source=\"peer\"",
                );
            }
            sum
        };
        assert!(peer > 0.0, "digests from either sidecar let the agents share");
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracker_down_playback_continues_and_p2p_resumes() {
    let _serial = serial().await;
    tokio::time::timeout(Duration::from_secs(150), async {
        let live = live_origin("trackerdown", true).await;
        let mut tracker = spawn_tracker(0);
        let port = tracker.port;
        let agents: Vec<AgentProc> = (0..3)
            .map(|_| spawn_agent(&live.origin.base_url(), Some(&tracker.url()), &[]))
            .collect();
        let mut tasks = Vec::new();
        for a in &agents {
            tasks.push(tokio::spawn(play(live_url(a, &live.origin), 56)));
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
        tracker.proc_.terminate();
        tokio::time::sleep(Duration::from_secs(20)).await;
        let mut before = 0.0;
        for a in &agents {
            before += metric(
                &metrics_of(a).await,
                "hivecast_agent_downloaded_bytes_total",
                "source=\"peer\"",
            );
        }
        let tracker2 = spawn_tracker(port);
        // The agents reconnect with backoff and announce again.
        let announced = tracker_peers_reach(&tracker2.admin, 3.0, Duration::from_millis(200)).await;
        assert!(
            announced >= 3.0,
            "agents did not re-announce to the restarted tracker"
        );
        let mut reports = Vec::new();
        for t in tasks {
            reports.push(t.await.expect("player"));
        }
        let mut after = 0.0;
        for (a, r) in agents.iter().zip(&reports) {
            assert_identical(r, &live.digests);
            assert_eq!(
                r.stalls, 0,
                "player stalled while the tracker was down: {r:?}"
            );
            after += metric(
                &metrics_of(a).await,
                "hivecast_agent_downloaded_bytes_total",
                "source=\"peer\"",
            );
        }
        eprintln!("peer bytes at tracker restart {before}, at the end {after}");
        assert!(
            after > before,
            "no peer traffic after the tracker came back"
        );
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_without_digests_plays_origin_only_with_a_warning() {
    let _serial = serial().await;
    tokio::time::timeout(Duration::from_secs(90), async {
        let live = live_origin("nodigests", false).await;
        let tracker = spawn_tracker(0);
        let agents: Vec<AgentProc> = (0..2)
            .map(|_| spawn_agent(&live.origin.base_url(), Some(&tracker.url()), &[]))
            .collect();
        let t1 = tokio::spawn(play(live_url(&agents[0], &live.origin), 20));
        let t2 = tokio::spawn(play(live_url(&agents[1], &live.origin), 20));
        for (a, r) in agents
            .iter()
            .zip([t1.await.expect("player"), t2.await.expect("player")])
        {
            assert_identical(&r, &live.digests);
            assert_eq!(r.stalls, 0);
            let m = metrics_of(a).await;
            assert_eq!(
                metric(
                    &m,
                    "hivecast_agent_downloaded_bytes_total",
                    "source=\"peer\""
                ),
                0.0
            );
            assert!(
                a.proc_.log().contains("no digest sidecar"),
                "warning missing:\n{}",
                a.proc_.log()
            );
        }
    })
    .await
    .expect("test timed out");
}

/// Polls the tracker's `hivecast_tracker_peers` at `admin` every `every` (100 times at most)
/// until it reaches `want`; returns the last value.
async fn tracker_peers_reach(admin: &std::net::SocketAddr, want: f64, every: Duration) -> f64 {
    let mut peers = 0.0;
    for _ in 0..100 {
        let t = get(&format!("http://{admin}/metrics")).await.text();
        peers = metric(&t, "hivecast_tracker_peers", "");
        if peers >= want {
            break;
        }
        tokio::time::sleep(every).await;
    }
    peers
}

/// Peers `a` is connected to, from its metrics.
async fn peers_of(a: &AgentProc) -> f64 {
    metric(&metrics_of(a).await, "hivecast_agent_peers", "")
}

/// Agents seek `p2p.max_peers` peers but answer offers up to `p2p.accept_peers`, so an agent
/// that joins a swarm whose members are all full still gets connected. With `max_peers = 1`
/// and `accept_peers = 1` four agents could form at most two pairs and every agent would stay
/// at one peer; with `accept_peers = 3` the later joiners connect to the earlier ones, which
/// then hold more peers than they seek (never more than `accept_peers`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_answer_offers_beyond_the_peers_they_seek() {
    let _serial = serial().await;
    tokio::time::timeout(Duration::from_secs(180), async {
        let live = live_origin("accept", true).await;
        let tracker = spawn_tracker(0);
        let env = [
            ("HIVECAST_AGENT__P2P__MAX_PEERS", "1"),
            ("HIVECAST_AGENT__P2P__ACCEPT_PEERS", "3"),
        ];
        let mut agents: Vec<AgentProc> = Vec::new();
        let mut players = Vec::new();
        for i in 0..4 {
            let a = spawn_agent(&live.origin.base_url(), Some(&tracker.url()), &env);
            players.push(tokio::spawn(play(live_url(&a, &live.origin), 24)));
            agents.push(a);
            // Readiness: the tracker counts the new member before the next one joins.
            let want = (i + 1) as f64;
            let members =
                tracker_peers_reach(&tracker.admin, want, Duration::from_millis(100)).await;
            assert!(members >= want, "agent {i} did not announce");
        }
        // Every agent connected, and some agent holds more peers than it seeks. The first
        // agent's opening offer reached nobody; it offers again within two hungry announce
        // intervals (10 s), so 30 s leaves room on a loaded machine.
        let mut peers = Vec::new();
        for _ in 0..300 {
            peers.clear();
            for a in &agents {
                peers.push(peers_of(a).await);
            }
            if peers.iter().all(|&p| p >= 1.0) && peers.iter().any(|&p| p >= 2.0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eprintln!("peers per agent: {peers:?}");
        assert!(
            peers.iter().all(|&p| p >= 1.0),
            "an agent found no peer: {peers:?}"
        );
        assert!(
            peers.iter().any(|&p| p >= 2.0),
            "no agent accepted an offer beyond max_peers: {peers:?}"
        );
        assert!(
            peers.iter().all(|&p| p <= 3.0),
            "an agent exceeded accept_peers: {peers:?}"
        );
        for (a, t) in agents.iter().zip(players) {
            let r = t.await.expect("player");
            assert_identical(&r, &live.digests);
            assert_eq!(r.stalls, 0, "player stalled: {r:?}\n{}", a.proc_.log());
        }
    })
    .await
    .expect("test timed out");
}
