//! HLS playlist rewriting for the local endpoint, and playlist parsing for the agent.
//!
//! # Design
//!
//! The rewriter is **line-oriented**: it never parses into a tree and re-serializes. It walks
//! the lines once, reads the tags it needs with a zero-allocation attribute tokenizer, and
//! replaces exactly the bytes of the URIs it changes. Every other byte is copied as it was:
//! unknown tags, comments, blank lines, CRLF or LF per line, a missing final newline, a UTF-8
//! BOM, attribute order and spacing, `EXT-X-MEDIA-SEQUENCE` (never renumbered: without an
//! `IV`, the AES-128 IV is the sequence number). The output is built lazily (untouched runs are
//! copied in one slice), so nothing is allocated per line; only segment metadata for
//! [`PlaylistInfo`] allocates.
//!
//! Every URI-bearing place of RFC 8216 / rfc8216bis is handled: segment URI lines,
//! `EXT-X-MAP`, `EXT-X-KEY` and `EXT-X-SESSION-KEY` (one mapper call each, so a key named by
//! both maps identically), `EXT-X-MEDIA`, the URI line after `EXT-X-STREAM-INF`,
//! `EXT-X-I-FRAME-STREAM-INF`, `EXT-X-PART`, `EXT-X-PRELOAD-HINT`, `EXT-X-RENDITION-REPORT`,
//! `EXT-X-SESSION-DATA`, `EXT-X-CONTENT-STEERING` `SERVER-URI` (stripped by default: the agent
//! is the origin's client), `EXT-X-DATERANGE` `X-ASSET-URI` / `X-ASSET-LIST`, and the
//! `URI="..."` attribute of unknown tags.
//!
//! For each URI: `{$variables}` are substituted (`EXT-X-DEFINE` `NAME`/`VALUE`, `IMPORT` from
//! the caller's `imports`, `QUERYPARAM` from the **origin** playlist URL's query), then the
//! URI is resolved against the origin playlist URL **after redirects** (the base URL's query
//! is not inherited, RFC 3986). Only `http`, `https` and relative URIs are considered;
//! `skd:`, `data:`, `urn:` and other schemes are left untouched. The [`UriMapper`] then
//! decides:
//!
//! * `Some(local)`, proxied: if the URI was relative (and had no variables), and resolving
//!   the original bytes against the player's URL gives the same URL as resolving `local`,
//!   the original bytes are kept (the usual case with the [mirror form](crate::mirror):
//!   `seg.ts` stays `seg.ts`). Otherwise `local` is written: after a redirect to another host
//!   or path, for root-relative `/x.ts`, network-path `//host/x.ts`, `../` climbing above the
//!   mirror prefix, and for absolute URIs.
//! * `None`, not proxied: the URI is written as the absolute origin URL, unless it already is
//!   an absolute `http(s)://` URI (then kept byte for byte). Keys are not proxied by the
//!   standard [`MirrorMapper`].
//!
//! Low-latency HLS is passed through by default (parts, preload hints and rendition reports
//! rewritten like everything else). With [`RewriteOptions::degrade_low_latency`] the player
//! gets an ordinary playlist: `EXT-X-PART`, `EXT-X-PRELOAD-HINT`, `EXT-X-RENDITION-REPORT` and
//! `EXT-X-PART-INF` are dropped, and `CAN-BLOCK-RELOAD`, `CAN-SKIP-UNTIL`,
//! `CAN-SKIP-DATERANGES` and `PART-HOLD-BACK` are removed from `EXT-X-SERVER-CONTROL` (the tag
//! goes if nothing is left). See [`is_low_latency_request`] for the request side.
//!
//! # Strictness
//!
//! Input is network data: nothing panics, everything malformed that the agent relies on is a
//! [`PlaylistError`] whose `Display` is a one-line reason for a 502. The parser is strict
//! about what the agent uses (header, `EXTINF` before each segment, numeric values of the
//! sequence, duration and byte-range tags, attribute syntax of URI-bearing tags, variables,
//! implicit byte-range offsets, one `EXT-X-MEDIA-SEQUENCE`), and tolerant of the rest (unknown
//! tags, `EXT-X-VERSION`, spaces around attributes, media tags in a multivariant playlist).
//!
//! This module does no I/O and reads no clock.

mod attr;
mod engine;
mod error;
mod hold_back;
mod info;
mod lines;
mod low_latency;
mod mapper;
mod vars;

#[cfg(test)]
mod tests;

use url::Url;

pub use error::{AttributeSyntax, PlaylistError};
pub use hold_back::{HoldBack, HoldBackSkip, MIN_KEPT as HOLD_BACK_MIN_KEPT};
pub use info::{
    ByteRange, HintType, InitRef, MediaInfo, MultivariantInfo, PartRef, PlaylistInfo, PlaylistKind,
    PlaylistRef, PlaylistType, PreloadHint, RenditionReport, SegmentRef, ServerControl,
};
pub use low_latency::{
    LOW_LATENCY_DIRECTIVES, is_low_latency_request, without_low_latency_directives,
};
pub use mapper::{MirrorMapper, UriKind, UriMapper};
pub use vars::Variables;

/// Size limits applied before and while parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted body, in bytes. Default 16 MiB.
    pub max_bytes: usize,
    /// Largest accepted number of lines (the `#EXTM3U` line included). Default 1,000,000.
    pub max_lines: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 16 * 1024 * 1024,
            max_lines: 1_000_000,
        }
    }
}

/// How [`rewrite`] treats optional features.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RewriteOptions {
    /// Strip LL-HLS tags and attributes so players see ordinary HLS (default `false`:
    /// pass them through, rewritten).
    pub degrade_low_latency: bool,
    /// Remove `EXT-X-CONTENT-STEERING` (default `true`: the agent, not the player, is the
    /// origin's client; steering with the player would send it around the agent).
    pub strip_content_steering: bool,
    /// Live media playlists: withhold this many of the newest segments from the player
    /// (default 0). See [`HoldBack`] and the `hold_back` module.
    pub live_hold_back: usize,
    /// Size limits.
    pub limits: Limits,
}

impl Default for RewriteOptions {
    fn default() -> Self {
        RewriteOptions {
            degrade_low_latency: false,
            strip_content_steering: true,
            live_hold_back: 0,
            limits: Limits::default(),
        }
    }
}

/// A rewritten playlist and what it describes.
#[derive(Debug, Clone, PartialEq)]
pub struct Rewritten {
    /// The playlist to serve to the player.
    pub body: Vec<u8>,
    /// The origin playlist's information (as [`parse`] gives it): every segment, withheld
    /// ones included.
    pub info: PlaylistInfo,
    /// What [`RewriteOptions::live_hold_back`] did.
    pub hold_back: HoldBack,
}

/// Rewrites a playlist for the player, and parses it.
///
/// * `origin_url`: the final URL of the origin playlist, **after redirects** (the base for
///   relative URIs and the query for `QUERYPARAM`).
/// * `local_url`: the URL the player requested at the agent, e.g.
///   `http://127.0.0.1:8585/https/cdn.example/live/index.m3u8?x=1` (decides which relative
///   URIs can be kept byte for byte).
/// * `imports`: the variables of the multivariant playlist this media playlist came from
///   ([`MultivariantInfo::defines`]), for `EXT-X-DEFINE:IMPORT`; empty otherwise.
pub fn rewrite(
    body: &[u8],
    origin_url: &Url,
    local_url: &Url,
    imports: &Variables,
    opts: &RewriteOptions,
    mapper: &dyn UriMapper,
) -> Result<Rewritten, PlaylistError> {
    let ctx = engine::RewriteCtx {
        local_url,
        opts,
        mapper,
    };
    let (info, out) = engine::run(body, origin_url, imports, &opts.limits, Some(ctx))?;
    // `run` always produces a body when given a rewrite context.
    let mut body = out.unwrap_or_else(|| body.to_vec());
    let hold_back = match &info {
        PlaylistInfo::Media(m) => {
            hold_back::apply(&mut body, m, opts.live_hold_back, opts.degrade_low_latency)
        }
        PlaylistInfo::Multivariant(_) => HoldBack::Off,
    };
    Ok(Rewritten {
        body,
        info,
        hold_back,
    })
}

/// Parses a playlist without rewriting it (same semantics and errors as [`rewrite`]); the
/// agent uses it to follow live playlists itself.
pub fn parse(
    body: &[u8],
    origin_url: &Url,
    imports: &Variables,
    limits: &Limits,
) -> Result<PlaylistInfo, PlaylistError> {
    engine::run(body, origin_url, imports, limits, None).map(|(info, _)| info)
}
