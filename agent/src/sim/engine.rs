//! The event loop of the simulator. See the parent module for the model.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::core::edge::EdgeClock;
use crate::core::ids::{Digest, PeerId};
use crate::core::peer_proto::{DATA_HEADER_LEN, MAX_FRAME_LEN, Message};
use crate::core::policy::next_reload;
use crate::core::scheduler::{
    Action, PlayerOutcome, PlaylistUpdate, RefuseReason, Scheduler, SchedulerConfig, SegmentInfo,
    SegmentStatus,
};
use crate::core::stripes::{self, Stripes};
use crate::sim::mesh::Mesh;
use crate::sim::queue::CalendarQueue;
use crate::sim::{OriginFetches, SimConfig, SimReport};

type Us = u64;

const CHUNK: u64 = (MAX_FRAME_LEN - DATA_HEADER_LEN) as u64;
const PROGRESS_EVERY: Us = 250_000;

fn us(secs: f64) -> Us {
    (secs.max(0.0) * 1e6).round() as Us
}

#[derive(Debug)]
enum Ev {
    Join(u32),
    Churn,
    FailUploader,
    Poll(u32),
    Timer(u32),
    Tracker(u32),
    Connect(u32, u32),
    Deliver {
        to: u32,
        from: u32,
        msg: SimMsg,
    },
    Disconnect {
        to: u32,
        from: u32,
    },
    XferEnd {
        x: u32,
        epoch: u64,
    },
    /// The receiver of peer transfer `x` (identified by `uid`) holds its first chunk.
    FirstChunk {
        x: u32,
        uid: u64,
    },
    Progress(u32),
    PlayerNeed {
        a: u32,
        seq: u64,
    },
    PlayerRetry(u32),
}

/// A peer message in flight, kept small so the event heap stays compact; expanded into a
/// [`Message`] on delivery (digests are a pure function of the sequence number).
#[derive(Debug, Clone, Copy)]
enum SimMsg {
    /// Sequence number, partial.
    Have(u64, bool),
    Request(u32, u64),
    Cancel(u32),
    Busy(u32),
    Absent(u32),
    /// Index into the bitfield side table.
    Bitfield(u32),
}

/// Hasher for random 20-byte peer ids: their bytes are already uniform.
#[derive(Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.0 = crate::core::policy::mix64(self.0 ^ u64::from_le_bytes(w));
        }
    }
}

type IdMap = HashMap<PeerId, u32, std::hash::BuildHasherDefault<IdHasher>>;

#[derive(Default)]
struct Player {
    /// Seq whose request is outstanding.
    waiting: Option<u64>,
    /// Next seq to request.
    next: Option<u64>,
    /// All seqs below this are delivered.
    delivered_to: u64,
    started: bool,
    stall_since: Option<Us>,
    play_from: Us,
}

/// An agent ever created (whether it is in the swarm now: `World::is_alive`).
struct Agent {
    sched: Scheduler,
    up: f64,
    down: f64,
    corrupt: bool,
    ups: Vec<u32>,
    downs: Vec<u32>,
    timer_at: Option<Us>,
    progress_armed: bool,
    /// Uploads of segments we were still receiving that reached their own end first:
    /// (seq, transfer, uid). They finish one chunk time after we obtain `seq`.
    waiters: Vec<(u64, u32, u64)>,
    /// Origin tails in progress: (seq, head in, tail in, tail bytes).
    tails: Vec<(u64, bool, bool, u64)>,
    join_t: Us,
    player: Player,
    /// The agent's playlist reload clock (`playlist.align_reloads`).
    edge: EdgeClock,
}

struct Xfer {
    from: Option<u32>,
    to: u32,
    req_id: u32,
    seq: u64,
    size: f64,
    done: f64,
    rate: f64,
    last: Us,
    start_at: Us,
    tail: Us,
    /// Matches the one pending end event; globally unique, so a stale event of an earlier
    /// transfer that used the same slot can never complete this one.
    epoch: u64,
    /// Projected end at the current rate.
    end: Us,
    /// Time of the pending end event, if one is pending. An end that moves later (a link
    /// shared by one more transfer) keeps that event, which re-arms itself when it fires
    /// early; only an end that moves earlier needs a new one. Most rate changes slow a
    /// transfer, so this saves most of the end events that would otherwise go stale.
    armed: Option<Us>,
    /// Unique per transfer (slots are reused).
    uid: u64,
    /// Ran ahead of its partial source; waits in the source's `waiters`.
    waiting: bool,
    corrupt: bool,
    dropped_by_receiver: bool,
    part: Part,
}

/// What a transfer delivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    Whole,
    /// The head of a segment whose tail the origin sends (`size` = the split point).
    Head,
    /// The origin tail (`size` = its bytes).
    Tail,
}

struct SegStat {
    origin_bytes: f64,
    obtained_bytes: u64,
    peer_bytes: u64,
    /// Playlist and digest-sidecar bytes the agents fetched from the origin while this was
    /// the newest segment.
    meta_bytes: u64,
    /// Body sizes of the playlist and the sidecar while this is the newest segment (0: not
    /// computed yet).
    meta_len: (u32, u32, u32),
}

struct World<'c> {
    cfg: &'c SimConfig,
    sched_cfg: SchedulerConfig,
    rng: StdRng,
    base: Instant,
    now: Us,
    heap: CalendarQueue<Ev>,
    n: u64,
    agents: Vec<Agent>,
    /// Peer id and one-way latency of every agent, by index: read for every message sent, so
    /// kept apart from the large `Agent` records (a sender touches its neighbours' entries
    /// without pulling their schedulers into the cache).
    ids: Vec<PeerId>,
    lats: Vec<Us>,
    alive: Vec<u32>,
    /// Position of each agent in `alive`, `usize::MAX` before it joined and once it left: the
    /// one record of whether an agent is in the swarm (`is_alive`).
    alive_pos: Vec<usize>,
    mesh: Mesh,
    by_id: IdMap,
    bitfields: Vec<Option<Message>>,
    free_bf: Vec<u32>,
    xfers: Vec<Option<Xfer>>,
    next_epoch: u64,
    next_uid: u64,
    free_x: Vec<u32>,
    /// Per segment (sizes).
    infos: Vec<SegmentInfo>,
    /// What the schedulers see: every unit of every segment in order (one per segment without
    /// stripes).
    units: Vec<SegmentInfo>,
    /// Index in `units` of each segment's first unit, plus one end entry.
    first_unit: Vec<usize>,
    seg_dur: Us,
    stats: Vec<SegStat>,
    count_from: u64,
    count_to: u64,
    // tallies
    events: u64,
    messages: u64,
    message_bytes: u64,
    joins: u64,
    leaves: u64,
    stalls: u64,
    stall_us: u64,
    watch_us: u64,
    startups: Vec<f64>,
    player_failures: u64,
    failed_uploaders: u64,
    retired: crate::core::scheduler::Counters,
    upload_sum: f64,
    /// Bytes peers actually sent (finished and partial transfers).
    uploaded: f64,
    /// Σ upload rate × time alive, bytes.
    upload_capacity: f64,
    created: u64,
    warmup: Us,
    end: Us,
    trace: bool,
    trace_obtained: bool,
}

fn normal(rng: &mut StdRng) -> f64 {
    // Box–Muller.
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn lognormal(rng: &mut StdRng, mean: f64, sigma: f64) -> f64 {
    let mu = mean.ln() - sigma * sigma / 2.0;
    (mu + sigma * normal(rng)).exp()
}

fn digest_of(seq: u64) -> Digest {
    let mut d = [0u8; 32];
    d[..8].copy_from_slice(&seq.to_le_bytes());
    d[8..16].copy_from_slice(&crate::core::policy::mix64(seq).to_le_bytes());
    Digest(d)
}

fn add_counters(acc: &mut crate::core::scheduler::Counters, c: &crate::core::scheduler::Counters) {
    acc.origin_fetches += c.origin_fetches;
    acc.origin_elected += c.origin_elected;
    acc.origin_fallbacks += c.origin_fallbacks;
    acc.origin_hedges += c.origin_hedges;
    acc.origin_unverified += c.origin_unverified;
    acc.origin_no_peers += c.origin_no_peers;
    acc.origin_backstops += c.origin_backstops;
    acc.origin_tails += c.origin_tails;
    acc.origin_tails_done += c.origin_tails_done;
    acc.peer_requests += c.peer_requests;
    acc.peer_hedges += c.peer_hedges;
    acc.peer_lost += c.peer_lost;
    acc.busy_sent += c.busy_sent;
    acc.bans += c.bans;
    acc.integrity_failures += c.integrity_failures;
}

/// The scheduler configuration every simulated agent runs with.
pub(crate) fn scheduler_config(cfg: &SimConfig) -> SchedulerConfig {
    let s = &cfg.scheduler;
    let ms = |x: f64| Duration::from_secs_f64((x / 1000.0).max(0.0));
    let td = Duration::from_secs_f64(cfg.segment_duration_s.max(0.0));
    let seg_bytes = cfg.bitrate_bps / 8.0 * cfg.segment_duration_s;
    SchedulerConfig {
        fetchers: s.fetchers.max(1),
        seed_fraction_init: s.seed_fraction_init,
        seed_fraction_min: s.seed_fraction_min,
        seed_fraction_max: s.seed_fraction_max,
        seed_fraction_up: s.seed_fraction_up,
        seed_fraction_up_scarce: s.seed_fraction_up_scarce,
        seed_fraction_down: s.seed_fraction_down,
        seed_fraction_slack: s.seed_fraction_slack,
        peer_wait_budget: Some(td.mul_f64(s.peer_wait_factor.max(0.0))),
        player_wait_budget: ms(s.player_wait_ms),
        origin_safety_margin: ms(s.origin_margin_ms),
        stall_timeout: ms(s.stall_timeout_ms.max(1.0)),
        join_prefetch: s.join_prefetch,
        upload_slots: s.upload_slots,
        upload_rate_cap: s
            .upload_cap_x
            .map(|x| (x * cfg.bitrate_bps / 8.0).max(1.0) as u64),
        upload_burst: (seg_bytes * 1.5) as u64,
        busy_backoff: ms(s.busy_backoff_ms),
        max_parallel: s.max_parallel.max(1),
        origin_tails: s.origin_tails,
        stripes: Stripes::new(cfg.stripes).unwrap_or_default(),
        ..SchedulerConfig::default()
    }
}

/// Runs one simulation.
pub fn run(cfg: &SimConfig) -> SimReport {
    let mut w = World::new(cfg);
    w.start();
    w.run_loop();
    w.report()
}

impl<'c> World<'c> {
    fn new(cfg: &'c SimConfig) -> Self {
        let td = Duration::from_secs_f64(cfg.segment_duration_s);
        let seg_bytes = cfg.bitrate_bps / 8.0 * cfg.segment_duration_s;
        let sched_cfg = scheduler_config(cfg);
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let seg_dur = us(cfg.segment_duration_s).max(1);
        let end = us(cfg.duration_s);
        let total_segs = (end / seg_dur) as usize + cfg.window_segments + 2;
        let infos: Vec<SegmentInfo> = (0..total_segs as u64)
            .map(|seq| {
                let v = if cfg.size_variation > 0.0 {
                    rng.random_range(-cfg.size_variation..cfg.size_variation)
                } else {
                    0.0
                };
                SegmentInfo {
                    seq,
                    digest: Some(digest_of(seq)),
                    duration: td,
                    size_hint: Some((seg_bytes * (1.0 + v)).max(1.0) as u64),
                    chunk_size: (cfg.chunk_size > 0).then_some(cfg.chunk_size as u32),
                }
            })
            .collect();
        let stripes = sched_cfg.stripes;
        let mut units = Vec::new();
        let mut first_unit = Vec::with_capacity(infos.len() + 1);
        for info in &infos {
            first_unit.push(units.len());
            let size = info.size_hint.unwrap_or(1);
            let chunk = info.chunk_size;
            let k = stripes.count_for(chunk.map(|c| size.div_ceil(u64::from(c.max(1))) as usize));
            for j in 0..k {
                let r = match chunk {
                    Some(c) => stripes::byte_range(size, c, j, k),
                    None => 0..size,
                };
                let unit = stripes.unit(info.seq, j);
                units.push(SegmentInfo {
                    seq: unit,
                    digest: Some(digest_of(unit)),
                    duration: td / u32::from(k),
                    size_hint: Some((r.end - r.start).max(1)),
                    chunk_size: info.chunk_size,
                });
            }
        }
        first_unit.push(units.len());
        let stats = (0..total_segs)
            .map(|_| SegStat {
                origin_bytes: 0.0,
                obtained_bytes: 0,
                peer_bytes: 0,
                meta_bytes: 0,
                meta_len: (0, 0, 0),
            })
            .collect();
        let warmup = us(cfg.warmup_s);
        let w0 = cfg.window_segments.max(1) as u64;
        // Segment s is published at (s + 1 - w0) * seg_dur.
        let count_from = warmup.div_ceil(seg_dur) + w0 - 1;
        let count_to = (end.saturating_sub(us(cfg.tail_s)) / seg_dur + w0).saturating_sub(1);
        World {
            cfg,
            sched_cfg,
            rng,
            base: Instant::now(),
            now: 0,
            heap: CalendarQueue::default(),
            n: 0,
            agents: Vec::new(),
            ids: Vec::new(),
            lats: Vec::new(),
            alive: Vec::new(),
            alive_pos: Vec::new(),
            mesh: Mesh::new(cfg.max_degree),
            by_id: IdMap::default(),
            bitfields: Vec::new(),
            free_bf: Vec::new(),
            xfers: Vec::new(),
            next_epoch: 0,
            next_uid: 0,
            free_x: Vec::new(),
            infos,
            units,
            first_unit,
            seg_dur,
            stats,
            count_from,
            count_to,
            events: 0,
            messages: 0,
            message_bytes: 0,
            joins: 0,
            leaves: 0,
            stalls: 0,
            stall_us: 0,
            watch_us: 0,
            startups: Vec::new(),
            player_failures: 0,
            failed_uploaders: 0,
            retired: Default::default(),
            upload_sum: 0.0,
            uploaded: 0.0,
            upload_capacity: 0.0,
            created: 0,
            warmup,
            end,
            trace: std::env::var_os("HIVECAST_SIM_TRACE").is_some(),
            trace_obtained: std::env::var_os("HIVECAST_SIM_OBTAINED").is_some(),
        }
    }

    fn at(&self, t: Us) -> Instant {
        self.base + Duration::from_micros(t)
    }

    /// Virtual microseconds of an instant, rounded up so a timer never fires before its time
    /// (firing early would make the scheduler ask for the same timer again, forever).
    fn to_us(&self, i: Instant) -> Us {
        i.saturating_duration_since(self.base)
            .as_nanos()
            .div_ceil(1000) as Us
    }

    fn push(&mut self, t: Us, ev: Ev) {
        self.n += 1;
        self.heap.push(t, self.n, ev);
    }

    fn newest_published(&self, t: Us) -> u64 {
        let w0 = self.cfg.window_segments.max(1) as u64;
        (t / self.seg_dur + w0 - 1).min(self.infos.len() as u64 - 1)
    }

    fn counted(&self, seq: u64) -> bool {
        seq >= self.count_from && seq <= self.count_to
    }

    fn start(&mut self) {
        let bps = self.cfg.bitrate_bps / 8.0;
        for i in 0..self.cfg.agents {
            let t = if self.cfg.agents > 1 {
                us(self.cfg.ramp_s * i as f64 / (self.cfg.agents - 1) as f64)
            } else {
                0
            };
            let a = self.new_agent(bps);
            self.push(t, Ev::Join(a));
        }
        if self.cfg.churn_per_min > 0.0 && self.cfg.agents > 0 {
            let t = self.next_churn_gap();
            self.push(t, Ev::Churn);
        }
        for &s in &self.cfg.fail_uploaders_at_s {
            self.push(us(s), Ev::FailUploader);
        }
    }

    fn next_churn_gap(&mut self) -> Us {
        let rate = self.cfg.agents as f64 * self.cfg.churn_per_min / 60.0;
        let u: f64 = self.rng.random_range(f64::EPSILON..1.0);
        us(-u.ln() / rate)
    }

    fn new_agent(&mut self, bps: f64) -> u32 {
        let id = PeerId::random(&mut self.rng);
        let mut up = lognormal(&mut self.rng, self.cfg.upload_mean_x, self.cfg.upload_sigma) * bps;
        let down = lognormal(
            &mut self.rng,
            self.cfg.download_mean_x,
            self.cfg.download_sigma,
        ) * bps;
        if let Some(cap) = self.sched_cfg.upload_rate_cap {
            up = up.min(cap as f64);
        }
        let lat = us(self.rng.random_range(
            self.cfg.latency_ms_min..=self.cfg.latency_ms_max.max(self.cfg.latency_ms_min),
        ) / 1000.0);
        let corrupt = (self.created as usize) < self.cfg.corrupt_agents;
        let sched = Scheduler::new(self.at(self.now), id, self.sched_cfg.clone())
            .unwrap_or_else(|e| panic!("simulation scheduler config invalid: {e}"));
        self.upload_sum += up / bps;
        self.created += 1;
        let idx = self.agents.len() as u32;
        self.agents.push(Agent {
            sched,
            up,
            down,
            corrupt,
            ups: Vec::new(),
            downs: Vec::new(),
            timer_at: None,
            progress_armed: false,
            waiters: Vec::new(),
            tails: Vec::new(),
            join_t: 0,
            player: Player::default(),
            edge: EdgeClock::new(self.base),
        });
        self.ids.push(id);
        self.lats.push(lat);
        self.alive_pos.push(usize::MAX);
        self.mesh.add_agent();
        self.by_id.insert(id, idx);
        idx
    }

    fn run_loop(&mut self) {
        while let Some((t, ev)) = self.heap.pop() {
            if t > self.end {
                break;
            }
            self.now = t;
            self.events += 1;
            self.handle(ev);
        }
        self.now = self.end;
        // Close open stalls and watch time.
        for a in 0..self.agents.len() as u32 {
            if self.is_alive(a) {
                self.close_player(a);
                let ag = &self.agents[a as usize];
                self.upload_capacity += ag.up * (self.now - ag.join_t) as f64 / 1e6;
            }
        }
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Join(a) => self.join(a),
            Ev::Churn => {
                if let Some(victim) = self.pick_alive() {
                    self.leave(victim);
                    let bps = self.cfg.bitrate_bps / 8.0;
                    let a = self.new_agent(bps);
                    self.join(a);
                }
                let t = self.now + self.next_churn_gap();
                self.push(t, Ev::Churn);
            }
            Ev::FailUploader => self.fail_busiest_uploader(),
            Ev::Poll(a) => {
                if self.is_alive(a) {
                    let changed = self.poll(a);
                    let t = self.next_poll_at(a, changed);
                    self.push(t, Ev::Poll(a));
                }
            }
            Ev::Timer(a) => {
                let now = self.at(self.now);
                if !self.is_alive(a) {
                    return;
                }
                let ag = &mut self.agents[a as usize];
                if ag.timer_at != Some(self.now) {
                    return;
                }
                ag.timer_at = None;
                ag.sched.handle_timeout(now);
                self.flush(a);
            }
            Ev::Tracker(a) => {
                if !self.is_alive(a) {
                    return;
                }
                self.announce(a);
                let t = self.now + self.announce_gap(a);
                self.push(t, Ev::Tracker(a));
            }
            Ev::Connect(a, b) => self.connect(a, b),
            Ev::Deliver { to, from, msg } => {
                if let SimMsg::Bitfield(i) = msg
                    && (!self.is_alive(to) || !self.mesh.contains(to, from))
                {
                    if let Some(slot) = self.bitfields.get_mut(i as usize) {
                        *slot = None;
                    }
                    self.free_bf.push(i);
                    return;
                }
                if self.trace {
                    eprintln!("{:>10.3} a{to} <- a{from} {msg:?}", self.now as f64 / 1e6);
                }
                if !self.is_alive(to) || !self.mesh.contains(to, from) {
                    return;
                }
                let msg = match msg {
                    SimMsg::Have(seq, partial) => Message::Have {
                        seq,
                        digest: Some(digest_of(seq)),
                        partial,
                    },
                    SimMsg::Request(req_id, seq) => Message::Request {
                        req_id,
                        seq,
                        digest: Some(digest_of(seq)),
                    },
                    SimMsg::Cancel(req_id) => Message::Cancel { req_id },
                    SimMsg::Busy(req_id) => Message::Busy { req_id },
                    SimMsg::Absent(req_id) => Message::Absent { req_id },
                    SimMsg::Bitfield(i) => {
                        self.free_bf.push(i);
                        match self.bitfields.get_mut(i as usize).and_then(Option::take) {
                            Some(m) => m,
                            None => return,
                        }
                    }
                };
                let now = self.at(self.now);
                let from_id = self.ids[from as usize];
                self.agents[to as usize]
                    .sched
                    .handle_peer_message(now, from_id, &msg);
                self.flush(to);
            }
            Ev::Disconnect { to, from } => {
                if !self.is_alive(to) {
                    return;
                }
                self.unlink(to, from);
                let now = self.at(self.now);
                let from_id = self.ids[from as usize];
                self.agents[to as usize]
                    .sched
                    .handle_peer_disconnected(now, from_id);
                self.flush(to);
            }
            Ev::XferEnd { x, epoch } => self.xfer_end(x, epoch),
            Ev::FirstChunk { x, uid } => self.first_chunk(x, uid),
            Ev::Progress(a) => self.progress(a),
            Ev::PlayerNeed { a, seq } => self.player_need(a, seq),
            Ev::PlayerRetry(a) => self.player_request(a),
        }
    }

    /// Whether agent `a` is in the swarm now.
    fn is_alive(&self, a: u32) -> bool {
        self.alive_pos
            .get(a as usize)
            .is_some_and(|&p| p != usize::MAX)
    }

    fn pick_alive(&mut self) -> Option<u32> {
        if self.alive.is_empty() {
            return None;
        }
        let i = self.rng.random_range(0..self.alive.len());
        self.alive.get(i).copied()
    }

    /// Removes the live agent with the most uploads in progress (a peer lost mid-transfer).
    fn fail_busiest_uploader(&mut self) {
        let victim = self
            .alive
            .iter()
            .copied()
            .max_by_key(|&a| (self.agents[a as usize].ups.len(), std::cmp::Reverse(a)));
        if let Some(v) = victim {
            self.failed_uploaders += u64::from(!self.agents[v as usize].ups.is_empty());
            self.leave(v);
        }
    }

    // ----- membership ---------------------------------------------------------------------------

    fn join(&mut self, a: u32) {
        self.joins += 1;
        let now = self.at(self.now);
        self.agents[a as usize].join_t = self.now;
        self.alive_pos[a as usize] = self.alive.len();
        self.alive.push(a);
        if self.trace_obtained {
            let ag = &self.agents[a as usize];
            let bps = self.cfg.bitrate_bps / 8.0;
            eprintln!(
                "AGT {a} {:.3} {:.3} {:.3}",
                self.now as f64 / 1e6,
                ag.up / bps,
                ag.down / bps
            );
        }
        self.agents[a as usize].edge = EdgeClock::new(self.base);
        // Fresh scheduler clock.
        self.agents[a as usize].sched =
            Scheduler::new(now, self.ids[a as usize], self.sched_cfg.clone())
                .unwrap_or_else(|e| panic!("simulation scheduler config invalid: {e}"));
        self.announce(a);
        // The poll phase follows from the join time (joins are spread in time).
        let changed = self.poll(a);
        let t = self.next_poll_at(a, changed);
        self.push(t, Ev::Poll(a));
        let t = self.now + self.announce_gap(a);
        self.push(t, Ev::Tracker(a));
        // First player request happens on the first playlist (inside `poll`).
    }

    fn leave(&mut self, a: u32) {
        if !self.is_alive(a) {
            return;
        }
        self.leaves += 1;
        self.upload_capacity +=
            self.agents[a as usize].up * (self.now - self.agents[a as usize].join_t) as f64 / 1e6;
        self.close_player(a);
        let pos = self.alive_pos[a as usize];
        self.alive.swap_remove(pos);
        if let Some(&moved) = self.alive.get(pos) {
            self.alive_pos[moved as usize] = pos;
        }
        self.alive_pos[a as usize] = usize::MAX;
        let c = self.agents[a as usize].sched.counters().clone();
        add_counters(&mut self.retired, &c);
        self.agents[a as usize].waiters.clear();
        // Abort every transfer touching the agent.
        let xs: Vec<u32> = self.agents[a as usize]
            .ups
            .iter()
            .chain(self.agents[a as usize].downs.iter())
            .copied()
            .collect();
        for x in xs {
            self.remove_xfer(x);
        }
        let nbs = self.mesh.take(a);
        for nb in nbs {
            let d = self.link_delay(a, nb);
            self.push(self.now + d, Ev::Disconnect { to: nb, from: a });
        }
    }

    /// Time to `a`'s next announce: sooner while it has fewer peers than it seeks (the
    /// connections it asked for are set up by then).
    fn announce_gap(&self, a: u32) -> Us {
        let short = self.mesh.len(a) < self.cfg.degree;
        let secs = if short {
            self.cfg.hungry_interval_s
        } else {
            self.cfg.tracker_interval_s
        };
        us(secs).max(1)
    }

    fn announce(&mut self, a: u32) {
        let n_alive = self.alive.len();
        let now = self.at(self.now);
        self.agents[a as usize]
            .sched
            .handle_swarm_size(now, n_alive);
        let want = self.cfg.degree.saturating_sub(self.mesh.len(a));
        if want == 0 || n_alive < 2 {
            return;
        }
        let tries = want * 3;
        let mut picked: Vec<u32> = Vec::new();
        for _ in 0..tries {
            if picked.len() >= want {
                break;
            }
            let b = self.alive[self.rng.random_range(0..n_alive)];
            if b == a
                || picked.contains(&b)
                || self.mesh.contains(a, b)
                || self.mesh.len(b) >= self.cfg.max_degree
            {
                continue;
            }
            picked.push(b);
        }
        for b in picked {
            let d = us(self.cfg.connect_delay_ms / 1000.0) + 2 * self.link_delay(a, b);
            self.push(self.now + d, Ev::Connect(a, b));
        }
    }

    fn connect(&mut self, a: u32, b: u32) {
        let (ua, ub) = (a as usize, b as usize);
        if !self.is_alive(a)
            || !self.is_alive(b)
            || self.mesh.contains(a, b)
            || self.mesh.len(a) >= self.cfg.max_degree
            || self.mesh.len(b) >= self.cfg.max_degree
        {
            return;
        }
        let now = self.at(self.now);
        let (ida, idb) = (self.ids[ua], self.ids[ub]);
        let ok_a = self.agents[ua].sched.handle_peer_connected(now, idb);
        let ok_b = self.agents[ub].sched.handle_peer_connected(now, ida);
        if ok_a && ok_b {
            // Both rows have room: checked above.
            self.mesh.push(a, b);
            self.mesh.push(b, a);
        } else {
            // One side refuses (ban): undo on the other.
            if ok_a {
                self.agents[ua].sched.handle_peer_disconnected(now, idb);
            }
            if ok_b {
                self.agents[ub].sched.handle_peer_disconnected(now, ida);
            }
        }
        self.flush(a);
        self.flush(b);
    }

    fn unlink(&mut self, a: u32, b: u32) {
        self.mesh.remove(a, b);
        self.mesh.remove(b, a);
        // Transfers between them die with the channel.
        let xs: Vec<u32> = self.agents[a as usize]
            .ups
            .iter()
            .chain(self.agents[a as usize].downs.iter())
            .copied()
            .filter(|&x| {
                self.xfers[x as usize].as_ref().is_some_and(|t| {
                    (t.from == Some(a) && t.to == b) || (t.from == Some(b) && t.to == a)
                })
            })
            .collect();
        for x in xs {
            self.remove_xfer(x);
        }
    }

    fn link_delay(&mut self, a: u32, b: u32) -> Us {
        let base = self.lats[a as usize] + self.lats[b as usize];
        if self.cfg.loss > 0.0 && self.rng.random::<f64>() < self.cfg.loss {
            base + us(self.cfg.rto_ms / 1000.0)
        } else {
            base
        }
    }

    // ----- playlist and player ------------------------------------------------------------------

    /// When the agent reloads the playlist next, after a reload (now) that found it changed
    /// or not: the agent's rule, or the configured fixed interval.
    fn next_poll_at(&self, a: u32, changed: bool) -> Us {
        match self.cfg.poll_interval_ms {
            Some(ms) => self.now + us(ms / 1000.0).max(1),
            None => {
                let td = Duration::from_secs_f64(self.cfg.segment_duration_s);
                let now = self.at(self.now);
                let next = if self.cfg.align_reloads {
                    self.agents[a as usize].edge.next_reload(now, changed, td)
                } else {
                    next_reload(now, changed, td)
                };
                self.to_us(next).max(self.now + 1)
            }
        }
    }

    /// `a` reloads the playlist; true if it lists a newer segment than `a` knew (or is the
    /// first).
    fn poll(&mut self, a: u32) -> bool {
        if !self.is_alive(a) {
            return false;
        }
        let known = self.agents[a as usize].sched.newest();
        let visible = self
            .now
            .saturating_sub(us(self.cfg.origin_latency_ms / 1000.0));
        let newest = self.newest_published(visible);
        let lo = (newest + 1).saturating_sub(self.cfg.window_segments.max(1) as u64);
        let now = self.at(self.now);
        if self.cfg.align_reloads {
            // A load here is one instant (the origin's latency only delays what it shows), so
            // it is sent and answered now; the clock learns when segments become visible.
            let listed: Vec<(u64, f64)> = (lo..=newest)
                .map(|s| (s, self.cfg.segment_duration_s))
                .collect();
            self.agents[a as usize].edge.observe(now, now, &listed);
        }
        {
            let infos =
                &self.units[self.first_unit[lo as usize]..self.first_unit[newest as usize + 1]];
            let update = PlaylistUpdate {
                live: true,
                target_duration: Duration::from_secs_f64(self.cfg.segment_duration_s),
                segments: infos,
            };
            self.agents[a as usize].sched.handle_playlist(now, &update);
        }
        self.flush(a);
        let changed = self.agents[a as usize].sched.newest() > known;
        // The agent's first sidecar is the full one; later, the latest one covers each new
        // segment (it holds the digests of the rest of the window).
        self.count_metadata(newest, changed, known.is_none());
        // Player: start, or request the next fragment if it just appeared.
        let p = &mut self.agents[a as usize].player;
        if p.next.is_none() {
            let back =
                self.cfg.player_latency_segments.max(1) as u64 - 1 + self.cfg.live_hold_back as u64;
            p.next = Some(newest.saturating_sub(back).max(lo));
            p.delivered_to = p.next.unwrap_or(0);
        }
        if p.waiting.is_none() {
            self.player_request(a);
        }
        changed
    }

    /// One playlist reload while `newest` is the newest segment, and with `sidecar` the digest
    /// sidecar fetched after it (the agent fetches it whenever the playlist lists a segment it
    /// has no digest for): the full one if `full`, else the latest one. Counted against
    /// `newest`, like the segment bytes.
    fn count_metadata(&mut self, newest: u64, sidecar: bool, full: bool) {
        if !self.counted(newest) {
            return;
        }
        let (playlist, digests, latest) = match self.stats.get(newest as usize).map(|s| s.meta_len)
        {
            Some((0, _, _)) | None => {
                let lens = self.metadata_lens(newest);
                if let Some(s) = self.stats.get_mut(newest as usize) {
                    s.meta_len = lens;
                }
                lens
            }
            Some(lens) => lens,
        };
        let sidecar = match (sidecar, full) {
            (false, _) => 0,
            (true, true) => digests,
            (true, false) => latest,
        };
        if let Some(s) = self.stats.get_mut(newest as usize) {
            s.meta_bytes += u64::from(playlist) + u64::from(sidecar);
        }
    }

    /// Body sizes of the live playlist, of its digest sidecar and of its latest sidecar (as
    /// `publish-digests` writes them: compact JSON, chunk digests when `chunk_size` > 0) while
    /// `newest` is the newest segment.
    fn metadata_lens(&self, newest: u64) -> (u32, u32, u32) {
        let lo = (newest + 1).saturating_sub(self.cfg.window_segments.max(1) as u64);
        let td = self.cfg.segment_duration_s.ceil().max(1.0) as u64;
        let mut playlist = format!(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{td}\n#EXT-X-MEDIA-SEQUENCE:{lo}\n"
        );
        let chunk = self.cfg.chunk_size;
        let sidecar_len = |from: u64| {
            let mut segments = std::collections::BTreeMap::new();
            let mut chunks = std::collections::BTreeMap::new();
            for seq in from..=newest {
                let name = format!("seg_{seq:05}.ts");
                let size = self.whole_size(seq) as u64;
                if chunk > 0 {
                    chunks.insert(name.clone(), "0".repeat(64 * size.div_ceil(chunk) as usize));
                }
                segments.insert(name, "0".repeat(64));
            }
            let manifest = crate::integrity::Manifest {
                version: 1,
                segments,
                chunk_size: (chunk > 0).then_some(chunk as u32),
                chunks: (chunk > 0).then_some(chunks),
            };
            serde_json::to_string(&manifest).map_or(0, |t| t.len())
        };
        for seq in lo..=newest {
            let name = format!("seg_{seq:05}.ts");
            playlist.push_str(&format!(
                "#EXTINF:{:.6},\n{name}\n",
                self.cfg.segment_duration_s
            ));
        }
        let latest_from = (newest + 1)
            .saturating_sub(crate::integrity::LATEST_SEGMENTS as u64)
            .max(lo);
        let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        (
            len(playlist.len()),
            len(sidecar_len(lo)),
            len(sidecar_len(latest_from)),
        )
    }

    fn player_request(&mut self, a: u32) {
        let ag = &self.agents[a as usize];
        if !self.is_alive(a) || ag.player.waiting.is_some() {
            return;
        }
        let Some(seq) = ag.player.next else {
            return;
        };
        // The player sees the agent's playlist: without the newest `live_hold_back` segments.
        let hold = self.cfg.live_hold_back as u64;
        if ag
            .sched
            .newest()
            .is_none_or(|n| seq + hold > self.sched_cfg.stripes.seq_of(n))
        {
            return;
        }
        let now = self.at(self.now);
        let out = self.agents[a as usize]
            .sched
            .handle_player_request(now, seq);
        self.agents[a as usize].player.waiting = Some(seq);
        match out {
            PlayerOutcome::Ready => self.deliver(a, seq),
            PlayerOutcome::Waiting => {}
            PlayerOutcome::Unknown => {
                // Too old for the window: hls.js would skip ahead. Jump to the oldest tracked.
                let p = &mut self.agents[a as usize].player;
                p.waiting = None;
                p.next = Some(seq + 1);
                p.delivered_to = p.delivered_to.max(seq + 1);
            }
        }
        self.flush(a);
    }

    fn deliver(&mut self, a: u32, seq: u64) {
        let now = self.now;
        let dur = self.seg_dur;
        let warmup = self.warmup;
        let join_t = self.agents[a as usize].join_t;
        let p = &mut self.agents[a as usize].player;
        if p.waiting != Some(seq) {
            return;
        }
        p.waiting = None;
        p.delivered_to = seq + 1;
        p.next = Some(seq + 1);
        let mut need_next = None;
        if !p.started {
            p.started = true;
            p.play_from = now;
            self.startups.push((now - join_t) as f64 / 1000.0);
            need_next = Some(now + dur);
        } else if let Some(since) = p.stall_since.take() {
            if since >= warmup {
                self.stall_us += now - since;
            } else if now > warmup {
                self.stall_us += now - warmup;
            }
            p.play_from = now;
            need_next = Some(now + dur);
        }
        if let Some(t) = need_next {
            self.push(t, Ev::PlayerNeed { a, seq: seq + 1 });
        }
        self.player_request(a);
    }

    fn player_need(&mut self, a: u32, seq: u64) {
        let now = self.now;
        let dur = self.seg_dur;
        let warmup = self.warmup;
        if self.trace_obtained && self.is_alive(a) {
            eprintln!("NEED {a} {seq} {:.3}", self.since_publish(seq));
        }
        if !self.is_alive(a) {
            return;
        }
        let p = &mut self.agents[a as usize].player;
        if p.delivered_to > seq {
            self.push(now + dur, Ev::PlayerNeed { a, seq: seq + 1 });
        } else {
            p.stall_since = Some(now);
            if self.trace_obtained {
                eprintln!("STALL {a} {seq} {:.3}", now as f64 / 1e6);
            }
            // Watch time up to the stall.
            let from = p.play_from.max(warmup);
            if now > from {
                self.watch_us += now - from;
            }
            p.play_from = now;
            if now >= warmup {
                self.stalls += 1;
            }
        }
    }

    fn close_player(&mut self, a: u32) {
        let now = self.now;
        let warmup = self.warmup;
        let p = &mut self.agents[a as usize].player;
        if !p.started {
            return;
        }
        if let Some(since) = p.stall_since.take() {
            let from = since.max(warmup);
            if now > from {
                self.stall_us += now - from;
            }
        } else {
            let from = p.play_from.max(warmup);
            if now > from {
                self.watch_us += now - from;
            }
        }
        p.started = false;
    }

    // ----- scheduler plumbing -------------------------------------------------------------------

    fn flush(&mut self, a: u32) {
        while let Some(act) = self.agents[a as usize].sched.poll_action() {
            self.exec(a, act);
        }
        if let Some(t) = self.agents[a as usize].sched.poll_timeout() {
            let t = self.to_us(t).max(self.now);
            let ag = &mut self.agents[a as usize];
            if ag.timer_at.is_none_or(|cur| t < cur) {
                ag.timer_at = Some(t);
                self.push(t, Ev::Timer(a));
            }
        }
    }

    fn send(&mut self, from: u32, to: u32, msg: Message) {
        self.messages += 1;
        self.message_bytes += msg.encoded_len() as u64;
        let m = match msg {
            Message::Have { seq, partial, .. } => SimMsg::Have(seq, partial),
            Message::Request { req_id, seq, .. } => SimMsg::Request(req_id, seq),
            Message::Cancel { req_id } => SimMsg::Cancel(req_id),
            Message::Busy { req_id } => SimMsg::Busy(req_id),
            Message::Absent { req_id } => SimMsg::Absent(req_id),
            m @ Message::Bitfield { .. } => {
                let i = match self.free_bf.pop() {
                    Some(i) => {
                        self.bitfields[i as usize] = Some(m);
                        i
                    }
                    None => {
                        self.bitfields.push(Some(m));
                        (self.bitfields.len() - 1) as u32
                    }
                };
                SimMsg::Bitfield(i)
            }
            // The simulator sends no other message kinds (data is modelled as transfers).
            Message::Handshake { .. } | Message::Keepalive | Message::Data { .. } => return,
        };
        let d = self.link_delay(from, to);
        self.push(self.now + d, Ev::Deliver { to, from, msg: m });
    }

    fn exec(&mut self, a: u32, act: Action) {
        if self.trace {
            eprintln!("{:>10.3} a{a} {act:?}", self.now as f64 / 1e6);
        }
        if self.trace_obtained
            && let Action::FetchOrigin { seq, reason } = &act
        {
            // What the neighbourhood looked like: holders, receivers, and neighbours whose
            // upload slots were all taken.
            let (mut have, mut fetching, mut full) = (0, 0, 0);
            for &b in self.mesh.of(a) {
                let sb = &self.agents[b as usize].sched;
                match sb.status(*seq) {
                    Some(SegmentStatus::Have) => have += 1,
                    Some(SegmentStatus::Fetching) => fetching += 1,
                    _ => {}
                }
                if sb.uploads_in_flight() >= sb.slots() {
                    full += 1;
                }
            }
            eprintln!(
                "ORG {a} {seq} {:.3} {} {have} {fetching} {full} {}",
                self.since_publish(self.sched_cfg.stripes.seq_of(*seq)),
                reason.as_label(),
                self.mesh.len(a)
            );
        }
        if self.trace_obtained {
            let since = |unit: u64| self.since_publish(self.sched_cfg.stripes.seq_of(unit));
            match &act {
                Action::RequestPeer { seq, peer, .. } => {
                    let b = self.by_id.get(peer).copied().unwrap_or(u32::MAX);
                    eprintln!("REQ {a} {seq} {:.3} {b}", since(*seq));
                }
                Action::ServePeer { seq, peer, .. } => {
                    let b = self.by_id.get(peer).copied().unwrap_or(u32::MAX);
                    eprintln!("SRV {a} {seq} {:.3} {b}", since(*seq));
                }
                _ => {}
            }
        }
        let peer_idx = |w: &Self, p: &PeerId| w.by_id.get(p).copied();
        match act {
            Action::FetchOrigin { seq, .. } => self.start_xfer(None, a, 0, seq, false),
            Action::FetchOriginTail { seq, from } => self.start_tail(a, seq, from),
            Action::CancelOrigin { seq } => {
                self.agents[a as usize].tails.retain(|t| t.0 != seq);
                let x = self.agents[a as usize].downs.iter().copied().find(|&x| {
                    self.xfers[x as usize]
                        .as_ref()
                        .is_some_and(|t| t.from.is_none() && t.seq == seq)
                });
                if let Some(x) = x {
                    self.remove_xfer(x);
                }
            }
            Action::RequestPeer {
                peer,
                req_id,
                seq,
                digest,
            } => {
                if let Some(b) = peer_idx(self, &peer) {
                    self.send(
                        a,
                        b,
                        Message::Request {
                            req_id,
                            seq,
                            digest,
                        },
                    );
                }
            }
            Action::CancelPeer { peer, req_id } => {
                if let Some(b) = peer_idx(self, &peer) {
                    let x = self.agents[a as usize].downs.iter().copied().find(|&x| {
                        self.xfers[x as usize]
                            .as_ref()
                            .is_some_and(|t| t.from == Some(b) && t.req_id == req_id)
                    });
                    if let Some(x) = x
                        && let Some(t) = self.xfers[x as usize].as_mut()
                    {
                        t.dropped_by_receiver = true;
                        if self.trace_obtained {
                            let done =
                                t.done + t.rate * (self.now.saturating_sub(t.last)) as f64 / 1e6;
                            eprintln!(
                                "CAN {} {:.3} {:.3} {}",
                                t.seq,
                                done / t.size,
                                t.rate * 8.0 / self.cfg.bitrate_bps,
                                t.waiting
                            );
                        }
                    }
                    self.send(a, b, Message::Cancel { req_id });
                }
            }
            Action::SendHave {
                seq,
                digest,
                partial,
            } => {
                let nbs = self.mesh.of(a).to_vec();
                for b in nbs {
                    let id = self.ids[b as usize];
                    if !self.agents[a as usize].sched.needs_have(&id, seq, partial) {
                        continue;
                    }
                    self.send(
                        a,
                        b,
                        Message::Have {
                            seq,
                            digest,
                            partial,
                        },
                    );
                }
            }
            Action::OfferHave {
                peer,
                seq,
                digest,
                partial,
            } => {
                if let Some(b) = peer_idx(self, &peer) {
                    self.send(
                        a,
                        b,
                        Message::Have {
                            seq,
                            digest,
                            partial,
                        },
                    );
                }
            }
            Action::SendBitfield {
                peer,
                base_seq,
                bits,
            } => {
                if let Some(b) = peer_idx(self, &peer) {
                    self.send(a, b, Message::Bitfield { base_seq, bits });
                }
            }
            Action::ServePeer { peer, req_id, seq } => {
                if let Some(b) = peer_idx(self, &peer) {
                    let corrupt = self.agents[a as usize].corrupt;
                    self.start_xfer(Some(a), b, req_id, seq, corrupt);
                }
            }
            Action::StopServe { peer, req_id } => {
                if let Some(b) = peer_idx(self, &peer) {
                    let x = self.agents[a as usize].ups.iter().copied().find(|&x| {
                        self.xfers[x as usize]
                            .as_ref()
                            .is_some_and(|t| t.to == b && t.req_id == req_id)
                    });
                    if let Some(x) = x {
                        self.remove_xfer(x);
                    }
                }
            }
            Action::Refuse {
                peer,
                req_id,
                reason,
            } => {
                if let Some(b) = peer_idx(self, &peer) {
                    let msg = match reason {
                        RefuseReason::Busy => Message::Busy { req_id },
                        RefuseReason::Absent => Message::Absent { req_id },
                    };
                    self.send(a, b, msg);
                }
            }
            Action::Ban { peer } => {
                if let Some(b) = peer_idx(self, &peer) {
                    self.unlink(a, b);
                    let d = self.link_delay(a, b);
                    self.push(self.now + d, Ev::Disconnect { to: b, from: a });
                }
            }
            Action::Failed { seq, .. } => {
                let whole = self.sched_cfg.stripes.seq_of(seq);
                let p = &mut self.agents[a as usize].player;
                if p.waiting == Some(whole) {
                    p.waiting = None;
                    self.player_failures += 1;
                    self.push(self.now + 500_000, Ev::PlayerRetry(a));
                }
            }
        }
    }

    // ----- transfers ----------------------------------------------------------------------------

    /// Trace: seconds since segment `seq` was published (negative before).
    fn since_publish(&self, seq: u64) -> f64 {
        let w0 = self.cfg.window_segments.max(1) as i64;
        let publish = (seq as i64 + 1 - w0) * self.seg_dur as i64;
        (self.now as i64 - publish) as f64 / 1e6
    }

    /// Size of unit `unit` (the segment without stripes).
    fn seg_size(&self, unit: u64) -> f64 {
        let seq = self.sched_cfg.stripes.seq_of(unit) as usize;
        let i = self.first_unit.get(seq).copied().unwrap_or(usize::MAX)
            + usize::from(self.sched_cfg.stripes.index_of(unit));
        self.units
            .get(i)
            .filter(|_| self.first_unit.get(seq + 1).is_some_and(|&end| i < end))
            .and_then(|u| u.size_hint)
            .unwrap_or(1) as f64
    }

    /// Size of segment `seq`.
    fn whole_size(&self, seq: u64) -> f64 {
        self.infos
            .get(seq as usize)
            .and_then(|i| i.size_hint)
            .unwrap_or(1) as f64
    }

    /// Per-segment tallies of the segment unit `unit` belongs to, if it is counted.
    fn stat_of(&mut self, unit: u64) -> Option<&mut SegStat> {
        let seq = self.sched_cfg.stripes.seq_of(unit);
        if !self.counted(seq) {
            return None;
        }
        self.stats.get_mut(seq as usize)
    }

    fn start_xfer(&mut self, from: Option<u32>, to: u32, req_id: u32, seq: u64, corrupt: bool) {
        let size = self.seg_size(seq);
        self.start_part(from, to, req_id, seq, corrupt, size, Part::Whole);
    }

    #[allow(clippy::too_many_arguments)]
    fn start_part(
        &mut self,
        from: Option<u32>,
        to: u32,
        req_id: u32,
        seq: u64,
        corrupt: bool,
        size: f64,
        part: Part,
    ) {
        let chunks = (size as u64).div_ceil(CHUNK);
        let (tail, start_at) = match from {
            None => (0, self.now + us(self.cfg.origin_latency_ms / 1000.0)),
            Some(f) => {
                let lat = self.lats[f as usize] + self.lats[to as usize];
                let loss = us(chunks as f64 * self.cfg.loss * self.cfg.rto_ms / 1000.0);
                self.messages += chunks;
                self.message_bytes += size as u64 + chunks * DATA_HEADER_LEN as u64;
                (lat + loss, self.now)
            }
        };
        let x = Xfer {
            from,
            to,
            req_id,
            seq,
            size,
            done: 0.0,
            rate: 0.0,
            last: self.now,
            start_at,
            tail,
            epoch: 0,
            end: 0,
            armed: None,
            uid: self.next_uid,
            waiting: false,
            corrupt,
            dropped_by_receiver: false,
            part,
        };
        let uid = self.next_uid;
        self.next_uid += 1;
        let id = if let Some(id) = self.free_x.pop() {
            self.xfers[id as usize] = Some(x);
            id
        } else {
            self.xfers.push(Some(x));
            (self.xfers.len() - 1) as u32
        };
        if let Some(f) = from {
            self.agents[f as usize].ups.push(id);
        }
        self.agents[to as usize].downs.push(id);
        self.rerate(from, to);
        // Chunk digests: the receiver verifies (and may forward) the first chunk as soon as it
        // is in. The agent cuts through origin fetches of striped units too (not whole
        // segments, which go through its cache, nor origin tails, which join a peer's head).
        let cut = match from {
            Some(_) => true,
            None => part == Part::Whole && self.sched_cfg.stripes.get() > 1,
        };
        if cut
            && self.cfg.chunk_size > 0
            && let Some(t) = self.xfers[id as usize].as_ref()
        {
            let first = (self.cfg.chunk_size as f64).min(t.size);
            let at = self.now.max(t.start_at) + us(first / t.rate.max(1.0)) + t.tail;
            self.push(at, Ev::FirstChunk { x: id, uid });
        }
        if from.is_some() && !self.agents[to as usize].progress_armed {
            self.agents[to as usize].progress_armed = true;
            self.push(self.now + PROGRESS_EVERY, Ev::Progress(to));
        }
    }

    fn settle(&mut self, x: u32) {
        let now = self.now;
        if let Some(t) = self.xfers[x as usize].as_mut() {
            let from = t.last.max(t.start_at);
            if now > from {
                t.done = (t.done + t.rate * (now - from) as f64 / 1e6).min(t.size);
            }
            t.last = now;
        }
    }

    /// Recomputes the rates of every transfer on `from`'s uplink and `to`'s downlink.
    fn rerate(&mut self, from: Option<u32>, to: u32) {
        let mut xs: Vec<u32> = self.agents[to as usize].downs.clone();
        if let Some(f) = from {
            for &x in &self.agents[f as usize].ups {
                if !xs.contains(&x) {
                    xs.push(x);
                }
            }
        }
        let origin_rate = self.cfg.origin_rate_x * self.cfg.bitrate_bps / 8.0;
        for x in xs {
            self.settle(x);
            let Some(t) = self.xfers[x as usize].as_ref() else {
                continue;
            };
            let waiting = t.waiting;
            let down = {
                let r = &self.agents[t.to as usize];
                r.down / r.downs.len().max(1) as f64
            };
            let up = match t.from {
                Some(f) => {
                    let s = &self.agents[f as usize];
                    s.up / s.ups.len().max(1) as f64
                }
                None => origin_rate,
            };
            let rate = up.min(down).max(1.0);
            let remaining = (t.size - t.done).max(0.0);
            let begin = self.now.max(t.start_at);
            let end = begin + us(remaining / rate) + t.tail;
            if let Some(t) = self.xfers[x as usize].as_mut() {
                t.rate = rate;
                t.end = end;
            }
            if waiting {
                // It ends when its source's copy does (`release_waiters`).
                self.disarm(x);
            } else {
                self.arm(x);
            }
        }
    }

    /// Makes sure an end event of transfer `x` fires no later than its projected end.
    fn arm(&mut self, x: u32) {
        let Some(t) = self.xfers[x as usize].as_mut() else {
            return;
        };
        if t.armed.is_some_and(|at| at <= t.end) {
            return;
        }
        self.next_epoch += 1;
        t.epoch = self.next_epoch;
        t.armed = Some(t.end);
        let (end, epoch) = (t.end, t.epoch);
        self.push(end, Ev::XferEnd { x, epoch });
    }

    /// Voids the pending end event of transfer `x`.
    fn disarm(&mut self, x: u32) {
        if let Some(t) = self.xfers[x as usize].as_mut() {
            self.next_epoch += 1;
            t.epoch = self.next_epoch;
            t.armed = None;
        }
    }

    fn remove_xfer(&mut self, x: u32) {
        self.settle(x);
        let Some(t) = self.xfers[x as usize].take() else {
            return;
        };
        self.free_x.push(x);
        if t.from.is_some() {
            self.uploaded += t.done;
        }
        if t.from.is_none()
            && let Some(s) = self.stat_of(t.seq)
        {
            s.origin_bytes += t.done;
        }
        if let Some(f) = t.from {
            self.agents[f as usize].ups.retain(|&y| y != x);
        }
        self.agents[t.to as usize].downs.retain(|&y| y != x);
        let (from, to) = (t.from, t.to);
        let alive_to = self.is_alive(to);
        let alive_from = from.is_none_or(|f| self.is_alive(f));
        if alive_to || alive_from {
            self.rerate(from, to);
        }
    }

    /// Is `a` still receiving `seq` (a partial holder serving it cut-through)?
    fn receiving(&self, a: u32, seq: u64) -> bool {
        matches!(
            self.agents[a as usize].sched.status(seq),
            Some(SegmentStatus::Fetching | SegmentStatus::Idle)
        )
    }

    /// Bytes of `seq` that `a` could forward now: all if it holds it, else its verified chunks
    /// (the best of its incoming transfers, in whole chunks).
    fn forwardable(&mut self, a: u32, seq: u64, size: f64) -> f64 {
        if !self.receiving(a, seq) {
            return size;
        }
        let chunk = self.cfg.chunk_size.max(1) as f64;
        let xs: Vec<u32> = self.agents[a as usize].downs.clone();
        let mut best = 0.0f64;
        for x in xs {
            self.settle(x);
            if let Some(t) = self.xfers[x as usize].as_ref()
                && t.seq == seq
                && !t.corrupt
            {
                best = best.max((t.done / chunk).floor() * chunk);
            }
        }
        best
    }

    fn first_chunk(&mut self, x: u32, uid: u64) {
        let Some(t) = self.xfers[x as usize].as_ref() else {
            return;
        };
        if t.uid != uid || t.dropped_by_receiver {
            return;
        }
        let (to, seq, req_id, corrupt) = (t.to, t.seq, t.req_id, t.corrupt);
        if !self.is_alive(to) {
            return;
        }
        let now = self.at(self.now);
        if let (Some(from), true) = (t.from, corrupt) {
            // The first chunk fails its digest: the receiver drops the transfer and bans the
            // sender; nothing of it is kept or forwarded.
            let from_id = self.ids[from as usize];
            let chunk = self.cfg.chunk_size;
            self.remove_xfer(x);
            self.agents[to as usize]
                .sched
                .handle_transfer_complete(now, from_id, req_id, chunk, false);
            self.flush(to);
            return;
        }
        self.agents[to as usize]
            .sched
            .handle_partial_verified(now, seq);
        self.flush(to);
    }

    fn xfer_end(&mut self, x: u32, epoch: u64) {
        let now = self.now;
        let Some(t) = self.xfers[x as usize].as_mut() else {
            return;
        };
        if t.epoch != epoch {
            return;
        }
        t.armed = None;
        if t.end > now {
            // Slowed down since this event was set: fire again at the new end.
            self.arm(x);
            return;
        }
        let (part, size0, seq, uid, from) = (t.part, t.size, t.seq, t.uid, t.from);
        if let Some(f) = from
            && self.is_alive(f)
            && self.receiving(f, seq)
            && !(part == Part::Head && self.forwardable(f, seq, self.seg_size(seq)) >= size0)
        {
            // Cut-through from a partial holder that has not got the whole segment yet: the
            // last chunk follows one chunk time after the holder's copy is complete (a head
            // ends as soon as the holder has verified that far).
            self.settle(x);
            if let Some(t) = self.xfers[x as usize].as_mut() {
                t.waiting = true;
            }
            self.agents[f as usize].waiters.push((seq, x, uid));
            return;
        }
        self.settle(x);
        let Some(t) = self.xfers[x as usize].take() else {
            return;
        };
        self.free_x.push(x);
        if t.from.is_some() {
            self.uploaded += t.done;
        }
        if let Some(f) = t.from {
            self.agents[f as usize].ups.retain(|&y| y != x);
        }
        self.agents[t.to as usize].downs.retain(|&y| y != x);
        self.rerate(t.from, t.to);
        let size = t.size as u64;
        let now = self.at(self.now);
        let to = t.to;
        match t.from {
            None => {
                if let Some(s) = self.stat_of(t.seq) {
                    s.origin_bytes += t.size;
                }
                if !self.is_alive(to) {
                    return;
                }
                if t.part == Part::Tail {
                    self.tail_part_in(to, t.seq, false);
                    return;
                }
                let had = self.agents[to as usize].sched.has(t.seq);
                self.agents[to as usize]
                    .sched
                    .handle_origin_result(now, t.seq, Ok(size));
                if !had && self.agents[to as usize].sched.has(t.seq) {
                    self.obtained(to, t.seq, 0);
                }
                self.flush(to);
            }
            Some(f) => {
                if self.trace_obtained {
                    eprintln!(
                        "XFR {} {:.3} {:.0} {}",
                        t.seq,
                        (self.now - t.start_at) as f64 / 1e6,
                        t.rate,
                        self.agents[f as usize].up as u64
                    );
                }
                let to_id = self.ids[to as usize];
                let from_id = self.ids[f as usize];
                if self.is_alive(f) {
                    self.agents[f as usize]
                        .sched
                        .handle_upload_done(now, to_id, t.req_id, size);
                    self.flush(f);
                }
                if !self.is_alive(to) || t.dropped_by_receiver {
                    return;
                }
                if t.part == Part::Head {
                    let total = self.seg_size(t.seq) as u64;
                    self.agents[to as usize]
                        .sched
                        .handle_transfer_progress(now, from_id, t.req_id, size, total);
                    self.tail_part_in(to, t.seq, true);
                    return;
                }
                let had = self.agents[to as usize].sched.has(t.seq);
                self.agents[to as usize]
                    .sched
                    .handle_transfer_complete(now, from_id, t.req_id, size, !t.corrupt);
                if !had && self.agents[to as usize].sched.has(t.seq) {
                    self.obtained(to, t.seq, size);
                }
                self.flush(to);
            }
        }
    }

    /// `a`'s scheduler keeps its late peer transfer of `seq` for bytes `..from` and asks the
    /// origin for the rest.
    fn start_tail(&mut self, a: u32, seq: u64, from: u64) {
        let head = self.agents[a as usize].downs.iter().copied().find(|&x| {
            self.xfers[x as usize].as_ref().is_some_and(|t| {
                t.from.is_some() && t.seq == seq && !t.dropped_by_receiver && t.part == Part::Whole
            })
        });
        let total = self.seg_size(seq);
        let Some(x) = head else {
            let now = self.at(self.now);
            self.agents[a as usize].sched.handle_tail_failed(now, seq);
            self.flush(a);
            return;
        };
        self.settle(x);
        if self.trace_obtained
            && let Some(t) = self.xfers[x as usize].as_ref()
        {
            // Head received, split point (fractions of the segment), head rate (× bitrate).
            eprintln!(
                "TAIL {seq} {:.3} {:.3} {:.3}",
                t.done / total,
                from as f64 / total,
                t.rate * 8.0 / self.cfg.bitrate_bps
            );
        }
        let mut src = None;
        if let Some(t) = self.xfers[x as usize].as_mut() {
            t.size = (from as f64).max(t.done).min(total);
            t.part = Part::Head;
            src = t.from;
        }
        if !self.xfers[x as usize].as_ref().is_some_and(|t| t.waiting) {
            self.rerate(src, a);
        }
        let tail = (total - from as f64).max(0.0);
        self.agents[a as usize]
            .tails
            .push((seq, false, false, tail as u64));
        self.start_part(None, a, 0, seq, false, tail, Part::Tail);
    }

    /// The head (`head`) or the origin tail of `a`'s split copy of `seq` is in; with both, the
    /// segment is whole.
    fn tail_part_in(&mut self, a: u32, seq: u64, head: bool) {
        let tails = &mut self.agents[a as usize].tails;
        let Some(i) = tails.iter().position(|t| t.0 == seq) else {
            return;
        };
        if head {
            tails[i].1 = true;
        } else {
            tails[i].2 = true;
        }
        let (_, h, t, tail_bytes) = tails[i];
        if h && t {
            tails.swap_remove(i);
            let now = self.at(self.now);
            let size = self.seg_size(seq) as u64;
            let had = self.agents[a as usize].sched.has(seq);
            self.agents[a as usize]
                .sched
                .handle_tail_complete(now, seq, size, tail_bytes);
            if !had && self.agents[a as usize].sched.has(seq) {
                self.obtained(a, seq, size.saturating_sub(tail_bytes));
            }
        }
        self.flush(a);
    }

    /// `a` obtained `seq`, `peer_bytes` of it from peers.
    fn obtained(&mut self, a: u32, seq: u64, peer_bytes: u64) {
        let size = self.seg_size(seq) as u64;
        let from_peer = peer_bytes > 0;
        if self.trace_obtained {
            eprintln!(
                "OBT {a} {seq} {:.3} {}",
                self.since_publish(self.sched_cfg.stripes.seq_of(seq)),
                if from_peer { "peer" } else { "origin" }
            );
        }
        if let Some(s) = self.stat_of(seq) {
            s.obtained_bytes += size;
            s.peer_bytes += peer_bytes.min(size);
        }
        let whole = self.sched_cfg.stripes.seq_of(seq);
        if self.agents[a as usize].player.waiting == Some(whole)
            && self.agents[a as usize].sched.holds_segment(whole)
        {
            self.deliver(a, whole);
        }
        self.release_waiters(a, seq);
    }

    /// `a` now holds `seq` whole: its cut-through uploads of it send their last chunk.
    fn release_waiters(&mut self, a: u32, seq: u64) {
        let ws = &mut self.agents[a as usize].waiters;
        if ws.is_empty() {
            return;
        }
        let mut mine = Vec::new();
        ws.retain(|w| {
            if w.0 == seq {
                mine.push(*w);
                false
            } else {
                true
            }
        });
        let chunk = self.cfg.chunk_size as f64;
        for (_, x, uid) in mine {
            self.settle(x);
            let Some(t) = self.xfers[x as usize].as_mut() else {
                continue;
            };
            if t.uid != uid || !t.waiting {
                continue;
            }
            t.waiting = false;
            let last = chunk.min(t.size);
            t.end = self.now + us(last / t.rate.max(1.0)) + t.tail;
            self.arm(x);
        }
    }

    fn progress(&mut self, a: u32) {
        self.agents[a as usize].progress_armed = false;
        if !self.is_alive(a) {
            return;
        }
        let xs: Vec<u32> = self.agents[a as usize].downs.clone();
        let now = self.at(self.now);
        let mut any = false;
        for x in xs {
            self.settle(x);
            let Some(t) = self.xfers[x as usize].as_ref() else {
                continue;
            };
            let Some(f) = t.from else {
                continue;
            };
            if t.dropped_by_receiver {
                continue;
            }
            any = true;
            // Bytes visible at the receiver lag by the link latency; ignore that detail. A
            // partial holder sends no more than it has verified.
            let (req_id, seq, done, size) = (t.req_id, t.seq, t.done, t.size);
            let done = done.min(self.forwardable(f, seq, size)) as u64;
            let size = size as u64;
            let from_id = self.ids[f as usize];
            self.agents[a as usize]
                .sched
                .handle_transfer_progress(now, from_id, req_id, done, size);
        }
        if any {
            self.flush(a);
            let ag = &mut self.agents[a as usize];
            if !ag.progress_armed {
                ag.progress_armed = true;
                self.push(self.now + PROGRESS_EVERY, Ev::Progress(a));
            }
        }
    }

    // ----- report -------------------------------------------------------------------------------

    fn report(&mut self) -> SimReport {
        let mut totals = self.retired.clone();
        let mut rho_sum = 0.0;
        let mut rho_n = 0usize;
        for (a, ag) in self.agents.iter().enumerate() {
            if self.is_alive(a as u32) {
                add_counters(&mut totals, ag.sched.counters());
                rho_sum += ag.sched.seed_fraction();
                rho_n += 1;
            }
        }
        let mut segments = 0u64;
        let mut unique = 0u64;
        let mut origin = 0f64;
        let mut obtained = 0u64;
        let mut peer = 0u64;
        let mut meta = 0u64;
        for seq in self.count_from..=self.count_to.min(self.infos.len() as u64 - 1) {
            if seq > self.newest_published(self.end) {
                break;
            }
            segments += 1;
            unique += self.whole_size(seq) as u64;
            if let Some(s) = self.stats.get(seq as usize) {
                origin += s.origin_bytes;
                obtained += s.obtained_bytes;
                peer += s.peer_bytes;
                meta += s.meta_bytes;
            }
        }
        let mut st = self.startups.clone();
        st.sort_by(|a, b| a.total_cmp(b));
        let pct = |p: f64| -> f64 {
            if st.is_empty() {
                return 0.0;
            }
            let i = ((st.len() - 1) as f64 * p).round() as usize;
            st.get(i).copied().unwrap_or(0.0)
        };
        let n = self.cfg.agents.max(1) as f64;
        let origin_bytes = origin.round() as u64;
        let watch = self.watch_us as f64 / 1e6;
        let stall_s = self.stall_us as f64 / 1e6;
        SimReport {
            figures: super::SwarmFigures {
                agents: self.cfg.agents,
                segments,
                origin_segment_bytes: origin_bytes,
                unique_segment_bytes: unique,
                origin_copies_per_segment: if unique > 0 {
                    origin / unique as f64
                } else {
                    0.0
                },
                offload_ratio: if obtained > 0 {
                    1.0 - origin / obtained as f64
                } else {
                    0.0
                },
                ideal_offload: 1.0 - 1.0 / n,
                upload_bound: (self.upload_sum / self.created.max(1) as f64).min(1.0),
                stalls: self.stalls,
                stall_seconds: stall_s,
                startup_ms_p50: pct(0.5),
                startup_ms_p95: pct(0.95),
                agent_cpu_percent_mean: None,
                agent_rss_mb_max: None,
                tracker_rss_mb: None,
            },
            watch_seconds: watch,
            stall_ratio: if watch > 0.0 { stall_s / watch } else { 0.0 },
            obtained_segment_bytes: obtained,
            peer_segment_bytes: peer,
            origin_metadata_bytes: meta,
            offload_ratio_with_metadata: if obtained > 0 {
                1.0 - (origin + meta as f64) / (obtained + meta) as f64
            } else {
                0.0
            },
            joins: self.joins,
            leaves: self.leaves,
            origin_fetches: OriginFetches {
                elected: totals.origin_elected,
                fallback: totals.origin_fallbacks,
                hedge: totals.origin_hedges,
                no_peers: totals.origin_no_peers,
                backstop: totals.origin_backstops,
                tail: totals.origin_tails,
                tail_joined: totals.origin_tails_done,
                other: totals.origin_fetches
                    - totals.origin_elected
                    - totals.origin_fallbacks
                    - totals.origin_hedges
                    - totals.origin_no_peers
                    - totals.origin_backstops
                    - totals.origin_tails,
            },
            peer_requests: totals.peer_requests,
            peer_hedges: totals.peer_hedges,
            busy_refusals: totals.busy_sent,
            bans: totals.bans,
            integrity_failures: totals.integrity_failures,
            peer_lost_transfers: totals.peer_lost,
            player_failures: self.player_failures,
            failed_uploaders: self.failed_uploaders,
            seed_fraction_mean: if rho_n > 0 {
                rho_sum / rho_n as f64
            } else {
                0.0
            },
            messages: self.messages,
            message_bytes: self.message_bytes,
            events: self.events,
            peer_uploaded_bytes: self.uploaded.round() as u64,
            upload_utilisation: if self.upload_capacity > 0.0 {
                self.uploaded / self.upload_capacity
            } else {
                0.0
            },
        }
    }
}
