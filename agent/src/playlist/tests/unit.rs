//! Unit tests: every URI-bearing place, every URI form, variables, byte layout, byte ranges,
//! low-latency modes, and every error.

use std::sync::Arc;

use url::Url;

use super::support::{
    AGENT, local_for, media, player_reaches, proxy_all, rw, rw_opts, same_outside_uris, text, url,
};
use crate::mirror::from_mirror_path;
use crate::playlist::{
    AttributeSyntax, ByteRange, HintType, Limits, MirrorMapper, PlaylistError, PlaylistInfo,
    PlaylistKind, PlaylistType, RewriteOptions, UriKind, UriMapper, Variables, parse, rewrite,
};

const ORIGIN: &str = "https://cdn.example.com/live/stream/index.m3u8?token=abc";

fn media_body(uri: &str) -> String {
    format!("#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\n{uri}\n")
}

/// Rewrites a one-segment playlist and returns (written URI, resolved origin URL).
fn segment(uri: &str, origin: &str, mapper: &dyn UriMapper) -> (String, Url) {
    let r = rw(&media_body(uri), origin, mapper).unwrap();
    let out = text(&r).lines().nth(3).unwrap().to_owned();
    let seg = &media(&r.info).segments[0];
    assert_eq!(seg.uri, uri);
    (out, seg.url.clone())
}

#[test]
fn every_uri_form() {
    let m = proxy_all();
    let o = url(ORIGIN);
    let local = local_for(&o);
    // (written in playlist, expected in output, expected origin URL)
    let cases = [
        (
            "seg.ts",
            "seg.ts",
            "https://cdn.example.com/live/stream/seg.ts",
        ),
        (
            "a/b.ts",
            "a/b.ts",
            "https://cdn.example.com/live/stream/a/b.ts",
        ),
        (
            "./x.ts",
            "./x.ts",
            "https://cdn.example.com/live/stream/x.ts",
        ),
        ("../x.ts", "../x.ts", "https://cdn.example.com/live/x.ts"),
        // Climbs above the mirror prefix at the agent: must be rewritten.
        (
            "../../../x.ts",
            "/https/cdn.example.com/x.ts",
            "https://cdn.example.com/x.ts",
        ),
        (
            "/abs/x.ts",
            "/https/cdn.example.com/abs/x.ts",
            "https://cdn.example.com/abs/x.ts",
        ),
        (
            "//other.example/x.ts",
            "/https/other.example/x.ts",
            "https://other.example/x.ts",
        ),
        (
            "https://other.example:8443/p/x.ts?sig=a%2Fb",
            "/https/other.example:8443/p/x.ts?sig=a%2Fb",
            "https://other.example:8443/p/x.ts?sig=a%2Fb",
        ),
        (
            "HTTP://CDN.example.com/y.ts",
            "/http/cdn.example.com/y.ts",
            "http://cdn.example.com/y.ts",
        ),
        (
            "?q=1",
            "?q=1",
            "https://cdn.example.com/live/stream/index.m3u8?q=1",
        ),
        (
            "a%20b.ts",
            "a%20b.ts",
            "https://cdn.example.com/live/stream/a%20b.ts",
        ),
        (
            "a b.ts",
            "a b.ts",
            "https://cdn.example.com/live/stream/a%20b.ts",
        ),
        (
            "noextension",
            "noextension",
            "https://cdn.example.com/live/stream/noextension",
        ),
        (
            "seg.ts?hmac=AbC%2B%2F%3D&exp=1&Signature=x~y_z",
            "seg.ts?hmac=AbC%2B%2F%3D&exp=1&Signature=x~y_z",
            "https://cdn.example.com/live/stream/seg.ts?hmac=AbC%2B%2F%3D&exp=1&Signature=x~y_z",
        ),
        (
            "x.ts#t=5",
            "x.ts#t=5",
            "https://cdn.example.com/live/stream/x.ts#t=5",
        ),
    ];
    for (written, expected, origin_url) in cases {
        let (out, resolved) = segment(written, ORIGIN, &m);
        assert_eq!(out, expected, "output for {written:?}");
        assert_eq!(resolved.as_str(), origin_url, "origin URL for {written:?}");
        // The base URL's query (token=abc) is never inherited.
        assert!(!resolved.as_str().contains("token"), "{written:?}");
        // Whatever was written, the player reaches the right origin resource through the agent.
        assert_eq!(player_reaches(&local, &out), resolved, "{written:?}");
        assert!(
            local.join(&out).unwrap().as_str().starts_with(AGENT),
            "{written:?}"
        );
    }
}

#[test]
fn signed_query_reaches_origin_byte_exact() {
    let m = proxy_all();
    let q = "Policy=eyJ%2BS3RhdGVtZW50Ijpb&Key-Pair-Id=K2&Signature=a~b-c_d%3D%3D";
    let (out, resolved) = segment(&format!("https://signed.example/v/seg.ts?{q}"), ORIGIN, &m);
    assert_eq!(resolved.query(), Some(q));
    assert_eq!(out, format!("/https/signed.example/v/seg.ts?{q}"));
    assert_eq!(from_mirror_path(&out).unwrap().query(), Some(q));
}

#[test]
fn redirect_to_another_host_rewrites_relative_uris() {
    let requested = url("https://cdn.example.com/live/index.m3u8");
    let final_url = url("https://edge7.example.net/x/y/index.m3u8?t=1");
    let local = local_for(&requested);
    let body = media_body("seg.ts");
    let r = rewrite(
        body.as_bytes(),
        &final_url,
        &local,
        &Variables::new(),
        &RewriteOptions::default(),
        &proxy_all(),
    )
    .unwrap();
    assert_eq!(
        text(&r).lines().nth(3),
        Some("/https/edge7.example.net/x/y/seg.ts")
    );
    assert_eq!(
        media(&r.info).segments[0].url.as_str(),
        "https://edge7.example.net/x/y/seg.ts"
    );
}

#[test]
fn non_proxied_uris_become_absolute() {
    let only_cdn = MirrorMapper::new(|u: &Url| u.host_str() == Some("cdn.example.com"));
    let cases = [
        ("seg.ts", "seg.ts"),
        // Absolute and not allowed: kept byte for byte (still absolute).
        (
            "https://Other.example/a.ts?x=%7E",
            "https://Other.example/a.ts?x=%7E",
        ),
        // Relative forms that point elsewhere must become absolute origin URLs.
        ("//other.example/a.ts", "https://other.example/a.ts"),
    ];
    for (written, expected) in cases {
        assert_eq!(
            segment(written, ORIGIN, &only_cdn).0,
            expected,
            "{written:?}"
        );
    }
    // An origin that is not allowed at all: relative URIs become absolute origin URLs.
    let (out, _) = segment(
        "seg.ts",
        "https://elsewhere.example/a/index.m3u8",
        &only_cdn,
    );
    assert_eq!(out, "https://elsewhere.example/a/seg.ts");
}

#[test]
fn multivariant_every_uri_bearing_place() {
    let body = "\
#EXTM3U
#EXT-X-VERSION:7
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-CONTENT-STEERING:SERVER-URI=\"steer.json\",PATHWAY-ID=\"CDN-A\"
#EXT-X-SESSION-DATA:DATA-ID=\"com.example.title\",URI=\"title.json\"
#EXT-X-SESSION-DATA:DATA-ID=\"com.example.lang\",VALUE=\"en\"
#EXT-X-SESSION-KEY:METHOD=AES-128,URI=\"keys/k1.bin?id=1\"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"English, main\",DEFAULT=YES,URI=\"audio/en.m3u8\"
#EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,GROUP-ID=\"cc\",NAME=\"CC1\",INSTREAM-ID=\"CC1\"
#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"sub\",NAME=\"de\",URI=\"https://subs.example/de.m3u8\"
#EXT-X-STREAM-INF:BANDWIDTH=1280000,CODECS=\"avc1.64001f,mp4a.40.2\",AUDIO=\"aud\",PATHWAY-ID=\"CDN-A\"
# a comment between the tag and its URI
v720/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=640000
/root/v360.m3u8?x=1
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=86000,URI=\"iframe/index.m3u8\"
#EXT-X-IMAGE-STREAM-INF:BANDWIDTH=1,URI=\"img/index.m3u8\"
#EXT-VENDOR-THING:ID=7
";
    let origin = "https://cdn.example.com/vod/master.m3u8";
    let r = rw(body, origin, &proxy_all()).unwrap();
    let expected = "\
#EXTM3U
#EXT-X-VERSION:7
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-SESSION-DATA:DATA-ID=\"com.example.title\",URI=\"https://cdn.example.com/vod/title.json\"
#EXT-X-SESSION-DATA:DATA-ID=\"com.example.lang\",VALUE=\"en\"
#EXT-X-SESSION-KEY:METHOD=AES-128,URI=\"https://cdn.example.com/vod/keys/k1.bin?id=1\"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"English, main\",DEFAULT=YES,URI=\"audio/en.m3u8\"
#EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,GROUP-ID=\"cc\",NAME=\"CC1\",INSTREAM-ID=\"CC1\"
#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"sub\",NAME=\"de\",URI=\"/https/subs.example/de.m3u8\"
#EXT-X-STREAM-INF:BANDWIDTH=1280000,CODECS=\"avc1.64001f,mp4a.40.2\",AUDIO=\"aud\",PATHWAY-ID=\"CDN-A\"
# a comment between the tag and its URI
v720/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=640000
/https/cdn.example.com/root/v360.m3u8?x=1
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=86000,URI=\"iframe/index.m3u8\"
#EXT-X-IMAGE-STREAM-INF:BANDWIDTH=1,URI=\"https://cdn.example.com/vod/img/index.m3u8\"
#EXT-VENDOR-THING:ID=7
";
    assert_eq!(text(&r), expected);

    let PlaylistInfo::Multivariant(mv) = &r.info else {
        panic!("multivariant expected")
    };
    let kinds: Vec<_> = mv
        .playlists
        .iter()
        .map(|p| (&p.kind, p.url.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            (
                &PlaylistKind::Rendition {
                    media_type: "AUDIO".into(),
                    group_id: "aud".into(),
                    name: "English, main".into()
                },
                "https://cdn.example.com/vod/audio/en.m3u8"
            ),
            (
                &PlaylistKind::Rendition {
                    media_type: "SUBTITLES".into(),
                    group_id: "sub".into(),
                    name: "de".into()
                },
                "https://subs.example/de.m3u8"
            ),
            (
                &PlaylistKind::Variant {
                    bandwidth: Some(1_280_000)
                },
                "https://cdn.example.com/vod/v720/index.m3u8"
            ),
            (
                &PlaylistKind::Variant {
                    bandwidth: Some(640_000)
                },
                "https://cdn.example.com/root/v360.m3u8?x=1"
            ),
            (
                &PlaylistKind::IFrame {
                    bandwidth: Some(86_000)
                },
                "https://cdn.example.com/vod/iframe/index.m3u8"
            ),
        ]
    );
    assert_eq!(
        mv.content_steering.as_ref().map(Url::as_str),
        Some("https://cdn.example.com/vod/steer.json")
    );
}

#[test]
fn content_steering_kept_on_request() {
    let body = "#EXTM3U\n#EXT-X-CONTENT-STEERING:SERVER-URI=\"/steer?x=1\"\n#EXT-X-STREAM-INF:BANDWIDTH=1\na.m3u8\n";
    let o = url("https://cdn.example.com/vod/master.m3u8");
    let opts = RewriteOptions {
        strip_content_steering: false,
        ..RewriteOptions::default()
    };
    let r = rw_opts(body, &o, &opts, &proxy_all()).unwrap();
    assert_eq!(
        text(&r),
        "#EXTM3U\n#EXT-X-CONTENT-STEERING:SERVER-URI=\"https://cdn.example.com/steer?x=1\"\n#EXT-X-STREAM-INF:BANDWIDTH=1\na.m3u8\n"
    );
    // A mapper that proxies steering gets the Steering kind.
    let steer =
        |u: &Url, k: UriKind| (k == UriKind::Steering).then(|| format!("/steer{}", u.path()));
    let r = rw_opts(body, &o, &opts, &steer).unwrap();
    assert!(text(&r).contains("SERVER-URI=\"/steer/steer\""));
}

#[test]
fn media_every_uri_bearing_place() {
    let body = "\
#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:4
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.0,CAN-SKIP-UNTIL=24.0
#EXT-X-PART-INF:PART-TARGET=1.0
#EXT-X-MEDIA-SEQUENCE:100
#EXT-X-MAP:URI=\"init.mp4\",BYTERANGE=\"720@0\"
#EXT-X-KEY:METHOD=SAMPLE-AES,URI=\"skd://key-id-1\",KEYFORMAT=\"com.apple.streamingkeydelivery\",KEYFORMATVERSIONS=\"1\"
#EXT-X-KEY:METHOD=SAMPLE-AES,URI=\"data:text/plain;base64,AAAAPnBzc2g=\",KEYFORMAT=\"urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed\"
#EXT-X-DATERANGE:ID=\"ad1\",CLASS=\"com.apple.hls.interstitial\",START-DATE=\"2024-01-01T00:00:00Z\",X-ASSET-URI=\"ads/a.m3u8\",X-ASSET-LIST=\"/list.json?a=1,2\"
#EXTINF:4.0,
#EXT-X-PROGRAM-DATE-TIME:2024-01-01T00:00:00.000Z
seg100.m4s
#EXT-X-PART:DURATION=1.0,URI=\"part101.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=1.0,URI=\"../other/part101.1.m4s\"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part101.2.m4s\"
#EXT-X-PRELOAD-HINT:TYPE=MAP,URI=\"/init2.mp4\",BYTERANGE-START=0,BYTERANGE-LENGTH=100
#EXT-X-RENDITION-REPORT:URI=\"../720p/index.m3u8\",LAST-MSN=100,LAST-PART=1
#EXT-X-RENDITION-REPORT:URI=\"/abs/480p.m3u8\",LAST-MSN=100,LAST-PART=1
";
    let origin = "https://cdn.example.com/live/1080p/index.m3u8";
    let r = rw(body, origin, &proxy_all()).unwrap();
    let expected = body
        .replace(
            "\"ads/a.m3u8\"",
            "\"https://cdn.example.com/live/1080p/ads/a.m3u8\"",
        )
        .replace(
            "\"/list.json?a=1,2\"",
            "\"https://cdn.example.com/list.json?a=1,2\"",
        )
        .replace("\"/init2.mp4\"", "\"/https/cdn.example.com/init2.mp4\"")
        .replace(
            "\"/abs/480p.m3u8\"",
            "\"/https/cdn.example.com/abs/480p.m3u8\"",
        );
    assert_eq!(text(&r), expected);
    same_outside_uris(body, text(&r)).unwrap();

    let m = media(&r.info);
    assert_eq!(m.media_sequence, 100);
    assert_eq!(m.segments.len(), 1);
    let seg = &m.segments[0];
    assert_eq!(seg.seq, 100);
    assert!(seg.encrypted);
    let map = seg.map.as_ref().unwrap();
    assert_eq!(
        map.url.as_str(),
        "https://cdn.example.com/live/1080p/init.mp4"
    );
    assert_eq!(
        map.byterange,
        Some(ByteRange {
            offset: 0,
            length: 720
        })
    );
    assert_eq!(map.digest_key(), "init.mp4@0-720");
    // Trailing parts belong to the segment in progress (101).
    let parts: Vec<_> = m
        .parts
        .iter()
        .map(|p| (p.seq, p.index, p.url.as_str(), p.independent))
        .collect();
    assert_eq!(
        parts,
        [
            (
                101,
                0,
                "https://cdn.example.com/live/1080p/part101.0.m4s",
                true
            ),
            (
                101,
                1,
                "https://cdn.example.com/live/other/part101.1.m4s",
                false
            ),
        ]
    );
    assert_eq!(m.preload_hints.len(), 2);
    assert_eq!(m.preload_hints[0].hint_type, HintType::Part);
    assert_eq!(m.preload_hints[0].length, None);
    assert_eq!(m.preload_hints[1].hint_type, HintType::Map);
    assert_eq!(m.preload_hints[1].length, Some(100));
    assert_eq!(
        m.rendition_reports[0].url.as_str(),
        "https://cdn.example.com/live/720p/index.m3u8"
    );
    assert_eq!(m.rendition_reports[0].last_msn, Some(100));
    assert_eq!(m.rendition_reports[0].last_part, Some(1));
    assert_eq!(m.part_target, Some(1.0));
    assert!(m.server_control.can_block_reload);
    assert_eq!(m.server_control.part_hold_back, Some(1.0));
    assert_eq!(m.server_control.can_skip_until, Some(24.0));
    assert!(m.is_live());
    assert!(m.is_low_latency());
}

/// The kinds the mapper sees, in order.
#[test]
fn mapper_sees_each_kind() {
    use std::cell::RefCell;
    let seen = RefCell::new(Vec::new());
    let spy = |u: &Url, k: UriKind| -> Option<String> {
        seen.borrow_mut().push((k, u.path().to_owned()));
        None
    };
    let body = "\
#EXTM3U
#EXT-X-TARGETDURATION:4
#EXT-X-MAP:URI=\"i.mp4\"
#EXT-X-KEY:METHOD=AES-128,URI=\"k\"
#EXT-X-KEY:METHOD=NONE
#EXT-X-DATERANGE:ID=\"x\",X-ASSET-URI=\"a.m3u8\"
#EXTINF:4,
s.ts
#EXT-X-PART:DURATION=1,URI=\"p.m4s\"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"h.m4s\"
#EXT-X-PRELOAD-HINT:TYPE=MAP,URI=\"hm.mp4\"
#EXT-X-RENDITION-REPORT:URI=\"r.m3u8\"
#EXT-UNKNOWN:URI=\"u\"
";
    rw(body, "https://o.example/index.m3u8", &spy).unwrap();
    let seen = seen.into_inner();
    assert_eq!(
        seen,
        [
            (UriKind::InitSegment, "/i.mp4".to_owned()),
            (UriKind::Key, "/k".to_owned()),
            (UriKind::Other, "/a.m3u8".to_owned()),
            (UriKind::Segment, "/s.ts".to_owned()),
            (UriKind::Part, "/p.m4s".to_owned()),
            (UriKind::Part, "/h.m4s".to_owned()),
            (UriKind::InitSegment, "/hm.mp4".to_owned()),
            (UriKind::Playlist, "/r.m3u8".to_owned()),
            (UriKind::Other, "/u".to_owned()),
        ]
    );
}

#[test]
fn keys_default_absolute_and_other_schemes_untouched() {
    let body = "\
#EXTM3U
#EXT-X-TARGETDURATION:4
#EXT-X-KEY:METHOD=AES-128,URI=\"key.php?r=52&sig=a%2Fb\",IV=0x000000000000000000000000000000FF
#EXTINF:4,
a.ts
#EXT-X-KEY:METHOD=NONE
#EXTINF:4,
b.ts
#EXT-X-KEY:METHOD=SAMPLE-AES,URI=\"skd://k2\",KEYFORMAT=\"com.apple.streamingkeydelivery\"
#EXT-X-KEY:METHOD=AES-128,URI=\"https://keys.example/k3\"
#EXTINF:4,
c.ts
#EXT-X-KEY:METHOD=AES-128,URI=\"//keys.example/k4\"
#EXT-X-KEY:METHOD=NONE
#EXTINF:4,
d.ts
";
    let r = rw(body, "https://cdn.example.com/v/index.m3u8", &proxy_all()).unwrap();
    let expected = body
        .replace(
            "\"key.php?r=52&sig=a%2Fb\"",
            "\"https://cdn.example.com/v/key.php?r=52&sig=a%2Fb\"",
        )
        .replace("\"//keys.example/k4\"", "\"https://keys.example/k4\"");
    assert_eq!(text(&r), expected);
    let enc: Vec<_> = media(&r.info)
        .segments
        .iter()
        .map(|s| s.encrypted)
        .collect();
    // d.ts: METHOD=NONE for the identity format, but the FairPlay key still applies.
    assert_eq!(enc, [true, false, true, true]);
}

#[test]
fn session_key_and_key_map_identically() {
    let key = "https://cdn.example.com/keys/k1.bin?id=1";
    let mv_origin = url("https://cdn.example.com/vod/master.m3u8");
    let media_origin = url("https://cdn.example.com/vod/720p/index.m3u8");
    let mv = "#EXTM3U\n#EXT-X-SESSION-KEY:METHOD=AES-128,URI=\"../keys/k1.bin?id=1\"\n#EXT-X-STREAM-INF:BANDWIDTH=1\n720p/index.m3u8\n";
    let md = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-KEY:METHOD=AES-128,URI=\"../../keys/k1.bin?id=1\"\n#EXTINF:2,\ns.ts\n";
    let key_line = |b: &[u8]| {
        let t = std::str::from_utf8(b).unwrap().to_owned();
        let start = t.find("URI=\"").unwrap() + 5;
        let end = start + t[start..].find('"').unwrap();
        t[start..end].to_owned()
    };
    let allow: fn(&Url) -> bool = |_| true;
    for mapper in [
        MirrorMapper::new(allow),
        MirrorMapper::new(allow).proxy_keys(true),
    ] {
        let opts = RewriteOptions::default();
        let vars = Variables::new();
        let (l1, l2) = (local_for(&mv_origin), local_for(&media_origin));
        let a = rewrite(mv.as_bytes(), &mv_origin, &l1, &vars, &opts, &mapper).unwrap();
        let b = rewrite(md.as_bytes(), &media_origin, &l2, &vars, &opts, &mapper).unwrap();
        let (ka, kb) = (key_line(&a.body), key_line(&b.body));
        // Both resolve, from their playlists, to the same URL, and that URL leads to the key.
        let (ra, rb) = (l1.join(&ka).unwrap(), l2.join(&kb).unwrap());
        assert_eq!(ra, rb);
        assert_eq!(player_reaches(&l1, &ka).as_str(), key);
    }
}

#[test]
fn define_all_three_forms() {
    let mut imports = Variables::new();
    imports.insert("cdn", "https://cdn2.example.org/base");
    let origin = url("https://cdn.example.com/live/index.m3u8?auth=s%3Dx%26y&other=1");
    let body = "\
#EXTM3U
#EXT-X-VERSION:11
#EXT-X-DEFINE:NAME=\"seg-dir\",VALUE=\"chunks\"
#EXT-X-DEFINE:IMPORT=\"cdn\"
#EXT-X-DEFINE:QUERYPARAM=\"auth\"
#EXT-X-TARGETDURATION:4
#EXT-X-MAP:URI=\"{$seg-dir}/init.mp4\"
#EXTINF:4,
{$seg-dir}/s1.m4s?auth={$auth}
#EXTINF:4,
{$cdn}/s2.m4s
#EXTINF:4,
s3.m4s
";
    let local = local_for(&origin);
    let r = rewrite(
        body.as_bytes(),
        &origin,
        &local,
        &imports,
        &RewriteOptions::default(),
        &proxy_all(),
    )
    .unwrap();
    let m = media(&r.info);
    // `uri` is as written; `url` has the variables substituted. QUERYPARAM values are
    // percent-decoded, as URLSearchParams does in hls.js.
    assert_eq!(m.segments[0].uri, "{$seg-dir}/s1.m4s?auth={$auth}");
    assert_eq!(
        m.segments[0].url.as_str(),
        "https://cdn.example.com/live/chunks/s1.m4s?auth=s=x&y"
    );
    assert_eq!(
        m.segments[1].url.as_str(),
        "https://cdn2.example.org/base/s2.m4s"
    );
    assert_eq!(
        m.segments[0].map.as_ref().unwrap().url.as_str(),
        "https://cdn.example.com/live/chunks/init.mp4"
    );
    // Substituted URIs are written in full (the player then has nothing to substitute);
    // the definitions stay in place.
    let expected = body
        .replace(
            "\"{$seg-dir}/init.mp4\"",
            "\"/https/cdn.example.com/live/chunks/init.mp4\"",
        )
        .replace(
            "{$seg-dir}/s1.m4s?auth={$auth}",
            "/https/cdn.example.com/live/chunks/s1.m4s?auth=s=x&y",
        )
        .replace("{$cdn}/s2.m4s", "/https/cdn2.example.org/base/s2.m4s");
    assert_eq!(text(&r), expected);
}

#[test]
fn multivariant_defines_are_exported_for_import() {
    let origin = url("https://cdn.example.com/m.m3u8?tok=T1");
    let body = "#EXTM3U\n#EXT-X-DEFINE:NAME=\"a\",VALUE=\"1\"\n#EXT-X-DEFINE:QUERYPARAM=\"tok\"\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8?t={$tok}\n";
    let info = parse(
        body.as_bytes(),
        &origin,
        &Variables::new(),
        &Limits::default(),
    )
    .unwrap();
    let mv = info.as_multivariant().unwrap();
    assert_eq!(mv.defines.get("a"), Some("1"));
    assert_eq!(mv.defines.get("tok"), Some("T1"));
    assert_eq!(
        mv.playlists[0].url.as_str(),
        "https://cdn.example.com/v.m3u8?t=T1"
    );
    assert_eq!(mv.playlists[0].uri, "v.m3u8?t={$tok}");
    assert!(info.as_media().is_none());
}

#[test]
fn bom_crlf_and_missing_final_newline_kept() {
    let body = "\u{feff}#EXTM3U\r\n#EXT-X-TARGETDURATION:4\r\n\r\n#EXTINF:4,\r\n/a/seg1.ts\r\n#EXTINF:4,\nseg2.ts\n#EXT-X-FOO\r\n#EXTINF:4,\r\n/a/seg3.ts";
    let r = rw(body, ORIGIN, &proxy_all()).unwrap();
    let expected = body
        .replace("/a/seg1.ts", "/https/cdn.example.com/a/seg1.ts")
        .replace("/a/seg3.ts", "/https/cdn.example.com/a/seg3.ts");
    assert_eq!(text(&r), expected);
    assert!(r.body.starts_with(b"\xEF\xBB\xBF#EXTM3U\r\n"));
    assert!(!r.body.ends_with(b"\n"));
    assert_eq!(media(&r.info).segments.len(), 3);
}

#[test]
fn whitespace_around_uri_lines_kept() {
    let body =
        "#EXTM3U\n#EXT-X-TARGETDURATION:4\n   \n#EXTINF:4,\n  /x.ts \t\n#EXTINF:4,\n\tseg.ts \n";
    let r = rw(body, ORIGIN, &proxy_all()).unwrap();
    assert_eq!(
        text(&r),
        "#EXTM3U\n#EXT-X-TARGETDURATION:4\n   \n#EXTINF:4,\n  /https/cdn.example.com/x.ts \t\n#EXTINF:4,\n\tseg.ts \n"
    );
    assert_eq!(media(&r.info).segments[1].uri, "seg.ts");
}

#[test]
fn unchanged_playlist_is_byte_identical_and_media_sequence_untouched() {
    let body = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:6\n#EXT-X-MEDIA-SEQUENCE:0000123\n#EXT-X-DISCONTINUITY-SEQUENCE:4\n# comment\n#EXT-X-CUE-OUT:30\n#EXT-OATCLS-SCTE35:/DAlAAAAAAAAAP/wFAUAAAABf+/+\n#EXTINF:6.000,title, with comma\nseg_123.ts\n#EXT-X-DISCONTINUITY\n#EXT-X-GAP\n#EXTINF:6.000,\nseg_124.ts\n#EXT-X-ENDLIST\n";
    let r = rw(body, ORIGIN, &proxy_all()).unwrap();
    assert_eq!(r.body, body.as_bytes());
    let m = media(&r.info);
    assert_eq!(m.media_sequence, 123);
    assert_eq!(m.discontinuity_sequence, 4);
    assert_eq!(m.target_duration, 6);
    assert!(m.endlist);
    assert!(!m.is_live());
    assert!(!m.is_low_latency());
    let s: Vec<_> = m
        .segments
        .iter()
        .map(|s| (s.seq, s.discontinuity, s.gap, s.duration))
        .collect();
    assert_eq!(s, [(123, false, false, 6.0), (124, true, true, 6.0)]);
}

#[test]
fn segment_tags_in_any_order_before_the_uri() {
    let body = "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-PROGRAM-DATE-TIME:2024-01-01T00:00:00Z\n#EXT-X-BYTERANGE:100@0\n#EXT-X-DISCONTINUITY\n#EXTINF:4,\n#EXT-X-BITRATE:800\n/m.ts\n";
    let r = rw(body, ORIGIN, &proxy_all()).unwrap();
    let s = &media(&r.info).segments[0];
    assert!(s.discontinuity);
    assert_eq!(
        s.byterange,
        Some(ByteRange {
            offset: 0,
            length: 100
        })
    );
    assert_eq!(s.digest_key(), "/m.ts@0-100");
    assert!(text(&r).ends_with("#EXT-X-BITRATE:800\n/https/cdn.example.com/m.ts\n"));
}

#[test]
fn byte_ranges_with_implicit_offsets() {
    let body = "\
#EXTM3U
#EXT-X-TARGETDURATION:10
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-MAP:URI=\"main.mp4\",BYTERANGE=\"720@0\"
#EXTINF:10,
#EXT-X-BYTERANGE:1000@720
main.mp4
#EXTINF:10,
#EXT-X-BYTERANGE:2000
main.mp4
#EXTINF:10,
#EXT-X-BYTERANGE:500
main.mp4
#EXTINF:10,
#EXT-X-BYTERANGE:300@0
other.mp4
#EXTINF:10,
#EXT-X-BYTERANGE:10
other.mp4
#EXT-X-ENDLIST
";
    let r = rw(body, ORIGIN, &proxy_all()).unwrap();
    assert_eq!(r.body, body.as_bytes());
    let m = media(&r.info);
    assert_eq!(m.playlist_type, Some(PlaylistType::Vod));
    let ranges: Vec<_> = m
        .segments
        .iter()
        .map(|s| s.byterange.unwrap())
        .map(|b| (b.offset, b.length))
        .collect();
    assert_eq!(
        ranges,
        [(720, 1000), (1720, 2000), (3720, 500), (0, 300), (300, 10)]
    );
    let keys: Vec<_> = m.segments.iter().map(|s| s.digest_key()).collect();
    assert_eq!(keys[1], "main.mp4@1720-2000");
    // All segments share one init section.
    assert!(Arc::ptr_eq(
        m.segments[0].map.as_ref().unwrap(),
        m.segments[4].map.as_ref().unwrap()
    ));
}

#[test]
fn implicit_offset_errors() {
    let first = "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n#EXT-X-BYTERANGE:100\na.ts\n";
    let other = "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n#EXT-X-BYTERANGE:100@0\na.ts\n#EXTINF:10,\n#EXT-X-BYTERANGE:100\nb.ts\n";
    let whole = "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\na.ts\n#EXTINF:10,\n#EXT-X-BYTERANGE:100\na.ts\n";
    for (body, line) in [(first, 4), (other, 7), (whole, 6)] {
        assert_eq!(
            rw(body, ORIGIN, &proxy_all()).unwrap_err(),
            PlaylistError::ImplicitByteRangeOffset {
                line,
                unit: "segment"
            },
            "{body}"
        );
    }
    let part =
        "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXT-X-PART:DURATION=1,URI=\"p.mp4\",BYTERANGE=100\n";
    assert_eq!(
        rw(part, ORIGIN, &proxy_all()).unwrap_err(),
        PlaylistError::ImplicitByteRangeOffset {
            line: 3,
            unit: "part"
        }
    );
    let overflow = "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n#EXT-X-BYTERANGE:2@18446744073709551615\na.ts\n";
    assert_eq!(
        rw(overflow, ORIGIN, &proxy_all()).unwrap_err(),
        PlaylistError::ByteRangeOverflow { line: 4 }
    );
    let map_overflow = "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXT-X-MAP:URI=\"i\",BYTERANGE=\"2@18446744073709551615\"\n";
    assert_eq!(
        rw(map_overflow, ORIGIN, &proxy_all()).unwrap_err(),
        PlaylistError::ByteRangeOverflow { line: 3 }
    );
    let part_overflow = "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXT-X-PART:DURATION=1,URI=\"p\",BYTERANGE=2@18446744073709551615\n";
    assert_eq!(
        rw(part_overflow, ORIGIN, &proxy_all()).unwrap_err(),
        PlaylistError::ByteRangeOverflow { line: 3 }
    );
}

#[test]
fn part_byte_ranges_with_implicit_offsets() {
    let body = "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-PART-INF:PART-TARGET=1\n#EXT-X-PART:DURATION=1,URI=\"s.mp4\",BYTERANGE=100@0\n#EXT-X-PART:DURATION=1,URI=\"s.mp4\",BYTERANGE=50\n#EXTINF:2,\ns.mp4\n#EXT-X-PART:DURATION=1,URI=\"t.mp4\",BYTERANGE=70@0,GAP=YES\n";
    let r = rw(body, ORIGIN, &proxy_all()).unwrap();
    let m = media(&r.info);
    let parts: Vec<_> = m
        .parts
        .iter()
        .map(|p| {
            (
                p.seq,
                p.index,
                p.byterange.unwrap().offset,
                p.byterange.unwrap().length,
                p.gap,
            )
        })
        .collect();
    assert_eq!(
        parts,
        [
            (0, 0, 0, 100, false),
            (0, 1, 100, 50, false),
            (1, 0, 0, 70, true)
        ]
    );
}

#[test]
fn delta_update_numbering() {
    let body = "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=24,CAN-SKIP-DATERANGES=YES\n#EXT-X-MEDIA-SEQUENCE:266\n#EXT-X-SKIP:SKIPPED-SEGMENTS=3,RECENTLY-REMOVED-DATERANGES=\"a\tb\"\n#EXTINF:4,\nfileSequence269.mp4\n#EXTINF:4,\nfileSequence270.mp4\n#EXT-X-PART:DURATION=1,URI=\"filePart271.0.mp4\"\n";
    let r = rw(body, ORIGIN, &proxy_all()).unwrap();
    assert_eq!(r.body, body.as_bytes());
    let m = media(&r.info);
    assert_eq!(m.media_sequence, 266);
    assert_eq!(m.skipped_segments, 3);
    assert!(m.server_control.can_skip_dateranges);
    let seqs: Vec<_> = m.segments.iter().map(|s| s.seq).collect();
    assert_eq!(seqs, [269, 270]);
    assert_eq!(m.parts[0].seq, 271);
}

const LL: &str = "\
#EXTM3U
#EXT-X-TARGETDURATION:4
#EXT-X-VERSION:6
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-DATERANGES=YES,PART-HOLD-BACK=1.0,CAN-SKIP-UNTIL=12.0,HOLD-BACK=12.0
#EXT-X-PART-INF:PART-TARGET=0.33334
#EXT-X-MEDIA-SEQUENCE:266
#EXT-X-MAP:URI=\"init.mp4\"
#EXTINF:4.00008,
fileSequence266.mp4
#EXT-X-PART:DURATION=0.33334,URI=\"filePart267.0.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart267.1.mp4\",INDEPENDENT=YES
#EXTINF:4.00008,
fileSequence267.mp4
#EXT-X-PART:DURATION=0.33334,URI=\"filePart268.0.mp4\"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"filePart268.1.mp4\"
#EXT-X-RENDITION-REPORT:URI=\"../1M/waitForMSN.php\",LAST-MSN=267,LAST-PART=0
#EXT-X-RENDITION-REPORT:URI=\"../4M/waitForMSN.php\",LAST-MSN=267,LAST-PART=0";

#[test]
fn low_latency_passthrough_keeps_trailing_lines() {
    let origin = "https://example.com/2M/waitForMSN.php?_HLS_msn=267";
    let r = rw(LL, origin, &proxy_all()).unwrap();
    assert_eq!(r.body, LL.as_bytes());
    let m = media(&r.info);
    assert_eq!(m.parts.len(), 3);
    assert_eq!((m.parts[2].seq, m.parts[2].index), (268, 0));
    assert_eq!(
        m.preload_hints[0].url.as_str(),
        "https://example.com/2M/filePart268.1.mp4"
    );
    assert_eq!(m.rendition_reports.len(), 2);
    assert_eq!(
        m.rendition_reports[1].url.as_str(),
        "https://example.com/4M/waitForMSN.php"
    );
}

#[test]
fn low_latency_degrade_mode() {
    let o = url("https://example.com/2M/index.m3u8");
    let opts = RewriteOptions {
        degrade_low_latency: true,
        ..RewriteOptions::default()
    };
    let r = rw_opts(LL, &o, &opts, &proxy_all()).unwrap();
    let expected = "\
#EXTM3U
#EXT-X-TARGETDURATION:4
#EXT-X-VERSION:6
#EXT-X-SERVER-CONTROL:HOLD-BACK=12.0
#EXT-X-MEDIA-SEQUENCE:266
#EXT-X-MAP:URI=\"init.mp4\"
#EXTINF:4.00008,
fileSequence266.mp4
#EXTINF:4.00008,
fileSequence267.mp4
";
    assert_eq!(text(&r), expected);
    // The information still describes the origin playlist.
    let m = media(&r.info);
    assert_eq!(m.parts.len(), 3);
    assert_eq!(m.rendition_reports.len(), 2);
    assert!(m.server_control.can_block_reload);

    // A SERVER-CONTROL with only low-latency attributes goes entirely.
    let body = "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1\n#EXTINF:4,\na.ts\n";
    let r = rw_opts(body, &o, &opts, &proxy_all()).unwrap();
    assert_eq!(
        text(&r),
        "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\na.ts\n"
    );
    // One without low-latency attributes stays as it is.
    let body = "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-SERVER-CONTROL:HOLD-BACK=12 , X-FOO=1\n";
    let r = rw_opts(body, &o, &opts, &proxy_all()).unwrap();
    assert_eq!(r.body, body.as_bytes());
}

#[test]
fn unknown_tags_pass_through_or_get_absolute_uris() {
    let body = "\
#EXTM3U
#EXT-X-TARGETDURATION:4
#EXT-X-TWITCH-INFO:NODE=\"video-edge\",MANIFEST-NODE-TYPE=\"weaver_cluster\"
#EXT-X-FOO:URI=\"rel/thing.json\",B=\"a,b\"
#EXT-X-BAR:URI=unquoted/x
#EXT-X-BAZ:URI=\"broken
#EXT-X-PREFETCH:seg9.ts
#EXTINF:4,
a.ts
";
    let r = rw(body, ORIGIN, &proxy_all()).unwrap();
    let expected = body.replace(
        "\"rel/thing.json\"",
        "\"https://cdn.example.com/live/stream/rel/thing.json\"",
    );
    assert_eq!(text(&r), expected);
}

#[test]
fn parse_matches_rewrite_info() {
    let o = url(ORIGIN);
    let info = parse(LL.as_bytes(), &o, &Variables::new(), &Limits::default()).unwrap();
    let r = rw(LL, ORIGIN, &proxy_all()).unwrap();
    assert_eq!(info, r.info);
}

fn err(body: &str) -> PlaylistError {
    rw(body, ORIGIN, &proxy_all()).unwrap_err()
}

fn err_parse(body: &[u8], limits: &Limits) -> PlaylistError {
    parse(body, &url(ORIGIN), &Variables::new(), limits).unwrap_err()
}

#[test]
fn size_errors() {
    let body = media_body("a.ts");
    let small = Limits {
        max_bytes: 10,
        ..Limits::default()
    };
    assert_eq!(
        err_parse(body.as_bytes(), &small),
        PlaylistError::TooLarge {
            size: body.len(),
            limit: 10
        }
    );
    let few = Limits {
        max_lines: 3,
        ..Limits::default()
    };
    assert_eq!(
        err_parse(body.as_bytes(), &few),
        PlaylistError::TooManyLines { limit: 3 }
    );
    let ok = Limits {
        max_lines: 4,
        max_bytes: body.len(),
    };
    assert!(parse(body.as_bytes(), &url(ORIGIN), &Variables::new(), &ok).is_ok());
}

#[test]
fn header_and_encoding_errors() {
    let l = Limits::default();
    assert_eq!(
        err_parse(b"#EXTM3U\n#EXTINF:1,\n\xff.ts\n", &l),
        PlaylistError::NotUtf8 { offset: 19 }
    );
    for body in [
        "",
        "\n#EXTM3U\n",
        "# comment\n#EXTM3U\n",
        "#EXT-X-VERSION:3\n",
        "#EXTM3U8\n",
        "\u{feff}\u{feff}#EXTM3U\n",
    ] {
        assert_eq!(
            err_parse(body.as_bytes(), &l),
            PlaylistError::MissingHeader,
            "{body:?}"
        );
    }
    // Accepted header forms.
    for body in ["#EXTM3U", "#EXTM3U \r\n", "\u{feff}#EXTM3U\n"] {
        let b = format!("{body}\n#EXT-X-TARGETDURATION:1\n");
        assert!(
            parse(b.as_bytes(), &url(ORIGIN), &Variables::new(), &l).is_ok(),
            "{body:?}"
        );
    }
}

#[test]
fn structure_errors() {
    assert_eq!(
        err("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n"),
        PlaylistError::StreamInfWithoutUri { line: 2 }
    );
    assert_eq!(
        err("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n#EXT-X-STREAM-INF:BANDWIDTH=2\nb.m3u8\n"),
        PlaylistError::StreamInfWithoutUri { line: 2 }
    );
    assert_eq!(
        err("#EXTM3U\n#EXT-X-TARGETDURATION:4\na.ts\n"),
        PlaylistError::SegmentWithoutExtinf { line: 3 }
    );
    assert_eq!(
        err("#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\na.ts\nb.ts\n"),
        PlaylistError::SegmentWithoutExtinf { line: 5 }
    );
    assert_eq!(
        err("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\na.m3u8\n#EXTINF:4,\nb.ts\n"),
        PlaylistError::MixedPlaylist { line: 4 }
    );
    assert_eq!(
        err(
            "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\nb.ts\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"a\"\n"
        ),
        PlaylistError::MixedPlaylist { line: 5 }
    );
    assert_eq!(
        err("#EXTM3U\n#EXTINF:4,\na.ts\n"),
        PlaylistError::MissingTargetDuration
    );
    assert_eq!(err("#EXTM3U\n"), PlaylistError::MissingTargetDuration);
    assert_eq!(
        err("#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:1\n#EXT-X-MEDIA-SEQUENCE:2\n"),
        PlaylistError::DuplicateTag {
            line: 4,
            tag: "EXT-X-MEDIA-SEQUENCE"
        }
    );
    assert_eq!(
        err(
            "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-SKIP:SKIPPED-SEGMENTS=1\n#EXT-X-SKIP:SKIPPED-SEGMENTS=1\n"
        ),
        PlaylistError::DuplicateTag {
            line: 4,
            tag: "EXT-X-SKIP"
        }
    );
    for tag in [
        "EXT-X-MEDIA-SEQUENCE:1",
        "EXT-X-DISCONTINUITY-SEQUENCE:1",
        "EXT-X-SKIP:SKIPPED-SEGMENTS=1",
    ] {
        let body = format!("#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\na.ts\n#{tag}\n");
        let name = tag.split(':').next().unwrap();
        assert!(
            matches!(err(&body), PlaylistError::TagAfterFirstSegment { line: 5, tag } if tag == name),
            "{tag}"
        );
    }
    // Media-only tags in a multivariant playlist are ignored, even malformed.
    let mv = "#EXTM3U\n#EXT-X-TARGETDURATION:\n#EXT-X-TARGETDURATION:x\n#EXT-X-STREAM-INF:BANDWIDTH=1\na.m3u8\n";
    assert!(rw(mv, ORIGIN, &proxy_all()).is_ok());
}

#[test]
fn value_errors() {
    let cases = [
        ("#EXT-X-TARGETDURATION:NaN", "EXT-X-TARGETDURATION"),
        ("#EXT-X-TARGETDURATION:-10", "EXT-X-TARGETDURATION"),
        (
            "#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:gobble",
            "EXT-X-MEDIA-SEQUENCE",
        ),
        (
            "#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:-11",
            "EXT-X-MEDIA-SEQUENCE",
        ),
        (
            "#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:",
            "EXT-X-MEDIA-SEQUENCE",
        ),
        (
            "#EXT-X-TARGETDURATION:4\n#EXT-X-DISCONTINUITY-SEQUENCE:x",
            "EXT-X-DISCONTINUITY-SEQUENCE",
        ),
        (
            "#EXT-X-TARGETDURATION:4\n#EXT-X-PLAYLIST-TYPE:LIVE",
            "EXT-X-PLAYLIST-TYPE",
        ),
        ("#EXT-X-TARGETDURATION:4\n#EXTINF:abc,", "EXTINF duration"),
        ("#EXT-X-TARGETDURATION:4\n#EXTINF:,", "EXTINF duration"),
        ("#EXT-X-TARGETDURATION:4\n#EXTINF:-1,", "EXTINF duration"),
        (
            "#EXT-X-TARGETDURATION:4\n#EXT-X-BYTERANGE:587500@",
            "EXT-X-BYTERANGE",
        ),
        (
            "#EXT-X-TARGETDURATION:4\n#EXT-X-MAP:URI=\"i\",BYTERANGE=\"x\"",
            "EXT-X-MAP BYTERANGE",
        ),
        (
            "#EXT-X-TARGETDURATION:4\n#EXT-X-PART:URI=\"p\",DURATION=x",
            "EXT-X-PART DURATION",
        ),
        (
            "#EXT-X-TARGETDURATION:4\n#EXT-X-PART:URI=\"p\",DURATION=1,BYTERANGE=a@b",
            "EXT-X-PART BYTERANGE",
        ),
        (
            "#EXT-X-TARGETDURATION:4\n#EXT-X-PART-INF:PART-TARGET=fast",
            "EXT-X-PART-INF PART-TARGET",
        ),
        (
            "#EXT-X-TARGETDURATION:4\n#EXT-X-PRELOAD-HINT:TYPE=SEGMENT,URI=\"p\"",
            "EXT-X-PRELOAD-HINT TYPE",
        ),
        (
            "#EXT-X-TARGETDURATION:4\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p\",BYTERANGE-START=x",
            "EXT-X-PRELOAD-HINT BYTERANGE-START",
        ),
        (
            "#EXT-X-TARGETDURATION:4\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p\",BYTERANGE-LENGTH=-1",
            "EXT-X-PRELOAD-HINT BYTERANGE-LENGTH",
        ),
        (
            "#EXT-X-TARGETDURATION:4\n#EXT-X-RENDITION-REPORT:URI=\"r\",LAST-MSN=x",
            "EXT-X-RENDITION-REPORT LAST-MSN",
        ),
        (
            "#EXT-X-TARGETDURATION:4\n#EXT-X-RENDITION-REPORT:URI=\"r\",LAST-PART=x",
            "EXT-X-RENDITION-REPORT LAST-PART",
        ),
        (
            "#EXT-X-TARGETDURATION:4\n#EXT-X-SERVER-CONTROL:HOLD-BACK=soon",
            "EXT-X-SERVER-CONTROL HOLD-BACK",
        ),
        (
            "#EXT-X-TARGETDURATION:4\n#EXT-X-SERVER-CONTROL:PART-HOLD-BACK=x",
            "EXT-X-SERVER-CONTROL PART-HOLD-BACK",
        ),
        (
            "#EXT-X-TARGETDURATION:4\n#EXT-X-SERVER-CONTROL:CAN-SKIP-UNTIL=x",
            "EXT-X-SERVER-CONTROL CAN-SKIP-UNTIL",
        ),
        (
            "#EXT-X-TARGETDURATION:4\n#EXT-X-SKIP:SKIPPED-SEGMENTS=x",
            "EXT-X-SKIP SKIPPED-SEGMENTS",
        ),
        (
            "#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:18446744073709551615\n#EXTINF:1,\na\n#EXTINF:1,\nb",
            "EXT-X-MEDIA-SEQUENCE",
        ),
    ];
    for (lines, what) in cases {
        let body = format!("#EXTM3U\n{lines}\n");
        match err(&body) {
            PlaylistError::InvalidValue { what: w, .. } => assert_eq!(w, what, "{lines}"),
            other => panic!("{lines}: unexpected {other:?}"),
        }
    }
    // Tolerated: "10.0"-style target durations (rounded up), a missing EXTINF comma.
    let r = rw(
        "#EXTM3U\n#EXT-X-TARGETDURATION:9.5\n#EXTINF:4\na.ts\n",
        ORIGIN,
        &proxy_all(),
    )
    .unwrap();
    assert_eq!(media(&r.info).target_duration, 10);
}

#[test]
fn attribute_errors() {
    let cases = [
        (
            "#EXT-X-MAP:URI=\"init.mp4",
            "EXT-X-MAP",
            AttributeSyntax::UnterminatedQuote,
        ),
        (
            "#EXT-X-MAP:URI=init.mp4",
            "EXT-X-MAP",
            AttributeSyntax::UnquotedUri,
        ),
        (
            "#EXT-X-MAP:URI=\"a\",URI=\"b\"",
            "EXT-X-MAP",
            AttributeSyntax::DuplicateUri,
        ),
        (
            "#EXT-X-KEY:METHOD=AES-128,URI=\"k\"x",
            "EXT-X-KEY",
            AttributeSyntax::JunkAfterQuote,
        ),
        (
            "#EXT-X-PART:DURATION=1,URI",
            "EXT-X-PART",
            AttributeSyntax::MissingEquals,
        ),
        (
            "#EXT-X-PRELOAD-HINT:TYPE=PART,=\"x\"",
            "EXT-X-PRELOAD-HINT",
            AttributeSyntax::InvalidName,
        ),
        (
            "#EXT-X-RENDITION-REPORT:URI=a\"b\"",
            "EXT-X-RENDITION-REPORT",
            AttributeSyntax::QuoteInValue,
        ),
        (
            "#EXT-X-SERVER-CONTROL:HOLD-BACK",
            "EXT-X-SERVER-CONTROL",
            AttributeSyntax::MissingEquals,
        ),
        (
            "#EXT-X-DEFINE:NAME=\"a",
            "EXT-X-DEFINE",
            AttributeSyntax::UnterminatedQuote,
        ),
        (
            "#EXT-X-DATERANGE:ID=\"a\",X-ASSET-URI=x",
            "EXT-X-DATERANGE",
            AttributeSyntax::UnquotedUri,
        ),
        (
            "#EXT-X-DATERANGE:ID=\"a,X-ASSET-URI=\"x\"",
            "EXT-X-DATERANGE",
            AttributeSyntax::JunkAfterQuote,
        ),
    ];
    for (line, tag, reason) in cases {
        let body = format!("#EXTM3U\n#EXT-X-TARGETDURATION:4\n{line}\n");
        assert_eq!(
            err(&body),
            PlaylistError::BadAttributes {
                line: 3,
                tag,
                reason
            },
            "{line}"
        );
    }
    let mv_cases = [
        (
            "#EXT-X-STREAM-INF:BANDWIDTH=1,CODECS=\"avc1",
            "EXT-X-STREAM-INF",
        ),
        (
            "#EXT-X-I-FRAME-STREAM-INF:URI=\"a",
            "EXT-X-I-FRAME-STREAM-INF",
        ),
        ("#EXT-X-MEDIA:TYPE=AUDIO,URI=\"a", "EXT-X-MEDIA"),
        ("#EXT-X-SESSION-DATA:URI=\"a", "EXT-X-SESSION-DATA"),
        ("#EXT-X-SESSION-KEY:URI=\"a", "EXT-X-SESSION-KEY"),
        (
            "#EXT-X-CONTENT-STEERING:SERVER-URI=\"a",
            "EXT-X-CONTENT-STEERING",
        ),
    ];
    for (line, tag) in mv_cases {
        let body = format!("#EXTM3U\n{line}\n");
        assert_eq!(
            err(&body),
            PlaylistError::BadAttributes {
                line: 2,
                tag,
                reason: AttributeSyntax::UnterminatedQuote
            },
            "{line}"
        );
    }
}

#[test]
fn missing_attribute_errors() {
    let cases = [
        ("#EXT-X-MAP:BYTERANGE=\"1@0\"", "EXT-X-MAP", "URI"),
        ("#EXT-X-KEY:URI=\"k\"", "EXT-X-KEY", "METHOD"),
        ("#EXT-X-KEY:METHOD=AES-128", "EXT-X-KEY", "URI"),
        ("#EXT-X-PART:DURATION=1", "EXT-X-PART", "URI"),
        ("#EXT-X-PART:URI=\"p\"", "EXT-X-PART", "DURATION"),
        (
            "#EXT-X-PRELOAD-HINT:URI=\"p\"",
            "EXT-X-PRELOAD-HINT",
            "TYPE",
        ),
        ("#EXT-X-PRELOAD-HINT:TYPE=PART", "EXT-X-PRELOAD-HINT", "URI"),
        (
            "#EXT-X-RENDITION-REPORT:LAST-MSN=1",
            "EXT-X-RENDITION-REPORT",
            "URI",
        ),
        ("#EXT-X-PART-INF:X=1", "EXT-X-PART-INF", "PART-TARGET"),
        ("#EXT-X-SKIP:X=1", "EXT-X-SKIP", "SKIPPED-SEGMENTS"),
    ];
    for (line, tag, attribute) in cases {
        let body = format!("#EXTM3U\n#EXT-X-TARGETDURATION:4\n{line}\n");
        assert_eq!(
            err(&body),
            PlaylistError::MissingAttribute {
                line: 3,
                tag,
                attribute
            },
            "{line}"
        );
    }
    for (line, tag, attribute) in [
        (
            "#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=1",
            "EXT-X-I-FRAME-STREAM-INF",
            "URI",
        ),
        (
            "#EXT-X-SESSION-KEY:URI=\"k\"",
            "EXT-X-SESSION-KEY",
            "METHOD",
        ),
        (
            "#EXT-X-CONTENT-STEERING:PATHWAY-ID=\"a\"",
            "EXT-X-CONTENT-STEERING",
            "SERVER-URI",
        ),
    ] {
        let body = format!("#EXTM3U\n{line}\n");
        assert_eq!(
            err(&body),
            PlaylistError::MissingAttribute {
                line: 2,
                tag,
                attribute
            },
            "{line}"
        );
    }
}

#[test]
fn variable_errors() {
    let td = "#EXTM3U\n#EXT-X-TARGETDURATION:4\n";
    let cases: Vec<(String, PlaylistError)> = vec![
        (
            format!("{td}#EXTINF:4,\n{{$nope}}/a.ts\n"),
            PlaylistError::UndefinedVariable {
                line: 4,
                name: "nope".into(),
            },
        ),
        (
            // Defined after use.
            format!("{td}#EXT-X-MAP:URI=\"{{$a}}.mp4\"\n#EXT-X-DEFINE:NAME=\"a\",VALUE=\"x\"\n"),
            PlaylistError::UndefinedVariable {
                line: 3,
                name: "a".into(),
            },
        ),
        (
            format!(
                "{td}#EXT-X-DEFINE:NAME=\"a\",VALUE=\"1\"\n#EXT-X-DEFINE:NAME=\"a\",VALUE=\"2\"\n"
            ),
            PlaylistError::DuplicateVariable {
                line: 4,
                name: "a".into(),
            },
        ),
        (
            format!("{td}#EXT-X-DEFINE:IMPORT=\"base\"\n"),
            PlaylistError::MissingImport {
                line: 3,
                name: "base".into(),
            },
        ),
        (
            format!("{td}#EXT-X-DEFINE:QUERYPARAM=\"sig\"\n"),
            PlaylistError::MissingQueryParam {
                line: 3,
                name: "sig".into(),
            },
        ),
        (
            format!("{td}#EXT-X-DEFINE:NAME=\"a\"\n"),
            PlaylistError::BadDefine {
                line: 3,
                reason: "NAME without VALUE",
            },
        ),
        (
            format!("{td}#EXT-X-DEFINE:VALUE=\"a\"\n"),
            PlaylistError::BadDefine {
                line: 3,
                reason: "needs NAME and VALUE, IMPORT or QUERYPARAM",
            },
        ),
        (
            format!("{td}#EXT-X-DEFINE:NAME=\"a\",VALUE=\"1\",IMPORT=\"b\"\n"),
            PlaylistError::BadDefine {
                line: 3,
                reason: "NAME/VALUE, IMPORT and QUERYPARAM are exclusive",
            },
        ),
        (
            format!("{td}#EXT-X-DEFINE:NAME=\"a.b\",VALUE=\"1\"\n"),
            PlaylistError::BadDefine {
                line: 3,
                reason: "variable name is not [A-Za-z0-9_-]+",
            },
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(err(&body), expected, "{body}");
    }
}

#[test]
fn uri_errors() {
    let td = "#EXTM3U\n#EXT-X-TARGETDURATION:4\n";
    match err(&format!("{td}#EXTINF:4,\nhttp://[bad/x.ts\n")) {
        PlaylistError::InvalidUri { line: 4, uri, .. } => assert_eq!(uri, "http://[bad/x.ts"),
        other => panic!("unexpected {other:?}"),
    }
    match err(&format!("{td}#EXT-X-MAP:URI=\"\"\n")) {
        PlaylistError::InvalidUri {
            line: 3, reason, ..
        } => assert_eq!(reason, "empty URI"),
        other => panic!("unexpected {other:?}"),
    }
    // A segment with a non-HTTP scheme that does not even parse.
    match err(&format!("{td}#EXTINF:4,\nfoo://[x\n")) {
        PlaylistError::InvalidUri { line: 4, .. } => {}
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn unusable_mapper_answers_are_errors() {
    let body = media_body("a.ts");
    for bad in ["", "/x\"y", "/x\ny", "#frag", " /x"] {
        let m = move |_: &Url, _: UriKind| Some(bad.to_owned());
        assert_eq!(
            rw(&body, ORIGIN, &m).unwrap_err(),
            PlaylistError::InvalidLocalUrl {
                line: 4,
                local: bad.to_owned()
            },
            "{bad:?}"
        );
    }
    // Not resolvable against the local URL.
    let m = |_: &Url, _: UriKind| Some("http://[::1".to_owned());
    assert!(matches!(
        rw(&body, ORIGIN, &m),
        Err(PlaylistError::InvalidLocalUrl { line: 4, .. })
    ));
}

#[test]
fn errors_display_on_one_line() {
    let long = "x".repeat(500);
    let e = err(&format!("#EXTM3U\n#EXT-X-TARGETDURATION:{long}\n"));
    let s = e.to_string();
    assert!(!s.contains('\n'));
    assert!(s.len() < 200, "{s}");
    let e = err("#EXTM3U\n#EXT-X-TARGETDURATION:\r\r\n");
    assert!(!e.to_string().contains('\r'), "{e}");
}

#[test]
fn other_schemes_in_segments_are_left_alone() {
    let body = media_body("data:video/mp2t;base64,AAAA");
    let r = rw(&body, ORIGIN, &proxy_all()).unwrap();
    assert_eq!(r.body, body.as_bytes());
    assert_eq!(media(&r.info).segments[0].url.scheme(), "data");
}

#[test]
fn every_error_displays_on_one_line() {
    use PlaylistError as E;
    let all = [
        E::TooLarge { size: 2, limit: 1 },
        E::TooManyLines { limit: 1 },
        E::NotUtf8 { offset: 3 },
        E::MissingHeader,
        E::StreamInfWithoutUri { line: 2 },
        E::SegmentWithoutExtinf { line: 2 },
        E::BadAttributes {
            line: 2,
            tag: "EXT-X-MAP",
            reason: AttributeSyntax::JunkAfterQuote,
        },
        E::MissingAttribute {
            line: 2,
            tag: "EXT-X-MAP",
            attribute: "URI",
        },
        E::InvalidValue {
            line: 2,
            what: "EXTINF duration",
            value: "x".into(),
        },
        E::DuplicateTag {
            line: 2,
            tag: "EXT-X-SKIP",
        },
        E::TagAfterFirstSegment {
            line: 2,
            tag: "EXT-X-SKIP",
        },
        E::UndefinedVariable {
            line: 2,
            name: "a".into(),
        },
        E::DuplicateVariable {
            line: 2,
            name: "a".into(),
        },
        E::MissingImport {
            line: 2,
            name: "a".into(),
        },
        E::MissingQueryParam {
            line: 2,
            name: "a".into(),
        },
        E::BadDefine {
            line: 2,
            reason: "r",
        },
        E::InvalidUri {
            line: 2,
            uri: "u".into(),
            reason: "r".into(),
        },
        E::ImplicitByteRangeOffset {
            line: 2,
            unit: "segment",
        },
        E::ByteRangeOverflow { line: 2 },
        E::MixedPlaylist { line: 2 },
        E::MissingTargetDuration,
        E::InvalidLocalUrl {
            line: 2,
            local: "l".into(),
        },
    ];
    for e in all {
        let s = e.to_string();
        assert!(!s.is_empty() && !s.contains(['\n', '\r']), "{s:?}");
    }
    for r in [
        AttributeSyntax::MissingEquals,
        AttributeSyntax::InvalidName,
        AttributeSyntax::UnterminatedQuote,
        AttributeSyntax::JunkAfterQuote,
        AttributeSyntax::QuoteInValue,
        AttributeSyntax::DuplicateUri,
        AttributeSyntax::UnquotedUri,
    ] {
        assert!(!r.to_string().contains('\n'));
    }
}

/// Rewrites `body` at [`ORIGIN`] with a live hold-back of `segments` (and LL-HLS degraded if
/// `degrade`).
fn held_back(body: &str, segments: usize, degrade: bool) -> crate::playlist::Rewritten {
    let o = url(ORIGIN);
    let opts = RewriteOptions {
        live_hold_back: segments,
        degrade_low_latency: degrade,
        ..RewriteOptions::default()
    };
    rw_opts(body, &o, &opts, &proxy_all()).unwrap()
}

/// A live playlist of `n` segments (from sequence 10); segment 14 starts a discontinuity with
/// a new key and a date.
fn live_body(n: u64, crlf: bool) -> String {
    let mut s = String::from(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:10\n",
    );
    for seq in 10..10 + n {
        if seq == 14 {
            s.push_str("#EXT-X-DISCONTINUITY\n#EXT-X-KEY:METHOD=AES-128,URI=\"k14.key\"\n");
            s.push_str("#EXT-X-PROGRAM-DATE-TIME:2026-11-22T10:00:00Z\n");
        }
        s.push_str(&format!("#EXTINF:2.000,\nseg{seq}.ts\n"));
    }
    if crlf { s.replace('\n', "\r\n") } else { s }
}

#[test]
fn live_hold_back_withholds_the_newest_segments_and_their_tags() {
    use crate::playlist::HoldBack;
    let full = held_back(&live_body(6, false), 0, false);
    assert_eq!(full.hold_back, HoldBack::Off);
    let r = held_back(&live_body(6, false), 2, false);
    assert_eq!(r.hold_back, HoldBack::Applied(2));
    let out = text(&r);
    // The kept part is byte-identical to the full rewrite, cut after the 4th segment's line.
    assert_eq!(out, &text(&full)[..out.len()]);
    assert!(out.ends_with("#EXTINF:2.000,\nseg13.ts\n"), "{out}");
    for gone in [
        "seg14.ts",
        "seg15.ts",
        "DISCONTINUITY",
        "k14.key",
        "PROGRAM-DATE-TIME",
    ] {
        assert!(!out.contains(gone), "{gone} in {out}");
    }
    assert!(out.contains("#EXT-X-MEDIA-SEQUENCE:10\n"));
    // The agent still sees every segment.
    assert_eq!(media(&r.info).segments.len(), 6);
    // A player parsing the served playlist sees segments 10..=13.
    let o = url(ORIGIN);
    let seen = parse(
        &r.body,
        &local_for(&o),
        &Variables::new(),
        &Limits::default(),
    )
    .unwrap();
    let seqs: Vec<u64> = media(&seen).segments.iter().map(|s| s.seq).collect();
    assert_eq!(seqs, vec![10, 11, 12, 13]);
}

#[test]
fn live_hold_back_keeps_line_terminators() {
    use crate::playlist::HoldBack;
    let r = held_back(&live_body(5, true), 1, false);
    assert_eq!(r.hold_back, HoldBack::Applied(1));
    assert!(text(&r).ends_with("seg13.ts\r\n"), "{}", text(&r));
    // An unterminated last line goes with the withheld segment; the kept one keeps its LF.
    let body = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\na.ts\n#EXTINF:2,\nb.ts\n\
                #EXTINF:2,\nc.ts\n#EXTINF:2,\nd.ts";
    let r = held_back(body, 1, false);
    assert_eq!(r.hold_back, HoldBack::Applied(1));
    assert!(text(&r).ends_with("c.ts\n"), "{}", text(&r));
}

#[test]
fn live_hold_back_spares_vod_short_and_low_latency_playlists() {
    use crate::playlist::{HoldBack, HoldBackSkip};
    // Ended: untouched.
    let ended = format!("{}#EXT-X-ENDLIST\n", live_body(6, false));
    let r = held_back(&ended, 2, false);
    assert_eq!(r.hold_back, HoldBack::Off);
    assert_eq!(text(&r), text(&held_back(&ended, 0, false)));
    // Short: at least three segments stay.
    let r = held_back(&live_body(4, false), 3, false);
    assert_eq!(r.hold_back, HoldBack::Applied(1));
    assert!(text(&r).ends_with("seg12.ts\n"));
    let r = held_back(&live_body(3, false), 1, false);
    assert_eq!(r.hold_back, HoldBack::Skipped(HoldBackSkip::ShortWindow));
    assert_eq!(text(&r), text(&held_back(&live_body(3, false), 0, false)));
    // LL-HLS passed through: parts cannot lose their segments' tail, so nothing is withheld;
    // degraded to plain HLS, the hold-back applies.
    let ll = format!(
        "{}#EXT-X-PART:DURATION=1.0,URI=\"seg16.0.ts\"\n",
        live_body(6, false).replace(
            "#EXT-X-TARGETDURATION:2\n",
            "#EXT-X-TARGETDURATION:2\n#EXT-X-PART-INF:PART-TARGET=1.0\n"
        )
    );
    let r = held_back(&ll, 1, false);
    assert_eq!(r.hold_back, HoldBack::Skipped(HoldBackSkip::LowLatency));
    assert!(text(&r).contains("seg16.0.ts"));
    let r = held_back(&ll, 1, true);
    assert_eq!(r.hold_back, HoldBack::Applied(1));
    assert!(text(&r).ends_with("seg14.ts\n"), "{}", text(&r));
}
