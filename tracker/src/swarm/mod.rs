//! Sans-IO swarm registry: who is in which swarm, which offers await an answer, and
//! when either goes stale.
//!
//! The registry never reads a clock and never touches a socket: every call that depends
//! on time takes `now: Instant`, the random generator is seeded at construction, and a
//! connection is an opaque [`ConnId`] plus a handle `C` that the caller uses to reach
//! it (the server stores a bounded-queue sender there; tests store plain numbers).
//! The same code therefore runs in the server and in deterministic tests.
//!
//! ```text
//!   connect(conn, handle, ip)          announce(now, conn, req) ──▶ relays: [(handle, offer #i)]
//!   disconnect(conn)  = stopped         answer(now, conn, req)   ──▶ handle of the offerer
//!   expire(now)       drops idle peers and stale offers
//! ```
//!
//! Rules, and why:
//!
//! * A membership is a (`info_hash`, `peer_id`) pair owned by one connection. A
//!   connection that closes leaves every swarm it joined (as `stopped`).
//! * A `peer_id` already owned by another connection may be taken over only from the
//!   same IP address (a client that reconnected). From another address it is refused,
//!   so peer ids learnt from relayed offers cannot be used to hijack answers.
//! * Every relayed offer is remembered (offerer, `offer_id`, target) until it is answered
//!   or `offer_ttl` passes. Only the target of a remembered offer can answer it, once;
//!   anything else is dropped. A peer cannot spray unsolicited answers.
//! * Memory is bounded: `max_swarms`, `max_peers`, `max_swarms_per_connection`, and
//!   `max_pending_offers_per_peer` (oldest forgotten first).
//! * Maps are keyed by client-chosen ids, so they keep std's randomly seeded SipHash.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::policy::{CandidateView, PeerPolicy, Subnet};
use crate::proto::{
    AnnounceEvent, AnnounceRequest, AnswerRequest, InfoHash, OfferId, PeerId, ScrapeStats,
};

/// Identifies one client connection (assigned by the caller, unique while connected).
pub type ConnId = u64;

/// Limits and timeouts of the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryConfig {
    /// A peer that has not announced for this long is removed.
    pub peer_ttl: Duration,
    /// A relayed offer not answered within this time is forgotten.
    pub offer_ttl: Duration,
    /// Maximum swarms at once.
    pub max_swarms: usize,
    /// Maximum peers over all swarms.
    pub max_peers: usize,
    /// Maximum memberships of one connection.
    pub max_swarms_per_connection: usize,
    /// Maximum remembered offers per offering peer.
    pub max_pending_offers_per_peer: usize,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            peer_ttl: Duration::from_secs(300),
            offer_ttl: Duration::from_secs(60),
            max_swarms: 100_000,
            max_peers: 1_000_000,
            max_swarms_per_connection: 16,
            max_pending_offers_per_peer: 50,
        }
    }
}

/// Why an announce was refused. `Display` is the `failure reason` sent to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The connection was never registered (a caller bug, reported, not panicked on).
    #[error("internal error: unknown connection")]
    UnknownConnection,
    /// The connection already holds the maximum number of memberships.
    #[error("too many swarms on this connection (max {0})")]
    TooManySwarms(usize),
    /// The tracker holds `max_swarms` swarms.
    #[error("tracker is full: too many swarms")]
    SwarmCapacity,
    /// The tracker holds `max_peers` peers.
    #[error("tracker is full: too many peers")]
    PeerCapacity,
    /// The `peer_id` belongs to a connection from another address.
    #[error("peer_id is in use by another connection")]
    PeerIdInUse,
}

/// Why an answer was not relayed (silently, as `bittorrent-tracker` does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AnswerDrop {
    /// No such swarm.
    #[error("unknown swarm")]
    UnknownSwarm,
    /// The answering `peer_id` is not a member owned by this connection.
    #[error("answering peer is not a member on this connection")]
    NotMember,
    /// The offerer has left.
    #[error("offering peer is gone")]
    OffererGone,
    /// No remembered offer with that id for this answerer (never relayed, already
    /// answered, or expired).
    #[error("unknown or expired offer")]
    UnknownOffer,
}

impl AnswerDrop {
    /// Metric label.
    pub const fn as_label(self) -> &'static str {
        match self {
            AnswerDrop::UnknownSwarm => "unknown_swarm",
            AnswerDrop::NotMember => "not_member",
            AnswerDrop::OffererGone => "peer_gone",
            AnswerDrop::UnknownOffer => "unknown_offer",
        }
    }
}

/// One offer to deliver: `offers[offer_index]` of the announce goes to `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relay<C> {
    /// Handle of the target's connection.
    pub to: C,
    /// The target peer.
    pub to_peer: PeerId,
    /// Index into the announce's `offers`.
    pub offer_index: usize,
}

/// Result of an accepted announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnounceOutcome {
    /// Seeders in the swarm after the announce.
    pub complete: u64,
    /// Leechers in the swarm after the announce.
    pub incomplete: u64,
}

/// What [`Registry::expire`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expired {
    /// Idle peers removed.
    pub peers: usize,
    /// Stale offers forgotten.
    pub offers: usize,
    /// Empty swarms removed.
    pub swarms: usize,
}

#[derive(Debug, Clone)]
struct PendingOffer {
    offer_id: OfferId,
    to: PeerId,
    created: Instant,
}

#[derive(Debug)]
struct Peer {
    id: PeerId,
    conn: ConnId,
    subnet: Subnet,
    seeder: bool,
    last_seen: Instant,
    pending: Vec<PendingOffer>,
}

#[derive(Debug, Default)]
struct Swarm {
    peers: Vec<Peer>,
    index: HashMap<PeerId, u32>,
    subnets: HashMap<Subnet, Vec<u32>>,
    complete: u64,
    incomplete: u64,
    downloaded: u64,
}

impl CandidateView for Swarm {
    fn len(&self) -> usize {
        self.peers.len()
    }
    fn in_subnet(&self, subnet: &Subnet) -> &[u32] {
        self.subnets.get(subnet).map(Vec::as_slice).unwrap_or(&[])
    }
}

impl Swarm {
    fn position(&self, id: &PeerId) -> Option<usize> {
        self.index.get(id).map(|&i| i as usize)
    }

    fn insert(&mut self, peer: Peer, index_subnets: bool) {
        let Ok(idx) = u32::try_from(self.peers.len()) else {
            return;
        };
        if peer.seeder {
            self.complete += 1;
        } else {
            self.incomplete += 1;
        }
        self.index.insert(peer.id, idx);
        if index_subnets {
            self.subnets.entry(peer.subnet).or_default().push(idx);
        }
        self.peers.push(peer);
    }

    fn remove_at(&mut self, i: usize, index_subnets: bool) -> Option<Peer> {
        if i >= self.peers.len() {
            return None;
        }
        let last = self.peers.len() - 1;
        let peer = self.peers.swap_remove(i);
        self.index.remove(&peer.id);
        if peer.seeder {
            self.complete = self.complete.saturating_sub(1);
        } else {
            self.incomplete = self.incomplete.saturating_sub(1);
        }
        if index_subnets && let Some(group) = self.subnets.get_mut(&peer.subnet) {
            if let Some(pos) = group.iter().position(|&x| x as usize == i) {
                group.swap_remove(pos);
            }
            if group.is_empty() {
                self.subnets.remove(&peer.subnet);
            }
        }
        if i != last {
            // The former last peer now lives at `i`.
            if let Some(moved) = self.peers.get(i) {
                let new_idx = i as u32;
                self.index.insert(moved.id, new_idx);
                if index_subnets
                    && let Some(group) = self.subnets.get_mut(&moved.subnet)
                    && let Some(slot) = group.iter_mut().find(|x| **x as usize == last)
                {
                    *slot = new_idx;
                }
            }
        }
        Some(peer)
    }

    fn set_seeder(&mut self, i: usize) {
        if let Some(p) = self.peers.get_mut(i)
            && !p.seeder
        {
            p.seeder = true;
            self.complete += 1;
            self.incomplete = self.incomplete.saturating_sub(1);
        }
    }

    fn stats(&self) -> ScrapeStats {
        ScrapeStats {
            complete: self.complete,
            incomplete: self.incomplete,
            downloaded: self.downloaded,
        }
    }
}

#[derive(Debug)]
struct Conn<C> {
    handle: C,
    ip: IpAddr,
    subnet: Subnet,
    memberships: Vec<(InfoHash, PeerId)>,
}

impl<C> Conn<C> {
    fn forget(&mut self, info_hash: &InfoHash, peer_id: &PeerId) {
        if let Some(pos) = self
            .memberships
            .iter()
            .position(|(h, p)| h == info_hash && p == peer_id)
        {
            self.memberships.swap_remove(pos);
        }
    }
}

/// The swarm registry. See the module docs.
#[derive(Debug)]
pub struct Registry<C> {
    cfg: RegistryConfig,
    policy: Box<dyn PeerPolicy>,
    index_subnets: bool,
    rng: SmallRng,
    swarms: HashMap<InfoHash, Swarm>,
    conns: HashMap<ConnId, Conn<C>>,
    peers: usize,
    scratch: Vec<u32>,
}

impl<C: Clone> Registry<C> {
    /// A new registry; `seed` makes the peer choice reproducible.
    pub fn new(cfg: RegistryConfig, policy: Box<dyn PeerPolicy>, seed: u64) -> Self {
        Self {
            cfg,
            index_subnets: policy.uses_subnets(),
            policy,
            rng: SmallRng::seed_from_u64(seed),
            swarms: HashMap::new(),
            conns: HashMap::new(),
            peers: 0,
            scratch: Vec::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RegistryConfig {
        &self.cfg
    }

    /// Registers a connection before its first announce. Re-using a registered id
    /// first disconnects the old one.
    pub fn connect(&mut self, conn: ConnId, handle: C, ip: IpAddr) {
        if self.conns.contains_key(&conn) {
            self.disconnect(conn);
        }
        self.conns.insert(
            conn,
            Conn {
                handle,
                ip,
                subnet: Subnet::of(ip),
                memberships: Vec::new(),
            },
        );
    }

    /// Removes a connection: a `stopped` in every swarm it still holds. Returns the
    /// number of memberships removed.
    pub fn disconnect(&mut self, conn: ConnId) -> usize {
        let Some(c) = self.conns.remove(&conn) else {
            return 0;
        };
        let mut removed = 0;
        for (info_hash, peer_id) in c.memberships {
            if self.remove_peer(&info_hash, &peer_id, conn) {
                removed += 1;
            }
        }
        removed
    }

    /// Removes `peer_id` from `info_hash` if `owner` owns it; drops the swarm when
    /// empty. Does not touch the owner's membership list.
    fn remove_peer(&mut self, info_hash: &InfoHash, peer_id: &PeerId, owner: ConnId) -> bool {
        let Some(swarm) = self.swarms.get_mut(info_hash) else {
            return false;
        };
        let Some(i) = swarm.position(peer_id) else {
            return false;
        };
        if swarm.peers.get(i).map(|p| p.conn) != Some(owner) {
            return false;
        }
        let removed = swarm.remove_at(i, self.index_subnets).is_some();
        if removed {
            self.peers = self.peers.saturating_sub(1);
        }
        if swarm.peers.is_empty() {
            self.swarms.remove(info_hash);
        }
        removed
    }

    /// Handles an announce (not an answer). Offers of accepted non-`stopped` announces
    /// are assigned to chosen peers and appended to `relays`; each is remembered so its
    /// answer can be matched.
    pub fn announce(
        &mut self,
        now: Instant,
        conn: ConnId,
        req: &AnnounceRequest,
        relays: &mut Vec<Relay<C>>,
    ) -> Result<AnnounceOutcome, Refusal> {
        let Some(this) = self.conns.get(&conn) else {
            return Err(Refusal::UnknownConnection);
        };
        let (this_ip, this_subnet) = (this.ip, this.subnet);

        if req.event == AnnounceEvent::Stopped {
            if self.remove_peer(&req.info_hash, &req.peer_id, conn)
                && let Some(c) = self.conns.get_mut(&conn)
            {
                c.forget(&req.info_hash, &req.peer_id);
            }
            let (complete, incomplete) = self
                .swarms
                .get(&req.info_hash)
                .map(|s| (s.complete, s.incomplete))
                .unwrap_or((0, 0));
            return Ok(AnnounceOutcome {
                complete,
                incomplete,
            });
        }

        let seeder = req.left == Some(0);
        let completed = req.event == AnnounceEvent::Completed;
        let existing = self.swarms.get(&req.info_hash).and_then(|s| {
            s.position(&req.peer_id)
                .and_then(|i| s.peers.get(i).map(|p| (i, p.conn)))
        });

        let idx = match existing {
            Some((i, owner)) if owner == conn => i,
            Some((i, owner)) => {
                // Takeover by a reconnected client from the same address, if allowed.
                let same_ip = self.conns.get(&owner).is_none_or(|o| o.ip == this_ip);
                if !same_ip {
                    return Err(Refusal::PeerIdInUse);
                }
                self.check_membership_room(conn)?;
                if let Some(o) = self.conns.get_mut(&owner) {
                    o.forget(&req.info_hash, &req.peer_id);
                }
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.memberships.push((req.info_hash, req.peer_id));
                }
                if let Some(swarm) = self.swarms.get_mut(&req.info_hash) {
                    let old_subnet = swarm.peers.get(i).map(|p| p.subnet);
                    if let Some(p) = swarm.peers.get_mut(i) {
                        p.conn = conn;
                        p.subnet = this_subnet;
                    }
                    if self.index_subnets && old_subnet != Some(this_subnet) {
                        if let Some(old) = old_subnet
                            && let Some(g) = swarm.subnets.get_mut(&old)
                        {
                            g.retain(|&x| x as usize != i);
                            if g.is_empty() {
                                swarm.subnets.remove(&old);
                            }
                        }
                        swarm.subnets.entry(this_subnet).or_default().push(i as u32);
                    }
                }
                i
            }
            None => {
                self.check_membership_room(conn)?;
                if self.peers >= self.cfg.max_peers {
                    return Err(Refusal::PeerCapacity);
                }
                if !self.swarms.contains_key(&req.info_hash)
                    && self.swarms.len() >= self.cfg.max_swarms
                {
                    return Err(Refusal::SwarmCapacity);
                }
                let swarm = self.swarms.entry(req.info_hash).or_default();
                swarm.insert(
                    Peer {
                        id: req.peer_id,
                        conn,
                        subnet: this_subnet,
                        seeder: false,
                        last_seen: now,
                        pending: Vec::new(),
                    },
                    self.index_subnets,
                );
                self.peers += 1;
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.memberships.push((req.info_hash, req.peer_id));
                }
                swarm.peers.len() - 1
            }
        };

        let Some(swarm) = self.swarms.get_mut(&req.info_hash) else {
            return Err(Refusal::UnknownConnection);
        };
        let was_seeder = swarm.peers.get(idx).is_some_and(|p| p.seeder);
        if completed && !was_seeder {
            swarm.downloaded = swarm.downloaded.saturating_add(1);
        }
        if seeder || completed {
            swarm.set_seeder(idx);
        }
        if let Some(p) = swarm.peers.get_mut(idx) {
            p.last_seen = now;
        }

        if !req.offers.is_empty() {
            self.scratch.clear();
            self.policy.choose(
                &*swarm,
                Some(idx),
                this_subnet,
                req.offers.len(),
                &mut self.rng,
                &mut self.scratch,
            );
            for (offer_index, &target) in self.scratch.iter().enumerate() {
                let Some(offer) = req.offers.get(offer_index) else {
                    break;
                };
                let Some(t) = swarm.peers.get(target as usize) else {
                    continue;
                };
                let Some(tconn) = self.conns.get(&t.conn) else {
                    continue;
                };
                relays.push(Relay {
                    to: tconn.handle.clone(),
                    to_peer: t.id,
                    offer_index,
                });
                let to = t.id;
                if let Some(p) = swarm.peers.get_mut(idx) {
                    if self.cfg.max_pending_offers_per_peer > 0
                        && p.pending.len() >= self.cfg.max_pending_offers_per_peer
                    {
                        p.pending.remove(0);
                    }
                    if self.cfg.max_pending_offers_per_peer > 0 {
                        p.pending.push(PendingOffer {
                            offer_id: offer.offer_id,
                            to,
                            created: now,
                        });
                    }
                }
            }
        }

        Ok(AnnounceOutcome {
            complete: swarm.complete,
            incomplete: swarm.incomplete,
        })
    }

    fn check_membership_room(&self, conn: ConnId) -> Result<(), Refusal> {
        let held = self.conns.get(&conn).map_or(0, |c| c.memberships.len());
        if held >= self.cfg.max_swarms_per_connection {
            Err(Refusal::TooManySwarms(self.cfg.max_swarms_per_connection))
        } else {
            Ok(())
        }
    }

    /// Matches an answer to a remembered offer and returns the offerer's handle. The
    /// offer is forgotten (one answer per offer) and the answerer counts as seen.
    pub fn answer(
        &mut self,
        now: Instant,
        conn: ConnId,
        req: &AnswerRequest,
    ) -> Result<C, AnswerDrop> {
        let offer_ttl = self.cfg.offer_ttl;
        let swarm = self
            .swarms
            .get_mut(&req.info_hash)
            .ok_or(AnswerDrop::UnknownSwarm)?;
        let answerer = swarm
            .position(&req.peer_id)
            .filter(|&i| swarm.peers.get(i).is_some_and(|p| p.conn == conn))
            .ok_or(AnswerDrop::NotMember)?;
        let offerer = swarm
            .position(&req.to_peer_id)
            .ok_or(AnswerDrop::OffererGone)?;
        let peer = swarm
            .peers
            .get_mut(offerer)
            .ok_or(AnswerDrop::OffererGone)?;
        let pos = peer
            .pending
            .iter()
            .position(|o| o.offer_id == req.offer_id && o.to == req.peer_id)
            .ok_or(AnswerDrop::UnknownOffer)?;
        let pending = peer.pending.remove(pos);
        if now.saturating_duration_since(pending.created) >= offer_ttl {
            return Err(AnswerDrop::UnknownOffer);
        }
        let offerer_conn = peer.conn;
        if let Some(a) = swarm.peers.get_mut(answerer) {
            a.last_seen = now;
        }
        self.conns
            .get(&offerer_conn)
            .map(|c| c.handle.clone())
            .ok_or(AnswerDrop::OffererGone)
    }

    /// Statistics of one swarm (zeros if unknown).
    pub fn scrape(&self, info_hash: &InfoHash) -> ScrapeStats {
        self.swarms
            .get(info_hash)
            .map(Swarm::stats)
            .unwrap_or(ScrapeStats {
                complete: 0,
                incomplete: 0,
                downloaded: 0,
            })
    }

    /// Removes peers idle for `peer_ttl` and offers older than `offer_ttl`, and empty
    /// swarms. Cost is linear in the number of peers.
    pub fn expire(&mut self, now: Instant) -> Expired {
        let mut out = Expired::default();
        let (peer_ttl, offer_ttl) = (self.cfg.peer_ttl, self.cfg.offer_ttl);
        let index_subnets = self.index_subnets;
        let conns = &mut self.conns;
        self.swarms.retain(|info_hash, swarm| {
            let mut i = 0;
            while i < swarm.peers.len() {
                let idle = swarm
                    .peers
                    .get(i)
                    .is_some_and(|p| now.saturating_duration_since(p.last_seen) >= peer_ttl);
                if idle {
                    if let Some(p) = swarm.remove_at(i, index_subnets) {
                        out.peers += 1;
                        out.offers += p.pending.len();
                        if let Some(c) = conns.get_mut(&p.conn) {
                            c.forget(info_hash, &p.id);
                        }
                    }
                } else {
                    if let Some(p) = swarm.peers.get_mut(i) {
                        let before = p.pending.len();
                        p.pending
                            .retain(|o| now.saturating_duration_since(o.created) < offer_ttl);
                        out.offers += before - p.pending.len();
                    }
                    i += 1;
                }
            }
            let keep = !swarm.peers.is_empty();
            if !keep {
                out.swarms += 1;
            }
            keep
        });
        self.peers = self.peers.saturating_sub(out.peers);
        out
    }

    /// Peers over all swarms.
    pub fn peer_count(&self) -> usize {
        self.peers
    }

    /// Swarms with at least one peer.
    pub fn swarm_count(&self) -> usize {
        self.swarms.len()
    }

    /// Registered connections.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Memberships held by a connection.
    pub fn memberships(&self, conn: ConnId) -> usize {
        self.conns.get(&conn).map_or(0, |c| c.memberships.len())
    }

    /// Offers awaiting an answer, over all peers (linear; for tests and diagnostics).
    pub fn pending_offer_count(&self) -> usize {
        self.swarms
            .values()
            .flat_map(|s| s.peers.iter())
            .map(|p| p.pending.len())
            .sum()
    }

    /// Checks internal invariants (index maps match the peer vectors, counters match).
    /// Used by tests; returns a description of the first violation.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut total = 0;
        for (h, s) in &self.swarms {
            if s.peers.is_empty() {
                return Err(format!("empty swarm {h}"));
            }
            total += s.peers.len();
            if s.index.len() != s.peers.len() {
                return Err(format!("index size mismatch in {h}"));
            }
            let seeders = s.peers.iter().filter(|p| p.seeder).count() as u64;
            if seeders != s.complete || s.peers.len() as u64 - seeders != s.incomplete {
                return Err(format!("counter mismatch in {h}"));
            }
            for (i, p) in s.peers.iter().enumerate() {
                if s.index.get(&p.id) != Some(&(i as u32)) {
                    return Err(format!("index mismatch for {} in {h}", p.id));
                }
                let Some(c) = self.conns.get(&p.conn) else {
                    return Err(format!("peer {} owned by unknown connection", p.id));
                };
                if !c.memberships.contains(&(*h, p.id)) {
                    return Err(format!("membership missing for {}", p.id));
                }
                if self.index_subnets && !s.in_subnet(&p.subnet).contains(&(i as u32)) {
                    return Err(format!("subnet index missing {}", p.id));
                }
            }
            if self.index_subnets {
                let n: usize = s.subnets.values().map(Vec::len).sum();
                if n != s.peers.len() {
                    return Err(format!("subnet index size mismatch in {h}"));
                }
            }
        }
        if total != self.peers {
            return Err(format!("peer counter {} != {}", self.peers, total));
        }
        for (id, c) in &self.conns {
            for (h, p) in &c.memberships {
                let owned = self
                    .swarms
                    .get(h)
                    .and_then(|s| s.position(p).and_then(|i| s.peers.get(i)))
                    .is_some_and(|peer| peer.conn == *id);
                if !owned {
                    return Err(format!("stale membership of conn {id}"));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
