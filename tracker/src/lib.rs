//! hivecast tracker: a WebTorrent-compatible WebSocket signalling tracker.
//!
//! Peers announce into swarms (one per HLS rendition) and hand the tracker WebRTC
//! offers; the tracker picks peers in the swarm to receive them and relays the answers
//! back.
//!
//! * [`proto`]: wire types, always built (no tokio, no server dependencies; use the
//!   crate with `default-features = false` to get only this).
//!
//! With the `server` feature (default):
//!
//! | module | job | must not know |
//! |---|---|---|
//! | `swarm` | sans-IO registry: memberships, pending offers, expiry (`now` injected) | sockets, JSON, the clock |
//! | `policy` | which peers receive an offer (random, same subnet first) | storage, transport |
//! | `signal` | builds relayed offers/answers, hands them to bounded outboxes | SDP contents, sockets |
//! | `server` | WebSocket (ws/wss), admission and per-address limits, admin HTTP | swarm rules, policies |
//! | `store` | the shared in-memory registry (no external store yet) | protocol |
//! | `metrics` | owned Prometheus registry, closed-enum labels | domain decisions |
//! | `config` | layered, validated configuration | sockets, runtime |
//! | `app` | wiring, named tasks, signals, graceful shutdown | protocol details |
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod proto;

#[cfg(feature = "server")]
pub mod app;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
pub mod metrics;
#[cfg(feature = "server")]
pub mod policy;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod signal;
#[cfg(feature = "server")]
pub mod store;
#[cfg(feature = "server")]
pub mod swarm;
