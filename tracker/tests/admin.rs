//! The admin listener: `/metrics` parses as Prometheus text (and passes
//! `promtool check metrics` when promtool is on PATH), `/healthz`, 404s.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::process::{Command, Stdio};

use common::*;
use hivecast_tracker::proto::{AnnounceEvent, ServerMessage};

/// A strict-enough parser of the text exposition format: returns family → type and
/// checks every sample line.
fn parse_exposition(text: &str) -> Result<HashMap<String, String>, String> {
    let valid_name = |n: &str| {
        !n.is_empty()
            && n.bytes().enumerate().all(|(i, b)| {
                b.is_ascii_alphabetic() || b == b'_' || b == b':' || (i > 0 && b.is_ascii_digit())
            })
    };
    let mut types = HashMap::new();
    let mut helps = HashSet::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split_whitespace().next().ok_or("empty HELP")?;
            helps.insert(name.to_owned());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            let (name, kind) = (it.next().ok_or("no name")?, it.next().ok_or("no type")?);
            if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                return Err(format!("bad type {kind}"));
            }
            types.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .ok_or_else(|| format!("no value: {line}"))?;
        value
            .parse::<f64>()
            .map_err(|_| format!("bad value: {line}"))?;
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (
                n,
                Some(
                    l.strip_suffix('}')
                        .ok_or_else(|| format!("unclosed labels: {line}"))?,
                ),
            ),
            None => (series, None),
        };
        if !valid_name(name) {
            return Err(format!("bad name: {line}"));
        }
        if let Some(labels) = labels {
            for pair in labels.split(',').filter(|p| !p.is_empty()) {
                let (k, v) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("bad label: {line}"))?;
                let quoted = v.len() >= 2 && v.starts_with('"') && v.ends_with('"');
                if !(valid_name(k) && quoted) {
                    return Err(format!("bad label: {line}"));
                }
            }
        }
        if !types.contains_key(name) || !helps.contains(name) {
            return Err(format!("sample without TYPE/HELP: {line}"));
        }
    }
    Ok(types)
}

#[tokio::test]
async fn metrics_parse_and_pass_promtool() {
    within(async {
        let app = start(test_config()).await;
        let mut a = Client::connect(app.ws_addr(), "/").await;
        let mut b = Client::connect(app.ws_addr(), "/").await;
        a.send(&announce(1, 1, AnnounceEvent::Started, &[])).await;
        a.recv().await;
        b.send(&announce(1, 2, AnnounceEvent::Started, &[4])).await;
        b.recv().await;
        let ServerMessage::Offer(_) = a.recv().await else {
            panic!()
        };
        a.send(&answer(1, 1, 2, 4)).await;
        b.recv().await;

        let (status, body) = http_get(app.admin_addr(), "/metrics").await;
        assert_eq!(status, 200);
        let types = parse_exposition(&body).unwrap_or_else(|e| panic!("{e}\n{body}"));
        for (name, kind) in [
            ("hivecast_tracker_peers", "gauge"),
            ("hivecast_tracker_swarms", "gauge"),
            ("hivecast_tracker_connections", "gauge"),
            ("hivecast_tracker_announces_total", "counter"),
            ("hivecast_tracker_signals_relayed_total", "counter"),
            ("hivecast_tracker_signals_dropped_total", "counter"),
            ("hivecast_tracker_refusals_total", "counter"),
            ("hivecast_tracker_slow_readers_dropped_total", "counter"),
            ("hivecast_tracker_build_info", "gauge"),
        ] {
            assert_eq!(types.get(name).map(String::as_str), Some(kind), "{name}");
        }
        assert!(body.contains(&format!(
            "hivecast_tracker_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )));
        assert!(body.contains("hivecast_tracker_peers 2"));
        assert!(body.contains("hivecast_tracker_swarms 1"));
        assert!(body.contains("hivecast_tracker_signals_relayed_total{kind=\"offer\"} 1"));
        assert!(body.contains("hivecast_tracker_signals_relayed_total{kind=\"answer\"} 1"));
        assert!(body.contains("hivecast_tracker_announces_total{result=\"ok\"} 2"));
        // No peer ids, addresses or hashes as label values: every label value is
        // lower-case ASCII from the closed enums (or the version).
        for line in body
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains('{'))
        {
            let labels = line.split_once('{').unwrap().1.split_once('}').unwrap().0;
            for pair in labels.split(',') {
                let v = pair.split_once('=').unwrap().1.trim_matches('"');
                assert!(
                    v.bytes().all(|b| b.is_ascii_lowercase()
                        || b == b'_'
                        || b.is_ascii_digit()
                        || b == b'.'),
                    "unexpected label value in {line}"
                );
            }
        }

        if Command::new("promtool")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            let mut child = Command::new("promtool")
                .args(["check", "metrics"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(body.as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "promtool check metrics failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        } else {
            eprintln!("promtool not on PATH; checked with the built-in parser only");
        }

        assert_eq!(
            http_get(app.admin_addr(), "/healthz").await,
            (200, "ok\n".to_owned())
        );
        assert_eq!(http_get(app.admin_addr(), "/other").await.0, 404);
        app.shutdown().await;
    })
    .await;
}

#[test]
fn the_parser_rejects_broken_expositions() {
    assert!(parse_exposition("foo 1").is_err(), "sample without TYPE");
    assert!(parse_exposition("# HELP foo x\n# TYPE foo gauge\nfoo one").is_err());
    assert!(parse_exposition("# HELP foo x\n# TYPE foo gauge\nfoo{a=b} 1").is_err());
    assert!(parse_exposition("# HELP foo x\n# TYPE foo bogus\nfoo 1").is_err());
    assert!(parse_exposition("# HELP foo x\n# TYPE foo gauge\nfoo{a=\"b\"} 1\n").is_ok());
}
