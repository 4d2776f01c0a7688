//! Helpers shared by the end-to-end tests: a tracker on 127.0.0.1:0, WebSocket
//! clients (plain and TLS), and id builders.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hivecast_tracker::app::App;
use hivecast_tracker::config::Config;
use hivecast_tracker::proto::{
    AnnounceEvent, AnnounceRequest, AnswerRequest, ClientMessage, InfoHash, Offer, OfferId, PeerId,
    ScrapeRequest, SdpType, ServerMessage, SessionDescription,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

/// Upper bound for any single test.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound for one expected message.
pub const MSG_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `fut` with the test timeout.
pub async fn within<F: Future<Output = T>, T>(fut: F) -> T {
    tokio::time::timeout(TEST_TIMEOUT, fut)
        .await
        .expect("test timed out")
}

/// A config for tests: both listeners on 127.0.0.1:0, generous rate limits.
pub fn test_config() -> Config {
    let mut c = Config::default();
    c.server.listen = "127.0.0.1:0".parse().unwrap();
    c.admin.listen = "127.0.0.1:0".parse().unwrap();
    c.limits.announce_rate_per_ip = 100_000;
    c.limits.announce_burst_per_ip = 100_000;
    c.server.shutdown_grace = Duration::from_secs(5);
    c
}

/// Starts a tracker in this runtime.
pub async fn start(cfg: Config) -> App {
    assert!(cfg.validate().is_empty(), "{:?}", cfg.validate());
    App::bind(cfg).await.expect("tracker starts")
}

pub fn ih(n: u8) -> InfoHash {
    InfoHash([n; 20])
}
pub fn pid(n: u8) -> PeerId {
    let mut b = [n; 20];
    b[0] = 0xff; // exercise the latin1 codec on every message
    PeerId(b)
}
pub fn oid(n: u8) -> OfferId {
    OfferId([n; 20])
}

pub fn sdp(kind: SdpType, text: &str) -> SessionDescription {
    SessionDescription {
        kind,
        sdp: text.to_owned(),
    }
}

pub fn announce(h: u8, p: u8, event: AnnounceEvent, offers: &[u8]) -> ClientMessage {
    ClientMessage::Announce(AnnounceRequest {
        info_hash: ih(h),
        peer_id: pid(p),
        event,
        numwant: Some(offers.len() as u64),
        uploaded: Some(0),
        downloaded: Some(0),
        left: Some(1000),
        offers: offers
            .iter()
            .map(|&n| Offer {
                offer: sdp(SdpType::Offer, &format!("offer-{n}")),
                offer_id: oid(n),
            })
            .collect(),
        trackerid: None,
    })
}

/// An `update` announce carrying one offer with the given SDP text.
pub fn announce_with_sdp(h: u8, p: u8, offer: u8, text: &str) -> ClientMessage {
    ClientMessage::Announce(AnnounceRequest {
        info_hash: ih(h),
        peer_id: pid(p),
        event: AnnounceEvent::Update,
        numwant: Some(1),
        uploaded: None,
        downloaded: None,
        left: Some(1000),
        offers: vec![Offer {
            offer: sdp(SdpType::Offer, text),
            offer_id: oid(offer),
        }],
        trackerid: None,
    })
}

pub fn answer(h: u8, from: u8, to: u8, offer: u8) -> ClientMessage {
    ClientMessage::Answer(AnswerRequest {
        info_hash: ih(h),
        peer_id: pid(from),
        to_peer_id: pid(to),
        offer_id: oid(offer),
        answer: sdp(SdpType::Answer, &format!("answer-{from}-{offer}")),
    })
}

pub fn scrape(hashes: &[u8]) -> ClientMessage {
    ClientMessage::Scrape(ScrapeRequest {
        info_hashes: Some(hashes.iter().map(|&h| ih(h)).collect()),
    })
}

/// Any byte stream a WebSocket can run on.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A test client.
pub struct Client {
    pub ws: WebSocketStream<Box<dyn Io>>,
}

/// What the tracker did next, from the client's view.
#[derive(Debug)]
pub enum Event {
    Msg(ServerMessage),
    Close(Option<CloseFrame>),
    Ended,
}

impl Client {
    pub async fn connect(addr: SocketAddr, path: &str) -> Self {
        let tcp = TcpStream::connect(addr).await.expect("tcp connect");
        Self::handshake(Box::new(tcp), &format!("ws://{addr}{path}")).await
    }

    /// Connects from a chosen loopback source address (e.g. 127.0.0.2).
    pub async fn connect_from(source: &str, addr: SocketAddr, path: &str) -> Self {
        let sock = TcpSocket::new_v4().unwrap();
        sock.bind(format!("{source}:0").parse().unwrap()).unwrap();
        let tcp = sock.connect(addr).await.expect("tcp connect");
        Self::handshake(Box::new(tcp), &format!("ws://{addr}{path}")).await
    }

    pub async fn handshake(io: Box<dyn Io>, url: &str) -> Self {
        let (ws, _) = tokio_tungstenite::client_async(url, io)
            .await
            .expect("websocket handshake");
        Self { ws }
    }

    pub async fn send(&mut self, msg: &ClientMessage) {
        self.ws
            .send(Message::text(msg.to_json()))
            .await
            .expect("send");
    }

    pub async fn send_text(&mut self, text: String) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    /// The next event (message, close frame or end of stream).
    pub async fn event(&mut self) -> Event {
        loop {
            let next = tokio::time::timeout(MSG_TIMEOUT, self.ws.next())
                .await
                .expect("no message from the tracker in time");
            match next {
                Some(Ok(Message::Text(t))) => {
                    return Event::Msg(
                        ServerMessage::from_json(t.as_bytes()).expect("tracker sent valid JSON"),
                    );
                }
                Some(Ok(Message::Close(frame))) => return Event::Close(frame),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Event::Ended,
            }
        }
    }

    /// The next message; panics on close.
    pub async fn recv(&mut self) -> ServerMessage {
        match self.event().await {
            Event::Msg(m) => m,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    /// The next `failure reason`.
    pub async fn failure(&mut self) -> String {
        match self.recv().await {
            ServerMessage::Error(e) => e.failure_reason,
            other => panic!("expected a failure reason, got {other:?}"),
        }
    }

    /// Scrapes and returns (complete, incomplete) per requested hash.
    pub async fn counts(&mut self, hashes: &[u8]) -> Vec<(u64, u64)> {
        self.send(&scrape(hashes)).await;
        match self.recv().await {
            ServerMessage::Scrape(s) => s
                .files
                .iter()
                .map(|(_, st)| (st.complete, st.incomplete))
                .collect(),
            other => panic!("expected a scrape response, got {other:?}"),
        }
    }
}

/// A rustls client config trusting exactly `cert_der`.
pub fn tls_client(
    cert_der: rustls::pki_types::CertificateDer<'static>,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert_der).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// Fetches `path` from the admin listener with a minimal HTTP/1.0 request.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(MSG_TIMEOUT, tcp.read_to_end(&mut buf))
        .await
        .expect("admin response in time")
        .unwrap();
    let text = String::from_utf8(buf).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_owned())
}

/// Polls an asynchronous condition (each check is a round trip to the tracker) until
/// it holds: at most 200 checks, 10 ms apart. Used for state that changes after a
/// socket closes; it observes the state instead of sleeping a fixed time.
#[macro_export]
macro_rules! eventually {
    ($check:expr) => {{
        let mut ok = false;
        for _ in 0..200 {
            if $check {
                ok = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        ok
    }};
}
