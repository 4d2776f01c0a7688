//! A minimal plain-HTTP client (hyper-util legacy client, pooled) for tests, the paced player
//! and the demo: `GET`/`HEAD` with extra headers, a per-request timeout, the whole body
//! collected, and `Content-Length` checked against the bytes received.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use thiserror::Error;

/// Why a request failed.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The URL is not a valid `http://` URL.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Connecting or sending the request failed.
    #[error("request to {url} failed: {source}")]
    Request {
        /// The URL.
        url: String,
        /// The underlying error.
        source: hyper_util::client::legacy::Error,
    },
    /// The body stream failed (e.g. the connection was closed early).
    #[error("reading the body of {url} failed after {received} bytes: {source}")]
    Body {
        /// The URL.
        url: String,
        /// Bytes received before the failure.
        received: u64,
        /// The underlying error.
        source: hyper::Error,
    },
    /// The body ended before `Content-Length` bytes arrived.
    #[error("body of {url} is {received} bytes, Content-Length said {expected}")]
    ShortBody {
        /// The URL.
        url: String,
        /// Bytes received.
        received: u64,
        /// `Content-Length`.
        expected: u64,
    },
    /// The request (headers and body) took longer than the timeout.
    #[error("request to {url} timed out after {timeout:?}")]
    Timeout {
        /// The URL.
        url: String,
        /// The timeout.
        timeout: Duration,
    },
}

/// A complete response.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Status code.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl Fetched {
    /// A header as a string, if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A pooled plain-HTTP client. Cheap to clone.
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<HttpConnector, Empty<Bytes>>,
    timeout: Duration,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Default for HttpClient {
    fn default() -> Self {
        HttpClient::new(Duration::from_secs(10))
    }
}

impl HttpClient {
    /// A client whose requests time out after `timeout` (headers and body together).
    pub fn new(timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        HttpClient { inner, timeout }
    }

    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `GET url` with extra headers; collects the body.
    pub async fn get(&self, url: &str, headers: &[(&str, &str)]) -> Result<Fetched, ClientError> {
        self.request(Method::GET, url, headers).await
    }

    /// `HEAD url` with extra headers.
    pub async fn head(&self, url: &str, headers: &[(&str, &str)]) -> Result<Fetched, ClientError> {
        self.request(Method::HEAD, url, headers).await
    }

    /// Any method; collects the body and checks it against `Content-Length` (except for
    /// `HEAD` and `304`).
    pub async fn request(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<Fetched, ClientError> {
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.request_inner(method, url, headers)).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout {
                url: url.to_string(),
                timeout,
            }),
        }
    }

    async fn request_inner(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<Fetched, ClientError> {
        let invalid = |reason: String| ClientError::InvalidUrl {
            url: url.to_string(),
            reason,
        };
        let uri: http::Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| invalid(e.to_string()))?;
        if uri.scheme_str() != Some("http") {
            return Err(invalid("only http:// URLs are supported".into()));
        }
        let mut builder = Request::builder().method(method.clone()).uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let req = builder
            .body(Empty::new())
            .map_err(|e| invalid(e.to_string()))?;
        let resp = self
            .inner
            .request(req)
            .await
            .map_err(|source| ClientError::Request {
                url: url.to_string(),
                source,
            })?;
        let (parts, mut body) = resp.into_parts();
        let mut buf = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|source| ClientError::Body {
                url: url.to_string(),
                received: buf.len() as u64,
                source,
            })?;
            if let Ok(data) = frame.into_data() {
                buf.extend_from_slice(&data);
            }
        }
        let expected = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(expected) = expected
            && method != Method::HEAD
            && parts.status != StatusCode::NOT_MODIFIED
            && expected != buf.len() as u64
        {
            return Err(ClientError::ShortBody {
                url: url.to_string(),
                received: buf.len() as u64,
                expected,
            });
        }
        Ok(Fetched {
            status: parts.status,
            headers: parts.headers,
            body: buf.freeze(),
        })
    }
}
