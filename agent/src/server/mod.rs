//! The local HLS endpoint (and the admin endpoint) on hyper.
//!
//! This layer owns HTTP concerns only: methods, `Range`/`206`/`416`, `HEAD`, CORS with
//! preflight, content types, cache headers, `Age`, and error statuses with a one-line reason.
//! What to serve is decided by a [`Backend`]; the server knows nothing of peers, origins or
//! the scheduler.

pub mod mime;
pub mod range;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use range::{RangeSpec, Resolved};

/// How a response may be cached by the player.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachePolicy {
    /// Segments and init segments: immutable while they exist.
    Immutable,
    /// Live playlists: always revalidate.
    NoCache,
    /// VOD playlists: cacheable for this many seconds.
    MaxAge(u64),
    /// Keys and anything private: never stored.
    NoStore,
}

impl CachePolicy {
    fn header(self) -> HeaderValue {
        match self {
            CachePolicy::Immutable => HeaderValue::from_static("public, max-age=86400, immutable"),
            CachePolicy::NoCache => HeaderValue::from_static("no-cache"),
            CachePolicy::MaxAge(s) => HeaderValue::from_str(&format!("public, max-age={s}"))
                .unwrap_or(HeaderValue::from_static("no-cache")),
            CachePolicy::NoStore => HeaderValue::from_static("private, no-store"),
        }
    }
}

/// What a backend asks the server to send.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A whole resource; the server applies the request's `Range`.
    Whole {
        /// The bytes.
        body: Bytes,
        /// `Content-Type`.
        content_type: &'static str,
        /// Cache headers.
        cache: CachePolicy,
        /// Seconds since the agent got it from upstream, when served from cache.
        age: Option<u64>,
    },
    /// Exactly the requested closed range of a resource, fetched as such.
    Partial {
        /// The bytes of the range.
        body: Bytes,
        /// First byte.
        start: u64,
        /// Length of the whole resource, when known.
        total: Option<u64>,
        /// `Content-Type`.
        content_type: &'static str,
    },
    /// A redirect (302) to a local path.
    Redirect(String),
    /// A JSON document.
    Json(String),
    /// Plain text (help page, health).
    Text(String),
}

/// An error answer: status plus a one-line reason shown to the player.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status.
    pub status: StatusCode,
    /// One line, no secrets.
    pub reason: String,
}

impl Refusal {
    /// Builds a refusal.
    pub fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        let mut reason: String = reason.into();
        reason.retain(|c| c != '\n' && c != '\r');
        Self { status, reason }
    }
}

/// A request as the backend sees it.
#[derive(Debug, Clone)]
pub struct LocalRequest {
    /// Path, still percent-encoded exactly as received.
    pub path: String,
    /// Query string without `?`, exactly as received.
    pub query: Option<String>,
    /// `Host` header (or authority), for building absolute local URLs.
    pub host: Option<String>,
    /// The parsed `Range`, if any.
    pub range: Option<RangeSpec>,
}

/// Decides what to serve. Implemented by the app.
pub trait Backend: Send + Sync + 'static {
    /// Answers one GET/HEAD.
    fn handle(&self, req: LocalRequest) -> impl Future<Output = Result<Reply, Refusal>> + Send;
    /// Called once per response with the number of body bytes sent and the request kind, for
    /// metrics.
    fn served(&self, _path: &str, _status: StatusCode, _body_bytes: usize) {}
}

fn cors(resp: &mut http::response::Builder) {
    if let Some(h) = resp.headers_mut() {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("Age, Content-Length, Content-Range, Date"),
        );
    }
}

fn text_response(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut b = Response::builder().status(status);
    cors(&mut b);
    b.header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// Turns one HTTP request into a response using `backend`.
pub async fn respond<B: Backend>(backend: &B, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    if method == Method::OPTIONS {
        let mut b = Response::builder().status(StatusCode::NO_CONTENT);
        cors(&mut b);
        let requested = req
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .cloned()
            .unwrap_or(HeaderValue::from_static("Range"));
        return b
            .header(header::ACCESS_CONTROL_ALLOW_METHODS, "GET, HEAD, OPTIONS")
            .header(header::ACCESS_CONTROL_ALLOW_HEADERS, requested)
            .header(header::ACCESS_CONTROL_MAX_AGE, "600")
            .body(Full::new(Bytes::new()))
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())));
    }
    if method != Method::GET && method != Method::HEAD {
        let mut r = text_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET, HEAD and OPTIONS are supported\n".into(),
        );
        r.headers_mut().insert(
            header::ALLOW,
            HeaderValue::from_static("GET, HEAD, OPTIONS"),
        );
        return r;
    }
    let head = method == Method::HEAD;
    let uri = req.uri();
    let path = uri.path().to_string();
    let local = LocalRequest {
        path: path.clone(),
        query: uri.query().map(str::to_string),
        host: req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .or_else(|| uri.authority().map(|a| a.to_string())),
        range: req
            .headers()
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(range::parse),
    };
    let range = local.range;
    let resp = match backend.handle(local).await {
        Ok(reply) => build(reply, range, head),
        Err(refusal) => {
            tracing::debug!(status = %refusal.status, reason = %refusal.reason, "refused");
            text_response(refusal.status, format!("{}\n", refusal.reason))
        }
    };
    let sent = if head {
        0
    } else {
        http_body::Body::size_hint(resp.body()).exact().unwrap_or(0) as usize
    };
    backend.served(&path, resp.status(), sent);
    if head { strip_body(resp) } else { resp }
}

fn strip_body(resp: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    let (parts, _) = resp.into_parts();
    Response::from_parts(parts, Full::new(Bytes::new()))
}

fn build(reply: Reply, range: Option<RangeSpec>, _head: bool) -> Response<Full<Bytes>> {
    let mut b = Response::builder();
    cors(&mut b);
    let result = match reply {
        Reply::Whole {
            body,
            content_type,
            cache,
            age,
        } => {
            b = b
                .header(header::CONTENT_TYPE, content_type)
                .header(header::CACHE_CONTROL, cache.header())
                .header(header::ACCEPT_RANGES, "bytes");
            if let Some(a) = age {
                b = b.header(header::AGE, a.to_string());
            }
            let len = body.len() as u64;
            match range.map(|r| r.resolve(len)) {
                None => b
                    .status(StatusCode::OK)
                    .header(header::CONTENT_LENGTH, len)
                    .body(Full::new(body)),
                Some(Resolved::Partial { start, end }) => b
                    .status(StatusCode::PARTIAL_CONTENT)
                    .header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"))
                    .header(header::CONTENT_LENGTH, end - start + 1)
                    .body(Full::new(body.slice(start as usize..=end as usize))),
                Some(Resolved::Unsatisfiable) => b
                    .status(StatusCode::RANGE_NOT_SATISFIABLE)
                    .header(header::CONTENT_RANGE, format!("bytes */{len}"))
                    .header(header::CONTENT_LENGTH, 0)
                    .body(Full::new(Bytes::new())),
            }
        }
        Reply::Partial {
            body,
            start,
            total,
            content_type,
        } => {
            let end = start + body.len() as u64 - 1;
            let total = total.map_or("*".to_string(), |t| t.to_string());
            b.status(StatusCode::PARTIAL_CONTENT)
                .header(header::CONTENT_TYPE, content_type)
                .header(header::CACHE_CONTROL, CachePolicy::Immutable.header())
                .header(header::ACCEPT_RANGES, "bytes")
                .header(
                    header::CONTENT_RANGE,
                    format!("bytes {start}-{end}/{total}"),
                )
                .header(header::CONTENT_LENGTH, body.len())
                .body(Full::new(body))
        }
        Reply::Redirect(location) => b
            .status(StatusCode::FOUND)
            .header(header::LOCATION, location)
            .header(header::CACHE_CONTROL, "no-cache")
            .header(header::CONTENT_LENGTH, 0)
            .body(Full::new(Bytes::new())),
        Reply::Json(j) => b
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CACHE_CONTROL, "no-store")
            .body(Full::new(Bytes::from(j))),
        Reply::Text(t) => b
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .header(header::CACHE_CONTROL, "no-store")
            .body(Full::new(Bytes::from(t))),
    };
    result.unwrap_or_else(|_| {
        text_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "response build failed\n".into(),
        )
    })
}

/// Serves `backend` on `listener` until `cancel` fires, then lets in-flight connections finish
/// for up to `grace`. At most `max_connections` connections are served at once.
pub async fn serve<B: Backend>(
    listener: TcpListener,
    backend: Arc<B>,
    cancel: CancellationToken,
    grace: Duration,
    max_connections: usize,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    let permits = Arc::new(tokio::sync::Semaphore::new(max_connections.max(1)));
    loop {
        let permit = tokio::select! {
            _ = cancel.cancelled() => break,
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (stream, _peer): (tokio::net::TcpStream, SocketAddr) = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let backend = backend.clone();
        let svc = service_fn(move |req| {
            let backend = backend.clone();
            async move { Ok::<_, Infallible>(respond(&*backend, req).await) }
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), svc)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            ?grace,
            "connections still open after the grace period; closing them"
        );
    }
}
