//! Real processes for end-to-end tests: the tracker and agent binaries, started on loopback
//! with readiness from a signal (a readiness line, or the port accepting), killed on drop.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const AGENT_BIN: &str = env!("CARGO_BIN_EXE_hivecast-agent");

/// The tracker binary next to the agent binary, built on demand when this test runs alone.
pub fn tracker_bin() -> PathBuf {
    let p = Path::new(AGENT_BIN).with_file_name("hivecast-tracker");
    if !p.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = Command::new(cargo)
            .args([
                "build",
                "-p",
                "hivecast-tracker",
                "--bin",
                "hivecast-tracker",
            ])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .status()
            .expect("cargo build of the tracker");
        assert!(st.success(), "cannot build hivecast-tracker");
    }
    assert!(p.is_file(), "tracker binary missing at {}", p.display());
    p
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn wait_port(addr: SocketAddr, within: Duration) {
    let t0 = Instant::now();
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(t0.elapsed() < within, "{addr} did not start accepting");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process killed (SIGKILL) on drop; stderr collected in memory.
pub struct Proc {
    pub child: Child,
    pub stderr: Arc<Mutex<String>>,
}

impl Proc {
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }
    pub fn log(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect_stderr(child: &mut Child) -> Arc<Mutex<String>> {
    let buf = Arc::new(Mutex::new(String::new()));
    if let Some(err) = child.stderr.take() {
        let b = buf.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if let Ok(mut s) = b.lock()
                    && s.len() < 4 << 20
                {
                    s.push_str(&line);
                    s.push('\n');
                }
            }
        });
    }
    buf
}

pub struct TrackerProc {
    pub proc_: Proc,
    pub port: u16,
    pub admin: SocketAddr,
}

impl TrackerProc {
    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }
}

/// Starts the tracker on `port` (0: a free one).
pub fn spawn_tracker(port: u16) -> TrackerProc {
    let port = if port == 0 { free_port() } else { port };
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let mut child = Command::new(tracker_bin())
        .args(["run", "--listen", &format!("127.0.0.1:{port}")])
        .env("HIVECAST_TRACKER__ADMIN__LISTEN", admin.to_string())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tracker");
    let stderr = collect_stderr(&mut child);
    wait_port(
        format!("127.0.0.1:{port}").parse().expect("addr"),
        Duration::from_secs(20),
    );
    TrackerProc {
        proc_: Proc { child, stderr },
        port,
        admin,
    }
}

pub struct AgentProc {
    pub proc_: Proc,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
}

/// Starts an agent allowed to fetch from `origin_base`, with P2P through `tracker` (if any),
/// WebRTC bound to loopback.
pub fn spawn_agent(origin_base: &str, tracker: Option<&str>, env: &[(&str, &str)]) -> AgentProc {
    let mut cmd = Command::new(AGENT_BIN);
    cmd.args([
        "run",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--allow-origin",
        origin_base,
    ]);
    if let Some(t) = tracker {
        cmd.args(["--tracker", t]);
    }
    cmd.env("HIVECAST_AGENT__P2P__WEBRTC__UDP_BIND", "127.0.0.1:0")
        .env("HIVECAST_AGENT__P2P__WEBRTC__MDNS", "disabled")
        .env("HIVECAST_AGENT__P2P__HUNGRY_ANNOUNCE_INTERVAL", "1s")
        .env(
            "RUST_LOG",
            std::env::var("HIVECAST_TEST_AGENT_LOG").unwrap_or_else(|_| {
                "info,webrtc=warn,rtc=warn,webrtc_ice=warn,webrtc_sctp=warn".into()
            }),
        );
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn agent");
    let stderr = collect_stderr(&mut child);
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("readiness line");
    assert!(
        line.starts_with("hivecast-agent ready"),
        "agent did not start: {line}\n{}",
        stderr.lock().map(|s| s.clone()).unwrap_or_default()
    );
    let field = |name: &str| -> SocketAddr {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .and_then(|v| v.parse().ok())
            .expect("address in readiness line")
    };
    AgentProc {
        listen: field("listen="),
        admin: field("admin="),
        proc_: Proc { child, stderr },
    }
}

/// Reads one counter or gauge from a Prometheus text page (sum over label sets matching
/// `labels`, e.g. `source="peer"`).
#[allow(unused_imports)] // not every test binary reads metrics
pub use hivecast_demo::prom::metric_sum as metric;

/// Runs `hivecast-agent publish-digests DIR --watch` (100 ms scans), killed on drop.
pub fn spawn_publish_digests(dir: &Path) -> Proc {
    spawn_publish_digests_with(dir, &[])
}

/// `publish-digests --watch` with extra arguments (e.g. `--chunk-size`).
pub fn spawn_publish_digests_with(dir: &Path, args: &[&str]) -> Proc {
    let child = Command::new(AGENT_BIN)
        .args(["publish-digests", "--watch", "--interval", "100ms"])
        .args(args)
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn publish-digests");
    Proc {
        child,
        stderr: Default::default(),
    }
}
