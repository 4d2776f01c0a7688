//! The peer wire protocol: one reliable, ordered data channel per peer per swarm, one message per
//! frame, every frame at most [`MAX_FRAME_LEN`] bytes (64 KiB, the common WebRTC data-channel
//! message limit).
//!
//! # Frame layout (all integers big-endian)
//!
//! | type | message | body after the type byte |
//! |---|---|---|
//! | `0x00` | [`Message::Handshake`] | `version u16`, `info_hash [20]`, `peer_id [20]`, `capabilities u32`, `max_frame u32` |
//! | `0x01` | [`Message::Keepalive`] | empty |
//! | `0x02` | [`Message::Have`] | `seq u64`, `flags u8` (bit 0: digest follows; bit 1: partial), `[digest 32]` |
//! | `0x03` | [`Message::Bitfield`] | `base_seq u64`, `nbits u16`, `ceil(nbits/8)` bytes, bit `i` (MSB first) = `base_seq + i`; padding bits zero |
//! | `0x04` | [`Message::Request`] | `req_id u32`, `seq u64`, `flags u8`, `[digest 32]` |
//! | `0x05` | [`Message::Cancel`] | `req_id u32` |
//! | `0x06` | [`Message::Data`] | `req_id u32`, `offset u32`, `total_len u32`, payload (rest of the frame) |
//! | `0x07` | [`Message::Absent`] | `req_id u32` |
//! | `0x08` | [`Message::Busy`] | `req_id u32` |
//!
//! Decoding is strict: unknown types, unknown flag bits, short bodies, trailing bytes, a protocol
//! version other than [`PROTOCOL_VERSION`], oversized frames, bitfields or segments, and data
//! chunks that do not fit inside `total_len` are all typed errors ([`ProtoError`]); nothing panics
//! on hostile input. The `Data` payload is a zero-copy slice of the input frame.
//!
//! A segment travels as consecutive `Data` chunks of one request (`offset` strictly contiguous);
//! [`Reassembly`] rebuilds it and returns the complete body. The body is *not* trusted until the
//! driver checks its SHA-256 against the origin's digest.
//!
//! [`PeerSession`] is the per-connection state machine: our handshake goes first, the remote's
//! handshake must be the first frame we receive and must name the same swarm, then every other
//! message is passed up. Time is injected (`now`): the session asks for keepalives and fails on
//! handshake and idle timeouts.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::core::ids::{Digest, InfoHash, PeerId};
use crate::core::stripes::Stripes;

/// Version of this wire protocol, carried in the handshake.
pub const PROTOCOL_VERSION: u16 = 1;
/// Largest frame either side may send (64 KiB).
pub const MAX_FRAME_LEN: usize = 64 * 1024;
/// Smallest `max_frame` a peer may announce; below it chunking overhead is absurd.
pub const MIN_FRAME_LEN: usize = 1024;
/// Default upper bound on one segment's size (64 MiB).
pub const DEFAULT_MAX_SEGMENT_SIZE: u32 = 64 * 1024 * 1024;
/// Default upper bound on the number of bits in a bitfield.
pub const DEFAULT_MAX_BITFIELD_BITS: u16 = 4096;
/// Header bytes in front of a `Data` payload (type + req_id + offset + total_len).
pub const DATA_HEADER_LEN: usize = 13;

const T_HANDSHAKE: u8 = 0x00;
const T_KEEPALIVE: u8 = 0x01;
const T_HAVE: u8 = 0x02;
const T_BITFIELD: u8 = 0x03;
const T_REQUEST: u8 = 0x04;
const T_CANCEL: u8 = 0x05;
const T_DATA: u8 = 0x06;
const T_ABSENT: u8 = 0x07;
const T_BUSY: u8 = 0x08;

const FLAG_DIGEST: u8 = 0x01;
/// `Have` only: the sender is still receiving the segment and serves its verified chunks as
/// they arrive (cut-through). Sent only to peers announcing [`Capabilities::CUT_THROUGH`].
const FLAG_PARTIAL: u8 = 0x02;

/// Limits applied when decoding (and encoding) frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProtoLimits {
    /// Largest frame accepted or produced, in bytes (≤ [`MAX_FRAME_LEN`]).
    pub max_frame: usize,
    /// Largest `total_len` of a segment transfer.
    pub max_segment_size: u32,
    /// Largest number of bits in a `Bitfield`.
    pub max_bitfield_bits: u16,
}

impl Default for ProtoLimits {
    fn default() -> Self {
        ProtoLimits {
            max_frame: MAX_FRAME_LEN,
            max_segment_size: DEFAULT_MAX_SEGMENT_SIZE,
            max_bitfield_bits: DEFAULT_MAX_BITFIELD_BITS,
        }
    }
}

/// Capability bits announced in the handshake. Unknown bits are kept and ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Capabilities(pub u32);

impl Capabilities {
    /// The peer uploads segments (not leech-only).
    pub const UPLOAD: Capabilities = Capabilities(1 << 0);
    /// The peer shares segments without digests (the stream runs with `integrity = "off"`).
    pub const UNVERIFIED: Capabilities = Capabilities(1 << 1);
    /// The peer understands partial `Have`s and serves segments it is still receiving, chunk
    /// by verified chunk (the stream publishes chunk digests).
    pub const CUT_THROUGH: Capabilities = Capabilities(1 << 2);

    /// Bits 8–11: the sender's stripe count minus one (`p2p.stripes`; see
    /// [`crate::core::stripes`]). Both ends of a session must use the same count, because
    /// `Have`, `Bitfield` and `Request` carry unit ids; a session between different counts is
    /// refused ([`SessionError::StripesMismatch`]). Zero (every older agent) means one stripe.
    const STRIPES_SHIFT: u32 = 8;
    const STRIPES_MASK: u32 = 0xf << Self::STRIPES_SHIFT;

    /// These capabilities announcing `stripes`.
    pub fn with_stripes(self, stripes: Stripes) -> Capabilities {
        let bits = (u32::from(stripes.get()) - 1) << Self::STRIPES_SHIFT;
        Capabilities((self.0 & !Self::STRIPES_MASK) | bits)
    }

    /// The stripe count announced (`None` for a count this agent does not support).
    pub fn stripes(self) -> Option<Stripes> {
        let n = (self.0 & Self::STRIPES_MASK) >> Self::STRIPES_SHIFT;
        u8::try_from(n + 1).ok().and_then(Stripes::new)
    }

    /// True if every bit of `other` is set.
    pub fn contains(self, other: Capabilities) -> bool {
        self.0 & other.0 == other.0
    }

    /// Union of two sets.
    pub fn union(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 | other.0)
    }
}

/// A set of sequence numbers starting at a base, as carried by [`Message::Bitfield`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BitSet {
    len: u16,
    bytes: Vec<u8>,
}

impl BitSet {
    /// An empty set of `len` bits.
    pub fn new(len: u16) -> Self {
        BitSet {
            len,
            bytes: vec![0; usize::from(len).div_ceil(8)],
        }
    }

    /// Number of bits (set or not).
    pub fn len(&self) -> u16 {
        self.len
    }

    /// True if the set has no bits at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sets bit `i`; out-of-range indices are ignored.
    pub fn set(&mut self, i: u16) {
        if i < self.len {
            let idx = usize::from(i / 8);
            if let Some(b) = self.bytes.get_mut(idx) {
                *b |= 0x80 >> (i % 8);
            }
        }
    }

    /// True if bit `i` is set.
    pub fn get(&self, i: u16) -> bool {
        i < self.len
            && self
                .bytes
                .get(usize::from(i / 8))
                .is_some_and(|b| b & (0x80 >> (i % 8)) != 0)
    }

    /// Indices of the set bits, ascending.
    pub fn iter_set(&self) -> impl Iterator<Item = u16> + '_ {
        (0..self.len).filter(move |&i| self.get(i))
    }

    /// Number of set bits.
    pub fn count_ones(&self) -> u32 {
        self.bytes.iter().map(|b| b.count_ones()).sum()
    }

    fn raw(&self) -> &[u8] {
        &self.bytes
    }
}

/// One peer-protocol message (one frame).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// First frame in each direction.
    Handshake {
        /// Protocol version; must equal [`PROTOCOL_VERSION`].
        version: u16,
        /// Swarm the sender believes this channel belongs to.
        info_hash: InfoHash,
        /// Sender's peer id.
        peer_id: PeerId,
        /// Sender's capabilities.
        capabilities: Capabilities,
        /// Largest frame the sender accepts.
        max_frame: u32,
    },
    /// Sent when nothing else was sent for a while.
    Keepalive,
    /// The sender holds a verified copy of segment `seq` with this digest, or (`partial`) is
    /// receiving one and can serve its verified chunks as they arrive.
    Have {
        /// Segment sequence number.
        seq: u64,
        /// Digest of the copy (`None` only in streams running without integrity).
        digest: Option<Digest>,
        /// Still being received (cut-through); a later `Have` without the flag says it is whole.
        partial: bool,
    },
    /// The sender holds the segments whose bits are set, counted from `base_seq`.
    Bitfield {
        /// Sequence number of bit 0.
        base_seq: u64,
        /// Availability bits.
        bits: BitSet,
    },
    /// Please send segment `seq` whose digest is `digest`.
    Request {
        /// Requester-chosen id echoed in the answer.
        req_id: u32,
        /// Segment sequence number.
        seq: u64,
        /// Digest the requester expects (the server answers `Absent` if its copy differs).
        digest: Option<Digest>,
    },
    /// Stop sending request `req_id`.
    Cancel {
        /// The request to stop.
        req_id: u32,
    },
    /// A chunk of a segment body.
    Data {
        /// Request this chunk answers.
        req_id: u32,
        /// Byte offset of `payload` inside the segment.
        offset: u32,
        /// Total size of the segment.
        total_len: u32,
        /// The bytes (zero-copy slice of the received frame).
        payload: Bytes,
    },
    /// The sender does not hold the requested segment (or holds a different digest).
    Absent {
        /// The refused request.
        req_id: u32,
    },
    /// The sender has no upload slot or budget right now; ask someone else.
    Busy {
        /// The refused request.
        req_id: u32,
    },
}

/// Errors decoding or encoding a frame. Every variant names what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// The frame is empty.
    #[error("empty frame")]
    Empty,
    /// The type byte names no known message.
    #[error("unknown message type 0x{0:02x}")]
    UnknownType(u8),
    /// The body ended before the message was complete.
    #[error("truncated {msg} frame: need {need} bytes, have {have}")]
    Truncated {
        /// Message kind.
        msg: &'static str,
        /// Bytes needed.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// Bytes remain after a complete fixed-size message.
    #[error("{extra} trailing bytes after {msg} frame")]
    TrailingBytes {
        /// Message kind.
        msg: &'static str,
        /// Extra bytes.
        extra: usize,
    },
    /// The handshake names another protocol version.
    #[error("protocol version {got} not supported (expected {expected})")]
    VersionMismatch {
        /// Version the peer sent.
        got: u16,
        /// Version we speak.
        expected: u16,
    },
    /// The frame is larger than the limit.
    #[error("frame of {len} bytes exceeds the {max} byte limit")]
    FrameTooLarge {
        /// Frame length.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// A flags byte has bits we do not know.
    #[error("unknown flag bits 0x{0:02x}")]
    BadFlags(u8),
    /// A bitfield has more bits than allowed.
    #[error("bitfield of {bits} bits exceeds the {max} bit limit")]
    BitfieldTooLarge {
        /// Bits announced.
        bits: u16,
        /// Limit.
        max: u16,
    },
    /// Padding bits after the last bitfield bit are not zero.
    #[error("bitfield padding bits are not zero")]
    BitfieldPadding,
    /// A data chunk announces a segment above the size limit (or of size 0).
    #[error("segment size {total_len} outside 1..={max}")]
    SegmentSize {
        /// Announced total length.
        total_len: u32,
        /// Limit.
        max: u32,
    },
    /// A data chunk is empty or extends past `total_len`.
    #[error("data chunk [{offset}, +{len}) does not fit in a {total_len} byte segment")]
    DataOutOfRange {
        /// Chunk offset.
        offset: u32,
        /// Chunk length.
        len: usize,
        /// Segment length.
        total_len: u32,
    },
    /// The handshake announces a `max_frame` outside [`MIN_FRAME_LEN`]..=u32::MAX.
    #[error("handshake max_frame {0} is below the minimum")]
    MaxFrameTooSmall(u32),
}

impl Message {
    /// Short name for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Handshake { .. } => "handshake",
            Message::Keepalive => "keepalive",
            Message::Have { .. } => "have",
            Message::Bitfield { .. } => "bitfield",
            Message::Request { .. } => "request",
            Message::Cancel { .. } => "cancel",
            Message::Data { .. } => "data",
            Message::Absent { .. } => "absent",
            Message::Busy { .. } => "busy",
        }
    }

    /// Exact length of the encoded frame.
    pub fn encoded_len(&self) -> usize {
        match self {
            Message::Handshake { .. } => 1 + 2 + 20 + 20 + 4 + 4,
            Message::Keepalive => 1,
            Message::Have { digest, .. } => 1 + 8 + 1 + if digest.is_some() { 32 } else { 0 },
            Message::Bitfield { bits, .. } => 1 + 8 + 2 + bits.raw().len(),
            Message::Request { digest, .. } => {
                1 + 4 + 8 + 1 + if digest.is_some() { 32 } else { 0 }
            }
            Message::Cancel { .. } | Message::Absent { .. } | Message::Busy { .. } => 1 + 4,
            Message::Data { payload, .. } => DATA_HEADER_LEN + payload.len(),
        }
    }
}

fn put_digest(out: &mut BytesMut, digest: &Option<Digest>, extra_flags: u8) {
    match digest {
        Some(d) => {
            out.put_u8(FLAG_DIGEST | extra_flags);
            out.put_slice(&d.0);
        }
        None => out.put_u8(extra_flags),
    }
}

/// Encodes `msg` into `out` with the default limits. See [`encode_with`].
pub fn encode(msg: &Message, out: &mut BytesMut) -> Result<(), ProtoError> {
    encode_with(msg, out, &ProtoLimits::default())
}

/// Encodes `msg` as one frame appended to `out`.
///
/// Fails (and writes nothing) if the frame would break `limits`: too large, a bitfield above the
/// bit limit, or a `Data` chunk that does not fit its `total_len`.
pub fn encode_with(
    msg: &Message,
    out: &mut BytesMut,
    limits: &ProtoLimits,
) -> Result<(), ProtoError> {
    let len = msg.encoded_len();
    if len > limits.max_frame {
        return Err(ProtoError::FrameTooLarge {
            len,
            max: limits.max_frame,
        });
    }
    match msg {
        Message::Bitfield { bits, .. } if bits.len() > limits.max_bitfield_bits => {
            return Err(ProtoError::BitfieldTooLarge {
                bits: bits.len(),
                max: limits.max_bitfield_bits,
            });
        }
        Message::Data {
            offset,
            total_len,
            payload,
            ..
        } => check_data(*offset, *total_len, payload.len(), limits)?,
        Message::Handshake { max_frame, .. } if (*max_frame as usize) < MIN_FRAME_LEN => {
            return Err(ProtoError::MaxFrameTooSmall(*max_frame));
        }
        _ => {}
    }
    out.reserve(len);
    match msg {
        Message::Handshake {
            version,
            info_hash,
            peer_id,
            capabilities,
            max_frame,
        } => {
            out.put_u8(T_HANDSHAKE);
            out.put_u16(*version);
            out.put_slice(&info_hash.0);
            out.put_slice(&peer_id.0);
            out.put_u32(capabilities.0);
            out.put_u32(*max_frame);
        }
        Message::Keepalive => out.put_u8(T_KEEPALIVE),
        Message::Have {
            seq,
            digest,
            partial,
        } => {
            out.put_u8(T_HAVE);
            out.put_u64(*seq);
            put_digest(out, digest, if *partial { FLAG_PARTIAL } else { 0 });
        }
        Message::Bitfield { base_seq, bits } => {
            out.put_u8(T_BITFIELD);
            out.put_u64(*base_seq);
            out.put_u16(bits.len());
            out.put_slice(bits.raw());
        }
        Message::Request {
            req_id,
            seq,
            digest,
        } => {
            out.put_u8(T_REQUEST);
            out.put_u32(*req_id);
            out.put_u64(*seq);
            put_digest(out, digest, 0);
        }
        Message::Cancel { req_id } => {
            out.put_u8(T_CANCEL);
            out.put_u32(*req_id);
        }
        Message::Data {
            req_id,
            offset,
            total_len,
            payload,
        } => {
            out.put_u8(T_DATA);
            out.put_u32(*req_id);
            out.put_u32(*offset);
            out.put_u32(*total_len);
            out.put_slice(payload);
        }
        Message::Absent { req_id } => {
            out.put_u8(T_ABSENT);
            out.put_u32(*req_id);
        }
        Message::Busy { req_id } => {
            out.put_u8(T_BUSY);
            out.put_u32(*req_id);
        }
    }
    Ok(())
}

fn check_data(
    offset: u32,
    total_len: u32,
    len: usize,
    limits: &ProtoLimits,
) -> Result<(), ProtoError> {
    if total_len == 0 || total_len > limits.max_segment_size {
        return Err(ProtoError::SegmentSize {
            total_len,
            max: limits.max_segment_size,
        });
    }
    let end = u64::from(offset) + len as u64;
    if len == 0 || end > u64::from(total_len) {
        return Err(ProtoError::DataOutOfRange {
            offset,
            len,
            total_len,
        });
    }
    Ok(())
}

struct Reader {
    buf: Bytes,
    msg: &'static str,
}

impl Reader {
    fn need(&self, n: usize) -> Result<(), ProtoError> {
        if self.buf.remaining() < n {
            return Err(ProtoError::Truncated {
                msg: self.msg,
                need: n,
                have: self.buf.remaining(),
            });
        }
        Ok(())
    }
    fn u8(&mut self) -> Result<u8, ProtoError> {
        self.need(1)?;
        Ok(self.buf.get_u8())
    }
    fn u16(&mut self) -> Result<u16, ProtoError> {
        self.need(2)?;
        Ok(self.buf.get_u16())
    }
    fn u32(&mut self) -> Result<u32, ProtoError> {
        self.need(4)?;
        Ok(self.buf.get_u32())
    }
    fn u64(&mut self) -> Result<u64, ProtoError> {
        self.need(8)?;
        Ok(self.buf.get_u64())
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], ProtoError> {
        self.need(N)?;
        let mut a = [0u8; N];
        self.buf.copy_to_slice(&mut a);
        Ok(a)
    }
    /// A flags byte (only `FLAG_DIGEST` and the bits of `extra` allowed) and the digest it
    /// announces; returns the `extra` bits that were set.
    fn digest(&mut self, extra: u8) -> Result<(Option<Digest>, u8), ProtoError> {
        let flags = self.u8()?;
        if flags & !(FLAG_DIGEST | extra) != 0 {
            return Err(ProtoError::BadFlags(flags));
        }
        let digest = if flags & FLAG_DIGEST != 0 {
            Some(Digest(self.array::<32>()?))
        } else {
            None
        };
        Ok((digest, flags & extra))
    }
    fn finish(self) -> Result<(), ProtoError> {
        if self.buf.has_remaining() {
            return Err(ProtoError::TrailingBytes {
                msg: self.msg,
                extra: self.buf.remaining(),
            });
        }
        Ok(())
    }
}

/// Decodes one frame with the default limits. See [`decode_with`].
pub fn decode(frame: Bytes) -> Result<Message, ProtoError> {
    decode_with(frame, &ProtoLimits::default())
}

/// Decodes one frame. The `Data` payload shares memory with `frame`.
pub fn decode_with(frame: Bytes, limits: &ProtoLimits) -> Result<Message, ProtoError> {
    if frame.len() > limits.max_frame {
        return Err(ProtoError::FrameTooLarge {
            len: frame.len(),
            max: limits.max_frame,
        });
    }
    let Some(&ty) = frame.first() else {
        return Err(ProtoError::Empty);
    };
    let msg = match ty {
        T_HANDSHAKE => "handshake",
        T_KEEPALIVE => "keepalive",
        T_HAVE => "have",
        T_BITFIELD => "bitfield",
        T_REQUEST => "request",
        T_CANCEL => "cancel",
        T_DATA => "data",
        T_ABSENT => "absent",
        T_BUSY => "busy",
        other => return Err(ProtoError::UnknownType(other)),
    };
    let mut r = Reader {
        buf: frame.slice(1..),
        msg,
    };
    let m = match ty {
        T_HANDSHAKE => {
            let version = r.u16()?;
            if version != PROTOCOL_VERSION {
                return Err(ProtoError::VersionMismatch {
                    got: version,
                    expected: PROTOCOL_VERSION,
                });
            }
            let info_hash = InfoHash(r.array::<20>()?);
            let peer_id = PeerId(r.array::<20>()?);
            let capabilities = Capabilities(r.u32()?);
            let max_frame = r.u32()?;
            if (max_frame as usize) < MIN_FRAME_LEN {
                return Err(ProtoError::MaxFrameTooSmall(max_frame));
            }
            Message::Handshake {
                version,
                info_hash,
                peer_id,
                capabilities,
                max_frame,
            }
        }
        T_KEEPALIVE => Message::Keepalive,
        T_HAVE => {
            let seq = r.u64()?;
            let (digest, extra) = r.digest(FLAG_PARTIAL)?;
            Message::Have {
                seq,
                digest,
                partial: extra != 0,
            }
        }
        T_BITFIELD => {
            let base_seq = r.u64()?;
            let nbits = r.u16()?;
            if nbits > limits.max_bitfield_bits {
                return Err(ProtoError::BitfieldTooLarge {
                    bits: nbits,
                    max: limits.max_bitfield_bits,
                });
            }
            let nbytes = usize::from(nbits).div_ceil(8);
            r.need(nbytes)?;
            let bytes = r.buf.split_to(nbytes).to_vec();
            let pad = (nbytes * 8) - usize::from(nbits);
            if pad > 0 {
                let mask = (1u8 << pad) - 1;
                if bytes.last().is_some_and(|b| b & mask != 0) {
                    return Err(ProtoError::BitfieldPadding);
                }
            }
            Message::Bitfield {
                base_seq,
                bits: BitSet { len: nbits, bytes },
            }
        }
        T_REQUEST => {
            let req_id = r.u32()?;
            let seq = r.u64()?;
            let (digest, _) = r.digest(0)?;
            Message::Request {
                req_id,
                seq,
                digest,
            }
        }
        T_CANCEL => Message::Cancel { req_id: r.u32()? },
        T_ABSENT => Message::Absent { req_id: r.u32()? },
        T_BUSY => Message::Busy { req_id: r.u32()? },
        T_DATA => {
            let req_id = r.u32()?;
            let offset = r.u32()?;
            let total_len = r.u32()?;
            let payload = std::mem::take(&mut r.buf);
            check_data(offset, total_len, payload.len(), limits)?;
            Message::Data {
                req_id,
                offset,
                total_len,
                payload,
            }
        }
        other => return Err(ProtoError::UnknownType(other)),
    };
    r.finish()?;
    Ok(m)
}

/// Splits a segment body into `Data` messages of at most `max_frame` bytes each (zero-copy).
///
/// `max_frame` is clamped to [`MIN_FRAME_LEN`]..=[`MAX_FRAME_LEN`].
pub fn data_chunks(
    req_id: u32,
    body: &Bytes,
    max_frame: usize,
) -> impl Iterator<Item = Message> + '_ {
    let chunk = max_frame.clamp(MIN_FRAME_LEN, MAX_FRAME_LEN) - DATA_HEADER_LEN;
    let total_len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    (0..body.len()).step_by(chunk).map(move |start| {
        let end = (start + chunk).min(body.len());
        Message::Data {
            req_id,
            offset: u32::try_from(start).unwrap_or(u32::MAX),
            total_len,
            payload: body.slice(start..end),
        }
    })
}

/// Errors rebuilding one transfer from its `Data` chunks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReassemblyError {
    /// A chunk of another request was fed to this reassembly.
    #[error("chunk for request {got} fed to reassembly of request {expected}")]
    WrongRequest {
        /// The reassembly's request.
        expected: u32,
        /// The chunk's request.
        got: u32,
    },
    /// `total_len` differs from the first chunk's.
    #[error("total_len changed from {first} to {now}")]
    TotalLenChanged {
        /// Length announced by the first chunk.
        first: u32,
        /// Length announced now.
        now: u32,
    },
    /// The chunk does not start where the previous one ended.
    #[error("chunk at offset {got}, expected {expected}")]
    NotContiguous {
        /// Next expected offset.
        expected: u32,
        /// Offset received.
        got: u32,
    },
    /// The chunk runs past the end of the segment, or is empty.
    #[error("chunk [{offset}, +{len}) overruns a {total_len} byte segment")]
    Overrun {
        /// Chunk offset.
        offset: u32,
        /// Chunk length.
        len: usize,
        /// Segment length.
        total_len: u32,
    },
    /// The segment is larger than the limit, or larger than the size the requester expected.
    #[error("segment of {total_len} bytes exceeds the {max} byte limit")]
    TooLarge {
        /// Announced length.
        total_len: u32,
        /// Limit.
        max: u32,
    },
    /// A chunk arrived after the transfer completed.
    #[error("chunk after the transfer completed")]
    AlreadyComplete,
}

/// Progress of a [`Reassembly`] after a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assembled {
    /// More chunks are needed.
    Partial {
        /// Bytes received so far.
        received: u32,
        /// Total bytes of the segment.
        total: u32,
    },
    /// The whole body (not yet verified against its digest).
    Complete(Bytes),
}

/// Rebuilds one segment from the `Data` chunks of a single request.
#[derive(Debug)]
pub struct Reassembly {
    req_id: u32,
    max: u32,
    total: Option<u32>,
    buf: BytesMut,
    done: bool,
}

impl Reassembly {
    /// Initial buffer reservation cap; the buffer grows as bytes actually arrive.
    const INITIAL_RESERVE: usize = 1024 * 1024;

    /// A reassembly for request `req_id` accepting segments of at most `max_segment_size` bytes.
    pub fn new(req_id: u32, max_segment_size: u32) -> Self {
        Reassembly {
            req_id,
            max: max_segment_size,
            total: None,
            buf: BytesMut::new(),
            done: false,
        }
    }

    /// The request this reassembly belongs to.
    pub fn req_id(&self) -> u32 {
        self.req_id
    }

    /// Bytes received so far.
    pub fn received(&self) -> u32 {
        u32::try_from(self.buf.len()).unwrap_or(u32::MAX)
    }

    /// Total length announced by the sender, once the first chunk arrived.
    pub fn total(&self) -> Option<u32> {
        self.total
    }

    /// The bytes received so far, from offset 0 (unverified).
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Feeds one chunk. Chunks must be contiguous from offset 0 with a constant `total_len`.
    pub fn push(
        &mut self,
        req_id: u32,
        offset: u32,
        total_len: u32,
        payload: &Bytes,
    ) -> Result<Assembled, ReassemblyError> {
        if self.done {
            return Err(ReassemblyError::AlreadyComplete);
        }
        if req_id != self.req_id {
            return Err(ReassemblyError::WrongRequest {
                expected: self.req_id,
                got: req_id,
            });
        }
        match self.total {
            Some(first) if first != total_len => {
                return Err(ReassemblyError::TotalLenChanged {
                    first,
                    now: total_len,
                });
            }
            Some(_) => {}
            None => {
                if total_len > self.max || total_len == 0 {
                    return Err(ReassemblyError::TooLarge {
                        total_len,
                        max: self.max,
                    });
                }
                self.total = Some(total_len);
            }
        }
        let received = self.received();
        if offset != received {
            return Err(ReassemblyError::NotContiguous {
                expected: received,
                got: offset,
            });
        }
        let end = u64::from(offset) + payload.len() as u64;
        if payload.is_empty() || end > u64::from(total_len) {
            return Err(ReassemblyError::Overrun {
                offset,
                len: payload.len(),
                total_len,
            });
        }
        if offset == 0 && end == u64::from(total_len) {
            // Whole segment in one chunk: hand out the frame's memory as is.
            self.done = true;
            return Ok(Assembled::Complete(payload.clone()));
        }
        if self.buf.capacity() == 0 {
            self.buf
                .reserve((total_len as usize).min(Self::INITIAL_RESERVE));
        }
        self.buf.extend_from_slice(payload);
        if end == u64::from(total_len) {
            self.done = true;
            return Ok(Assembled::Complete(std::mem::take(&mut self.buf).freeze()));
        }
        Ok(Assembled::Partial {
            received: self.received(),
            total: total_len,
        })
    }
}

/// Timers and limits of a [`PeerSession`].
#[derive(Clone, Copy, Debug)]
pub struct SessionConfig {
    /// The remote handshake must arrive within this time after the channel opened.
    pub handshake_timeout: Duration,
    /// The session fails when nothing was received for this long.
    pub idle_timeout: Duration,
    /// A keepalive is due when nothing was sent for this long.
    pub keepalive_interval: Duration,
    /// Most transfers we may have outstanding on this channel at once.
    pub max_transfers: usize,
    /// Frame and size limits.
    pub limits: ProtoLimits,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            keepalive_interval: Duration::from_secs(10),
            max_transfers: 16,
            limits: ProtoLimits::default(),
        }
    }
}

/// What a received frame meant, as far as the session can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// The remote handshake arrived and matched our swarm.
    Established {
        /// Remote peer id.
        peer_id: PeerId,
        /// Remote capabilities.
        capabilities: Capabilities,
        /// Largest frame we may send (min of ours and theirs).
        max_frame: usize,
    },
    /// A control message for the scheduler (`Have`, `Bitfield`, `Request`, `Cancel`, `Absent`, `Busy`).
    Control(Message),
    /// More bytes of one of our transfers arrived.
    Progress {
        /// The transfer.
        req_id: u32,
        /// Bytes received so far.
        received: u32,
        /// Total bytes.
        total: u32,
    },
    /// One of our transfers is complete (still to be verified against its digest).
    Complete {
        /// The transfer.
        req_id: u32,
        /// The body.
        body: Bytes,
    },
    /// Nothing for the layers above (keepalive, or a chunk of a transfer we cancelled).
    Nothing,
}

/// A peer that broke the protocol or timed out. The driver closes the channel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The frame did not decode.
    #[error("bad frame: {0}")]
    Proto(#[from] ProtoError),
    /// A data chunk did not fit its transfer.
    #[error("bad data for request {req_id}: {source}")]
    Reassembly {
        /// The transfer.
        req_id: u32,
        /// What was wrong.
        source: ReassemblyError,
    },
    /// The first frame was not a handshake.
    #[error("expected a handshake, got {0}")]
    HandshakeExpected(&'static str),
    /// A second handshake arrived.
    #[error("duplicate handshake")]
    DuplicateHandshake,
    /// The remote handshake names another swarm.
    #[error("handshake for another swarm")]
    InfoHashMismatch,
    /// The remote handshake carries our own peer id.
    #[error("connected to ourselves")]
    SelfConnection,
    /// The remote shares segments in another number of stripes (unit ids would not match).
    #[error("peer uses {theirs} stripes per segment, we use {ours}")]
    StripesMismatch {
        /// Ours.
        ours: u8,
        /// Theirs (0: a count we do not support).
        theirs: u8,
    },
    /// The remote handshake names a peer other than the one the signalling layer announced.
    #[error("handshake peer id differs from the expected peer")]
    UnexpectedPeer,
    /// No handshake within the handshake timeout.
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// Nothing received within the idle timeout.
    #[error("peer idle for too long")]
    IdleTimeout,
    /// We tried to start more transfers than the limit.
    #[error("too many transfers in flight on this channel")]
    TooManyTransfers,
}

#[derive(Debug)]
enum SessionState {
    AwaitingHandshake { deadline: Instant },
    Established { peer_id: PeerId, max_frame: usize },
}

/// Per-channel protocol state: handshake, timeouts, keepalives and transfer reassembly.
#[derive(Debug)]
pub struct PeerSession {
    cfg: SessionConfig,
    info_hash: InfoHash,
    local_id: PeerId,
    capabilities: Capabilities,
    expected_peer: Option<PeerId>,
    state: SessionState,
    last_recv: Instant,
    last_sent: Instant,
    transfers: HashMap<u32, Reassembly>,
}

impl PeerSession {
    /// A session for a channel that opened at `now`. `expected_peer` is the id the signalling
    /// layer announced for the remote, if known.
    pub fn new(
        now: Instant,
        info_hash: InfoHash,
        local_id: PeerId,
        capabilities: Capabilities,
        expected_peer: Option<PeerId>,
        cfg: SessionConfig,
    ) -> Self {
        PeerSession {
            cfg,
            info_hash,
            local_id,
            capabilities,
            expected_peer,
            state: SessionState::AwaitingHandshake {
                deadline: now + cfg.handshake_timeout,
            },
            last_recv: now,
            last_sent: now,
            transfers: HashMap::new(),
        }
    }

    /// Our handshake; send it first.
    pub fn handshake(&self) -> Message {
        Message::Handshake {
            version: PROTOCOL_VERSION,
            info_hash: self.info_hash,
            peer_id: self.local_id,
            capabilities: self.capabilities,
            max_frame: u32::try_from(self.cfg.limits.max_frame).unwrap_or(u32::MAX),
        }
    }

    /// The remote peer id once the handshake is done.
    pub fn remote(&self) -> Option<PeerId> {
        match self.state {
            SessionState::Established { peer_id, .. } => Some(peer_id),
            SessionState::AwaitingHandshake { .. } => None,
        }
    }

    /// Largest frame we may send to this peer (our limit until the handshake says otherwise).
    pub fn max_send_frame(&self) -> usize {
        match self.state {
            SessionState::Established { max_frame, .. } => max_frame,
            SessionState::AwaitingHandshake { .. } => self.cfg.limits.max_frame,
        }
    }

    /// Records that we sent a frame at `now` (resets the keepalive timer).
    pub fn on_sent(&mut self, now: Instant) {
        self.last_sent = now;
    }

    /// Registers a transfer we requested, so its `Data` chunks are reassembled.
    pub fn start_transfer(&mut self, req_id: u32) -> Result<(), SessionError> {
        if self.transfers.len() >= self.cfg.max_transfers && !self.transfers.contains_key(&req_id) {
            return Err(SessionError::TooManyTransfers);
        }
        self.transfers.insert(
            req_id,
            Reassembly::new(req_id, self.cfg.limits.max_segment_size),
        );
        Ok(())
    }

    /// Forgets a transfer (we cancelled it, or the peer answered `Absent`/`Busy`).
    /// Late chunks for it are then dropped silently.
    pub fn end_transfer(&mut self, req_id: u32) {
        self.transfers.remove(&req_id);
    }

    /// Number of transfers being reassembled.
    pub fn transfers_in_flight(&self) -> usize {
        self.transfers.len()
    }

    /// The bytes of transfer `req_id` received so far, from offset 0 (unverified: the driver
    /// checks them chunk by chunk before using any).
    pub fn received_bytes(&self, req_id: u32) -> Option<&[u8]> {
        self.transfers.get(&req_id).map(Reassembly::bytes)
    }

    /// Handles one received frame.
    pub fn handle_frame(
        &mut self,
        now: Instant,
        frame: Bytes,
    ) -> Result<SessionEvent, SessionError> {
        let msg = decode_with(frame, &self.cfg.limits)?;
        self.last_recv = now;
        match (&self.state, msg) {
            (
                SessionState::AwaitingHandshake { .. },
                Message::Handshake {
                    info_hash,
                    peer_id,
                    capabilities,
                    max_frame,
                    ..
                },
            ) => {
                if info_hash != self.info_hash {
                    return Err(SessionError::InfoHashMismatch);
                }
                if peer_id == self.local_id {
                    return Err(SessionError::SelfConnection);
                }
                if self.expected_peer.is_some_and(|p| p != peer_id) {
                    return Err(SessionError::UnexpectedPeer);
                }
                let ours = self.capabilities.stripes();
                let theirs = capabilities.stripes();
                if ours != theirs {
                    return Err(SessionError::StripesMismatch {
                        ours: ours.map_or(0, Stripes::get),
                        theirs: theirs.map_or(0, Stripes::get),
                    });
                }
                let max_frame = (max_frame as usize).min(self.cfg.limits.max_frame);
                self.state = SessionState::Established { peer_id, max_frame };
                Ok(SessionEvent::Established {
                    peer_id,
                    capabilities,
                    max_frame,
                })
            }
            (SessionState::AwaitingHandshake { .. }, other) => {
                Err(SessionError::HandshakeExpected(other.kind()))
            }
            (SessionState::Established { .. }, Message::Handshake { .. }) => {
                Err(SessionError::DuplicateHandshake)
            }
            (SessionState::Established { .. }, Message::Keepalive) => Ok(SessionEvent::Nothing),
            (
                SessionState::Established { .. },
                Message::Data {
                    req_id,
                    offset,
                    total_len,
                    payload,
                },
            ) => {
                let Some(r) = self.transfers.get_mut(&req_id) else {
                    // A chunk of a transfer we cancelled (or never asked for): drop it.
                    return Ok(SessionEvent::Nothing);
                };
                match r.push(req_id, offset, total_len, &payload) {
                    Ok(Assembled::Partial { received, total }) => Ok(SessionEvent::Progress {
                        req_id,
                        received,
                        total,
                    }),
                    Ok(Assembled::Complete(body)) => {
                        self.transfers.remove(&req_id);
                        Ok(SessionEvent::Complete { req_id, body })
                    }
                    Err(source) => {
                        self.transfers.remove(&req_id);
                        Err(SessionError::Reassembly { req_id, source })
                    }
                }
            }
            (
                SessionState::Established { .. },
                m @ (Message::Absent { .. } | Message::Busy { .. }),
            ) => {
                if let Message::Absent { req_id } | Message::Busy { req_id } = m {
                    self.transfers.remove(&req_id);
                }
                Ok(SessionEvent::Control(m))
            }
            (SessionState::Established { .. }, m) => Ok(SessionEvent::Control(m)),
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    pub fn poll_timeout(&self) -> Instant {
        match self.state {
            SessionState::AwaitingHandshake { deadline } => {
                deadline.min(self.last_sent + self.cfg.keepalive_interval)
            }
            SessionState::Established { .. } => (self.last_recv + self.cfg.idle_timeout)
                .min(self.last_sent + self.cfg.keepalive_interval),
        }
    }

    /// Checks timers. Returns a keepalive to send when one is due; fails on handshake or idle
    /// timeout.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<Option<Message>, SessionError> {
        match self.state {
            SessionState::AwaitingHandshake { deadline } if now >= deadline => {
                return Err(SessionError::HandshakeTimeout);
            }
            SessionState::Established { .. } if now >= self.last_recv + self.cfg.idle_timeout => {
                return Err(SessionError::IdleTimeout);
            }
            _ => {}
        }
        if now >= self.last_sent + self.cfg.keepalive_interval {
            self.last_sent = now;
            return Ok(Some(Message::Keepalive));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc(m: &Message) -> Bytes {
        let mut b = BytesMut::new();
        encode(m, &mut b).unwrap();
        b.freeze()
    }

    fn hs(info: InfoHash, id: u8) -> Message {
        Message::Handshake {
            version: PROTOCOL_VERSION,
            info_hash: info,
            peer_id: PeerId([id; 20]),
            capabilities: Capabilities::UPLOAD,
            max_frame: MAX_FRAME_LEN as u32,
        }
    }

    fn samples() -> Vec<Message> {
        let mut bits = BitSet::new(13);
        bits.set(0);
        bits.set(12);
        vec![
            hs(InfoHash([1; 20]), 2),
            Message::Keepalive,
            Message::Have {
                seq: 42,
                digest: Some(Digest([9; 32])),
                partial: false,
            },
            Message::Have {
                seq: 43,
                digest: Some(Digest([8; 32])),
                partial: true,
            },
            Message::Have {
                seq: 1,
                digest: None,
                partial: false,
            },
            Message::Bitfield {
                base_seq: 100,
                bits,
            },
            Message::Request {
                req_id: 7,
                seq: u64::MAX,
                digest: Some(Digest([3; 32])),
            },
            Message::Cancel { req_id: 7 },
            Message::Data {
                req_id: 7,
                offset: 10,
                total_len: 20,
                payload: Bytes::from_static(b"0123456789"),
            },
            Message::Absent { req_id: 1 },
            Message::Busy { req_id: 2 },
        ]
    }

    #[test]
    fn round_trip_all_kinds_and_exact_len() {
        for m in samples() {
            let b = enc(&m);
            assert_eq!(b.len(), m.encoded_len(), "{}", m.kind());
            assert_eq!(decode(b).unwrap(), m);
        }
    }

    #[test]
    fn data_payload_is_zero_copy() {
        let m = Message::Data {
            req_id: 1,
            offset: 0,
            total_len: 4,
            payload: Bytes::from_static(b"abcd"),
        };
        let frame = enc(&m);
        let range = frame.as_ptr_range();
        match decode(frame.clone()).unwrap() {
            Message::Data { payload, .. } => {
                assert!(range.contains(&payload.as_ptr()));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn decode_errors() {
        assert_eq!(decode(Bytes::new()), Err(ProtoError::Empty));
        assert_eq!(
            decode(Bytes::from_static(&[0x7f])),
            Err(ProtoError::UnknownType(0x7f))
        );
        assert!(matches!(
            decode(Bytes::from_static(&[T_CANCEL, 0, 0])),
            Err(ProtoError::Truncated {
                msg: "cancel",
                need: 4,
                have: 2
            })
        ));
        assert_eq!(
            decode(Bytes::from_static(&[T_KEEPALIVE, 0])),
            Err(ProtoError::TrailingBytes {
                msg: "keepalive",
                extra: 1
            })
        );
        let mut v = enc(&Message::Busy { req_id: 3 }).to_vec();
        v.push(0);
        assert!(matches!(
            decode(v.into()),
            Err(ProtoError::TrailingBytes { .. })
        ));
        // Version mismatch.
        let mut h = enc(&hs(InfoHash([0; 20]), 1)).to_vec();
        h[1] = 0;
        h[2] = 2;
        assert_eq!(
            decode(h.into()),
            Err(ProtoError::VersionMismatch {
                got: 2,
                expected: 1
            })
        );
        // max_frame too small.
        let mut h = enc(&hs(InfoHash([0; 20]), 1)).to_vec();
        let n = h.len();
        h[n - 4..].copy_from_slice(&100u32.to_be_bytes());
        assert_eq!(decode(h.into()), Err(ProtoError::MaxFrameTooSmall(100)));
        // Bad flags.
        let mut have = enc(&Message::Have {
            seq: 1,
            digest: None,
            partial: false,
        })
        .to_vec();
        have[9] = 0x04;
        assert_eq!(decode(have.into()), Err(ProtoError::BadFlags(0x04)));
        // The partial bit exists only on `Have`.
        let mut req = enc(&Message::Request {
            req_id: 1,
            seq: 1,
            digest: None,
        })
        .to_vec();
        req[13] = FLAG_PARTIAL;
        assert_eq!(decode(req.into()), Err(ProtoError::BadFlags(FLAG_PARTIAL)));
        // Frame too large.
        let big = Bytes::from(vec![T_DATA; MAX_FRAME_LEN + 1]);
        assert!(matches!(decode(big), Err(ProtoError::FrameTooLarge { .. })));
    }

    #[test]
    fn bitfield_limits() {
        let limits = ProtoLimits {
            max_bitfield_bits: 16,
            ..ProtoLimits::default()
        };
        let mut v = vec![T_BITFIELD];
        v.extend_from_slice(&5u64.to_be_bytes());
        v.extend_from_slice(&17u16.to_be_bytes());
        v.extend_from_slice(&[0, 0, 0]);
        assert_eq!(
            decode_with(v.into(), &limits),
            Err(ProtoError::BitfieldTooLarge { bits: 17, max: 16 })
        );
        // Padding bits set.
        let mut v = vec![T_BITFIELD];
        v.extend_from_slice(&5u64.to_be_bytes());
        v.extend_from_slice(&3u16.to_be_bytes());
        v.push(0b1110_0001);
        assert_eq!(decode(v.into()), Err(ProtoError::BitfieldPadding));
        // Missing bytes.
        let mut v = vec![T_BITFIELD];
        v.extend_from_slice(&5u64.to_be_bytes());
        v.extend_from_slice(&9u16.to_be_bytes());
        v.push(0);
        assert!(matches!(
            decode(v.into()),
            Err(ProtoError::Truncated { .. })
        ));
        // Encoding refuses oversize too.
        let m = Message::Bitfield {
            base_seq: 0,
            bits: BitSet::new(17),
        };
        let mut out = BytesMut::new();
        assert!(encode_with(&m, &mut out, &limits).is_err());
        assert!(out.is_empty());
    }

    #[test]
    fn bitset_ops() {
        let mut b = BitSet::new(10);
        assert!(!b.is_empty());
        b.set(3);
        b.set(9);
        b.set(10); // ignored
        assert!(b.get(3) && b.get(9) && !b.get(4) && !b.get(10));
        assert_eq!(b.iter_set().collect::<Vec<_>>(), vec![3, 9]);
        assert_eq!(b.count_ones(), 2);
        assert_eq!(b.len(), 10);
        assert!(BitSet::new(0).is_empty());
    }

    #[test]
    fn data_limits() {
        let limits = ProtoLimits {
            max_segment_size: 100,
            ..ProtoLimits::default()
        };
        let mk = |offset: u32, total: u32, payload: &'static [u8]| {
            let mut v = vec![T_DATA];
            v.extend_from_slice(&1u32.to_be_bytes());
            v.extend_from_slice(&offset.to_be_bytes());
            v.extend_from_slice(&total.to_be_bytes());
            v.extend_from_slice(payload);
            Bytes::from(v)
        };
        assert!(matches!(
            decode_with(mk(0, 101, b"x"), &limits),
            Err(ProtoError::SegmentSize { .. })
        ));
        assert!(matches!(
            decode_with(mk(0, 0, b""), &limits),
            Err(ProtoError::SegmentSize { .. })
        ));
        assert!(matches!(
            decode_with(mk(0, 10, b""), &limits),
            Err(ProtoError::DataOutOfRange { .. })
        ));
        assert!(matches!(
            decode_with(mk(9, 10, b"ab"), &limits),
            Err(ProtoError::DataOutOfRange { .. })
        ));
        assert!(matches!(
            decode_with(mk(u32::MAX, 10, b"ab"), &limits),
            Err(ProtoError::DataOutOfRange { .. })
        ));
        assert!(decode_with(mk(8, 10, b"ab"), &limits).is_ok());
        // Encoding checks the same rules.
        let bad = Message::Data {
            req_id: 1,
            offset: 5,
            total_len: 6,
            payload: Bytes::from_static(b"xy"),
        };
        assert!(encode(&bad, &mut BytesMut::new()).is_err());
        let huge = Message::Data {
            req_id: 1,
            offset: 0,
            total_len: 1 << 20,
            payload: Bytes::from(vec![0; MAX_FRAME_LEN]),
        };
        assert!(matches!(
            encode(&huge, &mut BytesMut::new()),
            Err(ProtoError::FrameTooLarge { .. })
        ));
        let small_hs = Message::Handshake {
            version: 1,
            info_hash: InfoHash([0; 20]),
            peer_id: PeerId([0; 20]),
            capabilities: Capabilities::default(),
            max_frame: 10,
        };
        assert_eq!(
            encode(&small_hs, &mut BytesMut::new()),
            Err(ProtoError::MaxFrameTooSmall(10))
        );
    }

    #[test]
    fn chunks_reassemble() {
        let body = Bytes::from((0..200_000u32).map(|i| i as u8).collect::<Vec<_>>());
        let chunks: Vec<_> = data_chunks(5, &body, MAX_FRAME_LEN).collect();
        assert_eq!(chunks.len(), 4);
        let mut r = Reassembly::new(5, 1 << 20);
        let mut out = None;
        for c in chunks {
            assert!(c.encoded_len() <= MAX_FRAME_LEN);
            let frame = enc(&c);
            let Message::Data {
                req_id,
                offset,
                total_len,
                payload,
            } = decode(frame).unwrap()
            else {
                panic!("not data")
            };
            match r.push(req_id, offset, total_len, &payload).unwrap() {
                Assembled::Partial { received, total } => {
                    assert_eq!(received, r.received());
                    assert_eq!(total, 200_000);
                }
                Assembled::Complete(b) => out = Some(b),
            }
        }
        assert_eq!(out.unwrap(), body);
        assert_eq!(r.req_id(), 5);
        assert_eq!(r.total(), Some(200_000));
        assert_eq!(
            r.push(5, 0, 200_000, &Bytes::from_static(b"x")),
            Err(ReassemblyError::AlreadyComplete)
        );
    }

    #[test]
    fn reassembly_errors() {
        let p = Bytes::from_static(b"abcd");
        let mut r = Reassembly::new(1, 10);
        assert_eq!(
            r.push(2, 0, 8, &p),
            Err(ReassemblyError::WrongRequest {
                expected: 1,
                got: 2
            })
        );
        assert_eq!(
            r.push(1, 0, 11, &p),
            Err(ReassemblyError::TooLarge {
                total_len: 11,
                max: 10
            })
        );
        assert_eq!(
            r.push(1, 0, 0, &p),
            Err(ReassemblyError::TooLarge {
                total_len: 0,
                max: 10
            })
        );
        assert!(matches!(
            r.push(1, 0, 8, &p),
            Ok(Assembled::Partial {
                received: 4,
                total: 8
            })
        ));
        assert_eq!(
            r.push(1, 4, 9, &p),
            Err(ReassemblyError::TotalLenChanged { first: 8, now: 9 })
        );
        assert_eq!(
            r.push(1, 6, 8, &p),
            Err(ReassemblyError::NotContiguous {
                expected: 4,
                got: 6
            })
        );
        assert!(matches!(
            r.push(1, 4, 8, &Bytes::from_static(b"abcde")),
            Err(ReassemblyError::Overrun { .. })
        ));
        assert!(matches!(
            r.push(1, 4, 8, &Bytes::new()),
            Err(ReassemblyError::Overrun { .. })
        ));
        assert_eq!(
            r.push(1, 4, 8, &p),
            Ok(Assembled::Complete(Bytes::from_static(b"abcdabcd")))
        );
        // One-chunk transfer returns the payload itself.
        let mut r = Reassembly::new(3, 10);
        match r.push(3, 0, 4, &p).unwrap() {
            Assembled::Complete(b) => assert_eq!(b.as_ptr(), p.as_ptr()),
            other => panic!("{other:?}"),
        }
    }

    fn session(now: Instant, id: u8) -> PeerSession {
        PeerSession::new(
            now,
            InfoHash([1; 20]),
            PeerId([id; 20]),
            Capabilities::UPLOAD,
            None,
            SessionConfig::default(),
        )
    }

    #[test]
    fn session_handshake_then_transfer() {
        let t0 = Instant::now();
        let mut a = session(t0, 1);
        let b = session(t0, 2);
        assert_eq!(a.remote(), None);
        let ev = a.handle_frame(t0, enc(&b.handshake())).unwrap();
        assert!(
            matches!(ev, SessionEvent::Established { peer_id, .. } if peer_id == PeerId([2; 20]))
        );
        assert_eq!(a.remote(), Some(PeerId([2; 20])));
        assert_eq!(a.max_send_frame(), MAX_FRAME_LEN);
        assert_eq!(
            a.handle_frame(t0, enc(&b.handshake())),
            Err(SessionError::DuplicateHandshake)
        );
        a.start_transfer(9).unwrap();
        assert_eq!(a.transfers_in_flight(), 1);
        let body = Bytes::from(vec![7u8; 70_000]);
        let mut last = SessionEvent::Nothing;
        for c in data_chunks(9, &body, MAX_FRAME_LEN) {
            last = a.handle_frame(t0, enc(&c)).unwrap();
        }
        assert_eq!(last, SessionEvent::Complete { req_id: 9, body });
        assert_eq!(a.transfers_in_flight(), 0);
        // Late chunk of a finished/cancelled transfer is dropped.
        let stray = Message::Data {
            req_id: 9,
            offset: 0,
            total_len: 1,
            payload: Bytes::from_static(b"z"),
        };
        assert_eq!(
            a.handle_frame(t0, enc(&stray)).unwrap(),
            SessionEvent::Nothing
        );
        // Control messages pass through; Busy ends the transfer.
        a.start_transfer(10).unwrap();
        assert_eq!(
            a.handle_frame(t0, enc(&Message::Busy { req_id: 10 }))
                .unwrap(),
            SessionEvent::Control(Message::Busy { req_id: 10 })
        );
        assert_eq!(a.transfers_in_flight(), 0);
        assert_eq!(
            a.handle_frame(t0, enc(&Message::Keepalive)).unwrap(),
            SessionEvent::Nothing
        );
        // Bad data ends the transfer with an error.
        a.start_transfer(11).unwrap();
        let bad = Message::Data {
            req_id: 11,
            offset: 5,
            total_len: 10,
            payload: Bytes::from_static(b"z"),
        };
        assert!(matches!(
            a.handle_frame(t0, enc(&bad)),
            Err(SessionError::Reassembly { req_id: 11, .. })
        ));
        a.end_transfer(11);
    }

    #[test]
    fn session_rejects_bad_handshakes() {
        let t0 = Instant::now();
        let mut a = session(t0, 1);
        assert_eq!(
            a.handle_frame(t0, enc(&Message::Keepalive)),
            Err(SessionError::HandshakeExpected("keepalive"))
        );
        assert_eq!(
            a.handle_frame(t0, enc(&hs(InfoHash([2; 20]), 3))),
            Err(SessionError::InfoHashMismatch)
        );
        assert_eq!(
            a.handle_frame(t0, enc(&hs(InfoHash([1; 20]), 1))),
            Err(SessionError::SelfConnection)
        );
        let mut c = PeerSession::new(
            t0,
            InfoHash([1; 20]),
            PeerId([1; 20]),
            Capabilities::UPLOAD,
            Some(PeerId([5; 20])),
            SessionConfig::default(),
        );
        assert_eq!(
            c.handle_frame(t0, enc(&hs(InfoHash([1; 20]), 6))),
            Err(SessionError::UnexpectedPeer)
        );
        assert!(matches!(
            a.handle_frame(t0, Bytes::from_static(&[0xee])),
            Err(SessionError::Proto(ProtoError::UnknownType(0xee)))
        ));
    }

    #[test]
    fn sessions_need_the_same_stripe_count() {
        let t0 = Instant::now();
        let four = Stripes::new(4).unwrap();
        let caps = |st: Stripes| Capabilities::UPLOAD.with_stripes(st);
        assert_eq!(caps(four).stripes(), Some(four));
        assert_eq!(Capabilities::UPLOAD.stripes(), Some(Stripes::WHOLE));
        assert!(caps(four).contains(Capabilities::UPLOAD));
        let new = |me: u8, st: Stripes| {
            PeerSession::new(
                t0,
                InfoHash([1; 20]),
                PeerId([me; 20]),
                caps(st),
                None,
                SessionConfig::default(),
            )
        };
        // Same count: established.
        let mut a = new(1, four);
        let b = new(2, four);
        assert!(matches!(
            a.handle_frame(t0, enc(&b.handshake())),
            Ok(SessionEvent::Established { .. })
        ));
        // An unstriped (older) peer and a striped one refuse each other, both ways.
        let mut a = new(1, four);
        let old = new(3, Stripes::WHOLE);
        assert_eq!(
            a.handle_frame(t0, enc(&old.handshake())),
            Err(SessionError::StripesMismatch { ours: 4, theirs: 1 })
        );
        let mut old = new(3, Stripes::WHOLE);
        assert_eq!(
            old.handle_frame(t0, enc(&new(1, four).handshake())),
            Err(SessionError::StripesMismatch { ours: 1, theirs: 4 })
        );
        // A count beyond what we support (bits 8–11 = 15 → 16 stripes).
        let mut a = new(1, four);
        let hostile = Message::Handshake {
            version: PROTOCOL_VERSION,
            info_hash: InfoHash([1; 20]),
            peer_id: PeerId([9; 20]),
            capabilities: Capabilities(0xf00),
            max_frame: MAX_FRAME_LEN as u32,
        };
        assert_eq!(
            a.handle_frame(t0, enc(&hostile)),
            Err(SessionError::StripesMismatch { ours: 4, theirs: 0 })
        );
    }

    #[test]
    fn session_timers() {
        let t0 = Instant::now();
        let cfg = SessionConfig::default();
        let mut a = session(t0, 1);
        assert_eq!(
            a.poll_timeout(),
            t0 + cfg.handshake_timeout.min(cfg.keepalive_interval)
        );
        assert_eq!(a.handle_timeout(t0 + Duration::from_secs(1)), Ok(None));
        assert_eq!(
            a.handle_timeout(t0 + cfg.handshake_timeout),
            Err(SessionError::HandshakeTimeout)
        );

        let mut a = session(t0, 1);
        let b = session(t0, 2);
        a.handle_frame(t0, enc(&b.handshake())).unwrap();
        let t1 = t0 + cfg.keepalive_interval;
        assert_eq!(a.handle_timeout(t1), Ok(Some(Message::Keepalive)));
        a.on_sent(t1);
        assert_eq!(
            a.poll_timeout(),
            (t0 + cfg.idle_timeout).min(t1 + cfg.keepalive_interval)
        );
        assert_eq!(
            a.handle_timeout(t0 + cfg.idle_timeout),
            Err(SessionError::IdleTimeout)
        );
    }

    #[test]
    fn session_transfer_limit() {
        let t0 = Instant::now();
        let mut a = session(t0, 1);
        for i in 0..16 {
            a.start_transfer(i).unwrap();
        }
        assert_eq!(a.start_transfer(99), Err(SessionError::TooManyTransfers));
        a.end_transfer(0);
        a.start_transfer(99).unwrap();
    }

    fn arb_digest() -> impl Strategy<Value = Option<Digest>> {
        proptest::option::of(any::<[u8; 32]>().prop_map(Digest))
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        prop_oneof![
            (
                any::<[u8; 20]>(),
                any::<[u8; 20]>(),
                any::<u32>(),
                1024u32..=65536
            )
                .prop_map(|(ih, id, caps, mf)| Message::Handshake {
                    version: PROTOCOL_VERSION,
                    info_hash: InfoHash(ih),
                    peer_id: PeerId(id),
                    capabilities: Capabilities(caps),
                    max_frame: mf,
                }),
            Just(Message::Keepalive),
            (any::<u64>(), arb_digest(), any::<bool>()).prop_map(|(seq, digest, partial)| {
                Message::Have {
                    seq,
                    digest,
                    partial,
                }
            }),
            (
                any::<u64>(),
                proptest::collection::vec(any::<bool>(), 0..300)
            )
                .prop_map(|(b, v)| {
                    let mut bits = BitSet::new(v.len() as u16);
                    for (i, x) in v.iter().enumerate() {
                        if *x {
                            bits.set(i as u16);
                        }
                    }
                    Message::Bitfield { base_seq: b, bits }
                }),
            (any::<u32>(), any::<u64>(), arb_digest()).prop_map(|(req_id, seq, digest)| {
                Message::Request {
                    req_id,
                    seq,
                    digest,
                }
            }),
            any::<u32>().prop_map(|req_id| Message::Cancel { req_id }),
            any::<u32>().prop_map(|req_id| Message::Absent { req_id }),
            any::<u32>().prop_map(|req_id| Message::Busy { req_id }),
            (
                any::<u32>(),
                proptest::collection::vec(any::<u8>(), 1..2000),
                0u32..10_000
            )
                .prop_map(|(req_id, payload, extra)| {
                    let offset = extra;
                    let total_len = offset + payload.len() as u32 + extra % 7;
                    Message::Data {
                        req_id,
                        offset,
                        total_len,
                        payload: Bytes::from(payload),
                    }
                }),
        ]
    }

    proptest! {
        #[test]
        fn decode_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(Bytes::from(data));
        }

        #[test]
        fn decode_never_panics_on_typed_prefix(ty in 0u8..10, data in proptest::collection::vec(any::<u8>(), 0..128)) {
            let mut v = vec![ty];
            v.extend(data);
            if let Ok(m) = decode(Bytes::from(v.clone())) {
                // Whatever decodes must re-encode to the same bytes.
                prop_assert_eq!(enc(&m).to_vec(), v);
            }
        }

        #[test]
        fn encode_decode_round_trip(m in arb_message()) {
            let b = enc(&m);
            prop_assert_eq!(b.len(), m.encoded_len());
            prop_assert_eq!(decode(b).unwrap(), m);
        }

        #[test]
        fn session_never_panics(frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..20)) {
            let t0 = Instant::now();
            let mut s = session(t0, 1);
            let peer = session(t0, 2);
            let _ = s.handle_frame(t0, enc(&peer.handshake()));
            s.start_transfer(1).unwrap();
            for f in frames {
                let _ = s.handle_frame(t0, Bytes::from(f));
            }
        }
    }
}
