//! The low-and-slow detector: the weighted score of an address over a long window (hours to
//! days, e.g. 10 in 24 h or 20 in 7 d) reaching a threshold produces a [`Finding`].
//!
//! # Why it is shaped this way
//!
//! * **A bucketed sliding window, not timestamps.** The [threshold detector](super::threshold)
//!   keeps every one of the last `max_retry` times, which is exact but costs 4 bytes per
//!   counted event; a low-and-slow rule over days may need tens of events and must still hold a
//!   million addresses. Here each address keeps [`BUCKETS`] (8) buckets of width
//!   `w = ceil(window / 7)` seconds, aligned to the Unix epoch (bucket `i` holds event times in
//!   `[i·w, (i+1)·w)`), plus the index of its newest bucket: 12 bytes whatever the rate.
//! * **The approximation, stated exactly.** At `now`, the score counts the buckets whose index
//!   is within `m = ceil(window / w)` of `now`'s: an event at `t` (Unix seconds) counts iff
//!   `⌊t/w⌋ ≥ ⌊now/w⌋ − m`. `m` is 7 for any window over 42 s (fewer for shorter windows, e.g. 4
//!   for 8 s, 1 for 1 s). Since `m·w ≥ window`, every event in `[now − window, now]` counts, and
//!   so may events up to one bucket older than the window (never more). That errs towards
//!   firing, by at most one bucket (about `window / 7`) of history. An observation whose
//!   (clamped) time is already older than `now − window` when it arrives is ignored.
//! * **Weights in fixed point.** Each bucket is a `u8` holding weight × 4 (quarter resolution:
//!   a weight is rounded to the nearest quarter, and any positive weight counts at least a
//!   quarter), saturating at 255, i.e. 63.75 per bucket and [`MAX_SCORE`] (510) in all. A
//!   saturated bucket under-counts, which only delays a finding; an address sending more than
//!   63.75 in one bucket is the [threshold detector](super::threshold)'s business anyway. A
//!   threshold above [`MAX_SCORE`] never fires; config validation should reject it.
//! * **Compact, bounded.** A table slot is the 16-byte key (4-aligned) plus 12 bytes of state:
//!   28 bytes, 29 with hashbrown's control byte. With power-of-two bucket counts at most 7/8
//!   full, that is 33 to 66 bytes per address; 61 at exactly one million (2^21 buckets), 33 at
//!   the 917,504 addresses that fill 2^20. At most `max_tracked` addresses are tracked; at the
//!   cap, addresses with nothing left in the window are swept, then the least suspicious (lowest
//!   score, then oldest newest bucket) are evicted down to 90% of the cap, and the survivors are
//!   moved to a fresh table sized for the cap (so tombstones never double it; see
//!   `key::make_room`).
//! * **Bucket indices are `u32`s compared with wrapping arithmetic** (absolute indices modulo
//!   2^32), so no base time is needed and bucket boundaries do not depend on when the detector
//!   started. Indices more than 2^31 buckets apart (68 years with 1-second buckets) alias.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::clock::unix_secs;
use crate::event::{Finding, Observation, host_net};

use super::key::{self, Key};

/// The name this detector puts in [`Finding::detector`].
pub const DETECTOR: &str = "window";

/// Buckets kept per address. Seven of them span the window; the eighth is the partial one.
pub const BUCKETS: usize = 8;

/// Fixed-point units per unit of weight (quarter resolution).
pub const UNITS_PER_WEIGHT: f32 = 4.0;

/// The largest score an address can reach (every bucket saturated).
pub const MAX_SCORE: f32 = (BUCKETS * u8::MAX as usize) as f32 / UNITS_PER_WEIGHT;

/// Default cap on tracked addresses ([`WindowParams::max_tracked`]).
pub const DEFAULT_MAX_TRACKED: usize = 1_000_000;

/// Buckets that span the window (the one in progress is the eighth).
const SPAN: u64 = BUCKETS as u64 - 1;

/// The parameters of one jail's window detector.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowParams {
    /// Score (sum of weights) within `window` that makes an address fire. `0` fires on the
    /// first observation of positive weight; NaN or more than [`MAX_SCORE`] never fires.
    pub threshold: f32,
    /// The window length; whole seconds (a sub-second part is ignored). Bucket width is
    /// `ceil(window / 7)`, at least one second.
    pub window: Duration,
    /// Cap on tracked addresses; at the cap the least suspicious are evicted. A cap of 0 is
    /// treated as 1.
    pub max_tracked: usize,
}

impl Default for WindowParams {
    /// 10 in 24 hours, with [`DEFAULT_MAX_TRACKED`].
    fn default() -> Self {
        Self {
            threshold: 10.0,
            window: Duration::from_secs(24 * 3600),
            max_tracked: DEFAULT_MAX_TRACKED,
        }
    }
}

/// One address's buckets: `buckets[i % 8]` holds the units of absolute bucket `i`, for the 8
/// indices ending at `head` (the newest bucket written; older slots are zeroed as it moves).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    head: u32,
    buckets: [u8; BUCKETS],
}

/// `a - b` for absolute bucket indices kept modulo 2^32.
fn delta(a: u32, b: u32) -> i64 {
    i64::from(a.wrapping_sub(b) as i32)
}

fn slot(idx: u32) -> usize {
    (idx % BUCKETS as u32) as usize
}

impl Entry {
    fn new(idx: u32) -> Self {
        Self {
            head: idx,
            buckets: [0; BUCKETS],
        }
    }

    /// Add `units` to bucket `idx`. A bucket newer than `head` moves the head (zeroing the
    /// buckets it passes); one more than 7 older than `head` has left the ring and is dropped.
    fn add(&mut self, idx: u32, units: u8) {
        let ahead = delta(idx, self.head);
        if ahead > 0 {
            let clear = u32::try_from(ahead.min(BUCKETS as i64)).unwrap_or(0);
            for j in 1..=clear {
                self.buckets[slot(self.head.wrapping_add(j))] = 0;
            }
            self.head = idx;
        } else if -ahead >= BUCKETS as i64 {
            return;
        }
        let b = &mut self.buckets[slot(idx)];
        *b = b.saturating_add(units);
    }

    /// Units in the buckets `now_idx - span ..= now_idx` (`span <= 7`).
    fn units_at(&self, now_idx: u32, span: u32) -> u32 {
        let head_age = delta(now_idx, self.head);
        let mut units = 0;
        // Bucket `head - k` is `head_age + k` buckets before `now`'s; count ages 0..=span.
        for k in 0..BUCKETS as u32 {
            let age = head_age + i64::from(k);
            if age > i64::from(span) {
                break;
            }
            if age >= 0 {
                units += u32::from(self.buckets[slot(self.head.wrapping_sub(k))]);
            }
        }
        units
    }

    /// Eviction order: lowest score first, then the oldest newest bucket; `None` when nothing
    /// is left in the window.
    fn suspicion(&self, now_idx: u32, span: u32) -> Option<u64> {
        let units = self.units_at(now_idx, span);
        let age = u64::try_from(delta(now_idx, self.head).max(0)).unwrap_or(0);
        let recency = u64::from(u32::MAX).saturating_sub(age);
        (units > 0).then_some((u64::from(units) << 32) | recency)
    }
}

/// Fixed-point units of a weight: rounded to the nearest quarter, at least one unit when
/// positive, saturating at 255; 0 for zero, negative and NaN weights.
fn units_of(weight: f32) -> u8 {
    if weight > 0.0 {
        ((weight * UNITS_PER_WEIGHT).round() as u8).max(1)
    } else {
        0
    }
}

/// Units needed to fire: `ceil(threshold × 4)`, at least 1; `u32::MAX` for NaN.
fn units_needed(threshold: f32) -> u32 {
    if threshold.is_nan() {
        u32::MAX
    } else {
        ((threshold * UNITS_PER_WEIGHT).ceil() as u32).max(1)
    }
}

fn score_of(units: u32) -> f32 {
    units as f32 / UNITS_PER_WEIGHT
}

/// One jail's low-and-slow detector. See the [module docs](self) for the design.
pub struct WindowDetector {
    jail: Arc<str>,
    params: WindowParams,
    table: HashMap<Key, Entry>,
    /// Bucket width in seconds (at least 1).
    width: u64,
    /// How many buckets before `now`'s are counted: `ceil(window / width)`, at most 7.
    span: u32,
    /// The latest `now` seen, Unix seconds: a stand-in for `now` where none is given.
    latest: u64,
    evicted: u64,
}

impl fmt::Debug for WindowDetector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WindowDetector")
            .field("jail", &self.jail)
            .field("params", &self.params)
            .field("tracked", &self.table.len())
            .field("evicted", &self.evicted)
            .finish_non_exhaustive()
    }
}

fn width_of(window: Duration) -> u64 {
    window.as_secs().div_ceil(SPAN).max(1)
}

fn span_of(window: Duration, width: u64) -> u32 {
    u32::try_from(window.as_secs().div_ceil(width).min(SPAN)).unwrap_or(0)
}

impl WindowDetector {
    /// An empty detector for `jail`.
    pub fn new(jail: Arc<str>, params: WindowParams) -> Self {
        Self {
            jail,
            width: width_of(params.window),
            span: span_of(params.window, width_of(params.window)),
            params,
            table: HashMap::new(),
            latest: 0,
            evicted: 0,
        }
    }

    /// Count one observation of weight `weight`.
    ///
    /// The event time is `obs.time` clamped to at most `now`; an observation older than
    /// `now - window`, or of weight 0 (or negative, or NaN), is ignored. When the address's
    /// score at `now` reaches the threshold, this returns a [`Finding`] (detector `"window"`,
    /// target `host_net(obs.addr)`, count the score rounded, the clamped event time) and forgets
    /// the address, so one burst fires once.
    pub fn observe(&mut self, obs: &Observation, weight: f32, now: SystemTime) -> Option<Finding> {
        let units = units_of(weight);
        if units == 0 {
            return None;
        }
        let time = obs.time.min(now);
        let (now_s, t_s) = (unix_secs(now), unix_secs(time));
        if t_s.saturating_add(self.params.window.as_secs()) < now_s {
            return None;
        }
        self.latest = self.latest.max(now_s);
        let (now_idx, idx) = (self.index(now_s), self.index(t_s));
        let need = units_needed(self.params.threshold);
        let key = Key::of(obs.addr);
        let total = match self.table.get_mut(&key) {
            Some(entry) => {
                entry.add(idx, units);
                entry.units_at(now_idx, self.span)
            }
            // Enough on its own: nothing to track.
            None if u32::from(units) >= need => u32::from(units),
            None => {
                if self.table.len() >= self.cap() {
                    self.make_room(now_idx);
                }
                let mut entry = Entry::new(idx);
                entry.add(idx, units);
                self.table.insert(key, entry);
                entry.units_at(now_idx, self.span)
            }
        };
        if total < need {
            return None;
        }
        self.table.remove(&key);
        Some(Finding {
            target: host_net(obs.addr),
            jail: Arc::clone(&self.jail),
            detector: DETECTOR,
            count: score_of(total).round() as u32,
            time,
        })
    }

    /// Forget an address (after a successful login or a manual unban).
    pub fn forget(&mut self, addr: IpAddr) {
        self.table.remove(&Key::of(addr));
    }

    /// Change parameters (config reload) without losing tracked state.
    ///
    /// A new threshold applies from the next observation. A new window changes the bucket
    /// width: each old bucket's units move to the new bucket holding the old bucket's start
    /// (so history may expire up to one old bucket early, never late); what no longer fits the
    /// ring is dropped. A lower `max_tracked` evicts at once, using the latest `now` seen.
    pub fn set_params(&mut self, params: WindowParams) {
        let width = width_of(params.window);
        self.span = span_of(params.window, width);
        self.params = params;
        if width != self.width {
            let (old, reference) = (self.width, self.latest / self.width);
            for entry in self.table.values_mut() {
                *entry = rebucket(entry, old, width, reference);
            }
            self.width = width;
            self.table.retain(|_, e| e.buckets.iter().any(|&b| b > 0));
        }
        if self.table.len() > self.cap() {
            let now_idx = self.index(self.latest);
            self.make_room(now_idx);
        }
    }

    /// The current parameters.
    pub fn params(&self) -> &WindowParams {
        &self.params
    }

    /// The score of `addr` at `now` (for `explain`): the sum of its weights in the window, as
    /// counted for firing (see the module docs for the one-bucket approximation).
    pub fn score(&self, addr: IpAddr, now: SystemTime) -> f32 {
        let now_idx = self.index(unix_secs(now));
        self.table
            .get(&Key::of(addr))
            .map_or(0.0, |e| score_of(e.units_at(now_idx, self.span)))
    }

    /// How many addresses are tracked.
    pub fn tracked(&self) -> usize {
        self.table.len()
    }

    /// Addresses dropped because of the cap while they still had a score (a metric).
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Drop addresses with nothing left in the window at `now`. O(tracked); the daemon calls it
    /// periodically. Gives memory back when the table has become mostly empty.
    pub fn sweep(&mut self, now: SystemTime) {
        let (now_idx, span) = (self.index(unix_secs(now)), self.span);
        self.table.retain(|_, e| e.units_at(now_idx, span) > 0);
        key::shrink_if_sparse(&mut self.table);
    }

    /// The effective cap (at least 1).
    fn cap(&self) -> usize {
        self.params.max_tracked.max(1)
    }

    /// The absolute bucket index of Unix second `secs`, modulo 2^32.
    fn index(&self, secs: u64) -> u32 {
        (secs / self.width) as u32
    }

    /// Make room for one more address: drop what has no score left, then evict the least
    /// suspicious down to 90% of the cap.
    fn make_room(&mut self, now_idx: u32) {
        let (span, cap) = (self.span, self.cap());
        let dropped = key::make_room(&mut self.table, cap, |e| e.suspicion(now_idx, span));
        self.evicted += dropped as u64;
    }

    /// Heap bytes of the table (for the memory test).
    #[cfg(test)]
    fn table_bytes(&self) -> usize {
        key::table_bytes(&self.table)
    }
}

/// `entry` with its buckets re-cut from width `old` to width `new` seconds. `reference` is an
/// absolute bucket index (old width) near the entry's head, to recover the head's high bits.
fn rebucket(entry: &Entry, old: u64, new: u64, reference: u64) -> Entry {
    let head = reference
        .wrapping_add_signed(delta(entry.head, reference as u32))
        .min(u64::MAX / old.max(1));
    let mut next: Option<Entry> = None;
    // Oldest first, so the head only moves forward.
    for k in (0..BUCKETS as u64).rev() {
        let Some(i) = head.checked_sub(k) else {
            continue;
        };
        let units = entry.buckets[slot(i as u32)];
        if units == 0 {
            continue;
        }
        let idx = (i.saturating_mul(old) / new.max(1)) as u32;
        next.get_or_insert_with(|| Entry::new(idx)).add(idx, units);
    }
    next.unwrap_or_else(|| Entry::new(entry.head))
}

#[cfg(test)]
mod tests;
