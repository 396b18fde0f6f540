//! Specs for the window detector, driven by explicit `now` values (simulated time), plus a
//! comparison against a naive keep-every-event reference over random sequences.
//!
//! Most cases use a 7000 s window: buckets are then exactly 1000 s wide, aligned to the Unix
//! epoch, and `T0` is a multiple of 1000, so second `s` after `T0` is in bucket `s / 1000`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::*;
use crate::clock::from_unix_secs;

/// An arbitrary, realistic origin for simulated time; a multiple of the test bucket width.
const T0: u64 = 1_795_000_000;

fn at(s: u64) -> SystemTime {
    from_unix_secs(T0 + s)
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn obs_at(addr: IpAddr, time: SystemTime) -> Observation {
    Observation {
        time,
        addr,
        user: None,
        rule: Arc::from("sshd.failed-password"),
        source: Arc::from("auth"),
    }
}

fn params(threshold: f32, window_secs: u64, max_tracked: usize) -> WindowParams {
    WindowParams {
        threshold,
        window: Duration::from_secs(window_secs),
        max_tracked,
    }
}

fn detector(threshold: f32, window_secs: u64, max_tracked: usize) -> WindowDetector {
    WindowDetector::new(
        Arc::from("sshd"),
        params(threshold, window_secs, max_tracked),
    )
}

/// Feed `(second, weight)` events for one address, each observed live (now == event time),
/// and return the indices that fired.
fn fired_at(d: &mut WindowDetector, addr: IpAddr, events: &[(u64, f32)]) -> Vec<usize> {
    events
        .iter()
        .enumerate()
        .filter_map(|(i, &(s, w))| d.observe(&obs_at(addr, at(s)), w, at(s)).map(|_| i))
        .collect()
}

#[test]
fn fires_at_the_threshold_with_bucket_granularity() {
    struct Case {
        name: &'static str,
        threshold: f32,
        window: u64,
        events: &'static [(u64, f32)],
        fires: &'static [usize],
    }
    let cases = [
        Case {
            name: "threshold reached",
            threshold: 3.0,
            window: 7000,
            events: &[(0, 1.0), (10, 1.0), (20, 1.0)],
            fires: &[2],
        },
        Case {
            name: "one below never fires",
            threshold: 3.0,
            window: 7000,
            events: &[(0, 1.0), (10, 1.0)],
            fires: &[],
        },
        Case {
            name: "window edge is inclusive",
            threshold: 3.0,
            window: 7000,
            events: &[(0, 1.0), (3500, 1.0), (7000, 1.0)],
            fires: &[2],
        },
        Case {
            name: "up to one bucket older than the window still counts (documented)",
            threshold: 3.0,
            window: 7000,
            events: &[(0, 1.0), (3500, 1.0), (7999, 1.0)],
            fires: &[2],
        },
        Case {
            name: "the bucket after that does not",
            threshold: 3.0,
            window: 7000,
            events: &[(999, 1.0), (3500, 1.0), (8000, 1.0)],
            fires: &[],
        },
        Case {
            name: "old events slide out, new ones complete the window",
            threshold: 3.0,
            window: 7000,
            events: &[(0, 1.0), (5000, 1.0), (9000, 1.0), (9500, 1.0)],
            fires: &[3],
        },
        Case {
            name: "weights add up: invalid user counts double",
            threshold: 10.0,
            window: 7000,
            events: &[(0, 2.0), (1, 2.0), (2, 2.0), (3, 2.0), (4, 2.0)],
            fires: &[4],
        },
        Case {
            name: "weight 0 is ignored",
            threshold: 2.0,
            window: 7000,
            events: &[
                (0, 1.0),
                (1, 0.0),
                (2, 0.0),
                (3, -1.0),
                (4, f32::NAN),
                (5, 1.0),
            ],
            fires: &[5],
        },
        Case {
            name: "quarter weights: exactly at the threshold",
            threshold: 1.0,
            window: 7000,
            events: &[(0, 0.25), (1, 0.25), (2, 0.25), (3, 0.25)],
            fires: &[3],
        },
        Case {
            name: "quarter weights: one quarter below",
            threshold: 1.0,
            window: 7000,
            events: &[(0, 0.25), (1, 0.25), (2, 0.25)],
            fires: &[],
        },
        Case {
            name: "a fractional threshold rounds up to the next quarter",
            threshold: 0.6,
            window: 7000,
            events: &[(0, 0.25), (1, 0.25), (2, 0.25)],
            fires: &[2],
        },
        Case {
            name: "threshold 0 fires on the first positive weight",
            threshold: 0.0,
            window: 7000,
            events: &[(0, 0.0), (1, 0.1), (2, 1.0)],
            fires: &[1, 2],
        },
        Case {
            name: "a NaN threshold never fires",
            threshold: f32::NAN,
            window: 7000,
            events: &[(0, 100.0), (1, 100.0), (2, 100.0)],
            fires: &[],
        },
        Case {
            name: "a single heavy event at the threshold fires untracked",
            threshold: 5.0,
            window: 7000,
            events: &[(0, 5.0)],
            fires: &[0],
        },
        Case {
            name: "low and slow: one attempt every 30 min, 10 in 24 h",
            threshold: 10.0,
            window: 24 * 3600,
            events: &[
                (0, 1.0),
                (1800, 1.0),
                (3600, 1.0),
                (5400, 1.0),
                (7200, 1.0),
                (9000, 1.0),
                (10800, 1.0),
                (12600, 1.0),
                (14400, 1.0),
                (16200, 1.0),
            ],
            fires: &[9],
        },
        Case {
            name: "1-second window: exact",
            threshold: 2.0,
            window: 1,
            events: &[(0, 1.0), (2, 1.0), (10, 1.0), (11, 1.0)],
            fires: &[3],
        },
        Case {
            name: "0-second window: the same second only",
            threshold: 2.0,
            window: 0,
            events: &[(0, 1.0), (1, 1.0), (1, 1.0)],
            fires: &[2],
        },
        Case {
            name: "8-second window: 2-second buckets, 4 of them back",
            threshold: 2.0,
            window: 8,
            events: &[(0, 1.0), (10, 1.0), (19, 1.0)],
            fires: &[2],
        },
        Case {
            name: "8-second window: up to one 2-second bucket older counts",
            threshold: 2.0,
            window: 8,
            events: &[(0, 1.0), (9, 1.0)],
            fires: &[1],
        },
    ];
    for c in cases {
        let mut d = detector(c.threshold, c.window, 100);
        assert_eq!(
            fired_at(&mut d, ip("203.0.113.7"), c.events),
            c.fires,
            "{}",
            c.name
        );
    }
}

#[test]
fn score_follows_the_bucketed_window() {
    let mut d = detector(100.0, 7000, 100);
    let a = ip("192.0.2.1");
    assert!(fired_at(&mut d, a, &[(0, 1.0), (1500, 2.0), (6999, 0.5)]).is_empty());
    struct Case {
        now: u64,
        score: f32,
    }
    for c in [
        Case { now: 0, score: 1.0 },
        Case {
            now: 999,
            score: 1.0,
        },
        Case {
            now: 1000,
            score: 3.0,
        },
        Case {
            now: 6999,
            score: 3.5,
        },
        Case {
            now: 7999,
            score: 3.5,
        },
        Case {
            now: 8000,
            score: 2.5,
        },
        Case {
            now: 8999,
            score: 2.5,
        },
        Case {
            now: 9000,
            score: 0.5,
        },
        Case {
            now: 13999,
            score: 0.5,
        },
        Case {
            now: 14000,
            score: 0.0,
        },
    ] {
        assert_eq!(d.score(a, at(c.now)), c.score, "now = {}", c.now);
    }
    assert_eq!(d.score(ip("192.0.2.2"), at(0)), 0.0);
}

#[test]
fn finding_names_target_jail_detector_count_and_time() {
    let mut d = detector(3.0, 7000, 100);
    let a = ip("::ffff:198.51.100.9");
    assert_eq!(d.observe(&obs_at(a, at(0)), 1.25, at(0)), None);
    // An event time in the future is clamped to `now`.
    let f = d.observe(&obs_at(a, at(100)), 2.0, at(5)).expect("fires");
    assert_eq!(f.target.to_string(), "198.51.100.9/32");
    assert_eq!(&*f.jail, "sshd");
    assert_eq!(f.detector, "window");
    assert_eq!(f.count, 3, "3.25 rounded");
    assert_eq!(f.time, at(5));
}

#[test]
fn fires_once_per_burst_then_restarts() {
    let mut d = detector(3.0, 7000, 100);
    let a = ip("192.0.2.1");
    let ev: Vec<(u64, f32)> = (0..7).map(|s| (s, 1.0)).collect();
    assert_eq!(fired_at(&mut d, a, &ev), vec![2, 5]);
    assert_eq!(d.score(a, at(6)), 1.0);
    assert_eq!(d.tracked(), 1);
}

#[test]
fn observations_older_than_the_window_are_ignored() {
    let mut d = detector(2.0, 7000, 100);
    let a = ip("192.0.2.2");
    let now = at(20_000);
    // Old lines replayed at startup: not counted, not even tracked, though 12_999 is in a
    // bucket that would still be counted.
    for t in [12_999, 5_000, 0] {
        assert_eq!(d.observe(&obs_at(a, at(t)), 1.0, now), None);
    }
    assert_eq!(d.tracked(), 0);
    // Exactly at the window's edge still counts, late or not.
    assert_eq!(d.observe(&obs_at(a, at(13_000)), 1.0, now), None);
    assert_eq!(d.score(a, now), 1.0);
    assert!(d.observe(&obs_at(a, at(15_000)), 1.0, now).is_some());
}

#[test]
fn late_events_land_in_their_own_bucket() {
    let mut d = detector(10.0, 7000, 100);
    let a = ip("192.0.2.3");
    d.observe(&obs_at(a, at(7000)), 1.0, at(7000));
    // Arrives at 7500, happened at 500 (bucket 0): within the window at arrival.
    d.observe(&obs_at(a, at(500)), 2.0, at(7500));
    assert_eq!(d.score(a, at(7500)), 3.0);
    assert_eq!(d.score(a, at(8000)), 1.0, "bucket 0 has left the window");
}

#[test]
fn saturated_buckets_under_count() {
    let mut d = detector(MAX_SCORE, 7000, 100);
    let a = ip("192.0.2.4");
    for _ in 0..300 {
        assert_eq!(d.observe(&obs_at(a, at(0)), 1.0, at(0)), None);
    }
    assert_eq!(d.score(a, at(0)), 63.75);
    // Eight saturated buckets reach MAX_SCORE exactly.
    let mut fired = None;
    for b in 1..8u64 {
        for _ in 0..70 {
            fired = fired.or(d.observe(&obs_at(a, at(b * 1000)), 1.0, at(b * 1000)));
        }
    }
    assert_eq!(fired.map(|f| f.count), Some(510));
    // Above MAX_SCORE never fires.
    let mut d = detector(MAX_SCORE + 1.0, 7000, 100);
    for b in 0..100u64 {
        assert_eq!(d.observe(&obs_at(a, at(b * 100)), 255.0, at(b * 100)), None);
    }
}

#[test]
fn forget_drops_the_score() {
    let mut d = detector(3.0, 7000, 100);
    let a = ip("192.0.2.5");
    assert!(fired_at(&mut d, a, &[(0, 1.0), (1, 1.0)]).is_empty());
    d.forget(a);
    assert_eq!(d.tracked(), 0);
    assert_eq!(d.score(a, at(1)), 0.0);
    assert!(fired_at(&mut d, a, &[(2, 1.0), (3, 1.0)]).is_empty());
    d.forget(ip("2001:db8::99"));
    assert_eq!(d.tracked(), 1);
}

#[test]
fn set_params_keeps_state() {
    struct Case {
        name: &'static str,
        to: WindowParams,
        score_after: f32,
        fires_next: bool,
    }
    // Events at 0, 1000, ..., 5000 (one per bucket), weight 1; checked at now = 5000.
    let cases = [
        Case {
            name: "lower threshold fires on the next observation",
            to: params(6.0, 7000, 100),
            score_after: 6.0,
            fires_next: true,
        },
        Case {
            name: "higher threshold",
            to: params(20.0, 7000, 100),
            score_after: 6.0,
            fires_next: false,
        },
        Case {
            name: "twice the window: width 2000, all kept",
            to: params(20.0, 14_000, 100),
            score_after: 6.0,
            fires_next: false,
        },
        Case {
            name: "half the window: width 500, the oldest buckets drop",
            to: params(20.0, 3500, 100),
            score_after: 4.0,
            fires_next: false,
        },
    ];
    for c in cases {
        let mut d = detector(10.0, 7000, 100);
        let a = ip("2001:db8::7");
        let ev: Vec<(u64, f32)> = (0..6).map(|b| (b * 1000, 1.0)).collect();
        assert!(fired_at(&mut d, a, &ev).is_empty(), "{}", c.name);
        d.set_params(c.to.clone());
        assert_eq!(d.params(), &c.to, "{}", c.name);
        assert_eq!(d.score(a, at(5000)), c.score_after, "{}", c.name);
        let fired = d.observe(&obs_at(a, at(5000)), 1.0, at(5000));
        assert_eq!(fired.is_some(), c.fires_next, "{}", c.name);
    }
}

#[test]
fn set_params_with_a_lower_cap_evicts_at_once() {
    let mut d = detector(10.0, 7000, 100);
    for i in 0..50u8 {
        d.observe(&obs_at(IpAddr::from([10, 0, 0, i]), at(0)), 1.0, at(0));
    }
    d.set_params(params(10.0, 7000, 20));
    assert_eq!(d.tracked(), 18, "down to 90% of 20");
    assert_eq!(d.evicted(), 32);
}

#[test]
fn cap_keeps_tracked_bounded_and_evicts_the_least_suspicious() {
    let mut d = detector(5.0, 7000, 10);
    let near = ip("198.51.100.1");
    assert!(fired_at(&mut d, near, &[(0, 2.0), (0, 2.0)]).is_empty());
    for i in 1..=9u8 {
        let s = u64::from(i);
        d.observe(&obs_at(IpAddr::from([192, 0, 2, i]), at(s)), 1.0, at(s));
    }
    assert_eq!(d.tracked(), 10);
    // The 11th address evicts one of the weight-1 addresses, never `near`.
    d.observe(&obs_at(ip("192.0.2.100"), at(20)), 1.0, at(20));
    assert_eq!((d.tracked(), d.evicted()), (10, 1));
    assert_eq!(d.score(near, at(20)), 4.0);
    for i in 0..1_000u32 {
        let s = 21 + u64::from(i) / 10;
        let a = IpAddr::from([100, 64, (i >> 8) as u8, i as u8]);
        d.observe(&obs_at(a, at(s)), 1.0, at(s));
        assert!(d.tracked() <= 10);
    }
    assert!(d.evicted() > 900);
    assert!(d.observe(&obs_at(near, at(200)), 1.0, at(200)).is_some());
}

#[test]
fn at_the_cap_expired_entries_are_swept_before_anything_is_evicted() {
    let mut d = detector(3.0, 7000, 10);
    for i in 0..10u8 {
        d.observe(&obs_at(IpAddr::from([192, 0, 2, i]), at(0)), 1.0, at(0));
    }
    d.observe(&obs_at(ip("192.0.2.200"), at(8000)), 1.0, at(8000));
    assert_eq!((d.tracked(), d.evicted()), (1, 0));
}

#[test]
fn a_cap_of_zero_behaves_as_one() {
    let mut d = detector(2.0, 7000, 0);
    for i in 0..5u8 {
        d.observe(&obs_at(IpAddr::from([192, 0, 2, i]), at(0)), 1.0, at(0));
        assert_eq!(d.tracked(), 1);
    }
    assert!(
        d.observe(&obs_at(ip("192.0.2.4"), at(1)), 1.0, at(1))
            .is_some()
    );
}

#[test]
fn sweep_drops_only_what_has_no_score_left() {
    let mut d = detector(3.0, 7000, 100);
    let (old, live) = (ip("192.0.2.10"), ip("2001:db8::10"));
    fired_at(&mut d, old, &[(0, 1.0), (999, 1.0)]);
    fired_at(&mut d, live, &[(0, 1.0), (1000, 1.0)]);
    d.sweep(at(7999)); // buckets 0..=7 counted: both kept
    assert_eq!(d.tracked(), 2);
    d.sweep(at(8000)); // bucket 0 gone: `old` has nothing left
    assert_eq!(d.tracked(), 1);
    assert_eq!(d.score(live, at(8000)), 1.0);
    assert_eq!(d.evicted(), 0, "sweeping is not eviction");
    let mut empty = detector(3.0, 7000, 100);
    empty.sweep(at(0));
    assert_eq!(empty.tracked(), 0);
}

#[test]
fn a_flood_of_a_million_distinct_addresses_stays_under_the_cap() {
    let cap = 50_000;
    let mut d = detector(10.0, 24 * 3600, cap);
    // Weight 2 every 100,000 addresses: never the least suspicious, fires twice (at the 5th
    // and 10th observation).
    let persistent = ip("198.51.100.77");
    let mut fired = 0;
    let mut o = obs_at(persistent, at(0)); // one observation, re-aimed: the loop is hot
    for i in 0..1_000_000u32 {
        let s = u64::from(i / 100); // 10,000 s in all: inside one window
        (o.addr, o.time) = (persistent, at(s));
        if i % 100_000 == 0 && d.observe(&o, 2.0, at(s)).is_some() {
            fired += 1;
        }
        // Half IPv4, half IPv6 (random-looking /64 interface ids), one failure each.
        let a = if i % 2 == 0 {
            IpAddr::from(i.wrapping_mul(2_654_435_761).to_be_bytes())
        } else {
            let bits = (0x2001_0db8_u128 << 96) | u128::from(i.wrapping_mul(0x9e37_79b9));
            IpAddr::from(bits.to_be_bytes())
        };
        o.addr = a;
        d.observe(&o, 1.0, at(s));
        assert!(d.tracked() <= cap);
    }
    assert!(d.evicted() >= 1_000_000 - cap as u64);
    assert_eq!(fired, 2);
    // The table stays at the size the cap needs (65,536 buckets for 50,000), never doubled.
    assert_eq!(d.table_bytes(), 65_536 * 29 + 16);
}

#[test]
fn slot_is_28_bytes() {
    assert_eq!(std::mem::size_of::<(Key, Entry)>(), 28);
}

/// The memory figure: bytes of table per tracked address with one million addresses tracked.
/// `cargo test --release --lib window::tests::memory -- --ignored --nocapture`
#[test]
#[ignore = "slow in debug builds; prints the memory figure"]
fn memory_per_address_at_one_million() {
    fn rss_bytes() -> usize {
        std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
            .map_or(0, |pages| pages * 4096)
    }
    let n = 1_000_000u32;
    let mut d = detector(1000.0, 7 * 24 * 3600, n as usize);
    let before = rss_bytes();
    for i in 0..n {
        let s = u64::from(i / 10);
        let a = if i % 10 == 0 {
            let bits = (0x2001_0db8_u128 << 96) | u128::from(i);
            IpAddr::from(bits.to_be_bytes())
        } else {
            IpAddr::from((0x0a00_0000 | i).to_be_bytes())
        };
        d.observe(&obs_at(a, at(s)), 1.0, at(s));
    }
    let rss = rss_bytes().saturating_sub(before);
    assert_eq!(d.tracked(), n as usize);
    let per = d.table_bytes() as f64 / f64::from(n);
    println!(
        "window: {} addresses, table {} bytes = {per:.1} B/address; RSS delta {rss} bytes = {:.1} B/address",
        d.tracked(),
        d.table_bytes(),
        rss as f64 / f64::from(n)
    );
    assert!(per < 64.0, "{per} bytes per address");
}

/// A naive reference: every accepted event kept; the score at `now` sums the events whose
/// bucket is within 7 of `now`'s (the documented semantics).
#[test]
fn agrees_with_a_naive_reference_on_random_sequences() {
    struct Xorshift(u64);
    impl Xorshift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }
    let addrs = [
        ip("192.0.2.1"),
        ip("192.0.2.2"),
        ip("2001:db8::1"),
        ip("::ffff:192.0.2.1"),
    ];
    let weights = [0.0, 0.25, 0.5, 1.0, 2.0];
    for seed in 1..=40u64 {
        let mut rng = Xorshift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let window = 700 + rng.below(14_000);
        let threshold = 1.0 + rng.below(12) as f32;
        let width = window.div_ceil(7);
        let mut d = detector(threshold, window, 100);
        let mut reference: Vec<(u64, Key, u32)> = Vec::new();
        let mut now = 0u64;
        for step in 0..400 {
            now += rng.below(window / 4);
            let a = addrs[rng.below(addrs.len() as u64) as usize];
            let key = Key::of(a);
            let w = weights[rng.below(weights.len() as u64) as usize];
            // Mostly live, sometimes late by up to a window and a half, sometimes in the future.
            let t = match rng.below(4) {
                0 => now.saturating_sub(rng.below(window + window / 2)),
                1 => now + rng.below(100),
                _ => now,
            };
            if rng.below(50) == 0 {
                d.forget(a);
                reference.retain(|e| e.1 != key);
                continue;
            }
            let got = d.observe(&obs_at(a, at(t)), w, at(now)).is_some();
            let t = t.min(now);
            let units = u32::from(units_of(w));
            if units > 0 && t + window >= now {
                reference.push((t, key, units));
            }
            let score = |r: &[(u64, Key, u32)], k: Key, now: u64| -> u32 {
                r.iter()
                    .filter(|e| e.1 == k && (T0 + e.0) / width + 7 >= (T0 + now) / width)
                    .map(|e| e.2)
                    .sum()
            };
            let want = score(&reference, key, now) >= units_needed(threshold) && units > 0;
            assert_eq!(got, want, "seed {seed} step {step}");
            if want {
                reference.retain(|e| e.1 != key);
            }
            for &b in &addrs {
                let s = score_of(score(&reference, Key::of(b), now));
                assert_eq!(d.score(b, at(now)), s, "seed {seed} step {step} {b}");
            }
        }
    }
}
