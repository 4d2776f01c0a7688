//! `Signals::install` takes SIGTERM over when it returns, not when first awaited: the binary
//! installs it before it logs "tracker listening", so a supervisor that sends SIGTERM as soon
//! as it reads that line gets a drain, not a killed process. (Its own test binary, because
//! the test signals its own process.)

use std::time::Duration;

use hivecast_tracker::app::Signals;

#[test]
fn sigterm_right_after_install_is_received_not_fatal() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut signals = Signals::install().unwrap();
        // Nothing has polled the listeners yet: with lazy installation this kills the test.
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &std::process::id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(sent);
        tokio::time::timeout(Duration::from_secs(10), signals.recv())
            .await
            .expect("SIGTERM was not delivered to the listeners");
    });
}
