//! Message types of the WebTorrent tracker protocol and their JSON codec.
//!
//! [`ClientMessage`] is what a peer sends (announce, answer, scrape); [`ServerMessage`]
//! is what the tracker sends (announce response, relayed offer, relayed answer, scrape
//! response, error). Both directions can be encoded and decoded, so the same types serve
//! the tracker and a client (the agent).
//!
//! Decoding is deliberately forgiving where the reference implementation
//! (`bittorrent-tracker`) is (unknown fields ignored, counts as numbers or strings), and
//! strict where it matters (ids must be exactly 20 latin1 characters). It never panics
//! and returns a [`DecodeError`] whose `Display` text is suitable as a `failure reason`.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use super::id::{InfoHash, OfferId, PeerId};
use super::loose::Loose;

/// The two protocol actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// `announce` (also used for offers and answers).
    Announce,
    /// `scrape`.
    Scrape,
}

impl Action {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Action::Announce => "announce",
            Action::Scrape => "scrape",
        }
    }
}

/// The `event` of an announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AnnounceEvent {
    /// `started`: the peer joins the swarm.
    Started,
    /// `update` (also a missing event or `empty`): a periodic re-announce.
    Update,
    /// `completed`: the peer now has everything (becomes a seeder).
    Completed,
    /// `stopped`: the peer leaves the swarm.
    Stopped,
    /// `paused`: accepted for compatibility with `bittorrent-tracker`; handled as `update`.
    Paused,
}

impl AnnounceEvent {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            AnnounceEvent::Started => "started",
            AnnounceEvent::Update => "update",
            AnnounceEvent::Completed => "completed",
            AnnounceEvent::Stopped => "stopped",
            AnnounceEvent::Paused => "paused",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "started" => AnnounceEvent::Started,
            "update" | "empty" | "" => AnnounceEvent::Update,
            "completed" => AnnounceEvent::Completed,
            "stopped" => AnnounceEvent::Stopped,
            "paused" => AnnounceEvent::Paused,
            _ => return None,
        })
    }
}

/// The `type` of a session description.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SdpType {
    /// An SDP offer.
    Offer,
    /// An SDP answer.
    Answer,
}

/// A WebRTC session description, `{"type": "offer"|"answer", "sdp": "..."}`.
///
/// The tracker treats `sdp` as opaque text; it never parses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionDescription {
    /// Offer or answer.
    #[serde(rename = "type")]
    pub kind: SdpType,
    /// The SDP text (non-trickle: contains all ICE candidates).
    pub sdp: String,
}

/// One offer inside an announce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Offer {
    /// The offer; relayed unchanged to one chosen peer.
    pub offer: SessionDescription,
    /// The announcer's id for this offer; the answer refers to it.
    pub offer_id: OfferId,
}

/// `announce` from a peer: join, refresh or leave a swarm, possibly with offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceRequest {
    /// The swarm.
    pub info_hash: InfoHash,
    /// The announcing peer.
    pub peer_id: PeerId,
    /// What happened.
    pub event: AnnounceEvent,
    /// How many peers the client wants (informational; the offer count decides).
    pub numwant: Option<u64>,
    /// Bytes uploaded (informational).
    pub uploaded: Option<u64>,
    /// Bytes downloaded (informational).
    pub downloaded: Option<u64>,
    /// Bytes left; `0` makes the peer a seeder (`complete`).
    pub left: Option<u64>,
    /// Offers to relay, one per chosen peer.
    pub offers: Vec<Offer>,
    /// Tracker id echoed back by clients, if the tracker gave one.
    pub trackerid: Option<String>,
}

/// `announce` carrying an `answer` to an offer that was relayed to this peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerRequest {
    /// The swarm.
    pub info_hash: InfoHash,
    /// The answering peer.
    pub peer_id: PeerId,
    /// The peer that made the offer.
    pub to_peer_id: PeerId,
    /// The offer being answered.
    pub offer_id: OfferId,
    /// The SDP answer.
    pub answer: SessionDescription,
}

/// `scrape`: swarm statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeRequest {
    /// The swarms asked about; `None` when the client omitted `info_hash` (a "full
    /// scrape", which hivecast refuses).
    pub info_hashes: Option<Vec<InfoHash>>,
}

/// A message from a peer to the tracker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    /// Join/refresh/leave with offers.
    Announce(AnnounceRequest),
    /// An answer to a relayed offer.
    Answer(AnswerRequest),
    /// Swarm statistics.
    Scrape(ScrapeRequest),
}

/// Why bytes are not a valid client or server message.
///
/// `Display` gives a short text for a `failure reason`; for ids and actions it matches
/// the wording of `bittorrent-tracker`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON, not UTF-8, or a field has an impossible shape.
    #[error("invalid message: {0}")]
    Json(String),
    /// Valid JSON but not an object.
    #[error("invalid message: expected a JSON object")]
    NotAnObject,
    /// `action` missing or unknown (the value is cut to 32 chars).
    #[error("invalid action in WS request: {0}")]
    Action(String),
    /// `info_hash` is not a 20-char latin1 string (or list of them, for scrape).
    #[error("invalid info_hash")]
    InfoHash,
    /// `peer_id` is not a 20-char latin1 string.
    #[error("invalid peer_id")]
    PeerId,
    /// `to_peer_id` missing or invalid on an answer.
    #[error("invalid `to_peer_id` (required with `answer`)")]
    ToPeerId,
    /// `offer_id` missing or invalid on an offer or answer.
    #[error("invalid offer_id")]
    OfferId,
    /// `event` is not one of the known events.
    #[error("invalid event")]
    Event,
    /// An element of `offers` has no `offer`.
    #[error("invalid offer")]
    Offer,
    /// A server message lacks a field its kind needs (client-side decoding).
    #[error("missing field `{0}`")]
    Missing(&'static str),
}

/// Longest JSON error detail kept in a [`DecodeError::Json`].
const MAX_DETAIL: usize = 160;

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((idx, _)) => format!("{}…", &s[..idx]),
        None => s.to_owned(),
    }
}

fn json_error(e: &serde_json::Error) -> DecodeError {
    DecodeError::Json(truncate(&e.to_string(), MAX_DETAIL))
}

/// First non-whitespace byte must open an object; rejects arrays early (serde would
/// otherwise map a JSON array positionally onto a struct).
fn check_object(bytes: &[u8]) -> Result<(), DecodeError> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Ok(()),
        Some(_) => {
            // Distinguish "not JSON" from "JSON but not an object".
            match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
                Ok(_) => Err(DecodeError::NotAnObject),
                Err(e) => Err(json_error(&e)),
            }
        }
        None => Err(DecodeError::Json("empty message".to_owned())),
    }
}

#[derive(Deserialize)]
struct RawOffer<'a> {
    #[serde(default)]
    offer: Option<SessionDescription>,
    #[serde(borrow, default)]
    offer_id: Option<Loose<'a>>,
}

#[derive(Deserialize)]
struct RawClient<'a> {
    #[serde(borrow, default)]
    action: Option<Loose<'a>>,
    #[serde(borrow, default)]
    info_hash: Option<Loose<'a>>,
    #[serde(borrow, default)]
    peer_id: Option<Loose<'a>>,
    #[serde(borrow, default)]
    event: Option<Loose<'a>>,
    #[serde(borrow, default)]
    numwant: Option<Loose<'a>>,
    #[serde(borrow, default)]
    uploaded: Option<Loose<'a>>,
    #[serde(borrow, default)]
    downloaded: Option<Loose<'a>>,
    #[serde(borrow, default)]
    left: Option<Loose<'a>>,
    #[serde(borrow, default)]
    offers: Option<Vec<RawOffer<'a>>>,
    #[serde(default)]
    answer: Option<SessionDescription>,
    #[serde(borrow, default)]
    to_peer_id: Option<Loose<'a>>,
    #[serde(borrow, default)]
    offer_id: Option<Loose<'a>>,
    #[serde(borrow, default)]
    trackerid: Option<Loose<'a>>,
}

fn id_field<T>(
    field: Option<&Loose<'_>>,
    parse: fn(&str) -> Result<T, super::id::IdError>,
    err: DecodeError,
) -> Result<T, DecodeError> {
    field
        .and_then(Loose::as_str)
        .and_then(|s| parse(s).ok())
        .ok_or(err)
}

fn count(field: Option<&Loose<'_>>) -> Option<u64> {
    field.and_then(Loose::as_count)
}

impl ClientMessage {
    /// Decodes one WebSocket message (text or binary frame payload).
    pub fn from_json(bytes: &[u8]) -> Result<Self, DecodeError> {
        check_object(bytes)?;
        Self::from_raw(serde_json::from_slice(bytes).map_err(|e| json_error(&e))?)
    }

    /// Decodes one text message; like [`ClientMessage::from_json`] but skips UTF-8
    /// validation, which the WebSocket layer already did for text frames.
    pub fn from_json_str(text: &str) -> Result<Self, DecodeError> {
        check_object(text.as_bytes())?;
        Self::from_raw(serde_json::from_str(text).map_err(|e| json_error(&e))?)
    }

    fn from_raw(raw: RawClient<'_>) -> Result<Self, DecodeError> {
        let action = match raw.action.as_ref() {
            Some(Loose::Str(s)) => s.as_ref(),
            Some(Loose::Null) | None => return Err(DecodeError::Action("undefined".to_owned())),
            Some(_) => return Err(DecodeError::Action("(not a string)".to_owned())),
        };
        match action {
            "announce" => Self::announce(raw),
            "scrape" => Self::scrape(raw),
            other => Err(DecodeError::Action(truncate(other, 32))),
        }
    }

    fn announce(raw: RawClient<'_>) -> Result<Self, DecodeError> {
        let info_hash = id_field(
            raw.info_hash.as_ref(),
            InfoHash::from_latin1,
            DecodeError::InfoHash,
        )?;
        let peer_id = id_field(
            raw.peer_id.as_ref(),
            PeerId::from_latin1,
            DecodeError::PeerId,
        )?;
        if let Some(answer) = raw.answer {
            let to_peer_id = id_field(
                raw.to_peer_id.as_ref(),
                PeerId::from_latin1,
                DecodeError::ToPeerId,
            )?;
            let offer_id = id_field(
                raw.offer_id.as_ref(),
                OfferId::from_latin1,
                DecodeError::OfferId,
            )?;
            return Ok(ClientMessage::Answer(AnswerRequest {
                info_hash,
                peer_id,
                to_peer_id,
                offer_id,
                answer,
            }));
        }
        let event = match raw.event.as_ref() {
            None | Some(Loose::Null) => AnnounceEvent::Update,
            Some(Loose::Str(s)) => AnnounceEvent::parse(s).ok_or(DecodeError::Event)?,
            Some(_) => return Err(DecodeError::Event),
        };
        let offers = raw
            .offers
            .unwrap_or_default()
            .into_iter()
            .map(|o| {
                let offer_id = id_field(
                    o.offer_id.as_ref(),
                    OfferId::from_latin1,
                    DecodeError::OfferId,
                )?;
                let offer = o.offer.ok_or(DecodeError::Offer)?;
                Ok(Offer { offer, offer_id })
            })
            .collect::<Result<Vec<_>, DecodeError>>()?;
        Ok(ClientMessage::Announce(AnnounceRequest {
            info_hash,
            peer_id,
            event,
            numwant: count(raw.numwant.as_ref()),
            uploaded: count(raw.uploaded.as_ref()),
            downloaded: count(raw.downloaded.as_ref()),
            left: count(raw.left.as_ref()),
            offers,
            trackerid: raw
                .trackerid
                .as_ref()
                .and_then(Loose::as_str)
                .map(|s| truncate(s, 64)),
        }))
    }

    fn scrape(raw: RawClient<'_>) -> Result<Self, DecodeError> {
        let info_hashes = match raw.info_hash {
            None | Some(Loose::Null) => None,
            Some(Loose::Str(s)) => Some(vec![
                InfoHash::from_latin1(&s).map_err(|_| DecodeError::InfoHash)?,
            ]),
            Some(Loose::Seq(items)) => Some(
                items
                    .iter()
                    .map(|i| {
                        i.as_str()
                            .and_then(|s| InfoHash::from_latin1(s).ok())
                            .ok_or(DecodeError::InfoHash)
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Some(_) => return Err(DecodeError::InfoHash),
        };
        Ok(ClientMessage::Scrape(ScrapeRequest { info_hashes }))
    }

    /// Encodes the message as one JSON text.
    pub fn to_json(&self) -> String {
        // Serializing these plain structs to a String cannot fail (no maps with
        // non-string keys, no failing Serialize impls).
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[derive(Serialize)]
struct AnnounceWire<'a> {
    action: &'static str,
    info_hash: &'a InfoHash,
    peer_id: &'a PeerId,
    #[serde(skip_serializing_if = "Option::is_none")]
    numwant: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uploaded: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    downloaded: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    left: Option<u64>,
    event: &'static str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    offers: &'a [Offer],
    #[serde(skip_serializing_if = "Option::is_none")]
    trackerid: Option<&'a str>,
}

#[derive(Serialize)]
struct AnswerWire<'a> {
    action: &'static str,
    info_hash: &'a InfoHash,
    peer_id: &'a PeerId,
    to_peer_id: &'a PeerId,
    answer: &'a SessionDescription,
    offer_id: &'a OfferId,
}

#[derive(Serialize)]
struct ScrapeWire<'a> {
    action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    info_hash: Option<&'a [InfoHash]>,
}

impl Serialize for ClientMessage {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ClientMessage::Announce(a) => AnnounceWire {
                action: "announce",
                info_hash: &a.info_hash,
                peer_id: &a.peer_id,
                numwant: a.numwant,
                uploaded: a.uploaded,
                downloaded: a.downloaded,
                left: a.left,
                event: a.event.as_str(),
                offers: &a.offers,
                trackerid: a.trackerid.as_deref(),
            }
            .serialize(serializer),
            ClientMessage::Answer(a) => AnswerWire {
                action: "announce",
                info_hash: &a.info_hash,
                peer_id: &a.peer_id,
                to_peer_id: &a.to_peer_id,
                answer: &a.answer,
                offer_id: &a.offer_id,
            }
            .serialize(serializer),
            ClientMessage::Scrape(s) => ScrapeWire {
                action: "scrape",
                info_hash: s.info_hashes.as_deref(),
            }
            .serialize(serializer),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Tracker -> peer
// ---------------------------------------------------------------------------------------

/// Reply to an announce (not sent for answers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnnounceResponse {
    /// Always `announce`.
    pub action: Action,
    /// The swarm.
    pub info_hash: InfoHash,
    /// Seeders in the swarm.
    pub complete: u64,
    /// Leechers in the swarm.
    pub incomplete: u64,
    /// Seconds until the next regular announce.
    pub interval: u64,
    /// Seconds a client must wait at least between announces.
    #[serde(rename = "min interval", skip_serializing_if = "Option::is_none")]
    pub min_interval: Option<u64>,
    /// A warning the client may show.
    #[serde(rename = "warning message", skip_serializing_if = "Option::is_none")]
    pub warning_message: Option<String>,
}

/// An offer relayed to a chosen peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OfferRelay {
    /// Always `announce`.
    pub action: Action,
    /// The offer, unchanged.
    pub offer: SessionDescription,
    /// The offerer's id for it.
    pub offer_id: OfferId,
    /// The offering peer.
    pub peer_id: PeerId,
    /// The swarm.
    pub info_hash: InfoHash,
}

/// An answer relayed back to the offerer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnswerRelay {
    /// Always `announce`.
    pub action: Action,
    /// The answer, unchanged.
    pub answer: SessionDescription,
    /// The offer it answers.
    pub offer_id: OfferId,
    /// The answering peer.
    pub peer_id: PeerId,
    /// The swarm.
    pub info_hash: InfoHash,
}

/// Statistics of one swarm in a scrape response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrapeStats {
    /// Seeders.
    pub complete: u64,
    /// Leechers.
    pub incomplete: u64,
    /// `completed` events seen by this tracker for the swarm (BEP 48).
    pub downloaded: u64,
}

/// `flags` of a scrape response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrapeFlags {
    /// Seconds a client should wait between scrapes.
    pub min_request_interval: u64,
}

/// Reply to a scrape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeResponse {
    /// Statistics per requested swarm, in request order (unknown swarms report zeros).
    pub files: Vec<(InfoHash, ScrapeStats)>,
    /// Optional flags.
    pub flags: Option<ScrapeFlags>,
}

struct FilesMap<'a>(&'a [(InfoHash, ScrapeStats)]);

impl Serialize for FilesMap<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl Serialize for ScrapeResponse {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a> {
            action: &'static str,
            files: FilesMap<'a>,
            #[serde(skip_serializing_if = "Option::is_none")]
            flags: Option<ScrapeFlags>,
        }
        Wire {
            action: "scrape",
            files: FilesMap(&self.files),
            flags: self.flags,
        }
        .serialize(serializer)
    }
}

/// A refusal or error: `{"failure reason": ...}` with optional context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorResponse {
    /// Human-readable reason.
    #[serde(rename = "failure reason")]
    pub failure_reason: String,
    /// The action that failed, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// The swarm concerned, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info_hash: Option<InfoHash>,
}

/// A message from the tracker to a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerMessage {
    /// Reply to an announce.
    AnnounceResponse(AnnounceResponse),
    /// An offer from another peer.
    Offer(OfferRelay),
    /// An answer to one of this peer's offers.
    Answer(AnswerRelay),
    /// Reply to a scrape.
    Scrape(ScrapeResponse),
    /// A refusal or error.
    Error(ErrorResponse),
}

impl Serialize for ServerMessage {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ServerMessage::AnnounceResponse(m) => m.serialize(serializer),
            ServerMessage::Offer(m) => m.serialize(serializer),
            ServerMessage::Answer(m) => m.serialize(serializer),
            ServerMessage::Scrape(m) => m.serialize(serializer),
            ServerMessage::Error(m) => m.serialize(serializer),
        }
    }
}

#[derive(Deserialize)]
struct RawServer<'a> {
    #[serde(borrow, default)]
    action: Option<Cow<'a, str>>,
    #[serde(rename = "failure reason", default)]
    failure_reason: Option<String>,
    #[serde(rename = "warning message", default)]
    warning_message: Option<String>,
    #[serde(default)]
    info_hash: Option<InfoHash>,
    #[serde(default)]
    peer_id: Option<PeerId>,
    #[serde(default)]
    offer_id: Option<OfferId>,
    #[serde(default)]
    offer: Option<SessionDescription>,
    #[serde(default)]
    answer: Option<SessionDescription>,
    #[serde(borrow, default)]
    complete: Option<Loose<'a>>,
    #[serde(borrow, default)]
    incomplete: Option<Loose<'a>>,
    #[serde(borrow, default)]
    interval: Option<Loose<'a>>,
    #[serde(rename = "min interval", borrow, default)]
    min_interval: Option<Loose<'a>>,
    #[serde(default)]
    files: Option<BTreeMap<InfoHash, ScrapeStats>>,
    #[serde(default)]
    flags: Option<ScrapeFlags>,
}

impl ServerMessage {
    /// Decodes one message from the tracker (client side).
    pub fn from_json(bytes: &[u8]) -> Result<Self, DecodeError> {
        check_object(bytes)?;
        let raw: RawServer<'_> = serde_json::from_slice(bytes).map_err(|e| json_error(&e))?;
        let action = match raw.action.as_deref() {
            Some("announce") => Some(Action::Announce),
            Some("scrape") => Some(Action::Scrape),
            None => None,
            Some(other) => return Err(DecodeError::Action(truncate(other, 32))),
        };
        if let Some(failure_reason) = raw.failure_reason {
            return Ok(ServerMessage::Error(ErrorResponse {
                failure_reason,
                action,
                info_hash: raw.info_hash,
            }));
        }
        match action {
            Some(Action::Scrape) => {
                let files = raw.files.ok_or(DecodeError::Missing("files"))?;
                Ok(ServerMessage::Scrape(ScrapeResponse {
                    files: files.into_iter().collect(),
                    flags: raw.flags,
                }))
            }
            None => Err(DecodeError::Action("undefined".to_owned())),
            Some(Action::Announce) => {
                let info_hash = raw.info_hash.ok_or(DecodeError::InfoHash)?;
                if let Some(offer) = raw.offer {
                    return Ok(ServerMessage::Offer(OfferRelay {
                        action: Action::Announce,
                        offer,
                        offer_id: raw.offer_id.ok_or(DecodeError::OfferId)?,
                        peer_id: raw.peer_id.ok_or(DecodeError::PeerId)?,
                        info_hash,
                    }));
                }
                if let Some(answer) = raw.answer {
                    return Ok(ServerMessage::Answer(AnswerRelay {
                        action: Action::Announce,
                        answer,
                        offer_id: raw.offer_id.ok_or(DecodeError::OfferId)?,
                        peer_id: raw.peer_id.ok_or(DecodeError::PeerId)?,
                        info_hash,
                    }));
                }
                Ok(ServerMessage::AnnounceResponse(AnnounceResponse {
                    action: Action::Announce,
                    info_hash,
                    complete: count(raw.complete.as_ref()).unwrap_or(0),
                    incomplete: count(raw.incomplete.as_ref()).unwrap_or(0),
                    interval: count(raw.interval.as_ref())
                        .ok_or(DecodeError::Missing("interval"))?,
                    min_interval: count(raw.min_interval.as_ref()),
                    warning_message: raw.warning_message,
                }))
            }
        }
    }

    /// Encodes the message as one JSON text.
    pub fn to_json(&self) -> String {
        // Cannot fail: string map keys only, infallible Serialize impls.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl ErrorResponse {
    /// A bare `{"failure reason": ...}`.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            failure_reason: reason.into(),
            action: None,
            info_hash: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(c: char) -> String {
        std::iter::repeat_n(c, 20).collect()
    }

    #[test]
    fn decodes_reference_announce_with_offers() {
        let json = format!(
            r#"{{"action":"announce","info_hash":"{}","peer_id":"{}","numwant":2,"uploaded":0,
               "downloaded":0,"left":"5","event":"started","offers":[
               {{"offer":{{"type":"offer","sdp":"v=0 a"}},"offer_id":"{}"}},
               {{"offer":{{"type":"offer","sdp":"v=0 b","x":1}},"offer_id":"{}"}}],"extra":{{"a":[1]}}}}"#,
            id('\u{ff}'),
            id('p'),
            id('1'),
            id('2')
        );
        let ClientMessage::Announce(a) = ClientMessage::from_json(json.as_bytes()).unwrap() else {
            panic!("not an announce")
        };
        assert_eq!(a.info_hash, InfoHash([0xff; 20]));
        assert_eq!(a.peer_id, PeerId([b'p'; 20]));
        assert_eq!(a.event, AnnounceEvent::Started);
        assert_eq!(a.left, Some(5));
        assert_eq!(a.numwant, Some(2));
        assert_eq!(a.offers.len(), 2);
        assert_eq!(a.offers[1].offer.sdp, "v=0 b");
        assert_eq!(a.offers[0].offer_id, OfferId([b'1'; 20]));
    }

    #[test]
    fn decodes_answer_and_scrape() {
        let json = format!(
            r#"{{"action":"announce","info_hash":"{}","peer_id":"{}","to_peer_id":"{}","offer_id":"{}","answer":{{"type":"answer","sdp":"s"}}}}"#,
            id('a'),
            id('b'),
            id('c'),
            id('d')
        );
        let m = ClientMessage::from_json(json.as_bytes()).unwrap();
        assert!(matches!(m, ClientMessage::Answer(ref a) if a.to_peer_id == PeerId([b'c'; 20])));
        let one = format!(r#"{{"action":"scrape","info_hash":"{}"}}"#, id('a'));
        assert_eq!(
            ClientMessage::from_json(one.as_bytes()).unwrap(),
            ClientMessage::Scrape(ScrapeRequest {
                info_hashes: Some(vec![InfoHash([b'a'; 20])])
            })
        );
        let many = format!(
            r#"{{"action":"scrape","info_hash":["{}","{}"]}}"#,
            id('a'),
            id('b')
        );
        let ClientMessage::Scrape(s) = ClientMessage::from_json(many.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(s.info_hashes.map(|v| v.len()), Some(2));
        let full = ClientMessage::from_json(br#"{"action":"scrape"}"#).unwrap();
        assert_eq!(
            full,
            ClientMessage::Scrape(ScrapeRequest { info_hashes: None })
        );
    }

    #[test]
    fn error_texts_match_reference_wording() {
        let e = |j: &str| {
            ClientMessage::from_json(j.as_bytes())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            e(r#"{"action":"announce","info_hash":"short"}"#),
            "invalid info_hash"
        );
        assert_eq!(
            e(&format!(
                r#"{{"action":"announce","info_hash":"{}","peer_id":5}}"#,
                id('a')
            )),
            "invalid peer_id"
        );
        assert_eq!(
            e(&format!(
                r#"{{"action":"announce","info_hash":"{}","peer_id":"{}","answer":{{"type":"answer","sdp":""}}}}"#,
                id('a'),
                id('b')
            )),
            "invalid `to_peer_id` (required with `answer`)"
        );
        assert_eq!(
            e(&format!(
                r#"{{"action":"announce","info_hash":"{}","peer_id":"{}","to_peer_id":"{}","answer":{{"type":"answer","sdp":""}}}}"#,
                id('a'),
                id('b'),
                id('c')
            )),
            "invalid offer_id"
        );
        assert_eq!(
            e(r#"{"action":"nope"}"#),
            "invalid action in WS request: nope"
        );
        assert_eq!(e(r#"{}"#), "invalid action in WS request: undefined");
        assert_eq!(
            e(r#"{"action":7}"#),
            "invalid action in WS request: (not a string)"
        );
        assert_eq!(e("[1,2]"), "invalid message: expected a JSON object");
        assert!(e("{nope").starts_with("invalid message: "));
        assert_eq!(e(""), "invalid message: empty message");
        assert_eq!(
            e(&format!(
                r#"{{"action":"announce","info_hash":"{}","peer_id":"{}","event":"dance"}}"#,
                id('a'),
                id('b')
            )),
            "invalid event"
        );
        assert_eq!(
            e(&format!(
                r#"{{"action":"announce","info_hash":"{}","peer_id":"{}","offers":[{{"offer_id":"{}"}}]}}"#,
                id('a'),
                id('b'),
                id('c')
            )),
            "invalid offer"
        );
        assert_eq!(
            e(&format!(
                r#"{{"action":"announce","info_hash":"{}","peer_id":"{}","offers":[{{"offer":{{"type":"offer","sdp":""}},"offer_id":"x"}}]}}"#,
                id('a'),
                id('b')
            )),
            "invalid offer_id"
        );
        assert_eq!(
            e(r#"{"action":"scrape","info_hash":["x"]}"#),
            "invalid info_hash"
        );
        assert_eq!(
            e(r#"{"action":"scrape","info_hash":3}"#),
            "invalid info_hash"
        );
        let long = format!(r#"{{"action":"{}"}}"#, "z".repeat(500));
        assert!(e(&long).len() < 80);
    }

    #[test]
    fn str_and_bytes_decoding_agree() {
        for text in [
            r#"{"action":"scrape","info_hash":"aaaaaaaaaaaaaaaaaaaa"}"#,
            r#"{"action":"announce","info_hash":"x"}"#,
            "not json",
            "[]",
        ] {
            assert_eq!(
                ClientMessage::from_json_str(text),
                ClientMessage::from_json(text.as_bytes())
            );
        }
    }

    #[test]
    fn event_defaults_and_aliases() {
        for (ev, want) in [
            ("", AnnounceEvent::Update),
            ("empty", AnnounceEvent::Update),
            ("paused", AnnounceEvent::Paused),
            ("completed", AnnounceEvent::Completed),
            ("stopped", AnnounceEvent::Stopped),
        ] {
            let j = format!(
                r#"{{"action":"announce","info_hash":"{}","peer_id":"{}","event":"{ev}"}}"#,
                id('a'),
                id('b')
            );
            let ClientMessage::Announce(a) = ClientMessage::from_json(j.as_bytes()).unwrap() else {
                panic!()
            };
            assert_eq!(a.event, want);
        }
    }

    #[test]
    fn client_messages_round_trip() {
        let msgs = vec![
            ClientMessage::Announce(AnnounceRequest {
                info_hash: InfoHash([0x80; 20]),
                peer_id: PeerId([0; 20]),
                event: AnnounceEvent::Completed,
                numwant: Some(3),
                uploaded: None,
                downloaded: Some(7),
                left: Some(0),
                offers: vec![Offer {
                    offer: SessionDescription {
                        kind: SdpType::Offer,
                        sdp: "v=0\r\n".to_owned(),
                    },
                    offer_id: OfferId([9; 20]),
                }],
                trackerid: Some("t".to_owned()),
            }),
            ClientMessage::Answer(AnswerRequest {
                info_hash: InfoHash([1; 20]),
                peer_id: PeerId([2; 20]),
                to_peer_id: PeerId([3; 20]),
                offer_id: OfferId([4; 20]),
                answer: SessionDescription {
                    kind: SdpType::Answer,
                    sdp: "x".to_owned(),
                },
            }),
            ClientMessage::Scrape(ScrapeRequest {
                info_hashes: Some(vec![InfoHash([5; 20]), InfoHash([6; 20])]),
            }),
            ClientMessage::Scrape(ScrapeRequest { info_hashes: None }),
        ];
        for m in msgs {
            let json = m.to_json();
            assert_eq!(
                ClientMessage::from_json(json.as_bytes()).unwrap(),
                m,
                "{json}"
            );
        }
    }

    #[test]
    fn server_messages_round_trip_and_wire_names() {
        let resp = ServerMessage::AnnounceResponse(AnnounceResponse {
            action: Action::Announce,
            info_hash: InfoHash([7; 20]),
            complete: 1,
            incomplete: 2,
            interval: 120,
            min_interval: Some(30),
            warning_message: None,
        });
        let json = resp.to_json();
        assert!(json.contains(r#""min interval":30"#), "{json}");
        assert!(json.contains(r#""interval":120"#), "{json}");
        let scrape = ServerMessage::Scrape(ScrapeResponse {
            files: vec![(
                InfoHash([8; 20]),
                ScrapeStats {
                    complete: 1,
                    incomplete: 0,
                    downloaded: 4,
                },
            )],
            flags: Some(ScrapeFlags {
                min_request_interval: 60,
            }),
        });
        let err = ServerMessage::Error(ErrorResponse {
            failure_reason: "nope".to_owned(),
            action: Some(Action::Announce),
            info_hash: Some(InfoHash([9; 20])),
        });
        assert!(err.to_json().contains(r#""failure reason":"nope""#));
        let offer = ServerMessage::Offer(OfferRelay {
            action: Action::Announce,
            offer: SessionDescription {
                kind: SdpType::Offer,
                sdp: "o".to_owned(),
            },
            offer_id: OfferId([1; 20]),
            peer_id: PeerId([2; 20]),
            info_hash: InfoHash([3; 20]),
        });
        let answer = ServerMessage::Answer(AnswerRelay {
            action: Action::Announce,
            answer: SessionDescription {
                kind: SdpType::Answer,
                sdp: "a".to_owned(),
            },
            offer_id: OfferId([1; 20]),
            peer_id: PeerId([2; 20]),
            info_hash: InfoHash([3; 20]),
        });
        for m in [resp, scrape, err, offer, answer] {
            let json = m.to_json();
            assert_eq!(
                ServerMessage::from_json(json.as_bytes()).unwrap(),
                m,
                "{json}"
            );
        }
        assert_eq!(
            ServerMessage::from_json(br#"{"action":"scrape"}"#),
            Err(DecodeError::Missing("files"))
        );
        assert_eq!(
            ServerMessage::from_json(br#"{"complete":1}"#),
            Err(DecodeError::Action("undefined".to_owned()))
        );
        assert_eq!(
            ServerMessage::from_json(br#"{"action":"x"}"#),
            Err(DecodeError::Action("x".to_owned()))
        );
    }
}
