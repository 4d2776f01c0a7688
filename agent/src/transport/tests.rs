//! End-to-end tests: real WebRTC between endpoints in this process, bound to 127.0.0.1.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use bytesize::ByteSize;

use crate::transport::bench::connect_pair;
use crate::transport::{
    CloseReason, FrameReceiver, FrameSender, LinkState, Phase, Transport, TransportConfig,
    TransportError, WebRtcTransport,
};

/// Every test body runs under this limit.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

async fn within<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(TEST_TIMEOUT, future)
        .await
        .expect("test exceeded its time limit")
}

/// Deterministic pseudo-random bytes (xorshift), different per `seed`.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

/// Sends `data` as frames of at most `frame` bytes.
async fn send_all(sender: &FrameSender, data: &[u8], frame: usize) -> Result<(), TransportError> {
    for chunk in data.chunks(frame) {
        sender.send(Bytes::copy_from_slice(chunk)).await?;
    }
    Ok(())
}

/// Receives frames until `len` bytes arrived; returns them concatenated.
async fn receive_exact(
    receiver: &mut FrameReceiver,
    len: usize,
) -> Result<Vec<u8>, TransportError> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        out.extend_from_slice(&receiver.recv().await?);
    }
    Ok(out)
}

/// UDP ports of the host candidates in an SDP.
fn candidate_ports(sdp: &str) -> Vec<u16> {
    let mut ports: Vec<u16> = sdp
        .lines()
        .filter_map(|line| line.strip_prefix("a=candidate:"))
        .filter_map(|candidate| {
            let fields: Vec<&str> = candidate.split_whitespace().collect();
            match fields.as_slice() {
                [_, _, transport, _, _, port, ..] if transport.eq_ignore_ascii_case("udp") => {
                    port.parse().ok()
                }
                _ => None,
            }
        })
        .collect();
    // webrtc 0.21 lists each host candidate for components 1 and 2 (same socket).
    ports.sort_unstable();
    ports.dedup();
    ports
}

fn port_is_free(port: u16) -> bool {
    std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
}

/// Waits (bounded) until the runtime has at most `baseline` tasks alive. There is no event
/// for "a task was reaped", so this polls the runtime metric.
async fn assert_tasks_return_to(baseline: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let alive = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        if alive <= baseline {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{alive} tasks alive, expected at most {baseline}: a connection task leaked"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn loopback() -> TransportConfig {
    TransportConfig::loopback()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_flow_both_ways_byte_exact_and_in_order() {
    within(async {
        let (a, b) = connect_pair(&loopback()).await.expect("connect");
        assert_eq!(a.handle.state(), LinkState::Open);
        assert!(a.handle.stats().connect_time.is_some());

        // 2 MB as 64 KiB frames from a to b, and a mix of sizes from b to a, concurrently.
        let a_to_b = pattern(1, 2_000_000);
        let b_to_a: Vec<Vec<u8>> = [1_usize, 2, 100, 1200, 16 * 1024, 65_535, 65_536, 3, 40_000]
            .iter()
            .enumerate()
            .map(|(index, len)| pattern(100 + index as u64, *len))
            .collect();
        let b_total: usize = b_to_a.iter().map(Vec::len).sum();

        let (a_tx, mut a_rx, a_handle) = a.into_parts();
        let (b_tx, mut b_rx, b_handle) = b.into_parts();
        let a_payload = a_to_b.clone();
        let b_payload = b_to_a.clone();
        let send_a =
            tokio::spawn(
                async move { send_all(&a_tx, &a_payload, 64 * 1024).await.map(|()| a_tx) },
            );
        let send_b = tokio::spawn(async move {
            for frame in &b_payload {
                b_tx.send(Bytes::copy_from_slice(frame)).await?;
            }
            Ok::<_, TransportError>(b_tx)
        });
        let got_b = receive_exact(&mut b_rx, a_to_b.len())
            .await
            .expect("b receives");
        assert!(got_b == a_to_b, "2 MB stream corrupted or reordered");

        // Frames keep their boundaries.
        for expected in &b_to_a {
            let frame = a_rx.recv().await.expect("a receives");
            assert_eq!(frame.as_ref(), expected.as_slice());
        }
        let a_tx = send_a.await.expect("join").expect("a sends");
        let _b_tx = send_b.await.expect("join").expect("b sends");

        let a_stats = a_handle.stats();
        let b_stats = b_handle.stats();
        assert_eq!(a_stats.bytes_sent, a_to_b.len() as u64);
        assert_eq!(a_stats.frames_sent, 31);
        assert_eq!(b_stats.bytes_received, a_to_b.len() as u64);
        assert_eq!(b_stats.frames_received, 31);
        assert_eq!(b_stats.bytes_sent, b_total as u64);
        assert_eq!(a_stats.frames_received, b_to_a.len() as u64);
        assert!(a_stats.open_for.is_some());

        // Bad frames from the application are refused without harming the link.
        let too_big = a_tx.send(Bytes::from(vec![0_u8; 65_537])).await;
        assert!(matches!(
            too_big,
            Err(TransportError::FrameTooLarge {
                size: 65_537,
                limit: 65_536
            })
        ));
        assert!(matches!(
            a_tx.send(Bytes::new()).await,
            Err(TransportError::EmptyFrame)
        ));
        a_tx.send(Bytes::from_static(b"still works"))
            .await
            .expect("send after refusals");
        assert_eq!(b_rx.recv().await.expect("recv").as_ref(), b"still works");

        assert_eq!(a_handle.close().await, CloseReason::Local);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtt_is_measured() {
    within(async {
        let (a, _b) = connect_pair(&loopback()).await.expect("connect");
        // The first refresh runs when the link opens; STUN consent checks give the pair an RTT
        // within a few seconds. Wait for it with a bounded poll (no event exists).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(rtt) = a.handle.stats().rtt {
                assert!(rtt < Duration::from_secs(1), "loopback RTT {rtt:?}");
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "RTT never measured");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        a.handle.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_waits_for_a_receiver_that_does_not_read() {
    within(async {
        let config = TransportConfig {
            recv_queue_frames: 4,
            send_buffer_limit: ByteSize::kib(256),
            ..loopback()
        };
        let (a, b) = connect_pair(&config).await.expect("connect");
        let (a_tx, _a_rx, a_handle) = a.into_parts();
        let (_b_tx, mut b_rx, _b_handle) = b.into_parts();

        const FRAME: usize = 64 * 1024;
        const FRAMES: usize = 1024; // 64 MiB: far beyond every buffer on the path
        let sent = Arc::new(AtomicUsize::new(0));
        let sent_by_task = Arc::clone(&sent);
        let mut sending = tokio::spawn(async move {
            for index in 0..FRAMES {
                let mut frame = BytesMut::zeroed(FRAME);
                frame[..8].copy_from_slice(&(index as u64).to_le_bytes());
                a_tx.send(frame.freeze()).await?;
                sent_by_task.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, TransportError>(())
        });

        // Nobody reads on b: the sender must stall instead of buffering 64 MiB.
        let stalled = tokio::time::timeout(Duration::from_secs(3), &mut sending).await;
        assert!(
            stalled.is_err(),
            "sender finished although nobody was reading"
        );
        let in_flight = sent.load(Ordering::Relaxed);
        // Bound, in messages: our queue (4) + the crate's per-channel event queue (256) + the
        // `rtc` core's read backlog (256) + SCTP window (1 MiB = 16 frames) + send buffer
        // (256 KiB = 4 frames), plus slack for frames in flight.
        assert!(
            in_flight < 4 + 256 + 256 + 16 + 4 + 16,
            "{in_flight} frames accepted with no reader"
        );
        assert!(
            in_flight > 4,
            "only {in_flight} frames sent before stalling"
        );
        let stats = a_handle.stats();
        assert_eq!(stats.frames_sent, in_flight as u64);

        // Reading resumes the flow; everything arrives, in order.
        for index in 0..FRAMES {
            let frame = b_rx.recv().await.expect("recv");
            assert_eq!(frame.len(), FRAME);
            assert_eq!(
                frame[..8],
                (index as u64).to_le_bytes(),
                "frame {index} out of order"
            );
        }
        sending.await.expect("join").expect("send");
        a_handle.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_sdp_gives_clear_errors() {
    within(async {
        let baseline = tokio::runtime::Handle::current().metrics().num_alive_tasks();
        let transport = WebRtcTransport::new(loopback()).expect("transport");

        let error = transport.accept_offer("hello, I am not an SDP").await.expect_err("garbage accepted");
        assert!(matches!(error, TransportError::InvalidSdp(_)), "{error:?}");
        assert!(error.to_string().starts_with("invalid SDP"), "{error}");
        assert!(error.is_peer_misbehaviour());

        let no_data = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n";
        let error = transport.accept_offer(no_data).await.expect_err("audio-only accepted");
        assert!(
            matches!(&error, TransportError::InvalidSdp(message) if message.contains("m=application")),
            "{error:?}"
        );

        let huge = "v=0\r\n".repeat(20_000);
        let error = transport.accept_offer(&huge).await.expect_err("huge SDP accepted");
        assert!(matches!(error, TransportError::InvalidSdp(_)), "{error:?}");

        // A garbage answer ends the offer's connection; its sockets are released.
        let offer = transport.create_offer().await.expect("offer");
        let ports = candidate_ports(offer.sdp());
        assert!(!ports.is_empty(), "offer without host candidates: {}", offer.sdp());
        assert!(ports.iter().all(|port| !port_is_free(*port)), "socket not bound while pending");
        let error = offer.connect("garbage").await.expect_err("garbage answer accepted");
        assert!(matches!(error, TransportError::InvalidSdp(_)), "{error:?}");
        assert!(ports.iter().all(|port| port_is_free(*port)), "socket still bound after failure");

        let offer = transport.create_offer().await.expect("offer");
        let error = offer.connect(&huge).await.expect_err("huge answer accepted");
        assert!(matches!(error, TransportError::InvalidSdp(_)), "{error:?}");
        assert_tasks_return_to(baseline).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_times_out_when_the_answer_is_never_applied() {
    within(async {
        let baseline = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        let config = TransportConfig {
            offer_timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_millis(1500),
            ..loopback()
        };
        let transport = WebRtcTransport::new(config).expect("transport");
        let offer = transport.create_offer().await.expect("offer");
        let answer = transport.accept_offer(offer.sdp()).await.expect("answer");
        let mut ports = candidate_ports(offer.sdp());
        ports.extend(candidate_ports(answer.sdp()));
        assert_eq!(ports.len(), 2, "expected one host candidate each");
        assert!(ports.iter().all(|port| !port_is_free(*port)));
        let answer_sdp = answer.sdp().to_owned();

        // The answer never reaches the offerer: the answering side gives up.
        let started = tokio::time::Instant::now();
        let error = answer
            .connect()
            .await
            .expect_err("connected without the answer applied");
        assert!(
            matches!(
                error,
                TransportError::Timeout {
                    phase: Phase::Connecting,
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(error.to_string(), "timed out after 1.5s while connecting");

        // The offer expired long before: applying the answer now is refused.
        let error = offer
            .connect(&answer_sdp)
            .await
            .expect_err("expired offer connected");
        assert!(
            matches!(
                error,
                TransportError::Timeout {
                    phase: Phase::AwaitingAnswer,
                    ..
                }
            ),
            "{error:?}"
        );

        // Sockets closed and tasks (ours and the crate's drivers) gone.
        assert!(
            ports.iter().all(|port| port_is_free(*port)),
            "sockets leaked"
        );
        assert_tasks_return_to(baseline).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_pending_handles_releases_everything() {
    within(async {
        let baseline = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        let transport = WebRtcTransport::new(loopback()).expect("transport");
        let offer = transport.create_offer().await.expect("offer");
        let answer = transport.accept_offer(offer.sdp()).await.expect("answer");
        let mut ports = candidate_ports(offer.sdp());
        ports.extend(candidate_ports(answer.sdp()));
        drop(offer);
        drop(answer);
        assert_tasks_return_to(baseline).await;
        assert!(
            ports.iter().all(|port| port_is_free(*port)),
            "sockets leaked"
        );

        // An open link whose parts are all dropped is closed too, and the peer sees it.
        let (a, b) = connect_pair(&loopback()).await.expect("connect");
        drop(a);
        assert_eq!(b.handle.closed().await, CloseReason::Remote);
        drop(b);
        assert_tasks_return_to(baseline).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_one_side_is_seen_by_the_other() {
    within(async {
        let baseline = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        let (a, b) = connect_pair(&loopback()).await.expect("connect");
        let (_a_tx, _a_rx, a_handle) = a.into_parts();
        let (b_tx, mut b_rx, b_handle) = b.into_parts();

        assert_eq!(a_handle.close().await, CloseReason::Local);
        assert_eq!(a_handle.state(), LinkState::Closed);
        // Closing again is harmless.
        assert_eq!(a_handle.close().await, CloseReason::Local);

        let error = b_rx.recv().await.expect_err("frame after peer closed");
        assert!(
            matches!(error, TransportError::Closed(CloseReason::Remote)),
            "{error:?}"
        );
        assert_eq!(b_handle.closed().await, CloseReason::Remote);
        let error = b_tx
            .send(Bytes::from_static(b"late"))
            .await
            .expect_err("send on closed link");
        assert!(
            matches!(error, TransportError::Closed(CloseReason::Remote)),
            "{error:?}"
        );
        assert!(b_tx.is_closed());
        drop((b_tx, b_rx, b_handle, a_handle));
        assert_tasks_return_to(baseline).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_concurrent_links() {
    within(async {
        let config = loopback();
        let mut tasks = Vec::new();
        for link in 0..4_u64 {
            let config = config.clone();
            tasks.push(tokio::spawn(async move {
                let (a, b) = connect_pair(&config).await?;
                let (a_tx, mut a_rx, a_handle) = a.into_parts();
                let (b_tx, mut b_rx, _b_handle) = b.into_parts();
                let forward = pattern(link * 2, 1_000_000);
                let backward = pattern(link * 2 + 1, 700_000);
                let (sent_a, sent_b, got_b, got_a) = tokio::join!(
                    send_all(&a_tx, &forward, 60_000),
                    send_all(&b_tx, &backward, 64 * 1024),
                    receive_exact(&mut b_rx, forward.len()),
                    receive_exact(&mut a_rx, backward.len()),
                );
                sent_a?;
                sent_b?;
                assert!(got_b? == forward, "link {link}: forward stream corrupted");
                assert!(got_a? == backward, "link {link}: backward stream corrupted");
                a_handle.close().await;
                Ok::<_, TransportError>(())
            }));
        }
        for task in tasks {
            task.await.expect("join").expect("link");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frame_from_a_hostile_peer_closes_the_link() {
    within(async {
        let attacker = WebRtcTransport::new(loopback()).expect("transport");
        let victim = WebRtcTransport::new(TransportConfig {
            max_frame_size: ByteSize::kib(16),
            ..loopback()
        })
        .expect("transport");
        let offer = attacker.create_offer().await.expect("offer");
        let answer = victim.accept_offer(offer.sdp()).await.expect("answer");
        // The SDP advertises the stack's 64 KiB; the 16 KiB frame limit is our own policy.
        assert!(
            answer.sdp().contains("a=max-message-size:65536"),
            "{}",
            answer.sdp()
        );
        let answer_sdp = answer.sdp().to_owned();
        let (attacker_link, victim_link) =
            tokio::join!(offer.connect(&answer_sdp), answer.connect());
        let (attacker_tx, _attacker_rx, attacker_handle) =
            attacker_link.expect("attacker").into_parts();
        let (_victim_tx, mut victim_rx, victim_handle) = victim_link.expect("victim").into_parts();

        attacker_tx
            .send(Bytes::from(vec![1_u8; 1000]))
            .await
            .expect("small frame");
        attacker_tx
            .send(Bytes::from(vec![2_u8; 32 * 1024]))
            .await
            .expect("large frame");
        assert_eq!(victim_rx.recv().await.expect("small frame").len(), 1000);
        let error = victim_rx
            .recv()
            .await
            .expect_err("oversized frame delivered");
        assert!(
            matches!(
                error,
                TransportError::Closed(CloseReason::PeerFrameTooLarge {
                    size: 32_768,
                    limit: 16_384
                })
            ),
            "{error:?}"
        );
        assert!(error.is_peer_misbehaviour());
        assert!(
            victim_handle
                .close_reason()
                .is_some_and(|reason| reason.is_peer_misbehaviour())
        );
        assert_eq!(attacker_handle.closed().await, CloseReason::Remote);
    })
    .await;
}

/// A peer built directly on the `webrtc` crate, for behaviour our own API cannot produce.
mod raw_peer {
    use std::sync::Arc;

    use webrtc::data_channel::{DataChannel, DataChannelEvent, RTCDataChannelInit};
    use webrtc::peer_connection::{
        PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState,
        RTCSessionDescription, SettingEngineBuilder,
    };

    struct Gathered(tokio::sync::watch::Sender<bool>);

    #[async_trait::async_trait]
    impl PeerConnectionEventHandler for Gathered {
        async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
            if state == RTCIceGatheringState::Complete {
                self.0.send_replace(true);
            }
        }
    }

    pub(super) struct RawOfferer {
        pub(super) pc: Arc<dyn PeerConnection>,
        pub(super) channels: Vec<Arc<dyn DataChannel>>,
        pub(super) sdp: String,
    }

    /// Creates an offerer with one data channel per `init`.
    pub(super) async fn offerer(inits: Vec<RTCDataChannelInit>) -> RawOfferer {
        let (gathered_tx, mut gathered_rx) = tokio::sync::watch::channel(false);
        let pc = PeerConnectionBuilder::new()
            .with_setting_engine(
                SettingEngineBuilder::new()
                    .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
                    .build(),
            )
            .with_handler(Arc::new(Gathered(gathered_tx)))
            .with_udp_addrs(vec!["127.0.0.1:0".to_owned()])
            .build()
            .await
            .expect("raw peer connection");
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        let mut channels = Vec::new();
        for (index, init) in inits.into_iter().enumerate() {
            let label = format!("raw{index}");
            channels.push(
                pc.create_data_channel(&label, Some(init))
                    .await
                    .expect("channel"),
            );
        }
        let offer = pc.create_offer(None).await.expect("offer");
        pc.set_local_description(offer)
            .await
            .expect("local description");
        gathered_rx.wait_for(|done| *done).await.expect("gathering");
        let sdp = pc.local_description().await.expect("local description").sdp;
        RawOfferer { pc, channels, sdp }
    }

    impl RawOfferer {
        pub(super) async fn apply_answer(&self, sdp: &str) {
            let answer = RTCSessionDescription::answer(sdp.to_owned()).expect("answer parses");
            self.pc
                .set_remote_description(answer)
                .await
                .expect("remote description");
        }
    }

    pub(super) async fn wait_open(channel: &Arc<dyn DataChannel>) {
        while let Some(event) = channel.poll().await {
            if matches!(event, DataChannelEvent::OnOpen) {
                return;
            }
        }
        panic!("raw channel closed before opening");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_message_from_peer_is_a_protocol_violation() {
    use webrtc::data_channel::RTCDataChannelInit;
    within(async {
        let victim = WebRtcTransport::new(loopback()).expect("transport");
        let raw = raw_peer::offerer(vec![RTCDataChannelInit::default()]).await;
        let answer = victim.accept_offer(&raw.sdp).await.expect("answer");
        raw.apply_answer(answer.sdp()).await;
        let link = answer.connect().await.expect("victim connects");
        let channel = &raw.channels[0];
        raw_peer::wait_open(channel).await;
        channel
            .send(BytesMut::from(&b"binary first"[..]))
            .await
            .expect("send binary");
        channel.send_text("then text").await.expect("send text");

        let (_tx, mut rx, handle) = link.into_parts();
        assert_eq!(
            rx.recv().await.expect("binary frame").as_ref(),
            b"binary first"
        );
        let error = rx.recv().await.expect_err("text delivered");
        assert!(
            matches!(
                error,
                TransportError::Closed(CloseReason::PeerProtocolViolation(_))
            ),
            "{error:?}"
        );
        assert!(handle.closed().await.is_peer_misbehaviour());
        raw.pc.close().await.expect("close raw peer");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreliable_channel_from_peer_is_refused() {
    use webrtc::data_channel::RTCDataChannelInit;
    within(async {
        let baseline = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        let victim = WebRtcTransport::new(loopback()).expect("transport");
        let raw = raw_peer::offerer(vec![RTCDataChannelInit {
            ordered: false,
            max_retransmits: Some(0),
            ..RTCDataChannelInit::default()
        }])
        .await;
        let answer = victim.accept_offer(&raw.sdp).await.expect("answer");
        raw.apply_answer(answer.sdp()).await;
        let error = answer
            .connect()
            .await
            .expect_err("unreliable channel accepted");
        assert!(
            matches!(
                error,
                TransportError::Closed(CloseReason::PeerProtocolViolation(_))
            ),
            "{error:?}"
        );
        assert!(error.is_peer_misbehaviour());
        raw.pc.close().await.expect("close raw peer");
        drop(raw);
        assert_tasks_return_to(baseline).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_channels_from_peer_are_closed_and_the_first_is_used() {
    use webrtc::data_channel::{DataChannelEvent, RTCDataChannelInit};
    within(async {
        let victim = WebRtcTransport::new(loopback()).expect("transport");
        let raw = raw_peer::offerer(vec![
            RTCDataChannelInit::default(),
            RTCDataChannelInit::default(),
        ])
        .await;
        let answer = victim.accept_offer(&raw.sdp).await.expect("answer");
        raw.apply_answer(answer.sdp()).await;
        let link = answer.connect().await.expect("victim connects");
        let (first, second) = (&raw.channels[0], &raw.channels[1]);
        raw_peer::wait_open(first).await;

        // Which channel the victim took depends on open order; it closes the other one.
        let mut closed = None;
        for (index, channel) in [first, second].into_iter().enumerate() {
            let probe = tokio::time::timeout(Duration::from_secs(3), async {
                while let Some(event) = channel.poll().await {
                    if matches!(event, DataChannelEvent::OnClose) {
                        return true;
                    }
                }
                true
            });
            if probe.await.unwrap_or(false) {
                closed = Some(index);
                break;
            }
        }
        let closed = closed.expect("no extra channel was closed");
        let used = if closed == 0 { second } else { first };
        used.send(BytesMut::from(&b"on the kept channel"[..]))
            .await
            .expect("send");
        let (_tx, mut rx, handle) = link.into_parts();
        assert_eq!(
            rx.recv().await.expect("frame").as_ref(),
            b"on the kept channel"
        );
        assert_eq!(handle.state(), LinkState::Open);
        handle.close().await;
        raw.pc.close().await.expect("close raw peer");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_config_is_refused() {
    let config = TransportConfig {
        udp_bind: vec!["not an address".to_owned()],
        ..loopback()
    };
    let error = WebRtcTransport::new(config).expect_err("invalid config accepted");
    assert!(matches!(error, TransportError::Config(_)), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_above_the_peers_advertised_limit_is_refused() {
    within(async {
        let transport = WebRtcTransport::new(loopback()).expect("transport");
        let offer = transport.create_offer().await.expect("offer");
        let answer = transport.accept_offer(offer.sdp()).await.expect("answer");
        // The peer accepts at most 16 KiB messages.
        let small_limit = answer
            .sdp()
            .replace("a=max-message-size:65536", "a=max-message-size:16384");
        let (a, b) = tokio::join!(offer.connect(&small_limit), answer.connect());
        let (a_tx, _a_rx, a_handle) = a.expect("offerer").into_parts();
        let (_b_tx, mut b_rx, _b_handle) = b.expect("answerer").into_parts();
        assert_eq!(a_tx.max_frame_size(), 16 * 1024);
        let error = a_tx.send(Bytes::from(vec![7_u8; 32 * 1024])).await;
        assert!(
            matches!(
                error,
                Err(TransportError::FrameTooLarge {
                    size: 32_768,
                    limit: 16_384
                })
            ),
            "{error:?}"
        );
        a_tx.send(Bytes::from(vec![8_u8; 16 * 1024]))
            .await
            .expect("frame within the peer's limit");
        assert_eq!(
            b_rx.recv().await.expect("frame").as_ref(),
            vec![8_u8; 16 * 1024].as_slice()
        );
        a_handle.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gathering_timeout_without_candidates_fails_cleanly() {
    use crate::transport::IceServerConfig;
    within(async {
        let baseline = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        // A "TURN server" that never answers, and relay-only policy: no candidate can appear.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = silent.local_addr().expect("addr").port();
        let config = TransportConfig {
            relay_only: true,
            ice_servers: vec![IceServerConfig {
                urls: vec![format!("turn:127.0.0.1:{port}?transport=udp")],
                username: "user".to_owned(),
                credential: "secret".to_owned(),
            }],
            gather_timeout: Duration::from_millis(500),
            ..loopback()
        };
        let transport = WebRtcTransport::new(config).expect("transport");
        let error = transport
            .create_offer()
            .await
            .expect_err("offer without candidates");
        assert!(
            matches!(
                error,
                TransportError::Timeout {
                    phase: Phase::Gathering,
                    ..
                }
            ),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "timed out after 500ms while gathering ICE candidates"
        );
        assert_tasks_return_to(baseline).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn well_formed_but_unusable_sdp_is_a_signalling_error() {
    within(async {
        let baseline = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        let transport = WebRtcTransport::new(loopback()).expect("transport");
        let offer = transport.create_offer().await.expect("offer");
        // Without a DTLS fingerprint the offer cannot be authenticated.
        let stripped: String = offer
            .sdp()
            .split_inclusive('\n')
            .filter(|line| !line.starts_with("a=fingerprint:"))
            .collect();
        let error = transport
            .accept_offer(&stripped)
            .await
            .expect_err("offer without fingerprint");
        assert!(matches!(error, TransportError::Signalling(_)), "{error:?}");

        let answer = transport.accept_offer(offer.sdp()).await.expect("answer");
        let stripped_answer: String = answer
            .sdp()
            .split_inclusive('\n')
            .filter(|line| !line.starts_with("a=fingerprint:"))
            .collect();
        let error = offer
            .connect(&stripped_answer)
            .await
            .expect_err("answer without fingerprint");
        assert!(matches!(error, TransportError::Signalling(_)), "{error:?}");
        drop(answer);
        assert_tasks_return_to(baseline).await;
    })
    .await;
}
