//! The firewall layer: a default-deny input policy from `[firewall]`, applied atomically with
//! commit-confirmed rollback, a lockout guard, scan detection done by nftables itself, and an
//! exposure report.
//!
//! ```text
//! [firewall] TOML ──policy::parse_policy──▶ Policy ──ruleset::table──▶ nft text
//!                                              │                          │
//!                          guard::check ◀──────┤            commit::apply (nft -f -, one
//!                    (SSH_CONNECTION, sockets) │             transaction; previous saved;
//!                   exposure::report ◀─────────┘             watcher child rolls back)
//! kernel: scanners4/6 (filled by nftables) ──nft::read_scanners──▶ daemon (kind `scan`)
//! ```
//!
//! # Why a table of its own (`inet ravelin_fw`), beside the ban table `inet ravelin`
//!
//! - **Atomic replace without touching the bans.** Apply and rollback are
//!   `table inet ravelin_fw {}; delete table inet ravelin_fw; table inet ravelin_fw {...}` in one
//!   `nft -f -` transaction: no window without rules, and by construction it can never flush
//!   or recreate `enforce`'s sets (`ban4`, `ban6`, `ban4net`, `ban6net`) or chains, whose
//!   setup flushes its own `input`/`forward` chains and would report foreign chains there.
//! - **Snapshot and restore are one listing.** `nft -s list table inet ravelin_fw` is the whole
//!   previous state; restoring it is the same replace idiom. Addresses and ports sit in
//!   anonymous sets inside rules, so nothing else needs saving. (Restored scanner entries get
//!   their set's default timeout back: nft 1.0.6 ignores `expires` on load.)
//! - **Ordering is by hook priority, not by table.** The ban drops run at priority -200 in
//!   `inet ravelin` (`input` and `forward`); our `filter_input` runs at 0 (`filter`) with
//!   policy drop. A drop in any base chain is final and an accept is not, so banned sources
//!   are dropped first, and our drop policy holds even if another table (Debian's default
//!   `inet filter`, Docker, ufw) accepts.
//!
//! # Forwarded traffic (Docker's published ports)
//!
//! Published container ports are DNATed in prerouting and then *forwarded*, so they never reach
//! an input hook: this policy does not govern them (Docker's own chains do). Bans do cover them:
//! `inet ravelin` drops banned sources in its `forward` chain at priority -200, before
//! Docker's filter chains, and scanners found here become bans there too.
//!
//! # Scanners
//!
//! Sources that hit a honeyport or too many closed ports are put by nftables into
//! `scanners4`/`scanners6` (see [`ruleset`] for the exact semantics); nothing is done per
//! packet in user space. The firewall itself does not drop them (an allowlisted monitoring
//! host that scans must not lose its services): the daemon reads the sets with
//! [`read_scanners`], turns new entries into observations (`scan.portscan`, kind `scan`) with
//! [`scan::ScanWatch`] and sends them through the normal pipeline, so the allowlist,
//! escalation, alerts and the store all apply.
//!
//! # Lifecycle
//!
//! `plan` (nothing changes) -> `apply --confirm 60s` (atomic; a detached watcher restores the
//! previous table unless `confirm` comes in time) -> `confirm`; `rollback` at any time. The
//! daemon calls [`commit::boot`] on start: a pending apply whose deadline passed while nothing
//! ran is rolled back, and after a reboot the last *confirmed* table is loaded again.

pub mod commit;
pub mod exposure;
pub mod guard;
pub mod nft;
pub mod policy;
pub mod ruleset;
pub mod scan;
pub mod sockets;

use std::path::PathBuf;

pub use nft::read_scanners;
pub use policy::{Policy, PolicyErrors, load_policy, parse_policy};

/// Errors callers branch on.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    /// nft refused or failed; nothing changed (every write is one transaction).
    #[error("nft could not {what}: {detail}")]
    Nft {
        /// What we asked of nft.
        what: String,
        /// Its stderr, bounded.
        detail: String,
    },
    /// A state file could not be read or written.
    #[error("firewall state {path}: {detail}")]
    State {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
}

/// A line diff (longest common subsequence; the tables are a few hundred lines at most):
/// lines prefixed `  `, `- ` (only in `old`) or `+ ` (only in `new`).
pub fn diff(old: &str, new: &str) -> Vec<String> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let (n, m) = (a.len(), b.len());
    let mut l = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            l[i][j] = if a[i] == b[j] {
                l[i + 1][j + 1] + 1
            } else {
                l[i + 1][j].max(l[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push(format!("  {}", a[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || l[i + 1][j] >= l[i][j + 1]) {
            out.push(format!("- {}", a[i]));
            i += 1;
        } else {
            out.push(format!("+ {}", b[j]));
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests;
