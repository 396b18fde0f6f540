//! Enforcement: turn permitted decisions into kernel state that drops packets.
//!
//! The daemon talks to one [`Enforcer`] from a blocking thread. There are two:
//!
//! - [`NftEnforcer`] ([`nftables`]): our own `inet` table with timeout sets and a drop rule in
//!   the `input` and `forward` hooks, changed by one `nft -f -` transaction per batch. Bans
//!   carry kernel-side timeouts, so they expire on time even if the daemon is dead, and a
//!   batch of 100k bans costs one process, not 100k (fail2ban and sshguard fork one per ban).
//! - [`LogEnforcer`] ([`log`]): a dry run that logs what it would do and remembers it, so
//!   `status` and reconciliation behave as with the real backend.
//!
//! Adding requires a [`Permit`], which only the allowlist can mint: code that forgets the
//! allowlist check cannot ban anything. Removing needs no proof (unbanning is always safe).

pub mod log;
pub mod nftables;

use std::time::Duration;

use ipnet::IpNet;

pub use crate::decide::allowlist::Permit;
pub use log::LogEnforcer;
pub use nftables::{NftEnforcer, probe_nft};

/// One change to the ban sets. A batch of them is applied atomically by [`Enforcer::apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change<'a> {
    /// Ban the permit's target. Re-adding an existing ban refreshes its timeout.
    Add {
        /// Proof that the target passed the allowlist.
        permit: &'a Permit,
        /// How long the kernel keeps the element; `None` is permanent.
        timeout: Option<Duration>,
    },
    /// Lift a ban. Removing a ban that is not there is not an error.
    Remove {
        /// The address or prefix to unban (exactly as it was banned).
        target: IpNet,
    },
}

/// One element found in the kernel's ban sets.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KernelElement {
    /// The banned address (`/32`, `/128`) or prefix.
    pub target: IpNet,
    /// Time left before the kernel drops the element by itself; `None` is permanent.
    pub expires_in: Option<Duration>,
}

/// A backend that holds the bans. Called from a blocking thread; every method may block on a
/// child process.
pub trait Enforcer: Send {
    /// The backend's name, as in the config: `"nftables"` or `"log"`.
    fn name(&self) -> &'static str;

    /// Create the table, sets and chains if missing. Never flushes or deletes set elements:
    /// bans survive daemon restarts.
    fn setup(&mut self) -> Result<(), EnforceError>;

    /// Apply all changes in one transaction: either all of them take effect or none.
    fn apply(&mut self, changes: &[Change<'_>]) -> Result<(), EnforceError>;

    /// The elements currently in the ban sets, with the kernel's remaining timeout.
    fn list(&mut self) -> Result<Vec<KernelElement>, EnforceError>;

    /// Check that the drop rules are in place and reference the ban sets.
    fn verify(&mut self) -> Result<(), EnforceError>;
}

/// Why enforcement failed. Each message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum EnforceError {
    /// `nft` is missing or cannot talk to the kernel.
    #[error(
        "nftables unavailable ({reason}): install it with `apt-get install nftables`, or set `[enforce] backend = \"log\"`"
    )]
    Unavailable {
        /// What went wrong (missing binary, missing kernel support, nft's stderr).
        reason: String,
    },
    /// The kernel refused because we lack CAP_NET_ADMIN.
    #[error(
        "nft is not permitted to change the firewall ({detail}): run ravelin as root or with CAP_NET_ADMIN, or set `[enforce] backend = \"log\"`"
    )]
    NotPermitted {
        /// nft's stderr.
        detail: String,
    },
    /// The table name from the config cannot be used in an nft script.
    #[error(
        "invalid nftables table name {table:?}: use 1 to 32 letters, digits or underscores, starting with a letter"
    )]
    BadTable {
        /// The rejected name.
        table: String,
    },
    /// Our table exists with sets or chains of another shape (e.g. made by another version).
    #[error(
        "table inet {table} exists with a different layout ({detail}): remove it with `nft delete table inet {table}` (this drops its bans) and restart"
    )]
    Layout {
        /// The table.
        table: String,
        /// nft's stderr.
        detail: String,
    },
    /// An nft transaction or listing failed.
    #[error(
        "nft failed to {what} in table inet {table}: {stderr}; inspect it with `nft list table inet {table}`"
    )]
    Failed {
        /// What we were doing (`apply 3 changes`, `list the ban sets`).
        what: String,
        /// The table.
        table: String,
        /// nft's stderr, bounded.
        stderr: String,
    },
    /// nft printed JSON we do not understand.
    #[error(
        "unexpected output from nft while trying to {what}: {detail}; ravelin needs nftables 1.0 or newer"
    )]
    Output {
        /// What we were doing.
        what: String,
        /// What was wrong with it.
        detail: String,
    },
    /// The drop rules or sets are not in place.
    #[error(
        "bans are not enforced in table inet {table}: {detail}; restart ravelin to recreate the rules, and find out what removed them"
    )]
    NotEnforced {
        /// The table.
        table: String,
        /// What is missing.
        detail: String,
    },
}
