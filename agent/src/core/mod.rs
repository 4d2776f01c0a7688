//! The agent's sans-IO P2P core: identifiers, the peer wire protocol, the swarm view, the
//! per-swarm scheduler and its pure policies.
//!
//! Nothing here performs I/O, reads a clock, spawns tasks or parses URLs: every input carries
//! `now: std::time::Instant`, outputs are polled (`poll_action`, `poll_timeout`), and the
//! randomness needed for peer ids is injected. The same code runs in the agent's driver and in
//! the simulator (`crate::sim`), which runs thousands of schedulers in virtual time.
//!
//! | module | job |
//! |---|---|
//! | [`edge`] | when to reload a live playlist: just after the origin's next publication, within RFC 8216 |
//! | [`ids`] | `InfoHash`, `PeerId`, `Digest`, `SegmentId` |
//! | [`peer_proto`] | frame codec with strict limits, transfer reassembly, per-channel session |
//! | [`swarm`] | connected peers, their availability windows and scores, bans |
//! | [`scheduler`] | where each segment comes from, hedging, uploads |
//! | [`policy`] | rendezvous hashing, peer scoring/choice, seed-fraction control, token bucket |
//! | [`stripes`] | striped sharing: unit ids, how a segment splits into units |

pub mod edge;
pub mod ids;
pub mod peer_proto;
pub mod policy;
pub mod scheduler;
pub mod stripes;
pub mod swarm;
