//! Errors and close reasons of the transport, independent of the WebRTC backend.

use std::fmt;
use std::time::Duration;

use crate::transport::config::ConfigError;

/// What a connection attempt was doing when it timed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Gathering ICE candidates for the offer or answer, and none were found.
    Gathering,
    /// Waiting for the answer to an offer (`offer_timeout`).
    AwaitingAnswer,
    /// ICE checks, DTLS and SCTP handshakes until the data channel opens (`connect_timeout`).
    Connecting,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Gathering => "gathering ICE candidates",
            Phase::AwaitingAnswer => "waiting for the answer",
            Phase::Connecting => "connecting",
        })
    }
}

/// Why a link ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// [`LinkHandle::close`](crate::transport::LinkHandle::close) was called on this side.
    Local,
    /// Every handle of the link (sender, receiver, link handle, pending offer/answer) was
    /// dropped.
    Dropped,
    /// The peer closed the data channel or the connection.
    Remote,
    /// The connection failed after it was open (ICE consent lost: the peer vanished).
    ConnectionFailed,
    /// The peer sent a frame larger than `max_frame_size` (hostile or broken peer).
    PeerFrameTooLarge {
        /// Size of the frame received.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The peer broke the link contract (text message, unreliable or unordered channel).
    PeerProtocolViolation(&'static str),
}

impl CloseReason {
    /// True when the peer misbehaved; the caller may want to ban it.
    pub fn is_peer_misbehaviour(&self) -> bool {
        matches!(
            self,
            CloseReason::PeerFrameTooLarge { .. } | CloseReason::PeerProtocolViolation(_)
        )
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Local => f.write_str("closed locally"),
            CloseReason::Dropped => f.write_str("all handles dropped"),
            CloseReason::Remote => f.write_str("closed by the peer"),
            CloseReason::ConnectionFailed => f.write_str("connection to the peer failed"),
            CloseReason::PeerFrameTooLarge { size, limit } => {
                write!(
                    f,
                    "peer sent a {size}-byte frame, above the {limit}-byte limit"
                )
            }
            CloseReason::PeerProtocolViolation(what) => {
                write!(f, "peer violated the protocol: {what}")
            }
        }
    }
}

/// Errors of the transport, classified by cause.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A remote SDP could not be parsed, or does not describe a data channel.
    #[error("invalid SDP: {0}")]
    InvalidSdp(String),
    /// The peer's well-formed SDP was rejected by the WebRTC stack (missing fingerprint or ICE
    /// credentials, incompatible parameters).
    #[error("signalling failed: {0}")]
    Signalling(String),
    /// ICE connectivity checks failed: no candidate pair works.
    #[error("ICE connection failed")]
    IceFailed,
    /// A connection attempt took too long.
    #[error("timed out after {after:?} while {phase}")]
    Timeout {
        /// What the attempt was doing.
        phase: Phase,
        /// The limit that expired.
        after: Duration,
    },
    /// The link (or the attempt) is closed.
    #[error("link closed: {0}")]
    Closed(CloseReason),
    /// A frame handed to [`FrameSender::send`](crate::transport::FrameSender::send) is larger
    /// than `max_frame_size` (or than the peer accepts).
    #[error("frame of {size} bytes exceeds the {limit}-byte limit")]
    FrameTooLarge {
        /// Size of the rejected frame.
        size: usize,
        /// The limit in force.
        limit: usize,
    },
    /// Empty frames are not sent (they carry nothing and are a special case in SCTP).
    #[error("empty frames are not allowed")]
    EmptyFrame,
    /// The local side could not be set up (socket binding, certificate, driver start).
    #[error("could not set up the peer connection: {0}")]
    Setup(String),
}

impl TransportError {
    /// True when the error is the peer's fault (invalid or unusable SDP, hostile frames); the
    /// caller may want to ban the peer.
    pub fn is_peer_misbehaviour(&self) -> bool {
        match self {
            TransportError::InvalidSdp(_) | TransportError::Signalling(_) => true,
            TransportError::Closed(reason) => reason.is_peer_misbehaviour(),
            _ => false,
        }
    }

    /// True for timeouts of any phase.
    pub fn is_timeout(&self) -> bool {
        matches!(self, TransportError::Timeout { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_clear() {
        let timeout = TransportError::Timeout {
            phase: Phase::Connecting,
            after: Duration::from_secs(2),
        };
        assert_eq!(timeout.to_string(), "timed out after 2s while connecting");
        assert!(timeout.is_timeout());
        let hostile = TransportError::Closed(CloseReason::PeerFrameTooLarge {
            size: 70_000,
            limit: 65_536,
        });
        assert!(hostile.is_peer_misbehaviour());
        assert_eq!(
            hostile.to_string(),
            "link closed: peer sent a 70000-byte frame, above the 65536-byte limit"
        );
        assert!(!TransportError::Closed(CloseReason::Remote).is_peer_misbehaviour());
        assert!(TransportError::InvalidSdp("x".into()).is_peer_misbehaviour());
    }
}
