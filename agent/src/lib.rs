//! hivecast agent: a local HLS proxy that shares verified segments with peers.
#![forbid(unsafe_code)]
