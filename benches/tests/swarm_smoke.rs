//! Smoke run of `hivecast-bench swarm` with real processes: 3 agent processes (real WebRTC on
//! 127.0.0.1), a tracker process and 3 paced players for 30 s. The JSON report must appear
//! with every key and plausible values: offload above 0 and at most the ideal for N = 3, the
//! ideal matching N, an origin copy for every segment, no integrity failure, every segment
//! byte-identical to the origin's (SHA-256), and process
//! figures measured. The agent and tracker binaries come from the profile directory that
//! holds `hivecast-bench` (built there with cargo if missing).

use std::path::{Path, PathBuf};
use std::process::Command;

const BENCH: &str = env!("CARGO_BIN_EXE_hivecast-bench");

fn bin_dir() -> PathBuf {
    let dir = Path::new(BENCH)
        .parent()
        .expect("profile dir")
        .to_path_buf();
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(hivecast_demo::demo::procs::ensure_built(
            &dir,
            &workspace,
            &["hivecast-agent", "hivecast-tracker"],
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    dir
}

#[test]
fn three_agent_swarm_reports_every_key() {
    let bins = bin_dir();
    let dir = std::env::temp_dir().join(format!("hivecast-swarm-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let json = dir.join("swarm.json");
    let out = Command::new(BENCH)
        .args([
            "swarm",
            "--agents",
            "3",
            "--duration",
            "30",
            "--bitrate",
            "2000",
            "--segment-secs",
            "2",
            "--json",
        ])
        .arg(&json)
        .arg("--bin-dir")
        .arg(&bins)
        .arg("--work-dir")
        .arg(dir.join("work"))
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "swarm failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("origin copies per segment"), "{stdout}");
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("report")).expect("json");
    for k in hivecast_agent::sim::REPORT_KEYS {
        assert!(v.get(k).is_some_and(|x| !x.is_null()), "missing key {k}");
    }
    let num = |k: &str| {
        v[k].as_f64()
            .unwrap_or_else(|| panic!("{k} is not a number"))
    };
    assert_eq!(v["agents"].as_u64(), Some(3));
    let ideal = num("ideal_offload");
    assert!((ideal - 2.0 / 3.0).abs() < 1e-9, "ideal offload {ideal}");
    let offload = num("offload_ratio");
    assert!(
        offload > 0.0 && offload <= ideal + 1e-9,
        "offload {offload}\n{stdout}"
    );
    // 30 s of 2 s segments after a 10 s warm-up: about 7 counted segments reach the players.
    assert!(num("segments") >= 4.0, "segments\n{stdout}");
    assert!(num("unique_segment_bytes") > 0.0);
    assert!(
        num("origin_copies_per_segment") >= 0.99,
        "every segment comes from the origin at least once\n{stdout}"
    );
    assert!(num("peer_bytes") > 0.0, "agents shared nothing\n{stdout}");
    assert_eq!(num("integrity_failures"), 0.0);
    assert_eq!(
        num("corrupt_segments"),
        0.0,
        "players got the origin's bytes"
    );
    assert_eq!(num("upload_bound"), 1.0);
    assert_eq!(num("failed_startups"), 0.0);
    let startup = num("startup_ms_p50");
    assert!(startup > 0.0 && startup < 10_000.0, "startup {startup} ms");
    assert!(num("startup_ms_p95") >= startup);
    assert!(num("agent_cpu_percent_mean") > 0.0);
    assert!(num("agent_rss_mb_max") > 1.0);
    assert!(num("tracker_rss_mb") > 1.0);
    assert!(num("watch_seconds") > 40.0, "players played\n{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}
