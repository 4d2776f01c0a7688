//! Live packager: sequence numbers, discontinuities, deletion, digests, real-time pacing.

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{TempDir, within};
use hivecast_demo::digest::{DigestManifest, sha256_hex};
use hivecast_demo::fixtures::{self, Fixtures};
use hivecast_demo::live::{
    LiveConfig, LiveError, LiveMultiConfig, LiveMultiPackager, LivePackager,
};
use hivecast_demo::playlist::{self, MediaPlaylist};

fn read_media(path: &Path) -> MediaPlaylist {
    let text = std::fs::read_to_string(path).expect("read playlist");
    playlist::parse_media(&text).expect("parse playlist")
}

/// The sidecar `chunks` value for a body, computed here independently of the packager.
fn chunk_hashes(bytes: &[u8]) -> String {
    bytes.chunks(16384).map(sha256_hex).collect()
}

fn source_bytes(fx: &Fixtures, rel_dir: &str, index: usize, ext: &str) -> Vec<u8> {
    std::fs::read(fx.path(rel_dir).join(format!("src_{index:03}.{ext}"))).expect("source segment")
}

#[test]
fn sequence_discontinuity_and_deletion() {
    let fx = Fixtures::ensure().expect("fixtures");
    let out = TempDir::new("live-seq");
    let mut cfg = LiveConfig::new(fx.path(fixtures::LIVE_SOURCE_TS), out.path());
    cfg.window = 3;
    cfg.keep_after_window = 2;
    cfg.start_sequence = 100;
    cfg.start_time = Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    let mut p = LivePackager::new(cfg).expect("packager");
    assert_eq!(p.source_len(), 10);
    assert_eq!(p.target_duration(), 2);

    let m = read_media(&p.playlist_path());
    assert!(!m.endlist);
    assert_eq!(m.media_sequence, 100);
    assert_eq!(m.discontinuity_sequence, 0);
    assert_eq!(m.target_duration, 2);
    let uris: Vec<_> = m.segments.iter().map(|s| s.uri.as_str()).collect();
    assert_eq!(uris, ["seg_00100.ts", "seg_00101.ts", "seg_00102.ts"]);
    assert!(m.segments.iter().all(|s| !s.discontinuity));
    // The initial window ends at start_time: 1_700_000_000 - 6 s.
    assert_eq!(
        m.segments[0].program_date_time.as_deref(),
        Some("2023-11-14T22:13:14.000Z")
    );
    assert_eq!(
        m.segments[2].program_date_time.as_deref(),
        Some("2023-11-14T22:13:18.000Z")
    );

    let digests = p.digests();
    // Advance to sequence 112 (two full loops start at 100 and 110).
    for expected in 103..=112u64 {
        let seg = p.advance().expect("advance");
        assert_eq!(seg.sequence, expected);
        assert_eq!(seg.uri, format!("seg_{expected:05}.ts"));
        assert_eq!(seg.discontinuity, expected == 110);
        let bytes = std::fs::read(out.path().join(&seg.uri)).expect("segment file");
        let src_index = ((expected - 100) % 10) as usize;
        assert_eq!(bytes, source_bytes(&fx, "live-src-ts", src_index, "ts"));
        assert_eq!(digests.get(expected), Some(sha256_hex(&bytes).as_str()));
    }
    let m = read_media(&p.playlist_path());
    assert_eq!(m.media_sequence, 110);
    assert_eq!(m.segments.len(), 3);
    assert!(
        m.segments[0].discontinuity,
        "loop point still in the window"
    );
    assert_eq!(
        m.discontinuity_sequence, 0,
        "the tag has not left the window yet"
    );
    assert_eq!(m.segments[0].discontinuity_sequence, 1);

    let seg = p.advance().expect("advance"); // 113: the discontinuity leaves the window
    assert_eq!(seg.sequence, 113);
    let m = read_media(&p.playlist_path());
    assert_eq!(m.media_sequence, 111);
    assert_eq!(m.discontinuity_sequence, 1);
    assert!(m.segments.iter().all(|s| !s.discontinuity));
    assert_eq!(p.discontinuity_sequence(), 1);
    assert_eq!(p.status().last_sequence, 113);
    assert_eq!(p.status().published, 14);

    // Window 111..=113; retired (kept) 109, 110; older ones deleted.
    for seq in 100..=108u64 {
        assert!(
            !out.path().join(format!("seg_{seq:05}.ts")).exists(),
            "{seq} deleted"
        );
    }
    for seq in 109..=113u64 {
        assert!(
            out.path().join(format!("seg_{seq:05}.ts")).exists(),
            "{seq} kept"
        );
    }

    // Program date time is continuous across the loop point.
    let pdts: Vec<_> = p.window().map(|s| s.program_date_time).collect();
    for w in pdts.windows(2) {
        assert_eq!(
            w[1].duration_since(w[0]).expect("monotonic"),
            Duration::from_secs(2)
        );
    }
    // No digest sidecar unless asked for.
    assert!(!out.path().join("index.sha256.json").exists());
    // Rendered text equals the file.
    assert_eq!(
        std::fs::read_to_string(p.playlist_path()).expect("read"),
        p.render_playlist()
    );
    let text = p.render_playlist();
    assert!(text.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1\n"));
    assert!(!text.contains("ENDLIST"));
}

#[test]
fn fmp4_source_with_digest_sidecar() {
    let fx = Fixtures::ensure().expect("fixtures");
    let out = TempDir::new("live-fmp4");
    // Stale files from an earlier run are removed; unrelated files stay.
    std::fs::write(out.path().join("seg_99999.m4s"), b"stale").expect("write");
    std::fs::write(out.path().join("notes.txt"), b"keep").expect("write");
    let mut cfg = LiveConfig::new(fx.path(fixtures::LIVE_SOURCE_FMP4), out.path());
    cfg.write_digests = true;
    cfg.window = 4;
    let mut p = LivePackager::new(cfg).expect("packager");
    assert!(!out.path().join("seg_99999.m4s").exists());
    assert!(out.path().join("notes.txt").exists());

    let init = std::fs::read(out.path().join("init.mp4")).expect("init");
    assert_eq!(
        init,
        std::fs::read(fx.path("live-src-fmp4/init.mp4")).expect("src init")
    );
    for _ in 0..12 {
        p.advance().expect("advance");
        let m = read_media(&p.playlist_path());
        assert!(m.version.unwrap_or(0) >= 6);
        let map = m.segments[0].map.as_ref().expect("EXT-X-MAP");
        assert_eq!(map.uri, "init.mp4");
        // Every URI in the playlist has a digest, and every digest matches the file.
        let sidecar =
            std::fs::read_to_string(out.path().join("index.sha256.json")).expect("sidecar");
        let manifest = DigestManifest::from_json(&sidecar).expect("sidecar json");
        assert_eq!(manifest.segments.get("init.mp4"), Some(&sha256_hex(&init)));
        assert_eq!(manifest.chunk_size, Some(16384));
        let chunks = manifest.chunks.as_ref().expect("chunk digests");
        assert_eq!(chunks.get("init.mp4"), Some(&chunk_hashes(&init)));
        for s in &m.segments {
            assert!(s.uri.ends_with(".m4s"));
            let bytes = std::fs::read(out.path().join(&s.uri)).expect("segment");
            assert_eq!(
                manifest.segments.get(&s.uri),
                Some(&sha256_hex(&bytes)),
                "{}",
                s.uri
            );
            assert_eq!(chunks.get(&s.uri), Some(&chunk_hashes(&bytes)), "{}", s.uri);
        }
        assert_eq!(manifest, p.digest_manifest());
        // The latest sidecar: the newest two segments of the window, as in the full one.
        let latest = std::fs::read_to_string(out.path().join("index.sha256.latest.json"))
            .expect("latest sidecar");
        let latest = DigestManifest::from_json(&latest).expect("latest json");
        let newest: Vec<&str> = m
            .segments
            .iter()
            .rev()
            .take(2)
            .map(|s| s.uri.as_str())
            .collect();
        assert_eq!(latest.segments.len(), newest.len());
        for uri in newest {
            assert_eq!(
                latest.segments.get(uri),
                manifest.segments.get(uri),
                "{uri}"
            );
            assert_eq!(
                latest.chunks.as_ref().and_then(|c| c.get(uri)),
                chunks.get(uri)
            );
        }
    }
    let last = p.status();
    assert_eq!(last.last_sequence, 15);
    assert_eq!(last.media_sequence, 12);
    assert_eq!(
        last.discontinuity_sequence, 1,
        "the loop point (10) has left the window"
    );
    let m = read_media(&p.playlist_path());
    assert_eq!(m.discontinuity_sequence, 1);
    assert!(m.segments.iter().all(|s| !s.discontinuity));
}

#[test]
fn configuration_and_source_errors() {
    let fx = Fixtures::ensure().expect("fixtures");
    let out = TempDir::new("live-errors");
    let mut cfg = LiveConfig::new(fx.path(fixtures::LIVE_SOURCE_TS), out.path());
    cfg.window = 0;
    assert!(matches!(LivePackager::new(cfg), Err(LiveError::Config(_))));
    let mut cfg = LiveConfig::new(fx.path(fixtures::LIVE_SOURCE_TS), out.path());
    cfg.segment_prefix = "a/b".into();
    assert!(matches!(LivePackager::new(cfg), Err(LiveError::Config(_))));

    let err =
        |source: &Path| LivePackager::new(LiveConfig::new(source, out.path())).expect_err("fails");
    assert!(matches!(
        err(&fx.path(fixtures::MULTIVARIANT)),
        LiveError::WrongKind { .. }
    ));
    assert!(matches!(
        err(&fx.path(fixtures::BYTERANGE)),
        LiveError::Unsupported {
            what: "EXT-X-BYTERANGE",
            ..
        }
    ));
    assert!(matches!(
        err(&fx.path(fixtures::AES)),
        LiveError::Unsupported {
            what: "EXT-X-KEY",
            ..
        }
    ));
    assert!(matches!(
        err(&out.path().join("missing.m3u8")),
        LiveError::Io { .. }
    ));

    let bad = out.path().join("bad.m3u8");
    std::fs::write(&bad, "garbage").expect("write");
    assert!(matches!(err(&bad), LiveError::Playlist { .. }));
    let empty = out.path().join("empty.m3u8");
    std::fs::write(&empty, "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-ENDLIST\n").expect("write");
    assert!(matches!(err(&empty), LiveError::EmptySource { .. }));
    for uri in ["../escape.ts", "/abs.ts", "http://x/seg.ts", "seg.ts?x=1"] {
        let abs = out.path().join("abs.m3u8");
        std::fs::write(
            &abs,
            format!("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n{uri}\n"),
        )
        .expect("write");
        assert!(matches!(err(&abs), LiveError::BadUri { .. }), "{uri}");
    }
    let missing_seg = out.path().join("missing-seg.m3u8");
    std::fs::write(
        &missing_seg,
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nnope.ts\n",
    )
    .expect("write");
    assert!(matches!(err(&missing_seg), LiveError::Io { .. }));

    assert!(matches!(
        LiveMultiPackager::new(LiveMultiConfig::new(fx.path(fixtures::VOD_TS), out.path())),
        Err(LiveError::WrongKind { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn realtime_publishes_one_segment_per_duration() {
    within(60, async {
        let fx = Fixtures::ensure_async().await.expect("fixtures");
        let out = TempDir::new("live-rt");
        let p = LivePackager::new(LiveConfig::new(
            fx.path(fixtures::LIVE_SOURCE_TS),
            out.path(),
        ))
        .expect("packager");
        let start_status = p.status();
        assert_eq!(start_status.last_sequence, 5);
        let path = p.playlist_path();
        let t0 = tokio::time::Instant::now();
        let handle = p.spawn_realtime();
        let s = handle.wait_for_sequence(9).await.expect("sequence 9");
        assert_eq!(s.last_sequence, 9);
        // 4 segments of 2 s each: exactly 8 s of (virtual) time.
        assert_eq!(t0.elapsed(), Duration::from_secs(8));
        assert_eq!(
            read_media(&path).segments.last().map(|s| s.sequence),
            Some(9)
        );
        assert_eq!(handle.status().media_sequence, 4);
        let mut rx = handle.subscribe();
        rx.changed().await.expect("next publication");
        assert_eq!(rx.borrow().last_sequence, 10);
        let p = handle.stop().await.expect("stop");
        assert_eq!(p.status().last_sequence, 10);
        // Real time did not pass (the clock is paused): nothing is published after stop.
        assert_eq!(
            read_media(&path).segments.last().map(|s| s.sequence),
            Some(10)
        );
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn realtime_task_failure_is_reported() {
    within(60, async {
        let fx = Fixtures::ensure_async().await.expect("fixtures");
        let out = TempDir::new("live-rt-fail");
        let p = LivePackager::new(LiveConfig::new(
            fx.path(fixtures::LIVE_SOURCE_TS),
            out.path(),
        ))
        .expect("packager");
        // Make the output directory unusable: replace it with a file.
        std::fs::remove_dir_all(out.path()).expect("rm");
        std::fs::write(out.path(), b"not a dir").expect("write");
        let handle = p.spawn_realtime();
        let r = handle.wait_for_sequence(100).await;
        assert!(matches!(r, Err(LiveError::Ended)), "{r:?}");
        assert!(matches!(handle.stop().await, Err(LiveError::Io { .. })));
        std::fs::remove_file(out.path()).expect("cleanup");
        std::fs::create_dir_all(out.path()).expect("recreate for TempDir");
    })
    .await;
}

#[test]
fn multivariant_live_in_lock_step() {
    let fx = Fixtures::ensure().expect("fixtures");
    let out = TempDir::new("live-multi");
    let mut cfg = LiveMultiConfig::new(fx.path(fixtures::MULTIVARIANT), out.path());
    cfg.window = 3;
    cfg.write_digests = true;
    cfg.start_time = Some(SystemTime::now());
    let mut p = LiveMultiPackager::new(cfg).expect("multi");
    assert_eq!(
        std::fs::read(p.master_path()).expect("master"),
        std::fs::read(fx.path(fixtures::MULTIVARIANT)).expect("src master")
    );
    assert_eq!(p.renditions().len(), 4);
    assert_eq!(
        p.renditions()[0].0,
        "360p/index.m3u8",
        "paced by the first variant"
    );
    for _ in 0..5 {
        p.advance().expect("advance");
    }
    for (uri, r) in p.renditions() {
        let path = out.path().join(uri);
        let m = read_media(&path);
        assert_eq!(m.media_sequence, 5, "{uri}");
        assert_eq!(m.segments.last().map(|s| s.sequence), Some(7), "{uri}");
        assert!(
            m.segments.iter().any(|s| s.discontinuity),
            "3-segment loop wrapped: {uri}"
        );
        let dir = path.parent().expect("dir");
        for s in &m.segments {
            assert!(dir.join(&s.uri).is_file(), "{uri}: {}", s.uri);
        }
        assert!(
            dir.join(
                uri.rsplit('/')
                    .next()
                    .expect("name")
                    .replace(".m3u8", ".sha256.json")
            )
            .is_file()
        );
        assert_eq!(r.status().last_sequence, 7);
    }
    // Video and its subtitles share a directory without clobbering each other.
    let vtt = read_media(&out.path().join("360p/index_vtt.m3u8"));
    assert!(
        vtt.segments
            .iter()
            .all(|s| s.uri.starts_with("index_vtt_seg_") && s.uri.ends_with(".vtt"))
    );
    let video = read_media(&out.path().join("360p/index.m3u8"));
    assert!(
        video
            .segments
            .iter()
            .all(|s| s.uri.starts_with("index_seg_") && s.uri.ends_with(".ts"))
    );
}
