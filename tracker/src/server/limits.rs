//! Per-address limits: open connections and a token-bucket announce rate.
//!
//! Sans-IO like the registry: time is an argument. An address is an IPv4 address or an
//! IPv6 /64 (one customer usually holds a whole /64, so counting single IPv6 addresses
//! would let one client multiply its allowance). An entry lives while the address has
//! connections, and afterwards only until its bucket has refilled, so reconnecting does
//! not reset the rate limit and the table stays bounded by the number of connections
//! plus recently closed addresses.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::Instant;

/// The unit that limits apply to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpKey {
    /// An IPv4 address.
    V4([u8; 4]),
    /// The /64 prefix of an IPv6 address.
    V6([u8; 8]),
}

impl IpKey {
    /// Key of an address; IPv4-mapped IPv6 counts as IPv4.
    pub fn of(ip: IpAddr) -> Self {
        match canonical(ip) {
            IpAddr::V4(v4) => IpKey::V4(v4.octets()),
            IpAddr::V6(v6) => {
                let o = v6.octets();
                let mut p = [0u8; 8];
                p.copy_from_slice(o.get(..8).unwrap_or(&[0; 8]));
                IpKey::V6(p)
            }
        }
    }
}

/// IPv4-mapped IPv6 addresses as IPv4; everything else unchanged.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match Ipv6Addr::to_ipv4_mapped(&v6) {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

#[derive(Debug, Clone)]
struct Entry {
    conns: usize,
    tokens: f64,
    updated: Instant,
}

/// Connection counts and announce buckets per address.
#[derive(Debug)]
pub struct IpLimiter {
    max_conns: usize,
    rate: f64,
    burst: f64,
    entries: HashMap<IpKey, Entry>,
}

impl IpLimiter {
    /// `max_conns` per address; `rate` announces per second sustained, `burst` above it.
    pub fn new(max_conns: usize, rate: u32, burst: u32) -> Self {
        Self {
            max_conns,
            rate: f64::from(rate.max(1)),
            burst: f64::from(burst.max(1)),
            entries: HashMap::new(),
        }
    }

    fn refill(&self, e: &mut Entry, now: Instant) {
        let dt = now.saturating_duration_since(e.updated).as_secs_f64();
        e.tokens = (e.tokens + dt * self.rate).min(self.burst);
        e.updated = now;
    }

    /// Counts a new connection from `ip`; `false` if the address is at its limit.
    pub fn try_connect(&mut self, ip: IpAddr, now: Instant) -> bool {
        let burst = self.burst;
        let e = self.entries.entry(IpKey::of(ip)).or_insert(Entry {
            conns: 0,
            tokens: burst,
            updated: now,
        });
        if e.conns >= self.max_conns {
            return false;
        }
        e.conns += 1;
        true
    }

    /// Releases a connection counted by [`IpLimiter::try_connect`].
    pub fn disconnect(&mut self, ip: IpAddr, now: Instant) {
        let key = IpKey::of(ip);
        let Some(mut e) = self.entries.remove(&key) else {
            return;
        };
        e.conns = e.conns.saturating_sub(1);
        self.refill(&mut e, now);
        if e.conns > 0 || e.tokens < self.burst {
            self.entries.insert(key, e);
        }
    }

    /// Takes one announce token for `ip`; `false` when the rate is exceeded.
    pub fn try_announce(&mut self, ip: IpAddr, now: Instant) -> bool {
        let key = IpKey::of(ip);
        let (rate, burst) = (self.rate, self.burst);
        let e = self.entries.entry(key).or_insert(Entry {
            conns: 0,
            tokens: burst,
            updated: now,
        });
        let dt = now.saturating_duration_since(e.updated).as_secs_f64();
        e.tokens = (e.tokens + dt * rate).min(burst);
        e.updated = now;
        if e.tokens >= 1.0 {
            e.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Drops entries without connections whose bucket is full again. Returns how many.
    pub fn sweep(&mut self, now: Instant) -> usize {
        let (rate, burst) = (self.rate, self.burst);
        let before = self.entries.len();
        self.entries.retain(|_, e| {
            let dt = now.saturating_duration_since(e.updated).as_secs_f64();
            e.conns > 0 || e.tokens + dt * rate < burst
        });
        before - self.entries.len()
    }

    /// Tracked addresses.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no address is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Open connections counted for `ip`'s address.
    pub fn connections(&self, ip: IpAddr) -> usize {
        self.entries.get(&IpKey::of(ip)).map_or(0, |e| e.conns)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn connection_limit_per_address_and_v6_prefix() {
        let t = Instant::now();
        let mut l = IpLimiter::new(2, 10, 10);
        assert!(l.try_connect(ip("10.0.0.1"), t));
        assert!(l.try_connect(ip("::ffff:10.0.0.1"), t));
        assert!(!l.try_connect(ip("10.0.0.1"), t));
        assert!(l.try_connect(ip("10.0.0.2"), t));
        assert!(l.try_connect(ip("2001:db8:0:1::1"), t));
        assert!(l.try_connect(ip("2001:db8:0:1::ffff"), t));
        assert!(!l.try_connect(ip("2001:db8:0:1:8000::1"), t), "same /64");
        assert!(l.try_connect(ip("2001:db8:0:2::1"), t), "other /64");
        l.disconnect(ip("10.0.0.1"), t);
        assert!(l.try_connect(ip("10.0.0.1"), t));
        assert_eq!(l.connections(ip("10.0.0.1")), 2);
    }

    #[test]
    fn token_bucket_rate_and_burst() {
        let t = Instant::now();
        let mut l = IpLimiter::new(10, 2, 3);
        let a = ip("192.0.2.1");
        assert!(l.try_connect(a, t));
        for _ in 0..3 {
            assert!(l.try_announce(a, t));
        }
        assert!(!l.try_announce(a, t));
        assert!(!l.try_announce(a, t + Duration::from_millis(400)));
        assert!(l.try_announce(a, t + Duration::from_millis(500)));
        assert!(!l.try_announce(a, t + Duration::from_millis(500)));
        // A long pause refills only up to the burst.
        let later = t + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(l.try_announce(a, later));
        }
        assert!(!l.try_announce(a, later));
        // Other addresses are independent.
        assert!(l.try_announce(ip("192.0.2.2"), later));
    }

    #[test]
    fn reconnecting_does_not_reset_the_bucket_and_entries_are_swept() {
        let t = Instant::now();
        let mut l = IpLimiter::new(10, 1, 2);
        let a = ip("198.51.100.7");
        assert!(l.try_connect(a, t));
        assert!(l.try_announce(a, t));
        assert!(l.try_announce(a, t));
        l.disconnect(a, t);
        assert_eq!(l.len(), 1, "kept while the bucket is not full");
        assert!(l.try_connect(a, t));
        assert!(!l.try_announce(a, t), "bucket survived the reconnect");
        l.disconnect(a, t);
        assert_eq!(l.sweep(t + Duration::from_millis(500)), 0);
        assert_eq!(l.sweep(t + Duration::from_secs(3)), 1);
        assert!(l.is_empty());
        // A connection closing with a full bucket leaves nothing behind.
        assert!(l.try_connect(a, t));
        l.disconnect(a, t + Duration::from_secs(10));
        assert!(l.is_empty());
        // Disconnecting an unknown address is harmless.
        l.disconnect(ip("203.0.113.1"), t);
        assert!(l.is_empty());
    }
}
