//! Relay of WebRTC signalling: builds the offer and answer messages the registry
//! decided on and hands them to the targets' outboxes.
//!
//! SDP is opaque here: it is copied from the announce into the relayed message and
//! never parsed. Delivery never blocks and never buffers without bound: an [`Outbox`]
//! either accepts the message into its bounded queue or reports why not; a full queue
//! means the target is a slow reader, and the outbox drops that connection.

use serde::Serialize;

use crate::metrics::{DropReason, Metrics, SignalKind};
use crate::proto::{AnnounceRequest, AnswerRequest, InfoHash, OfferId, PeerId, SessionDescription};
use crate::swarm::Relay;

/// Why an outbox did not take a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Undelivered {
    /// The bounded queue is full; the connection is being dropped as a slow reader.
    #[error("outbound queue full")]
    QueueFull,
    /// The connection is closed.
    #[error("connection gone")]
    Gone,
}

impl Undelivered {
    fn reason(self) -> DropReason {
        match self {
            Undelivered::QueueFull => DropReason::QueueFull,
            Undelivered::Gone => DropReason::ConnectionGone,
        }
    }
}

/// Where messages for one connection go.
pub trait Outbox {
    /// Queues one JSON text message without waiting.
    fn deliver(&self, text: String) -> Result<(), Undelivered>;
}

#[derive(Serialize)]
struct OfferWire<'a> {
    action: &'static str,
    offer: &'a SessionDescription,
    offer_id: &'a OfferId,
    peer_id: &'a PeerId,
    info_hash: &'a InfoHash,
}

#[derive(Serialize)]
struct AnswerWire<'a> {
    action: &'static str,
    answer: &'a SessionDescription,
    offer_id: &'a OfferId,
    peer_id: &'a PeerId,
    info_hash: &'a InfoHash,
}

fn to_json<T: Serialize>(v: &T) -> String {
    // Plain structs with string keys: serialization cannot fail.
    serde_json::to_string(v).unwrap_or_default()
}

/// Delivers `req.offers[relay.offer_index]` to each relay target. Returns how many
/// were queued.
pub fn relay_offers<O: Outbox>(
    req: &AnnounceRequest,
    relays: &[Relay<O>],
    metrics: &Metrics,
) -> usize {
    let mut sent = 0;
    for relay in relays {
        let Some(offer) = req.offers.get(relay.offer_index) else {
            continue;
        };
        let text = to_json(&OfferWire {
            action: "announce",
            offer: &offer.offer,
            offer_id: &offer.offer_id,
            peer_id: &req.peer_id,
            info_hash: &req.info_hash,
        });
        match relay.to.deliver(text) {
            Ok(()) => sent += 1,
            Err(e) => metrics.dropped(SignalKind::Offer, e.reason()),
        }
    }
    metrics.relayed(SignalKind::Offer, sent as u64);
    sent
}

/// Delivers an answer to the offerer's outbox.
pub fn relay_answer<O: Outbox>(req: &AnswerRequest, to: &O, metrics: &Metrics) -> bool {
    let text = to_json(&AnswerWire {
        action: "announce",
        answer: &req.answer,
        offer_id: &req.offer_id,
        peer_id: &req.peer_id,
        info_hash: &req.info_hash,
    });
    match to.deliver(text) {
        Ok(()) => {
            metrics.relayed(SignalKind::Answer, 1);
            true
        }
        Err(e) => {
            metrics.dropped(SignalKind::Answer, e.reason());
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::proto::{AnnounceEvent, Offer, SdpType, ServerMessage};

    struct Vec1 {
        cap: usize,
        got: RefCell<Vec<String>>,
    }

    impl Outbox for &Vec1 {
        fn deliver(&self, text: String) -> Result<(), Undelivered> {
            let mut g = self.got.borrow_mut();
            if g.len() >= self.cap {
                return Err(Undelivered::QueueFull);
            }
            g.push(text);
            Ok(())
        }
    }

    fn sdp(kind: SdpType, s: &str) -> SessionDescription {
        SessionDescription {
            kind,
            sdp: s.to_owned(),
        }
    }

    #[test]
    fn offers_and_answers_are_wire_exact() {
        let metrics = Metrics::new("t").unwrap();
        let a = Vec1 {
            cap: 1,
            got: RefCell::new(Vec::new()),
        };
        let req = AnnounceRequest {
            info_hash: InfoHash([1; 20]),
            peer_id: PeerId([2; 20]),
            event: AnnounceEvent::Started,
            numwant: None,
            uploaded: None,
            downloaded: None,
            left: None,
            offers: vec![
                Offer {
                    offer: sdp(SdpType::Offer, "o1"),
                    offer_id: OfferId([3; 20]),
                },
                Offer {
                    offer: sdp(SdpType::Offer, "o2"),
                    offer_id: OfferId([4; 20]),
                },
            ],
            trackerid: None,
        };
        let relays = vec![
            Relay {
                to: &a,
                to_peer: PeerId([9; 20]),
                offer_index: 1,
            },
            Relay {
                to: &a,
                to_peer: PeerId([9; 20]),
                offer_index: 0,
            },
            Relay {
                to: &a,
                to_peer: PeerId([9; 20]),
                offer_index: 7,
            },
        ];
        // Second delivery hits the full queue; index 7 does not exist.
        assert_eq!(relay_offers(&req, &relays, &metrics), 1);
        let got = a.got.borrow();
        let ServerMessage::Offer(o) = ServerMessage::from_json(got[0].as_bytes()).unwrap() else {
            panic!("{}", got[0])
        };
        assert_eq!(o.offer.sdp, "o2");
        assert_eq!(o.offer_id, OfferId([4; 20]));
        assert_eq!(o.peer_id, PeerId([2; 20]));
        assert!(got[0].starts_with(
            r#"{"action":"announce","offer":{"type":"offer","sdp":"o2"},"offer_id":"#
        ));
        drop(got);
        let text = metrics.encode();
        assert!(
            text.contains("hivecast_tracker_signals_relayed_total{kind=\"offer\"} 1"),
            "{text}"
        );
        assert!(text.contains(
            "hivecast_tracker_signals_dropped_total{kind=\"offer\",reason=\"queue_full\"} 1"
        ));

        let b = Vec1 {
            cap: 5,
            got: RefCell::new(Vec::new()),
        };
        let ans = AnswerRequest {
            info_hash: InfoHash([1; 20]),
            peer_id: PeerId([9; 20]),
            to_peer_id: PeerId([2; 20]),
            offer_id: OfferId([4; 20]),
            answer: sdp(SdpType::Answer, "a1"),
        };
        assert!(relay_answer(&ans, &&b, &metrics));
        let ServerMessage::Answer(r) =
            ServerMessage::from_json(b.got.borrow()[0].as_bytes()).unwrap()
        else {
            panic!()
        };
        assert_eq!(r.peer_id, PeerId([9; 20]));
        assert_eq!(r.answer.sdp, "a1");
        assert!(!relay_answer(&ans, &&a, &metrics));
    }
}
