//! Property tests of the wire codec (only `proto`; runs without the `server` feature):
//! decoding never panics on arbitrary bytes or JSON, ids round-trip, and every
//! message round-trips through its JSON form.

use hivecast_tracker::proto::*;
use proptest::prelude::*;
use serde_json::{Map, Value};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,24}".prop_map(Value::String),
        prop::collection::vec(any::<u8>(), 0..24).prop_map(|b| Value::String(encode_latin1(&b))),
        prop::collection::vec(any::<u8>(), 20..=20).prop_map(|b| Value::String(encode_latin1(&b))),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::hash_map(".{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

const KEYS: &[&str] = &[
    "action",
    "info_hash",
    "peer_id",
    "event",
    "offers",
    "offer",
    "offer_id",
    "answer",
    "to_peer_id",
    "left",
    "numwant",
    "files",
    "flags",
    "failure reason",
    "interval",
    "min interval",
    "complete",
    "incomplete",
    "type",
    "sdp",
    "trackerid",
    "warning message",
];
const ACTIONS: &[&str] = &["announce", "scrape", "other"];

/// Objects built from the protocol's own keys and values: near-valid messages reach
/// deep into the decoder.
fn protocol_like() -> impl Strategy<Value = Value> {
    let field = (prop::sample::select(KEYS), json_value());
    (
        prop::sample::select(ACTIONS),
        prop::collection::vec(field, 0..10),
    )
        .prop_map(|(action, fields)| {
            let mut m = Map::new();
            m.insert("action".into(), Value::String(action.into()));
            for (k, v) in fields {
                m.insert(k.to_owned(), v);
            }
            Value::Object(m)
        })
}

fn id20() -> impl Strategy<Value = [u8; 20]> {
    prop::array::uniform20(any::<u8>())
}

fn sdp() -> impl Strategy<Value = SessionDescription> {
    (
        prop_oneof![Just(SdpType::Offer), Just(SdpType::Answer)],
        ".{0,40}",
    )
        .prop_map(|(kind, sdp)| SessionDescription { kind, sdp })
}

fn client_message() -> impl Strategy<Value = ClientMessage> {
    let event = prop_oneof![
        Just(AnnounceEvent::Started),
        Just(AnnounceEvent::Update),
        Just(AnnounceEvent::Completed),
        Just(AnnounceEvent::Stopped),
        Just(AnnounceEvent::Paused),
    ];
    let offers = prop::collection::vec((sdp(), id20()), 0..4).prop_map(|v| {
        v.into_iter()
            .map(|(offer, id)| Offer {
                offer,
                offer_id: OfferId(id),
            })
            .collect()
    });
    let announce = (
        id20(),
        id20(),
        event,
        proptest::option::of(0u64..1 << 53),
        proptest::option::of(0u64..1 << 53),
        offers,
        proptest::option::of("[a-z0-9]{0,10}"),
    )
        .prop_map(|(h, p, event, left, numwant, offers, trackerid)| {
            ClientMessage::Announce(AnnounceRequest {
                info_hash: InfoHash(h),
                peer_id: PeerId(p),
                event,
                numwant,
                uploaded: None,
                downloaded: left,
                left,
                offers,
                trackerid,
            })
        });
    let answer = (id20(), id20(), id20(), id20(), sdp()).prop_map(|(h, p, t, o, answer)| {
        ClientMessage::Answer(AnswerRequest {
            info_hash: InfoHash(h),
            peer_id: PeerId(p),
            to_peer_id: PeerId(t),
            offer_id: OfferId(o),
            answer,
        })
    });
    let scrape = proptest::option::of(prop::collection::vec(id20().prop_map(InfoHash), 0..5))
        .prop_map(|info_hashes| ClientMessage::Scrape(ScrapeRequest { info_hashes }));
    prop_oneof![announce, answer, scrape]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = ClientMessage::from_json(&bytes);
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let _ = ClientMessage::from_json_str(text);
        }
        let _ = ServerMessage::from_json(&bytes);
    }

    #[test]
    fn decoding_arbitrary_json_never_panics(v in json_value()) {
        let text = v.to_string();
        prop_assert_eq!(ClientMessage::from_json(text.as_bytes()), ClientMessage::from_json_str(&text));
        let _ = ServerMessage::from_json(text.as_bytes());
    }

    #[test]
    fn decoding_protocol_like_objects_never_panics(v in protocol_like()) {
        let text = v.to_string();
        if let Ok(m) = ClientMessage::from_json(text.as_bytes()) {
            // Whatever decodes re-encodes to something that decodes the same.
            let again = ClientMessage::from_json(m.to_json().as_bytes());
            prop_assert_eq!(again, Ok(m));
        }
        let _ = ServerMessage::from_json(text.as_bytes());
    }

    #[test]
    fn decode_errors_are_short(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        if let Err(e) = ClientMessage::from_json(&bytes) {
            prop_assert!(e.to_string().chars().count() < 220);
        }
    }

    #[test]
    fn id_codec_round_trips(bytes in id20()) {
        let s = encode_latin1(&bytes);
        prop_assert_eq!(s.chars().count(), 20);
        prop_assert_eq!(decode_latin1(&s), Ok(bytes));
        let json = serde_json::to_string(&PeerId(bytes)).unwrap();
        prop_assert_eq!(serde_json::from_str::<PeerId>(&json).unwrap(), PeerId(bytes));
        let hex = InfoHash(bytes).to_hex();
        prop_assert_eq!(InfoHash::from_hex(&hex), Ok(InfoHash(bytes)));
    }

    #[test]
    fn wrong_length_or_non_latin1_ids_are_rejected(s in ".{0,40}") {
        let n = s.chars().count();
        let latin1 = s.chars().all(|c| (c as u32) < 256);
        prop_assert_eq!(decode_latin1(&s).is_ok(), n == 20 && latin1);
    }

    #[test]
    fn client_messages_round_trip(m in client_message()) {
        prop_assert_eq!(ClientMessage::from_json(m.to_json().as_bytes()), Ok(m));
    }
}
