//! `Range: bytes=...` resolution (RFC 9110 §14), sans-IO.
//!
//! Policy (what the test origin does, and what tests of other components can rely on):
//! - no header, a unit other than `bytes`, a syntactically invalid spec (`bytes=5-2`,
//!   `bytes=a-b`, `bytes=-`), or several ranges (`bytes=0-1,4-5`; multipart responses are not
//!   implemented) → the header is ignored and the whole representation is sent (`200`), as
//!   RFC 9110 §14.2 allows;
//! - `bytes=a-b` → `a..=min(b, len-1)`; `bytes=a-` → `a..=len-1`; `bytes=-n` → the last
//!   `min(n, len)` bytes → `206`;
//! - `a >= len`, `bytes=-0`, or any range of an empty representation → `416` with
//!   `Content-Range: bytes */len`.

/// What to send for a request, given its `Range` header and the representation length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOutcome {
    /// Send everything with `200`.
    Full,
    /// Send bytes `start..=end` with `206` and `Content-Range: bytes start-end/len`.
    Partial {
        /// First byte (inclusive).
        start: u64,
        /// Last byte (inclusive).
        end: u64,
    },
    /// Answer `416` with `Content-Range: bytes */len`.
    Unsatisfiable,
}

fn parse_num(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // All digits: only overflow can fail, which means "larger than any length".
    Some(s.parse::<u64>().unwrap_or(u64::MAX))
}

/// Resolves a `Range` header value against a representation of `len` bytes.
pub fn resolve(header: Option<&str>, len: u64) -> RangeOutcome {
    let Some(header) = header else {
        return RangeOutcome::Full;
    };
    let header = header.trim();
    let Some((unit, spec)) = header.split_once('=') else {
        return RangeOutcome::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return RangeOutcome::Full;
    }
    let spec = spec.trim();
    if spec.contains(',') {
        return RangeOutcome::Full;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return RangeOutcome::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // Suffix range: the last N bytes.
        let Some(n) = parse_num(last) else {
            return RangeOutcome::Full;
        };
        if n == 0 || len == 0 {
            return RangeOutcome::Unsatisfiable;
        }
        let n = n.min(len);
        return RangeOutcome::Partial {
            start: len - n,
            end: len - 1,
        };
    }
    let Some(start) = parse_num(first) else {
        return RangeOutcome::Full;
    };
    let end = if last.is_empty() {
        None
    } else {
        match parse_num(last) {
            Some(e) if e >= start => Some(e),
            _ => return RangeOutcome::Full,
        }
    };
    if start >= len {
        return RangeOutcome::Unsatisfiable;
    }
    let end = end.map_or(len - 1, |e| e.min(len - 1));
    RangeOutcome::Partial { start, end }
}

#[cfg(test)]
mod tests {
    use super::RangeOutcome::{Full, Partial, Unsatisfiable};
    use super::*;

    #[test]
    fn closed_open_and_suffix_ranges() {
        assert_eq!(resolve(None, 100), Full);
        assert_eq!(
            resolve(Some("bytes=0-9"), 100),
            Partial { start: 0, end: 9 }
        );
        assert_eq!(
            resolve(Some("bytes=10-"), 100),
            Partial { start: 10, end: 99 }
        );
        assert_eq!(
            resolve(Some("bytes=-10"), 100),
            Partial { start: 90, end: 99 }
        );
        assert_eq!(
            resolve(Some("bytes=99-99"), 100),
            Partial { start: 99, end: 99 }
        );
        assert_eq!(
            resolve(Some("Bytes = 5-6 "), 100),
            Partial { start: 5, end: 6 }
        );
    }

    #[test]
    fn clamping() {
        assert_eq!(
            resolve(Some("bytes=90-1000"), 100),
            Partial { start: 90, end: 99 }
        );
        assert_eq!(
            resolve(Some("bytes=-1000"), 100),
            Partial { start: 0, end: 99 }
        );
        assert_eq!(
            resolve(Some("bytes=0-99999999999999999999999"), 100),
            Partial { start: 0, end: 99 }
        );
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(resolve(Some("bytes=100-"), 100), Unsatisfiable);
        assert_eq!(resolve(Some("bytes=100-200"), 100), Unsatisfiable);
        assert_eq!(resolve(Some("bytes=-0"), 100), Unsatisfiable);
        assert_eq!(resolve(Some("bytes=0-"), 0), Unsatisfiable);
        assert_eq!(resolve(Some("bytes=-5"), 0), Unsatisfiable);
        assert_eq!(
            resolve(Some("bytes=99999999999999999999999-"), 100),
            Unsatisfiable
        );
    }

    #[test]
    fn ignored_headers() {
        assert_eq!(resolve(Some("items=0-1"), 100), Full);
        assert_eq!(resolve(Some("bytes=5-2"), 100), Full);
        assert_eq!(resolve(Some("bytes=a-b"), 100), Full);
        assert_eq!(resolve(Some("bytes=-"), 100), Full);
        assert_eq!(resolve(Some("bytes=0-1,5-6"), 100), Full);
        assert_eq!(resolve(Some("bytes=1"), 100), Full);
        assert_eq!(resolve(Some("bytes"), 100), Full);
        assert_eq!(resolve(Some("bytes=+1-2"), 100), Full);
        assert_eq!(resolve(Some("bytes=-+3"), 100), Full);
    }
}
