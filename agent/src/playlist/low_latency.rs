//! Low-latency HLS request directives (rfc8216bis §6.2.5.2, §6.2.5.1, §6.2.5.3).
//!
//! A player asks for a blocking reload with `_HLS_msn=M[&_HLS_part=N]` and for a delta update
//! with `_HLS_skip=YES|v2`. The answers to such requests are specific to those values, so they
//! must never be cached or served as the full playlist, and in degrade mode the agent fetches
//! the origin playlist without them.

use std::borrow::Cow;

/// The query parameters that make a playlist request a low-latency one.
pub const LOW_LATENCY_DIRECTIVES: [&str; 3] = ["_HLS_msn", "_HLS_part", "_HLS_skip"];

/// The decoded name of one `name=value` pair of a query.
fn pair_name(pair: &str) -> Cow<'_, str> {
    let raw = pair.split_once('=').map_or(pair, |(n, _)| n);
    if raw.contains(['%', '+']) {
        url::form_urlencoded::parse(raw.as_bytes())
            .next()
            .map_or(Cow::Borrowed(raw), |(n, _)| Cow::Owned(n.into_owned()))
    } else {
        Cow::Borrowed(raw)
    }
}

fn is_directive(pair: &str) -> bool {
    let name = pair_name(pair);
    LOW_LATENCY_DIRECTIVES.contains(&name.as_ref())
}

/// Whether a playlist request's query (without the leading `?`) carries `_HLS_msn`,
/// `_HLS_part` or `_HLS_skip` (names compared after percent-decoding, case-sensitively as the
/// spec writes them).
pub fn is_low_latency_request(query: Option<&str>) -> bool {
    query.is_some_and(|q| q.split('&').any(is_directive))
}

/// The query with the low-latency directives removed and every other parameter kept byte
/// for byte and in order; `None` when nothing is left.
///
/// Use it to build the origin request of a full playlist (degrade mode) or its cache key.
pub fn without_low_latency_directives(query: &str) -> Option<Cow<'_, str>> {
    if !query.split('&').any(is_directive) {
        return (!query.is_empty()).then_some(Cow::Borrowed(query));
    }
    let mut out = String::with_capacity(query.len());
    for pair in query
        .split('&')
        .filter(|p| !p.is_empty() && !is_directive(p))
    {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(pair);
    }
    (!out.is_empty()).then_some(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_directives() {
        assert!(!is_low_latency_request(None));
        assert!(!is_low_latency_request(Some("")));
        assert!(!is_low_latency_request(Some("token=abc&_HLS_pathway=a")));
        assert!(!is_low_latency_request(Some("x_HLS_msn=1&_hls_msn=2")));
        assert!(is_low_latency_request(Some("_HLS_msn=273")));
        assert!(is_low_latency_request(Some(
            "token=a&_HLS_msn=273&_HLS_part=2"
        )));
        assert!(is_low_latency_request(Some("_HLS_skip=YES")));
        assert!(is_low_latency_request(Some("_HLS_part")));
        assert!(is_low_latency_request(Some("a=1&_HLS%5Fskip=v2")));
    }

    #[test]
    fn strips_directives_only() {
        assert_eq!(without_low_latency_directives(""), None);
        assert_eq!(
            without_low_latency_directives("a=1&b=%2F").as_deref(),
            Some("a=1&b=%2F")
        );
        assert!(matches!(
            without_low_latency_directives("a=1"),
            Some(Cow::Borrowed("a=1"))
        ));
        assert_eq!(
            without_low_latency_directives("tok=x%3D&_HLS_msn=3&_HLS_part=1&z=9").as_deref(),
            Some("tok=x%3D&z=9")
        );
        assert_eq!(
            without_low_latency_directives("_HLS_msn=3&_HLS_skip=YES"),
            None
        );
    }
}
