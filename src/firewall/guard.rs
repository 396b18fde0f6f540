//! The lockout guard: refuse a policy that would cut the admin off, unless `--force`.
//!
//! Evidence of admin sessions, both checked:
//!
//! - `SSH_CONNECTION` (`client_ip client_port server_ip server_port`) of the shell running
//!   `ravelin` (`sudo` drops it unless `env_keep` lists it, hence also the socket table);
//! - the socket table: every established TCP connection held by an sshd process serving a
//!   logged-in user (title `sshd: alice@pts/0`). Pre-authentication connections (strangers
//!   trying passwords on a public sshd) do not count, or they would veto every apply.
//!
//! Established sessions survive any apply (`ct state established accept` comes first); what
//! the guard protects is the *next* login: every current session's source must be able to
//! reach the real sshd under the new policy. It also refuses when an sshd is running but
//! listens only on other ports than `real_port` (the new policy would leave only the decoy).

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::policy::{Policy, Proto, canonical};
use super::sockets::{Owner, Socket, is_sshd};
use std::collections::HashMap;

/// A current SSH session: where it comes from and where it arrived.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Session {
    /// The client.
    pub peer: IpAddr,
    /// Our address it connected to.
    pub local: IpAddr,
    /// Our port it connected to.
    pub local_port: u16,
    /// Where we learnt of it.
    pub via: &'static str,
}

/// Sessions from `SSH_CONNECTION` and the socket table.
pub fn sessions(
    ssh_connection: Option<&str>,
    sockets: &[Socket],
    owners: &HashMap<u64, Owner>,
) -> Vec<Session> {
    let mut out = BTreeSet::new();
    if let Some(sc) = ssh_connection {
        let f: Vec<&str> = sc.split_whitespace().collect();
        if let [peer, _, local, port] = f[..] {
            if let (Ok(peer), Ok(local), Ok(port)) = (peer.parse(), local.parse(), port.parse()) {
                out.insert(Session {
                    peer: canonical(peer),
                    local: canonical(local),
                    local_port: port,
                    via: "SSH_CONNECTION",
                });
            }
        }
    }
    for s in sockets
        .iter()
        .filter(|s| s.established && owners.get(&s.inode).is_some_and(Owner::is_ssh_login))
    {
        out.insert(Session {
            peer: canonical(s.remote.0),
            local: canonical(s.local.0),
            local_port: s.local.1,
            via: "socket table",
        });
    }
    out.into_iter().collect()
}

/// TCP ports an sshd process listens on.
pub fn sshd_ports(sockets: &[Socket], owners: &HashMap<u64, Owner>) -> BTreeSet<u16> {
    sockets
        .iter()
        .filter(|s| {
            s.listening
                && s.proto == Proto::Tcp
                && owners.get(&s.inode).is_some_and(|o| is_sshd(&o.comm))
        })
        .map(|s| s.local.1)
        .collect()
}

/// Every reason the policy would lock the admin out (empty: safe). `iface_of` names the
/// interface that holds a local address (the session arrived there).
pub fn check(
    policy: &Policy,
    sessions: &[Session],
    sshd_ports: &BTreeSet<u16>,
    iface_of: &dyn Fn(IpAddr) -> Option<String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let real = policy.ssh.real_port;
    for s in sessions {
        let iface = iface_of(s.local);
        if !policy.admits(s.peer, iface.as_deref(), Proto::Tcp, real) {
            problems.push(format!(
                "the SSH session from {} (to port {}, seen in the {}) could not log in again: the policy does not let {} reach the real sshd on port {real}{}; add it to firewall.ssh.allow_from",
                s.peer,
                s.local_port,
                s.via,
                s.peer,
                iface.map(|i| format!(" via {i}")).unwrap_or_default()
            ));
        }
    }
    if !sshd_ports.is_empty() && !sshd_ports.contains(&real) {
        let list: Vec<String> = sshd_ports.iter().map(u16::to_string).collect();
        problems.push(format!(
            "sshd listens on port {} but firewall.ssh.real_port is {real}: move sshd to {real} first (Port in sshd_config), or logins would reach only the decoy or nothing",
            list.join(", ")
        ));
    }
    problems
}

/// The interface holding a local address, from getifaddrs(3).
pub fn iface_of(addr: IpAddr) -> Option<String> {
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    for a in addrs {
        let Some(sa) = a.address else { continue };
        let ip: Option<IpAddr> = if let Some(v4) = sa.as_sockaddr_in() {
            Some(IpAddr::V4(v4.ip()))
        } else {
            sa.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
        };
        if ip == Some(addr) {
            return Some(a.interface_name);
        }
    }
    None
}
