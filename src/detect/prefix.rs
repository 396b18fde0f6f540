//! The rotating-botnet detector: when at least `min_addresses` distinct addresses from one IPv4
//! `/v4_len` (default /24) or IPv6 `/v6_len` (default /64) have failed within `window`, it
//! produces a [`Finding`] whose target is the prefix.
//!
//! A botnet that spreads a dictionary over many addresses of one network keeps each address
//! below every per-address threshold; seen per prefix, it is one loud source.
//!
//! # Why it is shaped this way
//!
//! * **Exact distinct counting with `min_addresses` entries per prefix.** Whether at least
//!   `k = min_addresses` distinct addresses were last seen in `[now - window, now]` depends only
//!   on the `k` addresses seen most recently, so each prefix keeps exactly those, as
//!   `(address id, last seen)` pairs of two `u32`s (see `key::Recent`): a fixed, small amount
//!   of state however many addresses the prefix sends. A repeat from a known address only moves
//!   its last-seen time, so one noisy host never counts twice.
//! * **Address ids.** When the host part is at most 32 bits (every IPv4 prefix, IPv6 prefixes
//!   of /96 and longer) the id is the host part itself: exact. Otherwise it is a 32-bit SipHash
//!   of the host part under a key random per detector, so an attacker cannot aim for
//!   collisions. Two addresses sharing an id count as one: a collision can only *under*-count,
//!   which delays a finding and never bans a prefix that has not earned it.
//! * **Keys** are the prefix's masked 128 bits (IPv4 in its v4-mapped form, so the two families
//!   cannot meet); times are `u32` seconds from a base, as in the [threshold
//!   detector](super::threshold), at one-second resolution.
//! * **Bounded.** At most `max_tracked` prefixes; at the cap, prefixes with nothing left in the
//!   window are dropped, then the least suspicious (fewest distinct addresses in the window,
//!   then the oldest last failure) down to 90% of the cap. A slot is 40 bytes (16-byte key,
//!   24-byte set holding two pairs inline); from the third distinct address a prefix spills to
//!   a boxed slice of at most `min_addresses` pairs (8 bytes each).
//! * **Not its job:** checking that the prefix holds no allowlisted or host address before a
//!   ban. The caller (the policy stage) does that for every target.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::event::{Finding, Observation, normalize_addr};

use super::key::{self, DistinctTable, Key, Limits};

/// The name this detector puts in [`Finding::detector`].
pub const DETECTOR: &str = "prefix";

/// Default cap on tracked prefixes ([`PrefixParams::max_tracked`]).
pub const DEFAULT_MAX_TRACKED: usize = 100_000;

/// The parameters of one jail's prefix detector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixParams {
    /// Distinct failing addresses within `window` that make a prefix fire. Values below 2 are
    /// treated as 2 (one address is the per-address detectors' business).
    pub min_addresses: u32,
    /// The window length. Whole seconds; a sub-second part is ignored.
    pub window: Duration,
    /// IPv4 prefix length; above 32 is treated as 32.
    pub v4_len: u8,
    /// IPv6 prefix length; above 128 is treated as 128.
    pub v6_len: u8,
    /// Cap on tracked prefixes; at the cap the least suspicious are evicted. 0 is treated as 1.
    pub max_tracked: usize,
}

impl Default for PrefixParams {
    /// 10 distinct addresses of one /24 or /64 within an hour, with [`DEFAULT_MAX_TRACKED`].
    fn default() -> Self {
        Self {
            min_addresses: 10,
            window: Duration::from_secs(3600),
            v4_len: 24,
            v6_len: 64,
            max_tracked: DEFAULT_MAX_TRACKED,
        }
    }
}

impl PrefixParams {
    fn limits(&self) -> Limits {
        Limits {
            window: key::secs_u32(self.window),
            k: usize::try_from(self.min_addresses.max(2)).unwrap_or(usize::MAX),
            cap: self.max_tracked.max(1),
        }
    }

    /// The prefix lengths actually used: (IPv4, IPv6), clamped.
    fn lens(&self) -> (u8, u8) {
        (self.v4_len.min(32), self.v6_len.min(128))
    }
}

/// One jail's prefix detector. See the [module docs](self) for the design.
pub struct PrefixDetector {
    jail: Arc<str>,
    params: PrefixParams,
    state: DistinctTable,
    /// Keys the address-id hash (for host parts wider than 32 bits).
    ids: RandomState,
}

impl fmt::Debug for PrefixDetector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrefixDetector")
            .field("jail", &self.jail)
            .field("params", &self.params)
            .field("tracked", &self.state.tracked())
            .field("evicted", &self.state.evicted())
            .finish_non_exhaustive()
    }
}

/// The 128-bit mask of the first `len` bits.
fn mask(len: u32) -> u128 {
    match len {
        0 => 0,
        1..=127 => u128::MAX << (128 - len),
        _ => u128::MAX,
    }
}

impl PrefixDetector {
    /// An empty detector for `jail`.
    pub fn new(jail: Arc<str>, params: PrefixParams) -> Self {
        Self {
            jail,
            params,
            state: DistinctTable::default(),
            ids: RandomState::new(),
        }
    }

    /// The prefix `addr` belongs to under the current lengths, e.g. `203.0.113.0/24` for
    /// `203.0.113.7` (v4-mapped IPv6 counts as IPv4).
    pub fn prefix_of(&self, addr: IpAddr) -> IpNet {
        let (v4_len, v6_len) = self.params.lens();
        match normalize_addr(addr) {
            IpAddr::V4(v4) => Ipv4Net::new(v4, v4_len)
                .map(|n| IpNet::V4(n.trunc()))
                .unwrap_or_else(|_| IpNet::from(IpAddr::V4(v4))),
            IpAddr::V6(v6) => Ipv6Net::new(v6, v6_len)
                .map(|n| IpNet::V6(n.trunc()))
                .unwrap_or_else(|_| IpNet::from(IpAddr::V6(v6))),
        }
    }

    /// The table key of `addr`'s prefix and the id of `addr` within it.
    fn key_and_id(&self, addr: IpAddr) -> (Key, u32) {
        let (v4_len, v6_len) = self.params.lens();
        let bits = key::addr_bits(addr);
        let len = match normalize_addr(addr) {
            IpAddr::V4(_) => 96 + u32::from(v4_len),
            IpAddr::V6(_) => u32::from(v6_len),
        };
        let net = mask(len);
        let host = bits & !net;
        let id = if len >= 96 {
            host as u32
        } else {
            key::hash32(&self.ids, &host)
        };
        (Key::from_bits(bits & net), id)
    }

    /// Count one failure of `obs.addr` towards its prefix.
    ///
    /// The event time is `obs.time` clamped to at most `now`; an observation older than
    /// `now - window`, or of weight 0 (or negative, or NaN), is ignored; any positive weight
    /// counts the address once. When the prefix's distinct addresses within `[now - window,
    /// now]` reach `min_addresses`, this returns a [`Finding`] (detector `"prefix"`, target the
    /// prefix, count the distinct addresses, the clamped event time) and forgets the prefix, so
    /// one wave fires once.
    pub fn observe(&mut self, obs: &Observation, weight: f32, now: SystemTime) -> Option<Finding> {
        if weight.is_nan() || weight <= 0.0 {
            return None;
        }
        let lim = self.params.limits();
        let (key, id) = self.key_and_id(obs.addr);
        let count = self.state.observe(key, id, obs.time, now, lim)?;
        if usize::try_from(count).unwrap_or(usize::MAX) < lim.k {
            return None;
        }
        Some(Finding {
            target: self.prefix_of(obs.addr),
            jail: Arc::clone(&self.jail),
            detector: DETECTOR,
            count,
            time: obs.time.min(now),
        })
    }

    /// Forget one address (after a successful login from it): it no longer counts towards its
    /// prefix. The prefix's other addresses still count.
    pub fn forget(&mut self, addr: IpAddr) {
        let (key, id) = self.key_and_id(addr);
        self.state.remove_id(key, id);
    }

    /// Forget the whole prefix `addr` belongs to (e.g. after a manual unban of the prefix).
    pub fn forget_prefix(&mut self, addr: IpAddr) {
        let (key, _) = self.key_and_id(addr);
        self.state.remove(key);
    }

    /// Change parameters (config reload) without losing tracked state where it still means
    /// the same: each prefix keeps its latest `min(old, new min_addresses)` addresses, and a
    /// lower `max_tracked` evicts at once. A change of prefix length drops all state (the
    /// tracked prefixes no longer exist under the new lengths, and the ids cannot be re-keyed).
    pub fn set_params(&mut self, params: PrefixParams) {
        let lens_changed = params.lens() != self.params.lens();
        self.params = params;
        if lens_changed {
            self.state.clear();
        }
        self.state.retarget(self.params.limits());
    }

    /// The current parameters.
    pub fn params(&self) -> &PrefixParams {
        &self.params
    }

    /// Distinct failing addresses of `prefix` within the window at `now` (for `explain`),
    /// never more than `min_addresses`. `prefix` is as [`Self::prefix_of`] returns it; any
    /// other network (another length, host bits set) has 0.
    pub fn distinct(&self, prefix: IpNet, now: SystemTime) -> u32 {
        if self.prefix_of(prefix.addr()) != prefix {
            return 0;
        }
        let (key, _) = self.key_and_id(prefix.addr());
        self.state.count(key, now, self.params.limits().window)
    }

    /// How many prefixes are tracked.
    pub fn tracked(&self) -> usize {
        self.state.tracked()
    }

    /// Prefixes dropped because of the cap while they still had failures in the window.
    pub fn evicted(&self) -> u64 {
        self.state.evicted()
    }

    /// Drop prefixes with no failure left in the window at `now`. O(tracked); the daemon calls
    /// it periodically.
    pub fn sweep(&mut self, now: SystemTime) {
        self.state.sweep(now, self.params.limits().window);
    }

    /// Heap bytes of the table (for the memory test).
    #[cfg(test)]
    fn table_bytes(&self) -> usize {
        self.state.table_bytes()
    }
}

#[cfg(test)]
mod tests;
