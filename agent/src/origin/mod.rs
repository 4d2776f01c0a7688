//! HTTP client for origins: pooled HTTP/1.1 and HTTP/2 over rustls, timeouts for connect,
//! response head and body silence, retries with backoff for idempotent failures, redirects
//! (re-checked against the allow-list), and strict body-length checks.
//!
//! A body that ends before its `Content-Length`, or is cut off, is an error: callers never
//! get partial bytes, so nothing partial is cached, shared or served as complete.
//!
//! This module knows nothing of peers, swarms or playlists.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use url::Url;

use crate::config::{AllowedOrigin, OriginConfig};
use crate::metrics::{Metrics, RequestKind, RequestResult};

/// Why an origin fetch failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum OriginError {
    /// The URL's origin is not on the allow-list.
    #[error("origin {0} is not allowed")]
    NotAllowed(String),
    /// The origin answered with an error status.
    #[error("origin answered {0}")]
    Status(u16),
    /// No connection could be made (DNS, TCP, TLS).
    #[error("cannot connect to origin: {0}")]
    Connect(String),
    /// No response head, or a silent body, within the timeout.
    #[error("origin timed out ({0})")]
    Timeout(&'static str),
    /// The body ended before `Content-Length`, or the connection broke mid-body.
    #[error("origin body cut off after {received} of {expected} bytes")]
    Truncated {
        /// Bytes received.
        received: u64,
        /// Bytes announced (0 when unknown).
        expected: u64,
    },
    /// The body is larger than the configured limit.
    #[error("origin body larger than the {0}-byte limit")]
    TooLarge(u64),
    /// Too many redirects, or a redirect without a usable `Location`.
    #[error("bad redirect: {0}")]
    Redirect(String),
    /// A `206` whose `Content-Range` does not match what was asked for.
    #[error("origin range response does not match the request: {0}")]
    BadRange(String),
    /// Anything else that makes the response unusable.
    #[error("invalid origin response: {0}")]
    Invalid(String),
}

impl OriginError {
    /// Whether retrying the same idempotent request may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            OriginError::Connect(_) | OriginError::Timeout(_) | OriginError::Truncated { .. } => {
                true
            }
            OriginError::Status(s) => matches!(s, 502..=504),
            _ => false,
        }
    }

    /// The metric label for this failure.
    pub fn result_label(&self) -> RequestResult {
        match self {
            OriginError::Status(s) if *s >= 500 => RequestResult::ServerError,
            OriginError::Status(_) => RequestResult::ClientError,
            OriginError::Connect(_) => RequestResult::Connect,
            OriginError::Timeout(_) => RequestResult::Timeout,
            OriginError::Truncated { .. } => RequestResult::Truncated,
            OriginError::TooLarge(_) => RequestResult::TooLarge,
            _ => RequestResult::Other,
        }
    }
}

/// A byte range `[start, start + len)` of a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// Number of bytes (at least 1).
    pub len: u64,
}

/// What to fetch.
#[derive(Debug, Clone)]
pub struct FetchRequest {
    /// Absolute origin URL.
    pub url: Url,
    /// What it is (for metrics and limits).
    pub kind: RequestKind,
    /// Largest body accepted.
    pub max_bytes: u64,
    /// Only this range of the resource.
    pub range: Option<ByteRange>,
    /// Sees the body's bytes as they arrive (see [`BodyTap`]).
    pub tap: Option<BodyTap>,
}

/// Sees a response body while it arrives, so an origin fetch can be shared before it is whole
/// (cut-through of origin units). It is called with each data frame of a 2xx body, the frame's
/// offset in that body and the body's announced length (`Content-Length`), before the length
/// and size checks of the whole body: what it sees is untrusted until verified. A retried
/// attempt starts again at offset 0. It must not block (it runs in the fetch).
#[derive(Clone)]
pub struct BodyTap(Arc<TapFn>);

/// `f(offset, frame, announced_len)`, see [`BodyTap`].
type TapFn = dyn Fn(u64, &Bytes, Option<u64>) + Send + Sync;

impl BodyTap {
    /// A tap calling `f(offset, frame, announced_len)`.
    pub fn new(f: impl Fn(u64, &Bytes, Option<u64>) + Send + Sync + 'static) -> Self {
        BodyTap(Arc::new(f))
    }
}

impl std::fmt::Debug for BodyTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BodyTap")
    }
}

/// A complete, length-checked origin response.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Final status (2xx).
    pub status: StatusCode,
    /// URL after redirects: the base for relative URIs.
    pub final_url: Url,
    /// `Content-Type` from the origin, if any.
    pub content_type: Option<HeaderValue>,
    /// `Cache-Control` from the origin, if any.
    pub cache_control: Option<HeaderValue>,
    /// The whole body (or the requested range).
    pub body: Bytes,
    /// Length of the whole resource: the body length, or the total from `Content-Range`
    /// when a range was fetched and the origin stated it.
    pub resource_len: Option<u64>,
    /// Time from the first request to the last body byte.
    pub elapsed: Duration,
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// The origin client. Cheap to clone.
#[derive(Clone)]
pub struct OriginClient {
    client: HttpsClient,
    cfg: Arc<OriginConfig>,
    allow: Arc<Vec<AllowedOrigin>>,
    metrics: Metrics,
}

impl std::fmt::Debug for OriginClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OriginClient")
            .field("allow", &self.allow)
            .finish_non_exhaustive()
    }
}

impl OriginClient {
    /// Builds a client with webpki roots. `extra_roots` adds trust anchors (DER), for origins
    /// with private CAs and for tests.
    pub fn new(
        cfg: &OriginConfig,
        allow: Vec<AllowedOrigin>,
        extra_roots: &[Vec<u8>],
        metrics: Metrics,
    ) -> Result<Self, OriginError> {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        for der in extra_roots {
            roots
                .add(rustls::pki_types::CertificateDer::from(der.clone()))
                .map_err(|e| OriginError::Invalid(format!("bad extra root certificate: {e}")))?;
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| OriginError::Invalid(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(cfg.connect_timeout));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(cfg.pool_max_idle_per_host)
            .pool_idle_timeout(Duration::from_secs(60))
            .build(https);
        Ok(Self {
            client,
            cfg: Arc::new(cfg.clone()),
            allow: Arc::new(allow),
            metrics,
        })
    }

    /// Whether `url` belongs to an allowed origin.
    pub fn is_allowed(&self, url: &Url) -> bool {
        AllowedOrigin::of(url).is_some_and(|o| self.allow.contains(&o))
    }

    /// Fetches a whole resource (or range), with retries and redirects, within
    /// `origin.total_timeout`.
    pub async fn fetch(&self, req: &FetchRequest) -> Result<Fetched, OriginError> {
        let started = Instant::now();
        let outcome = tokio::time::timeout(
            self.cfg.total_timeout,
            self.fetch_with_retries(req, started),
        )
        .await;
        let result = match outcome {
            Ok(r) => r,
            Err(_) => Err(OriginError::Timeout("total")),
        };
        match &result {
            Ok(_) => self.metrics.origin_request(req.kind, RequestResult::Ok),
            Err(e) => self.metrics.origin_request(req.kind, e.result_label()),
        }
        result
    }

    async fn fetch_with_retries(
        &self,
        req: &FetchRequest,
        started: Instant,
    ) -> Result<Fetched, OriginError> {
        let mut attempt = 0;
        loop {
            match self.fetch_following_redirects(req, started).await {
                Ok(f) => return Ok(f),
                Err(e) if e.is_retryable() && attempt < self.cfg.retries => {
                    let delay = self.cfg.retry_backoff.saturating_mul(1 << attempt.min(10));
                    tracing::debug!(url = %redact(&req.url), error = %e, attempt, "origin fetch failed, retrying");
                    attempt += 1;
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn fetch_following_redirects(
        &self,
        req: &FetchRequest,
        started: Instant,
    ) -> Result<Fetched, OriginError> {
        let mut url = req.url.clone();
        for _ in 0..=self.cfg.max_redirects {
            if !self.is_allowed(&url) {
                return Err(OriginError::NotAllowed(origin_label(&url)));
            }
            let mut builder = Request::builder()
                .method(Method::GET)
                .uri(url.as_str())
                .header(header::USER_AGENT, &self.cfg.user_agent)
                .header(header::ACCEPT_ENCODING, "identity");
            if let Some(r) = req.range {
                builder = builder.header(
                    header::RANGE,
                    format!("bytes={}-{}", r.start, r.start + r.len - 1),
                );
            }
            let request = builder
                .body(Empty::new())
                .map_err(|e| OriginError::Invalid(e.to_string()))?;
            let response =
                match tokio::time::timeout(self.cfg.header_timeout, self.client.request(request))
                    .await
                {
                    Err(_) => return Err(OriginError::Timeout("response head")),
                    Ok(Err(e)) => return Err(classify_client_error(&e)),
                    Ok(Ok(r)) => r,
                };
            let status = response.status();
            if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
                let location = response
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| OriginError::Redirect(format!("{status} without Location")))?;
                url = url
                    .join(location)
                    .map_err(|e| OriginError::Redirect(format!("bad Location: {e}")))?;
                continue;
            }
            if !status.is_success() {
                return Err(OriginError::Status(status.as_u16()));
            }
            let (parts, body) = response.into_parts();
            if let Some(r) = req.range {
                check_content_range(&parts.headers, status, r)?;
            }
            let expected = content_length(&parts.headers);
            if expected.is_some_and(|len| len > req.max_bytes) {
                return Err(OriginError::TooLarge(req.max_bytes));
            }
            let body = read_body(
                body,
                expected,
                req.max_bytes,
                self.cfg.body_idle_timeout,
                req.tap.as_ref(),
            )
            .await?;
            let resource_len = match req.range {
                None => Some(body.len() as u64),
                Some(_) => parts
                    .headers
                    .get(header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.rsplit_once('/'))
                    .and_then(|(_, t)| t.trim().parse().ok()),
            };
            return Ok(Fetched {
                resource_len,
                status,
                final_url: url,
                content_type: parts.headers.get(header::CONTENT_TYPE).cloned(),
                cache_control: parts.headers.get(header::CACHE_CONTROL).cloned(),
                body,
                elapsed: started.elapsed(),
            });
        }
        Err(OriginError::Redirect(format!(
            "more than {} redirects",
            self.cfg.max_redirects
        )))
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn check_content_range(
    headers: &HeaderMap,
    status: StatusCode,
    r: ByteRange,
) -> Result<(), OriginError> {
    if status != StatusCode::PARTIAL_CONTENT {
        return Err(OriginError::BadRange(format!(
            "asked for a range, got {status}"
        )));
    }
    let v = headers
        .get(header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| OriginError::BadRange("206 without Content-Range".into()))?;
    // `bytes first-last/complete`. A range that runs past the end of the resource is
    // answered up to its end (RFC 9110 §14.1.2), so a shorter answer is right exactly when it
    // ends the resource: a striped segment's last unit asks for whole chunks without knowing
    // the segment's length.
    let asked_last = r.start + r.len - 1;
    let parsed = v
        .strip_prefix("bytes ")
        .and_then(|rest| rest.split_once('/'))
        .and_then(|(span, complete)| {
            let (first, last) = span.split_once('-')?;
            let first: u64 = first.trim().parse().ok()?;
            let last: u64 = last.trim().parse().ok()?;
            let complete: Option<u64> = complete.trim().parse().ok();
            Some((first, last, complete))
        });
    let ok = match parsed {
        Some((first, last, complete)) => {
            first == r.start
                && last >= first
                && (last == asked_last || (last < asked_last && complete == Some(last + 1)))
        }
        None => false,
    };
    if !ok {
        return Err(OriginError::BadRange(format!(
            "got `{v}`, wanted `bytes {}-{asked_last}/*` (or one ending the resource)",
            r.start
        )));
    }
    Ok(())
}

async fn read_body(
    mut body: hyper::body::Incoming,
    expected: Option<u64>,
    max: u64,
    idle: Duration,
    tap: Option<&BodyTap>,
) -> Result<Bytes, OriginError> {
    let mut buf = BytesMut::with_capacity(expected.unwrap_or(64 * 1024).min(max) as usize);
    loop {
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Err(OriginError::Timeout("body")),
            Ok(None) => break,
            Ok(Some(Err(_))) => {
                return Err(OriginError::Truncated {
                    received: buf.len() as u64,
                    expected: expected.unwrap_or(0),
                });
            }
            Ok(Some(Ok(f))) => f,
        };
        if let Ok(data) = frame.into_data() {
            if (buf.len() + data.len()) as u64 > max {
                return Err(OriginError::TooLarge(max));
            }
            if let Some(t) = tap {
                (t.0)(buf.len() as u64, &data, expected);
            }
            buf.extend_from_slice(&data);
        }
    }
    if let Some(len) = expected
        && buf.len() as u64 != len
    {
        return Err(OriginError::Truncated {
            received: buf.len() as u64,
            expected: len,
        });
    }
    Ok(buf.freeze())
}

fn classify_client_error(e: &hyper_util::client::legacy::Error) -> OriginError {
    if e.is_connect() {
        OriginError::Connect(root_cause(e))
    } else {
        // The request was sent but the exchange failed (reset, closed before the head).
        OriginError::Connect(format!("exchange failed: {}", root_cause(e)))
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur: &dyn std::error::Error = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// `scheme://host:port` of a URL, for messages (never the path or query, which may carry
/// tokens).
pub fn origin_label(url: &Url) -> String {
    match AllowedOrigin::of(url) {
        Some(o) if o.host.contains(':') => format!("{}://[{}]:{}", o.scheme, o.host, o.port),
        Some(o) => format!("{}://{}:{}", o.scheme, o.host, o.port),
        None => url.scheme().to_string(),
    }
}

/// A URL safe to log: origin and path, query replaced by `?…` (queries carry tokens).
pub fn redact(url: &Url) -> String {
    let q = if url.query().is_some() { "?…" } else { "" };
    format!("{}{}{}", origin_label(url), url.path(), q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_classification() {
        assert!(OriginError::Status(503).is_retryable());
        assert!(OriginError::Timeout("body").is_retryable());
        assert!(
            OriginError::Truncated {
                received: 1,
                expected: 2
            }
            .is_retryable()
        );
        assert!(!OriginError::Status(404).is_retryable());
        assert!(!OriginError::TooLarge(1).is_retryable());
        assert!(!OriginError::NotAllowed("x".into()).is_retryable());
    }

    #[test]
    fn redaction_hides_query_tokens() {
        let u = Url::parse("https://cdn.test/live/seg.ts?token=secret").expect("url");
        let r = redact(&u);
        assert!(!r.contains("secret"));
        assert_eq!(r, "https://cdn.test:443/live/seg.ts?…");
    }

    /// Serves one raw HTTP/1.1 response on 127.0.0.1, written in pieces with pauses so the
    /// client sees several body frames.
    async fn serve_once(head: String, body: Vec<u8>, cut_at: Option<usize>) -> Url {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.expect("accept");
            let mut req = [0u8; 2048];
            let _ = sock.read(&mut req).await;
            sock.write_all(head.as_bytes()).await.expect("head");
            let end = cut_at.unwrap_or(body.len());
            for piece in body[..end].chunks(3000) {
                sock.write_all(piece).await.expect("body");
                sock.flush().await.expect("flush");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            // A cut-off body: the connection closes short of the announced length.
        });
        Url::parse(&format!("http://{addr}/seg.ts")).expect("url")
    }

    fn tapped_client(url: &Url) -> OriginClient {
        let cfg = OriginConfig {
            retries: 0,
            ..OriginConfig::default()
        };
        let allow = vec![AllowedOrigin::of(url).expect("origin")];
        OriginClient::new(&cfg, allow, &[], Metrics::new()).expect("client")
    }

    type Seen = Arc<std::sync::Mutex<Vec<(u64, Vec<u8>, Option<u64>)>>>;

    fn recording_tap() -> (BodyTap, Seen) {
        let seen: Seen = Arc::default();
        let s = seen.clone();
        let tap = BodyTap::new(move |offset, data, announced| {
            s.lock()
                .expect("lock")
                .push((offset, data.to_vec(), announced));
        });
        (tap, seen)
    }

    #[tokio::test]
    async fn a_body_tap_sees_every_frame_in_order_with_its_offset() {
        let body: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        let head = format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes 100-{}/50000\r\n\r\n",
            body.len(),
            100 + body.len() - 1
        );
        let url = serve_once(head, body.clone(), None).await;
        let (tap, seen) = recording_tap();
        let req = FetchRequest {
            url: url.clone(),
            kind: RequestKind::Segment,
            max_bytes: 1 << 20,
            range: Some(ByteRange {
                start: 100,
                len: body.len() as u64,
            }),
            tap: Some(tap),
        };
        let f = tapped_client(&url).fetch(&req).await.expect("fetch");
        assert_eq!(&f.body[..], &body[..]);
        let seen = seen.lock().expect("lock");
        assert!(
            seen.len() > 1,
            "the body came in one frame; the test needs several"
        );
        let mut joined = Vec::new();
        for (offset, data, announced) in seen.iter() {
            assert_eq!(
                *offset,
                joined.len() as u64,
                "frames in order, without gaps"
            );
            assert_eq!(*announced, Some(body.len() as u64));
            joined.extend_from_slice(data);
        }
        assert_eq!(joined, body);
    }

    #[tokio::test]
    async fn a_cut_off_body_is_an_error_although_the_tap_saw_its_head() {
        let body: Vec<u8> = (0..20_000u32).map(|i| (i % 13) as u8).collect();
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let url = serve_once(head, body.clone(), Some(9_000)).await;
        let (tap, seen) = recording_tap();
        let req = FetchRequest {
            url: url.clone(),
            kind: RequestKind::Segment,
            max_bytes: 1 << 20,
            range: None,
            tap: Some(tap),
        };
        let err = tapped_client(&url).fetch(&req).await.expect_err("cut off");
        assert!(
            matches!(
                err,
                OriginError::Truncated {
                    expected: 20_000,
                    ..
                }
            ),
            "{err:?}"
        );
        let seen: usize = seen.lock().expect("lock").iter().map(|s| s.1.len()).sum();
        assert_eq!(seen, 9_000, "the tap saw exactly the bytes that came");
    }

    #[test]
    fn content_range_must_match() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_static("bytes 10-19/100"),
        );
        let r = ByteRange { start: 10, len: 10 };
        assert!(check_content_range(&h, StatusCode::PARTIAL_CONTENT, r).is_ok());
        assert!(check_content_range(&h, StatusCode::OK, r).is_err());
        let r2 = ByteRange { start: 11, len: 10 };
        assert!(check_content_range(&h, StatusCode::PARTIAL_CONTENT, r2).is_err());
        // Asked past the end: an answer that ends the resource is right, one that stops
        // short of both the asked end and the resource end is not.
        let past = ByteRange {
            start: 10,
            len: 500,
        };
        let mut end = HeaderMap::new();
        end.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_static("bytes 10-99/100"),
        );
        assert!(check_content_range(&end, StatusCode::PARTIAL_CONTENT, past).is_ok());
        assert!(check_content_range(&h, StatusCode::PARTIAL_CONTENT, past).is_err());
        let mut unknown = HeaderMap::new();
        unknown.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_static("bytes 10-99/*"),
        );
        assert!(check_content_range(&unknown, StatusCode::PARTIAL_CONTENT, past).is_err());
        for bad in [
            "bytes 10-/100",
            "bytes x-19/100",
            "items 10-19/100",
            "bytes 19-10/100",
        ] {
            let mut b = HeaderMap::new();
            b.insert(header::CONTENT_RANGE, HeaderValue::from_str(bad).unwrap());
            assert!(
                check_content_range(&b, StatusCode::PARTIAL_CONTENT, r).is_err(),
                "{bad}"
            );
        }
    }
}
