//! A small typed reader for the HLS playlists the test toolkit itself needs to understand:
//! media playlists (to loop a source segment set, and for the paced player) and
//! multivariant playlists (to pick a variant, and to find the renditions to package).
//!
//! This is *not* the agent's rewriter (which must keep every byte, see `reference/hls.md`);
//! it reads the semantics that the toolkit needs and ignores every other tag. Malformed input
//! gives a [`PlaylistError`] with the line number, never a panic.
//!
//! Handled: `#EXTM3U` (a leading UTF-8 BOM is tolerated), LF and CRLF, `EXTINF`,
//! `EXT-X-TARGETDURATION`, `EXT-X-MEDIA-SEQUENCE`, `EXT-X-DISCONTINUITY-SEQUENCE`,
//! `EXT-X-DISCONTINUITY`, `EXT-X-PROGRAM-DATE-TIME`, `EXT-X-BYTERANGE` (explicit and implicit
//! offsets), `EXT-X-MAP`, `EXT-X-KEY`, `EXT-X-ENDLIST`, `EXT-X-PLAYLIST-TYPE`,
//! `EXT-X-INDEPENDENT-SEGMENTS`, `EXT-X-VERSION`, `EXT-X-STREAM-INF` and `EXT-X-MEDIA`.

use thiserror::Error;

/// Why a playlist could not be read.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PlaylistError {
    /// The first line is not `#EXTM3U`.
    #[error("playlist does not start with #EXTM3U")]
    MissingHeader,
    /// A tag has a value that cannot be parsed.
    #[error("line {line}: invalid {tag} value {value:?}: {reason}")]
    InvalidValue {
        /// 1-based line number.
        line: usize,
        /// The tag name, e.g. `EXTINF`.
        tag: String,
        /// The offending value.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An attribute list (`NAME=VALUE,...`) is malformed.
    #[error("line {line}: malformed attribute list: {reason}")]
    Attributes {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A URI line in a media playlist has no `#EXTINF` before it.
    #[error("line {line}: URI line without a preceding #EXTINF")]
    UriWithoutExtinf {
        /// 1-based line number.
        line: usize,
    },
    /// `#EXT-X-STREAM-INF` is not followed by a URI line.
    #[error("line {line}: #EXT-X-STREAM-INF is not followed by a URI line")]
    StreamInfWithoutUri {
        /// 1-based line number of the tag.
        line: usize,
    },
    /// `#EXTINF` (or other segment tags) at the end of the file with no URI line.
    #[error("line {line}: segment tags at the end of the playlist without a URI line")]
    DanglingSegment {
        /// 1-based line number of the `#EXTINF`.
        line: usize,
    },
    /// A byte range without an offset that does not follow a range of the same resource.
    #[error("line {line}: EXT-X-BYTERANGE without offset must follow a byte range of the same URI")]
    ImplicitOffset {
        /// 1-based line number of the URI line.
        line: usize,
    },
    /// A media playlist without `#EXT-X-TARGETDURATION`.
    #[error("media playlist has no #EXT-X-TARGETDURATION")]
    MissingTargetDuration,
    /// The playlist has both variant and segment lines.
    #[error("playlist mixes multivariant tags and media segments")]
    Mixed,
}

/// A parsed playlist: either kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Playlist {
    /// A media playlist (segments).
    Media(MediaPlaylist),
    /// A multivariant ("master") playlist (variants and renditions).
    Multivariant(MultivariantPlaylist),
}

/// A media playlist.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MediaPlaylist {
    /// `EXT-X-VERSION`, if present.
    pub version: Option<u32>,
    /// `EXT-X-TARGETDURATION` in seconds.
    pub target_duration: u64,
    /// `EXT-X-MEDIA-SEQUENCE` (0 when absent).
    pub media_sequence: u64,
    /// `EXT-X-DISCONTINUITY-SEQUENCE` (0 when absent).
    pub discontinuity_sequence: u64,
    /// `EXT-X-PLAYLIST-TYPE` (`VOD` / `EVENT`), if present.
    pub playlist_type: Option<String>,
    /// `EXT-X-INDEPENDENT-SEGMENTS` present.
    pub independent_segments: bool,
    /// `EXT-X-ENDLIST` present.
    pub endlist: bool,
    /// The segments, in order.
    pub segments: Vec<MediaSegment>,
}

impl MediaPlaylist {
    /// Sum of the segment durations in seconds.
    pub fn total_duration(&self) -> f64 {
        self.segments.iter().map(|s| s.duration).sum()
    }

    /// Media sequence number of the last segment, if any.
    pub fn last_sequence(&self) -> Option<u64> {
        self.segments.last().map(|s| s.sequence)
    }
}

/// One media segment.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaSegment {
    /// Media sequence number.
    pub sequence: u64,
    /// The URI exactly as written in the playlist.
    pub uri: String,
    /// `EXTINF` duration in seconds.
    pub duration: f64,
    /// `EXT-X-BYTERANGE`, with the implicit offset resolved.
    pub byte_range: Option<ByteRange>,
    /// An `EXT-X-DISCONTINUITY` tag precedes this segment.
    pub discontinuity: bool,
    /// Discontinuity sequence number of this segment.
    pub discontinuity_sequence: u64,
    /// `EXT-X-PROGRAM-DATE-TIME` value, as written.
    pub program_date_time: Option<String>,
    /// The `EXT-X-MAP` in force for this segment.
    pub map: Option<InitSection>,
    /// The `EXT-X-KEY` in force for this segment (absent or `METHOD=NONE` means clear).
    pub key: Option<Key>,
}

/// A byte range of a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// Length in bytes.
    pub length: u64,
    /// Offset of the first byte.
    pub offset: u64,
}

impl ByteRange {
    /// The HTTP `Range` header value for this range (`bytes=o-(o+n-1)`).
    pub fn http_range(&self) -> String {
        let last = self.offset + self.length.saturating_sub(1);
        format!("bytes={}-{}", self.offset, last)
    }
}

/// An `EXT-X-MAP` (initialization section).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitSection {
    /// The URI as written.
    pub uri: String,
    /// The optional `BYTERANGE` attribute.
    pub byte_range: Option<ByteRange>,
}

/// An `EXT-X-KEY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// `METHOD` (`NONE`, `AES-128`, `SAMPLE-AES`, ...).
    pub method: String,
    /// `URI`, if present.
    pub uri: Option<String>,
    /// `IV`, if present, as written.
    pub iv: Option<String>,
}

/// A multivariant playlist.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MultivariantPlaylist {
    /// `EXT-X-STREAM-INF` entries in order.
    pub variants: Vec<Variant>,
    /// `EXT-X-MEDIA` entries in order.
    pub renditions: Vec<Rendition>,
}

impl MultivariantPlaylist {
    /// Every media playlist URI referenced (renditions with a URI first, then variants), in
    /// order of appearance and without duplicates.
    pub fn media_playlist_uris(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let rendition_uris = self.renditions.iter().filter_map(|r| r.uri.clone());
        for uri in rendition_uris.chain(self.variants.iter().map(|v| v.uri.clone())) {
            if !out.contains(&uri) {
                out.push(uri);
            }
        }
        out
    }
}

/// One `EXT-X-STREAM-INF` variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    /// The URI line after the tag.
    pub uri: String,
    /// `BANDWIDTH` (0 when absent or malformed).
    pub bandwidth: u64,
    /// `RESOLUTION`, as written.
    pub resolution: Option<String>,
    /// `CODECS`.
    pub codecs: Option<String>,
    /// `AUDIO` group id.
    pub audio: Option<String>,
    /// `SUBTITLES` group id.
    pub subtitles: Option<String>,
}

/// One `EXT-X-MEDIA` rendition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendition {
    /// `TYPE` (`AUDIO`, `VIDEO`, `SUBTITLES`, `CLOSED-CAPTIONS`).
    pub kind: String,
    /// `GROUP-ID`.
    pub group_id: String,
    /// `NAME`.
    pub name: String,
    /// `URI`, if present.
    pub uri: Option<String>,
    /// `DEFAULT=YES`.
    pub default: bool,
    /// `LANGUAGE`.
    pub language: Option<String>,
}

/// Parses an attribute list (`NAME=VALUE,NAME="quoted, value"`) into (name, value) pairs,
/// with quotes removed from quoted values. Order is kept.
pub fn parse_attributes(input: &str, line: usize) -> Result<Vec<(String, String)>, PlaylistError> {
    let err = |reason| PlaylistError::Attributes { line, reason };
    let mut out = Vec::new();
    let mut rest = input.trim();
    while !rest.is_empty() {
        let eq = rest.find('=').ok_or(err("attribute without '='"))?;
        let name = rest[..eq].trim();
        if name.is_empty() {
            return Err(err("empty attribute name"));
        }
        let after = &rest[eq + 1..];
        let (value, remainder) = if let Some(quoted) = after.strip_prefix('"') {
            let close = quoted.find('"').ok_or(err("unterminated quoted string"))?;
            let value = &quoted[..close];
            let tail = quoted[close + 1..].trim_start();
            let tail = match tail.strip_prefix(',') {
                Some(t) => t,
                None if tail.is_empty() => tail,
                None => return Err(err("garbage after quoted string")),
            };
            (value, tail)
        } else {
            match after.find(',') {
                Some(comma) => (&after[..comma], &after[comma + 1..]),
                None => (after, ""),
            }
        };
        out.push((name.to_string(), value.trim().to_string()));
        rest = remainder.trim_start();
    }
    Ok(out)
}

fn attr<'a>(attrs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn parse_u64(line: usize, tag: &str, value: &str) -> Result<u64, PlaylistError> {
    value
        .trim()
        .parse::<u64>()
        .map_err(|_| PlaylistError::InvalidValue {
            line,
            tag: tag.to_string(),
            value: value.to_string(),
            reason: "not a non-negative integer",
        })
}

/// Parses `n[@o]`; returns (length, optional offset).
fn parse_byterange(
    line: usize,
    tag: &str,
    value: &str,
) -> Result<(u64, Option<u64>), PlaylistError> {
    let value = value.trim();
    match value.split_once('@') {
        Some((n, o)) => Ok((parse_u64(line, tag, n)?, Some(parse_u64(line, tag, o)?))),
        None => Ok((parse_u64(line, tag, value)?, None)),
    }
}

/// Per-segment tags seen since the last URI line.
#[derive(Default)]
struct Pending {
    extinf_line: Option<usize>,
    duration: Option<f64>,
    byte_range: Option<(u64, Option<u64>)>,
    discontinuity: bool,
    program_date_time: Option<String>,
}

/// Parses a playlist of either kind.
pub fn parse(text: &str) -> Result<Playlist, PlaylistError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.lines().map(|l| l.trim_end_matches('\r')).enumerate();
    match lines.next() {
        Some((_, first)) if first.trim_end() == "#EXTM3U" => {}
        _ => return Err(PlaylistError::MissingHeader),
    }

    let mut media = MediaPlaylist::default();
    let mut target_duration: Option<u64> = None;
    let mut multi = MultivariantPlaylist::default();
    let mut pending = Pending::default();
    let mut pending_stream_inf: Option<(usize, Vec<(String, String)>)> = None;
    let mut map: Option<InitSection> = None;
    let mut key: Option<Key> = None;
    // (uri, end offset) of the previous byte-range segment, for implicit offsets.
    let mut prev_range_end: Option<(String, u64)> = None;
    let mut discontinuities: u64 = 0;

    for (idx, raw) in lines {
        let line_no = idx + 1;
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if let Some((uri_line, attrs)) = pending_stream_inf.take() {
            if line.starts_with('#') {
                return Err(PlaylistError::StreamInfWithoutUri { line: uri_line });
            }
            multi.variants.push(Variant {
                uri: line.to_string(),
                bandwidth: attr(&attrs, "BANDWIDTH")
                    .and_then(|b| b.parse().ok())
                    .unwrap_or(0),
                resolution: attr(&attrs, "RESOLUTION").map(str::to_string),
                codecs: attr(&attrs, "CODECS").map(str::to_string),
                audio: attr(&attrs, "AUDIO").map(str::to_string),
                subtitles: attr(&attrs, "SUBTITLES").map(str::to_string),
            });
            continue;
        }
        if let Some(tag_line) = line.strip_prefix('#') {
            if !tag_line.starts_with("EXT") {
                continue; // comment
            }
            let (tag, value) = match tag_line.split_once(':') {
                Some((t, v)) => (t, v),
                None => (tag_line, ""),
            };
            match tag {
                "EXTINF" => {
                    let dur = value.split(',').next().unwrap_or("").trim();
                    let d: f64 = dur.parse().map_err(|_| PlaylistError::InvalidValue {
                        line: line_no,
                        tag: tag.to_string(),
                        value: value.to_string(),
                        reason: "not a decimal duration",
                    })?;
                    if !d.is_finite() || d < 0.0 {
                        return Err(PlaylistError::InvalidValue {
                            line: line_no,
                            tag: tag.to_string(),
                            value: value.to_string(),
                            reason: "duration must be finite and non-negative",
                        });
                    }
                    pending.duration = Some(d);
                    pending.extinf_line = Some(line_no);
                }
                "EXT-X-TARGETDURATION" => target_duration = Some(parse_u64(line_no, tag, value)?),
                "EXT-X-MEDIA-SEQUENCE" => media.media_sequence = parse_u64(line_no, tag, value)?,
                "EXT-X-DISCONTINUITY-SEQUENCE" => {
                    media.discontinuity_sequence = parse_u64(line_no, tag, value)?;
                    discontinuities = media.discontinuity_sequence;
                }
                "EXT-X-VERSION" => {
                    let v = parse_u64(line_no, tag, value)?;
                    media.version = u32::try_from(v).ok();
                }
                "EXT-X-PLAYLIST-TYPE" => media.playlist_type = Some(value.trim().to_string()),
                "EXT-X-INDEPENDENT-SEGMENTS" => media.independent_segments = true,
                "EXT-X-ENDLIST" => media.endlist = true,
                "EXT-X-DISCONTINUITY" => pending.discontinuity = true,
                "EXT-X-PROGRAM-DATE-TIME" => {
                    pending.program_date_time = Some(value.trim().to_string());
                }
                "EXT-X-BYTERANGE" => {
                    pending.byte_range = Some(parse_byterange(line_no, tag, value)?)
                }
                "EXT-X-MAP" => {
                    let attrs = parse_attributes(value, line_no)?;
                    let uri = attr(&attrs, "URI").ok_or(PlaylistError::InvalidValue {
                        line: line_no,
                        tag: tag.to_string(),
                        value: value.to_string(),
                        reason: "missing URI attribute",
                    })?;
                    let byte_range = match attr(&attrs, "BYTERANGE") {
                        Some(br) => {
                            let (length, offset) = parse_byterange(line_no, tag, br)?;
                            Some(ByteRange {
                                length,
                                offset: offset.unwrap_or(0),
                            })
                        }
                        None => None,
                    };
                    map = Some(InitSection {
                        uri: uri.to_string(),
                        byte_range,
                    });
                }
                "EXT-X-KEY" => {
                    let attrs = parse_attributes(value, line_no)?;
                    let method = attr(&attrs, "METHOD").ok_or(PlaylistError::InvalidValue {
                        line: line_no,
                        tag: tag.to_string(),
                        value: value.to_string(),
                        reason: "missing METHOD attribute",
                    })?;
                    key = if method == "NONE" {
                        None
                    } else {
                        Some(Key {
                            method: method.to_string(),
                            uri: attr(&attrs, "URI").map(str::to_string),
                            iv: attr(&attrs, "IV").map(str::to_string),
                        })
                    };
                }
                "EXT-X-STREAM-INF" => {
                    let attrs = parse_attributes(value, line_no)?;
                    pending_stream_inf = Some((line_no, attrs));
                }
                "EXT-X-MEDIA" => {
                    let attrs = parse_attributes(value, line_no)?;
                    let required = |name: &str| {
                        attr(&attrs, name)
                            .map(str::to_string)
                            .ok_or(PlaylistError::InvalidValue {
                                line: line_no,
                                tag: tag.to_string(),
                                value: value.to_string(),
                                reason: "missing TYPE, GROUP-ID or NAME attribute",
                            })
                    };
                    multi.renditions.push(Rendition {
                        kind: required("TYPE")?,
                        group_id: required("GROUP-ID")?,
                        name: required("NAME")?,
                        uri: attr(&attrs, "URI").map(str::to_string),
                        default: attr(&attrs, "DEFAULT") == Some("YES"),
                        language: attr(&attrs, "LANGUAGE").map(str::to_string),
                    });
                }
                _ => {}
            }
            continue;
        }
        // A URI line in a media playlist.
        let Some(duration) = pending.duration else {
            return Err(PlaylistError::UriWithoutExtinf { line: line_no });
        };
        let byte_range = match pending.byte_range {
            None => {
                prev_range_end = None;
                None
            }
            Some((length, offset)) => {
                let offset = match offset {
                    Some(o) => o,
                    None => match &prev_range_end {
                        Some((uri, end)) if uri == line => *end,
                        _ => return Err(PlaylistError::ImplicitOffset { line: line_no }),
                    },
                };
                prev_range_end = Some((line.to_string(), offset.saturating_add(length)));
                Some(ByteRange { length, offset })
            }
        };
        if pending.discontinuity {
            discontinuities += 1;
        }
        let sequence = media.media_sequence + media.segments.len() as u64;
        media.segments.push(MediaSegment {
            sequence,
            uri: line.to_string(),
            duration,
            byte_range,
            discontinuity: pending.discontinuity,
            discontinuity_sequence: discontinuities,
            program_date_time: pending.program_date_time.take(),
            map: map.clone(),
            key: key.clone(),
        });
        pending = Pending::default();
    }

    if let Some((line, _)) = pending_stream_inf {
        return Err(PlaylistError::StreamInfWithoutUri { line });
    }
    if let Some(line) = pending.extinf_line {
        return Err(PlaylistError::DanglingSegment { line });
    }
    let is_multi = !multi.variants.is_empty() || !multi.renditions.is_empty();
    if is_multi {
        if !media.segments.is_empty() {
            return Err(PlaylistError::Mixed);
        }
        return Ok(Playlist::Multivariant(multi));
    }
    media.target_duration = target_duration.ok_or(PlaylistError::MissingTargetDuration)?;
    Ok(Playlist::Media(media))
}

/// Parses a playlist that must be a media playlist.
pub fn parse_media(text: &str) -> Result<MediaPlaylist, PlaylistError> {
    match parse(text)? {
        Playlist::Media(m) => Ok(m),
        Playlist::Multivariant(_) => Err(PlaylistError::Mixed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIVE: &str = "#EXTM3U\r\n#EXT-X-VERSION:3\r\n#EXT-X-TARGETDURATION:2\r\n\
#EXT-X-MEDIA-SEQUENCE:41\r\n#EXT-X-DISCONTINUITY-SEQUENCE:2\r\n\
#EXTINF:2.000000,\r\n#EXT-X-PROGRAM-DATE-TIME:2024-01-01T00:00:00.000Z\r\nseg_00041.ts\r\n\
# a comment\r\n#EXT-X-DISCONTINUITY\r\n#EXTINF:1.5,\r\nseg_00042.ts\r\n";

    #[test]
    fn parses_live_media_playlist() {
        let m = parse_media(LIVE).expect("parse");
        assert_eq!(m.target_duration, 2);
        assert_eq!(m.media_sequence, 41);
        assert!(!m.endlist);
        assert_eq!(m.segments.len(), 2);
        assert_eq!(m.segments[0].sequence, 41);
        assert_eq!(m.segments[0].discontinuity_sequence, 2);
        assert_eq!(
            m.segments[0].program_date_time.as_deref(),
            Some("2024-01-01T00:00:00.000Z")
        );
        assert_eq!(m.segments[1].uri, "seg_00042.ts");
        assert!(m.segments[1].discontinuity);
        assert_eq!(m.segments[1].discontinuity_sequence, 3);
        assert!((m.total_duration() - 3.5).abs() < 1e-9);
        assert_eq!(m.last_sequence(), Some(42));
    }

    #[test]
    fn resolves_implicit_byterange_offsets_and_map() {
        let text = "\u{feff}#EXTM3U\n#EXT-X-TARGETDURATION:2\n\
#EXT-X-MAP:URI=\"media.mp4\",BYTERANGE=\"100@0\"\n\
#EXTINF:2,\n#EXT-X-BYTERANGE:500@100\nmedia.mp4\n\
#EXTINF:2,\n#EXT-X-BYTERANGE:300\nmedia.mp4\n#EXT-X-ENDLIST\n";
        let m = parse_media(text).expect("parse");
        assert!(m.endlist);
        let r0 = m.segments[0].byte_range.expect("range");
        let r1 = m.segments[1].byte_range.expect("range");
        assert_eq!((r0.offset, r0.length), (100, 500));
        assert_eq!((r1.offset, r1.length), (600, 300));
        assert_eq!(r1.http_range(), "bytes=600-899");
        let map = m.segments[1].map.as_ref().expect("map");
        assert_eq!(map.uri, "media.mp4");
        assert_eq!(
            map.byte_range,
            Some(ByteRange {
                length: 100,
                offset: 0
            })
        );
    }

    #[test]
    fn parses_key_and_none_resets_it() {
        let text = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n\
#EXT-X-KEY:METHOD=AES-128,URI=\"enc.key\",IV=0x01\n#EXTINF:2,\na.ts\n\
#EXT-X-KEY:METHOD=NONE\n#EXTINF:2,\nb.ts\n";
        let m = parse_media(text).expect("parse");
        let k = m.segments[0].key.as_ref().expect("key");
        assert_eq!(k.method, "AES-128");
        assert_eq!(k.uri.as_deref(), Some("enc.key"));
        assert_eq!(k.iv.as_deref(), Some("0x01"));
        assert!(m.segments[1].key.is_none());
    }

    #[test]
    fn parses_multivariant_with_quoted_commas() {
        let text = "#EXTM3U\n\
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"en, main\",DEFAULT=YES,URI=\"audio/index.m3u8\"\n\
#EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,GROUP-ID=\"cc\",NAME=\"cc1\",INSTREAM-ID=\"CC1\"\n\
#EXT-X-STREAM-INF:BANDWIDTH=730400,RESOLUTION=640x360,CODECS=\"avc1.64001e,mp4a.40.2\",AUDIO=\"aud\"\n\
360p/index.m3u8\n\n\
#EXT-X-STREAM-INF:BANDWIDTH=400400\n240p/index.m3u8\n";
        let Playlist::Multivariant(m) = parse(text).expect("parse") else {
            panic!("expected multivariant");
        };
        assert_eq!(m.variants.len(), 2);
        assert_eq!(
            m.variants[0].codecs.as_deref(),
            Some("avc1.64001e,mp4a.40.2")
        );
        assert_eq!(m.variants[0].bandwidth, 730_400);
        assert_eq!(m.renditions[0].name, "en, main");
        assert!(m.renditions[0].default);
        assert_eq!(m.renditions[1].uri, None);
        assert_eq!(
            m.media_playlist_uris(),
            vec!["audio/index.m3u8", "360p/index.m3u8", "240p/index.m3u8"]
        );
    }

    #[test]
    fn rejects_malformed_input_with_typed_errors() {
        assert_eq!(parse("not a playlist"), Err(PlaylistError::MissingHeader));
        assert_eq!(parse(""), Err(PlaylistError::MissingHeader));
        assert_eq!(
            parse("#EXTM3U\n#EXT-X-TARGETDURATION:2\nseg.ts\n"),
            Err(PlaylistError::UriWithoutExtinf { line: 3 })
        );
        assert!(matches!(
            parse("#EXTM3U\n#EXT-X-TARGETDURATION:x\n"),
            Err(PlaylistError::InvalidValue { line: 2, .. })
        ));
        assert!(matches!(
            parse("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:abc,\na.ts\n"),
            Err(PlaylistError::InvalidValue { line: 3, .. })
        ));
        assert!(matches!(
            parse("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:-1,\na.ts\n"),
            Err(PlaylistError::InvalidValue { line: 3, .. })
        ));
        assert!(matches!(
            parse("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:NaN,\na.ts\n"),
            Err(PlaylistError::InvalidValue { line: 3, .. })
        ));
        assert_eq!(
            parse("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n"),
            Err(PlaylistError::DanglingSegment { line: 3 })
        );
        assert_eq!(
            parse("#EXTM3U\n#EXTINF:2,\na.ts\n"),
            Err(PlaylistError::MissingTargetDuration)
        );
        assert_eq!(
            parse("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n#EXT-X-ENDLIST\n"),
            Err(PlaylistError::StreamInfWithoutUri { line: 2 })
        );
        assert_eq!(
            parse("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n"),
            Err(PlaylistError::StreamInfWithoutUri { line: 2 })
        );
        assert_eq!(
            parse("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n#EXT-X-BYTERANGE:10\na.ts\n"),
            Err(PlaylistError::ImplicitOffset { line: 5 })
        );
        assert!(matches!(
            parse("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n#EXT-X-BYTERANGE:1@z\na.ts\n"),
            Err(PlaylistError::InvalidValue { line: 4, .. })
        ));
        assert_eq!(
            parse(
                "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\na.ts\n\
#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n"
            ),
            Err(PlaylistError::Mixed)
        );
        assert!(matches!(
            parse("#EXTM3U\n#EXT-X-MAP:BYTERANGE=\"1@0\"\n"),
            Err(PlaylistError::InvalidValue { line: 2, .. })
        ));
        assert!(matches!(
            parse("#EXTM3U\n#EXT-X-KEY:URI=\"k\"\n"),
            Err(PlaylistError::InvalidValue { line: 2, .. })
        ));
        assert!(matches!(
            parse("#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,URI=\"a.m3u8\"\n"),
            Err(PlaylistError::InvalidValue { line: 2, .. })
        ));
        assert!(parse_media("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n").is_err());
    }

    #[test]
    fn attribute_list_errors() {
        assert_eq!(
            parse_attributes("URI=\"abc", 7),
            Err(PlaylistError::Attributes {
                line: 7,
                reason: "unterminated quoted string"
            })
        );
        assert!(parse_attributes("NOEQUALS", 1).is_err());
        assert!(parse_attributes("=x", 1).is_err());
        assert!(parse_attributes("A=\"x\"y", 1).is_err());
        let ok = parse_attributes("A=1, B=\"x,y\" ,C=z", 1).expect("parse");
        assert_eq!(
            ok,
            vec![
                ("A".to_string(), "1".to_string()),
                ("B".to_string(), "x,y".to_string()),
                ("C".to_string(), "z".to_string())
            ]
        );
    }
}
