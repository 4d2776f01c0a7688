//! Errors of the playlist parser and rewriter.

/// Why a playlist could not be parsed or rewritten.
///
/// Every `Display` is a single line (values are truncated and escaped), so it can be used
/// as-is as the reason of an HTTP 502 answer or in a log line. Line numbers count from 1 and
/// include the `#EXTM3U` line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PlaylistError {
    /// The body is larger than [`crate::playlist::Limits::max_bytes`].
    #[error("playlist is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        /// Body size in bytes.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The body has more lines than [`crate::playlist::Limits::max_lines`].
    #[error("playlist has more than {limit} lines")]
    TooManyLines {
        /// The configured limit.
        limit: usize,
    },
    /// The body is not valid UTF-8 (RFC 8216 §4.1).
    #[error("playlist is not valid UTF-8 (first bad byte at offset {offset})")]
    NotUtf8 {
        /// Byte offset of the first invalid sequence.
        offset: usize,
    },
    /// The first line (after an optional UTF-8 BOM) is not `#EXTM3U`.
    #[error("playlist does not start with #EXTM3U")]
    MissingHeader,
    /// An `EXT-X-STREAM-INF` tag is not followed by a URI line.
    #[error("line {line}: EXT-X-STREAM-INF is not followed by a URI line")]
    StreamInfWithoutUri {
        /// Line of the tag.
        line: usize,
    },
    /// A media segment URI line has no `EXTINF` tag before it.
    #[error("line {line}: media segment URI without a preceding #EXTINF")]
    SegmentWithoutExtinf {
        /// Line of the URI.
        line: usize,
    },
    /// The attribute list of a tag the rewriter must understand is malformed.
    #[error("line {line}: malformed attribute list in {tag}: {reason}")]
    BadAttributes {
        /// Line of the tag.
        line: usize,
        /// Tag name, without `#`.
        tag: &'static str,
        /// What is wrong.
        reason: AttributeSyntax,
    },
    /// A required attribute is missing.
    #[error("line {line}: {tag} has no {attribute} attribute")]
    MissingAttribute {
        /// Line of the tag.
        line: usize,
        /// Tag name, without `#`.
        tag: &'static str,
        /// Attribute name.
        attribute: &'static str,
    },
    /// A tag or attribute value the agent relies on is malformed.
    #[error("line {line}: invalid {what} value {value:?}")]
    InvalidValue {
        /// Line of the tag.
        line: usize,
        /// Tag (and attribute) name, e.g. `EXT-X-MEDIA-SEQUENCE` or `EXT-X-PART DURATION`.
        what: &'static str,
        /// The offending value (truncated).
        value: String,
    },
    /// A tag that may appear only once appears again.
    #[error("line {line}: {tag} appears more than once")]
    DuplicateTag {
        /// Line of the second occurrence.
        line: usize,
        /// Tag name, without `#`.
        tag: &'static str,
    },
    /// A tag that must precede the first media segment comes after it.
    #[error("line {line}: {tag} must come before the first media segment")]
    TagAfterFirstSegment {
        /// Line of the tag.
        line: usize,
        /// Tag name, without `#`.
        tag: &'static str,
    },
    /// A `{$name}` reference to a variable that no preceding `EXT-X-DEFINE` defines.
    #[error("line {line}: reference to undefined variable {name:?}")]
    UndefinedVariable {
        /// Line of the reference.
        line: usize,
        /// Variable name (truncated).
        name: String,
    },
    /// Two `EXT-X-DEFINE` tags define the same name.
    #[error("line {line}: variable {name:?} is defined twice")]
    DuplicateVariable {
        /// Line of the second definition.
        line: usize,
        /// Variable name (truncated).
        name: String,
    },
    /// `EXT-X-DEFINE:IMPORT` names a variable the multivariant playlist does not define.
    #[error(
        "line {line}: EXT-X-DEFINE IMPORT {name:?} is not defined by the multivariant playlist"
    )]
    MissingImport {
        /// Line of the tag.
        line: usize,
        /// Variable name (truncated).
        name: String,
    },
    /// `EXT-X-DEFINE:QUERYPARAM` names a parameter absent from the playlist URL's query.
    #[error("line {line}: EXT-X-DEFINE QUERYPARAM {name:?} is not in the playlist URL's query")]
    MissingQueryParam {
        /// Line of the tag.
        line: usize,
        /// Parameter name (truncated).
        name: String,
    },
    /// An `EXT-X-DEFINE` tag is malformed.
    #[error("line {line}: invalid EXT-X-DEFINE: {reason}")]
    BadDefine {
        /// Line of the tag.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A URI cannot be resolved against the playlist URL.
    #[error("line {line}: invalid URI {uri:?}: {reason}")]
    InvalidUri {
        /// Line of the URI.
        line: usize,
        /// The URI after variable substitution (truncated).
        uri: String,
        /// Why it does not resolve.
        reason: String,
    },
    /// An `EXT-X-BYTERANGE` (or `EXT-X-PART` `BYTERANGE`) without offset whose previous
    /// segment (part) is not a sub-range of the same resource (RFC 8216 §4.3.2.2).
    #[error(
        "line {line}: byte range without offset, but the previous {unit} is not a range of the same resource"
    )]
    ImplicitByteRangeOffset {
        /// Line of the tag.
        line: usize,
        /// `segment` or `part`.
        unit: &'static str,
    },
    /// A byte range whose end overflows 64 bits.
    #[error("line {line}: byte range end overflows")]
    ByteRangeOverflow {
        /// Line of the tag.
        line: usize,
    },
    /// The playlist has both multivariant tags and media segments.
    #[error("line {line}: playlist mixes multivariant tags and media segments")]
    MixedPlaylist {
        /// Line where the second kind first appears.
        line: usize,
    },
    /// A media playlist without `EXT-X-TARGETDURATION`.
    #[error("media playlist has no EXT-X-TARGETDURATION")]
    MissingTargetDuration,
    /// The [`crate::playlist::UriMapper`] returned a local URL that cannot be written into a
    /// playlist (empty, with a quote, CR, LF, a leading `#` or whitespace, or not resolvable).
    #[error("line {line}: URI mapper returned an unusable local URL {local:?}")]
    InvalidLocalUrl {
        /// Line of the URI.
        line: usize,
        /// The mapper's answer (truncated).
        local: String,
    },
}

/// What is wrong with an attribute list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttributeSyntax {
    /// An attribute without `=`.
    #[error("attribute without '='")]
    MissingEquals,
    /// An empty attribute name, or one with characters outside `[A-Za-z0-9_-]`.
    #[error("invalid attribute name")]
    InvalidName,
    /// A quoted string without its closing quote.
    #[error("unterminated quoted string")]
    UnterminatedQuote,
    /// Characters between a closing quote and the next comma.
    #[error("unexpected characters after a quoted string")]
    JunkAfterQuote,
    /// A `"` inside an unquoted value.
    #[error("quote inside an unquoted value")]
    QuoteInValue,
    /// A URI-bearing attribute appears twice in one tag.
    #[error("URI attribute appears twice")]
    DuplicateUri,
    /// A URI-bearing attribute whose value is not a quoted string.
    #[error("URI value is not a quoted string")]
    UnquotedUri,
}

/// At most this many characters of a value are kept in an error.
const SNIPPET_CHARS: usize = 80;

/// A copy of `s` short enough for an error message.
pub(crate) fn snippet(s: &str) -> String {
    match s.char_indices().nth(SNIPPET_CHARS) {
        Some((i, _)) => {
            let mut out = String::with_capacity(i + 3);
            out.push_str(&s[..i]);
            out.push('…');
            out
        }
        None => s.to_owned(),
    }
}
