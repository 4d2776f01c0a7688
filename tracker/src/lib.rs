//! hivecast tracker: a WebTorrent-compatible WebSocket signalling tracker.
#![forbid(unsafe_code)]
