//! hivecast demo and the HLS test toolkit shared by the agent's tests, the benchmarks and the
//! demo binary.
//!
//! | module | what |
//! |---|---|
//! | [`origin`] | HLS test origin: static files over hyper with Range, counters and fault injection |
//! | [`fixtures`] | real test streams generated once with ffmpeg into a shared cache directory |
//! | [`live`] | live packager: loops a source segment set into a sliding-window live playlist |
//! | [`player`] | paced HLS player: plays a playlist in real time, reports stalls and digests |
//! | [`client`] | minimal pooled plain-HTTP client used by the player and tests |
//! | [`playlist`] | small typed reader for media and multivariant playlists |
//! | [`prom`] | sums of series from a Prometheus text page |
//! | [`digest`] | the `index.sha256.json` digest sidecar format |
//! | [`demo`] | the one-command demo: child processes, web server for the page |
//!
//! A typical test (needs ffmpeg for the fixtures):
//!
//! ```no_run
//! # async fn t() -> Result<(), Box<dyn std::error::Error>> {
//! use hivecast_demo::{fixtures::{self, Fixtures}, live::{LiveConfig, LivePackager}};
//! use hivecast_demo::{origin::Origin, player::{self, PlayerConfig}};
//! let fx = Fixtures::ensure_async().await?;
//! let root = std::env::temp_dir().join("my-test-origin");
//! let mut cfg = LiveConfig::new(fx.path(fixtures::LIVE_SOURCE_TS), root.join("live"));
//! cfg.write_digests = true; // only when no `hivecast-agent publish-digests` runs
//! let packager = LivePackager::new(cfg)?;
//! let digests = packager.digests();
//! let live = packager.spawn_realtime();
//! let origin = Origin::start(&root).await?;
//! let mut pc = PlayerConfig::new(origin.url("/live/index.m3u8"));
//! pc.max_duration = std::time::Duration::from_secs(12);
//! let report = player::play(pc).await?;
//! assert_eq!(report.stalls, 0);
//! for s in &report.segments {
//!     assert_eq!(digests.get(s.sequence), Some(s.sha256.as_str()));
//! }
//! live.stop().await?;
//! origin.stop().await;
//! # Ok(()) }
//! ```
//!
//! Everything binds `127.0.0.1` only and reports readiness by returning (no sleeps).
#![forbid(unsafe_code)]

pub mod client;
pub mod demo;
pub mod digest;
pub mod fixtures;
pub mod live;
pub mod origin;
pub mod player;
pub mod playlist;
pub mod prom;
mod timefmt;
