//! Peer transport: WebRTC data channels carrying opaque frames between two agents.
//!
//! The transport knows nothing of segments. It turns an offer/answer exchange (relayed by the
//! WebTorrent tracker as one complete SDP each way) into a [`PeerLink`]: one reliable,
//! ordered data channel per peer, with a frame sender that applies back-pressure and a
//! bounded frame receiver.
//!
//! ```text
//!   offerer                                   answerer
//!   transport.create_offer() ── offer SDP ──▶ transport.accept_offer(sdp)
//!   pending.connect(answer)  ◀─ answer SDP ── pending.sdp(); pending.connect()
//!          │                                          │
//!          └────────── PeerLink { sender, receiver, handle } ──────────┘
//! ```
//!
//! # Design
//!
//! * [`Transport`] is our own small trait; [`WebRtcTransport`] implements it with the
//!   `webrtc` crate (exact pin 0.21.1). The handles ([`PendingOffer`], [`PendingAnswer`],
//!   [`PeerLink`] and its parts) are backend-independent: they talk to a per-connection
//!   backend task through channels, so a str0m or raw-`rtc` backend only has to provide that
//!   task.
//! * **Non-trickle ICE.** `create_offer`/`accept_offer` return once ICE gathering is
//!   complete (bounded by `gather_timeout`), so the SDP carries every candidate.
//! * **Resources.** Each connection is owned by one supervisor task, which also owns the
//!   crate's driver (and its UDP sockets). Timeouts (`offer_timeout`, `connect_timeout`),
//!   failures, [`LinkHandle::close`], a hostile peer, or dropping every handle all end in the
//!   same cleanup; an error from `connect` is returned only after that cleanup, so a caller
//!   that sees an error knows the sockets are closed and the tasks have ended.
//! * **Back-pressure, sending.** The crate's send-buffer limit
//!   (`with_data_channel_send_buffer_limit`, set from `send_buffer_limit`) makes
//!   [`FrameSender::send`] wait while that many bytes are unacknowledged; a stalled peer costs
//!   at most `send_buffer_limit` + one frame.
//! * **Back-pressure, receiving.** A bounded queue of `recv_queue_frames` frames. When the
//!   application does not read, the supervisor stops polling the data channel; the crate
//!   then fills its own per-channel event queue (256 messages) and the `rtc` core's read
//!   backlog (256 messages), stops draining SCTP, the advertised window closes and the
//!   peer's sender waits. Worst case per non-reading peer, measured by a test:
//!   (`recv_queue_frames` + 512) messages + the SCTP receive window, i.e. about 37 MiB with
//!   the defaults (64-frame queue, 64 KiB frames). The bound is in messages, so smaller
//!   frames lower it. The agent reads every peer continuously, so this is reached only by a
//!   stuck consumer.
//! * **Hostile peers.** Frames above `max_frame_size`, text messages, and unreliable or
//!   unordered channels close the link with a [`CloseReason`] for which
//!   [`CloseReason::is_peer_misbehaviour`] is true. The SDP always advertises the stack's
//!   64 KiB `max-message-size`, so a smaller `max_frame_size` is enforced here, where a
//!   violation is visible. Extra channels opened by the peer are closed. Remote SDPs are
//!   size-limited and must carry a data-channel section.
//! * **Reactor.** `reactor_threads = 0` (default) runs the crate's per-connection drivers as
//!   ordinary tasks on the agent's tokio runtime. A dedicated reactor pool
//!   (`with_dedicated_reactor_pool_size`) moves them to separate current-thread runtimes;
//!   upstream measured that to help on many-core hosts (scheduler thrash with 16 workers).
//!   On the 2-core target `dc_bench` showed no consistent difference (109–180 MB/s with one
//!   reactor thread, 111–186 MB/s without, same CPU per GB, noisy shared machine), so the
//!   default adds no threads. The pool is process-global and sized by the first connection.
//! * **UDP buffers.** Every socket gets `udp_socket_buffer` (2 MiB) as `SO_RCVBUF`/`SO_SNDBUF`
//!   (see `runtime.rs`): with the 208 KiB kernel default, SCTP bursts overflowed the socket
//!   and stalled on the 1 s minimum RTO (32 MB/s and 1 s p90 segment times on loopback;
//!   with the larger buffers 110–190 MB/s and no stalls).
//! * **Frame size.** Costs are per message: 64 KiB frames moved 110–190 MB/s at 4–5 CPU s/GB,
//!   16 KiB frames 46 MB/s at 11.5 CPU s/GB.
//!
//! # Known limits of `webrtc` 0.21
//!
//! * One set of UDP sockets per connection (no UDP mux): 50 peers need 50+ ports. With the
//!   default `query-only` mDNS, one more multicast socket per connection.
//! * A wildcard bind skips loopback; same-host tests bind `127.0.0.1:0` and disable mDNS.
//! * Memory: about 0.4–0.5 MB resident per idle connection; under load add the send buffer
//!   (`send_buffer_limit`) and, for a peer the application does not read, the receive path
//!   bound above.
//! * Connect time on loopback is about 0.4–0.6 s, all of it protocol timers: DTLS starts at
//!   the next 200 ms ICE check tick and the SCTP/DCEP handshake waits on delayed-SACK timers.
//! * An inbound message above the negotiated maximum message size (64 KiB, or less if the
//!   peer advertises less) is dropped inside the crate's SCTP layer (`ErrShortBuffer`,
//!   logged by the crate) together with the rest of its read batch; the application never
//!   sees it, so the frame stream has a gap. Frames between `max_frame_size` and that limit
//!   are caught here and close the link.
//! * Dropping a `PeerConnection` without `close()` leaves the crate's driver task running;
//!   the supervisor always closes it.

pub mod bench;
mod config;
mod error;
mod link;
mod runtime;
mod webrtc_backend;

#[cfg(test)]
mod tests;

pub use config::{ConfigError, IceServerConfig, MAX_FRAME_SIZE_LIMIT, MdnsMode, TransportConfig};
pub use error::{CloseReason, Phase, TransportError};
pub use link::{
    FrameReceiver, FrameSender, LinkHandle, LinkState, LinkStats, MAX_SDP_LEN, PeerLink,
    PendingAnswer, PendingOffer, Role,
};
pub use webrtc_backend::{DATA_CHANNEL_LABEL, WebRtcTransport};

/// Creates peer links from offer/answer exchanges. One instance per agent, shared by all
/// connections.
#[async_trait::async_trait]
pub trait Transport: Send + Sync + 'static {
    /// Starts an outgoing connection: creates the data channel and an offer, and waits until
    /// ICE gathering is complete (at most `gather_timeout`), so the offer's SDP carries every
    /// candidate. The offer's sockets are released if no answer is applied within
    /// `offer_timeout`.
    async fn create_offer(&self) -> Result<PendingOffer, TransportError>;

    /// Accepts a remote offer SDP: produces a complete (non-trickle) answer. The connection
    /// opens once the offerer applies the answer; it is released if that does not happen
    /// within `connect_timeout`.
    async fn accept_offer(&self, offer_sdp: &str) -> Result<PendingAnswer, TransportError>;

    /// The configuration in force.
    fn config(&self) -> &TransportConfig;
}
