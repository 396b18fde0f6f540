//! Posture audit: the seed's checklist, checked for effect, each result with its evidence.
//!
//! Lynis scores installation ("the firewall package is present"); this module asks the
//! running system what is in force (`sshd -T`, `nft -j list ruleset`, `apt-config dump`,
//! `auditctl -l`, the kernel's socket table) and, for files, which `file:line` set the value
//! that wins. Every [`CheckResult`] carries a stable id, a [`Status`] with a reason, a
//! [`Severity`], [`Evidence`] and a remediation, so a reader can verify the verdict by hand.
//!
//! Shape: a check is a plain function from [`Ctx`] to results ([`checks`]); the [`runner`]
//! runs them on threads with a per-check deadline, so one hung command cannot stall the audit.
//! `--root DIR` audits a mounted or fixture tree: checks that need a live kernel or daemon say
//! "not applicable" there instead of guessing. Waivers ([`waiver`]) come from the `[audit]`
//! table of the config file and turn a failure into a visible "waived" result until expiry.
//! Nothing here prints; [`crate::cli`] renders. Secrets found on disk are reported by path
//! and kind only, never by value.

pub mod aptconf;
pub mod checks;
pub mod exec;
pub mod runner;
pub mod sshd_config;
pub mod waiver;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

pub use runner::{Report, run};
pub use waiver::{Waiver, load_waivers};

/// The verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The effective state meets the baseline.
    Pass,
    /// The effective state violates the baseline.
    Fail,
    /// Acceptable but weaker than the baseline, or unprovable from here.
    Warn,
    /// The check does not apply here (e.g. needs a live system under `--root`).
    NotApplicable,
    /// The check could not be evaluated (a command failed or timed out).
    Error,
    /// A failure or warning covered by an unexpired waiver.
    Waived,
}

impl Status {
    /// Short label for tables.
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Warn => "WARN",
            Status::NotApplicable => "N/A",
            Status::Error => "ERROR",
            Status::Waived => "WAIVED",
        }
    }
}

/// How much a failure of the check matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Informational.
    Info,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

impl Severity {
    /// Lowercase name.
    pub fn label(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// How the verdict is known: what was run or read, the raw value, and where it was set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evidence {
    /// The command run (argument vector joined by spaces) or the file read.
    pub source: String,
    /// The raw value seen (never a secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `file:line` that set the value, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

impl Evidence {
    /// Evidence with a source and a value.
    pub fn new(source: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            source: source.into(),
            value: Some(value.into()),
            location: None,
        }
    }

    /// Adds the `file:line` that set the value.
    pub fn at(mut self, location: impl Into<String>) -> Self {
        self.location = Some(location.into());
        self
    }
}

/// The outcome of one check id.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    /// Stable id, e.g. `ssh.password-auth` (used by waivers and `--json` consumers).
    pub id: &'static str,
    /// One-line description of what is checked.
    pub title: &'static str,
    /// The verdict.
    pub status: Status,
    /// Severity of a failure.
    pub severity: Severity,
    /// Why this verdict (always present).
    pub reason: String,
    /// How it is known.
    pub evidence: Vec<Evidence>,
    /// What to do about a failure.
    pub remediation: &'static str,
    /// For a waived result: the status it had, the waiver's reason and expiry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiver: Option<AppliedWaiver>,
}

/// A waiver as applied to a result.
#[derive(Debug, Clone, Serialize)]
pub struct AppliedWaiver {
    /// The status before the waiver.
    pub original: Status,
    /// The waiver's reason.
    pub reason: String,
    /// Expiry date (inclusive), `YYYY-MM-DD`.
    pub expires: String,
}

/// What a check needs to know about the system under audit.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The filesystem root (`/` on a live system).
    pub root: PathBuf,
    /// True when auditing the running system (commands and /proc may be used).
    pub live: bool,
    /// Deadline for each check (external commands get the same bound).
    pub timeout: Duration,
    /// The sshd binary used for `sshd -T` on a live system.
    pub sshd: PathBuf,
    /// The main sshd config, as a path on the audited system.
    pub sshd_config: PathBuf,
    /// The ravelin daemon's control socket (from the config).
    pub control_socket: PathBuf,
}

impl Ctx {
    /// A context for the live system.
    pub fn live(timeout: Duration) -> Self {
        Self {
            root: PathBuf::from("/"),
            live: true,
            timeout,
            sshd: PathBuf::from("/usr/sbin/sshd"),
            sshd_config: PathBuf::from("/etc/ssh/sshd_config"),
            control_socket: PathBuf::from("/run/ravelin/ravelin.sock"),
        }
    }

    /// A context for a mounted or fixture tree (no commands, no /proc of the host).
    pub fn rooted(root: &Path, timeout: Duration) -> Self {
        Self {
            root: root.to_path_buf(),
            live: false,
            ..Self::live(timeout)
        }
    }

    /// Maps an absolute path on the audited system to a path we can open.
    pub fn path(&self, p: impl AsRef<Path>) -> PathBuf {
        reroot(&self.root, p.as_ref())
    }
}

/// `root` + `p` with `p`'s leading `/` removed (no-op when `root` is `/`).
pub fn reroot(root: &Path, p: &Path) -> PathBuf {
    let rel = p.strip_prefix("/").unwrap_or(p);
    root.join(rel)
}
