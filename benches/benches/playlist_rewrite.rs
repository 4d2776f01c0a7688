//! Rewrite and parse throughput on a generated 40,000-segment media playlist (about the size
//! of the corpus's `media-playlist-large.m3u8`), in MB/s of input playlist.
//!
//! `baseline_line_copy_*` is the floor any line-oriented rewriter pays on the same bytes:
//! UTF-8 validation, a scan for line ends and a copy of every line into a new buffer, with no
//! parsing. Rewrite throughput is reported as a ratio against it (measured in the same run),
//! which makes the figure comparable across noisy machines.
//!
//! Run: `cargo bench -p hivecast-bench --bench playlist_rewrite`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hivecast_agent::playlist::{Limits, MirrorMapper, RewriteOptions, Variables, parse, rewrite};
use url::Url;

const SEGMENTS: usize = 40_000;

/// A VOD media playlist whose segment URIs are produced by `uri(n)`.
fn playlist(uri: impl Fn(usize) -> String) -> Vec<u8> {
    let mut s = String::with_capacity(SEGMENTS * 40);
    s.push_str("#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:0\n");
    s.push_str(
        "#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-MAP:URI=\"init.mp4\"\n",
    );
    for n in 0..SEGMENTS {
        s.push_str("#EXTINF:4.000,\n");
        s.push_str(&uri(n));
        s.push('\n');
    }
    s.push_str("#EXT-X-ENDLIST\n");
    s.into_bytes()
}

/// The baseline: validate UTF-8, split at LF, copy each line (and its LF) into a new buffer.
/// Returns the copy, so the work cannot be optimised away.
fn line_copy(body: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(body).ok()?;
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while !rest.is_empty() {
        let (line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(nl) => (rest.get(..nl)?, rest.get(nl + 1..)?),
            None => (rest, &[][..]),
        };
        out.extend_from_slice(line);
        out.push(b'\n');
        rest = next;
    }
    Some(out)
}

fn bench(c: &mut Criterion) {
    let origin = Url::parse("https://cdn.example.com/vod/movie/720p/index.m3u8?token=abc").unwrap();
    let local = Url::parse(
        "http://127.0.0.1:8585/https/cdn.example.com/vod/movie/720p/index.m3u8?token=abc",
    )
    .unwrap();
    let mapper = MirrorMapper::new(|u: &Url| u.host_str() == Some("cdn.example.com"));
    let opts = RewriteOptions::default();
    let vars = Variables::new();

    // The common case: relative segment URIs, all kept byte for byte.
    let relative = playlist(|n| format!("segment_{n:06}.m4s"));
    // Every URI absolute and signed: every one rewritten into the mirror form.
    let absolute = playlist(|n| {
        format!(
            "https://cdn.example.com/vod/movie/720p/segment_{n:06}.m4s?exp=1700000000&sig=a1B2c3D4e5F6"
        )
    });

    let mut g = c.benchmark_group("playlist");
    for (name, body) in [("relative", &relative), ("absolute", &absolute)] {
        g.throughput(Throughput::Bytes(body.len() as u64));
        assert_eq!(line_copy(body).as_deref(), Some(body.as_slice()));
        g.bench_function(format!("baseline_line_copy_{name}_40k"), |b| {
            b.iter(|| black_box(line_copy(black_box(body)).map(|v| v.len())))
        });
        g.bench_function(format!("rewrite_{name}_40k"), |b| {
            b.iter(|| {
                let r = rewrite(black_box(body), &origin, &local, &vars, &opts, &mapper).unwrap();
                black_box(r.body.len())
            })
        });
    }
    g.throughput(Throughput::Bytes(relative.len() as u64));
    g.bench_function("parse_relative_40k", |b| {
        b.iter(|| {
            let info = parse(black_box(&relative), &origin, &vars, &Limits::default()).unwrap();
            black_box(info.as_media().map(|m| m.segments.len()))
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = bench
}
criterion_main!(benches);
