//! The real demo end to end, in p2p mode with the real `hivecast-agent` and `hivecast-tracker`
//! binaries (real WebRTC on 127.0.0.1):
//!
//! * `browser_players_advance_and_agents_share`: the page in Debian's Chromium, driven by
//!   `tests/browser/demo.spec.mjs` (playwright-core): every hls.js player advances ≥ 10 s, no
//!   fatal hls.js error, some agent got bytes from peers; screenshot in
//!   `<target dir>/artifacts/demo.png`. Then SIGTERM stops the demo and all its children.
//! * `ffmpeg_reads_ten_seconds_through_an_agent`: `ffmpeg -i <agent URL> -t 11 -c copy -f null`
//!   exits 0 after reading ≥ 10 s; then SIGINT (Ctrl-C) stops the demo and all its children.
//!
//! The demo crate does not depend on the agent or tracker, so their binaries are taken from
//! the profile directory that holds the demo binary (`target/debug/`), built with
//! `cargo build -p hivecast-agent -p hivecast-tracker` when absent. Missing node, Chromium,
//! `node_modules` or ffmpeg fail with the command that installs them.
//!
//! Both tests are heavy (4 + 2 agents, a browser or ffmpeg), so they hold [`HEAVY`] and never
//! run at the same time.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::{StopOnDrop, TempDir, alive, within};
use hivecast_demo::client::HttpClient;
use hivecast_demo::demo::web::DemoLayout;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const DEMO: &str = env!("CARGO_BIN_EXE_hivecast-demo");

/// Serializes the heavy tests of this file.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The profile directory holding the demo binary (e.g. `target/debug`).
fn profile_dir() -> PathBuf {
    Path::new(DEMO)
        .parent()
        .expect("profile directory")
        .to_path_buf()
}

/// Where `hivecast-agent` and `hivecast-tracker` are: next to the demo binary, built there
/// with cargo (same target dir and profile) if either is missing.
async fn p2p_bin_dir() -> PathBuf {
    let dir = profile_dir();
    hivecast_demo::demo::procs::ensure_built(
        &dir,
        &workspace_root(),
        &["hivecast-agent", "hivecast-tracker"],
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    dir
}

/// Checks that `program version_flag` runs; panics with `install` otherwise.
async fn require_program(program: &str, version_flag: &str, install: &str) {
    let ok = Command::new(program)
        .arg(version_flag)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success());
    assert!(ok, "`{program}` is not installed or not on PATH: {install}");
}

/// Node, Chromium and the npm packages the browser test needs; returns the Chromium path.
async fn require_browser_tooling() -> PathBuf {
    let root = workspace_root();
    let node_ok = Command::new("node")
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success());
    assert!(
        node_ok,
        "node is not installed: apt-get install -y nodejs npm (the browser test runs tests/browser/demo.spec.mjs with node)"
    );
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        chromium.is_file(),
        "Chromium not found at {} (set CHROMIUM to another path): apt-get install -y chromium",
        chromium.display()
    );
    for (what, rel) in [
        (
            "playwright-core",
            "node_modules/playwright-core/package.json",
        ),
        ("hls.js", "node_modules/hls.js/dist/hls.min.js"),
    ] {
        assert!(
            root.join(rel).is_file(),
            "{what} missing from {}/node_modules: run `npm ci --ignore-scripts` in {}",
            root.display(),
            root.display()
        );
    }
    chromium
}

/// Pids whose parent is `pid` (from /proc).
fn children_of(pid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|stat| {
                    // Fields after "(comm)": state ppid ...
                    let rest = stat.rsplit_once(')')?.1;
                    rest.split_whitespace().nth(1)?.parse::<i32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

/// A running demo with its work directory (logs) and stdout.
struct Demo {
    child: Child,
    url: String,
    layout: DemoLayout,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    guard: StopOnDrop,
    work: TempDir,
}

impl Demo {
    /// Starts the demo in p2p mode with `agents` agents on free ports, with `env` added to
    /// the demo's environment (its agents inherit it); ready when it prints its readiness line.
    async fn start(agents: usize, bin_dir: &Path, tag: &str, env: &[(&str, &str)]) -> Demo {
        let work = TempDir::new(tag);
        let log = std::fs::File::create(work.path().join("demo.log")).expect("demo log");
        let mut child = Command::new(DEMO)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--agents",
                &agents.to_string(),
                "--duration",
                "240",
                "--grace",
                "5",
            ])
            .arg("--bin-dir")
            .arg(bin_dir)
            .arg("--work-dir")
            .arg(work.path().join("run"))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .expect("spawn demo");
        let guard = StopOnDrop(child.id().map(|p| p as i32));
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(120), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.strip_prefix("hivecast-demo ready: ") {
                    return rest.split_whitespace().next().map(str::to_string);
                }
            }
            None
        })
        .await;
        let url = match ready {
            Ok(Some(url)) => url,
            other => panic!(
                "demo not ready ({}):\n{}",
                if other.is_err() {
                    "timed out"
                } else {
                    "exited"
                },
                logs(work.path())
            ),
        };
        let body = HttpClient::default()
            .get(&format!("{url}demo/agents.json"), &[])
            .await
            .expect("agents.json")
            .body;
        let layout: DemoLayout = serde_json::from_slice(&body).expect("layout json");
        assert_eq!(layout.mode, "p2p");
        assert_eq!(layout.agents.len(), agents);
        Demo {
            child,
            url,
            layout,
            lines,
            guard,
            work,
        }
    }

    fn pid(&self) -> i32 {
        self.guard.0.expect("demo running")
    }

    /// Sends `signal` to the demo, waits (bounded) for it to exit with status 0 and the
    /// `stopped: <reason>` line, and for every child it had to be gone.
    async fn stop(mut self, signal: Signal, reason: &str) {
        let pid = self.pid();
        let children = children_of(pid);
        // publish-digests, tracker, agents.
        assert_eq!(
            children.len(),
            self.layout.agents.len() + 2,
            "children {children:?}"
        );
        kill(Pid::from_raw(pid), signal).expect("signal the demo");
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("demo exits within 30 s")
            .expect("wait");
        self.guard.0 = None;
        let mut rest = Vec::new();
        while let Ok(Some(l)) = self.lines.next_line().await {
            rest.push(l);
        }
        assert!(
            status.success(),
            "demo exit status {status}\n{}",
            logs(self.work.path())
        );
        assert!(
            rest.iter()
                .any(|l| l == &format!("hivecast-demo stopped: {reason}")),
            "{rest:?}"
        );
        let mut survivors = children;
        for _ in 0..100 {
            survivors.retain(|p| alive(*p));
            if survivors.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            survivors.is_empty(),
            "processes survived the demo: {survivors:?}"
        );
    }
}

/// The demo's log and the tail of each child log, for failure messages.
fn logs(work: &Path) -> String {
    let mut out = String::new();
    let tail = |p: &Path, n: usize| {
        let text = std::fs::read_to_string(p).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    };
    out.push_str(&format!(
        "--- demo.log\n{}\n",
        tail(&work.join("demo.log"), 40)
    ));
    if let Ok(entries) = std::fs::read_dir(work.join("run/logs")) {
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths {
            out.push_str(&format!("--- {}\n{}\n", p.display(), tail(&p, 15)));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_players_advance_and_agents_share() {
    let _heavy = HEAVY.lock().await;
    let chromium = require_browser_tooling().await;
    let bins = p2p_bin_dir().await;
    within(180, async {
        let demo = Demo::start(4, &bins, "browser", &[]).await;
        let artifacts = profile_dir()
            .parent()
            .expect("target dir")
            .join("artifacts");
        let spec = workspace_root().join("player-demo/tests/browser/demo.spec.mjs");
        let node = Command::new("node")
            .arg(&spec)
            .args([
                "--url",
                &demo.url,
                "--mode",
                "p2p",
                "--expect-peers",
                "--agents",
                "4",
                "--min-advance",
                "10",
                "--timeout",
                "50",
            ])
            .arg("--artifacts")
            .arg(&artifacts)
            .arg("--chromium")
            .arg(&chromium)
            .current_dir(workspace_root())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn node");
        // SIGTERM first on timeout: playwright closes Chromium on SIGTERM.
        let mut node_guard = StopOnDrop(node.id().map(|p| p as i32));
        let out = tokio::time::timeout(Duration::from_secs(100), node.wait_with_output())
            .await
            .expect("browser test finished within 100 s")
            .expect("node output");
        node_guard.0 = None;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        println!("{stdout}");
        assert!(
            out.status.success(),
            "browser test failed ({}):\n{stdout}\n{stderr}\n{}",
            out.status,
            logs(demo.work.path())
        );
        assert!(
            stdout.contains("ok - at least one agent downloaded bytes from peers"),
            "{stdout}"
        );
        assert!(stdout.contains(" 0 failed"), "{stdout}");
        let shot = artifacts.join("demo.png");
        let size = std::fs::metadata(&shot)
            .unwrap_or_else(|e| panic!("screenshot {}: {e}", shot.display()))
            .len();
        assert!(size > 20_000, "screenshot is only {size} bytes");
        println!("screenshot: {}", shot.display());
        demo.stop(Signal::SIGTERM, "SIGTERM").await;
    })
    .await;
}

/// Runs `ffmpeg -i url -t secs -c copy -f null -` with machine-readable progress on stdout
/// (bounded: 60 s).
async fn ffmpeg_read(url: &str, secs: u32) -> std::process::Output {
    let child = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-nostats",
            "-progress",
            "pipe:1",
            "-i",
            url,
            "-t",
            &secs.to_string(),
            "-c",
            "copy",
            "-f",
            "null",
            "-",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn ffmpeg");
    tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("ffmpeg finished within 60 s")
        .expect("ffmpeg output")
}

/// The last `out_time_us` of ffmpeg's `-progress` output, and whether it reported `end`.
fn progress(stdout: &str) -> (Option<u64>, bool) {
    let time = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("out_time_us="))
        .filter_map(|v| v.trim().parse::<u64>().ok())
        .next_back();
    (time, stdout.lines().any(|l| l.trim() == "progress=end"))
}

#[test]
fn ffmpeg_progress_is_parsed() {
    let text = "frame=1\nout_time_us=N/A\nprogress=continue\nout_time_us=5000000\nprogress=continue\nout_time_us=10966667\nprogress=end\n";
    assert_eq!(progress(text), (Some(10_966_667), true));
    assert_eq!(
        progress("out_time_us=N/A\nprogress=continue\n"),
        (None, false)
    );
}

/// Takes the heavy-test lock, checks that ffmpeg is installed and finds the agent binaries.
async fn ffmpeg_test_setup() -> (tokio::sync::MutexGuard<'static, ()>, PathBuf) {
    let heavy = HEAVY.lock().await;
    require_program(
        "ffmpeg",
        "-version",
        "apt-get install -y --no-install-recommends ffmpeg",
    )
    .await;
    (heavy, p2p_bin_dir().await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_reads_ten_seconds_through_an_agent() {
    let (_heavy, bins) = ffmpeg_test_setup().await;
    within(180, async {
        let demo = Demo::start(2, &bins, "ffmpeg", &[]).await;
        let agent = &demo.layout.agents[0];
        let out = ffmpeg_read(&agent.player_url, 11).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "ffmpeg failed ({}) on {}:\n{stderr}\n{}",
            out.status,
            agent.player_url,
            logs(demo.work.path())
        );
        let (time, ended) = progress(&stdout);
        let read = time.unwrap_or(0) as f64 / 1e6;
        assert!(ended, "ffmpeg did not report progress=end:\n{stdout}");
        assert!(
            read >= 10.0,
            "ffmpeg read only {read:.2} s:\n{stdout}\n{stderr}"
        );
        // It came through the agent.
        let stats_url = agent.stats_url.as_deref().expect("stats url");
        let stats: serde_json::Value = serde_json::from_slice(
            &HttpClient::default()
                .get(stats_url, &[])
                .await
                .expect("agent stats")
                .body,
        )
        .expect("stats json");
        let served = stats["served_bytes"].as_u64().unwrap_or(0);
        assert!(
            served > 100_000,
            "agent served only {served} bytes: {stats}"
        );
        println!("ffmpeg read {read:.2} s through {}", agent.player_url);

        // The short URL on the page's listener (for ffplay, mpv, VLC) redirects to the
        // agent, and ffmpeg resolves the segments against the agent's URL.
        let short = format!("{}play/2.m3u8", demo.url);
        let out = ffmpeg_read(&short, 2).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "ffmpeg failed ({}) on {short}:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let (time, _) = progress(&stdout);
        assert!(time.unwrap_or(0) >= 1_500_000, "{stdout}");
        demo.stop(Signal::SIGINT, "Ctrl-C").await;
    })
    .await;
}

/// (media sequence of the newest segment, segments listed) of a media playlist.
fn live_edge(playlist: &str) -> (u64, u64) {
    let first: u64 = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let n = playlist
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .count() as u64;
    (first + n.saturating_sub(1), n)
}

async fn fetch_text(url: &str) -> String {
    let r = HttpClient::default().get(url, &[]).await.expect(url);
    String::from_utf8_lossy(&r.body).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_plays_a_live_stream_held_back_one_segment() {
    let (_heavy, bins) = ffmpeg_test_setup().await;
    within(180, async {
        let env = [("HIVECAST_AGENT__PLAYLIST__LIVE_HOLD_BACK", "1")];
        let demo = Demo::start(1, &bins, "holdback", &env).await;
        let agent = &demo.layout.agents[0];
        // Wait for a window long enough to hold a segment back (4 segments: 3 stay).
        let mut origin_n = 0;
        for _ in 0..60 {
            origin_n = live_edge(&fetch_text(&demo.layout.stream_url).await).1;
            if origin_n >= 4 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert!(
            origin_n >= 4,
            "the demo's live window never reached 4 segments"
        );
        // The agent's playlist ends one segment before the origin's (fetched just after it,
        // so the origin may have moved one further).
        let (agent_last, _) = live_edge(&fetch_text(&agent.player_url).await);
        let (origin_last, _) = live_edge(&fetch_text(&demo.layout.stream_url).await);
        assert!(
            origin_last == agent_last + 1 || origin_last == agent_last + 2,
            "agent edge {agent_last}, origin edge {origin_last}"
        );
        let out = ffmpeg_read(&agent.player_url, 6).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "ffmpeg failed ({}) on {}:\n{}\n{}",
            out.status,
            agent.player_url,
            String::from_utf8_lossy(&out.stderr),
            logs(demo.work.path())
        );
        let (time, ended) = progress(&stdout);
        assert!(ended && time.unwrap_or(0) >= 5_000_000, "{stdout}");
        let metrics = fetch_text(agent.metrics_url.as_deref().expect("metrics url")).await;
        let applied = metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix("hivecast_agent_playlist_hold_back_total{outcome=\"applied\"} ")
            })
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        assert!(applied >= 1.0, "no held-back playlist counted:\n{metrics}");
        demo.stop(Signal::SIGTERM, "SIGTERM").await;
    })
    .await;
}
