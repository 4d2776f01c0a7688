//! A permissive JSON value used while decoding, so a field of the wrong type gives a
//! precise protocol error (`invalid peer_id`) instead of a generic JSON error.
//!
//! Nested objects are skipped without being stored; arrays keep only their elements'
//! loose form. Memory stays bounded by the input size.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Any JSON value, kept only as far as the decoder needs it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Loose<'a> {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// Any number, as `f64` (JavaScript semantics).
    Num(f64),
    /// A string, borrowed when it has no escapes.
    Str(Cow<'a, str>),
    /// An array.
    Seq(Vec<Loose<'a>>),
    /// An object (contents skipped).
    Map,
}

impl<'a> Loose<'a> {
    /// The string, if this is one.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Loose::Str(s) => Some(s),
            _ => None,
        }
    }

    /// JavaScript `Number(x)` for the values a client may send as a count, when the
    /// result is a finite non-negative number; fractions are truncated, values are
    /// saturated to `u64`.
    pub(crate) fn as_count(&self) -> Option<u64> {
        let n = match self {
            Loose::Num(n) => *n,
            Loose::Str(s) => {
                let t = s.trim();
                if t.is_empty() {
                    0.0
                } else {
                    t.parse::<f64>().ok()?
                }
            }
            _ => return None,
        };
        if n.is_finite() && n >= 0.0 {
            // `as` saturates for f64 -> u64 and truncates fractions.
            Some(n as u64)
        } else {
            None
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Loose<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LooseVisitor)
    }
}

struct LooseVisitor;

impl<'de> Visitor<'de> for LooseVisitor {
    type Value = Loose<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Loose::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Loose::Null)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Loose::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Loose::Num(v as f64))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Loose::Num(v as f64))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Loose::Num(v))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Loose::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Loose::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Loose::Str(Cow::Owned(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Loose<'de>>()? {
            items.push(item);
        }
        Ok(Loose::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Loose::Map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_javascript_number() {
        let c = |j: &str| serde_json::from_str::<Loose<'_>>(j).unwrap().as_count();
        assert_eq!(c("0"), Some(0));
        assert_eq!(c("12.9"), Some(12));
        assert_eq!(c("\"42\""), Some(42));
        assert_eq!(c("\"\""), Some(0));
        assert_eq!(c("-1"), None);
        assert_eq!(c("\"abc\""), None);
        assert_eq!(c("null"), None);
        assert_eq!(c("{}"), None);
        assert_eq!(c("1e300"), Some(u64::MAX));
    }

    #[test]
    fn nested_values_are_skipped() {
        let v: Loose<'_> = serde_json::from_str(r#"[1,"a",{"x":[1,2]},null,true]"#).unwrap();
        assert_eq!(
            v,
            Loose::Seq(vec![
                Loose::Num(1.0),
                Loose::Str(Cow::Borrowed("a")),
                Loose::Map,
                Loose::Null,
                Loose::Bool(true)
            ])
        );
    }
}
