//! Tests of the playlist module: unit tests per feature, the real-world corpus (with
//! quick-m3u8 as an independent second parser), and property tests.

mod corpus;
mod props;
mod support;
mod unit;
