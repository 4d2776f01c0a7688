//! Differential interop test against the reference WebTorrent tracker
//! (`bittorrent-tracker` from npm): `tests/interop/differential.mjs` runs the same
//! scenario against both and compares normalized transcripts (see the script header
//! for every normalization and documented difference).
//!
//! Needs `node` on PATH and `npm ci` run in the workspace root. Without them the test
//! fails with instructions, unless `HIVECAST_SKIP_NODE=1` is set.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::{start, test_config};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tracker/ has a parent")
        .to_path_buf()
}

#[tokio::test]
async fn differential_against_bittorrent_tracker() {
    if std::env::var("HIVECAST_SKIP_NODE").as_deref() == Ok("1") {
        eprintln!("interop test skipped: HIVECAST_SKIP_NODE=1");
        return;
    }
    let root = workspace_root();
    let node_ok = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        node_ok,
        "`node` (Node.js 18+) is not on PATH: install it and run `npm ci` in {}, \
         or set HIVECAST_SKIP_NODE=1 to skip this interop test",
        root.display()
    );
    let reference = root.join("node_modules/bittorrent-tracker/package.json");
    assert!(
        reference.exists(),
        "{} is missing: run `npm ci` in {} (or set HIVECAST_SKIP_NODE=1 to skip)",
        reference.display(),
        root.display()
    );

    let app = start(test_config()).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/differential.mjs");
    let child = tokio::process::Command::new("node")
        .arg(&script)
        .arg(app.announce_url())
        .current_dir(&root)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn node");
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the interop script finished within 60 s")
        .expect("node ran");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "differential test failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    // The run really exercised the relay paths on hivecast.
    let metrics = app.metrics().encode();
    assert!(
        !metrics.contains("hivecast_tracker_signals_relayed_total{kind=\"offer\"} 0"),
        "{metrics}"
    );
    assert!(!metrics.contains("hivecast_tracker_signals_relayed_total{kind=\"answer\"} 0"));
    app.shutdown().await;
}
