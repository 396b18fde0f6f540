//! Specs for the prefix detector, driven by explicit `now` values (simulated time), plus a
//! comparison against a naive keep-every-event reference over random sequences.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

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

fn net(s: &str) -> IpNet {
    s.parse().expect("test network")
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

fn params(min: u32, window_secs: u64, max_tracked: usize) -> PrefixParams {
    PrefixParams {
        min_addresses: min,
        window: Duration::from_secs(window_secs),
        v4_len: 24,
        v6_len: 64,
        max_tracked,
    }
}

fn detector(min: u32, window_secs: u64, max_tracked: usize) -> PrefixDetector {
    PrefixDetector::new(Arc::from("sshd"), params(min, window_secs, max_tracked))
}

/// Feed `(second, address, weight)` events, each observed live (now == event time), and
/// return `(index, target)` of those that fired.
fn fired_at(d: &mut PrefixDetector, events: &[(u64, &str, f32)]) -> Vec<(usize, String)> {
    events
        .iter()
        .enumerate()
        .filter_map(|(i, &(s, a, w))| {
            d.observe(&obs_at(ip(a), at(s)), w, at(s))
                .map(|f| (i, f.target.to_string()))
        })
        .collect()
}

#[test]
fn fires_at_min_addresses_distinct_within_the_window() {
    struct Case {
        name: &'static str,
        min: u32,
        window: u64,
        events: &'static [(u64, &'static str, f32)],
        fires: &'static [(usize, &'static str)],
    }
    let cases = [
        Case {
            name: "three distinct addresses of one /24",
            min: 3,
            window: 600,
            events: &[
                (0, "203.0.113.1", 1.0),
                (10, "203.0.113.2", 1.0),
                (20, "203.0.113.250", 1.0),
            ],
            fires: &[(2, "203.0.113.0/24")],
        },
        Case {
            name: "one below never fires",
            min: 3,
            window: 600,
            events: &[(0, "203.0.113.1", 1.0), (10, "203.0.113.2", 1.0)],
            fires: &[],
        },
        Case {
            name: "one address repeating counts once",
            min: 3,
            window: 600,
            events: &[
                (0, "203.0.113.1", 1.0),
                (1, "203.0.113.1", 1.0),
                (2, "::ffff:203.0.113.1", 1.0),
                (3, "203.0.113.2", 1.0),
            ],
            fires: &[],
        },
        Case {
            name: "neighbouring /24s do not add up",
            min: 3,
            window: 600,
            events: &[
                (0, "203.0.112.1", 1.0),
                (1, "203.0.113.1", 1.0),
                (2, "203.0.114.1", 1.0),
                (3, "203.0.113.2", 1.0),
            ],
            fires: &[],
        },
        Case {
            name: "window edge is inclusive",
            min: 3,
            window: 600,
            events: &[
                (0, "203.0.113.1", 1.0),
                (300, "203.0.113.2", 1.0),
                (600, "203.0.113.3", 1.0),
            ],
            fires: &[(2, "203.0.113.0/24")],
        },
        Case {
            name: "one second too wide",
            min: 3,
            window: 600,
            events: &[
                (0, "203.0.113.1", 1.0),
                (300, "203.0.113.2", 1.0),
                (601, "203.0.113.3", 1.0),
            ],
            fires: &[],
        },
        Case {
            name: "a repeat refreshes an address's last-seen time",
            min: 3,
            window: 600,
            events: &[
                (0, "203.0.113.1", 1.0),
                (300, "203.0.113.2", 1.0),
                (500, "203.0.113.1", 1.0),
                (900, "203.0.113.3", 1.0),
            ],
            fires: &[(3, "203.0.113.0/24")],
        },
        Case {
            name: "weight 0 is ignored, any positive weight counts once",
            min: 3,
            window: 600,
            events: &[
                (0, "203.0.113.1", 0.0),
                (1, "203.0.113.2", -1.0),
                (2, "203.0.113.3", f32::NAN),
                (3, "203.0.113.4", 0.01),
                (4, "203.0.113.5", 5.0),
                (5, "203.0.113.1", 1.0),
            ],
            fires: &[(5, "203.0.113.0/24")],
        },
        Case {
            name: "IPv6 /64",
            min: 2,
            window: 600,
            events: &[
                (0, "2001:db8:0:1::1", 1.0),
                (1, "2001:db8:0:2::1", 1.0),
                (2, "2001:db8:0:1:ffff::9", 1.0),
            ],
            fires: &[(2, "2001:db8:0:1::/64")],
        },
        Case {
            name: "min_addresses below 2 acts as 2",
            min: 0,
            window: 600,
            events: &[(0, "198.51.100.1", 1.0), (1, "198.51.100.2", 1.0)],
            fires: &[(1, "198.51.100.0/24")],
        },
        Case {
            name: "fires once per wave, then counts afresh",
            min: 2,
            window: 600,
            events: &[
                (0, "198.51.100.1", 1.0),
                (1, "198.51.100.2", 1.0),
                (2, "198.51.100.3", 1.0),
                (3, "198.51.100.3", 1.0),
                (4, "198.51.100.4", 1.0),
            ],
            fires: &[(1, "198.51.100.0/24"), (4, "198.51.100.0/24")],
        },
        Case {
            name: "a large min_addresses spills to the heap",
            min: 12,
            window: 600,
            events: &[
                (0, "198.51.100.1", 1.0),
                (1, "198.51.100.2", 1.0),
                (2, "198.51.100.3", 1.0),
                (3, "198.51.100.4", 1.0),
                (4, "198.51.100.5", 1.0),
                (5, "198.51.100.6", 1.0),
                (6, "198.51.100.7", 1.0),
                (7, "198.51.100.8", 1.0),
                (8, "198.51.100.9", 1.0),
                (9, "198.51.100.10", 1.0),
                (10, "198.51.100.11", 1.0),
                (11, "198.51.100.12", 1.0),
            ],
            fires: &[(11, "198.51.100.0/24")],
        },
    ];
    for c in cases {
        let mut d = detector(c.min, c.window, 100);
        let want: Vec<(usize, String)> = c.fires.iter().map(|&(i, t)| (i, t.into())).collect();
        assert_eq!(fired_at(&mut d, c.events), want, "{}", c.name);
    }
}

#[test]
fn finding_names_target_jail_detector_count_and_time() {
    let mut d = detector(2, 600, 100);
    assert_eq!(
        d.observe(&obs_at(ip("203.0.113.9"), at(0)), 1.0, at(0)),
        None
    );
    // An event time in the future is clamped to `now`.
    let f = d
        .observe(&obs_at(ip("::ffff:203.0.113.10"), at(100)), 1.0, at(5))
        .expect("fires");
    assert_eq!(f.target, net("203.0.113.0/24"));
    assert_eq!(&*f.jail, "sshd");
    assert_eq!(f.detector, "prefix");
    assert_eq!(f.count, 2);
    assert_eq!(f.time, at(5));
}

#[test]
fn prefix_of_masks_with_the_configured_lengths() {
    struct Case {
        v4: u8,
        v6: u8,
        addr: &'static str,
        prefix: &'static str,
    }
    for c in [
        Case {
            v4: 24,
            v6: 64,
            addr: "203.0.113.77",
            prefix: "203.0.113.0/24",
        },
        Case {
            v4: 24,
            v6: 64,
            addr: "::ffff:203.0.113.77",
            prefix: "203.0.113.0/24",
        },
        Case {
            v4: 24,
            v6: 64,
            addr: "2001:db8:1:2:3:4:5:6",
            prefix: "2001:db8:1:2::/64",
        },
        Case {
            v4: 16,
            v6: 48,
            addr: "2001:db8:1:2:3:4:5:6",
            prefix: "2001:db8:1::/48",
        },
        Case {
            v4: 16,
            v6: 48,
            addr: "203.0.113.77",
            prefix: "203.0.0.0/16",
        },
        Case {
            v4: 40,
            v6: 200,
            addr: "203.0.113.77",
            prefix: "203.0.113.77/32",
        },
        Case {
            v4: 0,
            v6: 0,
            addr: "2001:db8::1",
            prefix: "::/0",
        },
    ] {
        let mut p = params(2, 600, 100);
        (p.v4_len, p.v6_len) = (c.v4, c.v6);
        let d = PrefixDetector::new(Arc::from("sshd"), p);
        assert_eq!(d.prefix_of(ip(c.addr)), net(c.prefix), "{}", c.addr);
    }
}

#[test]
fn ipv4_and_ipv6_prefixes_never_meet() {
    let mut p = params(2, 600, 100);
    (p.v4_len, p.v6_len) = (0, 0);
    let mut d = PrefixDetector::new(Arc::from("sshd"), p);
    assert_eq!(d.observe(&obs_at(ip("192.0.2.1"), at(0)), 1.0, at(0)), None);
    assert_eq!(
        d.observe(&obs_at(ip("2001:db8::1"), at(0)), 1.0, at(0)),
        None
    );
    assert_eq!(d.tracked(), 2);
    let f = d.observe(&obs_at(ip("10.0.0.1"), at(0)), 1.0, at(0));
    assert_eq!(f.map(|f| f.target), Some(net("0.0.0.0/0")));
}

#[test]
fn distinct_reports_the_window_count_for_explain() {
    let mut d = detector(5, 600, 100);
    for (s, a) in [
        (0, "203.0.113.1"),
        (100, "203.0.113.2"),
        (200, "203.0.113.3"),
    ] {
        d.observe(&obs_at(ip(a), at(s)), 1.0, at(s));
    }
    let p = d.prefix_of(ip("203.0.113.200"));
    assert_eq!(d.distinct(p, at(200)), 3);
    assert_eq!(d.distinct(p, at(600)), 3);
    assert_eq!(d.distinct(p, at(601)), 2);
    assert_eq!(d.distinct(p, at(800)), 1);
    assert_eq!(d.distinct(p, at(801)), 0);
    // Only the prefix as prefix_of gives it.
    assert_eq!(d.distinct(net("203.0.113.0/25"), at(200)), 0);
    assert_eq!(d.distinct(net("203.0.113.1/24"), at(200)), 0);
    assert_eq!(d.distinct(net("203.0.114.0/24"), at(200)), 0);
}

#[test]
fn observations_older_than_the_window_are_ignored() {
    let mut d = detector(2, 600, 100);
    let now = at(10_000);
    for back in [601, 5_000, 10_000] {
        let a = IpAddr::from([203, 0, 113, (back % 250) as u8]);
        assert_eq!(d.observe(&obs_at(a, at(10_000 - back)), 1.0, now), None);
    }
    assert_eq!(d.tracked(), 0);
    assert_eq!(
        d.observe(&obs_at(ip("203.0.113.1"), at(9_400)), 1.0, now),
        None
    );
    assert!(
        d.observe(&obs_at(ip("203.0.113.2"), now), 1.0, now)
            .is_some()
    );
}

#[test]
fn forget_removes_one_address_and_forget_prefix_the_prefix() {
    let mut d = detector(3, 600, 100);
    let ev = [(0, "203.0.113.1", 1.0), (1, "203.0.113.2", 1.0)];
    assert!(fired_at(&mut d, &ev).is_empty());
    d.forget(ip("203.0.113.1"));
    assert_eq!(d.distinct(net("203.0.113.0/24"), at(1)), 1);
    assert!(fired_at(&mut d, &[(2, "203.0.113.3", 1.0)]).is_empty());
    d.forget_prefix(ip("203.0.113.99"));
    assert_eq!(d.tracked(), 0);
    // Forgetting the last address drops the prefix; unknown ones are no-ops.
    fired_at(&mut d, &[(3, "2001:db8::1", 1.0)]);
    d.forget(ip("2001:db8::2"));
    assert_eq!(d.tracked(), 1);
    d.forget(ip("2001:db8::1"));
    assert_eq!(d.tracked(), 0);
}

#[test]
fn set_params_keeps_state_unless_the_lengths_change() {
    let mut d = detector(5, 600, 100);
    let ev = [
        (0, "203.0.113.1", 1.0),
        (1, "203.0.113.2", 1.0),
        (2, "203.0.113.3", 1.0),
    ];
    assert!(fired_at(&mut d, &ev).is_empty());
    d.set_params(params(4, 600, 100));
    assert_eq!(d.params().min_addresses, 4);
    assert_eq!(d.distinct(net("203.0.113.0/24"), at(2)), 3);
    d.set_params(params(2, 600, 100));
    assert_eq!(
        d.distinct(net("203.0.113.0/24"), at(2)),
        2,
        "latest two kept"
    );
    assert_eq!(fired_at(&mut d, &[(3, "203.0.113.1", 1.0)]).len(), 1);

    assert!(fired_at(&mut d, &[(4, "203.0.113.1", 1.0)]).is_empty());
    let mut p = params(2, 600, 100);
    p.v4_len = 16;
    d.set_params(p);
    assert_eq!(d.tracked(), 0, "new lengths: state dropped");
    assert_eq!(
        fired_at(&mut d, &[(5, "203.0.1.1", 1.0), (6, "203.0.2.1", 1.0)]),
        vec![(1, "203.0.0.0/16".to_string())]
    );
}

#[test]
fn cap_keeps_tracked_bounded_and_evicts_the_least_suspicious() {
    let mut d = detector(3, 600, 10);
    // Two distinct addresses, one short of firing, the oldest of all.
    assert!(
        fired_at(
            &mut d,
            &[(0, "198.51.100.1", 1.0), (0, "198.51.100.2", 1.0)]
        )
        .is_empty()
    );
    for i in 1..=9u8 {
        let s = u64::from(i);
        d.observe(&obs_at(IpAddr::from([10, i, 0, 1]), at(s)), 1.0, at(s));
    }
    assert_eq!(d.tracked(), 10);
    d.observe(&obs_at(ip("10.100.0.1"), at(20)), 1.0, at(20));
    assert_eq!((d.tracked(), d.evicted()), (10, 1));
    assert_eq!(
        d.distinct(net("10.1.0.0/24"), at(20)),
        0,
        "oldest single evicted"
    );
    assert_eq!(d.distinct(net("198.51.100.0/24"), at(20)), 2);
    for i in 0..1_000u32 {
        let s = 21 + u64::from(i) / 10;
        let a = IpAddr::from([100, (i >> 8) as u8, i as u8, 1]);
        d.observe(&obs_at(a, at(s)), 1.0, at(s));
        assert!(d.tracked() <= 10);
    }
    assert!(d.evicted() > 900);
    let f = d.observe(&obs_at(ip("198.51.100.3"), at(200)), 1.0, at(200));
    assert_eq!(f.map(|f| f.target), Some(net("198.51.100.0/24")));
}

#[test]
fn a_flood_of_a_million_distinct_prefixes_stays_under_the_cap() {
    let cap = 20_000;
    let mut d = detector(8, 3600, cap);
    let mut botnet_fired = 0;
    for i in 0..1_000_000u32 {
        let s = u64::from(i / 300); // 3,333 s: inside one window
        // A /24 botnet: two new addresses every 100,000 flood addresses, 20 in all (two are
        // enough to outrank the flood's one-address prefixes).
        if i % 100_000 == 0 {
            for j in 0..2 {
                let a = IpAddr::from([198, 51, 100, (i / 50_000 + j) as u8]);
                botnet_fired += usize::from(d.observe(&obs_at(a, at(s)), 1.0, at(s)).is_some());
            }
        }
        // The flood: every address in its own /64.
        let bits = (0x2001_0db8_u128 << 96) | (u128::from(i.wrapping_mul(0x9e37_79b9)) << 64) | 1;
        d.observe(&obs_at(IpAddr::from(bits.to_be_bytes()), at(s)), 1.0, at(s));
        assert!(d.tracked() <= cap);
    }
    assert!(d.evicted() >= 1_000_000 - cap as u64);
    assert_eq!(botnet_fired, 2, "at its 8th and 16th address");
    assert_eq!(d.table_bytes(), 32_768 * 41 + 16, "never doubled by churn");
}

#[test]
fn sweep_drops_only_what_can_no_longer_fire() {
    let mut d = detector(3, 600, 100);
    fired_at(&mut d, &[(0, "192.0.2.1", 1.0), (100, "192.0.2.2", 1.0)]);
    fired_at(
        &mut d,
        &[(0, "2001:db8::1", 1.0), (650, "2001:db8::2", 1.0)],
    );
    d.sweep(at(700));
    assert_eq!(d.tracked(), 2);
    d.sweep(at(701));
    assert_eq!(d.tracked(), 1);
    assert_eq!(d.distinct(net("2001:db8::/64"), at(701)), 1);
    assert_eq!(d.evicted(), 0);
    detector(3, 600, 100).sweep(at(0));
}

/// The memory figure: bytes of table per tracked prefix with one million prefixes tracked,
/// each with one or two addresses (inline; a prefix with three or more adds a boxed slice).
/// `cargo test --release --lib prefix::tests::memory -- --ignored --nocapture`
#[test]
#[ignore = "slow in debug builds; prints the memory figure"]
fn memory_per_prefix_at_one_million() {
    let n = 1_000_000u32;
    let mut d = detector(10, 3600, n as usize);
    let mut o = obs_at(ip("192.0.2.1"), at(0));
    for i in 0..n {
        let bits = (0x2001_0db8_u128 << 96) | (u128::from(i) << 64) | 1;
        o.addr = IpAddr::from(bits.to_be_bytes());
        d.observe(&o, 1.0, at(u64::from(i / 300)));
    }
    assert_eq!(d.tracked(), n as usize);
    let per = d.table_bytes() as f64 / f64::from(n);
    println!(
        "prefix: {} prefixes, table {} bytes = {per:.1} B/prefix",
        d.tracked(),
        d.table_bytes()
    );
    assert!(per < 100.0, "{per} bytes per prefix");
}

#[test]
fn slot_is_40_bytes() {
    assert_eq!(std::mem::size_of::<(Key, key::Recent)>(), 40);
}

/// A naive reference: every accepted (time, address) kept; a prefix's distinct count is the
/// number of its addresses with an accepted event in the window since the prefix last fired.
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
    let pool: Vec<IpAddr> = [
        "203.0.113.1",
        "203.0.113.2",
        "203.0.113.3",
        "203.0.113.4",
        "203.0.113.5",
        "::ffff:203.0.113.6",
        "198.51.100.1",
        "198.51.100.2",
        "2001:db8:0:1::1",
        "2001:db8:0:1::2",
        "2001:db8:0:1:8000::3",
        "2001:db8:0:2::1",
    ]
    .iter()
    .map(|s| ip(s))
    .collect();
    for seed in 1..=40u64 {
        let mut rng = Xorshift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let window = 10 + rng.below(1000);
        let min = 2 + rng.below(4) as u32;
        let mut d = detector(min, window, 100);
        let mut reference: Vec<(u64, IpAddr)> = Vec::new();
        let mut now = 0u64;
        for step in 0..400 {
            now += rng.below(window / 3 + 1);
            let a = pool[rng.below(pool.len() as u64) as usize];
            let p = d.prefix_of(a);
            let t = match rng.below(4) {
                0 => now.saturating_sub(rng.below(window + window / 2)),
                1 => now + rng.below(100),
                _ => now,
            };
            if rng.below(40) == 0 {
                d.forget(a);
                reference.retain(|e| normalize_addr(e.1) != normalize_addr(a));
                continue;
            }
            let w = if rng.below(6) == 0 { 0.0 } else { 1.0 };
            let got = d.observe(&obs_at(a, at(t)), w, at(now));
            let t = t.min(now);
            if w > 0.0 && t + window >= now {
                reference.push((t, a));
            }
            let distinct = |r: &[(u64, IpAddr)], p: IpNet, now: u64| -> u32 {
                let mut seen: Vec<IpAddr> = r
                    .iter()
                    .filter(|e| d.prefix_of(e.1) == p && e.0 + window >= now && e.0 <= now)
                    .map(|e| normalize_addr(e.1))
                    .collect();
                seen.sort_unstable();
                seen.dedup();
                seen.len() as u32
            };
            let n = distinct(&reference, p, now);
            let want = (w > 0.0 && n >= min).then_some(n);
            assert_eq!(got.map(|f| f.count), want, "seed {seed} step {step}");
            if want.is_some() {
                reference.retain(|e| d.prefix_of(e.1) != p);
            }
            for &b in &pool {
                let q = d.prefix_of(b);
                assert_eq!(
                    d.distinct(q, at(now)),
                    distinct(&reference, q, now),
                    "seed {seed} step {step} {q}"
                );
            }
        }
    }
}
