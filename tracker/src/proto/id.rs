//! 20-byte identifiers and their latin1 "binary string" codec.
//!
//! The WebTorrent tracker protocol carries `info_hash`, `peer_id`, `offer_id` and
//! `to_peer_id` as JavaScript "binary strings": 20 characters whose code points are the
//! byte values 0–255 (latin1). In JSON they appear as UTF-8 for U+0080..U+00FF or as
//! `\u00XX` escapes. Decoding rejects any other length and any code point above 255.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Length in bytes of every protocol identifier.
pub const ID_LEN: usize = 20;

/// Why a string is not a valid 20-byte latin1 identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The string does not have exactly 20 characters.
    #[error("expected 20 characters, got {0}")]
    Length(usize),
    /// A character is above U+00FF, so it is not a byte.
    #[error("character U+{0:04X} is not latin1")]
    NotLatin1(u32),
    /// A hex form is not 40 hex digits.
    #[error("expected 40 hex digits")]
    Hex,
}

/// Decodes a latin1 binary string into 20 bytes.
///
/// Never panics; counts characters (not UTF-8 bytes), as JavaScript counts them for
/// latin1 text.
pub fn decode_latin1(s: &str) -> Result<[u8; ID_LEN], IdError> {
    let mut out = [0u8; ID_LEN];
    let mut n = 0usize;
    for c in s.chars() {
        let code = u32::from(c);
        let byte = u8::try_from(code).map_err(|_| IdError::NotLatin1(code))?;
        match out.get_mut(n) {
            Some(slot) => *slot = byte,
            None => return Err(IdError::Length(s.chars().count())),
        }
        n += 1;
    }
    if n == ID_LEN {
        Ok(out)
    } else {
        Err(IdError::Length(n))
    }
}

/// Encodes bytes as a latin1 binary string (one char per byte).
pub fn encode_latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

fn decode_hex(s: &str) -> Result<[u8; ID_LEN], IdError> {
    let raw = s.as_bytes();
    if raw.len() != ID_LEN * 2 {
        return Err(IdError::Hex);
    }
    let mut out = [0u8; ID_LEN];
    for (slot, pair) in out.iter_mut().zip(raw.chunks_exact(2)) {
        let hi = hex_val(pair.first().copied())?;
        let lo = hex_val(pair.get(1).copied())?;
        *slot = (hi << 4) | lo;
    }
    Ok(out)
}

fn hex_val(c: Option<u8>) -> Result<u8, IdError> {
    match c {
        Some(c @ b'0'..=b'9') => Ok(c - b'0'),
        Some(c @ b'a'..=b'f') => Ok(c - b'a' + 10),
        Some(c @ b'A'..=b'F') => Ok(c - b'A' + 10),
        _ => Err(IdError::Hex),
    }
}

/// Calls `f` with the latin1 wire form of `bytes`, built on the stack (no allocation).
fn with_latin1<R>(bytes: &[u8; ID_LEN], f: impl FnOnce(&str) -> R) -> R {
    // Each byte becomes one char of at most 2 UTF-8 bytes.
    let mut buf = [0u8; ID_LEN * 2];
    let mut n = 0;
    for &b in bytes {
        if let Some(slot) = buf.get_mut(n..) {
            n += char::from(b).encode_utf8(slot).len();
        }
    }
    f(std::str::from_utf8(buf.get(..n).unwrap_or_default()).unwrap_or_default())
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; ID_LEN]);

        impl $name {
            /// Wraps raw bytes.
            pub const fn from_bytes(bytes: [u8; ID_LEN]) -> Self {
                Self(bytes)
            }

            /// The raw bytes.
            pub const fn as_bytes(&self) -> &[u8; ID_LEN] {
                &self.0
            }

            /// Decodes the latin1 wire form.
            pub fn from_latin1(s: &str) -> Result<Self, IdError> {
                decode_latin1(s).map(Self)
            }

            /// The latin1 wire form (20 chars).
            pub fn to_latin1(&self) -> String {
                encode_latin1(&self.0)
            }

            /// Parses 40 hex digits (either case).
            pub fn from_hex(s: &str) -> Result<Self, IdError> {
                decode_hex(s).map(Self)
            }

            /// Lower-case hex form (40 digits), for logs and config.
            pub fn to_hex(&self) -> String {
                self.to_string()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_hex(f, &self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "("))?;
                write_hex(f, &self.0)?;
                f.write_str(")")
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                with_latin1(&self.0, |s| serializer.serialize_str(s))
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str(concat!("a 20-character latin1 string (", $what, ")"))
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$name, E> {
                        $name::from_latin1(v).map_err(|e| E::custom(format_args!(concat!("invalid ", $what, ": {}"), e)))
                    }
                }
                deserializer.deserialize_str(V)
            }
        }
    };
}

id_type!(
    /// A swarm id (`info_hash`): 20 bytes, latin1 on the wire.
    InfoHash,
    "info_hash"
);
id_type!(
    /// A peer id (`peer_id`, `to_peer_id`): 20 bytes, latin1 on the wire.
    PeerId,
    "peer_id"
);
id_type!(
    /// An offer id (`offer_id`): 20 bytes, latin1 on the wire.
    OfferId,
    "offer_id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_round_trip_all_bytes() {
        for start in 0u8..=235 {
            let bytes: [u8; 20] = std::array::from_fn(|i| start.wrapping_add(i as u8));
            let s = encode_latin1(&bytes);
            assert_eq!(s.chars().count(), 20);
            assert_eq!(decode_latin1(&s), Ok(bytes));
        }
    }

    #[test]
    fn rejects_wrong_length_and_non_latin1() {
        assert_eq!(decode_latin1("short"), Err(IdError::Length(5)));
        assert_eq!(decode_latin1(&"a".repeat(21)), Err(IdError::Length(21)));
        assert_eq!(decode_latin1(""), Err(IdError::Length(0)));
        let s = format!("{}\u{100}", "a".repeat(19));
        assert_eq!(decode_latin1(&s), Err(IdError::NotLatin1(0x100)));
        // 20 chars but one is an emoji: not latin1.
        let s = format!("{}😀", "a".repeat(19));
        assert!(matches!(decode_latin1(&s), Err(IdError::NotLatin1(_))));
    }

    #[test]
    fn hex_forms() {
        let id = InfoHash::from_hex("0123456789abcdefABCDEF0123456789abcdef01").unwrap();
        assert_eq!(id.to_hex(), "0123456789abcdefabcdef0123456789abcdef01");
        assert_eq!(InfoHash::from_hex("xyz"), Err(IdError::Hex));
        assert_eq!(InfoHash::from_hex(&"g".repeat(40)), Err(IdError::Hex));
        assert_eq!(
            format!("{id:?}"),
            "InfoHash(0123456789abcdefabcdef0123456789abcdef01)"
        );
    }

    #[test]
    fn serde_uses_latin1_strings() {
        let id = PeerId([0xff; 20]);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{}\"", "\u{ff}".repeat(20)));
        let back: PeerId = serde_json::from_str(&json).unwrap();
        assert_eq!(back, id);
        let escaped = format!("\"{}\"", "\\u0000".repeat(20));
        let zero: PeerId = serde_json::from_str(&escaped).unwrap();
        assert_eq!(zero, PeerId([0; 20]));
        let err = serde_json::from_str::<PeerId>("\"abc\"").unwrap_err();
        assert!(err.to_string().contains("invalid peer_id"), "{err}");
        assert!(serde_json::from_str::<OfferId>("12").is_err());
    }
}
