//! The binary: `--print-default-config` equals `config/tracker.toml`, bad config exits
//! 64 listing every problem, SIGTERM drains and exits 0 (also when sent the moment the
//! ready line appears), a second signal exits at once.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use hivecast_tracker::proto::{AnnounceEvent, ServerMessage};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const BIN: &str = env!("CARGO_BIN_EXE_hivecast-tracker");

fn tracker(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .env_remove("HIVECAST_TRACKER__SERVER__LISTEN");
    c
}

#[test]
fn print_default_config_matches_the_checked_in_file() {
    let out = tracker(&["--print-default-config"]).output().unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/tracker.toml");
    let checked_in = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        printed, checked_in,
        "config/tracker.toml is stale: regenerate it with `hivecast-tracker --print-default-config > config/tracker.toml`"
    );
    // And the printed file is a valid config equal to the defaults.
    let parsed: hivecast_tracker::config::Config = toml::from_str(&printed).unwrap();
    assert_eq!(parsed, hivecast_tracker::config::Config::default());
}

#[test]
fn bad_config_exits_64_and_lists_every_problem() {
    let path = std::env::temp_dir().join(format!("hivecast-cli-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "[server]\nlisten = \"nowhere\"\nbogus = 1\n[limits]\nmax_connections = 0\n",
    )
    .unwrap();
    let out = tracker(&["run", "--config", path.to_str().unwrap()])
        .env("HIVECAST_TRACKER__SWARM__POLICY", "closest")
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "server.bogus",
        "server.listen",
        "limits.max_connections",
        "swarm.policy",
    ] {
        assert!(err.contains(needle), "{needle} missing from:\n{err}");
    }
    assert_eq!(
        tracker(&["run", "--listen", "not-an-addr"])
            .output()
            .unwrap()
            .status
            .code(),
        Some(64)
    );
    assert_eq!(tracker(&[]).output().unwrap().status.code(), Some(64));
    assert_eq!(
        tracker(&["frobnicate"]).output().unwrap().status.code(),
        Some(64)
    );
}

/// A running binary whose stdout lines arrive on a channel.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Running {
    fn start(extra_env: &[(&str, &str)]) -> Self {
        let mut cmd = tracker(&["run", "--listen", "127.0.0.1:0"]);
        cmd.env("HIVECAST_TRACKER__ADMIN__LISTEN", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// Waits for a log line containing `needle`.
    fn wait_for(&self, needle: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("no log line containing {needle:?}"));
            if line.contains(needle) {
                return line;
            }
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "tracker did not exit in {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn listen_addr(line: &str) -> SocketAddr {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("listen="))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no listen= in {line}"))
}

#[test]
fn sigterm_drains_and_exits_zero() {
    let mut t = Running::start(&[]);
    let addr = listen_addr(&t.wait_for("tracker listening"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut client = rt.block_on(within(async {
        let mut c = Client::connect(addr, "/announce").await;
        c.send(&announce(1, 1, AnnounceEvent::Started, &[])).await;
        assert!(matches!(c.recv().await, ServerMessage::AnnounceResponse(_)));
        c
    }));
    t.signal("-TERM");
    rt.block_on(within(async {
        match client.event().await {
            Event::Close(Some(f)) => assert_eq!(f.code, CloseCode::Away),
            other => panic!("expected close 1001, got {other:?}"),
        }
    }));
    assert_eq!(t.wait_exit(Duration::from_secs(10)), Some(0));
}

#[test]
fn sigterm_as_soon_as_the_ready_line_appears_still_drains() {
    // The binary installs its signal listeners before it logs "tracker listening"; a
    // supervisor may signal the moment it reads that line.
    for _ in 0..3 {
        let mut t = Running::start(&[]);
        t.wait_for("tracker listening");
        t.signal("-TERM");
        assert_eq!(t.wait_exit(Duration::from_secs(10)), Some(0));
    }
}

#[test]
fn second_signal_exits_at_once() {
    // A client that never reads keeps its connection task busy in a write (60 s write
    // timeout, 60 s grace), so the drain cannot finish by itself.
    let mut t = Running::start(&[
        ("HIVECAST_TRACKER__SERVER__WRITE_TIMEOUT", "60s"),
        ("HIVECAST_TRACKER__SERVER__SHUTDOWN_GRACE", "60s"),
        ("HIVECAST_TRACKER__SERVER__OUTBOUND_QUEUE", "65536"),
        ("HIVECAST_TRACKER__LIMITS__MAX_MESSAGE_SIZE", "1 MiB"),
        ("HIVECAST_TRACKER__LIMITS__ANNOUNCE_RATE_PER_IP", "100000"),
        ("HIVECAST_TRACKER__LIMITS__ANNOUNCE_BURST_PER_IP", "100000"),
    ]);
    let addr = listen_addr(&t.wait_for("tracker listening"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_victim, _sender) = rt.block_on(within(async {
        let mut victim = Client::connect(addr, "/").await;
        victim
            .send(&announce(1, 9, AnnounceEvent::Started, &[]))
            .await;
        let mut sender = Client::connect(addr, "/").await;
        sender
            .send(&announce(1, 1, AnnounceEvent::Started, &[]))
            .await;
        sender.recv().await;
        let big = "s".repeat(512 * 1024);
        // 48 MiB: more than the kernel buffers of a non-reading socket can absorb.
        for round in 0..96u8 {
            sender.send(&announce_with_sdp(1, 1, round, &big)).await;
            let ServerMessage::AnnounceResponse(r) = sender.recv().await else {
                panic!()
            };
            assert_eq!(r.incomplete, 2, "the victim must still be connected");
        }
        (victim, sender)
    }));
    t.signal("-TERM");
    t.wait_for("shutting down; a second signal exits at once");
    // Still draining: the stuck connection holds it.
    assert!(t.child.try_wait().unwrap().is_none());
    t.signal("-TERM");
    assert_eq!(t.wait_exit(Duration::from_secs(5)), Some(130));
}
