//! Network: the loaded firewall ruleset and the kernel's table of listening sockets.
//!
//! Lynis gives full firewall points for an installed package with an empty ruleset; here the
//! question is asked of the kernel: `nft -j list ruleset` must hold an input hook chain that
//! drops by default, for IPv4 and for IPv6 (an `inet` chain covers both), with no rule that
//! accepts everything. Listening sockets come from `/proc/net/tcp{,6}` under the audit root
//! (a fixture may carry its own copy); on a live system each socket's inode is mapped to the
//! owning process through `/proc/*/fd`, so "sshd on a public address" is known, not guessed
//! from the port.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::Value;

use super::{Group, Meta};
use crate::audit::sshd_config::SshdConfig;
use crate::audit::{CheckResult, Ctx, Evidence, Severity, Status, exec};

/// Default-deny inbound.
pub static DEFAULT_DENY: Meta = Meta {
    id: "fw.default-deny",
    title: "Firewall drops inbound traffic by default (IPv4 and IPv6)",
    severity: Severity::High,
    remediation: "load an nftables ruleset with an `inet` input chain, `policy drop`, accepting only established traffic, loopback and the needed ports (ravelin's firewall plan)",
};
/// Real sshd exposure.
pub static SSH_EXPOSURE: Meta = Meta {
    id: "ssh.exposure",
    title: "Real sshd not on public port 22",
    severity: Severity::Medium,
    remediation: "move the real sshd to another port or a private/VPN address (ravelin harden ssh --port N) and leave port 22 to the decoy",
};
/// Root-owned public listeners.
pub static ROOT_LISTENERS: Meta = Meta {
    id: "net.root-listeners",
    title: "No root-owned network listeners besides sshd",
    severity: Severity::Low,
    remediation: "run network services as dedicated users (User= in the unit, or the daemon's own setting), or bind them to loopback",
};

/// A ban layer that is running and wired into the firewall.
pub static BAN_LAYER: Meta = Meta {
    id: "ban.layer",
    title: "A ban daemon runs and its ban set is referenced by a drop rule",
    severity: Severity::Medium,
    remediation: "run `ravelin run` (or fail2ban) as a service, and check that its nftables set is matched by a drop rule in an input hook chain",
};
/// An intrusion detection system running.
pub static IDS_RUNNING: Meta = Meta {
    id: "ids.running",
    title: "A network IDS is running",
    severity: Severity::Low,
    remediation: "apt-get install suricata and run it on the public interface (or an equivalent IDS), with its alerts routed to the operations channel",
};

/// Listening ports compared with what the ruleset lets in.
pub static OPEN_PORTS: Meta = Meta {
    id: "fw.open-ports",
    title: "The ruleset opens only ports that something listens on",
    severity: Severity::Low,
    remediation: "remove accept rules for ports nothing listens on (a stale opening exposes the next service that binds it), and bind internal services to loopback",
};

/// Firewall group (one `nft -j list ruleset` feeds all three checks).
pub const FIREWALL: Group = Group {
    name: "firewall",
    checks: &[&DEFAULT_DENY, &BAN_LAYER, &OPEN_PORTS],
    run: firewall,
};

/// TCP destination port ranges accepted by rules of input hook chains.
pub fn accepted_tcp_ports(json: &str) -> Vec<(u16, u16)> {
    let doc: Value = serde_json::from_str(json).unwrap_or(Value::Null);
    let items = doc["nftables"].as_array().cloned().unwrap_or_default();
    let inputs: Vec<(String, String, String)> = items
        .iter()
        .filter_map(|i| i.get("chain"))
        .filter(|c| c["hook"].as_str() == Some("input"))
        .map(|c| {
            (
                c["family"].as_str().unwrap_or_default().to_string(),
                c["table"].as_str().unwrap_or_default().to_string(),
                c["name"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let mut out = Vec::new();
    for r in items.iter().filter_map(|i| i.get("rule")) {
        let key = (
            r["family"].as_str().unwrap_or_default().to_string(),
            r["table"].as_str().unwrap_or_default().to_string(),
            r["chain"].as_str().unwrap_or_default().to_string(),
        );
        if !inputs.contains(&key) {
            continue;
        }
        let expr = r["expr"].as_array().cloned().unwrap_or_default();
        if !expr.iter().any(|e| e.get("accept").is_some()) {
            continue;
        }
        for m in expr.iter().filter_map(|e| e.get("match")) {
            let left = &m["left"]["payload"];
            if left["field"].as_str() == Some("dport") && left["protocol"].as_str() == Some("tcp") {
                collect_ports(&m["right"], &mut out);
            }
        }
    }
    out
}

fn collect_ports(v: &Value, out: &mut Vec<(u16, u16)>) {
    let num = |x: &Value| x.as_u64().and_then(|n| u16::try_from(n).ok());
    match v {
        Value::Number(_) => {
            if let Some(p) = num(v) {
                out.push((p, p));
            }
        }
        Value::Object(o) => {
            if let Some(items) = o.get("set").and_then(Value::as_array) {
                for i in items {
                    collect_ports(i, out);
                }
            } else if let Some(r) = o.get("range").and_then(Value::as_array) {
                if let (Some(a), Some(b)) = (r.first().and_then(num), r.get(1).and_then(num)) {
                    out.push((a.min(b), a.max(b)));
                }
            }
        }
        _ => {}
    }
}

/// Judges the accepted ports against the public TCP listeners (pure).
pub fn judge_open_ports(
    accepted: &[(u16, u16)],
    default_deny: bool,
    listeners: &[Listener],
    source: &str,
) -> CheckResult {
    let public: Vec<&Listener> = listeners.iter().filter(|l| is_public(&l.addr)).collect();
    let allowed = |p: u16| accepted.iter().any(|(a, b)| *a <= p && p <= *b);
    let show = |l: &Listener| match l.addr {
        IpAddr::V6(a) => format!("[{a}]:{}", l.port),
        IpAddr::V4(a) => format!("{a}:{}", l.port),
    };
    if !default_deny {
        let list: Vec<String> = public.iter().map(|l| show(l)).collect();
        return OPEN_PORTS.result(
            Status::Fail,
            format!(
                "no default deny: every public listener is reachable ({})",
                if list.is_empty() {
                    "none right now".to_string()
                } else {
                    list.join(", ")
                }
            ),
            vec![Evidence::new(
                source,
                format!("{} public listeners", public.len()),
            )],
        );
    }
    let reachable: Vec<String> = public
        .iter()
        .filter(|l| allowed(l.port))
        .map(|l| show(l))
        .collect();
    let stale: Vec<u16> = accepted
        .iter()
        .filter(|(a, b)| a == b && !listeners.iter().any(|l| l.port == *a))
        .map(|(a, _)| *a)
        .collect();
    let mut ev = vec![Evidence::new(
        source,
        format!(
            "reachable listeners: {}",
            if reachable.is_empty() {
                "none".to_string()
            } else {
                reachable.join(", ")
            }
        ),
    )];
    if stale.is_empty() {
        OPEN_PORTS.result(
            Status::Pass,
            "every port the ruleset opens has a listener",
            ev,
        )
    } else {
        let list: Vec<String> = stale.iter().map(|p| format!("tcp/{p}")).collect();
        ev.push(Evidence::new(
            source,
            format!("accepted with no listener: {}", list.join(", ")),
        ));
        OPEN_PORTS.result(
            Status::Warn,
            format!(
                "the ruleset accepts {} where nothing listens",
                list.join(", ")
            ),
            ev,
        )
    }
}

fn live_listeners() -> Vec<Listener> {
    let mut l = Vec::new();
    for f in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(t) = std::fs::read_to_string(f) {
            l.extend(parse_proc_tcp(&t));
        }
    }
    l
}

/// IDS group.
pub const IDS: Group = Group {
    name: "ids",
    checks: &[&IDS_RUNNING],
    run: ids,
};

/// Ban daemons recognised by process name, and what to call them.
const BAN_DAEMONS: &[(&str, &str)] = &[
    ("ravelin", "ravelin"),
    ("fail2ban-server", "fail2ban"),
    ("crowdsec", "crowdsec"),
    ("sshguard", "sshguard"),
];
/// IDS daemons recognised by process name.
const IDS_DAEMONS: &[&str] = &[
    "Suricata-Main",
    "suricata",
    "snort",
    "zeek",
    "wazuh-analysisd",
    "ossec-analysisd",
];

fn ban_daemons() -> Vec<String> {
    let mut found = Vec::new();
    for (comm, argv) in super::processes() {
        for (name, shown) in BAN_DAEMONS {
            // `ravelin` counts only as the daemon (`ravelin run`), not as this audit.
            let is = comm == *name && (*name != "ravelin" || argv.iter().any(|a| a == "run"));
            if is && !found.iter().any(|f| f == shown) {
                found.push((*shown).to_string());
            }
        }
    }
    found
}

fn ids(ctx: &Ctx) -> Vec<CheckResult> {
    if !ctx.live {
        return vec![
            IDS_RUNNING.na("running processes exist only on a live system (not under --root)"),
        ];
    }
    let running: Vec<String> = super::processes()
        .into_iter()
        .filter(|(c, _)| IDS_DAEMONS.contains(&c.as_str()))
        .map(|(c, _)| c)
        .collect();
    if let Some(p) = running.first() {
        return vec![IDS_RUNNING.result(
            Status::Pass,
            format!("{p} is running"),
            vec![Evidence::new("read /proc/*/comm", p.clone())],
        )];
    }
    let installed: Vec<String> = ["suricata", "snort", "zeek"]
        .iter()
        .filter_map(|n| exec::find_program(&ctx.root, n))
        .map(|p| p.display().to_string())
        .collect();
    let reason = if installed.is_empty() {
        "no IDS installed (suricata, snort, zeek)".to_string()
    } else {
        format!("installed but not running: {}", installed.join(", "))
    };
    vec![IDS_RUNNING.result(
        Status::Fail,
        reason,
        vec![Evidence::new("read /proc/*/comm", "no IDS process")],
    )]
}

/// Judges the ban layer: a daemon runs, and some set is matched by a drop/reject rule
/// (pure; `daemons` are the ban daemons found running).
pub fn judge_ban_layer(json: &str, source: &str, daemons: &[String]) -> CheckResult {
    let doc: Value = serde_json::from_str(json).unwrap_or(Value::Null);
    let items = doc["nftables"].as_array().cloned().unwrap_or_default();
    let mut wired = Vec::new();
    for it in &items {
        let Some(r) = it.get("rule") else { continue };
        let expr = r["expr"].as_array().cloned().unwrap_or_default();
        let drops = expr
            .iter()
            .any(|e| e.get("drop").is_some() || e.get("reject").is_some());
        for e in &expr {
            if let Some(set) = e["match"]["right"]
                .as_str()
                .and_then(|x| x.strip_prefix('@'))
            {
                if drops {
                    let elems = items
                        .iter()
                        .filter_map(|i| i.get("set"))
                        .find(|x| x["name"].as_str() == Some(set) && x["table"] == r["table"])
                        .and_then(|x| x["elem"].as_array().map(Vec::len))
                        .unwrap_or(0);
                    wired.push(format!(
                        "{} {} {}: drop from @{set} ({elems} elements)",
                        r["family"].as_str().unwrap_or("?"),
                        r["table"].as_str().unwrap_or("?"),
                        r["chain"].as_str().unwrap_or("?")
                    ));
                }
            }
        }
    }
    let mut ev: Vec<Evidence> = wired
        .iter()
        .map(|w| Evidence::new(source, w.clone()))
        .collect();
    ev.push(Evidence::new(
        "read /proc/*/comm",
        if daemons.is_empty() {
            "no ban daemon running".to_string()
        } else {
            format!("running: {}", daemons.join(", "))
        },
    ));
    let (status, reason) = match (daemons.is_empty(), wired.is_empty()) {
        (true, _) => (
            Status::Fail,
            "no ban daemon is running (ravelin, fail2ban, crowdsec, sshguard)".to_string(),
        ),
        (false, true) => (
            Status::Fail,
            format!(
                "{} runs but no drop rule references a ban set: its bans would not apply",
                daemons.join(", ")
            ),
        ),
        (false, false) => (
            Status::Pass,
            format!(
                "{} runs and its ban set is matched by a drop rule",
                daemons.join(", ")
            ),
        ),
    };
    BAN_LAYER.result(status, reason, ev)
}

/// Socket group.
pub const SOCKETS: Group = Group {
    name: "sockets",
    checks: &[&SSH_EXPOSURE, &ROOT_LISTENERS],
    run: sockets,
};

fn firewall(ctx: &Ctx) -> Vec<CheckResult> {
    if !ctx.live {
        let why = "the loaded ruleset exists only in a running kernel (not under --root)";
        return vec![DEFAULT_DENY.na(why), BAN_LAYER.na(why), OPEN_PORTS.na(why)];
    }
    let nft = exec::find_program(&ctx.root, "nft")
        .unwrap_or_else(|| std::path::PathBuf::from("/usr/sbin/nft"));
    let args = ["-j", "list", "ruleset"];
    let shown = exec::display(&nft, &args);
    let daemons = ban_daemons();
    match exec::run(&nft, &args, ctx.timeout) {
        Ok(o) if o.success() => {
            let deny = evaluate_ruleset(&o.stdout, &shown);
            let ports = judge_open_ports(
                &accepted_tcp_ports(&o.stdout),
                deny.status == Status::Pass,
                &live_listeners(),
                &format!("{shown} + /proc/net/tcp{{,6}}"),
            );
            vec![deny, judge_ban_layer(&o.stdout, &shown, &daemons), ports]
        }
        Ok(o) => {
            let why = format!("`{shown}` failed: {}", o.stderr.trim());
            vec![
                DEFAULT_DENY.result(Status::Error, why.clone(), vec![]),
                BAN_LAYER.result(Status::Error, why.clone(), vec![]),
                OPEN_PORTS.result(Status::Error, why, vec![]),
            ]
        }
        Err(exec::ExecError::NotFound(_)) => vec![
            DEFAULT_DENY.result(
                Status::Fail,
                "nft is not installed: no nftables ruleset can be loaded",
                vec![Evidence::new(shown.clone(), "not found")],
            ),
            judge_ban_layer("{}", &shown, &daemons),
            judge_open_ports(&[], false, &live_listeners(), "/proc/net/tcp{,6}"),
        ],
        Err(e) => vec![
            DEFAULT_DENY.result(Status::Error, e.to_string(), vec![]),
            BAN_LAYER.result(Status::Error, e.to_string(), vec![]),
            OPEN_PORTS.result(Status::Error, e.to_string(), vec![]),
        ],
    }
}

/// Judges an `nft -j list ruleset` document (pure; table-tested on fixture JSON).
pub fn evaluate_ruleset(json: &str, source: &str) -> CheckResult {
    let doc: Value = match serde_json::from_str(json) {
        Ok(v) => v,
        Err(e) => {
            return DEFAULT_DENY.result(
                Status::Error,
                format!("could not parse the ruleset JSON: {e}"),
                vec![],
            );
        }
    };
    let items = doc["nftables"].as_array().cloned().unwrap_or_default();
    let mut chains: Vec<(String, String, String, String)> = Vec::new(); // family, table, name, policy
    let mut rules: HashMap<(String, String, String), Vec<Value>> = HashMap::new();
    for it in &items {
        if let Some(c) = it.get("chain") {
            if c["hook"].as_str() == Some("input") && c["type"].as_str() == Some("filter") {
                chains.push((
                    c["family"].as_str().unwrap_or_default().into(),
                    c["table"].as_str().unwrap_or_default().into(),
                    c["name"].as_str().unwrap_or_default().into(),
                    c["policy"].as_str().unwrap_or("accept").into(),
                ));
            }
        } else if let Some(r) = it.get("rule") {
            let key = (
                r["family"].as_str().unwrap_or_default().to_string(),
                r["table"].as_str().unwrap_or_default().to_string(),
                r["chain"].as_str().unwrap_or_default().to_string(),
            );
            let expr = r["expr"].as_array().cloned().unwrap_or_default();
            rules.entry(key).or_default().push(Value::Array(expr));
        }
    }
    let tables = items.iter().filter(|i| i.get("table").is_some()).count();
    if chains.is_empty() {
        let why = if tables == 0 {
            "the ruleset is empty: every port is open to the internet".to_string()
        } else {
            format!(
                "{tables} tables loaded but no input hook chain: inbound traffic is not filtered"
            )
        };
        return DEFAULT_DENY.result(
            Status::Fail,
            why,
            vec![Evidence::new(
                source,
                format!("{tables} tables, 0 input chains"),
            )],
        );
    }
    let mut v4 = false;
    let mut v6 = false;
    let mut ev = Vec::new();
    let mut open_all = Vec::new();
    for (fam, table, name, policy) in &chains {
        let rs = rules
            .get(&(fam.clone(), table.clone(), name.clone()))
            .cloned()
            .unwrap_or_default();
        let ends_in_drop = rs.last().is_some_and(|r| {
            let a = r.as_array().cloned().unwrap_or_default();
            !a.iter().any(|e| e.get("match").is_some())
                && a.iter()
                    .any(|e| e.get("drop").is_some() || e.get("reject").is_some())
        });
        let denies = policy == "drop" || ends_in_drop;
        let mut ports = Vec::new();
        for r in &rs {
            let a = r.as_array().cloned().unwrap_or_default();
            let accepts = a.iter().any(|e| e.get("accept").is_some());
            let matches: Vec<&Value> = a.iter().filter_map(|e| e.get("match")).collect();
            if accepts && matches.is_empty() {
                open_all.push(format!("{fam} {table} {name}"));
            }
            if accepts {
                for m in matches {
                    if m["left"]["payload"]["field"].as_str() == Some("dport") {
                        let proto = m["left"]["payload"]["protocol"].as_str().unwrap_or("?");
                        ports.push(format!("{proto}/{}", port_text(&m["right"])));
                    }
                }
            }
        }
        if denies {
            match fam.as_str() {
                "inet" => {
                    v4 = true;
                    v6 = true;
                }
                "ip" => v4 = true,
                "ip6" => v6 = true,
                _ => {}
            }
        }
        ev.push(Evidence::new(
            source,
            format!(
                "chain {fam} {table} {name}: hook input, policy {policy}{}; accepts {}",
                if ends_in_drop { ", ends in drop" } else { "" },
                if ports.is_empty() {
                    "no ports".to_string()
                } else {
                    ports.join(" ")
                }
            ),
        ));
    }
    let (status, reason) = if !open_all.is_empty() {
        (
            Status::Fail,
            format!(
                "an input chain accepts all traffic with no condition ({})",
                open_all.join(", ")
            ),
        )
    } else if v4 && v6 {
        (
            Status::Pass,
            "inbound traffic is dropped by default for IPv4 and IPv6".to_string(),
        )
    } else if v4 {
        (
            Status::Fail,
            "IPv4 is default-deny but IPv6 is not filtered by default".into(),
        )
    } else if v6 {
        (
            Status::Fail,
            "IPv6 is default-deny but IPv4 is not filtered by default".into(),
        )
    } else {
        (
            Status::Fail,
            "input chains exist but accept by default (policy accept, no final drop)".into(),
        )
    };
    DEFAULT_DENY.result(status, reason, ev)
}

fn port_text(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Object(o) => {
            if let Some(s) = o.get("set").and_then(Value::as_array) {
                s.iter().map(port_text).collect::<Vec<_>>().join(",")
            } else if let Some(r) = o.get("range").and_then(Value::as_array) {
                r.iter().map(port_text).collect::<Vec<_>>().join("-")
            } else {
                v.to_string()
            }
        }
        _ => v.to_string(),
    }
}

/// A listening TCP socket from `/proc/net/tcp{,6}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Local address.
    pub addr: IpAddr,
    /// Local port.
    pub port: u16,
    /// Owner uid.
    pub uid: u32,
    /// Socket inode.
    pub inode: u64,
}

/// Parses a `/proc/net/tcp` or `tcp6` table, keeping sockets in LISTEN state.
pub fn parse_proc_tcp(text: &str) -> Vec<Listener> {
    let mut out = Vec::new();
    for l in text.lines().skip(1) {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 10 || f[3] != "0A" {
            continue;
        }
        let Some((a, p)) = f[1].split_once(':') else {
            continue;
        };
        let (Some(addr), Ok(port)) = (hex_addr(a), u16::from_str_radix(p, 16)) else {
            continue;
        };
        out.push(Listener {
            addr,
            port,
            uid: f[7].parse().unwrap_or(u32::MAX),
            inode: f[9].parse().unwrap_or(0),
        });
    }
    out
}

fn hex_addr(h: &str) -> Option<IpAddr> {
    // The kernel prints each 32-bit word in host byte order (little-endian here).
    let word = |s: &str| u32::from_str_radix(s, 16).ok().map(|w| w.to_le_bytes());
    // Under --root the table is just a file: slice only what is plain hex.
    if !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    match h.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(h)?))),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(&h[i * 8..i * 8 + 8])?);
            }
            Some(IpAddr::V6(Ipv6Addr::from(b)))
        }
        _ => None,
    }
}

/// True for addresses reachable from the internet (unspecified = every interface).
pub fn is_public(a: &IpAddr) -> bool {
    match a {
        IpAddr::V4(v) => {
            let o = v.octets();
            !(v.is_loopback()
                || v.is_private()
                || v.is_link_local()
                || (o[0] == 100 && (o[1] & 0xc0) == 64))
        }
        IpAddr::V6(v) => {
            if let Some(m) = v.to_ipv4_mapped() {
                return is_public(&IpAddr::V4(m));
            }
            let s = v.segments();
            !(v.is_loopback() || (s[0] & 0xfe00) == 0xfc00 || (s[0] & 0xffc0) == 0xfe80)
        }
    }
}

/// Socket inode -> process name, from `/proc/*/fd` (live systems, root).
fn socket_owners() -> HashMap<u64, String> {
    let mut m = HashMap::new();
    for (pid, comm) in super::pids_and_names() {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(t) = std::fs::read_link(fd.path()) {
                let t = t.to_string_lossy();
                if let Some(n) = t.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']')) {
                    if let Ok(ino) = n.parse() {
                        m.entry(ino).or_insert_with(|| comm.clone());
                    }
                }
            }
        }
    }
    m
}

fn sockets(ctx: &Ctx) -> Vec<CheckResult> {
    let mut listeners = Vec::new();
    let mut read = Vec::new();
    for f in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(t) = std::fs::read_to_string(ctx.path(f)) {
            listeners.extend(parse_proc_tcp(&t));
            read.push(ctx.path(f).display().to_string());
        }
    }
    if read.is_empty() {
        let why = if ctx.live {
            "could not read /proc/net/tcp"
        } else {
            "no proc/net/tcp under the audit root (the socket table exists only on a live system)"
        };
        return vec![SSH_EXPOSURE.na(why), ROOT_LISTENERS.na(why)];
    }
    let owners = if ctx.live {
        socket_owners()
    } else {
        HashMap::new()
    };
    let mut ssh_ports: Vec<u16> = SshdConfig::load(&ctx.root, &ctx.sshd_config)
        .map(|c| {
            c.global_all("port")
                .iter()
                .filter_map(|d| d.value.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default();
    if ssh_ports.is_empty() {
        ssh_ports.push(22);
    }
    let is_sshd = |l: &Listener| match owners.get(&l.inode) {
        Some(c) => c == "sshd",
        None => ssh_ports.contains(&l.port),
    };
    let src = read.join(" + ");
    let show = |l: &Listener| {
        let who = owners
            .get(&l.inode)
            .map(|c| format!(" ({c})"))
            .unwrap_or_default();
        match l.addr {
            IpAddr::V6(a) => format!("[{a}]:{} uid={}{who}", l.port, l.uid),
            IpAddr::V4(a) => format!("{a}:{} uid={}{who}", l.port, l.uid),
        }
    };
    let sshd: Vec<&Listener> = listeners.iter().filter(|l| is_sshd(l)).collect();
    let public22: Vec<&Listener> = sshd
        .iter()
        .copied()
        .filter(|l| l.port == 22 && is_public(&l.addr))
        .collect();
    let ev: Vec<Evidence> = sshd.iter().map(|l| Evidence::new(&src, show(l))).collect();
    let exposure = if sshd.is_empty() {
        SSH_EXPOSURE.result(
            Status::Pass,
            "no sshd listening socket found",
            vec![Evidence::new(
                &src,
                format!("{} listening sockets, none sshd's", listeners.len()),
            )],
        )
    } else if !public22.is_empty() {
        SSH_EXPOSURE.result(
            Status::Warn,
            format!(
                "the real sshd listens on public port 22 ({}): scanners reach it and a decoy cannot take the port",
                public22.iter().map(|l| show(l)).collect::<Vec<_>>().join(", ")
            ),
            ev,
        )
    } else {
        SSH_EXPOSURE.result(
            Status::Pass,
            "sshd listens only on a non-standard port or private addresses",
            ev,
        )
    };
    let root_pub: Vec<&Listener> = listeners
        .iter()
        .filter(|l| l.uid == 0 && is_public(&l.addr) && !is_sshd(l))
        .collect();
    let root = if root_pub.is_empty() {
        ROOT_LISTENERS.result(
            Status::Pass,
            "no root-owned listener on a public address besides sshd",
            vec![Evidence::new(
                &src,
                format!("{} listening sockets", listeners.len()),
            )],
        )
    } else {
        ROOT_LISTENERS.result(
            Status::Warn,
            format!(
                "{} root-owned listener(s) on public addresses",
                root_pub.len()
            ),
            root_pub
                .iter()
                .map(|l| Evidence::new(&src, show(l)))
                .collect(),
        )
    };
    vec![exposure, root]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_tcp_rows_decode() {
        let t = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1234 1 0 100 0 0 10 0\n   1: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000   101        0 99 1 0\n   2: 0100007F:0CEB 0100007F:0016 01 00000000:00000000 00:00000000 00000000   101        0 98 1 0\n";
        let l = parse_proc_tcp(t);
        assert_eq!(l.len(), 2);
        assert_eq!(
            (l[0].addr.to_string(), l[0].port, l[0].uid),
            ("0.0.0.0".into(), 22, 0)
        );
        assert_eq!(
            (l[1].addr.to_string(), l[1].port, l[1].uid),
            ("127.0.0.1".into(), 3306, 101)
        );
        let t6 = "sl\n 0: 00000000000000000000000001000000:0016 00000000000000000000000000000000:0000 0A 0:0 0:0 0 0 0 55 1\n";
        let l6 = parse_proc_tcp(t6);
        assert_eq!(l6[0].addr.to_string(), "::1");
        // Malformed rows (a crafted file under --root) are skipped, never a panic.
        let junk =
            "h\n 0: 0000000000000000000000000100é0000:0016 x 0A a b c 0 0 1\n 1: zz:zz 0 0A\n";
        assert!(parse_proc_tcp(junk).is_empty());
    }

    fn ruleset(objects: &str) -> String {
        format!(r#"{{"nftables": [{{"metainfo": {{"json_schema_version": 1}}}}{objects}]}}"#)
    }

    fn chain(family: &str, policy: &str) -> String {
        format!(
            r#", {{"table": {{"family": "{family}", "name": "f"}}}}, {{"chain": {{"family": "{family}", "table": "f", "name": "input", "type": "filter", "hook": "input", "prio": 0, "policy": "{policy}"}}}}"#
        )
    }

    fn rule(family: &str, expr: &str) -> String {
        format!(
            r#", {{"rule": {{"family": "{family}", "table": "f", "chain": "input", "expr": [{expr}]}}}}"#
        )
    }

    #[test]
    fn rulesets_are_judged_by_their_effect() {
        let ssh = r#"{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}}, {"accept": null}"#;
        let cases = [
            (ruleset(""), Status::Fail, "empty"),
            (
                ruleset(r#", {"table": {"family": "inet", "name": "x"}}"#),
                Status::Fail,
                "no input hook chain",
            ),
            (
                ruleset(&chain("inet", "accept")),
                Status::Fail,
                "accept by default",
            ),
            (
                ruleset(&chain("ip", "drop")),
                Status::Fail,
                "IPv6 is not filtered",
            ),
            (
                ruleset(&format!("{}{}", chain("ip", "drop"), chain("ip6", "drop"))),
                Status::Pass,
                "IPv4 and IPv6",
            ),
            (
                ruleset(&format!("{}{}", chain("inet", "drop"), rule("inet", ssh))),
                Status::Pass,
                "",
            ),
            (
                ruleset(&format!(
                    "{}{}",
                    chain("inet", "accept"),
                    rule("inet", r#"{"counter": null}, {"drop": null}"#)
                )),
                Status::Pass,
                "",
            ),
            (
                ruleset(&format!(
                    "{}{}",
                    chain("inet", "drop"),
                    rule("inet", r#"{"accept": null}"#)
                )),
                Status::Fail,
                "accepts all traffic",
            ),
            ("not json".to_string(), Status::Error, "could not parse"),
        ];
        for (json, status, why) in cases {
            let r = evaluate_ruleset(&json, "nft -j list ruleset");
            assert_eq!(r.status, status, "{json}: {}", r.reason);
            assert!(r.reason.contains(why), "{json}: {}", r.reason);
        }
        let r = evaluate_ruleset(
            &ruleset(&format!("{}{}", chain("inet", "drop"), rule("inet", ssh))),
            "nft",
        );
        assert!(r.evidence[0].value.as_deref().unwrap().contains("tcp/22"));
    }

    #[test]
    fn a_ban_layer_must_run_and_be_wired_to_a_drop_rule() {
        let set = r#", {"set": {"family": "inet", "table": "ravelin", "name": "ban4", "type": "ipv4_addr", "elem": ["203.0.113.7", "198.51.100.1"]}}"#;
        let drop = r#", {"rule": {"family": "inet", "table": "ravelin", "chain": "input", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@ban4"}}, {"drop": null}]}}"#;
        let count = r#", {"rule": {"family": "inet", "table": "ravelin", "chain": "input", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@ban4"}}, {"counter": null}]}}"#;
        let ravelin = vec!["ravelin".to_string()];
        let cases = [
            (
                ruleset(&format!("{set}{drop}")),
                ravelin.clone(),
                Status::Pass,
                "2 elements",
            ),
            (
                ruleset(&format!("{set}{count}")),
                ravelin.clone(),
                Status::Fail,
                "would not apply",
            ),
            (
                ruleset(""),
                ravelin.clone(),
                Status::Fail,
                "would not apply",
            ),
            (
                ruleset(&format!("{set}{drop}")),
                vec![],
                Status::Fail,
                "no ban daemon",
            ),
        ];
        for (json, daemons, status, why) in cases {
            let r = judge_ban_layer(&json, "nft", &daemons);
            assert_eq!(r.status, status, "{json}");
            assert!(
                format!("{} {:?}", r.reason, r.evidence).contains(why),
                "{why}: {r:?}"
            );
        }
    }

    #[test]
    fn accepted_ports_are_compared_with_listeners() {
        let rules = format!(
            "{}{}{}",
            chain("inet", "drop"),
            rule(
                "inet",
                r#"{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": {"set": [22, 8080, {"range": [6000, 6010]}]}}}, {"accept": null}"#
            ),
            rule(
                "inet",
                r#"{"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 53}}, {"accept": null}"#
            )
        );
        let acc = accepted_tcp_ports(&ruleset(&rules));
        assert_eq!(acc, [(22, 22), (8080, 8080), (6000, 6010)]);
        let l = |a: &str, port: u16| Listener {
            addr: a.parse().unwrap(),
            port,
            uid: 0,
            inode: 0,
        };
        let listeners = [l("0.0.0.0", 22), l("127.0.0.1", 5432), l("0.0.0.0", 6001)];
        let cases = [
            (
                &acc[..],
                true,
                Status::Warn,
                "tcp/8080 where nothing listens",
            ),
            (&acc[..1], true, Status::Pass, "has a listener"),
            (&acc[..], false, Status::Fail, "0.0.0.0:22, 0.0.0.0:6001"),
        ];
        for (accepted, deny, status, why) in cases {
            let r = judge_open_ports(accepted, deny, &listeners, "nft");
            assert_eq!(r.status, status, "{r:?}");
            assert!(r.reason.contains(why), "{}", r.reason);
        }
        let r = judge_open_ports(&acc[..1], true, &listeners, "nft");
        assert!(
            r.evidence[0]
                .value
                .as_deref()
                .unwrap()
                .contains("0.0.0.0:22")
        );
    }

    #[test]
    fn public_addresses() {
        for (a, want) in [
            ("0.0.0.0", true),
            ("203.0.113.5", true),
            ("127.0.0.1", false),
            ("10.0.0.1", false),
            ("100.64.1.1", false),
            ("::", true),
            ("::1", false),
            ("fd00::1", false),
            ("fe80::1", false),
            ("2001:db8::1", true),
        ] {
            assert_eq!(is_public(&a.parse().unwrap()), want, "{a}");
        }
    }
}
