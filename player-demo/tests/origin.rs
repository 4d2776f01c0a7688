//! End-to-end tests of the test origin over real sockets on 127.0.0.1.

mod common;

use std::time::{Duration, Instant};

use common::{TempDir, within};
use hivecast_demo::client::{ClientError, HttpClient};
use hivecast_demo::origin::{Fault, Origin, OriginConfig, OriginError, ResourceKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// 1000 bytes: byte i = i % 251 (so every slice is distinguishable).
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

fn setup() -> TempDir {
    let dir = TempDir::new("origin");
    let p = dir.path();
    std::fs::create_dir_all(p.join("live")).expect("mkdir");
    std::fs::create_dir_all(p.join("vod")).expect("mkdir");
    std::fs::write(p.join("live/index.m3u8"), "#EXTM3U\n").expect("write");
    std::fs::write(p.join("live/seg_00001.ts"), pattern(1000)).expect("write");
    std::fs::write(p.join("vod/seg_001.m4s"), pattern(300)).expect("write");
    std::fs::write(p.join("vod/init.mp4"), pattern(10)).expect("write");
    std::fs::write(p.join("vod/enc.key"), pattern(16)).expect("write");
    std::fs::write(p.join("vod/a.vtt"), "WEBVTT\n").expect("write");
    std::fs::write(p.join("vod/a.m4a"), pattern(5)).expect("write");
    std::fs::write(p.join("vod/a.aac"), pattern(5)).expect("write");
    std::fs::write(p.join("vod/x.json"), "{}").expect("write");
    std::fs::write(p.join("vod/empty.ts"), b"").expect("write");
    std::fs::write(p.join("vod/a b.ts"), pattern(3)).expect("write");
    dir
}

/// Sends a raw HTTP/1.1 request and reads until the server closes the connection.
async fn raw(origin: &Origin, request: &str) -> (String, Vec<u8>) {
    let mut s = TcpStream::connect(origin.addr()).await.expect("connect");
    s.write_all(request.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    // Errors (connection reset after an abort) just end the read.
    let _ = s.read_to_end(&mut buf).await;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response has a header block");
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    (head, buf[split + 4..].to_vec())
}

#[tokio::test]
async fn get_and_head_full_file() {
    within(30, async {
        let dir = setup();
        let origin = Origin::start(dir.path()).await.expect("start");
        let c = HttpClient::default();
        let r = c
            .get(&origin.url("/live/seg_00001.ts"), &[])
            .await
            .expect("get");
        assert_eq!(r.status, 200);
        assert_eq!(r.body.as_ref(), pattern(1000).as_slice());
        assert_eq!(r.header("content-type"), Some("video/mp2t"));
        assert_eq!(r.header("content-length"), Some("1000"));
        assert_eq!(r.header("accept-ranges"), Some("bytes"));
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
        assert!(r.header("etag").is_some());
        assert!(
            r.header("last-modified")
                .is_some_and(|v| v.ends_with(" GMT"))
        );

        let h = c
            .head(&origin.url("live/seg_00001.ts"), &[])
            .await
            .expect("head");
        assert_eq!(h.status, 200);
        assert_eq!(h.header("content-length"), Some("1000"));
        assert!(h.body.is_empty());

        assert_eq!(origin.requests("/live/seg_00001.ts"), 2);
        assert_eq!(
            origin.bytes("/live/seg_00001.ts"),
            1000,
            "HEAD counts no bytes"
        );
        origin.stop().await;
    })
    .await;
}

#[tokio::test]
async fn range_requests() {
    within(30, async {
        let dir = setup();
        let origin = Origin::start(dir.path()).await.expect("start");
        let c = HttpClient::default();
        let url = origin.url("/live/seg_00001.ts");
        let full = pattern(1000);

        let cases: &[(&str, u16, Option<&str>, std::ops::Range<usize>)] = &[
            ("bytes=0-9", 206, Some("bytes 0-9/1000"), 0..10),
            ("bytes=990-", 206, Some("bytes 990-999/1000"), 990..1000),
            ("bytes=-5", 206, Some("bytes 995-999/1000"), 995..1000),
            ("bytes=-5000", 206, Some("bytes 0-999/1000"), 0..1000),
            (
                "bytes=500-99999",
                206,
                Some("bytes 500-999/1000"),
                500..1000,
            ),
            ("bytes=999-999", 206, Some("bytes 999-999/1000"), 999..1000),
            ("bytes=0-1,5-6", 200, None, 0..1000),
            ("bytes=9-3", 200, None, 0..1000),
            ("pages=1-2", 200, None, 0..1000),
        ];
        for (range, status, content_range, slice) in cases {
            let r = c.get(&url, &[("range", range)]).await.expect("get");
            assert_eq!(r.status, *status, "{range}");
            assert_eq!(r.header("content-range"), *content_range, "{range}");
            assert_eq!(r.body.as_ref(), &full[slice.clone()], "{range}");
            assert_eq!(
                r.header("content-length"),
                Some(slice.len().to_string().as_str()),
                "{range}"
            );
        }

        for range in ["bytes=1000-", "bytes=5000-6000", "bytes=-0"] {
            let r = c.get(&url, &[("range", range)]).await.expect("get");
            assert_eq!(r.status, 416, "{range}");
            assert_eq!(r.header("content-range"), Some("bytes */1000"), "{range}");
            assert!(r.body.is_empty());
        }
        let empty = origin.url("/vod/empty.ts");
        let r = c.get(&empty, &[("range", "bytes=0-")]).await.expect("get");
        assert_eq!(r.status, 416);
        assert_eq!(r.header("content-range"), Some("bytes */0"));
        let r = c.get(&empty, &[]).await.expect("get");
        assert_eq!(r.status, 200);
        assert!(r.body.is_empty());

        let h = c
            .head(&url, &[("range", "bytes=10-19")])
            .await
            .expect("head");
        assert_eq!(h.status, 206);
        assert_eq!(h.header("content-range"), Some("bytes 10-19/1000"));
        assert_eq!(h.header("content-length"), Some("10"));

        assert_eq!(
            origin.bytes("/live/seg_00001.ts"),
            10 + 10 + 5 + 1000 + 500 + 1 + 3000
        );
        origin.stop().await;
    })
    .await;
}

#[tokio::test]
async fn content_types_and_kinds() {
    within(30, async {
        let dir = setup();
        let origin = Origin::start(dir.path()).await.expect("start");
        let c = HttpClient::default();
        let cases = [
            (
                "/live/index.m3u8",
                "application/vnd.apple.mpegurl",
                ResourceKind::Playlist,
            ),
            ("/live/seg_00001.ts", "video/mp2t", ResourceKind::Segment),
            (
                "/vod/seg_001.m4s",
                "video/iso.segment",
                ResourceKind::Segment,
            ),
            ("/vod/init.mp4", "video/mp4", ResourceKind::Init),
            (
                "/vod/enc.key",
                "application/octet-stream",
                ResourceKind::Key,
            ),
            (
                "/vod/a.vtt",
                "text/vtt; charset=utf-8",
                ResourceKind::Subtitles,
            ),
            ("/vod/a.m4a", "audio/mp4", ResourceKind::Segment),
            ("/vod/a.aac", "audio/aac", ResourceKind::Segment),
            ("/vod/x.json", "application/json", ResourceKind::Other),
        ];
        for (path, ct, _) in cases {
            let r = c.get(&origin.url(path), &[]).await.expect("get");
            assert_eq!(r.status, 200, "{path}");
            assert_eq!(r.header("content-type"), Some(ct), "{path}");
        }
        let key = c.get(&origin.url("/vod/enc.key"), &[]).await.expect("get");
        assert_eq!(key.header("cache-control"), Some("private, no-store"));
        let pl = c
            .get(&origin.url("/live/index.m3u8"), &[])
            .await
            .expect("get");
        assert_eq!(pl.header("cache-control"), Some("no-cache"));

        assert_eq!(origin.kind_requests(ResourceKind::Playlist), 2);
        assert_eq!(origin.kind_requests(ResourceKind::Segment), 4);
        assert_eq!(origin.kind(ResourceKind::Key).requests, 2);
        assert_eq!(origin.kind(ResourceKind::Key).bytes, 32);
        assert_eq!(origin.kind_requests(ResourceKind::Init), 1);
        assert_eq!(origin.total_requests(), 11);
        let stats = origin.stats();
        assert_eq!(stats.total.requests, 11);
        assert_eq!(stats.by_path["/vod/enc.key"].requests, 2);
        let json = serde_json::to_string(&stats).expect("json");
        assert!(json.contains("\"playlist\""), "{json}");

        origin.reset_counters();
        assert_eq!(origin.total_requests(), 0);
        assert!(origin.request_log().is_empty());
        origin.stop().await;
    })
    .await;
}

#[tokio::test]
async fn errors_and_traversal() {
    within(30, async {
        let dir = setup();
        let outside = TempDir::new("outside");
        std::fs::write(outside.path().join("secret.ts"), b"secret").expect("write");
        std::os::unix::fs::symlink(outside.path().join("secret.ts"), dir.path().join("link.ts"))
            .expect("symlink");
        let origin = Origin::start(dir.path()).await.expect("start");
        let c = HttpClient::default();

        assert_eq!(
            c.get(&origin.url("/nope.ts"), &[])
                .await
                .expect("get")
                .status,
            404
        );
        assert_eq!(
            c.get(&origin.url("/live"), &[]).await.expect("get").status,
            404
        );
        assert_eq!(
            c.get(&origin.url("/link.ts"), &[])
                .await
                .expect("get")
                .status,
            403
        );
        assert_eq!(
            c.get(&origin.url("/%zz.ts"), &[])
                .await
                .expect("get")
                .status,
            400
        );
        assert_eq!(
            c.get(&origin.url("/%2e%2e/x.ts"), &[])
                .await
                .expect("get")
                .status,
            403
        );
        let spaced = c.get(&origin.url("/vod/a%20b.ts"), &[]).await.expect("get");
        assert_eq!(spaced.status, 200);
        assert_eq!(origin.requests("/vod/a b.ts"), 1);

        let (head, _) = raw(
            &origin,
            "GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 403"), "{head}");
        let (head, _) = raw(
            &origin,
            "GET /live/..%5c..%5cetc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 403"), "{head}");

        let r = c
            .request(http::Method::POST, &origin.url("/live/index.m3u8"), &[])
            .await
            .expect("post");
        assert_eq!(r.status, 405);
        assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"));

        let r = c
            .request(
                http::Method::OPTIONS,
                &origin.url("/live/seg_00001.ts"),
                &[],
            )
            .await
            .expect("options");
        assert_eq!(r.status, 204);
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
        assert!(
            r.header("access-control-allow-headers")
                .is_some_and(|v| v.contains("Range"))
        );

        let log = origin.request_log();
        assert!(
            log.iter()
                .any(|r| r.path == "/nope.ts" && r.status == Some(404))
        );

        assert!(matches!(
            Origin::start(dir.path().join("missing")).await,
            Err(OriginError::Root { .. })
        ));
        assert!(matches!(
            Origin::start(dir.path().join("live/index.m3u8")).await,
            Err(OriginError::Root { .. })
        ));
        let mut cfg = OriginConfig::new(dir.path());
        cfg.bind = origin.addr();
        assert!(matches!(
            Origin::start_with(cfg).await,
            Err(OriginError::Bind { .. })
        ));
        origin.stop().await;
    })
    .await;
}

#[tokio::test]
async fn conditional_requests() {
    within(30, async {
        let dir = setup();
        let origin = Origin::start(dir.path()).await.expect("start");
        let c = HttpClient::default();
        let url = origin.url("/live/index.m3u8");
        let r = c.get(&url, &[]).await.expect("get");
        let etag = r.header("etag").expect("etag").to_string();
        let r = c.get(&url, &[("if-none-match", &etag)]).await.expect("get");
        assert_eq!(r.status, 304);
        assert!(r.body.is_empty());
        let r = c
            .get(&url, &[("if-none-match", "\"other\"")])
            .await
            .expect("get");
        assert_eq!(r.status, 200);
        origin.stop().await;
    })
    .await;
}

#[tokio::test]
async fn status_delay_redirect_and_content_type_faults() {
    within(30, async {
        let dir = setup();
        let origin = Origin::start(dir.path()).await.expect("start");
        let c = HttpClient::default();
        let seg = origin.url("/live/seg_00001.ts");

        origin.set_fault("/live/", Fault::Status(503));
        assert_eq!(c.get(&seg, &[]).await.expect("get").status, 503);
        assert_eq!(c.get(&seg, &[]).await.expect("get").status, 503);
        // The longest prefix wins.
        origin.set_fault("/live/seg_", Fault::Status(404));
        assert_eq!(c.get(&seg, &[]).await.expect("get").status, 404);
        origin.clear_fault("/live/seg_");
        assert_eq!(c.get(&seg, &[]).await.expect("get").status, 503);
        origin.clear_faults();
        assert_eq!(c.get(&seg, &[]).await.expect("get").status, 200);

        origin.set_fault_times("live", Fault::Status(500), 2);
        assert_eq!(c.get(&seg, &[]).await.expect("get").status, 500);
        assert_eq!(c.get(&seg, &[]).await.expect("get").status, 500);
        assert_eq!(c.get(&seg, &[]).await.expect("get").status, 200);
        origin.set_fault_times("/live", Fault::Status(500), 0);
        assert_eq!(c.get(&seg, &[]).await.expect("get").status, 200);

        origin.set_fault_times("/live/", Fault::Delay(Duration::from_millis(300)), 1);
        let t = Instant::now();
        let r = c.get(&seg, &[]).await.expect("get");
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), 1000);
        assert!(t.elapsed() >= Duration::from_millis(300));

        origin.set_fault(
            "/live/seg_00001.ts",
            Fault::Redirect {
                location: "/vod/seg_001.m4s".into(),
            },
        );
        let r = c.get(&seg, &[]).await.expect("get");
        assert_eq!(r.status, 302);
        assert_eq!(r.header("location"), Some("/vod/seg_001.m4s"));
        origin.set_fault(
            "/live/",
            Fault::RedirectPrefix {
                to: "http://other.test:8080/mirror/".into(),
            },
        );
        origin.clear_fault("/live/seg_00001.ts");
        let r = c.get(&format!("{seg}?token=abc"), &[]).await.expect("get");
        assert_eq!(r.status, 302);
        assert_eq!(
            r.header("location"),
            Some("http://other.test:8080/mirror/seg_00001.ts?token=abc")
        );
        origin.clear_faults();

        origin.set_fault("/live/index", Fault::ContentType("text/plain".into()));
        let r = c
            .get(&origin.url("/live/index.m3u8"), &[])
            .await
            .expect("get");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("text/plain"));
        assert_eq!(r.body.as_ref(), b"#EXTM3U\n");

        origin.set_fault("/vod/", Fault::Status(42));
        let r = c.get(&origin.url("/vod/a.aac"), &[]).await.expect("get");
        assert_eq!(r.status, 500, "invalid status codes become 500");

        let log = origin.request_log();
        assert!(
            log.iter()
                .any(|r| r.fault == Some(Fault::Status(503)) && r.status == Some(503))
        );
        assert!(log.iter().any(|r| r.query.as_deref() == Some("token=abc")));
        origin.stop().await;
    })
    .await;
}

#[tokio::test]
async fn truncate_fault_advertises_full_length_and_closes() {
    within(30, async {
        let dir = setup();
        let origin = Origin::start(dir.path()).await.expect("start");
        origin.set_fault("/live/seg_00001.ts", Fault::Truncate { after: 100 });
        let (head, body) = raw(
            &origin,
            "GET /live/seg_00001.ts HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(
            head.to_ascii_lowercase().contains("content-length: 1000"),
            "{head}"
        );
        assert_eq!(body, pattern(1000)[..100].to_vec());
        assert_eq!(origin.bytes("/live/seg_00001.ts"), 100);

        // With a range: 206 advertising 500 bytes, 100 sent.
        let (head, body) = raw(
            &origin,
            "GET /live/seg_00001.ts HTTP/1.1\r\nHost: x\r\nRange: bytes=500-\r\n\r\n",
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 206"), "{head}");
        assert!(
            head.to_ascii_lowercase().contains("content-length: 500"),
            "{head}"
        );
        assert_eq!(body, pattern(1000)[500..600].to_vec());

        // A client sees an error, never a short success.
        let c = HttpClient::default();
        let err = c
            .get(&origin.url("/live/seg_00001.ts"), &[])
            .await
            .expect_err("truncated");
        assert!(
            matches!(
                err,
                ClientError::Body { .. } | ClientError::ShortBody { .. }
            ),
            "{err}"
        );

        origin.set_fault("/vod/", Fault::Truncate { after: 0 });
        let (head, body) = raw(&origin, "GET /vod/seg_001.m4s HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(
            head.to_ascii_lowercase().contains("content-length: 300"),
            "{head}"
        );
        assert!(body.is_empty());
        origin.stop().await;
    })
    .await;
}

#[tokio::test]
async fn hang_fault_never_answers_and_stop_ends_it() {
    within(30, async {
        let dir = setup();
        let origin = Origin::start(dir.path()).await.expect("start");
        origin.set_fault("/live/", Fault::Hang);
        let c = HttpClient::new(Duration::from_millis(400));
        let err = c
            .get(&origin.url("/live/index.m3u8"), &[])
            .await
            .expect_err("hang");
        assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
        assert_eq!(origin.requests("/live/index.m3u8"), 1);
        // Other paths still work while a request hangs.
        let c2 = HttpClient::default();
        assert_eq!(
            c2.get(&origin.url("/vod/a.aac"), &[])
                .await
                .expect("get")
                .status,
            200
        );
        let log = origin.request_log();
        assert!(
            log.iter()
                .any(|r| r.fault == Some(Fault::Hang) && r.status.is_none())
        );

        // A hanging request must not keep stop() from finishing.
        let mut s = TcpStream::connect(origin.addr()).await.expect("connect");
        s.write_all(b"GET /live/x HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        origin.wait_for_requests("/live/x", 1).await;
        let addr = origin.addr();
        origin.stop().await;
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf).await;
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "listener closed after stop"
        );
    })
    .await;
}

#[tokio::test]
async fn throttle_fault_slows_the_body() {
    within(30, async {
        let dir = setup();
        let origin = Origin::start(dir.path()).await.expect("start");
        origin.set_fault(
            "/live/",
            Fault::Throttle {
                bytes_per_sec: 2000,
            },
        );
        let c = HttpClient::default();
        let t = Instant::now();
        let r = c
            .get(&origin.url("/live/seg_00001.ts"), &[])
            .await
            .expect("get");
        assert_eq!(r.body.as_ref(), pattern(1000).as_slice());
        // 1000 bytes at 2000 B/s in 100-byte chunks every 50 ms: ~450 ms.
        assert!(
            t.elapsed() >= Duration::from_millis(400),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(origin.bytes("/live/seg_00001.ts"), 1000);
        origin.stop().await;
    })
    .await;
}

#[tokio::test]
async fn wait_for_requests_wakes_on_request_and_drop_stops() {
    within(30, async {
        let dir = setup();
        let origin = Origin::start(dir.path()).await.expect("start");
        let url = origin.url("/live/index.m3u8");
        let waiter = origin.wait_for_requests("/live/index.m3u8", 2);
        let client = async {
            let c = HttpClient::default();
            c.get(&url, &[]).await.expect("get");
            c.get(&url, &[]).await.expect("get");
        };
        tokio::join!(waiter, client);
        assert_eq!(origin.requests("live/index.m3u8"), 2);

        let addr = origin.addr();
        drop(origin);
        // Dropping cancels the accept loop; new connections are refused once it has exited.
        let mut refused = false;
        for _ in 0..10_000 {
            if TcpStream::connect(addr).await.is_err() {
                refused = true;
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(refused, "listener still accepting after drop");
    })
    .await;
}
