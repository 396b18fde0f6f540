//! Specs for the threshold detector, driven by explicit `now` values (simulated time), plus a
//! comparison against a naive keep-every-timestamp implementation over random sequences.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::clock::from_unix_secs;

/// An arbitrary, realistic origin for simulated time.
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

fn params(max_retry: u32, find_secs: u64, max_tracked: usize) -> ThresholdParams {
    ThresholdParams {
        max_retry: NonZeroU32::new(max_retry).expect("non-zero max_retry"),
        find_time: Duration::from_secs(find_secs),
        max_tracked,
    }
}

fn detector(max_retry: u32, find_secs: u64, max_tracked: usize) -> ThresholdDetector {
    ThresholdDetector::new(Arc::from("sshd"), params(max_retry, find_secs, max_tracked))
}

/// Feed `times` (seconds after T0, each observed live: now == event time) for one address and
/// return the indices that fired.
fn fired_at(d: &mut ThresholdDetector, addr: IpAddr, times: &[u64]) -> Vec<usize> {
    times
        .iter()
        .enumerate()
        .filter_map(|(i, &s)| d.observe(&obs_at(addr, at(s)), at(s)).map(|_| i))
        .collect()
}

#[test]
fn fires_exactly_at_max_retry_within_find_time() {
    struct Case {
        name: &'static str,
        max_retry: u32,
        find: u64,
        times: &'static [u64],
        fires: &'static [usize],
    }
    let cases = [
        Case {
            name: "max_retry in window",
            max_retry: 3,
            find: 60,
            times: &[0, 10, 20],
            fires: &[2],
        },
        Case {
            name: "max_retry - 1 never fires",
            max_retry: 3,
            find: 60,
            times: &[0, 10],
            fires: &[],
        },
        Case {
            name: "window edge is inclusive",
            max_retry: 3,
            find: 60,
            times: &[0, 30, 60],
            fires: &[2],
        },
        Case {
            name: "one second too wide",
            max_retry: 3,
            find: 60,
            times: &[0, 30, 61],
            fires: &[],
        },
        Case {
            name: "low and slow is not this detector's job",
            max_retry: 3,
            find: 60,
            times: &[0, 40, 80, 120, 160, 200, 240, 280],
            fires: &[],
        },
        Case {
            name: "old failures slide out, new ones complete the window",
            max_retry: 3,
            find: 60,
            times: &[0, 50, 100, 110],
            fires: &[3],
        },
        Case {
            name: "same second",
            max_retry: 5,
            find: 0,
            times: &[7, 7, 7, 7, 7],
            fires: &[4],
        },
        Case {
            name: "max_retry 1 fires every time",
            max_retry: 1,
            find: 60,
            times: &[0, 1, 2],
            fires: &[0, 1, 2],
        },
        Case {
            name: "heap-backed max_retry",
            max_retry: 10,
            find: 600,
            times: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
            fires: &[9],
        },
        Case {
            name: "fail2ban default",
            max_retry: 5,
            find: 600,
            times: &[0, 120, 240, 360, 480, 601, 602],
            fires: &[4],
        },
    ];
    for c in cases {
        let mut d = detector(c.max_retry, c.find, 100);
        assert_eq!(
            fired_at(&mut d, ip("203.0.113.7"), c.times),
            c.fires,
            "{}",
            c.name
        );
    }
}

#[test]
fn finding_names_target_jail_detector_count_and_time() {
    let mut d = detector(2, 60, 100);
    let a = ip("::ffff:198.51.100.9");
    assert_eq!(d.observe(&obs_at(a, at(0)), at(0)), None);
    // An event time in the future is clamped to `now`.
    let f = d.observe(&obs_at(a, at(100)), at(5)).expect("fires");
    assert_eq!(f.target.to_string(), "198.51.100.9/32");
    assert_eq!(&*f.jail, "sshd");
    assert_eq!(f.detector, "threshold");
    assert_eq!(f.count, 2);
    assert_eq!(f.time, at(5));
}

#[test]
fn fires_once_per_burst_then_restarts_counting() {
    let mut d = detector(3, 600, 100);
    let a = ip("192.0.2.1");
    assert_eq!(fired_at(&mut d, a, &[0, 1, 2, 3, 4, 5, 6]), vec![2, 5]);
    assert_eq!(d.count(a, at(6)), 1);
    assert_eq!(d.tracked(), 1);
}

#[test]
fn observations_older_than_the_window_are_ignored() {
    let mut d = detector(2, 600, 100);
    let a = ip("192.0.2.2");
    let now = at(10_000);
    // Old lines replayed at startup: not counted, not even tracked.
    for back in [601, 5_000, 10_000] {
        assert_eq!(d.observe(&obs_at(a, at(10_000 - back)), now), None);
    }
    assert_eq!(d.tracked(), 0);
    // Exactly at the window's edge still counts.
    assert_eq!(d.observe(&obs_at(a, at(10_000 - 600)), now), None);
    assert_eq!(d.count(a, now), 1);
    assert!(d.observe(&obs_at(a, now), now).is_some());
}

#[test]
fn forget_drops_the_count() {
    let mut d = detector(3, 600, 100);
    let a = ip("192.0.2.3");
    assert_eq!(fired_at(&mut d, a, &[0, 1]), Vec::<usize>::new());
    d.forget(a);
    assert_eq!(d.tracked(), 0);
    assert_eq!(fired_at(&mut d, a, &[2, 3]), Vec::<usize>::new());
    assert_eq!(d.count(a, at(3)), 2);
    // Forgetting an unknown address is a no-op.
    d.forget(ip("2001:db8::99"));
    assert_eq!(d.tracked(), 1);
}

#[test]
fn set_params_keeps_state() {
    struct Case {
        name: &'static str,
        from: u32,
        to: u32,
        before: &'static [u64],
        count_after: u32,
        fires_next: bool,
    }
    let cases = [
        Case {
            name: "raise inline",
            from: 5,
            to: 6,
            before: &[0, 1, 2, 3],
            count_after: 4,
            fires_next: false,
        },
        Case {
            name: "lower inline",
            from: 5,
            to: 3,
            before: &[0, 1, 2, 3],
            count_after: 3,
            fires_next: true,
        },
        Case {
            name: "lower to one",
            from: 5,
            to: 1,
            before: &[0, 1],
            count_after: 1,
            fires_next: true,
        },
        Case {
            name: "inline to heap",
            from: 3,
            to: 10,
            before: &[0, 1],
            count_after: 2,
            fires_next: false,
        },
        Case {
            name: "heap to inline",
            from: 10,
            to: 3,
            before: &[0, 1, 2, 3, 4, 5, 6, 7],
            count_after: 3,
            fires_next: true,
        },
        Case {
            name: "unchanged",
            from: 4,
            to: 4,
            before: &[0, 1, 2],
            count_after: 3,
            fires_next: true,
        },
    ];
    for c in cases {
        let mut d = detector(c.from, 600, 100);
        let a = ip("2001:db8::7");
        assert!(fired_at(&mut d, a, c.before).is_empty(), "{}", c.name);
        d.set_params(params(c.to, 600, 100));
        assert_eq!(d.params().max_retry.get(), c.to, "{}", c.name);
        assert_eq!(d.count(a, at(10)), c.count_after, "{}", c.name);
        let fired = d.observe(&obs_at(a, at(10)), at(10));
        assert_eq!(fired.is_some(), c.fires_next, "{}", c.name);
    }
}

#[test]
fn set_params_with_a_lower_cap_evicts_at_once() {
    let mut d = detector(5, 600, 100);
    for i in 0..50u64 {
        let a = IpAddr::from([10, 0, 0, i as u8]);
        d.observe(&obs_at(a, at(i)), at(i));
    }
    d.set_params(params(5, 600, 20));
    assert!(d.tracked() <= 20, "tracked {}", d.tracked());
    assert_eq!(d.evicted(), 32); // down to 90% of 20
}

#[test]
fn cap_keeps_tracked_bounded_and_evicts_the_least_suspicious() {
    let mut d = detector(3, 600, 10);
    // One short of the threshold, and the oldest last failure of all.
    let near = ip("198.51.100.1");
    assert!(fired_at(&mut d, near, &[0, 0]).is_empty());
    // Nine one-off addresses, seen later.
    for i in 1..=9u8 {
        let a = IpAddr::from([192, 0, 2, i]);
        assert_eq!(
            d.observe(&obs_at(a, at(u64::from(i))), at(u64::from(i))),
            None
        );
    }
    assert_eq!(d.tracked(), 10);
    assert_eq!(d.evicted(), 0);
    // The 11th address: evicts the single-failure address with the oldest last failure.
    d.observe(&obs_at(ip("192.0.2.100"), at(20)), at(20));
    assert_eq!(d.tracked(), 10);
    assert_eq!(d.evicted(), 1);
    assert_eq!(
        d.count(ip("192.0.2.1"), at(20)),
        0,
        "oldest single failure evicted"
    );
    assert_eq!(d.count(ip("192.0.2.2"), at(20)), 1);
    assert_eq!(d.count(near, at(20)), 2, "near-threshold address kept");
    // Churn through many more addresses: the bound holds and `near` survives throughout.
    for i in 0..1_000u32 {
        let a = IpAddr::from([100, 64, (i >> 8) as u8, i as u8]);
        let s = 21 + u64::from(i) / 10;
        d.observe(&obs_at(a, at(s)), at(s));
        assert!(d.tracked() <= 10);
    }
    assert!(d.evicted() > 900);
    assert!(
        d.observe(&obs_at(near, at(200)), at(200)).is_some(),
        "near still fires"
    );
}

#[test]
fn at_the_cap_expired_entries_are_swept_before_anything_is_evicted() {
    let mut d = detector(3, 600, 10);
    for i in 0..10u8 {
        d.observe(&obs_at(IpAddr::from([192, 0, 2, i]), at(0)), at(0));
    }
    d.observe(&obs_at(ip("192.0.2.200"), at(601)), at(601));
    assert_eq!(d.tracked(), 1);
    assert_eq!(d.evicted(), 0);
}

#[test]
fn a_cap_of_zero_behaves_as_one() {
    let mut d = detector(2, 600, 0);
    for i in 0..5u8 {
        d.observe(&obs_at(IpAddr::from([192, 0, 2, i]), at(0)), at(0));
        assert_eq!(d.tracked(), 1);
    }
    assert!(d.observe(&obs_at(ip("192.0.2.4"), at(1)), at(1)).is_some());
}

#[test]
fn sweep_drops_only_what_can_no_longer_fire() {
    let mut d = detector(3, 600, 100);
    let (old, live) = (ip("192.0.2.10"), ip("2001:db8::10"));
    fired_at(&mut d, old, &[0, 100]);
    fired_at(&mut d, live, &[0, 650]);
    d.sweep(at(700)); // the window is [100, 700]: both can still fire
    assert_eq!(d.tracked(), 2);
    d.sweep(at(701)); // old's last failure (100) is now outside
    assert_eq!(d.tracked(), 1);
    assert_eq!(d.count(old, at(700)), 0);
    assert_eq!(d.count(live, at(700)), 1);
    assert_eq!(d.evicted(), 0, "sweeping is not eviction");
    // Sweeping an empty, never-used detector is a no-op.
    let mut empty = detector(3, 600, 100);
    empty.sweep(at(0));
    assert_eq!(empty.tracked(), 0);
}

#[test]
fn sweep_gives_memory_back_after_a_wave() {
    let mut d = detector(5, 60, 1_000_000);
    for i in 0..100_000u32 {
        d.observe(&obs_at(IpAddr::from(i.to_be_bytes()), at(0)), at(0));
    }
    let big = d.windows.capacity();
    d.sweep(at(1_000));
    assert_eq!(d.tracked(), 0);
    assert!(
        d.windows.capacity() < big / 4,
        "{} -> {}",
        big,
        d.windows.capacity()
    );
}

#[test]
fn ipv6_and_ipv4_are_handled_alike_and_mapped_addresses_merge() {
    let mut d = detector(3, 600, 100);
    let v6 = ip("2001:db8:1::1");
    assert_eq!(fired_at(&mut d, v6, &[0, 1]), Vec::<usize>::new());
    // A neighbour in the same /64 is a different address for this detector.
    assert_eq!(
        fired_at(&mut d, ip("2001:db8:1::2"), &[2]),
        Vec::<usize>::new()
    );
    let f = d.observe(&obs_at(v6, at(3)), at(3)).expect("fires");
    assert_eq!(f.target.to_string(), "2001:db8:1::1/128");

    let (v4, mapped) = (ip("203.0.113.5"), ip("::ffff:203.0.113.5"));
    d.observe(&obs_at(v4, at(4)), at(4));
    d.observe(&obs_at(mapped, at(5)), at(5));
    assert_eq!(d.count(v4, at(5)), 2);
    assert_eq!(d.count(mapped, at(5)), 2);
    let f = d.observe(&obs_at(mapped, at(6)), at(6)).expect("fires");
    assert_eq!(f.target.to_string(), "203.0.113.5/32");
}

#[test]
fn out_of_order_times_keep_the_window_exact() {
    struct Case {
        name: &'static str,
        /// (event time, now) pairs, seconds after T0.
        feed: &'static [(u64, u64)],
        fires: &'static [usize],
    }
    // max_retry 3, find_time 60.
    let cases = [
        Case {
            name: "late but inside the window",
            feed: &[(100, 100), (50, 100), (90, 100)],
            fires: &[2],
        },
        Case {
            name: "late and outside the window",
            feed: &[(100, 100), (39, 100), (90, 100)],
            fires: &[],
        },
        Case {
            name: "reversed burst",
            feed: &[(30, 30), (20, 30), (10, 30)],
            fires: &[2],
        },
        Case {
            name: "a late time replaces the oldest expired one",
            feed: &[(0, 0), (1, 1), (100, 100), (50, 100), (99, 100)],
            fires: &[4],
        },
        Case {
            name: "a late time just outside the window is ignored",
            feed: &[(100, 100), (101, 101), (40, 101), (102, 102)],
            fires: &[3],
        },
        Case {
            name: "now steps backwards",
            feed: &[(1_000, 1_000), (500, 500), (1_000, 1_000), (999, 1_000)],
            fires: &[3],
        },
    ];
    for c in cases {
        let mut d = detector(3, 60, 100);
        let a = ip("192.0.2.77");
        let fired: Vec<usize> = c
            .feed
            .iter()
            .enumerate()
            .filter_map(|(i, &(t, now))| d.observe(&obs_at(a, at(t)), at(now)).map(|_| i))
            .collect();
        assert_eq!(fired, c.fires, "{}", c.name);
    }
}

#[test]
fn extreme_times_neither_panic_nor_underflow() {
    let before_epoch = UNIX_EPOCH
        .checked_sub(Duration::from_secs(86_400))
        .expect("pre-epoch time");
    let far_future = UNIX_EPOCH + Duration::from_secs(u64::from(u32::MAX) * 4);
    let mut d = detector(3, u64::MAX / 2, 100); // find_time beyond u32 seconds
    let a = ip("192.0.2.200");
    // First `now` near the epoch: the base saturates at 0.
    assert_eq!(d.observe(&obs_at(a, before_epoch), from_unix_secs(5)), None);
    assert_eq!(d.observe(&obs_at(a, before_epoch), before_epoch), None);
    assert!(d.observe(&obs_at(a, far_future), far_future).is_some());
    assert_eq!(d.count(a, before_epoch), 0);
    d.sweep(before_epoch);
    d.sweep(far_future);

    // A base chosen in the year 2128 (5e9 s), then times before that base and beyond u32.
    let first = from_unix_secs(5_000_000_000);
    let mut d = detector(3, 60, 100);
    assert_eq!(d.observe(&obs_at(a, first), first), None);
    assert!(d.base.is_some_and(|b| b > T0), "base is after T0");
    // Times more than 68 years before the first `now` saturate to the base: they stay
    // ordered (never wrap), only their distance is lost.
    for t in [
        at(0),
        before_epoch,
        from_unix_secs(5_000_000_000 + 3 * u64::from(u32::MAX)),
    ] {
        let _ = d.observe(&obs_at(a, t), t);
        let _ = d.observe(&obs_at(a, t), first);
        assert!(d.count(a, t) <= 3);
    }
    let huge = from_unix_secs(u64::MAX / 4);
    let _ = d.observe(&obs_at(a, huge), huge);
    d.sweep(before_epoch);
    d.sweep(huge);
}

#[test]
fn a_table_slot_is_40_bytes() {
    // The memory target (< 200 bytes per address) rests on this; see docs/benchmarks.md.
    assert_eq!(std::mem::size_of::<Times>(), 24);
    assert_eq!(std::mem::size_of::<(Key, Times)>(), 40);
}

/// Tiny xorshift64 PRNG: deterministic, no dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The obviously-correct reference: every time kept in a `Vec`, counted at `now`.
struct Naive {
    k: usize,
    find: u64,
    times: HashMap<IpAddr, Vec<u64>>,
}

impl Naive {
    fn floor(&self, now: u64) -> u64 {
        now.saturating_sub(self.find)
    }

    fn count(&self, addr: IpAddr, now: u64) -> usize {
        let floor = self.floor(now);
        self.times
            .get(&addr)
            .map_or(0, |v| v.iter().filter(|&&t| t >= floor).count())
    }

    fn observe(&mut self, addr: IpAddr, time: u64, now: u64) -> Option<usize> {
        let t = time.min(now);
        if t < self.floor(now) {
            return None;
        }
        self.times.entry(addr).or_default().push(t);
        let n = self.count(addr, now);
        if n >= self.k {
            self.times.remove(&addr);
            return Some(n);
        }
        None
    }

    fn sweep(&mut self, now: u64) {
        let floor = self.floor(now);
        self.times.retain(|_, v| v.iter().any(|&t| t >= floor));
    }

    /// Config reload: the fast detector keeps the latest `k` times per address.
    fn set_k(&mut self, k: usize) {
        for v in self.times.values_mut() {
            v.sort_unstable();
            let drop = v.len().saturating_sub(self.k);
            v.drain(..drop);
        }
        self.k = k;
    }
}

#[test]
fn matches_a_naive_implementation_on_random_sequences() {
    let pool: Vec<IpAddr> = [
        "192.0.2.1",
        "192.0.2.2",
        "198.51.100.3",
        "::ffff:198.51.100.4",
        "2001:db8::1",
        "2001:db8::2",
        "2001:db8:ffff::3",
        "10.0.0.1",
    ]
    .iter()
    .map(|s| normalize_addr(ip(s)))
    .collect();
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut fired = 0;
    for seq in 0..300 {
        let k = 1 + rng.below(10) as u32; // both inline and heap storage
        let find = rng.below(120);
        let mut fast = detector(k, find, 1_000);
        let mut naive = Naive {
            k: k as usize,
            find,
            times: HashMap::new(),
        };
        let mut now = T0 + rng.below(1_000);
        for step in 0..400 {
            // Mostly forward, sometimes a clock step backwards.
            now = if rng.below(50) == 0 {
                now - rng.below(40)
            } else {
                now + rng.below(8)
            };
            let addr = pool[rng.below(pool.len() as u64) as usize];
            match rng.below(100) {
                0..=3 => {
                    fast.sweep(from_unix_secs(now));
                    naive.sweep(now);
                }
                4..=5 => {
                    fast.forget(addr);
                    naive.times.remove(&addr);
                }
                6 => {
                    let k = 1 + rng.below(10) as u32;
                    fast.set_params(params(k, find, 1_000));
                    naive.set_k(k as usize);
                }
                _ => {
                    // Event times: mostly recent, some out of order or stale, a few future.
                    let time = if rng.below(20) == 0 {
                        now + rng.below(30)
                    } else {
                        now - rng.below(find + 30)
                    };
                    let got =
                        fast.observe(&obs_at(addr, from_unix_secs(time)), from_unix_secs(now));
                    let want = naive.observe(addr, time, now);
                    let ctx = format!("seq {seq} step {step} k {} find {find}", naive.k);
                    match (got, want) {
                        (None, None) => {}
                        (Some(f), Some(n)) => {
                            fired += 1;
                            assert_eq!(f.count as usize, n.min(naive.k), "{ctx}");
                            assert_eq!(f.time, from_unix_secs(time.min(now)), "{ctx}");
                        }
                        (got, want) => panic!("{ctx}: fast {got:?}, naive {want:?}"),
                    }
                }
            }
            let probe = pool[rng.below(pool.len() as u64) as usize];
            let want = naive.count(probe, now).min(naive.k) as u32;
            assert_eq!(
                fast.count(probe, from_unix_secs(now)),
                want,
                "seq {seq} step {step} count"
            );
            assert_eq!(
                fast.tracked(),
                naive.times.len(),
                "seq {seq} step {step} tracked"
            );
        }
    }
    assert!(
        fired > 1_000,
        "the random sequences barely fired ({fired}): a weak test"
    );
}

#[test]
fn heap_storage_never_holds_more_than_max_retry() {
    for k in [6usize, 7, 8, 9, 10, 20, 33, 1_000] {
        let mut times = Times::for_k(k);
        for t in 0..(2 * k as u32 + 5) {
            times.insert(t, k);
            let Times::Heap { buf, .. } = &times else {
                panic!("k {k} is above INLINE")
            };
            assert!(buf.len() <= k, "k {k}: capacity {}", buf.len());
            assert!(times.as_slice().is_sorted(), "k {k}");
        }
        assert_eq!(times.as_slice().len(), k);
        assert_eq!(times.newest(), Some(2 * k as u32 + 4));
    }
}
