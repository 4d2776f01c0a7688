//! Backend-independent handles: pending offers and answers, and connected links.
//!
//! Each connection is owned by one backend task (the *supervisor*). The handles here talk to
//! it through channels only, so they do not depend on the WebRTC stack:
//!
//! * a command channel (`Command`), whose senders live in every handle: when the last handle
//!   is dropped the supervisor sees the channel close and tears the connection down;
//! * a one-shot *ready* channel that carries the open link's parts, or the reason the attempt
//!   failed (sent only after the connection's resources have been released);
//! * a bounded frame queue from the supervisor to the [`FrameReceiver`];
//! * a [`FrameSink`] the [`FrameSender`] writes through (the backend's data channel);
//! * [`LinkShared`]: counters, state and close reason.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};

use crate::transport::error::{CloseReason, TransportError};

/// Longest SDP accepted from a peer (a data-channel SDP with a few dozen candidates is
/// 1–3 KiB).
pub const MAX_SDP_LEN: usize = 64 * 1024;

/// Which side of the offer/answer exchange this end of the link was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Created the offer (and the data channel).
    Offerer,
    /// Answered a remote offer.
    Answerer,
}

/// Lifecycle of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// Offer/answer exchange or handshakes in progress.
    Connecting,
    /// The data channel is open.
    Open,
    /// Tearing down.
    Closing,
    /// Closed; see [`LinkHandle::close_reason`].
    Closed,
}

/// A snapshot of one link's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkStats {
    /// Process-unique connection id (also in the `peer_link` tracing span).
    pub id: u64,
    /// Offerer or answerer.
    pub role: Role,
    /// Current state.
    pub state: LinkState,
    /// Frame bytes accepted by the data channel for sending.
    pub bytes_sent: u64,
    /// Frames accepted by the data channel for sending.
    pub frames_sent: u64,
    /// Frame bytes received from the peer (including frames still queued for the reader).
    pub bytes_received: u64,
    /// Frames received from the peer.
    pub frames_received: u64,
    /// Time from applying the answer (offerer) or producing it (answerer) to the open data
    /// channel: ICE + DTLS + SCTP handshakes.
    pub connect_time: Option<Duration>,
    /// Time since the data channel opened.
    pub open_for: Option<Duration>,
    /// Round-trip time of the selected ICE candidate pair (STUN consent checks), refreshed
    /// every few seconds while open. `None` until measured.
    pub rtt: Option<Duration>,
}

/// How the supervisor is told what to do.
#[derive(Debug)]
pub(crate) enum Command {
    /// Apply the remote answer (offerer only).
    ApplyAnswer(String),
    /// Close the link.
    Close,
}

/// Why a backend sink refused a frame.
#[derive(Debug)]
pub(crate) enum SinkError {
    /// The data channel or connection is closed.
    Closed,
    /// The stack refused the size (the peer advertised a smaller maximum message size).
    TooLarge,
    /// Anything else the backend reports.
    Other(String),
}

/// The sending half of a backend's data channel.
#[async_trait::async_trait]
pub(crate) trait FrameSink: Send + Sync + 'static {
    /// Queues one frame; waits while the send buffer is at its limit.
    async fn send_frame(&self, frame: Bytes) -> Result<(), SinkError>;
}

/// What the supervisor hands over once the data channel is open.
pub(crate) struct OpenParts {
    pub(crate) sink: Arc<dyn FrameSink>,
    pub(crate) frames: mpsc::Receiver<Bytes>,
    /// Largest frame the peer accepts, if the backend knows it.
    pub(crate) peer_max_frame: Option<usize>,
}

/// State shared between the supervisor and the handles of one connection.
pub(crate) struct LinkShared {
    pub(crate) id: u64,
    pub(crate) role: Role,
    pub(crate) max_frame_size: usize,
    bytes_sent: AtomicU64,
    frames_sent: AtomicU64,
    bytes_received: AtomicU64,
    frames_received: AtomicU64,
    rtt_micros: AtomicU64,
    connect_time: OnceLock<Duration>,
    opened_at: OnceLock<Instant>,
    close_reason: OnceLock<CloseReason>,
    state: watch::Sender<LinkState>,
}

const NO_RTT: u64 = u64::MAX;

impl LinkShared {
    pub(crate) fn new(id: u64, role: Role, max_frame_size: usize) -> Self {
        Self {
            id,
            role,
            max_frame_size,
            bytes_sent: AtomicU64::new(0),
            frames_sent: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            frames_received: AtomicU64::new(0),
            rtt_micros: AtomicU64::new(NO_RTT),
            connect_time: OnceLock::new(),
            opened_at: OnceLock::new(),
            close_reason: OnceLock::new(),
            state: watch::Sender::new(LinkState::Connecting),
        }
    }

    pub(crate) fn record_received(&self, len: usize) {
        self.frames_received.fetch_add(1, Ordering::Relaxed);
        self.bytes_received.fetch_add(len as u64, Ordering::Relaxed);
    }

    fn record_sent(&self, len: usize) {
        self.frames_sent.fetch_add(1, Ordering::Relaxed);
        self.bytes_sent.fetch_add(len as u64, Ordering::Relaxed);
    }

    pub(crate) fn set_rtt(&self, rtt: Duration) {
        let micros = u64::try_from(rtt.as_micros()).unwrap_or(NO_RTT - 1);
        self.rtt_micros.store(micros, Ordering::Relaxed);
    }

    /// Marks the link open after `connect_time`.
    pub(crate) fn set_open(&self, connect_time: Duration) {
        let _ = self.connect_time.set(connect_time);
        let _ = self.opened_at.set(Instant::now());
        self.state.send_replace(LinkState::Open);
    }

    /// Records why the link ends (first reason wins) and marks it closing.
    pub(crate) fn set_closing(&self, reason: CloseReason) {
        let _ = self.close_reason.set(reason);
        self.state.send_replace(LinkState::Closing);
    }

    /// Marks the link closed: every resource of the connection has been released.
    pub(crate) fn set_closed(&self) {
        self.state.send_replace(LinkState::Closed);
    }

    fn reason(&self) -> CloseReason {
        self.close_reason
            .get()
            .cloned()
            .unwrap_or(CloseReason::Dropped)
    }

    /// The reason for a data channel found closed by a send. Every local close records its
    /// reason before closing the channel, so a channel closed without one was closed by the
    /// peer (the supervisor has not processed the event yet).
    fn send_closed_reason(&self) -> CloseReason {
        self.close_reason
            .get()
            .cloned()
            .unwrap_or(CloseReason::Remote)
    }

    fn stats(&self) -> LinkStats {
        let rtt = match self.rtt_micros.load(Ordering::Relaxed) {
            NO_RTT => None,
            micros => Some(Duration::from_micros(micros)),
        };
        LinkStats {
            id: self.id,
            role: self.role,
            state: *self.state.borrow(),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            frames_sent: self.frames_sent.load(Ordering::Relaxed),
            bytes_received: self.bytes_received.load(Ordering::Relaxed),
            frames_received: self.frames_received.load(Ordering::Relaxed),
            connect_time: self.connect_time.get().copied(),
            open_for: self.opened_at.get().map(Instant::elapsed),
            rtt,
        }
    }

    async fn wait_closed(&self) -> CloseReason {
        let mut state = self.state.subscribe();
        // The sender lives in `self`, so `wait_for` cannot fail while we hold it.
        let _ = state.wait_for(|state| *state == LinkState::Closed).await;
        self.reason()
    }
}

/// Channels the backend supervisor keeps.
pub(crate) struct SupervisorSide {
    pub(crate) shared: Arc<LinkShared>,
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) ready: oneshot::Sender<Result<OpenParts, TransportError>>,
}

/// Channels a pending offer or answer keeps.
pub(crate) struct PendingConn {
    shared: Arc<LinkShared>,
    commands: mpsc::Sender<Command>,
    ready: oneshot::Receiver<Result<OpenParts, TransportError>>,
}

/// Creates the channels of a new connection.
pub(crate) fn new_connection(
    id: u64,
    role: Role,
    max_frame_size: usize,
) -> (PendingConn, SupervisorSide) {
    let shared = Arc::new(LinkShared::new(id, role, max_frame_size));
    let (command_tx, command_rx) = mpsc::channel(4);
    let (ready_tx, ready_rx) = oneshot::channel();
    (
        PendingConn {
            shared: Arc::clone(&shared),
            commands: command_tx,
            ready: ready_rx,
        },
        SupervisorSide {
            shared,
            commands: command_rx,
            ready: ready_tx,
        },
    )
}

impl PendingConn {
    async fn wait_open(self) -> Result<PeerLink, TransportError> {
        let PendingConn {
            shared,
            commands,
            ready,
        } = self;
        match ready.await {
            Ok(Ok(parts)) => Ok(PeerLink {
                sender: FrameSender {
                    max_frame_size: parts.peer_max_frame.map_or(shared.max_frame_size, |peer| {
                        peer.min(shared.max_frame_size)
                    }),
                    shared: Arc::clone(&shared),
                    sink: parts.sink,
                    _commands: commands.clone(),
                },
                receiver: FrameReceiver {
                    shared: Arc::clone(&shared),
                    frames: parts.frames,
                    _commands: commands.clone(),
                },
                handle: LinkHandle { shared, commands },
            }),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(TransportError::Closed(shared.reason())),
        }
    }
}

impl fmt::Debug for PendingConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingConn")
            .field("id", &self.shared.id)
            .field("role", &self.shared.role)
            .finish()
    }
}

/// An offer whose SDP is complete (ICE gathering finished), waiting for the peer's answer.
///
/// Dropping it releases the connection's sockets. If no answer is applied within
/// `offer_timeout` the sockets are released too and [`connect`](Self::connect) fails with
/// [`TransportError::Timeout`] ([`Phase::AwaitingAnswer`](crate::transport::Phase)).
#[derive(Debug)]
pub struct PendingOffer {
    pub(crate) sdp: String,
    pub(crate) conn: PendingConn,
}

impl PendingOffer {
    /// The offer SDP (non-trickle: carries every gathered candidate) to relay to the peer.
    pub fn sdp(&self) -> &str {
        &self.sdp
    }

    /// Process-unique id of this connection.
    pub fn id(&self) -> u64 {
        self.conn.shared.id
    }

    /// Applies the peer's answer SDP and waits until the data channel is open, at most
    /// `connect_timeout`. On error every resource of the connection is already released.
    pub async fn connect(self, answer_sdp: &str) -> Result<PeerLink, TransportError> {
        if answer_sdp.len() > MAX_SDP_LEN {
            return Err(TransportError::InvalidSdp(format!(
                "{} bytes, above the {MAX_SDP_LEN}-byte limit",
                answer_sdp.len()
            )));
        }
        // If the supervisor has already given up (offer expired) the command is lost and the
        // ready channel carries the reason.
        let _ = self
            .conn
            .commands
            .send(Command::ApplyAnswer(answer_sdp.to_owned()))
            .await;
        self.conn.wait_open().await
    }
}

/// An answer whose SDP is complete, to be relayed to the offering peer; the connection
/// proceeds as soon as the peer applies it.
///
/// Dropping it releases the connection. If the data channel is not open within
/// `connect_timeout` of the answer being produced, the connection is released and
/// [`connect`](Self::connect) fails with [`TransportError::Timeout`].
#[derive(Debug)]
pub struct PendingAnswer {
    pub(crate) sdp: String,
    pub(crate) conn: PendingConn,
}

impl PendingAnswer {
    /// The answer SDP (non-trickle) to relay back to the offering peer.
    pub fn sdp(&self) -> &str {
        &self.sdp
    }

    /// Process-unique id of this connection.
    pub fn id(&self) -> u64 {
        self.conn.shared.id
    }

    /// Waits until the data channel is open. On error every resource of the connection is
    /// already released.
    pub async fn connect(self) -> Result<PeerLink, TransportError> {
        self.conn.wait_open().await
    }
}

/// A connected link to one peer: one reliable, ordered data channel carrying opaque frames.
///
/// The three parts can be used from different tasks. The link stays up until
/// [`LinkHandle::close`] is called, the peer closes or fails, or all three parts are dropped.
#[derive(Debug)]
pub struct PeerLink {
    /// Sends frames (cloneable).
    pub sender: FrameSender,
    /// Receives frames.
    pub receiver: FrameReceiver,
    /// Stats, state and close (cloneable).
    pub handle: LinkHandle,
}

impl PeerLink {
    /// Splits the link into its parts.
    pub fn into_parts(self) -> (FrameSender, FrameReceiver, LinkHandle) {
        (self.sender, self.receiver, self.handle)
    }
}

/// Sends frames to the peer, with back-pressure.
///
/// A sender kept after its link closed holds the connection's protocol state in memory (not
/// its sockets or tasks) until it is dropped.
#[derive(Clone)]
pub struct FrameSender {
    /// `max_frame_size`, or less if the peer accepts less.
    max_frame_size: usize,
    shared: Arc<LinkShared>,
    sink: Arc<dyn FrameSink>,
    _commands: mpsc::Sender<Command>,
}

impl FrameSender {
    /// Sends one frame (1..=[`max_frame_size`](Self::max_frame_size) bytes). Waits while the peer's send buffer holds
    /// `send_buffer_limit` unacknowledged bytes, so a slow or stalled peer slows the caller
    /// down instead of growing memory. Frames arrive whole and in order.
    pub async fn send(&self, frame: Bytes) -> Result<(), TransportError> {
        let size = frame.len();
        if size == 0 {
            return Err(TransportError::EmptyFrame);
        }
        if size > self.max_frame_size {
            return Err(TransportError::FrameTooLarge {
                size,
                limit: self.max_frame_size,
            });
        }
        if *self.shared.state.borrow() != LinkState::Open {
            return Err(TransportError::Closed(self.shared.reason()));
        }
        match self.sink.send_frame(frame).await {
            Ok(()) => {
                self.shared.record_sent(size);
                Ok(())
            }
            Err(SinkError::Closed) => Err(TransportError::Closed(self.shared.send_closed_reason())),
            Err(SinkError::TooLarge) => Err(TransportError::FrameTooLarge {
                size,
                limit: self.max_frame_size,
            }),
            Err(SinkError::Other(message)) => {
                tracing::debug!(id = self.shared.id, %message, "data channel send failed");
                Err(TransportError::Closed(self.shared.send_closed_reason()))
            }
        }
    }

    /// Largest frame [`send`](Self::send) accepts: the configured `max_frame_size`, or the
    /// peer's advertised maximum message size if that is smaller.
    pub fn max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// True once the link is closing or closed.
    pub fn is_closed(&self) -> bool {
        matches!(
            *self.shared.state.borrow(),
            LinkState::Closing | LinkState::Closed
        )
    }
}

impl fmt::Debug for FrameSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameSender")
            .field("id", &self.shared.id)
            .finish()
    }
}

/// Receives frames from the peer, in order. Backed by a bounded queue of
/// `recv_queue_frames`: not reading stops the transport from reading, which slows the peer.
pub struct FrameReceiver {
    shared: Arc<LinkShared>,
    frames: mpsc::Receiver<Bytes>,
    _commands: mpsc::Sender<Command>,
}

impl FrameReceiver {
    /// The next frame. After the link ends (and queued frames are drained) returns
    /// [`TransportError::Closed`] with the reason; a reason with
    /// [`CloseReason::is_peer_misbehaviour`] means the peer should be banned.
    pub async fn recv(&mut self) -> Result<Bytes, TransportError> {
        match self.frames.recv().await {
            Some(frame) => Ok(frame),
            None => Err(TransportError::Closed(self.shared.reason())),
        }
    }
}

impl fmt::Debug for FrameReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameReceiver")
            .field("id", &self.shared.id)
            .field("queued", &self.frames.len())
            .finish()
    }
}

/// Stats, state and close for a link. Cloneable.
#[derive(Clone)]
pub struct LinkHandle {
    shared: Arc<LinkShared>,
    commands: mpsc::Sender<Command>,
}

impl LinkHandle {
    /// Process-unique id of this connection.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// Offerer or answerer.
    pub fn role(&self) -> Role {
        self.shared.role
    }

    /// Current state.
    pub fn state(&self) -> LinkState {
        *self.shared.state.borrow()
    }

    /// Counters, timings and RTT. Cheap: atomics only.
    pub fn stats(&self) -> LinkStats {
        self.shared.stats()
    }

    /// Why the link ended, once it is closing or closed.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.shared.close_reason.get().cloned()
    }

    /// Closes the link (the peer sees the data channel close) and waits until every resource
    /// is released. Idempotent.
    pub async fn close(&self) -> CloseReason {
        // A full queue means a close or answer is already pending; a closed one means the
        // supervisor has already finished. Either way, wait for the end.
        let _ = self.commands.try_send(Command::Close);
        self.shared.wait_closed().await
    }

    /// Waits until the link is closed, for whatever reason, and its resources are released.
    pub async fn closed(&self) -> CloseReason {
        self.shared.wait_closed().await
    }
}

impl fmt::Debug for LinkHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkHandle")
            .field("id", &self.shared.id)
            .field("state", &self.state())
            .finish()
    }
}
