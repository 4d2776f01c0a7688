//! Helpers shared by the playlist tests, written independently of the implementation.

use url::Url;

use crate::mirror::{from_mirror_path, to_mirror_path};
use crate::playlist::{
    MirrorMapper, PlaylistError, PlaylistInfo, RewriteOptions, Rewritten, UriMapper, Variables,
    rewrite,
};

/// The agent's listener in tests.
pub const AGENT: &str = "http://127.0.0.1:8585";

pub fn url(s: &str) -> Url {
    Url::parse(s).expect("test URL")
}

/// The local URL at which the agent serves `origin` (mirror form).
pub fn local_for(origin: &Url) -> Url {
    let path = to_mirror_path(origin).expect("mirrorable");
    url(AGENT).join(&path).expect("local URL")
}

/// Where a player that loaded `local` ends up when it follows `written`, mapped back from
/// the agent to the origin through the mirror form.
pub fn player_reaches(local: &Url, written: &str) -> Url {
    let u = local.join(written).expect("written URI resolves");
    if u.origin() == url(AGENT).origin() {
        let mut pq = u.path().to_owned();
        if let Some(q) = u.query() {
            pq.push('?');
            pq.push_str(q);
        }
        let mut back = from_mirror_path(&pq).expect("agent URL is a mirror path");
        back.set_fragment(u.fragment());
        back
    } else {
        u
    }
}

/// Proxies everything http(s) in the mirror form (keys excepted, as by default).
pub fn proxy_all() -> impl UriMapper {
    MirrorMapper::new(|_: &Url| true)
}

/// Rewrites with `local` = the mirror of `origin`, default options, no imports.
pub fn rw(body: &str, origin: &str, mapper: &dyn UriMapper) -> Result<Rewritten, PlaylistError> {
    rw_opts(body, &url(origin), &RewriteOptions::default(), mapper)
}

/// Rewrites with `local` = the mirror of `origin`, the given options, no imports.
pub fn rw_opts(
    body: &str,
    origin: &Url,
    opts: &RewriteOptions,
    mapper: &dyn UriMapper,
) -> Result<Rewritten, PlaylistError> {
    rewrite(
        body.as_bytes(),
        origin,
        &local_for(origin),
        &Variables::new(),
        opts,
        mapper,
    )
}

/// Rewritten body as text.
pub fn text(r: &Rewritten) -> &str {
    std::str::from_utf8(&r.body).expect("UTF-8 output")
}

/// The media playlist info, or a panic.
pub fn media(info: &PlaylistInfo) -> &crate::playlist::MediaInfo {
    info.as_media().expect("media playlist")
}

/// Splits into lines keeping terminators (`\n` or `\r\n`), like the rewriter sees them.
pub fn split_keep(s: &str) -> Vec<&str> {
    s.split_inclusive('\n').collect()
}

/// Byte spans (start, end) of the URI values in one line, found independently of the
/// implementation: a non-`#` non-blank line is a URI (surrounding blanks excluded); in a tag
/// line, the quoted values of `URI`, `SERVER-URI`, `X-ASSET-URI` and `X-ASSET-LIST`.
pub fn uri_spans(line: &str) -> Vec<(usize, usize)> {
    let content = line.trim_end_matches(['\n', '\r']);
    let trimmed = content.trim_matches([' ', '\t']);
    if trimmed.is_empty() || trimmed.starts_with("\u{feff}#") {
        return Vec::new();
    }
    if !trimmed.starts_with('#') {
        let start = content.len() - content.trim_start_matches([' ', '\t']).len();
        return vec![(start, start + trimmed.len())];
    }
    let mut spans = Vec::new();
    let b = content.as_bytes();
    let mut i = 0;
    let mut in_quote = false;
    while i < b.len() {
        if b[i] == b'"' {
            in_quote = !in_quote;
            i += 1;
            continue;
        }
        if !in_quote {
            let at_boundary = i == 0 || matches!(b[i - 1], b',' | b':' | b' ');
            let name = [
                "URI=\"",
                "SERVER-URI=\"",
                "X-ASSET-URI=\"",
                "X-ASSET-LIST=\"",
            ]
            .into_iter()
            .find(|n| at_boundary && content[i..].starts_with(n));
            if let Some(name) = name {
                let start = i + name.len();
                if let Some(len) = content[start..].find('"') {
                    spans.push((start, start + len));
                    i = start + len + 1; // past the closing quote
                    continue;
                }
            }
        }
        i += 1;
    }
    spans
}

/// Checks that `output` equals `input` except inside the URI spans of `input`: the pieces of
/// `input` between URI spans appear in `output` in order, and each replaced span in the
/// output contains no quote, CR or LF. Returns a description of the first difference.
pub fn same_outside_uris(input: &str, output: &str) -> Result<(), String> {
    let ins = split_keep(input);
    let outs = split_keep(output);
    if ins.len() != outs.len() {
        return Err(format!("line count {} != {}", ins.len(), outs.len()));
    }
    for (n, (i, o)) in ins.iter().zip(&outs).enumerate() {
        if i == o {
            continue;
        }
        let spans = uri_spans(i);
        if spans.is_empty() {
            return Err(format!(
                "line {}: non-URI line changed: {i:?} -> {o:?}",
                n + 1
            ));
        }
        let mut pieces = Vec::new();
        let mut prev = 0;
        for &(s, e) in &spans {
            pieces.push(&i[prev..s]);
            prev = e;
        }
        pieces.push(&i[prev..]);
        // Match pieces in order; each gap (replaced URI) runs up to the next piece.
        let mut pos = 0;
        for (k, piece) in pieces.iter().enumerate() {
            if k == 0 {
                if !o.starts_with(piece) {
                    return Err(format!("line {}: prefix changed: {i:?} -> {o:?}", n + 1));
                }
                pos = piece.len();
                continue;
            }
            let rest = &o[pos..];
            let last = k == pieces.len() - 1;
            let found = if last {
                rest.ends_with(piece).then(|| rest.len() - piece.len())
            } else if piece.is_empty() {
                Some(0)
            } else {
                rest.find(piece)
            };
            let Some(at) = found else {
                return Err(format!(
                    "line {}: piece {piece:?} missing: {i:?} -> {o:?}",
                    n + 1
                ));
            };
            let gap = &rest[..at];
            if gap.contains(['"', '\r', '\n']) {
                return Err(format!("line {}: bad replacement {gap:?}", n + 1));
            }
            pos += at + piece.len();
        }
    }
    Ok(())
}

#[test]
fn uri_spans_finder() {
    assert_eq!(uri_spans("seg.ts\n"), [(0, 6)]);
    assert_eq!(uri_spans("  seg.ts \r\n"), [(2, 8)]);
    assert_eq!(uri_spans("#EXTINF:1,\n"), []);
    let l = r#"#EXT-X-DATERANGE:ID="a,URI=x",X-ASSET-URI="u1",X-ASSET-LIST="u2""#;
    let spans = uri_spans(l);
    assert_eq!(spans.len(), 2);
    assert_eq!(&l[spans[0].0..spans[0].1], "u1");
    assert_eq!(&l[spans[1].0..spans[1].1], "u2");
    let l = r#"#EXT-X-MAP:URI="init.mp4",BYTERANGE="1@0""#;
    assert_eq!(uri_spans(l).len(), 1);
    assert!(same_outside_uris("#EXTM3U\nseg.ts\n", "#EXTM3U\n/x/seg.ts\n").is_ok());
    assert!(same_outside_uris("#EXTM3U\nseg.ts\n", "#EXTM3U\r\nseg.ts\n").is_err());
    assert!(same_outside_uris("#EXT-X-MAP:URI=\"a\",X=1\n", "#EXT-X-MAP:URI=\"b\",X=2\n").is_err());
    assert!(
        same_outside_uris(
            "#EXT-X-MAP:URI=\"a\",X=1\n",
            "#EXT-X-MAP:URI=\"/b/c\",X=1\n"
        )
        .is_ok()
    );
}
