//! The dry-run backend: logs each change it would make and keeps an in-memory ban map.
//!
//! It exists so an operator can run ravelin against real logs without touching the firewall
//! (`[enforce] backend = "log"`), and so machines without nftables still start. Keeping a map
//! with deadlines, rather than only logging, lets `status` and the daemon's reconciliation
//! work the same way as with [`super::NftEnforcer`], including expiry.

use std::collections::HashMap;
use std::time::Instant;

use ipnet::IpNet;
use tracing::info;

use super::{Change, EnforceError, Enforcer, KernelElement};

/// Dry-run enforcer: logs what it would do (tracing `info!`), remembers bans in memory.
#[derive(Debug, Default)]
pub struct LogEnforcer {
    /// Target -> deadline (`None` = permanent).
    bans: HashMap<IpNet, Option<Instant>>,
}

impl LogEnforcer {
    /// An empty dry-run enforcer.
    pub fn new() -> Self {
        Self::default()
    }

    fn expire(&mut self, now: Instant) {
        self.bans
            .retain(|_, deadline| deadline.is_none_or(|d| d > now));
    }
}

impl Enforcer for LogEnforcer {
    fn name(&self) -> &'static str {
        "log"
    }

    fn setup(&mut self) -> Result<(), EnforceError> {
        info!(
            backend = "log",
            "dry run: would create the nftables table, sets and drop rules"
        );
        Ok(())
    }

    fn apply(&mut self, changes: &[Change<'_>]) -> Result<(), EnforceError> {
        let now = Instant::now();
        self.expire(now);
        for change in changes {
            match change {
                Change::Add { permit, timeout } => {
                    let target = permit.target();
                    match timeout {
                        Some(t) => info!(%target, timeout_s = t.as_secs(), "dry run: would ban"),
                        None => info!(%target, "dry run: would ban permanently"),
                    }
                    let deadline = timeout.and_then(|t| now.checked_add(t));
                    self.bans.insert(target, deadline);
                }
                Change::Remove { target } => {
                    info!(%target, "dry run: would unban");
                    self.bans.remove(&target.trunc());
                }
            }
        }
        Ok(())
    }

    fn list(&mut self) -> Result<Vec<KernelElement>, EnforceError> {
        let now = Instant::now();
        self.expire(now);
        let mut out: Vec<KernelElement> = self
            .bans
            .iter()
            .map(|(target, deadline)| KernelElement {
                target: *target,
                expires_in: deadline.map(|d| d.saturating_duration_since(now)),
            })
            .collect();
        out.sort_by_key(|e| e.target);
        Ok(out)
    }

    fn verify(&mut self) -> Result<(), EnforceError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn secs(d: Option<Duration>) -> Option<u64> {
        d.map(|d| d.as_secs())
    }
    use crate::decide::allowlist::Allowlist;

    #[test]
    fn list_reflects_adds_removes_and_expiry() {
        let allow = Allowlist::new(&[], &[]);
        let a = allow.permit("203.0.113.7/32".parse().unwrap()).unwrap();
        let b = allow.permit("2001:db8::/64".parse().unwrap()).unwrap();
        let c = allow.permit("198.51.100.0/24".parse().unwrap()).unwrap();
        let mut e = LogEnforcer::new();
        e.setup().unwrap();
        e.apply(&[
            Change::Add {
                permit: &a,
                timeout: Some(Duration::from_secs(600)),
            },
            Change::Add {
                permit: &b,
                timeout: None,
            },
            Change::Add {
                permit: &c,
                timeout: Some(Duration::from_millis(1)),
            },
            Change::Remove {
                target: "192.0.2.1/32".parse().unwrap(),
            },
        ])
        .unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let got = e.list().unwrap();
        assert_eq!(got.len(), 2, "{got:?}");
        let a_el = got.iter().find(|k| k.target == a.target()).unwrap();
        assert!(secs(a_el.expires_in).is_some_and(|s| (598..=600).contains(&s)));
        assert!(
            got.iter()
                .any(|k| k.target == b.target() && k.expires_in.is_none())
        );
        e.apply(&[Change::Remove { target: a.target() }]).unwrap();
        assert_eq!(e.list().unwrap().len(), 1);
        e.verify().unwrap();
        assert_eq!(e.name(), "log");
    }
}
