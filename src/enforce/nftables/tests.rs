//! Tests for the nftables backend: pure helpers first, then real nftables, each test in its
//! own private network namespace (the host's ruleset is never touched).

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;

use nix::sched::{CloneFlags, unshare};
use serde_json::json;

use super::*;
use crate::decide::allowlist::{Allowlist, Permit};

const NFT: &str = "/usr/sbin/nft";
const T: &str = "ravelin";

// ---------- pure helpers ----------

fn cidrs(fam: Family, lo: &str, hi: &str) -> Vec<String> {
    let (lo, hi) = (parse_addr(lo, fam).unwrap(), parse_addr(hi, fam).unwrap());
    range_to_cidrs(fam, lo, hi)
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn ranges_become_the_fewest_exact_cidrs() {
    assert_eq!(cidrs(Family::V4, "10.0.0.0", "10.0.0.255"), ["10.0.0.0/24"]);
    assert_eq!(cidrs(Family::V4, "10.0.0.1", "10.0.0.1"), ["10.0.0.1/32"]);
    assert_eq!(
        cidrs(Family::V4, "10.0.0.1", "10.0.0.2"),
        ["10.0.0.1/32", "10.0.0.2/32"]
    );
    assert_eq!(
        cidrs(Family::V4, "10.0.0.5", "10.0.0.9"),
        ["10.0.0.5/32", "10.0.0.6/31", "10.0.0.8/31"]
    );
    assert_eq!(
        cidrs(Family::V4, "0.0.0.0", "255.255.255.255"),
        ["0.0.0.0/0"]
    );
    assert_eq!(
        cidrs(Family::V6, "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        ["::/0"]
    );
    assert_eq!(
        cidrs(Family::V6, "2001:db8::", "2001:db8::ffff:ffff:ffff:ffff"),
        ["2001:db8::/64"]
    );
    assert_eq!(range_text(Family::V4, 10, 10), "0.0.0.10");
    assert_eq!(
        range_text(
            Family::V6,
            parse_addr("2001:db8::", Family::V6).unwrap(),
            parse_addr("2001:db8::3", Family::V6).unwrap()
        ),
        "2001:db8::/126"
    );
    assert_eq!(range_text(Family::V4, 5, 9), "0.0.0.5-0.0.0.9");
}

#[test]
fn every_json_element_form_parses() {
    let v = json!({"nftables": [
        {"metainfo": {"version": "1.0.6"}},
        {"set": {"name": "ban4", "elem": [
            "10.0.0.1",
            {"prefix": {"addr": "10.1.0.0", "len": 24}},
            {"range": ["10.2.0.5", "10.2.0.9"]},
            {"elem": {"val": "10.3.0.1", "timeout": 600, "expires": 599}},
            {"elem": {"val": {"prefix": {"addr": "10.4.0.0", "len": 16}}, "timeout": 60}},
            {"elem": {"val": {"range": ["10.5.0.0", "10.5.0.255"]}, "timeout": 9, "expires": 8}}
        ]}}
    ]});
    let els = set_elements(&v, "ban4", Family::V4).unwrap();
    let got: Vec<(Vec<String>, Option<u64>)> = els
        .iter()
        .map(|e| {
            let c = range_to_cidrs(Family::V4, e.lo, e.hi)
                .iter()
                .map(ToString::to_string)
                .collect();
            (c, e.lasts.map(|d| d.as_secs()))
        })
        .collect();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        got,
        vec![
            (s(&["10.0.0.1/32"]), None),
            (s(&["10.1.0.0/24"]), None),
            (s(&["10.2.0.5/32", "10.2.0.6/31", "10.2.0.8/31"]), None),
            (s(&["10.3.0.1/32"]), Some(599)),
            (s(&["10.4.0.0/16"]), Some(60)),
            (s(&["10.5.0.0/24"]), Some(8)),
        ]
    );
    assert!(
        set_elements(&v, "ban6", Family::V6).is_err(),
        "a missing set is an error"
    );
    let bad = json!({"nftables": [{"set": {"name": "ban4", "elem": ["2001:db8::1"]}}]});
    assert!(
        set_elements(&bad, "ban4", Family::V4).is_err(),
        "a v6 value in a v4 set is an error"
    );
    let empty = json!({"nftables": [{"set": {"name": "ban4"}}]});
    assert_eq!(set_elements(&empty, "ban4", Family::V4).unwrap(), vec![]);
}

#[test]
fn timeouts_are_whole_seconds_rounded_up_and_clamped() {
    assert_eq!(timeout_suffix(None), "");
    assert_eq!(
        timeout_suffix(Some(Duration::from_secs(600))),
        " timeout 600s"
    );
    assert_eq!(
        timeout_suffix(Some(Duration::from_millis(1500))),
        " timeout 2s"
    );
    assert_eq!(timeout_suffix(Some(Duration::ZERO)), " timeout 1s");
    assert_eq!(
        timeout_suffix(Some(Duration::MAX)),
        format!(" timeout {MAX_TIMEOUT_S}s")
    );
}

#[test]
fn table_names_are_validated() {
    assert!(valid_table("ravelin"));
    assert!(valid_table("r_2"));
    for bad in ["", "2r", "r;flush ruleset", "r x", "r-1", &"r".repeat(33)] {
        assert!(!valid_table(bad), "{bad:?}");
    }
    let mut e = NftEnforcer::new(NFT.into(), "bad name".into());
    assert!(matches!(e.setup(), Err(EnforceError::BadTable { .. })));
    assert!(matches!(e.list(), Err(EnforceError::BadTable { .. })));
}

fn permit(s: &str) -> Permit {
    Allowlist::new(&[], &[]).permit(s.parse().unwrap()).unwrap()
}

fn add(p: &Permit, secs: Option<u64>) -> Change<'_> {
    Change::Add {
        permit: p,
        timeout: secs.map(Duration::from_secs),
    }
}

fn remove(s: &str) -> Change<'static> {
    Change::Remove {
        target: s.parse().unwrap(),
    }
}

#[test]
fn last_change_per_address_wins_and_prefixes_keep_order() {
    let a = permit("203.0.113.1/32");
    let n = permit("203.0.113.0/24");
    let changes = [
        add(&a, Some(5)),
        remove("203.0.113.1/32"),
        add(&n, Some(9)),
        remove("203.0.113.0/24"),
        add(&a, None),
    ];
    let (hosts, nets) = split_changes(&changes);
    assert_eq!(hosts, vec![(a.target(), HostOp::Add(None))]);
    assert_eq!(
        nets,
        vec![
            (n.target(), NetOp::Add(Some(Duration::from_secs(9)))),
            (n.target(), NetOp::Remove)
        ]
    );
}

fn kernel(fam: Family, items: &[(&str, Option<u64>)]) -> Vec<RangeElem> {
    items
        .iter()
        .map(|(net, secs)| {
            let (lo, hi) = net_range(&net.parse().unwrap());
            let _ = fam;
            RangeElem {
                lo,
                hi,
                lasts: secs.map(Duration::from_secs),
            }
        })
        .collect()
}

fn plan(k: &[(&str, Option<u64>)], ops: &[(&str, Option<Option<u64>>)]) -> PrefixPlan {
    let changes: Vec<(IpNet, NetOp)> = ops
        .iter()
        .map(|(n, op)| {
            let op = match op {
                Some(t) => NetOp::Add(t.map(Duration::from_secs)),
                None => NetOp::Remove,
            };
            (n.parse().unwrap(), op)
        })
        .collect();
    resolve_prefixes(Family::V4, kernel(Family::V4, k), &changes)
}

fn adds(v: &[(&str, Option<u64>)]) -> Vec<(String, Option<Duration>)> {
    v.iter()
        .map(|(s, t)| (s.to_string(), t.map(Duration::from_secs)))
        .collect()
}

#[test]
fn prefix_overlaps_resolve_as_documented() {
    // new, no overlap
    let p = plan(&[], &[("10.0.0.0/24", Some(Some(60)))]);
    assert_eq!(
        p,
        PrefixPlan {
            deletes: vec![],
            adds: adds(&[("10.0.0.0/24", Some(60))])
        }
    );
    // equal: refreshed, even to a shorter time
    let p = plan(
        &[("10.0.0.0/24", Some(600))],
        &[("10.0.0.0/24", Some(Some(60)))],
    );
    assert_eq!(p.deletes, ["10.0.0.0/24"]);
    assert_eq!(p.adds, adds(&[("10.0.0.0/24", Some(60))]));
    // inside a wider, longer ban: skipped
    let p = plan(&[("10.0.0.0/16", None)], &[("10.0.1.0/24", Some(Some(60)))]);
    assert_eq!(p, PrefixPlan::default());
    // inside a wider, shorter ban: the wider one is kept and lasts as long as asked
    let p = plan(
        &[("10.0.0.0/16", Some(30))],
        &[("10.0.1.0/24", Some(Some(60)))],
    );
    assert_eq!(p.deletes, ["10.0.0.0/16"]);
    assert_eq!(p.adds, adds(&[("10.0.0.0/16", Some(60))]));
    // covering narrower bans: merged, lasting as long as the longest
    let p = plan(
        &[
            ("10.0.1.0/24", Some(900)),
            ("10.0.2.0/24", None),
            ("10.9.0.0/24", Some(5)),
        ],
        &[("10.0.0.0/16", Some(Some(60)))],
    );
    let mut d = p.deletes.clone();
    d.sort();
    assert_eq!(d, ["10.0.1.0/24", "10.0.2.0/24"]);
    assert_eq!(p.adds, adds(&[("10.0.0.0/16", None)]));
    // a foreign range partly overlapping: union range
    let mut k = kernel(Family::V4, &[]);
    k.push(RangeElem {
        lo: parse_addr("10.0.0.200", Family::V4).unwrap(),
        hi: parse_addr("10.0.1.5", Family::V4).unwrap(),
        lasts: Some(Duration::from_secs(10)),
    });
    let p = resolve_prefixes(
        Family::V4,
        k,
        &[(
            "10.0.0.0/24".parse().unwrap(),
            NetOp::Add(Some(Duration::from_secs(20))),
        )],
    );
    assert_eq!(p.deletes, ["10.0.0.200-10.0.1.5"]);
    assert_eq!(p.adds, adds(&[("10.0.0.0-10.0.1.5", Some(20))]));
    // removes: exact only; absent or narrower-than-element is a no-op
    let p = plan(
        &[("10.0.0.0/24", Some(60)), ("10.1.0.0/16", Some(60))],
        &[
            ("10.0.0.0/24", None),
            ("10.2.0.0/24", None),
            ("10.1.5.0/24", None),
        ],
    );
    assert_eq!(
        p,
        PrefixPlan {
            deletes: vec!["10.0.0.0/24".into()],
            adds: vec![]
        }
    );
    // within one batch: add then remove leaves nothing to write
    let p = plan(
        &[],
        &[("10.0.0.0/24", Some(Some(60))), ("10.0.0.0/24", None)],
    );
    assert_eq!(p, PrefixPlan::default());
    // within one batch: overlapping adds merge
    let p = plan(
        &[],
        &[
            ("10.0.1.0/24", Some(Some(60))),
            ("10.0.0.0/16", Some(Some(30))),
        ],
    );
    assert_eq!(p.adds, adds(&[("10.0.0.0/16", Some(60))]));
}

#[test]
fn missing_nft_names_the_fix() {
    let err = probe_nft(Path::new("/nonexistent/nft")).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, EnforceError::Unavailable { .. }), "{err:?}");
    assert!(
        msg.contains("apt-get install nftables") && msg.contains("backend = \"log\""),
        "{msg}"
    );
    let mut e = NftEnforcer::new("/nonexistent/nft".into(), T.into());
    assert!(matches!(e.setup(), Err(EnforceError::Unavailable { .. })));
}

#[test]
fn failures_carry_bounded_stderr() {
    let f = NftFailure {
        status: "exit status: 1".into(),
        stderr: "x".repeat(10_000),
    };
    let msg = f.into_error("apply 1 changes".into(), T).to_string();
    assert!(msg.len() < STDERR_CAP + 400, "{}", msg.len());
    assert!(
        msg.contains("more bytes") && msg.contains("nft list table inet ravelin"),
        "{msg}"
    );
    let f = NftFailure {
        status: "exit status: 1".into(),
        stderr: "Error: Operation not permitted".into(),
    };
    assert!(matches!(
        f.into_error("x".into(), T),
        EnforceError::NotPermitted { .. }
    ));
}

// ---------- real nftables, one private network namespace per test ----------

/// Move this test's thread into a fresh network namespace (nft children inherit it).
fn private_netns() -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to make a private network namespace");
        return false;
    }
    if !Path::new(NFT).exists() {
        eprintln!("skipped: {NFT} is missing (apt-get install nftables)");
        return false;
    }
    if let Err(e) = unshare(CloneFlags::CLONE_NEWNET) {
        eprintln!("skipped: unshare(CLONE_NEWNET) failed: {e}");
        return false;
    }
    true
}

fn ready() -> NftEnforcer {
    let mut e = NftEnforcer::new(NFT.into(), T.into());
    e.setup().unwrap();
    e
}

fn raw(args: &[&str]) -> Value {
    let out = Command::new(NFT).arg("-j").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "nft {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn raw_script(script: &str) {
    run_nft(Path::new(NFT), &["-f", "-"], Some(script))
        .unwrap()
        .unwrap();
}

/// `set` as CIDR strings with remaining seconds, straight from `nft -j list set`.
fn raw_set(set: &str) -> Vec<(String, Option<u64>)> {
    let fam = if set.starts_with("ban6") {
        Family::V6
    } else {
        Family::V4
    };
    let mut out: Vec<(String, Option<u64>)> =
        set_elements(&raw(&["list", "set", "inet", T, set]), set, fam)
            .unwrap()
            .into_iter()
            .flat_map(|e| {
                range_to_cidrs(fam, e.lo, e.hi)
                    .into_iter()
                    .map(move |c| (c.to_string(), e.lasts.map(|d| d.as_secs())))
            })
            .collect();
    out.sort();
    out
}

fn listed(e: &mut NftEnforcer, target: &str) -> Option<Option<u64>> {
    let t: IpNet = target.parse().unwrap();
    e.list()
        .unwrap()
        .into_iter()
        .find(|k| k.target == t)
        .map(|k| k.expires_in.map(|d| d.as_secs()))
}

#[test]
fn setup_creates_the_layout_and_twice_keeps_bans() {
    if !private_netns() {
        return;
    }
    probe_nft(Path::new(NFT)).unwrap();
    let mut e = ready();
    let v = raw(&["-t", "list", "table", "inet", T]);
    assert!(
        missing_parts(&v, T).is_empty(),
        "{:?}",
        missing_parts(&v, T)
    );
    assert_eq!(missing_parts(&v, "other"), ["table inet other"]);
    let items = v["nftables"].as_array().unwrap();
    let rules = items.iter().filter(|i| i.get("rule").is_some()).count();
    assert_eq!(rules, 8, "4 drop rules in each of input and forward");
    for chain in CHAINS {
        let c = items
            .iter()
            .find_map(|i| i.get("chain").filter(|c| c["name"] == chain))
            .unwrap();
        assert_eq!(
            (c["hook"].as_str(), c["prio"].as_i64()),
            (Some(chain), Some(-200))
        );
    }
    let sets: Vec<(String, Value)> = items
        .iter()
        .filter_map(|i| i.get("set"))
        .map(|s| (s["name"].as_str().unwrap().to_string(), s["flags"].clone()))
        .collect();
    assert!(
        sets.contains(&("ban4net".into(), json!(["interval", "timeout"]))),
        "{sets:?}"
    );
    assert!(
        sets.contains(&("ban6".into(), json!(["timeout"]))),
        "{sets:?}"
    );
    assert!(
        !sets.iter().any(|(n, _)| n == PROBE_SET),
        "probe set cleaned up"
    );

    let (a, n) = (permit("203.0.113.7/32"), permit("2001:db8:5::/64"));
    e.apply(&[add(&a, Some(600)), add(&n, None)]).unwrap();
    let mut again = ready();
    again.verify().unwrap();
    assert_eq!(raw_set("ban4").len(), 1);
    assert_eq!(raw_set("ban6net"), vec![("2001:db8:5::/64".into(), None)]);
    assert_eq!(again.list().unwrap().len(), 2);
}

#[test]
fn adds_every_kind_and_lists_remaining_timeouts() {
    if !private_netns() {
        return;
    }
    let mut e = ready();
    let ps = [
        "198.51.100.7/32",
        "2001:db8::7/128",
        "198.51.100.0/24",
        "2001:db8:1::/64",
        "192.0.2.9/32",
    ];
    let ps: Vec<Permit> = ps.iter().map(|s| permit(s)).collect();
    e.apply(&[
        add(&ps[0], Some(600)),
        add(&ps[1], Some(700)),
        add(&ps[2], Some(800)),
        add(&ps[3], Some(900)),
        add(&ps[4], None),
    ])
    .unwrap();
    assert_eq!(raw_set("ban4").len(), 2);
    assert_eq!(raw_set("ban6").len(), 1);
    assert_eq!(
        raw_set("ban4net")
            .iter()
            .map(|x| x.0.as_str())
            .collect::<Vec<_>>(),
        ["198.51.100.0/24"]
    );
    assert_eq!(
        raw_set("ban6net")
            .iter()
            .map(|x| x.0.as_str())
            .collect::<Vec<_>>(),
        ["2001:db8:1::/64"]
    );
    for (target, want) in [
        ("198.51.100.7/32", 600),
        ("2001:db8::7/128", 700),
        ("198.51.100.0/24", 800),
        ("2001:db8:1::/64", 900),
    ] {
        let got = listed(&mut e, target).unwrap().unwrap();
        assert!((want - 3..=want).contains(&got), "{target}: {got}");
    }
    assert_eq!(listed(&mut e, "192.0.2.9/32"), Some(None), "permanent");
    assert_eq!(e.list().unwrap().len(), 5);
}

fn refresh_cases(force_idiom: bool) {
    let mut e = ready();
    if force_idiom {
        e.force_delete_readd();
    }
    let (a, n, p) = (
        permit("203.0.113.9/32"),
        permit("203.0.113.0/24"),
        permit("2001:db8::9/128"),
    );
    e.apply(&[add(&a, Some(100)), add(&n, Some(100)), add(&p, None)])
        .unwrap();
    e.apply(&[
        add(&a, Some(1000)),
        add(&n, Some(1000)),
        add(&p, Some(1000)),
    ])
    .unwrap();
    for t in ["203.0.113.9/32", "203.0.113.0/24", "2001:db8::9/128"] {
        let got = listed(&mut e, t).unwrap().unwrap();
        assert!(
            got > 990,
            "{t} refreshed to 1000s (idiom {force_idiom}): {got}"
        );
    }
    // Refresh means "set to the new timeout", shorter too; and back to permanent.
    e.apply(&[add(&a, Some(50)), add(&n, None)]).unwrap();
    assert!(listed(&mut e, "203.0.113.9/32").unwrap().unwrap() <= 50);
    assert_eq!(listed(&mut e, "203.0.113.0/24"), Some(None));
    assert_eq!(e.list().unwrap().len(), 3, "no duplicates");
}

#[test]
fn readding_refreshes_the_timeout_with_the_probed_idiom() {
    if !private_netns() {
        return;
    }
    refresh_cases(false);
}

#[test]
fn readding_refreshes_the_timeout_with_delete_and_add() {
    if !private_netns() {
        return;
    }
    refresh_cases(true);
}

#[test]
fn removes_present_and_absent_in_one_batch() {
    if !private_netns() {
        return;
    }
    let mut e = ready();
    let keep = permit("198.51.100.1/32");
    let (a, b, n) = (
        permit("198.51.100.2/32"),
        permit("2001:db8::2/128"),
        permit("198.51.100.128/25"),
    );
    e.apply(&[
        add(&keep, Some(600)),
        add(&a, Some(600)),
        add(&b, Some(600)),
        add(&n, Some(600)),
    ])
    .unwrap();
    e.apply(&[
        remove("198.51.100.2/32"),
        remove("2001:db8::2/128"),
        remove("198.51.100.128/25"),
        remove("192.0.2.77/32"),     // absent address
        remove("2001:db8:9::/64"),   // absent prefix
        remove("198.51.100.192/26"), // inside nothing now
    ])
    .unwrap();
    let left: Vec<String> = e
        .list()
        .unwrap()
        .iter()
        .map(|k| k.target.to_string())
        .collect();
    assert_eq!(left, ["198.51.100.1/32"]);
    // Removing from empty sets is fine too.
    e.apply(&[remove("198.51.100.1/32"), remove("198.51.100.1/32")])
        .unwrap();
    assert!(e.list().unwrap().is_empty());
}

#[test]
fn prefix_overlaps_in_the_kernel() {
    if !private_netns() {
        return;
    }
    let mut e = ready();
    let (s24, s16, inner) = (
        permit("10.20.1.0/24"),
        permit("10.20.0.0/16"),
        permit("10.20.1.5/32"),
    );
    e.apply(&[add(&s24, Some(900)), add(&inner, Some(60))])
        .unwrap();
    // A covering /16 absorbs the /24 and keeps its longer time; the /32 stays separate.
    e.apply(&[add(&s16, Some(300))]).unwrap();
    let net = raw_set("ban4net");
    assert_eq!(net.len(), 1, "{net:?}");
    assert_eq!(net[0].0, "10.20.0.0/16");
    assert!(net[0].1.unwrap() > 890, "{net:?}");
    assert_eq!(raw_set("ban4").len(), 1);
    // Re-banning the /24 inside the longer /16 is a no-op; unbanning it too.
    e.apply(&[add(&s24, Some(100)), remove("10.20.1.0/24")])
        .unwrap();
    assert_eq!(raw_set("ban4net").len(), 1);
    e.apply(&[remove("10.20.0.0/16")]).unwrap();
    assert!(raw_set("ban4net").is_empty());
}

#[test]
fn the_kernel_expires_bans_by_itself() {
    if !private_netns() {
        return;
    }
    let mut e = ready();
    let (a, n, keep) = (
        permit("203.0.113.50/32"),
        permit("2001:db8:7::/64"),
        permit("203.0.113.51/32"),
    );
    // Timed from before the apply: the kernel's 2 s start when the elements go in.
    let start = std::time::Instant::now();
    e.apply(&[add(&a, Some(2)), add(&n, Some(2)), add(&keep, Some(600))])
        .unwrap();
    assert_eq!(e.list().unwrap().len(), 3);
    while e.list().unwrap().len() > 1 && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(250));
    }
    let waited = start.elapsed();
    let left: Vec<String> = e
        .list()
        .unwrap()
        .iter()
        .map(|k| k.target.to_string())
        .collect();
    assert_eq!(left, ["203.0.113.51/32"], "after {waited:?}");
    assert!(
        waited >= Duration::from_millis(1500),
        "expired too early: {waited:?}"
    );
    assert!(raw_set("ban4").len() == 1 && raw_set("ban6net").is_empty());
}

#[test]
fn verify_fails_when_rules_are_removed() {
    if !private_netns() {
        return;
    }
    let mut e = ready();
    e.verify().unwrap();
    raw_script(&format!("flush chain inet {T} input\n"));
    let err = e.verify().unwrap_err();
    assert!(matches!(err, EnforceError::NotEnforced { .. }), "{err:?}");
    assert!(err.to_string().contains("chain input"), "{err}");
    e.setup().unwrap();
    e.verify().unwrap();
    raw_script(&format!("delete chain inet {T} forward\n"));
    assert!(e.verify().is_err());
    raw_script(&format!("delete table inet {T}\n"));
    let err = e.verify().unwrap_err();
    assert!(err.to_string().contains("table inet ravelin"), "{err}");
}

#[test]
fn a_layout_conflict_is_reported_with_the_fix() {
    if !private_netns() {
        return;
    }
    raw_script(&format!(
        "add table inet {T}\nadd set inet {T} ban4 {{ type ipv4_addr; flags interval; }}\n"
    ));
    let err = NftEnforcer::new(NFT.into(), T.into()).setup().unwrap_err();
    assert!(matches!(err, EnforceError::Layout { .. }), "{err:?}");
    assert!(
        err.to_string().contains("nft delete table inet ravelin"),
        "{err}"
    );
    // A chain of ours on another priority.
    raw_script(&format!(
        "delete table inet {T}\nadd table inet {T}\nadd chain inet {T} input {{ type filter hook input priority 0; }}\n"
    ));
    let err = NftEnforcer::new(NFT.into(), T.into()).setup().unwrap_err();
    assert!(matches!(err, EnforceError::Layout { .. }), "{err:?}");
}

#[test]
fn banned_packets_are_really_dropped() {
    if !private_netns() {
        return;
    }
    let ip = |args: &[&str]| {
        Command::new("ip")
            .args(args)
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ip(&["link", "set", "lo", "up"]) || !ip(&["addr", "add", "10.99.0.1/32", "dev", "lo"]) {
        eprintln!("skipped: `ip` (iproute2) could not configure lo");
        return;
    }
    let mut e = ready();
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let to: SocketAddr = rx.local_addr().unwrap();
    let tx = UdpSocket::bind("10.99.0.1:0").unwrap();
    let mut buf = [0u8; 16];
    tx.send_to(b"before", to).unwrap();
    assert_eq!(
        rx.recv_from(&mut buf).map(|(n, _)| n).ok(),
        Some(6),
        "delivered before the ban"
    );
    let p = permit("10.99.0.0/24");
    e.apply(&[add(&p, Some(60))]).unwrap();
    tx.send_to(b"during", to).unwrap();
    assert!(rx.recv_from(&mut buf).is_err(), "dropped while banned");
    e.apply(&[remove("10.99.0.0/24")]).unwrap();
    tx.send_to(b"after", to).unwrap();
    assert_eq!(
        rx.recv_from(&mut buf).map(|(n, _)| n).ok(),
        Some(5),
        "delivered after unban"
    );
    // The drop was counted by the input chain's ban4net rule.
    let v = raw(&["list", "chain", "inet", T, "input"]);
    let dropped: u64 = v["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i.get("rule"))
        .filter(|r| r["expr"][0]["match"]["right"] == "@ban4net")
        .map(|r| r["expr"][1]["counter"]["packets"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(dropped, 1);
}

#[test]
fn a_batch_of_100k_changes_is_one_transaction() {
    if !private_netns() {
        return;
    }
    let mut e = ready();
    let allow = Allowlist::new(&[], &[]);
    let permits: Vec<Permit> = (0..100_000u32)
        .map(|i| {
            let net: IpNet = if i % 10 == 0 {
                format!("2001:db8:{:x}:{:x}::1/128", i >> 16, i & 0xffff)
                    .parse()
                    .unwrap()
            } else {
                IpNet::from(IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + i)))
            };
            allow.permit(net).unwrap()
        })
        .collect();
    let changes: Vec<Change<'_>> = permits.iter().map(|p| add(p, Some(600))).collect();
    e.apply(&changes).unwrap();
    assert_eq!(e.list().unwrap().len(), 100_000);
    // And again (all refreshes), then remove them all plus absent ones.
    e.apply(&changes).unwrap();
    let mut rm: Vec<Change<'_>> = permits
        .iter()
        .map(|p| Change::Remove { target: p.target() })
        .collect();
    rm.push(remove("192.0.2.1/32"));
    e.apply(&rm).unwrap();
    assert!(e.list().unwrap().is_empty());
}
