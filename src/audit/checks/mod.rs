//! The checks, grouped by what they have to read.
//!
//! A [`Group`] is one function that reads a source once (the sshd configuration, the socket
//! table, the ruleset) and returns a result for each of its ids, whose fixed metadata (title,
//! severity, remediation) lives in a static [`Meta`] so the report, waivers and docs agree on
//! them. Ids are stable: scripts and waivers refer to them.

pub mod daemon;
pub mod network;
pub mod secrets;
pub mod ssh;
pub mod system;

use super::{CheckResult, Ctx, Evidence, Severity, Status};

/// The fixed description of one check id.
#[derive(Debug)]
pub struct Meta {
    /// Stable id.
    pub id: &'static str,
    /// What is checked.
    pub title: &'static str,
    /// Severity of a failure.
    pub severity: Severity,
    /// What to do about a failure.
    pub remediation: &'static str,
}

impl Meta {
    /// A result for this id.
    pub fn result(
        &'static self,
        status: Status,
        reason: impl Into<String>,
        evidence: Vec<Evidence>,
    ) -> CheckResult {
        CheckResult {
            id: self.id,
            title: self.title,
            status,
            severity: self.severity,
            reason: reason.into(),
            evidence,
            remediation: self.remediation,
            waiver: None,
        }
    }

    /// "Not applicable" with a reason.
    pub fn na(&'static self, reason: impl Into<String>) -> CheckResult {
        self.result(Status::NotApplicable, reason, vec![])
    }
}

/// Checks that share one reading of the system.
#[derive(Debug)]
pub struct Group {
    /// Short name (thread name, timeout messages).
    pub name: &'static str,
    /// The ids it reports.
    pub checks: &'static [&'static Meta],
    /// Produces one result per id.
    pub run: fn(&Ctx) -> Vec<CheckResult>,
}

/// Every group, in report order.
pub static GROUPS: &[Group] = &[
    ssh::GROUP,
    network::FIREWALL,
    network::SOCKETS,
    network::IDS,
    system::UPDATES,
    system::AUDITD,
    system::ACCOUNTS,
    system::BACKUP,
    secrets::GROUP,
    daemon::GROUP,
];

/// All check ids, in report order.
pub fn all_ids() -> Vec<&'static str> {
    GROUPS
        .iter()
        .flat_map(|g| g.checks.iter().map(|m| m.id))
        .collect()
}

/// The permission bits and owner of a file, for evidence (`0640 uid=0 gid=42`).
pub fn mode_string(md: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    format!(
        "{:04o} uid={} gid={}",
        md.mode() & 0o7777,
        md.uid(),
        md.gid()
    )
}

/// Every running process as (pid, name from `comm`), from `/proc` (live only).
pub fn pids_and_names() -> Vec<(String, String)> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.to_owned();
            if !pid.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|s| s.trim().to_string())
                .unwrap_or_default();
            Some((pid, comm))
        })
        .collect()
}

/// Names (`comm`) and argument vectors of running processes, from `/proc` (live only).
pub fn processes() -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for (pid, comm) in pids_and_names() {
        let argv = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| {
                b.split(|&c| c == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect()
            })
            .unwrap_or_default();
        out.push((comm, argv));
    }
    out
}
