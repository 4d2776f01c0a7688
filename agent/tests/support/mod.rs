//! Shared helpers for the agent's end-to-end tests: a plain HTTP client, and starting an
//! in-process agent in front of a test origin.
#![allow(dead_code)]

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use hivecast_agent::app::{Running, start};
use hivecast_agent::config::AgentConfig;

/// A response, fully read.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn client() -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// Sends one request (method, URL, extra headers) and reads the whole body.
pub async fn request(method: &str, url: &str, headers: &[(&str, &str)]) -> Resp {
    let mut b = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Empty::new()).expect("request");
    let resp = tokio::time::timeout(Duration::from_secs(30), client().request(req))
        .await
        .expect("response within 30 s")
        .expect("response");
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Resp {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

pub async fn get(url: &str) -> Resp {
    request("GET", url, &[]).await
}

/// A config for tests: ephemeral loopback ports, the given allowed origins, short timeouts.
pub fn test_config(allow: &[String]) -> AgentConfig {
    let mut cfg = AgentConfig::default();
    cfg.server.listen = "127.0.0.1:0".parse().expect("addr");
    cfg.server.admin_listen = "127.0.0.1:0".parse().expect("addr");
    cfg.server.shutdown_grace = Duration::from_secs(2);
    cfg.origin.allow = allow.to_vec();
    cfg.origin.connect_timeout = Duration::from_secs(1);
    cfg.origin.header_timeout = Duration::from_secs(2);
    cfg.origin.body_idle_timeout = Duration::from_secs(2);
    cfg.origin.total_timeout = Duration::from_secs(5);
    cfg.origin.retry_backoff = Duration::from_millis(20);
    cfg
}

pub async fn start_agent(cfg: AgentConfig) -> Running {
    start(cfg, &[]).await.expect("agent starts")
}

/// The agent URL (mirror form) of `path` on an origin at `authority`.
pub fn mirror(agent: std::net::SocketAddr, origin_authority: &str, path: &str) -> String {
    format!(
        "http://{agent}/http/{origin_authority}/{}",
        path.trim_start_matches('/')
    )
}

pub mod hostile;
pub mod procs;
