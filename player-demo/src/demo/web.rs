//! The demo's web server: the page, hls.js, and two JSON endpoints.
//!
//! | path | what |
//! |---|---|
//! | `/`, `/index.html`, `/app.js`, `/style.css` | the page (built in with `include_str!`, or read from `--web-dir` at start) |
//! | `/vendor/hls.min.js` | hls.js from the npm package (read at start; no CDN) |
//! | `/demo/agents.json` | [`DemoLayout`]: mode, origin, one entry per player |
//! | `/demo/origin.json` | the test origin's counters ([`crate::origin::OriginStats`]) right now |
//! | `/play/{n}.m3u8` | `302` to player `n`'s URL (1-based), a short stable URL for ffplay, mpv, VLC |
//!
//! Everything else is `404`; methods other than `GET`/`HEAD` are `405`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::origin::ResponseBody;

/// The page files built into the binary.
pub const BUILTIN_PAGE: [(&str, &str); 3] = [
    ("index.html", include_str!("../../web/index.html")),
    ("app.js", include_str!("../../web/app.js")),
    ("style.css", include_str!("../../web/style.css")),
];

/// What `/demo/agents.json` returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DemoLayout {
    /// `p2p` (players behind agents) or `origin-direct` (players straight on the origin).
    pub mode: String,
    /// Origin base URL.
    pub origin: String,
    /// The origin URL of the live media playlist.
    pub stream_url: String,
    /// Stats poll interval for the page, in milliseconds.
    pub poll_ms: u64,
    /// One entry per player.
    pub agents: Vec<AgentEntry>,
}

/// One player (and its agent, in p2p mode).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentEntry {
    /// Display name.
    pub name: String,
    /// URL the player loads (the agent's mirror URL, or the origin URL).
    pub player_url: String,
    /// The agent's `/api/stats` URL (absent in origin-direct mode).
    pub stats_url: Option<String>,
    /// The agent's Prometheus `/metrics` URL (absent in origin-direct mode).
    pub metrics_url: Option<String>,
}

/// Everything the server serves.
#[derive(Clone)]
pub struct WebContent {
    files: Arc<HashMap<String, (&'static str, Bytes)>>,
    redirects: Arc<HashMap<String, HeaderValue>>,
    origin_stats: Arc<dyn Fn() -> String + Send + Sync>,
}

impl std::fmt::Debug for WebContent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebContent")
            .field("files", &self.files.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Errors preparing or starting the web server.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// A page file or hls.js could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The error.
        source: io::Error,
    },
    /// Binding failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: io::Error,
    },
}

impl WebContent {
    /// Builds the content: page files from `web_dir` (or the built-in copies), hls.js from
    /// `hls_js`, the layout, and a function producing the origin stats JSON.
    pub fn new(
        web_dir: Option<&Path>,
        hls_js: &Path,
        layout: &DemoLayout,
        origin_stats: Arc<dyn Fn() -> String + Send + Sync>,
    ) -> Result<WebContent, WebError> {
        let mut files = HashMap::new();
        for (name, builtin) in BUILTIN_PAGE {
            let body = match web_dir {
                Some(dir) => {
                    let p = dir.join(name);
                    Bytes::from(std::fs::read(&p).map_err(|source| WebError::Read {
                        path: p.display().to_string(),
                        source,
                    })?)
                }
                None => Bytes::from_static(builtin.as_bytes()),
            };
            files.insert(
                format!("/{name}"),
                (crate::origin::files::content_type(name), body),
            );
        }
        if let Some(index) = files.get("/index.html").cloned() {
            files.insert("/".into(), index);
        }
        let hls = std::fs::read(hls_js).map_err(|source| WebError::Read {
            path: hls_js.display().to_string(),
            source,
        })?;
        files.insert(
            "/vendor/hls.min.js".into(),
            ("text/javascript; charset=utf-8", Bytes::from(hls)),
        );
        let layout_json = serde_json::to_vec_pretty(layout).unwrap_or_default();
        files.insert(
            "/demo/agents.json".into(),
            ("application/json", Bytes::from(layout_json)),
        );
        let redirects = layout
            .agents
            .iter()
            .enumerate()
            .filter_map(|(i, a)| {
                let location = HeaderValue::from_str(&a.player_url).ok()?;
                Some((play_path(i + 1), location))
            })
            .collect();
        Ok(WebContent {
            files: Arc::new(files),
            redirects: Arc::new(redirects),
            origin_stats,
        })
    }
}

/// Path of the redirect to player `n` (1-based): `/play/{n}.m3u8`.
pub fn play_path(n: usize) -> String {
    format!("/play/{n}.m3u8")
}

/// The running web server. Dropping it stops it.
#[derive(Debug)]
pub struct WebServer {
    addr: SocketAddr,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl WebServer {
    /// Binds `bind` and serves `content`. Ready when this returns.
    pub async fn start(bind: SocketAddr, content: WebContent) -> Result<WebServer, WebError> {
        let listener = TcpListener::bind(bind)
            .await
            .map_err(|source| WebError::Bind { addr: bind, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| WebError::Bind { addr: bind, source })?;
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let (c, t) = (cancel.clone(), tracker.clone());
        tracker.spawn(async move {
            loop {
                let stream = tokio::select! {
                    _ = c.cancelled() => return,
                    a = listener.accept() => match a {
                        Ok((s, _)) => s,
                        Err(e) => {
                            tracing::warn!(error = %e, "web accept failed");
                            continue;
                        }
                    },
                };
                let content = content.clone();
                let c2 = c.clone();
                t.spawn(async move {
                    let svc = service_fn(move |req| {
                        let content = content.clone();
                        async move { Ok::<_, Infallible>(handle(&content, req)) }
                    });
                    let builder = auto::Builder::new(TokioExecutor::new());
                    let conn = builder.serve_connection(TokioIo::new(stream), svc);
                    tokio::select! {
                        _ = c2.cancelled() => {}
                        _ = conn => {}
                    }
                });
            }
        });
        Ok(WebServer {
            addr,
            cancel,
            tracker,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops and waits for all connections to end.
    pub async fn stop(self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn handle(content: &WebContent, req: Request<Incoming>) -> Response<ResponseBody> {
    let head = req.method() == Method::HEAD;
    if req.method() != Method::GET && !head {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    let path = req.uri().path();
    if let Some(location) = content.redirects.get(path) {
        let mut resp = text(StatusCode::FOUND, "found");
        resp.headers_mut()
            .insert(header::LOCATION, location.clone());
        return resp;
    }
    let (ct, body) = if path == "/demo/origin.json" {
        ("application/json", Bytes::from((content.origin_stats)()))
    } else if let Some((ct, body)) = content.files.get(path) {
        (*ct, body.clone())
    } else {
        return text(StatusCode::NOT_FOUND, "not found");
    };
    let len = body.len();
    let body = if head {
        Empty::new().map_err(|never| match never {}).boxed()
    } else {
        Full::new(body).map_err(|never| match never {}).boxed()
    };
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

fn text(status: StatusCode, msg: &str) -> Response<ResponseBody> {
    let mut resp = Response::new(
        Full::new(Bytes::from(format!("{msg}\n")))
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
