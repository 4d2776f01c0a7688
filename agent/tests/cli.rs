//! The `hivecast-agent` binary as users run it: exit codes, config errors, the readiness line,
//! and graceful shutdown on SIGTERM.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_hivecast-agent");

#[test]
fn bad_config_exits_64_and_lists_every_problem() {
    let dir = std::env::temp_dir().join(format!("hivecast-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join("bad.toml");
    let mut f = std::fs::File::create(&path).expect("create");
    f.write_all(b"[server]\nlisten = \"nowhere\"\nport = 1\n[origin]\nretries = -3\nallow = [\"ftp://x\"]\n[bogus]\nx = 1\n")
        .expect("write");
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&path)
        .env("HIVECAST_AGENT__CACHE__MAX_BYTES", "a lot")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "server.listen",
        "`port`",
        "origin.retries",
        "bogus",
        "cache.max_bytes",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_flags_exit_64() {
    let out = Command::new(BIN)
        .args(["run", "--stream", "missing-equals"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("NAME=URL"));
    let out = Command::new(BIN).output().expect("runs");
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn print_default_config_matches_checked_in_file() {
    let out = Command::new(BIN)
        .arg("--print-default-config")
        .output()
        .expect("runs");
    assert!(out.status.success());
    let expected =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../config/agent.toml"))
            .expect("file");
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
}

#[cfg(unix)]
#[test]
fn sigterm_shuts_down_gracefully() {
    let mut child = Command::new(BIN)
        .args([
            "run",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--allow-origin",
            "http://127.0.0.1:9",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("readiness line");
    assert!(
        line.starts_with("hivecast-agent ready listen=127.0.0.1:"),
        "{line}"
    );
    let listen = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("listen="))
        .expect("listen")
        .to_string();
    // The endpoint answers.
    let mut s = std::net::TcpStream::connect(&listen).expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut resp = String::new();
    std::io::Read::read_to_string(&mut s, &mut resp).expect("read");
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");

    let pid = child.id();
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let t0 = Instant::now();
    loop {
        if let Some(st) = child.try_wait().expect("wait") {
            assert!(st.success(), "exit status {st:?}");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
