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
/// nothing listens; `public_sshd`: the real sshd bound to a wildcard address or to one outside
/// `allow_interfaces` (the firewall limits it; binding it to the VPN or loopback address is a
/// second wall), or an sshd on another port than `real_port`. `iface_of` names the interface
/// holding a local address.
pub fn report(
    policy: &Policy,
    sockets: &[Socket],
    owners: &HashMap<u64, Owner>,
    iface_of: &dyn Fn(IpAddr) -> Option<String>,
) -> Vec<Finding> {
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
                let private = iface_of(s.local.0).is_some_and(|i| {
                    policy
                        .ssh
                        .allow_interfaces
                        .iter()
                        .any(|p| super::policy::iface_matches(p, &i))
                });
                if s.local.0.is_unspecified() {
                    out.push(Finding { kind: "public_sshd", service, addr, process, detail: "the real sshd listens on every address; only allow_from/allow_interfaces pass the firewall; binding it to the VPN or loopback address (ListenAddress) hides it even without the firewall".into() });
                } else if !private {
                    out.push(Finding { kind: "public_sshd", service, addr, process, detail: "the real sshd listens on an address outside allow_interfaces; only allow_from passes the firewall there".into() });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::policy::parse_service;
    use crate::firewall::sockets::parse;

    #[test]
    fn listeners_are_compared_with_the_policy() {
        let policy = Policy {
            allow: vec![
                parse_service("tcp/80").unwrap(),
                parse_service("udp/53").unwrap(),
            ],
            ssh: crate::firewall::policy::SshPolicy {
                real_port: 2222,
                allow_from: vec![],
                allow_interfaces: vec!["wg0".into()],
                decoy_port: Some(22),
            },
            scan: crate::firewall::policy::ScanPolicy {
                closed_ports: 10,
                within: std::time::Duration::from_secs(60),
                honeyports: vec![],
                remember: std::time::Duration::from_secs(3600),
            },
            echo_per_second: 10,
        };
        // 0.0.0.0:80 (nginx), 0.0.0.0:8080 (app), 10.8.0.1:2222 (sshd on wg0),
        // 203.0.113.1:2222 (sshd, public), 127.0.0.1:5432 (postgres, loopback).
        let tcp = "h\n 0: 00000000:0050 00000000:0000 0A 0 0 0 0 0 1 1\n 1: 00000000:1F90 00000000:0000 0A 0 0 0 0 0 2 1\n 2: 0100080A:08AE 00000000:0000 0A 0 0 0 0 0 3 1\n 3: 017100CB:08AE 00000000:0000 0A 0 0 0 0 0 4 1\n 4: 0100007F:1538 00000000:0000 0A 0 0 0 0 0 5 1\n";
        let socks = parse(tcp, Proto::Tcp);
        let own = |c: &str| Owner {
            comm: c.into(),
            title: c.into(),
        };
        let owners: HashMap<u64, Owner> = [
            (1, own("nginx")),
            (2, own("app")),
            (3, own("sshd")),
            (4, own("sshd")),
            (5, own("postgres")),
        ]
        .into();
        let wg = |ip: IpAddr| (ip.to_string() == "10.8.0.1").then(|| "wg0".to_string());
        let f = report(&policy, &socks, &owners, &wg);
        let got: Vec<(&str, &str, Option<&str>)> = f
            .iter()
            .map(|x| (x.kind, x.service.as_str(), x.addr.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("open", "tcp/80", Some("0.0.0.0")),
                ("hidden", "tcp/8080", Some("0.0.0.0")),
                ("public_sshd", "tcp/2222", Some("203.0.113.1")),
                ("no_listener", "udp/53", None),
            ]
        );
    }
}
