//! The per-jail threshold detector: `max_retry` failures from one address within `find_time`
//! produce a [`Finding`].
//!
//! # Why it is shaped this way
//!
//! * **Exact sliding window, `max_retry` timestamps per address.** Whether an address has at
//!   least `k = max_retry` failures in `[now - find_time, now]` depends only on its `k` most
//!   recent event times, so each address keeps exactly those (more would be wasted memory,
//!   fewer would make the window approximate). They are kept *sorted* rather than in arrival
//!   order: log lines from several sources arrive out of order, and a sorted buffer keeps the
//!   `k` largest times exactly, whatever the order (a late, old time that is not among the `k`
//!   largest is simply dropped). With `k` this small, the insertion shift is cheaper than the
//!   bookkeeping of a ring.
//! * **Compact.** Times are `u32` seconds relative to a base chosen at the first observation
//!   (68 years either side of it are exact; beyond that values saturate, never wrap or
//!   underflow). Up to [`INLINE`] (5) times live inline in the table slot, so the usual
//!   `max_retry` (3 to 5) costs no heap allocation per address; larger values spill to a
//!   boxed slice that grows up to `max_retry`. Addresses are keyed by their 128 bits (IPv4 as
//!   `::ffff:a.b.c.d`, so IPv4 and v4-mapped IPv6 are one key and both families take the same
//!   path). A table slot is 40 bytes; with the hash table's load factor (power-of-two sizes,
//!   at most 7/8 full) that is 47 to 94 bytes per tracked address, 86 at one million (see
//!   `docs/benchmarks.md`).
//! * **Bounded.** At most `max_tracked` addresses are tracked. Inserting a new address at the
//!   cap first sweeps entries that can no longer fire, then, if still above 90% of the cap,
//!   evicts the least suspicious (fewest failures in the window, then oldest last failure)
//!   down to 90%. One O(n) pass therefore buys at least `cap / 10` inserts: amortised O(1).
//!   The pass briefly allocates 8 bytes per tracked address to select the victims.
//! * **Hashing.** The table uses std's randomly keyed SipHash: the keys are chosen by
//!   attackers (a /64 holds 2^64 addresses), so a fixed fast hash would invite collision
//!   floods.
//! * **Resolution is one second**; sub-second parts of times are ignored for the window (the
//!   [`Finding`] keeps the full event time).

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::clock::unix_secs;
use crate::event::{Finding, Observation, host_net, normalize_addr};

/// The name this detector puts in [`Finding::detector`].
pub const DETECTOR: &str = "threshold";

/// Default cap on tracked addresses per detector ([`ThresholdParams::max_tracked`]).
pub const DEFAULT_MAX_TRACKED: usize = 1_000_000;

/// How many event times are stored inline (without a heap allocation) per address: five
/// (fail2ban's default `maxretry`) is what fits in 24 bytes next to the enum tag and length.
pub const INLINE: usize = 5;

/// How far before the first `now` the time base is put, so that earlier event times (read
/// from old logs or a skewed clock) stay representable: 2^31 s, about 68 years.
const BASE_SLACK: u64 = 1 << 31;

const DEFAULT_MAX_RETRY: NonZeroU32 = match NonZeroU32::new(5) {
    Some(n) => n,
    None => NonZeroU32::MIN,
};

/// The parameters of one jail's threshold detector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThresholdParams {
    /// Failures within `find_time` that make an address fire.
    pub max_retry: NonZeroU32,
    /// The window length. Whole seconds; a sub-second part is ignored.
    pub find_time: Duration,
    /// Cap on tracked addresses; at the cap the least suspicious are evicted. A cap of 0 is
    /// treated as 1.
    pub max_tracked: usize,
}

impl Default for ThresholdParams {
    /// fail2ban's defaults: 5 failures in 10 minutes, with [`DEFAULT_MAX_TRACKED`].
    fn default() -> Self {
        Self {
            max_retry: DEFAULT_MAX_RETRY,
            find_time: Duration::from_secs(600),
            max_tracked: DEFAULT_MAX_TRACKED,
        }
    }
}

/// The `k` largest event times of one address, sorted ascending, as seconds from the base.
///
/// 24 bytes either way: with the 16-byte [`Key`] a table slot is 40 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Times {
    /// `k <= INLINE`: the first `len` elements of `buf` are used.
    Inline { len: u8, buf: [u32; INLINE] },
    /// `k > INLINE`: the first `len` elements of `buf` are used; `buf.len()` is the capacity,
    /// grown by doubling up to `k` (a boxed slice, not a `Vec`, to save the capacity word).
    Heap { len: u32, buf: Box<[u32]> },
}

impl Times {
    /// Empty storage suited to keeping `k` times.
    fn for_k(k: usize) -> Self {
        if k <= INLINE {
            Times::Inline {
                len: 0,
                buf: [0; INLINE],
            }
        } else {
            Times::Heap {
                len: 0,
                buf: Box::default(),
            }
        }
    }

    fn as_slice(&self) -> &[u32] {
        let (len, buf): (usize, &[u32]) = match self {
            Times::Inline { len, buf } => (usize::from(*len), buf),
            Times::Heap { len, buf } => (usize::try_from(*len).unwrap_or(usize::MAX), buf),
        };
        buf.get(..len).unwrap_or(buf)
    }

    /// The latest stored time (the address's last failure).
    fn newest(&self) -> Option<u32> {
        self.as_slice().last().copied()
    }

    /// Stored times at or after `floor`.
    fn count_since(&self, floor: u32) -> u32 {
        let s = self.as_slice();
        let n = s.len() - s.partition_point(|&t| t < floor);
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Add `t`, keeping only the `k` largest times.
    fn insert(&mut self, t: u32, k: usize) {
        match self {
            Times::Inline { len, buf } => {
                if let Some(live) = buf.get_mut(..k.min(INLINE)) {
                    let n = push_top_k(live, usize::from(*len), t);
                    *len = u8::try_from(n).unwrap_or(u8::MAX);
                }
            }
            Times::Heap { len, buf } => {
                let n = usize::try_from(*len).unwrap_or(usize::MAX).min(buf.len());
                if n < k && n == buf.len() {
                    // Full below `k`: double (at least past INLINE), never beyond `k`.
                    let cap = n.saturating_mul(2).max(INLINE + 1).min(k);
                    let mut grown = vec![0; cap].into_boxed_slice();
                    if let (Some(dst), Some(src)) = (grown.get_mut(..n), buf.get(..n)) {
                        dst.copy_from_slice(src);
                    }
                    *buf = grown;
                }
                if let Some(live) = buf.get_mut(..k.min(buf.len())) {
                    let n = push_top_k(live, n, t);
                    *len = u32::try_from(n).unwrap_or(u32::MAX);
                }
            }
        }
    }

    /// Re-shape for a new `k` (config reload), keeping the `k` largest times.
    fn retarget(&mut self, k: usize) {
        let s = self.as_slice();
        let keep = s.get(s.len().saturating_sub(k)..).unwrap_or(&[]);
        let next = if k <= INLINE {
            let mut buf = [0; INLINE];
            if let Some(dst) = buf.get_mut(..keep.len()) {
                dst.copy_from_slice(keep);
            }
            Times::Inline {
                len: u8::try_from(keep.len()).unwrap_or(u8::MAX),
                buf,
            }
        } else {
            Times::Heap {
                len: u32::try_from(keep.len()).unwrap_or(u32::MAX),
                buf: keep.into(),
            }
        };
        *self = next;
    }
}

/// Insert `t` into the sorted, `n`-long prefix of `buf`, treating `buf.len()` as the capacity:
/// below capacity it is inserted, at capacity it replaces the smallest time if it is not
/// smaller than it. Returns the new length.
fn push_top_k(buf: &mut [u32], n: usize, t: u32) -> usize {
    let n = n.min(buf.len());
    let pos = buf.get(..n).map_or(0, |s| s.partition_point(|&x| x <= t));
    if n < buf.len() {
        buf.copy_within(pos..n, pos + 1);
        if let Some(slot) = buf.get_mut(pos) {
            *slot = t;
        }
        n + 1
    } else if pos > 0 {
        // Full: drop the smallest, shift the smaller half down, put `t` in place.
        buf.copy_within(1..pos, 0);
        if let Some(slot) = buf.get_mut(pos - 1) {
            *slot = t;
        }
        n
    } else {
        // Older than all `k` kept times: it cannot change any window's count.
        n
    }
}

/// The table key of an address: its 128 bits (IPv4 as its v4-mapped IPv6 form), as two
/// `u64`s rather than a `u128` so that the slot is 8-aligned (40 bytes, not 48).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key(u64, u64);

fn key_of(addr: IpAddr) -> Key {
    let bits = match normalize_addr(addr) {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    };
    Key((bits >> 64) as u64, bits as u64)
}

/// One jail's threshold detector. See the [module docs](self) for the design.
pub struct ThresholdDetector {
    jail: Arc<str>,
    params: ThresholdParams,
    windows: HashMap<Key, Times>,
    /// Unix seconds that relative time 0 stands for; set by the first observation.
    base: Option<u64>,
    /// The latest relative event time seen: a stand-in for `now` where none is given.
    latest: u32,
    evicted: u64,
}

impl fmt::Debug for ThresholdDetector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThresholdDetector")
            .field("jail", &self.jail)
            .field("params", &self.params)
            .field("tracked", &self.windows.len())
            .field("evicted", &self.evicted)
            .finish_non_exhaustive()
    }
}

impl ThresholdDetector {
    /// An empty detector for `jail`.
    pub fn new(jail: Arc<str>, params: ThresholdParams) -> Self {
        Self {
            jail,
            params,
            windows: HashMap::new(),
            base: None,
            latest: 0,
            evicted: 0,
        }
    }

    /// Count one failure.
    ///
    /// The event time is `obs.time` clamped to at most `now`. An observation older than
    /// `now - find_time` (for example an old line read at startup) is ignored. When the
    /// address's failures within `[now - find_time, now]` reach `max_retry`, this returns a
    /// [`Finding`] (detector `"threshold"`, target `host_net(obs.addr)`, the count, the
    /// clamped event time) and forgets the address, so one burst fires once and the next
    /// failure starts a new count.
    pub fn observe(&mut self, obs: &Observation, now: SystemTime) -> Option<Finding> {
        let time = obs.time.min(now);
        let now_r = self.rel_init(now);
        let t = self.rel(time);
        let floor = self.floor(now_r);
        if t < floor {
            return None;
        }
        self.latest = self.latest.max(t);
        let key = key_of(obs.addr);
        let k = self.k();
        let count = match self.windows.get_mut(&key) {
            Some(times) => {
                times.insert(t, k);
                times.count_since(floor)
            }
            // A new address reaches the threshold at once only when max_retry is 1; then
            // there is nothing to track.
            None if k <= 1 => 1,
            None => {
                if self.windows.len() >= self.cap() {
                    self.make_room(now_r);
                }
                let mut times = Times::for_k(k);
                times.insert(t, k);
                self.windows.insert(key, times);
                1
            }
        };
        if count < self.params.max_retry.get() {
            return None;
        }
        self.windows.remove(&key);
        Some(Finding {
            target: host_net(obs.addr),
            jail: Arc::clone(&self.jail),
            detector: DETECTOR,
            count,
            time,
        })
    }

    /// Forget an address (e.g. after a successful login or a manual unban).
    pub fn forget(&mut self, addr: IpAddr) {
        self.windows.remove(&key_of(addr));
    }

    /// Change parameters (config reload) without losing tracked state.
    ///
    /// Each address keeps its latest `min(old, new max_retry)` times, so a lower `max_retry`
    /// may make an address fire on its next observation. A lower `max_tracked` evicts at
    /// once, using the latest event time seen as `now`. O(tracked) when `max_retry` changes.
    pub fn set_params(&mut self, params: ThresholdParams) {
        let old_k = self.k();
        self.params = params;
        let k = self.k();
        if k != old_k {
            for times in self.windows.values_mut() {
                times.retarget(k);
            }
        }
        if self.windows.len() > self.cap() {
            self.make_room(self.latest);
        }
    }

    /// The current parameters.
    pub fn params(&self) -> &ThresholdParams {
        &self.params
    }

    /// Failures of `addr` inside the window at `now` (for `explain` and status). Never more
    /// than `max_retry`, since only that many times are kept.
    pub fn count(&self, addr: IpAddr, now: SystemTime) -> u32 {
        if self.base.is_none() {
            return 0;
        }
        let floor = self.floor(self.rel(now));
        self.windows
            .get(&key_of(addr))
            .map_or(0, |times| times.count_since(floor))
    }

    /// How many addresses are tracked.
    pub fn tracked(&self) -> usize {
        self.windows.len()
    }

    /// Addresses dropped because of the cap while they could still fire (a metric). Entries
    /// swept because they expired are not counted.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Drop addresses whose failures are all older than the window at `now`: they can no
    /// longer fire. O(tracked); the daemon calls it periodically. Gives memory back when the
    /// table has become mostly empty (after an attack wave).
    pub fn sweep(&mut self, now: SystemTime) {
        if self.base.is_none() {
            return;
        }
        let floor = self.floor(self.rel(now));
        self.windows
            .retain(|_, times| times.newest().is_some_and(|n| n >= floor));
        let (len, capacity) = (self.windows.len(), self.windows.capacity());
        if capacity > 1024 && len < capacity / 4 {
            self.windows.shrink_to(len.saturating_mul(2));
        }
    }

    /// `max_retry` as a buffer size.
    fn k(&self) -> usize {
        usize::try_from(self.params.max_retry.get()).unwrap_or(usize::MAX)
    }

    /// The effective cap (at least 1).
    fn cap(&self) -> usize {
        self.params.max_tracked.max(1)
    }

    /// The oldest relative time still inside the window ending at `now_r`.
    fn floor(&self, now_r: u32) -> u32 {
        let find = u32::try_from(self.params.find_time.as_secs()).unwrap_or(u32::MAX);
        now_r.saturating_sub(find)
    }

    /// `t` relative to the base, saturating at both ends (0 before a base is set).
    fn rel(&self, t: SystemTime) -> u32 {
        let secs = unix_secs(t).saturating_sub(self.base.unwrap_or(0));
        u32::try_from(secs).unwrap_or(u32::MAX)
    }

    /// Like [`Self::rel`], choosing the base around `now` on first use.
    fn rel_init(&mut self, now: SystemTime) -> u32 {
        if self.base.is_none() {
            self.base = Some(unix_secs(now).saturating_sub(BASE_SLACK));
        }
        self.rel(now)
    }

    /// Make room for one more address: sweep what can no longer fire, then, if still above
    /// 90% of the cap, evict the least suspicious down to 90%.
    fn make_room(&mut self, now_r: u32) {
        let floor = self.floor(now_r);
        self.windows
            .retain(|_, times| times.newest().is_some_and(|n| n >= floor));
        let cap = self.cap();
        let target = cap - (cap / 10).max(1);
        let excess = self.windows.len().saturating_sub(target);
        if excess == 0 {
            return;
        }
        // Least suspicious first: fewest failures in the window, then oldest last failure.
        let score = |times: &Times| {
            (u64::from(times.count_since(floor)) << 32) | u64::from(times.newest().unwrap_or(0))
        };
        let mut scores: Vec<u64> = self.windows.values().map(score).collect();
        if excess > scores.len() {
            return; // unreachable: target >= 0, so excess <= tracked
        }
        let (_, &mut pivot, _) = scores.select_nth_unstable(excess - 1);
        let below = scores.iter().filter(|&&s| s < pivot).count();
        drop(scores);
        let mut ties = excess - below;
        self.windows.retain(|_, times| {
            let s = score(times);
            if s < pivot {
                false
            } else if s == pivot && ties > 0 {
                ties -= 1;
                false
            } else {
                true
            }
        });
        self.evicted += excess as u64;
    }
}

#[cfg(test)]
mod tests;
