//! hivecast agent: a local HLS proxy that shares verified segments with peers.
//!
//! See `ARCHITECTURE.md` for the module map. Dependencies point inward, toward the sans-IO
//! `core`; `app` is the only module that knows everything.
#![forbid(unsafe_code)]

pub mod app;
pub mod cache;
pub mod config;
pub mod core;
pub mod driver;
pub mod integrity;
pub mod metrics;
pub mod mirror;
pub mod origin;
pub mod playlist;
pub mod server;
pub mod sim;
pub mod task;
pub mod tracker_client;
pub mod transport;
