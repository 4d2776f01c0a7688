//! What the agent learns from a playlist: the typed result of [`crate::playlist::parse`] and
//! [`crate::playlist::rewrite`].
//!
//! The information always describes the **origin** playlist, also when the rewrite dropped
//! lines from the player's copy (low-latency degrade mode, stripped content steering).

use std::sync::Arc;

use url::Url;

use super::vars::Variables;

/// A parsed playlist: multivariant (RFC 8216 §4.3.4) or media (§4.3.3).
///
/// A playlist is multivariant when it has any of `EXT-X-STREAM-INF`,
/// `EXT-X-I-FRAME-STREAM-INF`, `EXT-X-MEDIA`, `EXT-X-SESSION-DATA`, `EXT-X-SESSION-KEY` or
/// `EXT-X-CONTENT-STEERING`; otherwise it is a media playlist. The URL is never looked at.
#[derive(Debug, Clone, PartialEq)]
pub enum PlaylistInfo {
    /// A multivariant ("master") playlist.
    Multivariant(MultivariantInfo),
    /// A media playlist.
    Media(MediaInfo),
}

impl PlaylistInfo {
    /// The media playlist information, if this is one.
    pub fn as_media(&self) -> Option<&MediaInfo> {
        match self {
            PlaylistInfo::Media(m) => Some(m),
            PlaylistInfo::Multivariant(_) => None,
        }
    }

    /// The multivariant playlist information, if this is one.
    pub fn as_multivariant(&self) -> Option<&MultivariantInfo> {
        match self {
            PlaylistInfo::Multivariant(m) => Some(m),
            PlaylistInfo::Media(_) => None,
        }
    }
}

/// What a multivariant playlist refers to.
#[derive(Debug, Clone, PartialEq)]
pub struct MultivariantInfo {
    /// Every media playlist it names, in playlist order.
    pub playlists: Vec<PlaylistRef>,
    /// The variables it defines (`NAME`/`VALUE`, and `QUERYPARAM` evaluated against the origin
    /// URL's query). Pass them as `imports` when parsing its media playlists, which may
    /// `EXT-X-DEFINE:IMPORT` them.
    pub defines: Variables,
    /// The `EXT-X-CONTENT-STEERING` `SERVER-URI`, resolved, if present (also when the rewrite
    /// stripped the tag: the agent, as the origin's client, may steer itself).
    pub content_steering: Option<Url>,
}

/// A media playlist named by a multivariant playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct PlaylistRef {
    /// How it is referenced.
    pub kind: PlaylistKind,
    /// The URI as written in the playlist (variables not substituted).
    pub uri: String,
    /// The absolute origin URL (variables substituted, resolved against the playlist URL).
    pub url: Url,
}

/// How a multivariant playlist references a media playlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaylistKind {
    /// The URI line after `EXT-X-STREAM-INF`.
    Variant {
        /// The `BANDWIDTH` attribute, if present and valid.
        bandwidth: Option<u64>,
    },
    /// `EXT-X-I-FRAME-STREAM-INF`.
    IFrame {
        /// The `BANDWIDTH` attribute, if present and valid.
        bandwidth: Option<u64>,
    },
    /// `EXT-X-MEDIA` with a `URI`.
    Rendition {
        /// `TYPE` (`AUDIO`, `VIDEO`, `SUBTITLES`, ...), as written.
        media_type: String,
        /// `GROUP-ID`.
        group_id: String,
        /// `NAME`.
        name: String,
    },
}

/// `EXT-X-PLAYLIST-TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlaylistType {
    /// `VOD`: the playlist never changes.
    Vod,
    /// `EVENT`: segments are only appended.
    Event,
}

/// `EXT-X-SERVER-CONTROL` (rfc8216bis §4.4.3.8). Defaults: all off.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ServerControl {
    /// `CAN-BLOCK-RELOAD=YES`.
    pub can_block_reload: bool,
    /// `CAN-SKIP-UNTIL` in seconds.
    pub can_skip_until: Option<f64>,
    /// `CAN-SKIP-DATERANGES=YES`.
    pub can_skip_dateranges: bool,
    /// `HOLD-BACK` in seconds.
    pub hold_back: Option<f64>,
    /// `PART-HOLD-BACK` in seconds.
    pub part_hold_back: Option<f64>,
}

/// What a media playlist holds.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaInfo {
    /// `EXT-X-TARGETDURATION` in seconds (required).
    pub target_duration: u64,
    /// `EXT-X-MEDIA-SEQUENCE` (default 0): the sequence number of the first segment **of the
    /// full playlist**. In a delta update, the first listed segment has
    /// `media_sequence + skipped_segments`.
    pub media_sequence: u64,
    /// `EXT-X-DISCONTINUITY-SEQUENCE` (default 0).
    pub discontinuity_sequence: u64,
    /// `EXT-X-ENDLIST` present.
    pub endlist: bool,
    /// `EXT-X-PLAYLIST-TYPE`, if present.
    pub playlist_type: Option<PlaylistType>,
    /// `EXT-X-I-FRAMES-ONLY` present.
    pub i_frames_only: bool,
    /// `EXT-X-PART-INF` `PART-TARGET` in seconds (LL-HLS).
    pub part_target: Option<f64>,
    /// `EXT-X-SERVER-CONTROL`.
    pub server_control: ServerControl,
    /// `EXT-X-SKIP` `SKIPPED-SEGMENTS` (delta updates); 0 without `EXT-X-SKIP`.
    pub skipped_segments: u64,
    /// The media segments, in order.
    pub segments: Vec<SegmentRef>,
    /// The partial segments (`EXT-X-PART`), in order.
    pub parts: Vec<PartRef>,
    /// `EXT-X-PRELOAD-HINT` tags.
    pub preload_hints: Vec<PreloadHint>,
    /// `EXT-X-RENDITION-REPORT` tags.
    pub rendition_reports: Vec<RenditionReport>,
}

impl MediaInfo {
    /// Whether the playlist can still change (no `EXT-X-ENDLIST` and not VOD).
    pub fn is_live(&self) -> bool {
        !self.endlist && self.playlist_type != Some(PlaylistType::Vod)
    }

    /// Whether the playlist carries low-latency tags (parts, preload hints, rendition reports,
    /// `EXT-X-PART-INF` or blocking reload).
    pub fn is_low_latency(&self) -> bool {
        self.part_target.is_some()
            || self.server_control.can_block_reload
            || !self.parts.is_empty()
            || !self.preload_hints.is_empty()
            || !self.rendition_reports.is_empty()
    }
}

/// A sub-range of a resource (`EXT-X-BYTERANGE`, `BYTERANGE=`), with the offset always
/// resolved (RFC 8216 §4.3.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ByteRange {
    /// First byte.
    pub offset: u64,
    /// Number of bytes.
    pub length: u64,
}

impl ByteRange {
    /// One past the last byte (the parser rejects ranges whose end overflows).
    pub fn end(&self) -> u64 {
        self.offset.saturating_add(self.length)
    }
}

/// The digest-sidecar key of a resource: the URI as written in the playlist, plus
/// `@offset-length` for a byte range (DESIGN.md, "Segment integrity").
fn digest_key(uri: &str, range: Option<ByteRange>) -> String {
    match range {
        Some(r) => format!("{uri}@{}-{}", r.offset, r.length),
        None => uri.to_owned(),
    }
}

/// A media initialization section (`EXT-X-MAP`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InitRef {
    /// The URI as written in the playlist (variables not substituted).
    pub uri: String,
    /// The absolute origin URL.
    pub url: Url,
    /// `BYTERANGE`, if any (offset 0 when the attribute has none).
    pub byterange: Option<ByteRange>,
}

impl InitRef {
    /// Key of this init section in the digest sidecar: `uri` or `uri@offset-length`.
    pub fn digest_key(&self) -> String {
        digest_key(&self.uri, self.byterange)
    }
}

/// A media segment.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentRef {
    /// Media sequence number (`EXT-X-MEDIA-SEQUENCE` + skipped segments + index).
    pub seq: u64,
    /// The URI **as written in the origin playlist**: surrounding spaces and tabs trimmed,
    /// `{$variables}` not substituted. This is what a digest sidecar is keyed by, because the
    /// publisher reads the same file without knowing the imported variables or the query the
    /// playlist was fetched with.
    pub uri: String,
    /// The absolute origin URL (variables substituted, resolved against the playlist URL
    /// after redirects).
    pub url: Url,
    /// The byte range, offset resolved.
    pub byterange: Option<ByteRange>,
    /// `EXTINF` duration in seconds.
    pub duration: f64,
    /// An `EXT-X-DISCONTINUITY` precedes this segment.
    pub discontinuity: bool,
    /// `EXT-X-GAP`: the segment is missing; do not fetch or prefetch it.
    pub gap: bool,
    /// The `EXT-X-MAP` in effect (shared between the segments it applies to).
    pub map: Option<Arc<InitRef>>,
    /// An `EXT-X-KEY` with a method other than `NONE` is in effect (for any `KEYFORMAT`).
    pub encrypted: bool,
}

impl SegmentRef {
    /// Key of this segment in the digest sidecar: `uri`, or `uri@offset-length` for a byte
    /// range, e.g. `main.ts@1024-4096`.
    pub fn digest_key(&self) -> String {
        digest_key(&self.uri, self.byterange)
    }
}

/// A partial segment (`EXT-X-PART`, LL-HLS).
#[derive(Debug, Clone, PartialEq)]
pub struct PartRef {
    /// Media sequence number of the segment the part belongs to (the next segment URI line,
    /// or the segment in progress for the trailing parts).
    pub seq: u64,
    /// Index of the part within its segment, from 0.
    pub index: u32,
    /// The URI as written (variables not substituted).
    pub uri: String,
    /// The absolute origin URL.
    pub url: Url,
    /// `BYTERANGE`, offset resolved.
    pub byterange: Option<ByteRange>,
    /// `DURATION` in seconds.
    pub duration: f64,
    /// `INDEPENDENT=YES`.
    pub independent: bool,
    /// `GAP=YES`.
    pub gap: bool,
}

/// `EXT-X-PRELOAD-HINT` `TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HintType {
    /// `PART`: the next partial segment.
    Part,
    /// `MAP`: the next media initialization section.
    Map,
}

/// An `EXT-X-PRELOAD-HINT` (LL-HLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreloadHint {
    /// `TYPE`.
    pub hint_type: HintType,
    /// The URI as written (variables not substituted).
    pub uri: String,
    /// The absolute origin URL.
    pub url: Url,
    /// `BYTERANGE-START` (0 when absent).
    pub start: u64,
    /// `BYTERANGE-LENGTH`; `None` means up to the end of the resource (open-ended).
    pub length: Option<u64>,
}

/// An `EXT-X-RENDITION-REPORT` (LL-HLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenditionReport {
    /// The URI as written (variables not substituted).
    pub uri: String,
    /// The absolute origin URL of the other rendition's media playlist.
    pub url: Url,
    /// `LAST-MSN`.
    pub last_msn: Option<u64>,
    /// `LAST-PART`.
    pub last_part: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_keys() {
        let url = Url::parse("https://o.example/a/main.ts").unwrap();
        let mut seg = SegmentRef {
            seq: 7,
            uri: "main.ts".into(),
            url: url.clone(),
            byterange: None,
            duration: 2.0,
            discontinuity: false,
            gap: false,
            map: None,
            encrypted: false,
        };
        assert_eq!(seg.digest_key(), "main.ts");
        seg.byterange = Some(ByteRange {
            offset: 1024,
            length: 4096,
        });
        assert_eq!(seg.digest_key(), "main.ts@1024-4096");
        let init = InitRef {
            uri: "init.mp4".into(),
            url,
            byterange: Some(ByteRange {
                offset: 0,
                length: 720,
            }),
        };
        assert_eq!(init.digest_key(), "init.mp4@0-720");
        assert_eq!(
            ByteRange {
                offset: u64::MAX,
                length: 2
            }
            .end(),
            u64::MAX
        );
    }
}
