//! An HLS test origin: a static file server for a directory, on hyper 1.x, bound to
//! `127.0.0.1:0` by default, with request/byte counters and run-time fault injection.
//!
//! # Design
//!
//! * [`Origin::start`] binds the listener *before* it returns, so the returned
//!   [`Origin::addr`] is ready for connections: no sleeps, no polling.
//! * One accept task and one task per connection, all in a [`TaskTracker`] and all watching
//!   one [`CancellationToken`]. [`Origin::stop`] cancels and waits for every task (including
//!   connections that hang on a fault); dropping the [`Origin`] cancels without waiting.
//! * HTTP/1.1 and HTTP/2 (prior knowledge) via `hyper_util::server::conn::auto`.
//! * Files are read whole per request (test streams are small); the response body is either
//!   a `Full` buffer or, for the `Truncate` and `Throttle` faults, a channel fed by a producer
//!   task.
//! * `GET`, `HEAD`, `OPTIONS` (CORS preflight, `204`); anything else is `405`.
//!   `Range` semantics are in [`range`]; `ETag` + `If-None-Match` give `304`;
//!   `Last-Modified` is sent (but `If-Modified-Since` is not evaluated).
//! * Path traversal is refused: the decoded path may not contain `..`, NUL or `\`
//!   (`403`), and the canonical file path must stay under the canonical root (symlinks
//!   pointing outside are `403`).
//! * Counters are per decoded path (always with a leading `/`, query excluded), per
//!   [`ResourceKind`] and in total; every request is counted when it arrives, whatever its
//!   outcome. Bytes count response *body* bytes handed to the connection (so a truncated body
//!   counts only what was sent, and `HEAD` counts 0).
//! * Faults ([`Fault`]) are keyed by path prefix; the longest matching prefix wins; a fault
//!   may be limited to the next `n` matching requests ([`Origin::set_fault_times`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use hivecast_demo::origin::{Fault, Origin};
//! let origin = Origin::start("/path/to/fixtures").await?;
//! let url = origin.url("/vod-ts/index.m3u8"); // "http://127.0.0.1:PORT/vod-ts/index.m3u8"
//! origin.set_fault_times("/vod-ts/seg_001.ts", Fault::Status(503), 1); // fail once
//! // ... run a client ...
//! assert_eq!(origin.requests("/vod-ts/index.m3u8"), 1);
//! origin.stop().await;
//! # Ok(()) }
//! ```

pub mod files;
pub mod range;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use files::PathRejection;
pub use files::ResourceKind;
use range::RangeOutcome;

/// The response body type used by the origin (and by the demo's web server).
pub type ResponseBody = BoxBody<Bytes, io::Error>;

/// Errors starting the origin.
#[derive(Debug, Error)]
pub enum OriginError {
    /// The root directory does not exist or is not a directory.
    #[error("origin root {path}: {source}")]
    Root {
        /// The configured root.
        path: PathBuf,
        /// Why it is unusable.
        source: io::Error,
    },
    /// Binding the listener failed.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The requested address.
        addr: SocketAddr,
        /// The bind error.
        source: io::Error,
    },
}

/// Origin settings. [`OriginConfig::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct OriginConfig {
    /// Directory served at `/`.
    pub root: PathBuf,
    /// Listen address; default `127.0.0.1:0` (an ephemeral port).
    pub bind: SocketAddr,
    /// Send permissive CORS headers (`Access-Control-Allow-Origin: *`) and answer preflights;
    /// default `true` (browsers need it when a page plays straight from the origin).
    pub cors: bool,
    /// How many [`RequestRecord`]s the log keeps (oldest dropped first); default 10 000.
    pub log_capacity: usize,
}

impl OriginConfig {
    /// Defaults for serving `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        OriginConfig {
            root: root.into(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            cors: true,
            log_capacity: 10_000,
        }
    }
}

/// A fault to inject for requests whose path starts with a prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// Answer with this status code and a short text body (status codes outside 100..=999 are
    /// answered as 500).
    Status(u16),
    /// Wait this long before answering normally.
    Delay(Duration),
    /// Answer normally (200/206 with the full `Content-Length`) but send only the first
    /// `after` body bytes, then abort the connection.
    Truncate {
        /// Body bytes to send before closing.
        after: u64,
    },
    /// Never answer; the connection stays open until the client gives up or the origin stops.
    Hang,
    /// `302 Found` with exactly this `Location` (a path like `/other/x.ts`, or an absolute URL
    /// of another origin).
    Redirect {
        /// The `Location` value.
        location: String,
    },
    /// `302 Found` to the request path with the matched prefix replaced by `to` (a path prefix
    /// or an absolute URL prefix); the query string is kept.
    RedirectPrefix {
        /// Replacement for the matched prefix.
        to: String,
    },
    /// Answer normally but send the body at this rate (in chunks every 50 ms).
    Throttle {
        /// Body bytes per second (at least 1).
        bytes_per_sec: u64,
    },
    /// Answer normally but with this `Content-Type` (e.g. `text/plain` for playlists, a
    /// common origin misconfiguration).
    ContentType(String),
}

/// Request and byte counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    /// Requests received (any method, any outcome).
    pub requests: u64,
    /// Response body bytes handed to the connection.
    pub bytes: u64,
}

/// A snapshot of all counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginStats {
    /// All requests.
    pub total: Counter,
    /// By resource kind (kinds never requested are absent).
    pub by_kind: BTreeMap<ResourceKind, Counter>,
    /// By decoded path (leading `/`, no query).
    pub by_path: BTreeMap<String, Counter>,
}

/// One logged request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Method (`GET`, `HEAD`, ...).
    pub method: String,
    /// Decoded path (or the raw path if it could not be decoded).
    pub path: String,
    /// Query string, if any.
    pub query: Option<String>,
    /// `Range` header, if any.
    pub range: Option<String>,
    /// Status sent; `None` when the request was left hanging.
    pub status: Option<u16>,
    /// The fault applied, if any.
    pub fault: Option<Fault>,
}

#[derive(Debug, Clone)]
struct FaultRule {
    fault: Fault,
    remaining: Option<u64>,
}

#[derive(Default)]
struct Counters {
    total: Counter,
    by_kind: HashMap<ResourceKind, Counter>,
    by_path: HashMap<String, Counter>,
}

struct Shared {
    root: PathBuf,
    cors: bool,
    log_capacity: usize,
    counters: Mutex<Counters>,
    faults: Mutex<BTreeMap<String, FaultRule>>,
    log: Mutex<VecDeque<RequestRecord>>,
    /// Bumped on every request, so waiters wake up.
    requests_seen: watch::Sender<u64>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these short locks cannot leave the data inconsistent
    // (plain counters and maps), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn normalize(path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    }
}

impl Shared {
    fn count_request(&self, path: &str) {
        let kind = ResourceKind::of_path(path);
        {
            let mut c = lock(&self.counters);
            c.total.requests += 1;
            c.by_kind.entry(kind).or_default().requests += 1;
            c.by_path.entry(path.to_string()).or_default().requests += 1;
        }
        self.requests_seen.send_modify(|n| *n += 1);
    }

    fn count_bytes(&self, path: &str, n: u64) {
        if n == 0 {
            return;
        }
        let kind = ResourceKind::of_path(path);
        let mut c = lock(&self.counters);
        c.total.bytes += n;
        c.by_kind.entry(kind).or_default().bytes += n;
        c.by_path.entry(path.to_string()).or_default().bytes += n;
    }

    fn log(&self, record: RequestRecord) {
        let mut log = lock(&self.log);
        if self.log_capacity == 0 {
            return;
        }
        while log.len() >= self.log_capacity {
            log.pop_front();
        }
        log.push_back(record);
    }

    /// Finds the fault for `path` (longest prefix) and consumes one use of it.
    fn take_fault(&self, path: &str) -> Option<(String, Fault)> {
        let mut faults = lock(&self.faults);
        let prefix = faults
            .keys()
            .filter(|p| path.starts_with(p.as_str()))
            .max_by_key(|p| p.len())?
            .clone();
        let rule = faults.get_mut(&prefix)?;
        let fault = rule.fault.clone();
        if let Some(n) = rule.remaining.as_mut() {
            *n = n.saturating_sub(1);
            if *n == 0 {
                faults.remove(&prefix);
            }
        }
        Some((prefix, fault))
    }
}

/// A running test origin. Dropping it stops the server (without waiting).
pub struct Origin {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Origin")
            .field("addr", &self.addr)
            .field("root", &self.shared.root)
            .finish()
    }
}

impl Origin {
    /// Serves `root` on `127.0.0.1:0` with default settings. Ready when this returns.
    pub async fn start(root: impl Into<PathBuf>) -> Result<Origin, OriginError> {
        Origin::start_with(OriginConfig::new(root)).await
    }

    /// Starts an origin with explicit settings. Ready when this returns.
    pub async fn start_with(config: OriginConfig) -> Result<Origin, OriginError> {
        let root = config
            .root
            .canonicalize()
            .and_then(|r| {
                if r.is_dir() {
                    Ok(r)
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::NotADirectory,
                        "not a directory",
                    ))
                }
            })
            .map_err(|source| OriginError::Root {
                path: config.root.clone(),
                source,
            })?;
        let listener =
            TcpListener::bind(config.bind)
                .await
                .map_err(|source| OriginError::Bind {
                    addr: config.bind,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| OriginError::Bind {
            addr: config.bind,
            source,
        })?;
        let shared = Arc::new(Shared {
            root,
            cors: config.cors,
            log_capacity: config.log_capacity,
            counters: Mutex::new(Counters::default()),
            faults: Mutex::new(BTreeMap::new()),
            log: Mutex::new(VecDeque::new()),
            requests_seen: watch::channel(0).0,
            cancel: CancellationToken::new(),
            tracker: TaskTracker::new(),
        });
        let accept_shared = shared.clone();
        shared.tracker.spawn(accept_loop(listener, accept_shared));
        tracing::debug!(%addr, root = %shared.root.display(), "test origin listening");
        Ok(Origin { addr, shared })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `127.0.0.1:PORT`: the authority used in the agent's mirror URLs
    /// (`http://{agent}/http/{authority}/{path}`).
    pub fn authority(&self) -> String {
        self.addr.to_string()
    }

    /// Absolute URL of a path on this origin (a missing leading `/` is added).
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url(), normalize(path))
    }

    /// The canonical root directory being served.
    pub fn root(&self) -> &Path {
        &self.shared.root
    }

    /// Requests received for `path` (leading `/` optional, no query).
    pub fn requests(&self, path: &str) -> u64 {
        lock(&self.shared.counters)
            .by_path
            .get(&normalize(path))
            .map_or(0, |c| c.requests)
    }

    /// Body bytes sent for `path`.
    pub fn bytes(&self, path: &str) -> u64 {
        lock(&self.shared.counters)
            .by_path
            .get(&normalize(path))
            .map_or(0, |c| c.bytes)
    }

    /// All requests received.
    pub fn total_requests(&self) -> u64 {
        lock(&self.shared.counters).total.requests
    }

    /// All body bytes sent.
    pub fn total_bytes(&self) -> u64 {
        lock(&self.shared.counters).total.bytes
    }

    /// Requests and bytes for one kind of resource.
    pub fn kind(&self, kind: ResourceKind) -> Counter {
        lock(&self.shared.counters)
            .by_kind
            .get(&kind)
            .copied()
            .unwrap_or_default()
    }

    /// Requests for one kind of resource.
    pub fn kind_requests(&self, kind: ResourceKind) -> u64 {
        self.kind(kind).requests
    }

    /// A snapshot of every counter.
    pub fn stats(&self) -> OriginStats {
        let c = lock(&self.shared.counters);
        OriginStats {
            total: c.total,
            by_kind: c.by_kind.iter().map(|(k, v)| (*k, *v)).collect(),
            by_path: c.by_path.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        }
    }

    /// Resets every counter to zero and clears the request log.
    pub fn reset_counters(&self) {
        *lock(&self.shared.counters) = Counters::default();
        lock(&self.shared.log).clear();
    }

    /// The request log, oldest first (bounded by [`OriginConfig::log_capacity`]).
    pub fn request_log(&self) -> Vec<RequestRecord> {
        lock(&self.shared.log).iter().cloned().collect()
    }

    /// Waits until at least `n` requests for `path` have been received. Wakes on every
    /// request (no polling); wrap it in `tokio::time::timeout`.
    pub async fn wait_for_requests(&self, path: &str, n: u64) {
        let mut rx = self.shared.requests_seen.subscribe();
        loop {
            if self.requests(path) >= n {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Injects `fault` for every request whose decoded path starts with `prefix` (a leading
    /// `/` is added if missing), until cleared. Replaces any fault on the same prefix.
    pub fn set_fault(&self, prefix: &str, fault: Fault) {
        lock(&self.shared.faults).insert(
            normalize(prefix),
            FaultRule {
                fault,
                remaining: None,
            },
        );
    }

    /// Injects `fault` for the next `times` matching requests only (then it is removed).
    /// `times == 0` removes the fault on that prefix.
    pub fn set_fault_times(&self, prefix: &str, fault: Fault, times: u64) {
        let mut faults = lock(&self.shared.faults);
        if times == 0 {
            faults.remove(&normalize(prefix));
        } else {
            faults.insert(
                normalize(prefix),
                FaultRule {
                    fault,
                    remaining: Some(times),
                },
            );
        }
    }

    /// Removes the fault on exactly this prefix.
    pub fn clear_fault(&self, prefix: &str) {
        lock(&self.shared.faults).remove(&normalize(prefix));
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Stops accepting, aborts open connections (including hanging ones) and waits until
    /// every task has finished.
    pub async fn stop(self) {
        self.shared.cancel.cancel();
        self.shared.tracker.close();
        self.shared.tracker.wait().await;
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
        self.shared.tracker.close();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let accepted = tokio::select! {
            _ = shared.cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Transient accept errors (e.g. EMFILE): log, back off briefly, continue.
                tracing::warn!(error = %e, "test origin accept failed");
                tokio::select! {
                    _ = shared.cancel.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(20)) => continue,
                }
            }
        };
        let conn_shared = shared.clone();
        shared.tracker.spawn(async move {
            let cancel = conn_shared.cancel.clone();
            let svc_shared = conn_shared.clone();
            let service = service_fn(move |req| {
                let s = svc_shared.clone();
                async move { Ok::<_, Infallible>(handle(s, req).await) }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = cancel.cancelled() => {}
                res = conn => {
                    if let Err(e) = res {
                        tracing::trace!(error = %e, "test origin connection ended with error");
                    }
                }
            }
        });
    }
}

fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

fn empty() -> ResponseBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// A body fed by a producer task through a channel (used for truncation and throttling).
struct ChannelBody {
    rx: mpsc::Receiver<Result<Bytes, io::Error>>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(b))) => Poll::Ready(Some(Ok(Frame::data(b)))),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Adds the headers every response gets.
fn finish(shared: &Shared, mut resp: Response<ResponseBody>) -> Response<ResponseBody> {
    if shared.cors {
        let h = resp.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(
                "Age, Content-Length, Content-Range, Accept-Ranges, Date, ETag, Last-Modified",
            ),
        );
    }
    resp
}

fn simple(shared: &Shared, status: StatusCode, text: &str, head: bool) -> Response<ResponseBody> {
    let body = if head {
        empty()
    } else {
        full(format!("{text}\n"))
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    finish(shared, resp)
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<ResponseBody> {
    let method = req.method().clone();
    let raw_path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let range_header = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let decoded = files::percent_decode(&raw_path);
    let path = decoded.clone().unwrap_or_else(|_| raw_path.clone());
    shared.count_request(&path);

    let mut record = RequestRecord {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        range: range_header.clone(),
        status: None,
        fault: None,
    };
    let head = method == Method::HEAD;

    let resp = 'resp: {
        if method == Method::OPTIONS {
            let mut resp = simple(&shared, StatusCode::NO_CONTENT, "", true);
            let h = resp.headers_mut();
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, HEAD, OPTIONS"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("Range, If-None-Match, If-Modified-Since"),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
            h.insert(
                header::ALLOW,
                HeaderValue::from_static("GET, HEAD, OPTIONS"),
            );
            break 'resp resp;
        }
        if method != Method::GET && !head {
            let mut resp = simple(
                &shared,
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed",
                false,
            );
            resp.headers_mut().insert(
                header::ALLOW,
                HeaderValue::from_static("GET, HEAD, OPTIONS"),
            );
            break 'resp resp;
        }
        let decoded = match decoded {
            Ok(d) => d,
            Err(_) => {
                break 'resp simple(
                    &shared,
                    StatusCode::BAD_REQUEST,
                    "bad percent-encoding",
                    head,
                );
            }
        };

        let mut body_mode = BodyMode::Plain;
        let mut content_type_override = None;
        if let Some((prefix, fault)) = shared.take_fault(&decoded) {
            record.fault = Some(fault.clone());
            match fault {
                Fault::Status(code) => {
                    let status =
                        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                    break 'resp simple(&shared, status, "injected fault", head);
                }
                Fault::Delay(d) => {
                    tokio::select! {
                        _ = shared.cancel.cancelled() => {
                            break 'resp simple(&shared, StatusCode::SERVICE_UNAVAILABLE, "origin stopping", head);
                        }
                        _ = tokio::time::sleep(d) => {}
                    }
                }
                Fault::Hang => {
                    shared.log(record);
                    shared.cancel.cancelled().await;
                    return simple(
                        &shared,
                        StatusCode::SERVICE_UNAVAILABLE,
                        "origin stopping",
                        head,
                    );
                }
                Fault::Redirect { location } => break 'resp redirect(&shared, &location, head),
                Fault::RedirectPrefix { to } => {
                    let rest = decoded.strip_prefix(prefix.as_str()).unwrap_or("");
                    let mut location = format!("{to}{rest}");
                    if let Some(q) = &query {
                        location.push('?');
                        location.push_str(q);
                    }
                    break 'resp redirect(&shared, &location, head);
                }
                Fault::Truncate { after } => body_mode = BodyMode::Truncate(after),
                Fault::Throttle { bytes_per_sec } => {
                    body_mode = BodyMode::Throttle(bytes_per_sec.max(1))
                }
                Fault::ContentType(ct) => content_type_override = Some(ct),
            }
        }

        let file = match files::resolve_under(&shared.root, &decoded) {
            Ok(f) => f,
            Err(PathRejection::Traversal) => {
                break 'resp simple(
                    &shared,
                    StatusCode::FORBIDDEN,
                    "path outside the root",
                    head,
                );
            }
            Err(PathRejection::BadEncoding) => {
                break 'resp simple(&shared, StatusCode::BAD_REQUEST, "bad path", head);
            }
        };
        let meta = match tokio::fs::metadata(&file).await {
            Ok(m) if m.is_file() => m,
            _ => break 'resp simple(&shared, StatusCode::NOT_FOUND, "not found", head),
        };
        if !files::contained(&shared.root, &file) {
            break 'resp simple(
                &shared,
                StatusCode::FORBIDDEN,
                "path outside the root",
                head,
            );
        }
        let data = match tokio::fs::read(&file).await {
            Ok(d) => Bytes::from(d),
            // Deleted between metadata and read (live window): same as missing.
            Err(_) => break 'resp simple(&shared, StatusCode::NOT_FOUND, "not found", head),
        };
        let static_req = StaticRequest {
            path: &decoded,
            range: range_header.as_deref(),
            if_none_match: req
                .headers()
                .get(header::IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok()),
            head,
            modified: meta.modified().ok(),
        };
        let (mut resp, body) = static_response(&static_req, data);
        if let Some(ct) = content_type_override
            && let Ok(v) = HeaderValue::from_str(&ct)
        {
            resp.headers_mut().insert(header::CONTENT_TYPE, v);
        }
        let body = match body {
            None => empty(),
            Some(b) => make_body(&shared, &decoded, b, body_mode),
        };
        let (parts, _) = resp.into_parts();
        finish(&shared, Response::from_parts(parts, body))
    };
    record.status = Some(resp.status().as_u16());
    shared.log(record);
    resp
}

fn redirect(shared: &Shared, location: &str, head: bool) -> Response<ResponseBody> {
    let mut resp = simple(shared, StatusCode::FOUND, "redirect", head);
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

#[derive(Debug, Clone, Copy)]
enum BodyMode {
    Plain,
    Truncate(u64),
    Throttle(u64),
}

fn make_body(shared: &Arc<Shared>, path: &str, body: Bytes, mode: BodyMode) -> ResponseBody {
    match mode {
        BodyMode::Plain => {
            shared.count_bytes(path, body.len() as u64);
            full(body)
        }
        BodyMode::Truncate(after) => {
            let cut = usize::try_from(after).unwrap_or(usize::MAX).min(body.len());
            let (tx, rx) = mpsc::channel(1);
            let s = shared.clone();
            let path = path.to_string();
            shared.tracker.spawn(async move {
                let part = body.slice(..cut);
                if !part.is_empty() {
                    if tx.send(Ok(part)).await.is_err() {
                        return;
                    }
                    s.count_bytes(&path, cut as u64);
                }
                // Let the connection write what it has before it is aborted: the next send
                // completes only once the previous frame has been taken by hyper.
                let _ = tx
                    .send(Err(io::Error::other("body truncated by fault injection")))
                    .await;
            });
            ChannelBody { rx }.boxed()
        }
        BodyMode::Throttle(rate) => {
            let (tx, rx) = mpsc::channel(1);
            let s = shared.clone();
            let path = path.to_string();
            shared.tracker.spawn(async move {
                let tick = Duration::from_millis(50);
                let chunk = usize::try_from((rate / 20).max(1)).unwrap_or(usize::MAX);
                let mut interval = tokio::time::interval(tick);
                let mut offset = 0;
                while offset < body.len() {
                    tokio::select! {
                        _ = s.cancel.cancelled() => return,
                        _ = interval.tick() => {}
                    }
                    let end = offset.saturating_add(chunk).min(body.len());
                    if tx.send(Ok(body.slice(offset..end))).await.is_err() {
                        return;
                    }
                    s.count_bytes(&path, (end - offset) as u64);
                    offset = end;
                }
            });
            ChannelBody { rx }.boxed()
        }
    }
}

/// The inputs of [`static_response`].
#[derive(Debug, Clone, Copy)]
pub struct StaticRequest<'a> {
    /// Decoded request path (for the content type).
    pub path: &'a str,
    /// `Range` header value.
    pub range: Option<&'a str>,
    /// `If-None-Match` header value.
    pub if_none_match: Option<&'a str>,
    /// `HEAD` request (headers only).
    pub head: bool,
    /// File modification time (for `Last-Modified` and the `ETag`).
    pub modified: Option<SystemTime>,
}

/// Builds the status and headers for serving `data` (`200`, `206`, `304` or `416`), plus the
/// body bytes to send (`None` for `HEAD`, `304` or no body). Shared by the origin and the
/// demo's web server; no I/O.
pub fn static_response(req: &StaticRequest<'_>, data: Bytes) -> (Response<()>, Option<Bytes>) {
    let len = data.len() as u64;
    let mtime_nanos = req
        .modified
        .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let etag = format!("\"{len:x}-{mtime_nanos:x}\"");
    let mut resp = Response::new(());
    let h = resp.headers_mut();
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(files::content_type(req.path)),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    if let Some(m) = req.modified
        && let Ok(v) = HeaderValue::from_str(&crate::timefmt::http_date(m))
    {
        h.insert(header::LAST_MODIFIED, v);
    }
    let cache = match ResourceKind::of_path(req.path) {
        ResourceKind::Playlist | ResourceKind::Digest => "no-cache",
        ResourceKind::Key => "private, no-store",
        ResourceKind::Other => "no-cache",
        _ => "max-age=3600",
    };
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));

    if let Some(inm) = req.if_none_match {
        let matches = inm
            .split(',')
            .map(str::trim)
            .any(|t| t == "*" || t == etag || t.strip_prefix("W/") == Some(etag.as_str()));
        if matches {
            *resp.status_mut() = StatusCode::NOT_MODIFIED;
            return (resp, None);
        }
    }

    let (status, body) = match range::resolve(req.range, len) {
        RangeOutcome::Full => (StatusCode::OK, data),
        RangeOutcome::Partial { start, end } => {
            let cr = format!("bytes {start}-{end}/{len}");
            if let Ok(v) = HeaderValue::from_str(&cr) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            // start <= end < len, and len fits usize because the data is in memory.
            let slice = data.slice(start as usize..=end as usize);
            (StatusCode::PARTIAL_CONTENT, slice)
        }
        RangeOutcome::Unsatisfiable => {
            let h = resp.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                h.insert(header::CONTENT_RANGE, v);
            }
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
            *resp.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            return (resp, None);
        }
    };
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len() as u64));
    if req.head {
        (resp, None)
    } else {
        (resp, Some(body))
    }
}
