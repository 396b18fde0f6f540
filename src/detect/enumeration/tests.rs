//! Specs for the enumeration detector, driven by explicit `now` values (simulated time), plus a
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

fn obs_at(addr: IpAddr, user: Option<&str>, time: SystemTime) -> Observation {
    Observation {
        time,
        addr,
        user: user.map(str::to_string),
        rule: Arc::from("sshd.invalid-user"),
        source: Arc::from("auth"),
    }
}

fn params(min: u32, window_secs: u64, max_tracked: usize) -> EnumerationParams {
    EnumerationParams {
        min_users: min,
        window: Duration::from_secs(window_secs),
        max_tracked,
        by_prefix: None,
    }
}

fn detector(min: u32, window_secs: u64, max_tracked: usize) -> EnumerationDetector {
    EnumerationDetector::new(Arc::from("sshd"), params(min, window_secs, max_tracked))
}

/// One event: second after T0, address, user name, weight.
type Ev = (u64, &'static str, Option<&'static str>, f32);

/// Feed events, each observed live (now == event time), and return `(index, target)` of those
/// that fired.
fn fired_at(d: &mut EnumerationDetector, events: &[Ev]) -> Vec<(usize, String)> {
    events
        .iter()
        .enumerate()
        .filter_map(|(i, &(s, a, u, w))| {
            d.observe(&obs_at(ip(a), u, at(s)), w, at(s))
                .map(|f| (i, f.target.to_string()))
        })
        .collect()
}

const A: &str = "203.0.113.7";

#[test]
fn fires_at_min_users_distinct_names_within_the_window() {
    struct Case {
        name: &'static str,
        min: u32,
        window: u64,
        events: &'static [Ev],
        fires: &'static [(usize, &'static str)],
    }
    let cases = [
        Case {
            name: "three distinct names",
            min: 3,
            window: 600,
            events: &[
                (0, A, Some("admin"), 1.0),
                (1, A, Some("oracle"), 1.0),
                (2, A, Some("postgres"), 1.0),
            ],
            fires: &[(2, "203.0.113.7/32")],
        },
        Case {
            name: "one below never fires",
            min: 3,
            window: 600,
            events: &[(0, A, Some("admin"), 1.0), (1, A, Some("oracle"), 1.0)],
            fires: &[],
        },
        Case {
            name: "a user retrying their own name (and one typo) never fires",
            min: 3,
            window: 600,
            events: &[
                (0, A, Some("alice"), 1.0),
                (10, A, Some("alcie"), 1.0),
                (20, A, Some("alice"), 1.0),
                (30, A, Some("alice"), 1.0),
                (40, A, Some("alice"), 1.0),
            ],
            fires: &[],
        },
        Case {
            name: "names are compared as sent",
            min: 3,
            window: 600,
            events: &[
                (0, A, Some("root"), 1.0),
                (1, A, Some("Root"), 1.0),
                (2, A, Some("root "), 1.0),
            ],
            fires: &[(2, "203.0.113.7/32")],
        },
        Case {
            name: "no user name, weight 0: ignored",
            min: 2,
            window: 600,
            events: &[
                (0, A, Some("a"), 1.0),
                (1, A, None, 1.0),
                (2, A, Some("b"), 0.0),
                (3, A, Some("c"), f32::NAN),
                (4, A, Some("d"), -2.0),
                (5, A, Some("e"), 0.5),
            ],
            fires: &[(5, "203.0.113.7/32")],
        },
        Case {
            name: "other addresses do not add up without by_prefix",
            min: 2,
            window: 600,
            events: &[
                (0, "203.0.113.1", Some("a"), 1.0),
                (1, "203.0.113.2", Some("b"), 1.0),
            ],
            fires: &[],
        },
        Case {
            name: "window edge is inclusive",
            min: 3,
            window: 600,
            events: &[
                (0, A, Some("a"), 1.0),
                (300, A, Some("b"), 1.0),
                (600, A, Some("c"), 1.0),
            ],
            fires: &[(2, "203.0.113.7/32")],
        },
        Case {
            name: "one second too wide",
            min: 3,
            window: 600,
            events: &[
                (0, A, Some("a"), 1.0),
                (300, A, Some("b"), 1.0),
                (601, A, Some("c"), 1.0),
            ],
            fires: &[],
        },
        Case {
            name: "a repeated name refreshes its last-seen time",
            min: 3,
            window: 600,
            events: &[
                (0, A, Some("a"), 1.0),
                (300, A, Some("b"), 1.0),
                (500, A, Some("a"), 1.0),
                (900, A, Some("c"), 1.0),
            ],
            fires: &[(3, "203.0.113.7/32")],
        },
        Case {
            name: "IPv6 and v4-mapped sources",
            min: 2,
            window: 600,
            events: &[
                (0, "2001:db8::1", Some("a"), 1.0),
                (1, "::ffff:192.0.2.1", Some("a"), 1.0),
                (2, "192.0.2.1", Some("b"), 1.0),
                (3, "2001:db8::1", Some("b"), 1.0),
            ],
            fires: &[(2, "192.0.2.1/32"), (3, "2001:db8::1/128")],
        },
        Case {
            name: "min_users below 2 acts as 2; fires once per sweep of names",
            min: 1,
            window: 600,
            events: &[
                (0, A, Some("a"), 1.0),
                (1, A, Some("b"), 1.0),
                (2, A, Some("c"), 1.0),
                (3, A, Some("c"), 1.0),
                (4, A, Some("d"), 1.0),
            ],
            fires: &[(1, "203.0.113.7/32"), (4, "203.0.113.7/32")],
        },
    ];
    for c in cases {
        let mut d = detector(c.min, c.window, 100);
        let want: Vec<(usize, String)> = c.fires.iter().map(|&(i, t)| (i, t.into())).collect();
        assert_eq!(fired_at(&mut d, c.events), want, "{}", c.name);
    }
}

#[test]
fn by_prefix_counts_names_across_a_prefix() {
    let mut p = params(3, 600, 100);
    p.by_prefix = Some((24, 64));
    let mut d = EnumerationDetector::new(Arc::from("sshd"), p);
    assert_eq!(d.source_of(ip("203.0.113.9")), net("203.0.113.0/24"));
    assert_eq!(d.source_of(ip("2001:db8:0:1::9")), net("2001:db8:0:1::/64"));
    let ev: &[Ev] = &[
        (0, "203.0.113.1", Some("admin"), 1.0),
        (1, "203.0.113.2", Some("admin"), 1.0),
        (2, "203.0.114.3", Some("test"), 1.0),
        (3, "203.0.113.4", Some("test"), 1.0),
        (4, "203.0.113.5", Some("guest"), 1.0),
    ];
    assert_eq!(
        fired_at(&mut d, ev),
        vec![(4, "203.0.113.0/24".to_string())]
    );
    // A successful login from inside the prefix clears the prefix.
    fired_at(&mut d, &[(5, "203.0.113.1", Some("a"), 1.0)]);
    assert_eq!(d.distinct_users(ip("203.0.113.200"), at(5)), 1);
    d.forget(ip("203.0.113.200"));
    assert_eq!(d.distinct_users(ip("203.0.113.1"), at(5)), 0);
    // Switching back to per-address sources drops state.
    assert_eq!(d.tracked(), 1, "203.0.114.0/24");
    d.set_params(params(3, 600, 100));
    assert_eq!(d.tracked(), 0);
    assert_eq!(d.source_of(ip("203.0.113.9")), net("203.0.113.9/32"));
}

#[test]
fn finding_names_target_jail_detector_count_and_time() {
    let mut d = detector(2, 600, 100);
    assert_eq!(
        d.observe(&obs_at(ip(A), Some("x"), at(0)), 1.0, at(0)),
        None
    );
    let f = d
        .observe(&obs_at(ip(A), Some("y"), at(100)), 2.0, at(5))
        .expect("fires");
    assert_eq!(f.target, net("203.0.113.7/32"));
    assert_eq!(&*f.jail, "sshd");
    assert_eq!(f.detector, "enumeration");
    assert_eq!(f.count, 2);
    assert_eq!(f.time, at(5));
}

#[test]
fn distinct_users_reports_the_window_count_for_explain() {
    let mut d = detector(5, 600, 100);
    fired_at(
        &mut d,
        &[
            (0, A, Some("a"), 1.0),
            (100, A, Some("b"), 1.0),
            (200, A, Some("c"), 1.0),
        ],
    );
    let a = ip(A);
    assert_eq!(d.distinct_users(a, at(200)), 3);
    assert_eq!(d.distinct_users(a, at(600)), 3);
    assert_eq!(d.distinct_users(a, at(601)), 2);
    assert_eq!(d.distinct_users(a, at(801)), 0);
    assert_eq!(d.distinct_users(ip("::ffff:203.0.113.7"), at(200)), 3);
    assert_eq!(d.distinct_users(ip("203.0.113.8"), at(200)), 0);
    assert_eq!(detector(5, 600, 100).distinct_users(a, at(0)), 0);
}

#[test]
fn observations_older_than_the_window_are_ignored() {
    let mut d = detector(2, 600, 100);
    let now = at(10_000);
    for (back, u) in [(601, "a"), (5_000, "b"), (10_000, "c")] {
        assert_eq!(
            d.observe(&obs_at(ip(A), Some(u), at(10_000 - back)), 1.0, now),
            None
        );
    }
    assert_eq!(d.tracked(), 0);
    assert_eq!(
        d.observe(&obs_at(ip(A), Some("d"), at(9_400)), 1.0, now),
        None
    );
    assert!(
        d.observe(&obs_at(ip(A), Some("e"), now), 1.0, now)
            .is_some()
    );
}

#[test]
fn forget_clears_the_address() {
    let mut d = detector(3, 600, 100);
    fired_at(&mut d, &[(0, A, Some("a"), 1.0), (1, A, Some("b"), 1.0)]);
    d.forget(ip(A));
    assert_eq!(d.tracked(), 0);
    assert!(fired_at(&mut d, &[(2, A, Some("c"), 1.0), (3, A, Some("d"), 1.0)]).is_empty());
    d.forget(ip("2001:db8::5"));
    assert_eq!(d.tracked(), 1);
}

#[test]
fn set_params_keeps_state() {
    let mut d = detector(5, 600, 100);
    let ev: &[Ev] = &[
        (0, A, Some("a"), 1.0),
        (1, A, Some("b"), 1.0),
        (2, A, Some("c"), 1.0),
    ];
    assert!(fired_at(&mut d, ev).is_empty());
    d.set_params(params(6, 600, 100));
    assert_eq!(d.params().min_users, 6);
    assert_eq!(d.distinct_users(ip(A), at(2)), 3);
    d.set_params(params(2, 600, 100));
    assert_eq!(d.distinct_users(ip(A), at(2)), 2, "latest two kept");
    assert_eq!(fired_at(&mut d, &[(3, A, Some("a"), 1.0)]).len(), 1);
}

#[test]
fn cap_keeps_tracked_bounded_and_evicts_the_least_suspicious() {
    let mut d = detector(3, 600, 10);
    let near = "198.51.100.1";
    fired_at(
        &mut d,
        &[(0, near, Some("a"), 1.0), (0, near, Some("b"), 1.0)],
    );
    for i in 1..=9u8 {
        let s = u64::from(i);
        d.observe(
            &obs_at(IpAddr::from([192, 0, 2, i]), Some("root"), at(s)),
            1.0,
            at(s),
        );
    }
    d.observe(
        &obs_at(ip("192.0.2.100"), Some("root"), at(20)),
        1.0,
        at(20),
    );
    assert_eq!((d.tracked(), d.evicted()), (10, 1));
    assert_eq!(d.distinct_users(ip("192.0.2.1"), at(20)), 0);
    assert_eq!(d.distinct_users(ip(near), at(20)), 2);
    for i in 0..1_000u32 {
        let s = 21 + u64::from(i) / 10;
        let a = IpAddr::from([100, 64, (i >> 8) as u8, i as u8]);
        d.observe(&obs_at(a, Some("root"), at(s)), 1.0, at(s));
        assert!(d.tracked() <= 10);
    }
    assert!(d.evicted() > 900);
    assert!(fired_at(&mut d, &[(200, near, Some("c"), 1.0)]).len() == 1);
}

#[test]
fn a_flood_of_a_million_distinct_sources_and_names_stays_under_the_cap() {
    let cap = 20_000;
    let mut d = detector(50, 3600, cap);
    let mut name = String::new();
    for i in 0..1_000_000u32 {
        let s = u64::from(i / 300);
        let a = IpAddr::from(i.wrapping_mul(2_654_435_761).to_be_bytes());
        // Long, distinct, attacker-chosen names: nothing of them is stored.
        name.clear();
        name.push_str(&"x".repeat(64));
        name.push_str(&i.to_string());
        d.observe(&obs_at(a, Some(&name), at(s)), 1.0, at(s));
        assert!(d.tracked() <= cap);
    }
    assert!(d.evicted() >= 1_000_000 - cap as u64);
    assert_eq!(d.table_bytes(), 32_768 * 41 + 16, "never doubled by churn");
    // One source sending a million distinct names: at most min_users kept, fires each time.
    let mut d = detector(100, 3600, cap);
    for i in 0..1_000_000u32 {
        let s = u64::from(i / 300);
        if d.observe(&obs_at(ip(A), Some(&i.to_string()), at(s)), 1.0, at(s))
            .is_some()
        {
            assert_eq!(d.tracked(), 0);
        }
        assert!(d.distinct_users(ip(A), at(s)) < 100);
    }
}

#[test]
fn sweep_drops_only_what_can_no_longer_fire() {
    let mut d = detector(3, 600, 100);
    fired_at(&mut d, &[(0, A, Some("a"), 1.0), (100, A, Some("b"), 1.0)]);
    fired_at(
        &mut d,
        &[
            (0, "2001:db8::1", Some("a"), 1.0),
            (650, "2001:db8::1", Some("b"), 1.0),
        ],
    );
    d.sweep(at(700));
    assert_eq!(d.tracked(), 2);
    d.sweep(at(701));
    assert_eq!(d.tracked(), 1);
    assert_eq!(d.evicted(), 0);
    detector(3, 600, 100).sweep(at(0));
}

/// A naive reference: every accepted (time, address, name) kept; a source's distinct count is
/// the number of names it tried in the window since it last fired or was forgotten.
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
    let addrs: Vec<IpAddr> = ["192.0.2.1", "::ffff:192.0.2.1", "192.0.2.2", "2001:db8::1"]
        .iter()
        .map(|s| ip(s))
        .collect();
    let names = [
        "root", "admin", "test", "oracle", "ubuntu", "pi", "git", "guest", "user", "ftp",
    ];
    for seed in 1..=40u64 {
        let mut rng = Xorshift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let window = 10 + rng.below(1000);
        let min = 2 + rng.below(5) as u32;
        let mut d = detector(min, window, 100);
        let mut reference: Vec<(u64, IpAddr, &str)> = Vec::new();
        let mut now = 0u64;
        for step in 0..400 {
            now += rng.below(window / 3 + 1);
            let a = normalize_addr(addrs[rng.below(addrs.len() as u64) as usize]);
            let t = match rng.below(4) {
                0 => now.saturating_sub(rng.below(window + window / 2)),
                1 => now + rng.below(100),
                _ => now,
            };
            if rng.below(40) == 0 {
                d.forget(a);
                reference.retain(|e| e.1 != a);
                continue;
            }
            let user = (rng.below(8) != 0).then(|| names[rng.below(names.len() as u64) as usize]);
            let got = d.observe(&obs_at(a, user, at(t)), 1.0, at(now));
            let t = t.min(now);
            if let Some(u) = user.filter(|_| t + window >= now) {
                reference.push((t, a, u));
            }
            let distinct = |r: &[(u64, IpAddr, &str)], a: IpAddr, now: u64| -> u32 {
                let mut seen: Vec<&str> = r
                    .iter()
                    .filter(|e| e.1 == a && e.0 + window >= now)
                    .map(|e| e.2)
                    .collect();
                seen.sort_unstable();
                seen.dedup();
                seen.len() as u32
            };
            let n = distinct(&reference, a, now);
            let want = (user.is_some() && n >= min).then_some(n);
            assert_eq!(got.map(|f| f.count), want, "seed {seed} step {step}");
            if want.is_some() {
                reference.retain(|e| e.1 != a);
            }
            for &b in &addrs {
                let b = normalize_addr(b);
                assert_eq!(
                    d.distinct_users(b, at(now)),
                    distinct(&reference, b, now),
                    "seed {seed} step {step} {b}"
                );
            }
        }
    }
}
