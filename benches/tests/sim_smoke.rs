//! Smoke test of `hivecast-bench sim`: the JSON report appears with every key and plausible
//! values.

use std::process::Command;

#[test]
fn short_simulation_reports_every_key() {
    let dir = std::env::temp_dir().join(format!("hivecast-sim-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let json = dir.join("sim.json");
    let out = Command::new(env!("CARGO_BIN_EXE_hivecast-bench"))
        .args([
            "sim",
            "--agents",
            "30",
            "--duration",
            "120",
            "--upload",
            "1.5",
            "--json",
        ])
        .arg(&json)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("report")).expect("json");
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
    let _ = std::fs::remove_dir_all(&dir);
}
