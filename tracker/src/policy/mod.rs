//! Peer choice: which members of a swarm receive an announcer's offers.
//!
//! The WebTorrent protocol leaves peer selection to the tracker: an announce carries N
//! offers and the tracker picks up to N peers, one offer each. A [`PeerPolicy`] makes
//! that pick from a read-only [`CandidateView`] of the swarm; it knows nothing about
//! sockets, storage or the wire format. Policies are chosen by name in config
//! ([`PolicyKind`]).
//!
//! * [`RandomPolicy`] (default): a uniform sample without replacement, `O(want)`.
//! * [`SameSubnetPolicy`]: peers in the announcer's subnet first (/24 for IPv4, /48 for
//!   IPv6), then random peers to fill. Peers behind one NAT or on one campus network
//!   connect cheaply to each other; the random remainder keeps the swarm mixed.

use std::fmt;
use std::net::IpAddr;

use rand::RngCore;
use rand::seq::index;
use serde::{Deserialize, Serialize};

/// The network a peer belongs to for locality: its IPv4 /24 or IPv6 /48 prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subnet {
    /// First three octets of an IPv4 address.
    V4([u8; 3]),
    /// First six bytes of an IPv6 address.
    V6([u8; 6]),
}

impl Subnet {
    /// The subnet of an address; IPv4-mapped IPv6 addresses count as IPv4.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => {
                let [a, b, c, _] = v4.octets();
                Subnet::V4([a, b, c])
            }
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Subnet::of(IpAddr::V4(v4)),
                None => {
                    let [a, b, c, d, e, f, ..] = v6.octets();
                    Subnet::V6([a, b, c, d, e, f])
                }
            },
        }
    }
}

/// A read-only view of one swarm's members, indexed `0..len()`.
pub trait CandidateView {
    /// Number of members.
    fn len(&self) -> usize;
    /// Whether the swarm is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Indices of the members in `subnet` (may include the announcer). Only filled when
    /// the policy asked for a subnet index ([`PeerPolicy::uses_subnets`]).
    fn in_subnet(&self, subnet: &Subnet) -> &[u32];
}

/// Chooses the members that receive offers.
pub trait PeerPolicy: Send + Sync + fmt::Debug {
    /// The config name of the policy.
    fn name(&self) -> &'static str;

    /// Whether the registry must maintain the per-subnet index for this policy.
    fn uses_subnets(&self) -> bool {
        false
    }

    /// Appends up to `want` distinct member indices to `out`, never `exclude` (the
    /// announcer). `subnet` is the announcer's subnet.
    fn choose(
        &self,
        view: &dyn CandidateView,
        exclude: Option<usize>,
        subnet: Subnet,
        want: usize,
        rng: &mut dyn RngCore,
        out: &mut Vec<u32>,
    );
}

/// Policy names accepted in config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyKind {
    /// [`RandomPolicy`].
    #[default]
    Random,
    /// [`SameSubnetPolicy`].
    SameSubnet,
}

impl PolicyKind {
    /// Builds the policy.
    pub fn build(self) -> Box<dyn PeerPolicy> {
        match self {
            PolicyKind::Random => Box::new(RandomPolicy),
            PolicyKind::SameSubnet => Box::new(SameSubnetPolicy),
        }
    }
}

/// Appends up to `want` random members, skipping `exclude` and anything already in
/// `out`.
fn fill_random(
    len: usize,
    exclude: Option<usize>,
    want: usize,
    rng: &mut dyn RngCore,
    out: &mut Vec<u32>,
) {
    if want == 0 {
        return;
    }
    let excluded = usize::from(exclude.is_some_and(|e| e < len));
    let pool = len - excluded;
    let already = out.len();
    // Over-sample by the number already chosen so that skipping duplicates still
    // leaves `want` picks when the pool is large enough.
    let amount = (want + already).min(pool);
    if amount == 0 {
        return;
    }
    let mut added = 0;
    for i in index::sample(rng, pool, amount) {
        if added == want {
            break;
        }
        let idx = match exclude {
            Some(e) if excluded == 1 && i >= e => i + 1,
            _ => i,
        };
        let Ok(idx) = u32::try_from(idx) else {
            continue;
        };
        if out[..already].contains(&idx) {
            continue;
        }
        out.push(idx);
        added += 1;
    }
}

/// Uniform random choice.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomPolicy;

impl PeerPolicy for RandomPolicy {
    fn name(&self) -> &'static str {
        "random"
    }

    fn choose(
        &self,
        view: &dyn CandidateView,
        exclude: Option<usize>,
        _subnet: Subnet,
        want: usize,
        rng: &mut dyn RngCore,
        out: &mut Vec<u32>,
    ) {
        fill_random(view.len(), exclude, want, rng, out);
    }
}

/// Same subnet first, then random.
#[derive(Debug, Clone, Copy, Default)]
pub struct SameSubnetPolicy;

impl PeerPolicy for SameSubnetPolicy {
    fn name(&self) -> &'static str {
        "same-subnet"
    }

    fn uses_subnets(&self) -> bool {
        true
    }

    fn choose(
        &self,
        view: &dyn CandidateView,
        exclude: Option<usize>,
        subnet: Subnet,
        want: usize,
        rng: &mut dyn RngCore,
        out: &mut Vec<u32>,
    ) {
        let start = out.len();
        let group = view.in_subnet(&subnet);
        let excluded_idx = exclude.and_then(|e| u32::try_from(e).ok());
        let locals = group.len() - usize::from(excluded_idx.is_some_and(|e| group.contains(&e)));
        if locals <= want {
            out.extend(group.iter().copied().filter(|&i| Some(i) != excluded_idx));
        } else {
            // Sample from the group, skipping the announcer.
            let mut taken = 0;
            for pos in index::sample(rng, group.len(), (want + 1).min(group.len())) {
                if taken == want {
                    break;
                }
                let Some(&idx) = group.get(pos) else { continue };
                if Some(idx) == excluded_idx {
                    continue;
                }
                out.push(idx);
                taken += 1;
            }
        }
        let got = out.len() - start;
        if got < want {
            // `fill_random` skips everything already in `out`, which includes only
            // this call's picks when the caller passes an empty vector.
            fill_random(view.len(), exclude, want - got, rng, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;

    struct View {
        subnets: Vec<Subnet>,
        groups: HashMap<Subnet, Vec<u32>>,
    }

    impl View {
        fn new(ips: &[&str]) -> Self {
            let subnets: Vec<Subnet> = ips.iter().map(|s| Subnet::of(s.parse().unwrap())).collect();
            let mut groups: HashMap<Subnet, Vec<u32>> = HashMap::new();
            for (i, s) in subnets.iter().enumerate() {
                groups.entry(*s).or_default().push(i as u32);
            }
            Self { subnets, groups }
        }
    }

    impl CandidateView for View {
        fn len(&self) -> usize {
            self.subnets.len()
        }
        fn in_subnet(&self, subnet: &Subnet) -> &[u32] {
            self.groups.get(subnet).map(Vec::as_slice).unwrap_or(&[])
        }
    }

    #[test]
    fn subnet_prefixes() {
        let s = |ip: &str| Subnet::of(ip.parse().unwrap());
        assert_eq!(s("10.1.2.3"), s("10.1.2.200"));
        assert_ne!(s("10.1.2.3"), s("10.1.3.3"));
        assert_eq!(s("2001:db8:1::1"), s("2001:db8:1:ffff::2"));
        assert_ne!(s("2001:db8:1::1"), s("2001:db8:2::1"));
        assert_eq!(s("::ffff:10.1.2.3"), s("10.1.2.9"));
    }

    #[test]
    fn random_never_picks_announcer_and_has_no_duplicates() {
        let mut rng = SmallRng::seed_from_u64(7);
        let ips: Vec<String> = (0..50).map(|i| format!("10.0.{i}.1")).collect();
        let refs: Vec<&str> = ips.iter().map(String::as_str).collect();
        let view = View::new(&refs);
        for exclude in [0usize, 17, 49] {
            for want in [0usize, 1, 5, 49, 80] {
                let mut out = Vec::new();
                RandomPolicy.choose(
                    &view,
                    Some(exclude),
                    view.subnets[0],
                    want,
                    &mut rng,
                    &mut out,
                );
                assert_eq!(out.len(), want.min(49));
                assert!(!out.contains(&(exclude as u32)));
                let set: HashSet<_> = out.iter().collect();
                assert_eq!(set.len(), out.len());
                assert!(out.iter().all(|&i| (i as usize) < 50));
            }
        }
    }

    #[test]
    fn random_is_roughly_uniform() {
        let mut rng = SmallRng::seed_from_u64(1);
        let view = View::new(&["1.1.1.1"; 10]);
        let mut hits = [0u32; 10];
        for _ in 0..9000 {
            let mut out = Vec::new();
            RandomPolicy.choose(&view, Some(3), view.subnets[0], 1, &mut rng, &mut out);
            hits[out[0] as usize] += 1;
        }
        assert_eq!(hits[3], 0);
        for (i, h) in hits.iter().enumerate() {
            if i != 3 {
                assert!((800..1200).contains(h), "index {i}: {h}");
            }
        }
    }

    #[test]
    fn tiny_swarms() {
        let mut rng = SmallRng::seed_from_u64(1);
        let empty = View::new(&[]);
        let mut out = Vec::new();
        RandomPolicy.choose(&empty, None, Subnet::V4([0; 3]), 5, &mut rng, &mut out);
        SameSubnetPolicy.choose(&empty, None, Subnet::V4([0; 3]), 5, &mut rng, &mut out);
        assert!(out.is_empty());
        let alone = View::new(&["1.2.3.4"]);
        RandomPolicy.choose(&alone, Some(0), alone.subnets[0], 5, &mut rng, &mut out);
        SameSubnetPolicy.choose(&alone, Some(0), alone.subnets[0], 5, &mut rng, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn same_subnet_first_then_random() {
        let mut rng = SmallRng::seed_from_u64(3);
        // index 0 is the announcer; 1..=3 share its /24; 4..=9 elsewhere.
        let view = View::new(&[
            "192.168.7.10",
            "192.168.7.11",
            "192.168.7.12",
            "192.168.7.13",
            "10.0.0.1",
            "10.0.1.1",
            "10.0.2.1",
            "10.0.3.1",
            "10.0.4.1",
            "10.0.5.1",
        ]);
        let mut out = Vec::new();
        SameSubnetPolicy.choose(&view, Some(0), view.subnets[0], 2, &mut rng, &mut out);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|i| (1..=3).contains(i)), "{out:?}");

        let mut out = Vec::new();
        SameSubnetPolicy.choose(&view, Some(0), view.subnets[0], 5, &mut rng, &mut out);
        assert_eq!(out.len(), 5);
        for local in 1..=3u32 {
            assert!(out.contains(&local), "{out:?}");
        }
        assert!(!out.contains(&0));
        let set: HashSet<_> = out.iter().collect();
        assert_eq!(set.len(), 5);

        let mut out = Vec::new();
        SameSubnetPolicy.choose(&view, Some(0), view.subnets[0], 50, &mut rng, &mut out);
        assert_eq!(out.len(), 9);
    }

    #[test]
    fn policy_kind_names() {
        assert_eq!(PolicyKind::Random.build().name(), "random");
        assert_eq!(PolicyKind::SameSubnet.build().name(), "same-subnet");
        assert!(PolicyKind::SameSubnet.build().uses_subnets());
        let k: PolicyKind = serde_json::from_str("\"same-subnet\"").unwrap();
        assert_eq!(k, PolicyKind::SameSubnet);
        assert!(serde_json::from_str::<PolicyKind>("\"nearest\"").is_err());
    }
}
