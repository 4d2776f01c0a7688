//! The single-pass line state machine behind [`crate::playlist::parse`] and
//! [`crate::playlist::rewrite`].
//!
//! Each line is classified (blank, comment, tag, URI). Tags the agent needs are read with the
//! zero-allocation attribute tokenizer; every URI-bearing place goes through
//! [`Parser::process_uri`], which substitutes variables, resolves the URI against the origin
//! playlist URL, and, when rewriting, records an edit of exactly the URI's bytes. The output
//! is built lazily: untouched bytes are copied in one slice up to the next edit, so nothing is
//! allocated per line and every byte outside an edit is kept (BOM, terminators, spacing,
//! unknown tags, comments).

use std::borrow::Cow;
use std::sync::Arc;

use url::Url;

use super::attr::{Attr, attrs};
use super::error::{AttributeSyntax, PlaylistError, snippet};
use super::info::{
    ByteRange, HintType, InitRef, MediaInfo, MultivariantInfo, PartRef, PlaylistInfo, PlaylistKind,
    PlaylistRef, PlaylistType, PreloadHint, RenditionReport, SegmentRef, ServerControl,
};
use super::lines::{Line, Lines};
use super::mapper::{UriKind, UriMapper};
use super::vars::{Variables, is_valid_name, substitute};
use super::{Limits, RewriteOptions};

/// UTF-8 byte order mark.
const BOM: &str = "\u{feff}";

/// `EXT-X-SERVER-CONTROL` attributes removed in low-latency degrade mode.
const LL_SERVER_CONTROL: [&str; 4] = [
    "CAN-BLOCK-RELOAD",
    "CAN-SKIP-UNTIL",
    "CAN-SKIP-DATERANGES",
    "PART-HOLD-BACK",
];

/// What [`run`] needs to rewrite (absent: parse only).
pub(crate) struct RewriteCtx<'a> {
    /// The URL the player requested at the agent.
    pub local_url: &'a Url,
    /// Rewrite options.
    pub opts: &'a RewriteOptions,
    /// Which URIs are proxied where.
    pub mapper: &'a dyn UriMapper,
}

/// Parses `body`, and rewrites it when `ctx` is given.
pub(crate) fn run<'a>(
    body: &'a [u8],
    origin: &'a Url,
    imports: &'a Variables,
    limits: &Limits,
    ctx: Option<RewriteCtx<'a>>,
) -> Result<(PlaylistInfo, Option<Vec<u8>>), PlaylistError> {
    if body.len() > limits.max_bytes {
        return Err(PlaylistError::TooLarge {
            size: body.len(),
            limit: limits.max_bytes,
        });
    }
    let text = std::str::from_utf8(body).map_err(|e| PlaylistError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let start = if text.starts_with(BOM) { BOM.len() } else { 0 };
    let mut lines = Lines::new(text, start);
    match lines.next() {
        Some(first) if first.text.trim_end_matches([' ', '\t']) == "#EXTM3U" => {}
        _ => return Err(PlaylistError::MissingHeader),
    }
    let out = ctx.map(|c| {
        let path = c.local_url.path();
        let local_dir = path.rfind('/').map_or("/", |i| &path[..=i]);
        Output {
            local_url: c.local_url,
            local_dir,
            degrade: c.opts.degrade_low_latency,
            strip_steering: c.opts.strip_content_steering,
            mapper: c.mapper,
            buf: Vec::with_capacity(body.len() + body.len() / 4 + 64),
            copied: 0,
        }
    });
    let mut p = Parser::new(text, origin, imports, out);
    for line in lines {
        if line.no > limits.max_lines {
            return Err(PlaylistError::TooManyLines {
                limit: limits.max_lines,
            });
        }
        p.line(line)?;
    }
    p.finish()
}

/// The rewritten body under construction.
struct Output<'a> {
    local_url: &'a Url,
    /// `local_url`'s path up to and including its last `/`.
    local_dir: &'a str,
    degrade: bool,
    strip_steering: bool,
    mapper: &'a dyn UriMapper,
    buf: Vec<u8>,
    /// Bytes of the body before this offset are already in `buf` (or deliberately dropped).
    copied: usize,
}

impl Output<'_> {
    /// Replaces `body[start..end]` with `with`. Edits come in increasing offset order.
    fn replace(&mut self, body: &str, start: usize, end: usize, with: &str) {
        if start < self.copied || end < start {
            // Cannot happen: edits are made in line order, within a line in attribute order.
            debug_assert!(
                false,
                "out-of-order edit {start}..{end} after {}",
                self.copied
            );
            return;
        }
        if let Some(kept) = body.as_bytes().get(self.copied..start) {
            self.buf.extend_from_slice(kept);
        }
        self.buf.extend_from_slice(with.as_bytes());
        self.copied = end;
    }

    /// Drops a whole line, terminator included.
    fn drop_line(&mut self, body: &str, line: &Line<'_>) {
        self.replace(body, line.start, line.next, "");
    }

    fn finish(mut self, body: &str) -> Vec<u8> {
        if let Some(rest) = body.as_bytes().get(self.copied..) {
            self.buf.extend_from_slice(rest);
        }
        self.buf
    }

    /// Whether `raw` (a relative reference) resolved against the local playlist URL gives the
    /// same URL as `local` resolved against it. `None` if `local` does not resolve.
    fn same_target(&self, raw: &str, local: &str, local_clean: bool) -> Option<bool> {
        if local_clean && is_simple_relative(raw) {
            // Fast path, no URL parsing: both resolve to origin + path, where raw's path is
            // local_dir + raw and nothing needs normalizing or escaping.
            let dir = self.local_dir;
            return Some(
                local.len() == dir.len() + raw.len()
                    && local.starts_with(dir)
                    && local.ends_with(raw),
            );
        }
        let target = self.local_url.join(local).ok()?;
        Some(self.local_url.join(raw).is_ok_and(|u| u == target))
    }
}

/// Bytes the `url` crate keeps as they are in a path or query: RFC 3986 unreserved and
/// sub-delims other than `'`, plus `:@/?`. A reference made only of these serializes
/// unchanged. `%` is excluded (`%2e` may be a dot segment).
static PLAIN: [bool; 256] = plain_table();

const fn plain_table() -> [bool; 256] {
    const EXTRA: &[u8] = b"-._~!$&()*+,;=:@/?";
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = (i as u8).is_ascii_alphanumeric();
        i += 1;
    }
    let mut j = 0;
    while j < EXTRA.len() {
        t[EXTRA[j] as usize] = true;
        j += 1;
    }
    t
}

/// Every byte is [`PLAIN`] and the path part (before `?`) has no `.` or `..` segment.
fn is_plain_without_dot_segments(s: &[u8]) -> bool {
    if !s.iter().all(|&b| PLAIN[usize::from(b)]) {
        return false;
    }
    let path = s.iter().position(|&b| b == b'?').map_or(s, |i| &s[..i]);
    // Dots are rare (mostly file extensions): only look at those that start a segment.
    !path.iter().enumerate().any(|(i, &b)| {
        b == b'.'
            && (i == 0 || path.get(i - 1) == Some(&b'/'))
            && match path.get(i + 1) {
                None | Some(b'/') => true,
                Some(b'.') => matches!(path.get(i + 2), None | Some(b'/')),
                Some(_) => false,
            }
    })
}

/// A path-relative reference (`seg.ts`, `a/b.ts?x=1`) that resolves by plain concatenation.
fn is_simple_relative(raw: &str) -> bool {
    let b = raw.as_bytes();
    match b.first() {
        None | Some(b'/') | Some(b'?') => false,
        Some(_) => is_plain_without_dot_segments(b),
    }
}

/// An absolute path (`/https/host/x.ts?q`) that resolves by plain concatenation.
fn is_clean_absolute_path(local: &str) -> bool {
    let b = local.as_bytes();
    b.first() == Some(&b'/') && b.get(1) != Some(&b'/') && is_plain_without_dot_segments(b)
}

/// The scheme of a URI reference, by RFC 3986 §3.1 syntax.
enum Scheme {
    /// No scheme: a relative reference.
    Relative,
    /// `http:` or `https:` (any case).
    Http,
    /// Any other scheme (`skd:`, `data:`, `urn:` ...): never touched.
    Other,
}

fn scheme_of(s: &str) -> Scheme {
    let b = s.as_bytes();
    let Some(colon) = b
        .iter()
        .position(|&c| matches!(c, b':' | b'/' | b'?' | b'#'))
    else {
        return Scheme::Relative;
    };
    if b[colon] != b':' || colon == 0 || !b[0].is_ascii_alphabetic() {
        return Scheme::Relative;
    }
    let name = &b[..colon];
    if !name
        .iter()
        .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
    {
        return Scheme::Relative;
    }
    if name.eq_ignore_ascii_case(b"http") || name.eq_ignore_ascii_case(b"https") {
        Scheme::Http
    } else {
        Scheme::Other
    }
}

/// Starts with `http://` or `https://` (any case): absolute with an authority, so a player
/// resolves it the same against any base.
fn is_absolute_http(s: &str) -> bool {
    let b = s.as_bytes();
    let lower_starts = |p: &[u8]| b.len() >= p.len() && b[..p.len()].eq_ignore_ascii_case(p);
    lower_starts(b"http://") || lower_starts(b"https://")
}

/// Whether the mapper's local URL can be written into a playlist as it is.
fn is_writable_local(local: &str) -> bool {
    let b = local.as_bytes();
    !matches!(b.first(), None | Some(b'#' | b' ' | b'\t'))
        && !b.iter().any(|&c| matches!(c, b'"' | b'\r' | b'\n'))
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `s` without leading spaces and tabs.
fn trim_blank_start(s: &str) -> &str {
    let n = s.bytes().take_while(|&b| is_blank(b)).count();
    s.get(n..).unwrap_or_default()
}

/// `s` without leading and trailing spaces and tabs.
fn trim_blank(s: &str) -> &str {
    let s = trim_blank_start(s);
    let n = s.bytes().rev().take_while(|&b| is_blank(b)).count();
    s.get(..s.len() - n).unwrap_or_default()
}

/// Byte position of the first `c` (an ASCII byte) in `s`.
fn find_byte(s: &str, c: u8) -> Option<usize> {
    s.bytes().position(|b| b == c)
}

fn parse_u64(s: &str) -> Option<u64> {
    let t = trim_blank(s);
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

/// A non-negative finite decimal.
fn parse_duration(s: &str) -> Option<f64> {
    let t = trim_blank(s);
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    t.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// `n[@o]`.
fn parse_byterange(s: &str) -> Option<(u64, Option<u64>)> {
    let t = trim_blank(s);
    match t.split_once('@') {
        Some((n, o)) => Some((parse_u64(n)?, Some(parse_u64(o)?))),
        None => Some((parse_u64(t)?, None)),
    }
}

fn invalid(line: usize, what: &'static str, value: &str) -> PlaylistError {
    PlaylistError::InvalidValue {
        line,
        what,
        value: snippet(value),
    }
}

fn missing(line: usize, tag: &'static str, attribute: &'static str) -> PlaylistError {
    PlaylistError::MissingAttribute {
        line,
        tag,
        attribute,
    }
}

fn no_url(line: usize, uri: &str) -> PlaylistError {
    PlaylistError::InvalidUri {
        line,
        uri: snippet(uri),
        reason: "not a resolvable URL".to_owned(),
    }
}

/// The first occurrence of each of `names` in an attribute list. A second occurrence of a
/// name listed in `uri_names` is an error (which one would the player use?).
fn collect<'v, const N: usize>(
    value: &'v str,
    names: [&str; N],
    uri_names: &[&str],
    line: usize,
    tag: &'static str,
) -> Result<[Option<Attr<'v>>; N], PlaylistError> {
    let mut found: [Option<Attr<'v>>; N] = [None; N];
    for a in attrs(value) {
        let a = a.map_err(|reason| PlaylistError::BadAttributes { line, tag, reason })?;
        if let Some(i) = names.iter().position(|n| *n == a.name)
            && let Some(slot) = found.get_mut(i)
        {
            if slot.is_none() {
                *slot = Some(a);
            } else if uri_names.contains(&a.name) {
                return Err(PlaylistError::BadAttributes {
                    line,
                    tag,
                    reason: AttributeSyntax::DuplicateUri,
                });
            }
        }
    }
    Ok(found)
}

/// A tag value kept for the end, when the playlist's kind is known.
#[derive(Clone, Copy)]
struct Deferred<'a> {
    line: usize,
    value: &'a str,
}

/// Tags seen since the last segment URI line.
#[derive(Default)]
struct Pending {
    duration: Option<f64>,
    byterange: Option<(usize, u64, Option<u64>)>,
    discontinuity: bool,
    gap: bool,
}

struct Parser<'a> {
    body: &'a str,
    origin: &'a Url,
    imports: &'a Variables,
    vars: Variables,
    out: Option<Output<'a>>,

    first_multivariant: Option<usize>,
    first_media: Option<usize>,

    // Multivariant.
    playlists: Vec<PlaylistRef>,
    pending_stream_inf: Option<(usize, Option<u64>)>,
    steering: Option<Url>,

    // Media.
    target_duration: Option<Deferred<'a>>,
    media_sequence: Option<Deferred<'a>>,
    discontinuity_sequence: Option<Deferred<'a>>,
    playlist_type: Option<Deferred<'a>>,
    duplicate: Option<(usize, &'static str)>,
    endlist: bool,
    i_frames_only: bool,
    part_target: Option<f64>,
    server_control: ServerControl,
    skipped: Option<u64>,
    pending: Pending,
    map: Option<Arc<InitRef>>,
    /// (KEYFORMAT, encrypted) of the `EXT-X-KEY`s in effect.
    keys: Vec<(&'a str, bool)>,
    segments: Vec<SegmentRef>,
    parts: Vec<PartRef>,
    parts_in_segment: u32,
    hints: Vec<PreloadHint>,
    reports: Vec<RenditionReport>,
}

impl<'a> Parser<'a> {
    fn new(
        body: &'a str,
        origin: &'a Url,
        imports: &'a Variables,
        out: Option<Output<'a>>,
    ) -> Self {
        Parser {
            body,
            origin,
            imports,
            vars: Variables::new(),
            out,
            first_multivariant: None,
            first_media: None,
            playlists: Vec::new(),
            pending_stream_inf: None,
            steering: None,
            target_duration: None,
            media_sequence: None,
            discontinuity_sequence: None,
            playlist_type: None,
            duplicate: None,
            endlist: false,
            i_frames_only: false,
            part_target: None,
            server_control: ServerControl::default(),
            skipped: None,
            pending: Pending::default(),
            map: None,
            keys: Vec::new(),
            segments: Vec::new(),
            parts: Vec::new(),
            parts_in_segment: 0,
            hints: Vec::new(),
            reports: Vec::new(),
        }
    }

    fn degrade(&self) -> bool {
        self.out.as_ref().is_some_and(|o| o.degrade)
    }

    fn drop_line(&mut self, line: &Line<'_>) {
        if let Some(out) = self.out.as_mut() {
            out.drop_line(self.body, line);
        }
    }

    fn mark_multivariant(&mut self, line: usize) -> Result<(), PlaylistError> {
        if self.first_media.is_some() {
            return Err(PlaylistError::MixedPlaylist { line });
        }
        self.first_multivariant.get_or_insert(line);
        Ok(())
    }

    fn mark_media(&mut self, line: usize) -> Result<(), PlaylistError> {
        if self.first_multivariant.is_some() {
            return Err(PlaylistError::MixedPlaylist { line });
        }
        self.first_media.get_or_insert(line);
        Ok(())
    }

    fn defer(
        &mut self,
        slot: fn(&mut Self) -> &mut Option<Deferred<'a>>,
        line: usize,
        tag: &'static str,
        value: &'a str,
    ) {
        let s = slot(self);
        if s.is_some() {
            self.duplicate.get_or_insert((line, tag));
        } else {
            *s = Some(Deferred { line, value });
        }
    }

    fn line(&mut self, line: Line<'a>) -> Result<(), PlaylistError> {
        let trimmed = trim_blank(line.text);
        if trimmed.is_empty() {
            return Ok(());
        }
        if !trimmed.starts_with('#') {
            return self.uri_line(&line, trimmed);
        }
        if !trimmed.starts_with("#EXT") {
            return Ok(()); // comment
        }
        let lead = line.text.len() - trim_blank_start(line.text).len();
        let (name, value, value_abs) = match find_byte(trimmed, b':') {
            Some(i) => (&trimmed[1..i], &trimmed[i + 1..], line.start + lead + i + 1),
            None => (&trimmed[1..], "", line.start + lead + trimmed.len()),
        };
        self.tag(&line, name, value, value_abs)
    }

    fn tag(
        &mut self,
        line: &Line<'a>,
        name: &'a str,
        value: &'a str,
        value_abs: usize,
    ) -> Result<(), PlaylistError> {
        let no = line.no;
        match name {
            "EXTM3U" => {}
            "EXTINF" => {
                self.mark_media(no)?;
                let d = find_byte(value, b',').map_or(value, |i| &value[..i]);
                let d = parse_duration(d).ok_or_else(|| invalid(no, "EXTINF duration", value))?;
                self.pending.duration = Some(d);
            }
            "EXT-X-BYTERANGE" => {
                let (n, o) =
                    parse_byterange(value).ok_or_else(|| invalid(no, "EXT-X-BYTERANGE", value))?;
                self.pending.byterange = Some((no, n, o));
            }
            "EXT-X-DISCONTINUITY" => self.pending.discontinuity = true,
            "EXT-X-GAP" => self.pending.gap = true,
            "EXT-X-ENDLIST" => self.endlist = true,
            "EXT-X-I-FRAMES-ONLY" => self.i_frames_only = true,
            "EXT-X-TARGETDURATION" => self.defer(
                |p| &mut p.target_duration,
                no,
                "EXT-X-TARGETDURATION",
                value,
            ),
            "EXT-X-MEDIA-SEQUENCE" => {
                self.before_segments(no, "EXT-X-MEDIA-SEQUENCE")?;
                self.defer(|p| &mut p.media_sequence, no, "EXT-X-MEDIA-SEQUENCE", value);
            }
            "EXT-X-DISCONTINUITY-SEQUENCE" => {
                self.before_segments(no, "EXT-X-DISCONTINUITY-SEQUENCE")?;
                self.defer(
                    |p| &mut p.discontinuity_sequence,
                    no,
                    "EXT-X-DISCONTINUITY-SEQUENCE",
                    value,
                );
            }
            "EXT-X-PLAYLIST-TYPE" => {
                self.defer(|p| &mut p.playlist_type, no, "EXT-X-PLAYLIST-TYPE", value)
            }
            "EXT-X-DEFINE" => self.define(no, value)?,
            "EXT-X-KEY" => self.key(line, value, value_abs, false)?,
            "EXT-X-SESSION-KEY" => {
                self.mark_multivariant(no)?;
                self.key(line, value, value_abs, true)?;
            }
            "EXT-X-MAP" => self.map_tag(line, value, value_abs)?,
            "EXT-X-PART" => self.part(line, value, value_abs)?,
            "EXT-X-PRELOAD-HINT" => self.preload_hint(line, value, value_abs)?,
            "EXT-X-RENDITION-REPORT" => self.rendition_report(line, value, value_abs)?,
            "EXT-X-PART-INF" => {
                let tag = "EXT-X-PART-INF";
                let [t] = collect(value, ["PART-TARGET"], &[], no, tag)?;
                let t = t.ok_or_else(|| missing(no, tag, "PART-TARGET"))?;
                let v = parse_duration(t.value)
                    .ok_or_else(|| invalid(no, "EXT-X-PART-INF PART-TARGET", t.value))?;
                self.part_target = Some(v);
                if self.degrade() {
                    self.drop_line(line);
                }
            }
            "EXT-X-SERVER-CONTROL" => self.server_control(line, value, value_abs)?,
            "EXT-X-SKIP" => {
                let tag = "EXT-X-SKIP";
                self.before_segments(no, tag)?;
                if self.skipped.is_some() {
                    return Err(PlaylistError::DuplicateTag { line: no, tag });
                }
                let [n] = collect(value, ["SKIPPED-SEGMENTS"], &[], no, tag)?;
                let n = n.ok_or_else(|| missing(no, tag, "SKIPPED-SEGMENTS"))?;
                let n = parse_u64(n.value)
                    .ok_or_else(|| invalid(no, "EXT-X-SKIP SKIPPED-SEGMENTS", n.value))?;
                self.skipped = Some(n);
            }
            "EXT-X-STREAM-INF" => {
                let tag = "EXT-X-STREAM-INF";
                self.mark_multivariant(no)?;
                if let Some((prev, _)) = self.pending_stream_inf {
                    return Err(PlaylistError::StreamInfWithoutUri { line: prev });
                }
                let [bw] = collect(value, ["BANDWIDTH"], &[], no, tag)?;
                self.pending_stream_inf = Some((no, bw.and_then(|a| parse_u64(a.value))));
            }
            "EXT-X-I-FRAME-STREAM-INF" => {
                let tag = "EXT-X-I-FRAME-STREAM-INF";
                self.mark_multivariant(no)?;
                let [uri, bw] = collect(value, ["URI", "BANDWIDTH"], &["URI"], no, tag)?;
                let uri = uri.ok_or_else(|| missing(no, tag, "URI"))?;
                let url = self.uri_attr(no, tag, value_abs, uri, UriKind::Playlist, true)?;
                let url = url.ok_or_else(|| no_url(no, uri.value))?;
                self.playlists.push(PlaylistRef {
                    kind: PlaylistKind::IFrame {
                        bandwidth: bw.and_then(|a| parse_u64(a.value)),
                    },
                    uri: uri.value.to_owned(),
                    url,
                });
            }
            "EXT-X-MEDIA" => {
                let tag = "EXT-X-MEDIA";
                self.mark_multivariant(no)?;
                let [uri, ty, group, name] = collect(
                    value,
                    ["URI", "TYPE", "GROUP-ID", "NAME"],
                    &["URI"],
                    no,
                    tag,
                )?;
                if let Some(uri) = uri {
                    let url = self.uri_attr(no, tag, value_abs, uri, UriKind::Playlist, true)?;
                    let url = url.ok_or_else(|| no_url(no, uri.value))?;
                    let text =
                        |a: Option<Attr<'_>>| a.map_or(String::new(), |a| a.value.to_owned());
                    self.playlists.push(PlaylistRef {
                        kind: PlaylistKind::Rendition {
                            media_type: text(ty),
                            group_id: text(group),
                            name: text(name),
                        },
                        uri: uri.value.to_owned(),
                        url,
                    });
                }
            }
            "EXT-X-SESSION-DATA" => {
                let tag = "EXT-X-SESSION-DATA";
                self.mark_multivariant(no)?;
                let [uri] = collect(value, ["URI"], &["URI"], no, tag)?;
                if let Some(uri) = uri {
                    self.uri_attr(no, tag, value_abs, uri, UriKind::SessionData, true)?;
                }
            }
            "EXT-X-CONTENT-STEERING" => {
                let tag = "EXT-X-CONTENT-STEERING";
                self.mark_multivariant(no)?;
                let [uri] = collect(value, ["SERVER-URI"], &["SERVER-URI"], no, tag)?;
                let uri = uri.ok_or_else(|| missing(no, tag, "SERVER-URI"))?;
                let strip = self.out.as_ref().is_some_and(|o| o.strip_steering);
                let url = self.uri_attr(no, tag, value_abs, uri, UriKind::Steering, !strip)?;
                self.steering = url;
                if strip {
                    self.drop_line(line);
                }
            }
            "EXT-X-DATERANGE" => {
                if value.contains("X-ASSET-") {
                    self.uri_attrs_in_order(
                        no,
                        "EXT-X-DATERANGE",
                        value,
                        value_abs,
                        &["X-ASSET-URI", "X-ASSET-LIST"],
                        true,
                    )?;
                }
            }
            _ => {
                // A tag the rewriter does not know: if it has a URI="..." attribute in a
                // well-formed attribute list, make that URI absolute (or whatever the mapper
                // says for `Other`). Anything else passes through untouched.
                if value.contains("URI=\"") && attrs(value).all(|a| a.is_ok()) {
                    self.uri_attrs_in_order(no, "unknown tag", value, value_abs, &["URI"], false)?;
                }
            }
        }
        Ok(())
    }

    fn before_segments(&self, line: usize, tag: &'static str) -> Result<(), PlaylistError> {
        if self.segments.is_empty() {
            Ok(())
        } else {
            Err(PlaylistError::TagAfterFirstSegment { line, tag })
        }
    }

    /// Processes every attribute named in `names`, in attribute order (several may be
    /// rewritten in one line). With `strict`, attribute syntax errors and unquoted URIs are
    /// errors; otherwise unquoted values are left alone.
    fn uri_attrs_in_order(
        &mut self,
        no: usize,
        tag: &'static str,
        value: &'a str,
        value_abs: usize,
        names: &[&str],
        strict: bool,
    ) -> Result<(), PlaylistError> {
        for a in attrs(value) {
            let a = a.map_err(|reason| PlaylistError::BadAttributes {
                line: no,
                tag,
                reason,
            })?;
            if names.contains(&a.name) && (strict || a.quoted) {
                self.uri_attr(no, tag, value_abs, a, UriKind::Other, true)?;
            }
        }
        Ok(())
    }

    fn uri_attr(
        &mut self,
        no: usize,
        tag: &'static str,
        value_abs: usize,
        a: Attr<'a>,
        kind: UriKind,
        rewrite: bool,
    ) -> Result<Option<Url>, PlaylistError> {
        if !a.quoted {
            return Err(PlaylistError::BadAttributes {
                line: no,
                tag,
                reason: AttributeSyntax::UnquotedUri,
            });
        }
        self.process_uri(
            no,
            value_abs + a.value_start,
            value_abs + a.value_end(),
            a.value,
            kind,
            rewrite,
        )
    }

    /// Substitutes, resolves and (when rewriting and `rewrite`) rewrites one URI occupying
    /// `body[start..end]`. Returns the absolute URL; `None` only for a URI with a non-HTTP
    /// scheme that does not parse as a URL (left untouched).
    fn process_uri(
        &mut self,
        no: usize,
        start: usize,
        end: usize,
        raw: &'a str,
        kind: UriKind,
        rewrite: bool,
    ) -> Result<Option<Url>, PlaylistError> {
        let sub = substitute(raw, &self.vars).map_err(|name| PlaylistError::UndefinedVariable {
            line: no,
            name: snippet(name),
        })?;
        let substituted = matches!(sub, Cow::Owned(_));
        let s: &str = &sub;
        match scheme_of(s) {
            // skd:, data:, urn: ... are never rewritten.
            Scheme::Other => return Ok(self.origin.join(s).ok()),
            Scheme::Http | Scheme::Relative => {}
        }
        if s.is_empty() {
            return Err(PlaylistError::InvalidUri {
                line: no,
                uri: String::new(),
                reason: "empty URI".to_owned(),
            });
        }
        let url = self.origin.join(s).map_err(|e| PlaylistError::InvalidUri {
            line: no,
            uri: snippet(s),
            reason: e.to_string(),
        })?;
        if !rewrite {
            return Ok(Some(url));
        }
        let body = self.body;
        let Some(out) = self.out.as_mut() else {
            return Ok(Some(url));
        };
        let absolute = is_absolute_http(s);
        match out.mapper.local_url(&url, kind) {
            Some(mut local) => {
                // Only a relative URI without variables can be kept as written.
                let candidate = !substituted && !absolute;
                let mut clean = candidate && is_clean_absolute_path(&local);
                if !clean && !is_writable_local(&local) {
                    return Err(PlaylistError::InvalidLocalUrl {
                        line: no,
                        local: snippet(&local),
                    });
                }
                if let Some(frag) = url.fragment()
                    && !local.contains('#')
                {
                    local.push('#');
                    local.push_str(frag);
                    clean = false;
                }
                let keep = candidate
                    && out.same_target(raw, &local, clean).ok_or_else(|| {
                        PlaylistError::InvalidLocalUrl {
                            line: no,
                            local: snippet(&local),
                        }
                    })?;
                if !keep {
                    out.replace(body, start, end, &local);
                }
            }
            None => {
                // Not proxied: the player must reach the origin, so the URI must be absolute.
                if substituted || !absolute {
                    out.replace(body, start, end, url.as_str());
                }
            }
        }
        Ok(Some(url))
    }

    fn uri_line(&mut self, line: &Line<'a>, uri: &'a str) -> Result<(), PlaylistError> {
        let no = line.no;
        let lead = line.text.len() - trim_blank_start(line.text).len();
        let start = line.start + lead;
        let end = start + uri.len();
        if let Some((_, bandwidth)) = self.pending_stream_inf.take() {
            let url = self.process_uri(no, start, end, uri, UriKind::Playlist, true)?;
            let url = url.ok_or_else(|| no_url(no, uri))?;
            self.playlists.push(PlaylistRef {
                kind: PlaylistKind::Variant { bandwidth },
                uri: uri.to_owned(),
                url,
            });
            return Ok(());
        }
        self.mark_media(no)?;
        let Some(duration) = self.pending.duration.take() else {
            return Err(PlaylistError::SegmentWithoutExtinf { line: no });
        };
        let url = self.process_uri(no, start, end, uri, UriKind::Segment, true)?;
        let url = url.ok_or_else(|| no_url(no, uri))?;
        let byterange = match self.pending.byterange.take() {
            None => None,
            Some((br_line, length, offset)) => {
                let offset = match offset {
                    Some(o) => o,
                    None => match self.segments.last() {
                        Some(prev) if prev.url == url => match prev.byterange {
                            Some(r) => r.end(),
                            None => {
                                return Err(PlaylistError::ImplicitByteRangeOffset {
                                    line: br_line,
                                    unit: "segment",
                                });
                            }
                        },
                        _ => {
                            return Err(PlaylistError::ImplicitByteRangeOffset {
                                line: br_line,
                                unit: "segment",
                            });
                        }
                    },
                };
                if offset.checked_add(length).is_none() {
                    return Err(PlaylistError::ByteRangeOverflow { line: br_line });
                }
                Some(ByteRange { offset, length })
            }
        };
        let pending = std::mem::take(&mut self.pending);
        self.segments.push(SegmentRef {
            seq: 0, // numbered in finish(), when EXT-X-MEDIA-SEQUENCE is known
            uri: uri.to_owned(),
            url,
            byterange,
            duration,
            discontinuity: pending.discontinuity,
            gap: pending.gap,
            map: self.map.clone(),
            encrypted: self.keys.iter().any(|&(_, enc)| enc),
        });
        self.parts_in_segment = 0;
        Ok(())
    }

    fn define(&mut self, no: usize, value: &'a str) -> Result<(), PlaylistError> {
        let tag = "EXT-X-DEFINE";
        let [name, val, import, query] = collect(
            value,
            ["NAME", "VALUE", "IMPORT", "QUERYPARAM"],
            &[],
            no,
            tag,
        )?;
        let v = |a: Option<Attr<'a>>| a.map(|a| a.value);
        let (var, value): (&str, String) = match (v(name), v(val), v(import), v(query)) {
            (Some(n), Some(val), None, None) => (n, val.to_owned()),
            (Some(_), None, None, None) => {
                return Err(PlaylistError::BadDefine {
                    line: no,
                    reason: "NAME without VALUE",
                });
            }
            (None, None, Some(i), None) => {
                let value = self
                    .imports
                    .get(i)
                    .ok_or_else(|| PlaylistError::MissingImport {
                        line: no,
                        name: snippet(i),
                    })?;
                (i, value.to_owned())
            }
            (None, None, None, Some(q)) => {
                let value = self
                    .origin
                    .query_pairs()
                    .find(|(k, _)| k == q)
                    .map(|(_, v)| v.into_owned())
                    .ok_or_else(|| PlaylistError::MissingQueryParam {
                        line: no,
                        name: snippet(q),
                    })?;
                (q, value)
            }
            (None, _, None, None) => {
                return Err(PlaylistError::BadDefine {
                    line: no,
                    reason: "needs NAME and VALUE, IMPORT or QUERYPARAM",
                });
            }
            _ => {
                return Err(PlaylistError::BadDefine {
                    line: no,
                    reason: "NAME/VALUE, IMPORT and QUERYPARAM are exclusive",
                });
            }
        };
        if !is_valid_name(var) {
            return Err(PlaylistError::BadDefine {
                line: no,
                reason: "variable name is not [A-Za-z0-9_-]+",
            });
        }
        if self.vars.contains(var) {
            return Err(PlaylistError::DuplicateVariable {
                line: no,
                name: snippet(var),
            });
        }
        self.vars.insert(var, value);
        Ok(())
    }

    fn key(
        &mut self,
        line: &Line<'a>,
        value: &'a str,
        value_abs: usize,
        session: bool,
    ) -> Result<(), PlaylistError> {
        let no = line.no;
        let tag = if session {
            "EXT-X-SESSION-KEY"
        } else {
            "EXT-X-KEY"
        };
        let [method, uri, format] =
            collect(value, ["METHOD", "URI", "KEYFORMAT"], &["URI"], no, tag)?;
        let method = method.ok_or_else(|| missing(no, tag, "METHOD"))?;
        let encrypted = trim_blank(method.value) != "NONE";
        if encrypted {
            let uri = uri.ok_or_else(|| missing(no, tag, "URI"))?;
            // The URL itself is not kept: keys are the mapper's business (never shared).
            self.uri_attr(no, tag, value_abs, uri, UriKind::Key, true)?;
        }
        if !session {
            let format = format.map_or("identity", |f| f.value);
            match self.keys.iter_mut().find(|(f, _)| *f == format) {
                Some(entry) => entry.1 = encrypted,
                None => self.keys.push((format, encrypted)),
            }
        }
        Ok(())
    }

    fn map_tag(
        &mut self,
        line: &Line<'a>,
        value: &'a str,
        value_abs: usize,
    ) -> Result<(), PlaylistError> {
        let no = line.no;
        let tag = "EXT-X-MAP";
        let [uri, range] = collect(value, ["URI", "BYTERANGE"], &["URI"], no, tag)?;
        let uri = uri.ok_or_else(|| missing(no, tag, "URI"))?;
        let byterange = match range {
            None => None,
            Some(r) => {
                let (length, offset) = parse_byterange(r.value)
                    .ok_or_else(|| invalid(no, "EXT-X-MAP BYTERANGE", r.value))?;
                let offset = offset.unwrap_or(0);
                if offset.checked_add(length).is_none() {
                    return Err(PlaylistError::ByteRangeOverflow { line: no });
                }
                Some(ByteRange { offset, length })
            }
        };
        let url = self.uri_attr(no, tag, value_abs, uri, UriKind::InitSegment, true)?;
        let url = url.ok_or_else(|| no_url(no, uri.value))?;
        self.map = Some(Arc::new(InitRef {
            uri: uri.value.to_owned(),
            url,
            byterange,
        }));
        Ok(())
    }

    fn part(
        &mut self,
        line: &Line<'a>,
        value: &'a str,
        value_abs: usize,
    ) -> Result<(), PlaylistError> {
        let no = line.no;
        let tag = "EXT-X-PART";
        self.mark_media(no)?;
        let [uri, duration, range, independent, gap] = collect(
            value,
            ["URI", "DURATION", "BYTERANGE", "INDEPENDENT", "GAP"],
            &["URI"],
            no,
            tag,
        )?;
        let uri = uri.ok_or_else(|| missing(no, tag, "URI"))?;
        let duration = duration.ok_or_else(|| missing(no, tag, "DURATION"))?;
        let duration = parse_duration(duration.value)
            .ok_or_else(|| invalid(no, "EXT-X-PART DURATION", duration.value))?;
        let degrade = self.degrade();
        let url = self.uri_attr(no, tag, value_abs, uri, UriKind::Part, !degrade)?;
        let url = url.ok_or_else(|| no_url(no, uri.value))?;
        let byterange = match range {
            None => None,
            Some(r) => {
                let (length, offset) = parse_byterange(r.value)
                    .ok_or_else(|| invalid(no, "EXT-X-PART BYTERANGE", r.value))?;
                let offset = match offset {
                    Some(o) => o,
                    None => match self.parts.last() {
                        Some(PartRef {
                            url: prev_url,
                            byterange: Some(prev),
                            ..
                        }) if *prev_url == url => prev.end(),
                        _ => {
                            return Err(PlaylistError::ImplicitByteRangeOffset {
                                line: no,
                                unit: "part",
                            });
                        }
                    },
                };
                if offset.checked_add(length).is_none() {
                    return Err(PlaylistError::ByteRangeOverflow { line: no });
                }
                Some(ByteRange { offset, length })
            }
        };
        let yes = |a: Option<Attr<'_>>| a.is_some_and(|a| trim_blank(a.value) == "YES");
        self.parts.push(PartRef {
            seq: self.segments.len() as u64, // made absolute in finish()
            index: self.parts_in_segment,
            uri: uri.value.to_owned(),
            url,
            byterange,
            duration,
            independent: yes(independent),
            gap: yes(gap),
        });
        self.parts_in_segment = self.parts_in_segment.saturating_add(1);
        if degrade {
            self.drop_line(line);
        }
        Ok(())
    }

    fn preload_hint(
        &mut self,
        line: &Line<'a>,
        value: &'a str,
        value_abs: usize,
    ) -> Result<(), PlaylistError> {
        let no = line.no;
        let tag = "EXT-X-PRELOAD-HINT";
        let [ty, uri, start, length] = collect(
            value,
            ["TYPE", "URI", "BYTERANGE-START", "BYTERANGE-LENGTH"],
            &["URI"],
            no,
            tag,
        )?;
        let ty = ty.ok_or_else(|| missing(no, tag, "TYPE"))?;
        let (hint_type, kind) = match trim_blank(ty.value) {
            "PART" => (HintType::Part, UriKind::Part),
            "MAP" => (HintType::Map, UriKind::InitSegment),
            other => return Err(invalid(no, "EXT-X-PRELOAD-HINT TYPE", other)),
        };
        let uri = uri.ok_or_else(|| missing(no, tag, "URI"))?;
        let start = match start {
            None => 0,
            Some(a) => parse_u64(a.value)
                .ok_or_else(|| invalid(no, "EXT-X-PRELOAD-HINT BYTERANGE-START", a.value))?,
        };
        let length = match length {
            None => None,
            Some(a) => Some(
                parse_u64(a.value)
                    .ok_or_else(|| invalid(no, "EXT-X-PRELOAD-HINT BYTERANGE-LENGTH", a.value))?,
            ),
        };
        let degrade = self.degrade();
        let url = self.uri_attr(no, tag, value_abs, uri, kind, !degrade)?;
        let url = url.ok_or_else(|| no_url(no, uri.value))?;
        self.hints.push(PreloadHint {
            hint_type,
            uri: uri.value.to_owned(),
            url,
            start,
            length,
        });
        if degrade {
            self.drop_line(line);
        }
        Ok(())
    }

    fn rendition_report(
        &mut self,
        line: &Line<'a>,
        value: &'a str,
        value_abs: usize,
    ) -> Result<(), PlaylistError> {
        let no = line.no;
        let tag = "EXT-X-RENDITION-REPORT";
        let [uri, msn, part] = collect(value, ["URI", "LAST-MSN", "LAST-PART"], &["URI"], no, tag)?;
        let uri = uri.ok_or_else(|| missing(no, tag, "URI"))?;
        let number = |a: Option<Attr<'_>>, what: &'static str| match a {
            None => Ok(None),
            Some(a) => parse_u64(a.value)
                .map(Some)
                .ok_or_else(|| invalid(no, what, a.value)),
        };
        let last_msn = number(msn, "EXT-X-RENDITION-REPORT LAST-MSN")?;
        let last_part = number(part, "EXT-X-RENDITION-REPORT LAST-PART")?;
        let degrade = self.degrade();
        let url = self.uri_attr(no, tag, value_abs, uri, UriKind::Playlist, !degrade)?;
        let url = url.ok_or_else(|| no_url(no, uri.value))?;
        self.reports.push(RenditionReport {
            uri: uri.value.to_owned(),
            url,
            last_msn,
            last_part,
        });
        if degrade {
            self.drop_line(line);
        }
        Ok(())
    }

    fn server_control(
        &mut self,
        line: &Line<'a>,
        value: &'a str,
        value_abs: usize,
    ) -> Result<(), PlaylistError> {
        let no = line.no;
        let tag = "EXT-X-SERVER-CONTROL";
        let degrade = self.degrade();
        let mut sc = ServerControl::default();
        let mut kept = String::new();
        let mut removed = false;
        for a in attrs(value) {
            let a = a.map_err(|reason| PlaylistError::BadAttributes {
                line: no,
                tag,
                reason,
            })?;
            let float = |what: &'static str| {
                parse_duration(a.value).ok_or_else(|| invalid(no, what, a.value))
            };
            match a.name {
                "CAN-BLOCK-RELOAD" => sc.can_block_reload = trim_blank(a.value) == "YES",
                "CAN-SKIP-DATERANGES" => sc.can_skip_dateranges = trim_blank(a.value) == "YES",
                "CAN-SKIP-UNTIL" => {
                    sc.can_skip_until = Some(float("EXT-X-SERVER-CONTROL CAN-SKIP-UNTIL")?)
                }
                "HOLD-BACK" => sc.hold_back = Some(float("EXT-X-SERVER-CONTROL HOLD-BACK")?),
                "PART-HOLD-BACK" => {
                    sc.part_hold_back = Some(float("EXT-X-SERVER-CONTROL PART-HOLD-BACK")?)
                }
                _ => {}
            }
            if degrade {
                if LL_SERVER_CONTROL.contains(&a.name) {
                    removed = true;
                } else if let Some(span) = value.get(a.span_start..a.span_end) {
                    if !kept.is_empty() {
                        kept.push(',');
                    }
                    kept.push_str(span);
                }
            }
        }
        self.server_control = sc;
        if removed {
            if kept.is_empty() {
                self.drop_line(line);
            } else if let Some(out) = self.out.as_mut() {
                out.replace(self.body, value_abs, value_abs + value.len(), &kept);
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<(PlaylistInfo, Option<Vec<u8>>), PlaylistError> {
        if let Some((line, _)) = self.pending_stream_inf {
            return Err(PlaylistError::StreamInfWithoutUri { line });
        }
        let body = self.body;
        let out = self.out.map(|o| o.finish(body));
        if self.first_multivariant.is_some() {
            let info = MultivariantInfo {
                playlists: self.playlists,
                defines: self.vars,
                content_steering: self.steering,
            };
            return Ok((PlaylistInfo::Multivariant(info), out));
        }
        if let Some((line, tag)) = self.duplicate {
            return Err(PlaylistError::DuplicateTag { line, tag });
        }
        let td = self
            .target_duration
            .ok_or(PlaylistError::MissingTargetDuration)?;
        let target_duration = parse_u64(td.value)
            .or_else(|| {
                // Tolerate "10.0"-style values: round up, as the RFC's rounding rule does.
                parse_duration(td.value)
                    .filter(|v| *v <= u32::MAX as f64)
                    .map(|v| v.ceil() as u64)
            })
            .ok_or_else(|| invalid(td.line, "EXT-X-TARGETDURATION", td.value))?;
        let number = |d: Option<Deferred<'_>>, what: &'static str| match d {
            None => Ok(0),
            Some(d) => parse_u64(d.value).ok_or_else(|| invalid(d.line, what, d.value)),
        };
        let media_sequence = number(self.media_sequence, "EXT-X-MEDIA-SEQUENCE")?;
        let discontinuity_sequence =
            number(self.discontinuity_sequence, "EXT-X-DISCONTINUITY-SEQUENCE")?;
        let playlist_type = match self.playlist_type {
            None => None,
            Some(d) => match trim_blank(d.value) {
                "VOD" => Some(PlaylistType::Vod),
                "EVENT" => Some(PlaylistType::Event),
                _ => return Err(invalid(d.line, "EXT-X-PLAYLIST-TYPE", d.value)),
            },
        };
        let skipped = self.skipped.unwrap_or(0);
        let overflow = || {
            let line = self.media_sequence.map_or(0, |d| d.line);
            invalid(line, "EXT-X-MEDIA-SEQUENCE", "(sequence numbers overflow)")
        };
        let base = media_sequence.checked_add(skipped).ok_or_else(overflow)?;
        let count = self.segments.len() as u64;
        base.checked_add(count).ok_or_else(overflow)?;
        let mut segments = self.segments;
        for (seg, i) in segments.iter_mut().zip(0u64..) {
            seg.seq = base + i;
        }
        let mut parts = self.parts;
        for p in &mut parts {
            p.seq += base;
        }
        let info = MediaInfo {
            target_duration,
            media_sequence,
            discontinuity_sequence,
            endlist: self.endlist,
            playlist_type,
            i_frames_only: self.i_frames_only,
            part_target: self.part_target,
            server_control: self.server_control,
            skipped_segments: skipped,
            segments,
            parts,
            preload_hints: self.hints,
            rendition_reports: self.reports,
        };
        Ok((PlaylistInfo::Media(info), out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_detection() {
        assert!(matches!(scheme_of("seg.ts"), Scheme::Relative));
        assert!(matches!(scheme_of("a/b:c"), Scheme::Relative));
        assert!(matches!(scheme_of("1a:b"), Scheme::Relative));
        assert!(matches!(scheme_of("?a:b"), Scheme::Relative));
        assert!(matches!(scheme_of(":x"), Scheme::Relative));
        assert!(matches!(scheme_of("HTTPS://h/x"), Scheme::Http));
        assert!(matches!(scheme_of("http:x"), Scheme::Http));
        assert!(matches!(scheme_of("skd://k"), Scheme::Other));
        assert!(matches!(scheme_of("data:text/plain,x"), Scheme::Other));
        assert!(matches!(scheme_of("urn:uuid:1"), Scheme::Other));
        assert!(is_absolute_http("HTTP://h"));
        assert!(!is_absolute_http("http:x"));
        assert!(!is_absolute_http("//h/x"));
    }

    #[test]
    fn fast_path_predicates() {
        assert!(is_simple_relative("seg.ts"));
        assert!(is_simple_relative("a/b.ts?x=1&y=2"));
        assert!(is_simple_relative("a/b.ts?x=../y"));
        assert!(!is_simple_relative("../x.ts"));
        assert!(!is_simple_relative("./x.ts"));
        assert!(!is_simple_relative("/x.ts"));
        assert!(!is_simple_relative("?q"));
        assert!(!is_simple_relative("a%20b.ts"));
        assert!(!is_simple_relative("a b.ts"));
        assert!(!is_simple_relative("x.ts#f"));
        assert!(!is_simple_relative("x'.ts"));
        assert!(!is_simple_relative(""));
        assert!(is_clean_absolute_path("/https/h/x.ts?q=1"));
        assert!(!is_clean_absolute_path("//h/x.ts"));
        assert!(!is_clean_absolute_path("x.ts"));
        assert!(!is_clean_absolute_path("/a/../x.ts"));
        assert!(!is_clean_absolute_path("/a/%2e/x.ts"));
        for dotted in [
            ".", "..", "./a", "../a", "a/.", "a/..", "a/./b", "a/../b", "a/..?q", "a/.?q",
        ] {
            assert!(
                !is_plain_without_dot_segments(dotted.as_bytes()),
                "{dotted}"
            );
        }
        for plain in [
            "...",
            ".a",
            "a.",
            "..a",
            "a/.b/c",
            "a/b..",
            "a?/../x",
            "a?.",
            "a.ts?x=./",
        ] {
            assert!(is_plain_without_dot_segments(plain.as_bytes()), "{plain}");
        }
        assert!(is_writable_local("/x?a=\u{e9}"));
        assert!(!is_writable_local("\t/x"));
    }

    #[test]
    fn number_parsers() {
        assert_eq!(parse_u64(" 42\t"), Some(42));
        assert_eq!(parse_u64("-1"), None);
        assert_eq!(parse_u64("+1"), None);
        assert_eq!(parse_u64(""), None);
        assert_eq!(parse_u64("99999999999999999999999"), None);
        assert_eq!(parse_duration("4.00008"), Some(4.00008));
        assert_eq!(parse_duration("10"), Some(10.0));
        assert_eq!(parse_duration("-1"), None);
        assert_eq!(parse_duration("NaN"), None);
        assert_eq!(parse_duration("inf"), None);
        assert_eq!(parse_duration("1e3"), None);
        assert_eq!(parse_duration("1.2.3"), None);
        assert_eq!(parse_byterange("10@20"), Some((10, Some(20))));
        assert_eq!(parse_byterange("10"), Some((10, None)));
        assert_eq!(parse_byterange("10@"), None);
        assert_eq!(parse_byterange("@5"), None);
    }
}
