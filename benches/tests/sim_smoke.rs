//! Smoke test of `hivecast-bench sim`: the JSON report appears with every key and plausible
//! values.

use std::process::Command;

/// Runs `hivecast-bench sim` with `args` (and `GLIBC_TUNABLES` removed from its environment,
/// so the huge-page default applies); returns its JSON report.
fn run_sim(name: &str, args: &[&str]) -> serde_json::Value {
    let dir = std::env::temp_dir().join(format!("hivecast-sim-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let json = dir.join("sim.json");
    let out = Command::new(env!("CARGO_BIN_EXE_hivecast-bench"))
        .env_remove("GLIBC_TUNABLES")
        .arg("sim")
        .args(args)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = serde_json::from_slice(&std::fs::read(&json).expect("report")).expect("json");
    let _ = std::fs::remove_dir_all(&dir);
    v
}

#[test]
fn short_simulation_reports_every_key() {
    let v = run_sim(
        "smoke",
        &["--agents", "30", "--duration", "120", "--upload", "1.5"],
    );
    for k in hivecast_agent::sim::REPORT_KEYS {
        assert!(v.get(k).is_some(), "missing key {k}");
    }
    assert_eq!(v["agents"].as_u64(), Some(30));
    let ideal = v["ideal_offload"].as_f64().expect("ideal");
    assert!(
        (ideal - (1.0 - 1.0 / 30.0)).abs() < 1e-9,
        "ideal offload {ideal}"
    );
    let offload = v["offload_ratio"].as_f64().expect("offload");
    assert!(
        offload > 0.0 && offload <= ideal + 1e-9,
        "offload {offload}"
    );
    assert!(v["segments"].as_u64().unwrap_or(0) > 0);
    assert!((v["upload_bound"].as_f64().expect("bound") - 1.0).abs() < 1e-9);
}

#[test]
fn the_simulator_asks_for_huge_pages_unless_told_not_to_and_reports_the_same() {
    let small = ["--agents", "12", "--duration", "40"];
    let huge = run_sim("huge", &small);
    let plain = run_sim("plain", &[&small[..], &["--no-huge-pages"]].concat());
    let glibc_linux = cfg!(all(target_os = "linux", target_env = "gnu"));
    assert_eq!(huge["malloc_huge_pages"].as_bool(), Some(glibc_linux));
    assert_eq!(plain["malloc_huge_pages"].as_bool(), Some(false));
    // The page size changes the wall time only: the simulation is deterministic.
    for k in [
        "events",
        "messages",
        "origin_segment_bytes",
        "peer_segment_bytes",
        "stalls",
    ] {
        assert_eq!(huge[k], plain[k], "{k} differs");
        assert!(huge[k].is_number(), "{k} missing");
    }
}
