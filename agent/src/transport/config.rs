//! Transport configuration: the `[transport]` section of the agent configuration.
//!
//! Every field has a default, so an empty section is valid. Durations use humantime syntax
//! (`"15s"`, `"500ms"`), sizes use bytesize syntax (`"64 KiB"`, `"4 MiB"`) or a plain number of
//! bytes. [`TransportConfig::validate`] checks values against each other and reports every
//! problem at once.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

/// Largest frame the transport moves: the SCTP default maximum message size (RFC 8841), which
/// every WebRTC stack accepts without negotiation.
pub const MAX_FRAME_SIZE_LIMIT: u64 = 64 * 1024;

/// Upper bound on `recv_queue_frames`, so a typo cannot reserve gigabytes per peer.
const MAX_RECV_QUEUE_FRAMES: usize = 65_536;

/// Upper bound on `reactor_threads` (the `webrtc` crate clamps at 1024 too).
const MAX_REACTOR_THREADS: usize = 1024;

/// Largest socket buffer accepted (the kernel's `int` option, halved because Linux doubles it).
const MAX_UDP_SOCKET_BUFFER: u64 = 1 << 30;

/// Smallest SCTP receive window RFC 9260 allows an endpoint to advertise.
const MIN_SCTP_RECEIVE_WINDOW: u64 = 1500;

/// Peer-to-peer transport settings (WebRTC data channels).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransportConfig {
    /// STUN and TURN servers used to gather server-reflexive and relay candidates. Empty means
    /// host candidates only (peers on the same network, or with public addresses).
    pub ice_servers: Vec<IceServerConfig>,
    /// Use only TURN relay candidates (hides the host's addresses from peers, costs relay
    /// bandwidth). Requires at least one `turn:`/`turns:` server.
    pub relay_only: bool,
    /// Local UDP addresses to bind, one socket set per connection. A wildcard such as
    /// `0.0.0.0:0` binds one socket on every non-loopback, non-link-local interface (the
    /// behaviour of `webrtc` 0.21); port 0 picks an ephemeral port. Add `"[::]:0"` for IPv6
    /// host candidates. Same-host tests must bind `127.0.0.1:0` explicitly, since the wildcard
    /// skips loopback.
    pub udp_bind: Vec<String>,
    /// Multicast DNS: `query-only` (default) resolves the `<uuid>.local` host candidates that
    /// browsers send, at the cost of one extra multicast socket per connection; `disabled`
    /// saves that socket when every peer is an agent.
    pub mdns: MdnsMode,
    /// Longest wait for ICE candidate gathering before an offer or answer is sent. The
    /// WebTorrent tracker relays one complete SDP (no trickle ICE), so the SDP is held until
    /// gathering completes; on timeout it is sent with the candidates found so far, or the
    /// attempt fails if there are none.
    #[serde(with = "humantime_serde")]
    pub gather_timeout: Duration,
    /// How long an offer waits for its answer before its sockets are released. The WebTorrent
    /// client uses 50 s.
    #[serde(with = "humantime_serde")]
    pub offer_timeout: Duration,
    /// Longest time from applying the answer (offerer) or producing it (answerer) to an open
    /// data channel: ICE checks, DTLS and SCTP handshakes.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Largest frame sent or accepted. At most 64 KiB (the SCTP default maximum message size,
    /// which is what the SDP always advertises). A peer that sends a larger frame is
    /// disconnected as misbehaving.
    pub max_frame_size: ByteSize,
    /// Per-peer bound on bytes handed to the data channel and not yet acknowledged by the
    /// peer. A sender waits when it is reached. Should be at least the SCTP receive window
    /// (1 MiB) for full throughput; the worst case per peer is this plus one frame.
    pub send_buffer_limit: ByteSize,
    /// Frames received from a peer and not yet read by the application. When full, the
    /// transport stops reading, and the peer is slowed down through the SCTP window.
    pub recv_queue_frames: usize,
    /// SCTP receive window advertised to peers (bytes in flight towards this agent per peer).
    /// Caps per-peer throughput at window / RTT (1 MiB at 100 ms is about 84 Mbit/s); lower
    /// it to save memory on many-peer boxes.
    pub sctp_receive_window: ByteSize,
    /// `SO_RCVBUF`/`SO_SNDBUF` requested for every UDP socket. SCTP sends bursts of up to the
    /// peer's receive window; with the Linux default (208 KiB) the tail of a burst is dropped
    /// and SCTP stalls for its 1 s minimum retransmission timeout. The kernel caps the value
    /// at `net.core.rmem_max`/`wmem_max` (raise those sysctls to at least this much). 0 keeps
    /// the kernel default.
    pub udp_socket_buffer: ByteSize,
    /// Threads of the `webrtc` dedicated reactor pool that runs the connection drivers (UDP
    /// I/O, DTLS, SCTP timers). 0 (default) runs drivers as ordinary tasks on the agent's
    /// runtime; on a 2-core machine one reactor thread made no consistent difference in
    /// `dc_bench`, so the default adds no threads. The pool is process-global: the first
    /// connection's value applies to the whole process.
    pub reactor_threads: usize,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            ice_servers: Vec::new(),
            relay_only: false,
            udp_bind: vec!["0.0.0.0:0".to_owned()],
            mdns: MdnsMode::QueryOnly,
            gather_timeout: Duration::from_secs(5),
            offer_timeout: Duration::from_secs(50),
            connect_timeout: Duration::from_secs(15),
            max_frame_size: ByteSize::kib(64),
            send_buffer_limit: ByteSize::mib(4),
            recv_queue_frames: 64,
            sctp_receive_window: ByteSize::mib(1),
            udp_socket_buffer: ByteSize::mib(2),
            reactor_threads: 0,
        }
    }
}

impl TransportConfig {
    /// A configuration for same-host tests and benchmarks: binds `127.0.0.1:0`, no mDNS,
    /// otherwise the defaults.
    pub fn loopback() -> Self {
        Self {
            udp_bind: vec!["127.0.0.1:0".to_owned()],
            mdns: MdnsMode::Disabled,
            ..Self::default()
        }
    }

    /// Checks every field and the relations between them; returns all problems at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();

        if self.udp_bind.is_empty() {
            problems.push("udp_bind: at least one address is required".to_owned());
        }
        for addr in &self.udp_bind {
            if addr.parse::<SocketAddr>().is_err() {
                problems.push(format!(
                    "udp_bind: {addr:?} is not an IP:port address (e.g. \"0.0.0.0:0\")"
                ));
            }
        }
        for (index, server) in self.ice_servers.iter().enumerate() {
            server.check(index, &mut problems);
        }
        if self.relay_only && !self.ice_servers.iter().any(IceServerConfig::has_turn_url) {
            problems.push("relay_only: requires at least one turn: or turns: server".to_owned());
        }
        for (name, value) in [
            ("gather_timeout", self.gather_timeout),
            ("offer_timeout", self.offer_timeout),
            ("connect_timeout", self.connect_timeout),
        ] {
            if value.is_zero() {
                problems.push(format!("{name}: must be greater than zero"));
            }
        }
        let frame = self.max_frame_size.as_u64();
        if frame == 0 || frame > MAX_FRAME_SIZE_LIMIT {
            problems.push(format!(
                "max_frame_size: {frame} bytes is outside 1..={MAX_FRAME_SIZE_LIMIT}"
            ));
        }
        if self.send_buffer_limit.as_u64() < frame {
            problems.push(format!(
                "send_buffer_limit: {} bytes is below max_frame_size ({frame} bytes)",
                self.send_buffer_limit.as_u64()
            ));
        }
        if usize::try_from(self.send_buffer_limit.as_u64()).is_err() {
            problems.push("send_buffer_limit: too large for this platform".to_owned());
        }
        if self.recv_queue_frames == 0 || self.recv_queue_frames > MAX_RECV_QUEUE_FRAMES {
            problems.push(format!(
                "recv_queue_frames: {} is outside 1..={MAX_RECV_QUEUE_FRAMES}",
                self.recv_queue_frames
            ));
        }
        let window = self.sctp_receive_window.as_u64();
        if window < MIN_SCTP_RECEIVE_WINDOW.max(frame) || window > u64::from(u32::MAX) {
            problems.push(format!(
                "sctp_receive_window: {window} bytes must be at least max_frame_size and 1500 \
                 bytes, and below 4 GiB"
            ));
        }
        if self.udp_socket_buffer.as_u64() > MAX_UDP_SOCKET_BUFFER {
            problems.push(format!(
                "udp_socket_buffer: {} bytes is above {MAX_UDP_SOCKET_BUFFER}",
                self.udp_socket_buffer.as_u64()
            ));
        }
        if self.reactor_threads > MAX_REACTOR_THREADS {
            problems.push(format!(
                "reactor_threads: {} is above {MAX_REACTOR_THREADS}",
                self.reactor_threads
            ));
        }

        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { problems })
        }
    }
}

/// Multicast DNS handling for ICE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MdnsMode {
    /// No mDNS socket; `.local` candidates from browsers cannot be resolved.
    Disabled,
    /// Resolve peers' `.local` candidates; never publish our own.
    QueryOnly,
}

/// One STUN or TURN server.
///
/// `Debug` never shows the credential.
#[derive(Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct IceServerConfig {
    /// Server URLs: `stun:host[:port]`, `turn:host[:port][?transport=udp|tcp]`,
    /// `turns:host[:port]`.
    pub urls: Vec<String>,
    /// TURN user name (empty for STUN).
    pub username: String,
    /// TURN credential (empty for STUN). Never logged.
    pub credential: String,
}

impl IceServerConfig {
    fn has_turn_url(&self) -> bool {
        self.urls.iter().any(|url| is_turn_url(url))
    }

    fn check(&self, index: usize, problems: &mut Vec<String>) {
        if self.urls.is_empty() {
            problems.push(format!("ice_servers[{index}]: urls must not be empty"));
        }
        for url in &self.urls {
            if let Err(error) = rtc::ice::url::Url::parse_url(url) {
                problems.push(format!(
                    "ice_servers[{index}]: {url:?} is not a stun:/stuns:/turn:/turns: URL ({error})"
                ));
            }
        }
        if self.has_turn_url() && (self.username.is_empty() || self.credential.is_empty()) {
            problems.push(format!(
                "ice_servers[{index}]: TURN servers need a username and a credential"
            ));
        }
    }
}

fn is_turn_url(url: &str) -> bool {
    let scheme = url.split(':').next().unwrap_or_default();
    scheme.eq_ignore_ascii_case("turn") || scheme.eq_ignore_ascii_case("turns")
}

impl fmt::Debug for IceServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let credential = if self.credential.is_empty() {
            ""
        } else {
            "<redacted>"
        };
        f.debug_struct("IceServerConfig")
            .field("urls", &self.urls)
            .field("username", &self.username)
            .field("credential", &credential)
            .finish()
    }
}

/// Every problem [`TransportConfig::validate`] found, one line each.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid transport configuration: {}", problems.join("; "))]
pub struct ConfigError {
    /// One human-readable line per problem, prefixed with the field name.
    pub problems: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(TransportConfig::default().validate(), Ok(()));
        assert_eq!(TransportConfig::loopback().validate(), Ok(()));
    }

    #[test]
    fn every_problem_is_reported() {
        let config = TransportConfig {
            udp_bind: vec!["nonsense".to_owned()],
            connect_timeout: Duration::ZERO,
            max_frame_size: ByteSize::kib(128),
            send_buffer_limit: ByteSize::kib(1),
            recv_queue_frames: 0,
            sctp_receive_window: ByteSize::b(100),
            reactor_threads: 5000,
            udp_socket_buffer: ByteSize::gib(2),
            relay_only: true,
            ice_servers: vec![IceServerConfig {
                urls: vec![
                    "http://example.com".to_owned(),
                    "turn:turn.example".to_owned(),
                ],
                username: String::new(),
                credential: String::new(),
            }],
            ..TransportConfig::default()
        };
        let error = config.validate().expect_err("invalid config accepted");
        let text = error.to_string();
        for field in [
            "udp_bind",
            "connect_timeout",
            "max_frame_size",
            "send_buffer_limit",
            "recv_queue_frames",
            "sctp_receive_window",
            "reactor_threads",
            "udp_socket_buffer",
            "ice_servers[0]: \"http://example.com\"",
            "TURN servers need a username",
        ] {
            assert!(text.contains(field), "{field} missing from: {text}");
        }
        // relay_only is satisfied by the (credential-less) turn: URL; its own problem is the
        // missing credential.
        assert!(!text.contains("relay_only"), "{text}");
        assert_eq!(error.problems.len(), 10, "{text}");
    }

    #[test]
    fn relay_only_needs_turn() {
        let config = TransportConfig {
            relay_only: true,
            ..TransportConfig::default()
        };
        let error = config
            .validate()
            .expect_err("relay_only without TURN accepted");
        assert_eq!(error.problems.len(), 1);
        assert!(error.problems[0].starts_with("relay_only"));
    }

    #[test]
    fn empty_bind_list_rejected() {
        let config = TransportConfig {
            udp_bind: Vec::new(),
            ..TransportConfig::default()
        };
        assert!(config.validate().is_err());
    }

    #[test]
    fn credential_is_never_in_debug_output() {
        let server = IceServerConfig {
            urls: vec!["turn:turn.example.com:3478".to_owned()],
            username: "alice".to_owned(),
            credential: "hunter2".to_owned(),
        };
        let config = TransportConfig {
            ice_servers: vec![server],
            ..TransportConfig::default()
        };
        assert_eq!(config.validate(), Ok(()));
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
    }

    #[test]
    fn deserializes_humantime_and_bytesize() {
        let json = r#"{
            "connect_timeout": "3s",
            "max_frame_size": "16 KiB",
            "send_buffer_limit": 2097152,
            "mdns": "disabled",
            "ice_servers": [{"urls": ["stun:stun.example.com:3478"]}]
        }"#;
        let config: TransportConfig = serde_json::from_str(json).expect("parse");
        assert_eq!(config.connect_timeout, Duration::from_secs(3));
        assert_eq!(config.max_frame_size.as_u64(), 16 * 1024);
        assert_eq!(config.send_buffer_limit.as_u64(), 2 * 1024 * 1024);
        assert_eq!(config.mdns, MdnsMode::Disabled);
        assert_eq!(config.offer_timeout, Duration::from_secs(50));
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn unknown_keys_are_errors() {
        let result: Result<TransportConfig, _> = serde_json::from_str(r#"{"conect_timeout":"1s"}"#);
        assert!(result.is_err());
    }

    #[test]
    fn default_round_trips_through_serde() {
        let text = serde_json::to_string(&TransportConfig::default()).expect("serialize");
        let back: TransportConfig = serde_json::from_str(&text).expect("deserialize");
        assert_eq!(back, TransportConfig::default());
    }
}
