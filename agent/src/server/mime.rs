//! Content types by file extension (RFC 8216 §4 and common practice). Origins often label
//! playlists `text/plain` or `application/octet-stream`, so the agent decides from the name.

/// Content type for a URL path.
pub fn content_type_for_path(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or(path);
    let ext = match name.rsplit_once('.') {
        Some((_, e)) => e.to_ascii_lowercase(),
        None => return "application/octet-stream",
    };
    match ext.as_str() {
        "m3u8" | "m3u" => "application/vnd.apple.mpegurl",
        "ts" | "tsv" | "tsa" => "video/mp2t",
        "m4s" | "cmfv" | "cmfa" => "video/iso.segment",
        "mp4" | "m4v" | "cmfi" => "video/mp4",
        "m4a" => "audio/mp4",
        "aac" => "audio/aac",
        "ac3" => "audio/ac3",
        "ec3" => "audio/eac3",
        "mp3" => "audio/mpeg",
        "vtt" | "webvtt" => "text/vtt",
        "json" => "application/json",
        "key" => "application/octet-stream",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_types() {
        assert_eq!(
            content_type_for_path("/https/h/a/index.m3u8"),
            "application/vnd.apple.mpegurl"
        );
        assert_eq!(content_type_for_path("/x/seg_001.TS"), "video/mp2t");
        assert_eq!(content_type_for_path("/x/seg.m4s"), "video/iso.segment");
        assert_eq!(content_type_for_path("/x/init.mp4"), "video/mp4");
        assert_eq!(content_type_for_path("/x/sub.vtt"), "text/vtt");
        assert_eq!(
            content_type_for_path("/x/noext"),
            "application/octet-stream"
        );
        assert_eq!(
            content_type_for_path("/x.dir/noext"),
            "application/octet-stream"
        );
    }
}
