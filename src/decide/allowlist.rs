//! The allowlist, and the only code that can mint a ban [`Permit`].
//!
//! Enforcement accepts nothing but a `Permit`, and a `Permit` can only be made here, after
//! checking that the target overlaps no allowlisted network (configured CIDRs, loopback, the
//! host's own addresses). "Never ban a legitimate user" is therefore a type-level property: a
//! code path that forgets the check cannot compile.

use std::net::IpAddr;

use ipnet::IpNet;

/// Proof that a target passed the allowlist. Only [`Allowlist::permit`] constructs one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Permit {
    target: IpNet,
}

impl Permit {
    /// The address or prefix this permit allows banning.
    pub fn target(&self) -> IpNet {
        self.target
    }
}

/// Why a target may not be banned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{target} overlaps allowlisted {entry} ({why})")]
pub struct Refusal {
    /// The target that was refused.
    pub target: IpNet,
    /// The allowlist entry it overlaps.
    pub entry: IpNet,
    /// Where that entry came from (`config`, `loopback`, `host address`).
    pub why: &'static str,
}

/// Networks that must never be banned.
#[derive(Debug, Clone, Default)]
pub struct Allowlist {
    entries: Vec<(IpNet, &'static str)>,
}

impl Allowlist {
    /// Build from the configured networks plus loopback and the host's own addresses.
    pub fn new(configured: &[IpNet], host_addrs: &[IpAddr]) -> Self {
        let mut entries: Vec<(IpNet, &'static str)> = Vec::new();
        entries.push(("127.0.0.0/8".parse().expect("literal"), "loopback"));
        entries.push(("::1/128".parse().expect("literal"), "loopback"));
        for net in configured {
            entries.push((net.trunc(), "config"));
        }
        for a in host_addrs {
            entries.push((crate::event::host_net(*a), "host address"));
        }
        Self { entries }
    }

    /// Check `target` and, if it overlaps nothing allowlisted, mint a permit for it.
    /// A prefix is refused if any allowlisted address lies inside it, and an address is refused
    /// if it lies inside any allowlisted network.
    pub fn permit(&self, target: IpNet) -> Result<Permit, Refusal> {
        let target = normalize_net(target);
        for (entry, why) in &self.entries {
            if entry.contains(&target) || target.contains(entry) {
                return Err(Refusal {
                    target,
                    entry: *entry,
                    why,
                });
            }
        }
        Ok(Permit { target })
    }

    /// Is this single address allowlisted?
    pub fn contains_addr(&self, addr: IpAddr) -> bool {
        self.permit(crate::event::host_net(addr)).is_err()
    }

    /// The entries and where each came from, for `status` and `explain`.
    pub fn entries(&self) -> &[(IpNet, &'static str)] {
        &self.entries
    }
}

/// Canonical form of a target: host bits cleared, v4-mapped host addresses as IPv4.
pub fn normalize_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() == 128 => crate::event::host_net(IpAddr::V6(v6.addr())),
        other => other.trunc(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> Allowlist {
        Allowlist::new(
            &[
                "192.0.2.10/32".parse().unwrap(),
                "2001:db8:1::/48".parse().unwrap(),
            ],
            &["198.51.100.5".parse().unwrap()],
        )
    }

    #[test]
    fn permits_only_what_overlaps_nothing() {
        let l = list();
        let cases: &[(&str, bool)] = &[
            ("203.0.113.9/32", true),
            ("192.0.2.10/32", false),        // configured address
            ("192.0.2.0/24", false),         // prefix containing a configured address
            ("127.0.0.1/32", false),         // loopback, always
            ("::1/128", false),              // loopback, always
            ("::ffff:127.0.0.1/128", false), // v4-mapped loopback
            ("198.51.100.0/24", false),      // contains the host's own address
            ("2001:db8:1:2::7/128", false),  // inside a configured /48
            ("2001:db8:2::7/128", true),
        ];
        for (t, ok) in cases {
            let got = l.permit(t.parse().unwrap());
            assert_eq!(got.is_ok(), *ok, "{t}: {got:?}");
        }
        assert_eq!(
            l.permit("203.0.113.9/32".parse().unwrap())
                .unwrap()
                .target()
                .to_string(),
            "203.0.113.9/32"
        );
    }
}
