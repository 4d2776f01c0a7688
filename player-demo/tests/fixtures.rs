//! The generated fixtures exist, parse, and ffprobe reads them.

use hivecast_demo::fixtures::{self, Fixtures, probe};
use hivecast_demo::playlist::{self, Playlist};

fn media(fx: &Fixtures, rel: &str) -> playlist::MediaPlaylist {
    let text = std::fs::read_to_string(fx.path(rel)).expect("read playlist");
    playlist::parse_media(&text).expect("parse")
}

fn has_stream(info: &fixtures::ProbeInfo, kind: &str, codec: &str) -> bool {
    info.streams
        .iter()
        .any(|s| s.codec_type == kind && s.codec_name == codec)
}

// Generation takes a few seconds the first time; later runs reuse the cache.
#[test]
fn fixtures_exist_parse_and_probe() {
    let fx = Fixtures::ensure().expect("fixtures");
    assert!(fx.root().ends_with(fixtures::FIXTURES_VERSION));
    // Idempotent and cheap the second time.
    let again = Fixtures::ensure().expect("fixtures");
    assert_eq!(again.root(), fx.root());

    // VOD TS.
    let m = media(&fx, fixtures::VOD_TS);
    assert!(m.endlist);
    assert_eq!(m.target_duration, 2);
    assert_eq!(m.segments.len(), 3);
    assert!(m.segments.iter().all(|s| (s.duration - 2.0).abs() < 1e-6));
    let info = probe(&fx.path(fixtures::VOD_TS).to_string_lossy()).expect("probe");
    assert!(
        has_stream(&info, "video", "h264") && has_stream(&info, "audio", "aac"),
        "{info:?}"
    );
    let d = info.duration.expect("duration");
    assert!((5.5..6.6).contains(&d), "{d}");
    let v = info
        .streams
        .iter()
        .find(|s| s.codec_type == "video")
        .expect("video");
    assert_eq!((v.width, v.height), (Some(426), Some(240)));

    // VOD fMP4 with EXT-X-MAP.
    let m = media(&fx, fixtures::VOD_FMP4);
    assert_eq!(m.segments.len(), 3);
    let map = m.segments[0].map.as_ref().expect("EXT-X-MAP");
    assert_eq!(map.uri, "init.mp4");
    assert!(m.segments.iter().all(|s| s.uri.ends_with(".m4s")));
    let info = probe(&fx.path(fixtures::VOD_FMP4).to_string_lossy()).expect("probe");
    assert!(has_stream(&info, "video", "h264"), "{info:?}");

    // Multivariant.
    let text = std::fs::read_to_string(fx.path(fixtures::MULTIVARIANT)).expect("read");
    let Ok(Playlist::Multivariant(mv)) = playlist::parse(&text) else {
        panic!("multivariant expected: {text}");
    };
    assert_eq!(mv.variants.len(), 2);
    assert!(mv.variants.iter().all(|v| v.audio.is_some()));
    assert!(
        mv.renditions
            .iter()
            .any(|r| r.kind == "AUDIO" && r.uri.is_some())
    );
    assert!(
        mv.renditions
            .iter()
            .any(|r| r.kind == "SUBTITLES" && r.uri.is_some())
    );
    let mut uris = mv.media_playlist_uris();
    uris.sort();
    let mut expected: Vec<String> = fixtures::MULTIVARIANT_MEDIA
        .iter()
        .map(|p| p.trim_start_matches("multivariant/").to_string())
        .collect();
    expected.sort();
    assert_eq!(uris, expected);
    for rel in fixtures::MULTIVARIANT_MEDIA {
        let m = media(&fx, rel);
        assert!(
            m.endlist && m.segments.len() == 3,
            "{rel}: {} segments",
            m.segments.len()
        );
        for s in &m.segments {
            let base = fx.path(rel);
            let seg = base.parent().expect("dir").join(&s.uri);
            assert!(seg.is_file(), "{}", seg.display());
        }
    }
    let subs = media(&fx, "multivariant/360p/index_vtt.m3u8");
    let first = fx.path("multivariant/360p").join(&subs.segments[0].uri);
    assert!(
        std::fs::read_to_string(first)
            .expect("vtt")
            .starts_with("WEBVTT")
    );
    let info = probe(&fx.path("multivariant/240p/index.m3u8").to_string_lossy()).expect("probe");
    let v = info
        .streams
        .iter()
        .find(|s| s.codec_type == "video")
        .expect("video");
    assert_eq!(v.height, Some(240));
    let info = probe(&fx.path("multivariant/audio/index.m3u8").to_string_lossy()).expect("probe");
    assert!(has_stream(&info, "audio", "aac"), "{info:?}");

    // AES-128.
    let m = media(&fx, fixtures::AES);
    let key = m.segments[0].key.as_ref().expect("EXT-X-KEY");
    assert_eq!(key.method, "AES-128");
    assert_eq!(key.uri.as_deref(), Some("enc.key"));
    assert_eq!(
        std::fs::read(fx.path(fixtures::AES_KEY_FILE)).expect("key"),
        fixtures::AES_KEY
    );
    let info = probe(&fx.path(fixtures::AES).to_string_lossy()).expect("probe aes");
    assert!(has_stream(&info, "video", "h264"), "decrypts: {info:?}");
    // The segments really are encrypted: no MPEG-TS sync byte at the start.
    let raw = std::fs::read(fx.path("aes").join(&m.segments[0].uri)).expect("segment");
    assert_ne!(raw.first(), Some(&0x47));

    // Byte ranges over one file, contiguous and covering it.
    let m = media(&fx, fixtures::BYTERANGE);
    assert_eq!(m.segments.len(), 3);
    let file_len = std::fs::metadata(fx.path("byterange/media.ts"))
        .expect("meta")
        .len();
    let mut expected_offset = 0;
    for s in &m.segments {
        assert_eq!(s.uri, "media.ts");
        let r = s.byte_range.expect("range");
        assert_eq!(r.offset, expected_offset);
        expected_offset += r.length;
    }
    assert_eq!(expected_offset, file_len);
    let info = probe(&fx.path(fixtures::BYTERANGE).to_string_lossy()).expect("probe");
    assert!(has_stream(&info, "video", "h264"), "{info:?}");

    // Live sources: 10 x 2 s, each segment starting with a key frame is implied by the GOP.
    for rel in [fixtures::LIVE_SOURCE_TS, fixtures::LIVE_SOURCE_FMP4] {
        let m = media(&fx, rel);
        assert_eq!(m.segments.len(), 10, "{rel}");
        assert!(
            m.segments.iter().all(|s| (s.duration - 2.0).abs() < 1e-6),
            "{rel}"
        );
        let info = probe(&fx.path(rel).to_string_lossy()).expect("probe");
        let d = info.duration.expect("duration");
        assert!((19.5..20.6).contains(&d), "{rel}: {d}");
    }
    assert!(fx.path("live-src-fmp4/init.mp4").is_file());
}

#[test]
fn probe_reports_errors() {
    let err = probe("/nonexistent/hivecast/file.ts").expect_err("must fail");
    assert!(err.to_string().contains("ffprobe"), "{err}");
}
