//! `Range: bytes=…` parsing (RFC 9110 §14). Only single ranges are honoured; a multi-range
//! request gets the whole body (allowed by the RFC).

/// A parsed single byte range, before it is resolved against a length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSpec {
    /// `bytes=a-b` (b inclusive) or `bytes=a-` (open-ended).
    From {
        /// First byte.
        start: u64,
        /// Last byte, inclusive.
        end: Option<u64>,
    },
    /// `bytes=-n`: the last n bytes.
    Suffix(u64),
}

/// Result of resolving a range against a body length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved {
    /// Serve bytes `start..=end`.
    Partial {
        /// First byte.
        start: u64,
        /// Last byte, inclusive.
        end: u64,
    },
    /// 416 Range Not Satisfiable.
    Unsatisfiable,
}

/// Parses a `Range` header value. `None` means "ignore it and serve the whole body"
/// (absent, not `bytes`, several ranges, or malformed).
pub fn parse(value: &str) -> Option<RangeSpec> {
    let spec = value.trim().strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        return Some(RangeSpec::Suffix(n));
    }
    let start: u64 = a.parse().ok()?;
    let end = if b.is_empty() {
        None
    } else {
        Some(b.parse::<u64>().ok()?)
    };
    if end.is_some_and(|e| e < start) {
        return None;
    }
    Some(RangeSpec::From { start, end })
}

impl RangeSpec {
    /// Resolves against a body of `len` bytes.
    pub fn resolve(self, len: u64) -> Resolved {
        match self {
            RangeSpec::From { start, end } => {
                if start >= len {
                    return Resolved::Unsatisfiable;
                }
                let end = end.map_or(len - 1, |e| e.min(len - 1));
                Resolved::Partial { start, end }
            }
            RangeSpec::Suffix(n) => {
                if n == 0 || len == 0 {
                    return Resolved::Unsatisfiable;
                }
                Resolved::Partial {
                    start: len.saturating_sub(n),
                    end: len - 1,
                }
            }
        }
    }

    /// The exact `(start, len)` when the range is closed (`a-b`); origin range fetches need it.
    pub fn closed(self) -> Option<(u64, u64)> {
        match self {
            RangeSpec::From {
                start,
                end: Some(e),
            } => Some((start, e - start + 1)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_forms() {
        assert_eq!(
            parse("bytes=0-99"),
            Some(RangeSpec::From {
                start: 0,
                end: Some(99)
            })
        );
        assert_eq!(
            parse("bytes=100-"),
            Some(RangeSpec::From {
                start: 100,
                end: None
            })
        );
        assert_eq!(parse("bytes=-50"), Some(RangeSpec::Suffix(50)));
        assert_eq!(parse("bytes=0-1,5-6"), None);
        assert_eq!(parse("items=0-1"), None);
        assert_eq!(parse("bytes=9-1"), None);
        assert_eq!(parse("bytes=x-1"), None);
        assert_eq!(parse("bytes=99999999999999999999999-"), None);
    }

    #[test]
    fn resolves() {
        let len = 1000;
        assert_eq!(
            parse("bytes=0-99").map(|r| r.resolve(len)),
            Some(Resolved::Partial { start: 0, end: 99 })
        );
        assert_eq!(
            parse("bytes=900-").map(|r| r.resolve(len)),
            Some(Resolved::Partial {
                start: 900,
                end: 999
            })
        );
        assert_eq!(
            parse("bytes=900-5000").map(|r| r.resolve(len)),
            Some(Resolved::Partial {
                start: 900,
                end: 999
            })
        );
        assert_eq!(
            parse("bytes=-10").map(|r| r.resolve(len)),
            Some(Resolved::Partial {
                start: 990,
                end: 999
            })
        );
        assert_eq!(
            parse("bytes=-5000").map(|r| r.resolve(len)),
            Some(Resolved::Partial { start: 0, end: 999 })
        );
        assert_eq!(
            parse("bytes=1000-").map(|r| r.resolve(len)),
            Some(Resolved::Unsatisfiable)
        );
        assert_eq!(
            parse("bytes=-0").map(|r| r.resolve(len)),
            Some(Resolved::Unsatisfiable)
        );
    }
}
