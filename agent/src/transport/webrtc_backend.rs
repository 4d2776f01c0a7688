//! [`Transport`] implemented with the `webrtc` crate (0.21, async layer over the sans-IO
//! `rtc` core).
//!
//! One *supervisor* task per connection owns the `PeerConnection` and its data channel. It
//! builds the connection, waits for ICE gathering, hands the SDP out, applies the answer,
//! waits for the channel to open, then pumps received messages into the link's bounded frame
//! queue until the link ends; finally it closes the data channel and the connection, which
//! stops the crate's driver task and closes its sockets. Dropping a `PeerConnection` without
//! `close()` would leave the crate's driver running on the runtime, so every exit path of the
//! supervisor goes through the same cleanup.
//!
//! The crate calls [`PeerConnectionEventHandler`] methods on its driver task, so the handler
//! here only forwards state into `watch`/`mpsc` channels and never blocks.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::Instrument;
use webrtc::data_channel::{DataChannel, DataChannelEvent, RTCDataChannelInit};
use webrtc::error::Error as RtcError;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceGatheringState, RTCIceServer, RTCIceTransportPolicy, RTCPeerConnectionState,
    RTCSessionDescription, RTCStatsReportEntry, SettingEngineBuilder, StatsSelector,
};
use webrtc::runtime::Runtime;

use crate::transport::Transport;
use crate::transport::config::{MAX_FRAME_SIZE_LIMIT, MdnsMode, TransportConfig};
use crate::transport::error::{CloseReason, Phase, TransportError};
use crate::transport::link::{
    Command, FrameSink, LinkShared, MAX_SDP_LEN, OpenParts, PendingAnswer, PendingConn,
    PendingOffer, Role, SinkError, SupervisorSide, new_connection,
};
use crate::transport::runtime::TunedTokioRuntime;

/// Label of the one data channel of a link.
pub const DATA_CHANNEL_LABEL: &str = "hivecast";

/// How long a local close waits for the peer to acknowledge the data channel close before
/// the connection is torn down anyway.
const CLOSE_GRACE: Duration = Duration::from_millis(500);

/// How often the RTT of an open link is refreshed from the connection's stats.
const RTT_REFRESH: Duration = Duration::from_secs(5);

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Settings derived once from [`TransportConfig`].
struct Settings {
    config: TransportConfig,
    runtime: Arc<dyn Runtime>,
    ice_servers: Vec<RTCIceServer>,
    max_frame_size: usize,
    send_buffer_limit: usize,
}

/// The `webrtc`-crate backend of [`Transport`]. Cheap to share (`Arc` inside); one per
/// agent.
#[derive(Clone)]
pub struct WebRtcTransport {
    settings: Arc<Settings>,
}

impl std::fmt::Debug for WebRtcTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebRtcTransport")
            .field("config", &self.settings.config)
            .finish()
    }
}

impl WebRtcTransport {
    /// Validates `config` and creates the transport. Binds nothing until a connection is
    /// started.
    pub fn new(config: TransportConfig) -> Result<Self, TransportError> {
        config.validate()?;
        let ice_servers = config
            .ice_servers
            .iter()
            .map(|server| RTCIceServer {
                urls: server.urls.clone(),
                username: server.username.clone(),
                credential: server.credential.clone(),
            })
            .collect();
        // `validate` bounds both values, so the conversions cannot fail.
        let max_frame_size = usize::try_from(config.max_frame_size.as_u64()).unwrap_or(usize::MAX);
        let send_buffer_limit =
            usize::try_from(config.send_buffer_limit.as_u64()).unwrap_or(usize::MAX);
        let udp_buffer = usize::try_from(config.udp_socket_buffer.as_u64()).unwrap_or(usize::MAX);
        Ok(Self {
            settings: Arc::new(Settings {
                runtime: Arc::new(TunedTokioRuntime::new(udp_buffer)),
                config,
                ice_servers,
                max_frame_size,
                send_buffer_limit,
            }),
        })
    }

    async fn start(
        &self,
        role: Role,
        remote_offer: Option<RTCSessionDescription>,
    ) -> Result<(String, PendingConn), TransportError> {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let (pending, side) = new_connection(id, role, self.settings.max_frame_size);
        let (sdp_tx, sdp_rx) = oneshot::channel();
        let supervisor = Supervisor::new(Arc::clone(&self.settings), side);
        let span = tracing::debug_span!("peer_link", id, ?role);
        // The supervisor owns every resource; if this future is dropped before the SDP
        // arrives, the supervisor sees `sdp_tx` closed and cleans up.
        tokio::spawn(supervisor.run(remote_offer, sdp_tx).instrument(span));
        match sdp_rx.await {
            Ok(Ok(sdp)) => Ok((sdp, pending)),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(TransportError::Setup(
                "connection task ended before producing an SDP".to_owned(),
            )),
        }
    }
}

#[async_trait::async_trait]
impl Transport for WebRtcTransport {
    async fn create_offer(&self) -> Result<PendingOffer, TransportError> {
        let (sdp, conn) = self.start(Role::Offerer, None).await?;
        Ok(PendingOffer { sdp, conn })
    }

    async fn accept_offer(&self, offer_sdp: &str) -> Result<PendingAnswer, TransportError> {
        let offer = parse_remote_sdp(offer_sdp, Role::Answerer)?;
        let (sdp, conn) = self.start(Role::Answerer, Some(offer)).await?;
        Ok(PendingAnswer { sdp, conn })
    }

    fn config(&self) -> &TransportConfig {
        &self.settings.config
    }
}

/// Parses a remote SDP (an offer when we answer, an answer when we offered) and checks that
/// it describes a data channel.
fn parse_remote_sdp(sdp: &str, local_role: Role) -> Result<RTCSessionDescription, TransportError> {
    if sdp.len() > MAX_SDP_LEN {
        return Err(TransportError::InvalidSdp(format!(
            "{} bytes, above the {MAX_SDP_LEN}-byte limit",
            sdp.len()
        )));
    }
    let parsed = match local_role {
        Role::Answerer => RTCSessionDescription::offer(sdp.to_owned()),
        Role::Offerer => RTCSessionDescription::answer(sdp.to_owned()),
    }
    .map_err(|error| TransportError::InvalidSdp(error.to_string()))?;
    let session = parsed
        .unmarshal()
        .map_err(|error| TransportError::InvalidSdp(error.to_string()))?;
    let has_data_section = session
        .media_descriptions
        .iter()
        .any(|media| media.media_name.media == "application");
    if !has_data_section {
        return Err(TransportError::InvalidSdp(
            "no data channel (m=application) section".to_owned(),
        ));
    }
    Ok(parsed)
}

/// Forwards the crate's events into channels the supervisor waits on.
struct Handler {
    gathering_done: watch::Sender<bool>,
    connection_state: watch::Sender<RTCPeerConnectionState>,
    channels: mpsc::Sender<Arc<dyn DataChannel>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.gathering_done.send_replace(true);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.connection_state.send_replace(state);
    }

    async fn on_data_channel(&self, data_channel: Arc<dyn DataChannel>) {
        // Never block the driver. A peer flooding us with channels loses the extras (they are
        // dropped unregistered); the supervisor closes the ones it does receive.
        let _ = self.channels.try_send(data_channel);
    }
}

/// Sending half of the data channel.
struct DataChannelSink {
    channel: Arc<dyn DataChannel>,
}

#[async_trait::async_trait]
impl FrameSink for DataChannelSink {
    async fn send_frame(&self, frame: Bytes) -> Result<(), SinkError> {
        // With `with_data_channel_send_buffer_limit` set, this waits while the channel's
        // unacknowledged bytes are at the limit. `BytesMut::from(Bytes)` reuses the buffer
        // when the caller held the only reference.
        match self.channel.send(BytesMut::from(frame)).await {
            Ok(()) => Ok(()),
            Err(RtcError::ErrDataChannelClosed | RtcError::ErrClosedPipe) => Err(SinkError::Closed),
            Err(RtcError::ErrOutboundPacketTooLarge) => Err(SinkError::TooLarge),
            Err(other) => Err(SinkError::Other(other.to_string())),
        }
    }
}

/// How a connection attempt or link ended.
enum Outcome {
    /// Failed before the data channel opened.
    Failed(TransportError),
    /// The open link ended.
    Closed(CloseReason),
}

impl From<TransportError> for Outcome {
    fn from(error: TransportError) -> Self {
        Outcome::Failed(error)
    }
}

/// Marks the link closed when the supervisor future ends, however it ends (including a
/// runtime shutdown), so `LinkHandle::closed` never waits forever.
struct ClosedGuard(Arc<LinkShared>);

impl Drop for ClosedGuard {
    fn drop(&mut self) {
        self.0.set_closed();
    }
}

struct Supervisor {
    settings: Arc<Settings>,
    shared: Arc<LinkShared>,
    commands: mpsc::Receiver<Command>,
    ready: Option<oneshot::Sender<Result<OpenParts, TransportError>>>,
    pc: Option<Arc<dyn PeerConnection>>,
    channel: Option<Arc<dyn DataChannel>>,
    gathering_done: watch::Receiver<bool>,
    connection_state: watch::Receiver<RTCPeerConnectionState>,
    extra_channels: mpsc::Receiver<Arc<dyn DataChannel>>,
    handler: Option<Arc<Handler>>,
    /// The data channel reached the open state.
    opened: bool,
}

impl Supervisor {
    fn new(settings: Arc<Settings>, side: SupervisorSide) -> Self {
        let (gathering_tx, gathering_rx) = watch::channel(false);
        let (state_tx, state_rx) = watch::channel(RTCPeerConnectionState::New);
        let (channels_tx, channels_rx) = mpsc::channel(4);
        Self {
            settings,
            shared: side.shared,
            commands: side.commands,
            ready: Some(side.ready),
            pc: None,
            channel: None,
            gathering_done: gathering_rx,
            connection_state: state_rx,
            extra_channels: channels_rx,
            handler: Some(Arc::new(Handler {
                gathering_done: gathering_tx,
                connection_state: state_tx,
                channels: channels_tx,
            })),
            opened: false,
        }
    }

    async fn run(
        mut self,
        remote_offer: Option<RTCSessionDescription>,
        sdp_tx: oneshot::Sender<Result<String, TransportError>>,
    ) {
        let _closed_guard = ClosedGuard(Arc::clone(&self.shared));
        let mut sdp_tx = Some(sdp_tx);
        let outcome = self.drive(remote_offer, &mut sdp_tx).await;
        let reason = match &outcome {
            Outcome::Closed(reason) => reason.clone(),
            Outcome::Failed(TransportError::Closed(reason)) => reason.clone(),
            Outcome::Failed(_) => CloseReason::ConnectionFailed,
        };
        tracing::debug!(%reason, "peer link ending");
        self.shared.set_closing(reason.clone());
        // Tell the peer (data channel close) only if the channel opened and we are the ones
        // ending it; otherwise there is nobody to tell or nothing to wait for.
        let graceful = self.opened
            && matches!(
                reason,
                CloseReason::Local
                    | CloseReason::Dropped
                    | CloseReason::PeerFrameTooLarge { .. }
                    | CloseReason::PeerProtocolViolation(_)
            );
        self.release(graceful).await;
        self.shared.set_closed();
        // Errors are reported only now, so a caller that sees one knows the sockets and
        // tasks are gone.
        let error = match outcome {
            Outcome::Failed(error) => error,
            Outcome::Closed(reason) => TransportError::Closed(reason),
        };
        if let Some(tx) = sdp_tx.take() {
            let _ = tx.send(Err(error));
        } else if let Some(tx) = self.ready.take() {
            let _ = tx.send(Err(error));
        }
    }

    /// Runs the connection until it fails or ends.
    async fn drive(
        &mut self,
        remote_offer: Option<RTCSessionDescription>,
        sdp_tx: &mut Option<oneshot::Sender<Result<String, TransportError>>>,
    ) -> Outcome {
        let local_sdp = match self.set_up(remote_offer).await {
            Ok(sdp) => sdp,
            Err(outcome) => return outcome,
        };
        let Some(tx) = sdp_tx.take() else {
            return Outcome::Closed(CloseReason::Dropped);
        };
        if tx.send(Ok(local_sdp)).is_err() {
            return Outcome::Closed(CloseReason::Dropped);
        }

        let connect_started = match self.shared.role {
            Role::Offerer => match self.await_answer().await {
                Ok(started) => started,
                Err(outcome) => return outcome,
            },
            Role::Answerer => Instant::now(),
        };
        let channel = match self.await_open(connect_started).await {
            Ok(channel) => channel,
            Err(outcome) => return outcome,
        };

        let (frames_tx, frames_rx) = mpsc::channel(self.settings.config.recv_queue_frames);
        let parts = OpenParts {
            sink: Arc::new(DataChannelSink {
                channel: Arc::clone(&channel),
            }),
            frames: frames_rx,
            peer_max_frame: self.negotiated_max_message().await,
        };
        let connect_time = connect_started.elapsed();
        self.opened = true;
        self.shared.set_open(connect_time);
        tracing::debug!(?connect_time, "data channel open");
        let Some(ready) = self.ready.take() else {
            return Outcome::Closed(CloseReason::Dropped);
        };
        if ready.send(Ok(parts)).is_err() {
            return Outcome::Closed(CloseReason::Dropped);
        }
        let reason = self.pump(channel, &frames_tx).await;
        // Record the reason before the frame queue closes, so the reader sees it.
        self.shared.set_closing(reason.clone());
        drop(frames_tx);
        Outcome::Closed(reason)
    }

    /// Builds the connection and returns the local SDP once gathering is complete.
    async fn set_up(
        &mut self,
        remote_offer: Option<RTCSessionDescription>,
    ) -> Result<String, Outcome> {
        let config = &self.settings.config;
        let mdns_mode = match config.mdns {
            MdnsMode::Disabled => rtc::ice::mdns::MulticastDnsMode::Disabled,
            MdnsMode::QueryOnly => rtc::ice::mdns::MulticastDnsMode::QueryOnly,
        };
        // The stack is always told 64 KiB, whatever `max_frame_size` is: webrtc 0.21 drops an
        // inbound message above its limit inside SCTP without telling anyone (ErrShortBuffer,
        // logged by the crate), so a smaller frame limit is enforced here instead, where a
        // violation can close the link with a reason.
        let max_message = u32::try_from(MAX_FRAME_SIZE_LIMIT).unwrap_or(u32::MAX);
        let window = u32::try_from(config.sctp_receive_window.as_u64()).unwrap_or(u32::MAX);
        let setting_engine = SettingEngineBuilder::new()
            .with_multicast_dns_mode(mdns_mode)
            .with_sctp_max_message_size(
                rtc::peer_connection::configuration::setting_engine::SctpMaxMessageSize::Bounded(
                    max_message,
                ),
            )
            .with_sctp_max_receive_buffer_size(window)
            .build();
        let policy = if config.relay_only {
            RTCIceTransportPolicy::Relay
        } else {
            RTCIceTransportPolicy::All
        };
        let configuration = RTCConfigurationBuilder::new()
            .with_ice_servers(self.settings.ice_servers.clone())
            .with_ice_transport_policy(policy)
            .build();
        let Some(handler) = self.handler.take() else {
            return Err(setup_error("handler already used"));
        };
        let pc = PeerConnectionBuilder::new()
            .with_configuration(configuration)
            .with_setting_engine(setting_engine)
            .with_handler(handler)
            .with_runtime(Arc::clone(&self.settings.runtime))
            .with_udp_addrs(config.udp_bind.clone())
            .with_data_channel_send_buffer_limit(self.settings.send_buffer_limit)
            .with_dedicated_reactor_pool_size(config.reactor_threads)
            .build()
            .await
            .map_err(setup_error)?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        self.pc = Some(Arc::clone(&pc));

        let description = match remote_offer {
            None => {
                let init = RTCDataChannelInit {
                    ordered: true,
                    ..RTCDataChannelInit::default()
                };
                let channel = pc
                    .create_data_channel(DATA_CHANNEL_LABEL, Some(init))
                    .await
                    .map_err(setup_error)?;
                self.channel = Some(channel);
                pc.create_offer(None).await.map_err(setup_error)?
            }
            Some(offer) => {
                pc.set_remote_description(offer)
                    .await
                    .map_err(|error| TransportError::Signalling(error.to_string()))?;
                pc.create_answer(None)
                    .await
                    .map_err(|error| TransportError::Signalling(error.to_string()))?
            }
        };
        pc.set_local_description(description)
            .await
            .map_err(setup_error)?;

        self.await_gathering().await
    }

    /// Waits until ICE gathering completes, at most `gather_timeout`, and returns the local
    /// SDP. On timeout the SDP is used with the candidates found so far, if there are any.
    async fn await_gathering(&mut self) -> Result<String, Outcome> {
        let limit = self.settings.config.gather_timeout;
        let mut gathering = self.gathering_done.clone();
        let finished = tokio::select! {
            done = gathering.wait_for(|done| *done) => {
                if done.is_err() {
                    return Err(setup_error("connection stopped while gathering"));
                }
                true
            }
            _ = tokio::time::sleep(limit) => false,
            command = self.commands.recv() => return Err(early_command(command)),
        };
        let Some(pc) = &self.pc else {
            return Err(setup_error("no peer connection"));
        };
        let Some(local) = pc.local_description().await else {
            return Err(setup_error("no local description after gathering"));
        };
        // Without trickle ICE an SDP without candidates can never connect.
        let has_candidate = local.sdp.contains("a=candidate:");
        match (finished, has_candidate) {
            (true, true) => Ok(local.sdp),
            (false, true) => {
                tracing::warn!(
                    ?limit,
                    "ICE gathering incomplete; sending the candidates found so far"
                );
                Ok(local.sdp)
            }
            (true, false) => Err(TransportError::Setup(
                "ICE gathering found no candidates (check udp_bind and ice_servers)".to_owned(),
            )
            .into()),
            (false, false) => Err(TransportError::Timeout {
                phase: Phase::Gathering,
                after: limit,
            }
            .into()),
        }
    }

    /// Offerer: waits for the answer (at most `offer_timeout`) and applies it. Returns when
    /// the connect phase starts.
    async fn await_answer(&mut self) -> Result<Instant, Outcome> {
        let limit = self.settings.config.offer_timeout;
        let command = tokio::select! {
            command = self.commands.recv() => command,
            _ = tokio::time::sleep(limit) => {
                return Err(TransportError::Timeout { phase: Phase::AwaitingAnswer, after: limit }.into());
            }
        };
        match command {
            Some(Command::ApplyAnswer(sdp)) => {
                let started = Instant::now();
                let answer = parse_remote_sdp(&sdp, Role::Offerer)?;
                let Some(pc) = &self.pc else {
                    return Err(setup_error("no peer connection"));
                };
                pc.set_remote_description(answer)
                    .await
                    .map_err(|error| TransportError::Signalling(error.to_string()))?;
                Ok(started)
            }
            other => Err(early_command(other)),
        }
    }

    /// Waits until the data channel is open, at most `connect_timeout` after `started`.
    async fn await_open(&mut self, started: Instant) -> Result<Arc<dyn DataChannel>, Outcome> {
        let limit = self.settings.config.connect_timeout;
        let deadline = tokio::time::Instant::from_std(started) + limit;
        let own_channel = self.channel.clone();
        loop {
            tokio::select! {
                command = self.commands.recv() => {
                    match command {
                        Some(Command::ApplyAnswer(_)) => {
                            tracing::debug!("ignoring a second answer");
                        }
                        other => return Err(early_command(other)),
                    }
                }
                changed = self.connection_state.changed() => {
                    if changed.is_err() {
                        return Err(TransportError::Closed(CloseReason::Remote).into());
                    }
                    let state = *self.connection_state.borrow_and_update();
                    match state {
                        RTCPeerConnectionState::Failed => return Err(TransportError::IceFailed.into()),
                        RTCPeerConnectionState::Closed => {
                            return Err(TransportError::Closed(CloseReason::Remote).into());
                        }
                        _ => {}
                    }
                }
                event = poll_channel(own_channel.as_ref()) => {
                    match event {
                        Some(DataChannelEvent::OnOpen) => {
                            if let Some(channel) = own_channel.clone() {
                                return Ok(channel);
                            }
                        }
                        None | Some(DataChannelEvent::OnClose) => {
                            return Err(TransportError::Closed(CloseReason::Remote).into());
                        }
                        Some(_) => {}
                    }
                }
                incoming = self.extra_channels.recv(), if own_channel.is_none() => {
                    let Some(channel) = incoming else {
                        return Err(TransportError::Closed(CloseReason::Remote).into());
                    };
                    check_channel_contract(channel.as_ref()).await?;
                    self.channel = Some(Arc::clone(&channel));
                    // `on_data_channel` is called at OnOpen; the OnOpen event is still queued
                    // on the channel and the pump skips it.
                    return Ok(channel);
                }
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(TransportError::Timeout { phase: Phase::Connecting, after: limit }.into());
                }
            }
        }
    }

    /// Moves received messages into the frame queue until the link ends.
    async fn pump(
        &mut self,
        channel: Arc<dyn DataChannel>,
        frames: &mpsc::Sender<Bytes>,
    ) -> CloseReason {
        let max = self.settings.max_frame_size;
        let mut pending: Option<Bytes> = None;
        // Set when the application dropped its receiver: frames are then counted and dropped.
        let mut deliver = true;
        let mut extras_open = true;
        let mut rtt_tick = tokio::time::interval(RTT_REFRESH);
        rtt_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = self.commands.recv() => {
                    match command {
                        Some(Command::Close) => return CloseReason::Local,
                        Some(Command::ApplyAnswer(_)) => {}
                        None => return CloseReason::Dropped,
                    }
                }
                changed = self.connection_state.changed() => {
                    if changed.is_err() {
                        return CloseReason::ConnectionFailed;
                    }
                    let state = *self.connection_state.borrow_and_update();
                    match state {
                        RTCPeerConnectionState::Failed => return CloseReason::ConnectionFailed,
                        RTCPeerConnectionState::Closed => return CloseReason::Remote,
                        _ => {}
                    }
                }
                permit = frames.reserve(), if pending.is_some() => {
                    match permit {
                        Ok(permit) => {
                            if let Some(frame) = pending.take() {
                                permit.send(frame);
                            }
                        }
                        Err(_) => {
                            deliver = false;
                            pending = None;
                        }
                    }
                }
                event = channel.poll(), if pending.is_none() => {
                    match event {
                        None | Some(DataChannelEvent::OnClose) => return CloseReason::Remote,
                        Some(DataChannelEvent::OnMessage(message)) => {
                            if message.is_string {
                                return CloseReason::PeerProtocolViolation("text message on the data channel");
                            }
                            let size = message.data.len();
                            if size > max {
                                return CloseReason::PeerFrameTooLarge { size, limit: max };
                            }
                            self.shared.record_received(size);
                            if deliver {
                                let frame = message.data.freeze();
                                match frames.try_send(frame) {
                                    Ok(()) => {}
                                    Err(mpsc::error::TrySendError::Full(frame)) => pending = Some(frame),
                                    Err(mpsc::error::TrySendError::Closed(_)) => deliver = false,
                                }
                            }
                        }
                        Some(_) => {}
                    }
                }
                extra = self.extra_channels.recv(), if extras_open => {
                    match extra {
                        Some(extra) => {
                            tracing::debug!("closing an extra data channel opened by the peer");
                            let _ = extra.close().await;
                        }
                        None => extras_open = false,
                    }
                }
                _ = rtt_tick.tick() => self.refresh_rtt().await,
            }
        }
    }

    /// The maximum message size negotiated with the peer (the smaller of both sides').
    async fn negotiated_max_message(&self) -> Option<usize> {
        let sctp = self.pc.as_ref()?.sctp().await?;
        let size = sctp.max_message_size().await.ok()?;
        usize::try_from(size).ok()
    }

    async fn refresh_rtt(&self) {
        let Some(pc) = &self.pc else { return };
        let report = pc.get_stats(Instant::now(), StatsSelector::None).await;
        let Some(transport) = report.transport() else {
            return;
        };
        if let Some(RTCStatsReportEntry::IceCandidatePair(pair)) =
            report.get(&transport.selected_candidate_pair_id)
            && pair.current_round_trip_time.is_finite()
            && pair.current_round_trip_time > 0.0
        {
            self.shared
                .set_rtt(Duration::from_secs_f64(pair.current_round_trip_time));
        }
    }

    /// Closes the data channel (waiting briefly for the peer to see it when `graceful`) and
    /// the connection, which stops the crate's driver and closes the sockets.
    async fn release(&mut self, graceful: bool) {
        if let Some(channel) = self.channel.take()
            && graceful
            && channel.close().await.is_ok()
        {
            let wait_closed = async {
                while let Some(event) = channel.poll().await {
                    if matches!(event, DataChannelEvent::OnClose) {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(CLOSE_GRACE, wait_closed).await;
        }
        if let Some(pc) = self.pc.take()
            && let Err(error) = pc.close().await
        {
            tracing::debug!(%error, "peer connection close reported an error");
        }
        // Channels the peer opened that we never took: drop them with the connection.
        self.extra_channels.close();
        while self.extra_channels.try_recv().is_ok() {}
    }
}

/// Polls `channel` if there is one; pends forever otherwise (answerer before the peer's
/// channel arrives).
async fn poll_channel(channel: Option<&Arc<dyn DataChannel>>) -> Option<DataChannelEvent> {
    match channel {
        Some(channel) => channel.poll().await,
        None => std::future::pending().await,
    }
}

/// The peer's channel must be reliable and ordered: frames are a byte stream's pieces.
async fn check_channel_contract(channel: &dyn DataChannel) -> Result<(), Outcome> {
    let ordered = channel.ordered().await.unwrap_or(false);
    let retransmits = channel.max_retransmits().await.ok().flatten();
    let lifetime = channel.max_packet_life_time().await.ok().flatten();
    if ordered && retransmits.is_none() && lifetime.is_none() {
        Ok(())
    } else {
        Err(TransportError::Closed(CloseReason::PeerProtocolViolation(
            "data channel must be reliable and ordered",
        ))
        .into())
    }
}

/// Maps a command received before the link is open to its outcome.
fn early_command(command: Option<Command>) -> Outcome {
    match command {
        Some(Command::Close) => TransportError::Closed(CloseReason::Local).into(),
        Some(Command::ApplyAnswer(_)) => TransportError::Setup(
            "answer applied to a connection that is not an offer waiting for one".to_owned(),
        )
        .into(),
        None => TransportError::Closed(CloseReason::Dropped).into(),
    }
}

fn setup_error(error: impl std::fmt::Display) -> Outcome {
    Outcome::Failed(TransportError::Setup(error.to_string()))
}
