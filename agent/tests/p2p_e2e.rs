//! Peer-to-peer end to end: real agent processes, real WebRTC on 127.0.0.1, a real tracker
//! process, an origin serving a live stream made from ffmpeg segments, digests published by
//! `hivecast-agent publish-digests --watch`, and paced players that fetch like real players.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use hivecast_demo::fixtures::{self, Fixtures};
use hivecast_demo::live::{DigestTable, LiveConfig, LivePackager};
use hivecast_demo::origin::Origin;
use hivecast_demo::player::{self, PlayerConfig, PlayerReport};
use support::get;
use support::procs::{AgentProc, Proc, metric, spawn_agent, spawn_tracker};

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
    let publisher = with_digests.then(|| publish_digests(&dir.join("live")));
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

fn publish_digests(dir: &Path) -> Proc {
    let mut child = Command::new(support::procs::AGENT_BIN)
        .args(["publish-digests", "--watch", "--interval", "100ms"])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("publish-digests");
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let _ = child.stdin.take();
    Proc { child, stderr }
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

/// (origin segment bytes, bytes of distinct segments) from the origin's per-path counters.
fn origin_segment_bytes(origin: &Origin) -> (u64, u64) {
    let stats = origin.stats();
    let mut total = 0;
    let mut unique = 0;
    for (path, c) in &stats.by_path {
        if path.ends_with(".ts") && c.requests > 0 {
            total += c.bytes;
            unique += c.bytes / c.requests;
        }
    }
    (total, unique)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_agents_share_a_live_stream_verified_without_stalls() {
    tokio::time::timeout(Duration::from_secs(180), async {
        let live = live_origin("baseline", true).await;
        let tracker = spawn_tracker(0);
        let agents: Vec<AgentProc> =
            (0..4).map(|_| spawn_agent(&live.origin.base_url(), Some(&tracker.url()), &[])).collect();
        let mut tasks = Vec::new();
        for a in &agents {
            tasks.push(tokio::spawn(play(live_url(a, &live.origin), 62)));
        }
        let mut reports = Vec::new();
        for t in tasks {
            reports.push(t.await.expect("player task"));
        }
        let mut peer_bytes = 0.0;
        let mut failures = 0.0;
        for (a, r) in agents.iter().zip(&reports) {
            assert_identical(r, &live.digests);
            assert_eq!(r.stalls, 0, "player stalled: {r:?}\nagent log:\n{}", a.proc_.log());
            assert!(r.played_seconds >= 40.0, "played only {} s", r.played_seconds);
            let m = metrics_of(a).await;
            for l in m.lines().filter(|l| l.starts_with("hivecast_agent_p2p_origin_fetches_total") || l.starts_with("hivecast_agent_peers ")) {
                eprintln!("agent {}: {l}", a.listen);
            }
            peer_bytes += metric(&m, "hivecast_agent_downloaded_bytes_total", "source=\"peer\"");
            failures += metric(&m, "hivecast_agent_integrity_failures_total", "");
        }
        let (origin_bytes, unique) = origin_segment_bytes(&live.origin);
        let ratio = origin_bytes as f64 / unique as f64;
        eprintln!("origin segment bytes {origin_bytes}, distinct {unique}, copies per segment {ratio:.2}, peer bytes {peer_bytes}");
        assert!(peer_bytes > 0.0, "agents shared nothing");
        assert!(ratio <= 1.5, "origin served {ratio:.2} copies per segment (limit 1.5)");
        assert_eq!(failures, 0.0);
    })
    .await
    .expect("test timed out");
}
