//! The `hivecast-demo` binary end to end: origin-direct mode with the paced player, p2p mode
//! with stand-in agent/tracker binaries (to check command lines, mirror URLs and that no
//! process survives shutdown), and its errors.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{StopOnDrop, TempDir, alive, within};
use hivecast_demo::client::HttpClient;
use hivecast_demo::demo::web::DemoLayout;
use hivecast_demo::origin::OriginStats;
use hivecast_demo::player::{PlayerConfig, play};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const DEMO: &str = env!("CARGO_BIN_EXE_hivecast-demo");

/// Starts the demo with `args` and returns (child, page URL, stdout lines reader).
async fn start(
    args: &[&str],
) -> (
    Child,
    String,
    tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) {
    let mut child = Command::new(DEMO)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn demo");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = lines
            .next_line()
            .await
            .expect("read stdout")
            .expect("demo exited before ready");
        if let Some(rest) = line.strip_prefix("hivecast-demo ready: ") {
            break rest.split_whitespace().next().expect("url").to_string();
        }
    };
    (child, url, lines)
}

async fn sigterm_and_wait(child: &mut Child) -> std::process::ExitStatus {
    let pid = child.id().expect("pid") as i32;
    kill(Pid::from_raw(pid), Signal::SIGTERM).expect("SIGTERM");
    tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("demo exits within 20 s")
        .expect("wait")
}

#[tokio::test]
async fn origin_direct_serves_page_and_plays() {
    within(120, async {
        let (mut child, url, mut lines) = start(&[
            "--origin-direct",
            "--agents",
            "2",
            "--listen",
            "127.0.0.1:0",
            "--duration",
            "120",
        ])
        .await;
        let mut guard = StopOnDrop(child.id().map(|p| p as i32));
        let c = HttpClient::default();
        let page = c.get(&url, &[]).await.expect("page");
        assert_eq!(page.status, 200);
        assert_eq!(
            page.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        assert!(String::from_utf8_lossy(&page.body).contains("/vendor/hls.min.js"));
        for (path, ct) in [
            ("app.js", "text/javascript; charset=utf-8"),
            ("style.css", "text/css; charset=utf-8"),
        ] {
            let r = c.get(&format!("{url}{path}"), &[]).await.expect("asset");
            assert_eq!(
                (r.status.as_u16(), r.header("content-type")),
                (200, Some(ct)),
                "{path}"
            );
        }
        let hls = c
            .head(&format!("{url}vendor/hls.min.js"), &[])
            .await
            .expect("hls.js");
        assert_eq!(hls.status, 200);
        let len: u64 = hls
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .expect("length");
        assert!(len > 100_000, "{len}");
        assert_eq!(
            c.get(&format!("{url}nope"), &[]).await.expect("404").status,
            404
        );
        let post = c
            .request(http::Method::POST, &format!("{url}demo/agents.json"), &[])
            .await
            .expect("post");
        assert_eq!(post.status, 405);

        let layout: DemoLayout = serde_json::from_slice(
            &c.get(&format!("{url}demo/agents.json"), &[])
                .await
                .expect("layout")
                .body,
        )
        .expect("layout json");
        assert_eq!(layout.mode, "origin-direct");
        assert_eq!(layout.agents.len(), 2);
        assert!(
            layout
                .agents
                .iter()
                .all(|a| a.player_url == layout.stream_url && a.stats_url.is_none())
        );
        assert!(layout.stream_url.starts_with(&layout.origin));
        // Short stable player URLs: /play/N.m3u8 redirects to player N (1-based).
        for n in 1..=2 {
            let r = c
                .get(&format!("{url}play/{n}.m3u8"), &[])
                .await
                .expect("redirect");
            assert_eq!(r.status, 302);
            assert_eq!(r.header("location"), Some(layout.stream_url.as_str()));
        }
        for bad in ["play/0.m3u8", "play/3.m3u8", "play/1", "play/"] {
            let r = c.get(&format!("{url}{bad}"), &[]).await.expect("404");
            assert_eq!(r.status, 404, "{bad}");
        }

        let mut cfg = PlayerConfig::new(layout.stream_url.clone());
        cfg.max_duration = Duration::from_secs(5);
        let report = play(cfg).await.expect("play");
        assert_eq!(report.stalls, 0, "{report:#?}");
        assert!(report.segments.len() >= 3);

        let stats: OriginStats = serde_json::from_slice(
            &c.get(&format!("{url}demo/origin.json"), &[])
                .await
                .expect("stats")
                .body,
        )
        .expect("stats json");
        assert!(stats.total.bytes >= report.bytes_downloaded);

        let status = sigterm_and_wait(&mut child).await;
        guard.0 = None;
        assert!(status.success(), "{status}");
        let mut rest = Vec::new();
        while let Ok(Some(l)) = lines.next_line().await {
            rest.push(l);
        }
        assert!(
            rest.iter().any(|l| l.contains("stopped: SIGTERM")),
            "{rest:?}"
        );
        // After the readiness line: one line per player with its URL and the short one.
        for n in 1..=2 {
            let want = format!(
                "  player-{n}: {}  (or {url}play/{n}.m3u8)",
                layout.stream_url
            );
            assert!(rest.contains(&want), "{want:?} not in {rest:?}");
        }
    })
    .await;
}

fn write_script(path: &Path, body: &str) {
    std::fs::write(path, body).expect("write script");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[tokio::test]
async fn p2p_mode_with_stand_in_binaries_and_clean_shutdown() {
    within(120, async {
        let dir = TempDir::new("demo-p2p");
        let bin = dir.path().join("bin");
        let stats_root = dir.path().join("stats");
        std::fs::create_dir_all(&bin).expect("mkdir");
        std::fs::create_dir_all(stats_root.join("api")).expect("mkdir");
        let stats = r#"{"peer_id":"-HC0001-abc","downloaded_bytes":{"origin":10,"peer":30},"uploaded_bytes":5,"served_bytes":40,"peers":2,"integrity_failures":0,"cache_bytes":40}"#;
        std::fs::write(stats_root.join("api/stats"), stats).expect("write");
        let log = dir.path().join("calls.log");
        let pids = dir.path().join("pids");
        let envlog = dir.path().join("env.log");
        // Stand-ins: record the command line and pids, start a grandchild, then serve a
        // directory on --listen with the demo's own `origin` subcommand.
        let script = format!(
            r#"#!/bin/sh
echo "$(basename "$0") $*" >> {log}
echo "$(basename "$0") $1 udp_bind=$HIVECAST_AGENT__P2P__WEBRTC__UDP_BIND mdns=$HIVECAST_AGENT__P2P__WEBRTC__MDNS" >> {envlog}
echo $$ >> {pids}
sleep 300 &
echo $! >> {pids}
if [ "$1" = publish-digests ]; then echo '{{"version":1,"segments":{{}}}}' > "$2/index.sha256.json"; exec sleep 300; fi
listen=""
while [ $# -gt 0 ]; do
  case "$1" in
    --listen) listen="$2"; shift 2;;
    *) shift;;
  esac
done
exec {demo} origin --root {root} --listen "$listen"
"#,
            log = log.display(),
            pids = pids.display(),
            envlog = envlog.display(),
            demo = DEMO,
            root = stats_root.display(),
        );
        write_script(&bin.join("hivecast-agent"), &script);
        write_script(&bin.join("hivecast-tracker"), &script);

        let bin_dir = bin.display().to_string();
        let (mut child, url, _lines) = start(&[
            "--agents", "2", "--listen", "127.0.0.1:0", "--duration", "120", "--bin-dir", &bin_dir,
        ])
        .await;
        let mut guard = StopOnDrop(child.id().map(|p| p as i32));
        let c = HttpClient::default();
        let layout: DemoLayout =
            serde_json::from_slice(&c.get(&format!("{url}demo/agents.json"), &[]).await.expect("layout").body)
                .expect("layout json");
        assert_eq!(layout.mode, "p2p");
        assert_eq!(layout.agents.len(), 2);
        let authority = layout.origin.trim_start_matches("http://");
        for (i, a) in layout.agents.iter().enumerate() {
            let r = c
                .get(&format!("{url}play/{}.m3u8", i + 1), &[])
                .await
                .expect("redirect");
            assert_eq!((r.status.as_u16(), r.header("location")), (302, Some(a.player_url.as_str())));
            let stats_url = a.stats_url.as_deref().expect("stats url");
            let agent = stats_url
                .trim_start_matches("http://")
                .trim_end_matches("/api/stats");
            assert_eq!(a.player_url, format!("http://{agent}/http/{authority}/live/index.m3u8"));
            let r = c.get(stats_url, &[]).await.expect("stats");
            assert_eq!(r.status, 200);
            assert_eq!(r.body.as_ref(), stats.as_bytes());
        }

        // The publisher is not waited for, so its line may come after the tracker's.
        let calls = std::fs::read_to_string(&log).expect("calls");
        let lines: Vec<&str> = calls.lines().collect();
        assert_eq!(lines.len(), 4, "{calls}");
        let digests: Vec<_> = lines.iter().filter(|l| l.contains("publish-digests")).collect();
        assert_eq!(digests.len(), 1, "{calls}");
        assert!(
            digests[0].starts_with("hivecast-agent publish-digests ") && digests[0].ends_with("/origin/live --watch --interval 100ms"),
            "{calls}"
        );
        let trackers: Vec<_> = lines.iter().filter(|l| l.starts_with("hivecast-tracker ")).collect();
        assert_eq!(trackers.len(), 1, "{calls}");
        assert!(trackers[0].starts_with("hivecast-tracker run --listen 127.0.0.1:"), "{calls}");
        let agents: Vec<_> = lines.iter().filter(|l| l.starts_with("hivecast-agent run ")).collect();
        assert_eq!(agents.len(), 2, "{calls}");
        for l in agents {
            assert!(l.starts_with("hivecast-agent run --listen 127.0.0.1:"), "{l}");
            assert!(l.contains(&format!("--allow-origin {}", layout.origin)), "{l}");
            assert!(l.contains(" --tracker ws://127.0.0.1:") && l.contains("/announce "), "{l}");
            assert!(l.contains(&format!("--stream live={}", layout.stream_url)), "{l}");
            assert!(l.contains("--admin-listen 127.0.0.1:"), "{l}");
        }
        // Agents (only they) get loopback WebRTC and no mDNS.
        let envs = std::fs::read_to_string(&envlog).expect("env log");
        let agent_envs: Vec<_> = envs.lines().filter(|l| l.starts_with("hivecast-agent run ")).collect();
        assert_eq!(agent_envs.len(), 2, "{envs}");
        assert!(
            agent_envs.iter().all(|l| l.ends_with("udp_bind=127.0.0.1:0 mdns=disabled")),
            "{envs}"
        );
        assert!(
            envs.lines().filter(|l| !l.starts_with("hivecast-agent run ")).all(|l| l.ends_with("udp_bind= mdns=")),
            "{envs}"
        );
        let recorded: Vec<i32> = std::fs::read_to_string(&pids)
            .expect("pids")
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        assert_eq!(recorded.len(), 8, "4 stand-ins + 4 grandchildren");
        assert!(recorded.iter().all(|p| alive(*p)));

        let status = sigterm_and_wait(&mut child).await;
        guard.0 = None;
        assert!(status.success(), "{status}");
        // Every stand-in and grandchild is gone (bounded wait for init to reap them).
        let mut survivors = recorded.clone();
        for _ in 0..100 {
            survivors.retain(|p| alive(*p));
            if survivors.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(survivors.is_empty(), "processes survived shutdown: {survivors:?}");
    })
    .await;
}

#[tokio::test]
async fn missing_binaries_and_bad_arguments_fail_clearly() {
    within(60, async {
        let dir = TempDir::new("demo-nobin");
        let out = Command::new(DEMO)
            .args(["--listen", "127.0.0.1:0", "--bin-dir"])
            .arg(dir.path())
            .output()
            .await
            .expect("run");
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("hivecast-agent not found") && stderr.contains("--origin-direct"),
            "{stderr}"
        );

        let out = Command::new(DEMO)
            .args(["--agents", "0"])
            .output()
            .await
            .expect("run");
        assert_eq!(
            out.status.code(),
            Some(64),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );

        let out = Command::new(DEMO)
            .args([
                "--origin-direct",
                "--listen",
                "127.0.0.1:0",
                "--hls-js",
                "/nonexistent/hls.min.js",
            ])
            .output()
            .await
            .expect("run");
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("hls.min.js not found"));

        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).expect("mkdir");
        // A publisher that dies before its first sidecar is reported with its log.
        write_script(
            &bin.join("hivecast-agent"),
            "#!/bin/sh\necho publisher-marker >&2\nexit 5\n",
        );
        write_script(&bin.join("hivecast-tracker"), "#!/bin/sh\nexec sleep 300\n");
        let out = Command::new(DEMO)
            .args(["--listen", "127.0.0.1:0", "--grace", "1", "--bin-dir"])
            .arg(&bin)
            .output()
            .await
            .expect("run");
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("publish-digests exited") && stderr.contains("publisher-marker"),
            "{stderr}"
        );

        // The publisher's readiness is its first sidecar; the tracker then dies at once.
        write_script(
            &bin.join("hivecast-agent"),
            "#!/bin/sh\nif [ \"$1\" = publish-digests ]; then echo '{}' > \"$2/index.sha256.json\"; fi\nexec sleep 300\n",
        );
        write_script(&bin.join("hivecast-tracker"), "#!/bin/sh\nexit 7\n");
        let out = Command::new(DEMO)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--grace",
                "1",
                "--tracker-args",
                "run {bogus}",
                "--bin-dir",
            ])
            .arg(&bin)
            .output()
            .await
            .expect("run");
        assert_eq!(out.status.code(), Some(64));
        assert!(String::from_utf8_lossy(&out.stderr).contains("unknown placeholder"));
        let out = Command::new(DEMO)
            .args(["--listen", "127.0.0.1:0", "--grace", "1", "--bin-dir"])
            .arg(&bin)
            .output()
            .await
            .expect("run");
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("tracker exited"), "{stderr}");
    })
    .await;
}

#[tokio::test]
async fn ctrl_c_during_startup_stops_the_children_started_so_far() {
    within(60, async {
        let dir = TempDir::new("demo-ctrlc");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).expect("mkdir");
        let pids = dir.path().join("pids");
        // The publisher writes its sidecar; the tracker records its pid and never listens,
        // so the demo is still starting when it gets Ctrl-C.
        write_script(
            &bin.join("hivecast-agent"),
            &format!(
                "#!/bin/sh\necho $$ >> {pids}\nif [ \"$1\" = publish-digests ]; then echo '{{}}' > \"$2/index.sha256.json\"; fi\nexec sleep 300\n",
                pids = pids.display()
            ),
        );
        write_script(
            &bin.join("hivecast-tracker"),
            &format!(
                "#!/bin/sh\necho $$ >> {pids}\nexec sleep 300\n",
                pids = pids.display()
            ),
        );
        let child = Command::new(DEMO)
            .args(["--listen", "127.0.0.1:0", "--ready-timeout", "50", "--bin-dir"])
            .arg(&bin)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn demo");
        let mut guard = StopOnDrop(child.id().map(|p| p as i32));
        // Readiness of this test: both stand-ins have started.
        let started = loop {
            let recorded: Vec<i32> = std::fs::read_to_string(&pids)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect();
            if recorded.len() == 2 {
                break recorded;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        assert!(started.iter().all(|p| alive(*p)));
        let pid = child.id().expect("pid") as i32;
        kill(Pid::from_raw(pid), Signal::SIGINT).expect("SIGINT");
        let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
            .await
            .expect("demo exits within 20 s")
            .expect("wait");
        guard.0 = None;
        assert!(out.status.success(), "{}", out.status);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("hivecast-demo stopped: Ctrl-C (during startup)"),
            "{stdout}"
        );
        assert!(!stdout.contains("ready"), "{stdout}");
        let mut survivors = started;
        for _ in 0..100 {
            survivors.retain(|p| alive(*p));
            if survivors.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(survivors.is_empty(), "processes survived: {survivors:?}");
    })
    .await;
}
