//! The agent's local URL scheme ("mirror form").
//!
//! An origin URL `{scheme}://{authority}/{path}?{query}` is served by the agent at the local
//! path `/{scheme}/{authority}/{path}?{query}`; for example
//! `https://cdn.example.com/live/master.m3u8` is served at
//! `/https/cdn.example.com/live/master.m3u8`.
//!
//! Because the mirror form keeps the origin's directory structure, relative URIs inside a
//! playlist served at its mirror path resolve, in the player, to the mirror path of the
//! resource they name at the origin. The playlist rewriter therefore only has to touch URIs
//! that would leave the mirror (absolute URIs, root-relative URIs, `../` climbing above the
//! authority, and so on), see [`crate::playlist`].
//!
//! The mapping is exact in both directions:
//!
//! * [`to_mirror_path`] writes the path and query exactly as the `url` crate serializes them
//!   (percent-escapes untouched, so signed query strings reach the origin byte for byte), the
//!   authority as `host[:port]` (the port only when it is not the scheme's default, IPv6 hosts
//!   in brackets), and drops the fragment, which never reaches a server anyway.
//! * [`from_mirror_path`] accepts what a player sends back and refuses anything that is not
//!   the plain image of an `http`/`https` URL: other schemes, an empty or malformed authority,
//!   userinfo (credentials must never travel in a local path), dot segments (which a client or
//!   an intermediary could normalize into a different authority or path), fragments,
//!   backslashes, spaces and control characters. Which origins may actually be fetched is the
//!   caller's decision (the `origin.allow` list): this module only parses.

use std::fmt::Write as _;

use url::Url;

/// Why a local path is not a valid mirror-form path.
///
/// Each variant's `Display` is one line, suitable as the reason of an HTTP 400/403 answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MirrorError {
    /// The path does not start with `/`.
    #[error("mirror path must start with '/'")]
    NotAbsolute,
    /// The first path segment (the scheme) is empty.
    #[error("mirror path has no scheme segment (expected /http/... or /https/...)")]
    MissingScheme,
    /// The first path segment is not `http` or `https`.
    #[error("mirror path scheme {0:?} is not http or https")]
    UnknownScheme(String),
    /// The second path segment (the authority) is missing or empty.
    #[error("mirror path has no authority segment (expected /{{scheme}}/{{host}}/...)")]
    MissingAuthority,
    /// The authority carries userinfo (`user:pass@host`).
    #[error("mirror path authority must not contain userinfo")]
    UserInfo,
    /// The authority is not a valid `host[:port]`.
    #[error("mirror path authority {0:?} is not a valid host[:port]")]
    InvalidAuthority(String),
    /// A path segment is `.` or `..` (also percent-encoded).
    #[error("mirror path contains a dot segment")]
    DotSegment,
    /// The path or query contains a character that never appears in a request target made
    /// from a mirror path (`#`, `\`, space or a control character).
    #[error("mirror path contains a forbidden character {0:?}")]
    ForbiddenCharacter(char),
    /// The pieces do not form a valid URL.
    #[error("mirror path does not form a valid URL: {0}")]
    InvalidUrl(url::ParseError),
}

/// The mirror-form local path (with query) of an origin URL, or `None` if the URL cannot be
/// mirrored (a scheme other than `http`/`https`, no host, or userinfo).
///
/// ```text
/// https://cdn.example.com/live/master.m3u8?tok=a%2Fb#frag
///   → /https/cdn.example.com/live/master.m3u8?tok=a%2Fb
/// http://[::1]:8080/a%20b.ts → /http/[::1]:8080/a%20b.ts
/// ```
pub fn to_mirror_path(url: &Url) -> Option<String> {
    let scheme = url.scheme();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    if !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    let host = url.host_str()?;
    let path = url.path();
    let query = url.query();
    let mut out = String::with_capacity(
        scheme.len() + host.len() + path.len() + query.map_or(0, |q| q.len() + 1) + 8,
    );
    out.push('/');
    out.push_str(scheme);
    out.push('/');
    out.push_str(host);
    if let Some(port) = url.port() {
        // Writing to a String cannot fail.
        let _ = write!(out, ":{port}");
    }
    if !path.starts_with('/') {
        // Special-scheme URLs always have a path starting with '/'; be defensive anyway.
        out.push('/');
    }
    out.push_str(path);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Some(out)
}

/// Parses a local mirror-form path (with optional query) back into the origin URL.
///
/// ```text
/// /https/cdn.example.com/live/master.m3u8?x=1 → https://cdn.example.com/live/master.m3u8?x=1
/// /ftp/cdn.example.com/x                      → Err(UnknownScheme("ftp"))
/// /https/cdn.example.com/../evil.example/x    → Err(DotSegment)
/// ```
pub fn from_mirror_path(path_and_query: &str) -> Result<Url, MirrorError> {
    let rest = path_and_query
        .strip_prefix('/')
        .ok_or(MirrorError::NotAbsolute)?;
    if let Some(c) = rest.chars().find(|&c| is_forbidden(c)) {
        return Err(MirrorError::ForbiddenCharacter(c));
    }
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let (scheme, after_scheme) = match path.split_once('/') {
        Some((s, a)) => (s, Some(a)),
        None => (path, None),
    };
    if scheme.is_empty() {
        return Err(MirrorError::MissingScheme);
    }
    let scheme = if scheme.eq_ignore_ascii_case("https") {
        "https"
    } else if scheme.eq_ignore_ascii_case("http") {
        "http"
    } else {
        return Err(MirrorError::UnknownScheme(scheme.to_owned()));
    };
    let after_scheme = after_scheme.ok_or(MirrorError::MissingAuthority)?;
    let (authority, origin_path) = match after_scheme.find('/') {
        Some(i) => (&after_scheme[..i], &after_scheme[i..]),
        None => (after_scheme, ""),
    };
    check_authority(authority)?;
    if origin_path.split('/').any(is_dot_segment) {
        return Err(MirrorError::DotSegment);
    }

    let mut s = String::with_capacity(
        scheme.len()
            + 3
            + authority.len()
            + origin_path.len()
            + query.map_or(0, |q| q.len() + 1)
            + 1,
    );
    s.push_str(scheme);
    s.push_str("://");
    s.push_str(authority);
    if origin_path.is_empty() {
        s.push('/');
    } else {
        s.push_str(origin_path);
    }
    if let Some(q) = query {
        s.push('?');
        s.push_str(q);
    }
    let url = Url::parse(&s).map_err(MirrorError::InvalidUrl)?;
    // Defensive: the checks above already exclude these.
    if url.host_str().is_none_or(str::is_empty) {
        return Err(MirrorError::InvalidAuthority(authority.to_owned()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(MirrorError::UserInfo);
    }
    Ok(url)
}

/// Characters that never occur in a request target made from [`to_mirror_path`].
fn is_forbidden(c: char) -> bool {
    c == '#' || c == '\\' || c == ' ' || c.is_ascii_control()
}

fn check_authority(authority: &str) -> Result<(), MirrorError> {
    if authority.is_empty() {
        return Err(MirrorError::MissingAuthority);
    }
    if authority.contains('@') {
        return Err(MirrorError::UserInfo);
    }
    let host = match authority.rfind(':') {
        // IPv6 literal without a port: the last ':' is inside the brackets.
        Some(i) if !authority[i..].contains(']') => &authority[..i],
        _ => authority,
    };
    if host.is_empty() {
        return Err(MirrorError::MissingAuthority);
    }
    if host.bytes().all(|b| b == b'.') {
        return Err(MirrorError::DotSegment);
    }
    let allowed = |b: u8| {
        b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':' | b'[' | b']')
    };
    if !authority.bytes().all(allowed) {
        return Err(MirrorError::InvalidAuthority(authority.to_owned()));
    }
    Ok(())
}

/// `.` and `..`, also with `%2e` / `%2E` for the dots (WHATWG URL parsers treat those as
/// dots too).
fn is_dot_segment(seg: &str) -> bool {
    let rest = seg.strip_prefix('.').or_else(|| strip_pct_2e(seg));
    match rest {
        None => false,
        Some("") => true,
        Some(r) => r == "." || strip_pct_2e(r) == Some(""),
    }
}

fn strip_pct_2e(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    if b.len() >= 3 && b[0] == b'%' && b[1] == b'2' && (b[2] == b'e' || b[2] == b'E') {
        s.get(3..)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn to_mirror_examples() {
        let cases = [
            (
                "https://cdn.example.com/live/master.m3u8",
                "/https/cdn.example.com/live/master.m3u8",
            ),
            (
                "http://cdn.example.com:8080/a/b.ts?x=1&y=%2F",
                "/http/cdn.example.com:8080/a/b.ts?x=1&y=%2F",
            ),
            // Default port dropped by the url crate.
            (
                "https://cdn.example.com:443/a.ts",
                "/https/cdn.example.com/a.ts",
            ),
            ("http://[::1]:8080/a%20b.ts", "/http/[::1]:8080/a%20b.ts"),
            ("http://[2001:db8::1]/x", "/http/[2001:db8::1]/x"),
            ("http://127.0.0.1/x", "/http/127.0.0.1/x"),
            ("https://h.example/", "/https/h.example/"),
            // Empty query kept, fragment dropped.
            ("https://h.example/x?#f", "/https/h.example/x?"),
            ("https://h.example/x#f", "/https/h.example/x"),
            // Signed-URL style query kept byte for byte.
            (
                "https://h.example/s.ts?hmac=AbC%2B%2F%3D&exp=1",
                "/https/h.example/s.ts?hmac=AbC%2B%2F%3D&exp=1",
            ),
        ];
        for (origin, local) in cases {
            assert_eq!(
                to_mirror_path(&u(origin)).as_deref(),
                Some(local),
                "{origin}"
            );
            let back = from_mirror_path(local).unwrap();
            let mut expected = u(origin);
            expected.set_fragment(None);
            assert_eq!(back, expected, "{local}");
        }
    }

    #[test]
    fn to_mirror_rejects_other_schemes_and_userinfo() {
        assert_eq!(to_mirror_path(&u("ftp://h.example/x")), None);
        assert_eq!(to_mirror_path(&u("skd://key-id")), None);
        assert_eq!(to_mirror_path(&u("data:text/plain,hi")), None);
        assert_eq!(to_mirror_path(&u("https://user:pw@h.example/x")), None);
        assert_eq!(to_mirror_path(&u("https://user@h.example/x")), None);
    }

    #[test]
    fn from_mirror_errors() {
        use MirrorError as E;
        let cases: &[(&str, MirrorError)] = &[
            ("https/h.example/x", E::NotAbsolute),
            ("", E::NotAbsolute),
            ("/", E::MissingScheme),
            ("//h.example/x", E::MissingScheme),
            ("/ftp/h.example/x", E::UnknownScheme("ftp".into())),
            ("/file//etc/passwd", E::UnknownScheme("file".into())),
            ("/https", E::MissingAuthority),
            ("/https/", E::MissingAuthority),
            ("/https//x.ts", E::MissingAuthority),
            ("/https/:8080/x.ts", E::MissingAuthority),
            ("/https/user:pw@h.example/x", E::UserInfo),
            ("/https/user@h.example/x", E::UserInfo),
            (
                "/https/h%2eexample/x",
                E::InvalidAuthority("h%2eexample".into()),
            ),
            (
                "/https/h.example,evil/x",
                E::InvalidAuthority("h.example,evil".into()),
            ),
            ("/https/../x", E::DotSegment),
            ("/https/./x", E::DotSegment),
            ("/https/h.example/../other.example/x", E::DotSegment),
            ("/https/h.example/a/./b", E::DotSegment),
            ("/https/h.example/a/%2e%2E/b", E::DotSegment),
            ("/https/h.example/a/.%2e", E::DotSegment),
            ("/https/h.example/a/%2E.", E::DotSegment),
            ("/https/h.example/a/%2e", E::DotSegment),
            ("/https/h.example/a\\..\\b", E::ForbiddenCharacter('\\')),
            ("/https/h.example/a b", E::ForbiddenCharacter(' ')),
            ("/https/h.example/a#frag", E::ForbiddenCharacter('#')),
            ("/https/h.example/a?x=\n", E::ForbiddenCharacter('\n')),
            (
                "/https/h.example:99999/x",
                E::InvalidUrl(url::ParseError::InvalidPort),
            ),
            (
                "/https/[::1/x",
                E::InvalidUrl(url::ParseError::InvalidIpv6Address),
            ),
        ];
        for (input, err) in cases {
            assert_eq!(from_mirror_path(input).as_ref(), Err(err), "{input:?}");
            // Every error is one line.
            assert!(!err.to_string().contains('\n'));
        }
    }

    #[test]
    fn from_mirror_accepts_edge_forms() {
        assert_eq!(
            from_mirror_path("/HTTPS/h.example/a").unwrap().as_str(),
            "https://h.example/a"
        );
        assert_eq!(
            from_mirror_path("/https/h.example").unwrap().as_str(),
            "https://h.example/"
        );
        assert_eq!(
            from_mirror_path("/https/h.example?q=1").unwrap().as_str(),
            "https://h.example/?q=1"
        );
        // Dots inside a segment are not dot segments.
        assert_eq!(
            from_mirror_path("/http/h.example/a/..b/.c/...")
                .unwrap()
                .path(),
            "/a/..b/.c/..."
        );
        // Empty segments in the origin path are kept.
        assert_eq!(
            from_mirror_path("/http/h.example//a//b").unwrap().path(),
            "//a//b"
        );
        // A query may hold '/', '?', and percent-escapes, all kept.
        assert_eq!(
            from_mirror_path("/http/h.example/x?a=/b?c&d=%2F")
                .unwrap()
                .query(),
            Some("a=/b?c&d=%2F")
        );
    }

    fn host_strategy() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9]{0,6}){0,3}",
            (0u8..=255, 0u8..=255, 0u8..=255, 1u8..=254)
                .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
            Just("[::1]".to_owned()),
            Just("[2001:db8::42]".to_owned()),
        ]
    }

    fn segment_strategy() -> impl Strategy<Value = String> {
        // Printable ASCII plus a little UTF-8, including characters the url crate escapes.
        "([A-Za-z0-9._~!$&'()*+,;=:@ \"<>{}|^`-]|%[0-9A-F]{2}|é){0,12}"
    }

    proptest! {
        #[test]
        fn mirror_round_trip(
            https in any::<bool>(),
            host in host_strategy(),
            port in proptest::option::of(1u16..=65535),
            segments in proptest::collection::vec(segment_strategy(), 0..5),
            query in proptest::option::of("([A-Za-z0-9=&%/?:@._~+-]|%[0-9a-f]{2}){0,20}"),
            fragment in proptest::option::of("[a-z0-9]{0,5}"),
        ) {
            let scheme = if https { "https" } else { "http" };
            let mut s = format!("{scheme}://{host}");
            if let Some(p) = port {
                s.push_str(&format!(":{p}"));
            }
            for seg in &segments {
                s.push('/');
                s.push_str(seg);
            }
            if let Some(q) = &query {
                s.push('?');
                s.push_str(q);
            }
            if let Some(f) = &fragment {
                s.push('#');
                s.push_str(f);
            }
            let Ok(url) = Url::parse(&s) else {
                // Not every generated string is a URL (e.g. an invalid host); nothing to check.
                return Ok(());
            };
            let local = to_mirror_path(&url).expect("http(s) URL without userinfo mirrors");
            let back = from_mirror_path(&local).expect("mirror path parses back");
            let mut expected = url.clone();
            expected.set_fragment(None);
            prop_assert_eq!(&back, &expected);
            // And the mirror path of the result is the same string (canonical form).
            prop_assert_eq!(to_mirror_path(&back), Some(local));
        }

        #[test]
        fn from_mirror_never_panics(s in "\\PC{0,60}") {
            let _ = from_mirror_path(&s);
        }
    }
}
