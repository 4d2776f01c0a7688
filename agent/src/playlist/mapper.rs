//! Deciding which URIs the agent proxies, and at which local URL.

use url::Url;

use crate::mirror::to_mirror_path;

/// What a URI in a playlist points at, so a [`UriMapper`] can decide per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UriKind {
    /// A media or multivariant playlist: the URI line after `EXT-X-STREAM-INF`,
    /// `EXT-X-MEDIA`, `EXT-X-I-FRAME-STREAM-INF`, `EXT-X-RENDITION-REPORT`.
    Playlist,
    /// A media segment URI line.
    Segment,
    /// A media initialization section: `EXT-X-MAP`, `EXT-X-PRELOAD-HINT:TYPE=MAP`.
    InitSegment,
    /// A partial segment: `EXT-X-PART`, `EXT-X-PRELOAD-HINT:TYPE=PART`.
    Part,
    /// A decryption key: `EXT-X-KEY`, `EXT-X-SESSION-KEY` (only `http`/`https`/relative URIs;
    /// `skd:`, `data:` and other schemes are never passed to the mapper).
    Key,
    /// `EXT-X-SESSION-DATA` JSON.
    SessionData,
    /// `EXT-X-CONTENT-STEERING` `SERVER-URI` (only when the tag is kept).
    Steering,
    /// Anything else: `EXT-X-DATERANGE` `X-ASSET-URI` / `X-ASSET-LIST` (interstitials) and the
    /// `URI` attribute of tags the rewriter does not know.
    Other,
}

/// Decides, for each URI in a playlist, whether the agent proxies it and at which local URL.
///
/// The rewriter calls it once per URI-bearing place, in playlist order. It must be
/// deterministic: the same `(url, kind)` must give the same answer, so that for example
/// `EXT-X-SESSION-KEY` and `EXT-X-KEY` naming one key map to one local URL (RFC 8216
/// §4.3.4.5).
pub trait UriMapper {
    /// `url` is absolute: resolved against the origin playlist URL after redirects, with
    /// variables substituted, and its scheme is `http` or `https`.
    ///
    /// `Some(local)`: proxy it at `local`, typically an absolute path such as
    /// `/https/host/x.ts` (resolved against the URL the player requested); it must not be
    /// empty nor contain `"`, CR or LF, nor start with `#` or whitespace.
    /// `None`: not proxied; the rewriter then makes the URI absolute (the origin URL).
    fn local_url(&self, url: &Url, kind: UriKind) -> Option<String>;
}

impl<F> UriMapper for F
where
    F: Fn(&Url, UriKind) -> Option<String>,
{
    fn local_url(&self, url: &Url, kind: UriKind) -> Option<String> {
        self(url, kind)
    }
}

/// The agent's standard mapper: proxies the resources of allowed origins in the
/// [mirror form](crate::mirror), and nothing else.
///
/// * Playlists, segments, init sections and parts of an allowed origin: proxied.
/// * Keys: proxied only with [`MirrorMapper::proxy_keys`] (default off: keys are made
///   absolute, so the player fetches them from the origin and they never touch the agent).
/// * Session data, steering manifests and other URIs: never proxied (made absolute).
pub struct MirrorMapper<A> {
    allow: A,
    proxy_keys: bool,
}

impl<A> std::fmt::Debug for MirrorMapper<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MirrorMapper")
            .field("proxy_keys", &self.proxy_keys)
            .finish_non_exhaustive()
    }
}

impl<A: Fn(&Url) -> bool> MirrorMapper<A> {
    /// A mapper that proxies the URLs for which `allow` answers `true` (the `origin.allow`
    /// check: scheme, host and port).
    pub fn new(allow: A) -> Self {
        MirrorMapper {
            allow,
            proxy_keys: false,
        }
    }

    /// Also proxy `EXT-X-KEY` / `EXT-X-SESSION-KEY` URIs of allowed origins.
    pub fn proxy_keys(mut self, yes: bool) -> Self {
        self.proxy_keys = yes;
        self
    }
}

impl<A: Fn(&Url) -> bool> UriMapper for MirrorMapper<A> {
    fn local_url(&self, url: &Url, kind: UriKind) -> Option<String> {
        let proxied = match kind {
            UriKind::Playlist | UriKind::Segment | UriKind::InitSegment | UriKind::Part => true,
            UriKind::Key => self.proxy_keys,
            UriKind::SessionData | UriKind::Steering | UriKind::Other => false,
        };
        if proxied && (self.allow)(url) {
            to_mirror_path(url)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_mapper_kinds_and_allow_list() {
        let m = MirrorMapper::new(|u: &Url| u.host_str() == Some("cdn.example"));
        let ok = Url::parse("https://cdn.example/a/b.ts?x=1").unwrap();
        let other = Url::parse("https://evil.example/a/b.ts").unwrap();
        for kind in [
            UriKind::Playlist,
            UriKind::Segment,
            UriKind::InitSegment,
            UriKind::Part,
        ] {
            assert_eq!(
                m.local_url(&ok, kind).as_deref(),
                Some("/https/cdn.example/a/b.ts?x=1")
            );
            assert_eq!(m.local_url(&other, kind), None);
        }
        for kind in [
            UriKind::Key,
            UriKind::SessionData,
            UriKind::Steering,
            UriKind::Other,
        ] {
            assert_eq!(m.local_url(&ok, kind), None);
        }
        let m = m.proxy_keys(true);
        assert_eq!(
            m.local_url(&ok, UriKind::Key).as_deref(),
            Some("/https/cdn.example/a/b.ts?x=1")
        );
        assert_eq!(m.local_url(&other, UriKind::Key), None);
        assert!(format!("{m:?}").contains("proxy_keys: true"));
    }

    #[test]
    fn closures_are_mappers() {
        let f = |u: &Url, k: UriKind| (k == UriKind::Segment).then(|| format!("/s{}", u.path()));
        let url = Url::parse("http://h/x.ts").unwrap();
        assert_eq!(
            f.local_url(&url, UriKind::Segment).as_deref(),
            Some("/s/x.ts")
        );
        assert_eq!(f.local_url(&url, UriKind::Key), None);
    }
}
