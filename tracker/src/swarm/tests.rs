//! Deterministic tests of the registry with injected time.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::policy::PolicyKind;
use crate::proto::{Offer, SdpType, SessionDescription};

fn ih(n: u8) -> InfoHash {
    InfoHash([n; 20])
}
fn pid(n: u8) -> PeerId {
    PeerId([n; 20])
}
fn oid(n: u8) -> OfferId {
    OfferId([n; 20])
}
fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn offer(n: u8) -> Offer {
    Offer {
        offer: SessionDescription {
            kind: SdpType::Offer,
            sdp: format!("sdp-{n}"),
        },
        offer_id: oid(n),
    }
}

fn announce(h: u8, p: u8, event: AnnounceEvent, offers: &[u8]) -> AnnounceRequest {
    AnnounceRequest {
        info_hash: ih(h),
        peer_id: pid(p),
        event,
        numwant: None,
        uploaded: None,
        downloaded: None,
        left: Some(10),
        offers: offers.iter().map(|&n| offer(n)).collect(),
        trackerid: None,
    }
}

fn answer(h: u8, from: u8, to: u8, offer_n: u8) -> AnswerRequest {
    AnswerRequest {
        info_hash: ih(h),
        peer_id: pid(from),
        to_peer_id: pid(to),
        offer_id: oid(offer_n),
        answer: SessionDescription {
            kind: SdpType::Answer,
            sdp: "a".into(),
        },
    }
}

fn registry(cfg: RegistryConfig) -> Registry<u64> {
    Registry::new(cfg, PolicyKind::Random.build(), 42)
}

fn ok(
    r: &mut Registry<u64>,
    now: Instant,
    conn: ConnId,
    req: &AnnounceRequest,
) -> (AnnounceOutcome, Vec<Relay<u64>>) {
    let mut relays = Vec::new();
    let out = r
        .announce(now, conn, req, &mut relays)
        .expect("announce accepted");
    r.check_invariants().expect("invariants");
    (out, relays)
}

#[test]
fn join_update_complete_stop_counts() {
    let t0 = Instant::now();
    let mut r = registry(RegistryConfig::default());
    r.connect(1, 1, ip("10.0.0.1"));
    r.connect(2, 2, ip("10.0.0.2"));
    let (o, _) = ok(&mut r, t0, 1, &announce(1, 1, AnnounceEvent::Started, &[]));
    assert_eq!((o.complete, o.incomplete), (0, 1));
    let mut seed = announce(1, 2, AnnounceEvent::Started, &[]);
    seed.left = Some(0);
    let (o, _) = ok(&mut r, t0, 2, &seed);
    assert_eq!((o.complete, o.incomplete), (1, 1));
    let (o, _) = ok(
        &mut r,
        t0,
        1,
        &announce(1, 1, AnnounceEvent::Completed, &[]),
    );
    assert_eq!((o.complete, o.incomplete), (2, 0));
    assert_eq!(r.scrape(&ih(1)).downloaded, 1);
    // A repeated `completed` does not count twice.
    ok(
        &mut r,
        t0,
        1,
        &announce(1, 1, AnnounceEvent::Completed, &[]),
    );
    assert_eq!(r.scrape(&ih(1)).downloaded, 1);
    let (o, _) = ok(&mut r, t0, 1, &announce(1, 1, AnnounceEvent::Stopped, &[]));
    assert_eq!((o.complete, o.incomplete), (1, 0));
    assert_eq!(r.memberships(1), 0);
    let (o, _) = ok(&mut r, t0, 2, &announce(1, 2, AnnounceEvent::Stopped, &[]));
    assert_eq!((o.complete, o.incomplete), (0, 0));
    assert_eq!(r.swarm_count(), 0);
    assert_eq!(r.peer_count(), 0);
    // `stopped` for an unknown peer is harmless.
    let (o, _) = ok(&mut r, t0, 2, &announce(9, 2, AnnounceEvent::Stopped, &[]));
    assert_eq!((o.complete, o.incomplete), (0, 0));
}

#[test]
fn update_from_unknown_peer_joins() {
    let t0 = Instant::now();
    let mut r = registry(RegistryConfig::default());
    r.connect(1, 1, ip("10.0.0.1"));
    let (o, _) = ok(&mut r, t0, 1, &announce(1, 1, AnnounceEvent::Update, &[]));
    assert_eq!(o.incomplete, 1);
    assert_eq!(r.peer_count(), 1);
}

#[test]
fn disconnect_is_stopped_in_every_swarm() {
    let t0 = Instant::now();
    let mut r = registry(RegistryConfig::default());
    r.connect(1, 1, ip("10.0.0.1"));
    r.connect(2, 2, ip("10.0.0.2"));
    for h in 1..=3 {
        ok(&mut r, t0, 1, &announce(h, 1, AnnounceEvent::Started, &[]));
        ok(&mut r, t0, 2, &announce(h, 2, AnnounceEvent::Started, &[]));
    }
    assert_eq!(r.peer_count(), 6);
    assert_eq!(r.disconnect(1), 3);
    r.check_invariants().unwrap();
    assert_eq!(r.peer_count(), 3);
    for h in 1..=3 {
        assert_eq!(r.scrape(&ih(h)).incomplete, 1);
    }
    assert_eq!(r.disconnect(2), 3);
    assert_eq!(r.swarm_count(), 0);
    assert_eq!(r.disconnect(2), 0);
    assert_eq!(r.connection_count(), 0);
}

#[test]
fn unknown_connection_is_an_error_not_a_panic() {
    let mut r = registry(RegistryConfig::default());
    let mut relays = Vec::new();
    assert_eq!(
        r.announce(
            Instant::now(),
            7,
            &announce(1, 1, AnnounceEvent::Started, &[]),
            &mut relays
        ),
        Err(Refusal::UnknownConnection)
    );
}

#[test]
fn membership_and_capacity_limits() {
    let t0 = Instant::now();
    let mut r = registry(RegistryConfig {
        max_swarms_per_connection: 2,
        max_swarms: 3,
        max_peers: 4,
        ..RegistryConfig::default()
    });
    r.connect(1, 1, ip("10.0.0.1"));
    r.connect(2, 2, ip("10.0.0.2"));
    r.connect(3, 3, ip("10.0.0.3"));
    ok(&mut r, t0, 1, &announce(1, 1, AnnounceEvent::Started, &[]));
    ok(&mut r, t0, 1, &announce(2, 1, AnnounceEvent::Started, &[]));
    let mut relays = Vec::new();
    assert_eq!(
        r.announce(
            t0,
            1,
            &announce(3, 1, AnnounceEvent::Started, &[]),
            &mut relays
        ),
        Err(Refusal::TooManySwarms(2))
    );
    // Re-announcing a held membership is fine.
    ok(&mut r, t0, 1, &announce(2, 1, AnnounceEvent::Update, &[]));
    ok(&mut r, t0, 2, &announce(3, 2, AnnounceEvent::Started, &[]));
    assert_eq!(
        r.announce(
            t0,
            2,
            &announce(4, 2, AnnounceEvent::Started, &[]),
            &mut relays
        ),
        Err(Refusal::SwarmCapacity)
    );
    ok(&mut r, t0, 2, &announce(1, 2, AnnounceEvent::Started, &[]));
    assert_eq!(r.peer_count(), 4);
    assert_eq!(
        r.announce(
            t0,
            3,
            &announce(1, 3, AnnounceEvent::Started, &[]),
            &mut relays
        ),
        Err(Refusal::PeerCapacity)
    );
    // After a leave there is room again.
    ok(&mut r, t0, 1, &announce(2, 1, AnnounceEvent::Stopped, &[]));
    ok(&mut r, t0, 3, &announce(1, 3, AnnounceEvent::Started, &[]));
}

#[test]
fn peer_id_takeover_only_from_same_ip() {
    let t0 = Instant::now();
    let mut r = registry(RegistryConfig::default());
    r.connect(1, 1, ip("10.0.0.1"));
    r.connect(2, 2, ip("10.0.0.1"));
    r.connect(3, 3, ip("10.9.9.9"));
    ok(&mut r, t0, 1, &announce(1, 1, AnnounceEvent::Started, &[]));
    let mut relays = Vec::new();
    assert_eq!(
        r.announce(
            t0,
            3,
            &announce(1, 1, AnnounceEvent::Started, &[]),
            &mut relays
        ),
        Err(Refusal::PeerIdInUse)
    );
    ok(&mut r, t0, 2, &announce(1, 1, AnnounceEvent::Started, &[]));
    assert_eq!(r.memberships(1), 0);
    assert_eq!(r.memberships(2), 1);
    // The old connection closing does not remove the taken-over peer.
    assert_eq!(r.disconnect(1), 0);
    assert_eq!(r.peer_count(), 1);
    r.check_invariants().unwrap();
}

#[test]
fn offers_go_to_distinct_other_peers_and_answers_match() {
    let t0 = Instant::now();
    let mut r = registry(RegistryConfig::default());
    for c in 1..=4u64 {
        r.connect(c, c * 100, ip(&format!("10.0.0.{c}")));
        ok(
            &mut r,
            t0,
            c,
            &announce(1, c as u8, AnnounceEvent::Started, &[]),
        );
    }
    // Peer 1 sends 5 offers; only 3 other peers exist.
    let (_, relays) = ok(
        &mut r,
        t0,
        1,
        &announce(1, 1, AnnounceEvent::Update, &[11, 12, 13, 14, 15]),
    );
    assert_eq!(relays.len(), 3);
    let mut targets: Vec<PeerId> = relays.iter().map(|x| x.to_peer).collect();
    targets.sort();
    targets.dedup();
    assert_eq!(targets.len(), 3);
    assert!(!targets.contains(&pid(1)));
    for rel in &relays {
        assert_eq!(rel.to, u64::from(rel.to_peer.0[0]) * 100);
    }
    assert_eq!(r.pending_offer_count(), 3);

    let first = &relays[0];
    let answerer = first.to_peer.0[0];
    let offer_n = 11 + first.offer_index as u8;
    // A peer that did not receive this offer cannot answer it.
    let other = relays[1].to_peer.0[0];
    assert_eq!(
        r.answer(t0, u64::from(other), &answer(1, other, 1, offer_n)),
        Err(AnswerDrop::UnknownOffer)
    );
    // A connection cannot answer in the name of a peer it does not own.
    assert_eq!(
        r.answer(t0, u64::from(other), &answer(1, answerer, 1, offer_n)),
        Err(AnswerDrop::NotMember)
    );
    // The target can, once.
    assert_eq!(
        r.answer(t0, u64::from(answerer), &answer(1, answerer, 1, offer_n)),
        Ok(100)
    );
    assert_eq!(
        r.answer(t0, u64::from(answerer), &answer(1, answerer, 1, offer_n)),
        Err(AnswerDrop::UnknownOffer)
    );
    assert_eq!(r.pending_offer_count(), 2);
    assert_eq!(
        r.answer(t0, u64::from(answerer), &answer(9, answerer, 1, offer_n)),
        Err(AnswerDrop::UnknownSwarm)
    );
    assert_eq!(
        r.answer(t0, u64::from(answerer), &answer(1, answerer, 77, offer_n)),
        Err(AnswerDrop::OffererGone)
    );
    // Offerer leaves: its remembered offers go with it.
    r.disconnect(1);
    let second = &relays[1];
    let b = second.to_peer.0[0];
    assert_eq!(
        r.answer(
            t0,
            u64::from(b),
            &answer(1, b, 1, 11 + second.offer_index as u8)
        ),
        Err(AnswerDrop::OffererGone)
    );
    assert_eq!(r.pending_offer_count(), 0);
}

#[test]
fn stopped_and_lonely_announces_relay_nothing() {
    let t0 = Instant::now();
    let mut r = registry(RegistryConfig::default());
    r.connect(1, 1, ip("10.0.0.1"));
    let (_, relays) = ok(
        &mut r,
        t0,
        1,
        &announce(1, 1, AnnounceEvent::Started, &[1, 2]),
    );
    assert!(relays.is_empty(), "alone in the swarm");
    r.connect(2, 2, ip("10.0.0.2"));
    ok(&mut r, t0, 2, &announce(1, 2, AnnounceEvent::Started, &[]));
    let (_, relays) = ok(
        &mut r,
        t0,
        1,
        &announce(1, 1, AnnounceEvent::Stopped, &[1, 2]),
    );
    assert!(relays.is_empty(), "stopped carries no offers");
}

#[test]
fn idle_peers_expire_with_injected_time() {
    let t0 = Instant::now();
    let cfg = RegistryConfig {
        peer_ttl: Duration::from_secs(100),
        offer_ttl: Duration::from_secs(30),
        ..RegistryConfig::default()
    };
    let mut r = registry(cfg);
    r.connect(1, 1, ip("10.0.0.1"));
    r.connect(2, 2, ip("10.0.0.2"));
    ok(&mut r, t0, 1, &announce(1, 1, AnnounceEvent::Started, &[]));
    ok(&mut r, t0, 2, &announce(1, 2, AnnounceEvent::Started, &[]));
    ok(&mut r, t0, 2, &announce(2, 2, AnnounceEvent::Started, &[]));
    // Peer 1 refreshes at t0+60; peer 2 does not.
    ok(
        &mut r,
        t0 + Duration::from_secs(60),
        1,
        &announce(1, 1, AnnounceEvent::Update, &[]),
    );
    assert_eq!(r.expire(t0 + Duration::from_secs(99)), Expired::default());
    let e = r.expire(t0 + Duration::from_secs(100));
    assert_eq!(
        e,
        Expired {
            peers: 2,
            offers: 0,
            swarms: 1
        }
    );
    r.check_invariants().unwrap();
    assert_eq!(r.peer_count(), 1);
    assert_eq!(
        r.memberships(2),
        0,
        "expiry frees the connection's memberships"
    );
    let e = r.expire(t0 + Duration::from_secs(160));
    assert_eq!(e.peers, 1);
    assert_eq!(r.swarm_count(), 0);
    // Connections stay registered; only memberships expire.
    assert_eq!(r.connection_count(), 2);
}

#[test]
fn stale_offers_expire_and_late_answers_are_dropped() {
    let t0 = Instant::now();
    let cfg = RegistryConfig {
        peer_ttl: Duration::from_secs(1000),
        offer_ttl: Duration::from_secs(30),
        ..RegistryConfig::default()
    };
    let mut r = registry(cfg);
    r.connect(1, 1, ip("10.0.0.1"));
    r.connect(2, 2, ip("10.0.0.2"));
    ok(&mut r, t0, 2, &announce(1, 2, AnnounceEvent::Started, &[]));
    ok(&mut r, t0, 1, &announce(1, 1, AnnounceEvent::Started, &[5]));
    ok(
        &mut r,
        t0 + Duration::from_secs(20),
        1,
        &announce(1, 1, AnnounceEvent::Update, &[6]),
    );
    assert_eq!(r.pending_offer_count(), 2);
    // At t0+30 the first offer is stale even before the sweep runs.
    assert_eq!(
        r.answer(t0 + Duration::from_secs(30), 2, &answer(1, 2, 1, 5)),
        Err(AnswerDrop::UnknownOffer)
    );
    let e = r.expire(t0 + Duration::from_secs(49));
    assert_eq!(e.offers, 0);
    assert_eq!(
        r.answer(t0 + Duration::from_secs(49), 2, &answer(1, 2, 1, 6)),
        Ok(1)
    );
    ok(
        &mut r,
        t0 + Duration::from_secs(50),
        1,
        &announce(1, 1, AnnounceEvent::Update, &[7]),
    );
    let e = r.expire(t0 + Duration::from_secs(80));
    assert_eq!(
        e,
        Expired {
            peers: 0,
            offers: 1,
            swarms: 0
        }
    );
    assert_eq!(r.pending_offer_count(), 0);
}

#[test]
fn pending_offers_are_capped_oldest_first() {
    let t0 = Instant::now();
    let mut r = registry(RegistryConfig {
        max_pending_offers_per_peer: 3,
        ..RegistryConfig::default()
    });
    r.connect(1, 1, ip("10.0.0.1"));
    r.connect(2, 2, ip("10.0.0.2"));
    ok(&mut r, t0, 2, &announce(1, 2, AnnounceEvent::Started, &[]));
    ok(&mut r, t0, 1, &announce(1, 1, AnnounceEvent::Started, &[]));
    for n in 1..=5 {
        ok(&mut r, t0, 1, &announce(1, 1, AnnounceEvent::Update, &[n]));
    }
    assert_eq!(r.pending_offer_count(), 3);
    assert_eq!(
        r.answer(t0, 2, &answer(1, 2, 1, 1)),
        Err(AnswerDrop::UnknownOffer)
    );
    assert_eq!(r.answer(t0, 2, &answer(1, 2, 1, 5)), Ok(1));
}

#[test]
fn same_subnet_policy_in_registry() {
    let t0 = Instant::now();
    let mut r: Registry<u64> =
        Registry::new(RegistryConfig::default(), PolicyKind::SameSubnet.build(), 5);
    // Ten peers on other networks, two on the announcer's /24.
    for c in 1..=10u64 {
        r.connect(c, c, ip(&format!("10.{c}.0.1")));
        ok(
            &mut r,
            t0,
            c,
            &announce(1, c as u8, AnnounceEvent::Started, &[]),
        );
    }
    for c in [20u64, 21, 22] {
        r.connect(c, c, ip(&format!("192.168.1.{c}")));
        ok(
            &mut r,
            t0,
            c,
            &announce(1, c as u8, AnnounceEvent::Started, &[]),
        );
    }
    for _ in 0..20 {
        let (_, relays) = ok(
            &mut r,
            t0,
            20,
            &announce(1, 20, AnnounceEvent::Update, &[1, 2]),
        );
        let mut got: Vec<u64> = relays.iter().map(|x| x.to).collect();
        got.sort();
        assert_eq!(got, vec![21, 22]);
    }
    let (_, relays) = ok(
        &mut r,
        t0,
        20,
        &announce(1, 20, AnnounceEvent::Update, &[1, 2, 3, 4]),
    );
    assert_eq!(relays.len(), 4);
    let local = relays.iter().filter(|x| x.to == 21 || x.to == 22).count();
    assert_eq!(local, 2);
    // Removing peers keeps the subnet index consistent.
    r.disconnect(21);
    r.disconnect(3);
    r.check_invariants().unwrap();
    let (_, relays) = ok(
        &mut r,
        t0,
        20,
        &announce(1, 20, AnnounceEvent::Update, &[1]),
    );
    assert_eq!(relays[0].to, 22);
}

#[derive(Debug, Clone)]
enum Op {
    Connect(u8, u8),
    Disconnect(u8),
    Announce {
        conn: u8,
        swarm: u8,
        peer: u8,
        event: u8,
        offers: u8,
        seeder: bool,
    },
    Answer {
        conn: u8,
        swarm: u8,
        peer: u8,
        to: u8,
        offer: u8,
    },
    Advance(u16),
    Expire,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..6, 0u8..3).prop_map(|(c, i)| Op::Connect(c, i)),
        (0u8..6).prop_map(Op::Disconnect),
        (0u8..6, 0u8..4, 0u8..8, 0u8..5, 0u8..4, any::<bool>()).prop_map(
            |(conn, swarm, peer, event, offers, seeder)| Op::Announce {
                conn,
                swarm,
                peer,
                event,
                offers,
                seeder
            }
        ),
        (0u8..6, 0u8..4, 0u8..8, 0u8..8, 0u8..4).prop_map(|(conn, swarm, peer, to, offer)| {
            Op::Answer {
                conn,
                swarm,
                peer,
                to,
                offer,
            }
        }),
        (0u16..200).prop_map(Op::Advance),
        Just(Op::Expire),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any sequence of operations keeps the registry consistent and within its limits.
    #[test]
    fn random_operations_keep_invariants(
        ops in proptest::collection::vec(op(), 1..120),
        subnet in any::<bool>(),
    ) {
        let policy = if subnet { PolicyKind::SameSubnet } else { PolicyKind::Random };
        let cfg = RegistryConfig {
            peer_ttl: Duration::from_secs(100),
            offer_ttl: Duration::from_secs(40),
            max_swarms: 3,
            max_peers: 12,
            max_swarms_per_connection: 3,
            max_pending_offers_per_peer: 4,
        };
        let mut r: Registry<u64> = Registry::new(cfg.clone(), policy.build(), 9);
        let mut now = Instant::now();
        let ips = ["10.0.0.1", "10.0.0.2", "2001:db8::1"];
        for op in ops {
            match op {
                Op::Connect(c, i) => {
                    if r.memberships(u64::from(c)) == 0 {
                        r.disconnect(u64::from(c));
                        r.connect(u64::from(c), u64::from(c), ip(ips[usize::from(i)]));
                    }
                }
                Op::Disconnect(c) => { r.disconnect(u64::from(c)); }
                Op::Announce { conn, swarm, peer, event, offers, seeder } => {
                    let event = [AnnounceEvent::Started, AnnounceEvent::Update, AnnounceEvent::Completed,
                        AnnounceEvent::Stopped, AnnounceEvent::Paused][usize::from(event)];
                    let offer_ids: Vec<u8> = (0..offers).collect();
                    let mut req = announce(swarm, peer, event, &offer_ids);
                    if seeder { req.left = Some(0); }
                    let mut relays = Vec::new();
                    if r.announce(now, u64::from(conn), &req, &mut relays).is_ok() {
                        prop_assert!(relays.len() <= usize::from(offers));
                        prop_assert!(relays.iter().all(|x| x.to_peer != req.peer_id));
                    }
                }
                Op::Answer { conn, swarm, peer, to, offer } => {
                    let _ = r.answer(now, u64::from(conn), &answer(swarm, peer, to, offer));
                }
                Op::Advance(s) => now += Duration::from_secs(u64::from(s)),
                Op::Expire => { r.expire(now); }
            }
            prop_assert_eq!(r.check_invariants(), Ok(()));
            prop_assert!(r.peer_count() <= cfg.max_peers);
            prop_assert!(r.swarm_count() <= cfg.max_swarms);
            for c in 0..6u64 {
                prop_assert!(r.memberships(c) <= cfg.max_swarms_per_connection);
            }
        }
    }
}
