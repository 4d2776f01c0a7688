//! Wire types of the WebTorrent tracker protocol (JSON over WebSocket).
//!
//! This module depends only on `serde`, `serde_json` and `thiserror`, so a client (the
//! hivecast agent) can use it with `default-features = false`, without tokio or any
//! server code.
//!
//! The protocol, as `bittorrent-tracker` and aquatic_ws speak it:
//!
//! | direction | message | type |
//! |---|---|---|
//! | peer → tracker | `announce` (event, optional `offers`) | [`ClientMessage::Announce`] |
//! | peer → tracker | `announce` with `answer`, `to_peer_id`, `offer_id` | [`ClientMessage::Answer`] |
//! | peer → tracker | `scrape` with one or several `info_hash` | [`ClientMessage::Scrape`] |
//! | tracker → peer | announce response (`interval`, counts) | [`ServerMessage::AnnounceResponse`] |
//! | tracker → peer | relayed offer | [`ServerMessage::Offer`] |
//! | tracker → peer | relayed answer | [`ServerMessage::Answer`] |
//! | tracker → peer | scrape response (`files`) | [`ServerMessage::Scrape`] |
//! | tracker → peer | `failure reason` | [`ServerMessage::Error`] |
//!
//! Ids (`info_hash`, `peer_id`, `offer_id`, `to_peer_id`) are 20 bytes carried as
//! 20-character latin1 strings; see [`id`].
//!
//! ```
//! use hivecast_tracker::proto::{ClientMessage, ServerMessage};
//! let msg = ClientMessage::from_json(br#"{"action":"scrape"}"#).unwrap();
//! assert!(matches!(msg, ClientMessage::Scrape(_)));
//! assert!(ServerMessage::from_json(b"not json").is_err());
//! ```

pub mod id;
mod loose;
mod msg;

pub use id::{ID_LEN, IdError, InfoHash, OfferId, PeerId, decode_latin1, encode_latin1};
pub use msg::{
    Action, AnnounceEvent, AnnounceRequest, AnnounceResponse, AnswerRelay, AnswerRequest,
    ClientMessage, DecodeError, ErrorResponse, Offer, OfferRelay, ScrapeFlags, ScrapeRequest,
    ScrapeResponse, ScrapeStats, SdpType, ServerMessage, SessionDescription,
};
