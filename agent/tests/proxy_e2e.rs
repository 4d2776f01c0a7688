//! End-to-end: real ffmpeg-made HLS streams on a real origin on 127.0.0.1, played through a
//! real agent. Every segment must be byte-identical, every rewritten playlist must parse with
//! an independent parser, and ffmpeg must read every stream through the agent.

mod support;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use hivecast_agent::playlist::{self, PlaylistInfo, Variables};
use hivecast_demo::fixtures::{self, Fixtures};
use hivecast_demo::origin::{Fault, Origin};
use support::{get, mirror, request, start_agent, test_config};
use url::Url;

const TIMEOUT: Duration = Duration::from_secs(120);

async fn setup() -> (Fixtures, Origin) {
    let fx = Fixtures::ensure_async()
        .await
        .expect("ffmpeg fixtures (is ffmpeg installed?)");
    let origin = Origin::start(fx.root().to_path_buf())
        .await
        .expect("origin starts");
    (fx, origin)
}

/// Parses a rewritten playlist with quick-m3u8 (an independent parser) and returns the number
/// of URI lines and `EXTINF` tags it saw; panics on a parse error.
fn independent_parse(text: &str) -> (usize, usize) {
    use quick_m3u8::config::ParsingOptions;
    use quick_m3u8::tag::{KnownTag, hls};
    use quick_m3u8::{HlsLine, Reader};
    let mut reader = Reader::from_str(text, ParsingOptions::default());
    let (mut uris, mut extinf) = (0, 0);
    loop {
        match reader.read_line() {
            Ok(None) => break,
            Ok(Some(HlsLine::Uri(_))) => uris += 1,
            Ok(Some(HlsLine::KnownTag(KnownTag::Hls(hls::Tag::Inf(_))))) => extinf += 1,
            Ok(Some(_)) => {}
            Err(e) => panic!("quick-m3u8 rejected the rewritten playlist: {e:?}\n{text}"),
        }
    }
    (uris, extinf)
}

/// Walks a playlist through the agent: every media playlist, init segment and segment,
/// comparing bytes with the files on the origin's disk. Returns how many resources it checked.
async fn walk(fx: &Fixtures, agent: std::net::SocketAddr, origin: &Origin, rel: &str) -> usize {
    let agent_url = mirror(agent, &origin.authority(), rel);
    let resp = get(&agent_url).await;
    assert_eq!(resp.status, 200, "{rel}: {}", resp.text());
    assert_eq!(
        resp.header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    assert_eq!(resp.header("access-control-allow-origin"), Some("*"));
    let text = resp.text();
    let (uris, extinf) = independent_parse(&text);
    let base = Url::parse(&agent_url).expect("url");
    let info = playlist::parse(
        &resp.body,
        &base,
        &Variables::default(),
        &playlist::Limits::default(),
    )
    .expect("rewritten playlist parses");
    let mut checked = 1;
    match info {
        PlaylistInfo::Multivariant(mv) => {
            assert!(!mv.playlists.is_empty());
            let mut seen = BTreeSet::new();
            for p in &mv.playlists {
                // Each referenced playlist must point back into the agent.
                assert_eq!(p.url.host_str(), Some("127.0.0.1"), "{}", p.uri);
                assert_eq!(p.url.port(), Some(agent.port()), "not proxied: {}", p.uri);
                let origin_rel = p
                    .url
                    .path()
                    .splitn(4, '/')
                    .nth(3)
                    .expect("mirror path")
                    .to_string();
                if seen.insert(origin_rel.clone()) {
                    checked += Box::pin(walk(fx, agent, origin, &origin_rel)).await;
                }
            }
        }
        PlaylistInfo::Media(m) => {
            assert_eq!(uris, m.segments.len(), "quick-m3u8 sees the same segments");
            assert_eq!(extinf, m.segments.len());
            let mut inits = BTreeSet::new();
            for s in &m.segments {
                if let Some(init) = &s.map
                    && inits.insert(init.url.to_string())
                {
                    let range = init.byterange.map(|r| (r.offset, r.length));
                    checked += compare(fx, agent, &init.url, range).await;
                }
                checked +=
                    compare(fx, agent, &s.url, s.byterange.map(|r| (r.offset, r.length))).await;
            }
        }
    }
    checked
}

/// Fetches `url` (an agent URL) with an optional byte range and compares with the file.
async fn compare(
    fx: &Fixtures,
    agent: std::net::SocketAddr,
    url: &Url,
    range: Option<(u64, u64)>,
) -> usize {
    assert_eq!(url.port(), Some(agent.port()), "segment not proxied: {url}");
    let origin_rel = url.path().splitn(4, '/').nth(3).expect("mirror path");
    let file = std::fs::read(fx.path(origin_rel)).expect("origin file");
    let (resp, expected) = match range {
        None => (get(url.as_str()).await, file.clone()),
        Some((off, len)) => {
            let h = format!("bytes={}-{}", off, off + len - 1);
            let r = request("GET", url.as_str(), &[("range", &h)]).await;
            assert_eq!(r.status, 206, "{url} range");
            (r, file[off as usize..(off + len) as usize].to_vec())
        }
    };
    assert!(
        resp.status == 200 || resp.status == 206,
        "{url}: {} {}",
        resp.status,
        resp.text()
    );
    assert_eq!(resp.body.len(), expected.len(), "{url}: length");
    assert!(
        resp.body[..] == expected[..],
        "{url}: bytes differ from the origin's"
    );
    1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stream_is_byte_identical_and_parses_independently() {
    tokio::time::timeout(TIMEOUT, async {
        let (fx, origin) = setup().await;
        let agent = start_agent(test_config(&[origin.base_url()])).await;
        for rel in [
            fixtures::VOD_TS,
            fixtures::VOD_FMP4,
            fixtures::MULTIVARIANT,
            fixtures::AES,
            fixtures::BYTERANGE,
        ] {
            let n = walk(&fx, agent.listen, &origin, rel).await;
            assert!(n >= 4, "{rel}: only {n} resources checked");
        }
        // The AES key is not proxied by default: the playlist points at the origin directly.
        let aes = get(&mirror(agent.listen, &origin.authority(), fixtures::AES))
            .await
            .text();
        assert!(
            aes.contains(&format!("URI=\"{}/aes/enc.key\"", origin.base_url())),
            "{aes}"
        );
        agent.shutdown(Duration::from_secs(2)).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_reads_every_stream_through_the_agent() {
    tokio::time::timeout(TIMEOUT, async {
        let (_fx, origin) = setup().await;
        let agent = start_agent(test_config(&[origin.base_url()])).await;
        for rel in [
            fixtures::VOD_TS,
            fixtures::VOD_FMP4,
            fixtures::MULTIVARIANT,
            fixtures::AES,
            fixtures::BYTERANGE,
        ] {
            let url = mirror(agent.listen, &origin.authority(), rel);
            let out = tokio::process::Command::new("ffmpeg")
                .args([
                    "-hide_banner",
                    "-nostdin",
                    "-loglevel",
                    "error",
                    "-i",
                    &url,
                    "-map",
                    "0",
                    "-c",
                    "copy",
                    "-f",
                    "null",
                    "-",
                ])
                .stdin(Stdio::null())
                .output()
                .await
                .expect("ffmpeg runs");
            assert!(
                out.status.success(),
                "ffmpeg failed on {rel}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.trim().is_empty(),
                "ffmpeg reported errors on {rel}: {stderr}"
            );
        }
        agent.shutdown(Duration::from_secs(2)).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_requests_make_one_origin_request() {
    tokio::time::timeout(TIMEOUT, async {
        let (_fx, origin) = setup().await;
        let agent = start_agent(test_config(&[origin.base_url()])).await;
        let seg = "vod-ts/seg_001.ts";
        // Slow the origin down so all 50 requests arrive while the fetch is in flight.
        origin.set_fault(&format!("/{seg}"), Fault::Delay(Duration::from_millis(500)));
        let url = mirror(agent.listen, &origin.authority(), seg);
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let url = url.clone();
            tasks.push(tokio::spawn(async move { get(&url).await }));
        }
        let mut bodies = BTreeSet::new();
        for t in tasks {
            let r = t.await.expect("task");
            assert_eq!(r.status, 200);
            bodies.insert(r.body);
        }
        assert_eq!(bodies.len(), 1, "every player got the same bytes");
        assert_eq!(
            origin.requests(&format!("/{seg}")),
            1,
            "exactly one origin request"
        );
        // And later requests are cache hits.
        assert_eq!(get(&url).await.status, 200);
        assert_eq!(origin.requests(&format!("/{seg}")), 1);
        let m = agent.proxy.metrics();
        assert!(m.coalesced_requests.get() >= 1);
        assert!(m.cache_hits.get() >= 1);
        agent.shutdown(Duration::from_secs(2)).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_origin_body_is_never_cached_or_served_as_complete() {
    tokio::time::timeout(TIMEOUT, async {
        let (fx, origin) = setup().await;
        let mut cfg = test_config(&[origin.base_url()]);
        cfg.origin.retries = 0;
        let agent = start_agent(cfg).await;
        let seg = "vod-ts/seg_002.ts";
        origin.set_fault(&format!("/{seg}"), Fault::Truncate { after: 1000 });
        let url = mirror(agent.listen, &origin.authority(), seg);
        let r = get(&url).await;
        assert_eq!(r.status, 502, "a cut-off body is an error: {}", r.text());
        assert!(r.text().contains("cut off"), "{}", r.text());
        assert!(
            agent.proxy.segment_cache().is_empty(),
            "nothing partial is cached"
        );
        origin.clear_faults();
        let r = get(&url).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body[..], std::fs::read(fx.path(seg)).expect("file")[..]);
        assert_eq!(
            origin.requests(&format!("/{seg}")),
            2,
            "the truncated copy was not reused"
        );
        agent.shutdown(Duration::from_secs(2)).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncation_is_retried_when_retries_are_on() {
    tokio::time::timeout(TIMEOUT, async {
        let (fx, origin) = setup().await;
        let agent = start_agent(test_config(&[origin.base_url()])).await;
        let seg = "vod-ts/seg_000.ts";
        origin.set_fault_times(&format!("/{seg}"), Fault::Truncate { after: 100 }, 1);
        let r = get(&mirror(agent.listen, &origin.authority(), seg)).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body[..], std::fs::read(fx.path(seg)).expect("file")[..]);
        agent.shutdown(Duration::from_secs(2)).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origins_not_allowed_get_403_and_no_request() {
    tokio::time::timeout(TIMEOUT, async {
        let (_fx, origin) = setup().await;
        let agent = start_agent(test_config(&["http://127.0.0.2:1".to_string()])).await;
        let r = get(&mirror(agent.listen, &origin.authority(), fixtures::VOD_TS)).await;
        assert_eq!(r.status, 403);
        assert!(r.text().contains("not in origin.allow"), "{}", r.text());
        assert_eq!(origin.total_requests(), 0);
        // https scheme of an allowed http host is another origin.
        let r = get(&format!(
            "http://{}/https/{}/x.ts",
            agent.listen,
            origin.authority()
        ))
        .await;
        assert_eq!(r.status, 403);
        // Not a mirror path at all.
        assert_eq!(
            get(&format!("http://{}/etc/passwd", agent.listen))
                .await
                .status,
            404
        );
        // A redirect from an allowed origin to one that is not allowed is refused too.
        let other = Origin::start(std::env::temp_dir())
            .await
            .expect("second origin");
        let agent2 = start_agent(test_config(&[origin.base_url()])).await;
        origin.set_fault(
            "/vod-ts/seg_000.ts",
            Fault::Redirect {
                location: format!("{}/x.ts", other.base_url()),
            },
        );
        let r = get(&mirror(
            agent2.listen,
            &origin.authority(),
            "vod-ts/seg_000.ts",
        ))
        .await;
        assert_eq!(r.status, 502, "{}", r.text());
        assert!(r.text().contains("not in origin.allow"));
        assert_eq!(other.total_requests(), 0);
        agent.shutdown(Duration::from_secs(2)).await;
        agent2.shutdown(Duration::from_secs(2)).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_followed_and_relative_uris_use_the_final_url() {
    tokio::time::timeout(TIMEOUT, async {
        let (fx, origin) = setup().await;
        let agent = start_agent(test_config(&[origin.base_url()])).await;
        // /moved/index.m3u8 → /vod-ts/index.m3u8: relative segment URIs must resolve against
        // the final URL (vod-ts/), not the requested one (moved/).
        origin.set_fault(
            "/moved/",
            Fault::RedirectPrefix {
                to: "/vod-ts/".into(),
            },
        );
        let url = mirror(agent.listen, &origin.authority(), "moved/index.m3u8");
        let r = get(&url).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let info = playlist::parse(
            &r.body,
            &Url::parse(&url).expect("url"),
            &Variables::default(),
            &playlist::Limits::default(),
        )
        .expect("parses");
        let m = info.as_media().expect("media");
        for s in &m.segments {
            assert!(
                s.url.path().contains("/vod-ts/"),
                "resolved against the redirect target: {}",
                s.url
            );
            compare(&fx, agent.listen, &s.url, None).await;
        }
        agent.shutdown(Duration::from_secs(2)).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_down_fails_fast_and_cached_segments_keep_serving() {
    tokio::time::timeout(TIMEOUT, async {
        let (fx, origin) = setup().await;
        let authority = origin.authority();
        let agent = start_agent(test_config(&[origin.base_url()])).await;
        let seg = "vod-fmp4/seg_000.m4s";
        let url = mirror(agent.listen, &authority, seg);
        assert_eq!(get(&url).await.status, 200);
        // 5xx from the origin → 502; a hang → 504 within the configured timeouts.
        origin.set_fault("/vod-fmp4/seg_001.m4s", Fault::Status(503));
        let r = get(&mirror(agent.listen, &authority, "vod-fmp4/seg_001.m4s")).await;
        assert_eq!(r.status, 502, "{}", r.text());
        origin.set_fault("/vod-fmp4/seg_002.m4s", Fault::Hang);
        let t0 = std::time::Instant::now();
        let r = get(&mirror(agent.listen, &authority, "vod-fmp4/seg_002.m4s")).await;
        assert_eq!(r.status, 504, "{}", r.text());
        assert!(
            t0.elapsed() < Duration::from_secs(8),
            "gives up within total_timeout"
        );
        // 404 stays 404.
        let r = get(&mirror(agent.listen, &authority, "vod-fmp4/nope.m4s")).await;
        assert_eq!(r.status, 404);
        // Origin gone entirely: connect errors are quick 502s, cached bytes still served.
        origin.stop().await;
        let t0 = std::time::Instant::now();
        let r = get(&mirror(agent.listen, &authority, "vod-fmp4/init.mp4")).await;
        assert_eq!(r.status, 502, "{}", r.text());
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "connection refused is not retried for long"
        );
        let r = get(&url).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body[..], std::fs::read(fx.path(seg)).expect("file")[..]);
        assert!(r.header("age").is_some());
        agent.shutdown(Duration::from_secs(2)).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_playlist_gets_502_and_the_agent_keeps_serving() {
    tokio::time::timeout(TIMEOUT, async {
        let dir = std::env::temp_dir().join(format!("hivecast-malformed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("bad.m3u8"), "this is not a playlist\n").expect("write");
        std::fs::write(
            dir.join("good.m3u8"),
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nseg.ts\n#EXT-X-ENDLIST\n",
        )
        .expect("write");
        std::fs::write(dir.join("seg.ts"), vec![0x47u8; 188 * 10]).expect("write");
        let origin = Origin::start(dir.clone()).await.expect("origin");
        let agent = start_agent(test_config(&[origin.base_url()])).await;
        let r = get(&mirror(agent.listen, &origin.authority(), "bad.m3u8")).await;
        assert_eq!(r.status, 502);
        assert!(
            r.text().contains("#EXTM3U"),
            "one-line reason names the problem: {}",
            r.text()
        );
        assert_eq!(r.text().trim().lines().count(), 1);
        let r = get(&mirror(agent.listen, &origin.authority(), "good.m3u8")).await;
        assert_eq!(r.status, 200);
        assert_eq!(
            get(&mirror(agent.listen, &origin.authority(), "seg.ts"))
                .await
                .status,
            200
        );
        assert_eq!(agent.proxy.metrics().playlist_errors.get(), 1);
        agent.shutdown(Duration::from_secs(2)).await;
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_semantics_range_head_cors_and_types() {
    tokio::time::timeout(TIMEOUT, async {
        let (fx, origin) = setup().await;
        let agent = start_agent(test_config(&[origin.base_url()])).await;
        let seg = "vod-ts/seg_000.ts";
        let file = std::fs::read(fx.path(seg)).expect("file");
        let url = mirror(agent.listen, &origin.authority(), seg);

        let r = request("GET", &url, &[("range", "bytes=10-19")]).await;
        assert_eq!(r.status, 206);
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes 10-19/{}", file.len()).as_str())
        );
        assert_eq!(r.body[..], file[10..20]);
        assert_eq!(r.header("content-type"), Some("video/mp2t"));

        let r = request("GET", &url, &[("range", "bytes=100-")]).await;
        assert_eq!(r.status, 206);
        assert_eq!(r.body[..], file[100..]);

        let r = request("GET", &url, &[("range", &format!("bytes={}-", file.len()))]).await;
        assert_eq!(r.status, 416);
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes */{}", file.len()).as_str())
        );

        let r = request("HEAD", &url, &[]).await;
        assert_eq!(r.status, 200);
        assert!(r.body.is_empty());
        assert_eq!(
            r.header("content-length"),
            Some(file.len().to_string().as_str())
        );
        assert_eq!(r.header("accept-ranges"), Some("bytes"));

        let r = request(
            "OPTIONS",
            &url,
            &[
                ("origin", "http://player.test"),
                ("access-control-request-method", "GET"),
                ("access-control-request-headers", "range"),
            ],
        )
        .await;
        assert_eq!(r.status, 204);
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
        assert!(
            r.header("access-control-allow-methods")
                .unwrap_or("")
                .contains("GET")
        );
        assert!(
            r.header("access-control-allow-headers")
                .unwrap_or("")
                .to_lowercase()
                .contains("range")
        );

        let r = get(&url).await;
        let exposed = r
            .header("access-control-expose-headers")
            .unwrap_or("")
            .to_string();
        for h in ["Age", "Content-Length", "Content-Range"] {
            assert!(exposed.contains(h), "{h} exposed");
        }
        assert_eq!(request("POST", &url, &[]).await.status, 405);

        let init = get(&mirror(
            agent.listen,
            &origin.authority(),
            "vod-fmp4/init.mp4",
        ))
        .await;
        assert_eq!(init.header("content-type"), Some("video/mp4"));
        let m4s = get(&mirror(
            agent.listen,
            &origin.authority(),
            "vod-fmp4/seg_000.m4s",
        ))
        .await;
        assert_eq!(m4s.header("content-type"), Some("video/iso.segment"));
        // A playlist labelled text/plain by the origin is still served as a playlist.
        origin.set_fault(
            "/vod-ts/index.m3u8",
            Fault::ContentType("text/plain".into()),
        );
        let pl = get(&mirror(agent.listen, &origin.authority(), fixtures::VOD_TS)).await;
        assert_eq!(
            pl.header("content-type"),
            Some("application/vnd.apple.mpegurl")
        );
        agent.shutdown(Duration::from_secs(2)).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_playlists_are_cached_at_most_half_the_target_duration() {
    tokio::time::timeout(TIMEOUT, async {
        let dir = std::env::temp_dir().join(format!("hivecast-livecache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let live = |seq: u64| format!("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{seq}\n#EXTINF:2,\ns{seq}.ts\n");
        std::fs::write(dir.join("live.m3u8"), live(1)).expect("write");
        let origin = Origin::start(dir.clone()).await.expect("origin");
        let agent = start_agent(test_config(&[origin.base_url()])).await;
        let url = mirror(agent.listen, &origin.authority(), "live.m3u8");
        let r = get(&url).await;
        assert_eq!(r.header("cache-control"), Some("no-cache"));
        get(&url).await;
        assert_eq!(origin.requests("/live.m3u8"), 1, "second request within 1 s is served from cache");
        std::fs::write(dir.join("live.m3u8"), live(2)).expect("write");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let r = get(&url).await;
        assert!(r.text().contains("MEDIA-SEQUENCE:2"), "refreshed after half the target duration");
        assert_eq!(origin.requests("/live.m3u8"), 2);
        // LL-HLS blocking requests go to the origin every time and are not cached.
        let ll = format!("{url}?_HLS_msn=2");
        get(&ll).await;
        get(&ll).await;
        assert_eq!(origin.requests("/live.m3u8"), 4);
        agent.shutdown(Duration::from_secs(2)).await;
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_streams_redirect_to_the_mirror_form_and_metrics_are_served() {
    tokio::time::timeout(TIMEOUT, async {
        let (_fx, origin) = setup().await;
        let mut cfg = test_config(&[origin.base_url()]);
        cfg.streams.push(hivecast_agent::config::StreamConfig {
            name: "vod".into(),
            url: origin.url(fixtures::VOD_TS),
            integrity: None,
        });
        let agent = start_agent(cfg).await;
        let r = get(&format!("http://{}/streams/vod.m3u8", agent.listen)).await;
        assert_eq!(r.status, 302);
        assert_eq!(
            r.header("location"),
            Some(format!("/http/{}/{}", origin.authority(), fixtures::VOD_TS).as_str())
        );
        assert_eq!(
            get(&format!("http://{}/streams/nope.m3u8", agent.listen))
                .await
                .status,
            404
        );
        get(&mirror(
            agent.listen,
            &origin.authority(),
            "vod-ts/seg_000.ts",
        ))
        .await;
        let m = get(&format!("http://{}/metrics", agent.admin)).await;
        assert_eq!(m.status, 200);
        let text = m.text();
        assert!(text.contains("hivecast_agent_downloaded_bytes_total{source=\"origin\"}"));
        assert!(text.contains("hivecast_agent_served_bytes_total"));
        assert!(
            text.contains("hivecast_agent_origin_requests_total{kind=\"segment\",result=\"ok\"} 1")
        );
        assert_eq!(
            get(&format!("http://{}/healthz", agent.admin)).await.status,
            200
        );
        let stats: serde_json::Value = serde_json::from_slice(
            &get(&format!("http://{}/api/stats", agent.listen))
                .await
                .body,
        )
        .expect("json");
        assert!(stats["downloaded_bytes"]["origin"].as_u64().unwrap_or(0) > 0);
        agent.shutdown(Duration::from_secs(2)).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_hold_back_withholds_the_newest_segments_from_players() {
    tokio::time::timeout(TIMEOUT, async {
        let dir = std::env::temp_dir().join(format!("hivecast-holdback-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        // A live playlist of `n` segments ending at `last`.
        let live = |last: u64, n: u64| {
            let first = last + 1 - n;
            let mut s =
                format!("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{first}\n");
            for seq in first..=last {
                s.push_str(&format!("#EXTINF:2.0,\ns{seq}.ts\n"));
            }
            s
        };
        std::fs::write(dir.join("live.m3u8"), live(6, 6)).expect("write");
        std::fs::write(dir.join("short.m3u8"), live(2, 2)).expect("write");
        let origin = Origin::start(dir.clone()).await.expect("origin");
        let mut cfg = test_config(&[origin.base_url()]);
        cfg.playlist.live_hold_back = 2;
        let agent = start_agent(cfg).await;
        let url = mirror(agent.listen, &origin.authority(), "live.m3u8");
        let body = get(&url).await.text();
        assert!(body.ends_with("s4.ts\n"), "{body}");
        assert!(!body.contains("s5.ts") && !body.contains("s6.ts"), "{body}");
        // The origin moves on: the withheld segments come back, two behind the new edge.
        std::fs::write(dir.join("live.m3u8"), live(8, 6)).expect("write");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let body = get(&url).await.text();
        assert!(body.contains("#EXT-X-MEDIA-SEQUENCE:3\n"), "{body}");
        assert!(
            body.ends_with("s5.ts\ns6.ts\n") || body.ends_with("s6.ts\n"),
            "{body}"
        );
        assert!(body.contains("s5.ts") && !body.contains("s7.ts"), "{body}");
        // Too short to hold anything back: served whole, and counted.
        let short = get(&mirror(agent.listen, &origin.authority(), "short.m3u8"))
            .await
            .text();
        assert!(short.ends_with("s2.ts\n"), "{short}");
        let m = get(&format!("http://{}/metrics", agent.admin)).await.text();
        assert!(
            m.contains("hivecast_agent_playlist_hold_back_total{outcome=\"applied\"} 2"),
            "{m}"
        );
        assert!(
            m.contains("hivecast_agent_playlist_hold_back_total{outcome=\"short_window\"} 1"),
            "{m}"
        );
        agent.shutdown(Duration::from_secs(2)).await;
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await
    .expect("test timed out");
}

/// With P2P on, a segment is routed to its swarm from the moment the proxy has seen the
/// playlist that lists it, before the player gets that playlist. Before, the swarm task indexed
/// it when it got to the playlist; a player that asked at once was served around the swarm,
/// and the gap in its requests made the scheduler misplace its playhead by the player's whole
/// buffer (then fetch every later segment from the origin early). A current-thread runtime:
/// no other task runs between `observe_media_playlist` and the checks.
#[tokio::test]
async fn served_playlists_are_routed_to_their_swarm_at_once() {
    tokio::time::timeout(TIMEOUT, async {
        let (_fx, origin) = setup().await;
        let mut cfg = test_config(&[origin.base_url()]);
        // Nothing listens there: the tracker client retries in the background, swarms start.
        cfg.p2p.tracker = "ws://127.0.0.1:9/announce".into();
        let agent = start_agent(cfg).await;
        let p2p = agent.proxy.p2p().expect("P2P is on").clone();
        for rel in [fixtures::VOD_TS, fixtures::BYTERANGE] {
            let origin_url = Url::parse(&origin.url(&format!("/{rel}"))).expect("url");
            let body = get(origin_url.as_str()).await.body;
            let info = playlist::parse(
                &body,
                &origin_url,
                &Variables::default(),
                &playlist::Limits::default(),
            )
            .expect("origin playlist parses");
            let full = info.as_media().expect("a media playlist").clone();
            assert!(full.segments.len() >= 2, "{rel}");
            assert!(
                full.segments.iter().all(|s| !p2p.routes(s)),
                "{rel}: routed before any playlist was seen"
            );
            // A new swarm: routed before its task has run.
            let mut first = full.clone();
            let newest = first.segments.pop().expect("segments");
            p2p.observe_media_playlist(&origin_url, &origin_url, std::sync::Arc::new(first));
            for s in &full.segments[..full.segments.len() - 1] {
                assert!(p2p.routes(s), "{rel}: segment {} not routed", s.seq);
            }
            assert!(!p2p.routes(&newest));
            // A running swarm: a newly listed segment is routed before its task sees it.
            tokio::time::sleep(Duration::from_millis(50)).await;
            p2p.observe_media_playlist(&origin_url, &origin_url, std::sync::Arc::new(full));
            assert!(p2p.routes(&newest), "{rel}: the newest segment not routed");
        }
        agent.shutdown(Duration::from_secs(2)).await;
    })
    .await
    .expect("test timed out");
}
