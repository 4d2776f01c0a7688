//! The real-world corpus (`shared/testdata/hls-playlists`, 139 playlists from four public
//! test suites), read in place, never copied.
//!
//! For every playlist the rewrite either fails with one of the expected, documented errors
//! (pinned below, so a change of behaviour shows), or succeeds, and then:
//! * (a) quick-m3u8, an independent parser, sees the same sequence of lines (each known tag by
//!   name, unknown tags, comments, URI lines, blank lines) in the input and the output;
//! * (b) every byte outside the URI values is unchanged;
//! * (c) every URI in the output, as found by quick-m3u8, leads the player (through the
//!   agent, in the mirror form) to the origin URL of the corresponding input URI;
//! * the segment count of the info matches quick-m3u8's URI-line count;
//! * the degrade-mode rewrite succeeds too and leaves no low-latency tag.

use std::path::{Path, PathBuf};

use quick_m3u8::config::ParsingOptions;
use quick_m3u8::tag::{KnownTag, hls};
use quick_m3u8::{HlsLine, Reader};
use url::Url;

use super::support::{local_for, player_reaches, proxy_all, same_outside_uris, url};
use crate::playlist::{
    HOLD_BACK_MIN_KEPT, HoldBack, HoldBackSkip, Limits, PlaylistInfo, RewriteOptions, Variables,
    parse, rewrite,
};

/// The corpus folder, relative to the crate (the same relative path from the agent crate).
fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/hls-playlists")
}

fn playlists(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(playlists(&p));
        } else if p.extension().is_some_and(|x| x == "m3u8") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Files expected to fail, with their error message (line number left out). Each is a
/// deliberately broken fixture, or one that breaks a MUST the agent relies on: no `#EXTM3U`
/// first line (the 14 files the corpus README lists), a URI line without `EXTINF`, a stray
/// URI line in a multivariant playlist, a missing `EXT-X-TARGETDURATION`, malformed or
/// duplicate sequence / type / duration / byte-range values, and implicit byte-range
/// offsets whose previous segment (part) is not a range of the same resource.
const EXPECTED_FAILURES: &[(&str, &str)] = &[
    (
        "grafov-m3u8/master-with-hlsv7.m3u8",
        "playlist does not start with #EXTM3U",
    ),
    (
        "grafov-m3u8/media-playlist-with-discontinuity.m3u8",
        "playlist does not start with #EXTM3U",
    ),
    (
        "kuu-hls-parser/8.10-EXT-X-DATERANGE-carrying-SCTE-35-tags.m3u8",
        "playlist does not start with #EXTM3U",
    ),
    (
        "kuu-hls-parser/8.6-Master-Playlist-with-Alternative-audio.m3u8",
        "playlist does not start with #EXTM3U",
    ),
    (
        "kuu-hls-parser/8.7-Master-Playlist-with-Alternative-video.m3u8",
        "playlist does not start with #EXTM3U",
    ),
    (
        "kuu-hls-parser/8.8-Session-Data-in-a-Master-Playlist.m3u8",
        "playlist does not start with #EXTM3U",
    ),
    (
        "kuu-hls-parser/8.9-CHARACTERISTICS-attribute-containing-multiple-characteristics.m3u8",
        "playlist does not start with #EXTM3U",
    ),
    (
        "kuu-hls-parser/SCTE-35_07.m3u8",
        "playlist does not start with #EXTM3U",
    ),
    (
        "rutgersc-m3u8-rs/master-not-ending-in-newline.m3u8",
        "playlist mixes multivariant tags and media segments",
    ),
    (
        "rutgersc-m3u8-rs/masterplaylist.m3u8",
        "playlist mixes multivariant tags and media segments",
    ),
    (
        "rutgersc-m3u8-rs/media-playlist-with-cues.m3u8",
        "media playlist has no EXT-X-TARGETDURATION",
    ),
    (
        "videojs-m3u8-parser/byteRange.m3u8",
        "byte range without offset, but the previous segment is not a range of the same resource",
    ),
    (
        "videojs-m3u8-parser/empty.m3u8",
        "playlist does not start with #EXTM3U",
    ),
    (
        "videojs-m3u8-parser/emptyMediaSequence.m3u8",
        "invalid EXT-X-MEDIA-SEQUENCE value \"\"",
    ),
    (
        "videojs-m3u8-parser/emptyPlaylistType.m3u8",
        "invalid EXT-X-PLAYLIST-TYPE value \"\"",
    ),
    (
        "videojs-m3u8-parser/extXPlaylistTypeInvalidPlaylist.m3u8",
        "invalid EXT-X-PLAYLIST-TYPE value \"STRING\"",
    ),
    (
        "videojs-m3u8-parser/extinf.m3u8",
        "invalid EXTINF duration value \";asljasdfii11)))00,\"",
    ),
    (
        "videojs-m3u8-parser/headerOnly.m3u8",
        "media playlist has no EXT-X-TARGETDURATION",
    ),
    (
        "videojs-m3u8-parser/invalidMediaSequence.m3u8",
        "invalid EXT-X-MEDIA-SEQUENCE value \"gobblegobble\"",
    ),
    (
        "videojs-m3u8-parser/invalidPlaylistType.m3u8",
        "invalid EXT-X-PLAYLIST-TYPE value \"asdRASDfasdR\"",
    ),
    (
        "videojs-m3u8-parser/invalidTargetDuration.m3u8",
        "invalid EXT-X-TARGETDURATION value \"NaN\"",
    ),
    (
        "videojs-m3u8-parser/liveMissingSegmentDuration.m3u8",
        "media segment URI without a preceding #EXTINF",
    ),
    (
        "videojs-m3u8-parser/llhls-byte-range.m3u8",
        "invalid EXT-X-BYTERANGE value \"587500@\"",
    ),
    (
        "videojs-m3u8-parser/llhls-delta-byte-range.m3u8",
        "byte range without offset, but the previous part is not a range of the same resource",
    ),
    (
        "videojs-m3u8-parser/manifestExtTTargetdurationNegative.m3u8",
        "invalid EXT-X-TARGETDURATION value \"-10\"",
    ),
    (
        "videojs-m3u8-parser/manifestNoExtM3u.m3u8",
        "playlist does not start with #EXTM3U",
    ),
    (
        "videojs-m3u8-parser/master.m3u8",
        "playlist does not start with #EXTM3U",
    ),
    (
        "videojs-m3u8-parser/missingExtinf.m3u8",
        "media segment URI without a preceding #EXTINF",
    ),
    (
        "videojs-m3u8-parser/missingSegmentDuration.m3u8",
        "media segment URI without a preceding #EXTINF",
    ),
    (
        "videojs-m3u8-parser/multipleTargetDurations.m3u8",
        "media segment URI without a preceding #EXTINF",
    ),
    (
        "videojs-m3u8-parser/negativeMediaSequence.m3u8",
        "invalid EXT-X-MEDIA-SEQUENCE value \"-11\"",
    ),
    (
        "videojs-m3u8-parser/start.m3u8",
        "playlist does not start with #EXTM3U",
    ),
    (
        "videojs-m3u8-parser/streamInfInvalid.m3u8",
        "playlist does not start with #EXTM3U",
    ),
    (
        "videojs-m3u8-parser/twoMediaSequences.m3u8",
        "EXT-X-MEDIA-SEQUENCE appears more than once",
    ),
];

#[derive(Debug, PartialEq, Eq)]
enum Shape {
    Known(&'static str),
    Unknown(String),
    Comment,
    Uri,
    Blank,
    /// quick-m3u8 refused the line (a malformed known tag).
    Refused,
}

/// What quick-m3u8 sees: line shapes, URIs in playlist order, EXTINF and URI-line counts.
struct Seen {
    shapes: Vec<Shape>,
    uris: Vec<String>,
    extinf: usize,
    uri_lines: usize,
}

fn quick(text: &str) -> Seen {
    let mut reader = Reader::from_str(text, ParsingOptions::default());
    let mut seen = Seen {
        shapes: Vec::new(),
        uris: Vec::new(),
        extinf: 0,
        uri_lines: 0,
    };
    loop {
        match reader.read_line() {
            Ok(None) => break,
            Ok(Some(HlsLine::KnownTag(KnownTag::Hls(tag)))) => {
                seen.shapes.push(Shape::Known(tag.name().as_str()));
                let uri: Option<&str> = match &tag {
                    hls::Tag::Inf(_) => {
                        seen.extinf += 1;
                        None
                    }
                    hls::Tag::Map(t) => Some(t.uri()),
                    hls::Tag::Key(t) => t.uri(),
                    hls::Tag::SessionKey(t) => Some(t.uri()),
                    hls::Tag::Media(t) => t.uri(),
                    hls::Tag::IFrameStreamInf(t) => Some(t.uri()),
                    hls::Tag::Part(t) => Some(t.uri()),
                    hls::Tag::PreloadHint(t) => Some(t.uri()),
                    hls::Tag::RenditionReport(t) => Some(t.uri()),
                    hls::Tag::SessionData(t) => t.uri(),
                    hls::Tag::ContentSteering(t) => Some(t.server_uri()),
                    _ => None,
                };
                if let Some(u) = uri {
                    seen.uris.push(u.to_owned());
                }
            }
            Ok(Some(HlsLine::KnownTag(KnownTag::Custom(_)))) => seen.shapes.push(Shape::Refused),
            Ok(Some(HlsLine::UnknownTag(t))) => {
                seen.shapes.push(Shape::Unknown(t.name().to_owned()))
            }
            Ok(Some(HlsLine::Comment(_))) => seen.shapes.push(Shape::Comment),
            Ok(Some(HlsLine::Uri(u))) => {
                seen.shapes.push(Shape::Uri);
                let u = u.trim_matches([' ', '\t']);
                if !u.is_empty() {
                    seen.uri_lines += 1;
                    seen.uris.push(u.to_owned());
                }
            }
            Ok(Some(HlsLine::Blank)) => seen.shapes.push(Shape::Blank),
            Err(_) => seen.shapes.push(Shape::Refused),
        }
    }
    seen
}

fn check_success(name: &str, input: &str, output: &str, origin: &Url, local: &Url) {
    // (b) byte-exact outside the URIs.
    if let Err(e) = same_outside_uris(input, output) {
        panic!("{name}: {e}");
    }
    // (a) same lines for an independent parser.
    let (a, b) = (quick(input), quick(output));
    assert_eq!(
        a.shapes, b.shapes,
        "{name}: quick-m3u8 sees different lines"
    );
    assert_eq!(a.extinf, b.extinf, "{name}");
    // (c) every URI leads to the same origin resource.
    assert_eq!(a.uris.len(), b.uris.len(), "{name}");
    for (i, o) in a.uris.iter().zip(&b.uris) {
        let expected = origin.join(i).unwrap();
        assert_eq!(
            player_reaches(local, o),
            expected,
            "{name}: {i:?} written as {o:?}"
        );
    }
}

/// With a one-segment live hold-back (LL-HLS degraded), a live media playlist of more than
/// three segments is served as a byte prefix of the full rewrite that a parser reads as all
/// but the newest segment; anything else is served whole. True if a segment was withheld.
fn check_hold_back(
    name: &str,
    bytes: &[u8],
    full: &[u8],
    info: &PlaylistInfo,
    origin: &Url,
    local: &Url,
) -> bool {
    let opts = RewriteOptions {
        degrade_low_latency: true,
        live_hold_back: 1,
        ..RewriteOptions::default()
    };
    let h = rewrite(bytes, origin, local, &Variables::new(), &opts, &proxy_all())
        .unwrap_or_else(|e| panic!("{name}: hold-back rewrite failed: {e}"));
    assert_eq!(&h.info, info, "{name}: hold-back changed the info");
    let m = match info {
        PlaylistInfo::Media(m) if m.is_live() => m,
        _ => {
            assert_eq!(h.hold_back, HoldBack::Off, "{name}");
            assert_eq!(h.body, full, "{name}");
            return false;
        }
    };
    if m.segments.len() <= HOLD_BACK_MIN_KEPT {
        assert_eq!(
            h.hold_back,
            HoldBack::Skipped(HoldBackSkip::ShortWindow),
            "{name}"
        );
        assert_eq!(h.body, full, "{name}");
        return false;
    }
    assert_eq!(h.hold_back, HoldBack::Applied(1), "{name}");
    assert!(
        full.starts_with(&h.body) && h.body.len() < full.len(),
        "{name}"
    );
    let seen = parse(&h.body, local, &Variables::new(), &Limits::default())
        .unwrap_or_else(|e| panic!("{name}: held-back playlist does not parse: {e}"));
    let seen = seen.as_media().expect("media");
    let n = m.segments.len() - 1;
    assert_eq!(seen.segments.len(), n, "{name}");
    for (a, b) in seen.segments.iter().zip(&m.segments[..n]) {
        assert_eq!(
            (a.seq, a.duration, a.discontinuity),
            (b.seq, b.duration, b.discontinuity),
            "{name}"
        );
    }
    true
}

#[test]
fn corpus_rewrites_or_fails_clearly() {
    let dir = corpus_dir();
    if !dir.is_dir() {
        eprintln!(
            "SKIPPED corpus test: {} not found (the shared test data is not checked out)",
            dir.display()
        );
        return;
    }
    let files = playlists(&dir);
    assert!(!files.is_empty(), "no playlists under {}", dir.display());
    let origin = url("https://origin.test/a/b/index.m3u8?tok=1");
    let local = local_for(&origin);
    let passthrough = RewriteOptions {
        strip_content_steering: false,
        ..RewriteOptions::default()
    };
    let degrade = RewriteOptions {
        degrade_low_latency: true,
        ..RewriteOptions::default()
    };
    let mapper = proxy_all();
    let vars = Variables::new();
    let (mut ok, mut failed) = (0, Vec::new());
    let (mut media, mut multivariant, mut segments, mut held_back) = (0, 0, 0, 0);
    for path in &files {
        let name = path
            .strip_prefix(&dir)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let bytes = std::fs::read(path).unwrap();
        match rewrite(&bytes, &origin, &local, &vars, &passthrough, &mapper) {
            Ok(r) => {
                ok += 1;
                let input = std::str::from_utf8(&bytes).unwrap();
                let output = std::str::from_utf8(&r.body).unwrap();
                check_success(&name, input, output, &origin, &local);
                match &r.info {
                    PlaylistInfo::Media(m) => {
                        media += 1;
                        segments += m.segments.len();
                        // One segment per URI line (a trailing EXTINF without URI, as in a
                        // live playlist cut between lines, is not a segment).
                        assert_eq!(m.segments.len(), quick(input).uri_lines, "{name}");
                    }
                    PlaylistInfo::Multivariant(_) => multivariant += 1,
                }
                let d = rewrite(&bytes, &origin, &local, &vars, &degrade, &mapper)
                    .unwrap_or_else(|e| panic!("{name}: degrade mode failed: {e}"));
                let dtext = std::str::from_utf8(&d.body).unwrap();
                for tag in [
                    "#EXT-X-PART:",
                    "#EXT-X-PART-INF",
                    "#EXT-X-PRELOAD-HINT",
                    "#EXT-X-RENDITION-REPORT",
                ] {
                    assert!(!dtext.contains(tag), "{name}: {tag} left in degrade mode");
                }
                for attr in [
                    "CAN-BLOCK-RELOAD",
                    "CAN-SKIP-UNTIL",
                    "PART-HOLD-BACK",
                    "CAN-SKIP-DATERANGES",
                ] {
                    assert!(!dtext.contains(attr), "{name}: {attr} left in degrade mode");
                }
                assert_eq!(d.info, r.info, "{name}: info depends on the mode");
                if check_hold_back(&name, &bytes, &d.body, &r.info, &origin, &local) {
                    held_back += 1;
                }
            }
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    !msg.contains(['\n', '\r']),
                    "{name}: multi-line error {msg:?}"
                );
                failed.push((name, msg));
            }
        }
    }
    eprintln!(
        "corpus: {} playlists, {ok} rewritten ({media} media with {segments} segments, \
         {multivariant} multivariant; {held_back} live ones served held back), {} refused:",
        files.len(),
        failed.len()
    );
    for (name, msg) in &failed {
        eprintln!("  {name}: {msg}");
    }
    for (name, msg) in &failed {
        let expected = EXPECTED_FAILURES.iter().find(|(n, _)| n == name);
        match expected {
            Some((_, fragment)) => assert!(msg.contains(fragment), "{name}: {msg}"),
            None => panic!("{name}: unexpected failure: {msg}"),
        }
    }
    assert!(
        held_back > 0,
        "no live playlist in the corpus exercised the hold-back"
    );
    for (name, _) in EXPECTED_FAILURES {
        assert!(
            failed.iter().any(|(n, _)| n == name),
            "{name} was expected to fail but was rewritten"
        );
    }
}
