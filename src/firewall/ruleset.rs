//! Policy -> one complete nftables table (pure: text in, text out).
//!
//! The firewall lives in its own table `inet ravelin_fw`, beside the ban table `inet ravelin`
//! of `enforce` (see the module docs of [`super`] for why). Its one base chain:
//!
//! ```text
//! chain filter_input { type filter hook input priority filter; policy drop; }
//!   1. iif lo accept
//!   2. ICMPv6 that must pass (neighbour discovery, router advert, packet-too-big,
//!      time-exceeded, parameter-problem): before the ct rules, as ND is not tracked
//!   3. ICMP/ICMPv6 echo-request, rate-limited (one budget for all sources), the rest
//!      dropped: before the ct rules too, as conntrack makes a one-id flood "established"
//!   4. ct state established,related accept; ct state invalid drop; ICMP errors
//!   5. honeyports: add the source to scanners4/6, drop
//!   6. decoy port, allowed services: accept
//!   7. real SSH port: accept from allow_from, or on allow_interfaces
//!   8. closed-port accounting (see below), then the policy drops
//! ```
//!
//! Banned sources never get here: `inet ravelin` drops them at priority -200 in `input` and
//! `forward` (a drop in any base chain is final).
//!
//! # Closed-port scans, in the kernel
//!
//! For a new unicast TCP or UDP flow that reached step 8 (so: a port the policy does not open
//! to that source; broadcast and multicast such as mDNS, SSDP or NetBIOS never count), with
//! `N = closed_ports` and `W = within`:
//!
//! - `scan_seen4` holds `(source . port)` for `W`; a flow to a port already in it is dropped
//!   without counting, so retransmissions and repeats count once;
//! - otherwise the pair is added and the source's token bucket in `scan_rate4` (nft `limit`
//!   stored per element: capacity `N - 1`, refilled at `N` per `W`) takes one token; when it is
//!   empty the source goes into `scanners4` (timeout `remember`).
//!
//! Exactly: `N` distinct closed ports hit in a burst, or a sustained rate above `N` distinct
//! closed ports per `W`, makes a scanner (measured: 9 quick probes do not, the 10th does, for
//! `N = 10`). All sets are bounded (`size`); when a set is full nft skips the rule, so the
//! worst case is a missed scanner, never a dropped legitimate packet. IPv6 uses the same sets
//! with the suffix 6.

use std::fmt::Write as _;
use std::time::Duration;

use super::policy::{Policy, Proto};

/// Our table (family `inet`).
pub const TABLE: &str = "ravelin_fw";
/// The base chain.
pub const CHAIN: &str = "filter_input";
/// Dynamic sets that nftables fills with scanners; [`super::read_scanners`] reads them.
pub const SCANNERS: [&str; 2] = ["scanners4", "scanners6"];
/// Bound on every dynamic set.
pub const SET_SIZE: u32 = 65_536;

/// The table definition (what `nft list table` would show, modulo formatting).
pub fn table(p: &Policy, table: &str) -> String {
    let mut s = String::new();
    let w = |d: Duration| format!("{}s", d.as_secs().max(1));
    let _ = writeln!(s, "table inet {table} {{");
    for fam in ["4", "6"] {
        let addr = if fam == "4" { "ipv4_addr" } else { "ipv6_addr" };
        let _ = writeln!(
            s,
            "\tset scanners{fam} {{ type {addr}; size {SET_SIZE}; flags dynamic,timeout; timeout {}; }}",
            w(p.scan.remember)
        );
        if p.scan.closed_ports > 0 {
            let _ = writeln!(
                s,
                "\tset scan_seen{fam} {{ type {addr} . inet_service; size {SET_SIZE}; flags dynamic,timeout; timeout {}; }}",
                w(p.scan.within)
            );
            let _ = writeln!(
                s,
                "\tset scan_rate{fam} {{ type {addr}; size {SET_SIZE}; flags dynamic,timeout; timeout {}; }}",
                w(p.scan.within)
            );
        }
    }
    let _ = writeln!(s, "\tchain {CHAIN} {{");
    let _ = writeln!(
        s,
        "\t\ttype filter hook input priority filter; policy drop;"
    );
    let r = |s: &mut String, rule: &str| {
        let _ = writeln!(s, "\t\t{rule}");
    };
    r(&mut s, "iif \"lo\" accept");
    r(
        &mut s,
        "icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } accept",
    );
    // Before the ct rules: conntrack sees a ping flood with one id as one established flow.
    if p.echo_per_second > 0 {
        let e = p.echo_per_second;
        let b = e.saturating_mul(2);
        r(
            &mut s,
            &format!("icmp type echo-request limit rate {e}/second burst {b} packets accept"),
        );
        r(
            &mut s,
            &format!("icmpv6 type echo-request limit rate {e}/second burst {b} packets accept"),
        );
    }
    r(&mut s, "icmp type echo-request drop");
    r(&mut s, "icmpv6 type echo-request drop");
    r(&mut s, "ct state established,related accept");
    r(&mut s, "ct state invalid drop");
    r(
        &mut s,
        "icmp type { destination-unreachable, time-exceeded, parameter-problem } accept",
    );
    if !p.scan.honeyports.is_empty() {
        let ports = join(p.scan.honeyports.iter().map(u16::to_string));
        for (fam, m) in [("4", "ip"), ("6", "ip6")] {
            r(
                &mut s,
                &format!(
                    "meta nfproto ipv{fam} meta l4proto {{ tcp, udp }} th dport {{ {ports} }} add @scanners{fam} {{ {m} saddr }} counter drop comment \"honeyport\""
                ),
            );
        }
    }
    if let Some(d) = p.ssh.decoy_port {
        r(
            &mut s,
            &format!("tcp dport {d} counter accept comment \"ssh decoy\""),
        );
    }
    for proto in [Proto::Tcp, Proto::Udp] {
        let ports: Vec<String> = p
            .allow
            .iter()
            .filter(|x| x.proto == proto)
            .map(|x| x.ports())
            .collect();
        if !ports.is_empty() {
            r(
                &mut s,
                &format!("{} dport {{ {} }} accept", proto.as_str(), ports.join(", ")),
            );
        }
    }
    let real = p.ssh.real_port;
    let v4: Vec<String> = p
        .ssh
        .allow_from
        .iter()
        .filter(|n| matches!(n, ipnet::IpNet::V4(_)))
        .map(|n| n.to_string())
        .collect();
    let v6: Vec<String> = p
        .ssh
        .allow_from
        .iter()
        .filter(|n| matches!(n, ipnet::IpNet::V6(_)))
        .map(|n| n.to_string())
        .collect();
    if !v4.is_empty() {
        r(
            &mut s,
            &format!(
                "tcp dport {real} ip saddr {{ {} }} accept comment \"real sshd\"",
                v4.join(", ")
            ),
        );
    }
    if !v6.is_empty() {
        r(
            &mut s,
            &format!(
                "tcp dport {real} ip6 saddr {{ {} }} accept comment \"real sshd\"",
                v6.join(", ")
            ),
        );
    }
    if !p.ssh.allow_interfaces.is_empty() {
        let ifs = join(p.ssh.allow_interfaces.iter().map(|i| format!("\"{i}\"")));
        r(
            &mut s,
            &format!("tcp dport {real} iifname {{ {ifs} }} accept comment \"real sshd\""),
        );
    }
    if p.scan.closed_ports > 0 {
        let (rate, unit) = rate_per_unit(p.scan.closed_ports, p.scan.within);
        let burst = p.scan.closed_ports - 1;
        for (fam, m) in [("4", "ip"), ("6", "ip6")] {
            r(
                &mut s,
                &format!(
                    "meta nfproto ipv{fam} meta pkttype host meta l4proto {{ tcp, udp }} ct state new {m} saddr . th dport @scan_seen{fam} drop"
                ),
            );
            r(
                &mut s,
                &format!(
                    "meta nfproto ipv{fam} meta pkttype host meta l4proto {{ tcp, udp }} ct state new add @scan_seen{fam} {{ {m} saddr . th dport }} update @scan_rate{fam} {{ {m} saddr limit rate over {rate}/{unit} burst {burst} packets }} add @scanners{fam} {{ {m} saddr }} comment \"closed-port scan\""
                ),
            );
        }
    }
    r(&mut s, "counter comment \"policy drop\"");
    let _ = writeln!(s, "\t}}");
    let _ = writeln!(s, "}}");
    s
}

/// A script that replaces `inet <table>` with `def` (or deletes it when `def` is `None`) in
/// one transaction: `table x {}` makes the delete safe when it does not exist yet.
pub fn replace_script(table: &str, def: Option<&str>) -> String {
    let mut s = format!("table inet {table} {{}}\ndelete table inet {table}\n");
    if let Some(d) = def {
        s.push_str(d);
    }
    s
}

/// `n` per `w` as an nft rate: the largest unit that makes it a whole number, else per day
/// rounded up (more sensitive, never less).
pub fn rate_per_unit(n: u32, w: Duration) -> (u64, &'static str) {
    let w = w.as_secs().max(1);
    let n = u64::from(n);
    for (unit_s, unit) in [
        (1, "second"),
        (60, "minute"),
        (3600, "hour"),
        (86_400, "day"),
    ] {
        if (n * unit_s) % w == 0 && n * unit_s >= w {
            return (n * unit_s / w, unit);
        }
    }
    ((n * 86_400).div_ceil(w), "day")
}

fn join(it: impl Iterator<Item = String>) -> String {
    it.collect::<Vec<_>>().join(", ")
}
