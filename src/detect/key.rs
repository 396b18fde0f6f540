//! Pieces shared by the window, prefix and enumeration detectors: compact address keys, the
//! `u32` relative clock, bounded "k most recent distinct ids" sets and cap eviction.
//!
//! # Why it is shaped this way
//!
//! These follow the [threshold detector](super::threshold)'s choices (which it keeps to itself,
//! so its behaviour cannot change from here):
//!
//! * **Keys are the address's 128 bits**, IPv4 as `::ffff:a.b.c.d`, so both families take one
//!   path. Unlike threshold's key they are stored as four `u32`s, i.e. 4-aligned: next to small
//!   per-key state (the window detector's 12 bytes) that saves 4 bytes of padding per slot.
//! * **Times are `u32` seconds from a base** put 2^31 s before the first `now`, saturating at
//!   both ends (68 years either way are exact).
//! * **Eviction at the cap** drops the least suspicious keys (caller's score, lowest first)
//!   with one O(n) selection, down to 90% of the cap, so one pass buys `cap / 10` inserts.
//! * **[`Recent`]** keeps, per key, the `k` most recently seen distinct ids (an address hash, a
//!   user-name hash) with their last-seen time. Whether at least `k` distinct ids were seen in
//!   `[floor, now]` depends only on the `k` ids with the latest last-seen times, so `k` entries
//!   are exact and fixed per key; they live inline up to [`INLINE`] and spill to a boxed slice.
//!   Lookups are linear scans: O(k) per observation, cheaper than any index for the small `k`
//!   (2 to a few dozen) these thresholds use.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use crate::clock::unix_secs;
use crate::event::normalize_addr;

/// How far before the first `now` the time base is put: 2^31 s, about 68 years.
const BASE_SLACK: u64 = 1 << 31;

/// The 128 bits of an address, IPv4 as its v4-mapped IPv6 form (after normalisation, so
/// `::ffff:a.b.c.d` and `a.b.c.d` are one key).
pub(crate) fn addr_bits(addr: IpAddr) -> u128 {
    match normalize_addr(addr) {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// A table key: 128 bits as four `u32`s (4-aligned, so it packs with small state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key([u32; 4]);

impl Key {
    /// The key of a 128-bit value.
    pub(crate) fn from_bits(bits: u128) -> Self {
        Key([
            (bits >> 96) as u32,
            (bits >> 64) as u32,
            (bits >> 32) as u32,
            bits as u32,
        ])
    }

    /// The key of an address.
    pub(crate) fn of(addr: IpAddr) -> Self {
        Self::from_bits(addr_bits(addr))
    }

    fn bits(self) -> u128 {
        let [a, b, c, d] = self.0;
        (u128::from(a) << 96) | (u128::from(b) << 64) | (u128::from(c) << 32) | u128::from(d)
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u128(self.bits());
    }
}

/// A keyed 32-bit hash of `value` (the key is the `BuildHasher`'s, random per detector).
pub(crate) fn hash32<T: Hash + ?Sized>(hasher: &impl BuildHasher, value: &T) -> u32 {
    let h = hasher.hash_one(value);
    (h ^ (h >> 32)) as u32
}

/// `u32` seconds relative to a base chosen at the first `now`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RelClock {
    /// Unix seconds that relative time 0 stands for.
    base: Option<u64>,
}

impl RelClock {
    /// Whether a base has been chosen (i.e. anything was observed).
    pub(crate) fn started(&self) -> bool {
        self.base.is_some()
    }

    /// `t` relative to the base, saturating at both ends (0 before a base is set).
    pub(crate) fn rel(&self, t: SystemTime) -> u32 {
        let secs = unix_secs(t).saturating_sub(self.base.unwrap_or(0));
        u32::try_from(secs).unwrap_or(u32::MAX)
    }

    /// Like [`Self::rel`], choosing the base around `now` on first use.
    pub(crate) fn rel_init(&mut self, now: SystemTime) -> u32 {
        if self.base.is_none() {
            self.base = Some(unix_secs(now).saturating_sub(BASE_SLACK));
        }
        self.rel(now)
    }
}

/// Whole seconds of a window length as `u32`, saturating.
pub(crate) fn secs_u32(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

/// Make room in a table at its cap: drop the entries that are no longer live (`score` gives
/// `None`), then evict the lowest-`score` live entries (ties broken arbitrarily) down to 90% of
/// `cap`, so that one O(n) pass buys at least `cap / 10` inserts. Returns how many live entries
/// were evicted.
///
/// The survivors are moved into a fresh table sized for `cap`, rather than removed in place:
/// removal leaves tombstones in a hashbrown table, and once they use up its spare room the next
/// insert doubles it, so a table churning at its cap would settle at twice the memory. The
/// rebuild briefly holds both tables, and 8 bytes per entry to select the victims. Under a
/// flood of new keys that costs about nine re-inserts per new key (each pass moves 90% of the
/// cap to make room for 10%): a fraction of a microsecond each in a release build.
pub(crate) fn make_room<K, V, S>(
    map: &mut HashMap<K, V, S>,
    cap: usize,
    score: impl Fn(&V) -> Option<u64>,
) -> usize
where
    K: Eq + Hash,
    S: BuildHasher + Clone,
{
    let target = cap - (cap / 10).max(1);
    let mut scores: Vec<u64> = map.values().filter_map(&score).collect();
    let excess = scores.len().saturating_sub(target);
    // Entries scoring below `pivot` go, and `ties` of those scoring exactly `pivot`.
    let (pivot, mut ties) = match excess.checked_sub(1) {
        Some(nth) => {
            let (_, &mut pivot, _) = scores.select_nth_unstable(nth);
            let below = scores.iter().filter(|&&s| s < pivot).count();
            (pivot, excess - below)
        }
        None => (0, 0),
    };
    drop(scores);
    let old = std::mem::replace(
        map,
        HashMap::with_capacity_and_hasher(cap, map.hasher().clone()),
    );
    map.extend(old.into_iter().filter(|(_, v)| {
        let Some(s) = score(v) else {
            return false;
        };
        if excess == 0 || s > pivot || (s == pivot && ties == 0) {
            true
        } else {
            ties = ties.saturating_sub(usize::from(s == pivot));
            false
        }
    }));
    excess
}

/// Give memory back when a table has become mostly empty (after an attack wave).
pub(crate) fn shrink_if_sparse<K: Eq + Hash, V, S: BuildHasher>(map: &mut HashMap<K, V, S>) {
    let (len, capacity) = (map.len(), map.capacity());
    if capacity > 1024 && len < capacity / 4 {
        map.shrink_to(len.saturating_mul(2));
    }
}

/// Heap bytes of a hash table's single allocation, from its capacity: hashbrown keeps a
/// power-of-two number of buckets, at most 7/8 full, each one slot plus one control byte, plus
/// one group (16) of trailing control bytes. Exact for std's `HashMap` today; an estimate if
/// that ever changes.
#[cfg(test)]
pub(crate) fn table_bytes<K, V, S>(map: &HashMap<K, V, S>) -> usize {
    let cap = map.capacity();
    if cap == 0 {
        return 0;
    }
    let buckets = if cap < 8 {
        (cap + 1).next_power_of_two()
    } else {
        (cap / 7 * 8).next_power_of_two()
    };
    buckets * (std::mem::size_of::<(K, V)>() + 1) + 16
}

/// How many ids [`Recent`] stores without a heap allocation.
pub(crate) const INLINE: usize = 2;

/// One `(id, last_seen)` pair.
type Seen = [u32; 2];

/// The `k` most recently seen distinct ids of one key, each with its last-seen relative time,
/// in no particular order. See the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Recent {
    /// The first `len` pairs of `buf` are used.
    Inline { len: u8, buf: [Seen; INLINE] },
    /// The first `len` pairs of `buf` are used; `buf.len()` is the capacity, grown by doubling
    /// up to `k`.
    Heap { len: u32, buf: Box<[Seen]> },
}

impl Default for Recent {
    fn default() -> Self {
        Recent::Inline {
            len: 0,
            buf: [[0; 2]; INLINE],
        }
    }
}

impl Recent {
    fn as_slice(&self) -> &[Seen] {
        let (len, buf): (usize, &[Seen]) = match self {
            Recent::Inline { len, buf } => (usize::from(*len), buf),
            Recent::Heap { len, buf } => (usize::try_from(*len).unwrap_or(usize::MAX), buf),
        };
        buf.get(..len).unwrap_or(buf)
    }

    fn as_mut_slice(&mut self) -> &mut [Seen] {
        let (len, buf): (usize, &mut [Seen]) = match self {
            Recent::Inline { len, buf } => (usize::from(*len), buf),
            Recent::Heap { len, buf } => (usize::try_from(*len).unwrap_or(usize::MAX), buf),
        };
        let n = len.min(buf.len());
        &mut buf[..n]
    }

    /// How many ids are stored.
    pub(crate) fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// The latest last-seen time (0 when empty).
    pub(crate) fn newest(&self) -> u32 {
        self.as_slice().iter().map(|s| s[1]).max().unwrap_or(0)
    }

    /// Distinct ids last seen at or after `floor` and not after `ceil`.
    pub(crate) fn count_between(&self, floor: u32, ceil: u32) -> u32 {
        let n = self
            .as_slice()
            .iter()
            .filter(|s| s[1] >= floor && s[1] <= ceil)
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Record `id` seen at `t`, keeping at most `k` ids: the most recently seen ones.
    pub(crate) fn touch(&mut self, id: u32, t: u32, k: usize) {
        let k = k.max(1);
        if let Some(s) = self.as_mut_slice().iter_mut().find(|s| s[0] == id) {
            s[1] = s[1].max(t);
            return;
        }
        if self.len() < k {
            self.push([id, t], k);
            return;
        }
        // Full: replace the least recently seen id if `t` is newer (an older `t` could not be
        // among the `k` latest).
        let oldest = self
            .as_mut_slice()
            .iter_mut()
            .min_by_key(|s| s[1])
            .filter(|s| s[1] < t);
        if let Some(s) = oldest {
            *s = [id, t];
        }
    }

    /// Forget `id`. Returns whether it was stored.
    pub(crate) fn remove(&mut self, id: u32) -> bool {
        let live = self.as_mut_slice();
        let Some(pos) = live.iter().position(|s| s[0] == id) else {
            return false;
        };
        let last = live.len() - 1;
        live.swap(pos, last);
        match self {
            Recent::Inline { len, .. } => *len = len.saturating_sub(1),
            Recent::Heap { len, .. } => *len = len.saturating_sub(1),
        }
        true
    }

    /// Keep only the `k` most recently seen ids (config reload), in the smallest storage.
    pub(crate) fn retarget(&mut self, k: usize) {
        let mut keep: Vec<Seen> = self.as_slice().to_vec();
        keep.sort_unstable_by(|a, b| b[1].cmp(&a[1]));
        keep.truncate(k.max(1));
        let mut next = Recent::default();
        for s in keep {
            next.push(s, usize::MAX);
        }
        *self = next;
    }

    /// Append one pair (below `k`), growing the storage by doubling, never beyond `k`.
    fn push(&mut self, pair: Seen, k: usize) {
        match self {
            Recent::Inline { len, buf } => {
                let n = usize::from(*len).min(INLINE);
                if let Some(slot) = buf.get_mut(n) {
                    *slot = pair;
                    *len = len.saturating_add(1);
                    return;
                }
                let cap = (INLINE * 2).min(k).max(n + 1);
                let mut grown = vec![[0; 2]; cap];
                grown[..n].copy_from_slice(&buf[..n]);
                grown[n] = pair;
                *self = Recent::Heap {
                    len: u32::try_from(n + 1).unwrap_or(u32::MAX),
                    buf: grown.into_boxed_slice(),
                };
            }
            Recent::Heap { len, buf } => {
                let n = usize::try_from(*len).unwrap_or(usize::MAX).min(buf.len());
                if n == buf.len() {
                    let cap = n.saturating_mul(2).min(k).max(n + 1);
                    let mut grown = vec![[0; 2]; cap];
                    grown[..n].copy_from_slice(&buf[..n]);
                    *buf = grown.into_boxed_slice();
                }
                if let Some(slot) = buf.get_mut(n) {
                    *slot = pair;
                    *len = u32::try_from(n + 1).unwrap_or(u32::MAX);
                }
            }
        }
    }
}

/// The state of a detector that counts distinct ids per key within a window (the prefix
/// detector: addresses per prefix; the enumeration detector: user names per address): a capped
/// table of [`Recent`] sets on a relative clock. The detectors choose keys and ids; this does
/// the windowing, the firing count and the bounds.
#[derive(Debug, Default)]
pub(crate) struct DistinctTable {
    table: HashMap<Key, Recent>,
    clock: RelClock,
    /// The latest relative event time seen: a stand-in for `now` where none is given.
    latest: u32,
    evicted: u64,
}

/// The parameters a [`DistinctTable`] works with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// The window, whole seconds.
    pub(crate) window: u32,
    /// Distinct ids that fire (and that are kept per key); at least 1.
    pub(crate) k: usize,
    /// Cap on keys; at least 1.
    pub(crate) cap: usize,
}

/// The oldest relative time inside a window of `window` seconds ending at `now_r`.
fn floor_of(now_r: u32, window: u32) -> u32 {
    now_r.saturating_sub(window)
}

impl DistinctTable {
    /// Record `id` under `key` at `time` (clamped to `now`) and return how many distinct ids
    /// the key has in `[now - window, now]`, at most `k`. An event older than the window is
    /// ignored (`None`). At `k`, the key is dropped (so one burst fires once) and `Some(k)` is
    /// returned; the caller turns that into a finding.
    pub(crate) fn observe(
        &mut self,
        key: Key,
        id: u32,
        time: SystemTime,
        now: SystemTime,
        lim: Limits,
    ) -> Option<u32> {
        let Limits { window, k, cap } = lim;
        let now_r = self.clock.rel_init(now);
        let t = self.clock.rel(time.min(now));
        let floor = floor_of(now_r, window);
        if t < floor {
            return None;
        }
        self.latest = self.latest.max(t);
        let count = match self.table.get_mut(&key) {
            Some(seen) => {
                seen.touch(id, t, k);
                seen.count_between(floor, now_r)
            }
            None if k <= 1 => 1,
            None => {
                if self.table.len() >= cap {
                    self.make_room(now_r, window, cap);
                }
                let mut seen = Recent::default();
                seen.touch(id, t, k);
                self.table.insert(key, seen);
                1
            }
        };
        if usize::try_from(count).unwrap_or(usize::MAX) >= k {
            self.table.remove(&key);
        }
        Some(count)
    }

    /// Distinct ids of `key` in `[now - window, now]`.
    pub(crate) fn count(&self, key: Key, now: SystemTime, window: u32) -> u32 {
        if !self.clock.started() {
            return 0;
        }
        let now_r = self.clock.rel(now);
        self.table
            .get(&key)
            .map_or(0, |seen| seen.count_between(floor_of(now_r, window), now_r))
    }

    /// Forget a key.
    pub(crate) fn remove(&mut self, key: Key) {
        self.table.remove(&key);
    }

    /// Forget one id of a key (and the key, once empty).
    pub(crate) fn remove_id(&mut self, key: Key, id: u32) {
        if let Some(seen) = self.table.get_mut(&key) {
            seen.remove(id);
            if seen.len() == 0 {
                self.table.remove(&key);
            }
        }
    }

    /// Forget everything (the keys' meaning changed).
    pub(crate) fn clear(&mut self) {
        self.table = HashMap::new();
    }

    /// Keep at most `k` ids per key and at most `cap` keys (config reload).
    pub(crate) fn retarget(&mut self, lim: Limits) {
        let Limits { window, k, cap } = lim;
        for seen in self.table.values_mut() {
            if seen.len() > k {
                seen.retarget(k);
            }
        }
        if self.table.len() > cap {
            self.make_room(self.latest, window, cap);
        }
    }

    /// Drop keys with no id left in the window at `now`; give memory back when sparse.
    pub(crate) fn sweep(&mut self, now: SystemTime, window: u32) {
        if !self.clock.started() {
            return;
        }
        let floor = floor_of(self.clock.rel(now), window);
        self.table.retain(|_, seen| seen.newest() >= floor);
        shrink_if_sparse(&mut self.table);
    }

    /// How many keys are tracked.
    pub(crate) fn tracked(&self) -> usize {
        self.table.len()
    }

    /// Keys evicted at the cap while still live.
    pub(crate) fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Heap bytes of the table itself (not the spilled [`Recent`] sets).
    #[cfg(test)]
    pub(crate) fn table_bytes(&self) -> usize {
        table_bytes(&self.table)
    }

    /// At the cap: drop keys with nothing in the window, then the least suspicious (fewest ids
    /// in the window, then the oldest last-seen) down to 90% of the cap.
    fn make_room(&mut self, now_r: u32, window: u32, cap: usize) {
        let floor = floor_of(now_r, window);
        self.evicted += make_room(&mut self.table, cap, |seen| {
            let newest = seen.newest();
            (newest >= floor)
                .then(|| (u64::from(seen.count_between(floor, u32::MAX)) << 32) | u64::from(newest))
        }) as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_keeps_the_k_most_recent_distinct_ids() {
        let mut r = Recent::default();
        for (id, t) in [(1, 10), (2, 20), (1, 30), (3, 5), (4, 40), (5, 50)] {
            r.touch(id, t, 3);
        }
        // k = 3: ids 1 (30), 4 (40), 5 (50); 2 (20) and 3 (5) were the oldest.
        let mut ids: Vec<Seen> = r.as_slice().to_vec();
        ids.sort_unstable();
        assert_eq!(ids, vec![[1, 30], [4, 40], [5, 50]]);
        assert_eq!(r.count_between(30, u32::MAX), 3);
        assert_eq!(r.count_between(31, u32::MAX), 2);
        assert_eq!(r.count_between(0, 45), 2);
        assert_eq!(r.newest(), 50);
        assert!(r.remove(4));
        assert!(!r.remove(4));
        assert_eq!(r.len(), 2);
        r.retarget(1);
        assert_eq!(r.as_slice(), &[[5, 50]]);
        assert!(matches!(r, Recent::Inline { .. }));
    }

    #[test]
    fn recent_grows_to_k_and_no_further() {
        let mut r = Recent::default();
        for id in 0..100u32 {
            r.touch(id, id, 37);
        }
        assert_eq!(r.len(), 37);
        if let Recent::Heap { buf, .. } = &r {
            assert_eq!(buf.len(), 37);
        } else {
            panic!("spilled to the heap");
        }
        assert_eq!(r.count_between(63, u32::MAX), 37);
        assert_eq!(r.count_between(64, u32::MAX), 36);
    }

    #[test]
    fn make_room_sweeps_then_evicts_exactly_the_lowest_down_to_90_percent() {
        // Values 0..10, ten of each; 0 is "expired".
        let mut m: HashMap<u32, u64> = (0..100u32).map(|i| (i, u64::from(i % 10))).collect();
        // Cap 100 -> target 90: sweeping the ten zeros is enough.
        assert_eq!(make_room(&mut m, 100, |&v| (v > 0).then_some(v)), 0);
        assert_eq!(m.len(), 90);
        // Cap 80 -> target 72: 18 of the 90 live go, the ten 1s and eight of the 2s.
        assert_eq!(make_room(&mut m, 80, |&v| (v > 0).then_some(v)), 18);
        assert_eq!(m.len(), 72);
        assert!(m.values().all(|&v| v >= 2));
        assert_eq!(m.values().filter(|&&v| v == 2).count(), 2);
        // Cap 1 -> target 0.
        assert_eq!(make_room(&mut m, 1, |&v| Some(v)), 72);
        assert!(m.is_empty());
    }

    #[test]
    fn make_room_keeps_a_churning_table_at_its_size() {
        let cap = 10_000;
        let mut m: HashMap<u32, u64> = HashMap::new();
        for i in 0..1_000_000u32 {
            if m.len() >= cap {
                make_room(&mut m, cap, |&v| Some(v));
            }
            m.insert(i.wrapping_mul(2_654_435_761), u64::from(i));
        }
        assert!(m.len() <= cap);
        assert_eq!(
            m.capacity(),
            HashMap::<u32, u64>::with_capacity(cap).capacity()
        );
    }

    #[test]
    fn keys_merge_v4_mapped_and_differ_across_families() {
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(Key::of(v4), Key::of(mapped));
        assert_ne!(Key::of(v4), Key::of(v6));
        assert_eq!(Key::of(v6).bits(), addr_bits(v6));
    }
}
