//! The user-enumeration detector: many distinct user names tried from one source address (or,
//! optionally, one prefix) within `window` produce a [`Finding`].
//!
//! A client probing which accounts exist tries many names a few times each, which a failure
//! count may not catch soon enough; a legitimate user mistypes their own name once or twice,
//! so the number of *distinct* names separates the two.
//!
//! # Why it is shaped this way
//!
//! * **Exact distinct counting with `min_users` entries per source.** As in the [prefix
//!   detector](super::prefix), whether `k = min_users` distinct names were last tried in
//!   `[now - window, now]` depends only on the `k` names tried most recently, so each source
//!   keeps exactly those, as `(name id, last seen)` pairs of two `u32`s: fixed state however
//!   many names it sends.
//! * **Names are never stored**, only a 32-bit SipHash under a key random per detector. The
//!   names are attacker-chosen strings: storing them would make memory depend on their length,
//!   and an unkeyed hash would let an attacker aim for collisions. Two names sharing an id count
//!   as one: a collision can only *under*-count, which delays a finding and never bans a
//!   source that has not earned it. Names are compared as sent (case-sensitive, untrimmed), as
//!   sshd does.
//! * **Per address or per prefix.** With [`EnumerationParams::by_prefix`] the source is the
//!   address's IPv4/IPv6 prefix and the finding targets the prefix (an enumeration spread over
//!   a botnet's addresses); otherwise the address itself. The caller checks allowlists.
//! * **Bounded.** At most `max_tracked` sources; at the cap, those with nothing left in the
//!   window are dropped, then the least suspicious (fewest distinct names in the window, then
//!   the oldest last attempt) down to 90% of the cap. A slot is 40 bytes (16-byte key, 24-byte
//!   set holding two pairs inline; more spill to a boxed slice of at most `min_users` pairs).
//!   Times are `u32` seconds from a base, one-second resolution.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::event::{Finding, Observation, host_net, normalize_addr};

use super::key::{self, DistinctTable, Key, Limits};

/// The name this detector puts in [`Finding::detector`].
pub const DETECTOR: &str = "enumeration";

/// Default cap on tracked sources ([`EnumerationParams::max_tracked`]).
pub const DEFAULT_MAX_TRACKED: usize = 100_000;

/// The parameters of one jail's enumeration detector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnumerationParams {
    /// Distinct user names within `window` that make a source fire. Values below 2 are treated
    /// as 2 (one name is no enumeration).
    pub min_users: u32,
    /// The window length. Whole seconds; a sub-second part is ignored.
    pub window: Duration,
    /// Cap on tracked sources; at the cap the least suspicious are evicted. 0 is treated as 1.
    pub max_tracked: usize,
    /// Count per prefix instead of per address: `Some((v4_len, v6_len))` (e.g. `(24, 64)`;
    /// lengths above 32 and 128 are clamped). The finding then targets the prefix.
    pub by_prefix: Option<(u8, u8)>,
}

impl Default for EnumerationParams {
    /// 6 distinct user names from one address within an hour, with [`DEFAULT_MAX_TRACKED`].
    fn default() -> Self {
        Self {
            min_users: 6,
            window: Duration::from_secs(3600),
            max_tracked: DEFAULT_MAX_TRACKED,
            by_prefix: None,
        }
    }
}

impl EnumerationParams {
    fn limits(&self) -> Limits {
        Limits {
            window: key::secs_u32(self.window),
            k: usize::try_from(self.min_users.max(2)).unwrap_or(usize::MAX),
            cap: self.max_tracked.max(1),
        }
    }

    /// The prefix lengths (IPv4, IPv6) sources are aggregated to; host lengths per address.
    fn lens(&self) -> (u8, u8) {
        self.by_prefix
            .map_or((32, 128), |(v4, v6)| (v4.min(32), v6.min(128)))
    }
}

/// One jail's enumeration detector. See the [module docs](self) for the design.
pub struct EnumerationDetector {
    jail: Arc<str>,
    params: EnumerationParams,
    state: DistinctTable,
    /// Keys the user-name hash.
    names: RandomState,
}

impl fmt::Debug for EnumerationDetector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnumerationDetector")
            .field("jail", &self.jail)
            .field("params", &self.params)
            .field("tracked", &self.state.tracked())
            .field("evicted", &self.state.evicted())
            .finish_non_exhaustive()
    }
}

impl EnumerationDetector {
    /// An empty detector for `jail`.
    pub fn new(jail: Arc<str>, params: EnumerationParams) -> Self {
        Self {
            jail,
            params,
            state: DistinctTable::default(),
            names: RandomState::new(),
        }
    }

    /// The source `addr` counts under: the address itself (as a `/32` or `/128`), or its
    /// prefix with [`EnumerationParams::by_prefix`]. This is the target of a finding.
    pub fn source_of(&self, addr: IpAddr) -> IpNet {
        if self.params.by_prefix.is_none() {
            return host_net(addr);
        }
        let (v4_len, v6_len) = self.params.lens();
        match normalize_addr(addr) {
            IpAddr::V4(v4) => Ipv4Net::new(v4, v4_len)
                .map(|n| IpNet::V4(n.trunc()))
                .unwrap_or_else(|_| host_net(addr)),
            IpAddr::V6(v6) => Ipv6Net::new(v6, v6_len)
                .map(|n| IpNet::V6(n.trunc()))
                .unwrap_or_else(|_| host_net(addr)),
        }
    }

    /// The table key of `addr`'s source.
    fn key(&self, addr: IpAddr) -> Key {
        let (v4_len, v6_len) = self.params.lens();
        let len = match normalize_addr(addr) {
            IpAddr::V4(_) => 96 + u32::from(v4_len),
            IpAddr::V6(_) => u32::from(v6_len),
        };
        let mask = match len {
            0 => 0,
            1..=127 => u128::MAX << (128 - len),
            _ => u128::MAX,
        };
        Key::from_bits(key::addr_bits(addr) & mask)
    }

    /// Count one attempt of `obs.user` from `obs.addr`.
    ///
    /// Observations without a user name, of weight 0 (or negative, or NaN), or older than
    /// `now - window` (after clamping the event time to at most `now`) are ignored; any positive
    /// weight counts the name once. When the source's distinct names within `[now - window,
    /// now]` reach `min_users`, this returns a [`Finding`] (detector `"enumeration"`, target
    /// [`Self::source_of`], count the distinct names, the clamped event time) and forgets the
    /// source, so one sweep of names fires once.
    pub fn observe(&mut self, obs: &Observation, weight: f32, now: SystemTime) -> Option<Finding> {
        if weight.is_nan() || weight <= 0.0 {
            return None;
        }
        let user = obs.user.as_deref()?;
        let lim = self.params.limits();
        let id = key::hash32(&self.names, user);
        let count = self
            .state
            .observe(self.key(obs.addr), id, obs.time, now, lim)?;
        if usize::try_from(count).unwrap_or(usize::MAX) < lim.k {
            return None;
        }
        Some(Finding {
            target: self.source_of(obs.addr),
            jail: Arc::clone(&self.jail),
            detector: DETECTOR,
            count,
            time: obs.time.min(now),
        })
    }

    /// Forget the source of `addr` (after a successful login from it). With `by_prefix`, that
    /// clears the whole prefix: it holds a legitimate user, whose network should not be banned
    /// on names others tried.
    pub fn forget(&mut self, addr: IpAddr) {
        self.state.remove(self.key(addr));
    }

    /// Change parameters (config reload) without losing tracked state where it still means the
    /// same: each source keeps its latest `min(old, new min_users)` names, and a lower
    /// `max_tracked` evicts at once. A change of `by_prefix` drops all state (the sources are no
    /// longer the same).
    pub fn set_params(&mut self, params: EnumerationParams) {
        let sources_changed = params.lens() != self.params.lens();
        self.params = params;
        if sources_changed {
            self.state.clear();
        }
        self.state.retarget(self.params.limits());
    }

    /// The current parameters.
    pub fn params(&self) -> &EnumerationParams {
        &self.params
    }

    /// Distinct user names tried from `addr`'s source within the window at `now` (for
    /// `explain`), never more than `min_users`.
    pub fn distinct_users(&self, addr: IpAddr, now: SystemTime) -> u32 {
        self.state
            .count(self.key(addr), now, self.params.limits().window)
    }

    /// How many sources are tracked.
    pub fn tracked(&self) -> usize {
        self.state.tracked()
    }

    /// Sources dropped because of the cap while they still had names in the window.
    pub fn evicted(&self) -> u64 {
        self.state.evicted()
    }

    /// Drop sources with no name left in the window at `now`. O(tracked); the daemon calls it
    /// periodically.
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
