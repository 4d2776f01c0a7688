//! The paced player against the test origin and the live packager (real time).

mod common;

use std::time::Duration;

use common::{TempDir, within};
use hivecast_demo::digest::sha256_hex;
use hivecast_demo::fixtures::{self, Fixtures};
use hivecast_demo::live::{LiveConfig, LivePackager};
use hivecast_demo::origin::{Fault, Origin, ResourceKind};
use hivecast_demo::player::{PlayerConfig, StopReason, VariantChoice, play};
use hivecast_demo::playlist;

async fn live_setup(
    source: &str,
    tag: &str,
) -> (
    TempDir,
    Origin,
    hivecast_demo::live::DigestTable,
    hivecast_demo::live::LiveHandle<LivePackager>,
) {
    let fx = Fixtures::ensure_async().await.expect("fixtures");
    let root = TempDir::new(tag);
    let p = LivePackager::new(LiveConfig::new(fx.path(source), root.path().join("live")))
        .expect("packager");
    let digests = p.digests();
    let handle = p.spawn_realtime();
    let origin = Origin::start(root.path()).await.expect("origin");
    (root, origin, digests, handle)
}

#[tokio::test]
async fn live_ts_plays_without_stalls_and_bytes_match() {
    within(60, async {
        let (_root, origin, digests, live) =
            live_setup(fixtures::LIVE_SOURCE_TS, "player-live-ts").await;
        let start = live.status();
        let mut cfg = PlayerConfig::new(origin.url("/live/index.m3u8"));
        cfg.max_duration = Duration::from_secs(9);
        let report = play(cfg).await.expect("play");

        assert!(report.live);
        assert_eq!(report.stop_reason, StopReason::MaxDuration);
        assert_eq!(report.stalls, 0, "{report:#?}");
        assert_eq!(report.stall_seconds, 0.0);
        assert!(
            report.startup_seconds.expect("started") < 1.0,
            "{report:#?}"
        );
        assert!(report.played_seconds > 7.5, "{}", report.played_seconds);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        // Starts 3 segments behind the live edge (window 0..=5 → starts at 3).
        let first = report.segments.first().expect("segments").sequence;
        assert!(
            first == start.last_sequence - 2 || first == start.last_sequence - 1,
            "{first}"
        );
        // Contiguous, byte-identical to what the packager published.
        for w in report.segments.windows(2) {
            assert_eq!(w[1].sequence, w[0].sequence + 1);
        }
        for s in &report.segments {
            assert_eq!(
                digests.get(s.sequence),
                Some(s.sha256.as_str()),
                "seq {}",
                s.sequence
            );
            assert_eq!(s.attempts, 1);
            assert_eq!(s.url, origin.url(&format!("/live/{}", s.uri)));
        }
        // It kept up with the live edge: ~4 new segments in 9 s.
        assert!(report.segments.len() >= 6, "{}", report.segments.len());
        // Reloads at the RFC pace: about one per 2 s target duration (plus half-target
        // retries when unchanged), never a tight loop.
        assert!(
            (4..=12).contains(&report.playlist_loads),
            "{}",
            report.playlist_loads
        );
        assert_eq!(
            origin.kind_requests(ResourceKind::Playlist),
            report.playlist_loads
        );
        assert_eq!(
            origin.kind_requests(ResourceKind::Segment),
            report.segments.len() as u64
        );
        assert_eq!(
            report.bytes_downloaded,
            report.segments.iter().map(|s| s.bytes).sum::<u64>()
        );
        let json = serde_json::to_string(&report).expect("serde");
        assert!(json.contains("\"stalls\":0"));
        live.stop().await.expect("stop live");
        origin.stop().await;
    })
    .await;
}

#[tokio::test]
async fn live_fmp4_fetches_init_once() {
    within(60, async {
        let (root, origin, digests, live) =
            live_setup(fixtures::LIVE_SOURCE_FMP4, "player-live-fmp4").await;
        let mut cfg = PlayerConfig::new(origin.url("/live/index.m3u8"));
        cfg.max_duration = Duration::from_secs(5);
        let report = play(cfg).await.expect("play");
        assert_eq!(report.stalls, 0, "{report:#?}");
        assert_eq!(report.init_sections.len(), 1);
        let init = std::fs::read(root.path().join("live/init.mp4")).expect("init");
        assert_eq!(report.init_sections[0].sha256, sha256_hex(&init));
        assert_eq!(origin.requests("/live/init.mp4"), 1);
        assert!(!report.segments.is_empty());
        for s in &report.segments {
            assert_eq!(digests.get(s.sequence), Some(s.sha256.as_str()));
        }
        live.stop().await.expect("stop live");
        origin.stop().await;
    })
    .await;
}

#[tokio::test]
async fn vod_byterange_plays_to_the_end() {
    within(60, async {
        let fx = Fixtures::ensure_async().await.expect("fixtures");
        let origin = Origin::start(fx.root()).await.expect("origin");
        let mut cfg = PlayerConfig::new(origin.url(fixtures::BYTERANGE));
        cfg.max_duration = Duration::from_secs(20);
        let report = play(cfg).await.expect("play");
        assert!(!report.live);
        assert_eq!(report.stop_reason, StopReason::Ended);
        assert_eq!(report.stalls, 0);
        assert_eq!(report.segments.len(), 3);
        assert!(
            (report.played_seconds - 6.0).abs() < 0.01,
            "{}",
            report.played_seconds
        );
        assert!(
            report.wall_seconds >= 5.9,
            "played in real time: {}",
            report.wall_seconds
        );
        assert_eq!(report.playlist_loads, 1, "VOD is never reloaded");
        let media = std::fs::read(fx.path("byterange/media.ts")).expect("media");
        for s in &report.segments {
            let (offset, len) = s.byte_range.expect("range");
            let slice = &media[offset as usize..(offset + len) as usize];
            assert_eq!(s.sha256, sha256_hex(slice));
        }
        let log = origin.request_log();
        assert!(
            log.iter()
                .filter(|r| r.path.ends_with("media.ts"))
                .all(|r| r.range.is_some() && r.status == Some(206))
        );
        origin.stop().await;
    })
    .await;
}

#[tokio::test]
async fn slow_segment_causes_a_measured_stall_and_retries_recover() {
    within(60, async {
        let fx = Fixtures::ensure_async().await.expect("fixtures");
        let origin = Origin::start(fx.root()).await.expect("origin");
        // Segment 1 takes 3 s to arrive: after 2 s of media the player stalls ~1 s.
        origin.set_fault_times(
            "/vod-ts/seg_001.ts",
            Fault::Delay(Duration::from_secs(3)),
            1,
        );
        // Segment 2 fails twice, then succeeds on the last retry.
        origin.set_fault_times("/vod-ts/seg_002.ts", Fault::Status(503), 2);
        let mut cfg = PlayerConfig::new(origin.url(fixtures::VOD_TS));
        cfg.max_duration = Duration::from_secs(20);
        let report = play(cfg).await.expect("play");
        assert_eq!(report.stop_reason, StopReason::Ended);
        assert_eq!(report.segments.len(), 3);
        assert_eq!(report.stalls, 1, "{report:#?}");
        assert!(
            (0.7..1.6).contains(&report.stall_seconds),
            "{}",
            report.stall_seconds
        );
        assert_eq!(report.segments[2].attempts, 3);
        assert_eq!(report.failed_attempts, 2);
        assert_eq!(report.failed_segments, 0);
        assert_eq!(report.errors.len(), 2);
        let m = playlist::parse_media(
            &std::fs::read_to_string(fx.path(fixtures::VOD_TS)).expect("read"),
        )
        .expect("parse");
        for (s, src) in report.segments.iter().zip(&m.segments) {
            let bytes = std::fs::read(fx.path("vod-ts").join(&src.uri)).expect("segment");
            assert_eq!(s.sha256, sha256_hex(&bytes));
        }
        origin.stop().await;
    })
    .await;
}

#[tokio::test]
async fn failed_segments_are_skipped_and_reported() {
    within(60, async {
        let fx = Fixtures::ensure_async().await.expect("fixtures");
        let origin = Origin::start(fx.root()).await.expect("origin");
        origin.set_fault("/vod-fmp4/seg_001.m4s", Fault::Status(404));
        let mut cfg = PlayerConfig::new(origin.url(fixtures::VOD_FMP4));
        cfg.max_duration = Duration::from_secs(20);
        cfg.segment_retries = 1;
        cfg.stop_after_played = Some(Duration::from_secs(3));
        let report = play(cfg).await.expect("play");
        assert_eq!(report.failed_segments, 1);
        assert_eq!(report.failed_attempts, 2);
        assert_eq!(origin.requests("/vod-fmp4/seg_001.m4s"), 2);
        let seqs: Vec<u64> = report.segments.iter().map(|s| s.sequence).collect();
        assert_eq!(seqs, [0, 2]);
        assert_eq!(report.stop_reason, StopReason::Played);
        assert!(
            (report.played_seconds - 3.0).abs() < 0.05,
            "{}",
            report.played_seconds
        );
        assert!(
            report.errors.iter().all(|e| e.contains("404")),
            "{:?}",
            report.errors
        );
        origin.stop().await;
    })
    .await;
}

#[tokio::test]
async fn multivariant_picks_a_variant() {
    within(60, async {
        let fx = Fixtures::ensure_async().await.expect("fixtures");
        let origin = Origin::start(fx.root()).await.expect("origin");
        let mut cfg = PlayerConfig::new(origin.url(fixtures::MULTIVARIANT));
        cfg.variant = VariantChoice::Lowest;
        cfg.stop_after_played = Some(Duration::from_millis(500));
        let report = play(cfg).await.expect("play");
        assert_eq!(
            report.media_playlist_url,
            origin.url("/multivariant/240p/index.m3u8")
        );
        assert_eq!(report.stop_reason, StopReason::Played);
        let mut cfg = PlayerConfig::new(origin.url(fixtures::MULTIVARIANT));
        cfg.variant = VariantChoice::Highest;
        cfg.stop_after_played = Some(Duration::from_millis(500));
        let report = play(cfg).await.expect("play");
        assert_eq!(
            report.media_playlist_url,
            origin.url("/multivariant/360p/index.m3u8")
        );
        origin.stop().await;
    })
    .await;
}

#[tokio::test]
async fn playlist_that_appears_late_is_retried() {
    within(60, async {
        let fx = Fixtures::ensure_async().await.expect("fixtures");
        let origin = Origin::start(fx.root()).await.expect("origin");
        origin.set_fault_times("/vod-ts/index.m3u8", Fault::Status(404), 2);
        let mut cfg = PlayerConfig::new(origin.url(fixtures::VOD_TS));
        cfg.stop_after_played = Some(Duration::from_millis(200));
        let report = play(cfg).await.expect("play");
        assert_eq!(origin.requests("/vod-ts/index.m3u8"), 3);
        assert_eq!(report.stop_reason, StopReason::Played);
        assert!(report.startup_seconds.expect("started") >= 1.0);
        origin.stop().await;
    })
    .await;
}
