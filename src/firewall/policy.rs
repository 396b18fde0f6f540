//! The declarative `[firewall]` policy: TOML -> validated [`Policy`], every error at once.
//!
//! Parsed by hand from a `toml::Value` (like `config::raw`) so that every problem is reported
//! with its key path in one pass, and nothing is applied while any remains. Checks that need
//! the host (does interface `wg0` exist?) go through [`HostView`] so tests can fake them.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

use crate::config::parse_duration;

/// Every validation error: (key path, message).
pub type PolicyErrors = Vec<(String, String)>;

/// Transport protocol of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Proto {
    /// The nft keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// One allowed service: `tcp/443` or a range `udp/60000-61000`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Service {
    /// Protocol.
    pub proto: Proto,
    /// First port (inclusive).
    pub first: u16,
    /// Last port (inclusive; equal to `first` for one port).
    pub last: u16,
}

impl Service {
    /// Does this service cover `proto`/`port`?
    pub fn covers(&self, proto: Proto, port: u16) -> bool {
        self.proto == proto && self.first <= port && port <= self.last
    }
    /// The port or range as nft writes it (`443`, `60000-61000`).
    pub fn ports(&self) -> String {
        if self.first == self.last {
            self.first.to_string()
        } else {
            format!("{}-{}", self.first, self.last)
        }
    }
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.proto.as_str(), self.ports())
    }
}

/// `[firewall.ssh]`: where the real sshd listens and who may reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshPolicy {
    /// The port the real sshd listens on; reachable only from `allow_from`/`allow_interfaces`.
    pub real_port: u16,
    /// Addresses or prefixes allowed to reach `real_port`.
    pub allow_from: Vec<IpNet>,
    /// Interfaces (e.g. a WireGuard `wg0`; a trailing `*` matches a prefix) on which
    /// `real_port` is open to everyone.
    pub allow_interfaces: Vec<String>,
    /// The decoy's port, open to all (usually 22); `None` when there is no decoy.
    pub decoy_port: Option<u16>,
}

/// `[firewall.scan]`: scan detection done by nftables itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanPolicy {
    /// Distinct closed ports within `within` that make a source a scanner; 0 disables.
    pub closed_ports: u32,
    /// The window for `closed_ports`.
    pub within: Duration,
    /// Ports where any connection attempt makes the source a scanner at once.
    pub honeyports: Vec<u16>,
    /// How long a source stays in the scanner set (the daemon reads it more often than that).
    pub remember: Duration,
}

/// The validated firewall policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Services open to everyone.
    pub allow: Vec<Service>,
    /// The real sshd and the decoy.
    pub ssh: SshPolicy,
    /// Kernel scan detection.
    pub scan: ScanPolicy,
    /// Rate of ICMP/ICMPv6 echo requests accepted, per second (0: none).
    pub echo_per_second: u32,
}

impl Policy {
    /// Would a new connection to `proto/port` from `src`, arriving on `iface`, be accepted?
    /// (Loopback is always accepted; ICMP is not modelled.) Used by the lockout guard and the
    /// exposure report; it mirrors the rules [`super::ruleset`] writes.
    pub fn admits(&self, src: IpAddr, iface: Option<&str>, proto: Proto, port: u16) -> bool {
        if src.is_loopback() || iface == Some("lo") {
            return true;
        }
        if self.scan.honeyports.contains(&port) {
            return false;
        }
        if proto == Proto::Tcp && self.ssh.decoy_port == Some(port) {
            return true;
        }
        if self.allow.iter().any(|s| s.covers(proto, port)) {
            return true;
        }
        proto == Proto::Tcp && port == self.ssh.real_port && self.admin_may_reach(src, iface)
    }

    /// May `src` (arriving on `iface`) reach the real sshd?
    pub fn admin_may_reach(&self, src: IpAddr, iface: Option<&str>) -> bool {
        let src = canonical(src);
        src.is_loopback()
            || self.ssh.allow_from.iter().any(|n| n.contains(&src))
            || iface.is_some_and(|i| {
                self.ssh
                    .allow_interfaces
                    .iter()
                    .any(|pat| iface_matches(pat, i))
            })
    }
}

/// An IPv4-mapped IPv6 address as IPv4 (the socket table shows v4 peers of v6 sockets so).
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// nft's `iifname` match: exact, or a prefix when the pattern ends in `*`.
pub fn iface_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// What validation may ask of the host.
pub trait HostView {
    /// Does a network interface of this name exist?
    fn has_interface(&self, name: &str) -> bool;
}

/// The real host: `/sys/class/net/<name>`.
#[derive(Debug, Clone)]
pub struct SysClassNet(pub PathBuf);

impl Default for SysClassNet {
    fn default() -> Self {
        Self(PathBuf::from("/sys/class/net"))
    }
}

impl HostView for SysClassNet {
    fn has_interface(&self, name: &str) -> bool {
        self.0.join(name).exists()
    }
}

/// Defaults.
fn default_within() -> Duration {
    Duration::from_secs(60)
}
fn default_remember() -> Duration {
    Duration::from_secs(3600)
}
const DEFAULT_CLOSED_PORTS: u32 = 10;
const DEFAULT_ECHO_PER_SECOND: u32 = 10;
/// Longest `within` (the kernel limit's rate must stay at least one per day).
const MAX_WITHIN: Duration = Duration::from_secs(86_400);

/// Parse and validate the `[firewall]` table against the real host (`/sys/class/net`).
pub fn parse_policy(table: &toml::Value) -> Result<Policy, PolicyErrors> {
    parse_policy_with(table, &SysClassNet::default())
}

/// Parse the default config file (or `config_path`) and return its `[firewall]` policy, or
/// `None` when the file has no `[firewall]` table. A missing default file is `None` too.
pub fn load_policy(config_path: Option<&Path>) -> Result<Option<Policy>, PolicyErrors> {
    let Some(root) = read_toml(config_path)? else {
        return Ok(None);
    };
    match root.get("firewall") {
        None => Ok(None),
        Some(t) => parse_policy(t).map(Some),
    }
}

/// The config's top-level `state_dir` (default `/var/lib/ravelin`).
pub fn load_state_dir(config_path: Option<&Path>) -> Result<PathBuf, PolicyErrors> {
    let root = read_toml(config_path)?;
    match root.as_ref().and_then(|r| r.get("state_dir")) {
        None => Ok(PathBuf::from("/var/lib/ravelin")),
        Some(toml::Value::String(s)) => Ok(PathBuf::from(s)),
        Some(_) => Err(vec![("state_dir".into(), "must be a path string".into())]),
    }
}

fn read_toml(config_path: Option<&Path>) -> Result<Option<toml::Value>, PolicyErrors> {
    let (path, required) = match config_path {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from(crate::config::DEFAULT_PATH), false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(vec![(
                path.display().to_string(),
                format!("cannot read: {e}"),
            )]);
        }
    };
    text.parse::<toml::Table>()
        .map(|t| Some(toml::Value::Table(t)))
        .map_err(|e| vec![(path.display().to_string(), format!("invalid TOML: {e}"))])
}

/// [`parse_policy`] with the host checks behind `host`.
pub fn parse_policy_with(table: &toml::Value, host: &dyn HostView) -> Result<Policy, PolicyErrors> {
    let mut errs: PolicyErrors = Vec::new();
    let Some(fw) = table.as_table() else {
        return Err(vec![("firewall".into(), "must be a table".into())]);
    };
    unknown_keys(
        fw,
        "firewall",
        &["allow", "ssh", "scan", "echo_per_second"],
        &mut errs,
    );

    let mut allow = Vec::new();
    if let Some(v) = fw.get("allow") {
        match v.as_array() {
            None => errs.push((
                "firewall.allow".into(),
                "must be a list like [\"tcp/443\"]".into(),
            )),
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    let key = format!("firewall.allow[{i}]");
                    match item
                        .as_str()
                        .ok_or_else(|| "must be a string like \"tcp/443\"".to_string())
                        .and_then(parse_service)
                    {
                        Ok(s) => allow.push((key, s)),
                        Err(m) => errs.push((key, m)),
                    }
                }
            }
        }
    }
    let echo_per_second = match fw.get("echo_per_second") {
        None => DEFAULT_ECHO_PER_SECOND,
        Some(v) => uint(v, "firewall.echo_per_second", 0, 10_000, &mut errs).unwrap_or(0),
    };

    let ssh = parse_ssh(fw.get("ssh"), host, &mut errs);
    let scan = parse_scan(fw.get("scan"), &mut errs);

    // Overlaps: one port may have one meaning only.
    for (i, (ka, a)) in allow.iter().enumerate() {
        for (kb, b) in &allow[..i] {
            if a.proto == b.proto && a.first <= b.last && b.first <= a.last {
                errs.push((ka.clone(), format!("{a} overlaps {b} ({kb})")));
            }
        }
    }
    if let Some(ssh) = &ssh {
        for (k, s) in &allow {
            if s.covers(Proto::Tcp, ssh.real_port) {
                errs.push((k.clone(), format!("{s} would open the real SSH port {} to everyone; list admins in firewall.ssh.allow_from instead", ssh.real_port)));
            }
            if let Some(d) = ssh.decoy_port.filter(|d| s.covers(Proto::Tcp, *d)) {
                errs.push((
                    k.clone(),
                    format!("{s} covers the decoy port {d}, which is already open to all"),
                ));
            }
        }
    }
    if let Some(scan) = &scan {
        for (i, hp) in scan.honeyports.iter().enumerate() {
            let key = format!("firewall.scan.honeyports[{i}]");
            for (k, s) in &allow {
                if s.covers(Proto::Tcp, *hp) || s.covers(Proto::Udp, *hp) {
                    errs.push((
                        key.clone(),
                        format!("honeyport {hp} is also allowed by {s} ({k})"),
                    ));
                }
            }
            if let Some(ssh) = &ssh {
                if *hp == ssh.real_port {
                    errs.push((key.clone(), format!("honeyport {hp} is the real SSH port")));
                }
                if Some(*hp) == ssh.decoy_port {
                    errs.push((key.clone(), format!("honeyport {hp} is the decoy port")));
                }
            }
            if scan.honeyports[..i].contains(hp) {
                errs.push((key, format!("honeyport {hp} is listed twice")));
            }
        }
    }
    match (ssh, scan) {
        (Some(ssh), Some(scan)) if errs.is_empty() => Ok(Policy {
            allow: allow.into_iter().map(|(_, s)| s).collect(),
            ssh,
            scan,
            echo_per_second,
        }),
        _ => Err(errs),
    }
}

fn parse_ssh(
    v: Option<&toml::Value>,
    host: &dyn HostView,
    errs: &mut PolicyErrors,
) -> Option<SshPolicy> {
    let Some(v) = v else {
        errs.push((
            "firewall.ssh".into(),
            "missing: set real_port and allow_from or allow_interfaces, or the admin has no way in"
                .into(),
        ));
        return None;
    };
    let Some(t) = v.as_table() else {
        errs.push(("firewall.ssh".into(), "must be a table".into()));
        return None;
    };
    let n0 = errs.len();
    unknown_keys(
        t,
        "firewall.ssh",
        &["real_port", "allow_from", "allow_interfaces", "decoy_port"],
        errs,
    );
    let real_port = match t.get("real_port") {
        None => {
            errs.push((
                "firewall.ssh.real_port".into(),
                "missing: the port the real sshd listens on".into(),
            ));
            None
        }
        Some(v) => port(v, "firewall.ssh.real_port", errs),
    };
    let decoy_port = t
        .get("decoy_port")
        .and_then(|v| port(v, "firewall.ssh.decoy_port", errs));
    if let (Some(r), Some(d)) = (real_port, decoy_port) {
        if r == d {
            errs.push((
                "firewall.ssh.decoy_port".into(),
                format!("the decoy and the real sshd cannot share port {r}"),
            ));
        }
    }
    let mut allow_from = Vec::new();
    for (i, s) in strings(t.get("allow_from"), "firewall.ssh.allow_from", errs) {
        let key = format!("firewall.ssh.allow_from[{i}]");
        match parse_net(&s) {
            Ok(n) if n.prefix_len() == 0 => errs.push((
                key,
                format!("{s} is everyone; that is not an admin path, it is a public sshd"),
            )),
            Ok(n) => allow_from.push(n),
            Err(m) => errs.push((key, m)),
        }
    }
    let mut allow_interfaces = Vec::new();
    for (i, s) in strings(
        t.get("allow_interfaces"),
        "firewall.ssh.allow_interfaces",
        errs,
    ) {
        let key = format!("firewall.ssh.allow_interfaces[{i}]");
        if !valid_iface_pattern(&s) {
            errs.push((key, format!("{s:?} is not an interface name (1-15 characters of a-z, 0-9, '.', '-', '_', '@', optionally ending in '*')")));
        } else if !s.ends_with('*') && !host.has_interface(&s) {
            errs.push((key, format!("no interface {s:?} on this host (/sys/class/net); create it first or use a pattern like \"{s}*\"")));
        } else {
            allow_interfaces.push(s);
        }
    }
    if t.get("allow_from").is_none() && t.get("allow_interfaces").is_none()
        || allow_from.is_empty() && allow_interfaces.is_empty() && errs.len() == n0
    {
        errs.push(("firewall.ssh".into(), "no admin path to the real sshd: set allow_from (addresses) or allow_interfaces (e.g. a VPN interface)".into()));
    }
    if errs.len() > n0 {
        return None;
    }
    Some(SshPolicy {
        real_port: real_port?,
        allow_from,
        allow_interfaces,
        decoy_port,
    })
}

fn parse_scan(v: Option<&toml::Value>, errs: &mut PolicyErrors) -> Option<ScanPolicy> {
    let empty = toml::Table::new();
    let t = match v {
        None => &empty,
        Some(v) => match v.as_table() {
            Some(t) => t,
            None => {
                errs.push(("firewall.scan".into(), "must be a table".into()));
                return None;
            }
        },
    };
    let n0 = errs.len();
    unknown_keys(
        t,
        "firewall.scan",
        &["closed_ports", "within", "honeyports", "remember"],
        errs,
    );
    let closed_ports = match t.get("closed_ports") {
        None => DEFAULT_CLOSED_PORTS,
        Some(v) => match uint(v, "firewall.scan.closed_ports", 0, 65_535, errs) {
            Some(1) => {
                errs.push((
                    "firewall.scan.closed_ports".into(),
                    "must be 0 (off) or at least 2; use honeyports for \"one touch\"".into(),
                ));
                0
            }
            Some(n) => n,
            None => 0,
        },
    };
    let dur = |key: &str, default: Duration, errs: &mut PolicyErrors| match t.get(key) {
        None => Some(default),
        Some(toml::Value::String(s)) => match parse_duration(s) {
            Ok(d) if d.is_zero() => {
                errs.push((
                    format!("firewall.scan.{key}"),
                    "must be longer than 0s".into(),
                ));
                None
            }
            Ok(d) => Some(d),
            Err(m) => {
                errs.push((format!("firewall.scan.{key}"), m));
                None
            }
        },
        Some(_) => {
            errs.push((
                format!("firewall.scan.{key}"),
                "must be a duration string like \"1m\"".into(),
            ));
            None
        }
    };
    let within = dur("within", default_within(), errs);
    if within.is_some_and(|w| w > MAX_WITHIN) {
        errs.push(("firewall.scan.within".into(), "must be at most 1d".into()));
    }
    let remember = dur("remember", default_remember(), errs);
    let mut honeyports = Vec::new();
    if let Some(v) = t.get("honeyports") {
        match v.as_array() {
            None => errs.push((
                "firewall.scan.honeyports".into(),
                "must be a list of ports".into(),
            )),
            Some(items) => {
                for (i, p) in items.iter().enumerate() {
                    if let Some(p) = port(p, &format!("firewall.scan.honeyports[{i}]"), errs) {
                        honeyports.push(p);
                    }
                }
            }
        }
    }
    if errs.len() > n0 {
        return None;
    }
    Some(ScanPolicy {
        closed_ports,
        within: within?,
        honeyports,
        remember: remember?,
    })
}

/// `tcp/443`, `udp/51820`, `tcp/8000-8080`.
pub fn parse_service(s: &str) -> Result<Service, String> {
    let (proto, ports) = s.split_once('/').ok_or_else(|| {
        format!("{s:?} is not a service; write \"tcp/443\" or \"udp/60000-61000\"")
    })?;
    let proto = match proto {
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        other => {
            return Err(format!(
                "unknown protocol {other:?} in {s:?}; use tcp or udp"
            ));
        }
    };
    let one = |p: &str| -> Result<u16, String> {
        match p.parse::<u32>() {
            Ok(n @ 1..=65_535) => Ok(n as u16),
            _ => Err(format!("invalid port {p:?} in {s:?} (1-65535)")),
        }
    };
    let (first, last) = match ports.split_once('-') {
        Some((a, b)) => (one(a)?, one(b)?),
        None => (one(ports)?, one(ports)?),
    };
    if first > last {
        return Err(format!("empty port range in {s:?}"));
    }
    Ok(Service { proto, first, last })
}

fn parse_net(s: &str) -> Result<IpNet, String> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    let n: IpNet = s
        .parse()
        .map_err(|_| format!("{s:?} is not an address or CIDR"))?;
    if n.trunc() != n {
        return Err(format!(
            "{s:?} has host bits set; did you mean {}?",
            n.trunc()
        ));
    }
    Ok(n)
}

/// Interface names go into the nft script: only the characters Linux allows that are also
/// harmless inside a quoted nft string.
fn valid_iface_pattern(s: &str) -> bool {
    let body = s.strip_suffix('*').unwrap_or(s);
    !body.is_empty()
        && s.len() <= 15
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b))
}

fn port(v: &toml::Value, key: &str, errs: &mut PolicyErrors) -> Option<u16> {
    uint(v, key, 1, 65_535, errs).map(|n| n as u16)
}

fn uint(v: &toml::Value, key: &str, lo: i64, hi: i64, errs: &mut PolicyErrors) -> Option<u32> {
    match v.as_integer() {
        Some(n) if (lo..=hi).contains(&n) => Some(n as u32),
        Some(n) => {
            errs.push((key.into(), format!("{n} is out of range ({lo}-{hi})")));
            None
        }
        None => {
            errs.push((key.into(), format!("must be an integer ({lo}-{hi})")));
            None
        }
    }
}

fn strings(v: Option<&toml::Value>, key: &str, errs: &mut PolicyErrors) -> Vec<(usize, String)> {
    let Some(v) = v else { return Vec::new() };
    let Some(items) = v.as_array() else {
        errs.push((key.into(), "must be a list of strings".into()));
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item.as_str() {
            Some(s) => out.push((i, s.to_string())),
            None => errs.push((format!("{key}[{i}]"), "must be a string".into())),
        }
    }
    out
}

fn unknown_keys(t: &toml::Table, at: &str, known: &[&str], errs: &mut PolicyErrors) {
    for k in t.keys() {
        if !known.contains(&k.as_str()) {
            errs.push((
                format!("{at}.{k}"),
                format!("unknown key (known: {})", known.join(", ")),
            ));
        }
    }
}
