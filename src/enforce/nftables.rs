//! The nftables backend: our own table, kernel-timed ban sets, one `nft -f -` per batch.
//!
//! # Layout (`inet <table>`, default `ravelin`)
//!
//! ```text
//! set ban4    { type ipv4_addr; flags timeout; }            single addresses (/32)
//! set ban6    { type ipv6_addr; flags timeout; }            single addresses (/128)
//! set ban4net { type ipv4_addr; flags interval, timeout; }  prefixes (/24, ...)
//! set ban6net { type ipv6_addr; flags interval, timeout; }  prefixes (/64, ...)
//! chain input   { type filter hook input   priority -200; policy accept; }
//! chain forward { type filter hook forward priority -200; policy accept; }
//!   each: ip saddr @ban4 counter drop, ip saddr @ban4net counter drop,
//!         ip6 saddr @ban6 counter drop, ip6 saddr @ban6net counter drop
//! ```
//!
//! Why shaped so (each point measured on nftables 1.0.6, kernel 6.18):
//!
//! - **Kernel timeouts.** Every element carries its own `timeout`, so a ban ends on time even
//!   if the daemon is dead, and the daemon never has to delete expired bans.
//! - **Addresses and prefixes in separate sets.** Prefixes need an `interval` set (a /24 ban
//!   must block the whole /24, not only `.0` as CrowdSec's sets do). But nft 1.0.6 deletes
//!   from interval sets in time proportional to deletes × set size (800 deletes from an 8,000
//!   element set took 2.7 s; 20,000 from 20,000 took 153 s), and interval sets refuse
//!   overlapping elements. Single addresses, nearly all bans, therefore live in hash sets
//!   (100k adds 0.5 s, 20k deletes 0.06 s), and a /32 ban inside a banned /24 coexists with
//!   it, each with its own timeout.
//! - **No `auto-merge`.** With timeouts it merges 10.0.0.1 (100 s) and 10.0.0.2 (50 s) into one
//!   range lasting 100 s, and silently swallows an address added inside a prefix: per-ban
//!   timeouts and exact removal would be lost. Overlaps are resolved here instead (below).
//! - **Priority -200** in `input` and `forward`: before the usual `filter` (0) chains of
//!   iptables-nft, ufw, firewalld and Docker, so a banned packet is dropped before any other
//!   filter spends work on it, logs it, counts it against a rate limit or queues it to user
//!   space. (An `accept` elsewhere cannot save it anyway: in nftables a drop in any base chain
//!   is final.) `forward` covers published container ports, whose traffic never reaches
//!   `input`. Connection tracking (prerouting -200) has already run, so established sessions
//!   of a banned source are cut too, as with fail2ban's drop actions.
//!
//! # Transactions
//!
//! [`Enforcer::apply`] writes one script and feeds it to one `nft -f -` process: the kernel
//! applies it as one transaction (all or nothing). Per address set:
//!
//! - Re-adding an element must refresh its timeout. Recent kernels (6.18 here) update the
//!   timeout of an existing element on a plain `add element ... timeout`; older ones kept the
//!   old one (CrowdSec's re-adds did not extend bans). [`Enforcer::setup`] probes which in a
//!   scratch set. Without it, and always for permanent bans, we write `add X` (no-op if
//!   present), `delete X`, `add X timeout T`: portable, about 2.5x slower.
//! - Removing an absent element must not fail the batch: `add X` then `delete X`.
//! - Size: 100k changes take ~0.4 s; one transaction of 1M elements also works (4.7 s, nft
//!   peaks at ~390 MB), so callers should keep batches to ~100k.
//!
//! [`Enforcer::setup`] is `add table/set/chain` (no-ops when present) plus `flush chain` and
//! the drop rules for our two chains, in one transaction: idempotent, self-repairing if a rule
//! was deleted, atomic (no window without rules), and it never flushes a set, so bans survive
//! restarts. The rules' counters restart from zero. A set or chain of ours with another shape
//! is reported as [`EnforceError::Layout`] rather than replaced, since replacing a set
//! would drop its bans.
//!
//! Prefix sets are small, so before a batch that touches them we list them and resolve
//! overlaps in memory, then write exact `delete`s and `add`s (the `add X; delete X` guard
//! does not work there: nft 1.0.6 then reports a later overlapping add as an overlap):
//!
//! - a prefix equal to an existing element replaces it (timeout refreshed);
//! - a prefix inside a wider element that lasts at least as long is already blocked: skipped;
//! - otherwise the overlapping elements and the new prefix are merged into one element
//!   spanning them all, lasting as long as the longest of them. Blocking errs on the side of
//!   the ban the daemon asked for; removing the narrower prefix later is then a no-op.
//! - removing a prefix deletes only an element equal to it.
//!
//! [`Enforcer::list`] reports every element as a CIDR; a range that is not one prefix (we never
//! write those, but someone else might) is reported as the CIDRs that cover it exactly.
//!
//! If the kernel expired an element between the listing and the transaction, the transaction
//! fails as a whole and is retried once with a fresh listing.
//!
//! No shell anywhere: nft is run with an argument vector, the script goes through stdin, and
//! the only text in it comes from typed addresses and the validated table name.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use ipnet::IpNet;
use serde_json::Value;
use tracing::{debug, info, warn};

use super::{Change, EnforceError, Enforcer, KernelElement};

/// Host-address set for IPv4.
pub const SET_HOST4: &str = "ban4";
/// Host-address set for IPv6.
pub const SET_HOST6: &str = "ban6";
/// Prefix (interval) set for IPv4.
pub const SET_NET4: &str = "ban4net";
/// Prefix (interval) set for IPv6.
pub const SET_NET6: &str = "ban6net";
/// Base chains we own, named after their hooks.
pub const CHAINS: [&str; 2] = ["input", "forward"];
/// Hook priority of our chains: before `filter` (0). See the module docs.
pub const PRIORITY: i32 = -200;
/// Elements per `add/delete element` statement (keeps lines short; one transaction anyway).
const CHUNK: usize = 1024;
/// Longest timeout we write (10 years); longer requests are clamped.
const MAX_TIMEOUT_S: u64 = 10 * 365 * 24 * 3600;
/// How much of nft's stderr goes into an error.
const STDERR_CAP: usize = 2048;
/// Scratch set used once per setup to learn whether re-adding refreshes a timeout.
const PROBE_SET: &str = "refresh_probe";

/// Every set we own with its address family and whether it holds prefixes.
const SETS: [(&str, Family, bool); 4] = [
    (SET_HOST4, Family::V4, false),
    (SET_NET4, Family::V4, true),
    (SET_HOST6, Family::V6, false),
    (SET_NET6, Family::V6, true),
];

/// Address family of a target, and so of the sets it goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn of(net: &IpNet) -> Self {
        match net {
            IpNet::V4(_) => Family::V4,
            IpNet::V6(_) => Family::V6,
        }
    }
    fn nft_type(self) -> &'static str {
        match self {
            Family::V4 => "ipv4_addr",
            Family::V6 => "ipv6_addr",
        }
    }
    fn match_proto(self) -> &'static str {
        match self {
            Family::V4 => "ip",
            Family::V6 => "ip6",
        }
    }
    fn bits(self) -> u32 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
    fn host_set(self) -> &'static str {
        match self {
            Family::V4 => SET_HOST4,
            Family::V6 => SET_HOST6,
        }
    }
    fn net_set(self) -> &'static str {
        match self {
            Family::V4 => SET_NET4,
            Family::V6 => SET_NET6,
        }
    }
}

/// The nftables enforcer. See the module docs for the layout and the transaction idioms.
#[derive(Debug, Clone)]
pub struct NftEnforcer {
    nft: PathBuf,
    table: String,
    /// Does a plain `add element ... timeout` refresh an existing element? (probed in setup)
    refresh_by_readd: bool,
}

impl NftEnforcer {
    /// An enforcer driving the `nft` binary at `nft` on table `inet <table>`. Nothing is run
    /// until [`Enforcer::setup`].
    pub fn new(nft: PathBuf, table: String) -> Self {
        Self {
            nft,
            table,
            refresh_by_readd: false,
        }
    }

    /// Whether setup found that re-adding an element refreshes its timeout (then adds are
    /// written as plain `add element`, otherwise as `add; delete; add`).
    pub fn refreshes_by_readd(&self) -> bool {
        self.refresh_by_readd
    }

    /// Force the portable `add; delete; add` refresh idiom (tests and benchmarks use it to
    /// exercise the path older kernels need).
    pub fn force_delete_readd(&mut self) {
        self.refresh_by_readd = false;
    }

    fn check_table(&self) -> Result<(), EnforceError> {
        if valid_table(&self.table) {
            Ok(())
        } else {
            Err(EnforceError::BadTable {
                table: self.table.clone(),
            })
        }
    }

    fn fail(&self, what: String, out: NftFailure) -> EnforceError {
        out.into_error(what, &self.table)
    }

    /// Run `nft -f -` with `script`.
    fn run_script(&self, script: &str, what: impl FnOnce() -> String) -> Result<(), EnforceError> {
        run_nft(&self.nft, &["-f", "-"], Some(script))?.map_err(|f| self.fail(what(), f))?;
        Ok(())
    }

    /// Run `nft -j <args>` and parse its JSON.
    fn list_json(&self, args: &[&str], what: &str) -> Result<Value, EnforceError> {
        let mut argv = vec!["-j"];
        argv.extend_from_slice(args);
        let out = run_nft(&self.nft, &argv, None)?.map_err(|f| self.fail(what.to_string(), f))?;
        serde_json::from_str(&out).map_err(|e| EnforceError::Output {
            what: what.to_string(),
            detail: format!("invalid json: {e}"),
        })
    }

    /// The layout script: idempotent, never touches set elements; rewrites our chains' rules.
    fn layout_script(table: &str) -> String {
        let mut s = format!("add table inet {table}\n");
        for (name, fam, interval) in SETS {
            let flags = if interval {
                "interval, timeout"
            } else {
                "timeout"
            };
            s.push_str(&format!(
                "add set inet {table} {name} {{ type {}; flags {flags}; }}\n",
                fam.nft_type()
            ));
        }
        for chain in CHAINS {
            s.push_str(&format!(
                "add chain inet {table} {chain} {{ type filter hook {chain} priority {PRIORITY}; policy accept; }}\n"
            ));
            // Flushing a chain removes only its rules; the sets and their elements stay.
            s.push_str(&format!("flush chain inet {table} {chain}\n"));
            for (name, fam, _) in SETS {
                s.push_str(&format!(
                    "add rule inet {table} {chain} {} saddr @{name} counter drop\n",
                    fam.match_proto()
                ));
            }
        }
        s
    }

    /// Does `inet <table>` exist? (Used only to explain a failed setup.)
    fn table_exists(&self) -> bool {
        self.list_json(&["-t", "list", "ruleset", "inet"], "list tables")
            .is_ok_and(|v| missing_parts(&v, &self.table) != [format!("table inet {}", self.table)])
    }

    /// Learn whether this kernel refreshes a timeout on a plain re-add, in a scratch set.
    fn probe_refresh(&self) -> bool {
        let t = &self.table;
        let steps = [
            format!(
                "add set inet {t} {PROBE_SET} {{ type ipv4_addr; flags timeout; }}\nflush set inet {t} {PROBE_SET}\nadd element inet {t} {PROBE_SET} {{ 192.0.2.1 timeout 60s }}\n"
            ),
            format!("add element inet {t} {PROBE_SET} {{ 192.0.2.1 timeout 3600s }}\n"),
        ];
        let mut ok = steps
            .iter()
            .all(|s| self.run_script(s, String::new).is_ok());
        if ok {
            ok = self
                .list_json(
                    &["list", "set", "inet", t, PROBE_SET],
                    "probe timeout refresh",
                )
                .ok()
                .and_then(|v| set_elements(&v, PROBE_SET, Family::V4).ok())
                .is_some_and(|els| {
                    els.iter()
                        .any(|e| e.lasts.is_some_and(|d| d > Duration::from_secs(600)))
                });
        }
        let cleanup = format!("delete set inet {t} {PROBE_SET}\n");
        if let Err(e) = self.run_script(&cleanup, || "delete the probe set".into()) {
            warn!(error = %e, "could not delete the timeout-refresh probe set");
        }
        ok
    }

    /// Script lines that bring the prefix set of `fam` to the state `changes` ask for.
    fn net_lines(
        &self,
        fam: Family,
        changes: &[(IpNet, NetOp)],
        out: &mut String,
    ) -> Result<(), EnforceError> {
        let set = fam.net_set();
        let what = format!("list set {set}");
        let v = self.list_json(&["list", "set", "inet", &self.table, set], &what)?;
        let kernel =
            set_elements(&v, set, fam).map_err(|detail| EnforceError::Output { what, detail })?;
        let plan = resolve_prefixes(fam, kernel, changes);
        let t = &self.table;
        push_chunks(
            out,
            &format!("delete element inet {t} {set}"),
            &plan.deletes,
            |s| s.clone(),
        );
        push_chunks(
            out,
            &format!("add element inet {t} {set}"),
            &plan.adds,
            |(text, lasts)| format!("{text}{}", timeout_suffix(*lasts)),
        );
        Ok(())
    }

    /// Script lines for the address sets (no kernel state needed).
    fn host_lines(&self, ops: &[(IpNet, HostOp)], fam: Family, out: &mut String) {
        let t = &self.table;
        let set = fam.host_set();
        let mut readd: Vec<String> = Vec::new();
        let mut guarded: Vec<String> = Vec::new();
        let mut re_add: Vec<String> = Vec::new();
        for (net, op) in ops.iter().filter(|(n, _)| Family::of(n) == fam) {
            let addr = net.addr().to_string();
            match op {
                HostOp::Add(Some(d)) if self.refresh_by_readd => {
                    readd.push(format!("{addr}{}", timeout_suffix(Some(*d))));
                }
                HostOp::Add(lasts) => {
                    re_add.push(format!("{addr}{}", timeout_suffix(*lasts)));
                    guarded.push(addr);
                }
                HostOp::Remove => guarded.push(addr),
            }
        }
        let id = |s: &String| s.clone();
        push_chunks(out, &format!("add element inet {t} {set}"), &guarded, id);
        push_chunks(out, &format!("delete element inet {t} {set}"), &guarded, id);
        push_chunks(out, &format!("add element inet {t} {set}"), &re_add, id);
        push_chunks(out, &format!("add element inet {t} {set}"), &readd, id);
    }
}

impl Enforcer for NftEnforcer {
    fn name(&self) -> &'static str {
        "nftables"
    }

    fn setup(&mut self) -> Result<(), EnforceError> {
        self.check_table()?;
        let script = Self::layout_script(&self.table);
        match run_nft(&self.nft, &["-f", "-"], Some(&script))? {
            Ok(_) => {}
            // A set or chain of ours exists with other flags, type, hook or priority: nft
            // says "File exists" or "Operation not supported" depending on the object.
            Err(f)
                if f.stderr.contains("File exists")
                    || (f.stderr.contains("Operation not supported") && self.table_exists()) =>
            {
                return Err(EnforceError::Layout {
                    table: self.table.clone(),
                    detail: f.bounded(),
                });
            }
            Err(f) => return Err(self.fail("create the table, sets and chains".into(), f)),
        }
        self.refresh_by_readd = self.probe_refresh();
        info!(
            table = %self.table,
            refresh_by_readd = self.refresh_by_readd,
            "nftables ban table ready"
        );
        Ok(())
    }

    fn apply(&mut self, changes: &[Change<'_>]) -> Result<(), EnforceError> {
        self.check_table()?;
        if changes.is_empty() {
            return Ok(());
        }
        let (hosts, nets) = split_changes(changes);
        let mut host_script = String::with_capacity(hosts.len() * 40);
        for fam in [Family::V4, Family::V6] {
            self.host_lines(&hosts, fam, &mut host_script);
        }
        let what = || format!("apply {} changes", changes.len());
        let attempts = if nets.is_empty() { 1 } else { 2 };
        let mut last = None;
        for attempt in 0..attempts {
            let mut script = String::new();
            for fam in [Family::V4, Family::V6] {
                let mine: Vec<(IpNet, NetOp)> = nets
                    .iter()
                    .filter(|(n, _)| Family::of(n) == fam)
                    .copied()
                    .collect();
                if !mine.is_empty() {
                    self.net_lines(fam, &mine, &mut script)?;
                }
            }
            script.push_str(&host_script);
            match self.run_script(&script, what) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    if attempt + 1 < attempts {
                        warn!(error = %e, "ban transaction failed; retrying once with fresh prefix sets");
                    }
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| EnforceError::Output {
            what: what(),
            detail: "no attempt was made".into(),
        }))
    }

    fn list(&mut self) -> Result<Vec<KernelElement>, EnforceError> {
        self.check_table()?;
        let what = "list the ban sets";
        let v = self.list_json(&["list", "table", "inet", &self.table], what)?;
        let mut out = Vec::new();
        for (set, fam, _) in SETS {
            let els = set_elements(&v, set, fam).map_err(|detail| EnforceError::Output {
                what: what.into(),
                detail,
            })?;
            for e in els {
                for target in range_to_cidrs(fam, e.lo, e.hi) {
                    out.push(KernelElement {
                        target,
                        expires_in: e.lasts,
                    });
                }
            }
        }
        Ok(out)
    }

    fn verify(&mut self) -> Result<(), EnforceError> {
        self.check_table()?;
        // `-t` (terse) leaves set elements out. `list ruleset inet` is used because nft 1.0.6
        // still fetches every element for `list table` or `list chain` even when terse (0.6 s
        // with 100k bans), but not for `list ruleset` (a few ms).
        let v = self.list_json(&["-t", "list", "ruleset", "inet"], "verify the table")?;
        let missing = missing_parts(&v, &self.table);
        if missing.is_empty() {
            Ok(())
        } else {
            Err(EnforceError::NotEnforced {
                table: self.table.clone(),
                detail: missing.join(", "),
            })
        }
    }
}

/// Check that `nft` exists and the kernel accepts our layout, without changing anything
/// (`nft --check`). Call at start to fail with a clear message.
pub fn probe_nft(nft: &Path) -> Result<(), EnforceError> {
    let script = NftEnforcer::layout_script("ravelin_probe");
    match run_nft(nft, &["-c", "-f", "-"], Some(&script))? {
        Ok(_) => Ok(()),
        Err(f) => Err(f.into_error("check the ban table layout".into(), "ravelin_probe")),
    }
}

/// What the final op for one address is, after later changes override earlier ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HostOp {
    Add(Option<Duration>),
    Remove,
}

/// An op on a prefix, kept in order (overlap resolution depends on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NetOp {
    Add(Option<Duration>),
    Remove,
}

/// Final op per address, in first-seen order.
type HostOps = Vec<(IpNet, HostOp)>;
/// Prefix ops in batch order.
type NetOps = Vec<(IpNet, NetOp)>;

/// Split into address ops (deduplicated: the last change per address wins) and prefix ops.
fn split_changes(changes: &[Change<'_>]) -> (HostOps, NetOps) {
    let mut hosts: Vec<(IpNet, HostOp)> = Vec::new();
    let mut index: std::collections::HashMap<IpNet, usize> = std::collections::HashMap::new();
    let mut nets = Vec::new();
    for c in changes {
        let (net, add) = match c {
            Change::Add { permit, timeout } => (permit.target().trunc(), Some(*timeout)),
            Change::Remove { target } => (target.trunc(), None),
        };
        if net.prefix_len() == net.max_prefix_len() {
            let op = add.map_or(HostOp::Remove, HostOp::Add);
            match index.get(&net) {
                Some(&i) => hosts[i].1 = op,
                None => {
                    index.insert(net, hosts.len());
                    hosts.push((net, op));
                }
            }
        } else {
            nets.push((net, add.map_or(NetOp::Remove, NetOp::Add)));
        }
    }
    (hosts, nets)
}

/// ` timeout Ns` (whole seconds, rounded up, at least 1, at most [`MAX_TIMEOUT_S`]) or nothing.
fn timeout_suffix(t: Option<Duration>) -> String {
    match t {
        None => String::new(),
        Some(d) => {
            let mut s = d.as_secs();
            if d.subsec_nanos() > 0 {
                s = s.saturating_add(1);
            }
            format!(" timeout {}s", s.clamp(1, MAX_TIMEOUT_S))
        }
    }
}

/// Append `<head> { a, b, ... }` statements, [`CHUNK`] items each.
fn push_chunks<T>(out: &mut String, head: &str, items: &[T], fmt: impl Fn(&T) -> String) {
    for chunk in items.chunks(CHUNK) {
        out.push_str(head);
        out.push_str(" { ");
        for (i, it) in chunk.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(&fmt(it));
        }
        out.push_str(" }\n");
    }
}

fn valid_table(t: &str) -> bool {
    let mut chars = t.chars();
    t.len() <= 32
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// One element as the kernel holds it: an inclusive address range and its remaining time.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RangeElem {
    lo: u128,
    hi: u128,
    /// Remaining time; `None` = permanent.
    lasts: Option<Duration>,
}

/// Parse the elements of `set` out of `nft -j list ...` output. Elements may be plain
/// strings, `{"prefix": {"addr", "len"}}`, `{"range": [a, b]}`, or any of those wrapped in
/// `{"elem": {"val": .., "timeout": s, "expires": s}}`.
fn set_elements(v: &Value, set: &str, fam: Family) -> Result<Vec<RangeElem>, String> {
    let items = v
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or("no \"nftables\" array")?;
    let mut out = Vec::new();
    let mut found = false;
    for item in items {
        let Some(s) = item.get("set") else { continue };
        if s.get("name").and_then(Value::as_str) != Some(set) {
            continue;
        }
        found = true;
        let Some(elems) = s.get("elem").and_then(Value::as_array) else {
            continue;
        };
        for e in elems {
            out.push(parse_elem(e, fam)?);
        }
    }
    if found {
        Ok(out)
    } else {
        Err(format!("set {set} is missing"))
    }
}

fn parse_elem(e: &Value, fam: Family) -> Result<RangeElem, String> {
    if let Some(inner) = e.get("elem") {
        let val = inner
            .get("val")
            .ok_or_else(|| format!("element without val: {inner}"))?;
        let (lo, hi) = parse_val(val, fam)?;
        let secs = inner
            .get("expires")
            .or_else(|| inner.get("timeout"))
            .and_then(Value::as_u64);
        return Ok(RangeElem {
            lo,
            hi,
            lasts: secs.map(Duration::from_secs),
        });
    }
    let (lo, hi) = parse_val(e, fam)?;
    Ok(RangeElem {
        lo,
        hi,
        lasts: None,
    })
}

fn parse_val(v: &Value, fam: Family) -> Result<(u128, u128), String> {
    if let Some(s) = v.as_str() {
        let a = parse_addr(s, fam)?;
        return Ok((a, a));
    }
    if let Some(p) = v.get("prefix") {
        let addr = p
            .get("addr")
            .and_then(Value::as_str)
            .ok_or("prefix without addr")?;
        let len = p
            .get("len")
            .and_then(Value::as_u64)
            .ok_or("prefix without len")?;
        let a = parse_addr(addr, fam)?;
        let len = u32::try_from(len)
            .ok()
            .filter(|l| *l <= fam.bits())
            .ok_or("bad prefix len")?;
        let host_bits = fam.bits() - len;
        let mask = if host_bits >= 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        };
        return Ok((a & !mask, a | mask));
    }
    if let Some(r) = v.get("range").and_then(Value::as_array) {
        if let [a, b] = r.as_slice() {
            let (lo, _) = parse_val(a, fam)?;
            let (_, hi) = parse_val(b, fam)?;
            return Ok((lo, hi));
        }
    }
    Err(format!("unknown element form: {v}"))
}

fn parse_addr(s: &str, fam: Family) -> Result<u128, String> {
    match (fam, s.parse::<IpAddr>()) {
        (Family::V4, Ok(IpAddr::V4(a))) => Ok(u128::from(u32::from(a))),
        (Family::V6, Ok(IpAddr::V6(a))) => Ok(u128::from(a)),
        _ => Err(format!("not an {} address: {s:?}", fam.nft_type())),
    }
}

fn to_ip(fam: Family, x: u128) -> IpAddr {
    match fam {
        // Values of a v4 set come from u32s, so the truncation never loses bits.
        Family::V4 => IpAddr::V4(Ipv4Addr::from(u32::try_from(x).unwrap_or(u32::MAX))),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(x)),
    }
}

/// The fewest CIDRs that exactly cover `lo..=hi` (one when the range is a prefix).
fn range_to_cidrs(fam: Family, lo: u128, hi: u128) -> Vec<IpNet> {
    let bits = fam.bits();
    let mut out = Vec::new();
    let mut cur = lo;
    while cur <= hi {
        // Largest block starting at `cur`: limited by alignment and by the remaining span.
        let mut host_bits = cur.trailing_zeros().min(bits);
        loop {
            let last = if host_bits >= 128 {
                u128::MAX
            } else {
                cur | ((1u128 << host_bits) - 1)
            };
            if last <= hi {
                let len = u8::try_from(bits - host_bits).unwrap_or(0);
                if let Ok(net) = IpNet::new(to_ip(fam, cur), len) {
                    out.push(net);
                }
                match last.checked_add(1) {
                    Some(next) => cur = next,
                    None => return out,
                }
                break;
            }
            host_bits -= 1;
        }
    }
    out
}

fn net_range(net: &IpNet) -> (u128, u128) {
    match net {
        IpNet::V4(n) => (
            u128::from(u32::from(n.network())),
            u128::from(u32::from(n.broadcast())),
        ),
        IpNet::V6(n) => (u128::from(n.network()), u128::from(n.broadcast())),
    }
}

/// nft text for a range: `a`, `a/len` or `a-b`.
fn range_text(fam: Family, lo: u128, hi: u128) -> String {
    match range_to_cidrs(fam, lo, hi).as_slice() {
        [one] if one.prefix_len() == one.max_prefix_len() => one.addr().to_string(),
        [one] => one.to_string(),
        _ => format!("{}-{}", to_ip(fam, lo), to_ip(fam, hi)),
    }
}

/// `a` outlasts or equals `b` (`None` = forever).
fn lasts_at_least(a: Option<Duration>, b: Option<Duration>) -> bool {
    match (a, b) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(x), Some(y)) => x >= y,
    }
}

fn longest(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    if lasts_at_least(a, b) { a } else { b }
}

/// What to write for a prefix set: kernel elements to delete, new elements to add.
#[derive(Debug, Default, PartialEq, Eq)]
struct PrefixPlan {
    deletes: Vec<String>,
    adds: Vec<(String, Option<Duration>)>,
}

/// Resolve prefix changes against the kernel's current elements (see the module docs).
fn resolve_prefixes(fam: Family, kernel: Vec<RangeElem>, changes: &[(IpNet, NetOp)]) -> PrefixPlan {
    // (element, came from the kernel)
    let mut model: Vec<(RangeElem, bool)> = kernel.into_iter().map(|e| (e, true)).collect();
    let mut deletes = Vec::new();
    let mut take = |model: &mut Vec<(RangeElem, bool)>, mut idx: Vec<usize>| {
        idx.sort_unstable_by(|a, b| b.cmp(a));
        for i in idx {
            let (e, from_kernel) = model.swap_remove(i);
            if from_kernel {
                deletes.push(range_text(fam, e.lo, e.hi));
            }
        }
    };
    for (net, op) in changes {
        let (lo, hi) = net_range(net);
        let overlapping: Vec<usize> = model
            .iter()
            .enumerate()
            .filter(|(_, (e, _))| e.lo <= hi && e.hi >= lo)
            .map(|(i, _)| i)
            .collect();
        match op {
            NetOp::Add(t) => {
                let exact = overlapping.len() == 1
                    && model
                        .get(overlapping[0])
                        .is_some_and(|(e, _)| e.lo == lo && e.hi == hi);
                if exact || overlapping.is_empty() {
                    take(&mut model, overlapping);
                    model.push((RangeElem { lo, hi, lasts: *t }, false));
                    continue;
                }
                if let [i] = overlapping.as_slice() {
                    if let Some((w, _)) = model.get(*i) {
                        if w.lo <= lo && w.hi >= hi && lasts_at_least(w.lasts, *t) {
                            debug!(%net, "prefix ban already covered by a wider, longer ban");
                            continue;
                        }
                    }
                }
                let mut merged = RangeElem { lo, hi, lasts: *t };
                for i in &overlapping {
                    if let Some((e, _)) = model.get(*i) {
                        merged.lo = merged.lo.min(e.lo);
                        merged.hi = merged.hi.max(e.hi);
                        merged.lasts = longest(merged.lasts, e.lasts);
                    }
                }
                info!(
                    %net,
                    overlapping = overlapping.len(),
                    merged = %range_text(fam, merged.lo, merged.hi),
                    "prefix ban overlaps existing bans: merged into one element lasting as long as the longest"
                );
                take(&mut model, overlapping);
                model.push((merged, false));
            }
            NetOp::Remove => {
                let exact: Vec<usize> = overlapping
                    .iter()
                    .copied()
                    .filter(|i| model.get(*i).is_some_and(|(e, _)| e.lo == lo && e.hi == hi))
                    .collect();
                if exact.is_empty() && !overlapping.is_empty() {
                    info!(%net, "unban of a prefix that is not an element; overlapping bans stay");
                }
                take(&mut model, exact);
            }
        }
    }
    let adds = model
        .into_iter()
        .filter(|(_, from_kernel)| !from_kernel)
        .map(|(e, _)| (range_text(fam, e.lo, e.hi), e.lasts))
        .collect();
    PrefixPlan { deletes, adds }
}

/// What is missing from a terse ruleset listing for bans to be enforced in `inet <table>`.
fn missing_parts(v: &Value, table: &str) -> Vec<String> {
    let all: &[Value] = v
        .get("nftables")
        .and_then(Value::as_array)
        .map_or(&[], |a| a.as_slice());
    let inet = |o: &Value, key: &str| {
        o.get("family").and_then(Value::as_str) == Some("inet")
            && o.get(key).and_then(Value::as_str) == Some(table)
    };
    // Each item is `{"table"|"set"|"chain"|"rule": {...}}`; keep only our table's.
    let has_table = all
        .iter()
        .any(|i| i.get("table").is_some_and(|t| inet(t, "name")));
    if !has_table {
        return vec![format!("table inet {table}")];
    }
    let items: Vec<&Value> = all
        .iter()
        .filter(|i| {
            ["set", "chain", "rule"]
                .iter()
                .any(|k| i.get(*k).is_some_and(|o| inet(o, "table")))
        })
        .collect();
    let mut missing = Vec::new();
    for (set, _, _) in SETS {
        let present = items.iter().any(|i| {
            i.get("set")
                .and_then(|s| s.get("name"))
                .and_then(Value::as_str)
                == Some(set)
        });
        if !present {
            missing.push(format!("set {set}"));
        }
    }
    for chain in CHAINS {
        let hooked = items.iter().any(|i| {
            i.get("chain").is_some_and(|c| {
                c.get("name").and_then(Value::as_str) == Some(chain)
                    && c.get("hook").and_then(Value::as_str) == Some(chain)
            })
        });
        if !hooked {
            missing.push(format!("base chain {chain}"));
            continue;
        }
        for (set, _, _) in SETS {
            let reference = format!("@{set}");
            let has_rule = items.iter().any(|i| {
                let Some(r) = i.get("rule") else { return false };
                if r.get("chain").and_then(Value::as_str) != Some(chain) {
                    return false;
                }
                let Some(expr) = r.get("expr").and_then(Value::as_array) else {
                    return false;
                };
                let refs = expr.iter().any(|x| {
                    x.get("match")
                        .and_then(|m| m.get("right"))
                        .and_then(Value::as_str)
                        == Some(reference.as_str())
                });
                let drops = expr.iter().any(|x| x.get("drop").is_some());
                refs && drops
            });
            if !has_rule {
                missing.push(format!("rule `saddr @{set} drop` in chain {chain}"));
            }
        }
    }
    missing
}

/// A completed nft run that exited non-zero.
#[derive(Debug)]
struct NftFailure {
    status: String,
    stderr: String,
}

impl NftFailure {
    fn bounded(&self) -> String {
        let s = self.stderr.trim();
        if s.len() <= STDERR_CAP {
            return if s.is_empty() {
                format!("{}, no stderr", self.status)
            } else {
                s.to_string()
            };
        }
        let mut cut = STDERR_CAP;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{} ... ({} more bytes)", &s[..cut], s.len() - cut)
    }

    fn into_error(self, what: String, table: &str) -> EnforceError {
        let detail = self.bounded();
        if self.stderr.contains("Operation not permitted") {
            EnforceError::NotPermitted { detail }
        } else if self.stderr.contains("Protocol not supported")
            || self
                .stderr
                .contains("Could not process rule: Not supported")
        {
            EnforceError::Unavailable {
                reason: format!("the kernel lacks nf_tables support: {detail}"),
            }
        } else {
            EnforceError::Failed {
                what,
                table: table.to_string(),
                stderr: detail,
            }
        }
    }
}

/// Run nft with an argument vector (never a shell), feeding `stdin` if given. The outer
/// result is "could nft run at all", the inner one "did it succeed" (stdout on success).
fn run_nft(
    nft: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<Result<String, NftFailure>, EnforceError> {
    let mut child = Command::new(nft)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| EnforceError::Unavailable {
            reason: format!("cannot run {}: {e}", nft.display()),
        })?;
    let pipe = child.stdin.take();
    // Write stdin on its own thread: nft may fill stderr (one error per element) while we are
    // still writing, and both sides would block on full pipes.
    let (write_res, output) = std::thread::scope(|scope| {
        let writer = scope.spawn(move || -> std::io::Result<()> {
            if let (Some(mut pipe), Some(text)) = (pipe, stdin) {
                pipe.write_all(text.as_bytes())?;
            }
            Ok(())
        });
        let output = child.wait_with_output();
        (writer.join(), output)
    });
    let output = output.map_err(|e| EnforceError::Unavailable {
        reason: format!("waiting for {}: {e}", nft.display()),
    })?;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if !output.status.success() {
        return Ok(Err(NftFailure {
            status: output.status.to_string(),
            stderr,
        }));
    }
    match write_res {
        Ok(Ok(())) => {}
        // nft succeeded without reading everything: should not happen; report it.
        Ok(Err(e)) => {
            return Ok(Err(NftFailure {
                status: "stdin write failed".into(),
                stderr: e.to_string(),
            }));
        }
        Err(_) => {
            return Ok(Err(NftFailure {
                status: "stdin writer panicked".into(),
                stderr,
            }));
        }
    }
    String::from_utf8(output.stdout)
        .map(Ok)
        .map_err(|e| EnforceError::Output {
            what: format!("run nft {}", args.join(" ")),
            detail: format!("stdout is not utf-8: {e}"),
        })
}

#[cfg(test)]
mod tests;
