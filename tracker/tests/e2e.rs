//! End-to-end tests: a real tracker on 127.0.0.1:0 and real WebSocket clients
//! (tokio-tungstenite), plain and TLS. One test per protocol feature and per limit,
//! each checking the documented outcome.

mod common;

use std::time::Duration;

use common::*;
use hivecast_tracker::app::Stopped;
use hivecast_tracker::config::Secret;
use hivecast_tracker::proto::{Action, AnnounceEvent, ClientMessage, ScrapeRequest, ServerMessage};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[tokio::test]
async fn offer_and_answer_are_relayed() {
    within(async {
        let app = start(test_config()).await;
        let mut a = Client::connect(app.ws_addr(), "/announce").await;
        let mut b = Client::connect(app.ws_addr(), "/announce").await;
        a.send(&announce(1, 1, AnnounceEvent::Started, &[])).await;
        let ServerMessage::AnnounceResponse(r) = a.recv().await else {
            panic!()
        };
        assert_eq!(
            (r.complete, r.incomplete, r.interval, r.min_interval),
            (0, 1, 120, Some(30))
        );
        assert_eq!(r.info_hash, ih(1));

        b.send(&announce(1, 2, AnnounceEvent::Started, &[7, 8]))
            .await;
        let ServerMessage::AnnounceResponse(r) = b.recv().await else {
            panic!()
        };
        assert_eq!(r.incomplete, 2);
        // Only one other peer: exactly one of the two offers reaches A.
        let ServerMessage::Offer(o) = a.recv().await else {
            panic!()
        };
        assert_eq!(o.peer_id, pid(2));
        assert_eq!(o.info_hash, ih(1));
        let n = o.offer_id.0[0];
        assert!(n == 7 || n == 8);
        assert_eq!(o.offer.sdp, format!("offer-{n}"));

        a.send(&answer(1, 1, 2, n)).await;
        let ServerMessage::Answer(ans) = b.recv().await else {
            panic!()
        };
        assert_eq!(ans.peer_id, pid(1));
        assert_eq!(ans.offer_id, oid(n));
        assert_eq!(ans.answer.sdp, format!("answer-1-{n}"));

        // The answer produced no reply to A: its next message answers its next request.
        assert_eq!(a.counts(&[1]).await, vec![(0, 2)]);
        // A second answer to the same offer is dropped.
        a.send(&answer(1, 1, 2, n)).await;
        assert_eq!(b.counts(&[1]).await, vec![(0, 2)]);

        let metrics = app.metrics().encode();
        assert!(
            metrics.contains("hivecast_tracker_signals_relayed_total{kind=\"offer\"} 1"),
            "{metrics}"
        );
        assert!(metrics.contains("hivecast_tracker_signals_relayed_total{kind=\"answer\"} 1"));
        assert!(metrics.contains(
            "hivecast_tracker_signals_dropped_total{kind=\"answer\",reason=\"unknown_offer\"} 1"
        ));
        assert!(metrics.contains("hivecast_tracker_peers 2"));
        assert!(metrics.contains("hivecast_tracker_connections 2"));
        app.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn wss_with_a_self_signed_certificate() {
    within(async {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let dir = std::env::temp_dir();
        let cert_path = dir.join(format!("hivecast-e2e-{}-cert.pem", std::process::id()));
        let key_path = dir.join(format!("hivecast-e2e-{}-key.pem", std::process::id()));
        std::fs::write(&cert_path, ck.cert.pem()).unwrap();
        std::fs::write(&key_path, ck.signing_key.serialize_pem()).unwrap();
        let mut cfg = test_config();
        cfg.server.tls_cert_file = Some(cert_path.clone());
        cfg.server.tls_key_file = Some(key_path.clone());
        let app = start(cfg).await;
        assert!(app.announce_url().starts_with("wss://127.0.0.1:"));

        let connector = tokio_rustls::TlsConnector::from(tls_client(ck.cert.der().clone()));
        let mut clients = Vec::new();
        for _ in 0..2 {
            let tcp = tokio::net::TcpStream::connect(app.ws_addr()).await.unwrap();
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let tls = connector.connect(name, tcp).await.expect("TLS handshake");
            let url = format!("wss://localhost:{}/announce", app.ws_addr().port());
            clients.push(Client::handshake(Box::new(tls), &url).await);
        }
        let (mut a, mut b) = (clients.remove(0), clients.remove(0));
        a.send(&announce(3, 1, AnnounceEvent::Started, &[])).await;
        assert!(matches!(a.recv().await, ServerMessage::AnnounceResponse(_)));
        b.send(&announce(3, 2, AnnounceEvent::Started, &[1])).await;
        assert!(matches!(b.recv().await, ServerMessage::AnnounceResponse(_)));
        let ServerMessage::Offer(o) = a.recv().await else {
            panic!()
        };
        a.send(&answer(3, 1, 2, o.offer_id.0[0])).await;
        assert!(matches!(b.recv().await, ServerMessage::Answer(_)));

        // Plain WebSocket against the TLS port fails.
        let tcp = tokio::net::TcpStream::connect(app.ws_addr()).await.unwrap();
        let url = format!("ws://{}/announce", app.ws_addr());
        let plain =
            tokio::time::timeout(MSG_TIMEOUT, tokio_tungstenite::client_async(url, tcp)).await;
        assert!(
            matches!(plain, Ok(Err(_))),
            "plain ws must not work on the wss port"
        );
        app.shutdown().await;
        let _ = std::fs::remove_file(cert_path);
        let _ = std::fs::remove_file(key_path);
    })
    .await;
}

#[tokio::test]
async fn closing_a_socket_is_stopped_in_every_swarm() {
    within(async {
        let app = start(test_config()).await;
        let mut a = Client::connect(app.ws_addr(), "/").await;
        let mut b = Client::connect(app.ws_addr(), "/").await;
        for h in [1, 2, 3] {
            a.send(&announce(h, 1, AnnounceEvent::Started, &[])).await;
            a.recv().await;
            b.send(&announce(h, 2, AnnounceEvent::Started, &[])).await;
            b.recv().await;
        }
        assert_eq!(a.counts(&[1, 2, 3]).await, vec![(0, 2); 3]);
        b.ws.close(None).await.unwrap();
        drop(b);
        let gone = eventually!(a.counts(&[1, 2, 3]).await == vec![(0, 1); 3]);
        assert!(gone, "B must leave every swarm when its socket closes");
        app.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn oversized_message_gets_a_failure_reason_and_close() {
    within(async {
        let mut cfg = test_config();
        cfg.limits.max_message_size = bytesize::ByteSize::kib(1);
        let app = start(cfg).await;
        let mut c = Client::connect(app.ws_addr(), "/").await;
        c.send_text(format!(
            r#"{{"action":"scrape","pad":"{}"}}"#,
            "x".repeat(2000)
        ))
        .await;
        assert_eq!(c.failure().await, "message too large (max 1024 bytes)");
        match c.event().await {
            Event::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Size),
            other => panic!("expected a close frame, got {other:?}"),
        }
        assert!(
            app.metrics()
                .encode()
                .contains("hivecast_tracker_refusals_total{reason=\"message_too_large\"} 1")
        );
        app.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn too_many_offers_are_refused() {
    within(async {
        let mut cfg = test_config();
        cfg.limits.max_offers_per_announce = 2;
        let app = start(cfg).await;
        let mut c = Client::connect(app.ws_addr(), "/").await;
        c.send(&announce(1, 1, AnnounceEvent::Started, &[1, 2, 3]))
            .await;
        let ServerMessage::Error(e) = c.recv().await else {
            panic!()
        };
        assert_eq!(e.failure_reason, "too many offers (max 2)");
        assert_eq!(e.action, Some(Action::Announce));
        assert_eq!(e.info_hash, Some(ih(1)));
        // The connection stays usable, and the refused announce did not join.
        c.send(&announce(1, 1, AnnounceEvent::Started, &[1, 2]))
            .await;
        let ServerMessage::AnnounceResponse(r) = c.recv().await else {
            panic!()
        };
        assert_eq!(r.incomplete, 1);
        assert!(
            app.metrics()
                .encode()
                .contains("hivecast_tracker_announces_total{result=\"refused\"} 1")
        );
        app.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn announce_rate_is_limited_per_ip() {
    within(async {
        let mut cfg = test_config();
        cfg.limits.announce_rate_per_ip = 1;
        cfg.limits.announce_burst_per_ip = 3;
        let app = start(cfg).await;
        let mut a = Client::connect(app.ws_addr(), "/").await;
        let mut b = Client::connect(app.ws_addr(), "/").await;
        for _ in 0..3 {
            a.send(&announce(1, 1, AnnounceEvent::Update, &[])).await;
            assert!(matches!(a.recv().await, ServerMessage::AnnounceResponse(_)));
        }
        a.send(&announce(1, 1, AnnounceEvent::Update, &[])).await;
        let reason = a.failure().await;
        assert!(reason.starts_with("rate limit exceeded"), "{reason}");
        // The bucket is per address: another connection from it is limited too.
        b.send(&scrape(&[1])).await;
        assert!(b.failure().await.starts_with("rate limit exceeded"));
        // A peer from another address is not.
        let mut c = Client::connect_from("127.0.0.2", app.ws_addr(), "/").await;
        c.send(&announce(1, 3, AnnounceEvent::Started, &[])).await;
        assert!(matches!(c.recv().await, ServerMessage::AnnounceResponse(_)));
        app.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn access_token_in_path_or_query() {
    within(async {
        let mut cfg = test_config();
        cfg.access.tokens = vec![Secret::new("s3cret-token")];
        let app = start(cfg).await;
        for path in [
            "/announce",
            "/announce/wrong-token",
            "/?token=nope-nope",
            "/announce/",
        ] {
            let mut c = Client::connect(app.ws_addr(), path).await;
            assert_eq!(
                c.failure().await,
                "invalid or missing access token",
                "{path}"
            );
            match c.event().await {
                Event::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Policy),
                other => panic!("expected close, got {other:?}"),
            }
        }
        for path in [
            "/announce/s3cret-token",
            "/announce?token=s3cret-token",
            "/?x=1&token=s3cret-token",
        ] {
            let mut c = Client::connect(app.ws_addr(), path).await;
            c.send(&announce(1, 1, AnnounceEvent::Started, &[])).await;
            assert!(
                matches!(c.recv().await, ServerMessage::AnnounceResponse(_)),
                "{path}"
            );
        }
        assert!(
            app.metrics()
                .encode()
                .contains("hivecast_tracker_refusals_total{reason=\"bad_token\"} 4")
        );
        app.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn spraying_unsolicited_answers_is_cut_off() {
    within(async {
        let mut cfg = test_config();
        cfg.limits.announce_rate_per_ip = 1;
        cfg.limits.announce_burst_per_ip = 5;
        let app = start(cfg).await;
        let mut a = Client::connect(app.ws_addr(), "/").await;
        let mut b = Client::connect_from("127.0.0.5", app.ws_addr(), "/").await;
        a.send(&announce(1, 1, AnnounceEvent::Started, &[])).await;
        a.recv().await;
        b.send(&announce(1, 2, AnnounceEvent::Started, &[])).await;
        b.recv().await;
        // B answers offers it never received: dropped silently while tokens last...
        for n in 0..4 {
            b.send(&answer(1, 2, 1, n)).await;
        }
        // ...then B is told and disconnected.
        let mut got_reason = false;
        loop {
            b.send(&answer(1, 2, 1, 9)).await;
            match b.event().await {
                Event::Msg(ServerMessage::Error(e)) => {
                    assert!(e.failure_reason.starts_with("rate limit exceeded"));
                    got_reason = true;
                }
                Event::Close(Some(f)) => {
                    assert_eq!(f.code, CloseCode::Policy);
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(got_reason);
        // A never saw any of them, and is unaffected.
        assert_eq!(a.counts(&[1]).await, vec![(0, 1)]);
        let m = app.metrics().encode();
        assert!(
            m.contains(
                "hivecast_tracker_signals_dropped_total{kind=\"answer\",reason=\"unknown_offer\"} 5"
            ),
            "{m}"
        );
        app.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn connections_per_ip_are_limited() {
    within(async {
        let mut cfg = test_config();
        cfg.limits.max_connections_per_ip = 2;
        let app = start(cfg).await;
        let mut a = Client::connect(app.ws_addr(), "/").await;
        let _b = Client::connect(app.ws_addr(), "/").await;
        let mut c = Client::connect(app.ws_addr(), "/").await;
        assert_eq!(c.failure().await, "too many connections from this address");
        assert!(matches!(c.event().await, Event::Close(Some(f)) if f.code == CloseCode::Again));
        // Another address is unaffected.
        let mut d = Client::connect_from("127.0.0.3", app.ws_addr(), "/").await;
        d.send(&scrape(&[1])).await;
        assert!(matches!(d.recv().await, ServerMessage::Scrape(_)));
        // After A leaves, there is room again.
        a.ws.close(None).await.unwrap();
        assert!(matches!(a.event().await, Event::Close(_) | Event::Ended));
        drop(a);
        let admitted = eventually!({
            let mut e = Client::connect(app.ws_addr(), "/").await;
            e.send(&scrape(&[1])).await;
            matches!(e.event().await, Event::Msg(ServerMessage::Scrape(_)))
        });
        assert!(admitted);
        app.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn total_connections_are_limited() {
    within(async {
        let mut cfg = test_config();
        cfg.limits.max_connections = 1;
        let app = start(cfg).await;
        let _a = Client::connect(app.ws_addr(), "/").await;
        let mut b = Client::connect_from("127.0.0.4", app.ws_addr(), "/").await;
        assert_eq!(
            b.failure().await,
            "tracker is at its connection limit; try again later"
        );
        app.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn swarms_per_connection_are_limited() {
    within(async {
        let mut cfg = test_config();
        cfg.limits.max_swarms_per_connection = 2;
        let app = start(cfg).await;
        let mut c = Client::connect(app.ws_addr(), "/").await;
        for h in [1, 2] {
            c.send(&announce(h, 1, AnnounceEvent::Started, &[])).await;
            assert!(matches!(c.recv().await, ServerMessage::AnnounceResponse(_)));
        }
        c.send(&announce(3, 1, AnnounceEvent::Started, &[])).await;
        assert_eq!(
            c.failure().await,
            "too many swarms on this connection (max 2)"
        );
        // Leaving one makes room.
        c.send(&announce(1, 1, AnnounceEvent::Stopped, &[])).await;
        c.recv().await;
        c.send(&announce(3, 1, AnnounceEvent::Started, &[])).await;
        assert!(matches!(c.recv().await, ServerMessage::AnnounceResponse(_)));
        app.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn info_hash_allow_list() {
    within(async {
        let mut cfg = test_config();
        cfg.access.info_hash_allow = vec![ih(5).to_hex()];
        let app = start(cfg).await;
        let mut c = Client::connect(app.ws_addr(), "/").await;
        c.send(&announce(5, 1, AnnounceEvent::Started, &[])).await;
        assert!(matches!(c.recv().await, ServerMessage::AnnounceResponse(_)));
        c.send(&announce(6, 1, AnnounceEvent::Started, &[])).await;
        let ServerMessage::Error(e) = c.recv().await else {
            panic!()
        };
        assert_eq!(e.failure_reason, "info_hash not allowed on this tracker");
        assert_eq!(e.info_hash, Some(ih(6)));
        c.send(&scrape(&[5, 6])).await;
        assert_eq!(c.failure().await, "info_hash not allowed on this tracker");
        assert_eq!(c.counts(&[5]).await, vec![(0, 1)]);
        app.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn scrape_limits_and_full_scrape() {
    within(async {
        let mut cfg = test_config();
        cfg.limits.max_scrape_info_hashes = 3;
        let app = start(cfg).await;
        let mut c = Client::connect(app.ws_addr(), "/").await;
        c.send(&ClientMessage::Scrape(ScrapeRequest { info_hashes: None }))
            .await;
        assert_eq!(
            c.failure().await,
            "full scrape is not supported; send one or more info_hash values"
        );
        c.send(&scrape(&[1, 2, 3, 4])).await;
        assert_eq!(
            c.failure().await,
            "too many info_hash values in scrape (max 3)"
        );
        // Duplicates collapse into one entry.
        assert_eq!(c.counts(&[1, 1, 2]).await.len(), 2);
        app.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn malformed_messages_get_failure_reasons_and_the_connection_survives() {
    within(async {
        let app = start(test_config()).await;
        let mut c = Client::connect(app.ws_addr(), "/").await;
        for (text, want) in [
            ("not json", "invalid message: "),
            ("[1,2,3]", "invalid message: expected a JSON object"),
            (
                r#"{"action":"announce","info_hash":"x"}"#,
                "invalid info_hash",
            ),
            (
                r#"{"action":"dance"}"#,
                "invalid action in WS request: dance",
            ),
            ("\u{0}\u{1}\u{2}", "invalid message: "),
        ] {
            c.send_text(text.to_owned()).await;
            let got = c.failure().await;
            assert!(got.starts_with(want), "{text:?}: {got}");
        }
        // Binary frames carrying JSON are accepted like text (as bittorrent-tracker does).
        use futures_util::SinkExt;
        c.ws.send(tokio_tungstenite::tungstenite::Message::binary(
            scrape(&[1]).to_json().into_bytes(),
        ))
        .await
        .unwrap();
        assert!(matches!(c.recv().await, ServerMessage::Scrape(_)));
        app.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn peer_id_cannot_be_taken_over_from_another_address() {
    within(async {
        let app = start(test_config()).await;
        let mut a = Client::connect(app.ws_addr(), "/").await;
        a.send(&announce(1, 1, AnnounceEvent::Started, &[])).await;
        a.recv().await;
        let mut evil = Client::connect_from("127.0.0.9", app.ws_addr(), "/").await;
        evil.send(&announce(1, 1, AnnounceEvent::Update, &[])).await;
        assert_eq!(
            evil.failure().await,
            "peer_id is in use by another connection"
        );
        // The same address (a reconnecting client) may take it over.
        let mut again = Client::connect(app.ws_addr(), "/").await;
        again
            .send(&announce(1, 1, AnnounceEvent::Update, &[]))
            .await;
        let ServerMessage::AnnounceResponse(r) = again.recv().await else {
            panic!()
        };
        assert_eq!(r.incomplete, 1);
        app.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn slow_reader_is_dropped_in_bounded_time() {
    within(async {
        let mut cfg = test_config();
        cfg.server.outbound_queue = 4;
        cfg.server.write_timeout = Duration::from_millis(500);
        cfg.limits.max_message_size = bytesize::ByteSize::mib(1);
        let app = start(cfg).await;
        // The victim joins and then never reads again.
        let mut victim = Client::connect(app.ws_addr(), "/").await;
        victim
            .send(&announce(1, 9, AnnounceEvent::Started, &[]))
            .await;
        let mut sender = Client::connect(app.ws_addr(), "/").await;
        sender
            .send(&announce(1, 1, AnnounceEvent::Started, &[]))
            .await;
        sender.recv().await;
        // Each announce relays one ~512 KiB offer to the victim; a few dozen fill the
        // socket buffers, then the queue, and the victim is dropped.
        let big = "s".repeat(512 * 1024);
        let mut dropped = false;
        for round in 0..200u32 {
            sender
                .send(&announce_with_sdp(1, 1, (round % 250) as u8, &big))
                .await;
            let ServerMessage::AnnounceResponse(r) = sender.recv().await else {
                panic!()
            };
            if r.incomplete == 1 {
                dropped = true;
                break;
            }
        }
        assert!(dropped, "the victim was never dropped");
        let m = app.metrics().encode();
        assert!(
            m.contains("hivecast_tracker_slow_readers_dropped_total 1"),
            "{m}"
        );
        assert!(m.contains("hivecast_tracker_disconnects_total{reason=\"slow_reader\"} 1"));
        drop(victim);
        app.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn idle_clients_are_pinged_then_dropped() {
    within(async {
        let mut cfg = test_config();
        cfg.server.ping_interval = Duration::from_millis(100);
        cfg.server.idle_timeout = Duration::from_millis(400);
        let app = start(cfg).await;
        // A client that keeps reading answers pings (tungstenite replies with pongs).
        let mut alive = Client::connect(app.ws_addr(), "/").await;
        let silent = Client::connect(app.ws_addr(), "/").await;
        let reader = tokio::spawn(async move {
            use futures_util::StreamExt;
            let mut pings = 0;
            while let Ok(Some(Ok(m))) =
                tokio::time::timeout(Duration::from_secs(1), alive.ws.next()).await
            {
                if m.is_ping() {
                    pings += 1;
                }
                if pings == 8 {
                    break;
                }
            }
            (pings, alive)
        });
        let (pings, mut alive) = reader.await.unwrap();
        assert_eq!(
            pings, 8,
            "a reading client keeps getting pings, so it outlived the idle timeout"
        );
        alive.send(&scrape(&[1])).await;
        assert!(matches!(alive.recv().await, ServerMessage::Scrape(_)));
        assert!(
            app.metrics()
                .encode()
                .contains("hivecast_tracker_disconnects_total{reason=\"idle\"} 1")
        );
        drop(silent);
        app.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn cleanup_task_expires_silent_peers_but_keeps_their_connection() {
    within(async {
        let mut cfg = test_config();
        cfg.protocol.announce_interval = Duration::from_millis(100);
        cfg.protocol.min_announce_interval = Duration::from_millis(50);
        cfg.swarm.peer_ttl = Duration::from_millis(300);
        cfg.swarm.cleanup_interval = Duration::from_millis(50);
        let app = start(cfg).await;
        let mut a = Client::connect(app.ws_addr(), "/").await;
        a.send(&announce(1, 1, AnnounceEvent::Started, &[])).await;
        let ServerMessage::AnnounceResponse(r) = a.recv().await else {
            panic!()
        };
        assert_eq!(
            (r.interval, r.min_interval),
            (1, Some(1)),
            "intervals are whole seconds, at least 1"
        );
        // A never re-announces: the sweep removes it, the socket stays open.
        let expired = eventually!(a.counts(&[1]).await == vec![(0, 0)]);
        assert!(expired, "the idle peer was not expired");
        assert!(
            app.metrics()
                .encode()
                .contains("hivecast_tracker_expired_total{kind=\"peer\"} 1")
        );
        a.send(&announce(1, 1, AnnounceEvent::Update, &[])).await;
        let ServerMessage::AnnounceResponse(r) = a.recv().await else {
            panic!()
        };
        assert_eq!(r.incomplete, 1, "re-announcing rejoins");
        app.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn graceful_shutdown_closes_clients_with_going_away() {
    within(async {
        let app = start(test_config()).await;
        let mut c = Client::connect(app.ws_addr(), "/").await;
        c.send(&announce(1, 1, AnnounceEvent::Started, &[])).await;
        c.recv().await;
        let admin = app.admin_addr();
        assert_eq!(http_get(admin, "/healthz").await.0, 200);
        let stopping = tokio::spawn(app.shutdown());
        match c.event().await {
            Event::Close(Some(frame)) => {
                assert_eq!(frame.code, CloseCode::Away);
                assert_eq!(frame.reason.as_str(), "tracker shutting down");
            }
            other => panic!("expected a close frame, got {other:?}"),
        }
        assert_eq!(stopping.await.unwrap(), Stopped::Drained);
    })
    .await;
}
