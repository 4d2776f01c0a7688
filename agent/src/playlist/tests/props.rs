//! Property tests: generated playlists change only in their URI spans, every rewritten URI
//! still leads to the right origin resource, and nothing panics on arbitrary or mutated input.

use proptest::prelude::*;
use url::Url;

use super::support::{local_for, player_reaches, same_outside_uris, split_keep, uri_spans, url};
use crate::playlist::{
    Limits, MirrorMapper, RewriteOptions, UriKind, UriMapper, Variables, parse, rewrite,
};

/// URI forms, on several hosts.
fn uri() -> impl Strategy<Value = String> {
    let host = prop_oneof![
        Just("cdn.example.com"),
        Just("edge.example.net:8443"),
        Just("other.example"),
        Just("[2001:db8::7]"),
    ];
    let name = "[a-z0-9_]{1,8}";
    prop_oneof![
        name.prop_map(|n| format!("{n}.ts")),
        (name, name).prop_map(|(d, n)| format!("{d}/{n}.m4s")),
        name.prop_map(|n| format!("../{n}.ts")),
        name.prop_map(|n| format!("../../../../{n}.ts")),
        name.prop_map(|n| format!("./{n}")),
        name.prop_map(|n| format!("/abs/{n}.ts")),
        (host.clone(), name).prop_map(|(h, n)| format!("//{h}/p/{n}.ts")),
        (host.clone(), name).prop_map(|(h, n)| format!("https://{h}/p/{n}.ts?sig=a%2Fb&e=1")),
        (host, name).prop_map(|(h, n)| format!("http://{h}/{n}")),
        name.prop_map(|n| format!("?q={n}")),
        name.prop_map(|n| format!("{n}%20x.ts?a=1,2")),
        name.prop_map(|n| format!("{n}.ts#t=1")),
        Just("skd://key-id".to_owned()),
        Just("data:text/plain;base64,AAAA".to_owned()),
    ]
}

/// One group of lines of a media playlist (no terminators yet).
fn media_item() -> impl Strategy<Value = Vec<String>> {
    prop_oneof![
        "[a-zA-Z0-9 ,:;.-]{0,20}".prop_map(|c| vec![format!("#{c}").replace("#EXT", "#ext")]),
        Just(vec![String::new()]),
        Just(vec!["  \t".to_owned()]),
        "[A-Z]{1,6}".prop_map(|t| vec![format!("#EXT-X-VENDOR-{t}:A=1,B=\"x,y\"")]),
        uri().prop_map(|u| vec![format!("#EXT-X-VENDOR:ID=2,URI=\"{u}\"")]),
        uri().prop_map(|u| vec![format!("#EXT-X-KEY:METHOD=AES-128,URI=\"{u}\",IV=0x01")]),
        Just(vec!["#EXT-X-KEY:METHOD=NONE".to_owned()]),
        uri().prop_map(|u| vec![format!("#EXT-X-MAP:URI=\"{u}\",BYTERANGE=\"100@0\"")]),
        (uri(), 1u32..10, any::<bool>()).prop_map(|(u, d, pdt)| {
            let mut v = vec![format!("#EXTINF:{d}.000,title, a")];
            if pdt {
                v.push("#EXT-X-PROGRAM-DATE-TIME:2024-01-01T00:00:00Z".to_owned());
            }
            v.push(format!("#EXT-X-BYTERANGE:{}@{}", d * 100, d));
            v.push(u);
            v
        }),
        (uri(), 1u32..10).prop_map(|(u, d)| vec![format!("#EXTINF:{d},"), format!(" {u}\t")]),
        uri().prop_map(|u| vec![format!("#EXT-X-PART:DURATION=0.5,URI=\"{u}\",INDEPENDENT=YES")]),
        uri().prop_map(|u| vec![format!("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{u}\"")]),
        uri().prop_map(|u| vec![format!("#EXT-X-RENDITION-REPORT:URI=\"{u}\",LAST-MSN=1")]),
        (uri(), uri()).prop_map(|(a, b)| vec![format!(
            "#EXT-X-DATERANGE:ID=\"i,d\",START-DATE=\"2024-01-01T00:00:00Z\",X-ASSET-URI=\"{a}\",X-ASSET-LIST=\"{b}\""
        )]),
    ]
}

/// One group of lines of a multivariant playlist.
fn multivariant_item() -> impl Strategy<Value = Vec<String>> {
    prop_oneof![
        "[a-zA-Z0-9 ,:;.-]{0,20}".prop_map(|c| vec![format!("#{c}").replace("#EXT", "#ext")]),
        Just(vec![String::new()]),
        "[A-Z]{1,6}".prop_map(|t| vec![format!("#EXT-X-VENDOR-{t}:A=1")]),
        (uri(), 1u64..10_000_000).prop_map(|(u, bw)| vec![
            format!("#EXT-X-STREAM-INF:BANDWIDTH={bw},CODECS=\"avc1.64001f,mp4a.40.2\""),
            "# between".to_owned(),
            u,
        ]),
        uri().prop_map(|u| vec![format!(
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"x, y\",URI=\"{u}\""
        )]),
        uri().prop_map(|u| vec![format!("#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=1,URI=\"{u}\"")]),
        uri().prop_map(|u| vec![format!("#EXT-X-SESSION-DATA:DATA-ID=\"d\",URI=\"{u}\"")]),
        uri().prop_map(|u| vec![format!("#EXT-X-SESSION-KEY:METHOD=AES-128,URI=\"{u}\"")]),
        uri().prop_map(|u| vec![format!("#EXT-X-CONTENT-STEERING:SERVER-URI=\"{u}\"")]),
    ]
}

/// A whole playlist: optional BOM, header, items, random LF/CRLF per line, optional final
/// terminator.
fn playlist() -> impl Strategy<Value = String> {
    let items = prop_oneof![
        proptest::collection::vec(media_item(), 0..25).prop_map(|mut v| {
            v.insert(
                0,
                vec![
                    "#EXT-X-TARGETDURATION:10".to_owned(),
                    "#EXT-X-MEDIA-SEQUENCE:7".to_owned(),
                ],
            );
            v
        }),
        proptest::collection::vec(multivariant_item(), 0..15).prop_map(|mut v| {
            v.insert(
                0,
                vec![
                    "#EXT-X-STREAM-INF:BANDWIDTH=1".to_owned(),
                    "v/index.m3u8".to_owned(),
                ],
            );
            v
        }),
    ];
    (
        any::<bool>(),
        items,
        proptest::collection::vec(any::<bool>(), 200),
        any::<bool>(),
    )
        .prop_map(|(bom, items, crlf, final_nl)| {
            let lines: Vec<String> = std::iter::once("#EXTM3U".to_owned())
                .chain(items.into_iter().flatten())
                .collect();
            let mut s = String::new();
            if bom {
                s.push('\u{feff}');
            }
            let n = lines.len();
            for (i, line) in lines.into_iter().enumerate() {
                s.push_str(&line);
                if i + 1 < n || final_nl {
                    s.push_str(if crlf.get(i).copied().unwrap_or(false) {
                        "\r\n"
                    } else {
                        "\n"
                    });
                }
            }
            s
        })
}

fn origin() -> impl Strategy<Value = (Url, Url)> {
    let origins = [
        "https://cdn.example.com/live/stream/index.m3u8?token=abc",
        "http://cdn.example.com:8080/index.m3u8",
        "https://other.example/a/b/c/master.m3u8",
    ];
    (0..origins.len(), any::<bool>()).prop_map(move |(i, redirected)| {
        let o = url(origins[i]);
        // After a redirect the final origin URL differs from the one the player asked for.
        let requested = if redirected {
            url("https://first.example/x/index.m3u8")
        } else {
            o.clone()
        };
        (o, local_for(&requested))
    })
}

fn some_hosts(u: &Url) -> bool {
    u.host_str() != Some("other.example")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn rewrite_changes_only_uri_spans(
        body in playlist(),
        (origin, local) in origin(),
        proxy_keys in any::<bool>(),
        degrade in any::<bool>(),
    ) {
        let mapper = MirrorMapper::new(some_hosts).proxy_keys(proxy_keys);
        let opts = RewriteOptions {
            strip_content_steering: false,
            ..RewriteOptions::default()
        };
        let r = rewrite(body.as_bytes(), &origin, &local, &Variables::new(), &opts, &mapper);
        let r = match r {
            Ok(r) => r,
            Err(e) => return Err(TestCaseError::fail(format!("rewrite failed: {e}\n{body}"))),
        };
        let out = std::str::from_utf8(&r.body).unwrap();
        if let Err(e) = same_outside_uris(&body, out) {
            return Err(TestCaseError::fail(format!("{e}\n--- in\n{body}\n--- out\n{out}")));
        }
        // Every URI leads the player to the origin resource it named.
        for (i, o) in split_keep(&body).into_iter().zip(split_keep(out)) {
            let (si, so) = (uri_spans(i), uri_spans(o));
            prop_assert_eq!(si.len(), so.len());
            for ((a, b), (c, d)) in si.into_iter().zip(so) {
                let (written, now) = (&i[a..b], &o[c..d]);
                if written.starts_with("skd:") || written.starts_with("data:") {
                    prop_assert_eq!(written, now);
                    continue;
                }
                let expected = origin.join(written).unwrap();
                prop_assert_eq!(player_reaches(&local, now), expected, "{} -> {}", written, now);
            }
        }
        // parse gives the same information as rewrite.
        let info = parse(body.as_bytes(), &origin, &Variables::new(), &Limits::default()).unwrap();
        prop_assert_eq!(&info, &r.info);
        // Degrade mode never fails where passthrough succeeds.
        let d = RewriteOptions { degrade_low_latency: degrade, ..RewriteOptions::default() };
        prop_assert!(rewrite(body.as_bytes(), &origin, &local, &Variables::new(), &d, &mapper).is_ok());
    }

    #[test]
    fn parse_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let o = url("https://cdn.example.com/a/index.m3u8?x=1");
        let _ = parse(&bytes, &o, &Variables::new(), &Limits::default());
        let mut with_header = b"#EXTM3U\n".to_vec();
        with_header.extend_from_slice(&bytes);
        let _ = parse(&with_header, &o, &Variables::new(), &Limits::default());
    }

    #[test]
    fn nothing_panics_on_mutated_playlists(
        body in playlist(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        let mut bytes = body.into_bytes();
        for (at, byte, op) in edits {
            if bytes.is_empty() {
                bytes.push(byte);
                continue;
            }
            let i = at.index(bytes.len());
            match op {
                0 => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ => {
                    bytes.remove(i);
                }
            }
        }
        let o = url("https://cdn.example.com/a/index.m3u8?x=1");
        let local = local_for(&o);
        let mapper = |u: &Url, k: UriKind| -> Option<String> {
            (k != UriKind::Key).then(|| crate::mirror::to_mirror_path(u)).flatten()
        };
        let _ = parse(&bytes, &o, &Variables::new(), &Limits::default());
        let opts = RewriteOptions { degrade_low_latency: true, ..RewriteOptions::default() };
        if let Ok(r) = rewrite(&bytes, &o, &local, &Variables::new(), &opts, &mapper as &dyn UriMapper) {
            prop_assert!(std::str::from_utf8(&r.body).is_ok());
        }
    }
}
