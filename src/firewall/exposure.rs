//! Exposure report: what listens on this host compared with what the policy opens.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use serde::Serialize;

use super::policy::{Policy, Proto};
use super::sockets::{Owner, Socket, is_sshd};

/// One finding of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// `hidden`, `no_listener`, `public_sshd`, `open`.
    pub kind: &'static str,
    /// `tcp/443` etc.
    pub service: String,
    /// The listening address, if any.
    pub addr: Option<String>,
    /// Owning process, if known.
    pub process: Option<String>,
    /// What it means.
    pub detail: String,
}

/// Compare listening sockets with the policy. `open`: listening and reachable from anywhere;
/// `hidden`: listening on a public address but the policy drops it; `no_listener`: allowed but
/// nothing listens; `public_sshd`: the real sshd bound to a wildcard or public address (the
/// firewall limits it, binding it to the VPN or loopback address is a second wall).
pub fn report(policy: &Policy, sockets: &[Socket], owners: &HashMap<u64, Owner>) -> Vec<Finding> {
    let anyone = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for s in sockets
        .iter()
        .filter(|s| s.listening && !s.local.0.is_loopback())
    {
        let (proto, port) = (s.proto, s.local.1);
        if !seen.insert((proto, port, s.local.0)) {
            continue;
        }
        let process = owners.get(&s.inode).map(|o| o.comm.clone());
        let service = format!("{}/{port}", proto.as_str());
        let addr = Some(format!("{}", s.local.0));
        if process.as_deref().is_some_and(is_sshd) && proto == Proto::Tcp {
            if port == policy.ssh.real_port {
                if s.local.0.is_unspecified() {
                    out.push(Finding { kind: "public_sshd", service, addr, process, detail: "the real sshd listens on every address; only allow_from/allow_interfaces pass the firewall; binding it to the VPN or loopback address (ListenAddress) hides it even without the firewall".into() });
                }
            } else {
                out.push(Finding {
                    kind: "public_sshd",
                    service,
                    addr,
                    process,
                    detail: format!(
                        "an sshd listens on port {port}, which is not firewall.ssh.real_port ({})",
                        policy.ssh.real_port
                    ),
                });
            }
            continue;
        }
        if policy.admits(anyone, None, proto, port) {
            out.push(Finding {
                kind: "open",
                service,
                addr,
                process,
                detail: "reachable from anywhere, as the policy says".into(),
            });
        } else if !(proto == Proto::Tcp && port == policy.ssh.real_port) {
            out.push(Finding { kind: "hidden", service, addr, process, detail: "listens on a non-loopback address, but the policy drops it (bind it to 127.0.0.1 or allow it)".into() });
        }
    }
    for svc in &policy.allow {
        let listened = sockets
            .iter()
            .any(|s| s.listening && !s.local.0.is_loopback() && svc.covers(s.proto, s.local.1));
        if !listened {
            out.push(Finding {
                kind: "no_listener",
                service: svc.to_string(),
                addr: None,
                process: None,
                detail: "allowed by the policy, but nothing listens".into(),
            });
        }
    }
    out
}
