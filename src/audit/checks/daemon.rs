//! The ban layer asked for effect, not presence: the running ravelin daemon is queried over
//! its control socket, and a jail whose sources produce lines while its rules match none is
//! "installed but not effective" (Debian 12's sshd logging only to the journal, or an
//! `sshd-session` that old rules miss, look exactly like that). SSH telemetry: some part of
//! the system must be seeing SSH attempts at all.

use std::path::Path;

use serde_json::Value;

use super::{Group, Meta};
use crate::audit::{CheckResult, Ctx, Evidence, Severity, Status};
use crate::daemon::control::{self, Request};

/// The ban layer is effective.
pub static BAN_EFFECTIVE: Meta = Meta {
    id: "ban.effective",
    title: "The ban daemon's jails match what their sources read, and its bans reach the kernel",
    severity: Severity::Medium,
    remediation: "check `ravelin status`: point each jail at the log sshd really writes (the journal on Debian 12), and fix enforcement errors (`ravelin selftest`)",
};

/// SSH attempts are observed at all.
pub static SSH_TELEMETRY: Meta = Meta {
    id: "telemetry.ssh",
    title: "SSH attempts are observed (ban layer matching sshd, or a decoy)",
    severity: Severity::Low,
    remediation: "run ravelin with an sshd jail on the log sshd writes, or a decoy on port 22, so attacks on SSH are seen",
};

/// Daemon group.
pub const GROUP: Group = Group {
    name: "daemon",
    checks: &[&BAN_EFFECTIVE, &SSH_TELEMETRY],
    run,
};

fn run(ctx: &Ctx) -> Vec<CheckResult> {
    if !ctx.live {
        let why = "a running daemon exists only on a live system (not under --root)";
        return vec![BAN_EFFECTIVE.na(why), SSH_TELEMETRY.na(why)];
    }
    let socket = ctx.control_socket.clone();
    let status = control::call_with_timeout(&socket, &Request::Status, ctx.timeout)
        .ok()
        .filter(|r| r.ok)
        .and_then(|r| r.data);
    let decoys: Vec<String> = super::processes()
        .into_iter()
        .filter(|(comm, argv)| {
            matches!(comm.as_str(), "cowrie" | "endlessh")
                || argv.iter().any(|a| a.contains("cowrie"))
        })
        .map(|(comm, _)| comm)
        .collect();
    vec![
        judge_ban_effective(status.as_ref(), &socket),
        judge_telemetry(status.as_ref(), &decoys),
    ]
}

/// Judge the daemon's status (pure; `None`: it did not answer).
pub fn judge_ban_effective(status: Option<&Value>, socket: &Path) -> CheckResult {
    let src = format!("ravelin status over {}", socket.display());
    let Some(st) = status else {
        return BAN_EFFECTIVE.result(
            Status::Fail,
            format!(
                "the ravelin daemon does not answer on {} (not running, or another config)",
                socket.display()
            ),
            vec![Evidence::new(src, "no answer")],
        );
    };
    let mut ev = Vec::new();
    let mut problems = Vec::new();
    let lines_of = |name: &str| {
        st["sources"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["name"] == name)
            .and_then(|s| s["lines"].as_u64())
            .unwrap_or(0)
    };
    let mut matched_total = 0;
    for j in st["jails"].as_array().into_iter().flatten() {
        let name = j["name"].as_str().unwrap_or("?");
        let matched = j["matched"].as_u64().unwrap_or(0);
        matched_total += matched;
        let read: u64 = j["sources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str())
            .map(lines_of)
            .sum();
        ev.push(Evidence::new(
            src.clone(),
            format!("jail {name}: sources read {read} lines, rules matched {matched}"),
        ));
        if read > 0 && matched == 0 && j["rules"].as_array().is_some_and(|r| !r.is_empty()) {
            problems.push(format!(
                "jail {name}: its sources read {read} lines but its rules matched none"
            ));
        }
    }
    let errors = st["counters"]["enforce_errors"].as_u64().unwrap_or(0);
    ev.push(Evidence::new(
        src.clone(),
        format!(
            "backend {}, {} active bans, kernel elements {}, enforcement errors {errors}",
            st["backend"], st["active_bans"], st["kernel_elements"]
        ),
    ));
    if errors > 0 {
        problems.push(format!(
            "{errors} enforcement transactions failed since the daemon started"
        ));
    }
    if st["backend"] == "log" {
        problems.push("the `log` backend decides but enforces nothing".into());
    }
    let (status, reason) = if problems.is_empty() {
        (
            Status::Pass,
            format!("{matched_total} lines matched by the jails; bans reach the kernel"),
        )
    } else {
        (Status::Warn, problems.join("; "))
    };
    BAN_EFFECTIVE.result(status, reason, ev)
}

/// SSH telemetry: a jail matching sshd lines, or a decoy running (pure).
pub fn judge_telemetry(status: Option<&Value>, decoys: &[String]) -> CheckResult {
    let sshd_matched: u64 = status
        .and_then(|st| st["jails"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter(|j| {
            j["rules"]
                .as_array()
                .is_some_and(|r| r.iter().any(|x| x == "sshd"))
        })
        .filter_map(|j| j["matched"].as_u64())
        .sum();
    let mut ev = vec![Evidence::new(
        "ravelin status",
        format!("sshd lines matched: {sshd_matched}"),
    )];
    ev.push(Evidence::new(
        "read /proc/*/comm",
        if decoys.is_empty() {
            "no decoy running".to_string()
        } else {
            decoys.join(", ")
        },
    ));
    // ravelin's own decoy, as the daemon reports it.
    let own_decoy = status.is_some_and(|st| st["decoy"]["running"] == true);
    if let Some(d) = status.map(|st| &st["decoy"]).filter(|d| d.is_object()) {
        ev.push(Evidence::new(
            "ravelin status",
            format!(
                "decoy running: {}, sessions: {}",
                d["running"], d["sessions"]
            ),
        ));
    }
    if sshd_matched > 0 || !decoys.is_empty() || own_decoy {
        SSH_TELEMETRY.result(Status::Pass, "SSH attempts are being observed", ev)
    } else {
        SSH_TELEMETRY.result(
            Status::Warn,
            "nothing has observed an SSH attempt: no sshd jail matched a line and no decoy runs",
            ev,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status(lines: u64, matched: u64, errors: u64, backend: &str) -> Value {
        json!({
            "backend": backend, "active_bans": 1, "kernel_elements": 1,
            "sources": [{"name": "auth", "lines": lines}],
            "jails": [{"name": "sshd", "sources": ["auth"], "rules": ["sshd"], "matched": matched}],
            "counters": {"enforce_errors": errors},
        })
    }

    #[test]
    fn installed_is_not_effective() {
        let sock = Path::new("/run/ravelin/ravelin.sock");
        let cases = [
            (
                Some(status(100, 40, 0, "nftables")),
                Status::Pass,
                "40 lines matched",
            ),
            (
                Some(status(100, 0, 0, "nftables")),
                Status::Warn,
                "read 100 lines but its rules matched none",
            ),
            (
                Some(status(0, 0, 0, "nftables")),
                Status::Pass,
                "0 lines matched",
            ),
            (
                Some(status(100, 40, 3, "nftables")),
                Status::Warn,
                "3 enforcement transactions failed",
            ),
            (
                Some(status(100, 40, 0, "log")),
                Status::Warn,
                "enforces nothing",
            ),
            (None, Status::Fail, "does not answer"),
        ];
        for (st, want, text) in cases {
            let r = judge_ban_effective(st.as_ref(), sock);
            assert_eq!(r.status, want, "{}", r.reason);
            assert!(r.reason.contains(text), "{}", r.reason);
        }
        assert_eq!(
            judge_telemetry(Some(&status(10, 5, 0, "nftables")), &[]).status,
            Status::Pass
        );
        assert_eq!(
            judge_telemetry(Some(&status(10, 0, 0, "nftables")), &[]).status,
            Status::Warn
        );
        assert_eq!(
            judge_telemetry(None, &["endlessh".into()]).status,
            Status::Pass
        );
        let mut with_decoy = status(10, 0, 0, "nftables");
        with_decoy["decoy"] = json!({"running": true, "sessions": 3});
        assert_eq!(judge_telemetry(Some(&with_decoy), &[]).status, Status::Pass);
        with_decoy["decoy"]["running"] = json!(false);
        assert_eq!(judge_telemetry(Some(&with_decoy), &[]).status, Status::Warn);
    }
}
