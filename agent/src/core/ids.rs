//! Identifiers used inside a swarm: [`InfoHash`], [`PeerId`], [`Digest`] and [`SegmentId`].
//!
//! * A swarm is one media playlist (rendition). Its key is the origin URL of the media playlist
//!   without its query string (the driver computes that string; this module never parses URLs).
//!   The tracker `info_hash` is the first 20 bytes of `sha1("hivecast/1/" + key)`.
//! * A [`PeerId`] is 20 bytes: the client prefix [`PEER_ID_PREFIX`] followed by 12 random
//!   alphanumeric bytes, so it travels as a latin1 string in the WebTorrent tracker protocol.
//! * A [`Digest`] is the SHA-256 of a segment body as published by the origin's digest sidecar.
//! * A [`SegmentId`] is the media sequence number (live) or the index (VOD) of a segment inside
//!   its swarm. On the wire it always travels with its digest.

use std::fmt;
use std::str::FromStr;

use sha1::Sha1;
use sha2::{Digest as _, Sha256};

/// Domain prefix hashed in front of the swarm key to form the info hash.
pub const INFO_HASH_DOMAIN: &str = "hivecast/1/";

/// Client prefix of every hivecast peer id (Azureus style: `-` client code, version `-`).
pub const PEER_ID_PREFIX: &[u8; 8] = b"-HC0001-";

/// Error parsing a hex string into a fixed-size id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    /// The string does not have exactly twice as many hex digits as the id has bytes.
    #[error("expected {expected} hex digits, got {got}")]
    Length {
        /// Required number of hex digits.
        expected: usize,
        /// Number of characters given.
        got: usize,
    },
    /// A character is not a hex digit.
    #[error("invalid hex digit at position {0}")]
    Digit(usize),
}

fn parse_hex<const N: usize>(s: &str) -> Result<[u8; N], HexError> {
    let bytes = s.as_bytes();
    if bytes.len() != N * 2 {
        return Err(HexError::Length {
            expected: N * 2,
            got: bytes.len(),
        });
    }
    let mut out = [0u8; N];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = hex_val(pair[0]).ok_or(HexError::Digit(i * 2))?;
        let lo = hex_val(pair[1]).ok_or(HexError::Digit(i * 2 + 1))?;
        out[i] = (hi << 4) | lo;
    }
    Ok(out)
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

/// Swarm identifier announced to the tracker: `sha1("hivecast/1/" + swarm_key)[..20]`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InfoHash(pub [u8; 20]);

impl InfoHash {
    /// Info hash of a swarm key (the media playlist's origin URL without its query string).
    pub fn from_swarm_key(key: &str) -> Self {
        let mut h = Sha1::new();
        h.update(INFO_HASH_DOMAIN.as_bytes());
        h.update(key.as_bytes());
        let out = h.finalize();
        let mut id = [0u8; 20];
        id.copy_from_slice(&out[..20]);
        InfoHash(id)
    }

    /// The raw 20 bytes.
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }
}

impl fmt::Display for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHash({self})")
    }
}

impl FromStr for InfoHash {
    type Err = HexError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_hex::<20>(s).map(InfoHash)
    }
}

/// A peer's 20-byte identity inside the tracker protocol and the peer protocol.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub [u8; 20]);

impl PeerId {
    /// A fresh peer id: [`PEER_ID_PREFIX`] then 12 random characters from `[0-9A-Za-z]`.
    ///
    /// The rng is injected so tests and the simulator are deterministic.
    pub fn random<R: rand::Rng + ?Sized>(rng: &mut R) -> Self {
        const ALPHABET: &[u8; 62] =
            b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let mut id = [0u8; 20];
        id[..8].copy_from_slice(PEER_ID_PREFIX);
        for b in &mut id[8..] {
            *b = ALPHABET[rng.random_range(0..ALPHABET.len())];
        }
        PeerId(id)
    }

    /// The raw 20 bytes.
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// True if the id carries the hivecast client prefix.
    pub fn is_hivecast(&self) -> bool {
        self.0.starts_with(PEER_ID_PREFIX)
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Show the printable tail; ids are mostly ASCII.
        let tail: String = self.0[8..]
            .iter()
            .map(|&b| if b.is_ascii_graphic() { b as char } else { '.' })
            .collect();
        write!(f, "PeerId({tail})")
    }
}

impl FromStr for PeerId {
    type Err = HexError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_hex::<20>(s).map(PeerId)
    }
}

/// SHA-256 of a segment body, as published by the origin.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// SHA-256 of `data`.
    pub fn of(data: &[u8]) -> Self {
        let out = Sha256::digest(data);
        let mut d = [0u8; 32];
        d.copy_from_slice(&out);
        Digest(d)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// True if `data` hashes to this digest.
    pub fn verify(&self, data: &[u8]) -> bool {
        Digest::of(data) == *self
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest(")?;
        write_hex(f, &self.0[..6])?;
        write!(f, "…)")
    }
}

impl FromStr for Digest {
    type Err = HexError;
    /// Parses 64 hex digits (either case), as found in the `.sha256.json` sidecar.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_hex::<32>(s).map(Digest)
    }
}

/// A segment inside a swarm: media sequence number (live) or index (VOD).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct SegmentId {
    /// Media sequence number (live) or index (VOD).
    pub seq: u64,
}

impl SegmentId {
    /// Segment `seq`.
    pub const fn new(seq: u64) -> Self {
        SegmentId { seq }
    }
}

impl fmt::Display for SegmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn info_hash_is_sha1_of_domain_and_key() {
        let key = "https://cdn.example.com/live/index.m3u8";
        let ih = InfoHash::from_swarm_key(key);
        let mut h = Sha1::new();
        h.update(b"hivecast/1/https://cdn.example.com/live/index.m3u8");
        assert_eq!(&ih.0[..], &h.finalize()[..]);
        assert_ne!(
            ih,
            InfoHash::from_swarm_key("https://cdn.example.com/live/other.m3u8")
        );
    }

    #[test]
    fn info_hash_known_vector() {
        // sha1("hivecast/1/") computed independently.
        let ih = InfoHash::from_swarm_key("");
        let mut h = Sha1::new();
        h.update(b"hivecast/1/");
        assert_eq!(ih.to_string(), {
            let d = h.finalize();
            d.iter().map(|b| format!("{b:02x}")).collect::<String>()
        });
        let back: InfoHash = ih.to_string().parse().unwrap();
        assert_eq!(back, ih);
    }

    #[test]
    fn peer_id_has_prefix_and_is_deterministic_per_seed() {
        let mut a = rand::rngs::StdRng::seed_from_u64(7);
        let mut b = rand::rngs::StdRng::seed_from_u64(7);
        let p = PeerId::random(&mut a);
        assert!(p.is_hivecast());
        assert_eq!(p, PeerId::random(&mut b));
        assert!(p.0[8..].iter().all(|c| c.is_ascii_alphanumeric()));
        let q = PeerId::random(&mut a);
        assert_ne!(p, q);
        assert_eq!(p.to_string().parse::<PeerId>().unwrap(), p);
        assert!(format!("{p:?}").starts_with("PeerId("));
    }

    #[test]
    fn digest_known_vector_and_hex_round_trip() {
        let d = Digest::of(b"abc");
        assert_eq!(
            d.to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let upper = "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD";
        assert_eq!(upper.parse::<Digest>().unwrap(), d);
        assert!(d.verify(b"abc"));
        assert!(!d.verify(b"abd"));
    }

    #[test]
    fn digest_hex_errors() {
        assert_eq!(
            "abc".parse::<Digest>(),
            Err(HexError::Length {
                expected: 64,
                got: 3
            })
        );
        let mut bad = "0".repeat(64);
        bad.replace_range(5..6, "g");
        assert_eq!(bad.parse::<Digest>(), Err(HexError::Digit(5)));
        let mut bad2 = "0".repeat(40);
        bad2.replace_range(39..40, "-");
        assert_eq!(bad2.parse::<PeerId>(), Err(HexError::Digit(39)));
        assert!("zz".parse::<InfoHash>().is_err());
    }

    #[test]
    fn segment_id_orders_by_seq() {
        assert!(SegmentId::new(3) < SegmentId::new(4));
        assert_eq!(SegmentId::new(9).to_string(), "#9");
    }
}
