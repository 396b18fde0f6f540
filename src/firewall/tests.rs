//! Unit tests: the policy parser (table-driven), the ruleset as nft reads it, the guard, and
//! apply/rollback against real nftables in a private network namespace.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::commit::{self, Ctx};
use super::guard::{self, Session};
use super::policy::{HostView, Policy, Proto, parse_policy_with, parse_service};
use super::ruleset::{self, rate_per_unit};
use super::{diff, nft};

/// The sample from issue 5, as written.
const SAMPLE: &str = r#"
[firewall]
allow = ["tcp/80", "tcp/443", "udp/51820"]
[firewall.ssh]
real_port = 2222
allow_from = ["192.0.2.10", "2001:db8:1::/48"]   # addresses or CIDRs
allow_interfaces = ["wg0"]
decoy_port = 22
[firewall.scan]
closed_ports = 10        # distinct closed ports within `within` -> scanner
within = "1m"
honeyports = [23, 445, 3389, 5900, 6379]   # any connection attempt -> scanner at once
"#;

/// A host with the interfaces `lo`, `eth0` and `wg0`.
struct FakeHost;
impl HostView for FakeHost {
    fn has_interface(&self, name: &str) -> bool {
        ["lo", "eth0", "wg0"].contains(&name)
    }
}

fn parse(text: &str) -> Result<Policy, Vec<(String, String)>> {
    let root: toml::Table = text.parse().expect("test TOML");
    parse_policy_with(&root["firewall"], &FakeHost)
}

fn sample() -> Policy {
    parse(SAMPLE).expect("the issue's sample parses")
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn the_issue_sample_parses_as_written() {
    let p = sample();
    assert_eq!(p.allow.len(), 3);
    assert_eq!(p.allow[2], parse_service("udp/51820").unwrap());
    assert_eq!(p.ssh.real_port, 2222);
    assert_eq!(p.ssh.decoy_port, Some(22));
    assert_eq!(p.ssh.allow_interfaces, ["wg0"]);
    assert_eq!(p.ssh.allow_from.len(), 2);
    assert_eq!(p.scan.closed_ports, 10);
    assert_eq!(p.scan.within, Duration::from_secs(60));
    assert_eq!(p.scan.honeyports, [23, 445, 3389, 5900, 6379]);
}

#[test]
fn every_error_is_reported_at_once_with_its_key_path() {
    let bad = r#"
[firewall]
allow = ["tcp/80", "sctp/9", "tcp/70000", "tcp/2222", "tcp/445", "tcp/79-81", "http"]
colour = "red"
[firewall.ssh]
real_port = 2222
allow_from = ["192.0.2.10/24", "nonsense"]
allow_interfaces = ["wg9", "bad name"]
decoy_port = 2222
[firewall.scan]
closed_ports = 1
within = "soon"
honeyports = [445, 0, 445]
"#;
    let errs = parse(bad).unwrap_err();
    let keys: BTreeSet<&str> = errs.iter().map(|(k, _)| k.as_str()).collect();
    for want in [
        "firewall.colour",
        "firewall.allow[1]",
        "firewall.allow[2]",
        "firewall.ssh.allow_from[0]",
        "firewall.ssh.allow_from[1]",
        "firewall.ssh.allow_interfaces[0]",
        "firewall.ssh.allow_interfaces[1]",
        "firewall.ssh.decoy_port",
        "firewall.scan.closed_ports",
        "firewall.scan.within",
        "firewall.scan.honeyports[1]",
    ] {
        assert!(keys.contains(want), "no error for {want}: {errs:#?}");
    }
    let msg = |k: &str| -> String {
        errs.iter()
            .filter(|(key, _)| key == k)
            .map(|(_, m)| m.clone())
            .collect::<Vec<_>>()
            .join(" | ")
    };
    assert!(msg("firewall.ssh.allow_interfaces[0]").contains("no interface \"wg9\""));
    assert!(msg("firewall.ssh.allow_from[0]").contains("192.0.2.0/24"));
    assert!(msg("firewall.allow[1]").contains("unknown protocol"));
    assert!(msg("firewall.allow[2]").contains("invalid port"));
    assert!(msg("firewall.allow[6]").contains("not a service"));
}

#[test]
fn overlaps_between_allow_ssh_and_honeyports_are_errors() {
    let cases: &[(&str, &str, &str)] = &[
        // (allow, honeyports, expected message fragment)
        (r#"["tcp/2000-3000"]"#, "[]", "real SSH port 2222"),
        (r#"["tcp/22"]"#, "[]", "decoy port 22"),
        (r#"["tcp/80", "tcp/79-81"]"#, "[]", "overlaps tcp/80"),
        (r#"["udp/445"]"#, "[445]", "honeyport 445 is also allowed"),
        (r#"[]"#, "[2222]", "honeyport 2222 is the real SSH port"),
        (r#"[]"#, "[22]", "honeyport 22 is the decoy port"),
        (r#"[]"#, "[23, 23]", "listed twice"),
    ];
    for (allow, honey, want) in cases {
        let text = format!(
            "[firewall]\nallow = {allow}\n[firewall.ssh]\nreal_port = 2222\nallow_from = [\"192.0.2.10\"]\ndecoy_port = 22\n[firewall.scan]\nhoneyports = {honey}\n"
        );
        let errs = parse(&text).unwrap_err();
        assert!(
            errs.iter().any(|(_, m)| m.contains(want)),
            "{allow} / {honey}: wanted {want:?}, got {errs:#?}"
        );
    }
}

#[test]
fn no_admin_path_is_an_error() {
    for ssh in [
        "",
        "[firewall.ssh]\nreal_port = 2222\n",
        "[firewall.ssh]\nreal_port = 2222\nallow_from = []\nallow_interfaces = []\n",
        "[firewall.ssh]\nreal_port = 2222\nallow_from = [\"0.0.0.0/0\"]\n",
    ] {
        let errs = parse(&format!("[firewall]\nallow = [\"tcp/80\"]\n{ssh}")).unwrap_err();
        assert!(
            errs.iter().any(|(k, m)| k.starts_with("firewall.ssh")
                && (m.contains("admin") || m.contains("everyone"))),
            "{ssh:?}: {errs:#?}"
        );
    }
    // An interface pattern is not checked against the host (it may come later, as wg0 does).
    let p = parse("[firewall]\n[firewall.ssh]\nreal_port = 2222\nallow_interfaces = [\"wg*\"]\n")
        .unwrap();
    assert!(p.admin_may_reach(ip("198.51.100.1"), Some("wg3")));
    assert!(!p.admin_may_reach(ip("198.51.100.1"), Some("eth0")));
}

#[test]
fn admits_mirrors_the_rules() {
    let p = sample();
    let world = ip("198.51.100.7");
    let cases: &[(&str, Option<&str>, Proto, u16, bool)] = &[
        ("198.51.100.7", None, Proto::Tcp, 80, true),
        ("198.51.100.7", None, Proto::Udp, 80, false),
        ("198.51.100.7", None, Proto::Udp, 51820, true),
        ("198.51.100.7", None, Proto::Tcp, 22, true),
        ("198.51.100.7", None, Proto::Tcp, 2222, false),
        ("198.51.100.7", Some("wg0"), Proto::Tcp, 2222, true),
        ("192.0.2.10", None, Proto::Tcp, 2222, true),
        ("2001:db8:1:2::5", None, Proto::Tcp, 2222, true),
        ("2001:db8:2::5", None, Proto::Tcp, 2222, false),
        ("::ffff:192.0.2.10", None, Proto::Tcp, 2222, true),
        ("192.0.2.10", None, Proto::Tcp, 23, false),
        ("127.0.0.1", None, Proto::Tcp, 9999, true),
    ];
    for (src, iface, proto, port, want) in cases {
        assert_eq!(
            p.admits(ip(src), *iface, *proto, *port),
            *want,
            "{src} {iface:?} {proto:?}/{port}"
        );
    }
    assert!(!p.admits(world, None, Proto::Tcp, 8080));
}

#[test]
fn rates_are_exact_where_a_unit_allows() {
    let s = Duration::from_secs;
    assert_eq!(rate_per_unit(10, s(60)), (10, "minute"));
    assert_eq!(rate_per_unit(10, s(1)), (10, "second"));
    assert_eq!(rate_per_unit(10, s(90)), (400, "hour"));
    assert_eq!(rate_per_unit(5, s(3600)), (5, "hour"));
    assert_eq!(rate_per_unit(2, s(86_400)), (2, "day"));
    assert_eq!(
        rate_per_unit(7, s(86_399)),
        (8, "day"),
        "rounded up: never less sensitive"
    );
}

#[test]
fn ruleset_has_the_parts_the_issue_lists() {
    let t = ruleset::table(&sample(), "ravelin_fw");
    for part in [
        "type filter hook input priority filter; policy drop;",
        "ct state established,related accept",
        "ct state invalid drop",
        "iif \"lo\" accept",
        "nd-neighbor-solicit",
        "packet-too-big",
        "icmp type echo-request limit rate 10/second",
        "icmpv6 type echo-request limit rate 10/second",
        "tcp dport 22 counter accept",
        "tcp dport { 80, 443 } accept",
        "udp dport { 51820 } accept",
        "tcp dport 2222 ip saddr { 192.0.2.10/32 } accept",
        "tcp dport 2222 ip6 saddr { 2001:db8:1::/48 } accept",
        "tcp dport 2222 iifname { \"wg0\" } accept",
        "th dport { 23, 445, 3389, 5900, 6379 } add @scanners4",
        "add @scanners6 { ip6 saddr }",
        "limit rate over 10/minute burst 9 packets",
    ] {
        assert!(t.contains(part), "missing {part:?} in\n{t}");
    }
    // No ban sets here: they live in `inet ravelin` and are never touched by this table.
    assert!(!t.contains("ban4") && !t.contains("ban6"));
}

#[test]
fn diff_marks_only_changed_lines() {
    let d = diff("a\nb\nc\n", "a\nx\nc\nd\n");
    assert_eq!(d, ["  a", "- b", "+ x", "  c", "+ d"]);
}

#[test]
fn guard_refuses_a_policy_that_cuts_the_current_session() {
    let p = sample();
    let none = |_: IpAddr| None;
    let session = |peer: &str| Session {
        peer: ip(peer),
        local: ip("203.0.113.1"),
        local_port: 22,
        via: "SSH_CONNECTION",
    };
    let sshd: BTreeSet<u16> = [2222].into();
    assert!(guard::check(&p, &[session("192.0.2.10")], &sshd, &none).is_empty());
    let cut = guard::check(&p, &[session("198.51.100.7")], &sshd, &none);
    assert_eq!(cut.len(), 1, "{cut:?}");
    assert!(cut[0].contains("198.51.100.7") && cut[0].contains("allow_from"));
    // Arriving over wg0 is an admin path.
    let wg = |_: IpAddr| Some("wg0".to_string());
    assert!(guard::check(&p, &[session("198.51.100.7")], &sshd, &wg).is_empty());
    // sshd still on 22 only: the policy would leave only the decoy there.
    let old: BTreeSet<u16> = [22].into();
    let moved = guard::check(&p, &[], &old, &none);
    assert!(
        moved.iter().any(|m| m.contains("sshd listens on port 22")),
        "{moved:?}"
    );
}

#[test]
fn sessions_come_from_the_env_and_logged_in_sshd_sockets() {
    use super::sockets::Owner;
    // inode 7: a logged-in session on 2222; 8: a stranger before authentication on 2222;
    // 9: a web client on 80.
    let tcp = "hdr\n   0: 0100000A:08AE 0200000A:C350 01 0 0 0 0 0 7 1\n   1: 0100000A:08AE 0400000A:C352 01 0 0 0 0 0 8 1\n   2: 0100000A:0050 0300000A:C351 01 0 0 0 0 0 9 1\n";
    let socks = super::sockets::parse(tcp, Proto::Tcp);
    let owner = |title: &str| Owner {
        comm: "sshd".into(),
        title: title.into(),
    };
    let owners: HashMap<u64, Owner> = [
        (7, owner("sshd: alice@pts/0")),
        (8, owner("sshd: unknown [priv]")),
        (
            9,
            Owner {
                comm: "nginx".into(),
                title: "nginx: worker process".into(),
            },
        ),
    ]
    .into();
    let s = guard::sessions(Some("192.0.2.10 50000 203.0.113.1 2222"), &socks, &owners);
    let peers: Vec<String> = s.iter().map(|x| x.peer.to_string()).collect();
    assert_eq!(peers, ["10.0.0.2", "192.0.2.10"]);
}

// ---------- real nftables, one private network namespace per test thread ----------

fn private_netns() -> bool {
    if !nix::unistd::geteuid().is_root() || Command::new("nft").arg("--version").output().is_err() {
        eprintln!("skipped: needs root and nft");
        return false;
    }
    if let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET) {
        eprintln!("skipped: unshare(CLONE_NEWNET) failed: {e}");
        return false;
    }
    true
}

fn ctx(dir: &std::path::Path) -> Ctx {
    Ctx {
        nft: PathBuf::from("nft"),
        table: ruleset::TABLE.into(),
        state_dir: dir.to_path_buf(),
        exe: PathBuf::from("/nonexistent"),
    }
}

#[test]
fn nft_accepts_the_ruleset_and_lists_it_back_identically() {
    if !private_netns() {
        return;
    }
    let p = parse("[firewall]\nallow = [\"tcp/80\"]\n[firewall.ssh]\nreal_port = 2222\nallow_from = [\"192.0.2.10\"]\nallow_interfaces = [\"lo\"]\n").unwrap();
    let def = ruleset::table(&p, ruleset::TABLE);
    nft::check(Path::new("nft"), ruleset::TABLE, &def).unwrap();
    let (canon, real) = nft::canonical(Path::new("nft"), ruleset::TABLE, &def).unwrap();
    assert!(real);
    nft::replace(Path::new("nft"), ruleset::TABLE, Some(&def)).unwrap();
    let live = nft::snapshot(Path::new("nft"), ruleset::TABLE)
        .unwrap()
        .unwrap();
    assert_eq!(
        live, canon,
        "plan and live listing differ: the plan's diff would be noise"
    );
    // The listing loads back as is (rollback relies on it).
    nft::replace(Path::new("nft"), ruleset::TABLE, Some(&live)).unwrap();
    assert_eq!(
        nft::snapshot(Path::new("nft"), ruleset::TABLE)
            .unwrap()
            .unwrap(),
        live
    );
}

#[test]
fn apply_saves_the_previous_table_and_rollback_restores_it() {
    if !private_netns() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let c = ctx(tmp.path());
    let nft_path = PathBuf::from("nft");
    // Nothing there yet: rollback deletes what apply made.
    let a = sample_without_wg();
    commit::apply(&c, &ruleset::table(&a, &c.table), None).unwrap();
    let first = nft::snapshot(&nft_path, &c.table).unwrap().unwrap();
    assert!(commit::rollback(&c).unwrap());
    assert_eq!(nft::snapshot(&nft_path, &c.table).unwrap(), None);
    // Table A live; apply B; rollback brings A back exactly.
    commit::apply(&c, &ruleset::table(&a, &c.table), None).unwrap();
    let mut b = a.clone();
    b.allow.push(parse_service("tcp/8443").unwrap());
    commit::apply(&c, &ruleset::table(&b, &c.table), None).unwrap();
    assert!(
        nft::snapshot(&nft_path, &c.table)
            .unwrap()
            .unwrap()
            .contains("8443")
    );
    assert!(commit::rollback(&c).unwrap());
    assert_eq!(nft::snapshot(&nft_path, &c.table).unwrap().unwrap(), first);
    // A ruleset nft rejects changes nothing.
    let err =
        commit::apply(&c, "table inet ravelin_fw { chain x { nonsense } }", None).unwrap_err();
    assert!(err.to_string().contains("nft could not"), "{err}");
    assert_eq!(nft::snapshot(&nft_path, &c.table).unwrap().unwrap(), first);
}

#[test]
fn read_scanners_reports_addresses_with_time_left() {
    if !private_netns() {
        return;
    }
    let p = sample_without_wg();
    nft::replace(
        Path::new("nft"),
        ruleset::TABLE,
        Some(&ruleset::table(&p, ruleset::TABLE)),
    )
    .unwrap();
    let st = Command::new("nft")
        .args(["add element inet ravelin_fw scanners4 { 198.51.100.7 }; add element inet ravelin_fw scanners6 { 2001:db8::7 timeout 10m }"])
        .status()
        .unwrap();
    assert!(st.success());
    let mut got = nft::read_scanners(Path::new("nft"), ruleset::TABLE).unwrap();
    got.sort();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].0, ip("198.51.100.7"));
    assert!(
        got[0].1.is_some_and(|d| d > Duration::from_secs(3500)),
        "{got:?}"
    );
    assert_eq!(got[1].0, ip("2001:db8::7"));
    assert!(
        got[1].1.is_some_and(|d| d <= Duration::from_secs(600)),
        "{got:?}"
    );
}

fn sample_without_wg() -> Policy {
    let mut p = sample();
    p.ssh.allow_interfaces.clear();
    p
}

#[test]
fn an_apply_over_an_unconfirmed_one_keeps_the_confirmed_rollback_target() {
    if !private_netns() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let c = ctx(tmp.path());
    let a = sample_without_wg();
    commit::apply(&c, &ruleset::table(&a, &c.table), None).unwrap();
    let confirmed = nft::snapshot(Path::new("nft"), &c.table).unwrap().unwrap();
    // Two applies in a row, neither confirmed (/bin/true stands in for the watcher).
    let mut b = a.clone();
    b.allow.push(parse_service("tcp/8443").unwrap());
    let mut ctx_b = c.clone();
    ctx_b.exe = PathBuf::from("/bin/true");
    commit::apply(
        &ctx_b,
        &ruleset::table(&b, &c.table),
        Some(Duration::from_secs(60)),
    )
    .unwrap();
    let mut cc = b.clone();
    cc.allow.push(parse_service("tcp/9443").unwrap());
    commit::apply(
        &ctx_b,
        &ruleset::table(&cc, &c.table),
        Some(Duration::from_secs(60)),
    )
    .unwrap();
    assert!(commit::rollback(&c).unwrap());
    assert_eq!(
        nft::snapshot(Path::new("nft"), &c.table).unwrap().unwrap(),
        confirmed
    );
    assert!(commit::pending(&c).unwrap().is_none());
}

#[test]
fn boot_brings_back_the_last_confirmed_table_after_a_reboot() {
    if !private_netns() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let c = ctx(tmp.path());
    let nft_path = Path::new("nft");
    assert_eq!(
        commit::boot(&c).unwrap(),
        commit::Boot::Unchanged,
        "nothing confirmed yet"
    );
    let a = sample_without_wg();
    commit::apply(&c, &ruleset::table(&a, &c.table), None).unwrap();
    let confirmed = nft::structure(nft_path, &c.table).unwrap().unwrap();
    assert_eq!(
        commit::boot(&c).unwrap(),
        commit::Boot::Unchanged,
        "table is live"
    );
    // A reboot: the kernel forgot the table.
    nft::replace(nft_path, &c.table, None).unwrap();
    assert_eq!(commit::boot(&c).unwrap(), commit::Boot::Restored);
    assert_eq!(
        nft::structure(nft_path, &c.table).unwrap().unwrap(),
        confirmed
    );
    // An unconfirmed apply that was rolled back leaves the confirmed one as the boot table.
    let mut b = a.clone();
    b.allow.push(parse_service("tcp/8443").unwrap());
    let mut cb = c.clone();
    cb.exe = PathBuf::from("/bin/true");
    commit::apply(
        &cb,
        &ruleset::table(&b, &c.table),
        Some(Duration::from_secs(60)),
    )
    .unwrap();
    assert!(commit::rollback(&c).unwrap());
    nft::replace(nft_path, &c.table, None).unwrap();
    assert_eq!(commit::boot(&c).unwrap(), commit::Boot::Restored);
    assert_eq!(
        nft::structure(nft_path, &c.table).unwrap().unwrap(),
        confirmed
    );
}

#[test]
fn a_reapply_keeps_the_scanners_found_so_far() {
    if !private_netns() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let c = ctx(tmp.path());
    let p = sample_without_wg();
    commit::apply(&c, &ruleset::table(&p, &c.table), None).unwrap();
    let st = Command::new("nft")
        .args(["add element inet ravelin_fw scanners4 { 198.51.100.7 timeout 10m }; add element inet ravelin_fw scanners6 { 2001:db8::7 }"])
        .status()
        .unwrap();
    assert!(st.success());
    commit::apply(&c, &ruleset::table(&p, &c.table), None).unwrap();
    let mut got = nft::read_scanners(Path::new("nft"), ruleset::TABLE).unwrap();
    got.sort();
    assert_eq!(
        got.iter().map(|g| g.0).collect::<Vec<_>>(),
        [ip("198.51.100.7"), ip("2001:db8::7")]
    );
    assert!(
        got[0].1.is_some_and(|d| d <= Duration::from_secs(600)),
        "time left kept: {got:?}"
    );
}
