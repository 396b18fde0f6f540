//! The socket table (`/proc/net/{tcp,tcp6,udp,udp6}`) and which process owns a socket.
//!
//! `/proc/net` shows the sockets of the reader's network namespace, which is what the lockout
//! guard and the exposure report want.

use std::collections::HashMap;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use super::policy::Proto;

/// TCP state codes from include/net/tcp_states.h.
const TCP_ESTABLISHED: &str = "01";
const TCP_LISTEN: &str = "0A";
/// Linux's UDP "state" for an unconnected (receiving from anyone) socket.
const UDP_UNCONNECTED: &str = "07";
/// Bound on lines read per table (a host with more sockets is reported partially).
const MAX_LINES: usize = 200_000;

/// One socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socket {
    /// tcp or udp.
    pub proto: Proto,
    /// Local address and port.
    pub local: (IpAddr, u16),
    /// Remote address and port (unspecified for listeners).
    pub remote: (IpAddr, u16),
    /// Listening (TCP) or unconnected (UDP).
    pub listening: bool,
    /// Established (TCP).
    pub established: bool,
    /// Socket inode (to find the owning process).
    pub inode: u64,
}

/// Read all four tables under `proc_net` (normally `/proc/net`). Missing tables (no IPv6)
/// are skipped.
pub fn read(proc_net: &Path) -> Vec<Socket> {
    let mut out = Vec::new();
    for (file, proto) in [
        ("tcp", Proto::Tcp),
        ("tcp6", Proto::Tcp),
        ("udp", Proto::Udp),
        ("udp6", Proto::Udp),
    ] {
        if let Ok(text) = fs::read_to_string(proc_net.join(file)) {
            out.extend(parse(&text, proto));
        }
    }
    out
}

/// Parse one table's text.
pub fn parse(text: &str, proto: Proto) -> Vec<Socket> {
    text.lines()
        .skip(1)
        .take(MAX_LINES)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 10 {
                return None;
            }
            let local = parse_endpoint(f[1])?;
            let remote = parse_endpoint(f[2])?;
            let st = f[3];
            Some(Socket {
                proto,
                local,
                remote,
                listening: match proto {
                    Proto::Tcp => st == TCP_LISTEN,
                    Proto::Udp => st == UDP_UNCONNECTED && remote.1 == 0,
                },
                established: proto == Proto::Tcp && st == TCP_ESTABLISHED,
                inode: f[9].parse().unwrap_or(0),
            })
        })
        .collect()
}

/// `0100007F:0016` or the 32-hex-digit IPv6 form. Each 32-bit word is in host byte order.
fn parse_endpoint(s: &str) -> Option<(IpAddr, u16)> {
    let (addr, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let w = u32::from_str_radix(addr.get(i * 8..i * 8 + 8)?, 16).ok()?;
        Some(w.to_ne_bytes())
    };
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some((ip, port))
}

/// The process holding a socket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owner {
    /// `/proc/<pid>/comm` (e.g. `sshd`).
    pub comm: String,
    /// The process title (`/proc/<pid>/cmdline`, NULs as spaces, at most 256 bytes); sshd
    /// shows the session there (`sshd: alice@pts/0`).
    pub title: String,
}

impl Owner {
    /// Is this an sshd process serving a logged-in user (`sshd: alice@pts/0`,
    /// `sshd: root@notty`; OpenSSH 9.8+ `sshd-session: ...`)? Pre-authentication processes
    /// (`sshd: unknown [priv]`, `[net]`, `[preauth]`) are not, so strangers connected to a
    /// public sshd do not count as admin sessions.
    pub fn is_ssh_login(&self) -> bool {
        is_sshd(&self.comm)
            && self
                .title
                .split_once(": ")
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_some_and(|user_tty| user_tty.contains('@'))
    }
}

/// Bound on a process title we keep.
const TITLE_CAP: usize = 256;

/// Map socket inodes to a process holding them, by walking `/proc/<pid>/fd` (bounded by the
/// number of processes; unreadable ones are skipped). When several hold one socket (sshd's
/// monitor and its session child), a logged-in session's process is kept.
pub fn owners(proc_root: &Path) -> HashMap<u64, Owner> {
    let mut out: HashMap<u64, Owner> = HashMap::new();
    let Ok(procs) = fs::read_dir(proc_root) else {
        return out;
    };
    for p in procs.flatten() {
        let name = p.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let base = proc_root.join(pid);
        let Ok(fds) = fs::read_dir(base.join("fd")) else {
            continue;
        };
        let mut owner: Option<Owner> = None;
        for fd in fds.flatten() {
            let Ok(target) = fs::read_link(fd.path()) else {
                continue;
            };
            let t = target.to_string_lossy();
            let Some(ino) = t
                .strip_prefix("socket:[")
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|i| i.parse::<u64>().ok())
            else {
                continue;
            };
            let o = owner.get_or_insert_with(|| read_owner(&base));
            match out.get(&ino) {
                Some(prev) if prev.is_ssh_login() || !o.is_ssh_login() => {}
                _ => {
                    out.insert(ino, o.clone());
                }
            }
        }
    }
    out
}

fn read_owner(base: &Path) -> Owner {
    let comm = fs::read_to_string(base.join("comm"))
        .unwrap_or_default()
        .trim()
        .to_string();
    let mut raw = fs::read(base.join("cmdline")).unwrap_or_default();
    raw.truncate(TITLE_CAP);
    let title = String::from_utf8_lossy(&raw)
        .replace('\0', " ")
        .trim()
        .to_string();
    Owner { comm, title }
}

/// Is this the name of an OpenSSH server process (`sshd`, or `sshd-session` from 9.8)?
pub fn is_sshd(comm: &str) -> bool {
    comm == "sshd" || comm.starts_with("sshd-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_v4_and_v6_endpoints() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1234 1 0 100 0 0 10 0\n   1: 0A09000A:08AE 0209000A:C350 01 00000000:00000000 00:00000000 00000000     0        0 99 1\n";
        let s = parse(v4, Proto::Tcp);
        assert_eq!(s[0].local, ("127.0.0.1".parse().unwrap(), 22));
        assert!(s[0].listening && !s[0].established);
        assert_eq!(s[0].inode, 1234);
        assert_eq!(s[1].local, ("10.0.9.10".parse().unwrap(), 2222));
        assert_eq!(s[1].remote, ("10.0.9.2".parse().unwrap(), 50000));
        assert!(s[1].established);
        let v6 = "hdr\n   0: 00000000000000000000000001000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5 1\n   1: B80D0120000000000000000001000000:0050 0000000000000000FFFF00000100007F:1F90 01 0 0 0 0 0 6\n";
        let s = parse(v6, Proto::Tcp);
        assert_eq!(s[0].local, ("::1".parse().unwrap(), 22));
        assert_eq!(s[1].local, ("2001:db8::1".parse().unwrap(), 80));
        assert_eq!(s[1].remote, ("::ffff:127.0.0.1".parse().unwrap(), 8080));
    }

    #[test]
    fn only_logged_in_sshd_processes_are_sessions() {
        let o = |comm: &str, title: &str| Owner {
            comm: comm.into(),
            title: title.into(),
        };
        assert!(o("sshd", "sshd: alice@pts/0").is_ssh_login());
        assert!(o("sshd", "sshd: root@notty").is_ssh_login());
        assert!(o("sshd-session", "sshd-session: bob@pts/3").is_ssh_login());
        assert!(!o("sshd", "sshd: unknown [priv]").is_ssh_login());
        assert!(!o("sshd", "sshd: root [net]").is_ssh_login());
        assert!(
            !o(
                "sshd",
                "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups"
            )
            .is_ssh_login()
        );
        assert!(
            !o("bash", "sshd: alice@pts/0").is_ssh_login(),
            "only sshd's own title counts"
        );
    }
}
