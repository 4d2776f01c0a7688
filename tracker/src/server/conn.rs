//! One client connection: handshake, access check, then a single task that reads
//! requests, writes replies and drains the bounded outbound queue.
//!
//! Nothing in here waits while holding a lock: request handling is synchronous
//! ([`Session::handle`]) and returns the reply; only writing awaits, always under
//! `server.write_timeout`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{
    ErrorResponse as HttpError, Request, Response,
};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;

use super::{Admission, AdmissionGuard, ConnHandle, Shared, WRITE_BATCH};
use crate::config::Secret;
use crate::metrics::{AnnounceResult, DisconnectReason, DropReason, RefusalReason, SignalKind};
use crate::proto::{
    Action, AnnounceRequest, AnnounceResponse, AnswerRequest, ClientMessage, DecodeError,
    ErrorResponse, InfoHash, ScrapeFlags, ScrapeRequest, ScrapeResponse, ServerMessage,
};
use crate::signal;
use crate::swarm::{AnswerDrop, ConnId, Refusal};

/// How long a refused or closing client gets to receive its last words.
const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// The access token in `/announce/<token>` or `?token=<token>`.
pub(crate) fn token_from(path: &str, query: Option<&str>) -> Option<String> {
    if let Some(rest) = path.strip_prefix("/announce/") {
        let rest = rest.trim_end_matches('/');
        if !rest.is_empty() && !rest.contains('/') {
            return Some(rest.to_owned());
        }
    }
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == "token")
        .map(|(_, v)| v.to_owned())
}

/// Constant-time comparison against every configured token.
pub(crate) fn token_ok(tokens: &[Secret], given: Option<&str>) -> bool {
    if tokens.is_empty() {
        return true;
    }
    let Some(given) = given else { return false };
    let mut ok = false;
    for t in tokens {
        let t = t.expose().as_bytes();
        let g = given.as_bytes();
        let mut diff = u8::from(t.len() != g.len());
        for (a, b) in t.iter().zip(g.iter()) {
            diff |= a ^ b;
        }
        ok |= diff == 0;
    }
    ok
}

fn refusal_text(reason: RefusalReason) -> &'static str {
    match reason {
        RefusalReason::TooManyConnections => "tracker is at its connection limit; try again later",
        RefusalReason::TooManyConnectionsPerIp => "too many connections from this address",
        RefusalReason::BadToken => "invalid or missing access token",
        _ => "refused",
    }
}

/// Runs one connection to the end.
pub(crate) async fn run<S>(
    shared: Arc<Shared>,
    stream: S,
    peer: SocketAddr,
    admission: Admission,
    guard: AdmissionGuard,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut target: Option<(String, Option<String>)> = None;
    // The error type is fixed by tungstenite's `Callback` trait.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, resp: Response| -> Result<Response, HttpError> {
        target = Some((
            req.uri().path().to_owned(),
            req.uri().query().map(str::to_owned),
        ));
        Ok(resp)
    };
    let handshake =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(shared.ws_config));
    let timed_handshake = tokio::time::timeout(shared.config.server.handshake_timeout, handshake);
    let result = tokio::select! {
        () = shutdown.cancelled() => return,
        r = timed_handshake => r,
    };
    let mut ws = match result {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "WebSocket handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "WebSocket handshake timed out");
            return;
        }
    };

    let refused = match admission {
        Admission::Refused(reason) => Some(reason),
        Admission::Admitted => {
            let token = target
                .as_ref()
                .and_then(|(p, q)| token_from(p, q.as_deref()));
            if token_ok(&shared.tokens, token.as_deref()) {
                None
            } else {
                shared.metrics.refused(RefusalReason::BadToken);
                Some(RefusalReason::BadToken)
            }
        }
    };
    drop(target);
    if let Some(reason) = refused {
        let code = match reason {
            RefusalReason::BadToken => CloseCode::Policy,
            _ => CloseCode::Again,
        };
        let text = ServerMessage::Error(ErrorResponse::new(refusal_text(reason))).to_json();
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            ws.send(Message::text(text)).await?;
            ws.close(Some(CloseFrame {
                code,
                reason: refusal_text(reason).into(),
            }))
            .await
        })
        .await;
        shared.metrics.disconnected(DisconnectReason::Refused);
        tracing::debug!(%peer, reason = reason.as_label(), "connection refused");
        drop(guard);
        return;
    }

    let (tx, rx) = mpsc::channel(shared.config.server.outbound_queue);
    let kick = CancellationToken::new();
    let conn_id = shared.next_conn_id();
    let ip = super::limits::canonical(peer.ip());
    shared.store.with(|r| {
        r.connect(
            conn_id,
            ConnHandle {
                tx,
                kick: kick.clone(),
            },
            ip,
        );
    });
    shared.metrics.connections.inc();
    let session = Session {
        shared: Arc::clone(&shared),
        conn_id,
        ip,
    };
    let reason = session.drive(&mut ws, rx, &kick, &shutdown).await;
    shared.metrics.disconnected(reason);
    if reason == DisconnectReason::SlowReader {
        shared.metrics.slow_readers_dropped.inc();
    }
    tracing::debug!(%peer, conn = conn_id, reason = reason.as_label(), "connection closed");
    drop(session);
    drop(guard);
}

/// A registered connection. Dropping it leaves every swarm (a `stopped` in each).
struct Session {
    shared: Arc<Shared>,
    conn_id: ConnId,
    ip: IpAddr,
}

impl Drop for Session {
    fn drop(&mut self) {
        let id = self.conn_id;
        self.shared.store.with(|r| r.disconnect(id));
        self.shared.metrics.connections.dec();
    }
}

/// What one read produced.
enum Event {
    Shutdown,
    Outbound(String),
    Incoming(Option<Result<Message, WsError>>),
    Timer,
}

/// What to send the client after handling a request.
enum Reply {
    Nothing,
    Send(String),
    /// Send, then close with this code.
    Close(String, CloseCode),
}

/// When the client was last heard from, and whether it has been pinged since.
struct Liveness {
    last_rx: tokio::time::Instant,
    pinged: bool,
}

/// Why a timed write failed.
enum WriteFail {
    /// Too slow: the write timed out or the write buffer limit was hit.
    Slow,
    /// The socket failed or closed.
    Closed,
}

async fn timed<F>(limit: std::time::Duration, fut: F) -> Result<(), WriteFail>
where
    F: std::future::Future<Output = Result<(), WsError>>,
{
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(WsError::WriteBufferFull(_))) | Err(_) => Err(WriteFail::Slow),
        Ok(Err(_)) => Err(WriteFail::Closed),
    }
}

fn write_fail_reason(f: WriteFail) -> DisconnectReason {
    match f {
        WriteFail::Slow => DisconnectReason::SlowReader,
        WriteFail::Closed => DisconnectReason::Closed,
    }
}

impl Session {
    async fn drive<S>(
        &self,
        ws: &mut WebSocketStream<S>,
        mut rx: mpsc::Receiver<String>,
        kick: &CancellationToken,
        shutdown: &CancellationToken,
    ) -> DisconnectReason
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let cfg = &self.shared.config.server;
        let (ping_interval, idle_timeout, write_timeout) =
            (cfg.ping_interval, cfg.idle_timeout, cfg.write_timeout);
        let mut alive = Liveness {
            last_rx: tokio::time::Instant::now(),
            pinged: false,
        };
        let timer = tokio::time::sleep_until(alive.last_rx + ping_interval);
        tokio::pin!(timer);

        loop {
            // Queued relays go out before the next request is read, so a reply never
            // overtakes a relay that was queued before its request arrived.
            let event = tokio::select! {
                biased;
                () = shutdown.cancelled() => Event::Shutdown,
                () = kick.cancelled() => return DisconnectReason::SlowReader,
                Some(first) = rx.recv() => Event::Outbound(first),
                incoming = ws.next() => Event::Incoming(incoming),
                () = &mut timer => Event::Timer,
            };
            match event {
                Event::Shutdown => {
                    let close = ws.close(Some(CloseFrame {
                        code: CloseCode::Away,
                        reason: "tracker shutting down".into(),
                    }));
                    let _ = tokio::time::timeout(CLOSE_TIMEOUT, close).await;
                    return DisconnectReason::Shutdown;
                }
                Event::Outbound(first) => {
                    let batch = async {
                        let mut bytes = first.len();
                        ws.feed(Message::text(first)).await?;
                        while bytes < WRITE_BATCH {
                            match rx.try_recv() {
                                Ok(next) => {
                                    bytes += next.len();
                                    ws.feed(Message::text(next)).await?;
                                }
                                Err(_) => break,
                            }
                        }
                        ws.flush().await
                    };
                    if let Err(f) = timed(write_timeout, batch).await {
                        return write_fail_reason(f);
                    }
                    // Fairness: a client flooded with relays still gets its own
                    // requests (and pongs) read between batches.
                    if let Some(incoming) = ws.next().now_or_never()
                        && let Some(reason) = self.incoming(ws, incoming, &mut alive).await
                    {
                        return reason;
                    }
                }
                Event::Incoming(incoming) => {
                    if let Some(reason) = self.incoming(ws, incoming, &mut alive).await {
                        return reason;
                    }
                }
                Event::Timer => {
                    let now = tokio::time::Instant::now();
                    let silent = now.saturating_duration_since(alive.last_rx);
                    if silent >= idle_timeout {
                        return DisconnectReason::Idle;
                    }
                    if silent >= ping_interval && !alive.pinged {
                        let ping = ws.send(Message::Ping(Default::default()));
                        if let Err(f) = timed(write_timeout, ping).await {
                            return write_fail_reason(f);
                        }
                        alive.pinged = true;
                    }
                    let next = if alive.pinged {
                        alive.last_rx + idle_timeout
                    } else {
                        alive.last_rx + ping_interval
                    };
                    timer.as_mut().reset(next);
                }
            }
        }
    }

    /// Handles one read result; `Some` ends the connection.
    async fn incoming<S>(
        &self,
        ws: &mut WebSocketStream<S>,
        incoming: Option<Result<Message, WsError>>,
        alive: &mut Liveness,
    ) -> Option<DisconnectReason>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let write_timeout = self.shared.config.server.write_timeout;
        let reply = match incoming {
            None => return Some(DisconnectReason::Closed),
            Some(Ok(msg)) => {
                alive.last_rx = tokio::time::Instant::now();
                alive.pinged = false;
                match msg {
                    Message::Text(t) => self.handle(ClientMessage::from_json_str(t.as_str())),
                    Message::Binary(b) => self.handle(ClientMessage::from_json(&b)),
                    Message::Close(_) => return Some(DisconnectReason::Closed),
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Reply::Nothing,
                }
            }
            Some(Err(WsError::Capacity(_))) => {
                self.shared.metrics.refused(RefusalReason::MessageTooLarge);
                let max = self.shared.config.limits.max_message_size.as_u64();
                Reply::Close(
                    ServerMessage::Error(ErrorResponse::new(format!(
                        "message too large (max {max} bytes)"
                    )))
                    .to_json(),
                    CloseCode::Size,
                )
            }
            Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed | WsError::Io(_))) => {
                return Some(DisconnectReason::Closed);
            }
            Some(Err(e)) => {
                tracing::debug!(conn = self.conn_id, error = %e, "protocol error");
                return Some(DisconnectReason::ProtocolError);
            }
        };
        match reply {
            Reply::Nothing => None,
            Reply::Send(text) => match timed(write_timeout, ws.send(Message::text(text))).await {
                Ok(()) => None,
                Err(f) => Some(write_fail_reason(f)),
            },
            Reply::Close(text, code) => {
                let last_words = async {
                    ws.send(Message::text(text)).await?;
                    let reason = match code {
                        CloseCode::Size => "message too large",
                        _ => "rate limit exceeded",
                    };
                    ws.close(Some(CloseFrame {
                        code,
                        reason: reason.into(),
                    }))
                    .await
                };
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, last_words).await;
                Some(DisconnectReason::ProtocolError)
            }
        }
    }

    /// Whether this address may make one more announce or scrape now.
    fn rate_ok(&self, now: Instant) -> bool {
        self.shared.limiter().try_announce(self.ip, now)
    }

    /// Handles one request; returns what to send this client.
    fn handle(&self, decoded: Result<ClientMessage, DecodeError>) -> Reply {
        let now = now();
        match decoded {
            Ok(ClientMessage::Announce(req)) => Reply::Send(self.announce(now, &req)),
            Ok(ClientMessage::Answer(req)) => {
                if self.answer(now, &req) {
                    return Reply::Nothing;
                }
                // A legitimate client rarely answers an offer it was not sent (late
                // answers only); a stream of them is spraying. Each costs a rate
                // token, and a client out of tokens is disconnected.
                if self.rate_ok(now) {
                    Reply::Nothing
                } else {
                    Reply::Close(self.rate_limited(None, None), CloseCode::Policy)
                }
            }
            Ok(ClientMessage::Scrape(req)) => Reply::Send(self.scrape(now, req)),
            Err(e) => {
                // Garbage costs a rate token like a request, so a flood is throttled.
                if !self.rate_ok(now) {
                    return Reply::Send(self.rate_limited(None, None));
                }
                self.shared.metrics.refused(RefusalReason::InvalidMessage);
                Reply::Send(ServerMessage::Error(ErrorResponse::new(e.to_string())).to_json())
            }
        }
    }

    fn refuse(
        &self,
        reason: RefusalReason,
        text: String,
        action: Action,
        info_hash: Option<InfoHash>,
    ) -> String {
        self.shared.metrics.refused(reason);
        if action == Action::Announce {
            self.shared.metrics.announce(AnnounceResult::Refused);
        }
        ServerMessage::Error(ErrorResponse {
            failure_reason: text,
            action: Some(action),
            info_hash,
        })
        .to_json()
    }

    fn rate_limited(&self, action: Option<Action>, info_hash: Option<InfoHash>) -> String {
        let text =
            "rate limit exceeded: too many requests from this address; retry later".to_owned();
        match action {
            Some(a) => self.refuse(RefusalReason::RateLimited, text, a, info_hash),
            None => {
                self.shared.metrics.refused(RefusalReason::RateLimited);
                ServerMessage::Error(ErrorResponse::new(text)).to_json()
            }
        }
    }

    fn announce(&self, now: Instant, req: &AnnounceRequest) -> String {
        let shared = &self.shared;
        let ih = Some(req.info_hash);
        if !self.rate_ok(now) {
            return self.rate_limited(Some(Action::Announce), ih);
        }
        if !shared.allow.is_empty() && !shared.allow.contains(&req.info_hash) {
            return self.refuse(
                RefusalReason::InfoHashNotAllowed,
                "info_hash not allowed on this tracker".to_owned(),
                Action::Announce,
                ih,
            );
        }
        let max_offers = shared.config.limits.max_offers_per_announce;
        if req.offers.len() > max_offers {
            return self.refuse(
                RefusalReason::TooManyOffers,
                format!("too many offers (max {max_offers})"),
                Action::Announce,
                ih,
            );
        }
        let mut relays = Vec::with_capacity(req.offers.len());
        match shared
            .store
            .with(|r| r.announce(now, self.conn_id, req, &mut relays))
        {
            Err(refusal) => {
                let reason = match refusal {
                    Refusal::TooManySwarms(_) => RefusalReason::TooManySwarms,
                    Refusal::PeerIdInUse => RefusalReason::PeerIdInUse,
                    Refusal::SwarmCapacity | Refusal::PeerCapacity | Refusal::UnknownConnection => {
                        RefusalReason::Capacity
                    }
                };
                self.refuse(reason, refusal.to_string(), Action::Announce, ih)
            }
            Ok(outcome) => {
                shared.metrics.announce(AnnounceResult::Ok);
                signal::relay_offers(req, &relays, &shared.metrics);
                let p = &shared.config.protocol;
                ServerMessage::AnnounceResponse(AnnounceResponse {
                    action: Action::Announce,
                    info_hash: req.info_hash,
                    complete: outcome.complete,
                    incomplete: outcome.incomplete,
                    interval: p.announce_interval.as_secs().max(1),
                    min_interval: Some(p.min_announce_interval.as_secs().max(1)),
                    warning_message: None,
                })
                .to_json()
            }
        }
    }

    /// Relays an answer; `false` when it matched no offer sent to this client.
    fn answer(&self, now: Instant, req: &AnswerRequest) -> bool {
        let shared = &self.shared;
        match shared.store.with(|r| r.answer(now, self.conn_id, req)) {
            Ok(to) => {
                signal::relay_answer(req, &to, &shared.metrics);
                true
            }
            Err(drop) => {
                let reason = match drop {
                    AnswerDrop::UnknownSwarm => DropReason::UnknownSwarm,
                    AnswerDrop::NotMember => DropReason::NotMember,
                    AnswerDrop::OffererGone => DropReason::PeerGone,
                    AnswerDrop::UnknownOffer => DropReason::UnknownOffer,
                };
                shared.metrics.dropped(SignalKind::Answer, reason);
                false
            }
        }
    }

    fn scrape(&self, now: Instant, req: ScrapeRequest) -> String {
        let shared = &self.shared;
        if !self.rate_ok(now) {
            return self.rate_limited(Some(Action::Scrape), None);
        }
        let Some(mut hashes) = req.info_hashes else {
            return self.refuse(
                RefusalReason::FullScrape,
                "full scrape is not supported; send one or more info_hash values".to_owned(),
                Action::Scrape,
                None,
            );
        };
        let max = shared.config.limits.max_scrape_info_hashes;
        if hashes.len() > max {
            return self.refuse(
                RefusalReason::TooManyScrapeHashes,
                format!("too many info_hash values in scrape (max {max})"),
                Action::Scrape,
                None,
            );
        }
        if !shared.allow.is_empty() && hashes.iter().any(|h| !shared.allow.contains(h)) {
            return self.refuse(
                RefusalReason::InfoHashNotAllowed,
                "info_hash not allowed on this tracker".to_owned(),
                Action::Scrape,
                None,
            );
        }
        // Duplicates would become duplicate JSON keys; keep the first of each.
        let mut seen = std::collections::HashSet::with_capacity(hashes.len());
        hashes.retain(|h| seen.insert(*h));
        let files = shared
            .store
            .read(|r| hashes.iter().map(|h| (*h, r.scrape(h))).collect());
        shared.metrics.scrapes.inc();
        ServerMessage::Scrape(ScrapeResponse {
            files,
            flags: Some(ScrapeFlags {
                min_request_interval: shared.config.protocol.announce_interval.as_secs().max(1),
            }),
        })
        .to_json()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_locations() {
        assert_eq!(
            token_from("/announce/abc123", None).as_deref(),
            Some("abc123")
        );
        assert_eq!(
            token_from("/announce/abc123/", None).as_deref(),
            Some("abc123")
        );
        assert_eq!(token_from("/announce/a/b", None), None);
        assert_eq!(token_from("/announce/", None), None);
        assert_eq!(
            token_from("/", Some("x=1&token=zz9")).as_deref(),
            Some("zz9")
        );
        assert_eq!(token_from("/announce", Some("tokenx=1")), None);
        assert_eq!(token_from("/", None), None);
    }

    #[test]
    fn token_comparison() {
        let tokens = vec![Secret::new("alpha-token"), Secret::new("beta-token")];
        assert!(token_ok(&tokens, Some("beta-token")));
        assert!(token_ok(&tokens, Some("alpha-token")));
        assert!(!token_ok(&tokens, Some("alpha-tokeN")));
        assert!(!token_ok(&tokens, Some("alpha-token-longer")));
        assert!(!token_ok(&tokens, Some("")));
        assert!(!token_ok(&tokens, None));
        assert!(token_ok(&[], None), "no tokens configured: open tracker");
    }
}
