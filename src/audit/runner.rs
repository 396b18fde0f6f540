//! Runs the check groups in parallel, each against a deadline, and collects a [`Report`].
//!
//! Each group runs on its own thread and sends its results on a channel; the runner waits
//! until the deadline and turns every group that has not answered into "could not evaluate:
//! timed out" results, so a hung command costs at most the timeout, never the whole audit.
//! (A late thread is left to finish on its own: its external commands have their own
//! deadline, so it cannot live long.) Groups share work inside themselves (one `sshd -T`
//! sweep feeds every SSH check), which is why a group, not a single id, is the unit of
//! scheduling; every id still gets exactly one result.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use serde::Serialize;

use super::checks::{GROUPS, Group};
use super::{CheckResult, Ctx, Severity, Status, waiver};

/// The outcome of one audit.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The audited root (`/` for a live system).
    pub root: String,
    /// Whether the live system was audited (commands, /proc).
    pub live: bool,
    /// Wall time of the audit in milliseconds.
    pub duration_ms: u64,
    /// One result per check id, in a stable order.
    pub results: Vec<CheckResult>,
}

impl Report {
    /// Number of results with `status`.
    pub fn count(&self, status: Status) -> usize {
        self.results.iter().filter(|r| r.status == status).count()
    }

    /// True if some failure is at or above `level` (warnings and waived results never are).
    pub fn fails_at(&self, level: Severity) -> bool {
        self.results
            .iter()
            .any(|r| r.status == Status::Fail && r.severity >= level)
    }
}

/// Runs every group whose ids start with `only` (all when `None`), applies `waivers` as of
/// `today`, and returns the report.
pub fn run(ctx: &Ctx, waivers: &[waiver::Waiver], today: NaiveDate, only: Option<&str>) -> Report {
    run_groups(GROUPS, ctx, waivers, today, only)
}

/// [`run`] over a given set of groups (tests inject slow or failing ones).
pub fn run_groups(
    all: &'static [Group],
    ctx: &Ctx,
    waivers: &[waiver::Waiver],
    today: NaiveDate,
    only: Option<&str>,
) -> Report {
    let start = Instant::now();
    let wanted = |id: &str| only.is_none_or(|p| id.starts_with(p));
    let groups: Vec<&'static Group> = all
        .iter()
        .filter(|g| g.checks.iter().any(|m| wanted(m.id)))
        .collect();
    let (tx, rx) = mpsc::channel::<(usize, Vec<CheckResult>)>();
    for (i, g) in groups.iter().enumerate() {
        let txc = tx.clone();
        let ctx = ctx.clone();
        let run = g.run;
        let spawned = std::thread::Builder::new()
            .name(format!("audit-{}", g.name))
            .spawn(move || {
                let _ = txc.send((i, run(&ctx)));
            });
        if let Err(e) = spawned {
            let _ = tx.send((
                i,
                g.checks
                    .iter()
                    .map(|m| m.result(Status::Error, format!("could not start: {e}"), vec![]))
                    .collect(),
            ));
        }
    }
    drop(tx);
    let deadline = start + ctx.timeout;
    let mut got: Vec<Option<Vec<CheckResult>>> = vec![None; groups.len()];
    while got.iter().any(Option::is_none) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left.max(Duration::from_millis(1))) {
            Ok((i, rs)) => got[i] = Some(rs),
            Err(_) => break,
        }
    }
    let mut results = Vec::new();
    for (g, rs) in groups.iter().zip(got) {
        let rs = rs.unwrap_or_default();
        for m in g.checks.iter().filter(|m| wanted(m.id)) {
            match rs.iter().find(|r| r.id == m.id) {
                Some(r) => results.push(r.clone()),
                None => results.push(m.result(
                    Status::Error,
                    format!(
                        "could not evaluate: the {} checks did not finish within {:?}",
                        g.name, ctx.timeout
                    ),
                    vec![],
                )),
            }
        }
    }
    waiver::apply(&mut results, waivers, today);
    Report {
        root: ctx.root.display().to_string(),
        live: ctx.live,
        duration_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
        results,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::checks::Meta;

    static FAST: Meta = Meta {
        id: "t.fast",
        title: "fast",
        severity: Severity::Low,
        remediation: "none",
    };
    static SLOW: Meta = Meta {
        id: "t.slow",
        title: "slow",
        severity: Severity::High,
        remediation: "none",
    };
    static SILENT: Meta = Meta {
        id: "t.silent",
        title: "forgets to answer",
        severity: Severity::Low,
        remediation: "none",
    };
    static GROUPS: &[Group] = &[
        Group {
            name: "fast",
            checks: &[&FAST, &SILENT],
            run: |_| vec![FAST.result(Status::Fail, "bad", vec![])],
        },
        Group {
            name: "slow",
            checks: &[&SLOW],
            run: |_| {
                std::thread::sleep(Duration::from_secs(8));
                vec![SLOW.result(Status::Pass, "late", vec![])]
            },
        },
    ];

    #[test]
    fn a_hung_check_becomes_could_not_evaluate_at_the_deadline() {
        let ctx = Ctx::rooted(
            std::path::Path::new("/nonexistent"),
            // Long enough for the fast group's thread to run on a loaded machine; far below
            // the slow group's 8 s.
            Duration::from_millis(1500),
        );
        let today = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
        let t = Instant::now();
        let r = run_groups(GROUPS, &ctx, &[], today, None);
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        let status: Vec<(&str, Status)> = r.results.iter().map(|c| (c.id, c.status)).collect();
        assert_eq!(
            status,
            [
                ("t.fast", Status::Fail),
                ("t.silent", Status::Error),
                ("t.slow", Status::Error),
            ]
        );
        assert!(r.results[2].reason.contains("did not finish"));
        assert!(r.fails_at(Severity::Low) && !r.fails_at(Severity::Medium));
        let only = run_groups(GROUPS, &ctx, &[], today, Some("t.fast"));
        assert_eq!(only.results.len(), 1);
    }
}
